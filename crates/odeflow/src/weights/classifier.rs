//! Ott et al.'s classifiers and bare fields (`simple_odenet`, `odenet`, MLPs with ANODE
//! channels) and their Linear head, in and out of weights files (see the
//! [module docs](super) for the PyTorch modules).

use super::{
    count, gather, insert, key_list, metadata, rank_err, size_guard, tensor, Architecture,
    FileDtype, TensorFile, WeightsError,
};
use crate::field::Parameterized;
use crate::grad::GradientMethod;
use crate::models::{ClassifierSpec, FieldSpec, NeuralClassifier};
use crate::nn::NeuralField;
use crate::solve::{Method, SolveOptions};
use crate::train::Trainable;
use crate::Real;

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
        Architecture::Hamiltonian | Architecture::ResNet(_) | Architecture::TinyResNet(_) => {
            return Err(WeightsError::Invalid(format!(
                "the {arch} model is not one of Ott et al.'s ODE classifiers: read it with its own loader (weights::load_hamiltonian, load_resnet, load_tiny_resnet)"
            )))
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
    size_guard(
        file,
        arch,
        classifier_size(&field, augment, sample_shape, classes),
    )?;
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

/// The number of parameters of the classifier (or bare field, `classes = None`) so
/// described, saturating, computed without building it (for [`size_guard`]).
fn classifier_size(
    field: &FieldSpec,
    augment: usize,
    sample_shape: &[usize],
    classes: Option<usize>,
) -> u128 {
    let state: usize = match sample_shape.split_first() {
        Some((c, rest)) if !matches!(field, FieldSpec::Mlp { .. }) => c
            .saturating_add(augment)
            .saturating_mul(rest.iter().product::<usize>()),
        _ => sample_shape
            .iter()
            .product::<usize>()
            .saturating_add(augment),
    };
    let c = sample_shape
        .first()
        .copied()
        .unwrap_or(0)
        .saturating_add(augment);
    let field_size = match field {
        FieldSpec::SimpleOdenet { channels: k } | FieldSpec::Odenet { channels: k } => {
            let taps = if matches!(field, FieldSpec::Odenet { .. }) {
                9
            } else {
                3
            };
            count(&[&[*k, c], &[*k], &[*k, *k, taps], &[*k], &[c, *k], &[c]])
        }
        FieldSpec::Mlp { hidden, .. } => {
            let mut widths = vec![state];
            widths.extend(hidden);
            widths.push(state);
            widths
                .windows(2)
                .map(|w| count(&[&[w[0], w[1]], &[w[1]]]))
                .fold(0u128, u128::saturating_add)
        }
    };
    let head = classes.map_or(0, |k| count(&[&[k, state], &[k]]));
    field_size.saturating_add(head)
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
    let (loss, grad) = trainable_loss_gradient(model, x, labels)?;
    Ok((loss, gradient_file(model, &grad, dtype)))
}

/// The mean cross-entropy on `(x, labels)` and the gradient of any classifier trainer with
/// [`ClassBatch`](crate::models::ClassBatch)es (the CPU model, or its device twin), in the
/// trainer's parameter order.
pub fn trainable_loss_gradient<T: Real, M: Trainable<T, Batch = crate::models::ClassBatch<T>>>(
    model: &mut M,
    x: &crate::state::Batch<T>,
    labels: &[usize],
) -> Result<(f64, Vec<T>), WeightsError> {
    let batch = crate::models::ClassBatch {
        x: x.clone(),
        labels: labels.to_vec(),
    };
    let mut grad = vec![T::zero(); model.num_params()];
    let m = model
        .loss_and_grad(&batch, &mut grad, 0)
        .map_err(|e| WeightsError::Invalid(format!("the loss and gradient failed: {e}")))?;
    Ok((m.loss, grad))
}

/// A gradient of `model`'s parameters (`[field | head]`) as a weights file under the
/// parameters' keys.
pub fn gradient_file<T: Real>(
    model: &NeuralClassifier<T>,
    grad: &[T],
    dtype: FileDtype,
) -> TensorFile {
    let mut file = TensorFile::new(dtype);
    insert(
        &mut file,
        expected_keys(&model.field, Some(&model.head)),
        grad,
    );
    file
}
