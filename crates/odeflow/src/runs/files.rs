//! Files of run and sweep folders: written atomically (temporary file in the same folder,
//! synced, renamed over the target), read with errors that name the file.

use std::fs;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::RunError;

/// Writes `bytes` to `path` atomically, creating parent folders. On failure the temporary
/// file is removed and `path` is left as it was.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), RunError> {
    crate::fsutil::write_atomic(path, bytes)
        .map_err(|e| RunError::runtime(format!("cannot write '{}': {e}", path.display())))
}

/// Takes the exclusive lock of the run or sweep folder `dir` (created when missing) for
/// `what` (`"train"`, `"check"`, …): a second writer gets one line naming the folder and
/// the holder's PID. Released when the returned value is dropped or the process dies.
pub fn lock(dir: &Path, what: &str) -> Result<crate::fsutil::FolderLock, RunError> {
    if !dir.exists() {
        crate::fsutil::create_folder(dir).map_err(|e| RunError::runtime(e.to_string()))?;
    }
    crate::fsutil::FolderLock::acquire(dir, what).map_err(|e| match e {
        crate::fsutil::LockError::Held { .. } => RunError::input(e.to_string()),
        _ => RunError::runtime(e.to_string()),
    })
}

/// Writes `value` as indented JSON (with a final newline) atomically.
pub fn write_json<V: Serialize>(value: &V, path: &Path) -> Result<(), RunError> {
    let mut text = serde_json::to_string_pretty(value)
        .map_err(|e| RunError::runtime(format!("cannot serialise '{}': {e}", path.display())))?;
    text.push('\n');
    write_atomic(path, text.as_bytes())
}

/// Writes `value` as one-line JSON atomically (for large numeric files).
pub fn write_json_compact<V: Serialize>(value: &V, path: &Path) -> Result<(), RunError> {
    let mut text = serde_json::to_string(value)
        .map_err(|e| RunError::runtime(format!("cannot serialise '{}': {e}", path.display())))?;
    text.push('\n');
    write_atomic(path, text.as_bytes())
}

/// Reads a JSON file written by odeflow; `what` names it in errors ("the evaluation report").
pub fn read_json<V: DeserializeOwned>(path: &Path, what: &str) -> Result<V, RunError> {
    let text = fs::read_to_string(path)
        .map_err(|e| RunError::input(format!("cannot read {what} '{}': {e}", path.display())))?;
    serde_json::from_str(&text).map_err(|e| {
        RunError::input(format!(
            "{what} '{}' is corrupt or truncated: {e}",
            path.display()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_writes_leave_no_temporary_file_and_failures_keep_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/result.json");
        write_json(&serde_json::json!({"x": [1, 2]}), &path).unwrap();
        let back: serde_json::Value = read_json(&path, "the result").unwrap();
        assert_eq!(back["x"][1], 2);
        let names: Vec<_> = fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(names.len(), 1);
        let blocker = dir.path().join("file");
        fs::write(&blocker, "x").unwrap();
        let e = write_atomic(&blocker.join("sub/out.json"), b"{}").unwrap_err();
        assert!(e.message().contains("out.json"), "{e}");
        assert_eq!(fs::read_to_string(&blocker).unwrap(), "x");
        let e = read_json::<serde_json::Value>(&blocker, "the report").unwrap_err();
        assert!(
            e.message().contains("the report") && e.message().contains("corrupt"),
            "{e}"
        );
    }
}
