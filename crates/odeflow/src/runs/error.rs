//! [`RunError`]: why a pipeline call failed, as one line for people, with the kind a
//! front end needs to choose its exit code.

use std::fmt;

use crate::error::ArgError;

/// A pipeline failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunError {
    /// The input cannot be used (a bad name, value, file or folder); the message says what
    /// to change.
    Input(String),
    /// The work started and failed; the message says where and what to try.
    Runtime(String),
    /// The [`super::Observer`] asked to stop; what was done is saved (a run resumes bit for
    /// bit).
    Cancelled(String),
}

impl RunError {
    /// Bad input with a message (collapsed to one line).
    pub fn input(msg: impl Into<String>) -> Self {
        RunError::Input(one_line(msg.into()))
    }

    /// A run-time failure with a message (collapsed to one line).
    pub fn runtime(msg: impl Into<String>) -> Self {
        RunError::Runtime(one_line(msg.into()))
    }

    /// The message.
    pub fn message(&self) -> &str {
        match self {
            RunError::Input(m) | RunError::Runtime(m) | RunError::Cancelled(m) => m,
        }
    }
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for RunError {}

impl From<ArgError> for RunError {
    fn from(e: ArgError) -> Self {
        RunError::input(e.to_string())
    }
}

/// Collapses a possibly multi-line message into one line (runs of whitespace become one
/// space).
pub fn one_line(msg: String) -> String {
    if !msg.contains(['\n', '\r', '\t']) && !msg.contains("  ") {
        return msg;
    }
    msg.split_whitespace().collect::<Vec<_>>().join(" ")
}
