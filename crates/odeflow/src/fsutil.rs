//! File-system building blocks for reliable runs: atomic writes, a per-folder lock, and
//! words for what a path is.
//!
//! * [`write_atomic`] writes a file so that a reader (or a crash) sees either the old or the
//!   new contents, never a torn file: the bytes go to a hidden temporary file
//!   `.<name>.<pid>.tmp.<ext>` in the same folder, are synced to disk, and the temporary file
//!   is renamed over the target. On failure the temporary file is removed.
//! * [`FolderLock`] is an exclusive advisory lock on `<dir>/.odeflow.lock`, held by the
//!   operating system for an open file ([`std::fs::File::try_lock`]), so it is released when
//!   the holder exits, however it exits (a killed process leaves no stale lock). The holder
//!   writes its PID and what it is doing into the file, so that a second process can say
//!   who holds the folder ([`LockError`]).
//! * [`describe_path`] says what is at a path ("a regular file", "a directory", "missing",
//!   …) for error messages such as "expected a run folder, but 'x' is a regular file".

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use thiserror::Error;

/// The name of the lock file [`FolderLock`] creates in the folder it locks.
pub const LOCK_FILE_NAME: &str = ".odeflow.lock";

/// Distinguishes temporary files of concurrent writers within one process.
static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// The temporary sibling of `path` used by [`write_atomic`]: `.<stem>.<pid>.tmp.<ext>`
/// (`.<name>.<pid>.tmp` without an extension); `attempt > 0` adds a counter after the PID,
/// for a second writer of the same file in the same process.
fn temp_path(path: &Path, attempt: u64) -> io::Result<PathBuf> {
    let stem = path.file_stem().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("'{}' does not name a file", path.display()),
        )
    })?;
    let pid = std::process::id();
    let mut name = std::ffi::OsString::from(".");
    name.push(stem);
    name.push(format!(".{pid}"));
    if attempt > 0 {
        name.push(format!(".{attempt}"));
    }
    name.push(".tmp");
    if let Some(ext) = path.extension() {
        name.push(".");
        name.push(ext);
    }
    Ok(path.with_file_name(name))
}

/// Adds the file name and the step that failed to an I/O error, keeping its kind.
fn context(e: io::Error, what: &str, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{what} '{}': {e}", path.display()))
}

/// Writes `bytes` to `path` atomically: into a temporary file `.<name>.<pid>.tmp.<ext>` in
/// the same folder, synced to disk, then renamed over `path` (and the folder synced, so the
/// rename survives a power cut). Missing parent folders are created. On any failure the
/// temporary file is removed and `path` is left as it was. Errors keep their
/// [`io::ErrorKind`] and name the file.
pub fn write_atomic(path: impl AsRef<Path>, bytes: &[u8]) -> io::Result<()> {
    write_atomic_with(path.as_ref(), |tmp| {
        let mut file = OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(tmp)
            .map_err(|e| context(e, "cannot open", tmp))?;
        file.write_all(bytes)
            .map_err(|e| context(e, "cannot write", tmp))
    })
}

/// The general form of [`write_atomic`] for writers that insist on a path (an image
/// encoder): `write` fills the (already created, empty) temporary file at the path it is
/// given, which is then synced and renamed over `path`. On any failure, `write`'s included,
/// the temporary file is removed, `path` is left as it was and `write`'s error is returned.
pub fn write_atomic_with<E: From<io::Error>>(
    path: &Path,
    write: impl FnOnce(&Path) -> Result<(), E>,
) -> Result<(), E> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    if let Some(dir) = dir {
        create_folder(dir)?;
    }
    // A fresh temporary file: never write into one another writer may be using. The plain
    // name is tried first; a second writer of the same file in this process (or a file left
    // by a crashed process whose PID was reused) moves on to names with a counter.
    let mut attempt = 0;
    let tmp = loop {
        let tmp = temp_path(path, attempt)?;
        match OpenOptions::new().write(true).create_new(true).open(&tmp) {
            Ok(_) => break tmp,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < 1_000_000 => {
                attempt = TMP_COUNTER.fetch_add(1, Ordering::Relaxed) + 1;
            }
            Err(e) => return Err(context(e, "cannot create the temporary file", &tmp).into()),
        }
    };
    let result = write(&tmp).and_then(|()| {
        let sync = File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(|e| context(e, "cannot sync", &tmp));
        sync.and_then(|()| {
            fs::rename(&tmp, path).map_err(|e| {
                let e = context(e, "cannot replace", path);
                io::Error::new(e.kind(), format!("{e} (it is {})", describe_path(path)))
            })
        })
        .map_err(E::from)
    });
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
        return result;
    }
    // Make the rename durable; some file systems cannot sync a folder, which is harmless.
    #[cfg(unix)]
    if let Ok(d) = File::open(dir.unwrap_or(Path::new("."))) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Creates the folder `dir` and its parents. When a part of the path exists but is not a
/// folder, the error says which part and what it is ("'out' is a regular file"), not the
/// bare "File exists" of the OS.
pub fn create_folder(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir).map_err(|e| {
        let blocker = dir
            .ancestors()
            .filter(|a| !a.as_os_str().is_empty())
            .find(|a| fs::symlink_metadata(a).is_ok() && !a.is_dir());
        match blocker {
            Some(b) => io::Error::new(
                e.kind(),
                format!(
                    "cannot create the folder '{}': '{}' is {}, not a folder",
                    dir.display(),
                    b.display(),
                    describe_path(b)
                ),
            ),
            None => context(e, "cannot create the folder", dir),
        }
    })
}

/// What is at `p`, in words for messages: "a regular file", "a directory", "a symlink",
/// "a broken symlink", "a FIFO", "a socket", "a block device", "a character device",
/// "missing", or "inaccessible" (when even its metadata cannot be read). Symlinks are not
/// followed.
pub fn describe_path(p: impl AsRef<Path>) -> &'static str {
    let p = p.as_ref();
    let meta = match fs::symlink_metadata(p) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return "missing",
        Err(_) => return "inaccessible",
    };
    let ft = meta.file_type();
    if ft.is_symlink() {
        return if fs::metadata(p).is_ok() {
            "a symlink"
        } else {
            "a broken symlink"
        };
    }
    if ft.is_dir() {
        return "a directory";
    }
    if ft.is_file() {
        return "a regular file";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if ft.is_fifo() {
            return "a FIFO";
        }
        if ft.is_socket() {
            return "a socket";
        }
        if ft.is_block_device() {
            return "a block device";
        }
        if ft.is_char_device() {
            return "a character device";
        }
    }
    "a special file"
}

/// Why a [`FolderLock`] could not be taken.
#[derive(Debug, Error)]
pub enum LockError {
    /// Another process (or another lock in this process) holds the folder.
    #[error(
        "the run folder '{}' is in use by {}; wait for it or stop it",
        dir.display(),
        holder_words(*pid, what.as_deref())
    )]
    Held {
        /// The folder.
        dir: PathBuf,
        /// The holder's PID, when the lock file names it.
        pid: Option<u32>,
        /// What the holder is doing (e.g. `"train"`), when the lock file says.
        what: Option<String>,
    },
    /// The folder is not a folder, or the lock file cannot be created, read or locked.
    #[error("cannot lock the run folder '{}': {reason}", dir.display())]
    Io {
        /// The folder.
        dir: PathBuf,
        /// What failed, in one line.
        reason: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

/// "process 1234 (train)", or less when the lock file does not say.
fn holder_words(pid: Option<u32>, what: Option<&str>) -> String {
    match (pid, what) {
        (Some(p), Some(w)) => format!("process {p} ({w})"),
        (Some(p), None) => format!("process {p}"),
        (None, _) => "another process".to_string(),
    }
}

/// An exclusive advisory lock on a folder: the operating-system lock of an open
/// `<dir>/.odeflow.lock`, whose contents name the holder (`<pid> <what>`).
///
/// The lock is released when the value is dropped or the process exits (however it exits).
/// It is advisory: it excludes other [`FolderLock`]s on the same folder, from this or any
/// other process, and nothing else. The lock file itself is left in place (removing a
/// locked file would let two processes lock two different files of the same name).
#[derive(Debug)]
pub struct FolderLock {
    file: File,
    dir: PathBuf,
}

impl FolderLock {
    /// Locks `dir`, which must exist, recording this process's PID and `what` (a short word
    /// such as `"train"`; line breaks are replaced by spaces). Fails at once, without
    /// waiting, with [`LockError::Held`] naming the holder when the folder is locked.
    pub fn acquire(dir: impl AsRef<Path>, what: &str) -> Result<FolderLock, LockError> {
        let dir = dir.as_ref().to_path_buf();
        let io_err = |reason: String, source: io::Error| LockError::Io {
            dir: dir.clone(),
            reason,
            source,
        };
        if !dir.is_dir() {
            let kind = describe_path(&dir);
            return Err(io_err(
                format!("it is {kind}, not a folder"),
                io::Error::new(io::ErrorKind::NotADirectory, kind),
            ));
        }
        let path = dir.join(LOCK_FILE_NAME);
        // Neither truncate nor write before holding the lock: the holder's record is there.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| io_err(format!("cannot open '{}': {e}", path.display()), e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                let (pid, what) = read_holder(&mut file);
                return Err(LockError::Held { dir, pid, what });
            }
            Err(fs::TryLockError::Error(e)) => {
                return Err(io_err(format!("cannot lock '{}': {e}", path.display()), e))
            }
        }
        let record = format!(
            "{} {}\n",
            std::process::id(),
            what.replace(['\n', '\r'], " ").trim()
        );
        let written = file
            .set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)))
            .and_then(|_| file.write_all(record.as_bytes()))
            .and_then(|()| file.sync_data());
        if let Err(e) = written {
            return Err(io_err(format!("cannot write '{}': {e}", path.display()), e));
        }
        Ok(FolderLock { file, dir })
    }

    /// The locked folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The lock file, `<dir>/.odeflow.lock`.
    pub fn path(&self) -> PathBuf {
        self.dir.join(LOCK_FILE_NAME)
    }

    /// Releases the lock now (dropping the value does the same).
    pub fn release(self) {}
}

impl Drop for FolderLock {
    fn drop(&mut self) {
        // Clear the record while still holding the lock, so that a later reader never
        // names a process that has gone; closing the file releases the lock.
        let _ = self.file.set_len(0);
        let _ = self.file.unlock();
    }
}

/// The `(pid, what)` a holder wrote into the lock file. The holder writes just after it
/// locks, so an empty file is read again a few times before giving up on the names.
fn read_holder(file: &mut File) -> (Option<u32>, Option<String>) {
    for attempt in 0..5 {
        let mut text = String::new();
        let read = file
            .seek(SeekFrom::Start(0))
            .and_then(|_| file.take(4096).read_to_string(&mut text));
        if read.is_ok() && !text.trim().is_empty() {
            return parse_holder(&text);
        }
        if attempt < 4 {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    (None, None)
}

/// Parses `<pid> <what>` (either part may be missing or malformed).
fn parse_holder(text: &str) -> (Option<u32>, Option<String>) {
    let line = text.lines().next().unwrap_or("").trim();
    let (pid, what) = line.split_once(' ').unwrap_or((line, ""));
    let what = what.trim();
    (
        pid.parse().ok(),
        (!what.is_empty()).then(|| what.chars().take(80).collect()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_keep_the_extension_and_name_the_pid() {
        let pid = std::process::id();
        let t = temp_path(Path::new("/r/checkpoint.json"), 0).unwrap();
        assert_eq!(t, PathBuf::from(format!("/r/.checkpoint.{pid}.tmp.json")));
        let t = temp_path(Path::new("/r/LOG"), 0).unwrap();
        assert_eq!(t, PathBuf::from(format!("/r/.LOG.{pid}.tmp")));
        let t = temp_path(Path::new("/r/a.tar.gz"), 3).unwrap();
        assert_eq!(t, PathBuf::from(format!("/r/.a.tar.{pid}.3.tmp.gz")));
        assert!(temp_path(Path::new("/"), 0).is_err());
    }

    #[test]
    fn write_atomic_creates_replaces_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/deeper/out.json");
        write_atomic(&p, b"one").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"one");
        write_atomic(&p, b"two, longer").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two, longer");
        let names: Vec<_> = fs::read_dir(p.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("out.json")]);
    }

    #[test]
    fn write_atomic_failure_removes_the_temporary_and_keeps_the_target() {
        let dir = tempfile::tempdir().unwrap();
        // The target is a non-empty folder: the rename fails.
        let target = dir.path().join("taken.json");
        fs::create_dir(&target).unwrap();
        fs::write(target.join("inside"), b"x").unwrap();
        let e = write_atomic(&target, b"data").unwrap_err();
        assert!(e.to_string().contains("taken.json"), "{e}");
        assert!(e.to_string().contains("a directory"), "{e}");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("taken.json")]);
        assert!(target.join("inside").is_file());
    }

    #[test]
    fn write_atomic_under_a_file_fails_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plain");
        fs::write(&file, b"x").unwrap();
        let e = write_atomic(file.join("child.txt"), b"data").unwrap_err();
        assert!(e.to_string().contains("plain"), "{e}");
    }

    #[test]
    fn concurrent_writers_of_one_file_in_one_process_do_not_collide() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("shared.txt");
        std::thread::scope(|s| {
            for i in 0..8u8 {
                let p = &p;
                s.spawn(move || {
                    for _ in 0..20 {
                        write_atomic(p, &[i; 1000]).unwrap();
                    }
                });
            }
        });
        let bytes = fs::read(&p).unwrap();
        assert_eq!(bytes.len(), 1000);
        assert!(bytes.iter().all(|&b| b == bytes[0]), "a torn write");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn describe_path_names_each_kind() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        fs::write(&f, b"").unwrap();
        assert_eq!(describe_path(dir.path()), "a directory");
        assert_eq!(describe_path(&f), "a regular file");
        assert_eq!(describe_path(dir.path().join("nope")), "missing");
        #[cfg(unix)]
        {
            let link = dir.path().join("link");
            std::os::unix::fs::symlink(&f, &link).unwrap();
            assert_eq!(describe_path(&link), "a symlink");
            let broken = dir.path().join("broken");
            std::os::unix::fs::symlink(dir.path().join("nope"), &broken).unwrap();
            assert_eq!(describe_path(&broken), "a broken symlink");
            assert_eq!(describe_path("/dev/null"), "a character device");
        }
    }

    #[test]
    fn a_second_lock_on_a_folder_fails_naming_the_holder_and_succeeds_after_release() {
        let dir = tempfile::tempdir().unwrap();
        let first = FolderLock::acquire(dir.path(), "train").unwrap();
        let text = fs::read_to_string(first.path()).unwrap();
        assert_eq!(text, format!("{} train\n", std::process::id()));
        let e = FolderLock::acquire(dir.path(), "resume").unwrap_err();
        match &e {
            LockError::Held { pid, what, .. } => {
                assert_eq!(*pid, Some(std::process::id()));
                assert_eq!(what.as_deref(), Some("train"));
            }
            other => panic!("{other:?}"),
        }
        let msg = e.to_string();
        assert_eq!(
            msg,
            format!(
                "the run folder '{}' is in use by process {} (train); wait for it or stop it",
                dir.path().display(),
                std::process::id()
            )
        );
        assert!(!msg.contains('\n'));
        first.release();
        let second = FolderLock::acquire(dir.path(), "resume").unwrap();
        assert!(fs::read_to_string(second.path())
            .unwrap()
            .ends_with(" resume\n"));
    }

    #[test]
    fn locking_a_missing_folder_or_a_file_says_what_is_there() {
        let dir = tempfile::tempdir().unwrap();
        let e = FolderLock::acquire(dir.path().join("nope"), "train").unwrap_err();
        assert!(e.to_string().contains("it is missing, not a folder"), "{e}");
        let f = dir.path().join("f");
        fs::write(&f, b"").unwrap();
        let e = FolderLock::acquire(&f, "train").unwrap_err();
        assert!(
            e.to_string().contains("it is a regular file, not a folder"),
            "{e}"
        );
    }

    #[test]
    fn holder_records_are_parsed_leniently() {
        assert_eq!(
            parse_holder("1234 train\n"),
            (Some(1234), Some("train".into()))
        );
        assert_eq!(parse_holder("1234"), (Some(1234), None));
        assert_eq!(parse_holder("garbage"), (None, None));
        assert_eq!(parse_holder("x y z"), (None, Some("y z".into())));
        assert_eq!(holder_words(None, Some("train")), "another process");
    }
}
