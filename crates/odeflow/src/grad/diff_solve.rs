//! One interface for every differentiable solve: [`DiffSolve`], implemented by the explicit
//! Runge–Kutta [`GradSolver`], the implicit-midpoint [`MidpointGradSolver`], the splitting
//! [`SplitGradSolver`], and [`FieldGradSolver`], which picks the first two by method.
//!
//! Models written against [`DiffSolve`] (e.g. [`crate::models::regressor::FlowRegressor`]) train with
//! any method their field supports: a plain [`VectorField`] with explicit and implicit
//! methods, a [`SplitVectorField`] with the symplectic splittings.

use super::implicit::MidpointGradSolver;
use super::splitting::{SplitGradSolver, SplitVectorField};
use super::{GradSolver, GradStats, GradientMethod};
use crate::error::{ArgError, SolveError};
use crate::field::VectorField;
use crate::solve::{Method, SolveOptions};
use crate::state::State;

/// A solve `y₀ ↦ y(t₁)` of a parameterised field with a backward pass.
pub trait DiffSolve<S: State, F> {
    /// The parameter gradient type.
    type Grad;
    /// Solves from `y0` and returns `y(t₁)`, keeping what the backward pass needs.
    fn forward(&mut self, field: &mut F, y0: &S) -> Result<&S, SolveError<S>>;
    /// Given `∂L/∂y(t₁)`, accumulates `∂L/∂θ` into `gtheta` and returns `∂L/∂y₀`.
    fn backward(
        &mut self,
        field: &mut F,
        dl_dy1: &S,
        gtheta: &mut Self::Grad,
    ) -> Result<S, SolveError<S>>;
    /// Counters of the last forward/backward pass.
    fn stats(&self) -> GradStats;
}

/// `DiffSolve` for a solver type whose inherent `forward`, `backward` and `stats` have the
/// trait's signatures, for fields bounded by `$bound`.
macro_rules! forward_diff_solve {
    ($solver:ident, $bound:ident) => {
        impl<S: State, F: $bound<S>> DiffSolve<S, F> for $solver<S, F> {
            type Grad = F::Grad;
            fn forward(&mut self, field: &mut F, y0: &S) -> Result<&S, SolveError<S>> {
                $solver::forward(self, field, y0)
            }
            fn backward(
                &mut self,
                field: &mut F,
                dl_dy1: &S,
                gtheta: &mut F::Grad,
            ) -> Result<S, SolveError<S>> {
                $solver::backward(self, field, dl_dy1, gtheta)
            }
            fn stats(&self) -> GradStats {
                $solver::stats(self)
            }
        }
    };
}

forward_diff_solve!(GradSolver, VectorField);
forward_diff_solve!(MidpointGradSolver, VectorField);
forward_diff_solve!(SplitGradSolver, SplitVectorField);

/// The differentiable solve of a plain [`VectorField`] for a method chosen at run time:
/// explicit Runge–Kutta (any [`GradientMethod`]) or the implicit midpoint rule (its
/// implicit-function-theorem gradient, which is exact, so only `backprop` is accepted).
pub enum FieldGradSolver<S: State, F: VectorField<S>> {
    /// Explicit Runge–Kutta.
    RungeKutta(GradSolver<S, F>),
    /// Implicit midpoint.
    Midpoint(MidpointGradSolver<S, F>),
}

impl<S: State, F: VectorField<S>> FieldGradSolver<S, F> {
    /// The solver for `method`; a splitting method is refused (it needs a field split into
    /// drift and kick: [`SplitGradSolver`]).
    pub fn new(
        method: &Method,
        grad: GradientMethod,
        opts: SolveOptions,
    ) -> Result<Self, ArgError> {
        match method {
            Method::Explicit(_) => Ok(Self::RungeKutta(GradSolver::new(
                method.clone(),
                grad,
                opts,
            )?)),
            Method::Implicit(_) => {
                if grad != GradientMethod::Backprop {
                    return Err(ArgError::invalid(
                        "gradient method",
                        grad.name(),
                        "the implicit midpoint rule is differentiated by the implicit-function \
                         theorem (exact); use backprop",
                    ));
                }
                Ok(Self::Midpoint(MidpointGradSolver::new(method, opts)?))
            }
            Method::Splitting(s) => Err(ArgError::MethodUnsuited {
                method: s.name.clone(),
                reason: "is a splitting method: it needs a field split into drift and kick \
                         (a separable Hamiltonian network) and the splitting gradient solver"
                    .into(),
            }),
        }
    }
}

impl<S: State, F: VectorField<S>> FieldGradSolver<S, F> {
    /// The solve options (interval, stepping).
    pub fn options(&self) -> &SolveOptions {
        match self {
            Self::RungeKutta(s) => s.options(),
            Self::Midpoint(s) => s.options(),
        }
    }

    /// Replaces the stepping (e.g. a step size adapted during training).
    pub fn set_stepping(&mut self, stepping: crate::solve::Stepping) -> Result<(), ArgError> {
        match self {
            Self::RungeKutta(s) => s.set_stepping(stepping),
            Self::Midpoint(s) => s.set_stepping(stepping),
        }
    }

    /// The gradient method (`backprop` for implicit midpoint: its exact IFT gradient).
    pub fn gradient_method(&self) -> &GradientMethod {
        match self {
            Self::RungeKutta(s) => s.gradient_method(),
            Self::Midpoint(_) => &GradientMethod::Backprop,
        }
    }
}

impl<S: State, F: VectorField<S>> DiffSolve<S, F> for FieldGradSolver<S, F> {
    type Grad = F::Grad;
    fn forward(&mut self, field: &mut F, y0: &S) -> Result<&S, SolveError<S>> {
        match self {
            Self::RungeKutta(s) => s.forward(field, y0),
            Self::Midpoint(s) => s.forward(field, y0),
        }
    }
    fn backward(
        &mut self,
        field: &mut F,
        dl_dy1: &S,
        gtheta: &mut F::Grad,
    ) -> Result<S, SolveError<S>> {
        match self {
            Self::RungeKutta(s) => s.backward(field, dl_dy1, gtheta),
            Self::Midpoint(s) => s.backward(field, dl_dy1, gtheta),
        }
    }
    fn stats(&self) -> GradStats {
        match self {
            Self::RungeKutta(s) => s.stats(),
            Self::Midpoint(s) => s.stats(),
        }
    }
}
