//! Checkpoints: everything a run needs to continue bit-for-bit, written atomically.
//!
//! A checkpoint is one JSON document (parameters and optimizer moments as shortest
//! round-trip decimals, so `f32` and `f64` values come back exactly) with a CRC-32 of the
//! numeric payload. It is written to a temporary sibling, flushed to disk and renamed over
//! the old file ([`crate::fsutil::write_atomic`]), so a run killed at any moment leaves either the previous or the new checkpoint,
//! never a torn one. Loading a truncated or edited file is a [`CheckpointError`] that names
//! the file and what is wrong.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::optim::OptimizerState;

/// Identifies the file format.
pub const CHECKPOINT_FORMAT: &str = "odeflow-checkpoint";
/// Version of the format.
pub const CHECKPOINT_VERSION: u32 = 1;

/// What a checkpoint holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Always [`CHECKPOINT_FORMAT`].
    pub format: String,
    /// Format version.
    pub version: u32,
    /// Iterations completed.
    pub iteration: u64,
    /// `"f32"` or `"f64"`.
    pub dtype: String,
    /// Flat parameters.
    pub params: Vec<f64>,
    /// Optimizer state.
    pub optimizer: OptimizerState,
    /// State of training hooks (e.g. the adapted step size), free-form.
    #[serde(default)]
    pub hook: serde_json::Value,
    /// Free-form metadata (model description, config) for humans and tools.
    #[serde(default)]
    pub meta: serde_json::Value,
    /// CRC-32 of the numeric payload.
    pub checksum: u32,
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
    /// Not valid JSON of the checkpoint format (e.g. truncated).
    #[error("checkpoint {path} is corrupt or truncated: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        reason: String,
    },
    /// The checksum does not match the content.
    #[error("checkpoint {path} is corrupt: checksum {found:#010x} does not match its content ({expected:#010x})")]
    Checksum {
        /// The file.
        path: PathBuf,
        /// Stored checksum.
        found: u32,
        /// Checksum of the content.
        expected: u32,
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

impl Checkpoint {
    /// A checkpoint with its checksum computed.
    pub fn new(
        iteration: u64,
        dtype: &str,
        params: Vec<f64>,
        optimizer: OptimizerState,
        hook: serde_json::Value,
        meta: serde_json::Value,
    ) -> Self {
        let mut c = Checkpoint {
            format: CHECKPOINT_FORMAT.into(),
            version: CHECKPOINT_VERSION,
            iteration,
            dtype: dtype.into(),
            params,
            optimizer,
            hook,
            meta,
            checksum: 0,
        };
        c.checksum = c.compute_checksum();
        c
    }

    fn compute_checksum(&self) -> u32 {
        let mut h = crc32fast::Hasher::new();
        h.update(&self.iteration.to_le_bytes());
        h.update(self.dtype.as_bytes());
        for v in self
            .params
            .iter()
            .chain(&self.optimizer.m)
            .chain(&self.optimizer.v)
        {
            h.update(&v.to_le_bytes());
        }
        h.update(&self.optimizer.t.to_le_bytes());
        h.update(self.hook.to_string().as_bytes());
        h.finalize()
    }

    /// Writes atomically (temporary file, fsync, rename).
    pub fn save(&self, path: &Path) -> Result<(), CheckpointError> {
        let io = |source| CheckpointError::Io {
            path: path.to_path_buf(),
            source,
        };
        let text = serde_json::to_vec(self).map_err(|e| CheckpointError::Corrupt {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        write_atomic(path, &text).map_err(io)
    }

    /// Reads and verifies a checkpoint.
    pub fn load(path: &Path) -> Result<Self, CheckpointError> {
        let bytes = fs::read(path).map_err(|source| CheckpointError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let c: Checkpoint =
            serde_json::from_slice(&bytes).map_err(|e| CheckpointError::Corrupt {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
        if c.format != CHECKPOINT_FORMAT || c.version != CHECKPOINT_VERSION {
            return Err(CheckpointError::Corrupt {
                path: path.to_path_buf(),
                reason: format!("format {:?} version {} is not {CHECKPOINT_FORMAT} version {CHECKPOINT_VERSION}", c.format, c.version),
            });
        }
        let expected = c.compute_checksum();
        if expected != c.checksum {
            return Err(CheckpointError::Checksum {
                path: path.to_path_buf(),
                found: c.checksum,
                expected,
            });
        }
        Ok(c)
    }
}

/// Writes `bytes` to `path` atomically: a sibling temporary file is written, synced and
/// renamed over `path`; on failure it is removed. Parent folders are created. The same as
/// [`crate::fsutil::write_atomic`], kept here for existing callers.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    crate::fsutil::write_atomic(path, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Checkpoint {
        let opt = OptimizerState {
            t: 3,
            m: vec![0.1, -0.2],
            v: vec![1e-8, 3.0],
        };
        Checkpoint::new(
            42,
            "f32",
            vec![0.1f32 as f64, 1.0 / 3.0],
            opt,
            serde_json::json!({"h": 0.25}),
            serde_json::Value::Null,
        )
    }

    #[test]
    fn round_trip_is_exact() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/ckpt.json");
        let c = sample();
        c.save(&p).unwrap();
        assert_eq!(Checkpoint::load(&p).unwrap(), c);
        // No temporary file is left beside it.
        let names: Vec<_> = fs::read_dir(dir.path().join("sub"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("ckpt.json")]);
    }

    #[test]
    fn truncated_and_edited_files_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ckpt.json");
        sample().save(&p).unwrap();
        let text = fs::read_to_string(&p).unwrap();
        fs::write(&p, &text[..text.len() / 2]).unwrap();
        let e = Checkpoint::load(&p).unwrap_err().to_string();
        assert!(
            e.contains("corrupt or truncated") && e.contains("ckpt.json"),
            "{e}"
        );
        fs::write(&p, text.replace("\"iteration\":42", "\"iteration\":43")).unwrap();
        let e = Checkpoint::load(&p).unwrap_err().to_string();
        assert!(e.contains("checksum"), "{e}");
        let e = Checkpoint::load(&dir.path().join("missing.json"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing.json"), "{e}");
    }
}
