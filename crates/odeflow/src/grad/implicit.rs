//! Gradients through the implicit midpoint rule by the implicit-function theorem.
//!
//! A step `y ↦ y₁` of the implicit midpoint rule solves for the midpoint `Y`
//!
//! ```text
//! Y = y + (h/2) f(Y; θ),        y₁ = y + h f(Y; θ) = 2Y − y.
//! ```
//!
//! Differentiating the fixed-point equation, `(I − (h/2)J) dY = dy + (h/2) f_θ dθ` with
//! `J = ∂f/∂y(Y)`, so for `λ = ∂L/∂y₁`
//!
//! ```text
//! dL = λᵀ(2 dY − dy) = (μ − λ)ᵀ dy + (h/2) μᵀ f_θ dθ,    (I − (h/2)J)ᵀ μ = 2λ.
//! ```
//!
//! The adjoint system is solved by the fixed-point iteration `μ ← 2λ + (h/2) Jᵀμ` with one
//! VJP per iteration — the transpose of the forward iteration `Y ← y + (h/2) f(Y)`, with the
//! same contraction factor `(h/2)‖J‖` — until `‖Δμ‖₂ ≤ tol ‖μ‖₂` (the adjoint is linear in
//! `λ`, so the test is relative); then `∂L/∂y = μ − λ` and `∂L/∂θ += (h/2) μᵀ ∂f/∂θ(Y)`. No
//! tape of the nonlinear iterations is kept: only the converged midpoint's, one per step.
//! The result is the derivative of the exact implicit step (to the iteration tolerance),
//! not of the iterations that approximated it.
//!
//! The forward midpoint is found by the fixed-point iteration of
//! [`crate::solve::ImplicitOptions`] with its tolerance and iteration cap, started from an
//! explicit Euler predictor — or, when the initial state is bitwise the one of the previous
//! call (full-batch training), from the previous call's midpoints; the adjoint likewise
//! starts from the previous call's `μ`. Warm starts change the number of iterations, not
//! the converged values beyond the tolerance. Non-convergence of either iteration is a
//! [`FailReason::ImplicitNotConverged`] failure (in the backward pass it concerns the
//! adjoint system of the step it names).

use super::GradStats;
use crate::error::{ArgError, FailReason, Failure, SolveError};
use crate::field::VectorField;
use crate::real::Real;
use crate::solve::{
    fixed_grid, ImplicitIteration, ImplicitOptions, Method, SaveAt, Solution, SolveOptions, Stats,
    Stepping,
};
use crate::state::State;

/// The failure of a step at `(t, h, step)` with `y` the last good state.
pub(super) fn failed<S: State>(
    reason: FailReason,
    t: f64,
    h: f64,
    step: usize,
    y: &S,
    stats: Stats,
) -> SolveError<S> {
    SolveError::Failed(Box::new(Failure {
        reason,
        t,
        h,
        step,
        partial: Solution {
            t: Vec::new(),
            y: Vec::new(),
            t_final: t,
            y_final: y.clone(),
            stats,
        },
    }))
}

/// The buffer kept in `slot` when it has `like`'s size and `reuse` holds, else a new one.
fn sized<S: State>(slot: &mut Option<S>, like: &S, reuse: bool) -> S {
    match slot.take() {
        Some(b) if reuse && b.len() == like.len() => b,
        _ => like.zeros_like(),
    }
}

/// An implicit-midpoint solve with the implicit-function-theorem gradient ([module
/// docs](self)).
pub struct MidpointGradSolver<S: State, F: VectorField<S>> {
    opts: SolveOptions,
    implicit: ImplicitOptions,
    grid: Vec<f64>,
    tapes: Vec<F::Tape>,
    mids: Vec<S>,
    mus: Vec<S>,
    y0_prev: Option<S>,
    k: Option<S>,
    next: Option<S>,
    gy: Option<S>,
    diff: Option<S>,
    scratch_grad: Option<F::Grad>,
    y1: Option<S>,
    stats: GradStats,
}

impl<S: State, F: VectorField<S>> MidpointGradSolver<S, F> {
    /// A solver for `Method::Implicit` on a fixed grid. The forward iteration must be the
    /// fixed-point one (Newton–Krylov is not differentiated here).
    pub fn new(method: &Method, opts: SolveOptions) -> Result<Self, ArgError> {
        let Method::Implicit(implicit) = method else {
            return Err(ArgError::MethodUnsuited {
                method: method.name().to_string(),
                reason: "is not the implicit midpoint rule".into(),
            });
        };
        implicit.validate()?;
        if implicit.iteration != ImplicitIteration::FixedPoint {
            return Err(ArgError::invalid(
                "implicit iteration",
                "newton",
                "gradients through the implicit midpoint rule use the fixed-point iteration",
            ));
        }
        if matches!(opts.stepping, Stepping::Adaptive(_)) {
            return Err(ArgError::MethodUnsuited {
                method: "implicit-midpoint".into(),
                reason: "is a fixed-step method; give a step size or a number of steps".into(),
            });
        }
        let opts = SolveOptions {
            save: SaveAt::Final,
            ..opts
        };
        let grid = fixed_grid(&opts)?;
        Ok(Self {
            opts,
            implicit: implicit.clone(),
            grid,
            tapes: Vec::new(),
            mids: Vec::new(),
            mus: Vec::new(),
            y0_prev: None,
            k: None,
            next: None,
            gy: None,
            diff: None,
            scratch_grad: None,
            y1: None,
            stats: GradStats::default(),
        })
    }

    /// The solve options.
    pub fn options(&self) -> &SolveOptions {
        &self.opts
    }

    /// Replaces the stepping (fixed grids only).
    pub fn set_stepping(&mut self, stepping: Stepping) -> Result<(), ArgError> {
        let opts = SolveOptions {
            stepping,
            ..self.opts.clone()
        };
        let fresh = Self::new(&Method::Implicit(self.implicit.clone()), opts)?;
        self.opts = fresh.opts;
        self.grid = fresh.grid;
        self.mus.clear();
        self.y0_prev = None;
        Ok(())
    }

    /// Counters of the last forward/backward pass (`forward.implicit_iterations` counts the
    /// midpoint iterations, `backward_vjp` every VJP of the adjoint iterations).
    pub fn stats(&self) -> GradStats {
        self.stats
    }

    fn tol<T: Real>(&self) -> f64 {
        self.implicit.effective_tol::<T>()
    }

    /// Whether `y0` is bitwise the initial state of the previous call.
    fn same_start(&mut self, y0: &S) -> bool {
        let (Some(prev), Some(diff)) = (self.y0_prev.as_ref(), self.diff.as_mut()) else {
            return false;
        };
        if prev.len() != y0.len() {
            return false;
        }
        diff.assign(y0);
        diff.axpy(S::Scalar::of(-1.0), prev);
        diff.dot(diff) == 0.0
    }

    /// Solves from `y0` and returns `y(t₁)`, keeping one tape per step at the midpoint.
    pub fn forward(&mut self, field: &mut F, y0: &S) -> Result<&S, SolveError<S>> {
        if let Some((index, value)) = y0.first_non_finite() {
            return Err(ArgError::NonFiniteInitialState { index, value }.into());
        }
        self.stats = GradStats::default();
        if self.diff.as_ref().is_some_and(|d| d.len() != y0.len()) {
            self.diff = None;
        }
        self.diff.get_or_insert_with(|| y0.zeros_like());
        let warm = self.same_start(y0);
        if !warm {
            self.mids.clear();
            self.mus.clear();
        }
        let tol = S::Scalar::of(self.tol::<S::Scalar>());
        let mut y = y0.clone();
        let mut k_buf = sized(&mut self.k, y0, warm);
        let mut next_buf = sized(&mut self.next, y0, warm);
        let (k, next) = (&mut k_buf, &mut next_buf);
        let diff = self.diff.as_mut().expect("sized above");
        let mut stats = Stats::default();
        let steps = self.grid.len() - 1;
        let mut result = Ok(());
        for n in 0..steps {
            let (t, h) = (self.grid[n], self.grid[n + 1] - self.grid[n]);
            let (tm, half) = (t + 0.5 * h, S::Scalar::of(0.5 * h));
            if self.mids.len() <= n {
                // Predictor: explicit Euler to the midpoint.
                field.eval(tm, &y, k);
                stats.nfe += 1;
                let mut mid = y.clone();
                mid.axpy(half, k);
                self.mids.push(mid);
            }
            let mid = &mut self.mids[n];
            let mut residual = f64::INFINITY;
            let mut converged = false;
            let mut done = 0;
            while done < self.implicit.max_iterations {
                done += 1;
                field.eval(tm, mid, k);
                stats.nfe += 1;
                if let Some((index, value)) = k.first_non_finite() {
                    let reason = FailReason::NonFinite {
                        location: "field",
                        index,
                        value,
                    };
                    result = Err(failed(reason, t, h, n, &y, stats));
                    break;
                }
                next.assign(&y);
                next.axpy(half, k);
                diff.assign(next);
                diff.axpy(S::Scalar::of(-1.0), mid);
                residual = S::weighted_rms(diff, next, mid, tol, tol);
                std::mem::swap(mid, next);
                if residual <= 1.0 {
                    converged = true;
                    break;
                }
                if !residual.is_finite() {
                    break;
                }
            }
            stats.implicit_iterations += done;
            if result.is_err() {
                break;
            }
            if !converged {
                let tol = self.tol::<S::Scalar>();
                let reason = FailReason::ImplicitNotConverged {
                    iterations: done,
                    residual: residual * tol,
                    tol,
                };
                result = Err(failed(reason, t, h, n, &y, stats));
                break;
            }
            if self.tapes.len() <= n {
                self.tapes.push(field.new_tape());
            }
            field.eval_taped(tm, mid, k, &mut self.tapes[n]);
            stats.nfe += 1;
            y.axpy(S::Scalar::of(h), k);
            stats.record_accept(h);
        }
        self.k = Some(k_buf);
        self.next = Some(next_buf);
        self.stats.forward = stats;
        self.stats.tapes_peak = steps;
        if let Err(e) = result {
            // A failed forward pass leaves no usable warm start or state.
            self.mids.clear();
            self.mus.clear();
            self.y0_prev = None;
            self.y1 = None;
            return Err(e);
        }
        match self.y0_prev.as_mut() {
            Some(p) if p.len() == y0.len() => p.assign(y0),
            _ => self.y0_prev = Some(y0.clone()),
        }
        self.y1 = Some(y);
        Ok(self.y1.as_ref().expect("just set"))
    }

    /// Given `dl_dy1 = ∂L/∂y(t₁)`, accumulates `∂L/∂θ` into `gtheta` and returns `∂L/∂y₀`.
    /// Call after [`MidpointGradSolver::forward`] with the same field and parameters.
    pub fn backward(
        &mut self,
        field: &mut F,
        dl_dy1: &S,
        gtheta: &mut F::Grad,
    ) -> Result<S, SolveError<S>> {
        super::checked_final_state(self.y1.as_ref(), dl_dy1)?;
        let tol = self.tol::<S::Scalar>();
        let steps = self.grid.len() - 1;
        if self.mus.len() != steps {
            self.mus.clear();
        }
        let scratch = self.scratch_grad.get_or_insert_with(|| field.zero_grad());
        scratch.set_zero();
        let mut gy = sized(&mut self.gy, dl_dy1, true);
        let mut next = sized(&mut self.next, dl_dy1, true);
        let mut lambda = dl_dy1.clone();
        let mut vjps = 0;
        let mut mus = std::mem::take(&mut self.mus);
        let warm = mus.len() == steps;
        for n in (0..steps).rev() {
            let (t, h) = (self.grid[n], self.grid[n + 1] - self.grid[n]);
            let half = S::Scalar::of(0.5 * h);
            if !warm {
                // Iterations run from n = steps−1 down: index n of `mus` is filled last.
                mus.push(dl_dy1.zeros_like());
            }
            let slot = if warm { n } else { mus.len() - 1 };
            let mu = &mut mus[slot];
            if !warm {
                mu.assign(&lambda);
                mu.scale(S::Scalar::of(2.0));
            }
            let mut converged = false;
            let mut done = 0;
            let mut rel = f64::INFINITY;
            while done < self.implicit.max_iterations {
                done += 1;
                field.vjp(&self.tapes[n], mu, &mut gy, scratch);
                vjps += 1;
                next.assign(&lambda);
                next.scale(S::Scalar::of(2.0));
                next.axpy(half, &gy);
                let norm = next.dot(&next).sqrt();
                gy.assign(&next);
                gy.axpy(S::Scalar::of(-1.0), mu);
                let change = gy.dot(&gy).sqrt();
                std::mem::swap(mu, &mut next);
                rel = if norm > 0.0 { change / norm } else { change };
                if !(norm.is_finite() && change.is_finite()) {
                    // Diverged (or overflowed in the norms): not converged.
                    rel = f64::INFINITY;
                    break;
                }
                if change <= tol * norm {
                    converged = true;
                    break;
                }
            }
            if !converged {
                self.stats.backward_vjp = vjps;
                let reason = FailReason::ImplicitNotConverged {
                    iterations: done,
                    residual: rel,
                    tol,
                };
                return Err(failed(reason, t, h, n, &lambda, self.stats.forward));
            }
            // θ̄ += (h/2) μᵀ ∂f/∂θ(Y);  λ ← μ − λ.
            next.assign(mu);
            next.scale(half);
            field.vjp(&self.tapes[n], &next, &mut gy, gtheta);
            vjps += 1;
            lambda.scale(S::Scalar::of(-1.0));
            lambda.axpy(S::Scalar::of(1.0), mu);
        }
        if !warm {
            mus.reverse();
        }
        self.mus = mus;
        self.gy = Some(gy);
        self.next = Some(next);
        self.stats.backward_vjp = vjps;
        self.stats.backward_steps = steps;
        Ok(lambda)
    }
}
