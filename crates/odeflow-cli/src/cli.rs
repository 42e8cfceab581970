//! The top-level parser: global flags, subcommand dispatch, and every failure turned into one
//! line on stderr with exit code 2 (bad input, including malformed command lines) or 1 (a
//! failure while working).

use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::Parser;

use crate::commands::Command;
use crate::device::DeviceArg;
use crate::error::{one_line, CliError, EXIT_BAD_INPUT};
use crate::progress::Reporter;

/// Neural ODEs in which the numerical solver is part of the model.
#[derive(Debug, Parser)]
#[command(name = "odeflow", version, propagate_version = true)]
pub struct Cli {
    /// Hide progress bars and log messages on stderr.
    #[arg(long, short, global = true)]
    pub quiet: bool,

    /// Print the JSON result on stdout instead of the human summary.
    #[arg(long, global = true)]
    pub json: bool,

    /// Also write the JSON result to this file.
    #[arg(long, global = true, value_name = "FILE")]
    pub out: Option<std::path::PathBuf>,

    /// Step budget of every solve (overrides ODEFLOW_MAX_STEPS; default 1000000; for
    /// `solve`'s adaptive stepping, attempts, default 100000).
    #[arg(long, global = true, value_name = "N")]
    pub max_steps: Option<String>,

    /// Memory budget: bytes or with K/M/G/T, e.g. 4G (overrides ODEFLOW_MEMORY_BUDGET;
    /// default ¾ of the machine's memory).
    #[arg(long, global = true, value_name = "BYTES")]
    pub memory_budget: Option<String>,

    /// Where to compute: cpu (default) or cuda (an NVIDIA GPU; needs a binary built with
    /// `--features cuda`; `bench pendulum-mlp128-euler2` so far).
    #[arg(long, global = true, value_enum, default_value_t = DeviceArg::Cpu)]
    pub device: DeviceArg,

    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Parses the process arguments, runs the command, and returns the exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return clap_exit(&e),
    };
    if let Err(e) = apply_budget_flags(cli.max_steps.as_deref(), cli.memory_budget.as_deref()) {
        eprintln!("error: {e}");
        return ExitCode::from(e.exit_code());
    }
    if let Some(Err(e)) = cli.out.as_deref().map(crate::output::check_target) {
        eprintln!("error: --out: {e}");
        return ExitCode::from(e.exit_code());
    }
    let reporter = Reporter::new(cli.quiet).with_output(cli.json, cli.out.clone());
    match cli.command.run(&reporter, cli.device) {
        Ok(()) => ExitCode::SUCCESS,
        Err(CliError::Status(code)) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Checks `--max-steps` and `--memory-budget` and hands them to every budget check of the
/// library through the variables they override (`odeflow::budget::Budget::from_env`).
fn apply_budget_flags(max_steps: Option<&str>, memory: Option<&str>) -> Result<(), CliError> {
    use odeflow::budget::{Budget, MAX_STEPS_VAR, MEMORY_BUDGET_VAR};
    if max_steps.is_none() && memory.is_none() {
        return Ok(());
    }
    // Each flag is checked alone, so that the error names the flag and not the variable.
    if let Some(v) = max_steps {
        Budget::from_values(Some(v), None)
            .map_err(|e| CliError::input(e.to_string().replace(MAX_STEPS_VAR, "--max-steps")))?;
        // The process is single-threaded here; nothing reads the environment concurrently.
        std::env::set_var(MAX_STEPS_VAR, v);
    }
    if let Some(v) = memory {
        Budget::from_values(None, Some(v)).map_err(|e| {
            CliError::input(e.to_string().replace(MEMORY_BUDGET_VAR, "--memory-budget"))
        })?;
        std::env::set_var(MEMORY_BUDGET_VAR, v);
    }
    Ok(())
}

/// Help and version go out as clap prints them; every parse error becomes one line.
fn clap_exit(e: &clap::Error) -> ExitCode {
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(EXIT_BAD_INPUT))
        }
        _ => {
            eprintln!("error: {}", clap_message(&e.to_string()));
            ExitCode::from(EXIT_BAD_INPUT)
        }
    }
}

/// The message of a rendered clap error on one line: the text before the usage block,
/// without the `error:` prefix, followed by a pointer to `--help`.
fn clap_message(rendered: &str) -> String {
    let body: Vec<&str> = rendered
        .lines()
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .collect();
    let text = one_line(body.join(" "));
    let text = text.strip_prefix("error:").unwrap_or(&text).trim();
    format!("{text} (see --help)")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn clap_errors_become_one_line() {
        let e = Cli::try_parse_from(["odeflow", "solve", "--dt", "0.1"]).unwrap_err();
        let msg = clap_message(&e.to_string());
        assert!(!msg.contains('\n'));
        assert!(msg.contains("--system"), "{msg}");
        assert!(!msg.starts_with("error"), "{msg}");
    }
}
