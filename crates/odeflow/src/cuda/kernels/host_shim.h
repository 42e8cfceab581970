// Test-only: the CUDA built-ins the kernels in this folder use, for compiling them as host
// C++ (g++/clang++) so that their arithmetic is tested on a machine without a GPU.
//
// A launch is emulated by `ODEFLOW_LAUNCH(kernel, grid, block, args...)`, which runs every
// (block, thread) pair sequentially; atomics are plain read-modify-writes. This is exact for
// kernels that follow the rules in state.cu (no shared memory, no barriers, no warp
// intrinsics), which the tests enforce by construction.
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
