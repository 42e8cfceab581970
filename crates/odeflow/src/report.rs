//! One number format and one table writer for every file and summary odeflow writes: eval,
//! sweep and experiment CSVs, and the aligned tables people read on a terminal.

use std::fmt::Write as _;

/// A number in at most 4 significant digits without noise: `0.37`, `0.0625`, `1e-3`,
/// `7.812e-3`, `2.5e-7`, `1e-300` (never a 300-digit decimal); `NaN`, `inf`.
pub fn short(v: f64) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    if v != 0.0 && (v.abs() < 1e-2 || v.abs() >= 1e5) {
        let s = format!("{v:.3e}");
        let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
        let m = m.trim_end_matches('0').trim_end_matches('.');
        format!("{m}e{e}")
    } else {
        let s = format!("{v:.4}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        if s == "-0" {
            "0".into()
        } else {
            s.to_string()
        }
    }
}

/// One cell of a table: empty for `None`, [`short`] for floats.
pub fn cell<V: Into<Cell>>(v: V) -> String {
    v.into().0
}

/// A formatted table cell (see [`cell`]).
pub struct Cell(String);

impl From<f64> for Cell {
    fn from(v: f64) -> Self {
        Cell(short(v))
    }
}
impl From<Option<f64>> for Cell {
    fn from(v: Option<f64>) -> Self {
        Cell(v.map(short).unwrap_or_default())
    }
}
impl From<usize> for Cell {
    fn from(v: usize) -> Self {
        Cell(v.to_string())
    }
}
impl From<Option<usize>> for Cell {
    fn from(v: Option<usize>) -> Self {
        Cell(v.map(|n| n.to_string()).unwrap_or_default())
    }
}
impl From<u64> for Cell {
    fn from(v: u64) -> Self {
        Cell(v.to_string())
    }
}
impl From<bool> for Cell {
    fn from(v: bool) -> Self {
        Cell(v.to_string())
    }
}
impl From<&str> for Cell {
    fn from(v: &str) -> Self {
        Cell(v.to_string())
    }
}
impl From<String> for Cell {
    fn from(v: String) -> Self {
        Cell(v)
    }
}

/// A table with named columns, written as CSV for files or aligned text for people.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Table {
    /// Column names.
    pub header: Vec<String>,
    /// Rows of formatted cells (each as long as the header).
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// An empty table with these columns.
    pub fn new(header: &[&str]) -> Self {
        Self {
            header: header.iter().map(|s| s.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Appends a row of cells (see [`cell`]).
    pub fn push(&mut self, row: Vec<String>) {
        debug_assert_eq!(row.len(), self.header.len(), "row width");
        self.rows.push(row);
    }

    /// The table as CSV (cells holding a comma, quote or newline are quoted).
    pub fn to_csv(&self) -> String {
        let quote = |c: &str| {
            if c.contains([',', '"', '\n']) {
                format!("\"{}\"", c.replace('"', "\"\""))
            } else {
                c.to_string()
            }
        };
        let mut s = String::new();
        for row in std::iter::once(&self.header).chain(&self.rows) {
            let cells: Vec<String> = row.iter().map(|c| quote(c)).collect();
            let _ = writeln!(s, "{}", cells.join(","));
        }
        s
    }

    /// The table as aligned text (columns padded to their widest cell; numbers aligned
    /// right), for a terminal.
    pub fn to_text(&self) -> String {
        let widths: Vec<usize> = (0..self.header.len())
            .map(|j| {
                std::iter::once(&self.header)
                    .chain(&self.rows)
                    .map(|r| r.get(j).map_or(0, |c| c.chars().count()))
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let numeric = |c: &str| c.parse::<f64>().is_ok();
        let mut s = String::new();
        for row in std::iter::once(&self.header).chain(&self.rows) {
            let cells: Vec<String> = row
                .iter()
                .zip(&widths)
                .map(|(c, &w)| {
                    if numeric(c) {
                        format!("{c:>w$}")
                    } else {
                        format!("{c:<w$}")
                    }
                })
                .collect();
            let _ = writeln!(s, "{}", cells.join("  ").trim_end());
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_short_and_readable() {
        assert_eq!(short(2.5e-7), "2.5e-7");
        assert_eq!(short(0.125), "0.125");
        assert_eq!(short(0.0625), "0.0625");
        assert_eq!(short(1e-3), "1e-3");
        assert_eq!(short(1.0 / 128.0), "7.812e-3");
        assert_eq!(short(1e-300), "1e-300");
        assert_eq!(short(0.0), "0");
        assert_eq!(short(f64::NAN), "NaN");
    }

    #[test]
    fn tables_write_csv_and_text() {
        let mut t = Table::new(&["method", "steps", "accuracy"]);
        t.push(vec![cell("euler"), cell(Some(2usize)), cell(0.5)]);
        t.push(vec![cell("a,b"), cell(None::<usize>), cell(0.96125)]);
        assert_eq!(
            t.to_csv(),
            "method,steps,accuracy\neuler,2,0.5\n\"a,b\",,0.9613\n"
        );
        let text = t.to_text();
        assert!(text.starts_with("method  steps  accuracy\n"), "{text}");
        assert!(text.contains("euler       2       0.5"), "{text}");
    }
}
