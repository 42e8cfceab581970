//! The exact discrete adjoint of a symplectic splitting solve (Störmer–Verlet and its
//! compositions) for a field split into drift and kick with VJPs of each part.
//!
//! A splitting step is a sequence of sub-steps `y ← y + cᵢ f_{partᵢ}(y)`, `cᵢ = aᵢ h`
//! (see [`crate::solve::Splitting`]). As in the forward solver, a part's evaluation is
//! reused while the components it depends on are unchanged (the two half kicks that meet
//! between Verlet steps share one force evaluation), so sub-step `i` adds `cᵢ kⱼ₍ᵢ₎` where
//! evaluation `kⱼ = f_part(y_{first(j)})` was made at the state before the first sub-step that
//! uses it. Reverse-mode differentiation of that computation graph, with `λ = ∂L/∂y` after
//! the last sub-step, runs the sub-steps backwards:
//!
//! ```text
//! k̄ⱼ₍ᵢ₎ += cᵢ λ                                   (every sub-step i)
//! λ += (∂f_part/∂y)ᵀ k̄ⱼ,   θ̄ += (∂f_part/∂θ)ᵀ k̄ⱼ   (at i = first(j), with the tape of kⱼ)
//! ```
//!
//! The users of one evaluation are consecutive sub-steps, so `k̄` is complete when its first
//! user is reached. The result is exactly the gradient of what [`crate::solve_split`]
//! computes — one VJP per part evaluation, as many as the forward solve's evaluations.
//!
//! Reusing an evaluation is exact only when a part does not depend on the components it
//! moves (the drift `∂T/∂p` does not depend on `q`, the kick `−∂V/∂q` not on `p`): the
//! defining property of a separable Hamiltonian field, and what [`SplitVectorField`]
//! requires of its implementors.

use super::{implicit::failed, GradStats};
use crate::error::{ArgError, FailReason, SolveError};
use crate::real::Real;
use crate::solve::{fixed_grid, Method, SaveAt, SolveOptions, SplitPart, Splitting, Stepping};
use crate::state::State;

/// A parameterised field split as `f = f_drift + f_kick`, with exact VJPs of each part.
///
/// The parts must be separable: the drift may depend only on the components the kick moves
/// (momenta) and the kick only on those the drift moves (positions), as for the symplectic
/// gradient of `H(q, p) = T(p) + V(q)`. Each part writes the whole state (zeros in the
/// components it does not move).
pub trait SplitVectorField<S: State> {
    /// What one part evaluation records for its VJP.
    type Tape;
    /// The parameter gradient.
    type Grad: State<Scalar = S::Scalar>;

    /// An empty tape.
    fn new_tape(&self) -> Self::Tape;
    /// A zero parameter gradient.
    fn zero_grad(&self) -> Self::Grad;
    /// `dy ← f_part(t, y; θ)`.
    fn eval_part(&mut self, part: SplitPart, t: f64, y: &S, dy: &mut S);
    /// `dy ← f_part(t, y; θ)`, recording in `tape` what [`SplitVectorField::vjp_part`] needs.
    fn eval_part_taped(
        &mut self,
        part: SplitPart,
        t: f64,
        y: &S,
        dy: &mut S,
        tape: &mut Self::Tape,
    );
    /// At the point recorded in `tape` (by an evaluation of the same part):
    /// `gy ← vᵀ ∂f_part/∂y` (overwritten) and `gθ ← gθ + vᵀ ∂f_part/∂θ` (accumulated).
    fn vjp_part(
        &mut self,
        part: SplitPart,
        tape: &Self::Tape,
        v: &S,
        gy: &mut S,
        gtheta: &mut Self::Grad,
    );
}

/// One sub-step of the forward solve: `y ← y + coef · k[eval]`.
#[derive(Debug, Clone, Copy)]
struct SubStep {
    coef: f64,
    eval: usize,
    /// Whether this sub-step made the evaluation (its first user).
    first: bool,
}

/// A splitting solve with its exact discrete adjoint ([module docs](self)): call
/// [`SplitGradSolver::forward`], then [`SplitGradSolver::backward`] with `∂L/∂y(t₁)`.
/// Tapes and buffers are kept between calls.
pub struct SplitGradSolver<S: State, F: SplitVectorField<S>> {
    method: Splitting,
    opts: SolveOptions,
    grid: Vec<f64>,
    tapes: Vec<F::Tape>,
    parts: Vec<SplitPart>,
    subs: Vec<SubStep>,
    k: [Option<S>; 2],
    kbar: Option<S>,
    gy: Option<S>,
    y1: Option<S>,
    stats: GradStats,
}

impl<S: State, F: SplitVectorField<S>> SplitGradSolver<S, F> {
    /// A solver for a splitting `method` on a fixed grid (`opts.stepping` a step size or a
    /// step count; the save policy is ignored: only `y(t₁)` is returned).
    pub fn new(method: &Method, opts: SolveOptions) -> Result<Self, ArgError> {
        let Method::Splitting(split) = method else {
            return Err(ArgError::MethodUnsuited {
                method: method.name().to_string(),
                reason: "is not a splitting method; a split field's gradient solver needs one \
                         of symplectic-euler-kd, symplectic-euler-dk, verlet, verlet4, verlet6"
                    .into(),
            });
        };
        if matches!(opts.stepping, Stepping::Adaptive(_)) {
            return Err(ArgError::MethodUnsuited {
                method: split.name.clone(),
                reason: "is a fixed-step method; give a step size or a number of steps".into(),
            });
        }
        let opts = SolveOptions {
            save: SaveAt::Final,
            ..opts
        };
        let grid = fixed_grid(&opts)?;
        Ok(Self {
            method: split.clone(),
            opts,
            grid,
            tapes: Vec::new(),
            parts: Vec::new(),
            subs: Vec::new(),
            k: [None, None],
            kbar: None,
            gy: None,
            y1: None,
            stats: GradStats::default(),
        })
    }

    /// The solve options.
    pub fn options(&self) -> &SolveOptions {
        &self.opts
    }

    /// Counters of the last forward/backward pass.
    pub fn stats(&self) -> GradStats {
        self.stats
    }

    /// Solves from `y0` and returns `y(t₁)`, taping every part evaluation.
    pub fn forward(&mut self, field: &mut F, y0: &S) -> Result<&S, SolveError<S>> {
        if let Some((index, value)) = y0.first_non_finite() {
            return Err(ArgError::NonFiniteInitialState { index, value }.into());
        }
        self.stats = GradStats::default();
        self.parts.clear();
        self.subs.clear();
        let mut y = y0.clone();
        let [kd, kk] = &mut self.k;
        let kd = kd.get_or_insert_with(|| y0.zeros_like());
        let kk = kk.get_or_insert_with(|| y0.zeros_like());
        // Index of the valid evaluation of each part (drift, kick), if any.
        let (mut drift_eval, mut kick_eval): (Option<usize>, Option<usize>) = (None, None);
        for n in 0..self.grid.len() - 1 {
            let (t, h) = (self.grid[n], self.grid[n + 1] - self.grid[n]);
            let mut tau = t;
            for &(part, a) in &self.method.sequence {
                let (valid, other, buf) = match part {
                    SplitPart::Drift => (&mut drift_eval, &mut kick_eval, &mut *kd),
                    SplitPart::Kick => (&mut kick_eval, &mut drift_eval, &mut *kk),
                };
                let first = valid.is_none();
                let eval = match *valid {
                    Some(e) => e,
                    None => {
                        let e = self.parts.len();
                        if self.tapes.len() <= e {
                            self.tapes.push(field.new_tape());
                        }
                        field.eval_part_taped(part, tau, &y, buf, &mut self.tapes[e]);
                        if let Some((index, value)) = buf.first_non_finite() {
                            let reason = FailReason::NonFinite {
                                location: "field",
                                index,
                                value,
                            };
                            return Err(failed(reason, t, h, n, &y, self.stats.forward));
                        }
                        self.parts.push(part);
                        *valid = Some(e);
                        e
                    }
                };
                y.axpy(S::Scalar::of(a * h), buf);
                *other = None;
                self.subs.push(SubStep {
                    coef: a * h,
                    eval,
                    first,
                });
                if part == SplitPart::Drift {
                    tau += a * h;
                }
            }
            self.stats.forward.nfe = self.parts.len();
            self.stats.forward.record_accept(h);
        }
        self.stats.tapes_peak = self.parts.len();
        self.y1 = Some(y);
        Ok(self.y1.as_ref().expect("just set"))
    }

    /// Given `dl_dy1 = ∂L/∂y(t₁)`, accumulates `∂L/∂θ` into `gtheta` and returns `∂L/∂y₀`.
    /// Call after [`SplitGradSolver::forward`] with the same field and parameters.
    pub fn backward(
        &mut self,
        field: &mut F,
        dl_dy1: &S,
        gtheta: &mut F::Grad,
    ) -> Result<S, SolveError<S>> {
        let y1 = super::checked_final_state(self.y1.as_ref(), dl_dy1)?;
        let kbar = self.kbar.get_or_insert_with(|| y1.zeros_like());
        let gy = self.gy.get_or_insert_with(|| y1.zeros_like());
        let mut lambda = dl_dy1.clone();
        kbar.set_zero();
        for sub in self.subs.iter().rev() {
            kbar.axpy(S::Scalar::of(sub.coef), &lambda);
            if sub.first {
                field.vjp_part(
                    self.parts[sub.eval],
                    &self.tapes[sub.eval],
                    kbar,
                    gy,
                    gtheta,
                );
                lambda.axpy(S::Scalar::of(1.0), gy);
                kbar.set_zero();
            }
        }
        self.stats.backward_vjp = self.parts.len();
        self.stats.backward_steps = self.grid.len() - 1;
        Ok(lambda)
    }
}
