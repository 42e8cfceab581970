//! `odeflow`: the command-line tool of the odeflow library (see the `odeflow_cli` crate docs
//! for the conventions every command follows).

fn main() -> std::process::ExitCode {
    odeflow_cli::cli::main()
}
