//! A chain of layers with checked shapes, a flat parameter layout and a reusable tape.
//!
//! The forward pass of `f = f_L ∘ ⋯ ∘ f_1` records every activation `a_0 = x`,
//! `a_i = f_i(a_{i−1})` (and each layer's extra record, e.g. batch statistics) in a
//! [`Tape`]; the backward pass is the chain rule from the last layer down:
//! `g_L = v`, `g_{i−1} = (∂f_i/∂a_{i−1})ᵀ g_i`, accumulating `(∂f_i/∂θ_i)ᵀ g_i` into the
//! parameter gradient. Buffers of the tape and of the sequence are resized on first use and
//! reused, so a steady-state training loop does not allocate.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::activation::{Activation, ActivationLayer};
use super::batchnorm::{BatchNorm, BatchNormOptions};
use super::conv::{Conv, ConvSpec};
use super::gemm::GemmParams;
use super::linear::Linear;
use super::pool::AvgPool2d;
use super::shape_ops::{to_channels_first, to_channels_last, Flatten, TimeConcat};
use super::{Init, Module, NnError, Pass, Saved, Shape};
use crate::error::ShapeError;
use crate::field::ParamView;
use crate::real::Real;

/// One layer of a [`Sequential`] (an enum, so the chain is monomorphised: no dynamic
/// dispatch per element, one `match` per layer call).
#[derive(Debug, Clone)]
pub enum Layer<T> {
    /// Fully connected.
    Linear(Linear),
    /// 1-D or 2-D convolution.
    Conv(Conv<T>),
    /// Elementwise activation.
    Activation(ActivationLayer),
    /// Time as an extra leading channel.
    TimeConcat(TimeConcat),
    /// Batch normalisation.
    BatchNorm(BatchNorm<T>),
    /// Channel-major flattening.
    Flatten(Flatten),
    /// Average pooling.
    AvgPool(AvgPool2d),
}

macro_rules! dispatch {
    ($self:ident, $l:ident => $e:expr) => {
        match $self {
            Layer::Linear($l) => $e,
            Layer::Conv($l) => $e,
            Layer::Activation($l) => $e,
            Layer::TimeConcat($l) => $e,
            Layer::BatchNorm($l) => $e,
            Layer::Flatten($l) => $e,
            Layer::AvgPool($l) => $e,
        }
    };
}

impl<T: Real> Module<T> for Layer<T> {
    fn kind(&self) -> String {
        dispatch!(self, l => Module::<T>::kind(l))
    }
    fn in_shape(&self) -> Shape {
        dispatch!(self, l => Module::<T>::in_shape(l))
    }
    fn out_shape(&self) -> Shape {
        dispatch!(self, l => Module::<T>::out_shape(l))
    }
    fn param_shapes(&self) -> Vec<(&'static str, Vec<usize>)> {
        dispatch!(self, l => Module::<T>::param_shapes(l))
    }
    fn num_params(&self) -> usize {
        dispatch!(self, l => Module::<T>::num_params(l))
    }
    fn aux_len(&self) -> usize {
        dispatch!(self, l => Module::<T>::aux_len(l))
    }
    fn init_params(&self, init: &Init, rng: &mut ChaCha8Rng, params: &mut [T]) {
        dispatch!(self, l => l.init_params(init, rng, params))
    }
    fn forward(&mut self, pass: &Pass<T>, params: &[T], x: &[T], y: &mut [T], aux: &mut [T]) {
        dispatch!(self, l => l.forward(pass, params, x, y, aux))
    }
    fn backward(
        &mut self,
        pass: &Pass<T>,
        params: &[T],
        saved: Saved<'_, T>,
        gy: &[T],
        gx: &mut [T],
        gparams: &mut [T],
    ) {
        dispatch!(self, l => l.backward(pass, params, saved, gy, gx, gparams))
    }
}

/// The activations (channels-last) and layer records of one forward pass.
#[derive(Debug, Clone, Default)]
pub struct Tape<T> {
    acts: Vec<Vec<T>>,
    aux: Vec<Vec<T>>,
    batch: usize,
    t: T,
    filled: bool,
}

impl<T: Real> Tape<T> {
    /// An empty tape (sized on first use).
    pub fn new() -> Self {
        Self {
            acts: Vec::new(),
            aux: Vec::new(),
            batch: 0,
            t: T::zero(),
            filled: false,
        }
    }

    /// Whether a forward pass has been recorded.
    pub fn is_filled(&self) -> bool {
        self.filled
    }

    /// Number of samples recorded.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Activation `i` (0 is the input), channels-last.
    pub fn activation(&self, i: usize) -> Option<&[T]> {
        self.acts.get(i).map(Vec::as_slice)
    }
}

/// A chain of layers whose shapes fit, with parameters at fixed offsets of a flat buffer.
#[derive(Debug, Clone)]
pub struct Sequential<T> {
    layers: Vec<Layer<T>>,
    offsets: Vec<usize>,
    train: bool,
    gemm: GemmParams,
    buf: [Vec<T>; 2],
    aux: Vec<T>,
}

impl<T: Real> Sequential<T> {
    /// Chains `layers`; fails if it is empty or if a layer's input shape differs from the
    /// previous layer's output shape.
    pub fn new(layers: Vec<Layer<T>>) -> Result<Self, NnError> {
        if layers.is_empty() {
            return Err(NnError::invalid(
                "layers",
                "[]",
                "a sequence needs at least one layer",
            ));
        }
        for i in 1..layers.len() {
            let got = layers[i - 1].out_shape();
            let expected = layers[i].in_shape();
            if got != expected {
                return Err(NnError::ShapeMismatch {
                    index: i,
                    layer: layers[i].kind(),
                    expected,
                    got,
                });
            }
        }
        let mut offsets = vec![0];
        for l in &layers {
            offsets.push(offsets.last().copied().unwrap_or(0) + l.num_params());
        }
        Ok(Self {
            layers,
            offsets,
            train: true,
            gemm: GemmParams::default(),
            buf: [Vec::new(), Vec::new()],
            aux: Vec::new(),
        })
    }

    /// Shape of one input sample.
    pub fn in_shape(&self) -> Shape {
        self.layers[0].in_shape()
    }

    /// Shape of one output sample.
    pub fn out_shape(&self) -> Shape {
        self.layers[self.layers.len() - 1].out_shape()
    }

    /// The layers.
    pub fn layers(&self) -> &[Layer<T>] {
        &self.layers
    }

    /// The layers, mutable (e.g. to choose a convolution algorithm).
    pub fn layers_mut(&mut self) -> &mut [Layer<T>] {
        &mut self.layers
    }

    /// Total number of parameters.
    pub fn num_params(&self) -> usize {
        self.offsets[self.layers.len()]
    }

    /// The parameter range of layer `i`.
    pub fn param_range(&self, i: usize) -> std::ops::Range<usize> {
        self.offsets[i]..self.offsets[i + 1]
    }

    /// Named views `"{layer index}.{weight|bias}"`, as in a PyTorch `nn.Sequential`.
    pub fn param_views(&self) -> Vec<ParamView> {
        let mut views = Vec::new();
        for (i, l) in self.layers.iter().enumerate() {
            let mut off = self.offsets[i];
            for (name, shape) in l.param_shapes() {
                let len: usize = shape.iter().product();
                views.push(ParamView {
                    name: format!("{i}.{name}"),
                    offset: off,
                    shape,
                });
                off += len;
            }
        }
        views
    }

    /// Fresh parameters drawn by `init` from `ChaCha8Rng::seed_from_u64(seed)`, layer by
    /// layer.
    pub fn init_params(&self, init: &Init, seed: u64) -> Vec<T> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut p = vec![T::zero(); self.num_params()];
        for (i, l) in self.layers.iter().enumerate() {
            l.init_params(init, &mut rng, &mut p[self.param_range(i)]);
        }
        p
    }

    /// Training mode (batch statistics in batch norm) or evaluation mode.
    pub fn set_train(&mut self, train: bool) {
        self.train = train;
    }

    /// Whether the sequence is in training mode (the default).
    pub fn is_train(&self) -> bool {
        self.train
    }

    /// Sets the threading policy of the matrix products.
    pub fn set_gemm_params(&mut self, gemm: GemmParams) {
        self.gemm = gemm;
    }

    fn pass(&self, batch: usize, t: T) -> Pass<T> {
        Pass {
            batch,
            t,
            train: self.train,
            gemm: self.gemm,
        }
    }

    /// Validates buffer sizes and returns the batch size.
    fn check(&self, params: usize, x: usize, y: usize) -> Result<usize, NnError> {
        let (si, so) = (self.in_shape(), self.out_shape());
        let per = si.len().max(1);
        if !x.is_multiple_of(per) {
            return Err(NnError::invalid(
                "network input length",
                x,
                format!("is not a whole number of samples of shape {si} ({per} values each)"),
            ));
        }
        let n = x / per;
        let want = [
            ("parameter vector", self.num_params(), params),
            ("network output buffer", n * so.len(), y),
        ];
        for (what, expected, got) in want {
            if expected != got {
                return Err(ShapeError {
                    what,
                    expected,
                    got,
                }
                .into());
            }
        }
        Ok(n)
    }

    /// `y ← f(x)` without recording; `x` and `y` hold whole samples in PyTorch's
    /// (channels-first) order.
    ///
    /// Fails if `x` is not a whole number of samples, or `y` or `params` has the wrong
    /// length.
    pub fn forward(&mut self, params: &[T], t: T, x: &[T], y: &mut [T]) -> Result<(), NnError> {
        let (si, so) = (self.in_shape(), self.out_shape());
        let n = self.check(params.len(), x.len(), y.len())?;
        let pass = self.pass(n, t);
        let [mut a, mut b] = std::mem::take(&mut self.buf);
        let mut aux = std::mem::take(&mut self.aux);
        a.resize(x.len(), T::zero());
        to_channels_last(x, n, si.channels(), si.positions(), &mut a);
        for i in 0..self.layers.len() {
            let range = self.param_range(i);
            let l = &mut self.layers[i];
            b.resize(n * l.out_shape().len(), T::zero());
            aux.resize(l.aux_len(), T::zero());
            l.forward(&pass, &params[range], &a, &mut b, &mut aux);
            std::mem::swap(&mut a, &mut b);
        }
        to_channels_first(&a, n, so.channels(), so.positions(), y);
        self.buf = [a, b];
        self.aux = aux;
        Ok(())
    }

    /// Whether a tape must keep the network's output: only the last layer's own backward
    /// pass could read it, and only activations do.
    fn keeps_output(&self) -> bool {
        matches!(self.layers.last(), Some(Layer::Activation(_)))
    }

    /// `y ← f(x)`, recording in `tape` what [`Sequential::backward`] needs.
    /// Fails as [`Sequential::forward`].
    pub fn forward_taped(
        &mut self,
        params: &[T],
        t: T,
        x: &[T],
        y: &mut [T],
        tape: &mut Tape<T>,
    ) -> Result<(), NnError> {
        let (si, so) = (self.in_shape(), self.out_shape());
        let n = self.check(params.len(), x.len(), y.len())?;
        let pass = self.pass(n, t);
        let nl = self.layers.len();
        let keep_last = self.keeps_output();
        tape.acts.resize_with(nl + 1, Vec::new);
        tape.aux.resize_with(nl, Vec::new);
        tape.acts[0].resize(x.len(), T::zero());
        to_channels_last(x, n, si.channels(), si.positions(), &mut tape.acts[0]);
        // The network's output is stored only when its last layer's backward reads it (an
        // activation); otherwise it goes through a scratch buffer, so a tape holds one
        // batch-sized activation fewer (the input of every layer, not the final output).
        let mut out = std::mem::take(&mut self.buf[0]);
        for i in 0..nl {
            let range = self.param_range(i);
            let l = &mut self.layers[i];
            let (before, after) = tape.acts.split_at_mut(i + 1);
            let dst = if i + 1 == nl && !keep_last {
                after[0].clear();
                &mut out
            } else {
                &mut after[0]
            };
            dst.resize(n * l.out_shape().len(), T::zero());
            tape.aux[i].resize(l.aux_len(), T::zero());
            l.forward(&pass, &params[range], &before[i], dst, &mut tape.aux[i]);
        }
        let last = if keep_last { &tape.acts[nl] } else { &out };
        to_channels_first(last, n, so.channels(), so.positions(), y);
        self.buf[0] = out;
        tape.batch = n;
        tape.t = t;
        tape.filled = true;
        Ok(())
    }

    /// At the point recorded in `tape`: `gx ← (∂f/∂x)ᵀ gy` (overwritten) and
    /// `gparams ← gparams + (∂f/∂θ)ᵀ gy`; `gy` and `gx` in channels-first order.
    ///
    /// Fails if the tape is empty or was not recorded by this network, or sizes disagree.
    pub fn backward(
        &mut self,
        params: &[T],
        tape: &Tape<T>,
        gy: &[T],
        gx: &mut [T],
        gparams: &mut [T],
    ) -> Result<(), NnError> {
        let (si, so) = (self.in_shape(), self.out_shape());
        let nl = self.layers.len();
        let keep_last = self.keeps_output();
        let recorded_here = tape.filled
            && tape.acts.len() == nl + 1
            && tape.acts[0].len() == tape.batch * si.len()
            && tape.acts[nl].len() == if keep_last { tape.batch * so.len() } else { 0 };
        if !recorded_here {
            return Err(NnError::invalid(
                "tape",
                if tape.filled {
                    "recorded by another network"
                } else {
                    "empty"
                },
                "backward needs a tape filled by forward_taped of this network",
            ));
        }
        let n = tape.batch;
        let want = [
            ("output gradient", n * so.len(), gy.len()),
            ("input gradient", n * si.len(), gx.len()),
            ("parameter gradient", self.num_params(), gparams.len()),
            ("parameter vector", self.num_params(), params.len()),
        ];
        for (what, expected, got) in want {
            if expected != got {
                return Err(ShapeError {
                    what,
                    expected,
                    got,
                }
                .into());
            }
        }
        let pass = self.pass(n, tape.t);
        let [mut g, mut h] = std::mem::take(&mut self.buf);
        g.resize(gy.len(), T::zero());
        to_channels_last(gy, n, so.channels(), so.positions(), &mut g);
        for i in (0..nl).rev() {
            let range = self.param_range(i);
            let l = &mut self.layers[i];
            h.resize(n * l.in_shape().len(), T::zero());
            let saved = Saved {
                x: &tape.acts[i],
                y: &tape.acts[i + 1],
                aux: &tape.aux[i],
            };
            l.backward(
                &pass,
                &params[range.clone()],
                saved,
                &g,
                &mut h,
                &mut gparams[range],
            );
            std::mem::swap(&mut g, &mut h);
        }
        to_channels_first(&g, n, si.channels(), si.positions(), gx);
        self.buf = [g, h];
        Ok(())
    }
}

/// Builds a [`Sequential`] from an input shape, inferring each layer's input shape.
///
/// The first invalid layer's error is kept and returned by [`SequentialBuilder::build`].
///
/// ```
/// use odeflow::nn::{Activation, SequentialBuilder, Shape};
/// let net = SequentialBuilder::<f32>::new(Shape::seq(1, 2))
///     .conv1d(32, 1, 1, 0)
///     .activation(Activation::Relu)
///     .conv1d(32, 3, 1, 1)
///     .activation(Activation::Relu)
///     .conv1d(1, 1, 1, 0)
///     .build()
///     .unwrap();
/// assert_eq!(net.out_shape(), Shape::seq(1, 2));
/// assert_eq!(net.num_params(), 32 + 32 + 32 * 32 * 3 + 32 + 32 + 1);
/// ```
#[derive(Debug)]
pub struct SequentialBuilder<T> {
    shape: Shape,
    layers: Vec<Layer<T>>,
    error: Option<NnError>,
}

impl<T: Real> SequentialBuilder<T> {
    /// Starts a chain on samples of shape `input`.
    pub fn new(input: Shape) -> Self {
        Self {
            shape: input,
            layers: Vec::new(),
            error: None,
        }
    }

    /// Appends a layer built by `make` from the current shape.
    pub fn push_with(mut self, make: impl FnOnce(Shape) -> Result<Layer<T>, NnError>) -> Self {
        if self.error.is_some() {
            return self;
        }
        match make(self.shape) {
            Ok(l) => {
                if l.in_shape() != self.shape {
                    self.error = Some(NnError::ShapeMismatch {
                        index: self.layers.len(),
                        layer: l.kind(),
                        expected: l.in_shape(),
                        got: self.shape,
                    });
                } else {
                    self.shape = l.out_shape();
                    self.layers.push(l);
                }
            }
            Err(e) => self.error = Some(e),
        }
        self
    }

    /// `Linear(features → out)` with bias; the input must be flat.
    pub fn linear(self, out: usize) -> Self {
        self.push_with(|s| match s {
            Shape::Flat(n) => Ok(Layer::Linear(Linear::new(n, out, true)?)),
            _ => Err(NnError::invalid(
                "linear layer input",
                s,
                "needs flat samples; add flatten() first",
            )),
        })
    }

    /// A convolution (1-D on sequences, 2-D on images).
    pub fn conv(self, spec: ConvSpec) -> Self {
        self.push_with(|s| Ok(Layer::Conv(Conv::new(spec, s)?)))
    }

    /// `Conv1d(C → out, k, stride, padding)` with bias.
    pub fn conv1d(self, out: usize, k: usize, stride: usize, padding: usize) -> Self {
        self.push_with(|s| {
            Ok(Layer::Conv(Conv::new(
                ConvSpec::d1(s.channels(), out, k, stride, padding),
                s,
            )?))
        })
    }

    /// `Conv2d(C → out, k×k, stride, padding)` with bias.
    pub fn conv2d(self, out: usize, k: usize, stride: usize, padding: usize) -> Self {
        self.push_with(|s| {
            Ok(Layer::Conv(Conv::new(
                ConvSpec::d2(s.channels(), out, k, stride, padding),
                s,
            )?))
        })
    }

    /// An elementwise activation.
    pub fn activation(self, a: Activation) -> Self {
        self.push_with(|s| Ok(Layer::Activation(ActivationLayer::new(a, s))))
    }

    /// Time as an extra leading channel (FFJORD's concat layers).
    pub fn time_concat(self) -> Self {
        self.push_with(|s| Ok(Layer::TimeConcat(TimeConcat::new(s))))
    }

    /// Batch normalisation per channel.
    pub fn batch_norm(self, opts: BatchNormOptions) -> Self {
        self.push_with(|s| Ok(Layer::BatchNorm(BatchNorm::new(s, opts)?)))
    }

    /// Channel-major flattening to a feature vector.
    pub fn flatten(self) -> Self {
        self.push_with(|s| Ok(Layer::Flatten(Flatten::new(s))))
    }

    /// Average pooling over `k × k` windows with stride `k` (`1 × k` on sequences).
    pub fn avg_pool(self, k: usize) -> Self {
        self.push_with(|s| Ok(Layer::AvgPool(AvgPool2d::new(s, k)?)))
    }

    /// The chain, or the first error met.
    pub fn build(self) -> Result<Sequential<T>, NnError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        Sequential::new(self.layers)
    }
}
