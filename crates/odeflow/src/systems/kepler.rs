//! The Kepler two-body problem in the plane, state `(p₁, p₂, q₁, q₂)`:
//! `q' = p`, `p' = −q/|q|³`, with energy `H = |p|²/2 − 1/|q|` and angular momentum
//! `L = q₁p₂ − q₂p₁` (GNI I.2).

use num_dual::DualNum;
use serde::{Deserialize, Serialize};

use super::{cst, System};

/// Kepler problem.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Kepler;

impl Kepler {
    /// Initial state of an orbit with eccentricity `e` starting at pericentre:
    /// `q = (1 − e, 0)`, `p = (0, √((1 + e)/(1 − e)))`; period 2π.
    pub fn orbit(e: f64) -> Vec<f64> {
        vec![0.0, ((1.0 + e) / (1.0 - e)).sqrt(), 1.0 - e, 0.0]
    }
}

impl System for Kepler {
    fn name(&self) -> &'static str {
        "kepler"
    }
    fn dim(&self) -> usize {
        4
    }
    fn state_names(&self) -> Vec<String> {
        vec!["p1".into(), "p2".into(), "q1".into(), "q2".into()]
    }
    fn rhs<D: DualNum + Copy>(&self, y: &[D], dy: &mut [D]) {
        self.kick(y, dy);
        dy[2] = y[0];
        dy[3] = y[1];
    }
    fn invariant_names(&self) -> Vec<&'static str> {
        vec!["energy", "angular_momentum"]
    }
    fn invariants<D: DualNum + Copy>(&self, y: &[D]) -> Vec<D> {
        let r = (y[2] * y[2] + y[3] * y[3]).sqrt();
        let h = (y[0] * y[0] + y[1] * y[1]) * cst::<D>(0.5) - r.recip();
        let l = y[2] * y[1] - y[3] * y[0];
        vec![h, l]
    }
    fn is_separable(&self) -> bool {
        true
    }
    fn drift<D: DualNum + Copy>(&self, y: &[D], dy: &mut [D]) {
        dy[0] = D::zero();
        dy[1] = D::zero();
        dy[2] = y[0];
        dy[3] = y[1];
    }
    fn kick<D: DualNum + Copy>(&self, y: &[D], dy: &mut [D]) {
        let r2 = y[2] * y[2] + y[3] * y[3];
        let r3 = r2 * r2.sqrt();
        dy[0] = -(y[2] / r3);
        dy[1] = -(y[3] / r3);
        dy[2] = D::zero();
        dy[3] = D::zero();
    }
    fn default_y0(&self) -> Vec<f64> {
        Kepler::orbit(0.6)
    }
}
