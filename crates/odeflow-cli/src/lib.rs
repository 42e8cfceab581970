//! The pieces of the `odeflow` command-line tool, as a library so that every command and
//! helper is reachable from tests and from later commands.
//!
//! Conventions every command follows: a short human summary of its result on stdout, the
//! JSON result instead with `--json`, and the JSON in the file `--out` names; progress bars and log lines go to stderr (hidden with `--quiet`, and bars only on a
//! terminal); plots are PNG or SVG by file extension. On failure the tool prints one line
//! `error: …` on stderr saying what to fix, and exits with code 2 for bad input or 1 for a
//! failure while working.
//!
//! * [`cli`]: the top-level clap parser and the error → exit-code mapping.
//! * [`commands`]: one module per command and the [`commands::Command`] enum that dispatches.
//! * [`plot`]: figures of labelled line/marker series, linear or log axes, PNG or SVG.
//! * [`output`]: results written atomically to `--out` or stdout.
//! * [`progress`]: indicatif bars and spinners on stderr, and log lines.
//! * [`args`]: value parsers shared by the commands' flags.
//! * [`error`]: the one-line error type and its exit codes.
#![warn(missing_docs)]

pub mod args;
pub mod cli;
pub mod commands;
pub mod device;
pub mod error;
pub mod output;
pub mod plot;
pub mod progress;
