//! The implicit midpoint rule `y₁ = y₀ + h f(t + h/2, (y₀ + y₁)/2)`.
//!
//! Symplectic for every Hamiltonian field (not only separable ones) and symmetric, of order 2
//! (GNI VI.3). With the midpoint `Y = (y₀ + y₁)/2` the step is the nonlinear equation
//! `G(Y) = Y − y₀ − (h/2) f(t + h/2, Y) = 0`, solved either by fixed-point iteration
//! `Y ← y₀ + (h/2) f(Y)` (converges for `h·Lip(f)/2 < 1`) or by Jacobian-free Newton–Krylov:
//! Newton steps `J δ = −G` with `J v ≈ v − (h/2)(f(Y + εv) − f(Y))/ε`, solved by GMRES. Both
//! need only the state operations, so they run on any [`State`]. The difference quotient uses
//! `ε = √ε_mach (1 + ‖Y‖)` with the machine epsilon of the state's scalar type (Knoll & Keyes
//! 2004), so it resolves the Jacobian in f32 as well as in f64. Convergence is declared when
//! the update's mixed RMS norm with `atol = rtol = tol` is at most 1, where `tol` is the
//! requested tolerance floored at `10 ε_mach` (an update below the rounding of the scalar type
//! cannot be resolved: the default 1e-12 would never converge in f32); otherwise the step
//! fails with [`FailReason::ImplicitNotConverged`]. A NaN or an infinity returned by the field
//! is a [`FailReason::NonFinite`] failure.

use serde::{Deserialize, Serialize};

use super::fixed::FixedStepper;
use super::Rhs;
use crate::error::{ArgError, FailReason};
use crate::real::Real;
use crate::state::State;

/// How the implicit equation is solved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ImplicitIteration {
    /// `Y ← y₀ + (h/2) f(Y)`.
    FixedPoint,
    /// Jacobian-free Newton–Krylov (GMRES inner solver).
    Newton,
}

/// Settings of the implicit solve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImplicitOptions {
    /// Iteration scheme.
    pub iteration: ImplicitIteration,
    /// Convergence tolerance (relative and absolute).
    pub tol: f64,
    /// Iteration cap per step.
    pub max_iterations: usize,
}

impl Default for ImplicitOptions {
    fn default() -> Self {
        Self {
            iteration: ImplicitIteration::FixedPoint,
            tol: 1e-12,
            max_iterations: 100,
        }
    }
}

impl ImplicitOptions {
    /// Checks the settings: a positive finite tolerance and at least one iteration.
    pub fn validate(&self) -> Result<(), ArgError> {
        if !(self.tol.is_finite() && self.tol > 0.0) {
            return Err(ArgError::BadTolerance {
                name: "implicit tol",
                value: self.tol,
            });
        }
        if self.max_iterations == 0 {
            return Err(ArgError::invalid(
                "max_iterations",
                0,
                "an implicit step needs at least one iteration",
            ));
        }
        Ok(())
    }

    /// The tolerance an iteration in scalar type `T` uses: `tol`, but no tighter than
    /// `10 ε_mach` of `T`.
    pub fn effective_tol<T: Real>(&self) -> f64 {
        self.tol
            .max(10.0 * <T as num_traits::Float>::epsilon().f64())
    }
}

pub(crate) struct MidpointStepper<S: State> {
    opts: ImplicitOptions,
    mid: S,
    k: S,
    next: S,
    krylov: Vec<S>,
    nfe: usize,
    iterations: usize,
}

impl<S: State> MidpointStepper<S> {
    pub(crate) fn new(opts: ImplicitOptions, y0: &S) -> Self {
        Self {
            opts,
            mid: y0.zeros_like(),
            k: y0.zeros_like(),
            next: y0.zeros_like(),
            krylov: Vec::new(),
            nfe: 0,
            iterations: 0,
        }
    }

    fn tol(&self) -> S::Scalar {
        S::Scalar::of(self.opts.effective_tol::<S::Scalar>())
    }

    /// Solves for the midpoint `self.mid`; leaves `self.k = f(t + h/2, mid)`.
    fn solve_midpoint<F: Rhs<S>>(
        &mut self,
        f: &mut F,
        t: f64,
        h: f64,
        y: &S,
    ) -> Result<(), FailReason> {
        let tm = t + 0.5 * h;
        let half = S::Scalar::of(0.5 * h);
        // Predictor: explicit Euler to the midpoint.
        f.eval(tm, y, &mut self.k);
        self.nfe += 1;
        field_finite(&self.k)?;
        self.mid.assign(y);
        self.mid.axpy(half, &self.k);
        let mut residual = f64::INFINITY;
        let mut done = 0;
        for _ in 0..self.opts.max_iterations {
            self.iterations += 1;
            done += 1;
            f.eval(tm, &self.mid, &mut self.k);
            self.nfe += 1;
            // The midpoint is finite here (a non-finite update ends the loop below), so a
            // non-finite value is the field's.
            field_finite(&self.k)?;
            match self.opts.iteration {
                ImplicitIteration::FixedPoint => {
                    self.next.assign(y);
                    self.next.axpy(half, &self.k);
                    // next − mid is the update.
                    let mut d = self.next.clone();
                    d.axpy(S::Scalar::of(-1.0), &self.mid);
                    residual = S::weighted_rms(&d, &self.next, &self.mid, self.tol(), self.tol());
                    std::mem::swap(&mut self.mid, &mut self.next);
                }
                ImplicitIteration::Newton => {
                    // G(Y) = Y − y − (h/2) f(Y), into `next`, then solve J δ = −G.
                    let mut g = self.mid.clone();
                    g.axpy(S::Scalar::of(-1.0), y);
                    g.axpy(-half, &self.k);
                    g.scale(S::Scalar::of(-1.0));
                    let delta = self.gmres(f, tm, h, &g)?;
                    self.mid.axpy(S::Scalar::of(1.0), &delta);
                    residual =
                        S::weighted_rms(&delta, &self.mid, &self.mid, self.tol(), self.tol());
                }
            }
            if !residual.is_finite() {
                break;
            }
            if residual <= 1.0 {
                // `k` was evaluated before the last update: refresh it at the converged midpoint.
                f.eval(tm, &self.mid, &mut self.k);
                self.nfe += 1;
                return Ok(());
            }
        }
        Err(FailReason::ImplicitNotConverged {
            iterations: done,
            residual: residual * self.opts.effective_tol::<S::Scalar>(),
            tol: self.opts.effective_tol::<S::Scalar>(),
        })
    }

    /// Restarted-free GMRES (at most `min(30, n)` Krylov vectors) for `J δ = rhs` with the
    /// finite-difference Jacobian-vector product of `G` at `self.mid` (`self.k = f(mid)`).
    fn gmres<F: Rhs<S>>(&mut self, f: &mut F, tm: f64, h: f64, rhs: &S) -> Result<S, FailReason> {
        let m = rhs.len().clamp(1, 30);
        let beta = rhs.dot(rhs).sqrt();
        let mut x = rhs.zeros_like();
        if beta == 0.0 {
            return Ok(x);
        }
        let mid_norm = self.mid.dot(&self.mid).sqrt();
        let eps = <S::Scalar as num_traits::Float>::epsilon().f64().sqrt() * (1.0 + mid_norm);
        while self.krylov.len() < m + 1 {
            self.krylov.push(rhs.zeros_like());
        }
        self.krylov[0].assign(rhs);
        self.krylov[0].scale(S::Scalar::of(1.0 / beta));
        let mut hess = vec![vec![0.0f64; m]; m + 1];
        let (mut cs, mut sn) = (vec![0.0f64; m], vec![0.0f64; m]);
        let mut g = vec![0.0f64; m + 1];
        g[0] = beta;
        let mut used = 0;
        let mut probe = rhs.zeros_like();
        let mut fp = rhs.zeros_like();
        for j in 0..m {
            // w = J v_j = v_j − (h/2)(f(mid + ε v_j) − f(mid))/ε
            probe.assign(&self.mid);
            probe.axpy(S::Scalar::of(eps), &self.krylov[j]);
            f.eval(tm, &probe, &mut fp);
            self.nfe += 1;
            field_finite(&fp)?;
            fp.axpy(S::Scalar::of(-1.0), &self.k);
            let mut w = self.krylov[j].clone();
            w.axpy(S::Scalar::of(-0.5 * h / eps), &fp);
            for (row, v) in hess.iter_mut().zip(&self.krylov).take(j + 1) {
                row[j] = w.dot(v);
                w.axpy(S::Scalar::of(-row[j]), v);
            }
            hess[j + 1][j] = w.dot(&w).sqrt();
            for i in 0..j {
                let tmp = cs[i] * hess[i][j] + sn[i] * hess[i + 1][j];
                hess[i + 1][j] = -sn[i] * hess[i][j] + cs[i] * hess[i + 1][j];
                hess[i][j] = tmp;
            }
            let r = hess[j][j].hypot(hess[j + 1][j]);
            if r == 0.0 || !r.is_finite() {
                break;
            }
            cs[j] = hess[j][j] / r;
            sn[j] = hess[j + 1][j] / r;
            let sub = hess[j + 1][j];
            hess[j][j] = r;
            hess[j + 1][j] = 0.0;
            g[j + 1] = -sn[j] * g[j];
            g[j] *= cs[j];
            used = j + 1;
            if g[j + 1].abs() <= 1e-12 * beta || sub <= 1e-300 {
                break;
            }
            self.krylov[j + 1].assign(&w);
            self.krylov[j + 1].scale(S::Scalar::of(1.0 / sub));
        }
        // Back substitution H y = g, then x = Σ yᵢ vᵢ.
        let mut yv = vec![0.0f64; used];
        for i in (0..used).rev() {
            let s: f64 = (i + 1..used).map(|k| hess[i][k] * yv[k]).sum();
            yv[i] = (g[i] - s) / hess[i][i];
        }
        for (i, yi) in yv.iter().enumerate() {
            x.axpy(S::Scalar::of(*yi), &self.krylov[i]);
        }
        Ok(x)
    }
}

/// A non-finite field value as a failure.
fn field_finite<S: State>(k: &S) -> Result<(), FailReason> {
    match k.first_non_finite() {
        Some((index, value)) => Err(FailReason::NonFinite {
            location: "field",
            index,
            value,
        }),
        None => Ok(()),
    }
}

impl<S: State, F: Rhs<S>> FixedStepper<S, F> for MidpointStepper<S> {
    fn step(&mut self, f: &mut F, t: f64, h: f64, y: &S, y_new: &mut S) -> Result<(), FailReason> {
        self.solve_midpoint(f, t, h, y)?;
        // y₁ = y₀ + h f(Y).
        y_new.assign(y);
        y_new.axpy(S::Scalar::of(h), &self.k);
        Ok(())
    }
    fn nfe(&self) -> usize {
        self.nfe
    }
    fn iterations(&self) -> usize {
        self.iterations
    }
    fn field_non_finite(&self) -> Option<(usize, f64)> {
        self.k.first_non_finite()
    }
}
