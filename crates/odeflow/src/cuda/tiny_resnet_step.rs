//! TinyResNet's training iteration as one captured CUDA graph (Sander et al., NeurIPS 2022):
//! [`plan_tiny_resnet`] plans it ([`FieldShape::TinyResNet`]: stem, body solve, pooled
//! head, backprop or reversible backward pass, stem VJP, and the update — SGD with momentum
//! as in Sander et al.'s experiments, or Adam), and [`CudaTinyResNet`] runs it as a
//! [`FusedStep`] once [`CudaTinyResNet::capture_training`] asked for it: per iteration the
//! images, labels and learning rate are copied in, the graph is replayed, and the loss, the
//! number correct and the finiteness indices come back.
//!
//! The host model stays the model of record: the parameters and the optimizer state come
//! back through [`FusedStep::store`], the running statistics (stem and body) with them; a
//! hook's [`TinyResNetHost::host_model`] during training sees the parameters the iteration
//! used (the plan keeps them in [`Buf::ParamsBefore`]), as on the CPU, where hooks run
//! before the update. **Not yet run on a GPU**; the plan is tested on the CPU against the
//! CPU model and optimizer (`tests/cuda_plan/train_resnet.rs`).

use super::depth_field::DepthLayout;
use super::device::CudaError;
use super::state::f32s;
use super::stem_plan::StemLayout;
use super::tiny_resnet::{CudaTinyResNet, POOL};
use super::train_graph::{ClassifierStep, StepOutcome};
use super::train_plan::{
    Buf, ClassifierShape, FieldShape, PlanGradient, PlanLoss, PlanOptimizer, TrainPlan,
};
use crate::analysis::resnet::trained::TinyResNetHost;
use crate::grad::GradientMethod;
use crate::models::tiny_resnet::{ImageBatch, TinyResNet};
use crate::real::Real;
use crate::solve::fixed_grid;
use crate::state::Batch;
use crate::train::{
    FusedStep, OptimizerConfig, OptimizerState, StepMetrics, TrainError, Trainable,
};

/// The captured iteration of `model` (its stem, body and head shapes, scheme and effective
/// gradient method) on batches of `rows` images. The adjoint is refused: TinyResNet's body
/// trains by backprop or the reversible method.
pub fn plan_tiny_resnet<T: Real>(
    model: &TinyResNet<T>,
    rows: usize,
) -> Result<TrainPlan, CudaError> {
    let bad = |e: String| CudaError::Unsupported(e);
    if rows == 0 {
        return Err(CudaError::invalid(
            "TinyResNet batch",
            rows,
            "give at least one image",
        ));
    }
    let input = model.input_shape();
    let (h, w) = input.spatial();
    let c = model.stem().out_shape().channels();
    let stem = StemLayout::new(input.channels(), c, h, w).map_err(bad)?;
    let body = model.body();
    let layout = DepthLayout::of(body.field())?;
    let method = body.scheme().method();
    let tab = method
        .tableau()
        .ok_or_else(|| bad(format!("a TinyResNet body with {}", method.name())))?;
    let opts = body.solve_options();
    let grid = fixed_grid(&opts).map_err(|e| bad(e.to_string()))?;
    let grad = body.gradient_method();
    if matches!(grad, GradientMethod::Adjoint(_)) {
        return Err(bad(
            "a TinyResNet body trained by the adjoint (backprop and reversible are captured)"
                .into(),
        ));
    }
    let gradient = PlanGradient::for_method(grad, &opts).map_err(|e| bad(e.to_string()))?;
    let shape = ClassifierShape {
        field: FieldShape::TinyResNet {
            stem,
            body: layout,
            pool: POOL,
        },
        input: input.len(),
        classes: model.config().classes,
        rows,
        loss: PlanLoss::CrossEntropy,
    };
    Ok(TrainPlan::new(shape, tab, &grid, gradient))
}

/// `[mean, var]` of the stem and `[mean₁, var₁, mean₂, var₂]` of every body layer of `m`.
fn host_stats<T: Real>(m: &mut TinyResNet<T>) -> Result<(Vec<f32>, Vec<f32>), CudaError> {
    let bn = super::tiny_resnet::stem_bn(m.stem_mut())?;
    let mut stem = f32s(bn.running_mean());
    stem.extend(f32s(bn.running_var()));
    let f = m.body().field();
    let body = (0..f.depth())
        .flat_map(|n| f32s(f.running_stats(n)))
        .collect();
    Ok((stem, body))
}

/// The captured step of a [`CudaTinyResNet`] and what it has not yet handed back.
pub(super) struct Captured {
    opt: PlanOptimizer,
    step: Option<ClassifierStep>,
    /// The state [`FusedStep::load`] gave before the step existed.
    pending: Option<(Vec<f32>, OptimizerState)>,
    /// Iterations ran since the host model was last brought up to date.
    stale: bool,
}

impl Captured {
    pub(super) fn new(opt: &OptimizerConfig) -> Self {
        Self {
            opt: PlanOptimizer::of(opt),
            step: None,
            pending: None,
            stale: false,
        }
    }
}

fn train_err(iteration: u64) -> impl Fn(CudaError) -> TrainError {
    move |e| super::trainable::cuda_err(iteration, e)
}

impl<T: Real> CudaTinyResNet<T> {
    /// Trains through one captured CUDA graph per iteration with the update of `opt`
    /// ([`FusedStep`]; planned at the first batch): the trainer then hands this model its
    /// parameters and optimizer state instead of applying gradients. Fails for a body the
    /// plan does not cover (the adjoint), leaving the eager path.
    pub fn capture_training(&mut self, opt: &OptimizerConfig) -> Result<(), CudaError> {
        plan_tiny_resnet(self.host(), 1)?;
        self.captured = Some(Captured::new(opt));
        Ok(())
    }

    /// The captured step for batches of `rows`, planned, loaded and captured when missing
    /// or sized for another batch.
    fn captured_step(&mut self, rows: usize) -> Result<&mut ClassifierStep, CudaError> {
        let cap = self.captured.as_mut().expect("capture_training ran");
        if cap
            .step
            .as_ref()
            .is_some_and(|s| s.plan().shape.rows != rows)
        {
            // Another batch size: carry the state over to a new plan.
            let st = cap.step.take().expect("checked").state_to_host()?;
            let opt = st.optimizer_state();
            cap.pending = Some((st.params, opt));
        }
        if cap.step.is_none() {
            let pending = cap.pending.take();
            // The eager pieces' running statistics are the latest (e.g. after an eager step).
            self.sync_stats()?;
            let (stem, body) = host_stats(&mut self.host)?;
            let plan = plan_tiny_resnet(&self.host, rows)?;
            let (params, opt) = match pending {
                Some(p) => p,
                None => {
                    let mut p = vec![T::zero(); self.host.num_params()];
                    Trainable::read_params(&self.host, &mut p);
                    let fresh = OptimizerState {
                        t: 0,
                        m: Vec::new(),
                        v: Vec::new(),
                    };
                    (f32s(&p), fresh)
                }
            };
            let cap = self.captured.as_mut().expect("capture_training ran");
            let mut step = ClassifierStep::new(&self.dev, plan, &params, cap.opt)?;
            step.load_trainer_state(&params, &opt)?;
            step.write(Buf::StemStats, &stem)?;
            step.write(Buf::Stats, &body)?;
            step.capture()?;
            cap.step = Some(step);
        }
        let cap = self.captured.as_mut().expect("capture_training ran");
        Ok(cap.step.as_mut().expect("just made"))
    }

    /// Brings the host model (and the eager pieces) up to the captured step: its current
    /// parameters, or (`before`) those of the last iteration before its update; and its
    /// running statistics.
    pub(super) fn sync_from_step(&mut self, before: bool) -> Result<(), CudaError> {
        let Some(step) = self.captured.as_ref().and_then(|c| c.step.as_ref()) else {
            return Ok(());
        };
        if !self.captured.as_ref().is_some_and(|c| c.stale) {
            return Ok(());
        }
        let p = step.read(if before {
            Buf::ParamsBefore
        } else {
            Buf::Params
        })?;
        let (stem, body) = (step.read(Buf::StemStats)?, step.read(Buf::Stats)?);
        let of = |v: &[f32]| -> Vec<T> { v.iter().map(|&a| T::of(f64::from(a))).collect() };
        Trainable::write_params(self, &of(&p));
        let c = stem.len() / 2;
        self.set_stem_stats(&stem[..c], &stem[c..])?;
        let per = body.len() / self.host.body().field().depth().max(1);
        for (n, s) in body.chunks(per).enumerate() {
            self.set_body_stats(n, s)?;
        }
        if !before {
            self.captured.as_mut().expect("checked").stale = false;
        }
        Ok(())
    }
}

impl<T: Real> FusedStep<T, ImageBatch<T>> for CudaTinyResNet<T> {
    fn load(&mut self, params: &[T], opt: &OptimizerState) -> Result<(), TrainError> {
        let err = train_err(opt.t);
        Trainable::write_params(self, params);
        let cap = self.captured.as_mut().expect("fused only when captured");
        cap.stale = false;
        match cap.step.as_mut() {
            Some(step) => step.load_trainer_state(&f32s(params), opt).map_err(err),
            None => {
                cap.pending = Some((f32s(params), opt.clone()));
                Ok(())
            }
        }
    }

    fn step(
        &mut self,
        batch: &ImageBatch<T>,
        lr: f64,
        iteration: u64,
    ) -> Result<StepMetrics, TrainError> {
        let err = train_err(iteration + 1);
        let x = batch.inputs.cast::<f32>();
        let out = self
            .captured_iteration(&x, &batch.labels, lr)
            .map_err(&err)?;
        let cap = self.captured.as_ref().and_then(|c| c.step.as_ref());
        cap.expect("the iteration ran").metrics(&out, iteration)
    }

    fn store(&mut self, params: &mut [T], opt: &mut OptimizerState) -> Result<(), TrainError> {
        let err = train_err(opt.t);
        let Some(step) = self.captured.as_ref().and_then(|c| c.step.as_ref()) else {
            Trainable::read_params(self, params);
            return Ok(());
        };
        let st = step.state_to_host().map_err(&err)?;
        for (o, x) in params.iter_mut().zip(&st.params) {
            *o = T::of(f64::from(*x));
        }
        *opt = st.optimizer_state();
        self.sync_from_step(false).map_err(&err)
    }
}

impl<T: Real> CudaTinyResNet<T> {
    /// One replay of the captured iteration on the images `x` with `labels` at learning
    /// rate `lr` (planned and captured for this batch size first if needed); the host model
    /// lags it until [`FusedStep::store`], [`CudaTinyResNet::to_cpu`] or the next
    /// evaluation brings it up to date. Fails unless [`CudaTinyResNet::capture_training`]
    /// ran.
    pub fn captured_iteration(
        &mut self,
        x: &Batch<f32>,
        labels: &[usize],
        lr: f64,
    ) -> Result<StepOutcome, CudaError> {
        if self.captured.is_none() {
            return Err(CudaError::Unsupported(
                "a captured TinyResNet iteration before capture_training".into(),
            ));
        }
        let out = self.captured_step(x.rows())?.iteration(x, labels, lr)?;
        self.captured.as_mut().expect("checked").stale = true;
        Ok(out)
    }

    /// The parameter gradient `[stem | body | head]` of the last captured iteration.
    pub fn captured_grad(&self) -> Result<Vec<f32>, CudaError> {
        match self.captured.as_ref().and_then(|c| c.step.as_ref()) {
            Some(step) => step.grad_to_host(),
            None => Err(CudaError::Unsupported(
                "the gradient of a captured TinyResNet iteration before one ran".into(),
            )),
        }
    }
}

impl<T: Real> TinyResNetHost<T> for CudaTinyResNet<T> {
    /// The host model with the device's running statistics copied back; during captured
    /// training, with the parameters the last iteration used (before its update), as a
    /// CPU hook sees them.
    fn host_model(&mut self, iteration: u64) -> Result<&mut TinyResNet<T>, TrainError> {
        self.sync_from_step(true)
            .and_then(|()| self.sync_stats())
            .map_err(|e| TrainError::solver(iteration, e))?;
        Ok(self.host_mut())
    }
}
