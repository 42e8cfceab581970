//! CSV files for batches and pair data.
//!
//! **Format**: comma-separated, a header row of column names, then one sample per row, one
//! number per cell. Pair data put the inputs first, then the targets, named after the state
//! and the state with `_T` appended (`p,q,p_T,q_T` for the pendulum).
//!
//! **Writing** prints each number in the shortest form that reads back to the same value
//! (Rust's `Display` for `f32`/`f64`), so a write–read round trip is exact.
//!
//! **Reading** accepts `\n` or `\r\n` line ends, spaces around cells, header names in
//! double quotes, blank lines and `#` comment lines; a header written by NumPy's `savetxt`
//! (`# p,q,p_T,q_T`) is recognised as the header. Numbers are parsed directly in the target
//! scalar type (`nan` and `inf` are accepted). A cell that is empty or not a number, or a row
//! with the wrong number of cells, is an error naming the file, the line, the column and its
//! name.

use std::fmt::Write as _;
use std::path::Path;
use std::str::FromStr;

use super::dataset::PairDataset;
use super::error::DataError;
use super::npy::{batch_to_pairs, pairs_to_batch};
use crate::error::ArgError;
use crate::real::Real;
use crate::state::Batch;

/// The CSV text of a batch with the given column names.
pub fn csv_string<T: Real>(header: &[String], batch: &Batch<T>) -> Result<String, ArgError> {
    if header.len() != batch.cols() {
        return Err(crate::error::ShapeError {
            what: "CSV header (one name per column)",
            expected: batch.cols(),
            got: header.len(),
        }
        .into());
    }
    if let Some(name) = header.iter().find(|h| h.contains([',', '\n', '\r', '"'])) {
        return Err(ArgError::invalid(
            "column name",
            name,
            "must not contain commas, quotes or line breaks",
        ));
    }
    let mut s = header.join(",");
    s.push('\n');
    for row in batch.iter_rows().take(batch.rows()) {
        for (j, v) in row.iter().enumerate() {
            if j > 0 {
                s.push(',');
            }
            write!(s, "{v}").expect("writing to a String");
        }
        s.push('\n');
    }
    Ok(s)
}

/// Writes a batch as CSV with the given column names.
pub fn write_csv<T: Real>(
    path: impl AsRef<Path>,
    header: &[String],
    batch: &Batch<T>,
) -> Result<(), DataError> {
    let path = path.as_ref();
    let text = csv_string(header, batch)?;
    std::fs::write(path, text).map_err(|e| DataError::io(path, e))
}

/// Parses CSV text into `(column names, batch)`; `path` names the source in errors.
pub fn parse_csv<T: Real + FromStr>(
    text: &str,
    path: &Path,
) -> Result<(Vec<String>, Batch<T>), DataError> {
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim_end_matches('\r')));
    let header = loop {
        match lines.next() {
            None => return Err(DataError::format(path, "empty CSV file: no header row")),
            Some((_, l)) if l.trim().is_empty() => continue,
            Some((_, l)) => break l.trim().strip_prefix('#').unwrap_or(l),
        }
    };
    let names: Vec<String> = header
        .split(',')
        .map(|h| h.trim().trim_matches('"').trim().to_string())
        .collect();
    let cols = names.len();
    let mut data = Vec::new();
    let mut rows = 0;
    for (line, l) in lines {
        if l.trim().is_empty() || l.trim_start().starts_with('#') {
            continue;
        }
        let cell_error = |column: usize, reason: String| DataError::Csv {
            path: path.into(),
            line,
            column,
            column_name: names
                .get(column - 1)
                .cloned()
                .unwrap_or_else(|| "(beyond the header)".into()),
            reason,
        };
        let mut count = 0;
        for (j, cell) in l.split(',').enumerate() {
            count += 1;
            if j >= cols {
                continue;
            }
            let cell = cell.trim();
            if cell.is_empty() {
                return Err(cell_error(j + 1, "empty cell".into()));
            }
            let v = cell
                .parse::<T>()
                .map_err(|_| cell_error(j + 1, format!("'{cell}' is not a number")))?;
            data.push(v);
        }
        if count != cols {
            let column = count.min(cols) + 1;
            return Err(cell_error(
                column,
                format!("the row has {count} cells but the header has {cols} columns"),
            ));
        }
        rows += 1;
    }
    Ok((names, Batch::from_vec(rows, cols, data)?))
}

/// Reads a CSV file into `(column names, batch)` (a file larger than the memory budget is
/// refused before it is read).
pub fn read_csv<T: Real + FromStr>(
    path: impl AsRef<Path>,
) -> Result<(Vec<String>, Batch<T>), DataError> {
    let path = path.as_ref();
    let bytes = super::read_capped(path, super::memory_limit(path)?)?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let line = 1 + e.as_bytes()[..at].iter().filter(|&&b| b == b'\n').count();
        DataError::format(
            path,
            format!("line {line}: not UTF-8 text (an invalid byte at offset {at})"),
        )
    })?;
    parse_csv(&text, path)
}

/// Writes pair data as CSV: input columns, then target columns, under their names.
pub fn write_pairs_csv<T: Real>(
    path: impl AsRef<Path>,
    pairs: &PairDataset<T>,
) -> Result<(), DataError> {
    let header: Vec<String> = pairs
        .x_names()
        .iter()
        .chain(pairs.y_names())
        .cloned()
        .collect();
    write_csv(path, &header, &pairs_to_batch(pairs))
}

/// Reads pair data from CSV: the first `x_cols` columns are inputs, the rest targets (half
/// and half when `None`); column names come from the header.
pub fn read_pairs_csv<T: Real + FromStr>(
    path: impl AsRef<Path>,
    x_cols: Option<usize>,
) -> Result<PairDataset<T>, DataError> {
    let (names, batch) = read_csv::<T>(path)?;
    let p = batch_to_pairs(&batch, x_cols)?;
    let dx = p.x().cols();
    let (x, y) = p.into_parts();
    Ok(PairDataset::with_all_names(
        x,
        y,
        names[..dx].to_vec(),
        names[dx..].to_vec(),
    )?)
}
