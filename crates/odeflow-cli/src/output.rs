//! Where results go: JSON on stdout or in the file `--out` names, written atomically.
//!
//! A file is never left half-written: the bytes go to a temporary file in the target's
//! folder (same extension, so format-sniffing writers such as plotters' PNG encoder still
//! work), which is then renamed over the target. Missing parent folders are created.

use std::io::{self, Write};
use std::path::Path;

use serde::Serialize;

use crate::error::CliError;

/// How JSON is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// One line (for large numeric results).
    Compact,
    /// Indented (for small listings people read).
    Pretty,
}

/// Serialises `value` and writes it to `out`, or to stdout when `out` is `None`. The text
/// ends with a newline.
pub fn write_json<T: Serialize>(
    value: &T,
    out: Option<&Path>,
    layout: Layout,
) -> Result<(), CliError> {
    let mut text = match layout {
        Layout::Compact => serde_json::to_string(value),
        Layout::Pretty => serde_json::to_string_pretty(value),
    }
    .map_err(|e| CliError::runtime(format!("cannot serialise the result as JSON: {e}")))?;
    text.push('\n');
    match out {
        Some(path) => write_atomic(path, text.as_bytes()),
        None => write_stdout(text.as_bytes()),
    }
}

/// Writes `bytes` to stdout. A closed pipe (`odeflow methods | head`) is not an error.
pub fn write_stdout(bytes: &[u8]) -> Result<(), CliError> {
    let mut out = io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
            Err(CliError::runtime(format!("cannot write to stdout: {e}")))
        }
        _ => Ok(()),
    }
}

/// Writes `bytes` to `path` atomically, creating parent folders (the library's
/// [`odeflow::runs::files::write_atomic`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), CliError> {
    Ok(odeflow::runs::files::write_atomic(path, bytes)?)
}

/// Checks, before any work, that a file can be put at `path`: it is not a folder, and no
/// part of its folder is a regular file. The message says what the path is.
pub fn check_target(path: &Path) -> Result<(), CliError> {
    if path.is_dir() {
        return Err(CliError::input(format!(
            "cannot write the file '{}': it is a directory; give a file name",
            path.display()
        )));
    }
    if let Some(b) = path
        .ancestors()
        .skip(1)
        .filter(|a| !a.as_os_str().is_empty())
        .find(|a| std::fs::symlink_metadata(a).is_ok() && !a.is_dir())
    {
        return Err(CliError::input(format!(
            "cannot write the file '{}': '{}' is {}, not a folder",
            path.display(),
            b.display(),
            odeflow::fsutil::describe_path(b)
        )));
    }
    Ok(())
}

/// Lets `write` produce the file at a temporary path next to `path` (same extension, so
/// format-sniffing encoders work), then renames it into place
/// ([`odeflow::fsutil::write_atomic_with`]). On failure the temporary file is removed and
/// `path` is left untouched.
pub fn write_via_temp(
    path: &Path,
    write: impl FnOnce(&Path) -> Result<(), CliError>,
) -> Result<(), CliError> {
    let mut failed = None;
    odeflow::fsutil::write_atomic_with(path, |tmp| {
        write(tmp).map_err(|e| {
            let msg = e.to_string();
            failed = Some(e);
            io::Error::other(msg)
        })
    })
    .map_err(|e| {
        failed
            .take()
            .unwrap_or_else(|| CliError::runtime(format!("cannot write '{}': {e}", path.display())))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn atomic_write_creates_folders_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/result.json");
        write_json(
            &serde_json::json!({"x": [1, 2]}),
            Some(&path),
            Layout::Compact,
        )
        .unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "{\"x\":[1,2]}\n");
        // Overwriting replaces the content.
        write_atomic(&path, b"new").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        let names: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("result.json")]);
    }

    #[test]
    fn a_failed_write_leaves_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keep.txt");
        fs::write(&path, "old").unwrap();
        let e = write_via_temp(&path, |_| Err(CliError::runtime("boom"))).unwrap_err();
        assert_eq!(e.message(), "boom");
        assert_eq!(fs::read_to_string(&path).unwrap(), "old");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn images_keep_their_extension_while_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out/plot.png");
        write_via_temp(&path, |tmp| {
            assert_eq!(tmp.extension().unwrap(), "png");
            assert_eq!(tmp.parent().unwrap(), path.parent().unwrap());
            assert!(tmp
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(".plot."));
            fs::write(tmp, b"img").map_err(|e| CliError::runtime(e.to_string()))
        })
        .unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"img");
        assert_eq!(fs::read_dir(path.parent().unwrap()).unwrap().count(), 1);
    }

    #[test]
    fn unwritable_targets_name_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        fs::write(&blocker, "x").unwrap();
        let e = write_atomic(&blocker.join("sub/out.json"), b"{}").unwrap_err();
        assert!(e.message().contains("out.json"), "{e}");
    }
}
