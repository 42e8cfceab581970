//! Launch plans: which kernel or cuBLAS call runs, on which buffers, with which arguments —
//! decided here without the driver, so that the plans are unit-tested on a machine with no
//! GPU (by executing them with reference CPU arithmetic against the CPU layers:
//! `tests/cuda_plan.rs`).
//!
//! * [`lincomb_plan`]: the Runge–Kutta stage combination `Yᵢ = y + h Σⱼ aᵢⱼ kⱼ` as one fused
//!   `lincomb_f32` launch (up to [`MAX_TERMS`] nonzero terms; longer sums continue in place).
//! * [`MlpLayout`]: the MLP field `dims[0] → … → dims[L]` as cuBLAS GEMMs (column-major, on
//!   row-major PyTorch-layout buffers) and fused bias/activation kernels, forward and VJP.

use crate::nn::Activation;

/// Nonzero terms of one `lincomb_f32` launch (`ODEFLOW_MAX_TERMS` in `kernels/state.cu`).
pub const MAX_TERMS: usize = 8;

/// Threads per block of the elementwise kernels.
pub const BLOCK: u32 = 256;

/// Most blocks of one elementwise launch (the kernels loop over the rest, grid-stride).
pub const MAX_BLOCKS: u32 = 1024;

/// `(blocks, threads per block)` of an elementwise launch over `n` components: enough
/// blocks to give each thread one component, at most [`MAX_BLOCKS`], at least one.
pub fn grid_1d(n: usize) -> (u32, u32) {
    let blocks = n.div_ceil(BLOCK as usize).clamp(1, MAX_BLOCKS as usize);
    (blocks as u32, BLOCK)
}

/// One `lincomb_f32` launch: `out ← (base or out) + Σ c·terms[idx]`.
#[derive(Debug, Clone, PartialEq)]
pub struct LincombLaunch {
    /// Read the base state (the first launch) or continue from `out` (later launches).
    pub from_base: bool,
    /// `(index into the caller's terms, coefficient)`, at most [`MAX_TERMS`].
    pub terms: Vec<(usize, f32)>,
}

/// The launches of `out ← base + Σⱼ coeffs[j] · terms[j]`: zero coefficients are skipped,
/// the rest go [`MAX_TERMS`] at a time, so every explicit tableau of up to eight stages
/// (dopri5's seven included) is one launch per stage. With no nonzero term the single
/// launch copies `base`.
pub fn lincomb_plan(coeffs: &[f32]) -> Vec<LincombLaunch> {
    let nonzero: Vec<(usize, f32)> = coeffs
        .iter()
        .copied()
        .enumerate()
        .filter(|&(_, c)| c != 0.0)
        .collect();
    if nonzero.is_empty() {
        return vec![LincombLaunch {
            from_base: true,
            terms: Vec::new(),
        }];
    }
    nonzero
        .chunks(MAX_TERMS)
        .enumerate()
        .map(|(i, chunk)| LincombLaunch {
            from_base: i == 0,
            terms: chunk.to_vec(),
        })
        .collect()
}

/// The activation code of `nn.cu` (`ODEFLOW_ACT_*`), or `None` for an activation that has
/// no device kernel yet.
pub fn act_code(act: Option<Activation>) -> Option<i32> {
    match act {
        None => Some(0),
        Some(Activation::Tanh) => Some(1),
        Some(Activation::Relu) => Some(2),
        Some(_) => None,
    }
}

/// A buffer an MLP operation reads or writes. Layers are numbered `1..=L`; `a_l` is the
/// output of layer `l` (after its activation), `a_0` the input and `a_L` the field value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mat {
    /// The input state `y` (`rows × dims[0]`); in the VJP, the taped copy of it.
    Input,
    /// `a_l`, `1 ≤ l < L` (hidden activations: scratch, or the tape in a VJP).
    Act(usize),
    /// `a_L = f(y)`: the output state.
    Output,
    /// `W_l` (`dims[l] × dims[l−1]`, row-major) inside the parameter buffer.
    Weight(usize),
    /// `b_l` inside the parameter buffer.
    Bias(usize),
    /// The cotangent `v` of the output (read only).
    Cotangent,
    /// `∂L/∂a_l`, `1 ≤ l < L` (scratch).
    Grad(usize),
    /// `vᵀ ∂f/∂y`: the input gradient (overwritten).
    GradInput,
    /// `∂L/∂W_l` inside the parameter gradient (accumulated).
    GradWeight(usize),
    /// `∂L/∂b_l` inside the parameter gradient (accumulated).
    GradBias(usize),
    /// A vector of `rows` ones (column sums by GEMM).
    Ones,
}

/// One cuBLAS `sgemm` in column-major terms: `C ← op(A) op(B) + β C` with `α = 1`,
/// `op(A)` `m × k`, `op(B)` `k × n`. The operands are named by the plan's buffer type `B`
/// ([`Mat`] for the MLP, [`super::conv_plan::ConvBuf`] for the convolutional fields).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gemm<B = Mat> {
    /// `op(A) = Aᵀ`.
    pub transa: bool,
    /// `op(B) = Bᵀ`.
    pub transb: bool,
    /// Rows of `C`.
    pub m: usize,
    /// Columns of `C`.
    pub n: usize,
    /// Inner dimension.
    pub k: usize,
    /// `A` and its leading dimension.
    pub a: B,
    /// Leading dimension of `A`.
    pub lda: usize,
    /// `B`.
    pub b: B,
    /// Leading dimension of `B`.
    pub ldb: usize,
    /// `C`.
    pub c: B,
    /// Leading dimension of `C`.
    pub ldc: usize,
    /// `β = 1` (accumulate) or `β = 0` (overwrite).
    pub accumulate: bool,
}

/// One step of an MLP plan.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Op {
    /// A cuBLAS GEMM.
    Gemm(Gemm),
    /// `bias_act_f32`: `y[r, c] ← σ(y[r, c] + b[c])` over `rows × cols`.
    BiasAct {
        /// The GEMM output, updated in place.
        y: Mat,
        /// The bias.
        b: Mat,
        /// Rows (samples).
        rows: usize,
        /// Columns (features).
        cols: usize,
        /// Activation code ([`act_code`]).
        act: i32,
    },
    /// `act_grad_f32`: `g ← g ⊙ σ'(z)` through the saved activation `a = σ(z)`.
    ActGrad {
        /// The gradient, updated in place.
        g: Mat,
        /// The saved activation.
        a: Mat,
        /// Components.
        len: usize,
        /// Activation code.
        act: i32,
    },
}

/// The shapes of an MLP field `dims[0] → dims[1] → … → dims[L]` with one activation after
/// every layer but the last, and where its parameters sit in the flat buffer (PyTorch's
/// `nn.Sequential` order: `W_1, b_1, W_2, b_2, …`, as [`crate::nn::zoo::mlp`]).
#[derive(Debug, Clone, PartialEq)]
pub struct MlpLayout {
    dims: Vec<usize>,
    act: i32,
}

impl MlpLayout {
    /// The layout of `dims` with activation code `act` (see [`act_code`]); `dims` has at
    /// least two positive sizes (checked by the caller that builds the CPU network).
    pub fn new(dims: &[usize], act: i32) -> Self {
        Self {
            dims: dims.to_vec(),
            act,
        }
    }

    /// The layer sizes.
    pub fn dims(&self) -> &[usize] {
        &self.dims
    }

    /// Number of linear layers `L`.
    pub fn layers(&self) -> usize {
        self.dims.len() - 1
    }

    /// Offset of `W_l` in the parameter buffer, and of `b_l` right after it.
    pub fn weight_offset(&self, l: usize) -> usize {
        (1..l).map(|j| self.dims[j] * (self.dims[j - 1] + 1)).sum()
    }

    /// Offset of `b_l`.
    pub fn bias_offset(&self, l: usize) -> usize {
        self.weight_offset(l) + self.dims[l] * self.dims[l - 1]
    }

    /// Number of parameters.
    pub fn num_params(&self) -> usize {
        self.weight_offset(self.layers() + 1)
    }

    /// Number of components of `m` for a batch of `rows` samples.
    pub fn len_of(&self, m: Mat, rows: usize) -> usize {
        let l_last = self.layers();
        match m {
            Mat::Input | Mat::GradInput => rows * self.dims[0],
            Mat::Output | Mat::Cotangent => rows * self.dims[l_last],
            Mat::Act(l) | Mat::Grad(l) => rows * self.dims[l],
            Mat::Weight(l) | Mat::GradWeight(l) => self.dims[l] * self.dims[l - 1],
            Mat::Bias(l) | Mat::GradBias(l) => self.dims[l],
            Mat::Ones => rows,
        }
    }

    fn activation(&self, l: usize) -> Mat {
        if l == 0 {
            Mat::Input
        } else if l == self.layers() {
            Mat::Output
        } else {
            Mat::Act(l)
        }
    }

    fn grad(&self, l: usize) -> Mat {
        if l == 0 {
            Mat::GradInput
        } else if l == self.layers() {
            Mat::Cotangent
        } else {
            Mat::Grad(l)
        }
    }

    /// `a_L = f(y)` for `rows` samples: per layer, `a_l ← a_{l−1} W_lᵀ` (one GEMM: in
    /// column-major terms `a_lᵀ = W_l a_{l−1}ᵀ`, `W_l` read transposed) and the fused
    /// `a_l ← σ(a_l + b_l)` (identity after the last layer).
    pub fn forward(&self, rows: usize) -> Vec<Op> {
        let last = self.layers();
        let mut ops = Vec::with_capacity(2 * last);
        for l in 1..=last {
            let (i, o) = (self.dims[l - 1], self.dims[l]);
            ops.push(Op::Gemm(Gemm {
                transa: true,
                transb: false,
                m: o,
                n: rows,
                k: i,
                a: Mat::Weight(l),
                lda: i,
                b: self.activation(l - 1),
                ldb: i,
                c: self.activation(l),
                ldc: o,
                accumulate: false,
            }));
            ops.push(Op::BiasAct {
                y: self.activation(l),
                b: Mat::Bias(l),
                rows,
                cols: o,
                act: if l == last { 0 } else { self.act },
            });
        }
        ops
    }

    /// The VJP at the taped point: from `g_L = v` down, per layer `g_l ← g_l ⊙ σ'` (hidden
    /// layers), `∂W_l += g_lᵀ a_{l−1}`, `∂b_l += g_lᵀ 1`, `g_{l−1} ← g_l W_l` — the backward
    /// of [`crate::nn::Linear`] as three GEMMs (the column sum as a GEMM with ones).
    pub fn backward(&self, rows: usize) -> Vec<Op> {
        let last = self.layers();
        let mut ops = Vec::with_capacity(4 * last);
        for l in (1..=last).rev() {
            let (i, o) = (self.dims[l - 1], self.dims[l]);
            let g = self.grad(l);
            if l < last {
                ops.push(Op::ActGrad {
                    g,
                    a: Mat::Act(l),
                    len: rows * o,
                    act: self.act,
                });
            }
            ops.push(Op::Gemm(Gemm {
                transa: false,
                transb: true,
                m: i,
                n: o,
                k: rows,
                a: self.activation(l - 1),
                lda: i,
                b: g,
                ldb: o,
                c: Mat::GradWeight(l),
                ldc: i,
                accumulate: true,
            }));
            ops.push(Op::Gemm(Gemm {
                transa: false,
                transb: false,
                m: o,
                n: 1,
                k: rows,
                a: g,
                lda: o,
                b: Mat::Ones,
                ldb: rows,
                c: Mat::GradBias(l),
                ldc: o,
                accumulate: true,
            }));
            ops.push(Op::Gemm(Gemm {
                transa: false,
                transb: false,
                m: i,
                n: rows,
                k: o,
                a: Mat::Weight(l),
                lda: i,
                b: g,
                ldb: o,
                c: self.grad(l - 1),
                ldc: i,
                accumulate: false,
            }));
        }
        ops
    }
}
