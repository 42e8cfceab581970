//! Helpers shared by the end-to-end tests of the `odeflow` binary: run it, read its JSON
//! (stdout or files), and check that a failure is one `error:` line naming the problem.
//!
//! Each test file is its own crate and uses only some helpers, hence the
//! `#[allow(dead_code)]` on those not every file needs.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

/// Runs `odeflow` in `dir` with a command line split on whitespace.
pub fn odeflow(dir: &Path, cmdline: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_odeflow"))
        .args(cmdline.split_whitespace())
        .current_dir(dir)
        .output()
        .expect("the odeflow binary runs")
}

/// The command's stderr as text.
#[allow(dead_code)]
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The command's stdout as text.
#[allow(dead_code)]
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The JSON result a command prints on stdout.
#[allow(dead_code)]
pub fn stdout_json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", stdout(out)))
}

/// Runs a command that must succeed.
#[allow(dead_code)]
pub fn ok(dir: &Path, cmdline: &str) -> Output {
    let out = odeflow(dir, cmdline);
    assert!(out.status.success(), "{cmdline}: {}", stderr(&out));
    out
}

/// Runs a command that must succeed with `--json` and returns its JSON result from stdout.
#[allow(dead_code)]
pub fn ok_json(dir: &Path, cmdline: &str) -> Value {
    let out = ok(dir, &format!("{cmdline} --json"));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{cmdline}: {e}"))
}

/// A JSON file.
#[allow(dead_code)]
pub fn json_file(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// A JSON array of numbers.
#[allow(dead_code)]
pub fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// Asserts a failure with exit code `code` and exactly one `error:` line on stderr
/// containing every `needle` (and no panic); `what` names the case in messages. Returns
/// that line.
#[allow(dead_code)]
pub fn one_line_failure(out: &Output, code: i32, what: &str, needles: &[&str]) -> String {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(code), "{what}: {err}");
    assert_eq!(err.lines().count(), 1, "{what}: not one line: {err}");
    assert!(err.starts_with("error: "), "{what}: {err}");
    for needle in needles {
        assert!(err.contains(needle), "{what}: '{needle}' missing in: {err}");
    }
    assert!(!err.contains("panicked") && !err.contains("RUST_BACKTRACE"));
    err
}

/// Runs `cmdline`, which must fail as [`one_line_failure`] says.
#[allow(dead_code)]
pub fn fails(dir: &Path, cmdline: &str, code: i32, needles: &[&str]) -> String {
    one_line_failure(&odeflow(dir, cmdline), code, cmdline, needles)
}
