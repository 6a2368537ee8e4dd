// Lets the counting kernels (dragon_gpu/engines/gpu/kernels/*.cu) compile as plain C++ and run on
// the CPU, one CUDA thread per thread block, blocks one after the other (see test_gpu_kernels.py).
//
// This checks everything a kernel does per thread: index math, grid-stride loops, row padding,
// tails, thresholds and polarities. It cannot check the warp shuffles: with one thread a block
// there is no other lane, so __shfl_down_sync returns 0 and the block reduction passes each
// thread's counts straight to the counters. The GPU tests (test_gpu.py) check the real thing.

#pragma once
#include <cstdint>

#define __global__
#define __device__
#define __forceinline__ inline
// Each CPU thread emulates its own GPU, so the kernel-visible globals are per thread.
#define __shared__ static thread_local

struct dim3 { unsigned int x, y, z; };
struct uint2 { unsigned int x, y; };
struct uint4 { unsigned int x, y, z, w; };

extern "C" {
thread_local dim3 threadIdx = {0, 1, 1}, blockIdx = {0, 1, 1}, blockDim = {1, 1, 1},
    gridDim = {1, 1, 1};

// Called before each emulated thread block: one thread a block.
void dragon_emulate_block(unsigned int block, unsigned int grid) {
    blockIdx.x = block;
    gridDim.x = grid;
    threadIdx.x = 0;
    blockDim.x = 1;
}

// For kernels that never synchronise a block (the probe): thread `thread` of `threads`.
void dragon_emulate_thread(unsigned int thread, unsigned int threads) {
    threadIdx.x = thread;
    blockDim.x = threads;
}
}

inline int __popc(unsigned int v) { return __builtin_popcount(v); }
inline int __popcll(unsigned long long v) { return __builtin_popcountll(v); }
inline unsigned int __brev(unsigned int v) {
    unsigned int r = 0;
    for (int i = 0; i < 32; ++i) r |= ((v >> i) & 1u) << (31 - i);
    return r;
}
inline void __syncthreads() {}
inline unsigned long long __shfl_down_sync(unsigned int, unsigned long long, int) { return 0ull; }
inline unsigned long long atomicAdd(unsigned long long* address, unsigned long long value) {
    unsigned long long old = *address;
    *address = old + value;
    return old;
}
inline unsigned int atomicAdd(unsigned int* address, unsigned int value) {
    unsigned int old = *address;
    *address = old + value;
    return old;
}
