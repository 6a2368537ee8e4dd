// Adler-32 of every decoded segment of a block, one thread block a segment.
//
// zlib streams (TIFF deflate strips and tiles, HDF5 gzip chunks) end with the Adler-32 of their
// decoded bytes; the CPU decoder checks it, so the GPU path checks it too. Each thread sums one
// contiguous chunk of the segment into partial sums (A = sum of bytes, B = sum of the running
// A), and thread 0 combines the chunks in order:
//
//   A = A_x + A_y,   B = B_x + n_y * A_x + B_y          (mod 65521)
//
// then a = 1 + A, b = n + B (see dragon_gpu/engines/gpu/decode/_adler.py, the reference).
//
//   data   the block's decoded buffer            at     byte offset of each segment in data
//   nsegs  segments of the block                 size   decoded bytes of each segment
//   out    the Adler-32 of each segment, written (the host compares them with the trailers)
//
// Launch with at most ADLER_THREADS threads a block; any grid size (a grid-stride loop covers
// the segments).

#define ADLER_MOD 65521u
#define ADLER_THREADS 256
// Bytes summed between reductions: A < 65521 + 4096 * 255 and B < 2**64 are far from overflow.
#define ADLER_RUN 4096u

typedef unsigned int adler_u32;
typedef unsigned long long adler_u64;

extern "C" __global__ void adler32_segments(const unsigned char* __restrict__ data,
                                            const adler_u64* __restrict__ at, adler_u32 nsegs,
                                            const adler_u32* __restrict__ size,
                                            adler_u32* __restrict__ out) {
    __shared__ adler_u64 part_a[ADLER_THREADS];
    __shared__ adler_u64 part_b[ADLER_THREADS];
    __shared__ adler_u64 part_n[ADLER_THREADS];
    for (adler_u32 seg = blockIdx.x; seg < nsegs; seg += gridDim.x) {
        const unsigned char* p = data + at[seg];
        adler_u64 n = size[seg];
        adler_u64 per = (n + blockDim.x - 1) / blockDim.x;
        adler_u64 lo = per * threadIdx.x;
        adler_u64 hi = lo + per < n ? lo + per : n;
        adler_u64 a = 0, b = 0;
        adler_u32 run = 0;
        for (adler_u64 i = lo; i < hi; ++i) {
            a += p[i];
            b += a;
            if (++run == ADLER_RUN) {
                a %= ADLER_MOD;
                b %= ADLER_MOD;
                run = 0;
            }
        }
        part_a[threadIdx.x] = a % ADLER_MOD;
        part_b[threadIdx.x] = b % ADLER_MOD;
        part_n[threadIdx.x] = hi > lo ? hi - lo : 0;
        __syncthreads();
        if (threadIdx.x == 0) {
            adler_u64 ta = 0, tb = 0;
            for (adler_u32 t = 0; t < blockDim.x; ++t) {
                // chunk t follows the chunks before it: B = B_x + n_t * A_x + B_t
                tb = (tb + (part_n[t] % ADLER_MOD) * ta + part_b[t]) % ADLER_MOD;
                ta = (ta + part_a[t]) % ADLER_MOD;
            }
            adler_u64 fa = (1 + ta) % ADLER_MOD;
            adler_u64 fb = (n % ADLER_MOD + tb) % ADLER_MOD;
            out[seg] = (adler_u32)((fb << 16) | fa);
        }
        __syncthreads();
    }
}
