//! Symplectic splitting methods for fields split as `f = f_drift + f_kick`.
//!
//! For a separable Hamiltonian `H(q, p) = T(p) + V(q)` both parts are integrated exactly by
//! an Euler step (the drift does not change `p`, the kick does not change `q`), and any
//! composition of such flows is a symplectic map (Hairer, Lubich, Wanner, *Geometric
//! Numerical Integration*, II.5 and VI.3). A method is a sequence of sub-steps
//! `(part, aᵢ)`, each `y ← y + aᵢ h f_part(y)`:
//!
//! * `symplectic-euler-kd`: kick then drift (`p₁ = p₀ − h∇V(q₀)`, `q₁ = q₀ + h∇T(p₁)`), order 1;
//! * `symplectic-euler-dk`: drift then kick (its adjoint), order 1;
//! * `verlet` (Störmer–Verlet, leapfrog): half kick, drift, half kick, order 2;
//! * `verlet4`, `verlet6`: Yoshida's triple-jump compositions
//!   `Φ(γ₁h)∘Φ(γ₂h)∘Φ(γ₁h)`, `γ₁ = 1/(2 − 2^(1/(p+1)))`, `γ₂ = 1 − 2γ₁`, raising the order of a
//!   symmetric method from p to p + 2 (Yoshida 1990; GNI II.4).
//!
//! A part's evaluation is reused while the components it depends on are unchanged, so the
//! two half kicks that meet between Verlet steps cost one force evaluation.

use serde::Serialize;

use super::fixed::FixedStepper;
use super::SplitRhs;
use crate::error::FailReason;
use crate::real::Real;
use crate::state::State;

/// Which part of a split field a sub-step uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum SplitPart {
    /// Positions move with velocities `∂T/∂p`.
    Drift,
    /// Momenta move with forces `−∂V/∂q`.
    Kick,
}

/// A splitting (composition) method.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Splitting {
    /// Name as the CLI accepts it.
    pub name: String,
    /// Classical order.
    pub order: usize,
    /// Sub-steps `(part, coefficient)`; the drift coefficients sum to 1, and so do the kicks.
    pub sequence: Vec<(SplitPart, f64)>,
}

impl Splitting {
    /// Kick then drift (order 1).
    pub fn symplectic_euler_kd() -> Self {
        Self::new(
            "symplectic-euler-kd",
            1,
            vec![(SplitPart::Kick, 1.0), (SplitPart::Drift, 1.0)],
        )
    }
    /// Drift then kick (order 1).
    pub fn symplectic_euler_dk() -> Self {
        Self::new(
            "symplectic-euler-dk",
            1,
            vec![(SplitPart::Drift, 1.0), (SplitPart::Kick, 1.0)],
        )
    }
    /// Störmer–Verlet, velocity form (order 2).
    pub fn verlet() -> Self {
        Self::new(
            "verlet",
            2,
            vec![
                (SplitPart::Kick, 0.5),
                (SplitPart::Drift, 1.0),
                (SplitPart::Kick, 0.5),
            ],
        )
    }
    /// Triple jump of Störmer–Verlet (order 4).
    pub fn verlet4() -> Self {
        Self::triple_jump("verlet4", &Self::verlet())
    }
    /// Triple jump of `verlet4` (order 6).
    pub fn verlet6() -> Self {
        Self::triple_jump("verlet6", &Self::verlet4())
    }

    fn new(name: &str, order: usize, sequence: Vec<(SplitPart, f64)>) -> Self {
        Self {
            name: name.to_string(),
            order,
            sequence,
        }
    }

    /// `Φ(γ₁h)∘Φ(γ₂h)∘Φ(γ₁h)` of a symmetric method of order `p` (order `p + 2`).
    pub fn triple_jump(name: &str, base: &Splitting) -> Self {
        let p = base.order as f64;
        let g1 = 1.0 / (2.0 - 2f64.powf(1.0 / (p + 1.0)));
        let g2 = 1.0 - 2.0 * g1;
        let mut seq: Vec<(SplitPart, f64)> = Vec::new();
        for g in [g1, g2, g1] {
            for &(part, a) in &base.sequence {
                match seq.last_mut() {
                    Some((last, c)) if *last == part => *c += g * a,
                    _ => seq.push((part, g * a)),
                }
            }
        }
        Self::new(name, base.order + 2, seq)
    }

    /// Number of sub-steps per step.
    pub fn stages(&self) -> usize {
        self.sequence.len()
    }
}

pub(crate) struct SplitStepper<'m, S: State> {
    method: &'m Splitting,
    drift: S,
    kick: S,
    drift_valid: bool,
    kick_valid: bool,
    nfe: usize,
}

impl<'m, S: State> SplitStepper<'m, S> {
    pub(crate) fn new(method: &'m Splitting, y0: &S) -> Self {
        Self {
            method,
            drift: y0.zeros_like(),
            kick: y0.zeros_like(),
            drift_valid: false,
            kick_valid: false,
            nfe: 0,
        }
    }
}

impl<S: State, F: SplitRhs<S>> FixedStepper<S, F> for SplitStepper<'_, S> {
    fn step(&mut self, f: &mut F, t: f64, h: f64, y: &S, y_new: &mut S) -> Result<(), FailReason> {
        y_new.assign(y);
        let mut tau = t;
        for &(part, a) in &self.method.sequence {
            match part {
                SplitPart::Kick => {
                    if !self.kick_valid {
                        f.kick(tau, y_new, &mut self.kick);
                        self.nfe += 1;
                        self.kick_valid = true;
                    }
                    y_new.axpy(S::Scalar::of(a * h), &self.kick);
                    self.drift_valid = false;
                }
                SplitPart::Drift => {
                    if !self.drift_valid {
                        f.drift(tau, y_new, &mut self.drift);
                        self.nfe += 1;
                        self.drift_valid = true;
                    }
                    y_new.axpy(S::Scalar::of(a * h), &self.drift);
                    self.kick_valid = false;
                    tau += a * h;
                }
            }
        }
        Ok(())
    }
    fn nfe(&self) -> usize {
        self.nfe
    }
    fn field_non_finite(&self) -> Option<(usize, f64)> {
        self.kick
            .first_non_finite()
            .or_else(|| self.drift.first_non_finite())
    }
}
