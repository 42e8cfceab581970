//! The CLI's error type: a one-line message and the exit code it maps to.
//!
//! Bad input (an unknown name, a value out of range, a file that cannot be read) exits with
//! code 2 — the same code clap uses for malformed command lines; a failure while working (a
//! solver that stops mid-run, a file that cannot be written) exits with code 1. `main` prints
//! the message on one line of stderr; nothing is ever printed with `Debug`.

use std::fmt;

use odeflow::ArgError;

/// Exit code for bad input.
pub const EXIT_BAD_INPUT: u8 = 2;
/// Exit code for a failure at run time.
pub const EXIT_RUNTIME: u8 = 1;
/// Exit code of `odeflow check` for a model that is not a valid ODE flow.
pub const EXIT_NOT_VALID: u8 = 3;

/// A command's failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CliError {
    /// The user's input cannot be used; the message says what to change.
    Input(String),
    /// The work started and failed; the message says where and what to try.
    Runtime(String),
    /// The command finished and has already reported its outcome; exit with this code and
    /// print nothing more (e.g. `check` on a model that is not a valid ODE flow).
    Status(u8),
}

impl CliError {
    /// Bad input with a message.
    pub fn input(msg: impl Into<String>) -> Self {
        CliError::Input(one_line(msg.into()))
    }

    /// A run-time failure with a message.
    pub fn runtime(msg: impl Into<String>) -> Self {
        CliError::Runtime(one_line(msg.into()))
    }

    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Input(_) => EXIT_BAD_INPUT,
            CliError::Runtime(_) => EXIT_RUNTIME,
            CliError::Status(code) => *code,
        }
    }

    /// The message, without the `error:` prefix.
    pub fn message(&self) -> &str {
        match self {
            CliError::Input(m) | CliError::Runtime(m) => m,
            CliError::Status(_) => "",
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for CliError {}

impl From<odeflow::runs::RunError> for CliError {
    fn from(e: odeflow::runs::RunError) -> Self {
        use odeflow::runs::RunError;
        match e {
            RunError::Input(m) => CliError::Input(m),
            RunError::Runtime(m) | RunError::Cancelled(m) => CliError::Runtime(m),
        }
    }
}

impl From<ArgError> for CliError {
    fn from(e: ArgError) -> Self {
        CliError::input(e.to_string())
    }
}

/// Collapses a possibly multi-line message into one line (runs of whitespace become one
/// space), so that every error the CLI prints is exactly one line.
pub fn one_line(msg: String) -> String {
    if !msg.contains(['\n', '\r', '\t']) && !msg.contains("  ") {
        return msg;
    }
    msg.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_collapsed_to_one_line() {
        let e = CliError::input("the following arguments were missing:\n  --system <SYSTEM>\n");
        assert_eq!(
            e.message(),
            "the following arguments were missing: --system <SYSTEM>"
        );
        assert_eq!(e.exit_code(), EXIT_BAD_INPUT);
        assert_eq!(CliError::runtime("x").exit_code(), EXIT_RUNTIME);
    }

    #[test]
    fn arg_errors_are_bad_input() {
        let e: CliError = ArgError::NonPositiveStep(0.0).into();
        assert_eq!(e.exit_code(), EXIT_BAD_INPUT);
        assert!(e.message().contains("got 0"), "{}", e.message());
    }
}
