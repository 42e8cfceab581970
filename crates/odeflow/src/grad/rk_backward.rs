//! The exact adjoint of one explicit Runge–Kutta step.
//!
//! For `Yᵢ = y + h Σ_{j<i} aᵢⱼ kⱼ`, `kᵢ = f(t + cᵢh, Yᵢ; θ)`, `y₁ = y + h Σ bᵢ kᵢ` and a
//! cotangent `λ = ∂L/∂y₁`, reverse-mode differentiation of the step gives, for
//! `i = s−1, …, 0`,
//!
//! ```text
//! k̄ᵢ = h bᵢ λ + h Σ_{j>i} aⱼᵢ Ȳⱼ,    Ȳᵢ = (∂f/∂y)(Yᵢ)ᵀ k̄ᵢ,    θ̄ += (∂f/∂θ)(Yᵢ)ᵀ k̄ᵢ,
//! ```
//!
//! and `∂L/∂y = λ + Σᵢ Ȳᵢ`. This is exactly what a tape through the step would compute
//! (the discrete adjoint of the scheme, Hager 2000; Sandu 2006), with one VJP per stage.
//! Stages that influence nothing (`bᵢ = 0` and no later stage uses them — the FSAL stage of
//! `dopri5`) are skipped.

use crate::field::VectorField;
use crate::real::Real;
use crate::state::State;
use crate::tableau::ButcherTableau;

/// Buffers for backward steps with one tableau.
pub struct StepBackward<S: State> {
    ybar: Vec<S>,
    kbar: S,
    needed: Vec<bool>,
}

impl<S: State> StepBackward<S> {
    /// Buffers shaped like `like` for `tab`.
    pub fn new(tab: &ButcherTableau, like: &S) -> Self {
        let s = tab.stages();
        let (a, b) = (tab.a(), tab.b());
        let mut needed = vec![false; s];
        for i in (0..s).rev() {
            needed[i] = b[i] != 0.0 || (i + 1..s).any(|j| a[j][i] != 0.0 && needed[j]);
        }
        Self {
            ybar: (0..s).map(|_| like.zeros_like()).collect(),
            kbar: like.zeros_like(),
            needed,
        }
    }

    /// True when the buffers have the size of `like` (a new batch size needs new buffers).
    pub fn fits(&self, like: &S) -> bool {
        self.kbar.len() == like.len()
    }

    /// Number of stages whose VJP a backward step evaluates.
    pub fn vjps_per_step(&self) -> usize {
        self.needed.iter().filter(|n| **n).count()
    }

    /// Replaces `lambda = ∂L/∂y₁` by `∂L/∂y` for the step of size `h` whose stage tapes are
    /// `tape(i)`, and accumulates the parameter gradient into `gtheta`.
    pub fn step<'t, F: VectorField<S>>(
        &mut self,
        tab: &ButcherTableau,
        h: f64,
        field: &mut F,
        tape: impl Fn(usize) -> &'t F::Tape,
        lambda: &mut S,
        gtheta: &mut F::Grad,
    ) where
        F::Tape: 't,
    {
        let s = tab.stages();
        let (a, b) = (tab.a(), tab.b());
        for i in (0..s).rev() {
            if !self.needed[i] {
                continue;
            }
            self.kbar.set_zero();
            if b[i] != 0.0 {
                self.kbar.axpy(S::Scalar::of(h * b[i]), lambda);
            }
            for j in i + 1..s {
                if a[j][i] != 0.0 && self.needed[j] {
                    self.kbar.axpy(S::Scalar::of(h * a[j][i]), &self.ybar[j]);
                }
            }
            field.vjp(tape(i), &self.kbar, &mut self.ybar[i], gtheta);
        }
        for i in 0..s {
            if self.needed[i] {
                lambda.axpy(S::Scalar::of(1.0), &self.ybar[i]);
            }
        }
    }
}
