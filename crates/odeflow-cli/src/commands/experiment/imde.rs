//! `odeflow experiment imde`: what a Neural ODE learns is the inverse modified equation
//! (Zhu et al., ICML 2022, §5.1).
//!
//! ```text
//! odeflow experiment imde                                  # pendulum, euler, minutes
//! odeflow experiment imde --methods euler,midpoint --order 6 --out-dir results/imde
//! odeflow experiment imde --iterations 300000 --seeds 5 --train-points 10000 --test-points 2000
//! ```
//!
//! For each method: trains the MLP `dim → hidden → hidden → dim` (tanh, orthogonal init) on
//! pairs `(x, φ_T(x))` of the system's preset data with `S` steps of the method (`h = T/S`),
//! full batch, Adam with the learning rate decaying exponentially from `--lr` to
//! `--final-lr`, at every `T` of `--t-values` (`S = 1`) and every `S` of `--s-values` (`T =
//! --t`), once per seed; measures `error(g₁, g₂)` = mean over the test inputs of
//! `‖g₁(y) − g₂(y)‖_∞` of the learned field against the true field and against the IMDE
//! truncated at `--order`; fits log–log slopes in `h`.
//!
//! Output folder (`--out-dir`, default `results/imde`): `imde.json` (every number,
//! including every run and the rollouts), `sweeps.csv` (one row per run), `rollouts.csv`,
//! and the plots `errors_vs_T.png`, `errors_vs_S.png` (log–log, fitted slopes in the
//! legend), `field_errors.png` (bars at `T = --t`, `S = 1`) and `rollouts.png` (flows of
//! the true, IMDE and learned fields from `--rollout-y0`). The summary JSON (slopes and
//! errors) goes to stdout or `--out`.

use std::path::PathBuf;

use clap::Args;
use odeflow::analysis::imde::learning::{LearnConfig, ModelKind, Rollout};
use odeflow::analysis::imde::sweep::{run_imde_study, ImdeStudy, ImdeStudyConfig, SweepPoint};
use odeflow::systems::{BuiltinSystem, System};
use serde::Serialize;

use super::bars::{self, BarChart};
use super::common::{self, cell, slope_text, RunProgress};
use crate::args::{self, FloatList};
use crate::error::CliError;
use crate::output::{self, Layout};
use crate::plot::{self, Figure, Panel, Scale, Series};
use crate::progress::Reporter;

/// Flags of `odeflow experiment imde`.
#[derive(Debug, Args)]
pub struct ImdeExperimentArgs {
    /// System with a data preset: pendulum, damped-cubic, lorenz.
    #[arg(long, value_name = "NAME", default_value = "pendulum")]
    system: String,

    /// Methods, comma-separated (explicit Runge–Kutta or implicit-midpoint).
    #[arg(
        long,
        value_name = "LIST",
        default_value = "euler",
        value_delimiter = ','
    )]
    methods: Vec<String>,

    /// The T sweep (S = 1), comma-separated.
    #[arg(long, value_name = "LIST", default_value = "0.01,0.02,0.04,0.08", value_parser = args::float_list)]
    t_values: FloatList,

    /// The S sweep (at T = --t), comma-separated.
    #[arg(
        long,
        value_name = "LIST",
        default_value = "1,2,4,8",
        value_delimiter = ','
    )]
    s_values: Vec<usize>,

    /// T of the S sweep, the field errors and the rollouts [default: the preset's T].
    #[arg(long, value_name = "T", value_parser = args::positive)]
    t: Option<f64>,

    /// Truncation order K of the IMDE.
    #[arg(long, value_name = "K", default_value_t = 5)]
    order: usize,

    /// Adam iterations per training run (the paper: 300000).
    #[arg(long, value_name = "N", default_value_t = 2000)]
    iterations: u64,

    /// Number of seeds (training runs per point; the paper: 5).
    #[arg(long, value_name = "N", default_value_t = 1)]
    seeds: u64,

    /// First seed.
    #[arg(long, value_name = "SEED", default_value_t = 0)]
    seed: u64,

    /// Hidden width of the MLP (the paper: 128; at the default budget of 2000 iterations a
    /// width of 64 trains 2–4× faster and reaches a 3× lower error floor).
    #[arg(long, value_name = "N", default_value_t = 64)]
    hidden: usize,

    /// Training pairs (the paper: 10000; lorenz: 250).
    #[arg(long, value_name = "N", default_value_t = 1000)]
    train_points: usize,

    /// Test pairs the errors average over (the paper: 2000; lorenz: 250).
    #[arg(long, value_name = "N", default_value_t = 1000)]
    test_points: usize,

    /// Seed of the data sampling.
    #[arg(long, value_name = "SEED", default_value_t = 0)]
    data_seed: u64,

    /// Initial learning rate.
    #[arg(long, value_name = "LR", default_value_t = 1e-2, value_parser = args::positive)]
    lr: f64,

    /// Final learning rate (exponential decay from --lr).
    #[arg(long, value_name = "LR", default_value_t = 1e-5, value_parser = args::positive)]
    final_lr: f64,

    /// Start point of the rollouts [default: the system's demo state].
    #[arg(long, value_name = "LIST", value_parser = args::float_list, allow_hyphen_values = true)]
    rollout_y0: Option<FloatList>,

    /// Length of the rollouts.
    #[arg(long, value_name = "T", default_value_t = 5.0, value_parser = args::positive)]
    rollout_t: f64,

    /// Step of the rk4 integration of the rollouts.
    #[arg(long, value_name = "DT", default_value_t = 1e-3, value_parser = args::positive)]
    rollout_dt: f64,

    /// Folder for the JSON, CSV and PNG files.
    #[arg(long, value_name = "DIR", default_value = "results/imde")]
    out_dir: PathBuf,

    /// Write the summary JSON here instead of stdout.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

/// One point of a sweep in the summary.
#[derive(Debug, Serialize)]
struct PointSummary {
    t: f64,
    steps: usize,
    h: f64,
    error_true: f64,
    error_true_std: f64,
    error_imde: f64,
    error_imde_std: f64,
    imde_vs_true: f64,
}

/// Slopes in the summary (`null` where a sweep has fewer than two points).
#[derive(Debug, Serialize)]
struct SlopeSummary {
    t_true: Option<f64>,
    t_imde: Option<f64>,
    t_gap: Option<f64>,
    s_true: Option<f64>,
    s_imde: Option<f64>,
    s_gap: Option<f64>,
}

#[derive(Debug, Serialize)]
struct MethodSummary {
    method: String,
    order: usize,
    slopes: SlopeSummary,
    field_errors: Option<PointSummary>,
    t_sweep: Vec<PointSummary>,
    s_sweep: Vec<PointSummary>,
}

#[derive(Debug, Serialize)]
struct Summary {
    experiment: &'static str,
    system: String,
    t: f64,
    order: usize,
    iterations: u64,
    seeds: Vec<u64>,
    hidden: usize,
    train_points: usize,
    test_points: usize,
    methods: Vec<MethodSummary>,
    out_dir: PathBuf,
    files: Vec<String>,
    seconds: f64,
}

fn point(p: &SweepPoint) -> PointSummary {
    PointSummary {
        t: p.t,
        steps: p.steps,
        h: p.h,
        error_true: p.error_true,
        error_true_std: p.error_true_std,
        error_imde: p.error_imde,
        error_imde_std: p.error_imde_std,
        imde_vs_true: p.imde_vs_true,
    }
}

/// The study's settings from the flags.
fn config(args: &ImdeExperimentArgs) -> Result<ImdeStudyConfig, CliError> {
    let preset = odeflow::data::TrajectoryConfig::for_system(&args.system)?;
    let system = BuiltinSystem::from_name(&preset.system)?;
    let rollout_y0 = match &args.rollout_y0 {
        Some(l) => l.0.clone(),
        None => system.default_y0(),
    };
    let cfg = ImdeStudyConfig {
        system: preset.system.clone(),
        methods: args.methods.iter().map(|m| m.trim().to_string()).collect(),
        t_values: args.t_values.0.clone(),
        s_values: args.s_values.clone(),
        t_fixed: args.t.unwrap_or(preset.t),
        order: args.order,
        learn: LearnConfig {
            model: ModelKind::Mlp,
            hidden: args.hidden,
            method: String::new(),
            steps: 1,
            iterations: args.iterations,
            lr: args.lr,
            final_lr: args.final_lr,
            seed: args.seed,
        },
        seeds: common::seeds(args.seeds, args.seed),
        train_points: args.train_points,
        test_points: args.test_points,
        data_seed: args.data_seed,
        rollout_y0,
        rollout_t: args.rollout_t,
        rollout_dt: args.rollout_dt,
    };
    cfg.validate()?;
    if cfg.order == 0 {
        return Err(CliError::input(
            "--order 0 keeps no term beyond the field itself; give --order 1 or more",
        ));
    }
    let (w, n) = (
        cfg.learn.hidden as u64,
        (cfg.train_points + cfg.test_points) as u64,
    );
    common::check_memory(
        &format!("an MLP of width {w} on {n} pairs (--hidden, --train-points, --test-points)"),
        &[&[8, w, w], &[4, n, w]],
        8,
    )?;
    let rollout = (cfg.rollout_t / cfg.rollout_dt).ceil();
    common::check_steps(
        &format!(
            "--rollout-t {} with --rollout-dt {}",
            odeflow::budget::readable(cfg.rollout_t),
            odeflow::budget::readable(cfg.rollout_dt)
        ),
        if rollout.is_finite() {
            rollout as u64
        } else {
            u64::MAX
        },
    )?;
    Ok(cfg)
}

/// Runs `odeflow experiment imde`.
pub fn run(args: ImdeExperimentArgs, reporter: &Reporter) -> Result<(), CliError> {
    let cfg = config(&args)?;
    let dir = common::create_dir(&args.out_dir)?;
    let progress = RunProgress::new(reporter, cfg.runs(), cfg.learn.iterations, "imde");
    reporter.note(format!(
        "imde: {} training runs of {} iterations on {} ({} points, width {})",
        cfg.runs(),
        cfg.learn.iterations,
        cfg.system,
        cfg.train_points,
        cfg.learn.hidden
    ));
    let study = run_imde_study(&cfg, &mut |p| progress.update(p)).map_err(common::learn_error);
    let seconds = progress.finish();
    let study = study?;
    let mut files = Vec::new();
    let mut save = |name: &str, f: &dyn Fn(&std::path::Path) -> Result<(), CliError>| {
        let path = dir.join(name);
        f(&path)?;
        files.push(path.display().to_string());
        Ok::<(), CliError>(())
    };
    save("imde.json", &|p| {
        output::write_json(&study, Some(p), Layout::Compact)
    })?;
    save("sweeps.csv", &|p| write_sweeps(&study, p))?;
    save("rollouts.csv", &|p| write_rollouts(&study, p))?;
    save("errors_vs_T.png", &|p| {
        plot::save(&sweep_figure(&study, true), p)
    })?;
    save("errors_vs_S.png", &|p| {
        plot::save(&sweep_figure(&study, false), p)
    })?;
    save("field_errors.png", &|p| bars::save(&field_bars(&study), p))?;
    save("rollouts.png", &|p| plot::save(&rollout_figure(&study), p))?;
    let summary = Summary {
        experiment: "imde",
        system: cfg.system.clone(),
        t: cfg.t_fixed,
        order: cfg.order,
        iterations: cfg.learn.iterations,
        seeds: cfg.seeds.clone(),
        hidden: cfg.learn.hidden,
        train_points: cfg.train_points,
        test_points: cfg.test_points,
        methods: study
            .methods
            .iter()
            .map(|m| MethodSummary {
                method: m.method.clone(),
                order: m.order,
                slopes: SlopeSummary {
                    t_true: m.slopes.t_true.map(|f| f.slope),
                    t_imde: m.slopes.t_imde.map(|f| f.slope),
                    t_gap: m.slopes.t_gap.map(|f| f.slope),
                    s_true: m.slopes.s_true.map(|f| f.slope),
                    s_imde: m.slopes.s_imde.map(|f| f.slope),
                    s_gap: m.slopes.s_gap.map(|f| f.slope),
                },
                field_errors: primary(&study, m).map(point),
                t_sweep: m.t_sweep.iter().map(point).collect(),
                s_sweep: m.s_sweep.iter().map(point).collect(),
            })
            .collect(),
        out_dir: dir.clone(),
        files,
        seconds,
    };
    let mut human = String::new();
    for m in &summary.methods {
        human.push_str(&format!(
            "{} (order {}): slope vs f {} (T) / {} (S), vs IMDE {} / {}",
            m.method,
            m.order,
            slope_text(m.slopes.t_true),
            slope_text(m.slopes.s_true),
            slope_text(m.slopes.t_imde),
            slope_text(m.slopes.s_imde)
        ));
        human.push('\n');
    }
    human.push_str(&format!(
        "imde: done in {seconds:.0} s; files in {}\n",
        dir.display()
    ));
    reporter.result(&summary, || human)
}

/// The `(T = t_fixed, S = 1)` point of a method.
fn primary<'a>(
    study: &'a ImdeStudy,
    m: &'a odeflow::analysis::imde::sweep::MethodStudy,
) -> Option<&'a SweepPoint> {
    let t = study.config.t_fixed;
    m.t_sweep
        .iter()
        .chain(&m.s_sweep)
        .find(|p| p.t == t && p.steps == 1)
}

fn write_sweeps(study: &ImdeStudy, path: &std::path::Path) -> Result<(), CliError> {
    let mut rows = Vec::new();
    for m in &study.methods {
        for (sweep, pts) in [("T", &m.t_sweep), ("S", &m.s_sweep)] {
            for p in pts.iter() {
                for r in &p.runs {
                    rows.push(vec![
                        m.method.clone(),
                        sweep.into(),
                        p.t.to_string(),
                        p.steps.to_string(),
                        p.h.to_string(),
                        r.seed.to_string(),
                        r.error_true.to_string(),
                        r.error_imde.to_string(),
                        p.imde_vs_true.to_string(),
                        r.train_loss.to_string(),
                        r.test_loss.to_string(),
                        r.seconds.to_string(),
                    ]);
                }
            }
        }
    }
    let header = [
        "method",
        "sweep",
        "T",
        "S",
        "h",
        "seed",
        "error_true",
        "error_imde",
        "imde_vs_true",
        "train_loss",
        "test_loss",
        "seconds",
    ];
    common::write_csv(path, &header, &rows)
}

fn write_rollouts(study: &ImdeStudy, path: &std::path::Path) -> Result<(), CliError> {
    let mut header = vec!["method", "field", "t"];
    header.extend(study.state_names.iter().map(String::as_str));
    let mut rows = Vec::new();
    for m in &study.methods {
        let r = &m.rollouts;
        for (name, roll) in [
            ("true", &r.true_field),
            ("imde", &r.imde),
            ("learned", &r.learned),
        ] {
            for (t, y) in roll.t.iter().zip(&roll.y) {
                let mut row = vec![m.method.clone(), name.into(), t.to_string()];
                row.extend(y.iter().map(|v| cell(Some(*v))));
                rows.push(row);
            }
        }
    }
    common::write_csv(path, &header, &rows)
}

fn sweep_figure(study: &ImdeStudy, over_t: bool) -> Figure {
    let k = study.config.order;
    let (title, x_label) = if over_t {
        ("errors against T (S = 1)".to_string(), "T".to_string())
    } else {
        (
            format!("errors against S (T = {})", study.config.t_fixed),
            "S (slopes in h = T/S)".to_string(),
        )
    };
    let mut panel = Panel::new(title, x_label, "mean ‖·‖∞ error").scales(Scale::Log, Scale::Log);
    for m in &study.methods {
        let (pts, s) = if over_t {
            (
                &m.t_sweep,
                (m.slopes.t_true, m.slopes.t_imde, m.slopes.t_gap),
            )
        } else {
            (
                &m.s_sweep,
                (m.slopes.s_true, m.slopes.s_imde, m.slopes.s_gap),
            )
        };
        let x = |p: &SweepPoint| if over_t { p.t } else { p.steps as f64 };
        let series = |f: fn(&SweepPoint) -> f64| pts.iter().map(|p| (x(p), f(p))).collect();
        let sl =
            |fit: Option<odeflow::analysis::imde::sweep::LineFit>| slope_text(fit.map(|f| f.slope));
        panel = panel
            .with(Series::line_markers(
                format!("{}: learned vs f (slope {})", m.method, sl(s.0)),
                series(|p| p.error_true),
            ))
            .with(Series::line_markers(
                format!("{}: learned vs IMDE K={k} (slope {})", m.method, sl(s.1)),
                series(|p| p.error_imde),
            ))
            .with(Series::line(
                format!("{}: IMDE vs f (slope {})", m.method, sl(s.2)),
                series(|p| p.imde_vs_true),
            ));
    }
    Figure {
        title: format!(
            "{}: learned field vs true field vs IMDE",
            study.config.system
        ),
        panels: vec![panel],
    }
}

fn field_bars(study: &ImdeStudy) -> BarChart {
    let pts: Vec<Option<&SweepPoint>> = study.methods.iter().map(|m| primary(study, m)).collect();
    let values = |f: fn(&SweepPoint) -> f64| -> Vec<f64> {
        pts.iter().map(|p| p.map_or(f64::NAN, f)).collect()
    };
    BarChart {
        title: format!(
            "{}: field errors at T = {}, S = 1",
            study.config.system, study.config.t_fixed
        ),
        y_label: "mean ‖·‖∞ error".into(),
        categories: study.methods.iter().map(|m| m.method.clone()).collect(),
        groups: vec![
            ("learned vs f".into(), values(|p| p.error_true)),
            (
                format!("learned vs IMDE (K = {})", study.config.order),
                values(|p| p.error_imde),
            ),
            ("IMDE vs f".into(), values(|p| p.imde_vs_true)),
        ],
    }
}

/// The two state components a phase portrait shows: `(q, p)` for Hamiltonian states,
/// `(y₁, y₃)` in three or more dimensions, else the first two.
pub fn phase_axes(names: &[String]) -> (usize, usize) {
    if names.len() >= 3 {
        (0, 2)
    } else if names.len() == 2 && names[0] == "p" {
        (1, 0)
    } else {
        (0, 1.min(names.len().saturating_sub(1)))
    }
}

fn rollout_points(r: &Rollout, (i, j): (usize, usize)) -> Vec<(f64, f64)> {
    common::thin(&r.y, 3000)
        .iter()
        .map(|y| (y[i], y[j]))
        .collect()
}

fn rollout_figure(study: &ImdeStudy) -> Figure {
    let axes = phase_axes(&study.state_names);
    let names = &study.state_names;
    let panels = study
        .methods
        .iter()
        .map(|m| {
            let r = &m.rollouts;
            Panel::new(
                format!("{} (h = {})", m.method, study.config.t_fixed),
                names[axes.0].clone(),
                names[axes.1].clone(),
            )
            .with(Series::line(
                "true field",
                rollout_points(&r.true_field, axes),
            ))
            .with(Series::line(
                format!("IMDE (K = {})", study.config.order),
                rollout_points(&r.imde, axes),
            ))
            .with(Series::line("learned", rollout_points(&r.learned, axes)))
        })
        .collect();
    Figure {
        title: format!(
            "{}: flows from {:?} over t ∈ [0, {}]",
            study.config.system, study.config.rollout_y0, study.config.rollout_t
        ),
        panels,
    }
}
