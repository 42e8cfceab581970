//! Data sets in standard formats, every random choice seeded.
//!
//! * [`Dataset`] (labelled samples), [`PairDataset`] (regression pairs), [`TrainTest`],
//!   seeded splits and mini-batch iterators that reuse their buffers — [`dataset`].
//! * Concentric spheres in any dimension (Ott et al. 2021) — [`mod@spheres`].
//! * MNIST from IDX files, raw or gzip, from any folder — [`idx`].
//! * CIFAR-10 binary batches — [`cifar`]; per-channel normalisation and the standard
//!   crop/flip augmentation — [`transforms`].
//! * Pairs `(x, φ_T(x))` of the exact flow of a built-in system, computed with a
//!   high-accuracy reference integrator (Zhu et al. 2022) — [`trajectories`].
//! * NPY and CSV import/export of batches and pair data — [`npy`], [`csv`].
//! * Downloading MNIST, Fashion-MNIST and CIFAR-10 with built-in SHA-256 checksums —
//!   [`download`]; where data sets live on disk (one lookup rule) — [`store`].
//!
//! Errors are [`DataError`]s; those about a file name the file and what is wrong with it.

pub mod cifar;
pub mod csv;
pub mod dataset;
pub mod download;
pub mod error;
pub mod idx;
pub mod npy;
pub mod spheres;
pub mod store;
pub mod trajectories;
pub mod transforms;

#[cfg(test)]
mod tests;

pub use cifar::{load_cifar10, parse_cifar_records, read_cifar_batch, Cifar10, Cifar10Options};
pub use csv::{read_csv, read_pairs_csv, write_csv, write_pairs_csv};
pub use dataset::{
    derive_seed, seeded_rng, split_indices, BatchOrder, Dataset, LabelledBatch, MiniBatches,
    PairBatch, PairBatches, PairDataset, TrainTest,
};
pub use error::DataError;
pub use idx::{
    load_mnist, parse_idx, read_idx, read_idx_pair, IdxArray, Mnist, MnistOptions, MnistSource,
};
pub use npy::{read_npy, read_pairs_npy, write_npy, write_pairs_npy};
pub use spheres::{shell_counts, spheres, SpheresConfig};
pub use trajectories::{
    generate_pairs, reference_flow, Sampling, TrajectoryConfig, TrajectoryData,
};
pub use transforms::{ChannelNorm, CropFlip};

use std::io::Read;
use std::path::Path;

/// `b / 255` for every byte value `b`, correctly rounded in `T`.
pub(crate) fn byte_to_unit<T: crate::real::Real>() -> [T; 256] {
    std::array::from_fn(|b| T::of(b as f64 / 255.0))
}

/// The memory budget ([`crate::budget::Budget::from_env`]: `ODEFLOW_MEMORY_BUDGET`, or
/// three quarters of the machine's memory); a malformed variable is an error about `path`.
pub(crate) fn memory_limit(path: &Path) -> Result<u64, DataError> {
    crate::budget::Budget::from_env()
        .map(|b| b.memory_bytes())
        .map_err(|e| DataError::format(path, format!("cannot be read: {e}")))
}

/// The bytes of `path`, refusing a file larger than `limit` before reading it (reading it
/// would otherwise ask for its whole size at once and abort the process when that fails).
pub(crate) fn read_capped(path: &Path, limit: u64) -> Result<Vec<u8>, DataError> {
    let len = std::fs::metadata(path)
        .map_err(|e| DataError::io(path, e))?
        .len();
    if len > limit {
        return Err(DataError::format(
            path,
            format!(
                "the file is {}, over the memory budget of {} (raise it with --memory-budget or ODEFLOW_MEMORY_BUDGET)",
                crate::budget::human_bytes(len),
                crate::budget::human_bytes(limit)
            ),
        ));
    }
    std::fs::read(path).map_err(|e| DataError::io(path, e))
}

/// The contents of `path`, decompressed when it is gzip (starts with `1f 8b`). The file
/// and its decompressed contents are limited to the memory budget (`ODEFLOW_MEMORY_BUDGET`,
/// or three quarters of the machine's memory), so
/// that a file too large for memory, or a corrupt or malicious one that expands without
/// end (a "gzip bomb"), is an error rather than an allocation abort or an out-of-memory
/// kill; see [`read_file_maybe_gz_limited`].
pub fn read_file_maybe_gz(path: &Path) -> Result<Vec<u8>, DataError> {
    read_file_maybe_gz_limited(path, memory_limit(path)?)
}

/// [`read_file_maybe_gz`] with an explicit limit in bytes on the file and on its
/// decompressed contents: a larger file is refused before it is read, and a stream that
/// decompresses to more is an error naming the file and the limit, found after at most
/// `limit + 1` bytes were produced (memory grows with the data actually decompressed,
/// never with a size the file declares).
pub fn read_file_maybe_gz_limited(path: &Path, limit: u64) -> Result<Vec<u8>, DataError> {
    let raw = read_capped(path, limit)?;
    if raw.len() >= 2 && raw[0] == 0x1f && raw[1] == 0x8b {
        // A guess for the output size, never more than the limit.
        let guess = (raw.len() as u64).saturating_mul(4).min(limit) as usize;
        let mut out = Vec::with_capacity(guess);
        flate2::read::MultiGzDecoder::new(&raw[..])
            .take(limit.saturating_add(1))
            .read_to_end(&mut out)
            .map_err(|e| DataError::Gzip {
                path: path.into(),
                reason: match e.kind() {
                    std::io::ErrorKind::UnexpectedEof => "the compressed stream ends early".into(),
                    _ => e.to_string(),
                },
            })?;
        if out.len() as u64 > limit {
            return Err(DataError::Gzip {
                path: path.into(),
                reason: format!(
                    "decompresses to more than {}, over the memory budget (raise it with \
                     ODEFLOW_MEMORY_BUDGET if the file is genuine)",
                    crate::budget::human_bytes(limit)
                ),
            });
        }
        Ok(out)
    } else {
        Ok(raw)
    }
}
