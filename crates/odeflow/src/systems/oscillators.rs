//! Scalar and two-dimensional oscillators: linear decay, harmonic oscillator, pendulum,
//! damped cubic oscillator, van der Pol.

use num_dual::DualNum;
use serde::{Deserialize, Serialize};

use super::{cst, System};

/// `y' = λ y` in `dim` independent components; exact solution `e^{λt} y₀`. The test problem
/// of convergence orders and of the closed-form inverse modified equation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Linear {
    /// Rate λ.
    pub lambda: f64,
    /// Number of components.
    pub dim: usize,
}

impl Default for Linear {
    fn default() -> Self {
        Self {
            lambda: -1.0,
            dim: 1,
        }
    }
}

impl System for Linear {
    fn name(&self) -> &'static str {
        "linear"
    }
    fn dim(&self) -> usize {
        self.dim
    }
    fn state_names(&self) -> Vec<String> {
        (0..self.dim).map(|i| format!("y{i}")).collect()
    }
    fn rhs<D: DualNum + Copy>(&self, y: &[D], dy: &mut [D]) {
        let l: D = cst(self.lambda);
        for (d, v) in dy.iter_mut().zip(y) {
            *d = l * *v;
        }
    }
    fn exact(&self, t: f64, y0: &[f64]) -> Option<Vec<f64>> {
        Some(y0.iter().map(|v| v * (self.lambda * t).exp()).collect())
    }
    fn default_y0(&self) -> Vec<f64> {
        vec![1.0; self.dim]
    }
}

/// Harmonic oscillator, state `(p, q)`: `p' = −ω² q`, `q' = p`, energy
/// `H = p²/2 + ω² q²/2`, exact solution a rotation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Harmonic {
    /// Angular frequency ω.
    pub omega: f64,
}

impl Default for Harmonic {
    fn default() -> Self {
        Self { omega: 1.0 }
    }
}

impl System for Harmonic {
    fn name(&self) -> &'static str {
        "harmonic"
    }
    fn dim(&self) -> usize {
        2
    }
    fn state_names(&self) -> Vec<String> {
        vec!["p".into(), "q".into()]
    }
    fn rhs<D: DualNum + Copy>(&self, y: &[D], dy: &mut [D]) {
        let w2: D = cst(self.omega * self.omega);
        dy[0] = -(w2 * y[1]);
        dy[1] = y[0];
    }
    fn invariant_names(&self) -> Vec<&'static str> {
        vec!["energy"]
    }
    fn invariants<D: DualNum + Copy>(&self, y: &[D]) -> Vec<D> {
        let half: D = cst(0.5);
        let w2: D = cst(self.omega * self.omega);
        vec![half * y[0] * y[0] + half * w2 * y[1] * y[1]]
    }
    fn is_separable(&self) -> bool {
        true
    }
    fn drift<D: DualNum + Copy>(&self, y: &[D], dy: &mut [D]) {
        dy[0] = D::zero();
        dy[1] = y[0];
    }
    fn kick<D: DualNum + Copy>(&self, y: &[D], dy: &mut [D]) {
        let w2: D = cst(self.omega * self.omega);
        dy[0] = -(w2 * y[1]);
        dy[1] = D::zero();
    }
    fn exact(&self, t: f64, y0: &[f64]) -> Option<Vec<f64>> {
        let w = self.omega;
        let (p0, q0) = (y0[0], y0[1]);
        let (s, c) = (w * t).sin_cos();
        Some(vec![p0 * c - q0 * w * s, q0 * c + p0 / w * s])
    }
    fn default_y0(&self) -> Vec<f64> {
        vec![0.0, 1.0]
    }
}

/// The pendulum of Zhu et al. (2022), state `(p, q)`: `p' = −10 sin q`, `q' = p`, energy
/// `H = p²/2 − 10 cos q`.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Pendulum;

impl System for Pendulum {
    fn name(&self) -> &'static str {
        "pendulum"
    }
    fn dim(&self) -> usize {
        2
    }
    fn state_names(&self) -> Vec<String> {
        vec!["p".into(), "q".into()]
    }
    fn rhs<D: DualNum + Copy>(&self, y: &[D], dy: &mut [D]) {
        dy[0] = y[1].sin() * cst::<D>(-10.0);
        dy[1] = y[0];
    }
    fn invariant_names(&self) -> Vec<&'static str> {
        vec!["energy"]
    }
    fn invariants<D: DualNum + Copy>(&self, y: &[D]) -> Vec<D> {
        vec![y[0] * y[0] * cst::<D>(0.5) - y[1].cos() * cst::<D>(10.0)]
    }
    fn is_separable(&self) -> bool {
        true
    }
    fn drift<D: DualNum + Copy>(&self, y: &[D], dy: &mut [D]) {
        dy[0] = D::zero();
        dy[1] = y[0];
    }
    fn kick<D: DualNum + Copy>(&self, y: &[D], dy: &mut [D]) {
        dy[0] = y[1].sin() * cst::<D>(-10.0);
        dy[1] = D::zero();
    }
    fn default_y0(&self) -> Vec<f64> {
        vec![0.0, 1.0]
    }
}

/// Damped cubic oscillator (Zhu et al. 2022): `y₁' = −0.1 y₁³ + 2 y₂³`,
/// `y₂' = −2 y₁³ − 0.1 y₂³`.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct DampedCubic;

impl System for DampedCubic {
    fn name(&self) -> &'static str {
        "damped-cubic"
    }
    fn dim(&self) -> usize {
        2
    }
    fn state_names(&self) -> Vec<String> {
        vec!["y1".into(), "y2".into()]
    }
    fn rhs<D: DualNum + Copy>(&self, y: &[D], dy: &mut [D]) {
        let (a, b) = (y[0] * y[0] * y[0], y[1] * y[1] * y[1]);
        dy[0] = a * cst::<D>(-0.1) + b * cst::<D>(2.0);
        dy[1] = a * cst::<D>(-2.0) - b * cst::<D>(0.1);
    }
    fn default_y0(&self) -> Vec<f64> {
        vec![2.0, 0.0]
    }
}

/// Van der Pol oscillator, state `(x, y)`: `x' = y`, `y' = μ(1 − x²)y − x`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct VanDerPol {
    /// Damping μ.
    pub mu: f64,
}

impl Default for VanDerPol {
    fn default() -> Self {
        Self { mu: 1.0 }
    }
}

impl System for VanDerPol {
    fn name(&self) -> &'static str {
        "van-der-pol"
    }
    fn dim(&self) -> usize {
        2
    }
    fn state_names(&self) -> Vec<String> {
        vec!["x".into(), "y".into()]
    }
    fn rhs<D: DualNum + Copy>(&self, y: &[D], dy: &mut [D]) {
        let one: D = cst(1.0);
        dy[0] = y[1];
        dy[1] = (one - y[0] * y[0]) * y[1] * cst::<D>(self.mu) - y[0];
    }
    fn default_y0(&self) -> Vec<f64> {
        vec![2.0, 0.0]
    }
}
