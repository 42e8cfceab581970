//! The metrics log: one JSON object per line (JSON Lines), flushed as it is written.
//!
//! On resume from a checkpoint at iteration `k`, lines of later iterations (computed after
//! the checkpoint by the run that was killed) are dropped, so the log of a resumed run is the
//! log of an uninterrupted one.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::checkpoint::write_atomic;

/// An append-only JSON Lines file.
pub struct MetricsLog {
    path: PathBuf,
    out: BufWriter<File>,
}

impl MetricsLog {
    /// Creates (truncates) the log.
    pub fn create(path: &Path) -> std::io::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir)?;
        }
        let f = File::create(path)?;
        Ok(Self {
            path: path.to_path_buf(),
            out: BufWriter::new(f),
        })
    }

    /// Opens an existing log for a run resumed after iteration `iteration`: lines whose
    /// `"iteration"` is larger are removed, and so is the torn last line of a killed run
    /// (a last line without its newline that is not a whole record; it may end inside a
    /// multi-byte character: lines are read as bytes, not text). Any other line that is
    /// not a record is corruption, not a torn write: an error of kind `InvalidData` naming
    /// the line, and the file is left as it is.
    pub fn resume(path: &Path, iteration: u64) -> std::io::Result<Self> {
        if path.exists() {
            let mut kept = Vec::new();
            let bytes = fs::read(path)?;
            let lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
            for (k, line) in lines.iter().enumerate() {
                if line.is_empty() {
                    continue;
                }
                let it = serde_json::from_slice::<serde_json::Value>(line)
                    .ok()
                    .and_then(|v| v.get("iteration").and_then(|i| i.as_u64()));
                match it {
                    Some(i) if i <= iteration => {
                        kept.extend_from_slice(line);
                        kept.push(b'\n');
                    }
                    Some(_) => {}
                    // The last piece has no newline after it: a write cut short.
                    None if k + 1 == lines.len() => {}
                    None => {
                        let shown = String::from_utf8_lossy(&line[..line.len().min(60)]);
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::InvalidData,
                            format!(
                                "line {} is not a metrics record ('{shown}'): the log is corrupt; delete that line to resume without it",
                                k + 1
                            ),
                        ));
                    }
                }
            }
            write_atomic(path, &kept)?;
        }
        let f = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Self {
            path: path.to_path_buf(),
            out: BufWriter::new(f),
        })
    }

    /// Appends one record and flushes it.
    pub fn write<R: Serialize>(&mut self, record: &R) -> std::io::Result<()> {
        serde_json::to_writer(&mut self.out, record)?;
        self.out.write_all(b"\n")?;
        self.out.flush()
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Reads every record of a metrics log; an error names the file and the line.
pub fn read_log(path: &Path) -> std::io::Result<Vec<serde_json::Value>> {
    let mut out = Vec::new();
    for (n, line) in BufReader::new(File::open(path)?).split(b'\n').enumerate() {
        let line = line?;
        if line.trim_ascii().is_empty() {
            continue;
        }
        let v = serde_json::from_slice(&line).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{} line {}: {e}", path.display(), n + 1),
            )
        })?;
        out.push(v);
    }
    Ok(out)
}
