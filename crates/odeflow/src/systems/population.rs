//! Lotka–Volterra predator–prey model, state `(x, y)` (prey, predators):
//! `x' = αx − βxy`, `y' = δxy − γy`, with the first integral
//! `V = δx − γ ln x + βy − α ln y` (constant along solutions with x, y > 0).

use num_dual::DualNum;
use serde::{Deserialize, Serialize};

use super::{cst, System};

/// Lotka–Volterra model.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LotkaVolterra {
    /// Prey growth α.
    pub alpha: f64,
    /// Predation β.
    pub beta: f64,
    /// Predator death γ.
    pub gamma: f64,
    /// Predator growth δ.
    pub delta: f64,
}

impl Default for LotkaVolterra {
    fn default() -> Self {
        Self {
            alpha: 2.0 / 3.0,
            beta: 4.0 / 3.0,
            gamma: 1.0,
            delta: 1.0,
        }
    }
}

impl System for LotkaVolterra {
    fn name(&self) -> &'static str {
        "lotka-volterra"
    }
    fn dim(&self) -> usize {
        2
    }
    fn state_names(&self) -> Vec<String> {
        vec!["x".into(), "y".into()]
    }
    fn rhs<D: DualNum + Copy>(&self, y: &[D], dy: &mut [D]) {
        let xy = y[0] * y[1];
        dy[0] = y[0] * cst::<D>(self.alpha) - xy * cst::<D>(self.beta);
        dy[1] = xy * cst::<D>(self.delta) - y[1] * cst::<D>(self.gamma);
    }
    fn invariant_names(&self) -> Vec<&'static str> {
        vec!["first_integral"]
    }
    fn invariants<D: DualNum + Copy>(&self, y: &[D]) -> Vec<D> {
        vec![
            y[0] * cst::<D>(self.delta) - y[0].ln() * cst::<D>(self.gamma)
                + y[1] * cst::<D>(self.beta)
                - y[1].ln() * cst::<D>(self.alpha),
        ]
    }
    fn default_y0(&self) -> Vec<f64> {
        vec![1.0, 1.0]
    }
}
