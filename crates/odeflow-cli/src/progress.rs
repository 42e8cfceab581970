//! What a command says to the person running it: progress bars, spinners and log lines on
//! stderr (stdout carries results only), and the result itself — a short human summary on
//! stdout by default, the JSON with `--json`, the JSON in a file with `--out FILE`.
//!
//! Bars are drawn only when stderr is a terminal and `--quiet` is off; otherwise they are
//! hidden and cost nothing, so scripts and CI logs see clean output. Log lines
//! ([`Reporter::note`]) are printed unless `--quiet`.

use std::cell::RefCell;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use odeflow::runs::{CheckReport, EvalReport, Observer, RunSummary};
use serde::Serialize;

use crate::error::CliError;
use crate::output::{self, Layout};

/// What every command gets for talking to the person running it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reporter {
    quiet: bool,
    draw_bars: bool,
    json: bool,
    out: Option<PathBuf>,
}

impl Reporter {
    /// A reporter for this process: bars only on a terminal, nothing at all when `quiet`.
    pub fn new(quiet: bool) -> Self {
        Self {
            quiet,
            draw_bars: !quiet && std::io::stderr().is_terminal(),
            json: false,
            out: None,
        }
    }

    /// Results as JSON on stdout (`--json`) and/or in `out` (`--out FILE`).
    pub fn with_output(mut self, json: bool, out: Option<PathBuf>) -> Self {
        self.json = json;
        self.out = out;
        self
    }

    /// True when log lines are suppressed.
    pub fn is_quiet(&self) -> bool {
        self.quiet
    }

    /// True when the result goes to stdout as JSON (`--json`).
    pub fn is_json(&self) -> bool {
        self.json
    }

    /// The file `--out` names.
    pub fn out(&self) -> Option<&Path> {
        self.out.as_deref()
    }

    /// Emits a command's result: JSON into `--out` when given; then on stdout the JSON
    /// (`--json`) or the human summary `human()` (by default).
    pub fn result<V: Serialize>(
        &self,
        value: &V,
        human: impl FnOnce() -> String,
    ) -> Result<(), CliError> {
        self.result_layout(value, Layout::Pretty, human)
    }

    /// [`Reporter::result`] with a JSON layout (compact for large numeric results).
    pub fn result_layout<V: Serialize>(
        &self,
        value: &V,
        layout: Layout,
        human: impl FnOnce() -> String,
    ) -> Result<(), CliError> {
        if let Some(path) = &self.out {
            output::write_json(value, Some(path), layout)?;
        }
        if self.json {
            output::write_json(value, None, layout)
        } else {
            let mut text = human();
            if let Some(path) = &self.out {
                text.push_str(&format!("JSON result written to {}\n", path.display()));
            }
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            output::write_stdout(text.as_bytes())
        }
    }

    /// Prints one log line on stderr (unless quiet).
    pub fn note(&self, msg: impl AsRef<str>) {
        if !self.quiet {
            eprintln!("{}", msg.as_ref());
        }
    }

    /// A spinner with a message, for work of unknown length. Call
    /// [`ProgressBar::finish_and_clear`] when done.
    pub fn spinner(&self, msg: impl Into<String>) -> ProgressBar {
        let pb = ProgressBar::with_draw_target(None, self.target());
        pb.set_style(
            ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
                .expect("static template")
                .tick_strings(&["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏", "✓"]),
        );
        pb.set_message(msg.into());
        if self.draw_bars {
            pb.enable_steady_tick(Duration::from_millis(100));
        }
        pb
    }

    /// A bar of `len` units with a message, showing position, rate and time left.
    pub fn bar(&self, len: u64, msg: impl Into<String>) -> ProgressBar {
        let pb = ProgressBar::with_draw_target(Some(len), self.target());
        pb.set_style(
            ProgressStyle::with_template(
                "{msg} [{bar:40.cyan/blue}] {human_pos}/{human_len} ({per_sec}, {eta} left)",
            )
            .expect("static template")
            .progress_chars("=> "),
        );
        pb.set_message(msg.into());
        pb
    }

    fn target(&self) -> ProgressDrawTarget {
        if self.draw_bars {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        }
    }
}

/// The CLI's [`Observer`] of library pipeline calls: a bar per stage, log lines, and the
/// run folder's plots (`training.png` when a run is trained, `check.png` when it is
/// checked). A plot that cannot be written is reported as a log line at once, and
/// [`RunObserver::finish`] turns the first such error into the command's failure.
pub struct RunObserver<'a> {
    reporter: &'a Reporter,
    bar: RefCell<Option<(String, ProgressBar)>>,
    plot_error: RefCell<Option<CliError>>,
}

impl<'a> RunObserver<'a> {
    /// An observer drawing on `reporter`.
    pub fn new(reporter: &'a Reporter) -> Self {
        Self {
            reporter,
            bar: RefCell::new(None),
            plot_error: RefCell::new(None),
        }
    }

    /// Ends the command's use of the observer: the first plot that could not be written is
    /// the command's error (the pipeline's files are written either way).
    pub fn finish(self) -> Result<(), CliError> {
        match self.plot_error.into_inner() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn plot(&self, fig: &crate::plot::Figure, path: &Path) {
        if let Err(e) = crate::plot::save(fig, path) {
            self.reporter.note(format!("warning: {e}"));
            self.plot_error.borrow_mut().get_or_insert(e);
        }
    }
}

impl Observer for RunObserver<'_> {
    fn note(&self, message: &str) {
        self.reporter.note(message);
    }

    fn stage(&self, name: &str, len: u64) {
        let bar = self.reporter.bar(len, name.to_string());
        *self.bar.borrow_mut() = Some((name.to_string(), bar));
    }

    fn progress(&self, position: u64, status: &str) {
        if let Some((name, bar)) = self.bar.borrow().as_ref() {
            bar.set_position(position);
            if !status.is_empty() {
                bar.set_message(format!("{name}: {status}"));
            }
        }
    }

    fn stage_done(&self) {
        if let Some((_, bar)) = self.bar.borrow_mut().take() {
            bar.finish_and_clear();
        }
    }

    fn trained(&self, dir: &Path, summary: &RunSummary, log: &[serde_json::Value]) {
        let adapting = summary.adaptation.is_some() || summary.train.tol.is_some();
        let fig = crate::plot::runs::training_figure(
            &format!("training: {} on {}", summary.train.label(), summary.dataset),
            log,
            adapting,
        );
        self.plot(&fig, &dir.join(odeflow::runs::train::TRAINING_PLOT));
    }

    fn checked(&self, dir: &Path, report: &CheckReport, eval: &EvalReport) {
        let fig =
            crate::plot::runs::check_figure(eval, &report.verdict, "test accuracy by test solver");
        self.plot(&fig, &dir.join(&report.plot));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_hides_everything() {
        let r = Reporter::new(true);
        assert!(r.is_quiet());
        assert!(r.spinner("x").is_hidden());
        assert!(r.bar(10, "x").is_hidden());
    }
}
