//! TinyResNet: the small image classifier of Sander, Ablin, Peyré (NeurIPS 2022) whose body
//! is a depth-`N` ResNet or HeunNet of convolutional residual blocks.
//!
//! ```text
//! stem:  conv 5×5, stride 3, padding 1, C_in → 16  →  batch norm  →  ReLU
//! body:  N residual blocks of 16 channels, x_{n+1} = x_n + f_n(x_n)/N  (or Heun),
//!        f_n = conv3×3 → BN → ReLU → conv3×3 → BN (last BN's scale and shift start at 0)
//! head:  average-pool 4  →  flatten  →  Linear(16·⌊H'/4⌋·⌊W'/4⌋ → 10)
//! ```
//!
//! On 32×32 CIFAR-10 images the stem gives 16×10×10 features and the head `Linear(64 → 10)`;
//! on 28×28 MNIST images 16×9×9 and again `Linear(64 → 10)` (the stem takes `C_in` from the
//! data). The loss is the mean softmax cross-entropy. Stem and head are differentiated by
//! backprop; the body by the configured gradient method (see [`super::resnet`]). The
//! parameters are one vector `[stem | body | head]`, so the model is a [`Trainable`] for the
//! library's [`crate::train::Trainer`].

use serde::{Deserialize, Serialize};

use super::depth_field::{DepthField, Tying};
use super::resnet::{conv_residual_block, ResNet, ResNetError, Scheme};
use crate::data::{derive_seed, Dataset};
use crate::error::ShapeError;
use crate::field::Parameterized;
use crate::grad::GradientMethod;
use crate::nn::loss::{accuracy, softmax_cross_entropy};
use crate::nn::{
    Activation, BatchNormOptions, ConvSpec, Init, Network, NnError, Sequential, SequentialBuilder,
    Shape, Tape,
};
use crate::real::Real;
use crate::state::Batch;
use crate::train::{StepMetrics, TrainError, Trainable};

/// How the body's layers are initialised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BodyInit {
    /// Every layer drawn independently (PyTorch's default: not smooth in depth).
    Iid,
    /// One draw copied into every layer (constant in depth: the smoothest start).
    Constant,
}

/// Settings of a [`TinyResNet`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TinyResNetConfig {
    /// Channels of the body (16).
    pub channels: usize,
    /// Depth `N` of the body (number of residual functions).
    pub depth: usize,
    /// Euler (ResNet) or Heun (HeunNet).
    pub scheme: Scheme,
    /// Tied (one shared block) or untied body.
    pub tying: Tying,
    /// Initialisation of an untied body.
    pub body_init: BodyInit,
    /// Number of classes (10).
    pub classes: usize,
    /// Gradient method of the body.
    pub grad: GradientMethod,
    /// Bodies shallower than this use backprop even when `grad` is `reversible`.
    pub min_reversible_depth: usize,
    /// Initialiser of the convolutions and the linear layer.
    pub init: Init,
    /// Seed of the initialisation.
    pub seed: u64,
}

impl Default for TinyResNetConfig {
    fn default() -> Self {
        Self {
            channels: 16,
            depth: 8,
            scheme: Scheme::Euler,
            tying: Tying::Untied,
            body_init: BodyInit::Iid,
            classes: 10,
            grad: GradientMethod::Backprop,
            min_reversible_depth: 0,
            init: Init::PyTorchDefault,
            seed: 0,
        }
    }
}

/// Labelled images, one per row (channel-major), the training batch of a [`TinyResNet`].
#[derive(Debug, Clone, PartialEq)]
pub struct ImageBatch<T> {
    /// The images.
    pub inputs: Batch<T>,
    /// Their labels.
    pub labels: Vec<usize>,
}

impl<T: Real> ImageBatch<T> {
    /// An empty batch with samples of `cols` values.
    pub fn empty(cols: usize) -> Self {
        Self {
            inputs: Batch::zeros(0, cols),
            labels: Vec::new(),
        }
    }
}

/// TinyResNet's stem on `input` images: `conv 5×5, stride 3, padding 1, C_in → channels`
/// (no bias) → batch norm → ReLU.
pub fn tiny_resnet_stem<T: Real>(input: Shape, channels: usize) -> Result<Sequential<T>, NnError> {
    SequentialBuilder::new(input)
        .conv(ConvSpec::d2(input.channels(), channels, 5, 3, 1).without_bias())
        .batch_norm(BatchNormOptions::default())
        .activation(Activation::Relu)
        .build()
}

/// Stem → ResNet body → head, with cross-entropy loss.
pub struct TinyResNet<T: Real> {
    cfg: TinyResNetConfig,
    input: Shape,
    stem: Network<T>,
    body: ResNet<T>,
    head: Network<T>,
    stem_tape: Tape<T>,
    head_tape: Tape<T>,
    feat: Batch<T>,
    logits: Batch<T>,
    g_logits: Batch<T>,
    g_out: Batch<T>,
    g_feat: Batch<T>,
    g_in: Batch<T>,
    body_grad: Vec<T>,
}

impl<T: Real> TinyResNet<T> {
    /// The model on `(C, H, W)` images.
    pub fn new(input: Shape, cfg: TinyResNetConfig) -> Result<Self, ResNetError> {
        let ch = cfg.channels;
        let stem_seq = tiny_resnet_stem(input, ch)?;
        let feat = stem_seq.out_shape();
        let (h, w) = feat.spatial();
        let stem = Network::new(stem_seq, &cfg.init, derive_seed(cfg.seed, 0));
        let block = conv_residual_block(ch, h, w)?;
        let body_seed = derive_seed(cfg.seed, 1);
        let field = match (cfg.tying, cfg.body_init) {
            (Tying::Untied, BodyInit::Constant) => {
                DepthField::new(block, cfg.depth, Tying::Tied, &cfg.init, body_seed)?.untie()
            }
            (tying, _) => DepthField::new(block, cfg.depth, tying, &cfg.init, body_seed)?,
        };
        let body = ResNet::new(
            field,
            cfg.scheme,
            cfg.grad.clone(),
            cfg.min_reversible_depth,
        )?;
        let head_seq = SequentialBuilder::new(feat)
            .avg_pool(4)
            .flatten()
            .linear(cfg.classes)
            .build()?;
        let head = Network::new(head_seq, &cfg.init, derive_seed(cfg.seed, 2));
        let body_grad = vec![T::zero(); body.field().num_params()];
        Ok(Self {
            cfg,
            input,
            stem,
            body,
            head,
            stem_tape: Tape::new(),
            head_tape: Tape::new(),
            feat: Batch::zeros(0, 0),
            logits: Batch::zeros(0, 0),
            g_logits: Batch::zeros(0, 0),
            g_out: Batch::zeros(0, 0),
            g_feat: Batch::zeros(0, 0),
            g_in: Batch::zeros(0, 0),
            body_grad,
        })
    }

    /// The settings.
    pub fn config(&self) -> &TinyResNetConfig {
        &self.cfg
    }

    /// Shape of one input image.
    pub fn input_shape(&self) -> Shape {
        self.input
    }

    /// The stem `conv 5×5 → batch norm → ReLU`.
    pub fn stem(&self) -> &Network<T> {
        &self.stem
    }

    /// The stem, mutable (e.g. its batch norm's running statistics).
    pub fn stem_mut(&mut self) -> &mut Network<T> {
        &mut self.stem
    }

    /// The head `average-pool 4 → flatten → Linear`.
    pub fn head(&self) -> &Network<T> {
        &self.head
    }

    /// The head, mutable.
    pub fn head_mut(&mut self) -> &mut Network<T> {
        &mut self.head
    }

    /// The ResNet body.
    pub fn body(&self) -> &ResNet<T> {
        &self.body
    }

    /// The ResNet body, mutable.
    pub fn body_mut(&mut self) -> &mut ResNet<T> {
        &mut self.body
    }

    /// The same model with the body replaced by `body` (stem, head and settings kept).
    fn with_body(&self, body: DepthField<T>) -> Result<Self, ResNetError> {
        let cfg = TinyResNetConfig {
            depth: body.depth(),
            tying: body.tying(),
            ..self.cfg.clone()
        };
        let resnet = ResNet::new(body, cfg.scheme, cfg.grad.clone(), cfg.min_reversible_depth)?;
        Ok(Self {
            body_grad: vec![T::zero(); resnet.field().num_params()],
            cfg,
            input: self.input,
            stem: self.stem.clone(),
            body: resnet,
            head: self.head.clone(),
            stem_tape: Tape::new(),
            head_tape: Tape::new(),
            feat: Batch::zeros(0, 0),
            logits: Batch::zeros(0, 0),
            g_logits: Batch::zeros(0, 0),
            g_out: Batch::zeros(0, 0),
            g_feat: Batch::zeros(0, 0),
            g_in: Batch::zeros(0, 0),
        })
    }

    /// A depth-`new_depth` model initialised from this (trained or fresh) depth-`M` one:
    /// body layer `i ← layer ⌊M·i/N⌋` (see [`DepthField::interpolate_depth`]); stem and
    /// head are copied.
    pub fn interpolate_depth(&self, new_depth: usize) -> Result<Self, ResNetError> {
        self.with_body(self.body.field().interpolate_depth(new_depth)?)
    }

    /// The model with a tied body turned into `N` identical layers (same function).
    pub fn untie(&self) -> Result<Self, ResNetError> {
        self.with_body(self.body.field().untie())
    }

    /// Training or evaluation mode (batch norm everywhere).
    pub fn set_train(&mut self, train: bool) {
        self.stem.set_train(train);
        self.body.set_train(train);
        self.head.set_train(train);
    }

    fn sizes(&self) -> [usize; 3] {
        [
            self.stem.num_params(),
            self.body.field().num_params(),
            self.head.num_params(),
        ]
    }

    fn check_batch(&self, x: &Batch<T>, labels: &[usize]) -> Result<(), ShapeError> {
        if x.cols() != self.input.len() {
            return Err(ShapeError {
                what: "image (values per sample)",
                expected: self.input.len(),
                got: x.cols(),
            });
        }
        if labels.len() != x.rows() {
            return Err(ShapeError {
                what: "labels (one per image)",
                expected: x.rows(),
                got: labels.len(),
            });
        }
        Ok(())
    }

    /// The stem's output for `x` in the current mode, without taping (e.g. the input of the
    /// body for analyses).
    pub fn features(&mut self, x: &Batch<T>) -> Result<Batch<T>, ResNetError> {
        let mut f = Batch::zeros(0, 0);
        self.stem.forward(0.0, x, &mut f)?;
        Ok(f)
    }

    /// Logits in evaluation mode (running statistics), without gradient bookkeeping.
    pub fn logits(&mut self, x: &Batch<T>) -> Result<Batch<T>, ResNetError> {
        self.set_train(false);
        let f = self.features(x)?;
        let z = self.body.infer(&f)?;
        let mut logits = Batch::zeros(0, 0);
        self.head.forward(0.0, &z, &mut logits)?;
        Ok(logits)
    }

    /// Mean loss and accuracy on `data` in evaluation mode, in chunks of `batch_size`.
    pub fn evaluate(
        &mut self,
        data: &Dataset<T>,
        batch_size: usize,
    ) -> Result<(f64, f64), ResNetError> {
        chunked_loss_accuracy(
            data,
            batch_size,
            |x, labels| {
                self.check_batch(x, labels)?;
                self.logits(x)
            },
            ResNetError::from,
        )
    }

    /// Loss, accuracy and gradient on one batch in training mode; `grad` has the length of
    /// the parameters and is accumulated into.
    pub fn train_step(
        &mut self,
        x: &Batch<T>,
        labels: &[usize],
        grad: &mut [T],
    ) -> Result<StepMetrics, ResNetError> {
        self.check_batch(x, labels)?;
        let [ns, nb, nh] = self.sizes();
        if grad.len() != ns + nb + nh {
            return Err(ShapeError {
                what: "TinyResNet gradient",
                expected: ns + nb + nh,
                got: grad.len(),
            }
            .into());
        }
        self.set_train(true);
        self.stem
            .forward_taped(0.0, x, &mut self.feat, &mut self.stem_tape)?;
        let z = self.body.forward(&self.feat)?;
        self.head
            .forward_taped(0.0, z, &mut self.logits, &mut self.head_tape)?;
        let loss = softmax_cross_entropy(&self.logits, labels, &mut self.g_logits)?;
        let acc = accuracy(&self.logits, labels)?;
        let (gs, rest) = grad.split_at_mut(ns);
        let (gb, gh) = rest.split_at_mut(nb);
        self.head
            .backward(&self.head_tape, &self.g_logits, &mut self.g_out, gh)?;
        self.body_grad.iter_mut().for_each(|g| *g = T::zero());
        self.g_feat = self.body.backward(&self.g_out, &mut self.body_grad)?;
        for (a, b) in gb.iter_mut().zip(&self.body_grad) {
            *a += *b;
        }
        self.stem
            .backward(&self.stem_tape, &self.g_feat, &mut self.g_in, gs)?;
        let st = self.body.stats();
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
}

/// Mean softmax cross-entropy and accuracy over `data` of the logits `logits` gives for
/// chunks of `batch_size` images and their labels (the evaluation of a TinyResNet on either
/// device); `nn` maps a loss error into the caller's.
pub fn chunked_loss_accuracy<T: Real, E>(
    data: &Dataset<T>,
    batch_size: usize,
    mut logits: impl FnMut(&Batch<T>, &[usize]) -> Result<Batch<T>, E>,
    nn: impl Fn(crate::nn::NnError) -> E,
) -> Result<(f64, f64), E> {
    let n = data.len();
    if n == 0 {
        return Ok((0.0, 0.0));
    }
    let bs = batch_size.max(1);
    let (mut loss, mut hits) = (0.0, 0.0);
    let (mut x, mut g) = (Batch::zeros(0, 0), Batch::zeros(0, 0));
    for start in (0..n).step_by(bs) {
        let idx: Vec<usize> = (start..(start + bs).min(n)).collect();
        x.gather_rows(data.inputs(), &idx);
        let labels = &data.labels()[start..start + idx.len()];
        let z = logits(&x, labels)?;
        let m = idx.len() as f64;
        loss += m * softmax_cross_entropy(&z, labels, &mut g).map_err(&nn)?;
        hits += m * accuracy(&z, labels).map_err(&nn)?;
    }
    Ok((loss / n as f64, hits / n as f64))
}

impl<T: Real> Trainable<T> for TinyResNet<T> {
    type Batch = ImageBatch<T>;

    fn num_params(&self) -> usize {
        self.sizes().iter().sum()
    }

    fn read_params(&self, out: &mut [T]) {
        let [ns, nb, _] = self.sizes();
        out[..ns].copy_from_slice(self.stem.params());
        out[ns..ns + nb].copy_from_slice(self.body.field().params());
        out[ns + nb..].copy_from_slice(self.head.params());
    }

    fn write_params(&mut self, src: &[T]) {
        let [ns, nb, _] = self.sizes();
        self.stem.params_mut().copy_from_slice(&src[..ns]);
        self.body
            .field_mut()
            .params_mut()
            .copy_from_slice(&src[ns..ns + nb]);
        self.head.params_mut().copy_from_slice(&src[ns + nb..]);
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
        serde_json::json!({
            "model": "tiny-resnet",
            "input": self.input,
            "config": self.cfg,
        })
    }
}
