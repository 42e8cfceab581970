//! The flags with which `odeflow eval` and `odeflow check` take a classifier trained
//! elsewhere instead of a run folder: a safetensors file with PyTorch `state_dict` names
//! (`--weights`, `--model`), its data set, and the solver it was trained with.
//!
//! ```text
//! odeflow check --weights model.safetensors --model simple_odenet --dataset sphere2 \
//!     --train-method euler --train-steps 2 --out-dir checks/torch-e2
//! ```

use std::path::PathBuf;

use clap::Args;

use odeflow::runs::config::DataConfig;
use odeflow::solve::SolverSpec;
use odeflow::weights::{Architecture, ExternalModel};

use crate::args::positive;
use crate::error::CliError;

/// Flags of a model given by its weights.
#[derive(Debug, Args)]
pub struct ExternalArgs {
    /// A safetensors file (keys field.*, head.*) of a classifier trained elsewhere, instead
    /// of a run folder; needs --model, --dataset, --train-method and its stepping, and
    /// --out-dir.
    #[arg(long, value_name = "FILE", requires_all = ["model", "dataset", "train_method", "out_dir"])]
    pub weights: Option<PathBuf>,
    /// Architecture of --weights: simple_odenet, odenet, mlp, mlp-tanh, … (shapes come from
    /// the file).
    #[arg(long, value_name = "NAME", requires = "weights")]
    pub model: Option<String>,
    /// Data set of --weights: sphere2 (sphere<d>), mnist or cifar10.
    #[arg(long, value_name = "NAME", requires = "weights")]
    pub dataset: Option<String>,
    /// Folder of the image files, or a data root holding <name>/ (default: --data-dir rules
    /// of `odeflow train`).
    #[arg(long, value_name = "DIR", requires = "weights")]
    pub data_dir: Option<PathBuf>,
    /// Spheres: test points drawn (1000); images: the first N test images.
    #[arg(long, value_name = "N", requires = "weights")]
    pub test_size: Option<usize>,
    /// Seed of the data (0), as in `odeflow train`.
    #[arg(long, value_name = "S", requires = "weights")]
    pub data_seed: Option<u64>,
    /// The method --weights was trained with.
    #[arg(long, value_name = "NAME", requires = "weights")]
    pub train_method: Option<String>,
    /// Its steps on [0, 1].
    #[arg(long, value_name = "N", conflicts_with_all = ["train_step_size", "train_tol"])]
    pub train_steps: Option<usize>,
    /// Its step size.
    #[arg(long, value_name = "H", value_parser = positive, conflicts_with = "train_tol")]
    pub train_step_size: Option<f64>,
    /// Its tolerance (rtol = atol).
    #[arg(long, value_name = "T", value_parser = positive)]
    pub train_tol: Option<f64>,
    /// Scalar type of the evaluation: f32 or f64 (default f64).
    #[arg(long, value_name = "f32|f64", requires = "weights")]
    pub dtype: Option<String>,
    /// Folder for the files a run folder would get (eval.json, check.json, plots).
    #[arg(long, value_name = "DIR", requires = "weights")]
    pub out_dir: Option<PathBuf>,
}

impl ExternalArgs {
    /// The model and the output folder, when --weights is given.
    pub fn resolve(&self) -> Result<Option<(ExternalModel, PathBuf)>, CliError> {
        let Some(weights) = &self.weights else {
            return Ok(None);
        };
        let need = |v: &Option<String>, flag: &str| {
            v.clone()
                .ok_or_else(|| CliError::input(format!("--weights needs {flag}")))
        };
        let arch: Architecture = need(&self.model, "--model")?.parse().map_err(
            |e: odeflow::weights::WeightsError| CliError::input(format!("--model: {e}")),
        )?;
        let method = need(&self.train_method, "--train-method")?;
        let train = match (self.train_steps, self.train_step_size, self.train_tol) {
            (Some(n), None, None) => SolverSpec::fixed(&method, n)?,
            (None, Some(h), None) => SolverSpec::step_size(&method, h)?,
            (None, None, Some(t)) => SolverSpec::adaptive(&method, t)?,
            _ => {
                return Err(CliError::input(
                    "--weights needs the training stepping: one of --train-steps N, --train-step-size H or --train-tol T",
                ))
            }
        };
        let dtype = self.dtype.clone().unwrap_or_else(|| "f64".into());
        if dtype != "f32" && dtype != "f64" {
            return Err(CliError::input(format!(
                "--dtype '{dtype}' is not supported: use f32 or f64"
            )));
        }
        let data = DataConfig {
            name: need(&self.dataset, "--dataset")?,
            dir: self.data_dir.clone(),
            train_size: None,
            test_size: self.test_size,
            data_seed: self.data_seed.unwrap_or(0),
        };
        let out_dir = self
            .out_dir
            .clone()
            .ok_or_else(|| CliError::input("--weights needs --out-dir DIR for its files"))?;
        Ok(Some((
            ExternalModel {
                weights: weights.clone(),
                arch,
                data,
                train,
                dtype,
            },
            out_dir,
        )))
    }
}
