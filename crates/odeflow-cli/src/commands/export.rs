//! `odeflow export`: a run's trained classifier as a safetensors file with PyTorch
//! `state_dict` names (`field.*`, `head.*`; see `odeflow::weights`).
//!
//! ```text
//! odeflow export runs/e2 --out model.safetensors
//! odeflow export runs/e2 --out model.safetensors --dtype f64
//! ```
//!
//! `--out` names the weights file here (not a JSON copy of the result); `--json` prints the
//! result (file, architecture, dtype, tensors) on stdout.

use std::path::PathBuf;

use clap::Args;
use serde::Serialize;

use odeflow::runs::model_file::{ModelFile, MODEL_FILE};
use odeflow::weights::{export_classifier, Architecture, FileDtype, TensorFile};

use crate::error::CliError;
use crate::progress::Reporter;

/// Flags of `odeflow export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The run folder (its model.json, written at the end of `odeflow train`).
    pub run: PathBuf,
    /// Tensor dtype in the file: f32 or f64 (default: the run's).
    #[arg(long, value_name = "f32|f64")]
    pub dtype: Option<String>,
}

/// One tensor of the file.
#[derive(Debug, Serialize)]
pub struct TensorInfo {
    /// PyTorch key.
    pub name: String,
    /// Shape.
    pub shape: Vec<usize>,
}

/// The result of `odeflow export`.
#[derive(Debug, Serialize)]
pub struct ExportReport {
    /// The run folder.
    pub run: PathBuf,
    /// The weights file written.
    pub file: PathBuf,
    /// Architecture name (what `--model` takes).
    pub model: String,
    /// Tensor dtype.
    pub dtype: String,
    /// Parameters written.
    pub num_params: usize,
    /// The tensors, in key order.
    pub tensors: Vec<TensorInfo>,
}

/// The destination the global `--out` names (required by `export` and `predict`), and a
/// reporter that prints the JSON result without also writing it there.
pub fn destination(reporter: &Reporter, example: &str) -> Result<(PathBuf, Reporter), CliError> {
    let dest = reporter.out().map(PathBuf::from).ok_or_else(|| {
        CliError::input(format!(
            "no output file: give it with --out (e.g. --out {example})"
        ))
    })?;
    let r = reporter.clone().with_output(reporter.is_json(), None);
    Ok((dest, r))
}

fn file_of(m: &ModelFile, dtype: FileDtype) -> Result<TensorFile, CliError> {
    let mut file = match m.dtype.as_str() {
        "f32" => export_classifier(&m.build::<f32>()?, &m.spec, dtype),
        _ => export_classifier(&m.build::<f64>()?, &m.spec, dtype),
    }
    .map_err(|e| CliError::input(e.to_string()))?;
    let meta = [
        ("dataset", m.dataset.clone().unwrap_or_default()),
        ("sample_shape", format!("{:?}", m.sample_shape)),
        ("train_solver", m.train.slug()),
        ("fingerprint", m.fingerprint.clone()),
    ];
    for (k, v) in meta {
        file.metadata.insert(k.into(), v);
    }
    Ok(file)
}

/// Runs `odeflow export`.
pub fn run(args: ExportArgs, reporter: &Reporter) -> Result<(), CliError> {
    let (dest, reporter) = destination(reporter, "model.safetensors")?;
    let model = ModelFile::load(&args.run.join(MODEL_FILE))?;
    let dtype = args.dtype.as_deref().unwrap_or(model.dtype.as_str());
    let dtype =
        FileDtype::from_name(dtype).map_err(|e| CliError::input(format!("--dtype: {e}")))?;
    let file = file_of(&model, dtype)?;
    file.save(&dest)
        .map_err(|e| CliError::runtime(format!("cannot write the weights: {e}")))?;
    let arch =
        Architecture::of_spec(&model.spec.field).map_err(|e| CliError::input(e.to_string()))?;
    let report = ExportReport {
        run: args.run,
        file: dest,
        model: arch.name(),
        dtype: dtype.name().into(),
        num_params: model.params.len(),
        tensors: file
            .tensors
            .iter()
            .map(|(k, t)| TensorInfo {
                name: k.clone(),
                shape: t.shape.clone(),
            })
            .collect(),
    };
    reporter.result(&report, || {
        format!(
            "wrote {} ({} model, {} tensors, {} parameters, {})\n",
            report.file.display(),
            report.model,
            report.tensors.len(),
            report.num_params,
            report.dtype
        )
    })
}
