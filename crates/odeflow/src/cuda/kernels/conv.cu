// Kernels of the device convolutional fields (odeflow::cuda::CudaConvField, f32: Ott et al.'s
// simple_odenet and odenet) around the cuBLAS GEMMs.
//
// A convolution is im2col + one cuBLAS SGEMM (not cuDNN, not an implicit GEMM): the patch
// gather and its adjoint are plain kernels whose arithmetic is tested on the CPU by compiling
// this file as host C++ (host_shim.h, tests/cuda_kernels/conv.rs), and the GEMM is the one
// the MLP field already uses. The launch plan (odeflow::cuda::conv_plan) decides which kernel
// and GEMM runs on which buffer.
//
// Tensors are 4-D (n, c, h, w) with w contiguous, h·W + w the spatial offset and free strides
// for n and c: NCHW has (sn, sc) = (C·H·W, H·W), the plan's channel-major CNHW has
// (sn, sc) = (H·W, N·H·W). A 1-D convolution is the 2-D one with H = 1 and a 1 × k kernel.
// Convolution is cross-correlation, as in PyTorch: output (oh, ow) reads input
// (oh·sh − ph + i, ow·sw − pw + j) for tap (i, j), zero outside the input.
//
// Same rules as state.cu (the host shim runs threads one after another): grid-stride loops,
// no shared memory, no barriers, no warp intrinsics. Every kernel here is also deterministic:
// no atomics; the bias gradient is two launches (per-chunk partial sums in double, then one
// thread per channel adding its chunks in order) instead of a shared-memory tree.

#define ODEFLOW_GRID_STRIDE(i, n)                                                    \
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (n);    \
         i += (long long)blockDim.x * gridDim.x)

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

// The geometry of one im2col / col2im launch, passed by value (odeflow::cuda::conv_plan::
// ConvShape, #[repr(C)]): input (n, c, h, w) with strides sn, sc; kernel kh × kw, stride
// (sh, sw), zero padding (ph, pw); output ho × wo.
struct ConvShape {
    long long sn, sc;
    int n, c, h, w;
    int kh, kw, sh, sw, ph, pw;
    int ho, wo;
};

// col[(c·kh + i)·kw + j, n·Ho·Wo + oh·Wo + ow] = x[n, c, oh·sh − ph + i, ow·sw − pw + j]
// (zero outside the input): the row-major (C·kh·kw) × (N·Ho·Wo) patch matrix, i.e. in
// cuBLAS's column-major terms an (N·Ho·Wo) × (C·kh·kw) matrix with leading dimension
// N·Ho·Wo whose product with the weight W[co, c, i, j] (column-major (C·kh·kw) × C_out) is
// the convolution, channel-major. One thread per patch entry.
extern "C" __global__ void im2col_f32(ConvShape s, const float* x, float* col) {
    long long po = (long long)s.ho * s.wo;
    long long cols = (long long)s.n * po;
    long long total = (long long)s.c * s.kh * s.kw * cols;
    ODEFLOW_GRID_STRIDE(idx, total) {
        long long r = idx / cols;
        long long q = idx % cols;
        int j = (int)(r % s.kw);
        int i = (int)((r / s.kw) % s.kh);
        int c = (int)(r / ((long long)s.kw * s.kh));
        long long n = q / po;
        int o = (int)(q % po);
        int ih = (o / s.wo) * s.sh - s.ph + i;
        int iw = (o % s.wo) * s.sw - s.pw + j;
        bool inside = ih >= 0 && ih < s.h && iw >= 0 && iw < s.w;
        col[idx] = inside ? x[n * s.sn + c * s.sc + (long long)ih * s.w + iw] : 0.0f;
    }
}

// gx[n, c, h, w] = (accumulate ? gx[n, c, h, w] : 0) + Σ_{i, j} gcol[(c·kh + i)·kw + j,
// n·Ho·Wo + oh·Wo + ow] over the taps with oh·sh − ph + i = h and ow·sw − pw + j = w: the
// adjoint of im2col_f32 (⟨col2im(g), x⟩ = ⟨g, im2col(x)⟩), i.e. the input gradient of the
// convolution from the patch gradient. Written as a gather, one thread per input element
// summing its taps in the fixed order (i, j) ascending: no atomics, deterministic.
extern "C" __global__ void col2im_f32(ConvShape s, const float* gcol, float* gx, int accumulate) {
    long long p = (long long)s.h * s.w;
    long long po = (long long)s.ho * s.wo;
    long long cols = (long long)s.n * po;
    long long total = (long long)s.n * s.c * p;
    ODEFLOW_GRID_STRIDE(idx, total) {
        int w = (int)(idx % s.w);
        int h = (int)((idx / s.w) % s.h);
        int c = (int)((idx / p) % s.c);
        long long n = idx / (p * s.c);
        float acc = 0.0f;
        for (int i = 0; i < s.kh; ++i) {
            int th = h + s.ph - i;  // = oh·sh
            if (th < 0 || th % s.sh != 0 || th / s.sh >= s.ho) continue;
            int oh = th / s.sh;
            for (int j = 0; j < s.kw; ++j) {
                int tw = w + s.pw - j;  // = ow·sw
                if (tw < 0 || tw % s.sw != 0 || tw / s.sw >= s.wo) continue;
                int ow = tw / s.sw;
                long long r = ((long long)c * s.kh + i) * s.kw + j;
                acc += gcol[r * cols + n * po + (long long)oh * s.wo + ow];
            }
        }
        float* dst = gx + n * s.sn + (long long)c * s.sc + (long long)h * s.w + w;
        *dst = accumulate ? *dst + acc : acc;
    }
}

// y[n, c, p] = σ(y[n, c, p] + b[c]) on an n × c × p buffer (NCHW with p = H·W; the plan's
// channel-major tensors are n = 1, p = N·H·W).
extern "C" __global__ void bias_act_nchw_f32(long long n, int c, long long p, float* y,
                                             const float* b, int act) {
    ODEFLOW_GRID_STRIDE(i, n * c * p) {
        int ch = (int)((i / p) % c);
        y[i] = odeflow_act(act, y[i] + b[ch]);
    }
}

// First half of the bias gradient ∂b[c] += Σ_{n, p} g[n, c, p]: the m = n·p terms of each
// channel, in the order (n, p), are cut into `chunks` consecutive ranges
// [k·m/chunks, (k+1)·m/chunks); partial[c·chunks + k] = the sum of range k, in double. One
// thread per (channel, chunk).
extern "C" __global__ void channel_partial_sums_f32(long long n, int c, long long p, int chunks,
                                                    const float* g, double* partial) {
    long long m = n * p;
    ODEFLOW_GRID_STRIDE(t, (long long)c * chunks) {
        int ch = (int)(t / chunks);
        long long k = t % chunks;
        long long lo = k * m / chunks, hi = (k + 1) * m / chunks;
        double s = 0.0;
        for (long long q = lo; q < hi; ++q) {
            long long ni = q / p;
            s += (double)g[(ni * c + ch) * p + q % p];
        }
        partial[t] = s;
    }
}

// Second half: gb[c] += f32(Σ_k partial[c·chunks + k]), k ascending. One thread per channel.
extern "C" __global__ void add_channel_sums_f32(int c, int chunks, const double* partial,
                                                float* gb) {
    ODEFLOW_GRID_STRIDE(ch, (long long)c) {
        double s = 0.0;
        for (int k = 0; k < chunks; ++k) s += partial[ch * chunks + k];
        gb[ch] += (float)s;
    }
}

// dst[j, i, q] = src[i, j, q] for src of a × b × p: swaps the two outer axes, NCHW (a = N,
// b = C) ↔ channel-major CNHW (a = C, b = N) with p = H·W. One thread per element.
extern "C" __global__ void swap_outer_f32(long long a, long long b, long long p,
                                          const float* src, float* dst) {
    ODEFLOW_GRID_STRIDE(idx, a * b * p) {
        long long q = idx % p;
        long long i = (idx / p) % a;
        long long j = idx / (p * a);
        dst[idx] = src[(i * b + j) * p + q];
    }
}
