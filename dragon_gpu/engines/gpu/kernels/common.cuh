// Shared by the counting kernels of dragon-gpu.
//
// Every counting kernel has the same signature (see COUNT_KERNEL) so the host launches them all
// the same way:
//
//   body, dye        device pointers to `rows` rows of each image, rows contiguous, in their
//                    storage encoding: packed bits (uint8, most significant bit first,
//                    ceil(width / 8) bytes a row, padding bits undefined) or planes (uint8 or
//                    uint16, `width` values a row). Both pointers are 16-byte aligned.
//   rows, width      rows of the block and pixels a row; the host keeps rows * row bytes below
//                    2**31 so every index here fits a 32-bit unsigned int.
//   *_threshold,     the PixelRule of each input: a value v is a member when v >= threshold if
//   *_high           high is 1, and when v < threshold if high is 0. Packed bits use threshold 1,
//                    so high means "a set bit is a member".
//   counters         three device uint64 counters that the kernel ADDS to (never resets):
//                    [0] body, [1] dye, [2] dye_in_body.
//
// Each thread accumulates its own counts, each thread block reduces them with warp shuffles and
// shared memory and adds them with one atomicAdd per counter, so a launch costs a few thousand
// atomics whatever the block size, and the host reads the counters once, at the end.

#ifndef DRAGON_GPU_COMMON_CUH
#define DRAGON_GPU_COMMON_CUH

typedef unsigned int u32;
typedef unsigned long long u64;

#define DRAGON_BODY 0
#define DRAGON_DYE 1
#define DRAGON_BOTH 2

#define COUNT_KERNEL(name)                                                                   \
    extern "C" __global__ void name(const void* __restrict__ body,                            \
                                    const void* __restrict__ dye, u32 rows, u32 width,        \
                                    u32 body_threshold, u32 body_high, u32 dye_threshold,     \
                                    u32 dye_high, u64* __restrict__ counters)

// 1 when `value` is a member under the rule (threshold, high), else 0.
__device__ __forceinline__ u32 member(u32 value, u32 threshold, u32 high) {
    return (u32)(value >= threshold) ^ (high ^ 1u);
}

__device__ __forceinline__ u32 global_thread() { return blockIdx.x * blockDim.x + threadIdx.x; }

__device__ __forceinline__ u32 global_stride() { return gridDim.x * blockDim.x; }

__device__ __forceinline__ u64 warp_sum(u64 value) {
    for (int offset = 16; offset > 0; offset >>= 1)
        value += __shfl_down_sync(0xffffffffu, value, offset);
    return value;
}

// Adds the per-thread counts of the whole thread block to `counters`. Every thread of the block
// must call it (it synchronises the block); blockDim.x must be a multiple of 32, at most 1024.
__device__ __forceinline__ void block_add(u64 body, u64 dye, u64 both, u64* counters) {
    __shared__ u64 partial[3][32];
    const u32 lane = threadIdx.x & 31u;
    const u32 warp = threadIdx.x >> 5;
    body = warp_sum(body);
    dye = warp_sum(dye);
    both = warp_sum(both);
    if (lane == 0) {
        partial[DRAGON_BODY][warp] = body;
        partial[DRAGON_DYE][warp] = dye;
        partial[DRAGON_BOTH][warp] = both;
    }
    __syncthreads();
    if (warp == 0) {
        const u32 warps = (blockDim.x + 31u) >> 5;
        body = lane < warps ? partial[DRAGON_BODY][lane] : 0ull;
        dye = lane < warps ? partial[DRAGON_DYE][lane] : 0ull;
        both = lane < warps ? partial[DRAGON_BOTH][lane] : 0ull;
        body = warp_sum(body);
        dye = warp_sum(dye);
        both = warp_sum(both);
        if (lane == 0) {
            // Skipping zero adds keeps an all-background block from touching the counters.
            if (body) atomicAdd(&counters[DRAGON_BODY], body);
            if (dye) atomicAdd(&counters[DRAGON_DYE], dye);
            if (both) atomicAdd(&counters[DRAGON_BOTH], both);
        }
    }
}

// Member bits of `n` (1..8) consecutive plane values starting at v[0], bit k for value k.
template <typename T>
__device__ __forceinline__ u32 plane_bits(const T* __restrict__ v, u32 n, u32 threshold, u32 high) {
    u32 bits = 0;
    for (u32 k = 0; k < n; ++k) bits |= member((u32)v[k], threshold, high) << k;
    return bits;
}

// Member bits of the 8 plane values of group g (values 8g .. 8g+7), bit k for value 8g + k,
// read with one 8-byte (uint8) or 16-byte (uint16) load: v must be 16-byte aligned.
__device__ __forceinline__ u32 plane_bits8(const unsigned char* __restrict__ v, u32 g,
                                           u32 threshold, u32 high) {
    const uint2 w = reinterpret_cast<const uint2*>(v)[g];
    u32 bits = 0;
#pragma unroll
    for (u32 k = 0; k < 4; ++k) {
        bits |= member((w.x >> (8 * k)) & 0xffu, threshold, high) << k;
        bits |= member((w.y >> (8 * k)) & 0xffu, threshold, high) << (k + 4);
    }
    return bits;
}

__device__ __forceinline__ u32 plane_bits8(const unsigned short* __restrict__ v, u32 g,
                                           u32 threshold, u32 high) {
    const uint4 w = reinterpret_cast<const uint4*>(v)[g];
    const u32 words[4] = {w.x, w.y, w.z, w.w};
    u32 bits = 0;
#pragma unroll
    for (u32 k = 0; k < 4; ++k) {  // little endian: the low half of each word comes first
        bits |= member(words[k] & 0xffffu, threshold, high) << (2 * k);
        bits |= member(words[k] >> 16, threshold, high) << (2 * k + 1);
    }
    return bits;
}

// Member bits of one packed byte, bit k for pixel k of the byte (the byte's most significant bit
// is pixel 0, so the byte is bit-reversed); `valid` pixels (1..8) of the byte are kept.
__device__ __forceinline__ u32 packed_bits8(u32 byte, u32 high, u32 valid) {
    u32 bits = __brev(byte) >> 24;
    if (!high) bits = ~bits;
    return bits & ((1u << valid) - 1u);
}

#endif  // DRAGON_GPU_COMMON_CUH
