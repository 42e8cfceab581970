// Test-only: the kernels of norm.cu compiled as host C++ (see src/cuda/kernels/host_shim.h)
// and exposed as C functions that launch them on an emulated grid, for
// tests/cuda_kernels/norm.rs. The per-channel reductions run with ODEFLOW_LAUNCH_BLOCKS (the
// threads of a block concurrently, a real barrier); the elementwise kernels with
// ODEFLOW_LAUNCH.
#include "host_shim.h"
#include "norm.cu"

extern "C" {

void host_bn_stats(long long n, int c, long long p, int layout, const float* x, double eps,
                   double momentum, float* running_mean, float* running_var, float* mean,
                   float* invstd, int grid, int block) {
    ODEFLOW_LAUNCH_BLOCKS(bn_stats_f32, grid, block, n, c, p, layout, x, eps, momentum,
                          running_mean, running_var, mean, invstd);
}

void host_bn_eval_stats(int c, const float* running_mean, const float* running_var, double eps,
                        float* mean, float* invstd, int grid, int block) {
    ODEFLOW_LAUNCH(bn_eval_stats_f32, grid, block, c, running_mean, running_var, eps, mean,
                   invstd);
}

void host_bn_normalize(long long n, int c, long long p, int layout, const float* x,
                       const float* mean, const float* invstd, const float* gamma,
                       const float* beta, float* y, int grid, int block) {
    ODEFLOW_LAUNCH(bn_normalize_f32, grid, block, n, c, p, layout, x, mean, invstd, gamma, beta,
                   y);
}

void host_bn_backward_sums(long long n, int c, long long p, int layout, const float* x,
                           const float* gy, const float* mean, const float* invstd, double* sums,
                           float* grad_gamma, float* grad_beta, int grid, int block) {
    ODEFLOW_LAUNCH_BLOCKS(bn_backward_sums_f32, grid, block, n, c, p, layout, x, gy, mean,
                          invstd, sums, grad_gamma, grad_beta);
}

void host_bn_backward_dx(long long n, int c, long long p, int layout, const float* x,
                         const float* gy, const float* mean, const float* invstd,
                         const float* gamma, const double* sums, float* gx, int grid,
                         int block) {
    ODEFLOW_LAUNCH(bn_backward_dx_f32, grid, block, n, c, p, layout, x, gy, mean, invstd, gamma,
                   sums, gx);
}

void host_avgpool_fwd(long long n, int c, int h, int w, int kh, int kw, int layout,
                      const float* x, float* y, int grid, int block) {
    ODEFLOW_LAUNCH(avgpool_fwd_f32, grid, block, n, c, h, w, kh, kw, layout, x, y);
}

void host_avgpool_bwd(long long n, int c, int h, int w, int kh, int kw, int layout,
                      const float* gy, float* gx, int grid, int block) {
    ODEFLOW_LAUNCH(avgpool_bwd_f32, grid, block, n, c, h, w, kh, kw, layout, gy, gx);
}
}
