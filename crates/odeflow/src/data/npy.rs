//! NPY files (NumPy's `np.save` format) for batches and pair data.
//!
//! **Format** (NEP 1): the magic string `\x93NUMPY`, a major and a minor version byte, the
//! header length (little-endian `u16` in version 1.0, `u32` in 2.0 and 3.0), then the header:
//! a Python dict literal such as `{'descr': '<f8', 'fortran_order': False, 'shape': (100, 2), }`
//! padded with spaces and a newline so that the data start at a multiple of 64 bytes; then
//! the elements, raw.
//!
//! **What is read**: versions 1.0, 2.0 and 3.0; dtype little-endian `float32` (`'<f4'`) or
//! `float64` (`'<f8'`), converted to the requested scalar type; C order only (a
//! Fortran-ordered file is an error — save with `np.ascontiguousarray`); 2-D arrays as
//! `rows × cols` batches and 1-D arrays of length `n` as `n × 1`. Anything else (another
//! dtype, big-endian, Fortran order, other dimensions, a data section shorter or longer
//! than the shape announces) is an error naming the file and the problem.
//!
//! **What is written**: version 1.0 (2.0 only if the header would not fit), C order, dtype
//! `'<f4'` for `f32` batches and `'<f8'` for `f64`. A [`PairDataset`] is stored as one
//! `n × (dx + dy)` array, inputs then targets — the same column layout as its CSV form.
//!
//! The header parser is written here (about 80 lines): the NPY crates on crates.io parse it
//! with a general Python-literal parser that brings in a parser generator and a C build
//! step, out of proportion to one dict with three keys.

use std::path::Path;

use super::dataset::PairDataset;
use super::error::DataError;
use crate::real::Real;
use crate::state::Batch;

const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// The most columns an array with no rows may declare (see [`parse_npy`]).
pub const MAX_EMPTY_COLS: usize = 1 << 20;

/// A parsed header value.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Str(String),
    Bool(bool),
    Tuple(Vec<u64>),
}

/// Parses the header dict; returns `(key, value)` pairs or what is malformed.
fn parse_header_dict(s: &str) -> Result<Vec<(String, Value)>, String> {
    let b = s.trim().as_bytes();
    let mut i = 0;
    let ws = |i: &mut usize| {
        while *i < b.len() && b[*i].is_ascii_whitespace() {
            *i += 1;
        }
    };
    let string = |i: &mut usize| -> Result<String, String> {
        let q = b[*i];
        let start = *i + 1;
        let end = b[start..]
            .iter()
            .position(|&c| c == q)
            .ok_or("unterminated string")?;
        *i = start + end + 1;
        Ok(String::from_utf8_lossy(&b[start..start + end]).into_owned())
    };
    if b.first() != Some(&b'{') {
        return Err("the header is not a dict literal".into());
    }
    i += 1;
    let mut out = Vec::new();
    loop {
        ws(&mut i);
        match b.get(i) {
            Some(b'}') => return Ok(out),
            Some(b'\'') | Some(b'"') => {}
            _ => return Err(format!("expected a quoted key at byte {i}")),
        }
        let key = string(&mut i)?;
        ws(&mut i);
        if b.get(i) != Some(&b':') {
            return Err(format!("expected ':' after key '{key}'"));
        }
        i += 1;
        ws(&mut i);
        let value = match b.get(i) {
            Some(b'\'') | Some(b'"') => Value::Str(string(&mut i)?),
            Some(b'(') => {
                let end = b[i..]
                    .iter()
                    .position(|&c| c == b')')
                    .ok_or("unterminated tuple")?
                    + i;
                let inner = std::str::from_utf8(&b[i + 1..end]).map_err(|e| e.to_string())?;
                i = end + 1;
                let dims = inner
                    .split(',')
                    .map(|t| t.trim().trim_end_matches('L'))
                    .filter(|t| !t.is_empty())
                    .map(|t| {
                        t.parse::<u64>()
                            .map_err(|_| format!("shape entry '{t}' is not a size"))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Value::Tuple(dims)
            }
            _ if b[i..].starts_with(b"True") => {
                i += 4;
                Value::Bool(true)
            }
            _ if b[i..].starts_with(b"False") => {
                i += 5;
                Value::Bool(false)
            }
            _ => {
                return Err(format!(
                    "unsupported value for key '{key}' (a structured dtype?)"
                ))
            }
        };
        out.push((key, value));
        ws(&mut i);
        match b.get(i) {
            Some(b',') => i += 1,
            Some(b'}') => {}
            _ => return Err(format!("expected ',' or '}}' at byte {i}")),
        }
    }
}

/// Parses an NPY file's bytes into a batch; `path` names the source in errors. Sizes are
/// checked against the file's length before anything is allocated; an array with no rows
/// may declare at most [`MAX_EMPTY_COLS`] columns.
pub fn parse_npy<T: Real>(bytes: &[u8], path: &Path) -> Result<Batch<T>, DataError> {
    let (shape, batch) = parse_npy_shaped(bytes, path)?;
    if shape.len() > 2 {
        return Err(DataError::format(
            path,
            format!("shape {shape:?} is not 1-D or 2-D"),
        ));
    }
    Ok(batch)
}

/// Parses an NPY file of any rank ≥ 1 into its shape and a batch of `shape[0]` rows of
/// `shape[1] · shape[2] · …` values (C order: one sample per row, PyTorch's order within
/// it; a 1-D array of length `n` is `n × 1`).
pub fn parse_npy_shaped<T: Real>(
    bytes: &[u8],
    path: &Path,
) -> Result<(Vec<usize>, Batch<T>), DataError> {
    let fmt = |r: String| DataError::format(path, r);
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        let head = &bytes[..bytes.len().min(6)];
        return Err(DataError::BadMagic {
            path: path.into(),
            expected: "\\x93NUMPY (an NPY file)".into(),
            found: format!("{}", head.escape_ascii()),
        });
    }
    let (major, minor) = (bytes[6], bytes[7]);
    let (len, start) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        2 | 3 => {
            return Err(DataError::Truncated {
                path: path.into(),
                expected: 12,
                got: bytes.len() as u64,
            })
        }
        _ => {
            return Err(fmt(format!(
                "unsupported NPY version {major}.{minor} (1.0, 2.0 and 3.0 are read)"
            )))
        }
    };
    let data_start = start + len;
    if bytes.len() < data_start {
        return Err(DataError::Truncated {
            path: path.into(),
            expected: data_start as u64,
            got: bytes.len() as u64,
        });
    }
    let header = std::str::from_utf8(&bytes[start..data_start])
        .map_err(|_| fmt("the NPY header is not text".into()))?;
    let dict = parse_header_dict(header)
        .map_err(|e| fmt(format!("malformed NPY header {:?}: {e}", header.trim())))?;
    let get = |k: &str| dict.iter().find(|(key, _)| key == k).map(|(_, v)| v);
    let width = match get("descr") {
        Some(Value::Str(d)) if d == "<f8" => 8,
        Some(Value::Str(d)) if d == "<f4" => 4,
        Some(Value::Str(d)) => {
            let why = if d.starts_with('>') {
                "big-endian data are not supported; "
            } else {
                ""
            };
            return Err(fmt(format!(
                "unsupported dtype '{d}': {why}expected little-endian float32 '<f4' or float64 '<f8' (convert with arr.astype('<f8'))"
            )));
        }
        _ => return Err(fmt("the NPY header has no dtype string 'descr'".into())),
    };
    match get("fortran_order") {
        Some(Value::Bool(false)) => {}
        Some(Value::Bool(true)) => return Err(fmt(
            "the array is in Fortran order; only C order is read (save np.ascontiguousarray(arr))"
                .into(),
        )),
        _ => return Err(fmt("the NPY header has no boolean 'fortran_order'".into())),
    }
    let shape: Vec<usize> = match get("shape") {
        Some(Value::Tuple(s)) if !s.is_empty() => s.iter().map(|&d| d as usize).collect(),
        Some(Value::Tuple(_)) => {
            return Err(fmt(
                "the array is a scalar (shape ()); save an array of one sample per row".into(),
            ))
        }
        _ => return Err(fmt("the NPY header has no tuple 'shape'".into())),
    };
    let rows = shape[0];
    let cols = shape[1..]
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| fmt(format!("shape {shape:?} overflows")))?;
    // An empty array's column count is backed by no data: bound it, or a caller that names
    // every column (pair data) or sizes a model by it would allocate without limit.
    if rows == 0 && cols > MAX_EMPTY_COLS {
        return Err(fmt(format!(
            "shape (0, {cols}) declares {cols} columns but no rows; an empty array may have \
             at most {MAX_EMPTY_COLS} columns"
        )));
    }
    let expected = (rows as u64)
        .checked_mul(cols as u64)
        .and_then(|n| n.checked_mul(width))
        .ok_or_else(|| fmt(format!("shape ({rows}, {cols}) overflows")))?;
    if let Some(e) = DataError::size_check(path, data_start as u64 + expected, bytes.len() as u64) {
        return Err(e);
    }
    let raw = &bytes[data_start..];
    let data: Vec<T> = if width == 8 {
        raw.chunks_exact(8)
            .map(|c| T::of(f64::from_le_bytes(c.try_into().expect("8 bytes"))))
            .collect()
    } else {
        raw.chunks_exact(4)
            .map(|c| T::of(f32::from_le_bytes(c.try_into().expect("4 bytes")) as f64))
            .collect()
    };
    Ok((shape, Batch::from_vec(rows, cols, data)?))
}

/// Reads an NPY file into a batch (a file larger than the memory budget is refused before
/// it is read).
pub fn read_npy<T: Real>(path: impl AsRef<Path>) -> Result<Batch<T>, DataError> {
    let path = path.as_ref();
    let bytes = super::read_capped(path, super::memory_limit(path)?)?;
    parse_npy(&bytes, path)
}

/// Reads an NPY file of any rank ≥ 1 (see [`parse_npy_shaped`]; a file larger than the
/// memory budget is refused before it is read).
pub fn read_npy_shaped<T: Real>(
    path: impl AsRef<Path>,
) -> Result<(Vec<usize>, Batch<T>), DataError> {
    let path = path.as_ref();
    let bytes = super::read_capped(path, super::memory_limit(path)?)?;
    parse_npy_shaped(&bytes, path)
}

/// The NPY encoding of a batch (see the module docs).
pub fn npy_bytes<T: Real>(batch: &Batch<T>) -> Vec<u8> {
    npy_bytes_shaped(&[batch.rows(), batch.cols()], batch)
}

/// The NPY encoding of a batch as an array of `shape` (whose product must be the batch's
/// length; `[rows, c, h, w]` for images).
pub fn npy_bytes_shaped<T: Real>(shape: &[usize], batch: &Batch<T>) -> Vec<u8> {
    debug_assert_eq!(shape.iter().product::<usize>(), batch.as_slice().len());
    let (descr, width) = if T::NAME == "f32" {
        ("<f4", 4)
    } else {
        ("<f8", 8)
    };
    let dims = match shape {
        [n] => format!("{n},"),
        _ => shape
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join(", "),
    };
    let dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': ({dims}), }}");
    let padded = |prefix: usize| {
        let total = (prefix + dict.len() + 1).div_ceil(64) * 64;
        format!("{dict}{}\n", " ".repeat(total - prefix - dict.len() - 1))
    };
    let mut out = Vec::with_capacity(128 + batch.as_slice().len() * width);
    out.extend_from_slice(MAGIC);
    let header = padded(10);
    if header.len() <= u16::MAX as usize {
        out.extend_from_slice(&[1, 0]);
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        out.extend_from_slice(header.as_bytes());
    } else {
        let header = padded(12);
        out.extend_from_slice(&[2, 0]);
        out.extend_from_slice(&(header.len() as u32).to_le_bytes());
        out.extend_from_slice(header.as_bytes());
    }
    for v in batch.as_slice() {
        if width == 4 {
            out.extend_from_slice(&(v.f64() as f32).to_le_bytes());
        } else {
            out.extend_from_slice(&v.f64().to_le_bytes());
        }
    }
    out
}

/// Writes a batch as an NPY file.
pub fn write_npy<T: Real>(path: impl AsRef<Path>, batch: &Batch<T>) -> Result<(), DataError> {
    let path = path.as_ref();
    std::fs::write(path, npy_bytes(batch)).map_err(|e| DataError::io(path, e))
}

/// Joins the inputs and targets of pair data into one `n × (dx + dy)` batch.
pub fn pairs_to_batch<T: Real>(pairs: &PairDataset<T>) -> Batch<T> {
    let (dx, dy) = (pairs.x().cols(), pairs.y().cols());
    let mut out = Vec::with_capacity(pairs.len() * (dx + dy));
    for (a, b) in pairs.x().iter_rows().zip(pairs.y().iter_rows()) {
        out.extend_from_slice(&a[..dx]);
        out.extend_from_slice(&b[..dy]);
    }
    Batch::from_vec(pairs.len(), dx + dy, out).expect("sizes agree")
}

/// Splits an `n × (dx + dy)` batch into pair data with `x_cols = dx` input columns (half of
/// the columns when `None`, which needs an even count).
pub fn batch_to_pairs<T: Real>(
    b: &Batch<T>,
    x_cols: Option<usize>,
) -> Result<PairDataset<T>, crate::error::ArgError> {
    let dx = match x_cols {
        Some(d) if d <= b.cols() => d,
        Some(d) => {
            return Err(crate::error::ArgError::invalid(
                "x_cols",
                d,
                format!("exceeds the {} columns of the data", b.cols()),
            ))
        }
        None if b.cols().is_multiple_of(2) => b.cols() / 2,
        None => {
            return Err(crate::error::ArgError::invalid(
                "columns",
                b.cols(),
                "is odd, so inputs and targets cannot be split in halves: give x_cols",
            ))
        }
    };
    let (mut x, mut y) = (
        Vec::with_capacity(b.rows() * dx),
        Vec::with_capacity(b.rows() * (b.cols() - dx)),
    );
    for row in b.iter_rows() {
        x.extend_from_slice(&row[..dx]);
        y.extend_from_slice(&row[dx..]);
    }
    let x = Batch::from_vec(b.rows(), dx, x)?;
    let y = Batch::from_vec(b.rows(), b.cols() - dx, y)?;
    PairDataset::new(x, y)
}

/// Writes pair data as one NPY array, inputs then targets.
pub fn write_pairs_npy<T: Real>(
    path: impl AsRef<Path>,
    pairs: &PairDataset<T>,
) -> Result<(), DataError> {
    write_npy(path, &pairs_to_batch(pairs))
}

/// Reads pair data written by [`write_pairs_npy`] (or any `n × (dx + dy)` array); see
/// [`batch_to_pairs`] for `x_cols`.
pub fn read_pairs_npy<T: Real>(
    path: impl AsRef<Path>,
    x_cols: Option<usize>,
) -> Result<PairDataset<T>, DataError> {
    Ok(batch_to_pairs(&read_npy(path)?, x_cols)?)
}
