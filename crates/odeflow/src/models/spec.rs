//! Building the papers' classifiers from a serialisable description.

use serde::{Deserialize, Serialize};

use super::classifier::{ClassifierParts, OdeClassifier};
use crate::data::derive_seed;
use crate::error::ArgError;
use crate::field::ParallelField;
use crate::grad::GradientMethod;
use crate::nn::zoo::{linear_head, simple_odenet};
use crate::nn::{Activation, Init, NeuralField, SequentialBuilder, Shape};
use crate::real::Real;
use crate::solve::{Method, SolveOptions};

/// The vector field of the ODE block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum FieldSpec {
    /// Ott et al.'s `simple_odenet` on `(1, d)` samples: Conv1d(1→C, 1) → ReLU →
    /// Conv1d(C→C, 3, pad 1) → ReLU → Conv1d(C→1, 1).
    SimpleOdenet {
        /// Hidden channels C.
        channels: usize,
    },
    /// Ott et al.'s `odenet` on `(c, h, w)` images: Conv2d(c→C, 1×1) → ReLU →
    /// Conv2d(C→C, 3×3, pad 1) → ReLU → Conv2d(C→c, 1×1).
    Odenet {
        /// Hidden channels C.
        channels: usize,
    },
    /// An MLP on the flattened sample.
    Mlp {
        /// Hidden widths.
        hidden: Vec<usize>,
        /// Activation name (relu, tanh, softplus, silu, sigmoid).
        activation: String,
    },
}

/// A classifier: field, ANODE augmentation, Linear head on the flattened state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassifierSpec {
    /// The ODE block's field.
    pub field: FieldSpec,
    /// Zero channels appended to the state (Dupont et al.'s augmented Neural ODEs).
    #[serde(default)]
    pub augment: usize,
    /// Workers the batch is split over (0: every available core; 1: serial). Results are
    /// bitwise reproducible for a given number of workers.
    #[serde(default)]
    pub threads: usize,
}

/// The number of workers `threads` asks for (0: the size of the rayon pool, which is every
/// core unless `RAYON_NUM_THREADS` says otherwise).
pub fn resolve_threads(threads: usize) -> usize {
    if threads == 0 {
        rayon::current_num_threads()
    } else {
        threads
    }
}

fn nn_err(e: impl std::fmt::Display) -> ArgError {
    ArgError::invalid("model", "architecture", e.to_string())
}

impl ClassifierSpec {
    /// Ott et al.'s model for a data set with samples of `sample_shape` (`[1, d]` for spheres,
    /// `[c, h, w]` for images).
    pub fn ott_default(sample_shape: &[usize]) -> Self {
        let field = if sample_shape.len() == 3 {
            FieldSpec::Odenet { channels: 64 }
        } else {
            FieldSpec::SimpleOdenet { channels: 32 }
        };
        Self {
            field,
            augment: 0,
            threads: 0,
        }
    }

    /// A spec with no augmentation, using every core.
    pub fn new(field: FieldSpec) -> Self {
        Self {
            field,
            augment: 0,
            threads: 0,
        }
    }

    /// The ODE block's field for samples of `sample_shape` with this spec's augmentation,
    /// initialised with PyTorch's defaults from `seed`, and the shape of the ODE state.
    pub fn build_field<T: Real>(
        &self,
        sample_shape: &[usize],
        seed: u64,
    ) -> Result<(NeuralField<T>, Shape), ArgError> {
        let a = self.augment;
        let shape_err = || {
            ArgError::invalid(
                "sample shape",
                format!("{sample_shape:?}"),
                "does not fit this model",
            )
        };
        let built = match (&self.field, sample_shape) {
            (FieldSpec::SimpleOdenet { channels }, [c, d]) => {
                let c_state = c + a;
                if c_state == 1 {
                    (
                        simple_odenet::<T>(*channels, *d, seed).map_err(nn_err)?,
                        Shape::seq(1, *d),
                    )
                } else {
                    let seq = SequentialBuilder::new(Shape::seq(c_state, *d))
                        .conv1d(*channels, 1, 1, 0)
                        .activation(Activation::Relu)
                        .conv1d(*channels, 3, 1, 1)
                        .activation(Activation::Relu)
                        .conv1d(c_state, 1, 1, 0)
                        .build()
                        .map_err(nn_err)?;
                    (
                        NeuralField::from_sequential(seq, &Init::PyTorchDefault, seed)
                            .map_err(nn_err)?,
                        Shape::seq(c_state, *d),
                    )
                }
            }
            (FieldSpec::Odenet { channels }, [c, h, w]) => {
                let c_state = c + a;
                let f = crate::nn::zoo::odenet::<T>(c_state, *h, *w, *channels, seed)
                    .map_err(nn_err)?;
                (f, Shape::image(c_state, *h, *w))
            }
            (FieldSpec::Mlp { hidden, activation }, _) => {
                let d: usize = sample_shape.iter().product::<usize>() + a;
                let act: Activation =
                    activation
                        .parse()
                        .map_err(|_: crate::nn::NnError| ArgError::Unknown {
                            kind: "activation",
                            name: activation.clone(),
                            known: "relu, tanh, sigmoid, softplus, silu (swish)".into(),
                        })?;
                let mut b = SequentialBuilder::new(Shape::Flat(d));
                for &w in hidden {
                    b = b.linear(w).activation(act);
                }
                let seq = b.linear(d).build().map_err(nn_err)?;
                (
                    NeuralField::from_sequential(seq, &Init::PyTorchDefault, seed)
                        .map_err(nn_err)?,
                    Shape::Flat(d),
                )
            }
            _ => return Err(shape_err()),
        };
        if a > 0 && sample_shape.len() == 1 && !matches!(self.field, FieldSpec::Mlp { .. }) {
            return Err(shape_err());
        }
        Ok(built)
    }

    /// Builds the classifier with its training solver. Parameters are initialised with
    /// PyTorch's defaults (as in the papers' code) from `seed`.
    #[allow(clippy::too_many_arguments)]
    pub fn build<T: Real>(
        &self,
        sample_shape: &[usize],
        classes: usize,
        method: Method,
        grad: GradientMethod,
        opts: SolveOptions,
        seed: u64,
    ) -> Result<NeuralClassifier<T>, ArgError> {
        let (fseed, hseed) = (derive_seed(seed, 11), derive_seed(seed, 12));
        let (field, state_shape) = self.build_field::<T>(sample_shape, fseed)?;
        let head = linear_head::<T>(state_shape, classes, hseed).map_err(nn_err)?;
        let dim = state_shape.len();
        let augment_len = dim - sample_shape.iter().product::<usize>();
        let field = ParallelField::new(field, resolve_threads(self.threads));
        OdeClassifier::new(
            ClassifierParts {
                encoder: None,
                field,
                field_dim: dim,
                head,
                augment: augment_len,
            },
            method,
            grad,
            opts,
        )
    }
}

/// The built-in classifiers: a network field split over the batch by [`ParallelField`].
pub type NeuralClassifier<T> = OdeClassifier<T, ParallelField<T, NeuralField<T>>>;
