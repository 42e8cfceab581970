// Kernels of the device batch normalisation and average pooling (odeflow::cuda::CudaBatchNorm,
// odeflow::cuda::CudaAvgPool, f32): the non-convolutional pieces of the TinyResNet of Sander,
// Ablin, Blondel & Peyré, "Do Residual Neural Networks discretize Neural Ordinary Differential
// Equations?" (NeurIPS 2022). The residual update x ← x + s·f of a block is axpy_f32 and
// Heun's combination lincomb_f32 (state.cu); nothing here duplicates them.
//
// Batch normalisation (Ioffe & Szegedy, ICML 2015), per channel c over its M = N·P values
// (N samples, P = H·W positions), exactly as odeflow::nn::batchnorm:
//   train:  μ = Σx/M,  σ² = Σ(x − μ)²/M (biased),  x̂ = (x − μ)/√(σ² + ε),  y = γ x̂ + β;
//           running r ← (1 − m) r + m s with the batch mean and the unbiased σ² M/(M − 1)
//           (σ² itself when M = 1);
//   eval:   μ, σ² the running statistics, y = γ x̂ + β (affine per channel);
//   VJP:    train ∂x = γ/√(σ² + ε) · (∂y − mean(∂y) − x̂ · mean(∂y ⊙ x̂)),
//           eval  ∂x = γ/√(σ² + ε) · ∂y;  both ∂γ += Σ ∂y ⊙ x̂, ∂β += Σ ∂y.
// What the forward pass saves for the backward pass is (μ, 1/√(σ² + ε)) per channel, as the
// CPU layer's aux; x̂ is recomputed from the layer's input.
//
// Layout: `layout` 0 is NCHW (PyTorch: (n·C + c)·P + p), 1 is channels-last NHWC
// ((n·P + p)·C + c, the CPU layers' internal order).
//
// The per-channel reductions are deterministic: one block per channel (grid-stride over the
// channels when the grid is smaller), each thread sums its strided share in double, and the
// block finishes with a shared-memory tree reduction — no atomics, so the bits do not depend
// on scheduling. Their block size must be a power of two ≤ ODEFLOW_NORM_MAX_BLOCK, and every
// thread of a block reaches every barrier (no early return). The elementwise kernels are
// grid-stride loops as in state.cu.
//
// Compiled by NVRTC at run time and, in the tests, by the host C++ compiler with
// `host_shim.h`, whose ODEFLOW_LAUNCH_BLOCKS runs the threads of a block concurrently with a
// real barrier for __syncthreads (the reductions), and ODEFLOW_LAUNCH the rest.

#define ODEFLOW_GRID_STRIDE(i, n)                                                    \
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (n);    \
         i += (long long)blockDim.x * gridDim.x)

// Threads per block of the per-channel reductions, at most (odeflow::cuda::norm_plan).
#define ODEFLOW_NORM_MAX_BLOCK 256

// Offset of value i ∈ [0, M) of channel c, i = n·P + p.
__device__ inline long long odeflow_norm_at(long long i, int c, int channels, long long p,
                                            int layout) {
    long long s = i / p, q = i % p;
    return layout ? (s * p + q) * channels + c : (s * channels + c) * p + q;
}

// The channel of flat offset j.
__device__ inline int odeflow_norm_channel(long long j, int channels, long long p, int layout) {
    return layout ? (int)(j % channels) : (int)((j / p) % channels);
}

// Σ over the block of each thread's v (every thread gets the total; buf holds blockDim.x
// doubles). A fixed tree, so the result does not depend on thread timing.
__device__ inline double odeflow_block_sum(double v, double* buf) {
    unsigned t = threadIdx.x;
    buf[t] = v;
    __syncthreads();
    for (unsigned w = blockDim.x / 2; w > 0; w /= 2) {
        if (t < w) buf[t] += buf[t + w];
        __syncthreads();
    }
    double total = buf[0];
    __syncthreads();  // everyone has read buf[0] before it is reused
    return total;
}

// Train-mode statistics, one block per channel: mean[c] = μ, invstd[c] = 1/√(σ² + ε) (in
// double, rounded once), and the running-statistics update (skipped when running_mean is
// null). Two passes over the channel (Σx, then Σ(x − μ)²), all in double. An empty batch
// (M = 0) gives μ = 0, 1/√(σ² + ε) = 1 and leaves the running statistics, as the CPU layer.
extern "C" __global__ void bn_stats_f32(long long n, int channels, long long p, int layout,
                                        const float* x, double eps, double momentum,
                                        float* running_mean, float* running_var, float* mean,
                                        float* invstd) {
    __shared__ double buf[ODEFLOW_NORM_MAX_BLOCK];
    long long m = n * p;
    for (int c = blockIdx.x; c < channels; c += gridDim.x) {
        double s = 0.0;
        for (long long i = threadIdx.x; i < m; i += blockDim.x)
            s += (double)x[odeflow_norm_at(i, c, channels, p, layout)];
        double total = odeflow_block_sum(s, buf);
        double mu = m > 0 ? total / (double)m : 0.0;
        double s2 = 0.0;
        for (long long i = threadIdx.x; i < m; i += blockDim.x) {
            double d = (double)x[odeflow_norm_at(i, c, channels, p, layout)] - mu;
            s2 += d * d;
        }
        double ss = odeflow_block_sum(s2, buf);
        if (threadIdx.x == 0) {
            if (m == 0) {
                mean[c] = 0.0f;
                invstd[c] = 1.0f;
            } else {
                double var = ss / (double)m;
                mean[c] = (float)mu;
                invstd[c] = (float)(1.0 / sqrt(var + eps));
                if (running_mean) {
                    double unbias = m > 1 ? (double)m / (double)(m - 1) : 1.0;
                    running_mean[c] =
                        (float)((1.0 - momentum) * (double)running_mean[c] + momentum * mu);
                    running_var[c] = (float)((1.0 - momentum) * (double)running_var[c] +
                                             momentum * var * unbias);
                }
            }
        }
    }
}

// Eval-mode statistics: mean[c] = running_mean[c], invstd[c] = 1/√(running_var[c] + ε).
extern "C" __global__ void bn_eval_stats_f32(int channels, const float* running_mean,
                                             const float* running_var, double eps, float* mean,
                                             float* invstd) {
    ODEFLOW_GRID_STRIDE(c, channels) {
        mean[c] = running_mean[c];
        invstd[c] = (float)(1.0 / sqrt((double)running_var[c] + eps));
    }
}

// y = γ x̂ + β with x̂ = (x − μ)·invstd (γ = 1 when gamma is null, β = 0 when beta is null).
// y may equal x.
extern "C" __global__ void bn_normalize_f32(long long n, int channels, long long p, int layout,
                                            const float* x, const float* mean,
                                            const float* invstd, const float* gamma,
                                            const float* beta, float* y) {
    ODEFLOW_GRID_STRIDE(j, n * channels * p) {
        int c = odeflow_norm_channel(j, channels, p, layout);
        float xh = (x[j] - mean[c]) * invstd[c];
        float g = gamma ? gamma[c] : 1.0f;
        float b = beta ? beta[c] : 0.0f;
        y[j] = g * xh + b;
    }
}

// Backward sums, one block per channel: sums[c] = Σ ∂y, sums[C + c] = Σ ∂y ⊙ x̂ (double, the
// same fixed tree), and, when grad_gamma is not null, ∂γ[c] += Σ ∂y ⊙ x̂, ∂β[c] += Σ ∂y.
extern "C" __global__ void bn_backward_sums_f32(long long n, int channels, long long p,
                                                int layout, const float* x, const float* gy,
                                                const float* mean, const float* invstd,
                                                double* sums, float* grad_gamma,
                                                float* grad_beta) {
    __shared__ double buf[ODEFLOW_NORM_MAX_BLOCK];
    long long m = n * p;
    for (int c = blockIdx.x; c < channels; c += gridDim.x) {
        double mu = (double)mean[c], is = (double)invstd[c];
        double sg = 0.0, sgx = 0.0;
        for (long long i = threadIdx.x; i < m; i += blockDim.x) {
            long long at = odeflow_norm_at(i, c, channels, p, layout);
            double g = (double)gy[at];
            sg += g;
            sgx += g * (((double)x[at] - mu) * is);
        }
        sg = odeflow_block_sum(sg, buf);
        sgx = odeflow_block_sum(sgx, buf);
        if (threadIdx.x == 0) {
            sums[c] = sg;
            sums[channels + c] = sgx;
            if (grad_gamma) {
                grad_gamma[c] += (float)sgx;
                grad_beta[c] += (float)sg;
            }
        }
    }
}

// ∂x (overwritten): with sums from bn_backward_sums_f32 (train mode)
//   ∂x = γ·invstd · (∂y − Σ∂y/M − x̂ · Σ(∂y ⊙ x̂)/M),
// in double per element (the bracket cancels to a zero channel mean); with sums null (eval
// mode) ∂x = γ·invstd·∂y. γ = 1 when gamma is null.
extern "C" __global__ void bn_backward_dx_f32(long long n, int channels, long long p,
                                              int layout, const float* x, const float* gy,
                                              const float* mean, const float* invstd,
                                              const float* gamma, const double* sums,
                                              float* gx) {
    double inv_m = 1.0 / (double)(n * p > 0 ? n * p : 1);
    ODEFLOW_GRID_STRIDE(j, n * channels * p) {
        int c = odeflow_norm_channel(j, channels, p, layout);
        double is = (double)invstd[c];
        double scale = (gamma ? (double)gamma[c] : 1.0) * is;
        double g = (double)gy[j];
        if (sums) {
            double xh = ((double)x[j] - (double)mean[c]) * is;
            g = g - sums[c] * inv_m - xh * (sums[channels + c] * inv_m);
        }
        gx[j] = (float)(scale * g);
    }
}

// Offset of pixel (s, c, i, j) of an H × W image batch.
__device__ inline long long odeflow_pix(long long s, int c, int i, int j, int channels, int h,
                                        int w, int layout) {
    return layout ? ((s * h + i) * w + j) * channels + c : ((s * channels + c) * h + i) * w + j;
}

// Average pooling, window kh × kw, stride (kh, kw), no padding, floor mode (PyTorch's
// F.avg_pool2d(x, (kh, kw)), odeflow::nn::pool): output ⌊H/kh⌋ × ⌊W/kw⌋,
//   y[s, c, i, j] = (1/(kh·kw)) Σ_{a<kh, b<kw} x[s, c, kh·i + a, kw·j + b],
// summed in f32 in the window's row-major order and then scaled, as the CPU layer.
extern "C" __global__ void avgpool_fwd_f32(long long n, int channels, int h, int w, int kh,
                                           int kw, int layout, const float* x, float* y) {
    int ho = h / kh, wo = w / kw;
    float scale = (float)(1.0 / (double)(kh * kw));
    ODEFLOW_GRID_STRIDE(o, n * channels * ho * wo) {
        long long s;
        int c, i, j;
        if (layout) {
            c = (int)(o % channels);
            long long r = o / channels;
            j = (int)(r % wo);
            r /= wo;
            i = (int)(r % ho);
            s = r / ho;
        } else {
            j = (int)(o % wo);
            long long r = o / wo;
            i = (int)(r % ho);
            r /= ho;
            c = (int)(r % channels);
            s = r / channels;
        }
        float acc = 0.0f;
        for (int a = 0; a < kh; ++a)
            for (int b = 0; b < kw; ++b)
                acc += x[odeflow_pix(s, c, kh * i + a, kw * j + b, channels, h, w, layout)];
        y[o] = acc * scale;
    }
}

// Its VJP (∂x overwritten): ∂x[s, c, kh·i + a, kw·j + b] = ∂y[s, c, i, j]/(kh·kw), and 0 at
// the rows and columns past the last whole window.
extern "C" __global__ void avgpool_bwd_f32(long long n, int channels, int h, int w, int kh,
                                           int kw, int layout, const float* gy, float* gx) {
    int ho = h / kh, wo = w / kw;
    float scale = (float)(1.0 / (double)(kh * kw));
    ODEFLOW_GRID_STRIDE(q, n * channels * h * w) {
        long long s;
        int c, i, j;
        if (layout) {
            c = (int)(q % channels);
            long long r = q / channels;
            j = (int)(r % w);
            r /= w;
            i = (int)(r % h);
            s = r / h;
        } else {
            j = (int)(q % w);
            long long r = q / w;
            i = (int)(r % h);
            r /= h;
            c = (int)(r % channels);
            s = r / channels;
        }
        if (i < ho * kh && j < wo * kw) {
            gx[q] = gy[odeflow_pix(s, c, i / kh, j / kw, channels, ho, wo, layout)] * scale;
        } else {
            gx[q] = 0.0f;
        }
    }
}
