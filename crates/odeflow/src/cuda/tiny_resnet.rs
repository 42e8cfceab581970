//! TinyResNet (Sander, Ablin, Peyré, "Do Residual Neural Networks discretize Neural
//! Ordinary Differential Equations?", NeurIPS 2022; [`crate::models::tiny_resnet`]) with its
//! body on the device: the depth-`N` ResNet (Euler) or HeunNet (Heun) of convolutional
//! residual blocks, [`CudaDepthField`], solved and differentiated by the library's generic
//! gradient solver ([`GradSolver`]: backprop or the memory-free reversible adjoint, as the
//! CPU [`crate::models::resnet::ResNet`] does), in f32; the stem (`conv 5×5 / 3 → BN →
//! ReLU`) and the head (`avg-pool 4 → Linear`, cross-entropy) stay on the host in `T`, as the
//! head of [`super::CudaFlowModel`] does, with one copy of the features and of their gradient
//! each way per iteration. The body holds almost all of the arithmetic (`2N` of the `2N + 1`
//! convolutions).
//!
//! As on the CPU, a training step is a training pass of the body (each layer's batch-norm
//! running statistics move at its first evaluation), and evaluation uses the running
//! statistics. The host [`TinyResNet`] is the model of record: its parameters are written to
//! the device by [`Trainable::write_params`], and the running statistics come back with
//! [`CudaTinyResNet::to_cpu`]. The device glue is compared with the CPU model on a GPU by
//! [`super::tiny_resnet_agreement`] (ResNet and HeunNet, backprop and reversible, untied and
//! tied).

use std::sync::Arc;

use super::depth_field::CudaDepthField;
use super::device::{CudaError, Device};
use super::eager::{device_final_state, padded_f32, zeroed_grad};
use super::state::CudaBatch;
use crate::analysis::resnet::trained::TinyResNetHost;
use crate::data::Dataset;
use crate::field::Parameterized;
use crate::grad::GradSolver;
use crate::models::resnet::ResNet;
use crate::models::tiny_resnet::{chunked_loss_accuracy, ImageBatch, TinyResNet};
use crate::nn::loss::{accuracy, softmax_cross_entropy};
use crate::nn::Tape;
use crate::real::Real;
use crate::solve::{Method, SolveOptions};
use crate::state::{Batch, State};
use crate::train::{StepMetrics, TrainError, Trainable};

/// A [`TinyResNet`] whose body runs on the device (see the module docs).
pub struct CudaTinyResNet<T: Real> {
    dev: Arc<Device>,
    host: TinyResNet<T>,
    field: CudaDepthField,
    solver: GradSolver<CudaBatch, CudaDepthField>,
    stem_tape: Tape<T>,
    head_tape: Tape<T>,
    /// A failed parameter upload, reported by the next pass.
    pending: Option<CudaError>,
    /// The body's parameter gradient on the device, kept between iterations.
    gtheta: Option<CudaBatch>,
}

fn host_err(what: &'static str) -> impl Fn(crate::nn::NnError) -> CudaError {
    move |e| CudaError::invalid(what, e, "the host half of the TinyResNet refused it")
}

impl<T: Real> CudaTinyResNet<T> {
    /// The device twin of `model` (parameters and running statistics copied), with the
    /// body's scheme and (effective) gradient method. Fails for a model in f64.
    pub fn from_cpu(dev: &Arc<Device>, model: TinyResNet<T>) -> Result<Self, CudaError> {
        if T::NAME != "f32" {
            return Err(CudaError::Unsupported(format!(
                "a TinyResNet in {}: the device computes in f32",
                T::NAME
            )));
        }
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
            field,
            solver,
            stem_tape: Tape::new(),
            head_tape: Tape::new(),
            pending: None,
            gtheta: None,
        })
    }

    /// The host model with the device's running statistics copied back (the parameters
    /// are the host's already).
    pub fn to_cpu(&mut self) -> Result<&TinyResNet<T>, CudaError> {
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
        self.sync_stats()?;
        Ok(self.host)
    }

    fn sync_stats(&mut self) -> Result<(), CudaError> {
        for n in 0..self.field.layout().depth() {
            let v: Vec<T> = self
                .field
                .running_stats(n)?
                .iter()
                .map(|&a| T::of(f64::from(a)))
                .collect();
            self.host
                .body_mut()
                .field_mut()
                .set_running_stats(n, &v)
                .map_err(host_err("TinyResNet running statistics"))?;
        }
        Ok(())
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

    /// A solver failure, or the device error that explains it.
    fn failed(&self, e: impl std::fmt::Display) -> CudaError {
        match self.dev.check() {
            Err(d) => d,
            Ok(()) => CudaError::call("TinyResNet body solve", e),
        }
    }

    /// `x_N` from the stem's output `feat`: a training pass (taped for the backward pass)
    /// or, in eval mode, a plain solve with the running statistics.
    fn body_forward(&mut self, feat: &Batch<T>, train: bool) -> Result<Batch<T>, CudaError> {
        self.field.set_train(train);
        if !train {
            let method = self.host.body().scheme().method();
            let opts = self.solver.options().clone();
            return body_final_state(&self.dev, &mut self.field, feat, (&method, &opts))?
                .map_err(|e| CudaError::call("TinyResNet body solve", e));
        }
        let y0 = CudaBatch::from_host(&self.dev, &padded_f32(feat, 0))?;
        self.field.begin_training_pass();
        let r = self
            .solver
            .forward(&mut self.field, &y0)
            .map(|y| y.to_host());
        self.field.freeze_running_stats();
        let y = r.map_err(|e| self.failed(e))?;
        self.dev.check()?;
        Ok(y?.cast::<T>())
    }

    /// `∂L/∂x_0` from `∂L/∂x_N` after a training pass, the body's parameter gradient
    /// accumulated into `grad_body`.
    fn body_backward(
        &mut self,
        g_out: &Batch<T>,
        grad_body: &mut [T],
    ) -> Result<Batch<T>, CudaError> {
        let g = CudaBatch::from_host(&self.dev, &padded_f32(g_out, 0))?;
        let mut gtheta = zeroed_grad(&mut self.gtheta, &self.field);
        let g0 = self
            .solver
            .backward(&mut self.field, &g, &mut gtheta)
            .map_err(|e| self.failed(e))?;
        self.dev.check()?;
        let gv = gtheta.to_f64_vec();
        self.gtheta = Some(gtheta);
        for (a, b) in grad_body.iter_mut().zip(gv) {
            *a += T::of(b);
        }
        Ok(g0.to_host()?.cast::<T>())
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
        let mut feat = Batch::zeros(0, 0);
        let stem_err = host_err("TinyResNet stem");
        let head_err = host_err("TinyResNet head");
        self.host
            .stem_mut()
            .forward_taped(0.0, x, &mut feat, &mut self.stem_tape)
            .map_err(&stem_err)?;
        let z = self.body_forward(&feat, true)?;
        let mut logits = Batch::zeros(0, 0);
        self.host
            .head_mut()
            .forward_taped(0.0, &z, &mut logits, &mut self.head_tape)
            .map_err(&head_err)?;
        let mut g_logits = Batch::zeros(0, 0);
        let loss = softmax_cross_entropy(&logits, labels, &mut g_logits).map_err(&head_err)?;
        let acc = accuracy(&logits, labels).map_err(&head_err)?;
        let (gs, rest) = grad.split_at_mut(ns);
        let (gb, gh) = rest.split_at_mut(n - ns - nh);
        let mut g_out = Batch::zeros(0, 0);
        self.host
            .head_mut()
            .backward(&self.head_tape, &g_logits, &mut g_out, gh)
            .map_err(&head_err)?;
        let g_feat = self.body_backward(&g_out, gb)?;
        let mut g_in = Batch::zeros(0, 0);
        self.host
            .stem_mut()
            .backward(&self.stem_tape, &g_feat, &mut g_in, gs)
            .map_err(&stem_err)?;
        let st = self.solver.stats();
        let mut m = StepMetrics {
            loss,
            accuracy: Some(acc),
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
        self.host.set_train(false);
        let mut feat = Batch::zeros(0, 0);
        self.host
            .stem_mut()
            .forward(0.0, x, &mut feat)
            .map_err(host_err("TinyResNet stem"))?;
        let z = self.body_forward(&feat, false)?;
        let mut logits = Batch::zeros(0, 0);
        self.host
            .head_mut()
            .forward(0.0, &z, &mut logits)
            .map_err(host_err("TinyResNet head"))?;
        Ok(logits)
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
        let body: Vec<f32> = self
            .host
            .body()
            .field()
            .params()
            .iter()
            .map(|v| v.f64() as f32)
            .collect();
        if let Err(e) = self.field.set_params(&body) {
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
    let r = device_final_state(dev, field, &padded_f32(x, 0), solver)?;
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

impl<T: Real> TinyResNetHost<T> for CudaTinyResNet<T> {
    /// The host model with the device's running statistics copied back.
    fn host_model(&mut self, iteration: u64) -> Result<&mut TinyResNet<T>, TrainError> {
        self.sync_stats()
            .map_err(|e| TrainError::solver(iteration, e))?;
        Ok(&mut self.host)
    }
}

impl<T: Real> std::fmt::Debug for CudaTinyResNet<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaTinyResNet")
            .field("field", &self.field)
            .finish()
    }
}
