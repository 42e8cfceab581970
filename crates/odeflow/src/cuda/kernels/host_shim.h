// Test-only: the CUDA built-ins the kernels in this folder use, for compiling them as host
// C++ (g++/clang++) so that their arithmetic is tested on a machine without a GPU.
//
// A launch is emulated by `ODEFLOW_LAUNCH(kernel, grid, block, args...)`, which runs every
// (block, thread) pair sequentially; atomics are plain read-modify-writes. This is exact for
// kernels that follow the rules in state.cu (no shared memory, no barriers, no warp
// intrinsics), which the tests enforce by construction.
//
// Kernels with block-level cooperation (`__shared__` arrays and `__syncthreads()`, the
// deterministic reductions of norm.cu) are launched by `ODEFLOW_LAUNCH_BLOCKS`, which runs the
// blocks one after the other and the threads of a block concurrently, one OS thread each,
// with a real barrier for `__syncthreads()` and `__shared__` as function-local statics (one
// copy, shared by the block's threads). A missing barrier is then a data race the tests can
// observe, and a barrier not reached by every thread hangs, as on a GPU.
#pragma once
#include <cmath>
#include <cstdint>

#define __global__
#define __device__
#define __host__

struct odeflow_dim3 {
    unsigned x, y, z;
};
static thread_local odeflow_dim3 threadIdx, blockIdx, blockDim, gridDim;

#include <cstring>

using std::exp;
using std::fabs;
using std::fmax;
using std::isfinite;
using std::log;
using std::sqrt;
inline float fabsf(float x) { return std::fabs(x); }
inline float fmaxf(float a, float b) { return std::fmax(a, b); }
inline float tanhf(float x) { return std::tanh(x); }
inline float sqrtf(float x) { return std::sqrt(x); }

// Round-to-nearest products and sums that the device compiler may not fuse into an FMA
// (x86-64 host code without -mfma never fuses).
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __int_as_float(int i) {
    float f;
    std::memcpy(&f, &i, sizeof f);
    return f;
}
inline unsigned long long atomicAdd(unsigned long long* a, unsigned long long v) {
    unsigned long long old = *a;
    *a = old + v;
    return old;
}
inline double atomicAdd(double* a, double v) {
    double old = *a;
    *a = old + v;
    return old;
}
inline unsigned long long atomicMin(unsigned long long* a, unsigned long long v) {
    unsigned long long old = *a;
    if (v < old) *a = v;
    return old;
}

#define ODEFLOW_LAUNCH(kernel, grid, block, ...)                         \
    do {                                                                 \
        gridDim = {(unsigned)(grid), 1, 1};                              \
        blockDim = {(unsigned)(block), 1, 1};                            \
        for (unsigned b_ = 0; b_ < gridDim.x; ++b_)                      \
            for (unsigned t_ = 0; t_ < blockDim.x; ++t_) {               \
                blockIdx = {b_, 0, 0};                                   \
                threadIdx = {t_, 0, 0};                                  \
                kernel(__VA_ARGS__);                                     \
            }                                                            \
    } while (0)

#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#define __shared__ static

// The barrier of the emulated block that is running (C++17 has no std::barrier).
struct odeflow_block_barrier {
    std::mutex m;
    std::condition_variable cv;
    unsigned size = 1, count = 0, generation = 0;
    void wait() {
        std::unique_lock<std::mutex> lock(m);
        unsigned gen = generation;
        if (++count == size) {
            count = 0;
            ++generation;
            cv.notify_all();
        } else {
            cv.wait(lock, [&] { return gen != generation; });
        }
    }
};
// `static`: one barrier per loaded library (an `inline` function's static would be one
// symbol shared by every library the tests load at once).
static inline odeflow_block_barrier& odeflow_barrier() {
    static odeflow_block_barrier b;
    return b;
}
inline void __syncthreads() { odeflow_barrier().wait(); }

#define ODEFLOW_LAUNCH_BLOCKS(kernel, grid, block, ...)                      \
    do {                                                                     \
        unsigned g_ = (unsigned)(grid), bl_ = (unsigned)(block);             \
        odeflow_barrier().size = bl_;                                        \
        odeflow_barrier().count = 0;                                         \
        for (unsigned b_ = 0; b_ < g_; ++b_) {                               \
            std::vector<std::thread> ts_;                                    \
            for (unsigned t_ = 0; t_ < bl_; ++t_)                            \
                ts_.emplace_back([&, b_, t_] {                               \
                    gridDim = {g_, 1, 1};                                    \
                    blockDim = {bl_, 1, 1};                                  \
                    blockIdx = {b_, 0, 0};                                   \
                    threadIdx = {t_, 0, 0};                                  \
                    kernel(__VA_ARGS__);                                     \
                });                                                          \
            for (auto& t : ts_) t.join();                                    \
        }                                                                    \
    } while (0)
