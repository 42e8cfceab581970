//! Training a built-in classifier on the GPU: [`CudaClassifier`] is a [`Trainable`]
//! whose whole iteration — forward solve, head, cross-entropy, the backward pass of any of
//! the three gradient methods and Adam — is one [`ClassifierStep`] (captured once as a CUDA graph and replayed), and
//! whose [`FusedStep`] hands parameters and Adam's state between the trainer and the device.
//! So `odeflow train --device cuda` keeps the CPU's run folder, metrics log and checkpoints,
//! and a run moves between devices: trained on the GPU, checked on the CPU, resumed on either.
//!
//! Supported (else one [`CudaError::Unsupported`] naming what is not): an MLP field with
//! tanh or ReLU (`FieldSpec::Mlp`) or Ott et al.'s `simple_odenet` / `odenet`, ANODE zeros,
//! the Linear head, no encoder; an explicit
//! Runge–Kutta method on a fixed grid; the `backprop`, `reversible` or `adjoint` gradient
//! (the last two memory-free: two states and one step's tapes on the device); Adam; f32.
//! **Not yet run on a GPU.**

use std::sync::Arc;

use super::device::{CudaError, Device};
use super::eager::conv_layout;
use super::plan::act_code;
use super::state::f32s;
use super::train_graph::ClassifierStep;
use super::train_plan::{
    AdamHyper, ClassifierShape, FieldShape, PlanGradient, PlanLoss, TrainPlan,
};
use crate::analysis::solver_dependence::{stepping_metric, AdaptationHook};
use crate::error::ArgError;
use crate::grad::GradientMethod;
use crate::models::{ClassBatch, FieldSpec};
use crate::nn::{Activation, Shape};
use crate::real::Real;
use crate::solve::{fixed_grid, Method, SolveOptions, Stepping};
use crate::train::{
    FusedStep, OptimizerConfig, OptimizerState, StepMetrics, TrainError, TrainHook, Trainable,
};

/// What [`CudaClassifier::new`] needs to know of the CPU classifier it mirrors.
#[derive(Debug, Clone)]
pub struct ClassifierSetup<'a> {
    /// The ODE block's field.
    pub field: &'a FieldSpec,
    /// Features per sample (the data's).
    pub input: usize,
    /// The shape of the ODE state (the field's input: a sample with its ANODE zeros, which
    /// follow the data's features).
    pub state: Shape,
    /// Classes.
    pub classes: usize,
    /// Samples per training batch.
    pub rows: usize,
    /// The training solver's method.
    pub method: &'a Method,
    /// Its options (interval and a fixed stepping).
    pub opts: &'a SolveOptions,
    /// The gradient method.
    pub grad: GradientMethod,
    /// The optimizer.
    pub optimizer: &'a OptimizerConfig,
}

/// Checks that the device plan covers `s` and plans one iteration.
pub fn plan_classifier(s: &ClassifierSetup<'_>) -> Result<(TrainPlan, AdamHyper), CudaError> {
    let no = |what: String| CudaError::Unsupported(format!("{what} is not yet on cuda"));
    let d = s.state.len();
    let field = match s.field {
        FieldSpec::Mlp { hidden, activation } => {
            let a: Activation = activation
                .parse()
                .map_err(|_| no(format!("the activation '{activation}'")))?;
            let act = act_code(Some(a))
                .ok_or_else(|| no(format!("the activation '{activation}' (tanh and relu are)")))?;
            let mut dims = vec![d];
            dims.extend(hidden);
            dims.push(d);
            FieldShape::Mlp { dims, act }
        }
        FieldSpec::SimpleOdenet { .. } | FieldSpec::Odenet { .. } => {
            FieldShape::Conv(conv_layout(s.field, s.state)?)
        }
    };
    if s.input > d {
        return Err(CudaError::Unsupported(format!(
            "{} features per sample for an ODE state of {d}",
            s.input
        )));
    }
    let tab = s.method.tableau().ok_or_else(|| {
        no(format!(
            "training with {} (explicit Runge–Kutta methods with fixed steps are)",
            s.method.name()
        ))
    })?;
    if matches!(s.opts.stepping, Stepping::Adaptive(_)) {
        return Err(no("training with adaptive steps".into()));
    }
    let hyper =
        AdamHyper::of(s.optimizer).ok_or_else(|| no("training with SGD (Adam is)".into()))?;
    let grid = fixed_grid(s.opts).map_err(|e| CudaError::Unsupported(e.to_string()))?;
    let gradient = PlanGradient::for_method(&s.grad, s.opts)
        .map_err(|e| CudaError::Unsupported(e.to_string()))?;
    let shape = ClassifierShape {
        field,
        input: s.input,
        classes: s.classes,
        rows: s.rows,
        loss: PlanLoss::CrossEntropy,
    };
    Ok((TrainPlan::new(shape, tab, &grid, gradient), hyper))
}

/// The captured iteration of an MSE regression without a head ([`PlanLoss::MeanSquaredError`]):
/// the MLP field `dims` (activation code `act`) on batches of `rows`, trained with `method`
/// on the fixed grid of `opts` and the gradient `grad`.
pub fn plan_regression(
    (dims, act): (&[usize], i32),
    rows: usize,
    (method, opts): (&Method, &SolveOptions),
    grad: &GradientMethod,
) -> Result<TrainPlan, CudaError> {
    let bad = |e: String| CudaError::Unsupported(e);
    let tab = method.tableau().ok_or_else(|| {
        bad(format!(
            "training with {} (explicit Runge–Kutta methods with fixed steps are)",
            method.name()
        ))
    })?;
    let grid = fixed_grid(opts).map_err(|e| bad(e.to_string()))?;
    let gradient = PlanGradient::for_method(grad, opts).map_err(|e| bad(e.to_string()))?;
    let shape = ClassifierShape {
        field: FieldShape::Mlp {
            dims: dims.to_vec(),
            act,
        },
        input: dims[0],
        classes: 0,
        rows,
        loss: PlanLoss::MeanSquaredError,
    };
    Ok(TrainPlan::new(shape, tab, &grid, gradient))
}

/// A built-in classifier trained on the device (see the module docs).
pub struct CudaClassifier {
    step: ClassifierStep,
    /// The parameters as last handed over (`read_params` / `write_params`).
    host: Vec<f32>,
}

impl CudaClassifier {
    /// Plans `setup` ([`plan_classifier`]), allocates it on `dev` with the CPU model's
    /// parameters `params` (`[field | head]`) and captures the iteration as a CUDA graph.
    pub fn new(
        dev: &Arc<Device>,
        setup: &ClassifierSetup<'_>,
        params: &[f32],
    ) -> Result<Self, CudaError> {
        let (plan, hyper) = plan_classifier(setup)?;
        let mut step = ClassifierStep::new(dev, plan, params, hyper)?;
        step.capture()?;
        Ok(Self {
            step,
            host: params.to_vec(),
        })
    }
}

/// A device error of training iteration `iteration` (1-based) as the trainer reports it.
pub(super) fn cuda_err(iteration: u64, e: CudaError) -> TrainError {
    TrainError::solver(iteration, format!("on the GPU: {e}"))
}

impl<T: Real> Trainable<T> for CudaClassifier {
    type Batch = ClassBatch<T>;

    fn num_params(&self) -> usize {
        self.host.len()
    }

    fn read_params(&self, out: &mut [T]) {
        for (o, p) in out.iter_mut().zip(&self.host) {
            *o = T::of(f64::from(*p));
        }
    }

    fn write_params(&mut self, src: &[T]) {
        for (h, s) in self.host.iter_mut().zip(src) {
            *h = s.f64() as f32;
        }
    }

    fn loss_and_grad(
        &mut self,
        _batch: &Self::Batch,
        _grad: &mut [T],
        iteration: u64,
    ) -> Result<StepMetrics, TrainError> {
        Err(TrainError::solver(
            iteration,
            "the GPU classifier takes whole iterations (FusedStep), not gradients",
        ))
    }

    fn fused(&mut self) -> Option<&mut dyn FusedStep<T, Self::Batch>> {
        Some(self)
    }
}

impl<T: Real> FusedStep<T, ClassBatch<T>> for CudaClassifier {
    fn load(&mut self, params: &[T], opt: &OptimizerState) -> Result<(), TrainError> {
        let p = f32s(params);
        self.step
            .load_trainer_state(&p, opt)
            .map_err(|e| cuda_err(opt.t, e))?;
        self.host = p;
        Ok(())
    }

    fn step(
        &mut self,
        batch: &ClassBatch<T>,
        lr: f64,
        iteration: u64,
    ) -> Result<StepMetrics, TrainError> {
        let x = batch.x.cast::<f32>();
        let out = self
            .step
            .iteration(&x, &batch.labels, lr)
            .map_err(|e| cuda_err(iteration + 1, e))?;
        self.step.metrics(&out, iteration)
    }

    fn store(&mut self, params: &mut [T], opt: &mut OptimizerState) -> Result<(), TrainError> {
        let st = self.step.state_to_host().map_err(|e| cuda_err(0, e))?;
        for (o, x) in params.iter_mut().zip(&st.params) {
            *o = T::of(f64::from(*x));
        }
        *opt = st.optimizer_state();
        self.host = st.params;
        Ok(())
    }
}

/// The training hook of the captured iteration: logs the step size (`h`) like the CPU's
/// log-only [`AdaptationHook`], with the same checkpoint state, so a checkpoint written on
/// one device resumes on the other. A run that adapts its step never takes the captured
/// path (its grid is fixed in the graph; the generic path runs the [`AdaptationHook`]), so
/// a checkpoint with an adapter is refused here.
pub struct SteppingLog {
    name: &'static str,
    value: f64,
}

impl SteppingLog {
    /// The hook for the training solver's options `opts`.
    pub fn new(opts: &SolveOptions) -> Self {
        let (name, value) = stepping_metric(&opts.stepping, opts.t0, opts.t1);
        Self { name, value }
    }
}

impl<T: Real, M: Trainable<T, Batch = ClassBatch<T>>> TrainHook<T, M> for SteppingLog {
    fn after_backward(
        &mut self,
        _iteration: u64,
        _model: &mut M,
        _batch: &ClassBatch<T>,
        metrics: &mut StepMetrics,
    ) -> Result<(), TrainError> {
        metrics.extra.insert(self.name.into(), self.value);
        Ok(())
    }

    fn state(&self) -> serde_json::Value {
        serde_json::to_value(AdaptationHook::log_only()).unwrap_or(serde_json::Value::Null)
    }

    fn restore(&mut self, state: &serde_json::Value, _model: &mut M) -> Result<(), TrainError> {
        if state.get("adapter").is_some_and(|a| !a.is_null()) {
            return Err(TrainError::Arg(ArgError::invalid(
                "checkpoint",
                "an adapting run",
                "adapts its step, which the captured iteration cannot (its grid is fixed): resume it with the run's own configuration",
            )));
        }
        Ok(())
    }
}
