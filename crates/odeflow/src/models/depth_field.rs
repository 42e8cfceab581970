//! A depth-`N` stack of residual functions as one vector field whose time is depth.
//!
//! Sander, Ablin, Peyré (NeurIPS 2022, "Do Residual Neural Networks discretize Neural
//! Ordinary Differential Equations?") read the ResNet `x_{n+1} = x_n + f_n(x_n)/N`,
//! `n = 0…N−1`, as Euler's method with step `1/N` on the field `F(t, x) = f_{n(t)}(x)`,
//! where layer `n` lives at time `t_n = n/N`. [`DepthField`] is that field: evaluated at time
//! `t` it applies residual function `n = round(t·N)`. Then
//!
//! * the ResNet is an Euler solve with `N` steps on `[0, 1]` (stage times `t_n`: layer `n`);
//! * the HeunNet is a Heun solve with `N − 1` steps of size `1/N` on `[0, (N−1)/N]`:
//!   `k₁ = f_n(x_n)/N` at `t_n`, `k₂ = f_{n+1}(x_n + k₁)/N` at `t_n + 1/N`,
//!   `x_{n+1} = x_n + (k₁ + k₂)/2`;
//! * the memory-free backward pass ([`crate::grad::GradientMethod::Reversible`]) evaluates
//!   Euler's reverse step at `t_n` (layer `n`) and Heun's reversed stages at `t_{n+1}`, then
//!   `t_n` (layers `n+1`, then `n`) — exactly the paper's reverse recursions.
//!
//! The functions are *untied* (`N` parameter sets, one per layer) or *tied* (one shared set:
//! a true Neural ODE step). All share one [`Sequential`] that does the work (its scratch
//! buffers are allocated once, not per layer), and the parameters are one flat vector, the
//! concatenation of the functions' vectors, named `"layers.{n}.{name}"` (`"layers.0.…"` only
//! when tied).
//!
//! # Batch normalisation in residual functions
//!
//! Batch-norm running statistics are kept **per layer** (also when the parameters are tied:
//! a shared function sees a different input distribution at every depth) and swapped into
//! the shared network before each evaluation. In training mode the batch statistics are
//! used as always, but the running averages are updated only during a *training pass*
//! ([`DepthField::begin_training_pass`] … [`DepthField::freeze_running_stats`]) and only at
//! the first evaluation of each layer in it — the reversible method evaluates every layer
//! again in its reverse and recomputation steps, and Heun evaluates each inner layer twice;
//! those evaluations must not move the statistics. Outside a training pass the statistics
//! are frozen.
//!
//! # Depth interpolation and untying
//!
//! [`DepthField::interpolate_depth`] makes a depth-`N` field from a depth-`M` one with layer
//! `i ← layer ⌊M·i/N⌋` (piecewise constant in depth; `M → kM → M` returns the original), and
//! [`DepthField::untie`] turns a tied field into `N` identical copies, which compute the same
//! function. [`DepthField::interpolated`] is the ODE whose weights interpolate the layers
//! piecewise linearly, `θ(t) = (1 − α)θ_n + αθ_{n+1}` for `t = (n + α)/N`, used to measure
//! the ResNet–ODE distance.

use serde::{Deserialize, Serialize};

use crate::data::derive_seed;
use crate::field::{ParamView, Parameterized, VectorField};
use crate::nn::{Init, Layer, NnError, Sequential, Shape, Tape};
use crate::real::Real;
use crate::solve::Rhs;
use crate::state::Batch;

/// Whether the layers share their parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tying {
    /// One parameter set per layer (a ResNet).
    Untied,
    /// One parameter set for all layers (a Neural ODE).
    Tied,
}

/// The layer of a depth-`depth` field evaluated at time `t`: `round(t·N)`, clamped to
/// `0…N−1` (shared by [`DepthField`] and its device twin `cuda::CudaDepthField`).
pub fn layer_at(t: f64, depth: usize) -> usize {
    let n = (t * depth as f64).round();
    if n <= 0.0 {
        0
    } else {
        (n as usize).min(depth.saturating_sub(1))
    }
}

impl Tying {
    /// The parameter set layer `n` uses: its own (untied) or the shared one (tied).
    pub fn function_of_layer(self, n: usize) -> usize {
        match self {
            Tying::Untied => n,
            Tying::Tied => 0,
        }
    }
}

/// When batch-norm running statistics move (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StatsMode {
    Frozen,
    Update,
}

/// What one evaluation of a [`DepthField`] records for its VJP.
#[derive(Debug, Clone)]
pub struct DepthTape<T> {
    layer: usize,
    inner: Tape<T>,
}

impl<T: Real> DepthTape<T> {
    /// The layer that was evaluated.
    pub fn layer(&self) -> usize {
        self.layer
    }
}

/// `N` residual functions (or one, tied) as the vector field `F(t, x) = f_{round(tN)}(x)`.
#[derive(Debug, Clone)]
pub struct DepthField<T> {
    net: Sequential<T>,
    depth: usize,
    tying: Tying,
    per_fn: usize,
    params: Vec<T>,
    /// `(index in net, channels)` of every batch-norm layer.
    bn_layers: Vec<(usize, usize)>,
    /// Values of running statistics per layer: `[mean₀, var₀, mean₁, var₁, …]`.
    stats_len: usize,
    stats: Vec<T>,
    mode: StatsMode,
    updated: Vec<bool>,
}

fn or_panic(r: Result<(), NnError>) {
    if let Err(e) = r {
        panic!("DepthField: {e}");
    }
}

impl<T: Real> DepthField<T> {
    /// `depth` layers of the residual function `net`, with parameters drawn by `init`: layer
    /// `n` (or the shared set, tied) from seed `derive_seed(seed, n)`.
    ///
    /// Fails if `depth` is 0 or `net` does not map its input shape to itself.
    pub fn new(
        net: Sequential<T>,
        depth: usize,
        tying: Tying,
        init: &Init,
        seed: u64,
    ) -> Result<Self, NnError> {
        let fns = Self::count_functions(depth, tying)?;
        let mut params = Vec::with_capacity(fns * net.num_params());
        for k in 0..fns {
            params.extend(net.init_params(init, derive_seed(seed, k as u64)));
        }
        Self::with_params(net, depth, tying, params)
    }

    /// `depth` layers of `net` with the given parameters (the functions' vectors, one after
    /// the other: `depth` of them untied, one tied).
    pub fn with_params(
        net: Sequential<T>,
        depth: usize,
        tying: Tying,
        params: Vec<T>,
    ) -> Result<Self, NnError> {
        let fns = Self::count_functions(depth, tying)?;
        if net.in_shape() != net.out_shape() {
            return Err(NnError::NotAField {
                input: net.in_shape(),
                output: net.out_shape(),
            });
        }
        let per_fn = net.num_params();
        if params.len() != fns * per_fn {
            return Err(crate::error::ShapeError {
                what: "depth-field parameter vector",
                expected: fns * per_fn,
                got: params.len(),
            }
            .into());
        }
        let mut bn_layers = Vec::new();
        let mut one = Vec::new();
        for (i, l) in net.layers().iter().enumerate() {
            if let Layer::BatchNorm(bn) = l {
                bn_layers.push((i, bn.running_mean().len()));
                one.extend_from_slice(bn.running_mean());
                one.extend_from_slice(bn.running_var());
            }
        }
        let stats_len = one.len();
        let stats = one.repeat(depth);
        Ok(Self {
            net,
            depth,
            tying,
            per_fn,
            params,
            bn_layers,
            stats_len,
            stats,
            mode: StatsMode::Frozen,
            updated: vec![false; depth],
        })
    }

    fn count_functions(depth: usize, tying: Tying) -> Result<usize, NnError> {
        if depth == 0 {
            return Err(NnError::invalid("depth", 0, "must be at least 1"));
        }
        Ok(match tying {
            Tying::Untied => depth,
            Tying::Tied => 1,
        })
    }

    /// Number of layers `N` (the time scale: layer `n` lives at `t = n/N`).
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// Tied or untied.
    pub fn tying(&self) -> Tying {
        self.tying
    }

    /// Number of parameter sets (`N` untied, 1 tied).
    pub fn num_functions(&self) -> usize {
        self.params.len() / self.per_fn.max(1)
    }

    /// Parameters of one residual function.
    pub fn params_per_function(&self) -> usize {
        self.per_fn
    }

    /// The shared network that evaluates every layer.
    pub fn network(&self) -> &Sequential<T> {
        &self.net
    }

    /// The network, mutable (threading, convolution algorithms).
    pub fn network_mut(&mut self) -> &mut Sequential<T> {
        &mut self.net
    }

    /// Shape of one sample of the state.
    pub fn shape(&self) -> Shape {
        self.net.in_shape()
    }

    /// The layer evaluated at time `t`: `round(t·N)`, clamped to `0…N−1`.
    pub fn layer_at(&self, t: f64) -> usize {
        layer_at(t, self.depth)
    }

    /// The parameter set layer `n` uses.
    pub fn function_of_layer(&self, n: usize) -> usize {
        self.tying.function_of_layer(n)
    }

    fn range(&self, k: usize) -> std::ops::Range<usize> {
        k * self.per_fn..(k + 1) * self.per_fn
    }

    /// Parameters of layer `n`.
    pub fn layer_params(&self, n: usize) -> &[T] {
        &self.params[self.range(self.function_of_layer(n))]
    }

    /// Parameters of layer `n`, mutable (of the shared set when tied).
    pub fn layer_params_mut(&mut self, n: usize) -> &mut [T] {
        let r = self.range(self.function_of_layer(n));
        &mut self.params[r]
    }

    /// Training mode (batch statistics in batch norm) or evaluation mode (running ones).
    pub fn set_train(&mut self, train: bool) {
        self.net.set_train(train);
    }

    /// Whether the field is in training mode.
    pub fn is_train(&self) -> bool {
        self.net.is_train()
    }

    /// Opens a training pass: the first evaluation of each layer in training mode from now
    /// on updates that layer's batch-norm running statistics.
    pub fn begin_training_pass(&mut self) {
        self.mode = StatsMode::Update;
        self.updated.iter_mut().for_each(|u| *u = false);
    }

    /// Closes the training pass: running statistics stay as they are.
    pub fn freeze_running_stats(&mut self) {
        self.mode = StatsMode::Frozen;
    }

    /// Running statistics of layer `n`, `[mean, var]` of each batch-norm layer in order
    /// (empty without batch norm).
    pub fn running_stats(&self, n: usize) -> &[T] {
        &self.stats[n * self.stats_len..(n + 1) * self.stats_len]
    }

    /// Sets the running statistics of layer `n` (same layout as
    /// [`DepthField::running_stats`]).
    pub fn set_running_stats(&mut self, n: usize, values: &[T]) -> Result<(), NnError> {
        if n >= self.depth {
            return Err(NnError::invalid(
                "layer",
                n,
                format!("the field has {} layers", self.depth),
            ));
        }
        if values.len() != self.stats_len {
            return Err(crate::error::ShapeError {
                what: "running statistics",
                expected: self.stats_len,
                got: values.len(),
            }
            .into());
        }
        let l = self.stats_len;
        self.stats[n * l..(n + 1) * l].copy_from_slice(values);
        Ok(())
    }

    /// Copies `stats` (one layer's running statistics) into the network's batch norms.
    fn load_stats(net: &mut Sequential<T>, bn_layers: &[(usize, usize)], stats: &[T]) {
        let mut off = 0;
        for &(i, c) in bn_layers {
            if let Layer::BatchNorm(bn) = &mut net.layers_mut()[i] {
                bn.set_running_stats(&stats[off..off + c], &stats[off + c..off + 2 * c])
                    .expect("running statistics are sized at construction");
            }
            off += 2 * c;
        }
    }

    fn store_stats(net: &Sequential<T>, bn_layers: &[(usize, usize)], stats: &mut [T]) {
        let mut off = 0;
        for &(i, c) in bn_layers {
            if let Layer::BatchNorm(bn) = &net.layers()[i] {
                stats[off..off + c].copy_from_slice(bn.running_mean());
                stats[off + c..off + 2 * c].copy_from_slice(bn.running_var());
            }
            off += 2 * c;
        }
    }

    /// Evaluates layer `round(t·N)` at `y`, taped or not; returns the layer.
    fn run(
        &mut self,
        t: f64,
        y: &Batch<T>,
        dy: &mut Batch<T>,
        tape: Option<&mut Tape<T>>,
    ) -> usize {
        let n = self.layer_at(t);
        let k = self.function_of_layer(n);
        let l = self.stats_len;
        let bn = !self.bn_layers.is_empty();
        if bn {
            Self::load_stats(
                &mut self.net,
                &self.bn_layers,
                &self.stats[n * l..(n + 1) * l],
            );
        }
        let p = &self.params[k * self.per_fn..(k + 1) * self.per_fn];
        let tt = T::of(t);
        or_panic(match tape {
            Some(tape) => self
                .net
                .forward_taped(p, tt, y.as_slice(), dy.as_mut_slice(), tape),
            None => self.net.forward(p, tt, y.as_slice(), dy.as_mut_slice()),
        });
        if bn && self.net.is_train() && self.mode == StatsMode::Update && !self.updated[n] {
            Self::store_stats(
                &self.net,
                &self.bn_layers,
                &mut self.stats[n * l..(n + 1) * l],
            );
            self.updated[n] = true;
        }
        n
    }

    /// The field with `N` identical copies of a tied field's parameters (a clone when
    /// already untied); it computes the same function.
    pub fn untie(&self) -> Self {
        let mut out = self.clone();
        if self.tying == Tying::Tied {
            out.params = self.params.repeat(self.depth);
            out.tying = Tying::Untied;
        }
        out.mode = StatsMode::Frozen;
        out
    }

    /// The depth-`new_depth` field with layer `i ← layer ⌊M·i/N⌋` of this depth-`M` field
    /// (parameters and running statistics; a tied field stays tied).
    pub fn interpolate_depth(&self, new_depth: usize) -> Result<Self, NnError> {
        let fns = Self::count_functions(new_depth, self.tying)?;
        let m = self.depth;
        let src = |i: usize| (m * i) / new_depth;
        let params = match self.tying {
            Tying::Tied => self.params.clone(),
            Tying::Untied => {
                let mut p = Vec::with_capacity(fns * self.per_fn);
                for i in 0..new_depth {
                    p.extend_from_slice(self.layer_params(src(i)));
                }
                p
            }
        };
        let mut out = Self::with_params(self.net.clone(), new_depth, self.tying, params)?;
        for i in 0..new_depth {
            let l = self.stats_len;
            let s = src(i);
            out.stats[i * l..(i + 1) * l].copy_from_slice(&self.stats[s * l..(s + 1) * l]);
        }
        Ok(out)
    }

    /// Smoothness of the weights in depth: `(N · maxₙ ‖θ_{n+1} − θ_n‖, Σₙ ‖θ_{n+1} − θ_n‖)`
    /// with Euclidean norms of each layer's parameter vector (both 0 when tied).
    pub fn smoothness(&self) -> (f64, f64) {
        if self.tying == Tying::Tied || self.depth < 2 {
            return (0.0, 0.0);
        }
        let mut max = 0.0f64;
        let mut sum = 0.0;
        for n in 0..self.depth - 1 {
            let d = self
                .layer_params(n + 1)
                .iter()
                .zip(self.layer_params(n))
                .map(|(a, b)| (a.f64() - b.f64()).powi(2))
                .sum::<f64>()
                .sqrt();
            max = max.max(d);
            sum += d;
        }
        (self.depth as f64 * max, sum)
    }

    /// The ODE whose weights interpolate the layers piecewise linearly in depth (see the
    /// module docs), as a right-hand side for [`crate::solve::solve`]. Running statistics
    /// are interpolated the same way; use evaluation mode for fields with batch norm.
    pub fn interpolated(&mut self) -> InterpolatedField<'_, T> {
        InterpolatedField {
            params: vec![T::zero(); self.per_fn],
            stats: vec![T::zero(); self.stats_len],
            field: self,
        }
    }
}

/// The ODE `x' = f(x; θ(t))` with weights interpolated piecewise linearly between the
/// layers of a [`DepthField`]: `θ(t) = (1 − α)θ_n + αθ_{n+1}` for `t·N = n + α`, and
/// `θ(t) = θ_{N−1}` for `t ≥ (N−1)/N`.
pub struct InterpolatedField<'a, T> {
    field: &'a mut DepthField<T>,
    params: Vec<T>,
    stats: Vec<T>,
}

impl<T: Real> InterpolatedField<'_, T> {
    /// The layer `n` and weight `α` of time `t`.
    fn locate(&self, t: f64) -> (usize, f64) {
        let depth = self.field.depth;
        let s = (t * depth as f64).max(0.0);
        let n = (s.floor() as usize).min(depth - 1);
        if n + 1 >= depth {
            (depth - 1, 0.0)
        } else {
            (n, (s - n as f64).clamp(0.0, 1.0))
        }
    }
}

impl<T: Real> Rhs<Batch<T>> for InterpolatedField<'_, T> {
    fn eval(&mut self, t: f64, y: &Batch<T>, dy: &mut Batch<T>) {
        let (n, alpha) = self.locate(t);
        let f = &mut *self.field;
        let (a, b) = (T::of(1.0 - alpha), T::of(alpha));
        let next = (n + 1).min(f.depth - 1);
        for ((p, x0), x1) in self
            .params
            .iter_mut()
            .zip(f.layer_params(n))
            .zip(f.layer_params(next))
        {
            *p = a * *x0 + b * *x1;
        }
        if !f.bn_layers.is_empty() {
            for ((s, x0), x1) in self
                .stats
                .iter_mut()
                .zip(f.running_stats(n))
                .zip(f.running_stats(next))
            {
                *s = a * *x0 + b * *x1;
            }
            DepthField::load_stats(&mut f.net, &f.bn_layers, &self.stats);
        }
        or_panic(
            f.net
                .forward(&self.params, T::of(t), y.as_slice(), dy.as_mut_slice()),
        );
    }
}

impl<T: Real> VectorField<Batch<T>> for DepthField<T> {
    type Tape = DepthTape<T>;
    type Grad = Vec<T>;

    fn new_tape(&self) -> DepthTape<T> {
        DepthTape {
            layer: 0,
            inner: Tape::new(),
        }
    }

    fn zero_grad(&self) -> Vec<T> {
        vec![T::zero(); self.params.len()]
    }

    fn eval(&mut self, t: f64, y: &Batch<T>, dy: &mut Batch<T>) {
        self.run(t, y, dy, None);
    }

    fn eval_taped(&mut self, t: f64, y: &Batch<T>, dy: &mut Batch<T>, tape: &mut DepthTape<T>) {
        tape.layer = self.run(t, y, dy, Some(&mut tape.inner));
    }

    fn vjp(&mut self, tape: &DepthTape<T>, v: &Batch<T>, gy: &mut Batch<T>, gtheta: &mut Vec<T>) {
        let r = self.range(self.function_of_layer(tape.layer));
        or_panic(self.net.backward(
            &self.params[r.clone()],
            &tape.inner,
            v.as_slice(),
            gy.as_mut_slice(),
            &mut gtheta[r],
        ));
    }
}

impl<T: Real> Parameterized<T> for DepthField<T> {
    fn params(&self) -> &[T] {
        &self.params
    }
    fn params_mut(&mut self) -> &mut [T] {
        &mut self.params
    }
    fn param_views(&self) -> Vec<ParamView> {
        let inner = self.net.param_views();
        let mut views = Vec::with_capacity(inner.len() * self.num_functions());
        for k in 0..self.num_functions() {
            for v in &inner {
                views.push(ParamView {
                    name: format!("layers.{k}.{}", v.name),
                    offset: k * self.per_fn + v.offset,
                    shape: v.shape.clone(),
                });
            }
        }
        views
    }
}

impl<T: Real> Rhs<Batch<T>> for DepthField<T> {
    fn eval(&mut self, t: f64, y: &Batch<T>, dy: &mut Batch<T>) {
        VectorField::eval(self, t, y, dy);
    }
}
