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
//! Shapes are read from the file: the architecture name ([`Architecture`]) is all a user
//! says. `simple_odenet`'s and `odenet`'s hidden channels and state channels come from
//! `field.0.weight`, an MLP's widths from its chain of `field.<2i>.weight`, the number of
//! classes from `head.weight`; the sample shape comes from the data. A file whose keys or
//! shapes do not fit the model so described is refused with the first bad key and both
//! shapes ([`WeightsError`]). An MLP's activation is not part of a `state_dict`: it is
//! named in the architecture (`mlp-tanh`) or read from the file's metadata key
//! `activation`, which [`export_classifier`] writes.

pub mod check;
mod tensors;
#[cfg(test)]
mod tests;

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

pub use check::{check_weights, evaluate_weights, ExternalModel};
pub use tensors::{FileDtype, Tensor, TensorFile};

use crate::field::Parameterized;
use crate::grad::GradientMethod;
use crate::models::{ClassifierSpec, FieldSpec, NeuralClassifier};
use crate::nn::{Activation, NeuralField};
use crate::runs::RunError;
use crate::solve::{Method, SolveOptions};
use crate::train::Trainable;
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
}

impl Architecture {
    /// The names [`Architecture::from_str`] accepts.
    pub const NAMES: &'static str =
        "simple_odenet, odenet, mlp (activation from the file), mlp-tanh, mlp-relu, mlp-softplus, mlp-silu, mlp-sigmoid";

    /// The canonical name (`simple_odenet`, `odenet`, `mlp`, `mlp-tanh`, …).
    pub fn name(&self) -> String {
        match self {
            Architecture::SimpleOdenet => "simple_odenet".into(),
            Architecture::Odenet => "odenet".into(),
            Architecture::Mlp(None) => "mlp".into(),
            Architecture::Mlp(Some(a)) => format!("mlp-{}", a.name()),
        }
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
            other => {
                let act = other.strip_prefix("mlp_").ok_or_else(unknown)?;
                let a: Activation = act.parse().map_err(|_| unknown())?;
                Ok(Architecture::Mlp(Some(a)))
            }
        }
    }
}

/// What a weights file says about a model, with the sample shape of the data: the
/// classifier description and the number of classes (`None` for a bare field).
#[derive(Debug, Clone, PartialEq)]
pub struct ModelShape {
    /// The field and its augmentation.
    pub spec: ClassifierSpec,
    /// Classes of the head (`None`: the file holds no head).
    pub classes: Option<usize>,
    /// The architecture the file was read as.
    pub arch: Architecture,
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

/// Reads the model's description from the file's shapes for data of `sample_shape`.
pub fn infer_shape(
    arch: Architecture,
    file: &TensorFile,
    sample_shape: &[usize],
) -> Result<ModelShape, WeightsError> {
    let sample_err = |want: &str| {
        WeightsError::Invalid(format!(
            "the {arch} model needs samples of shape {want}, but the data have samples of shape {sample_shape:?}"
        ))
    };
    let state_channels = |c_state: usize, c_in: usize| {
        c_state.checked_sub(c_in).ok_or_else(|| {
            WeightsError::Invalid(format!(
                "the weights' field has {c_state} state channels (field.0.weight), fewer than the data's {c_in}"
            ))
        })
    };
    let (field, augment) = match arch {
        Architecture::SimpleOdenet => {
            let [c_in, _] = sample_shape else {
                return Err(sample_err("(channels, length)"));
            };
            let t = tensor(file, "field.0.weight", arch)?;
            let [ch, c_state, 1] = t.shape[..] else {
                return Err(rank_err(
                    "field.0.weight",
                    t,
                    arch,
                    "a Conv1d weight (C, c, 1)",
                ));
            };
            let a = state_channels(c_state, *c_in)?;
            (FieldSpec::SimpleOdenet { channels: ch }, a)
        }
        Architecture::Odenet => {
            let [c_in, _, _] = sample_shape else {
                return Err(sample_err("(channels, height, width)"));
            };
            let t = tensor(file, "field.0.weight", arch)?;
            let [ch, c_state, 1, 1] = t.shape[..] else {
                return Err(rank_err(
                    "field.0.weight",
                    t,
                    arch,
                    "a Conv2d weight (C, c, 1, 1)",
                ));
            };
            let a = state_channels(c_state, *c_in)?;
            (FieldSpec::Odenet { channels: ch }, a)
        }
        Architecture::Mlp(act) => {
            let act = match act {
                Some(a) => a,
                None => {
                    let name = file.metadata.get("activation").ok_or_else(|| {
                        WeightsError::Invalid(
                            "the weights do not name the MLP's activation (metadata key 'activation'): give the model as mlp-tanh, mlp-relu, mlp-softplus, mlp-silu or mlp-sigmoid".into(),
                        )
                    })?;
                    name.parse().map_err(|e: crate::nn::NnError| {
                        WeightsError::Invalid(format!("the weights' metadata: {e}"))
                    })?
                }
            };
            let first = tensor(file, "field.0.weight", arch)?;
            let [_, d_state] = first.shape[..] else {
                return Err(rank_err(
                    "field.0.weight",
                    first,
                    arch,
                    "a Linear weight (out, in)",
                ));
            };
            let mut widths = Vec::new();
            let mut i = 0;
            while let Some(t) = file.tensors.get(&format!("field.{i}.weight")) {
                let [out, _] = t.shape[..] else {
                    return Err(rank_err(
                        &format!("field.{i}.weight"),
                        t,
                        arch,
                        "a Linear weight (out, in)",
                    ));
                };
                widths.push(out);
                i += 2;
            }
            widths.pop();
            let d_in: usize = sample_shape.iter().product();
            let a = d_state.checked_sub(d_in).ok_or_else(|| {
                WeightsError::Invalid(format!(
                    "the weights' MLP takes {d_state} inputs (field.0.weight), fewer than the data's {d_in} features"
                ))
            })?;
            (
                FieldSpec::Mlp {
                    hidden: widths,
                    activation: act.name().to_string(),
                },
                a,
            )
        }
    };
    let classes = match file.tensors.get("head.weight") {
        None => None,
        Some(t) => match t.shape[..] {
            [classes, _] => Some(classes),
            _ => {
                return Err(rank_err(
                    "head.weight",
                    t,
                    arch,
                    "a Linear weight (classes, features)",
                ))
            }
        },
    };
    let arch = match (arch, &field) {
        (Architecture::Mlp(None), FieldSpec::Mlp { activation, .. }) => {
            Architecture::Mlp(activation.parse().ok())
        }
        _ => arch,
    };
    Ok(ModelShape {
        spec: ClassifierSpec {
            field,
            augment,
            threads: 0,
        },
        classes,
        arch,
    })
}

/// The expected `(key, shape)` of every tensor of a field and head, in storage order.
fn expected_keys<T, F: Parameterized<T>, H: Parameterized<T>>(
    field: &F,
    head: Option<&H>,
) -> Vec<(String, Vec<usize>)> {
    let mut keys: Vec<(String, Vec<usize>)> = field
        .param_views()
        .into_iter()
        .map(|v| (format!("field.{}", v.name), v.shape))
        .collect();
    if let Some(h) = head {
        // The head is `Flatten → Linear` in odeflow and a bare `nn.Linear` on the flattened
        // state in PyTorch: drop the layer index.
        keys.extend(h.param_views().into_iter().map(|v| {
            let param = v.name.rsplit('.').next().unwrap_or(&v.name).to_string();
            (format!("head.{param}"), v.shape)
        }));
    }
    keys
}

/// The file's values for `keys`, concatenated, after checking that the file holds exactly
/// these keys with these shapes (the first bad key is named with both shapes).
fn gather<T: Real>(
    file: &TensorFile,
    keys: &[(String, Vec<usize>)],
    arch: Architecture,
) -> Result<Vec<T>, WeightsError> {
    let mut out = Vec::new();
    for (key, shape) in keys {
        let t = file.tensors.get(key).ok_or_else(|| WeightsError::Missing {
            key: key.clone(),
            arch: arch.name(),
            expected: shape.clone(),
        })?;
        if &t.shape != shape {
            return Err(WeightsError::Shape {
                key: key.clone(),
                arch: arch.name(),
                file: t.shape.clone(),
                expected: shape.clone(),
            });
        }
        out.extend(t.data.iter().map(|&v| T::of(v)));
    }
    if let Some((key, t)) = file
        .tensors
        .iter()
        .find(|(k, _)| !keys.iter().any(|(e, _)| e == *k))
    {
        return Err(WeightsError::Unexpected {
            key: key.clone(),
            arch: arch.name(),
            shape: t.shape.clone(),
        });
    }
    Ok(out)
}

/// The classifier described by a weights file for data of `sample_shape`, with the file's
/// parameters and `method`/`opts` as its (training) solver. Refuses a file without a head.
pub fn load_classifier<T: Real>(
    arch: Architecture,
    file: &TensorFile,
    sample_shape: &[usize],
    method: Method,
    opts: SolveOptions,
) -> Result<(NeuralClassifier<T>, ModelShape), WeightsError> {
    let shape = infer_shape(arch, file, sample_shape)?;
    let classes = shape.classes.ok_or_else(|| {
        WeightsError::Invalid(format!(
            "the weights hold no classification head (head.weight, head.bias), only a field: a classifier needs both (keys found: {})",
            key_list(file)
        ))
    })?;
    let mut model = shape
        .spec
        .build::<T>(
            sample_shape,
            classes,
            method,
            GradientMethod::Backprop,
            opts,
            0,
        )
        .map_err(|e| WeightsError::Invalid(e.to_string()))?;
    let keys = expected_keys(&model.field, Some(&model.head));
    let params = gather::<T>(file, &keys, shape.arch)?;
    model.write_params(&params);
    Ok((model, shape))
}

/// The bare field described by a weights file for data of `sample_shape` (a file with a
/// head is refused: load it with [`load_classifier`]).
pub fn load_field<T: Real>(
    arch: Architecture,
    file: &TensorFile,
    sample_shape: &[usize],
) -> Result<(NeuralField<T>, ModelShape), WeightsError> {
    let shape = infer_shape(arch, file, sample_shape)?;
    let (mut field, _) = shape
        .spec
        .build_field::<T>(sample_shape, 0)
        .map_err(|e| WeightsError::Invalid(e.to_string()))?;
    let keys = expected_keys(&field, None::<&NeuralField<T>>);
    let params = gather::<T>(file, &keys, shape.arch)?;
    field.params_mut().copy_from_slice(&params);
    Ok((field, shape))
}

fn metadata(arch: Architecture, file: &mut TensorFile) {
    file.metadata.insert("format".into(), "pt".into());
    file.metadata.insert("odeflow_model".into(), arch.name());
    if let Architecture::Mlp(Some(a)) = arch {
        file.metadata.insert("activation".into(), a.name().into());
    }
}

fn insert<T: Real>(file: &mut TensorFile, keys: Vec<(String, Vec<usize>)>, params: &[T]) {
    let mut off = 0;
    for (key, shape) in keys {
        let n: usize = shape.iter().product();
        let data = params[off..off + n].iter().map(|v| v.f64()).collect();
        off += n;
        file.tensors.insert(key, Tensor::new(shape, data));
    }
}

/// A classifier's field and head as a weights file in `dtype` (metadata: `format = pt`,
/// the architecture, and an MLP's activation).
pub fn export_classifier<T: Real>(
    model: &NeuralClassifier<T>,
    spec: &ClassifierSpec,
    dtype: FileDtype,
) -> Result<TensorFile, WeightsError> {
    if model.encoder.is_some() {
        return Err(WeightsError::Invalid(
            "a classifier with an encoder has no PyTorch layout in odeflow's weights files".into(),
        ));
    }
    let arch = Architecture::of_spec(&spec.field)?;
    let mut file = TensorFile::new(dtype);
    metadata(arch, &mut file);
    let mut params = vec![T::zero(); model.num_params()];
    model.read_params(&mut params);
    insert(
        &mut file,
        expected_keys(&model.field, Some(&model.head)),
        &params,
    );
    Ok(file)
}

/// A bare field as a weights file in `dtype` (keys `field.<name>`).
pub fn export_field<T: Real>(
    field: &NeuralField<T>,
    arch: Architecture,
    dtype: FileDtype,
) -> TensorFile {
    let mut file = TensorFile::new(dtype);
    metadata(arch, &mut file);
    insert(
        &mut file,
        expected_keys(field, None::<&NeuralField<T>>),
        field.params(),
    );
    file
}

/// The mean cross-entropy of a classifier on `(x, labels)` with its (training) solver, and
/// its gradient with respect to every parameter as a weights file with the same keys as
/// the parameters (`field.*`, `head.*`), for comparison with PyTorch's `param.grad`. The
/// gradient is the model's gradient method's (backprop: the exact discrete adjoint of the
/// solve, what autograd through the solver loop gives).
pub fn loss_gradient<T: Real>(
    model: &mut NeuralClassifier<T>,
    x: &crate::state::Batch<T>,
    labels: &[usize],
    dtype: FileDtype,
) -> Result<(f64, TensorFile), WeightsError> {
    let batch = crate::models::ClassBatch {
        x: x.clone(),
        labels: labels.to_vec(),
    };
    let mut grad = vec![T::zero(); model.num_params()];
    let m = model
        .loss_and_grad(&batch, &mut grad, 0)
        .map_err(|e| WeightsError::Invalid(format!("the loss and gradient failed: {e}")))?;
    let mut file = TensorFile::new(dtype);
    insert(
        &mut file,
        expected_keys(&model.field, Some(&model.head)),
        &grad,
    );
    Ok((m.loss, file))
}
