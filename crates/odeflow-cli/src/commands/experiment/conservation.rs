//! `odeflow experiment conservation`: which learned models keep the energy (Zhu et al.,
//! ICML 2022, §5.2).
//!
//! ```text
//! odeflow experiment conservation                          # five models, minutes
//! odeflow experiment conservation --methods euler,verlet --rollout-steps 100000
//! odeflow experiment conservation --iterations 300000 --seeds 5 --train-points 10000
//! ```
//!
//! Trains on pendulum pairs `(x, φ_T(x))` one model per entry of `--methods` (`method` or
//! `method:model`; default: `euler`, `midpoint`, `rk4` on the MLP, `verlet` on the separable
//! Hamiltonian network `T_θ(p) + V_θ(q)`, `implicit-midpoint` on the MLP), then iterates each
//! learned discrete model `Φ_{h,f_θ}` for `--rollout-steps` steps from `--y0` and records
//! the true energy `H = p²/2 − 10 cos q` along the way.
//!
//! Output folder (`--out-dir`, default `results/conservation`): `conservation.json`
//! (every number, rollouts included), `models.csv` (one row per model and seed),
//! `energy.csv` (`H(y_n) − H(y_0)` per step and model), and the plots `energy.png`
//! (`|H(y_n) − H(y_0)|` against time, log scale) and `phase_portraits.png` (each model's
//! orbit against the exact one). The summary JSON (energy drift per model: max, first and
//! last tenth, growth) goes to stdout or `--out`.

use std::path::{Path, PathBuf};

use clap::Args;
use odeflow::analysis::imde::conservation::{
    run_conservation, ConservationConfig, ConservationStudy, EnergyDrift, ModelSpec,
};
use odeflow::analysis::imde::learning::{LearnConfig, ModelKind};
use serde::Serialize;

use super::common::{self, cell, RunProgress};
use super::imde::phase_axes;
use crate::args::{self, FloatList};
use crate::error::CliError;
use crate::output::{self, Layout};
use crate::plot::{self, Figure, Panel, Scale, Series};
use crate::progress::Reporter;

/// Flags of `odeflow experiment conservation`.
#[derive(Debug, Args)]
pub struct ConservationArgs {
    /// Models, comma-separated: `method` or `method:model` (model `mlp` or `hamiltonian`;
    /// splitting methods default to the Hamiltonian network, others to the MLP).
    #[arg(
        long,
        value_name = "LIST",
        default_value = "euler,midpoint,rk4,verlet,implicit-midpoint",
        value_delimiter = ','
    )]
    methods: Vec<String>,

    /// Data interval T of the pendulum pairs.
    #[arg(long, value_name = "T", default_value_t = 0.04, value_parser = args::positive)]
    t: f64,

    /// Steps S per interval (h = T/S).
    #[arg(long, value_name = "S", default_value_t = 1)]
    steps: usize,

    /// Adam iterations per model (the paper: 300000).
    #[arg(long, value_name = "N", default_value_t = 3000)]
    iterations: u64,

    /// Number of seeds (the paper: 5).
    #[arg(long, value_name = "N", default_value_t = 1)]
    seeds: u64,

    /// First seed.
    #[arg(long, value_name = "SEED", default_value_t = 0)]
    seed: u64,

    /// Hidden width of the MLP and of each MLP of the Hamiltonian network (the paper: 128).
    #[arg(long, value_name = "N", default_value_t = 64)]
    hidden: usize,

    /// Training pairs (the paper: 10000).
    #[arg(long, value_name = "N", default_value_t = 1000)]
    train_points: usize,

    /// Test pairs.
    #[arg(long, value_name = "N", default_value_t = 500)]
    test_points: usize,

    /// Seed of the data sampling.
    #[arg(long, value_name = "SEED", default_value_t = 0)]
    data_seed: u64,

    /// Initial learning rate.
    #[arg(long, value_name = "LR", default_value_t = 1e-2, value_parser = args::positive)]
    lr: f64,

    /// Final learning rate.
    #[arg(long, value_name = "LR", default_value_t = 1e-5, value_parser = args::positive)]
    final_lr: f64,

    /// Start of the rollouts, (p, q).
    #[arg(long, value_name = "LIST", default_value = "0,1", value_parser = args::float_list, allow_hyphen_values = true)]
    y0: FloatList,

    /// Steps of each rollout.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    rollout_steps: usize,

    /// Truncation order of the IMDE the learned fields are compared with.
    #[arg(long, value_name = "K", default_value_t = 4)]
    order: usize,

    /// Folder for the JSON, CSV and PNG files.
    #[arg(long, value_name = "DIR", default_value = "results/conservation")]
    out_dir: PathBuf,

    /// Write the summary JSON here instead of stdout.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
struct ModelSummary {
    method: String,
    model: ModelKind,
    seed: u64,
    symplectic: bool,
    energy: EnergyDrift,
    learned_hamiltonian_drift: Option<f64>,
    error_true: f64,
    error_imde: Option<f64>,
    train_loss: f64,
    test_loss: f64,
    seconds: f64,
    stopped: Option<String>,
}

#[derive(Debug, Serialize)]
struct Summary {
    experiment: &'static str,
    system: String,
    t: f64,
    steps: usize,
    h: f64,
    iterations: u64,
    hidden: usize,
    train_points: usize,
    y0: Vec<f64>,
    energy0: f64,
    rollout_steps: usize,
    reference_energy: EnergyDrift,
    models: Vec<ModelSummary>,
    out_dir: PathBuf,
    files: Vec<String>,
    seconds: f64,
}

fn config(args: &ConservationArgs) -> Result<ConservationConfig, CliError> {
    let models = args
        .methods
        .iter()
        .map(|m| ModelSpec::parse(m.trim()))
        .collect::<Result<Vec<_>, _>>()?;
    let cfg = ConservationConfig {
        system: "pendulum".into(),
        t: args.t,
        steps: args.steps,
        models,
        learn: LearnConfig {
            hidden: args.hidden,
            iterations: args.iterations,
            lr: args.lr,
            final_lr: args.final_lr,
            ..LearnConfig::default()
        },
        seeds: common::seeds(args.seeds, args.seed),
        train_points: args.train_points,
        test_points: args.test_points,
        data_seed: args.data_seed,
        y0: args.y0.0.clone(),
        rollout_steps: args.rollout_steps,
        imde_order: args.order,
    };
    cfg.validate()?;
    common::check_steps(
        &format!("--rollout-steps {}", cfg.rollout_steps),
        cfg.rollout_steps as u64,
    )?;
    let (w, n) = (
        cfg.learn.hidden as u64,
        (cfg.train_points + cfg.test_points) as u64,
    );
    common::check_memory(
        &format!(
            "MLPs of width {w} on {n} pairs with rollouts of {} steps (--hidden, --train-points, --test-points, --rollout-steps)",
            cfg.rollout_steps
        ),
        &[&[16, w, w], &[4, n, w], &[cfg.models.len() as u64, cfg.rollout_steps as u64, 4]],
        8,
    )?;
    Ok(cfg)
}

/// Runs `odeflow experiment conservation`.
pub fn run(args: ConservationArgs, reporter: &Reporter) -> Result<(), CliError> {
    let cfg = config(&args)?;
    let dir = common::create_dir(&args.out_dir)?;
    reporter.note(format!(
        "conservation: {} training runs of {} iterations ({} points, width {}), rollouts of {} steps",
        cfg.runs(),
        cfg.learn.iterations,
        cfg.train_points,
        cfg.learn.hidden,
        cfg.rollout_steps
    ));
    let progress = RunProgress::new(reporter, cfg.runs(), cfg.learn.iterations, "conservation");
    let study = run_conservation(&cfg, &mut |p| progress.update(p)).map_err(common::learn_error);
    let seconds = progress.finish();
    let study = study?;
    let mut files = Vec::new();
    let mut save = |name: &str, f: &dyn Fn(&Path) -> Result<(), CliError>| {
        let path = dir.join(name);
        f(&path)?;
        files.push(path.display().to_string());
        Ok::<(), CliError>(())
    };
    save("conservation.json", &|p| {
        output::write_json(&study, Some(p), Layout::Compact)
    })?;
    save("models.csv", &|p| write_models(&study, p))?;
    save("energy.csv", &|p| write_energy(&study, p))?;
    save("energy.png", &|p| plot::save(&energy_figure(&study), p))?;
    save("phase_portraits.png", &|p| {
        plot::save(&phase_figure(&study), p)
    })?;
    let summary = Summary {
        experiment: "conservation",
        system: cfg.system.clone(),
        t: cfg.t,
        steps: cfg.steps,
        h: study.h,
        iterations: cfg.learn.iterations,
        hidden: cfg.learn.hidden,
        train_points: cfg.train_points,
        y0: cfg.y0.clone(),
        energy0: study.energy0,
        rollout_steps: cfg.rollout_steps,
        reference_energy: study.reference_energy.clone(),
        models: study
            .models
            .iter()
            .map(|m| ModelSummary {
                method: m.spec.method.clone(),
                model: m.spec.model,
                seed: m.seed,
                symplectic: m.symplectic,
                energy: m.energy.clone(),
                learned_hamiltonian_drift: m.learned_hamiltonian_drift,
                error_true: m.error_true,
                error_imde: m.error_imde,
                train_loss: m.train_loss,
                test_loss: m.test_loss,
                seconds: m.seconds,
                stopped: m.rollout.stopped.clone(),
            })
            .collect(),
        out_dir: dir.clone(),
        files,
        seconds,
    };
    let mut human = String::new();
    for m in &summary.models {
        human.push_str(&format!(
            "{:>32}: max |ΔH| {:.2e}, growth (last/first tenth) {}",
            m.method.clone()
                + if m.model == ModelKind::Hamiltonian {
                    " (Hamiltonian net)"
                } else {
                    ""
                },
            m.energy.max_abs,
            m.energy
                .growth
                .map_or("–".to_string(), |g| format!("{g:.2}"))
        ));
        human.push('\n');
    }
    human.push_str(&format!(
        "conservation: done in {seconds:.0} s; files in {}\n",
        dir.display()
    ));
    reporter.result(&summary, || human)
}

fn label(study: &ConservationStudy, i: usize) -> String {
    let m = &study.models[i];
    if study.config.seeds.len() > 1 {
        format!("{} seed {}", m.spec.label(), m.seed)
    } else {
        m.spec.label()
    }
}

fn write_models(study: &ConservationStudy, path: &Path) -> Result<(), CliError> {
    let header = [
        "method",
        "model",
        "seed",
        "symplectic",
        "max_abs",
        "final_abs",
        "early_mean",
        "late_mean",
        "growth",
        "steps",
        "learned_hamiltonian_drift",
        "error_true",
        "error_imde",
        "train_loss",
        "test_loss",
        "seconds",
    ];
    let rows: Vec<Vec<String>> = study
        .models
        .iter()
        .map(|m| {
            vec![
                m.spec.method.clone(),
                m.spec.model.name().into(),
                m.seed.to_string(),
                m.symplectic.to_string(),
                m.energy.max_abs.to_string(),
                m.energy.final_abs.to_string(),
                m.energy.early_mean.to_string(),
                m.energy.late_mean.to_string(),
                cell(m.energy.growth),
                m.energy.steps.to_string(),
                cell(m.learned_hamiltonian_drift),
                m.error_true.to_string(),
                cell(m.error_imde),
                m.train_loss.to_string(),
                m.test_loss.to_string(),
                m.seconds.to_string(),
            ]
        })
        .collect();
    common::write_csv(path, &header, &rows)
}

fn write_energy(study: &ConservationStudy, path: &Path) -> Result<(), CliError> {
    let names: Vec<String> = (0..study.models.len())
        .map(|i| label(study, i).replace(',', ";"))
        .collect();
    let mut header = vec!["step", "t", "reference"];
    header.extend(names.iter().map(String::as_str));
    let n = study.config.rollout_steps;
    let rows: Vec<Vec<String>> = (0..=n)
        .map(|k| {
            let mut row = vec![k.to_string(), (k as f64 * study.h).to_string()];
            row.push(cell(study.reference_deviation.get(k).copied()));
            row.extend(
                study
                    .models
                    .iter()
                    .map(|m| cell(m.energy_deviation.get(k).copied())),
            );
            row
        })
        .collect();
    common::write_csv(path, &header, &rows)
}

fn energy_figure(study: &ConservationStudy) -> Figure {
    let mut panel = Panel::new(
        format!("pendulum: energy error of learned models, h = {}", study.h),
        "t",
        "|H(y_n) − H(y_0)|",
    )
    .scales(Scale::Linear, Scale::Log);
    for (i, m) in study.models.iter().enumerate() {
        let pts: Vec<(f64, f64)> = m
            .energy_deviation
            .iter()
            .enumerate()
            .map(|(k, d)| (k as f64 * study.h, d.abs()))
            .collect();
        let growth = m.energy.growth.map_or("–".into(), |g| format!("{g:.2}"));
        panel = panel.with(Series::line(
            format!("{} (growth {growth})", label(study, i)),
            common::thin(&pts, 2000),
        ));
    }
    Figure {
        title: format!(
            "energy drift over {} steps from (p, q) = {:?}",
            study.config.rollout_steps, study.config.y0
        ),
        panels: vec![panel],
    }
}

fn phase_figure(study: &ConservationStudy) -> Figure {
    let names = vec!["p".to_string(), "q".to_string()];
    let axes = phase_axes(&names);
    let orbit = |y: &[Vec<f64>]| -> Vec<(f64, f64)> {
        common::thin(y, 4000)
            .iter()
            .map(|s| (s[axes.0], s[axes.1]))
            .collect()
    };
    let exact = orbit(&study.reference.y);
    let panels = (0..study.models.len())
        .map(|i| {
            let m = &study.models[i];
            Panel::new(label(study, i), "q", "p")
                .with(Series::line("exact", exact.clone()))
                .with(Series::line("learned model", orbit(&m.rollout.y)))
        })
        .collect();
    Figure {
        title: format!(
            "phase portraits over {} steps of h = {}",
            study.config.rollout_steps, study.h
        ),
        panels,
    }
}
