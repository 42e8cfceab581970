//! `model.json`: a trained classifier — its description, its training solver and its
//! parameters — that `eval` and `check` load without the training state.
//!
//! ```json
//! {"format": "odeflow-classifier", "version": 1, "dtype": "f32",
//!  "spec": {"field": {"kind": "simple-odenet", "channels": 32}, "augment": 0},
//!  "sample_shape": [1, 2], "classes": 2, "seed": 0,
//!  "train": {"method": "euler", "order": 1, "steps": 2},
//!  "grad": "backprop", "iterations": 2000, "fingerprint": "9c1f…", "params": [...]}
//! ```
//!
//! Parameters are stored as shortest round-trip decimals of their `f64` value, so `f32`
//! parameters come back bit for bit. The fingerprint (FNV-1a of the parameters' bits) ties
//! evaluation results to the exact model they were computed for.

use std::path::Path;

use odeflow::analysis::solver_dependence::SolverSetting;
use odeflow::grad::GradientMethod;
use odeflow::models::{ClassifierSpec, NeuralClassifier};
use odeflow::solve::{Method, SolveOptions, Stepping};
use odeflow::train::Trainable;
use odeflow::{ArgError, Real};
use serde::{Deserialize, Serialize};

use crate::error::CliError;
use crate::output::{self, Layout};

/// Identifies the file format.
pub const MODEL_FORMAT: &str = "odeflow-classifier";
/// The model file's name inside a run folder.
pub const MODEL_FILE: &str = "model.json";

/// A solver setting: a method with a step count, a step size, or a tolerance on `[0, 1]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SolverSpec {
    /// Method name.
    pub method: String,
    /// Classical order of the method.
    pub order: usize,
    /// Steps on [0, 1] (for a step size: the number of steps taken, `⌈1/h⌉`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<usize>,
    /// Step size, when the grid is given by a step size rather than a count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_size: Option<f64>,
    /// Tolerance (rtol = atol) of adaptive stepping.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tol: Option<f64>,
}

impl SolverSpec {
    /// The setting of `method` with `stepping` on `[0, 1]`.
    pub fn new(method: &Method, stepping: &Stepping) -> Self {
        let (steps, step_size, tol) = match stepping {
            Stepping::FixedCount(n) => (Some(*n), None, None),
            Stepping::FixedStep(h) => (Some(steps_of(*h)), Some(*h), None),
            Stepping::Adaptive(a) => (None, None, Some(a.rtol)),
        };
        Self {
            method: method.name().to_string(),
            order: method.order(),
            steps,
            step_size,
            tol,
        }
    }

    /// A method at `steps` equal steps.
    pub fn fixed(method: &str, steps: usize) -> Result<Self, ArgError> {
        let m = Method::from_name(method)?;
        Ok(Self::new(&m, &Stepping::FixedCount(steps)))
    }

    /// An adaptive method at tolerance `tol`.
    pub fn adaptive(method: &str, tol: f64) -> Result<Self, ArgError> {
        let m = Method::from_name(method)?;
        if !m.is_adaptive() {
            return Err(ArgError::MethodUnsuited {
                method: method.into(),
                reason: "has no error estimate, so it cannot run at a tolerance".into(),
            });
        }
        Ok(Self::new(
            &m,
            &Stepping::Adaptive(odeflow::solve::AdaptiveOptions::new(tol, tol)),
        ))
    }

    /// The method, looked up.
    pub fn method(&self) -> Result<Method, ArgError> {
        Method::from_name(&self.method)
    }

    /// The stepping this setting describes.
    pub fn stepping(&self) -> Stepping {
        match (self.step_size, self.steps, self.tol) {
            (Some(h), _, _) => Stepping::FixedStep(h),
            (_, Some(n), _) => Stepping::FixedCount(n),
            (_, _, Some(t)) => Stepping::Adaptive(odeflow::solve::AdaptiveOptions::new(t, t)),
            _ => Stepping::FixedCount(1),
        }
    }

    /// Solve options on `[0, 1]`.
    pub fn options(&self) -> SolveOptions {
        options(self.stepping())
    }

    /// The setting as the verdict sees it.
    pub fn setting(&self) -> SolverSetting {
        SolverSetting {
            method: self.method.clone(),
            order: self.order,
            steps: self.steps,
            tol: self.tol,
        }
    }

    /// `euler-2`, `euler-h0.37`, `dopri5-tol1e-4`: a name for files and runs.
    pub fn slug(&self) -> String {
        match (self.step_size, self.steps, self.tol) {
            (Some(h), _, _) => format!("{}-h{}", self.method, short(h)),
            (_, Some(n), _) => format!("{}-{n}", self.method),
            (_, _, Some(t)) => format!("{}-tol{}", self.method, short(t)),
            _ => self.method.clone(),
        }
    }

    /// `euler, 2 steps` / `euler, h = 0.37` / `dopri5, tol 1e-4`: a label for people.
    pub fn label(&self) -> String {
        match (self.step_size, self.steps, self.tol) {
            (Some(h), _, _) => format!("{}, h = {}", self.method, short(h)),
            (_, Some(1), _) => format!("{}, 1 step", self.method),
            (_, Some(n), _) => format!("{}, {n} steps", self.method),
            (_, _, Some(t)) => format!("{}, tol {}", self.method, short(t)),
            _ => self.method.clone(),
        }
    }
}

/// Steps of size `h` needed to cover `[0, 1]`.
pub fn steps_of(h: f64) -> usize {
    ((1.0 / h) - 1e-9).ceil().max(1.0) as usize
}

/// A number in at most 4 significant digits without noise: `0.37`, `0.0625`, `1e-3`,
/// `7.812e-3`, `2.5e-7`.
pub fn short(v: f64) -> String {
    if v != 0.0 && (v.abs() < 1e-2 || v.abs() >= 1e5) {
        let s = format!("{v:.3e}");
        let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
        let m = m.trim_end_matches('0').trim_end_matches('.');
        format!("{m}e{e}")
    } else {
        let s = format!("{v:.4}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        s.to_string()
    }
}

/// Solve options on `[0, 1]` for a stepping.
pub fn options(stepping: Stepping) -> SolveOptions {
    match stepping {
        Stepping::FixedCount(n) => SolveOptions::steps(0.0, 1.0, n),
        Stepping::FixedStep(h) => SolveOptions::fixed(0.0, 1.0, h),
        Stepping::Adaptive(a) => {
            let mut o = SolveOptions::adaptive(0.0, 1.0, a.rtol, a.atol);
            o.stepping = Stepping::Adaptive(a);
            o
        }
    }
}

/// The content of `model.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelFile {
    /// Always [`MODEL_FORMAT`].
    pub format: String,
    /// Format version (1).
    pub version: u32,
    /// `f32` or `f64`: the type the model was trained and is evaluated in.
    pub dtype: String,
    /// The classifier.
    pub spec: ClassifierSpec,
    /// Shape of one input sample.
    pub sample_shape: Vec<usize>,
    /// Number of classes.
    pub classes: usize,
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
            version: 1,
            dtype: T::NAME.into(),
            spec,
            sample_shape,
            classes,
            seed,
            grad: model.solver().gradient_method().name().into(),
            train,
            iterations,
            fingerprint: fingerprint(&params),
            params,
        }
    }

    /// Writes the file atomically.
    pub fn save(&self, path: &Path) -> Result<(), CliError> {
        output::write_json(self, Some(path), Layout::Compact)
    }

    /// Reads and checks a model file.
    pub fn load(path: &Path) -> Result<Self, CliError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            CliError::input(format!(
                "cannot read the model '{}': {e} (train the run to the end first)",
                path.display()
            ))
        })?;
        let m: ModelFile = serde_json::from_str(&text).map_err(|e| {
            CliError::input(format!(
                "the model file '{}' is corrupt or truncated: {e}",
                path.display()
            ))
        })?;
        if m.format != MODEL_FORMAT || m.version != 1 {
            return Err(CliError::input(format!(
                "'{}' is not an odeflow classifier (format {:?} version {})",
                path.display(),
                m.format,
                m.version
            )));
        }
        if fingerprint(&m.params) != m.fingerprint {
            return Err(CliError::input(format!(
                "the model file '{}' is corrupt: its parameters do not match its fingerprint",
                path.display()
            )));
        }
        Ok(m)
    }

    /// The classifier with these parameters, in scalar type `T` (its training solver set).
    pub fn build<T: Real>(&self) -> Result<NeuralClassifier<T>, CliError> {
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
            return Err(CliError::input(format!(
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
    fn solver_specs_name_and_round_trip() {
        let s = SolverSpec::fixed("euler", 2).unwrap();
        assert_eq!(
            (s.slug().as_str(), s.label().as_str()),
            ("euler-2", "euler, 2 steps")
        );
        let m = Method::from_name("euler").unwrap();
        let h = SolverSpec::new(&m, &Stepping::FixedStep(0.3));
        assert_eq!(h.steps, Some(4));
        assert_eq!(h.slug(), "euler-h0.3");
        assert_eq!(h.stepping(), Stepping::FixedStep(0.3));
        assert_eq!(steps_of(0.25), 4);
        let t = SolverSpec::adaptive("dopri5", 1e-4).unwrap();
        assert_eq!(t.slug(), "dopri5-tol1e-4");
        assert_eq!(t.setting().order, 5);
        assert!(SolverSpec::adaptive("rk4", 1e-4).is_err());
        assert_eq!(short(2.5e-7), "2.5e-7");
        assert_eq!(short(0.125), "0.125");
        assert_eq!(short(0.0625), "0.0625");
        assert_eq!(short(1e-3), "1e-3");
        assert_eq!(short(1.0 / 128.0), "7.812e-3");
    }

    #[test]
    fn fingerprints_see_every_bit() {
        let a = fingerprint(&[1.0, 2.0]);
        assert_ne!(a, fingerprint(&[1.0, 2.0000000000000004]));
        assert_ne!(a, fingerprint(&[2.0, 1.0]));
        assert_eq!(a, fingerprint(&[1.0, 2.0]));
    }
}
