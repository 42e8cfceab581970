//! [`DataError`]: what can go wrong when making, reading or writing a data set.
//!
//! Every variant that concerns a file names the file and says what is wrong with it, in
//! terms a user can act on (which files were looked for, which magic number was found, how
//! many bytes were expected and how many were there, which row and column of a CSV file
//! holds a cell that is not a number).

use std::io;
use std::path::PathBuf;

use thiserror::Error;

use crate::error::{ArgError, ShapeError};

/// The error type of the [`crate::data`] module.
#[derive(Debug, Error)]
pub enum DataError {
    /// Reading or writing a file failed at the operating-system level.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// None of the files a loader accepts were found.
    #[error("no {what} found in {}: looked for {}", dir.display(), looked_for.join(", "))]
    MissingFiles {
        /// What was being loaded (e.g. `"MNIST test images"`).
        what: String,
        /// The folder searched.
        dir: PathBuf,
        /// The file names tried.
        looked_for: Vec<String>,
    },
    /// The file does not start with the magic number of its format.
    #[error("{}: bad magic number {found}, expected {expected}", path.display())]
    BadMagic {
        /// The file.
        path: PathBuf,
        /// What the format requires (e.g. `0x00000803 (IDX unsigned-byte 3-D array)`).
        expected: String,
        /// What the file holds.
        found: String,
    },
    /// The file ends before the data its header announces (sizes after decompression for
    /// gzip files).
    #[error("{}: truncated: expected {expected} bytes, got {got}", path.display())]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Bytes required by the header (or by the record size).
        expected: u64,
        /// Bytes present.
        got: u64,
    },
    /// The file holds more bytes than its header announces.
    #[error("{}: {got} bytes, but the header announces only {expected} (trailing data)", path.display())]
    TrailingData {
        /// The file.
        path: PathBuf,
        /// Bytes required by the header.
        expected: u64,
        /// Bytes present.
        got: u64,
    },
    /// A gzip-compressed file could not be decompressed.
    #[error("{}: corrupt gzip stream: {reason}", path.display())]
    Gzip {
        /// The file.
        path: PathBuf,
        /// The decoder's message.
        reason: String,
    },
    /// Two files that belong together disagree (image count vs label count, image sizes of
    /// the training and test files).
    #[error("{} and {} do not match: {detail}", first.display(), second.display())]
    Mismatch {
        /// One file.
        first: PathBuf,
        /// The other file.
        second: PathBuf,
        /// What differs, with both values.
        detail: String,
    },
    /// A class label outside `0..num_classes`.
    #[error("{}: label {label} of sample {index} is out of range (expected 0..{num_classes})", path.display())]
    LabelOutOfRange {
        /// The file.
        path: PathBuf,
        /// Sample index.
        index: usize,
        /// The label found.
        label: usize,
        /// Number of classes.
        num_classes: usize,
    },
    /// A header or layout the reader does not accept (wrong dtype, Fortran order, wrong
    /// number of dimensions, malformed NPY header).
    #[error("{}: {reason}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A CSV cell that cannot be read.
    #[error("{}: line {line}, column {column} ('{column_name}'): {reason}", path.display())]
    Csv {
        /// The file.
        path: PathBuf,
        /// Line number, counting from 1 (the header is line 1).
        line: usize,
        /// Column number, counting from 1.
        column: usize,
        /// The column's name from the header.
        column_name: String,
        /// What is wrong (e.g. `'abc' is not a number`).
        reason: String,
    },
    /// An invalid argument (a size, a fraction, a configuration value).
    #[error(transparent)]
    Arg(#[from] ArgError),
    /// The reference integration of a trajectory data set failed.
    #[error("reference integration for the trajectory data failed: {0}")]
    Solve(String),
}

impl From<ShapeError> for DataError {
    fn from(e: ShapeError) -> Self {
        DataError::Arg(e.into())
    }
}

impl DataError {
    /// Shorthand for [`DataError::Io`].
    pub fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        DataError::Io {
            path: path.into(),
            source,
        }
    }

    /// Shorthand for [`DataError::Format`].
    pub fn format(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        DataError::Format {
            path: path.into(),
            reason: reason.into(),
        }
    }

    /// [`DataError::Truncated`] or [`DataError::TrailingData`] for a file of `got` bytes
    /// that should have `expected`; `None` when the sizes agree.
    pub fn size_check(path: impl Into<PathBuf>, expected: u64, got: u64) -> Option<Self> {
        let path = path.into();
        match got.cmp(&expected) {
            std::cmp::Ordering::Less => Some(DataError::Truncated {
                path,
                expected,
                got,
            }),
            std::cmp::Ordering::Greater => Some(DataError::TrailingData {
                path,
                expected,
                got,
            }),
            std::cmp::Ordering::Equal => None,
        }
    }
}
