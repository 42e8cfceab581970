// Test-only: the device kernels compiled as host C++ (see src/cuda/kernels/host_shim.h) and
// exposed as C functions that launch them with an emulated grid, for tests/cuda_kernels.rs.
#include "host_shim.h"
#include "state.cu"
#include "nn.cu"
#include "conv.cu"

extern "C" {

void host_lincomb(long long n, float* out, const float* base, const float* const* k,
                  const float* c, int nterms, int grid, int block) {
    LincombArgs a{};
    for (int j = 0; j < nterms; ++j) {
        a.k[j] = k[j];
        a.c[j] = c[j];
    }
    a.nterms = nterms;
    ODEFLOW_LAUNCH(lincomb_f32, grid, block, n, out, base, a);
}

void host_scale(long long n, float* x, float a, int grid, int block) {
    ODEFLOW_LAUNCH(scale_f32, grid, block, n, x, a);
}

void host_axpy(long long n, float* y, float a, const float* x, int grid, int block) {
    ODEFLOW_LAUNCH(axpy_f32, grid, block, n, y, a, x);
}

double host_weighted_sq_sum(long long n, const float* err, const float* y0, const float* y1,
                            float atol, float rtol, int grid, int block) {
    double acc = 0.0;
    ODEFLOW_LAUNCH(weighted_sq_sum_f32, grid, block, n, err, y0, y1, atol, rtol, &acc);
    return acc;
}

double host_dot(long long n, const float* x, const float* y, int grid, int block) {
    double acc = 0.0;
    ODEFLOW_LAUNCH(dot_f32, grid, block, n, x, y, &acc);
    return acc;
}

unsigned long long host_first_non_finite(long long n, const float* x, int grid, int block) {
    unsigned long long first = (unsigned long long)n;
    ODEFLOW_LAUNCH(first_non_finite_f32, grid, block, n, x, &first);
    return first;
}

void host_bias_act(long long rows, int cols, float* y, const float* b, int act, int grid,
                   int block) {
    ODEFLOW_LAUNCH(bias_act_f32, grid, block, rows, cols, y, b, act);
}

void host_act_grad(long long n, float* g, const float* a, int act, int grid, int block) {
    ODEFLOW_LAUNCH(act_grad_f32, grid, block, n, g, a, act);
}

double host_mse(long long n, const float* pred, const float* target, float* grad, int grid,
                int block) {
    double loss = 0.0;
    ODEFLOW_LAUNCH(mse_f32, grid, block, n, pred, target, grad, &loss);
    return loss;
}

double host_softmax_ce(long long rows, int classes, const float* logits, const int* labels,
                       float* grad, unsigned long long* correct, int grid, int block) {
    double loss = 0.0;
    *correct = 0;
    ODEFLOW_LAUNCH(softmax_ce_f32, grid, block, rows, classes, logits, labels, grad, &loss,
                   correct);
    return loss;
}

// adam_tick then adam_graph_f32, as the training-iteration plan launches them.
void host_adam_graph(long long n, float* p, const float* g, float* m, float* v, double lr,
                     unsigned long long* t, double beta1, double beta2, float eps, float wd,
                     int grid, int block) {
    ODEFLOW_LAUNCH(adam_tick, grid, block, t);
    ODEFLOW_LAUNCH(adam_graph_f32, grid, block, n, p, g, m, v, &lr, t, beta1, beta2, eps, wd);
}

// adam_tick then sgd_graph_f32, as the training-iteration plan launches them for SGD.
void host_sgd_graph(long long n, float* p, const float* g, float* buf, double lr,
                    unsigned long long* t, float momentum, float wd, int nesterov, int grid,
                    int block) {
    ODEFLOW_LAUNCH(adam_tick, grid, block, t);
    ODEFLOW_LAUNCH(sgd_graph_f32, grid, block, n, p, g, buf, &lr, t, momentum, wd, nesterov);
}

void host_pad_cols(long long rows, int cols, int extra, const float* src, float* dst, int grid,
                   int block) {
    ODEFLOW_LAUNCH(pad_cols_f32, grid, block, rows, cols, extra, src, dst);
}

void host_copy_cols(long long rows, int src_cols, int src_off, int dst_cols, int dst_off,
                    int width, int zero_rest, const float* src, float* dst, int grid, int block) {
    ODEFLOW_LAUNCH(copy_cols_f32, grid, block, rows, src_cols, src_off, dst_cols, dst_off, width,
                   zero_rest, src, dst);
}

void host_fill_u64(long long n, unsigned long long* x, unsigned long long value, int grid,
                   int block) {
    ODEFLOW_LAUNCH(fill_u64, grid, block, n, x, value);
}

// The convolution kernels (conv.cu). ConvShape travels as its 14 fields (odeflow's
// #[repr(C)] ConvShape has the same layout, but a plain array keeps the FFI obvious).
static ConvShape conv_shape(const long long* st, const int* g) {
    ConvShape s{};
    s.sn = st[0];
    s.sc = st[1];
    s.n = g[0];
    s.c = g[1];
    s.h = g[2];
    s.w = g[3];
    s.kh = g[4];
    s.kw = g[5];
    s.sh = g[6];
    s.sw = g[7];
    s.ph = g[8];
    s.pw = g[9];
    s.ho = g[10];
    s.wo = g[11];
    return s;
}

void host_im2col(const long long* st, const int* g, const float* x, float* col, int grid,
                 int block) {
    ConvShape s = conv_shape(st, g);
    ODEFLOW_LAUNCH(im2col_f32, grid, block, s, x, col);
}

void host_col2im(const long long* st, const int* g, const float* col, float* x, int accumulate,
                 int grid, int block) {
    ConvShape s = conv_shape(st, g);
    ODEFLOW_LAUNCH(col2im_f32, grid, block, s, col, x, accumulate);
}

void host_bias_act_nchw(long long n, int c, long long p, float* y, const float* b, int act,
                        int grid, int block) {
    ODEFLOW_LAUNCH(bias_act_nchw_f32, grid, block, n, c, p, y, b, act);
}

// channel_partial_sums_f32 then add_channel_sums_f32, as the plan launches them.
void host_bias_grad(long long n, int c, long long p, int chunks, const float* g, double* partial,
                    float* gb, int grid, int block) {
    ODEFLOW_LAUNCH(channel_partial_sums_f32, grid, block, n, c, p, chunks, g, partial);
    ODEFLOW_LAUNCH(add_channel_sums_f32, grid, block, c, chunks, partial, gb);
}

void host_swap_outer(long long a, long long b, long long p, const float* src, float* dst,
                     int grid, int block) {
    ODEFLOW_LAUNCH(swap_outer_f32, grid, block, a, b, p, src, dst);
}
}
