//! The Lorenz system, scaled as in Zhu et al. (2022): `y' = F(10 y)/10` with
//! `F(x) = (σ(x₂ − x₁), x₁(ρ − x₃) − x₂, x₁x₂ − βx₃)`, σ = 10, ρ = 28, β = 8/3, which keeps
//! the attractor inside a box of size about 3.

use num_dual::DualNum;
use serde::{Deserialize, Serialize};

use super::{cst, System};

/// Scaled Lorenz system, state `(y₁, y₂, y₃)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Lorenz {
    /// σ.
    pub sigma: f64,
    /// ρ.
    pub rho: f64,
    /// β.
    pub beta: f64,
}

impl Default for Lorenz {
    fn default() -> Self {
        Self {
            sigma: 10.0,
            rho: 28.0,
            beta: 8.0 / 3.0,
        }
    }
}

impl System for Lorenz {
    fn name(&self) -> &'static str {
        "lorenz"
    }
    fn dim(&self) -> usize {
        3
    }
    fn state_names(&self) -> Vec<String> {
        vec!["y1".into(), "y2".into(), "y3".into()]
    }
    fn rhs<D: DualNum + Copy>(&self, y: &[D], dy: &mut [D]) {
        // F(10y)/10 written out: the factors of 10 cancel in the linear terms.
        let ten: D = cst(10.0);
        dy[0] = (y[1] - y[0]) * cst::<D>(self.sigma);
        dy[1] = y[0] * (cst::<D>(self.rho) - ten * y[2]) - y[1];
        dy[2] = ten * y[0] * y[1] - y[2] * cst::<D>(self.beta);
    }
    fn default_y0(&self) -> Vec<f64> {
        vec![-0.8, 0.7, 2.6]
    }
}
