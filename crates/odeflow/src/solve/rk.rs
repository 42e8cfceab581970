//! The explicit Runge–Kutta step, written once for every tableau and every state type.
//!
//! One attempt from `(t, y)` with step `h` computes the stages
//! `kᵢ = f(t + cᵢh, y + h Σ_{j<i} aᵢⱼ kⱼ)`, the new state `y₁ = y + h Σ bᵢ kᵢ`, and for an
//! embedded pair the error estimate `h Σ (bᵢ − b̂ᵢ) kᵢ`. Stage 0 is `f(t, y)` and is reused
//! when a rejected step is retried from the same point and, for FSAL tableaus, taken from the
//! last stage of the previous accepted step. Dense output uses the tableau's continuous
//! extension `y(t + θh) = y + h Σ bᵢ(θ) kᵢ` when it has one, and cubic Hermite
//! interpolation through `(y, f(t, y))`, `(y₁, f(t + h, y₁))` otherwise.

use serde::Serialize;

use super::Rhs;
use crate::real::Real;
use crate::state::State;
use crate::tableau::ButcherTableau;

/// What the solve loop reports to the field at the end of a step attempt.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Attempt {
    /// Start of the step.
    pub t: f64,
    /// Step size (negative when integrating backwards).
    pub h: f64,
    /// Whether the step was accepted.
    pub accepted: bool,
    /// The last stage of this (accepted, FSAL) step becomes stage 0 of the next step.
    pub carry_last_stage: bool,
}

/// Workspace and logic of explicit Runge–Kutta steps with one tableau.
pub struct RkStepper<'t, S: State> {
    tab: &'t ButcherTableau,
    ks: Vec<S>,
    stage: S,
    err: S,
    f_end: S,
    err_weights: Vec<f64>,
    coeffs: Vec<S::Scalar>,
    k0_valid: bool,
    nfe: usize,
}

impl<'t, S: State> RkStepper<'t, S> {
    /// A stepper for `tab` with buffers shaped like `y0`.
    pub fn new(tab: &'t ButcherTableau, y0: &S) -> Self {
        let s = tab.stages();
        Self {
            tab,
            ks: (0..s).map(|_| y0.zeros_like()).collect(),
            stage: y0.zeros_like(),
            err: y0.zeros_like(),
            f_end: y0.zeros_like(),
            err_weights: tab.error_weights().unwrap_or_default(),
            coeffs: vec![S::Scalar::zero(); s],
            k0_valid: false,
            nfe: 0,
        }
    }

    /// The tableau.
    pub fn tableau(&self) -> &'t ButcherTableau {
        self.tab
    }

    /// Field evaluations so far.
    pub fn nfe(&self) -> usize {
        self.nfe
    }

    /// The stages `k` of the last attempt.
    pub fn stages(&self) -> &[S] {
        &self.ks
    }

    /// The local error estimate of the last attempt (zero for tableaus without one).
    pub fn error(&self) -> &S {
        &self.err
    }

    /// Forgets the cached `f(t, y)` (call when `y` changes outside the stepper).
    pub fn invalidate_first_stage(&mut self) {
        self.k0_valid = false;
    }

    /// Makes sure stage 0 holds `f(t, y)`, evaluating it if needed; returns it.
    pub fn first_stage<F: Rhs<S>>(&mut self, f: &mut F, t: f64, y: &S) -> &S {
        if !self.k0_valid {
            f.eval_stage(0, t, y, &mut self.ks[0]);
            self.nfe += 1;
            self.k0_valid = true;
        }
        &self.ks[0]
    }

    /// One attempt of size `h` from `(t, y)`: fills the stages, `y_new`, and the error
    /// estimate. Call [`RkStepper::finish`] afterwards.
    pub fn attempt<F: Rhs<S>>(&mut self, f: &mut F, t: f64, h: f64, y: &S, y_new: &mut S) {
        let s = self.tab.stages();
        let (a, c, b) = (self.tab.a(), self.tab.c(), self.tab.b());
        self.first_stage(f, t, y);
        for i in 1..s {
            for (cf, aij) in self.coeffs.iter_mut().zip(&a[i][..i]) {
                *cf = S::Scalar::of(h * aij);
            }
            let (done, rest) = self.ks.split_at_mut(i);
            self.stage.assign_lincomb(y, &self.coeffs[..i], done);
            f.eval_stage(i, t + c[i] * h, &self.stage, &mut rest[0]);
            self.nfe += 1;
        }
        if self.tab.is_fsal() {
            // The last stage was evaluated at y + h Σ bⱼ kⱼ = y₁.
            y_new.assign(&self.stage);
        } else {
            for (cf, bi) in self.coeffs.iter_mut().zip(b) {
                *cf = S::Scalar::of(h * bi);
            }
            y_new.assign_lincomb(y, &self.coeffs[..s], &self.ks);
        }
        if !self.err_weights.is_empty() {
            self.err.set_zero();
            for (e, k) in self.err_weights.iter().zip(&self.ks) {
                if *e != 0.0 {
                    self.err.axpy(S::Scalar::of(h * e), k);
                }
            }
        }
    }

    /// Ends an attempt: tells the field, and keeps stage 0 for the next attempt (the same one
    /// after a rejection; the FSAL stage after an acceptance).
    pub fn finish<F: Rhs<S>>(&mut self, f: &mut F, t: f64, h: f64, accepted: bool) {
        let carry = accepted && self.tab.is_fsal();
        f.end_attempt(&Attempt {
            t,
            h,
            accepted,
            carry_last_stage: carry,
        });
        if carry {
            let s = self.tab.stages();
            self.ks.swap(0, s - 1);
        }
        self.k0_valid = !accepted || carry;
    }

    /// Ends an accepted attempt from `(t, y)` to `(t + h, y_new)` and returns the dense output
    /// at the fractions `thetas ∈ (0, 1)` of the step.
    pub fn finish_with_dense<F: Rhs<S>>(
        &mut self,
        f: &mut F,
        t: f64,
        h: f64,
        y: &S,
        y_new: &S,
        thetas: &[f64],
    ) -> Vec<S> {
        if thetas.is_empty() {
            self.finish(f, t, h, true);
            return Vec::new();
        }
        let mut out = Vec::with_capacity(thetas.len());
        if let Some(dense) = self.tab.dense() {
            for &th in thetas {
                let mut z = y.zeros_like();
                for (cf, row) in self.coeffs.iter_mut().zip(dense) {
                    let mut p = 0.0;
                    for d in row.iter().rev() {
                        p = (p + d) * th; // Horner on Σₘ dₘ θ^(m+1)
                    }
                    *cf = S::Scalar::of(h * p);
                }
                z.assign_lincomb(y, &self.coeffs, &self.ks);
                out.push(z);
            }
            self.finish(f, t, h, true);
            return out;
        }
        // Cubic Hermite through (y, f(t, y)) and (y₁, f(t + h, y₁)).
        let s = self.tab.stages();
        if self.tab.is_fsal() {
            self.f_end.assign(&self.ks[s - 1]);
            for &th in thetas {
                out.push(self.hermite(th, h, y, y_new));
            }
            self.finish(f, t, h, true);
        } else {
            self.finish(f, t, h, true);
            // f(t + h, y₁) is the next step's stage 0: evaluate it once, use it twice.
            f.eval_stage(0, t + h, y_new, &mut self.f_end);
            self.nfe += 1;
            for &th in thetas {
                out.push(self.hermite(th, h, y, y_new));
            }
            std::mem::swap(&mut self.ks[0], &mut self.f_end);
            self.k0_valid = true;
        }
        out
    }

    fn hermite(&self, th: f64, h: f64, y0: &S, y1: &S) -> S {
        let th2 = th * th;
        let th3 = th2 * th;
        let h00 = 2.0 * th3 - 3.0 * th2 + 1.0;
        let h10 = th3 - 2.0 * th2 + th;
        let h01 = -2.0 * th3 + 3.0 * th2;
        let h11 = th3 - th2;
        let mut z = y0.clone();
        z.scale(S::Scalar::of(h00));
        z.axpy(S::Scalar::of(h01), y1);
        z.axpy(S::Scalar::of(h * h10), &self.ks[0]);
        z.axpy(S::Scalar::of(h * h11), &self.f_end);
        z
    }
}

use num_traits::Zero;
