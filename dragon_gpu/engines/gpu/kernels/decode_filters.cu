// The filters undone after inflating a block's segments on the GPU, and the assembly of the
// segments into the rows the counting kernels read.
//
//   reverse_bits     TIFF FillOrder=2: every stored byte is bit-reversed (before inflating, as
//                    libtiff and the CPU reader do).
//   undo_predictor   TIFF horizontal differencing (Predictor=2) of 8- or 16-bit samples, per
//                    row of each segment, in place; big-endian 16-bit samples are made native.
//   assemble_rows    the rows [row0, row0 + rows) of the image from the grid of decoded
//                    segments (strips, tiles, chunks), undoing HDF5's byte shuffle and
//                    big-endian storage on the way.
//
// Segments sit in one decoded buffer at offsets `at` (u64); segment s of a block is band
// s / across (counted from first_band) and column s % across of the grid. Every launch uses a
// grid-stride loop, so any grid size is correct; the host keeps a block's bytes below 2**31.

typedef unsigned int dec_u32;
typedef unsigned long long dec_u64;

#define PREDICTOR_THREADS 256

extern "C" __global__ void reverse_bits(unsigned char* __restrict__ data, dec_u32 unused,
                                        dec_u32 n) {
    dec_u32 stride = gridDim.x * blockDim.x;
    for (dec_u32 i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        data[i] = (unsigned char)(__brev((dec_u32)data[i]) >> 24);
    }
}

__device__ __forceinline__ dec_u32 load_sample(const unsigned char* p, dec_u32 i,
                                               dec_u32 itemsize, dec_u32 swap) {
    if (itemsize == 1) return p[i];
    dec_u32 lo = p[2 * i], hi = p[2 * i + 1];
    return swap ? (lo << 8) | hi : (hi << 8) | lo;
}

__device__ __forceinline__ void store_sample(unsigned char* p, dec_u32 i, dec_u32 itemsize,
                                             dec_u32 value) {
    if (itemsize == 1) {
        p[i] = (unsigned char)value;
    } else {  // native (little-endian) order
        p[2 * i] = (unsigned char)value;
        p[2 * i + 1] = (unsigned char)(value >> 8);
    }
}

// One thread block a row (grid-stride over every row of every segment): each thread sums a
// contiguous run of the row's differences, thread 0 scans the runs' sums, and each thread then
// rewrites its run as running sums from its run's start. Sums wrap at the sample's width, as
// the encoder's differences do.
extern "C" __global__ void undo_predictor(unsigned char* __restrict__ data,
                                          const dec_u64* __restrict__ at, dec_u32 nsegs,
                                          const dec_u32* __restrict__ size, dec_u32 seg_rows,
                                          dec_u32 row_bytes, dec_u32 itemsize, dec_u32 swap) {
    __shared__ dec_u32 run_sum[PREDICTOR_THREADS];
    dec_u32 mask = itemsize == 1 ? 0xFFu : 0xFFFFu;
    dec_u32 samples = row_bytes / itemsize;
    dec_u64 items = (dec_u64)nsegs * seg_rows;
    for (dec_u64 item = blockIdx.x; item < items; item += gridDim.x) {
        dec_u32 seg = (dec_u32)(item / seg_rows), row = (dec_u32)(item % seg_rows);
        if ((dec_u64)(row + 1) * row_bytes > size[seg]) continue;  // a short last strip
        unsigned char* p = data + at[seg] + (dec_u64)row * row_bytes;
        dec_u32 per = (samples + blockDim.x - 1) / blockDim.x;
        dec_u32 lo = per * threadIdx.x;
        dec_u32 hi = lo + per < samples ? lo + per : samples;
        dec_u32 sum = 0;
        for (dec_u32 i = lo; i < hi; ++i) sum += load_sample(p, i, itemsize, swap);
        run_sum[threadIdx.x] = sum & mask;
        __syncthreads();
        if (threadIdx.x == 0) {  // exclusive scan of the runs' sums
            dec_u32 total = 0;
            for (dec_u32 t = 0; t < blockDim.x; ++t) {
                dec_u32 s = run_sum[t];
                run_sum[t] = total;
                total = (total + s) & mask;
            }
        }
        __syncthreads();
        dec_u32 value = run_sum[threadIdx.x];
        for (dec_u32 i = lo; i < hi; ++i) {
            value = (value + load_sample(p, i, itemsize, swap)) & mask;
            store_sample(p, i, itemsize, value);
        }
        __syncthreads();
    }
}

// out[r, c] for r < rows, c < row_bytes: byte c of image row row0 + r. Segments are seg_rows
// rows of seg_row_bytes bytes; `swap` swaps the bytes of 16-bit values, and `shuffle` > 1 is
// the element size of HDF5's byte shuffle (byte j of element e of a chunk is stored at
// j * elements + e).
extern "C" __global__ void assemble_rows(unsigned char* __restrict__ out,
                                         const unsigned char* __restrict__ data, dec_u32 rows,
                                         const dec_u64* __restrict__ at, dec_u32 row0,
                                         dec_u32 row_bytes, dec_u32 seg_rows,
                                         dec_u32 seg_row_bytes, dec_u32 first_band,
                                         dec_u32 across, dec_u32 swap, dec_u32 shuffle) {
    dec_u32 n = rows * row_bytes;
    dec_u32 stride = gridDim.x * blockDim.x;
    dec_u32 elements = shuffle > 1 ? seg_rows * seg_row_bytes / shuffle : 0;
    for (dec_u32 o = blockIdx.x * blockDim.x + threadIdx.x; o < n; o += stride) {
        dec_u32 r = row0 + o / row_bytes, c = o % row_bytes;
        dec_u32 band = r / seg_rows, col = c / seg_row_bytes;
        dec_u32 seg = (band - first_band) * across + col;
        dec_u32 p = (r - band * seg_rows) * seg_row_bytes + (c - col * seg_row_bytes);
        if (swap) p ^= 1u;
        if (shuffle > 1) p = (p % shuffle) * elements + p / shuffle;
        out[o] = data[at[seg] + p];
    }
}
