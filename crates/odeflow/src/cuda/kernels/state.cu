// Kernels of the device state (odeflow::cuda::CudaBatch, f32): the fused Runge–Kutta stage
// combination and the reductions step-size control and NaN detection need.
//
// The same text is compiled by NVRTC at run time (for the device's sm_XX) and, in the tests,
// by the host C++ compiler with `host_shim.h`, which defines the CUDA built-ins so that the
// arithmetic can be checked against the CPU `Batch` state without a GPU. Keep to what the
// shim provides: grid-stride loops, no shared memory, no warp intrinsics; reductions
// accumulate per thread in double and finish with one atomic per thread.

// Terms of one fused stage-combination launch (the launch plan splits longer sums).
#define ODEFLOW_MAX_TERMS 8

// Passed by value: the device addresses of the terms and their coefficients h·a_ij.
struct LincombArgs {
    const float* k[ODEFLOW_MAX_TERMS];
    float c[ODEFLOW_MAX_TERMS];
    int nterms;
};

#define ODEFLOW_GRID_STRIDE(i, n)                                                    \
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (n);    \
         i += (long long)blockDim.x * gridDim.x)

// out = base + Σ_j c_j k_j: one Runge–Kutta stage combination Y_i = y + h Σ_j a_ij k_j in one
// pass over memory. `out` may equal `base` (a continuation launch of a longer sum).
extern "C" __global__ void lincomb_f32(long long n, float* out, const float* base, LincombArgs a) {
    ODEFLOW_GRID_STRIDE(i, n) {
        float acc = base[i];
        for (int j = 0; j < a.nterms; ++j) acc += a.c[j] * a.k[j][i];
        out[i] = acc;
    }
}

// x = a·x
extern "C" __global__ void scale_f32(long long n, float* x, float a) {
    ODEFLOW_GRID_STRIDE(i, n) { x[i] *= a; }
}

// y = y + a·x
extern "C" __global__ void axpy_f32(long long n, float* y, float a, const float* x) {
    ODEFLOW_GRID_STRIDE(i, n) { y[i] += a * x[i]; }
}

// *acc += Σ_i (err_i / (atol + rtol·max(|y0_i|, |y1_i|)))², the pieces of the mixed RMS
// error norm of step-size control (Hairer, Nørsett, Wanner I, II.4). *acc must be zeroed.
extern "C" __global__ void weighted_sq_sum_f32(long long n, const float* err, const float* y0,
                                               const float* y1, float atol, float rtol,
                                               double* acc) {
    double s = 0.0;
    ODEFLOW_GRID_STRIDE(i, n) {
        float sc = atol + rtol * fmaxf(fabsf(y0[i]), fabsf(y1[i]));
        double r = (double)(err[i] / sc);
        s += r * r;
    }
    if (s != 0.0) atomicAdd(acc, s);
}

// *acc += Σ_i x_i y_i (in double). *acc must be zeroed.
extern "C" __global__ void dot_f32(long long n, const float* x, const float* y, double* acc) {
    double s = 0.0;
    ODEFLOW_GRID_STRIDE(i, n) { s += (double)x[i] * (double)y[i]; }
    if (s != 0.0) atomicAdd(acc, s);
}

// *first = min(*first, index of the first NaN or infinity in x). *first must start at n
// (cast to unsigned long long) so that "none" reads back as n.
extern "C" __global__ void first_non_finite_f32(long long n, const float* x,
                                                unsigned long long* first) {
    ODEFLOW_GRID_STRIDE(i, n) {
        if (!isfinite(x[i])) {
            atomicMin(first, (unsigned long long)i);
            return;
        }
    }
}

// *first = min(*first, step) when x holds a NaN or an infinity: the deferred finiteness watch
// of a fixed-step solve, launched once per step with no host synchronisation and read once at
// the end. *first starts at ~0ull ("no step").
extern "C" __global__ void mark_non_finite_step_f32(long long n, const float* x,
                                                    unsigned long long step,
                                                    unsigned long long* first) {
    ODEFLOW_GRID_STRIDE(i, n) {
        if (!isfinite(x[i])) {
            atomicMin(first, step);
            return;
        }
    }
}
