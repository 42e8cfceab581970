//! Weights in and out of odeflow as safetensors files with PyTorch `state_dict` names and
//! layouts, so that a model trained with torchdiffeq can be checked here and one trained
//! here can be loaded into PyTorch with `load_state_dict(..., strict=True)`.
//!
//! A file holds the ODE block's field under `field.<name>` and the classification head
//! under `head.<name>`, where `<name>` is the key of the equivalent PyTorch module's
//! `state_dict()`; weights keep PyTorch's layouts (Conv `(out, in, k…)`, Linear
//! `(out, in)`). A file without `head.*` tensors is a bare field (a flow model whose
//! output is the final state). The equivalent PyTorch modules, for a state of `c`
//! channels (input channels plus ANODE's zero channels) and `C` hidden channels:
//!
//! ```python
//! import torch, torch.nn as nn
//! from torchdiffeq import odeint
//!
//! # simple_odenet (Ott et al., ICLR 2021) on samples (c, d)
//! field = nn.Sequential(nn.Conv1d(c, C, 1), nn.ReLU(),
//!                       nn.Conv1d(C, C, 3, padding=1), nn.ReLU(),
//!                       nn.Conv1d(C, c, 1))
//! # odenet on images (c, h, w)
//! field = nn.Sequential(nn.Conv2d(c, C, 1), nn.ReLU(),
//!                       nn.Conv2d(C, C, 3, padding=1), nn.ReLU(),
//!                       nn.Conv2d(C, c, 1))
//! # mlp on flat samples (d): widths h1, h2, …, activation between the Linear layers
//! field = nn.Sequential(nn.Linear(d, h1), nn.Tanh(), nn.Linear(h1, h2), nn.Tanh(),
//!                       nn.Linear(h2, d))
//!
//! class OdeClassifier(nn.Module):
//!     def __init__(self, field, features, classes):
//!         super().__init__()
//!         self.field = field                          # keys field.0.weight, …
//!         self.head = nn.Linear(features, classes)    # keys head.weight, head.bias
//!     def forward(self, x, t=torch.tensor([0.0, 1.0]), **solver):
//!         z1 = odeint(lambda t, z: self.field(z), x, t.to(x), **solver)[-1]
//!         return self.head(z1.flatten(1))
//! ```
//!
//! The rest of the model zoo has its own module, with its PyTorch module as code:
//!
//! * [`hamiltonian`] — the separable Hamiltonian network `H = T(p) + V(q)` (`hamiltonian`,
//!   a bare field: keys `field.kinetic.*`, `field.potential.*`);
//! * [`resnet`] — Sander et al.'s bodies of convolutional residual blocks with batch norm
//!   (`resnet`, `heunnet`: keys `field.layers.<n>.*`, running statistics included) and
//!   the TinyResNet classifier (`tiny_resnet`, `tiny_heunnet`: `stem.*`, `field.*`,
//!   `head.weight`, `head.bias`).
//!
//! Shapes are read from the file: the architecture name ([`Architecture`]) is all a user
//! says. `simple_odenet`'s and `odenet`'s hidden channels and state channels come from
//! `field.0.weight`, an MLP's widths from its chain of `field.<2i>.weight`, the number of
//! classes from `head.weight`; the sample shape comes from the data. A file whose keys or
//! shapes do not fit the model so described is refused with the first bad key and both
//! shapes ([`WeightsError`]); so is, before anything is built, a file whose shapes describe
//! a model with far more values than the file holds (dimensions are read from a few tensors
//! and could otherwise declare a model of any size). An MLP's activation is not part of a
//! `state_dict`: it is named in the architecture (`mlp-tanh`) or read from the file's
//! metadata key `activation`, which [`export_classifier`] writes.

pub mod check;
mod classifier;
pub mod hamiltonian;
pub mod resnet;
mod tensors;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_zoo;

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

pub use check::{check_weights, evaluate_weights, ExternalModel};
pub use classifier::{
    export_classifier, export_field, gradient_file, infer_shape, load_classifier, load_field,
    loss_gradient, trainable_loss_gradient, ModelShape,
};
pub use hamiltonian::{export_hamiltonian, load_hamiltonian};
pub use resnet::{export_resnet, export_tiny_resnet, load_resnet, load_tiny_resnet};
pub use tensors::{FileDtype, Tensor, TensorFile};

use crate::models::resnet::Scheme;
use crate::models::FieldSpec;
use crate::nn::Activation;
use crate::runs::RunError;
use crate::Real;

/// Why a weights file cannot be read, written or loaded into a model. Every variant names
/// the offending file, key or value.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum WeightsError {
    /// The file cannot be read or written.
    #[error("'{path}': {reason}")]
    Io {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// The file is not a safetensors file odeflow reads.
    #[error("'{path}' {reason}")]
    Format {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A tensor the model needs is not in the file.
    #[error(
        "the weights have no tensor '{key}' (the {arch} model needs one of shape {expected:?})"
    )]
    Missing {
        /// The key.
        key: String,
        /// The architecture.
        arch: String,
        /// The shape the model needs.
        expected: Vec<usize>,
    },
    /// A tensor has another shape than the model needs.
    #[error(
        "tensor '{key}' has shape {file:?} in the weights, but the {arch} model needs {expected:?}"
    )]
    Shape {
        /// The key.
        key: String,
        /// The architecture.
        arch: String,
        /// Its shape in the file.
        file: Vec<usize>,
        /// The shape the model needs.
        expected: Vec<usize>,
    },
    /// The file holds a tensor the model does not have.
    #[error("the weights hold tensor '{key}' of shape {shape:?}, which the {arch} model does not have (is it another architecture?)")]
    Unexpected {
        /// The key.
        key: String,
        /// The architecture.
        arch: String,
        /// Its shape in the file.
        shape: Vec<usize>,
    },
    /// A name, value or combination cannot be used.
    #[error("{0}")]
    Invalid(String),
}

impl From<WeightsError> for RunError {
    fn from(e: WeightsError) -> Self {
        RunError::input(e.to_string())
    }
}

/// The architectures a weights file can describe (see the [module docs](self)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    /// Ott et al.'s `simple_odenet` (Conv1d field).
    SimpleOdenet,
    /// Ott et al.'s `odenet` (Conv2d field).
    Odenet,
    /// A multilayer perceptron; the activation, when not given, comes from the file's
    /// metadata.
    Mlp(Option<Activation>),
    /// The separable Hamiltonian network `H = T(p) + V(q)` (a bare field on states
    /// `(p, q)`; see [`hamiltonian`]).
    Hamiltonian,
    /// A bare body of convolutional residual blocks with batch norm: a ResNet (Euler) or
    /// HeunNet (Heun) of Sander et al. on `(C, H, W)` features (see [`resnet`]).
    ResNet(Scheme),
    /// Sander et al.'s TinyResNet image classifier (stem, body, head) with a ResNet
    /// (Euler) or HeunNet (Heun) body (see [`resnet`]).
    TinyResNet(Scheme),
}

impl Architecture {
    /// The names [`Architecture::from_str`] accepts.
    pub const NAMES: &'static str =
        "simple_odenet, odenet, mlp (activation from the file), mlp-tanh, mlp-relu, mlp-softplus, mlp-silu, mlp-sigmoid, hamiltonian, resnet, heunnet, tiny_resnet, tiny_heunnet";

    /// The canonical name (`simple_odenet`, `odenet`, `mlp`, `mlp-tanh`, `hamiltonian`,
    /// `resnet`, `heunnet`, `tiny_resnet`, `tiny_heunnet`).
    pub fn name(&self) -> String {
        match self {
            Architecture::SimpleOdenet => "simple_odenet".into(),
            Architecture::Odenet => "odenet".into(),
            Architecture::Mlp(None) => "mlp".into(),
            Architecture::Mlp(Some(a)) => format!("mlp-{}", a.name()),
            Architecture::Hamiltonian => "hamiltonian".into(),
            Architecture::ResNet(Scheme::Euler) => "resnet".into(),
            Architecture::ResNet(Scheme::Heun) => "heunnet".into(),
            Architecture::TinyResNet(Scheme::Euler) => "tiny_resnet".into(),
            Architecture::TinyResNet(Scheme::Heun) => "tiny_heunnet".into(),
        }
    }

    /// Whether the architecture is one of Ott et al.'s ODE classifiers or bare fields
    /// (`simple_odenet`, `odenet`, `mlp…`), which [`load_classifier`] and [`load_field`]
    /// read.
    pub fn is_ode_classifier(&self) -> bool {
        matches!(
            self,
            Architecture::SimpleOdenet | Architecture::Odenet | Architecture::Mlp(_)
        )
    }

    /// The architecture of a classifier description.
    pub fn of_spec(field: &FieldSpec) -> Result<Self, WeightsError> {
        Ok(match field {
            FieldSpec::SimpleOdenet { .. } => Architecture::SimpleOdenet,
            FieldSpec::Odenet { .. } => Architecture::Odenet,
            FieldSpec::Mlp { activation, .. } => Architecture::Mlp(Some(
                activation
                    .parse()
                    .map_err(|e: crate::nn::NnError| WeightsError::Invalid(e.to_string()))?,
            )),
        })
    }
}

impl fmt::Display for Architecture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl FromStr for Architecture {
    type Err = WeightsError;
    fn from_str(s: &str) -> Result<Self, WeightsError> {
        let unknown = || {
            WeightsError::Invalid(format!(
                "unknown model '{s}': known models are {}",
                Architecture::NAMES
            ))
        };
        match s.to_ascii_lowercase().replace('-', "_").as_str() {
            "simple_odenet" => Ok(Architecture::SimpleOdenet),
            "odenet" => Ok(Architecture::Odenet),
            "mlp" => Ok(Architecture::Mlp(None)),
            "hamiltonian" => Ok(Architecture::Hamiltonian),
            "resnet" => Ok(Architecture::ResNet(Scheme::Euler)),
            "heunnet" => Ok(Architecture::ResNet(Scheme::Heun)),
            "tiny_resnet" => Ok(Architecture::TinyResNet(Scheme::Euler)),
            "tiny_heunnet" => Ok(Architecture::TinyResNet(Scheme::Heun)),
            other => {
                let act = other.strip_prefix("mlp_").ok_or_else(unknown)?;
                let a: Activation = act.parse().map_err(|_| unknown())?;
                Ok(Architecture::Mlp(Some(a)))
            }
        }
    }
}

fn tensor<'a>(
    file: &'a TensorFile,
    key: &str,
    arch: Architecture,
) -> Result<&'a Tensor, WeightsError> {
    file.tensors.get(key).ok_or_else(|| {
        WeightsError::Invalid(format!(
            "the weights have no tensor '{key}', which a {arch} file starts with (keys found: {})",
            key_list(file)
        ))
    })
}

fn key_list(file: &TensorFile) -> String {
    let keys: Vec<&str> = file.tensors.keys().map(String::as_str).take(8).collect();
    let more = file.tensors.len().saturating_sub(keys.len());
    let mut s = keys.join(", ");
    if more > 0 {
        s.push_str(&format!(", … ({more} more)"));
    }
    if s.is_empty() {
        s = "none".into();
    }
    s
}

fn rank_err(key: &str, t: &Tensor, arch: Architecture, want: &str) -> WeightsError {
    WeightsError::Invalid(format!(
        "tensor '{key}' has shape {:?}, but a {arch} file has {want} there",
        t.shape
    ))
}

/// The file's values for `keys`, concatenated, after checking that the file holds exactly
/// these keys with these shapes (the first bad key is named with both shapes).
fn gather<T: Real>(
    file: &TensorFile,
    keys: &[(String, Vec<usize>)],
    arch: Architecture,
) -> Result<Vec<T>, WeightsError> {
    gather_with(file, keys, &[], arch)
}

/// [`gather`], where the file may also hold the `optional` keys (PyTorch's batch-norm
/// counters, which odeflow does not use): each is checked for its shape when present, and
/// its values are not returned.
fn gather_with<T: Real>(
    file: &TensorFile,
    keys: &[(String, Vec<usize>)],
    optional: &[(String, Vec<usize>)],
    arch: Architecture,
) -> Result<Vec<T>, WeightsError> {
    let shape_err = |key: &str, t: &Tensor, shape: &[usize]| WeightsError::Shape {
        key: key.to_string(),
        arch: arch.name(),
        file: t.shape.clone(),
        expected: shape.to_vec(),
    };
    let mut out = Vec::new();
    for (key, shape) in keys {
        let t = file.tensors.get(key).ok_or_else(|| WeightsError::Missing {
            key: key.clone(),
            arch: arch.name(),
            expected: shape.clone(),
        })?;
        if &t.shape != shape {
            return Err(shape_err(key, t, shape));
        }
        out.extend(t.data.iter().map(|&v| T::of(v)));
    }
    for (key, shape) in optional {
        if let Some(t) = file.tensors.get(key) {
            if &t.shape != shape {
                return Err(shape_err(key, t, shape));
            }
        }
    }
    let known: std::collections::BTreeSet<&str> = keys
        .iter()
        .chain(optional)
        .map(|(k, _)| k.as_str())
        .collect();
    if let Some((key, t)) = file
        .tensors
        .iter()
        .find(|(k, _)| !known.contains(k.as_str()))
    {
        return Err(WeightsError::Unexpected {
            key: key.clone(),
            arch: arch.name(),
            shape: t.shape.clone(),
        });
    }
    Ok(out)
}

/// The shape of `key`, which the model's dimensions are read from: it must be present and
/// hold values (a zero in a shape would let a file declare dimensions it does not hold).
fn dims_of<'a>(
    file: &'a TensorFile,
    key: &str,
    arch: Architecture,
) -> Result<&'a [usize], WeightsError> {
    let t = tensor(file, key, arch)?;
    if t.is_empty() {
        return Err(WeightsError::Invalid(format!(
            "tensor '{key}' has shape {:?} and holds no values: a {arch} file has none such",
            t.shape
        )));
    }
    Ok(&t.shape)
}

/// Refuses a file whose shapes describe a model with far more values (parameters and
/// running statistics) than the file holds, before the model is built: the dimensions read
/// from one tensor can describe others far larger (an MLP's widths, a convolution's
/// channels squared), and no such model could be loaded from the file anyway. A model up to
/// twice the file's values (plus a little) is built, so that a file missing a few tensors
/// gets the precise error naming the first missing key; memory stays within a small
/// multiple of the file's size either way. `needed` may saturate.
fn size_guard(file: &TensorFile, arch: Architecture, needed: u128) -> Result<(), WeightsError> {
    let held: u128 = file.tensors.values().map(|t| t.len() as u128).sum();
    if needed > 2 * held + 4096 {
        return Err(WeightsError::Invalid(format!(
            "the weights' shapes describe a {arch} model of {needed} values, but the file holds only {held}: its tensors do not fit together (keys found: {})",
            key_list(file)
        )));
    }
    Ok(())
}

/// `Σ Π dims` of `parts`, saturating (for [`size_guard`]).
fn count(parts: &[&[usize]]) -> u128 {
    parts
        .iter()
        .map(|p| {
            p.iter()
                .fold(1u128, |acc, &d| acc.saturating_mul(d as u128))
        })
        .fold(0u128, u128::saturating_add)
}

/// The metadata every exported file carries: `format = pt` (what `safetensors.torch`
/// writes), the architecture, and an MLP's activation.
fn metadata(arch: Architecture, file: &mut TensorFile) {
    file.metadata.insert("format".into(), "pt".into());
    file.metadata.insert("odeflow_model".into(), arch.name());
    if let Architecture::Mlp(Some(a)) = arch {
        file.metadata.insert("activation".into(), a.name().into());
    }
}

/// Inserts `params`, cut into the tensors `keys` in order.
fn insert<T: Real>(file: &mut TensorFile, keys: Vec<(String, Vec<usize>)>, params: &[T]) {
    let mut off = 0;
    for (key, shape) in keys {
        let n: usize = shape.iter().product();
        let data = params[off..off + n].iter().map(|v| v.f64()).collect();
        off += n;
        file.tensors.insert(key, Tensor::new(shape, data));
    }
}
