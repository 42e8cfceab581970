//! CIFAR-10 in its binary format.
//!
//! **Format** (Krizhevsky 2009, the "binary version"): a file is a sequence of records of
//! 3 073 bytes: one label byte (0–9), then 3 072 pixel bytes: the 32×32 red plane, then the
//! green, then the blue, each row-major. That is exactly odeflow's `(C, H, W)` order, so a
//! record's pixels become one row of the batch unchanged (scaled by `1/255`). Files may be
//! gzip-compressed (recognised by content; a real CIFAR file cannot start with the gzip
//! magic, whose first byte 0x1f would be a label of 31).
//!
//! **Folder** ([`load_cifar10`]): the folder the user names, or its subfolder
//! `cifar-10-batches-bin` (as the archive unpacks), holding `data_batch_1.bin` …
//! `data_batch_5.bin` and `test_batch.bin`. A subset is accepted:
//! * some or all training batches and `test_batch.bin`: training set = the training batches
//!   present, concatenated in order; test set = `test_batch.bin`;
//! * only `test_batch.bin`, or only training batches: a seeded split of what is there, with
//!   [`Cifar10Options::holdout`] samples (default 2 000) in the test part;
//! * none of them: [`DataError::MissingFiles`] listing the names looked for.
//!
//! Samples have shape `(3, 32, 32)`, pixels in `[0, 1]`. Normalisation
//! ([`super::ChannelNorm::cifar10`]) and augmentation ([`super::CropFlip`]) are separate
//! steps, off by default.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::dataset::{Dataset, TrainTest};
use super::error::DataError;
use super::idx::find_file;
use super::read_file_maybe_gz;
use crate::real::Real;
use crate::state::Batch;

/// Bytes of one record: a label and 3×32×32 pixels.
pub const CIFAR_RECORD_BYTES: usize = 1 + 3 * 32 * 32;

/// Shape of one sample.
pub const CIFAR_SHAPE: [usize; 3] = [3, 32, 32];

/// The ten class names, by label.
pub const CIFAR10_CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// Parses the records of one CIFAR-10 file (already decompressed); `path` names it in errors.
pub fn parse_cifar_records<T: Real>(bytes: &[u8], path: &Path) -> Result<Dataset<T>, DataError> {
    if bytes.is_empty() {
        return Err(DataError::format(
            path,
            "empty file (expected CIFAR-10 records of 3073 bytes)",
        ));
    }
    if !bytes.len().is_multiple_of(CIFAR_RECORD_BYTES) {
        let full = bytes.len() / CIFAR_RECORD_BYTES;
        return Err(DataError::format(
            path,
            format!(
                "size {} bytes is not a multiple of the CIFAR-10 record size {CIFAR_RECORD_BYTES} \
                 ({full} whole records and {} bytes left over): truncated, or not a CIFAR-10 \
                 binary batch",
                bytes.len(),
                bytes.len() - full * CIFAR_RECORD_BYTES
            ),
        ));
    }
    let n = bytes.len() / CIFAR_RECORD_BYTES;
    let cols = CIFAR_RECORD_BYTES - 1;
    let unit = super::byte_to_unit::<T>();
    let mut data = Vec::with_capacity(n * cols);
    let mut labels = Vec::with_capacity(n);
    for (i, rec) in bytes.chunks_exact(CIFAR_RECORD_BYTES).enumerate() {
        let label = rec[0] as usize;
        if label >= 10 {
            return Err(DataError::LabelOutOfRange {
                path: path.into(),
                index: i,
                label,
                num_classes: 10,
            });
        }
        labels.push(label);
        data.extend(rec[1..].iter().map(|&b| unit[b as usize]));
    }
    let inputs = Batch::from_vec(n, cols, data)?;
    Ok(Dataset::new(inputs, labels, CIFAR_SHAPE.to_vec(), 10)?)
}

/// Reads one CIFAR-10 binary file.
pub fn read_cifar_batch<T: Real>(path: &Path) -> Result<Dataset<T>, DataError> {
    parse_cifar_records(&read_file_maybe_gz(path)?, path)
}

/// Settings of [`load_cifar10`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Cifar10Options {
    /// When only training or only test files are present: samples in the test part of the
    /// seeded split (2 000).
    pub holdout: usize,
    /// Seed of that split (0).
    pub seed: u64,
}

impl Default for Cifar10Options {
    fn default() -> Self {
        Self {
            holdout: 2000,
            seed: 0,
        }
    }
}

/// The result of [`load_cifar10`].
#[derive(Debug, Clone)]
pub struct Cifar10<T> {
    /// Training and test sets.
    pub data: TrainTest<Dataset<T>>,
    /// Training files read, in order.
    pub train_files: Vec<PathBuf>,
    /// The test file, if present.
    pub test_file: Option<PathBuf>,
    /// True when the two parts are a seeded split of the files present (see module docs).
    pub split: bool,
}

/// Concatenates data sets of the same sample shape.
fn concat<T: Real>(parts: Vec<Dataset<T>>) -> Result<Dataset<T>, DataError> {
    let n: usize = parts.iter().map(Dataset::len).sum();
    let cols = CIFAR_RECORD_BYTES - 1;
    let mut data = Vec::with_capacity(n * cols);
    let mut labels = Vec::with_capacity(n);
    for p in parts {
        let (inputs, l, _, _) = p.into_parts();
        data.extend(inputs.into_vec());
        labels.extend(l);
    }
    Ok(Dataset::new(
        Batch::from_vec(n, cols, data)?,
        labels,
        CIFAR_SHAPE.to_vec(),
        10,
    )?)
}

/// Loads CIFAR-10 from `dir` (see the module docs for the files accepted).
pub fn load_cifar10<T: Real>(
    dir: impl AsRef<Path>,
    opts: &Cifar10Options,
) -> Result<Cifar10<T>, DataError> {
    let dir = dir.as_ref();
    let nested = dir.join("cifar-10-batches-bin");
    let dir = if nested.is_dir() {
        nested
    } else {
        dir.to_path_buf()
    };
    let train_names: Vec<String> = (1..=5).map(|i| format!("data_batch_{i}.bin")).collect();
    let test_name = "test_batch.bin".to_string();
    let train_files: Vec<PathBuf> = train_names
        .iter()
        .filter_map(|n| find_file(&dir, std::slice::from_ref(n)))
        .collect();
    let test_file = find_file(&dir, std::slice::from_ref(&test_name));
    if train_files.is_empty() && test_file.is_none() {
        let mut looked_for = train_names;
        looked_for.push(test_name);
        return Err(DataError::MissingFiles {
            what: "CIFAR-10 binary batches".into(),
            dir,
            looked_for,
        });
    }
    let train = if train_files.is_empty() {
        None
    } else {
        let parts = train_files
            .iter()
            .map(|p| read_cifar_batch::<T>(p))
            .collect::<Result<Vec<_>, _>>()?;
        Some(concat(parts)?)
    };
    let test = test_file
        .as_deref()
        .map(read_cifar_batch::<T>)
        .transpose()?;
    let (data, split) = match (train, test) {
        (Some(train), Some(test)) => (TrainTest { train, test }, false),
        (train, test) => {
            // Exactly one part is present (the case of none returned above).
            let only = train
                .or(test)
                .ok_or_else(|| DataError::format(&dir, "no CIFAR-10 data read"))?;
            (only.split(opts.holdout, opts.seed)?, true)
        }
    };
    Ok(Cifar10 {
        data,
        train_files,
        test_file,
        split,
    })
}
