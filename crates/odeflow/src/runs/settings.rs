//! The sections of a run configuration that need no cross-checks with the others: the model,
//! optimisation, adaptation and check settings (see [`super::config`]).

use crate::analysis::solver_dependence::AdaptationConfig;
use crate::models::{ClassifierSpec, FieldSpec};
use crate::train::OptimizerConfig;
use crate::ArgError;
use serde::{Deserialize, Serialize};

use super::config::DataKind;

/// The classifier's vector field and augmentation.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelConfig {
    /// `simple_odenet` (1-D convolutions, for spheres), `odenet` (2-D convolutions, for
    /// images) or `mlp`; empty: Ott et al.'s choice for the data set.
    pub kind: String,
    /// Hidden channels of `simple_odenet` (default 32) and `odenet` (default 64).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channels: Option<usize>,
    /// Hidden widths of `mlp` (default [64, 64]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hidden: Option<Vec<usize>>,
    /// Activation of `mlp` (default tanh).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub activation: Option<String>,
    /// Zero channels appended to the ODE state (augmented Neural ODEs); 0 as in Ott et al.
    pub augment: usize,
    /// Workers the batch is split over (0: every core). Results are bitwise reproducible
    /// for the same seed and the same number of workers.
    pub threads: usize,
}

impl ModelConfig {
    /// Fills in the defaults for data of kind `data` (Ott et al.'s `simple_odenet` with 32
    /// channels for spheres, `odenet` with 64 for images) and checks the names.
    pub fn resolve(&mut self, data: DataKind) -> Result<(), ArgError> {
        if self.kind.is_empty() {
            self.kind = match data {
                DataKind::Spheres(_) => "simple_odenet",
                _ => "odenet",
            }
            .into();
        }
        self.kind = match self.kind.as_str() {
            "simple_odenet" | "simple-odenet" => "simple_odenet",
            "odenet" => "odenet",
            "mlp" => "mlp",
            other => {
                return Err(ArgError::Unknown {
                    kind: "model",
                    name: other.to_string(),
                    known: "simple_odenet, odenet, mlp".into(),
                })
            }
        }
        .into();
        match self.kind.as_str() {
            "simple_odenet" => {
                self.channels.get_or_insert(32);
                self.hidden = None;
                self.activation = None;
            }
            "odenet" => {
                self.channels.get_or_insert(64);
                self.hidden = None;
                self.activation = None;
            }
            _ => {
                self.channels = None;
                self.hidden.get_or_insert_with(|| vec![64, 64]);
                self.activation.get_or_insert_with(|| "tanh".into());
            }
        }
        if self.channels == Some(0) || self.hidden.as_ref().is_some_and(|h| h.contains(&0)) {
            return Err(ArgError::invalid(
                "model width",
                0,
                "channels and hidden widths must be at least 1",
            ));
        }
        match (self.kind.as_str(), data) {
            ("odenet", DataKind::Spheres(_)) => Err(ArgError::invalid(
                "model",
                "odenet",
                "needs image data (mnist, cifar10); use simple_odenet or mlp for spheres",
            )),
            ("simple_odenet", DataKind::Mnist | DataKind::Cifar10) => Err(ArgError::invalid(
                "model",
                "simple_odenet",
                "needs 1-D samples (spheres); use odenet or mlp for images",
            )),
            _ => Ok(()),
        }
    }

    /// The library's description of the classifier (after [`ModelConfig::resolve`]).
    pub fn spec(&self) -> ClassifierSpec {
        let field = match self.kind.as_str() {
            "simple_odenet" => FieldSpec::SimpleOdenet {
                channels: self.channels.unwrap_or(32),
            },
            "odenet" => FieldSpec::Odenet {
                channels: self.channels.unwrap_or(64),
            },
            _ => FieldSpec::Mlp {
                hidden: self.hidden.clone().unwrap_or_else(|| vec![64, 64]),
                activation: self.activation.clone().unwrap_or_else(|| "tanh".into()),
            },
        };
        ClassifierSpec {
            field,
            augment: self.augment,
            threads: self.threads,
        }
    }
}

/// Optimisation settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainingConfig {
    /// Total iterations.
    pub iterations: u64,
    /// Mini-batch size.
    pub batch_size: usize,
    /// `adam` or `sgd`.
    pub optimizer: String,
    /// Learning rate.
    pub lr: f64,
    /// SGD momentum.
    pub momentum: f64,
    /// L2 weight decay.
    pub weight_decay: f64,
    /// Checkpoint every this many iterations (and at the end).
    pub checkpoint_every: u64,
}

impl Default for TrainingConfig {
    fn default() -> Self {
        Self {
            iterations: 10_000,
            batch_size: 128,
            optimizer: "adam".into(),
            lr: 1e-4,
            momentum: 0.9,
            weight_decay: 0.0,
            checkpoint_every: 100,
        }
    }
}

impl TrainingConfig {
    /// The optimizer, checked.
    pub fn optimizer(&self) -> Result<OptimizerConfig, ArgError> {
        let opt = match self.optimizer.as_str() {
            "adam" => OptimizerConfig::Adam {
                lr: self.lr,
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                weight_decay: self.weight_decay,
            },
            "sgd" => OptimizerConfig::sgd(self.lr, self.momentum, self.weight_decay),
            other => {
                return Err(ArgError::Unknown {
                    kind: "optimizer",
                    name: other.into(),
                    known: "adam, sgd".into(),
                })
            }
        };
        opt.validate()?;
        Ok(opt)
    }
}

/// Adaptation settings (Ott et al.'s constants by default).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdaptConfig {
    /// Adapt the step size (euler, midpoint) or tolerance (fehlberg2, dopri5) during training.
    pub enabled: bool,
    /// Check every this many iterations.
    pub interval: u64,
    /// Largest tolerated batch-accuracy gap between training and test solver.
    pub threshold: f64,
    /// Largest number of steps on [0, 1].
    pub max_steps: f64,
    /// Growth factor of a step or tolerance.
    pub grow: f64,
    /// Largest step size.
    pub max_h: f64,
    /// Initial tolerance of adaptive training (when `solver.tol` is not set).
    pub initial_tol: f64,
    /// Checks over which a constant training NFE blocks tolerance growth.
    pub nfe_window: usize,
}

impl Default for AdaptConfig {
    fn default() -> Self {
        let d = AdaptationConfig::default();
        Self {
            enabled: false,
            interval: d.interval,
            threshold: d.threshold,
            max_steps: d.max_steps,
            grow: d.grow,
            max_h: d.max_h,
            initial_tol: d.initial_tol,
            nfe_window: d.nfe_window,
        }
    }
}

impl AdaptConfig {
    /// The library's settings, checked.
    pub fn library(&self) -> Result<AdaptationConfig, ArgError> {
        let c = AdaptationConfig {
            interval: self.interval,
            threshold: self.threshold,
            max_steps: self.max_steps,
            grow: self.grow,
            max_h: self.max_h,
            initial_tol: self.initial_tol,
            nfe_window: self.nfe_window,
        };
        c.validate()?;
        if !(self.max_h > 0.0 && self.max_h.is_finite()) {
            return Err(ArgError::invalid("max_h", self.max_h, "must be positive"));
        }
        Ok(c)
    }
}

/// The validity check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CheckConfig {
    /// Run `check` at the end of training.
    pub enabled: bool,
    /// Largest tolerated drop of test accuracy.
    pub threshold: f64,
    /// Samples per evaluation batch.
    pub batch_size: usize,
}

impl Default for CheckConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            threshold: 0.02,
            batch_size: 1000,
        }
    }
}
