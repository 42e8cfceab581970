//! `odeflow imde`: the inverse modified equation (or the classical modified equation) of a
//! method for a built-in system, at one point.
//!
//! ```text
//! odeflow imde --system pendulum --method euler --h 0.04 --order 3 --at 1,0.5
//! odeflow imde --system lorenz --method rk4 --h 0.04 --order 6 --terms
//! odeflow imde --system damped-cubic --tableau my_rk.toml --h 0.02 --expansion forward
//! ```
//!
//! The JSON result holds `system`, `method`, `expansion` (`inverse` or `forward`), `h`,
//! `order` (the truncation order K), `at` (the point), `field` (`f(y)`), `imde` (the
//! truncated series `Σ_{k≤K} h^k f_k(y)`; for `--expansion forward` the classical modified
//! field), `term_norms` (`‖h^k f_k(y)‖₂`, how fast the series decays), and with `--terms`
//! the terms `f_0(y), …, f_K(y)` themselves. Methods: every explicit tableau of `odeflow
//! methods`, `implicit-midpoint`, or a user tableau (`--tableau`); splitting methods are
//! partitioned methods outside B-series and are refused with a message saying so.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use odeflow::analysis::imde::{report_series, Expansion, ModifiedSeries, MAX_ORDER};
use odeflow::systems::System;
use odeflow::{ButcherTableau, Method};
use serde::Serialize;

use crate::args::{self, FloatList};
use crate::error::CliError;
use crate::progress::Reporter;

/// Which modified equation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExpansionArg {
    /// The IMDE `f_h` with `Φ_{h,f_h} = φ_{h,f}` (what a Neural ODE trained with the
    /// method learns).
    Inverse,
    /// The classical modified equation `f̃_h` with `Φ_{h,f} = φ_{h,f̃_h}`.
    Forward,
}

/// Flags of `odeflow imde`.
#[derive(Debug, Args)]
pub struct ImdeArgs {
    /// Built-in system: linear, harmonic, pendulum, damped-cubic, lorenz, kepler,
    /// lotka-volterra, van-der-pol.
    #[arg(long, value_name = "NAME")]
    system: String,

    /// Method name or alias (an explicit Runge–Kutta method or implicit-midpoint)
    /// [default: euler].
    #[arg(long, value_name = "NAME")]
    method: Option<String>,

    /// A user Butcher tableau (TOML, as for `odeflow solve`) instead of --method.
    #[arg(long, value_name = "FILE", conflicts_with = "method")]
    tableau: Option<PathBuf>,

    /// Step size h of the method.
    #[arg(long, value_name = "H", value_parser = args::finite, allow_hyphen_values = true)]
    h: f64,

    /// Truncation order K: the series is summed up to h^K f_K.
    #[arg(long, value_name = "K", default_value_t = 3)]
    order: usize,

    /// The point y, comma-separated in the system's state order [default: the system's demo
    /// state]; for `linear` its length sets the dimension.
    #[arg(long, value_name = "LIST", value_parser = args::float_list, allow_hyphen_values = true)]
    at: Option<FloatList>,

    /// Also print the terms f_0(y), …, f_K(y).
    #[arg(long)]
    terms: bool,

    /// Inverse (IMDE) or forward (classical modified equation).
    #[arg(long, value_enum, default_value_t = ExpansionArg::Inverse)]
    expansion: ExpansionArg,
}

/// The JSON result.
#[derive(Debug, Serialize)]
struct Output {
    system: String,
    state_names: Vec<String>,
    method: String,
    expansion: Expansion,
    h: f64,
    order: usize,
    at: Vec<f64>,
    field: Vec<f64>,
    imde: Vec<f64>,
    term_norms: Vec<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    terms: Option<Vec<Vec<f64>>>,
}

/// The method of `--method`/`--tableau`.
fn resolve_method(args: &ImdeArgs) -> Result<Method, CliError> {
    match &args.tableau {
        None => Ok(Method::from_name(
            args.method.as_deref().unwrap_or("euler"),
        )?),
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                CliError::input(format!(
                    "cannot read tableau file '{}': {e}",
                    path.display()
                ))
            })?;
            let t = ButcherTableau::from_toml(&text)
                .map_err(|e| CliError::input(format!("tableau file '{}': {e}", path.display())))?;
            Ok(Method::from_tableau(t))
        }
    }
}

/// Runs `odeflow imde`.
pub fn run(args: ImdeArgs, reporter: &Reporter) -> Result<(), CliError> {
    let (system, at) = args::system_and_state(&args.system, args.at.as_ref(), "--at")?;
    if args.h == 0.0 {
        return Err(CliError::input(
            "--h 0 is not a step: the modified equation of a zero step is the field itself; give a nonzero --h",
        ));
    }
    if args.order == 0 {
        return Err(CliError::input(
            "--order 0 keeps no term beyond the field itself; give --order 1 or more",
        ));
    }
    if args.order > MAX_ORDER {
        return Err(CliError::input(format!(
            "--order {} is too large: the series is computed up to order {MAX_ORDER}",
            args.order
        )));
    }
    let method = resolve_method(&args)?;
    let expansion = match args.expansion {
        ExpansionArg::Inverse => Expansion::Inverse,
        ExpansionArg::Forward => Expansion::Forward,
    };
    let spinner = reporter.spinner(format!(
        "{} modified equation of {} to order {}",
        expansion.name(),
        method.name(),
        args.order
    ));
    let series = ModifiedSeries::for_method(expansion, &method, args.order)?;
    let report = report_series(&system, &series, args.h, &at)?;
    spinner.finish_and_clear();
    let finite = |v: &[f64]| v.iter().all(|x| x.is_finite());
    if !(finite(&report.field) && finite(&report.imde) && finite(&report.term_norms)) {
        return Err(CliError::input(format!(
            "the modified equation at --at {} with --h {} overflows f64 (a term is not finite); give a smaller --h or a smaller --at",
            args::join(&at),
            odeflow::budget::readable(args.h)
        )));
    }
    let out = Output {
        system: system.name().to_string(),
        state_names: system.state_names(),
        method: report.method,
        expansion: report.expansion,
        h: report.h,
        order: report.order,
        at: report.at,
        field: report.field,
        imde: report.imde,
        term_norms: report.term_norms,
        terms: args.terms.then_some(report.terms),
    };
    let trees = series.num_trees();
    reporter.result(&out, || {
        let names = &out.state_names;
        let row = |v: &[f64]| -> String {
            v.iter()
                .map(|x| format!("{x:.6e}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut text = format!(
            "{} of {} for {} at h = {} ({trees} trees up to order {}), at ({}) = ({})\n",
            expansion.name(),
            out.method,
            out.system,
            out.h,
            out.order + 1,
            names.join(", "),
            row(&out.at)
        );
        text.push_str(&format!("  field f      = ({})\n", row(&out.field)));
        text.push_str(&format!("  modified f_h = ({})\n", row(&out.imde)));
        text.push_str(&format!(
            "  term norms   = {}\n",
            out.term_norms
                .iter()
                .map(|v| odeflow::report::short(*v))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        text
    })
}
