//! Checkpoints: everything a run needs to continue bit-for-bit, written atomically.
//!
//! A checkpoint is a [safetensors](https://huggingface.co/docs/safetensors) file
//! (`checkpoint.safetensors`), readable by `safetensors.numpy.load_file` or
//! `safetensors.torch.load_file`:
//!
//! | tensor | content |
//! |--------|---------|
//! | `params` | the flat parameter vector |
//! | `optimizer.m` | Adam's first moment, or SGD's momentum buffer |
//! | `optimizer.v` | Adam's second moment (length 0 for SGD) |
//!
//! all one-dimensional and in the run's dtype (`F32` or `F64`), so the bits of every value
//! come back exactly. Everything else is string metadata (`__metadata__`):
//!
//! | key | content |
//! |-----|---------|
//! | `format`, `version` | `odeflow-checkpoint`, `2` |
//! | `iteration` | iterations completed |
//! | `dtype` | `f32` or `f64` |
//! | `optimizer.t` | the optimizer's step count (Adam's bias correction depends on it) |
//! | `hook` | the training hook's state (e.g. the adapted step size) as JSON |
//! | `meta` | a description of the model, as JSON, for humans and tools |
//! | `checksum` | `sha256:` and the SHA-256 of everything above, hex |
//!
//! The checksum covers every metadata entry but itself and every tensor (name, dtype, shape
//! and raw bytes), each length-prefixed so that no two contents hash the same stream; an
//! edited or torn file is refused. Metadata keys are written in sorted order
//! ([`crate::weights::TensorFile`]), so the same state always gives the same bytes.
//!
//! The file is written to a temporary sibling, synced and renamed over the old one
//! ([`crate::fsutil::write_atomic`]), so a run killed at any moment leaves either the
//! previous or the new checkpoint, never a torn one. Loading a missing, truncated, edited or
//! foreign file is a [`CheckpointError`] that names the file and what is wrong.
//!
//! Older versions wrote `checkpoint.json` (version 1, JSON with a CRC-32); [`Checkpoint::load`]
//! still reads it, so such runs resume.

mod legacy;
#[cfg(test)]
mod tests;

#[cfg(test)]
pub(crate) use legacy::to_json as legacy_json;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};
use sha2::{Digest, Sha256};
use thiserror::Error;

use super::optim::OptimizerState;
use crate::weights::{FileDtype, Tensor, TensorFile};

/// Identifies the file format (the `format` metadata entry).
pub const CHECKPOINT_FORMAT: &str = "odeflow-checkpoint";
/// Version of the format: 2 is safetensors; 1 was the JSON of older versions, still read.
pub const CHECKPOINT_VERSION: u32 = 2;

/// The tensor of the flat parameters.
pub const PARAMS_TENSOR: &str = "params";
/// The tensor of the optimizer's first moment (Adam) or momentum buffer (SGD).
pub const MOMENT1_TENSOR: &str = "optimizer.m";
/// The tensor of Adam's second moment (empty for SGD).
pub const MOMENT2_TENSOR: &str = "optimizer.v";
/// The metadata entry that holds the checksum.
const CHECKSUM_KEY: &str = "checksum";

/// What a checkpoint holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    /// The format version it was read from ([`CHECKPOINT_VERSION`] for a new one, 1 for a
    /// legacy `checkpoint.json`).
    pub version: u32,
    /// Iterations completed.
    pub iteration: u64,
    /// `"f32"` or `"f64"`.
    pub dtype: String,
    /// Flat parameters (each an exact `f32` when `dtype` is `"f32"`).
    pub params: Vec<f64>,
    /// Optimizer state.
    pub optimizer: OptimizerState,
    /// State of training hooks (e.g. the adapted step size), free-form.
    pub hook: serde_json::Value,
    /// Free-form metadata (model description, config) for humans and tools.
    pub meta: serde_json::Value,
}

/// A checkpoint that cannot be written or read.
#[derive(Debug, Error)]
pub enum CheckpointError {
    /// Filesystem error.
    #[error("checkpoint {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Not a readable checkpoint (e.g. truncated, or a tensor or entry is missing or of the
    /// wrong type).
    #[error("checkpoint {path} is corrupt or truncated: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A readable safetensors file that is not an odeflow checkpoint (e.g. exported weights).
    #[error("checkpoint {path} is not an odeflow checkpoint: {reason}")]
    Foreign {
        /// The file.
        path: PathBuf,
        /// What it lacks.
        reason: String,
    },
    /// The checksum does not match the content.
    #[error(
        "checkpoint {path} is corrupt: checksum {found} does not match its content ({expected})"
    )]
    Checksum {
        /// The file.
        path: PathBuf,
        /// Stored checksum.
        found: String,
        /// Checksum of the content.
        expected: String,
    },
    /// Valid, but for another model or type.
    #[error("checkpoint {path} does not fit this run: {reason}")]
    Mismatch {
        /// The file.
        path: PathBuf,
        /// What differs.
        reason: String,
    },
}

/// The SHA-256 of a file's content in the canonical stream described in the module docs.
struct ContentHash(Sha256);

impl ContentHash {
    fn new() -> Self {
        Self(Sha256::new())
    }
    fn field(&mut self, bytes: &[u8]) {
        self.0.update((bytes.len() as u64).to_le_bytes());
        self.0.update(bytes);
    }
    fn metadata(&mut self, meta: &BTreeMap<String, String>) {
        for (k, v) in meta.iter().filter(|(k, _)| *k != CHECKSUM_KEY) {
            self.field(k.as_bytes());
            self.field(v.as_bytes());
        }
    }
    fn tensor(&mut self, name: &str, dtype: &str, shape: &[usize], data: &[u8]) {
        self.field(name.as_bytes());
        self.field(dtype.as_bytes());
        self.0.update((shape.len() as u64).to_le_bytes());
        for d in shape {
            self.0.update((*d as u64).to_le_bytes());
        }
        self.field(data);
    }
    fn finish(self) -> String {
        let digest = self.0.finalize();
        let mut s = String::from("sha256:");
        for b in digest.iter() {
            s.push_str(&format!("{b:02x}"));
        }
        s
    }
}

/// `values` as little-endian bytes of `dtype`.
fn encode(values: &[f64], dtype: FileDtype) -> Vec<u8> {
    match dtype {
        FileDtype::F64 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        FileDtype::F32 => values
            .iter()
            .flat_map(|v| (*v as f32).to_le_bytes())
            .collect(),
    }
}

/// The safetensors name of `dtype` (`"F32"`, `"F64"`), as [`Dtype`] displays it.
fn st_name(dtype: FileDtype) -> String {
    match dtype {
        FileDtype::F32 => Dtype::F32,
        FileDtype::F64 => Dtype::F64,
    }
    .to_string()
}

impl Checkpoint {
    /// A checkpoint of the current format.
    pub fn new(
        iteration: u64,
        dtype: &str,
        params: Vec<f64>,
        optimizer: OptimizerState,
        hook: serde_json::Value,
        meta: serde_json::Value,
    ) -> Self {
        Checkpoint {
            version: CHECKPOINT_VERSION,
            iteration,
            dtype: dtype.into(),
            params,
            optimizer,
            hook,
            meta,
        }
    }

    /// The safetensors encoding (deterministic: the same checkpoint gives the same bytes);
    /// `path` names the destination in errors.
    pub fn to_bytes(&self, path: &Path) -> Result<Vec<u8>, CheckpointError> {
        let invalid = |reason: String| CheckpointError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, reason),
        };
        let dtype = FileDtype::from_name(&self.dtype).map_err(|e| invalid(e.to_string()))?;
        let mut file = TensorFile::new(dtype);
        for (name, values) in self.tensors() {
            file.tensors.insert(
                name.into(),
                Tensor::new(vec![values.len()], values.to_vec()),
            );
        }
        let m = &mut file.metadata;
        m.insert("format".into(), CHECKPOINT_FORMAT.into());
        m.insert("version".into(), CHECKPOINT_VERSION.to_string());
        m.insert("iteration".into(), self.iteration.to_string());
        m.insert("dtype".into(), dtype.name().into());
        m.insert("optimizer.t".into(), self.optimizer.t.to_string());
        m.insert("hook".into(), self.hook.to_string());
        m.insert("meta".into(), self.meta.to_string());
        let mut hash = ContentHash::new();
        hash.metadata(&file.metadata);
        for (name, t) in &file.tensors {
            hash.tensor(name, &st_name(dtype), &t.shape, &encode(&t.data, dtype));
        }
        file.metadata.insert(CHECKSUM_KEY.into(), hash.finish());
        file.to_bytes().map_err(|e| invalid(e.to_string()))
    }

    /// The tensors by name, in the file's (sorted) order.
    fn tensors(&self) -> [(&'static str, &[f64]); 3] {
        [
            (MOMENT1_TENSOR, &self.optimizer.m),
            (MOMENT2_TENSOR, &self.optimizer.v),
            (PARAMS_TENSOR, &self.params),
        ]
    }

    /// Writes `path` atomically (temporary file, fsync, rename) as safetensors.
    pub fn save(&self, path: &Path) -> Result<(), CheckpointError> {
        let bytes = self.to_bytes(path)?;
        crate::fsutil::write_atomic(path, &bytes).map_err(|source| CheckpointError::Io {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Reads and verifies a checkpoint: safetensors, or the JSON of older versions when the
    /// file name ends in `.json`.
    pub fn load(path: &Path) -> Result<Self, CheckpointError> {
        let bytes = fs::read(path).map_err(|source| CheckpointError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        if path.extension().is_some_and(|e| e == "json") {
            legacy::parse(&bytes, path)
        } else {
            Self::from_bytes(&bytes, path)
        }
    }

    /// Parses and verifies the safetensors encoding; `path` names the source in errors.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self, CheckpointError> {
        let corrupt = |reason: String| CheckpointError::Corrupt {
            path: path.to_path_buf(),
            reason,
        };
        let foreign = |reason: String| CheckpointError::Foreign {
            path: path.to_path_buf(),
            reason,
        };
        let st = SafeTensors::deserialize(bytes)
            .map_err(|e| corrupt(format!("not a readable safetensors file ({e})")))?;
        let (_, header) = SafeTensors::read_metadata(bytes)
            .map_err(|e| corrupt(format!("unreadable header ({e})")))?;
        let meta: BTreeMap<String, String> = header
            .metadata()
            .as_ref()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        match meta.get("format") {
            Some(f) if f == CHECKPOINT_FORMAT => {}
            Some(f) => return Err(foreign(format!("its format is {f:?}, not {CHECKPOINT_FORMAT:?}"))),
            None => {
                return Err(foreign(format!(
                    "it has no \"format\": {CHECKPOINT_FORMAT:?} metadata (exported weights are read with --weights, not resumed)"
                )))
            }
        }
        let version = meta.get("version").map(String::as_str).unwrap_or("none");
        if version != CHECKPOINT_VERSION.to_string() {
            return Err(foreign(format!(
                "format version {version} is not {CHECKPOINT_VERSION} (written by another odeflow version?)"
            )));
        }
        let found = meta
            .get(CHECKSUM_KEY)
            .ok_or_else(|| corrupt("the metadata entry \"checksum\" is missing".into()))?;
        let mut names = st.names();
        names.sort_unstable();
        let mut hash = ContentHash::new();
        hash.metadata(&meta);
        for name in &names {
            let v = st.tensor(name).map_err(|e| corrupt(e.to_string()))?;
            hash.tensor(name, &v.dtype().to_string(), v.shape(), v.data());
        }
        let expected = hash.finish();
        if *found != expected {
            return Err(CheckpointError::Checksum {
                path: path.to_path_buf(),
                found: found.clone(),
                expected,
            });
        }

        // The content is as written; anything wrong below is a file odeflow did not write.
        let entry = |key: &str| {
            meta.get(key)
                .ok_or_else(|| corrupt(format!("the metadata entry {key:?} is missing")))
        };
        let number = |key: &str| -> Result<u64, CheckpointError> {
            let s = entry(key)?;
            s.parse()
                .map_err(|_| corrupt(format!("the metadata entry {key:?} = {s:?} is not a count")))
        };
        let json = |key: &str| -> Result<serde_json::Value, CheckpointError> {
            serde_json::from_str(entry(key)?)
                .map_err(|e| corrupt(format!("the metadata entry {key:?} is not JSON ({e})")))
        };
        let dtype_name = entry("dtype")?;
        let dtype = FileDtype::from_name(dtype_name)
            .map_err(|_| corrupt(format!("dtype {dtype_name:?} is neither f32 nor f64")))?;
        let want = match dtype {
            FileDtype::F32 => Dtype::F32,
            FileDtype::F64 => Dtype::F64,
        };
        if let Some(extra) = names
            .iter()
            .find(|n| ![PARAMS_TENSOR, MOMENT1_TENSOR, MOMENT2_TENSOR].contains(*n))
        {
            return Err(corrupt(format!("unexpected tensor `{extra}`")));
        }
        let vector = |name: &str| -> Result<Vec<f64>, CheckpointError> {
            let v = st
                .tensor(name)
                .map_err(|_| corrupt(format!("missing tensor `{name}`")))?;
            if v.dtype() != want {
                return Err(corrupt(format!(
                    "tensor `{name}` is {}, but the checkpoint's dtype is {dtype_name}",
                    v.dtype()
                )));
            }
            if v.shape().len() != 1 {
                return Err(corrupt(format!(
                    "tensor `{name}` has shape {:?}; a checkpoint holds vectors",
                    v.shape()
                )));
            }
            Ok(match dtype {
                FileDtype::F64 => v
                    .data()
                    .chunks_exact(8)
                    .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
                    .collect(),
                FileDtype::F32 => v
                    .data()
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")) as f64)
                    .collect(),
            })
        };
        Ok(Checkpoint {
            version: CHECKPOINT_VERSION,
            iteration: number("iteration")?,
            dtype: dtype.name().into(),
            params: vector(PARAMS_TENSOR)?,
            optimizer: OptimizerState {
                t: number("optimizer.t")?,
                m: vector(MOMENT1_TENSOR)?,
                v: vector(MOMENT2_TENSOR)?,
            },
            hook: json("hook")?,
            meta: json("meta")?,
        })
    }
}

/// Writes `bytes` to `path` atomically: a sibling temporary file is written, synced and
/// renamed over `path`; on failure it is removed. Parent folders are created. The same as
/// [`crate::fsutil::write_atomic`], kept here for existing callers.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    crate::fsutil::write_atomic(path, bytes)
}
