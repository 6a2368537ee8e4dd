// Exact histograms of row blocks: one uint8 plane (256 bins), one uint16 plane (65536 bins), or
// the joint histogram of two uint8 planes (65536 bins, bin body << 8 | dye).
//
// Signature (HISTOGRAM_KERNEL): `a` (and `b` for the joint histogram, else unused) point to
// `rows` rows of `width` values, rows contiguous; `hist` is a device uint64 array of the kernel's
// bins that the kernel ADDS to (never resets). Plane rows have no padding, so a block is one flat
// run of rows * width < 2**31 values.
//
// Each thread block keeps a private histogram of one slice of at most 8192 bins in shared memory
// (32 KiB of uint32), counts its share of the pixels into it with shared-memory atomics, and adds
// its non-zero bins to `hist` with one 64-bit atomicAdd each. A 65536-bin histogram does not fit
// in shared memory, so its bins are cut into 8 slices: the host launches a multiple of `slices`
// thread blocks and block k histograms slice k % slices over part k / slices of the pixels;
// pixels of other slices are read and skipped (device memory is read 8 times, far below the
// cost of copying the block to the device). A uint32 bin counts at most one launch's pixels,
// fewer than 2**31, so it cannot overflow.

#include "common.cuh"

#define DRAGON_SLICE_BINS 8192u

#define HISTOGRAM_KERNEL(name)                                                               \
    extern "C" __global__ void name(const void* __restrict__ a, const void* __restrict__ b,   \
                                    u32 rows, u32 width, u64* __restrict__ hist)

// The bin of pixel i. MODE 0: uint8 plane; 1: uint16 plane; 2: uint8 x uint8 joint.
template <int MODE>
__device__ __forceinline__ u32 bin_of(const void* __restrict__ a, const void* __restrict__ b,
                                      u32 i) {
    if (MODE == 0) return static_cast<const unsigned char*>(a)[i];
    if (MODE == 1) return static_cast<const unsigned short*>(a)[i];
    return ((u32) static_cast<const unsigned char*>(a)[i] << 8) |
           static_cast<const unsigned char*>(b)[i];
}

template <int MODE, u32 BINS>
__device__ __forceinline__ void histogram(const void* __restrict__ a, const void* __restrict__ b,
                                          u32 rows, u32 width, u64* __restrict__ hist) {
    const u32 slice_bins = BINS < DRAGON_SLICE_BINS ? BINS : DRAGON_SLICE_BINS;
    const u32 slices = BINS / slice_bins;
    __shared__ u32 local[BINS < DRAGON_SLICE_BINS ? BINS : DRAGON_SLICE_BINS];
    const u32 slice = blockIdx.x % slices;
    const u32 part = blockIdx.x / slices;
    const u32 parts = gridDim.x / slices;
    const u32 first = slice * slice_bins;
    for (u32 k = threadIdx.x; k < slice_bins; k += blockDim.x) local[k] = 0u;
    __syncthreads();
    const u32 pixels = rows * width;
    const u32 stride = parts * blockDim.x;
    for (u32 i = part * blockDim.x + threadIdx.x; i < pixels; i += stride) {
        const u32 k = bin_of<MODE>(a, b, i) - first;  // wraps above slice_bins when below first
        if (k < slice_bins) atomicAdd(&local[k], 1u);
    }
    __syncthreads();
    for (u32 k = threadIdx.x; k < slice_bins; k += blockDim.x)
        if (local[k]) atomicAdd(&hist[first + k], (u64)local[k]);
}

HISTOGRAM_KERNEL(histogram_u8) { histogram<0, 256u>(a, b, rows, width, hist); }
HISTOGRAM_KERNEL(histogram_u16) { histogram<1, 65536u>(a, b, rows, width, hist); }
HISTOGRAM_KERNEL(histogram_u8_u8) { histogram<2, 65536u>(a, b, rows, width, hist); }
