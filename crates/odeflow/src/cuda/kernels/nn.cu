// Kernels of the device MLP field (odeflow::cuda::CudaMlp, f32) around the cuBLAS GEMMs:
// the fused bias + activation of the forward pass, the activation derivative of the VJP,
// the mean-squared-error loss and Adam.
//
// Compiled by NVRTC at run time and, in the tests, by the host C++ compiler with
// `host_shim.h` (see state.cu for the rules the shim imposes).

#define ODEFLOW_GRID_STRIDE(i, n)                                                    \
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (n);    \
         i += (long long)blockDim.x * gridDim.x)

// IEEE infinity and quiet NaN (NVRTC has no math.h macros).
#define ODEFLOW_INF __int_as_float(0x7f800000)
#define ODEFLOW_NAN __int_as_float(0x7fc00000)

// BEGIN ODEFLOW ACTIVATIONS (same text in nn.cu and conv.cu; tests/cuda_plan.rs checks)
#ifndef ODEFLOW_ACTIVATIONS
#define ODEFLOW_ACTIVATIONS

// Activation codes (odeflow::cuda::plan::Act).
#define ODEFLOW_ACT_IDENTITY 0
#define ODEFLOW_ACT_TANH 1
#define ODEFLOW_ACT_RELU 2

__device__ inline float odeflow_act(int act, float z) {
    switch (act) {
        case ODEFLOW_ACT_TANH: return tanhf(z);
        case ODEFLOW_ACT_RELU: return z > 0.0f ? z : 0.0f;
        default: return z;
    }
}

// σ'(z) written through the output a = σ(z): tanh' = 1 − a², relu' = [a > 0].
__device__ inline float odeflow_act_grad(int act, float a) {
    switch (act) {
        case ODEFLOW_ACT_TANH: return 1.0f - a * a;
        case ODEFLOW_ACT_RELU: return a > 0.0f ? 1.0f : 0.0f;
        default: return 1.0f;
    }
}

#endif
// END ODEFLOW ACTIVATIONS

// y[r, c] = σ(y[r, c] + b[c]) for a row-major rows × cols batch (the GEMM's output Y = X Wᵀ).
extern "C" __global__ void bias_act_f32(long long rows, int cols, float* y, const float* b,
                                        int act) {
    ODEFLOW_GRID_STRIDE(i, rows * cols) {
        int c = (int)(i % cols);
        y[i] = odeflow_act(act, y[i] + b[c]);
    }
}

// g = g ⊙ σ'(z), with a = σ(z) the saved activation: the VJP through the activation.
extern "C" __global__ void act_grad_f32(long long n, float* g, const float* a, int act) {
    ODEFLOW_GRID_STRIDE(i, n) { g[i] *= odeflow_act_grad(act, a[i]); }
}

// grad = 2 (pred − target) / n and *loss += Σ (pred − target)² / n (in double): the mean
// squared error over all n components and its gradient. *loss must be zeroed.
extern "C" __global__ void mse_f32(long long n, const float* pred, const float* target,
                                   float* grad, double* loss) {
    double s = 0.0;
    double scale = 1.0 / (double)n;
    ODEFLOW_GRID_STRIDE(i, n) {
        double d = (double)pred[i] - (double)target[i];
        s += d * d;
        grad[i] = (float)(2.0 * d * scale);
    }
    if (s != 0.0) atomicAdd(loss, s * scale);
}

// Mean softmax cross-entropy over `rows` samples of `classes` logits (row-major), as
// odeflow::nn::loss::softmax_cross_entropy, in double per row:
//   m = maxₖ zₖ,  lse = m + log Σₖ exp(zₖ − m),  ℓ = lse − z_y,
//   ∂L/∂zₖ = exp(zₖ − lse)/N − [k = y]/N   (the [k = y]/N subtracted in f32, as the CPU).
// *loss += Σ ℓ / N and *correct += #{argmax z = y} (first index on ties, as
// odeflow::nn::loss::accuracy); both must be zeroed. One thread per row (grid-stride); a label
// outside [0, classes) adds NaN to the loss and leaves its row's gradient at NaN.
extern "C" __global__ void softmax_ce_f32(long long rows, int classes, const float* logits,
                                          const int* labels, float* grad, double* loss,
                                          unsigned long long* correct) {
    double s = 0.0;
    unsigned long long hits = 0;
    double inv_n = 1.0 / (double)rows;
    ODEFLOW_GRID_STRIDE(r, rows) {
        const float* z = logits + r * classes;
        float* g = grad + r * classes;
        int y = labels[r];
        if (y < 0 || y >= classes) {
            for (int k = 0; k < classes; ++k) g[k] = ODEFLOW_NAN;
            s += (double)ODEFLOW_NAN;
            continue;
        }
        double m = -(double)ODEFLOW_INF;
        int best = 0;
        float best_v = -ODEFLOW_INF;
        for (int k = 0; k < classes; ++k) {
            m = fmax(m, (double)z[k]);
            if (z[k] > best_v) {
                best_v = z[k];
                best = k;
            }
        }
        double sum = 0.0;
        for (int k = 0; k < classes; ++k) sum += exp((double)z[k] - m);
        double lse = m + log(sum);
        s += lse - (double)z[y];
        for (int k = 0; k < classes; ++k) g[k] = (float)(exp((double)z[k] - lse) * inv_n);
        g[y] = g[y] - (float)inv_n;
        hits += (best == y);
    }
    if (s != 0.0) atomicAdd(loss, s * inv_n);
    if (hits != 0) atomicAdd(correct, hits);
}

// Rust's f64::powi(a, b) for b ≥ 0 as LLVM lowers it (compiler-rt's __powidf2: square and
// multiply from the low bit), so that the bias corrections are the CPU's to the last bit.
__device__ inline double odeflow_powi(double a, long long b) {
    double r = 1.0;
    while (true) {
        if (b & 1) r *= a;
        b /= 2;
        if (b == 0) break;
        a *= a;
    }
    return r;
}

// Adam's step count on the device: *t += 1, one thread. Launched right before adam_graph_f32
// in a captured iteration, so that every replay takes the next step.
extern "C" __global__ void adam_tick(unsigned long long* t) {
    if (blockIdx.x == 0 && threadIdx.x == 0) *t += 1;
}

// One Adam step whose step count and learning rate live on the device, so that a captured
// CUDA graph replays correct steps: *t the step count including this step (adam_tick), *lr
// the learning rate (f64, written by the host before a replay). As odeflow::train::Optimizer:
//   step = f32(lr / (1 − β1ᵗ)),  c2s = f32(√(1 − β2ᵗ))   (in double, β as f64),
//   g = grad + wd·p;  m ← β1 m + (1−β1) g;  v ← β2 v + (1−β2) g g;  p ← p − step·m / (√v/c2s + ε)
// in f32 with every product rounded before its sum (__fmul_rn: no FMA contraction, as the
// CPU), so the device gives the CPU optimizer's bits.
extern "C" __global__ void adam_graph_f32(long long n, float* p, const float* grad, float* m,
                                          float* v, const double* lr,
                                          const unsigned long long* t, double beta1,
                                          double beta2, float eps, float wd) {
    long long step_t = (long long)*t;
    double c1 = 1.0 - odeflow_powi(beta1, step_t);
    double c2 = 1.0 - odeflow_powi(beta2, step_t);
    float step = (float)(*lr / c1);
    float c2s = (float)sqrt(c2);
    float b1 = (float)beta1, b2 = (float)beta2;
    ODEFLOW_GRID_STRIDE(i, n) {
        float g = __fadd_rn(grad[i], __fmul_rn(wd, p[i]));
        float mi = __fadd_rn(__fmul_rn(b1, m[i]), __fmul_rn(1.0f - b1, g));
        float vi = __fadd_rn(__fmul_rn(b2, v[i]), __fmul_rn(__fmul_rn(1.0f - b2, g), g));
        m[i] = mi;
        v[i] = vi;
        p[i] -= __fmul_rn(step, mi) / (sqrtf(vi) / c2s + eps);
    }
}

// One step of SGD with momentum (PyTorch's torch.optim.SGD, odeflow::train::Optimizer) whose
// step count and learning rate live on the device, for a captured iteration: *t the step
// count including this step (adam_tick), *lr the learning rate (f64, written by the host
// before a replay). In f32, every product rounded before its sum (no FMA contraction, as the
// CPU):
//   g = grad + wd·p;  if μ > 0: buf ← (t = 1 ? g : μ buf + g),  g ← nesterov ? g + μ buf : buf;
//   p ← p − f32(lr)·g
extern "C" __global__ void sgd_graph_f32(long long n, float* p, const float* grad, float* buf,
                                         const double* lr, const unsigned long long* t,
                                         float momentum, float wd, int nesterov) {
    float l = (float)*lr;
    int first = *t == 1ull;
    ODEFLOW_GRID_STRIDE(i, n) {
        float g = __fadd_rn(grad[i], __fmul_rn(wd, p[i]));
        if (momentum > 0.0f) {
            float b = first ? g : __fadd_rn(__fmul_rn(momentum, buf[i]), g);
            buf[i] = b;
            g = nesterov ? __fadd_rn(g, __fmul_rn(momentum, b)) : b;
        }
        p[i] = __fsub_rn(p[i], __fmul_rn(l, g));
    }
}

// dst[r, c] = c < cols ? src[r, c] : 0 for a rows × (cols + extra) destination: the ANODE
// augmentation z₀ = [x, 0] of the classifier's input, into its fixed device buffer.
extern "C" __global__ void pad_cols_f32(long long rows, int cols, int extra, const float* src,
                                        float* dst) {
    long long w = cols + extra;
    ODEFLOW_GRID_STRIDE(i, rows * w) {
        long long r = i / w;
        int c = (int)(i % w);
        dst[i] = c < cols ? src[r * cols + c] : 0.0f;
    }
}

// A block of columns between row-major matrices: for each row r and destination column
// c < dst_cols, dst[r, c] = src[r, src_off + c − dst_off] when dst_off ≤ c < dst_off + width,
// else 0 when zero_rest (otherwise left as it is). Extracts the momenta or positions of a
// batch of states (p, q), and places a half field's output into a full one with zeros beside.
extern "C" __global__ void copy_cols_f32(long long rows, int src_cols, int src_off, int dst_cols,
                                         int dst_off, int width, int zero_rest, const float* src,
                                         float* dst) {
    ODEFLOW_GRID_STRIDE(i, rows * dst_cols) {
        long long r = i / dst_cols;
        int c = (int)(i % dst_cols);
        if (c >= dst_off && c < dst_off + width) {
            dst[i] = src[r * src_cols + src_off + (c - dst_off)];
        } else if (zero_rest) {
            dst[i] = 0.0f;
        }
    }
}

// x[i] = value for i < n (resets a device counter or index inside a captured graph).
extern "C" __global__ void fill_u64(long long n, unsigned long long* x,
                                    unsigned long long value) {
    ODEFLOW_GRID_STRIDE(i, n) { x[i] = value; }
}
