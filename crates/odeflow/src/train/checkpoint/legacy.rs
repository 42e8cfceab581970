//! Reading the checkpoints of odeflow versions before the safetensors format: one JSON
//! document `checkpoint.json` (format version 1) with parameters and optimizer moments as
//! shortest round-trip decimals (so `f32` and `f64` values come back exactly) and a CRC-32
//! of the numeric payload. Such a run still resumes; its next checkpoint is written as
//! safetensors and the JSON file is then removed (see [`super::super::Trainer`]).

use std::path::Path;

use serde::Deserialize;

use super::{Checkpoint, CheckpointError, CHECKPOINT_FORMAT};
use crate::train::optim::OptimizerState;

/// The version number of the JSON format.
pub(super) const LEGACY_VERSION: u32 = 1;

/// The JSON document as older versions wrote it.
#[derive(Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
struct LegacyCheckpoint {
    format: String,
    version: u32,
    iteration: u64,
    dtype: String,
    params: Vec<f64>,
    optimizer: OptimizerState,
    #[serde(default)]
    hook: serde_json::Value,
    #[serde(default)]
    meta: serde_json::Value,
    checksum: u32,
}

impl LegacyCheckpoint {
    /// CRC-32 over the iteration, dtype, numbers (little-endian `f64`), optimizer step count
    /// and the hook state's JSON text, as version 1 computed it.
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
}

/// Parses and verifies a version-1 JSON checkpoint; `path` names it in errors.
pub(super) fn parse(bytes: &[u8], path: &Path) -> Result<Checkpoint, CheckpointError> {
    let c: LegacyCheckpoint =
        serde_json::from_slice(bytes).map_err(|e| CheckpointError::Corrupt {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    if c.format != CHECKPOINT_FORMAT || c.version != LEGACY_VERSION {
        return Err(CheckpointError::Corrupt {
            path: path.to_path_buf(),
            reason: format!(
                "format {:?} version {} is not {CHECKPOINT_FORMAT} version {LEGACY_VERSION}",
                c.format, c.version
            ),
        });
    }
    let expected = c.compute_checksum();
    if expected != c.checksum {
        return Err(CheckpointError::Checksum {
            path: path.to_path_buf(),
            found: format!("crc32:{:08x}", c.checksum),
            expected: format!("crc32:{expected:08x}"),
        });
    }
    Ok(Checkpoint {
        version: LEGACY_VERSION,
        iteration: c.iteration,
        dtype: c.dtype,
        params: c.params,
        optimizer: c.optimizer,
        hook: c.hook,
        meta: c.meta,
    })
}

/// The version-1 JSON encoding of `c`, for tests of the upgrade path.
#[cfg(test)]
pub(crate) fn to_json(c: &Checkpoint) -> Vec<u8> {
    let mut l = LegacyCheckpoint {
        format: CHECKPOINT_FORMAT.into(),
        version: LEGACY_VERSION,
        iteration: c.iteration,
        dtype: c.dtype.clone(),
        params: c.params.clone(),
        optimizer: c.optimizer.clone(),
        hook: c.hook.clone(),
        meta: c.meta.clone(),
        checksum: 0,
    };
    l.checksum = l.compute_checksum();
    serde_json::to_vec(&l).expect("a checkpoint serialises")
}
