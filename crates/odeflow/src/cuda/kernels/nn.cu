// Kernels of the device MLP field (odeflow::cuda::CudaMlp, f32) around the cuBLAS GEMMs:
// the fused bias + activation of the forward pass, the activation derivative of the VJP,
// the mean-squared-error loss and Adam.
//
// Compiled by NVRTC at run time and, in the tests, by the host C++ compiler with
// `host_shim.h` (see state.cu for the rules the shim imposes).

#define ODEFLOW_GRID_STRIDE(i, n)                                                    \
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (n);    \
         i += (long long)blockDim.x * gridDim.x)

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

// One Adam step (Kingma & Ba 2015, PyTorch's conventions, as odeflow::train::Optimizer):
// g = grad + wd·p; m = β1 m + (1−β1) g; v = β2 v + (1−β2) g²; p −= step · m / (√v / c2s + ε),
// with step = lr / (1 − β1ᵗ) and c2s = √(1 − β2ᵗ) computed on the host.
extern "C" __global__ void adam_f32(long long n, float* p, const float* grad, float* m, float* v,
                                    float b1, float b2, float step, float c2s, float eps,
                                    float wd) {
    ODEFLOW_GRID_STRIDE(i, n) {
        float g = grad[i] + wd * p[i];
        m[i] = b1 * m[i] + (1.0f - b1) * g;
        v[i] = b2 * v[i] + (1.0f - b2) * g * g;
        p[i] -= step * m[i] / (sqrtf(v[i]) / c2s + eps);
    }
}
