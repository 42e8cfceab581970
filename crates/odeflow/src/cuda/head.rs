//! TinyResNet's head on the device (Sander, Ablin, Peyré, NeurIPS 2022;
//! [`crate::models::tiny_resnet`]): `average-pool k → flatten → Linear → softmax
//! cross-entropy`, with its exact VJP — [`CudaAvgPool`], a one-layer [`CudaMlp`]
//! ([`CudaMlp::linear`]) and the classifier iteration's `softmax_ce_f32` kernel
//! ([`super::loss::launch_softmax_ce`]), so no arithmetic of its own. Flattening an NCHW batch is the
//! identity on its buffer. The parameters are the CPU head's (`Linear` weight, then bias).
//!
//! Per batch size the head keeps its pooled features, logits, their gradients, the labels
//! and the loss sums on the device; a training pass leaves them, `∂L/∂z` and `∂L/∂θ` on the
//! device, and [`CudaHead::loss`] reads back the two numbers (mean loss, correct count).

use std::sync::Arc;

use cudarc::driver::{CudaSlice, DevicePtr};

use super::device::{CudaError, Device};
use super::loss::launch_softmax_ce;
use super::mlp::{CudaMlp, CudaTape};
use super::norm_plan::{ImageBatch, Layout};
use super::pool::CudaAvgPool;
use super::state::CudaBatch;
use crate::field::VectorField;
use crate::state::State;

/// What a training pass of the head reports.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HeadLoss {
    /// Mean softmax cross-entropy of the batch.
    pub loss: f64,
    /// Number of correct predictions.
    pub correct: u64,
}

/// The per-batch buffers of a [`CudaHead`].
struct HeadBuffers {
    rows: usize,
    pooled: CudaBatch,
    logits: CudaBatch,
    g_logits: CudaBatch,
    g_pooled: CudaBatch,
    g_feat: CudaBatch,
    labels: CudaSlice<i32>,
    loss: CudaSlice<f64>,
    correct: CudaSlice<u64>,
}

impl HeadBuffers {
    /// The buffers in `slot` for `rows` samples, made when the batch size changes:
    /// `p` pooled features and `k` classes per sample, `feat` features.
    fn ensure<'a>(
        slot: &'a mut Option<Self>,
        dev: &Arc<Device>,
        rows: usize,
        (feat, p, k): (usize, usize, usize),
    ) -> Result<&'a mut Self, CudaError> {
        if slot.as_ref().is_none_or(|b| b.rows != rows) {
            *slot = None;
            let s = dev.stream();
            let alloc = |e| CudaError::call("allocation", e);
            *slot = Some(Self {
                rows,
                pooled: CudaBatch::zeros(dev, rows, p)?,
                logits: CudaBatch::zeros(dev, rows, k)?,
                g_logits: CudaBatch::zeros(dev, rows, k)?,
                g_pooled: CudaBatch::zeros(dev, rows, p)?,
                g_feat: CudaBatch::zeros(dev, rows, feat)?,
                labels: s.alloc_zeros::<i32>(rows).map_err(alloc)?,
                loss: s.alloc_zeros::<f64>(1).map_err(alloc)?,
                correct: s.alloc_zeros::<u64>(1).map_err(alloc)?,
            });
        }
        Ok(slot.as_mut().expect("just made"))
    }
}

/// TinyResNet's head on features of `C × H × W` per sample.
pub struct CudaHead {
    dev: Arc<Device>,
    feat: (usize, usize, usize),
    pool: CudaAvgPool,
    linear: CudaMlp,
    tape: CudaTape,
    grad: CudaBatch,
    bufs: Option<HeadBuffers>,
}

impl CudaHead {
    /// The head on `(c, h, w)` features: a `window × window` average pool, then a Linear
    /// layer to `classes` with the CPU head's parameters `params`.
    pub fn new(
        dev: &Arc<Device>,
        (c, h, w): (usize, usize, usize),
        window: usize,
        classes: usize,
        params: &[f32],
    ) -> Result<Self, CudaError> {
        let pool = CudaAvgPool::new(dev, window)?;
        let pooled = pool
            .output_shape(&ImageBatch::new(1, c, h, w, Layout::Nchw)?)?
            .len();
        let linear = CudaMlp::linear(dev, pooled, classes, params)?;
        let tape = linear.new_tape();
        let grad = CudaBatch::zeros(dev, 1, linear.num_params())?;
        Ok(Self {
            dev: dev.clone(),
            feat: (c, h, w),
            pool,
            linear,
            tape,
            grad,
            bufs: None,
        })
    }

    /// Number of parameters.
    pub fn num_params(&self) -> usize {
        self.linear.num_params()
    }

    /// Replaces the parameters (the CPU head's order).
    pub fn set_params(&mut self, params: &[f32]) -> Result<(), CudaError> {
        self.linear.set_params(params)
    }

    /// The parameter gradient of the last training pass, copied to the host.
    pub fn grad_to_host(&self) -> Result<Vec<f32>, CudaError> {
        Ok(self.grad.to_host()?.as_slice().to_vec())
    }

    fn feat_shape(&self, rows: usize) -> Result<ImageBatch, CudaError> {
        let (c, h, w) = self.feat;
        ImageBatch::new(rows, c, h, w, Layout::Nchw)
    }

    /// Per sample: features, pooled features, classes.
    fn sizes(&self) -> (usize, usize, usize) {
        let (c, h, w) = self.feat;
        let dims = self.linear.dims();
        (c * h * w, dims[0], dims[1])
    }

    fn check(&self, z: &CudaBatch) -> Result<ImageBatch, CudaError> {
        let shape = self.feat_shape(z.rows().max(1))?;
        if z.rows() == 0 || z.cols() * z.rows() != shape.len() {
            return Err(CudaError::invalid(
                "TinyResNet head input",
                format!("a {}×{} batch", z.rows(), z.cols()),
                format!("give features of {:?} per sample", self.feat),
            ));
        }
        Ok(shape)
    }

    /// The logits of the features `z` (no tape), on the device.
    pub fn logits(&mut self, z: &CudaBatch) -> Result<&CudaBatch, CudaError> {
        let shape = self.check(z)?;
        let sizes = self.sizes();
        let (dev, pool, linear) = (&self.dev, &self.pool, &mut self.linear);
        let b = HeadBuffers::ensure(&mut self.bufs, dev, z.rows(), sizes)?;
        pool.forward(&shape, slice(z)?, slice_mut(&mut b.pooled)?)?;
        linear.eval(0.0, &b.pooled, &mut b.logits);
        dev.check()?;
        Ok(&b.logits)
    }

    /// One training pass on the features `z` with `labels`: the loss sums (read by
    /// [`Self::loss`], so that the caller reads them after the rest of its pass),
    /// `∂L/∂θ` (overwritten) and `∂L/∂z` (returned), all on the device until the next pass.
    pub fn loss_and_grad(
        &mut self,
        z: &CudaBatch,
        labels: &[usize],
    ) -> Result<&CudaBatch, CudaError> {
        let shape = self.check(z)?;
        let classes = self.linear.dims()[1];
        if labels.len() != z.rows() {
            return Err(CudaError::invalid(
                "TinyResNet labels",
                labels.len(),
                format!("one per image ({})", z.rows()),
            ));
        }
        if let Some(l) = labels.iter().find(|&&l| l >= classes) {
            return Err(CudaError::invalid(
                "TinyResNet label",
                l,
                format!("labels must be below the {classes} classes"),
            ));
        }
        let lab: Vec<i32> = labels.iter().map(|&l| l as i32).collect();
        let sizes = self.sizes();
        self.grad.set_zero();
        let (dev, pool, linear, tape, grad) = (
            &self.dev,
            &self.pool,
            &mut self.linear,
            &mut self.tape,
            &mut self.grad,
        );
        let b = HeadBuffers::ensure(&mut self.bufs, dev, z.rows(), sizes)?;
        let s = dev.stream();
        let copy = |e| CudaError::call("host-to-device copy", e);
        s.memcpy_htod(&lab, &mut b.labels).map_err(copy)?;
        let zero = |e| CudaError::call("memset", e);
        s.memset_zeros(&mut b.loss).map_err(zero)?;
        s.memset_zeros(&mut b.correct).map_err(zero)?;
        pool.forward(&shape, slice(z)?, slice_mut(&mut b.pooled)?)?;
        linear.eval_taped(0.0, &b.pooled, &mut b.logits, tape);
        dev.check()?;
        launch_softmax_ce(
            dev,
            z.rows(),
            classes,
            [
                slice(&b.logits)?.device_ptr(s).0,
                b.labels.device_ptr(s).0,
                slice(&b.g_logits)?.device_ptr(s).0,
                b.loss.device_ptr(s).0,
                b.correct.device_ptr(s).0,
            ],
        )?;
        linear.vjp(tape, &b.g_logits, &mut b.g_pooled, grad);
        dev.check()?;
        pool.backward(&shape, slice(&b.g_pooled)?, slice_mut(&mut b.g_feat)?)?;
        Ok(&b.g_feat)
    }

    /// The mean cross-entropy and the number of correct predictions of the last training
    /// pass, copied to the host.
    pub fn loss(&self) -> Result<HeadLoss, CudaError> {
        let b = self.bufs.as_ref().ok_or_else(|| {
            CudaError::invalid("TinyResNet head loss", "no training pass", "run one first")
        })?;
        let s = self.dev.stream();
        let read = |e| CudaError::call("device-to-host copy", e);
        let loss = s.clone_dtoh(&b.loss).map_err(read)?[0];
        let correct = s.clone_dtoh(&b.correct).map_err(read)?[0];
        self.dev.check()?;
        Ok(HeadLoss { loss, correct })
    }
}

fn slice(b: &CudaBatch) -> Result<&CudaSlice<f32>, CudaError> {
    b.slice()
        .ok_or_else(|| CudaError::call("device batch", "its allocation failed earlier"))
}

fn slice_mut(b: &mut CudaBatch) -> Result<&mut CudaSlice<f32>, CudaError> {
    b.slice_mut()
        .ok_or_else(|| CudaError::call("device batch", "its allocation failed earlier"))
}
