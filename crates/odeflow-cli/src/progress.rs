//! Progress bars, spinners and log lines, all on stderr (stdout carries results only).
//!
//! Bars are drawn only when stderr is a terminal and `--quiet` is off; otherwise they are
//! hidden and cost nothing, so scripts and CI logs see clean output. Log lines
//! ([`Reporter::note`]) are printed unless `--quiet`.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// What every command gets for talking to the person running it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reporter {
    quiet: bool,
    draw_bars: bool,
}

impl Reporter {
    /// A reporter for this process: bars only on a terminal, nothing at all when `quiet`.
    pub fn new(quiet: bool) -> Self {
        Self {
            quiet,
            draw_bars: !quiet && std::io::stderr().is_terminal(),
        }
    }

    /// True when log lines are suppressed.
    pub fn is_quiet(&self) -> bool {
        self.quiet
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
