//! IDX files and the MNIST loader.
//!
//! **IDX format** (LeCun et al.): a 4-byte magic number `0x00 0x00 TT NN`, where `TT` is the
//! element type (`0x08` = unsigned byte, the only type MNIST uses and the only one read here)
//! and `NN` the number of dimensions; then `NN` big-endian `u32` sizes; then the elements in
//! row-major order. MNIST images are `0x00000803` (`N × rows × cols` bytes), labels
//! `0x00000801` (`N` bytes). Files may be gzip-compressed (recognised by their content, not
//! their name).
//!
//! **MNIST folder**: [`load_mnist`] looks in the folder the user names for
//! `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte`,
//! `t10k-labels-idx1-ubyte`, each raw or with `.gz`, also under the variant names with a
//! dot (`t10k-images.idx3-ubyte`). With all four, the standard 60 000/10 000 split is used.
//! With only the two `t10k` files (as the project's shared data folder has), a seeded split
//! of the 10 000 test images serves as training and test set: by default 8 000 / 2 000
//! ([`MnistOptions::holdout`] test images, seed [`MnistOptions::seed`]). Fashion-MNIST uses
//! the same names and format and loads the same way.
//!
//! Pixels are scaled to `[0, 1]` (`u8 / 255`); samples have shape `(1, rows, cols)`
//! (`(1, 28, 28)` for MNIST); no other preprocessing is applied (see
//! [`super::ChannelNorm`] for the usual normalisation).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::dataset::{Dataset, TrainTest};
use super::error::DataError;
use super::read_file_maybe_gz;
use crate::real::Real;
use crate::state::Batch;

/// An IDX array of unsigned bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxArray {
    /// Sizes of the dimensions.
    pub dims: Vec<usize>,
    /// Elements, row-major.
    pub data: Vec<u8>,
}

/// Parses an unsigned-byte IDX array with `ndim` dimensions from `bytes` (already
/// decompressed); `path` names the source in errors.
pub fn parse_idx(bytes: &[u8], ndim: usize, path: &Path) -> Result<IdxArray, DataError> {
    let expected_magic = 0x0000_0800u32 | ndim as u32;
    let describe = |m: u32| format!("0x{m:08X}");
    let what = if ndim == 1 { "labels" } else { "images" };
    if bytes.len() < 4 {
        return Err(DataError::Truncated {
            path: path.into(),
            expected: 4 + 4 * ndim as u64,
            got: bytes.len() as u64,
        });
    }
    let magic = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    if magic != expected_magic {
        return Err(DataError::BadMagic {
            path: path.into(),
            expected: format!(
                "{} (IDX unsigned-byte {ndim}-D array: MNIST {what})",
                describe(expected_magic)
            ),
            found: describe(magic),
        });
    }
    let header = 4 + 4 * ndim;
    if bytes.len() < header {
        return Err(DataError::Truncated {
            path: path.into(),
            expected: header as u64,
            got: bytes.len() as u64,
        });
    }
    let dims: Vec<usize> = bytes[4..header]
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let count = dims
        .iter()
        .try_fold(1u64, |a, &d| a.checked_mul(d as u64))
        .ok_or_else(|| DataError::format(path, format!("dimensions {dims:?} overflow")))?;
    let expected = header as u64 + count;
    if let Some(e) = DataError::size_check(path, expected, bytes.len() as u64) {
        return Err(e);
    }
    Ok(IdxArray {
        dims,
        data: bytes[header..].to_vec(),
    })
}

/// Reads an unsigned-byte IDX file (raw or gzip) with `ndim` dimensions.
pub fn read_idx(path: &Path, ndim: usize) -> Result<IdxArray, DataError> {
    parse_idx(&read_file_maybe_gz(path)?, ndim, path)
}

/// Reads an IDX image file and its label file into a data set: pixels `/255`, shape
/// `(1, rows, cols)`, labels checked against `num_classes`. A file with no images is an
/// error.
pub fn read_idx_pair<T: Real>(
    images: &Path,
    labels: &Path,
    num_classes: usize,
) -> Result<Dataset<T>, DataError> {
    let img = read_idx(images, 3)?;
    let lab = read_idx(labels, 1)?;
    let (n, rows, cols) = (img.dims[0], img.dims[1], img.dims[2]);
    // With no images nothing in the file backs the declared image size (which may be
    // 2^32 × 2^32), and a data set without samples cannot be trained on or evaluated.
    if n == 0 {
        return Err(DataError::format(
            images,
            format!("holds no images (its header declares 0 images of {rows} × {cols} pixels)"),
        ));
    }
    if lab.dims[0] != n {
        return Err(DataError::Mismatch {
            first: images.into(),
            second: labels.into(),
            detail: format!("{n} images but {} labels", lab.dims[0]),
        });
    }
    if let Some(i) = lab.data.iter().position(|&l| l as usize >= num_classes) {
        return Err(DataError::LabelOutOfRange {
            path: labels.into(),
            index: i,
            label: lab.data[i] as usize,
            num_classes,
        });
    }
    let unit = super::byte_to_unit::<T>();
    let data = img.data.iter().map(|&b| unit[b as usize]).collect();
    let inputs = Batch::from_vec(n, rows * cols, data)?;
    let labels = lab.data.iter().map(|&l| l as usize).collect();
    Ok(Dataset::new(
        inputs,
        labels,
        vec![1, rows, cols],
        num_classes,
    )?)
}

/// Settings of [`load_mnist`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MnistOptions {
    /// Number of classes labels are checked against (10).
    pub num_classes: usize,
    /// When only the test files are present: how many of their images form the test part
    /// of the split (2 000 of 10 000; the rest is the training part).
    pub holdout: usize,
    /// Seed of that split (0).
    pub seed: u64,
}

impl Default for MnistOptions {
    fn default() -> Self {
        Self {
            num_classes: 10,
            holdout: 2000,
            seed: 0,
        }
    }
}

/// Where the training and test sets of [`load_mnist`] came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MnistSource {
    /// The standard training and test files.
    Standard,
    /// A seeded split of the test files (no training files in the folder).
    TestSplit {
        /// Images in the training part.
        train: usize,
        /// Images in the test part.
        test: usize,
        /// Seed of the split.
        seed: u64,
    },
}

/// The result of [`load_mnist`].
#[derive(Debug, Clone)]
pub struct Mnist<T> {
    /// Training and test sets.
    pub data: TrainTest<Dataset<T>>,
    /// How they were formed.
    pub source: MnistSource,
    /// The files read: images and labels, training then test (the same pair twice for a
    /// test split).
    pub files: Vec<PathBuf>,
}

/// File names tried for one IDX file, e.g. `("t10k", "images", 3)`.
pub(crate) fn candidates(prefix: &str, kind: &str, ndim: usize) -> Vec<String> {
    let mut v = Vec::new();
    for sep in ['-', '.'] {
        let base = format!("{prefix}-{kind}{sep}idx{ndim}-ubyte");
        v.push(format!("{base}.gz"));
        v.push(base);
    }
    v
}

/// The first of the candidate names that exists in `dir`.
pub(crate) fn find_file(dir: &Path, names: &[String]) -> Option<PathBuf> {
    names.iter().map(|n| dir.join(n)).find(|p| p.is_file())
}

/// Loads MNIST (or any data set in the same IDX layout) from `dir` (see the module docs).
pub fn load_mnist<T: Real>(
    dir: impl AsRef<Path>,
    opts: &MnistOptions,
) -> Result<Mnist<T>, DataError> {
    let dir = dir.as_ref();
    if !dir.is_dir() {
        return Err(DataError::io(
            dir,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such folder"),
        ));
    }
    let locate = |prefix: &str, kind: &str, ndim: usize| {
        let names = candidates(prefix, kind, ndim);
        find_file(dir, &names).ok_or(names)
    };
    let missing = |what: &str, looked_for: Vec<String>| DataError::MissingFiles {
        what: what.into(),
        dir: dir.into(),
        looked_for,
    };
    let test_images = locate("t10k", "images", 3).map_err(|n| missing("MNIST test images", n))?;
    let test_labels = locate("t10k", "labels", 1).map_err(|n| missing("MNIST test labels", n))?;
    let test = read_idx_pair::<T>(&test_images, &test_labels, opts.num_classes)?;
    match (locate("train", "images", 3), locate("train", "labels", 1)) {
        (Ok(train_images), Ok(train_labels)) => {
            let train = read_idx_pair::<T>(&train_images, &train_labels, opts.num_classes)?;
            if train.sample_shape() != test.sample_shape() {
                return Err(DataError::Mismatch {
                    first: train_images,
                    second: test_images,
                    detail: format!(
                        "image shapes {:?} and {:?}",
                        train.sample_shape(),
                        test.sample_shape()
                    ),
                });
            }
            Ok(Mnist {
                data: TrainTest { train, test },
                source: MnistSource::Standard,
                files: vec![train_images, train_labels, test_images, test_labels],
            })
        }
        (Err(names), Ok(_)) => Err(missing(
            "MNIST training images (the training labels are there)",
            names,
        )),
        (Ok(_), Err(names)) => Err(missing(
            "MNIST training labels (the training images are there)",
            names,
        )),
        (Err(_), Err(_)) => {
            let data = test.split(opts.holdout, opts.seed)?;
            let source = MnistSource::TestSplit {
                train: data.train.len(),
                test: data.test.len(),
                seed: opts.seed,
            };
            Ok(Mnist {
                data,
                source,
                files: vec![
                    test_images.clone(),
                    test_labels.clone(),
                    test_images,
                    test_labels,
                ],
            })
        }
    }
}
