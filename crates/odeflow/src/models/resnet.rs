//! Depth-`N` ResNets and HeunNets as fixed-grid solves of a [`DepthField`], with gradients
//! by backprop or by the memory-free reversible adjoint (Sander, Ablin, Peyré, NeurIPS 2022).
//!
//! * [`Scheme::Euler`] — the ResNet `x_{n+1} = x_n + f_n(x_n)/N`, `n = 0…N−1`: Euler's
//!   method with `N` steps on `[0, 1]`.
//! * [`Scheme::Heun`] — the HeunNet: `N` functions give `N − 1` Heun steps of size `1/N` on
//!   `[0, (N−1)/N]`, `k₁ = f_n(x_n)/N`, `k₂ = f_{n+1}(x_n + k₁)/N`,
//!   `x_{n+1} = x_n + (k₁ + k₂)/2`.
//!
//! Gradients come from [`GradSolver`] — no second solver: `backprop` tapes every layer
//! (memory grows with `N`), `reversible` keeps only `x_N` and reconstructs each earlier
//! state by a reverse step (memory flat in `N`; the gradient is approximate, error `O(1/N)`
//! for Euler and `O(1/N²)` for Heun with weights smooth in depth). Networks shallower than
//! [`ResNet::new`]'s `min_reversible_depth` fall back to backprop, as the paper does for
//! short stages. [`ResNet::reconstruct`] runs the reverse pass alone.
//!
//! Residual functions: [`mlp_residual`] (`Linear → act → Linear`, or `Linear → act`) and
//! [`conv_residual_block`] (`conv3×3 → BN → ReLU → conv3×3 → BN`, the last batch norm's
//! scale and shift starting at 0 so that every block starts as the zero function).

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::depth_field::DepthField;
use crate::error::{ArgError, ShapeError};
use crate::grad::{reconstruct, GradSolver, GradStats, GradientMethod};
use crate::nn::{
    Activation, BatchNormOptions, ConvSpec, NnError, Sequential, SequentialBuilder, Shape,
};
use crate::real::Real;
use crate::solve::{solve, Method, SaveAt, SolveOptions};
use crate::state::Batch;
use crate::SolveError;

/// Which Runge–Kutta method the network discretises with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scheme {
    /// ResNet: Euler with `N` steps.
    Euler,
    /// HeunNet: Heun with `N − 1` steps of size `1/N`.
    Heun,
}

impl Scheme {
    /// `euler` or `heun`.
    pub fn from_name(name: &str) -> Result<Self, ArgError> {
        match name {
            "euler" | "resnet" => Ok(Scheme::Euler),
            "heun" | "heunnet" => Ok(Scheme::Heun),
            _ => Err(ArgError::Unknown {
                kind: "scheme",
                name: name.to_string(),
                known: "euler, heun".into(),
            }),
        }
    }

    /// The method's name in the catalogue.
    pub fn name(self) -> &'static str {
        match self {
            Scheme::Euler => "euler",
            Scheme::Heun => "heun",
        }
    }

    /// The catalogue method.
    pub fn method(self) -> Method {
        Method::from_name(self.name()).expect("euler and heun are in the catalogue")
    }

    /// Smallest depth (number of functions) the scheme needs: 1 for Euler, 2 for Heun.
    pub fn min_depth(self) -> usize {
        match self {
            Scheme::Euler => 1,
            Scheme::Heun => 2,
        }
    }

    /// Number of steps at depth `n`.
    pub fn steps(self, depth: usize) -> usize {
        match self {
            Scheme::Euler => depth,
            Scheme::Heun => depth.saturating_sub(1),
        }
    }

    /// The fixed grid of the depth-`n` network: `[0, 1]` (Euler) or `[0, (N−1)/N]` (Heun)
    /// in steps of `1/N`.
    pub fn solve_options(self, depth: usize) -> SolveOptions {
        let n = depth.max(self.min_depth());
        let t1 = self.steps(n) as f64 / n as f64;
        SolveOptions::steps(0.0, t1, self.steps(n))
    }
}

/// Why a ResNet pass failed.
#[derive(Debug, Clone, Error)]
pub enum ResNetError {
    /// Invalid settings.
    #[error(transparent)]
    Arg(#[from] ArgError),
    /// A network could not be built.
    #[error(transparent)]
    Nn(#[from] NnError),
    /// An input of the wrong size.
    #[error(transparent)]
    Shape(#[from] ShapeError),
    /// The solve (forward or reverse) failed.
    #[error(transparent)]
    Solve(SolveError<()>),
}

impl<S> From<SolveError<S>> for ResNetError {
    fn from(e: SolveError<S>) -> Self {
        ResNetError::Solve(e.without_state())
    }
}

/// A ResNet (Euler) or HeunNet (Heun) of depth `N` over a [`DepthField`].
pub struct ResNet<T: Real> {
    field: DepthField<T>,
    scheme: Scheme,
    method: Method,
    grad: GradientMethod,
    solver: GradSolver<Batch<T>, DepthField<T>>,
}

impl<T: Real> ResNet<T> {
    /// The network `field` discretised by `scheme`, differentiated by `grad`; `reversible`
    /// falls back to `backprop` when the depth is below `min_reversible_depth`.
    ///
    /// Fails for Heun at depth 1 or a gradient method that needs an adaptive grid.
    pub fn new(
        field: DepthField<T>,
        scheme: Scheme,
        grad: GradientMethod,
        min_reversible_depth: usize,
    ) -> Result<Self, ResNetError> {
        if field.depth() < scheme.min_depth() {
            return Err(ArgError::invalid(
                "depth",
                field.depth(),
                format!(
                    "{} needs at least {} functions",
                    scheme.name(),
                    scheme.min_depth()
                ),
            )
            .into());
        }
        let grad = if grad == GradientMethod::Reversible && field.depth() < min_reversible_depth {
            GradientMethod::Backprop
        } else {
            grad
        };
        let method = scheme.method();
        let solver = GradSolver::new(
            method.clone(),
            grad.clone(),
            scheme.solve_options(field.depth()),
        )?;
        Ok(Self {
            field,
            scheme,
            method,
            grad,
            solver,
        })
    }

    /// The residual functions.
    pub fn field(&self) -> &DepthField<T> {
        &self.field
    }

    /// The residual functions, mutable.
    pub fn field_mut(&mut self) -> &mut DepthField<T> {
        &mut self.field
    }

    /// Consumes the network, returning its field.
    pub fn into_field(self) -> DepthField<T> {
        self.field
    }

    /// Euler or Heun.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The gradient method in use (after the fallback for shallow networks).
    pub fn gradient_method(&self) -> &GradientMethod {
        &self.grad
    }

    /// Depth `N` (number of layers).
    pub fn depth(&self) -> usize {
        self.field.depth()
    }

    /// The solve that is the forward pass.
    pub fn solve_options(&self) -> SolveOptions {
        self.scheme.solve_options(self.depth())
    }

    /// Training or evaluation mode (batch norm).
    pub fn set_train(&mut self, train: bool) {
        self.field.set_train(train);
    }

    /// Counters of the last forward/backward pass (`tapes_peak` is the memory in layer
    /// tapes).
    pub fn stats(&self) -> GradStats {
        self.solver.stats()
    }

    fn check_input(&self, x: &Batch<T>) -> Result<(), ShapeError> {
        let want = self.field.shape().len();
        if x.cols() != want {
            return Err(ShapeError {
                what: "ResNet input sample",
                expected: want,
                got: x.cols(),
            });
        }
        Ok(())
    }

    /// The forward pass `x₀ ↦ x_N`, keeping what [`ResNet::backward`] needs. In training
    /// mode it is a training pass: each layer's batch-norm running statistics move once.
    pub fn forward(&mut self, x0: &Batch<T>) -> Result<&Batch<T>, ResNetError> {
        self.check_input(x0)?;
        self.field.begin_training_pass();
        let r = self.solver.forward(&mut self.field, x0);
        self.field.freeze_running_stats();
        Ok(r?)
    }

    /// Given `∂L/∂x_N`, accumulates `∂L/∂θ` into `grad` (length of the field's parameters)
    /// and returns `∂L/∂x₀`. Call after [`ResNet::forward`].
    pub fn backward(
        &mut self,
        dl_dx: &Batch<T>,
        grad: &mut Vec<T>,
    ) -> Result<Batch<T>, ResNetError> {
        let want = crate::field::Parameterized::num_params(&self.field);
        if grad.len() != want {
            return Err(ShapeError {
                what: "ResNet parameter gradient",
                expected: want,
                got: grad.len(),
            }
            .into());
        }
        Ok(self.solver.backward(&mut self.field, dl_dx, grad)?)
    }

    /// `x_N` without gradient bookkeeping or statistics updates.
    pub fn infer(&mut self, x0: &Batch<T>) -> Result<Batch<T>, ResNetError> {
        self.check_input(x0)?;
        let opts = self.solve_options();
        let sol = solve(&self.method, &mut self.field, x0, &opts)?;
        Ok(sol.y_final)
    }

    /// Every state `x₀, x₁, …` (layer outputs) without gradient bookkeeping or statistics
    /// updates.
    pub fn trajectory(&mut self, x0: &Batch<T>) -> Result<Vec<Batch<T>>, ResNetError> {
        self.check_input(x0)?;
        let opts = self.solve_options().save(SaveAt::Steps);
        let sol = solve(&self.method, &mut self.field, x0, &opts)?;
        Ok(sol.y)
    }

    /// The reverse pass alone: from `x_N` back to the reconstruction `x̃₀` by the reverse
    /// steps of the reversible method.
    pub fn reconstruct(&mut self, x_n: &Batch<T>) -> Result<Batch<T>, ResNetError> {
        self.check_input(x_n)?;
        let opts = self.solve_options();
        Ok(reconstruct(&self.method, &opts, &mut self.field, x_n)?)
    }
}

/// A residual function on feature vectors: `Linear(d → h) → act → Linear(h → d)`, or
/// `Linear(d → d) → act` when `hidden` is `None`.
pub fn mlp_residual<T: Real>(
    dim: usize,
    hidden: Option<usize>,
    act: Activation,
) -> Result<Sequential<T>, NnError> {
    let b = SequentialBuilder::new(Shape::Flat(dim));
    match hidden {
        Some(h) => b.linear(h).activation(act).linear(dim),
        None => b.linear(dim).activation(act),
    }
    .build()
}

/// The convolutional residual block `conv3×3 → BN → ReLU → conv3×3 → BN` on
/// `(channels, height, width)` images (padding 1, no conv bias: batch norm shifts); the
/// last batch norm's scale and shift start at 0, so the block starts as the zero function.
pub fn conv_residual_block<T: Real>(
    channels: usize,
    height: usize,
    width: usize,
) -> Result<Sequential<T>, NnError> {
    let conv = ConvSpec::d2(channels, channels, 3, 1, 1).without_bias();
    SequentialBuilder::new(Shape::image(channels, height, width))
        .conv(conv)
        .batch_norm(BatchNormOptions::default())
        .activation(Activation::Relu)
        .conv(conv)
        .batch_norm(BatchNormOptions {
            zero_init: true,
            ..Default::default()
        })
        .build()
}
