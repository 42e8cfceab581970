//! TinyResNet (Sander, Ablin, Peyré, "Do Residual Neural Networks discretize Neural
//! Ordinary Differential Equations?", NeurIPS 2022; [`crate::models::tiny_resnet`]) wholly on
//! the device, in f32: the stem (`conv 5×5 / 3 → BN → ReLU`, [`CudaStem`], plan
//! [`super::stem_plan`]), the depth-`N` ResNet (Euler) or HeunNet (Heun) body of
//! convolutional residual blocks ([`CudaDepthField`]) solved and differentiated by the
//! library's generic gradient solver ([`GradSolver`]: backprop or the memory-free reversible
//! adjoint, as the CPU [`crate::models::resnet::ResNet`] does), and the head
//! (`avg-pool 4 → Linear`, softmax cross-entropy, [`CudaHead`]). A training step copies the
//! images and labels in and reads back the loss, the number of correct predictions and the
//! parameter gradient (for the trainer's optimizer on the host); the features never leave
//! the device. After [`CudaTinyResNet::capture_training`] the trainer runs the whole
//! iteration, update included, as one captured CUDA graph instead ([`super::tiny_resnet_step`]).
//!
//! As on the CPU, a training step is a training pass of the stem and the body (each body
//! layer's batch-norm running statistics move at its first evaluation), and evaluation uses
//! the running statistics. The host [`TinyResNet`] is the model of record: its parameters
//! are written to the device by [`Trainable::write_params`], and the running statistics
//! (stem and body) come back with [`CudaTinyResNet::to_cpu`]. The device glue is compared
//! with the CPU model on a GPU by [`super::tiny_resnet_agreement`] (ResNet and HeunNet,
//! backprop and reversible, untied and tied).

use std::sync::Arc;

use super::depth_field::CudaDepthField;
use super::device::{CudaError, Device};
use super::eager::{device_final_state, device_solve, zeroed_grad};
use super::head::CudaHead;
use super::res_block::CudaStem;
use super::state::{f32s, CudaBatch};
use super::stem_plan::StemLayout;
use crate::data::Dataset;
use crate::field::Parameterized;
use crate::grad::GradSolver;
use crate::models::resnet::ResNet;
use crate::models::tiny_resnet::{chunked_loss_accuracy, ImageBatch, TinyResNet};
use crate::nn::{BatchNorm, Layer, Network};
use crate::real::Real;
use crate::solve::{Method, SolveOptions};
use crate::state::{Batch, State};
use crate::train::{StepMetrics, TrainError, Trainable};

/// The head's pooling window (the CPU head's `avg_pool(4)`).
pub(super) const POOL: usize = 4;

/// A TinyResNet on the device (see the module docs).
pub struct CudaTinyResNet<T: Real> {
    pub(super) dev: Arc<Device>,
    pub(super) host: TinyResNet<T>,
    stem: CudaStem,
    field: CudaDepthField,
    solver: GradSolver<CudaBatch, CudaDepthField>,
    head: CudaHead,
    /// The stem's output (the body's initial state), kept per batch size.
    feat: Option<CudaBatch>,
    /// A failed parameter upload, reported by the next pass.
    pending: Option<CudaError>,
    /// The body's parameter gradient on the device, kept between iterations.
    gtheta: Option<CudaBatch>,
    /// The captured training iteration, once asked for
    /// ([`CudaTinyResNet::capture_training`]).
    pub(super) captured: Option<super::tiny_resnet_step::Captured>,
}

fn host_err(what: &'static str) -> impl Fn(crate::nn::NnError) -> CudaError {
    move |e| CudaError::invalid(what, e, "the host half of the TinyResNet refused it")
}

/// A solver failure, or the device error that explains it.
fn solve_failed(dev: &Device, e: impl std::fmt::Display) -> CudaError {
    match dev.check() {
        Err(d) => d,
        Ok(()) => CudaError::call("TinyResNet body solve", e),
    }
}

/// The stem's batch norm (its one [`Layer::BatchNorm`]).
pub(super) fn stem_bn<T: Real>(stem: &mut Network<T>) -> Result<&mut BatchNorm<T>, CudaError> {
    stem.sequential_mut()
        .layers_mut()
        .iter_mut()
        .find_map(|l| match l {
            Layer::BatchNorm(b) => Some(b),
            _ => None,
        })
        .ok_or_else(|| CudaError::Unsupported("a TinyResNet stem without batch norm".into()))
}

impl<T: Real> CudaTinyResNet<T> {
    /// The device twin of `model` (parameters and running statistics copied), with the
    /// body's scheme and (effective) gradient method. Fails for a model in f64.
    pub fn from_cpu(dev: &Arc<Device>, mut model: TinyResNet<T>) -> Result<Self, CudaError> {
        if T::NAME != "f32" {
            return Err(CudaError::Unsupported(format!(
                "a TinyResNet in {}: the device computes in f32",
                T::NAME
            )));
        }
        let input = model.input_shape();
        let feat = model.stem().out_shape();
        let (c, (h, w)) = (feat.channels(), input.spatial());
        let layout = StemLayout::new(input.channels(), c, h, w).map_err(CudaError::Unsupported)?;
        let mut stem = CudaStem::new(dev, layout, 1, &f32s(model.stem().params()))?;
        let bn = stem_bn(model.stem_mut())?;
        stem.set_running_stats(1, &f32s(bn.running_mean()), &f32s(bn.running_var()))?;
        let (fh, fw) = feat.spatial();
        let head = CudaHead::new(
            dev,
            (c, fh, fw),
            POOL,
            model.config().classes,
            &f32s(model.head().params()),
        )?;
        let body = model.body();
        let field = CudaDepthField::from_cpu(dev, body.field())?;
        let solver = GradSolver::new(
            body.scheme().method(),
            body.gradient_method().clone(),
            body.solve_options(),
        )
        .map_err(|e| CudaError::Unsupported(e.to_string()))?;
        Ok(Self {
            dev: dev.clone(),
            host: model,
            stem,
            field,
            solver,
            head,
            feat: None,
            pending: None,
            gtheta: None,
            captured: None,
        })
    }

    /// The host model with the device's running statistics copied back (the parameters
    /// are the host's already).
    pub fn to_cpu(&mut self) -> Result<&TinyResNet<T>, CudaError> {
        self.sync_from_step(false)?;
        self.sync_stats()?;
        Ok(&self.host)
    }

    /// The host model as it is (its running statistics may lag the device's; see
    /// [`CudaTinyResNet::to_cpu`]).
    pub fn host(&self) -> &TinyResNet<T> {
        &self.host
    }

    /// [`CudaTinyResNet::to_cpu`], consuming the device model.
    pub fn into_cpu(mut self) -> Result<TinyResNet<T>, CudaError> {
        self.sync_from_step(false)?;
        self.sync_stats()?;
        Ok(self.host)
    }

    /// The host model, mutable (its parameters are the model's; see
    /// [`CudaTinyResNet::host`]).
    pub(super) fn host_mut(&mut self) -> &mut TinyResNet<T> {
        &mut self.host
    }

    /// Replaces the stem's running statistics on the device.
    pub(super) fn set_stem_stats(&mut self, mean: &[f32], var: &[f32]) -> Result<(), CudaError> {
        self.stem.set_running_stats(1, mean, var)
    }

    /// Replaces body layer `n`'s running statistics on the device.
    pub(super) fn set_body_stats(&mut self, n: usize, stats: &[f32]) -> Result<(), CudaError> {
        self.field.set_running_stats(n, stats)
    }

    /// Copies the device's running statistics (stem and body) into the host model.
    pub(super) fn sync_stats(&mut self) -> Result<(), CudaError> {
        let of = |v: Vec<f32>| -> Vec<T> { v.into_iter().map(|a| T::of(f64::from(a))).collect() };
        for n in 0..self.field.layout().depth() {
            let v = of(self.field.running_stats(n)?);
            self.host
                .body_mut()
                .field_mut()
                .set_running_stats(n, &v)
                .map_err(host_err("TinyResNet running statistics"))?;
        }
        let (m, v) = self.stem.running_stats(1)?;
        stem_bn(self.host.stem_mut())?
            .set_running_stats(&of(m), &of(v))
            .map_err(host_err("TinyResNet stem running statistics"))
    }

    fn check_batch(&mut self, x: &Batch<T>, labels: Option<&[usize]>) -> Result<(), CudaError> {
        if let Some(e) = self.pending.take() {
            return Err(e);
        }
        let want = self.host.input_shape().len();
        if x.cols() != want || x.rows() == 0 {
            return Err(CudaError::invalid(
                "TinyResNet batch",
                format!("{}×{}", x.rows(), x.cols()),
                format!("give at least one image of {want} values per row"),
            ));
        }
        if let Some(l) = labels {
            if l.len() != x.rows() {
                return Err(CudaError::invalid(
                    "TinyResNet labels",
                    l.len(),
                    format!("one per image ({})", x.rows()),
                ));
            }
        }
        Ok(())
    }

    /// The stem's output for the images `x` (copied in) in train or eval mode, taped for
    /// its VJP, in `feat`.
    fn stem_forward(&mut self, x: &Batch<T>, train: bool) -> Result<(), CudaError> {
        let xd = CudaBatch::from_host(&self.dev, &x.cast::<f32>())?;
        let out = self.stem.forward(&xd, train)?;
        let cols = self.host.stem().out_shape().len();
        if self.feat.as_ref().is_none_or(|f| f.rows() != x.rows()) {
            self.feat = Some(CudaBatch::zeros(&self.dev, x.rows(), cols)?);
        }
        let feat = self.feat.as_mut().expect("just made");
        feat.copy_from_device(out)
    }

    /// `x_N` from the stem's output in eval mode: a plain solve with the running statistics.
    fn body_eval(&mut self) -> Result<CudaBatch, CudaError> {
        self.field.set_train(false);
        let y0 = self.feat.as_ref().expect("the stem ran");
        let method = self.host.body().scheme().method();
        let opts = self.solver.options().clone();
        device_solve(&self.dev, &mut self.field, y0, (&method, &opts))?
            .map(|(y, _)| y)
            .map_err(|e| CudaError::call("TinyResNet body solve", e))
    }

    /// Loss, accuracy and gradient on one batch in training mode (`grad`, in the CPU
    /// model's order `[stem | body | head]`, is accumulated into).
    pub fn train_step(
        &mut self,
        x: &Batch<T>,
        labels: &[usize],
        grad: &mut [T],
    ) -> Result<StepMetrics, CudaError> {
        self.check_batch(x, Some(labels))?;
        let n = self.host.num_params();
        if grad.len() != n {
            return Err(CudaError::invalid(
                "TinyResNet gradient",
                grad.len(),
                format!("the model has {n} parameters"),
            ));
        }
        let ns = self.host.stem().num_params();
        let nh = self.host.head().num_params();
        self.host.set_train(true);
        self.stem_forward(x, true)?;
        let (gs, rest) = grad.split_at_mut(ns);
        let (gb, gh) = rest.split_at_mut(n - ns - nh);
        // The body's training pass (each layer's statistics move at its first evaluation),
        // the head's loss and VJP, and the body's backward pass, all on the device.
        let (dev, field, solver) = (&self.dev, &mut self.field, &mut self.solver);
        let y0 = self.feat.as_ref().expect("the stem ran");
        field.set_train(true);
        field.begin_training_pass();
        let z = solver.forward(field, y0);
        field.freeze_running_stats();
        let z = z.map_err(|e| solve_failed(dev, e))?;
        dev.check()?;
        let g_z = self.head.loss_and_grad(z, labels)?;
        let mut gtheta = zeroed_grad(&mut self.gtheta, &*field);
        let g_feat = solver
            .backward(field, g_z, &mut gtheta)
            .map_err(|e| solve_failed(dev, e))?;
        dev.check()?;
        let gv = gtheta.to_f64_vec();
        self.gtheta = Some(gtheta);
        for (a, b) in gb.iter_mut().zip(gv) {
            *a += T::of(b);
        }
        self.stem.zero_grads()?;
        self.stem.backward(&g_feat)?;
        let add = |dst: &mut [T], src: Vec<f32>| {
            for (a, b) in dst.iter_mut().zip(src) {
                *a += T::of(f64::from(b));
            }
        };
        add(gs, self.stem.grads_to_host()?);
        add(gh, self.head.grad_to_host()?);
        let out = self.head.loss()?;
        let st = self.solver.stats();
        let mut m = StepMetrics {
            loss: out.loss,
            accuracy: Some(out.correct as f64 / x.rows() as f64),
            nfe_forward: st.forward.nfe,
            nfe_backward: st.backward_nfe + st.backward_vjp,
            ..Default::default()
        };
        m.extra.insert("tapes_peak".into(), st.tapes_peak as f64);
        Ok(m)
    }

    /// Logits in evaluation mode (running statistics).
    pub fn logits(&mut self, x: &Batch<T>) -> Result<Batch<T>, CudaError> {
        self.check_batch(x, None)?;
        self.sync_from_step(false)?;
        self.host.set_train(false);
        self.stem_forward(x, false)?;
        let z = self.body_eval()?;
        Ok(self.head.logits(&z)?.to_host()?.cast::<T>())
    }

    /// Mean loss and accuracy on `data` in evaluation mode, in chunks of `batch_size` (as
    /// [`TinyResNet::evaluate`]).
    pub fn evaluate(
        &mut self,
        data: &Dataset<T>,
        batch_size: usize,
    ) -> Result<(f64, f64), CudaError> {
        chunked_loss_accuracy(
            data,
            batch_size,
            |x, _| self.logits(x),
            host_err("TinyResNet head"),
        )
    }
}

impl<T: Real> Trainable<T> for CudaTinyResNet<T> {
    type Batch = ImageBatch<T>;

    fn num_params(&self) -> usize {
        self.host.num_params()
    }

    fn read_params(&self, out: &mut [T]) {
        self.host.read_params(out);
    }

    fn write_params(&mut self, src: &[T]) {
        self.host.write_params(src);
        let r = self
            .stem
            .set_params(&f32s(self.host.stem().params()))
            .and_then(|()| {
                self.field
                    .set_params(&f32s(self.host.body().field().params()))
            })
            .and_then(|()| self.head.set_params(&f32s(self.host.head().params())));
        if let Err(e) = r {
            self.pending.get_or_insert(e);
        }
    }

    fn loss_and_grad(
        &mut self,
        batch: &ImageBatch<T>,
        grad: &mut [T],
        iteration: u64,
    ) -> Result<StepMetrics, TrainError> {
        self.train_step(&batch.inputs, &batch.labels, grad)
            .map_err(|e| TrainError::solver(iteration + 1, e))
    }

    fn describe(&self) -> serde_json::Value {
        let mut d = self.host.describe();
        d["device"] = serde_json::json!("cuda");
        d
    }

    fn fused(&mut self) -> Option<&mut dyn crate::train::FusedStep<T, Self::Batch>> {
        if self.captured.is_some() {
            Some(self)
        } else {
            None
        }
    }
}

/// `x_N` of a ResNet body `field` in eval mode (running statistics) from `x`, solved on the
/// device by the body's `method` and `opts`; the outer error is the device's, the inner the
/// solver's.
fn body_final_state<T: Real>(
    dev: &Arc<Device>,
    field: &mut CudaDepthField,
    x: &Batch<T>,
    solver: (&Method, &SolveOptions),
) -> Result<Result<Batch<T>, String>, CudaError> {
    field.set_train(false);
    let r = device_final_state(dev, field, &x.cast::<f32>(), solver)?;
    Ok(r.map(|(y, _)| y.cast::<T>()))
}

/// The final states of the bare ResNet body `net` (conv residual blocks, e.g. loaded from a
/// weights file) in eval mode from `x`, on the device (`odeflow predict --device cuda`); the
/// outer error is the device's, the inner the solver's.
pub fn resnet_final_state<T: Real>(
    dev: &Arc<Device>,
    net: &ResNet<T>,
    x: &Batch<T>,
) -> Result<Result<Batch<T>, String>, CudaError> {
    let mut field = CudaDepthField::from_cpu(dev, net.field())?;
    let method = net.scheme().method();
    body_final_state(dev, &mut field, x, (&method, &net.solve_options()))
}

impl<T: Real> std::fmt::Debug for CudaTinyResNet<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaTinyResNet")
            .field("field", &self.field)
            .finish()
    }
}
