//! `model.json`: a trained classifier — its description, its training solver and its
//! parameters — that `eval` and `check` load without the training state.
//!
//! ```json
//! {"format": "odeflow-classifier", "version": 2, "dtype": "f32", "dataset": "sphere2",
//!  "spec": {"field": {"kind": "simple-odenet", "channels": 32}, "augment": 0},
//!  "sample_shape": [1, 2], "classes": 2, "num_params": 3329, "seed": 0,
//!  "train": {"method": "euler", "order": 1, "steps": 2},
//!  "grad": "backprop", "iterations": 2000, "fingerprint": "9c1f…", "params": [...]}
//! ```
//!
//! Parameters are stored as shortest round-trip decimals of their `f64` value, so `f32`
//! parameters come back bit for bit. The fingerprint (FNV-1a of the parameters' bits) ties
//! evaluation results to the exact model they were computed for. Version 2 adds the data
//! set and the parameter count, so that a model is never evaluated or judged against a run
//! or data it does not belong to ([`ModelFile::check_identity`]); version-1 files still load.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{files, RunError};
use crate::grad::GradientMethod;
use crate::models::{ClassifierSpec, NeuralClassifier};
use crate::solve::SolverSpec;
use crate::train::Trainable;
use crate::Real;

/// Identifies the file format.
pub const MODEL_FORMAT: &str = "odeflow-classifier";
/// The model file's name inside a run folder.
pub const MODEL_FILE: &str = "model.json";

/// The content of `model.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelFile {
    /// Always [`MODEL_FORMAT`].
    pub format: String,
    /// Format version (2; 1 is read too).
    pub version: u32,
    /// `f32` or `f64`: the type the model was trained and is evaluated in.
    pub dtype: String,
    /// The data set it was trained on (absent in version-1 files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
    /// The classifier.
    pub spec: ClassifierSpec,
    /// Shape of one input sample.
    pub sample_shape: Vec<usize>,
    /// Number of classes.
    pub classes: usize,
    /// Number of parameters (absent in version-1 files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_params: Option<usize>,
    /// Seed the model was initialised with.
    pub seed: u64,
    /// The training solver at the end of training (after any adaptation).
    pub train: SolverSpec,
    /// Gradient method used in training.
    pub grad: String,
    /// Iterations trained.
    pub iterations: u64,
    /// FNV-1a fingerprint of the parameters.
    pub fingerprint: String,
    /// The flat parameters.
    pub params: Vec<f64>,
}

/// FNV-1a (64 bit) of the parameters' `f64` bits, in hex.
pub fn fingerprint(params: &[f64]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for v in params {
        for b in v.to_bits().to_le_bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

impl ModelFile {
    /// The file of a trained model.
    #[allow(clippy::too_many_arguments)]
    pub fn new<T: Real>(
        model: &NeuralClassifier<T>,
        dataset: &str,
        spec: ClassifierSpec,
        sample_shape: Vec<usize>,
        classes: usize,
        seed: u64,
        train: SolverSpec,
        iterations: u64,
    ) -> Self {
        let mut p = vec![T::zero(); model.num_params()];
        model.read_params(&mut p);
        let params: Vec<f64> = p.iter().map(|v| v.f64()).collect();
        Self {
            format: MODEL_FORMAT.into(),
            version: 2,
            dtype: T::NAME.into(),
            dataset: Some(dataset.into()),
            spec,
            sample_shape,
            classes,
            num_params: Some(params.len()),
            seed,
            grad: model.solver().gradient_method().name().into(),
            train,
            iterations,
            fingerprint: fingerprint(&params),
            params,
        }
    }

    /// Writes the file atomically.
    pub fn save(&self, path: &Path) -> Result<(), RunError> {
        files::write_json_compact(self, path)
    }

    /// Reads and checks a model file.
    pub fn load(path: &Path) -> Result<Self, RunError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            RunError::input(format!(
                "cannot read the model '{}': {e} (train the run to the end first)",
                path.display()
            ))
        })?;
        let m: ModelFile = serde_json::from_str(&text).map_err(|e| {
            RunError::input(format!(
                "the model file '{}' is corrupt or truncated: {e}",
                path.display()
            ))
        })?;
        if m.format != MODEL_FORMAT || !(1..=2).contains(&m.version) {
            return Err(RunError::input(format!(
                "'{}' is not an odeflow classifier (format {:?} version {})",
                path.display(),
                m.format,
                m.version
            )));
        }
        if m.num_params.is_some_and(|n| n != m.params.len()) {
            return Err(RunError::input(format!(
                "the model file '{}' is corrupt: it declares {} parameters and holds {}",
                path.display(),
                m.num_params.unwrap_or(0),
                m.params.len()
            )));
        }
        if fingerprint(&m.params) != m.fingerprint {
            return Err(RunError::input(format!(
                "the model file '{}' is corrupt: its parameters do not match its fingerprint",
                path.display()
            )));
        }
        Ok(m)
    }

    /// Refuses a model that does not belong to a run of `dataset` with classifier `spec`
    /// in `dtype`, or to data of `sample_shape` with `classes` classes; the error names
    /// both sides.
    pub fn check_identity(
        &self,
        dataset: &str,
        spec: &ClassifierSpec,
        dtype: &str,
        sample_shape: &[usize],
        classes: usize,
    ) -> Result<(), RunError> {
        let mismatch = |what: &str, model: String, run: String| {
            Err(RunError::input(format!(
                "the model was trained with {what} {model}, but the run or data has {run}: this is not the run's model (retrain, or point at the right run)"
            )))
        };
        if let Some(d) = &self.dataset {
            if d != dataset {
                return mismatch("data set", d.clone(), dataset.into());
            }
        }
        if self.spec.field != spec.field || self.spec.augment != spec.augment {
            return mismatch(
                "architecture",
                format!("{:?} (augment {})", self.spec.field, self.spec.augment),
                format!("{:?} (augment {})", spec.field, spec.augment),
            );
        }
        if self.dtype != dtype {
            return mismatch("dtype", self.dtype.clone(), dtype.into());
        }
        if self.sample_shape != sample_shape {
            return mismatch(
                "samples of shape",
                format!("{:?}", self.sample_shape),
                format!("{sample_shape:?}"),
            );
        }
        if self.classes != classes {
            return mismatch(
                "classes:",
                self.classes.to_string(),
                format!("{classes} classes"),
            );
        }
        Ok(())
    }

    /// The classifier with these parameters, in scalar type `T` (its training solver set).
    pub fn build<T: Real>(&self) -> Result<NeuralClassifier<T>, RunError> {
        let grad = GradientMethod::from_name(&self.grad)?;
        let mut model = self.spec.build::<T>(
            &self.sample_shape,
            self.classes,
            self.train.method()?,
            grad,
            self.train.options(),
            self.seed,
        )?;
        if model.num_params() != self.params.len() {
            return Err(RunError::input(format!(
                "the model file holds {} parameters, its description needs {}",
                self.params.len(),
                model.num_params()
            )));
        }
        let p: Vec<T> = self.params.iter().map(|&v| T::of(v)).collect();
        model.write_params(&p);
        Ok(model)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_see_every_bit() {
        let a = fingerprint(&[1.0, 2.0]);
        assert_ne!(a, fingerprint(&[1.0, 2.0000000000000004]));
        assert_ne!(a, fingerprint(&[2.0, 1.0]));
        assert_eq!(a, fingerprint(&[1.0, 2.0]));
    }
}
