//! Tests of the data module.

mod cifar;
mod dataset;
mod io;
mod mnist;
mod spheres;
mod trajectories;

use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `dir/name`, gzip-compressed when the name ends in `.gz`.
pub(super) fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.join(name);
    if name.ends_with(".gz") {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(bytes).unwrap();
        std::fs::write(&path, enc.finish().unwrap()).unwrap();
    } else {
        std::fs::write(&path, bytes).unwrap();
    }
    path
}
