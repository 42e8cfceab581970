//! Step-size control: the PI controller and Hairer's initial step.
//!
//! With `E` the mixed RMS norm of the local error estimate (accept iff `E ≤ 1`) and `k` the
//! order of that estimate (`min(p, p̂) + 1`), the PI controller of Gustafsson (1991), as in
//! Hairer & Wanner II (IV.2), proposes `h_new = h · safety · E^(−α/k) · E_prev^(β/k)`,
//! clamped to `[factor_min, factor_max]`, and never grows right after a rejection. With
//! `β = 0` it is the classic I controller.

use serde::{Deserialize, Serialize};

use super::Rhs;
use crate::error::ArgError;
use crate::real::Real;
use crate::state::State;

/// Settings of the PI step-size controller.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PiController {
    /// Safety factor (< 1).
    pub safety: f64,
    /// Smallest factor a step may shrink by.
    pub factor_min: f64,
    /// Largest factor a step may grow by.
    pub factor_max: f64,
    /// Integral gain α (exponent of `1/E`, divided by the estimate's order).
    pub alpha: f64,
    /// Proportional gain β (exponent of `E_prev`, divided by the estimate's order).
    pub beta: f64,
}

impl Default for PiController {
    fn default() -> Self {
        Self {
            safety: 0.9,
            factor_min: 0.2,
            factor_max: 10.0,
            alpha: 0.7,
            beta: 0.4,
        }
    }
}

impl PiController {
    /// Checks the settings.
    pub fn validate(&self) -> Result<(), ArgError> {
        if !(self.safety > 0.0 && self.safety <= 1.0) {
            return Err(ArgError::invalid(
                "safety",
                self.safety,
                "must lie in (0, 1]",
            ));
        }
        if !(self.factor_min > 0.0 && self.factor_min < 1.0) {
            return Err(ArgError::invalid(
                "factor_min",
                self.factor_min,
                "must lie in (0, 1)",
            ));
        }
        if !(self.factor_max > 1.0 && self.factor_max.is_finite()) {
            return Err(ArgError::invalid(
                "factor_max",
                self.factor_max,
                "must be finite and > 1",
            ));
        }
        if !(self.alpha > 0.0 && self.beta >= 0.0) {
            return Err(ArgError::invalid(
                "alpha/beta",
                format!("{}/{}", self.alpha, self.beta),
                "need alpha > 0, beta ≥ 0",
            ));
        }
        Ok(())
    }

    /// Factor for the next step after accepting a step with error `e` (previous accepted
    /// error `e_prev`), for an error estimate of order `k`.
    pub fn accept_factor(&self, e: f64, e_prev: f64, k: f64) -> f64 {
        if e == 0.0 {
            return self.factor_max;
        }
        let f = self.safety * e.powf(-self.alpha / k) * e_prev.powf(self.beta / k);
        f.clamp(self.factor_min, self.factor_max)
    }

    /// Factor after rejecting a step with error `e > 1` (or a non-finite one).
    pub fn reject_factor(&self, e: f64, k: f64) -> f64 {
        if !e.is_finite() {
            return self.factor_min;
        }
        (self.safety * e.powf(-1.0 / k)).clamp(self.factor_min, 1.0)
    }
}

/// Hairer's initial step (Hairer, Nørsett, Wanner I, II.4, p. 169), for a method of order
/// `order`, given `f0 = f(t0, y0)`. Costs one evaluation. Norms are the mixed RMS norm with
/// scale `atol + rtol·|y0|`. Returns a positive step size (the caller applies the direction).
#[allow(clippy::too_many_arguments)]
pub fn hairer_initial_step<S: State, F: Rhs<S>>(
    f: &mut F,
    t0: f64,
    y0: &S,
    f0: &S,
    order: usize,
    rtol: f64,
    atol: f64,
    dir: f64,
) -> f64 {
    let (r, a) = (S::Scalar::of(rtol), S::Scalar::of(atol));
    let d0 = S::weighted_rms(y0, y0, y0, a, r);
    let d1 = S::weighted_rms(f0, y0, y0, a, r);
    let h0 = if d0 < 1e-5 || d1 < 1e-5 {
        1e-6
    } else {
        0.01 * d0 / d1
    };
    let mut y1 = y0.clone();
    y1.axpy(S::Scalar::of(dir * h0), f0);
    let mut f1 = y0.zeros_like();
    f.eval(t0 + dir * h0, &y1, &mut f1);
    f1.axpy(S::Scalar::of(-1.0), f0);
    let d2 = S::weighted_rms(&f1, y0, y0, a, r) / h0;
    let m = d1.max(d2);
    let h1 = if m <= 1e-15 {
        (h0 * 1e-3).max(1e-6)
    } else {
        (0.01 / m).powf(1.0 / (order as f64 + 1.0))
    };
    (100.0 * h0).min(h1)
}
