//! The configuration of one training run, as written to the run folder's `config.toml`.
//!
//! A run is configured by a TOML file (`--config`), by flags, or both (flags win); the fully
//! resolved configuration — every default filled in — is written to `RUN/config.toml`, and
//! that file is authoritative when the run is resumed, evaluated or checked.
//!
//! ```toml
//! seed = 0
//! dtype = "f32"
//!
//! [data]
//! name = "sphere2"        # sphere<d> (sphere2, sphere3, sphere10, sphere900), mnist, cifar10
//! # dir = "data/mnist"    # the folder of the IDX / CIFAR-10 binary files (default:
//!                         # $ODEFLOW_DATA/<name>, else ~/.cache/odeflow/data/<name>)
//! # train_size = 2000     # spheres: points drawn; images: the first N of the training part
//! # test_size = 1000
//! data_seed = 0
//!
//! [model]
//! kind = "simple_odenet"  # simple_odenet, odenet, mlp
//! channels = 32
//! augment = 0
//!
//! [solver]
//! method = "euler"
//! steps = 2               # or step_size = 0.5, or tol = 1e-4 for adaptive methods
//! grad = "backprop"
//!
//! [train]
//! iterations = 10000
//! batch_size = 128
//! optimizer = "adam"
//! lr = 1e-4
//!
//! [adapt]
//! enabled = false
//! interval = 50
//! threshold = 0.1
//!
//! [check]
//! enabled = true
//! threshold = 0.02
//! ```

use std::path::{Path, PathBuf};

use crate::grad::GradientMethod;
use crate::solve::{AdaptiveOptions, Method, SolverSpec, Stepping};
use crate::ArgError;
use serde::{Deserialize, Serialize};

pub use super::settings::{AdaptConfig, CheckConfig, ModelConfig, TrainingConfig};
use super::RunError;

/// The file name of the resolved configuration inside a run folder.
pub const CONFIG_FILE: &str = "config.toml";

/// Everything a run needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunConfig {
    /// Seed of the model's initialisation and of the batch order.
    pub seed: u64,
    /// Scalar type of the computation: `f32` (default, faster) or `f64`.
    pub dtype: String,
    /// The data set.
    pub data: DataConfig,
    /// The classifier.
    pub model: ModelConfig,
    /// The training solver.
    pub solver: SolverConfig,
    /// Optimisation.
    pub train: TrainingConfig,
    /// Step-size / tolerance adaptation during training.
    pub adapt: AdaptConfig,
    /// The validity check after training.
    pub check: CheckConfig,
}

impl Default for RunConfig {
    fn default() -> Self {
        Self {
            seed: 0,
            dtype: "f32".into(),
            data: DataConfig::default(),
            model: ModelConfig::default(),
            solver: SolverConfig::default(),
            train: TrainingConfig::default(),
            adapt: AdaptConfig::default(),
            check: CheckConfig::default(),
        }
    }
}

/// The data set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataConfig {
    /// `sphere<d>`, `mnist` or `cifar10`.
    pub name: String,
    /// Folder of the image files (MNIST IDX or CIFAR-10 binary batches).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dir: Option<PathBuf>,
    /// Spheres: points in the training set (default 2000). Images: use only the first N
    /// images of the (seeded) training part.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub train_size: Option<usize>,
    /// Spheres: points in the test set (default 1000). Images: the first N test images.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_size: Option<usize>,
    /// Seed of the data (spheres' points; the train/test split of image folders that hold
    /// only one part). Kept apart from the run's seed so that runs of a seed sweep share
    /// their data.
    pub data_seed: u64,
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            name: "sphere2".into(),
            dir: None,
            train_size: None,
            test_size: None,
            data_seed: 0,
        }
    }
}

/// The kind of data set a name denotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataKind {
    /// Concentric spheres in dimension d.
    Spheres(usize),
    /// MNIST (IDX files).
    Mnist,
    /// CIFAR-10 (binary batches).
    Cifar10,
}

impl DataConfig {
    /// Finds the folder of an image data set by the one lookup rule (`dir` itself or its
    /// `<name>` subfolder, else `$ODEFLOW_DATA/<name>`, else the platform cache folder) and
    /// stores it as an absolute path; returns the data set's kind.
    pub fn resolve(&mut self) -> Result<DataKind, RunError> {
        let kind = self.kind()?;
        if matches!(kind, DataKind::Mnist | DataKind::Cifar10) {
            if let Some(dir) = &self.dir {
                if !dir.is_dir() {
                    let what = match crate::fsutil::describe_path(dir) {
                        "missing" => "does not exist".to_string(),
                        kind => format!("is {kind}, not a folder"),
                    };
                    return Err(RunError::input(format!(
                        "dataset {}: the data folder '{}' {what}",
                        self.name,
                        dir.display()
                    )));
                }
            }
            // The one lookup rule: --data-dir (itself or its <name> subfolder), else
            // $ODEFLOW_DATA/<name>, else the platform cache folder.
            let name = if kind == DataKind::Mnist {
                "mnist"
            } else {
                "cifar10"
            };
            let dir = crate::data::store::dataset_dir(name, self.dir.as_deref())
                .map_err(RunError::input)?;
            // Store an absolute path, so the run can be evaluated from any folder.
            self.dir = Some(std::fs::canonicalize(&dir).unwrap_or(dir));
        }
        Ok(kind)
    }

    /// The kind of data set, or an error naming the unknown name.
    pub fn kind(&self) -> Result<DataKind, ArgError> {
        match self.name.as_str() {
            "mnist" => Ok(DataKind::Mnist),
            "cifar10" | "cifar-10" => Ok(DataKind::Cifar10),
            n if n.starts_with("sphere") => {
                let cfg = crate::data::SpheresConfig::from_name(n)?;
                Ok(DataKind::Spheres(cfg.dim))
            }
            other => Err(ArgError::Unknown {
                kind: "dataset",
                name: other.to_string(),
                known: "sphere2 (or sphere<d>: sphere3, sphere10, sphere900), mnist, cifar10"
                    .into(),
            }),
        }
    }
}

/// The training solver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SolverConfig {
    /// Method name (see `odeflow methods`).
    pub method: String,
    /// Equal steps on [0, 1].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steps: Option<usize>,
    /// Step size on [0, 1] (the last step is shortened to land on 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step_size: Option<f64>,
    /// Tolerance (rtol = atol) of an adaptive method.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tol: Option<f64>,
    /// Gradient method: backprop, adjoint, reversible.
    pub grad: String,
}

impl Default for SolverConfig {
    fn default() -> Self {
        Self {
            method: "euler".into(),
            steps: None,
            step_size: None,
            tol: None,
            grad: "backprop".into(),
        }
    }
}

impl SolverConfig {
    /// The method, looked up.
    pub fn method(&self) -> Result<Method, ArgError> {
        Method::from_name(&self.method)
    }

    /// The gradient method, looked up.
    pub fn grad(&self) -> Result<GradientMethod, ArgError> {
        GradientMethod::from_name(&self.grad)
    }

    /// The training solver, when a stepping is set (`None`: the adaptation chooses it).
    pub fn spec(&self) -> Result<Option<SolverSpec>, ArgError> {
        let m = self.method()?;
        Ok(self.stepping()?.map(|s| SolverSpec::new(&m, &s)))
    }

    /// The stepping given by `steps`, `step_size` or `tol` (`None` when none is set: the
    /// adaptation then chooses the initial step).
    pub fn stepping(&self) -> Result<Option<Stepping>, ArgError> {
        let given = [
            self.steps.is_some(),
            self.step_size.is_some(),
            self.tol.is_some(),
        ];
        if given.iter().filter(|&&g| g).count() > 1 {
            let named: Vec<String> = [
                self.steps.map(|n| format!("--steps {n}")),
                self.step_size
                    .map(|h| format!("--step-size {}", crate::budget::readable(h))),
                self.tol
                    .map(|t| format!("--tol {}", crate::budget::readable(t))),
            ]
            .into_iter()
            .flatten()
            .collect();
            return Err(ArgError::invalid(
                "training step",
                named.join(" and "),
                "give only one of --steps, --step-size and --tol",
            ));
        }
        Ok(match (self.steps, self.step_size, self.tol) {
            (Some(0), _, _) => return Err(ArgError::ZeroSteps),
            (Some(n), _, _) => Some(Stepping::FixedCount(n)),
            (_, Some(h), _) if !(h > 0.0 && h.is_finite()) => {
                return Err(ArgError::NonPositiveStep(h))
            }
            (_, Some(h), _) => Some(Stepping::FixedStep(h)),
            (_, _, Some(t)) if !(t > 0.0 && t.is_finite()) => {
                return Err(ArgError::BadTolerance {
                    name: "tol",
                    value: t,
                })
            }
            (_, _, Some(t)) => Some(Stepping::Adaptive(AdaptiveOptions::new(t, t))),
            _ => None,
        })
    }
}

/// Most workers a run may split its batch over (`--threads`): more only adds threads that
/// wait (and thousands exhaust the process's thread limit).
pub const MAX_THREADS: usize = 1024;

impl RunConfig {
    /// Fills in defaults that depend on other settings and checks everything that can be
    /// checked without data.
    pub fn resolve(&mut self) -> Result<(), RunError> {
        let kind = self.data.resolve()?;
        if !matches!(self.dtype.as_str(), "f32" | "f64") {
            return Err(RunError::input(format!(
                "unknown dtype '{}'; known: f32, f64",
                self.dtype
            )));
        }
        self.model.resolve(kind)?;
        let method = self.solver.method()?;
        let grad = self.solver.grad()?;
        let stepping = self.solver.stepping()?;
        if matches!(stepping, Some(Stepping::Adaptive(_))) && !method.is_adaptive() {
            return Err(ArgError::MethodUnsuited {
                method: method.name().into(),
                reason: "has no error estimate, so it cannot train with --tol; give --steps or --step-size".into(),
            }
            .into());
        }
        if stepping.is_none() && !self.adapt.enabled {
            return Err(RunError::input(
                "give the training step: --steps N, --step-size H, --tol TOL (adaptive methods), or --adapt to let the adaptation choose it",
            ));
        }
        if self.adapt.enabled {
            self.adapt.library()?;
            let name = method.name();
            let fixed = matches!(name, "euler" | "midpoint");
            let tol = matches!(name, "fehlberg2" | "dopri5");
            if !(fixed || tol) {
                return Err(ArgError::MethodUnsuited {
                    method: name.into(),
                    reason: "cannot be adapted: Ott et al.'s adaptation trains with euler or midpoint (step size) or fehlberg2 or dopri5 (tolerance)".into(),
                }
                .into());
            }
            if tol
                && matches!(
                    stepping,
                    Some(Stepping::FixedCount(_) | Stepping::FixedStep(_))
                )
            {
                return Err(RunError::input(format!("--adapt with {name} adapts a tolerance: give --tol (or nothing) instead of --steps/--step-size")));
            }
            if fixed && matches!(stepping, Some(Stepping::Adaptive(_))) {
                return Err(RunError::input(format!(
                    "--adapt with {name} adapts a step size: give --steps/--step-size (or nothing) instead of --tol"
                )));
            }
        }
        if matches!(grad, GradientMethod::Reversible)
            && matches!(stepping, Some(Stepping::Adaptive(_)))
        {
            return Err(RunError::input(
                "--grad reversible needs a fixed grid: give --steps or --step-size",
            ));
        }
        self.train.optimizer()?;
        let budget =
            crate::budget::Budget::from_env().map_err(|e| RunError::input(e.to_string()))?;
        self.check_budget(&budget, kind, &method, stepping.as_ref())?;
        if self.train.checkpoint_every == 0 {
            return Err(RunError::input(
                "checkpoint_every = 0 is invalid: checkpoint at least every N ≥ 1 iterations (a run must be resumable)",
            ));
        }
        if self.train.iterations == 0 {
            return Err(RunError::input("--iterations must be at least 1"));
        }
        if self.train.batch_size == 0 || self.check.batch_size == 0 {
            return Err(RunError::input("batch sizes must be at least 1"));
        }
        if !(0.0..=1.0).contains(&self.check.threshold) {
            return Err(RunError::input(format!(
                "check threshold = {} is invalid: it must lie in [0, 1]",
                self.check.threshold
            )));
        }
        for (flag, size) in [
            ("--train-size", self.data.train_size),
            ("--test-size", self.data.test_size),
        ] {
            if size == Some(0) {
                return Err(RunError::input(format!(
                    "{flag} 0 is invalid: a data set needs at least 1 sample"
                )));
            }
        }
        if self.model.threads > MAX_THREADS {
            return Err(RunError::input(format!(
                "--threads {} is too many workers: give at most {MAX_THREADS} (0 uses every core)",
                self.model.threads
            )));
        }
        // Build the model once (f32, no data read) so that every architecture error — an
        // unknown activation, a method or gradient that cannot train it — is reported before
        // the run folder is written to.
        let (shape, classes): (Vec<usize>, usize) = match kind {
            DataKind::Spheres(d) => (vec![1, d], 2),
            DataKind::Mnist => (vec![1, 28, 28], 10),
            DataKind::Cifar10 => (vec![3, 32, 32], 10),
        };
        self.model.spec().build::<f32>(
            &shape,
            classes,
            method,
            grad,
            crate::solve::spec::unit_options(stepping.unwrap_or(Stepping::FixedStep(1.0))),
            self.seed,
        )?;
        Ok(())
    }

    /// Checks every size this configuration gives against `budget` before any work starts:
    /// the steps per solve its stepping implies, the tolerance, the data set's memory and
    /// the activations one backprop iteration keeps. Errors name the value and what it
    /// would need.
    pub fn check_budget(
        &self,
        budget: &crate::budget::Budget,
        kind: DataKind,
        method: &Method,
        stepping: Option<&Stepping>,
    ) -> Result<(), RunError> {
        use crate::budget::{check_tolerance, readable};
        let err = |e: crate::budget::BudgetError| RunError::input(e.to_string());
        let steps = match stepping {
            Some(Stepping::FixedCount(n)) => {
                budget
                    .check_steps(&format!("--steps {n}"), *n as u64)
                    .map_err(err)?;
                *n as u64
            }
            Some(Stepping::FixedStep(h)) => budget
                .check_step_size(&format!("--step-size {}", readable(*h)), *h, 1.0)
                .map_err(err)?,
            Some(Stepping::Adaptive(a)) => {
                check_tolerance("--tol", a.rtol).map_err(err)?;
                1
            }
            None => 1,
        };
        if self.adapt.enabled {
            let cap = self.adapt.max_steps;
            if !(cap >= 1.0 && cap.is_finite()) {
                return Err(RunError::input(format!(
                    "adapt.max_steps = {} is invalid: give at least 1 step",
                    readable(cap)
                )));
            }
            budget
                .check_steps(&format!("--adapt-max-steps {}", readable(cap)), cap as u64)
                .map_err(err)?;
        }
        let bytes: u64 = if self.dtype == "f64" { 8 } else { 4 };
        let (sample, default_sizes): (Vec<u64>, (u64, u64)) = match kind {
            DataKind::Spheres(d) => (vec![1, d as u64], (2000, 1000)),
            DataKind::Mnist => (vec![1, 28, 28], (60_000, 10_000)),
            DataKind::Cifar10 => (vec![3, 32, 32], (50_000, 10_000)),
        };
        let per_sample: u64 = sample.iter().product();
        let n = self.data.train_size.map_or(default_sizes.0, |n| n as u64)
            + self.data.test_size.map_or(default_sizes.1, |n| n as u64);
        budget
            .check_dataset(n, per_sample, &self.dtype, bytes)
            .map_err(err)?;
        // Activations kept by backprop: per field evaluation about two hidden layers of the
        // field's width, once per stage of every step, for every sample of a batch.
        let state = per_sample + self.model.augment as u64 * per_sample / sample[0].max(1);
        let width = match self.model.kind.as_str() {
            "mlp" => self
                .model
                .hidden
                .as_ref()
                .map_or(128, |h| h.iter().sum::<usize>() as u64),
            _ => 2 * self.model.channels.unwrap_or(64) as u64 * per_sample / sample[0].max(1),
        };
        let stages = method.tableau().map_or(1, |t| t.stages() as u64);
        let evals = steps.saturating_mul(stages);
        let what = format!(
            "training {} {} steps × {stages} stages on batches of {} (activations kept for the backward pass)",
            method.name(),
            steps,
            self.train.batch_size
        );
        budget
            .check_shape(
                &what,
                &[self.train.batch_size as u64, width + state, evals.max(1)],
                bytes,
            )
            .map_err(err)?;
        Ok(())
    }

    /// Reads a configuration file (TOML).
    pub fn load(path: &Path) -> Result<Self, RunError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            RunError::input(format!("cannot read the config '{}': {e}", path.display()))
        })?;
        toml::from_str(&text).map_err(|e| {
            RunError::input(format!(
                "the config '{}' is not a valid run configuration: {}",
                path.display(),
                e.message()
            ))
        })
    }

    /// The configuration as TOML text.
    pub fn to_toml(&self) -> Result<String, RunError> {
        toml::to_string_pretty(self)
            .map_err(|e| RunError::runtime(format!("cannot write the configuration: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_round_trip_and_partial_files() {
        let mut c = RunConfig::default();
        c.solver.steps = Some(2);
        c.resolve().unwrap();
        assert_eq!(c.model.kind, "simple_odenet");
        assert_eq!(c.model.channels, Some(32));
        let text = c.to_toml().unwrap();
        let back: RunConfig = toml::from_str(&text).unwrap();
        assert_eq!(back, c);
        let partial: RunConfig =
            toml::from_str("[solver]\nmethod = \"rk4\"\nsteps = 4\n[train]\nlr = 0.01\n").unwrap();
        assert_eq!(partial.train.batch_size, 128);
        assert_eq!(partial.solver.method, "rk4");
        assert!(toml::from_str::<RunConfig>("[solver]\nstep = 3\n").is_err());
    }

    #[test]
    fn bad_settings_are_named() {
        let mut c = RunConfig::default();
        let e = c.resolve().unwrap_err();
        assert!(e.message().contains("--steps"), "{e}");
        c.solver.steps = Some(2);
        c.data.name = "spheres".into();
        assert!(c.resolve().unwrap_err().message().contains("spheres"));
        c.data.name = "imagenet".into();
        let e = c.resolve().unwrap_err();
        assert!(e.message().contains("unknown dataset 'imagenet'"), "{e}");
        c.data.name = "mnist".into();
        let empty = tempfile::tempdir().unwrap();
        c.data.dir = Some(empty.path().into());
        let e = c.resolve().unwrap_err();
        assert!(e.message().contains("odeflow data download mnist"), "{e}");
        assert!(e.message().contains("--data-dir"), "{e}");
        let mut c = RunConfig::default();
        c.solver.method = "rk4".into();
        c.adapt.enabled = true;
        assert!(c.resolve().unwrap_err().message().contains("rk4"));
        let mut c = RunConfig::default();
        c.solver.tol = Some(1e-3);
        assert!(c
            .resolve()
            .unwrap_err()
            .message()
            .contains("error estimate"));
    }
}
