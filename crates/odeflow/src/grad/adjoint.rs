//! The continuous adjoint (Pontryagin; Chen, Rubanova, Bettencourt, Duvenaud, NeurIPS 2018).
//!
//! With `a(t) = ∂L/∂y(t)`, the gradient of a loss on `y(t₁)` follows from integrating the
//! augmented system backwards from `t₁` to `t₀`:
//!
//! ```text
//! y' = f(t, y; θ),   a' = −aᵀ ∂f/∂y,   g' = −aᵀ ∂f/∂θ,
//! y(t₁) = y₁,  a(t₁) = ∂L/∂y₁,  g(t₁) = 0   ⇒   ∂L/∂y₀ = a(t₀),  ∂L/∂θ = g(t₀).
//! ```
//!
//! The state is re-solved backwards alongside (no memory grows with the number of steps), so
//! the gradient is exact only up to the solver's error, and converges to the discrete
//! adjoint as the tolerance tightens. With adaptive stepping, the optional RMS *seminorm*
//! (Kidger, Chen, Lyons, ICML 2021) leaves `g` out of the error norm, which usually saves
//! many backward steps without hurting the gradient.

use crate::field::VectorField;
use crate::real::Real;
use crate::solve::Rhs;
use crate::state::State;

/// The augmented adjoint state `(y, a, g)`.
#[derive(Debug, Clone)]
pub struct AdjointState<S, G> {
    /// The state, re-solved backwards.
    pub y: S,
    /// The adjoint `∂L/∂y(t)`.
    pub a: S,
    /// The accumulated parameter gradient.
    pub g: G,
    /// Exclude `g` from the error norm.
    pub seminorm: bool,
}

impl<S: State, G: State<Scalar = S::Scalar>> State for AdjointState<S, G> {
    type Scalar = S::Scalar;
    fn len(&self) -> usize {
        self.y.len() + self.a.len() + self.g.len()
    }
    fn zeros_like(&self) -> Self {
        Self {
            y: self.y.zeros_like(),
            a: self.a.zeros_like(),
            g: self.g.zeros_like(),
            seminorm: self.seminorm,
        }
    }
    fn assign(&mut self, o: &Self) {
        self.y.assign(&o.y);
        self.a.assign(&o.a);
        self.g.assign(&o.g);
    }
    fn set_zero(&mut self) {
        self.y.set_zero();
        self.a.set_zero();
        self.g.set_zero();
    }
    fn scale(&mut self, c: S::Scalar) {
        self.y.scale(c);
        self.a.scale(c);
        self.g.scale(c);
    }
    fn axpy(&mut self, c: S::Scalar, x: &Self) {
        self.y.axpy(c, &x.y);
        self.a.axpy(c, &x.a);
        self.g.axpy(c, &x.g);
    }
    fn weighted_sq_sum(
        err: &Self,
        y0: &Self,
        y1: &Self,
        atol: S::Scalar,
        rtol: S::Scalar,
    ) -> (f64, usize) {
        let (s1, n1) = S::weighted_sq_sum(&err.y, &y0.y, &y1.y, atol, rtol);
        let (s2, n2) = S::weighted_sq_sum(&err.a, &y0.a, &y1.a, atol, rtol);
        if err.seminorm {
            (s1 + s2, n1 + n2)
        } else {
            let (s3, n3) = G::weighted_sq_sum(&err.g, &y0.g, &y1.g, atol, rtol);
            (s1 + s2 + s3, n1 + n2 + n3)
        }
    }
    fn dot(&self, o: &Self) -> f64 {
        self.y.dot(&o.y) + self.a.dot(&o.a) + self.g.dot(&o.g)
    }
    fn first_non_finite(&self) -> Option<(usize, f64)> {
        let (ny, na) = (self.y.len(), self.a.len());
        self.y
            .first_non_finite()
            .or_else(|| self.a.first_non_finite().map(|(i, v)| (i + ny, v)))
            .or_else(|| self.g.first_non_finite().map(|(i, v)| (i + ny + na, v)))
    }
    fn to_f64_vec(&self) -> Vec<f64> {
        let mut v = self.y.to_f64_vec();
        v.extend(self.a.to_f64_vec());
        v.extend(self.g.to_f64_vec());
        v
    }
}

/// The right-hand side of the augmented adjoint system.
pub(crate) struct AdjointRhs<'a, S: State, F: VectorField<S>> {
    pub field: &'a mut F,
    pub tape: &'a mut F::Tape,
    pub evals: usize,
}

impl<S: State, F: VectorField<S>> Rhs<AdjointState<S, F::Grad>> for AdjointRhs<'_, S, F> {
    fn eval(&mut self, t: f64, z: &AdjointState<S, F::Grad>, dz: &mut AdjointState<S, F::Grad>) {
        self.evals += 1;
        self.field.eval_taped(t, &z.y, &mut dz.y, self.tape);
        dz.g.set_zero();
        self.field.vjp(self.tape, &z.a, &mut dz.a, &mut dz.g);
        let m1 = S::Scalar::of(-1.0);
        dz.a.scale(m1);
        dz.g.scale(m1);
    }
}
