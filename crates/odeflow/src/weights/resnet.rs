//! Sander et al.'s ResNet / HeunNet bodies of convolutional residual blocks with batch norm
//! ([`ResNet`] over a [`DepthField`]) and the TinyResNet classifier ([`TinyResNet`]) in and
//! out of weights files.
//!
//! A body of depth `N` computes `x_{n+1} = x_n + f_n(x_n)/N` (ResNet: Euler, `N` steps on
//! `[0, 1]`) or `k₁ = f_n(x_n)/N`, `k₂ = f_{n+1}(x_n + k₁)/N`, `x_{n+1} = x_n + (k₁ + k₂)/2`
//! (HeunNet: Heun, `N − 1` steps), with `f_n = conv3×3 → BN → ReLU → conv3×3 → BN` (Sander,
//! Ablin, Peyré, NeurIPS 2022). Batch norm is used in evaluation mode by the loaded model:
//! `y = γ (x − μ)/√(σ² + ε) + β` with the running statistics `μ, σ²` and `ε = 10⁻⁵`. The
//! equivalent PyTorch modules, whose `state_dict` keys a file holds (the body under
//! `field.`, TinyResNet's stem under `stem.` and head under `head.`):
//!
//! ```python
//! import torch, torch.nn as nn, torch.nn.functional as F
//!
//! def block(C):
//!     return nn.Sequential(nn.Conv2d(C, C, 3, padding=1, bias=False), nn.BatchNorm2d(C),
//!                          nn.ReLU(), nn.Conv2d(C, C, 3, padding=1, bias=False),
//!                          nn.BatchNorm2d(C))
//!
//! class ResNetBody(nn.Module):            # odeflow's `resnet` (heun=False), `heunnet`
//!     def __init__(self, C, depth, heun=False, tied=False):
//!         super().__init__()
//!         self.layers = nn.ModuleList(block(C) for _ in range(depth))
//!         self.heun = heun
//!         if tied:  # one parameter set; running statistics stay per layer
//!             for f in self.layers[1:]:
//!                 for i in (0, 1, 3, 4):
//!                     f[i].weight = self.layers[0][i].weight
//!                 for i in (1, 4):
//!                     f[i].bias = self.layers[0][i].bias
//!     def forward(self, x):
//!         N = len(self.layers)
//!         if not self.heun:
//!             for f in self.layers:
//!                 x = x + f(x) / N
//!             return x
//!         for n in range(N - 1):
//!             k1 = self.layers[n](x) / N
//!             k2 = self.layers[n + 1](x + k1) / N
//!             x = x + (k1 + k2) / 2
//!         return x
//!
//! class TinyResNet(nn.Module):            # odeflow's `tiny_resnet`, `tiny_heunnet`
//!     def __init__(self, c_in, C=16, depth=8, classes=10, features=64, heun=False):
//!         super().__init__()
//!         self.stem = nn.Sequential(nn.Conv2d(c_in, C, 5, stride=3, padding=1, bias=False),
//!                                   nn.BatchNorm2d(C), nn.ReLU())
//!         self.field = ResNetBody(C, depth, heun)
//!         self.head = nn.Linear(features, classes)   # features = C·⌊H'/4⌋·⌊W'/4⌋
//!     def forward(self, x):
//!         return self.head(F.avg_pool2d(self.field(self.stem(x)), 4).flatten(1))
//!
//! body = nn.Module(); body.field = ResNetBody(C, depth)   # a bare `resnet` file
//! ```
//!
//! Keys: `field.layers.<n>.{0,3}.weight` `(C, C, 3, 3)`, `field.layers.<n>.{1,4}.weight` and
//! `.bias` `(C)`, `field.layers.<n>.{1,4}.running_mean`, `.running_var` `(C)` and
//! `.num_batches_tracked` `()` (`I64`); TinyResNet adds `stem.0.weight` `(C, c_in, 5, 5)`,
//! `stem.1.*` (a batch norm as above), `head.weight` `(classes, features)`, `head.bias`.
//! Channels come from `field.layers.0.0.weight` (or `stem.0.weight`), the depth from the
//! largest layer index, the classes from `head.weight`; the image size from the data.
//!
//! * **Tied bodies** (one parameter set, [`Tying::Tied`]) keep their running statistics
//!   per layer, as odeflow does: the file holds the parameters once, under
//!   `field.layers.0.*`, and the statistics of every layer. That is what
//!   `safetensors.torch.save_model` writes for the tied `ResNetBody` above (it keeps the
//!   first name of each shared tensor), and `safetensors.torch.load_model` reads it back.
//!   A file with `field.layers.1.0.weight` is untied.
//! * **`num_batches_tracked`** is written as PyTorch stores it (`I64`, shape `()`), with
//!   the value 0: odeflow's running averages always use momentum 0.1, for which PyTorch
//!   never reads the counter, and odeflow does not count batches. On reading it may be
//!   present (any dtype, shape `()`) or absent, as `load_state_dict` allows; its value is
//!   not used.

use super::{
    count, dims_of, gather_with, insert, metadata, rank_err, size_guard, tensor, Architecture,
    FileDtype, Tensor, TensorFile, WeightsError,
};
use crate::field::Parameterized;
use crate::grad::GradientMethod;
use crate::models::depth_field::{DepthField, Tying};
use crate::models::resnet::{conv_residual_block, ResNet, Scheme};
use crate::models::tiny_resnet::{TinyResNet, TinyResNetConfig};
use crate::nn::{Layer, Sequential, Shape};
use crate::train::Trainable;
use crate::Real;

type Keys = Vec<(String, Vec<usize>)>;

/// Every key of a model: parameters and running statistics (values, in the model's
/// order) and the batch-norm counters (optional on read).
#[derive(Default)]
struct ModelKeys {
    params: Keys,
    stats: Keys,
    counters: Keys,
}

/// The running-statistics and counter keys of the batch norms of `net`, under `prefix`.
fn bn_keys<T: Real>(net: &Sequential<T>, prefix: &str, out: &mut ModelKeys) {
    for (i, l) in net.layers().iter().enumerate() {
        if let Layer::BatchNorm(bn) = l {
            let c = bn.running_mean().len();
            out.stats
                .push((format!("{prefix}{i}.running_mean"), vec![c]));
            out.stats
                .push((format!("{prefix}{i}.running_var"), vec![c]));
            out.counters
                .push((format!("{prefix}{i}.num_batches_tracked"), vec![]));
        }
    }
}

/// The keys of a body of `depth` layers of `block` under `prefix` (`field.`).
fn body_keys<T: Real>(
    block: &Sequential<T>,
    depth: usize,
    tying: Tying,
    prefix: &str,
    out: &mut ModelKeys,
) {
    let fns = match tying {
        Tying::Untied => depth,
        Tying::Tied => 1,
    };
    let views = block.param_views();
    for k in 0..fns {
        out.params.extend(
            views
                .iter()
                .map(|v| (format!("{prefix}layers.{k}.{}", v.name), v.shape.clone())),
        );
    }
    for n in 0..depth {
        bn_keys(block, &format!("{prefix}layers.{n}."), out);
    }
}

/// The body's running statistics, layer after layer (the order of [`body_keys`]).
fn body_stats<T: Real>(f: &DepthField<T>) -> Vec<T> {
    (0..f.depth())
        .flat_map(|n| f.running_stats(n).iter().copied())
        .collect()
}

/// Sets the body's running statistics from `values` (the order of [`body_keys`]).
fn set_body_stats<T: Real>(f: &mut DepthField<T>, values: &[T]) -> Result<(), WeightsError> {
    let per = values.len() / f.depth().max(1);
    for n in 0..f.depth() {
        f.set_running_stats(n, &values[n * per..(n + 1) * per])
            .map_err(|e| WeightsError::Invalid(e.to_string()))?;
    }
    Ok(())
}

fn write(file: &mut TensorFile, keys: ModelKeys, params: &[impl Real], stats: &[impl Real]) {
    insert(file, keys.params, params);
    insert(file, keys.stats, stats);
    for (k, shape) in keys.counters {
        file.tensors.insert(k, Tensor::int64(shape, vec![0]));
    }
}

/// Refuses a body that is not a stack of [`conv_residual_block`]s (an MLP body has no
/// PyTorch module here); returns its channels.
fn check_conv_body<T: Real>(f: &DepthField<T>) -> Result<usize, WeightsError> {
    let refuse = || {
        WeightsError::Invalid(
            "the body is not made of convolutional residual blocks (conv3x3, BN, ReLU, conv3x3, BN): only those have a PyTorch layout in odeflow's weights files".into(),
        )
    };
    let Shape::Image {
        channels,
        height,
        width,
    } = f.shape()
    else {
        return Err(refuse());
    };
    let want = conv_residual_block::<T>(channels, height, width).map_err(|_| refuse())?;
    let names = |s: &Sequential<T>| -> Vec<(String, Vec<usize>)> {
        s.param_views()
            .into_iter()
            .map(|v| (v.name, v.shape))
            .collect()
    };
    if names(&want) != names(f.network()) || want.layers().len() != f.network().layers().len() {
        return Err(refuse());
    }
    Ok(channels)
}

/// A ResNet or HeunNet body as a weights file in `dtype` (keys `field.layers.<n>.*`; see
/// the [module docs](self)).
pub fn export_resnet<T: Real>(
    body: &ResNet<T>,
    dtype: FileDtype,
) -> Result<TensorFile, WeightsError> {
    let f = body.field();
    check_conv_body(f)?;
    let mut keys = ModelKeys::default();
    body_keys(f.network(), f.depth(), f.tying(), "field.", &mut keys);
    let mut file = TensorFile::new(dtype);
    metadata(Architecture::ResNet(body.scheme()), &mut file);
    write(&mut file, keys, f.params(), &body_stats(f));
    Ok(file)
}

fn tiny_keys<T: Real>(m: &TinyResNet<T>) -> ModelKeys {
    let mut keys = ModelKeys::default();
    let stem = m.stem();
    keys.params.extend(
        stem.param_views()
            .into_iter()
            .map(|v| (format!("stem.{}", v.name), v.shape)),
    );
    bn_keys(stem.sequential(), "stem.", &mut keys);
    let body = m.body().field();
    body_keys(
        body.network(),
        body.depth(),
        body.tying(),
        "field.",
        &mut keys,
    );
    // The head is `AvgPool → Flatten → Linear` in odeflow and a bare `nn.Linear` after
    // `F.avg_pool2d(…).flatten(1)` in PyTorch: drop the layer index.
    keys.params
        .extend(m.head().param_views().into_iter().map(|v| {
            let param = v.name.rsplit('.').next().unwrap_or(&v.name).to_string();
            (format!("head.{param}"), v.shape)
        }));
    keys
}

fn stem_stats<T: Real>(m: &TinyResNet<T>) -> Vec<T> {
    let mut out = Vec::new();
    for l in m.stem().sequential().layers() {
        if let Layer::BatchNorm(bn) = l {
            out.extend_from_slice(bn.running_mean());
            out.extend_from_slice(bn.running_var());
        }
    }
    out
}

/// A TinyResNet (stem, body, head) as a weights file in `dtype` (see the
/// [module docs](self)).
pub fn export_tiny_resnet<T: Real>(m: &TinyResNet<T>, dtype: FileDtype) -> TensorFile {
    let mut params = vec![T::zero(); m.num_params()];
    m.read_params(&mut params);
    let mut stats = stem_stats(m);
    stats.extend(body_stats(m.body().field()));
    let mut file = TensorFile::new(dtype);
    metadata(Architecture::TinyResNet(m.config().scheme), &mut file);
    write(&mut file, tiny_keys(m), &params, &stats);
    file
}

/// The depth (largest layer index under `field.layers.` plus one) and the tying
/// (`field.layers.1.0.weight` present: untied) of the file's body.
fn body_depth(file: &TensorFile, arch: Architecture) -> Result<(usize, Tying), WeightsError> {
    let depth = file
        .tensors
        .keys()
        .filter_map(|k| k.strip_prefix("field.layers."))
        .filter_map(|rest| rest.split('.').next()?.parse::<usize>().ok())
        .max()
        .map(|n| n.saturating_add(1))
        .ok_or_else(|| match tensor(file, "field.layers.0.0.weight", arch) {
            Err(e) => e,
            Ok(_) => WeightsError::Invalid("the weights have no body layer".into()),
        })?;
    let tying = if depth == 1 || file.tensors.contains_key("field.layers.1.0.weight") {
        Tying::Untied
    } else {
        Tying::Tied
    };
    Ok((depth, tying))
}

/// Values of a body of `depth` layers of `c` channels (parameters and statistics).
fn body_size(c: usize, depth: usize, tying: Tying) -> u128 {
    let fns = if tying == Tying::Tied { 1 } else { depth };
    let per_fn = count(&[&[c, c, 3, 3], &[c, c, 3, 3], &[4, c]]);
    per_fn
        .saturating_mul(fns as u128)
        .saturating_add(count(&[&[depth, 4, c]]))
}

fn image_of(arch: Architecture, sample_shape: &[usize]) -> Result<[usize; 3], WeightsError> {
    match *sample_shape {
        [c, h, w] => Ok([c, h, w]),
        _ => Err(WeightsError::Invalid(format!(
            "the {arch} model needs samples of shape (channels, height, width), but the data have samples of shape {sample_shape:?}"
        ))),
    }
}

/// `[C, c, k, k]` of a convolution weight `key` (holding values).
fn conv_dims(
    file: &TensorFile,
    key: &str,
    k: usize,
    arch: Architecture,
) -> Result<(usize, usize), WeightsError> {
    match *dims_of(file, key, arch)? {
        [o, i, a, b] if a == k && b == k => Ok((o, i)),
        _ => Err(rank_err(
            key,
            tensor(file, key, arch)?,
            arch,
            &format!("a Conv2d weight (out, in, {k}, {k})"),
        )),
    }
}

fn channels_err(arch: Architecture, key: &str, c: usize, sample: &[usize]) -> WeightsError {
    WeightsError::Invalid(format!(
        "the weights' {arch} model reads {c} channels ({key}), but the data have samples of shape {sample:?}"
    ))
}

fn invalid(arch: Architecture) -> impl Fn(String) -> WeightsError {
    move |e| WeightsError::Invalid(format!("the {arch} model of the weights: {e}"))
}

/// The ResNet (`Scheme::Euler`) or HeunNet (`Scheme::Heun`) body a weights file describes,
/// on `(C, H, W)` samples, in evaluation mode (running statistics); a file whose keys or
/// shapes do not fit is refused with the first bad key and both shapes.
pub fn load_resnet<T: Real>(
    scheme: Scheme,
    file: &TensorFile,
    sample_shape: &[usize],
) -> Result<ResNet<T>, WeightsError> {
    let arch = Architecture::ResNet(scheme);
    let [c, h, w] = image_of(arch, sample_shape)?;
    let key = "field.layers.0.0.weight";
    let (ch, _) = conv_dims(file, key, 3, arch)?;
    if ch != c {
        return Err(channels_err(arch, key, ch, sample_shape));
    }
    let (depth, tying) = body_depth(file, arch)?;
    size_guard(file, arch, body_size(c, depth, tying))?;
    let block = conv_residual_block::<T>(c, h, w).map_err(|e| invalid(arch)(e.to_string()))?;
    let mut keys = ModelKeys::default();
    body_keys(&block, depth, tying, "field.", &mut keys);
    let n_params = keys
        .params
        .iter()
        .map(|(_, s)| s.iter().product::<usize>())
        .sum();
    let all: Keys = keys.params.into_iter().chain(keys.stats).collect();
    let mut values = gather_with::<T>(file, &all, &keys.counters, arch)?;
    let stats = values.split_off(n_params);
    let mut field = DepthField::with_params(block, depth, tying, values)
        .map_err(|e| invalid(arch)(e.to_string()))?;
    set_body_stats(&mut field, &stats)?;
    let mut net = ResNet::new(field, scheme, GradientMethod::Backprop, 0)
        .map_err(|e| invalid(arch)(e.to_string()))?;
    net.set_train(false);
    Ok(net)
}

/// The TinyResNet (`Scheme::Euler`) or TinyHeunNet (`Scheme::Heun`) a weights file
/// describes, on `(c_in, H, W)` images, in evaluation mode; a file whose keys or shapes do
/// not fit is refused with the first bad key and both shapes.
pub fn load_tiny_resnet<T: Real>(
    scheme: Scheme,
    file: &TensorFile,
    sample_shape: &[usize],
) -> Result<TinyResNet<T>, WeightsError> {
    let arch = Architecture::TinyResNet(scheme);
    let [c_in, h, w] = image_of(arch, sample_shape)?;
    let (ch, c_file) = conv_dims(file, "stem.0.weight", 5, arch)?;
    if c_file != c_in {
        return Err(channels_err(arch, "stem.0.weight", c_file, sample_shape));
    }
    let (depth, tying) = body_depth(file, arch)?;
    let classes = match *dims_of(file, "head.weight", arch)? {
        [k, _] => k,
        _ => {
            return Err(rank_err(
                "head.weight",
                tensor(file, "head.weight", arch)?,
                arch,
                "a Linear weight (classes, features)",
            ))
        }
    };
    // The stem's output is ⌊(H + 2 − 5)/3⌋ + 1 high; the head reads its 4×4 averages.
    let out = |s: usize| (s + 2).checked_sub(5).map_or(0, |v| v / 3 + 1);
    let (fh, fw) = (out(h) / 4, out(w) / 4);
    let needed = count(&[
        &[ch, c_in, 5, 5],
        &[4, ch],
        &[classes, ch, fh, fw],
        &[classes],
    ])
    .saturating_add(body_size(ch, depth, tying));
    size_guard(file, arch, needed)?;
    let cfg = TinyResNetConfig {
        channels: ch,
        depth,
        scheme,
        tying,
        classes,
        ..TinyResNetConfig::default()
    };
    let mut m = TinyResNet::<T>::new(Shape::image(c_in, h, w), cfg)
        .map_err(|e| invalid(arch)(e.to_string()))?;
    let keys = tiny_keys(&m);
    let all: Keys = keys.params.into_iter().chain(keys.stats).collect();
    let mut values = gather_with::<T>(file, &all, &keys.counters, arch)?;
    let stats = values.split_off(m.num_params());
    m.write_params(&values);
    let n_stem = 2 * ch;
    for l in m.stem_mut().sequential_mut().layers_mut() {
        if let Layer::BatchNorm(bn) = l {
            bn.set_running_stats(&stats[..ch], &stats[ch..n_stem])
                .map_err(|e| invalid(arch)(e.to_string()))?;
        }
    }
    set_body_stats(m.body_mut().field_mut(), &stats[n_stem..])?;
    m.set_train(false);
    Ok(m)
}
