//! The S-step ODE regressor of Zhu, Jin, Zhu, Tang (ICML 2022): a parameterised field `f_θ`
//! and a one-step method `Φ` define the model `x ↦ Φ^S_{h,f_θ}(x)` (S steps of size
//! `h = T/S`), fitted to pairs `(x, φ_T(x))` of the exact flow by the mean squared error
//! `L = (1/(N·D)) Σ ‖Φ^S_{h,f_θ}(xₙ) − yₙ‖²` (PyTorch's `MSELoss`).
//!
//! The gradient comes from the solver's exact discrete adjoint ([`DiffSolve`]): backprop
//! through explicit Runge–Kutta stages, the implicit-function theorem for the implicit
//! midpoint rule, or the reversed sub-steps of a symplectic splitting — so `f_θ` converges to
//! the method's inverse modified equation `f_h`, not to the true field
//! ([`crate::analysis::imde`]).

use crate::error::SolveError;
use crate::field::Parameterized;
use crate::grad::DiffSolve;
use crate::nn::loss::mse;
use crate::real::Real;
use crate::state::{Batch, State};
use crate::train::{BatchSource, StepMetrics, TrainError, Trainable};

/// `y ≈ Φ^S_{h,f_θ}(x)` ([module docs](self)) in scalar type `T`; the solver `G` fixes the
/// method and the grid.
pub struct FlowRegressor<T, F, G> {
    field: F,
    solver: G,
    grad: Vec<T>,
    resid: Batch<T>,
}

impl<T: Real, F, G> FlowRegressor<T, F, G> {
    /// A regressor from a field and a differentiable solve over `[0, T]`.
    pub fn new(field: F, solver: G) -> Self {
        Self {
            field,
            solver,
            grad: Vec::new(),
            resid: Batch::zeros(0, 0),
        }
    }

    /// The solver.
    pub fn solver(&self) -> &G {
        &self.solver
    }

    /// The field.
    pub fn field(&self) -> &F {
        &self.field
    }

    /// The field, mutable.
    pub fn field_mut(&mut self) -> &mut F {
        &mut self.field
    }

    /// The field, consuming the regressor.
    pub fn into_field(self) -> F {
        self.field
    }
}

impl<T: Real, F, G> FlowRegressor<T, F, G>
where
    F: Parameterized<T>,
    G: DiffSolve<Batch<T>, F, Grad = Vec<T>>,
{
    /// `Φ^S_{h,f_θ}(x)` for every row of `x`.
    pub fn predict(&mut self, x: &Batch<T>) -> Result<Batch<T>, SolveError<Batch<T>>> {
        self.solver.forward(&mut self.field, x).cloned()
    }

    /// The mean squared error of the prediction on `(x, y)`.
    pub fn mse(&mut self, x: &Batch<T>, y: &Batch<T>) -> Result<f64, TrainError> {
        let pred = self.predict(x).map_err(|e| TrainError::solver(0, e))?;
        let mut g = pred.zeros_like();
        mse(&pred, y, &mut g).map_err(|e| TrainError::solver(0, e))
    }
}

impl<T: Real, F, G> Trainable<T> for FlowRegressor<T, F, G>
where
    F: Parameterized<T>,
    G: DiffSolve<Batch<T>, F, Grad = Vec<T>>,
{
    type Batch = (Batch<T>, Batch<T>);

    fn num_params(&self) -> usize {
        self.field.num_params()
    }
    fn read_params(&self, out: &mut [T]) {
        out.copy_from_slice(self.field.params());
    }
    fn write_params(&mut self, src: &[T]) {
        self.field.params_mut().copy_from_slice(src);
    }
    fn loss_and_grad(
        &mut self,
        (x, y): &Self::Batch,
        grad: &mut [T],
        iteration: u64,
    ) -> Result<StepMetrics, TrainError> {
        let it = iteration + 1;
        let pred = self
            .solver
            .forward(&mut self.field, x)
            .map_err(|e| TrainError::solver(it, format!("forward pass: {e}")))?;
        let loss = mse(pred, y, &mut self.resid).map_err(|e| TrainError::solver(it, e))?;
        self.grad.clear();
        self.grad.resize(grad.len(), T::zero());
        self.solver
            .backward(&mut self.field, &self.resid, &mut self.grad)
            .map_err(|e| TrainError::solver(it, format!("backward pass: {e}")))?;
        grad.copy_from_slice(&self.grad);
        let s = self.solver.stats();
        Ok(StepMetrics {
            loss,
            nfe_forward: s.forward.nfe,
            nfe_backward: s.backward_vjp + s.backward_nfe,
            ..Default::default()
        })
    }
}

/// The whole data set as every batch (full-batch training, as Zhu et al.).
#[derive(Debug, Clone)]
pub struct FullBatch<T> {
    x: Batch<T>,
    y: Batch<T>,
}

impl<T: Real> FullBatch<T> {
    /// Inputs and targets (same number of rows).
    pub fn new(x: Batch<T>, y: Batch<T>) -> Self {
        Self { x, y }
    }
}

impl<T: Real> BatchSource<(Batch<T>, Batch<T>)> for FullBatch<T> {
    fn new_batch(&self) -> (Batch<T>, Batch<T>) {
        (self.x.clone(), self.y.clone())
    }
    fn fill(&mut self, _iteration: u64, batch: &mut (Batch<T>, Batch<T>)) {
        // The buffers were cloned from the data in `new_batch`; nothing changes between
        // iterations.
        let _ = batch;
    }
}
