// The smallest kernel that shows a device can compile, load and run dragon-gpu's code, including
// 64-bit atomics: thread t adds t + 1, so one block of 64 threads leaves 64 * 65 / 2 = 2080.

extern "C" __global__ void probe(unsigned long long* out) {
    atomicAdd(out, (unsigned long long)threadIdx.x + 1ull);
}
