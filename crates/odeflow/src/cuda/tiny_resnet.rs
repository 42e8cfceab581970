//! TinyResNet (Sander, Ablin, Peyré, "Do Residual Neural Networks discretize Neural
//! Ordinary Differential Equations?", NeurIPS 2022; [`crate::models::tiny_resnet`]) with its
//! ResNet body on the device: the depth-`N` Euler body `x_{n+1} = x_n + f_n(x_n)/N` of
//! convolutional residual blocks ([`CudaResBlock`]), trained by backprop, in f32; the stem
//! (`conv 5×5 / 3 → BN → ReLU`) and the head (`avg-pool 4 → Linear`, cross-entropy) stay on
//! the host in `T`, as the head of [`super::CudaFlowModel`] does. The body holds almost all
//! of the arithmetic (`2N` of the `2N + 1` convolutions, on the stem's output).
//!
//! **The body on the device.** Layer `n` is one [`CudaResBlock`] (its own tape and its own
//! batch-norm running statistics, which the CPU [`DepthField`] also keeps per layer, tied or
//! not); with a tied body every block holds the shared parameters and the gradient is the
//! sum over layers. Forward: `x ← x + f_n(x)/N` in place by [`residual_update`]. Backward,
//! from `g = ∂L/∂x_N`: `g ← g + (1/N) (∂f_n/∂x)ᵀ g` for `n = N−1, …, 0` at each block's tape
//! (which holds `x_n`), each block accumulating `(∂f_n/∂θ)ᵀ g`, which enters `∂L/∂θ_n`
//! scaled by `1/N` ([`BodyMap::fold_grads`]). In train mode each layer's
//! running statistics move once per forward pass, as on the CPU (each layer is evaluated
//! once by Euler).
//!
//! **What is refused** (one [`CudaError::Unsupported`] line,
//! [`crate::models::tiny_resnet::TinyResNetConfig::unsupported_on_device`]): the Heun body
//! (a layer is evaluated twice per pass, at two points, and a block holds one tape) and the
//! reversible gradient (it reconstructs `x_n` backwards through the batch norms); both train
//! on the CPU.
//!
//! **Parameters and state** move between devices unchanged: the host [`TinyResNet`] is the
//! model of record (its parameters are written to the blocks by
//! [`Trainable::write_params`]); the running statistics come back with
//! [`CudaTinyResNet::to_cpu`]. [`BodyMap`] is the correspondence between the CPU body and
//! the blocks, tested on the CPU (`tests/cuda_plan/tiny_resnet.rs`); the device glue is
//! compared with the CPU model on a GPU by [`super::tiny_resnet_agreement`].

use std::sync::Arc;

use super::device::{CudaError, Device};
use super::eager::padded_f32;
use super::pool::residual_update;
use super::res_block::CudaResBlock;
use super::res_block_plan::ResBlockLayout;
use super::state::CudaBatch;
use crate::data::Dataset;
use crate::field::Parameterized;
use crate::models::depth_field::DepthField;
use crate::models::tiny_resnet::{ImageBatch, TinyResNet};
use crate::nn::loss::{accuracy, softmax_cross_entropy};
use crate::nn::Tape;
use crate::real::Real;
use crate::state::Batch;
use crate::train::{StepMetrics, TrainError, Trainable};

/// The correspondence between a CPU [`DepthField`] of residual blocks and one
/// [`CudaResBlock`] per layer: parameters, gradients and running statistics.
#[derive(Debug, Clone, PartialEq)]
pub struct BodyMap {
    depth: usize,
    per_fn: usize,
    /// The function (parameter set) of each layer.
    function: Vec<usize>,
    channels: usize,
}

impl BodyMap {
    /// The map of `field`, whose layers must be `layout`'s blocks.
    pub fn new<T: Real>(field: &DepthField<T>, layout: &ResBlockLayout) -> Result<Self, CudaError> {
        if field.params_per_function() != layout.num_params() {
            return Err(CudaError::invalid(
                "TinyResNet body",
                format!("{} parameters per layer", field.params_per_function()),
                format!(
                    "a residual block on {:?} has {}",
                    field.shape(),
                    layout.num_params()
                ),
            ));
        }
        let c = layout.channels();
        if field.running_stats(0).len() != 4 * c {
            return Err(CudaError::invalid(
                "TinyResNet body running statistics",
                field.running_stats(0).len(),
                format!("a residual block keeps 4·{c}"),
            ));
        }
        Ok(Self {
            depth: field.depth(),
            per_fn: field.params_per_function(),
            function: (0..field.depth())
                .map(|n| field.function_of_layer(n))
                .collect(),
            channels: c,
        })
    }

    /// Layers `N`.
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// The flat parameters of layer `n`'s block, from the body's parameters `body`.
    pub fn layer_params<T: Real>(&self, body: &[T], n: usize) -> Vec<f32> {
        let k = self.function[n];
        body[k * self.per_fn..(k + 1) * self.per_fn]
            .iter()
            .map(|v| v.f64() as f32)
            .collect()
    }

    /// `grad += ∂L/∂θ` from the blocks' gradients `per_layer`, `(∂f_n/∂θ)ᵀ g_{n+1}`: a
    /// layer enters the state as `h f_n` (`h = 1/N`), so each is scaled by `h`; a tied body
    /// sums them.
    pub fn fold_grads<T: Real>(&self, per_layer: &[Vec<f32>], grad: &mut [T]) {
        let h = 1.0 / self.depth as f64;
        for (n, g) in per_layer.iter().enumerate() {
            let k = self.function[n];
            for (a, b) in grad[k * self.per_fn..(k + 1) * self.per_fn]
                .iter_mut()
                .zip(g)
            {
                *a += T::of(h * f64::from(*b));
            }
        }
    }

    /// The running `(mean, var)` of batch norms 1 and 2 from the CPU layout
    /// `[mean₁, var₁, mean₂, var₂]` of one layer ([`DepthField::running_stats`]).
    pub fn split_stats<T: Real>(&self, stats: &[T]) -> [(Vec<f32>, Vec<f32>); 2] {
        let c = self.channels;
        let part = |i: usize| -> Vec<f32> {
            stats[i * c..(i + 1) * c]
                .iter()
                .map(|v| v.f64() as f32)
                .collect()
        };
        [(part(0), part(1)), (part(2), part(3))]
    }

    /// The inverse of [`BodyMap::split_stats`].
    pub fn merge_stats<T: Real>(&self, stats: &[(Vec<f32>, Vec<f32>); 2]) -> Vec<T> {
        stats
            .iter()
            .flat_map(|(m, v)| m.iter().chain(v))
            .map(|&a| T::of(f64::from(a)))
            .collect()
    }
}

/// A [`TinyResNet`] whose Euler body runs on the device (see the module docs).
pub struct CudaTinyResNet<T: Real> {
    dev: Arc<Device>,
    host: TinyResNet<T>,
    layout: ResBlockLayout,
    map: BodyMap,
    /// One block per layer, for batches of `rows` samples (built at the first batch).
    blocks: Vec<CudaResBlock>,
    rows: usize,
    /// The body's state `x_n`, then the cotangent `∂L/∂x_n`.
    x: Option<CudaBatch>,
    g: Option<CudaBatch>,
    stem_tape: Tape<T>,
    head_tape: Tape<T>,
    /// A failed parameter upload, reported by the next pass.
    pending: Option<CudaError>,
}

fn host_err(what: &'static str) -> impl Fn(crate::nn::NnError) -> CudaError {
    move |e| CudaError::invalid(what, e, "the host half of the TinyResNet refused it")
}

fn from_f32<T: Real>(b: &Batch<f32>) -> Batch<T> {
    let mut out = Batch::zeros(b.rows(), b.cols());
    for (o, v) in out.as_mut_slice().iter_mut().zip(b.as_slice()) {
        *o = T::of(f64::from(*v));
    }
    out
}

impl<T: Real> CudaTinyResNet<T> {
    /// The device twin of `model` (parameters and running statistics copied; the blocks are
    /// allocated at the first batch). Fails for a Heun body, a reversible gradient or a
    /// model in f64.
    pub fn from_cpu(dev: &Arc<Device>, model: TinyResNet<T>) -> Result<Self, CudaError> {
        if T::NAME != "f32" {
            return Err(CudaError::Unsupported(format!(
                "a TinyResNet in {}: the device computes in f32",
                T::NAME
            )));
        }
        if let Some(why) = model.config().unsupported_on_device() {
            return Err(CudaError::Unsupported(format!(
                "{why}; train it on the CPU"
            )));
        }
        let shape = model.body().field().shape();
        let (h, w) = shape.spatial();
        let layout = ResBlockLayout::new(shape.channels(), h, w)
            .map_err(|e| CudaError::invalid("TinyResNet body", format!("{shape:?}"), e))?;
        let map = BodyMap::new(model.body().field(), &layout)?;
        Ok(Self {
            dev: dev.clone(),
            host: model,
            layout,
            map,
            blocks: Vec::new(),
            rows: 0,
            x: None,
            g: None,
            stem_tape: Tape::new(),
            head_tape: Tape::new(),
            pending: None,
        })
    }

    /// The host model with the device's running statistics copied back (the parameters
    /// are the host's already).
    pub fn to_cpu(&mut self) -> Result<&TinyResNet<T>, CudaError> {
        self.sync_stats()?;
        Ok(&self.host)
    }

    /// [`CudaTinyResNet::to_cpu`], consuming the device model.
    pub fn into_cpu(mut self) -> Result<TinyResNet<T>, CudaError> {
        self.sync_stats()?;
        Ok(self.host)
    }

    fn sync_stats(&mut self) -> Result<(), CudaError> {
        for (n, b) in self.blocks.iter().enumerate() {
            let stats = [b.running_stats(1)?, b.running_stats(2)?];
            let v: Vec<T> = self.map.merge_stats(&stats);
            self.host
                .body_mut()
                .field_mut()
                .set_running_stats(n, &v)
                .map_err(host_err("TinyResNet running statistics"))?;
        }
        Ok(())
    }

    /// Blocks for batches of `rows` samples, carrying parameters and running statistics
    /// over from the current ones.
    fn ensure_rows(&mut self, rows: usize) -> Result<(), CudaError> {
        if rows == self.rows && !self.blocks.is_empty() {
            return Ok(());
        }
        self.sync_stats()?;
        self.blocks.clear();
        let field = self.host.body().field();
        for n in 0..self.map.depth() {
            let p = self.map.layer_params(field.params(), n);
            let mut b = CudaResBlock::new(&self.dev, self.layout.clone(), rows, &p)?;
            let [(m1, v1), (m2, v2)] = self.map.split_stats(field.running_stats(n));
            b.set_running_stats(1, &m1, &v1)?;
            b.set_running_stats(2, &m2, &v2)?;
            self.blocks.push(b);
        }
        let d = self.layout.sample_len();
        self.x = Some(CudaBatch::zeros(&self.dev, rows, d)?);
        self.g = Some(CudaBatch::zeros(&self.dev, rows, d)?);
        self.rows = rows;
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

    /// `x_N` from the stem's output `feat` (train or eval mode), taping every layer.
    fn body_forward(&mut self, feat: &Batch<T>, train: bool) -> Result<Batch<T>, CudaError> {
        self.ensure_rows(feat.rows())?;
        let inv_n = 1.0 / self.map.depth() as f32;
        let Self { dev, blocks, x, .. } = self;
        let x = x.as_mut().expect("allocated with the blocks");
        x.copy_from_host(&padded_f32(feat, 0))?;
        for b in blocks.iter_mut() {
            let f = b.forward(x, train)?;
            let xs = x.slice_mut().expect("allocated");
            residual_update(dev, xs, &[(inv_n, f)])?;
        }
        Ok(from_f32(&x.to_host()?))
    }

    /// `∂L/∂x_0` from `∂L/∂x_N`, the blocks' gradients folded into `grad_body`.
    fn body_backward(
        &mut self,
        g_out: &Batch<T>,
        grad_body: &mut [T],
    ) -> Result<Batch<T>, CudaError> {
        let inv_n = 1.0 / self.map.depth() as f32;
        let Self {
            dev,
            blocks,
            g,
            map,
            ..
        } = self;
        let g = g.as_mut().expect("allocated with the blocks");
        g.copy_from_host(&padded_f32(g_out, 0))?;
        for b in blocks.iter_mut().rev() {
            b.zero_grads()?;
            let gx = b.backward(g)?;
            let gs = g.slice_mut().expect("allocated");
            residual_update(dev, gs, &[(inv_n, gx)])?;
        }
        let per_layer = blocks
            .iter()
            .map(|b| b.grads_to_host())
            .collect::<Result<Vec<_>, _>>()?;
        map.fold_grads(&per_layer, grad_body);
        Ok(from_f32(&g.to_host()?))
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
        let depth = self.map.depth();
        let mut m = StepMetrics {
            loss,
            accuracy: Some(acc),
            nfe_forward: depth,
            nfe_backward: depth,
            ..Default::default()
        };
        m.extra.insert("tapes_peak".into(), depth as f64);
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
        let n = data.len();
        if n == 0 {
            return Ok((0.0, 0.0));
        }
        let bs = batch_size.max(1);
        let (mut loss, mut hits) = (0.0, 0.0);
        let (mut x, mut g) = (Batch::zeros(0, 0), Batch::zeros(0, 0));
        let head_err = host_err("TinyResNet head");
        for start in (0..n).step_by(bs) {
            let idx: Vec<usize> = (start..(start + bs).min(n)).collect();
            x.gather_rows(data.inputs(), &idx);
            let labels = &data.labels()[start..start + idx.len()];
            let logits = self.logits(&x)?;
            let m = idx.len() as f64;
            loss += m * softmax_cross_entropy(&logits, labels, &mut g).map_err(&head_err)?;
            hits += m * accuracy(&logits, labels).map_err(&head_err)?;
        }
        Ok((loss / n as f64, hits / n as f64))
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
        let body = self.host.body().field().params();
        for (n, b) in self.blocks.iter_mut().enumerate() {
            let p = self.map.layer_params(body, n);
            if let Err(e) = b.set_params(&p) {
                self.pending.get_or_insert(e);
            }
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

impl<T: Real> std::fmt::Debug for CudaTinyResNet<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaTinyResNet")
            .field("layout", &self.layout)
            .field("depth", &self.map.depth())
            .field("rows", &self.rows)
            .finish()
    }
}
