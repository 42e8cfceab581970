//! [`TensorFile`]: a safetensors file held as named `f64` tensors, read and written with the
//! `safetensors` crate (the format's reference implementation).
//!
//! The format: 8 bytes (little-endian `u64`) giving the length of a JSON header that maps
//! each tensor name to its dtype, shape and byte range, an optional `__metadata__` map of
//! strings, then the raw little-endian data. odeflow reads `F32`, `F64` and `I64` tensors
//! (the last for PyTorch's batch-norm counter `num_batches_tracked`) and writes float
//! tensors as `F32` or `F64` and that counter as `I64`, as PyTorch stores it; every value passes through `f64`, which holds every `f32` exactly, so an `f32`
//! file read and written again is bit-identical in its values.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use safetensors::{Dtype, SafeTensors};

use super::WeightsError;

/// One tensor: its shape (row-major, PyTorch's) and its values.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// Shape, e.g. `[out, in, k]` for a `Conv1d` weight.
    pub shape: Vec<usize>,
    /// The values in row-major (C) order.
    pub data: Vec<f64>,
    /// Stored as `I64` (PyTorch's batch-norm counter `num_batches_tracked`) rather than in
    /// the file's float dtype.
    pub integer: bool,
}

impl Tensor {
    /// A float tensor of `shape` holding `data` (the caller keeps `data.len()` equal to the
    /// product of `shape`).
    pub fn new(shape: Vec<usize>, data: Vec<f64>) -> Self {
        debug_assert_eq!(shape.iter().product::<usize>(), data.len());
        Self {
            shape,
            data,
            integer: false,
        }
    }

    /// An `I64` tensor of `shape` holding whole numbers `data`.
    pub fn int64(shape: Vec<usize>, data: Vec<i64>) -> Self {
        let mut t = Self::new(shape, data.into_iter().map(|v| v as f64).collect());
        t.integer = true;
        t
    }

    /// Number of values (the product of the shape).
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether the tensor holds no value (a zero in its shape).
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

/// The floating-point type of a file's tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileDtype {
    /// `F32` (PyTorch `torch.float32`).
    F32,
    /// `F64` (PyTorch `torch.float64`).
    F64,
}

impl FileDtype {
    /// `"f32"` or `"f64"`.
    pub fn name(self) -> &'static str {
        match self {
            FileDtype::F32 => "f32",
            FileDtype::F64 => "f64",
        }
    }

    /// Parses `"f32"` or `"f64"`.
    pub fn from_name(s: &str) -> Result<Self, WeightsError> {
        match s {
            "f32" => Ok(FileDtype::F32),
            "f64" => Ok(FileDtype::F64),
            _ => Err(WeightsError::Invalid(format!(
                "dtype '{s}' is not supported: use f32 or f64"
            ))),
        }
    }
}

/// Named tensors and string metadata: the content of a safetensors file.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorFile {
    /// Tensors by name (sorted, as safetensors stores them).
    pub tensors: BTreeMap<String, Tensor>,
    /// The `__metadata__` map.
    pub metadata: BTreeMap<String, String>,
    /// The floating-point type of the file's float tensors (`F64` if any is `F64`).
    pub dtype: FileDtype,
}

impl TensorFile {
    /// An empty file of `dtype`.
    pub fn new(dtype: FileDtype) -> Self {
        Self {
            tensors: BTreeMap::new(),
            metadata: BTreeMap::new(),
            dtype,
        }
    }

    /// Parses a safetensors buffer; `path` names the source in errors.
    pub fn parse(bytes: &[u8], path: &Path) -> Result<Self, WeightsError> {
        let file = |reason: String| WeightsError::Format {
            path: path.display().to_string(),
            reason,
        };
        let st = SafeTensors::deserialize(bytes).map_err(|e| {
            file(format!(
                "is not a safetensors file ({e}); write one with safetensors.torch.save_file(model.state_dict(), path)"
            ))
        })?;
        let (_, meta) = SafeTensors::read_metadata(bytes)
            .map_err(|e| file(format!("has an unreadable header ({e})")))?;
        let metadata: BTreeMap<String, String> = meta
            .metadata()
            .as_ref()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        let mut tensors = BTreeMap::new();
        let mut dtype = FileDtype::F32;
        let mut any_float = false;
        for (name, view) in st.tensors() {
            let raw = view.data();
            let integer = view.dtype() == Dtype::I64;
            let data: Vec<f64> = match view.dtype() {
                Dtype::F64 => {
                    dtype = FileDtype::F64;
                    any_float = true;
                    raw.chunks_exact(8)
                        .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
                        .collect()
                }
                Dtype::F32 => {
                    any_float = true;
                    raw.chunks_exact(4)
                        .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")) as f64)
                        .collect()
                }
                Dtype::I64 => raw
                    .chunks_exact(8)
                    .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")) as f64)
                    .collect(),
                other => {
                    return Err(file(format!(
                        "holds tensor '{name}' of dtype {other}; odeflow reads F32 and F64 \
                         (convert with model.double() or model.float() before saving)"
                    )))
                }
            };
            let mut t = Tensor::new(view.shape().to_vec(), data);
            t.integer = integer;
            tensors.insert(name, t);
        }
        if !any_float && !tensors.is_empty() {
            return Err(file("holds no F32 or F64 tensor".into()));
        }
        Ok(Self {
            tensors,
            metadata,
            dtype,
        })
    }

    /// Reads a safetensors file (a file larger than the memory budget is refused before it
    /// is read).
    pub fn read(path: impl AsRef<Path>) -> Result<Self, WeightsError> {
        let path = path.as_ref();
        let limit = crate::data::memory_limit(path).map_err(|e| WeightsError::Format {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        let bytes = crate::data::read_capped(path, limit)
            .map_err(|e| WeightsError::Invalid(format!("cannot read the weights file {e}")))?;
        Self::parse(&bytes, path)
    }

    /// The safetensors encoding: float tensors in the file's dtype, metadata in
    /// `__metadata__`.
    pub fn to_bytes(&self) -> Result<Vec<u8>, WeightsError> {
        let encoded: Vec<(String, Dtype, Vec<u8>, Vec<usize>)> = self
            .tensors
            .iter()
            .map(|(name, t)| {
                let (dtype, bytes) = match (t.integer, self.dtype) {
                    (true, _) => (
                        Dtype::I64,
                        t.data
                            .iter()
                            .flat_map(|v| (*v as i64).to_le_bytes())
                            .collect(),
                    ),
                    (false, FileDtype::F64) => (
                        Dtype::F64,
                        t.data.iter().flat_map(|v| v.to_le_bytes()).collect(),
                    ),
                    (false, FileDtype::F32) => (
                        Dtype::F32,
                        t.data
                            .iter()
                            .flat_map(|v| (*v as f32).to_le_bytes())
                            .collect(),
                    ),
                };
                (name.clone(), dtype, bytes, t.shape.clone())
            })
            .collect();
        let views = encoded
            .iter()
            .map(|(name, dtype, bytes, shape)| {
                safetensors::tensor::TensorView::new(*dtype, shape.clone(), bytes)
                    .map(|v| (name.as_str(), v))
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| WeightsError::Invalid(format!("cannot encode a tensor: {e}")))?;
        let meta: Option<HashMap<String, String>> = (!self.metadata.is_empty()).then(|| {
            self.metadata
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        });
        let mut bytes = safetensors::serialize(views, meta)
            .map_err(|e| WeightsError::Invalid(format!("cannot encode the file: {e}")))?;
        sort_metadata(&mut bytes, &self.metadata)?;
        Ok(bytes)
    }

    /// Writes the file atomically (missing folders are created).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), WeightsError> {
        let path = path.as_ref();
        let bytes = self.to_bytes()?;
        crate::fsutil::write_atomic(path, &bytes).map_err(|e| WeightsError::Io {
            path: path.display().to_string(),
            reason: e.to_string(),
        })
    }
}

/// `safetensors::serialize` writes the `__metadata__` map in hash order; this rewrites it in
/// key order, in place (the same entries, so the same length and data offsets), so that the
/// same weights always give the same bytes.
fn sort_metadata(bytes: &mut [u8], meta: &BTreeMap<String, String>) -> Result<(), WeightsError> {
    if meta.is_empty() {
        return Ok(());
    }
    let bad = || WeightsError::Invalid("cannot encode the file: unexpected header layout".into());
    let n = bytes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
        .ok_or_else(bad)? as usize;
    let header = bytes.get_mut(8..8 + n).ok_or_else(bad)?;
    let sorted = serde_json::to_string(meta)
        .map_err(|e| WeightsError::Invalid(format!("cannot encode the metadata: {e}")))?;
    let key = b"\"__metadata__\":";
    let at = header
        .windows(key.len())
        .position(|w| w == key)
        .ok_or_else(bad)?
        + key.len();
    let slot = header.get_mut(at..at + sorted.len()).ok_or_else(bad)?;
    if slot.first() != Some(&b'{') || slot.last() != Some(&b'}') {
        return Err(bad());
    }
    slot.copy_from_slice(sorted.as_bytes());
    Ok(())
}
