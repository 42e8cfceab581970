//! [`FolderLock`] between real processes: this test binary re-runs itself as a child
//! (selected by an environment variable) that holds or tries the lock on a folder.
//!
//! * A lock held by a child process is refused to the parent with a one-line message naming
//!   the child's PID and what it is doing; once the child is killed (SIGKILL: no destructor
//!   runs) the operating system releases the lock and the parent takes it.
//! * A lock held by the parent is refused to a child, naming the parent.
//! * A child that exits normally releases the lock as well.

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use odeflow::fsutil::{FolderLock, LockError, LOCK_FILE_NAME};

/// The folder a child works on; unset in the parent.
const DIR_VAR: &str = "ODEFLOW_FOLDER_LOCK_TEST_DIR";
/// `hold` (take the lock, wait for stdin to close) or `try` (write the outcome to a file).
const MODE_VAR: &str = "ODEFLOW_FOLDER_LOCK_TEST_MODE";

/// The child's side. In the parent (no environment variable) this test does nothing.
#[test]
fn child_process() {
    let Ok(dir) = std::env::var(DIR_VAR) else {
        return;
    };
    let dir = Path::new(&dir);
    match std::env::var(MODE_VAR).as_deref() {
        Ok("hold") => {
            let lock = FolderLock::acquire(dir, "train").expect("the child takes the lock");
            // Hold it until the parent closes our stdin (or kills us).
            let mut line = String::new();
            let _ = std::io::stdin().read_line(&mut line);
            drop(lock);
        }
        Ok("try") => {
            let outcome = match FolderLock::acquire(dir, "evaluate") {
                Ok(_) => "acquired".to_string(),
                Err(e) => e.to_string(),
            };
            std::fs::write(dir.join("outcome.txt"), outcome).unwrap();
        }
        other => panic!("unknown mode {other:?}"),
    }
}

fn spawn_child(dir: &Path, mode: &str) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_process", "--test-threads=1", "--quiet"])
        .env(DIR_VAR, dir)
        .env(MODE_VAR, mode)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// Waits until `cond` holds, for at most 30 s.
fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out: {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn wait_until_held_by(dir: &Path, pid: u32) {
    let lock_file = dir.join(LOCK_FILE_NAME);
    wait_for("the child to take the lock", || {
        std::fs::read_to_string(&lock_file).is_ok_and(|t| t.starts_with(&format!("{pid} ")))
    });
}

#[test]
fn a_lock_held_by_another_process_names_it_and_is_freed_when_it_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = spawn_child(dir.path(), "hold");
    let pid = child.id();
    wait_until_held_by(dir.path(), pid);

    let e = FolderLock::acquire(dir.path(), "resume").unwrap_err();
    match &e {
        LockError::Held { pid: p, what, .. } => {
            assert_eq!(*p, Some(pid));
            assert_eq!(what.as_deref(), Some("train"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        e.to_string(),
        format!(
            "the run folder '{}' is in use by process {pid} (train); wait for it or stop it",
            dir.path().display()
        )
    );

    // SIGKILL: no destructor runs, the record stays in the file, the OS drops the lock.
    child.kill().unwrap();
    child.wait().unwrap();
    let lock = FolderLock::acquire(dir.path(), "resume").expect("the lock of a dead process");
    let record = std::fs::read_to_string(lock.path()).unwrap();
    assert_eq!(record, format!("{} resume\n", std::process::id()));
}

#[test]
fn a_lock_held_here_is_refused_to_a_child_naming_this_process() {
    let dir = tempfile::tempdir().unwrap();
    let lock = FolderLock::acquire(dir.path(), "train").unwrap();
    let status = spawn_child(dir.path(), "try").wait().unwrap();
    assert!(status.success());
    let outcome = std::fs::read_to_string(dir.path().join("outcome.txt")).unwrap();
    assert_eq!(
        outcome,
        format!(
            "the run folder '{}' is in use by process {} (train); wait for it or stop it",
            dir.path().display(),
            std::process::id()
        )
    );
    // Released here, the child gets it.
    drop(lock);
    let status = spawn_child(dir.path(), "try").wait().unwrap();
    assert!(status.success());
    let outcome = std::fs::read_to_string(dir.path().join("outcome.txt")).unwrap();
    assert_eq!(outcome, "acquired");
}

#[test]
fn a_child_that_exits_normally_releases_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = spawn_child(dir.path(), "hold");
    wait_until_held_by(dir.path(), child.id());
    assert!(FolderLock::acquire(dir.path(), "x").is_err());
    // Closing its stdin ends the child's wait; it drops the lock and exits.
    let mut stdin = child.stdin.take().unwrap();
    let _ = stdin.write_all(b"\n");
    drop(stdin);
    assert!(child.wait().unwrap().success());
    // A normal release clears the record, so no stale PID is left behind.
    assert_eq!(
        std::fs::read_to_string(dir.path().join(LOCK_FILE_NAME)).unwrap(),
        ""
    );
    FolderLock::acquire(dir.path(), "x").unwrap();
}
