//! `odeflow solve`: one built-in ODE, one method, a JSON trajectory and an optional plot.
//!
//! ```text
//! odeflow solve --system pendulum --method verlet --dt 0.01 --t1 10 \
//!     --out pendulum.json --plot pendulum.png
//! odeflow solve --system lorenz --method dopri5 --rtol 1e-8 --atol 1e-10 --save-every 0.01
//! odeflow solve --system kepler --tableau my_rk.toml --steps 2000 --t-eval 0,5,10
//! ```
//!
//! Step placement: `--dt H` or `--steps N` give a fixed grid (any method); otherwise an
//! embedded pair steps adaptively with `--rtol`/`--atol` (defaults 1e-6/1e-9). Splitting
//! (symplectic) methods need a separable Hamiltonian system and are integrated with
//! `odeflow::solve_split`; every other method uses `odeflow::solve`.
//!
//! The JSON result holds `system`, `method`, `dtype`, `state_names`, `t0`, `t1`, `y0`,
//! `stepping`, `final` (the state reached), `t_final`, `t` and `y` (saved times and states;
//! every step unless `--save-every`/`--t-eval` say otherwise), `stats` (`nfe`, `steps`,
//! `accepted`, `rejected`, `h_min`, `h_max`, `implicit_iterations`), for systems with
//! conserved quantities `invariant_drift` (name → max |I(y) − I(y0)| over the saved states
//! and the final one), and, when the solver failed mid-run, `error`. A failed run still writes
//! its partial result (and plot) before exiting with code 1.

mod report;

use std::fs;
use std::path::PathBuf;

use crate::args::{self, FloatList};
use crate::error::CliError;
use crate::output::{self, Layout};
use crate::plot;
use crate::progress::Reporter;
use clap::{Args, ValueEnum};
use odeflow::solve::{method_catalogue, AdaptiveOptions, MethodKind, Rhs, SplitRhs};
use odeflow::systems::{BuiltinSystem, System, SystemField, SYSTEM_NAMES};
use odeflow::{
    solve, solve_split, Batch, ButcherTableau, FailReason, Failure, Method, Real, SaveAt, Solution,
    SolveError, SolveOptions, State, Stepping,
};

/// Method used when neither `--method` nor `--tableau` is given.
const DEFAULT_METHOD: &str = "dopri5";
/// Default relative tolerance of adaptive stepping.
const DEFAULT_RTOL: f64 = 1e-6;
/// Default absolute tolerance of adaptive stepping.
const DEFAULT_ATOL: f64 = 1e-9;
/// Default step budget of adaptive solves (attempts).
const DEFAULT_MAX_ADAPTIVE_STEPS: u64 = 100_000;
/// Default largest fixed grid.
const DEFAULT_MAX_FIXED_STEPS: u64 = 1_000_000;
/// Most save times `--save-every` may ask for.
const MAX_SAVE_POINTS: f64 = 10_000_000.0;

/// Scalar type of the computation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Dtype {
    /// Double precision.
    F64,
    /// Single precision.
    F32,
}

/// Flags of `odeflow solve`.
#[derive(Debug, Args)]
pub struct SolveArgs {
    /// Built-in system: linear, harmonic, pendulum, damped-cubic, lorenz, kepler,
    /// lotka-volterra, van-der-pol.
    #[arg(long, value_name = "NAME")]
    system: String,

    /// Method name or alias, see `odeflow methods` [default: dopri5].
    #[arg(long, value_name = "NAME")]
    method: Option<String>,

    /// A user Butcher tableau (TOML: name, order, c, a, b, optional b_embedded and
    /// embedded_order) to use instead of --method.
    #[arg(long, value_name = "FILE", conflicts_with = "method")]
    tableau: Option<PathBuf>,

    /// Initial time.
    #[arg(long, value_name = "T", default_value_t = 0.0, value_parser = args::finite, allow_hyphen_values = true)]
    t0: f64,

    /// Final time, below --t0 to integrate backwards [default: 1 for linear, 20 for kepler
    /// and van-der-pol, 10 for the others].
    #[arg(long, value_name = "T", value_parser = args::finite, allow_hyphen_values = true)]
    t1: Option<f64>,

    /// Initial state, comma-separated in the system's state order (e.g. 0,1 for pendulum's
    /// p,q) [default: the system's demo state].
    #[arg(long, value_name = "LIST", value_parser = args::float_list, allow_hyphen_values = true)]
    y0: Option<FloatList>,

    /// Fixed step size (the last step is shortened to land on --t1).
    #[arg(long, value_name = "H", value_parser = args::positive, allow_hyphen_values = true, conflicts_with = "steps")]
    dt: Option<f64>,

    /// Fixed number of equal steps.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    steps: Option<u64>,

    /// Relative tolerance of adaptive stepping (embedded methods without --dt/--steps)
    /// [default: 1e-6].
    #[arg(long, value_parser = args::positive, allow_hyphen_values = true, conflicts_with_all = ["dt", "steps"])]
    rtol: Option<f64>,

    /// Absolute tolerance of adaptive stepping [default: 1e-9].
    #[arg(long, value_parser = args::positive, allow_hyphen_values = true, conflicts_with_all = ["dt", "steps"])]
    atol: Option<f64>,

    /// Save at t0, t0+DT, t0+2·DT, … and t1 [default: save every step].
    #[arg(long, value_name = "DT", value_parser = args::positive, allow_hyphen_values = true, conflicts_with = "t_eval")]
    save_every: Option<f64>,

    /// Save at these times (comma-separated, monotone, inside [t0, t1]).
    #[arg(long, value_name = "LIST", value_parser = args::float_list, allow_hyphen_values = true)]
    t_eval: Option<FloatList>,

    /// Scalar type the solver computes in.
    #[arg(long, value_enum, default_value_t = Dtype::F64)]
    dtype: Dtype,

    /// Plot the states against t (and the phase portrait of 2-D systems) to a .png or .svg.
    #[arg(long, value_name = "FILE")]
    plot: Option<PathBuf>,
}

/// A validated solve: everything `odeflow::solve` needs.
struct Problem {
    system: BuiltinSystem,
    method: Method,
    y0: Vec<f64>,
    opts: SolveOptions,
}

/// Runs `odeflow solve`.
pub fn run(args: SolveArgs, reporter: &Reporter) -> Result<(), CliError> {
    if let Some(path) = &args.plot {
        plot::Format::from_path(path)?;
    }
    if let Some(path) = &args.plot {
        output::check_target(path)?;
    }
    let problem = build(&args)?;
    let spinner = reporter.spinner(format!(
        "solving {} with {}",
        problem.system.name(),
        problem.method.name()
    ));
    let result = match args.dtype {
        Dtype::F64 => integrate::<f64>(&problem),
        Dtype::F32 => integrate::<f32>(&problem),
    };
    spinner.finish_and_clear();
    let (solution, failure) = match result {
        Ok(sol) => (sol, None),
        Err(err) => {
            let message = err.to_string();
            match err {
                SolveError::Invalid(e) => return Err(e.into()),
                SolveError::Failed(f) => (f.partial, Some((message, f.reason))),
            }
        }
    };
    let summary = report::report(
        &problem,
        args.dtype,
        solution,
        failure.as_ref().map(|f| f.0.clone()),
    );
    if let Some(path) = reporter.out() {
        output::write_json(&summary, Some(path), Layout::Compact)?;
    }
    if let Some(path) = &args.plot {
        plot::save(
            &report::figure(&summary, problem.system.is_separable()),
            path,
        )?;
    }
    let written: Vec<String> = [reporter.out(), args.plot.as_deref()]
        .into_iter()
        .flatten()
        .map(|p| p.display().to_string())
        .collect();
    if let Some((message, reason)) = failure {
        let kept = match reporter.out() {
            Some(path) => format!("partial solution written to {}", path.display()),
            None if reporter.is_json() => {
                output::write_json(&summary, None, Layout::Compact)?;
                "partial solution printed on stdout".to_string()
            }
            None => "give --json or --out FILE to keep the partial solution".to_string(),
        };
        return Err(CliError::runtime(format!(
            "{message} ({kept}); {}",
            hint(&reason)
        )));
    }
    if let Some((name, d)) = summary
        .invariant_drift
        .iter()
        .flatten()
        .find(|(_, d)| !d.is_finite())
    {
        return Err(CliError::runtime(format!(
            "the {name} drift is {d}: the {name} overflowed f64 along the solution (the states grew too large); use a smaller --t1 or a smaller --y0"
        )));
    }
    let drift = summary
        .invariant_drift
        .iter()
        .flatten()
        .map(|(name, d)| format!(", {name} drift {d:.3e}"))
        .collect::<String>();
    let line = format!(
        "solved {} with {}: {} steps, {} evaluations{drift}{}",
        summary.system,
        summary.method,
        summary.stats.accepted,
        summary.stats.nfe,
        if written.is_empty() {
            String::new()
        } else {
            format!("; wrote {}", written.join(", "))
        }
    );
    if reporter.is_json() {
        output::write_json(&summary, None, Layout::Compact)
    } else {
        output::write_stdout(format!("{line}\n").as_bytes())
    }
}

/// What to try after a solver failure.
fn hint(reason: &FailReason) -> &'static str {
    match reason {
        FailReason::MaxSteps { .. } => "raise --max-steps, loosen --rtol/--atol, or shorten --t1",
        FailReason::StepUnderflow { .. } => {
            "the problem may be stiff or blow up near this time; loosen --rtol/--atol or shorten --t1"
        }
        FailReason::NonFinite { .. } => {
            "the solution blew up; use a smaller --dt or adaptive stepping (--rtol/--atol)"
        }
        FailReason::ImplicitNotConverged { .. } => "use a smaller --dt",
    }
}

/// Checks the flags against each other, the system and the method.
fn build(args: &SolveArgs) -> Result<Problem, CliError> {
    let (system, y0) = args::system_and_state(&args.system, args.y0.as_ref(), "--y0")?;
    check_state_fits(&system, &y0, args.dtype)?;
    let method = resolve_method(args)?;
    if let Method::Splitting(s) = &method {
        if !system.is_separable() {
            let separable: Vec<&str> = SYSTEM_NAMES
                .iter()
                .copied()
                .filter(|n| BuiltinSystem::from_name(n).is_ok_and(|s| s.is_separable()))
                .collect();
            return Err(CliError::input(format!(
                "method '{}' is a splitting method for separable Hamiltonian systems, but system '{}' is not separable; use it with {} or pick another method",
                s.name,
                system.name(),
                separable.join(", ")
            )));
        }
    }
    let t1 = args.t1.unwrap_or_else(|| default_t1(&system));
    let stepping = stepping(args, &method)?;
    let save = match (&args.t_eval, args.save_every) {
        (Some(list), _) => SaveAt::Times(list.0.clone()),
        (None, Some(every)) => SaveAt::Times(save_grid(args.t0, t1, every)?),
        (None, None) => SaveAt::Steps,
    };
    let adaptive = matches!(stepping, Stepping::Adaptive(_));
    // The global --max-steps (or ODEFLOW_MAX_STEPS) when given, else this command's defaults.
    let max_steps = match std::env::var(odeflow::budget::MAX_STEPS_VAR) {
        Ok(v) if !v.trim().is_empty() => odeflow::budget::Budget::from_env()
            .map_err(|e| CliError::input(e.to_string()))?
            .max_steps(),
        _ if adaptive => DEFAULT_MAX_ADAPTIVE_STEPS,
        _ => DEFAULT_MAX_FIXED_STEPS,
    };
    let opts = SolveOptions {
        t0: args.t0,
        t1,
        stepping,
        save,
        max_steps: usize::try_from(max_steps).unwrap_or(usize::MAX),
    };
    opts.validate()?;
    if !adaptive {
        check_grid_size(&opts, max_steps)?;
    }
    Ok(Problem {
        system,
        method,
        y0,
        opts,
    })
}

/// Refuses an initial state the computation cannot represent: a component beyond the
/// range of `dtype` (it would start as ±inf), or a conserved quantity that overflows f64 at
/// the start (its drift could not be measured). The message names the value given.
fn check_state_fits(system: &BuiltinSystem, y0: &[f64], dtype: Dtype) -> Result<(), CliError> {
    if dtype == Dtype::F32 {
        if let Some((i, v)) = y0
            .iter()
            .enumerate()
            .find(|(_, v)| v.abs() > f64::from(f32::MAX))
        {
            return Err(CliError::input(format!(
                "--y0 component {i} = {} does not fit in f32 (largest {:e}); use --dtype f64 or a smaller value",
                odeflow::budget::readable(*v),
                f32::MAX
            )));
        }
    }
    for (name, value) in system
        .invariant_names()
        .into_iter()
        .zip(system.invariants(y0))
    {
        if !value.is_finite() {
            return Err(CliError::input(format!(
                "--y0 {}: the {name} of this state is {value} in f64 arithmetic (it overflows), so its drift cannot be measured; give a smaller state",
                args::join(y0)
            )));
        }
    }
    Ok(())
}

fn resolve_method(args: &SolveArgs) -> Result<Method, CliError> {
    let Some(path) = &args.tableau else {
        return Ok(Method::from_name(
            args.method.as_deref().unwrap_or(DEFAULT_METHOD),
        )?);
    };
    let text = fs::read_to_string(path).map_err(|e| {
        CliError::input(format!(
            "cannot read tableau file '{}': {e}",
            path.display()
        ))
    })?;
    let tableau = ButcherTableau::from_toml(&text)
        .map_err(|e| CliError::input(format!("tableau file '{}': {e}", path.display())))?;
    Ok(Method::from_tableau(tableau))
}

/// Fixed grid from `--dt`/`--steps`, else adaptive stepping for embedded pairs.
fn stepping(args: &SolveArgs, method: &Method) -> Result<Stepping, CliError> {
    if let Some(dt) = args.dt {
        return Ok(Stepping::FixedStep(dt));
    }
    if let Some(n) = args.steps {
        return Ok(Stepping::FixedCount(usize::try_from(n).map_err(|_| {
            CliError::input(format!("--steps {n} is too large"))
        })?));
    }
    if !method.is_adaptive() {
        let embedded: Vec<String> = method_catalogue()
            .into_iter()
            .filter(|m| m.kind == MethodKind::Embedded)
            .map(|m| m.name)
            .collect();
        let asked = match (args.rtol, args.atol) {
            (None, None) => String::new(),
            _ => "--rtol/--atol need adaptive stepping, but ".to_string(),
        };
        return Err(CliError::input(format!(
            "{asked}method '{}' is fixed-step: give --dt or --steps, or pick an embedded pair for adaptive stepping ({})",
            method.name(),
            embedded.join(", ")
        )));
    }
    if let Some(rtol) = args.rtol {
        odeflow::budget::check_tolerance("--rtol", rtol)
            .map_err(|e| CliError::input(e.to_string()))?;
    }
    Ok(Stepping::Adaptive(AdaptiveOptions::new(
        args.rtol.unwrap_or(DEFAULT_RTOL),
        args.atol.unwrap_or(DEFAULT_ATOL),
    )))
}

/// The final time used when `--t1` is not given.
fn default_t1(system: &BuiltinSystem) -> f64 {
    match system {
        BuiltinSystem::Linear(_) => 1.0,
        BuiltinSystem::Kepler(_) | BuiltinSystem::VanDerPol(_) => 20.0,
        _ => 10.0,
    }
}

/// `t0, t0 ± every, …` up to and including `t1` (in the direction of integration).
fn save_grid(t0: f64, t1: f64, every: f64) -> Result<Vec<f64>, CliError> {
    let span = (t1 - t0).abs();
    let count = span / every;
    if count > MAX_SAVE_POINTS {
        return Err(CliError::input(format!(
            "--save-every {} on [{t0}, {t1}] would save {count:.3e} points, more than {MAX_SAVE_POINTS:e}; use a larger --save-every",
            odeflow::budget::readable(every)
        )));
    }
    let dir = if t1 >= t0 { 1.0 } else { -1.0 };
    // Points closer to t1 than a billionth of a step are t1 itself (rounding noise).
    let n = (count * (1.0 - 1e-12)).floor() as usize;
    let mut ts: Vec<f64> = (0..=n).map(|i| t0 + dir * every * i as f64).collect();
    if ts.last().is_none_or(|&t| (t1 - t).abs() > 1e-9 * every) {
        ts.push(t1);
    } else if let Some(last) = ts.last_mut() {
        *last = t1;
    }
    Ok(ts)
}

/// Refuses fixed grids longer than the step budget before allocating them.
fn check_grid_size(opts: &SolveOptions, budget: u64) -> Result<(), CliError> {
    let (steps, flag) = match opts.stepping {
        Stepping::FixedStep(h) => (
            ((opts.t1 - opts.t0).abs() / h).ceil(),
            format!("--dt {}", odeflow::budget::readable(h)),
        ),
        Stepping::FixedCount(n) => (n as f64, format!("--steps {n}")),
        Stepping::Adaptive(_) => return Ok(()),
    };
    if steps > budget as f64 {
        return Err(CliError::input(format!(
            "{flag} on [{}, {}] takes {} steps, more than --max-steps {budget}; raise --max-steps or take fewer, larger steps",
            opts.t0,
            opts.t1,
            odeflow::budget::readable_count(steps as u64)
        )));
    }
    Ok(())
}

/// Solves in the scalar type `T` and returns the solution (or the failure) in `f64`.
fn integrate<T: Real>(p: &Problem) -> Result<Solution<Vec<f64>>, SolveError<Vec<f64>>>
where
    SystemField<BuiltinSystem>: Rhs<Batch<T>> + SplitRhs<Batch<T>>,
{
    let y0 = Batch::from_row(&p.y0).cast::<T>();
    let mut field = SystemField(p.system.clone());
    let result = match p.method {
        Method::Splitting(_) => solve_split(&p.method, &mut field, &y0, &p.opts),
        _ => solve(&p.method, &mut field, &y0, &p.opts),
    };
    let to_f64 = |y: &Batch<T>| y.to_f64_vec();
    match result {
        Ok(sol) => Ok(sol.map_states(to_f64)),
        Err(SolveError::Invalid(e)) => Err(SolveError::Invalid(e)),
        Err(SolveError::Failed(f)) => Err(SolveError::Failed(Box::new(Failure {
            reason: f.reason,
            t: f.t,
            h: f.h,
            step: f.step,
            partial: f.partial.map_states(to_f64),
        }))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_grid_ends_exactly_at_t1() {
        assert_eq!(
            save_grid(0.0, 1.0, 0.25).unwrap(),
            vec![0.0, 0.25, 0.5, 0.75, 1.0]
        );
        let g = save_grid(0.0, 1.0, 0.1).unwrap();
        assert_eq!(g.len(), 11);
        assert_eq!(*g.last().unwrap(), 1.0);
        assert!(g.windows(2).all(|w| w[1] > w[0]));
        assert_eq!(
            save_grid(0.0, 1.0, 0.3).unwrap(),
            vec![0.0, 0.3, 0.6, 0.8999999999999999, 1.0]
        );
        assert_eq!(
            save_grid(2.0, 0.0, 0.5).unwrap(),
            vec![2.0, 1.5, 1.0, 0.5, 0.0]
        );
        assert_eq!(save_grid(0.0, 1.0, 5.0).unwrap(), vec![0.0, 1.0]);
        assert!(save_grid(0.0, 1e3, 1e-6).is_err());
    }

    #[test]
    fn grids_beyond_the_budget_are_refused_before_solving() {
        let opts = SolveOptions::fixed(0.0, 10.0, 0.01);
        assert!(check_grid_size(&opts, 1000).is_ok());
        let e = check_grid_size(&opts, 999).unwrap_err();
        assert!(
            e.message().contains("1000 steps") && e.message().contains("--dt 0.01"),
            "{e}"
        );
        assert!(check_grid_size(&SolveOptions::steps(0.0, 1.0, 5), 4).is_err());
    }

    #[test]
    fn every_system_has_a_default_horizon() {
        for name in SYSTEM_NAMES {
            let s = BuiltinSystem::from_name(name).unwrap();
            assert!(default_t1(&s) > 0.0);
        }
    }
}
