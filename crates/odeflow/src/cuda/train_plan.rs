//! The launch plan of one fixed-step training iteration of the MLP classifier
//! ([`crate::models::OdeClassifier`] with an MLP field and a Linear head, no encoder) on the
//! device: an ordered list of launches on fixed buffers, with no host synchronisation inside,
//! so that the whole list can be captured once into a CUDA graph and replayed per batch
//! (the batch and the learning rate are copied into their fixed buffers before a replay; the
//! loss, accuracy count and finiteness indices are read after it).
//!
//! For an explicit tableau `(a, b)` of `s` stages, `N` steps of size `h` on `[t₀, t₁]`:
//!
//! ```text
//! reset      first[n] ← len (n < N); loss, correct, ∂θ ← 0
//! lift       y₀ ← [x, 0]                                      (ANODE padding, pad_cols_f32)
//! forward    per step n, stage i:  Yᵢ = yₙ + Σ_{j<i} (h aᵢⱼ) kⱼ   (one lincomb_f32; Y₀ = yₙ)
//!                                  kᵢ = f(Yᵢ), hidden activations kept per (n, i) as the tape
//!            yₙ₊₁ = yₙ + Σᵢ (h bᵢ) kᵢ;  first[n] ← first non-finite index of yₙ₊₁
//! head       logits = y_N Wᵀ + b                                (GEMM + bias kernel)
//! loss       L = mean CE(logits, labels), ∂L/∂logits, #correct  (softmax_ce_f32)
//! head VJP   ∂W, ∂b += …;  λ = ∂L/∂y_N
//! backward   per step n = N−1…0 (the discrete adjoint of the step, as the generic
//!            `backprop` method's grad::rk_backward::StepBackward), stage i = s−1…0 when needed:
//!              k̄ᵢ = (h bᵢ) λ + Σ_{j>i} (h aⱼᵢ) Ȳⱼ;  Ȳᵢ = (∂f/∂y)(Yᵢ)ᵀ k̄ᵢ;  ∂θ += (∂f/∂θ)(Yᵢ)ᵀ k̄ᵢ
//!            λ ← λ + Σᵢ Ȳᵢ
//! Adam       t ← t + 1 on the device (adam_tick), then one adam_graph_f32 launch (moments,
//!            bias correction with t, update; t and the learning rate read on the device)
//! ```
//!
//! The parameters are the classifier's flat vector `[field | head]`. The plan is unit-tested
//! by executing it with reference arithmetic against the CPU classifier's `loss_and_grad` and
//! `train::Optimizer` (`tests/cuda_plan/train.rs`); [`super::ClassifierStep`] issues it on a GPU.

use super::plan::{lincomb_plan, Gemm, Mat, MlpLayout, Op};
use crate::tableau::ButcherTableau;

/// A device buffer of one training iteration (f32 unless said otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Buf {
    /// The input batch `x` (`rows × input`), copied in before each replay.
    Input,
    /// The labels (`rows`, i32), copied in before each replay.
    Labels,
    /// The learning rate (one f64), copied in before each replay.
    Lr,
    /// The parameters `[field | head]`.
    Params,
    /// Their gradient.
    GradParams,
    /// Adam's first moment.
    AdamM,
    /// Adam's second moment.
    AdamV,
    /// Adam's step count `t` (one u64, incremented on the device by [`Launch::AdamTick`]).
    AdamStep,
    /// `yₙ`, `n = 0..=N` (`rows × dim`).
    State(usize),
    /// The stage input `Yᵢ` of step `n`, `i ≥ 1` (stage 0 reads `yₙ`).
    StageIn(usize, usize),
    /// The hidden activation `a_l` of the field at stage `(n, i)`: the tape.
    Act(usize, usize, usize),
    /// The stage derivative `kᵢ` (reused by every step).
    K(usize),
    /// The logits (`rows × classes`).
    Logits,
    /// `∂L/∂logits`.
    GradLogits,
    /// `λ = ∂L/∂yₙ` (`rows × dim`).
    Lambda,
    /// `k̄` of the stage being differentiated.
    KBar,
    /// `Ȳᵢ` (reused by every step).
    YBar(usize),
    /// `∂L/∂a_l` inside one field VJP (scratch).
    Hidden(usize),
    /// `rows` ones (column sums by GEMM).
    Ones,
    /// `rows × dim` zeros (the base of `k̄`'s fused sum).
    Zeros,
    /// The mean loss (one f64).
    Loss,
    /// The number of correct predictions (one u64).
    Correct,
    /// `first[n]`: the first non-finite index of `yₙ₊₁`, or `len` (u64, one per step).
    FirstNonFinite,
}

/// An element offset into a buffer (parameters sit inside [`Buf::Params`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct At {
    /// The buffer.
    pub buf: Buf,
    /// Offset in elements.
    pub offset: usize,
}

impl From<Buf> for At {
    fn from(buf: Buf) -> Self {
        Self { buf, offset: 0 }
    }
}

/// One launch (or stream-ordered memset) of the iteration.
#[derive(Debug, Clone, PartialEq)]
pub enum Launch {
    /// `buf ← 0` (`cuMemsetD8Async`, capturable).
    Zero(Buf),
    /// `fill_u64`: the first `len` u64 of `buf` ← `value`.
    Fill {
        /// The buffer.
        buf: Buf,
        /// Elements.
        len: usize,
        /// The value.
        value: u64,
    },
    /// `pad_cols_f32`: `dst ← [src, 0]` per row.
    Pad {
        /// Rows.
        rows: usize,
        /// Columns of `src`.
        cols: usize,
        /// Zero columns appended.
        extra: usize,
        /// Source.
        src: Buf,
        /// Destination.
        dst: Buf,
    },
    /// `lincomb_f32`: `out ← base + Σ c·term` (at most `MAX_TERMS` terms).
    Lincomb {
        /// Components.
        len: usize,
        /// Output.
        out: Buf,
        /// Base (may equal `out`).
        base: Buf,
        /// Terms and coefficients.
        terms: Vec<(Buf, f32)>,
    },
    /// A cuBLAS SGEMM on the planned buffers (see [`Gemm`] for the operands).
    Gemm {
        /// Shapes, transposes and `β` (its `Mat` operands are replaced by `a`, `b`, `c`).
        g: Gemm,
        /// `A`.
        a: At,
        /// `B`.
        b: At,
        /// `C`.
        c: At,
    },
    /// `bias_act_f32`.
    BiasAct {
        /// The GEMM output, in place.
        y: At,
        /// The bias.
        b: At,
        /// Rows.
        rows: usize,
        /// Columns.
        cols: usize,
        /// Activation code.
        act: i32,
    },
    /// `act_grad_f32`.
    ActGrad {
        /// The gradient, in place.
        g: At,
        /// The saved activation.
        a: At,
        /// Components.
        len: usize,
        /// Activation code.
        act: i32,
    },
    /// `first_non_finite_f32` of `x` into `first[slot]` (which starts at `len`).
    FirstNonFinite {
        /// The state.
        x: Buf,
        /// Components.
        len: usize,
        /// Index into [`Buf::FirstNonFinite`].
        slot: usize,
    },
    /// `softmax_ce_f32` of [`Buf::Logits`] against [`Buf::Labels`] into [`Buf::GradLogits`],
    /// [`Buf::Loss`] and [`Buf::Correct`].
    SoftmaxCe {
        /// Rows.
        rows: usize,
        /// Classes.
        classes: usize,
    },
    /// `adam_tick`: [`Buf::AdamStep`] += 1 (one thread), right before [`Launch::Adam`].
    AdamTick,
    /// `adam_graph_f32` on [`Buf::Params`] with [`Buf::GradParams`], the moments, the step
    /// count [`Buf::AdamStep`] and [`Buf::Lr`].
    Adam {
        /// Parameters.
        n: usize,
    },
}

/// The buffers of [`Launch::Adam`], in the order of `adam_graph_f32`'s pointer arguments.
pub const ADAM_BUFFERS: [Buf; 6] = [
    Buf::Params,
    Buf::GradParams,
    Buf::AdamM,
    Buf::AdamV,
    Buf::Lr,
    Buf::AdamStep,
];

/// The shapes of the classifier and its training solve.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassifierShape {
    /// The field's sizes `dims[0] → … → dims[L]` (`dims[0] = dims[L]` = the ODE state's size).
    pub dims: Vec<usize>,
    /// The field's activation code ([`super::plan::act_code`]).
    pub act: i32,
    /// Input features per sample (`dims[0]` minus the ANODE zeros).
    pub input: usize,
    /// Classes (the head's output size).
    pub classes: usize,
    /// Samples per batch.
    pub rows: usize,
}

/// Adam's hyper-parameters as the kernel takes them (`OptimizerConfig::Adam`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamHyper {
    /// β₁ (f64, as the CPU's bias correction).
    pub beta1: f64,
    /// β₂.
    pub beta2: f64,
    /// ε.
    pub eps: f32,
    /// L2 weight decay.
    pub weight_decay: f32,
}

/// The plan of one iteration: its launches and the sizes of its buffers.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainPlan {
    /// The shapes it was planned for.
    pub shape: ClassifierShape,
    /// The step sizes `hₙ` (from the solver's fixed grid).
    pub steps: Vec<f64>,
    /// The launches, in stream order.
    pub launches: Vec<Launch>,
    field: MlpLayout,
    head: MlpLayout,
}

impl TrainPlan {
    /// The plan for `shape` with the explicit tableau `tab` on the fixed grid `grid`
    /// (`t₀ < t₁ < … < t_N`, as `solve::fixed_grid` gives it).
    pub fn new(shape: ClassifierShape, tab: &ButcherTableau, grid: &[f64]) -> Self {
        let d = shape.dims[0];
        let field = MlpLayout::new(&shape.dims, shape.act);
        let head = MlpLayout::new(&[d, shape.classes], 0);
        let steps: Vec<f64> = grid.windows(2).map(|w| w[1] - w[0]).collect();
        let mut p = Self {
            shape,
            steps,
            launches: Vec::new(),
            field,
            head,
        };
        p.build(tab);
        p
    }

    /// The field's layout.
    pub fn field(&self) -> &MlpLayout {
        &self.field
    }

    /// Number of parameters `[field | head]`.
    pub fn num_params(&self) -> usize {
        self.field.num_params() + self.head.num_params()
    }

    /// Number of fixed steps `N`.
    pub fn num_steps(&self) -> usize {
        self.steps.len()
    }

    /// Elements of `buf` (f32, f64, i32 or u64 as the buffer's doc says).
    pub fn len_of(&self, buf: Buf) -> usize {
        let s = &self.shape;
        let (rows, d) = (s.rows, s.dims[0]);
        match buf {
            Buf::Input => rows * s.input,
            Buf::Labels | Buf::Ones => rows,
            Buf::Lr | Buf::Loss | Buf::Correct | Buf::AdamStep => 1,
            Buf::Params | Buf::GradParams | Buf::AdamM | Buf::AdamV => self.num_params(),
            Buf::State(_) | Buf::StageIn(..) | Buf::K(_) | Buf::Lambda | Buf::KBar => rows * d,
            Buf::YBar(_) | Buf::Zeros => rows * d,
            Buf::Act(_, _, l) | Buf::Hidden(l) => rows * s.dims[l],
            Buf::Logits | Buf::GradLogits => rows * s.classes,
            Buf::FirstNonFinite => self.num_steps(),
        }
    }

    /// Every buffer the plan names, each once, in a fixed order.
    pub fn buffers(&self) -> Vec<Buf> {
        let mut v: Vec<Buf> = Vec::new();
        let mut add = |b: Buf| {
            if !v.contains(&b) {
                v.push(b);
            }
        };
        for b in [
            Buf::Input,
            Buf::Labels,
            Buf::Lr,
            Buf::Params,
            Buf::AdamM,
            Buf::AdamV,
        ] {
            add(b);
        }
        add(Buf::AdamStep);
        for l in &self.launches {
            for b in launch_buffers(l) {
                add(b);
            }
        }
        v.sort();
        v
    }

    fn stage_input(n: usize, i: usize) -> Buf {
        if i == 0 {
            Buf::State(n)
        } else {
            Buf::StageIn(n, i)
        }
    }

    fn field_at(&self, m: Mat, n: usize, i: usize) -> At {
        let f = &self.field;
        match m {
            Mat::Input => Self::stage_input(n, i).into(),
            Mat::Act(l) => Buf::Act(n, i, l).into(),
            Mat::Output => Buf::K(i).into(),
            Mat::Cotangent => Buf::KBar.into(),
            Mat::Grad(l) => Buf::Hidden(l).into(),
            Mat::GradInput => Buf::YBar(i).into(),
            Mat::Weight(l) => params(Buf::Params, f.weight_offset(l)),
            Mat::Bias(l) => params(Buf::Params, f.bias_offset(l)),
            Mat::GradWeight(l) => params(Buf::GradParams, f.weight_offset(l)),
            Mat::GradBias(l) => params(Buf::GradParams, f.bias_offset(l)),
            Mat::Ones => Buf::Ones.into(),
        }
    }

    fn head_at(&self, m: Mat) -> At {
        let (h, o) = (&self.head, self.field.num_params());
        match m {
            Mat::Input => Buf::State(self.num_steps()).into(),
            Mat::Output => Buf::Logits.into(),
            Mat::Cotangent => Buf::GradLogits.into(),
            Mat::GradInput => Buf::Lambda.into(),
            Mat::Weight(l) => params(Buf::Params, o + h.weight_offset(l)),
            Mat::Bias(l) => params(Buf::Params, o + h.bias_offset(l)),
            Mat::GradWeight(l) => params(Buf::GradParams, o + h.weight_offset(l)),
            Mat::GradBias(l) => params(Buf::GradParams, o + h.bias_offset(l)),
            Mat::Ones => Buf::Ones.into(),
            Mat::Act(_) | Mat::Grad(_) => unreachable!("a one-layer head has no hidden layer"),
        }
    }

    fn push_ops(&mut self, ops: Vec<Op>, at: impl Fn(&Self, Mat) -> At) {
        for op in ops {
            let l = match op {
                Op::Gemm(g) => Launch::Gemm {
                    a: at(self, g.a),
                    b: at(self, g.b),
                    c: at(self, g.c),
                    g,
                },
                Op::BiasAct {
                    y,
                    b,
                    rows,
                    cols,
                    act,
                } => Launch::BiasAct {
                    y: at(self, y),
                    b: at(self, b),
                    rows,
                    cols,
                    act,
                },
                Op::ActGrad { g, a, len, act } => Launch::ActGrad {
                    g: at(self, g),
                    a: at(self, a),
                    len,
                    act,
                },
            };
            self.launches.push(l);
        }
    }

    fn lincomb(&mut self, out: Buf, base: Buf, terms: &[(Buf, f32)]) {
        let len = self.len_of(out);
        let coeffs: Vec<f32> = terms.iter().map(|t| t.1).collect();
        for launch in lincomb_plan(&coeffs) {
            self.launches.push(Launch::Lincomb {
                len,
                out,
                base: if launch.from_base { base } else { out },
                terms: launch.terms.iter().map(|&(j, c)| (terms[j].0, c)).collect(),
            });
        }
    }

    fn build(&mut self, tab: &ButcherTableau) {
        let s = tab.stages();
        let (a, b) = (tab.a().to_vec(), tab.b().to_vec());
        let (rows, d, big_n) = (self.shape.rows, self.shape.dims[0], self.num_steps());
        let mut needed = vec![false; s];
        for i in (0..s).rev() {
            needed[i] = b[i] != 0.0 || (i + 1..s).any(|j| a[j][i] != 0.0 && needed[j]);
        }
        let slots = self.len_of(Buf::FirstNonFinite);
        let len = rows * d;
        self.launches.extend([
            Launch::Fill {
                buf: Buf::FirstNonFinite,
                len: slots,
                value: len as u64,
            },
            Launch::Zero(Buf::Loss),
            Launch::Zero(Buf::Correct),
            Launch::Zero(Buf::GradParams),
            Launch::Pad {
                rows,
                cols: self.shape.input,
                extra: d - self.shape.input,
                src: Buf::Input,
                dst: Buf::State(0),
            },
        ]);
        for n in 0..big_n {
            let h = self.steps[n];
            for i in 0..s {
                if i > 0 {
                    let terms: Vec<(Buf, f32)> =
                        (0..i).map(|j| (Buf::K(j), (h * a[i][j]) as f32)).collect();
                    self.lincomb(Buf::StageIn(n, i), Buf::State(n), &terms);
                }
                let ops = self.field.forward(rows);
                self.push_ops(ops, |p, m| p.field_at(m, n, i));
            }
            let terms: Vec<(Buf, f32)> = (0..s).map(|j| (Buf::K(j), (h * b[j]) as f32)).collect();
            self.lincomb(Buf::State(n + 1), Buf::State(n), &terms);
            self.launches.push(Launch::FirstNonFinite {
                x: Buf::State(n + 1),
                len,
                slot: n,
            });
        }
        let ops = self.head.forward(rows);
        self.push_ops(ops, |p, m| p.head_at(m));
        self.launches.push(Launch::SoftmaxCe {
            rows,
            classes: self.shape.classes,
        });
        let ops = self.head.backward(rows);
        self.push_ops(ops, |p, m| p.head_at(m));
        for n in (0..big_n).rev() {
            let h = self.steps[n];
            for i in (0..s).rev().filter(|&i| needed[i]) {
                let mut terms = Vec::new();
                if b[i] != 0.0 {
                    terms.push((Buf::Lambda, (h * b[i]) as f32));
                }
                for j in (i + 1..s).filter(|&j| a[j][i] != 0.0 && needed[j]) {
                    terms.push((Buf::YBar(j), (h * a[j][i]) as f32));
                }
                self.lincomb(Buf::KBar, Buf::Zeros, &terms);
                let ops = self.field.backward(rows);
                self.push_ops(ops, |p, m| p.field_at(m, n, i));
            }
            let terms: Vec<(Buf, f32)> = (0..s)
                .filter(|&i| needed[i])
                .map(|i| (Buf::YBar(i), 1.0))
                .collect();
            self.lincomb(Buf::Lambda, Buf::Lambda, &terms);
        }
        self.launches.push(Launch::AdamTick);
        self.launches.push(Launch::Adam {
            n: self.num_params(),
        });
    }
}

fn params(buf: Buf, offset: usize) -> At {
    At { buf, offset }
}

/// The buffers one launch names (read or written).
pub fn launch_buffers(l: &Launch) -> Vec<Buf> {
    match l {
        Launch::Zero(b) | Launch::Fill { buf: b, .. } => vec![*b],
        Launch::Pad { src, dst, .. } => vec![*src, *dst],
        Launch::Lincomb {
            out, base, terms, ..
        } => {
            let mut v = vec![*out, *base];
            v.extend(terms.iter().map(|t| t.0));
            v
        }
        Launch::Gemm { a, b, c, .. } => vec![a.buf, b.buf, c.buf],
        Launch::BiasAct { y, b, .. } => vec![y.buf, b.buf],
        Launch::ActGrad { g, a, .. } => vec![g.buf, a.buf],
        Launch::FirstNonFinite { x, .. } => vec![*x, Buf::FirstNonFinite],
        Launch::SoftmaxCe { .. } => vec![
            Buf::Logits,
            Buf::Labels,
            Buf::GradLogits,
            Buf::Loss,
            Buf::Correct,
        ],
        Launch::AdamTick => vec![Buf::AdamStep],
        Launch::Adam { .. } => ADAM_BUFFERS.to_vec(),
    }
}
