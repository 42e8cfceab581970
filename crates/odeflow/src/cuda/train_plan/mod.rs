//! The launch plan of one fixed-step training iteration of a classifier
//! ([`crate::models::OdeClassifier`] with an MLP field or one of Ott et al.'s convolutional
//! fields `simple_odenet`/`odenet`, and a Linear head, no encoder; or TinyResNet, module
//! [`resnet`]) on the device: an ordered
//! list of launches on fixed buffers, with no host synchronisation inside,
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
//!                                  (the MLP's [`MlpLayout`] or the convolutional field's
//!                                  [`ConvFieldLayout`] plan, bound to the stage's buffers)
//!            yₙ₊₁ = yₙ + Σᵢ (h bᵢ) kᵢ;  first[n] ← first non-finite index of yₙ₊₁
//! head       logits = y_N Wᵀ + b                                (GEMM + bias kernel)
//! loss       L = mean CE(logits, labels), ∂L/∂logits, #correct  (softmax_ce_f32)
//! head VJP   ∂W, ∂b += …;  λ = ∂L/∂y_N
//!            (or, for a regression without a head, L = mean (y_N − target)², λ = ∂L/∂y_N
//!            by one mse_f32 launch: PlanLoss::MeanSquaredError)
//! backward   per step n = N−1…0 (the discrete adjoint of the step, as the generic
//!            `backprop` method's grad::rk_backward::StepBackward), stage i = s−1…0 when needed:
//!              k̄ᵢ = (h bᵢ) λ + Σ_{j>i} (h aⱼᵢ) Ȳⱼ;  Ȳᵢ = (∂f/∂y)(Yᵢ)ᵀ k̄ᵢ;  ∂θ += (∂f/∂θ)(Yᵢ)ᵀ k̄ᵢ
//!            λ ← λ + Σᵢ Ȳᵢ
//! Adam       t ← t + 1 on the device (adam_tick), then one adam_graph_f32 launch (moments,
//!            bias correction with t, update; t and the learning rate read on the device)
//! ```
//!
//! That backward pass is the `backprop` gradient, which keeps every step's states and stage
//! tapes. The memory-free gradients ([`PlanGradient`]) keep two states and one step's tapes,
//! whatever `N` (module [`backward`]): `reversible` (Sander et al., NeurIPS 2022) rebuilds
//! each `yₙ` by a reverse step before differentiating the step, and `adjoint` (Chen et al.,
//! NeurIPS 2018) integrates `(y, a, g)` backwards on its own fixed grid. Both are captured
//! like `backprop`, with a finiteness slot per backward step after the forward ones.
//!
//! The parameters are the classifier's flat vector `[field | head]`. The plan is unit-tested
//! by executing it with reference arithmetic against the CPU classifier's `loss_and_grad` and
//! `train::Optimizer` (`tests/cuda_plan/train.rs`); [`super::ClassifierStep`] issues it on a GPU.

mod backward;
mod binding;
mod optimizer;
mod resnet;
mod vocab;

pub use optimizer::{AdamHyper, PlanOptimizer, SgdHyper};
pub use vocab::{launch_buffers, At, Buf, Launch, Piece, ADAM_BUFFERS};

use super::conv_plan::{ConvBuf, ConvFieldLayout, ConvOp};
use super::depth_field::{DepthLayout, TrainingPass};
use super::plan::{lincomb_plan, Mat, MlpLayout, Op};
use super::stem_plan::StemLayout;
use crate::error::ArgError;
use crate::grad::GradientMethod;
use crate::solve::{fixed_grid, SaveAt, SolveOptions};
use crate::tableau::ButcherTableau;

/// The ODE block's field of a planned classifier.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldShape {
    /// An MLP `dims[0] → … → dims[L]` (`dims[0] = dims[L]` = the ODE state's size) with the
    /// activation code `act` ([`super::plan::act_code`]) after every layer but the last.
    Mlp {
        /// The sizes.
        dims: Vec<usize>,
        /// The activation code.
        act: i32,
    },
    /// `simple_odenet` or `odenet` on NCHW samples.
    Conv(ConvFieldLayout),
    /// TinyResNet (Sander et al., NeurIPS 2022): its body of residual blocks
    /// (a depth-indexed field, layer `round(t·N)` at time `t`), with the stem before the solve
    /// (the input is the images) and a `pool × pool` average pooling before the Linear head.
    /// Its parameters are the CPU model's `[stem | body | head]`.
    TinyResNet {
        /// The stem.
        stem: StemLayout,
        /// The body.
        body: DepthLayout,
        /// The head's pooling window.
        pool: usize,
    },
}

impl FieldShape {
    /// Components of one sample of the ODE state.
    pub fn state_len(&self) -> usize {
        match self {
            Self::Mlp { dims, .. } => dims[0],
            Self::Conv(c) => c.sample_len(),
            Self::TinyResNet { body, .. } => body.block().sample_len(),
        }
    }
}

/// The field's plan: an MLP's or a convolutional field's.
#[derive(Debug, Clone, PartialEq)]
enum FieldPlan {
    Mlp(MlpLayout),
    Conv(ConvFieldLayout),
    Depth {
        stem: StemLayout,
        body: DepthLayout,
        pool: usize,
    },
}

/// The loss of the iteration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanLoss {
    /// A Linear head to `classes` on the final state, then the mean softmax cross-entropy
    /// against the labels (a classifier).
    CrossEntropy,
    /// The mean squared error of the final state against the targets, no head (a
    /// regression, e.g. the `pendulum-mlp128-euler2` workload).
    MeanSquaredError,
}

/// The shapes of the model and its training solve.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassifierShape {
    /// The ODE block's field.
    pub field: FieldShape,
    /// Input features per sample (the state's minus the ANODE zeros, which follow them in
    /// each sample).
    pub input: usize,
    /// Classes (the head's output size; unused by [`PlanLoss::MeanSquaredError`]).
    pub classes: usize,
    /// Samples per batch.
    pub rows: usize,
    /// The loss.
    pub loss: PlanLoss,
}

/// How the iteration's backward pass computes `∂L/∂θ` (the three [`crate::grad`] methods,
/// on fixed grids).
#[derive(Debug, Clone, PartialEq)]
pub enum PlanGradient {
    /// The exact discrete adjoint: every step's state and stage tapes are kept.
    Backprop,
    /// Sander et al.'s reversible adjoint: only the final state is kept; each step's start
    /// `x̃ₙ = x̃ₙ₊₁ − h Σ bᵢ kᵢ` is rebuilt by a reverse step, the step is recomputed there
    /// with tapes and differentiated as `backprop` does. Approximate: O(h) for Euler, O(h²)
    /// for Heun.
    Reversible,
    /// The continuous adjoint: `y' = f`, `a' = −aᵀ∂f/∂y`, `g' = −aᵀ∂f/∂θ` integrated with
    /// the same tableau from `t₁` back to `t₀` on `grid` (`t₁ > … > t₀`, as
    /// [`crate::solve::fixed_grid`] gives it for the reversed interval).
    Adjoint {
        /// The backward solve's grid.
        grid: Vec<f64>,
    },
}

impl PlanGradient {
    /// The plan's twin of the generic method `grad` for a solve with the fixed stepping of
    /// `opts` (the adjoint's backward grid is `fixed_grid` of the reversed interval, as the
    /// generic adjoint's backward solve steps).
    pub fn for_method(grad: &GradientMethod, opts: &SolveOptions) -> Result<Self, ArgError> {
        Ok(match grad {
            GradientMethod::Backprop => Self::Backprop,
            GradientMethod::Reversible => Self::Reversible,
            GradientMethod::Adjoint(_) => {
                let back = SolveOptions {
                    t0: opts.t1,
                    t1: opts.t0,
                    stepping: opts.stepping.clone(),
                    save: SaveAt::Final,
                    max_steps: opts.max_steps,
                };
                Self::Adjoint {
                    grid: fixed_grid(&back)?,
                }
            }
        })
    }

    /// Whether every step's state and tapes are kept (`backprop`).
    fn keeps_steps(&self) -> bool {
        matches!(self, Self::Backprop)
    }
}

/// The plan of one iteration: its launches and the sizes of its buffers.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainPlan {
    /// The shapes it was planned for.
    pub shape: ClassifierShape,
    /// The step sizes `hₙ` (from the solver's fixed grid).
    pub steps: Vec<f64>,
    /// The gradient method of the backward pass.
    pub gradient: PlanGradient,
    /// The launches, in stream order.
    pub launches: Vec<Launch>,
    field: FieldPlan,
    /// Stages per step that reach its result (`backward::needed`).
    needed_stages: usize,
    /// The Linear head (cross-entropy only).
    head: Option<MlpLayout>,
    /// The grid `t₀ < … < t_N` (a depth field's layer follows the time).
    times: Vec<f64>,
    /// The running statistics' rule of a depth field while the plan is built (open during
    /// the forward solve).
    pass: TrainingPass,
}

impl TrainPlan {
    /// The plan for `shape` with the explicit tableau `tab` on the fixed grid `grid`
    /// (`t₀ < t₁ < … < t_N`, as `solve::fixed_grid` gives it), differentiated by `gradient`.
    pub fn new(
        shape: ClassifierShape,
        tab: &ButcherTableau,
        grid: &[f64],
        gradient: PlanGradient,
    ) -> Self {
        let d = shape.field.state_len();
        let field = match &shape.field {
            FieldShape::Mlp { dims, act } => FieldPlan::Mlp(MlpLayout::new(dims, *act)),
            FieldShape::Conv(c) => FieldPlan::Conv(c.clone()),
            FieldShape::TinyResNet { stem, body, pool } => FieldPlan::Depth {
                stem: stem.clone(),
                body: body.clone(),
                pool: *pool,
            },
        };
        let depth = match &field {
            FieldPlan::Depth { body, .. } => body.depth(),
            _ => 0,
        };
        let head_in = resnet::pooled_len(&field).unwrap_or(d);
        let head = (shape.loss == PlanLoss::CrossEntropy)
            .then(|| MlpLayout::new(&[head_in, shape.classes], 0));
        let steps: Vec<f64> = grid.windows(2).map(|w| w[1] - w[0]).collect();
        let mut p = Self {
            shape,
            steps,
            gradient,
            launches: Vec::new(),
            needed_stages: backward::needed(tab).iter().filter(|&&b| b).count(),
            field,
            head,
            times: grid.to_vec(),
            pass: TrainingPass::new(depth),
        };
        p.build(tab);
        p
    }

    /// Components of the ODE state of one batch (`rows ×` the sample's).
    pub fn state_len(&self) -> usize {
        self.shape.rows * self.shape.field.state_len()
    }

    fn field_params(&self) -> usize {
        match &self.field {
            FieldPlan::Mlp(l) => l.num_params(),
            FieldPlan::Conv(c) => c.num_params(),
            FieldPlan::Depth { body, .. } => body.num_params(),
        }
    }

    /// Where the field's parameters start: after TinyResNet's stem, else at 0.
    fn field_offset(&self) -> usize {
        match &self.field {
            FieldPlan::Depth { stem, .. } => super::conv_bn_plan::ConvBnLayout::num_params(stem),
            _ => 0,
        }
    }

    /// Where the head's parameters start.
    fn head_offset(&self) -> usize {
        self.field_offset() + self.field_params()
    }

    /// Number of parameters `[field | head]` (the field's alone without a head; TinyResNet's
    /// `[stem | body | head]`).
    pub fn num_params(&self) -> usize {
        self.head_offset() + self.head.as_ref().map_or(0, MlpLayout::num_params)
    }

    /// Number of fixed steps `N`.
    pub fn num_steps(&self) -> usize {
        self.steps.len()
    }

    /// Steps of the backward pass: `N`, or the adjoint's backward grid's.
    pub fn backward_steps(&self) -> usize {
        match &self.gradient {
            PlanGradient::Adjoint { grid } => grid.len().saturating_sub(1),
            _ => self.num_steps(),
        }
    }

    /// The buffer of the state `yₙ`: its own for `backprop`, one of two otherwise.
    pub fn state(&self, n: usize) -> Buf {
        Buf::State(self.phys(n))
    }

    /// The index of `yₙ`'s buffer.
    fn phys(&self, n: usize) -> usize {
        if self.gradient.keeps_steps() {
            n
        } else {
            n % 2
        }
    }

    /// The tape slot of a stage evaluated from the state buffer `State(n)`: `n` for
    /// `backprop`, the one slot otherwise.
    fn tape(&self, n: usize) -> usize {
        if self.gradient.keeps_steps() {
            n
        } else {
            0
        }
    }

    /// Where the field's VJP accumulates `∂θ`: the gradient, or the adjoint's per-stage
    /// scratch.
    fn grad_buf(&self) -> Buf {
        match self.gradient {
            PlanGradient::Adjoint { .. } => Buf::GradStage,
            _ => Buf::GradParams,
        }
    }

    /// Elements of `buf` (f32, f64, i32 or u64 as the buffer's doc says).
    pub fn len_of(&self, buf: Buf) -> usize {
        let s = &self.shape;
        let (rows, d) = (s.rows, s.field.state_len());
        if let Some(n) = self.resnet_len(buf) {
            return n;
        }
        let hidden = |l: usize| match &self.field {
            FieldPlan::Mlp(m) => rows * m.dims()[l],
            FieldPlan::Conv(c) => c.len_of(ConvBuf::Act(l), rows),
            FieldPlan::Depth { .. } => 0,
        };
        let conv = |b: ConvBuf| match &self.field {
            FieldPlan::Conv(c) => c.len_of(b, rows),
            _ => 0,
        };
        match buf {
            Buf::Input => rows * s.input,
            Buf::Labels | Buf::Ones => rows,
            Buf::Lr | Buf::Loss | Buf::Correct | Buf::AdamStep => 1,
            Buf::Params | Buf::GradParams | Buf::AdamM | Buf::AdamV => self.num_params(),
            Buf::State(_) | Buf::StageIn(..) | Buf::K(_) | Buf::Lambda | Buf::KBar => rows * d,
            Buf::YBar(_) | Buf::Zeros => rows * d,
            Buf::Act(_, _, l) | Buf::Hidden(l) => hidden(l),
            Buf::Logits | Buf::GradLogits => rows * s.classes,
            Buf::Target => rows * d,
            Buf::FirstNonFinite => self.num_steps() + self.backward_steps(),
            Buf::GradStage => self.field_params(),
            Buf::InputT(..) | Buf::OutputT | Buf::KBarT | Buf::YBarT => rows * d,
            Buf::Col => conv(ConvBuf::Col),
            Buf::Partial => conv(ConvBuf::Partial),
            _ => unreachable!("resnet_len sizes {buf:?}"),
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
        let copied_in = match self.shape.loss {
            PlanLoss::CrossEntropy => Buf::Labels,
            PlanLoss::MeanSquaredError => Buf::Target,
        };
        for b in [
            Buf::Input,
            copied_in,
            Buf::Lr,
            Buf::Params,
            Buf::AdamM,
            Buf::AdamV,
        ] {
            add(b);
        }
        add(Buf::AdamStep);
        for l in &self.launches {
            for b in launch_buffers(self, l) {
                add(b);
            }
        }
        v.sort();
        v
    }

    /// The input of stage `i` of a step from `State(n)`: that state for stage 0.
    fn stage_input(&self, n: usize, i: usize) -> Buf {
        if i == 0 {
            Buf::State(n)
        } else {
            Buf::StageIn(self.tape(n), i)
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

    /// The field's forward evaluation (or VJP at the taped point) at stage `i` from the state
    /// buffer `State(n)`, at time `t` (which only a depth field reads).
    fn push_field(&mut self, rows: usize, n: usize, i: usize, forward: bool, t: f64) {
        match &self.field {
            FieldPlan::Depth { .. } => self.push_depth(rows, (n, i), forward, t),
            FieldPlan::Mlp(f) => {
                let ops = if forward {
                    f.forward(rows)
                } else {
                    f.backward(rows)
                };
                self.push_ops(ops, |p, m| p.field_at(m, n, i));
            }
            FieldPlan::Conv(f) => {
                let ops: Vec<ConvOp> = if forward {
                    f.forward(rows)
                } else {
                    f.backward(rows)
                };
                self.launches
                    .extend(ops.into_iter().map(|op| Launch::Conv { op, n, i }));
            }
        }
    }

    fn lincomb(&mut self, out: Buf, base: Buf, terms: &[(Buf, f32)]) {
        self.lincomb_len(self.len_of(out), out, base, terms);
    }

    /// `out ← base + Σ c·term` on the first `len` components of each.
    fn lincomb_len(&mut self, len: usize, out: Buf, base: Buf, terms: &[(Buf, f32)]) {
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
        let rows = self.shape.rows;
        let (len, big_n) = (self.state_len(), self.num_steps());
        let slots = self.len_of(Buf::FirstNonFinite);
        self.launches.extend([
            Launch::Fill {
                buf: Buf::FirstNonFinite,
                len: slots,
                value: len as u64,
            },
            Launch::Zero(Buf::Loss),
            Launch::Zero(Buf::GradParams),
        ]);
        if self.head.is_some() {
            self.launches.push(Launch::Zero(Buf::Correct));
        }
        if self.is_tiny_resnet() {
            self.tiny_resnet_input();
        } else {
            let (input, pad) = (
                self.shape.input,
                self.shape.field.state_len() - self.shape.input,
            );
            self.launches.push(Launch::Pad {
                rows,
                cols: input,
                extra: pad,
                src: Buf::Input,
                dst: self.state(0),
            });
        }
        self.pass.begin();
        for n in 0..big_n {
            let to = self.state(n + 1);
            self.step_forward(tab, n, self.steps[n], Some(to));
            self.launches.push(Launch::FirstNonFinite {
                x: to,
                len,
                slot: n,
            });
        }
        self.pass.freeze();
        let pool = self.is_tiny_resnet();
        match &self.head {
            Some(head) => {
                let (fwd, bwd) = (head.forward(rows), head.backward(rows));
                if pool {
                    self.launches.push(Launch::Pool { forward: true });
                }
                self.push_ops(fwd, |p, m| p.head_at(m));
                self.launches.push(Launch::SoftmaxCe {
                    rows,
                    classes: self.shape.classes,
                });
                self.push_ops(bwd, |p, m| p.head_at(m));
                if pool {
                    self.launches.push(Launch::Pool { forward: false });
                }
            }
            None => self.launches.push(Launch::Mse {
                x: self.state(big_n),
                len,
            }),
        }
        match self.gradient.clone() {
            PlanGradient::Backprop => {
                for n in (0..big_n).rev() {
                    self.step_backward(tab, n, self.steps[n]);
                }
            }
            PlanGradient::Reversible => self.reversible_backward(tab),
            PlanGradient::Adjoint { grid } => self.adjoint_backward(tab, &grid),
        }
        if self.is_tiny_resnet() {
            self.tiny_resnet_stem_backward();
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
