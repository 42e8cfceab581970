//! The IMDE study of Zhu et al. (ICML 2022, §5.1): learned field against the true field and
//! against the inverse modified equation, over the data interval `T` and the number of
//! steps `S`.
//!
//! For each method and each point of two sweeps — `T ∈ {T₁, …}` with `S = 1`, and
//! `S ∈ {S₁, …}` at a fixed `T` — a network is trained on pairs `(x, φ_T(x))` with `S` steps
//! of the method inside the model ([`learn`]), once per seed, and compared on the test
//! inputs with
//!
//! * the true field `f`: `error(f_θ, f) ≈ C hᵖ` for a method of order `p`, `h = T/S` —
//!   what is learned is not `f`;
//! * the IMDE `f_h` truncated at order `K`: `error(f_θ, f_h^{[K]})` stays at the level of
//!   the training error, flat in `h` — what is learned is `f_h`.
//!
//! Least-squares slopes of `log error` against `log h` ([`LineFit`]) summarise each sweep;
//! the gap `error(f_h^{[K]}, f)` itself (no training) is reported alongside as the
//! theoretical curve. For one run per method (`T` fixed, `S = 1`, the first seed) the flows
//! of the true field, the IMDE and the learned field from a start point are integrated
//! accurately ([`flow`]): the learned field follows the IMDE's flow, not the true one.

use serde::Serialize;

use super::learning::{
    field_error, flow, learn, modified_field, system_field, LearnConfig, LearnError, Rollout,
};
use super::series::{Expansion, ModifiedSeries, MAX_ORDER};
use crate::data::{PairDataset, TrainTest, TrajectoryConfig};
use crate::error::ArgError;
use crate::solve::Method;
use crate::state::Batch;
use crate::systems::{BuiltinSystem, System, SystemField};
use crate::train::IterationRecord;

pub use crate::stats::{loglog_fit, LineFit};

/// Settings of the study.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImdeStudyConfig {
    /// A system with a trajectory-data preset (`pendulum`, `damped-cubic`, `lorenz`).
    pub system: String,
    /// Methods (Runge–Kutta: explicit or implicit midpoint).
    pub methods: Vec<String>,
    /// The `T` sweep (with `S = 1`).
    pub t_values: Vec<f64>,
    /// The `S` sweep (at `t_fixed`).
    pub s_values: Vec<usize>,
    /// `T` of the `S` sweep, of the field comparison and of the rollouts.
    pub t_fixed: f64,
    /// Truncation order `K` of the IMDE.
    pub order: usize,
    /// Network and optimiser (its `method` and `steps` are set per run).
    pub learn: LearnConfig,
    /// Seeds of the network initialisation (one training run each).
    pub seeds: Vec<u64>,
    /// Training pairs.
    pub train_points: usize,
    /// Test pairs (the points the errors average over).
    pub test_points: usize,
    /// Seed of the data sampling.
    pub data_seed: u64,
    /// Start point of the rollouts (default: the system's demo state).
    pub rollout_y0: Vec<f64>,
    /// Length of the rollouts.
    pub rollout_t: f64,
    /// Step of the rk4 integration of the rollouts.
    pub rollout_dt: f64,
}

/// Errors of one training run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunResult {
    /// Seed of the network.
    pub seed: u64,
    /// `error(f_θ, f)`.
    pub error_true: f64,
    /// `error(f_θ, f_h^{[K]})`.
    pub error_imde: f64,
    /// Final training loss.
    pub train_loss: f64,
    /// Test loss of the learned model.
    pub test_loss: f64,
    /// Training time in seconds.
    pub seconds: f64,
}

/// One `(T, S)` point: its runs and their means.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SweepPoint {
    /// Data interval.
    pub t: f64,
    /// Steps per interval.
    pub steps: usize,
    /// `h = T/S`.
    pub h: f64,
    /// Mean over seeds of `error(f_θ, f)`.
    pub error_true: f64,
    /// Standard deviation over seeds of `error(f_θ, f)` (0 for one seed).
    pub error_true_std: f64,
    /// Mean over seeds of `error(f_θ, f_h^{[K]})`.
    pub error_imde: f64,
    /// Standard deviation over seeds of `error(f_θ, f_h^{[K]})`.
    pub error_imde_std: f64,
    /// `error(f_h^{[K]}, f)`: the gap the theory predicts (no training involved).
    pub imde_vs_true: f64,
    /// Every run.
    pub runs: Vec<RunResult>,
}

/// Fitted slopes of both sweeps.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Slopes {
    /// `error(f_θ, f)` against `T` (`S = 1`); ≈ the method's order.
    pub t_true: Option<LineFit>,
    /// `error(f_θ, f_h)` against `T`; ≈ 0.
    pub t_imde: Option<LineFit>,
    /// `error(f_h, f)` against `T`: the theoretical order.
    pub t_gap: Option<LineFit>,
    /// `error(f_θ, f)` against `h = T/S` (`T` fixed).
    pub s_true: Option<LineFit>,
    /// `error(f_θ, f_h)` against `h = T/S`.
    pub s_imde: Option<LineFit>,
    /// `error(f_h, f)` against `h = T/S`.
    pub s_gap: Option<LineFit>,
}

/// Flows from the start point of the true field, the IMDE and the learned field.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rollouts {
    /// `y' = f(y)`.
    pub true_field: Rollout,
    /// `y' = f_h^{[K]}(y)`.
    pub imde: Rollout,
    /// `y' = f_θ(y)`.
    pub learned: Rollout,
}

/// Everything measured for one method.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MethodStudy {
    /// The method.
    pub method: String,
    /// Its order.
    pub order: usize,
    /// The `T` sweep, by increasing `T`.
    pub t_sweep: Vec<SweepPoint>,
    /// The `S` sweep, by increasing `S`.
    pub s_sweep: Vec<SweepPoint>,
    /// Fitted slopes.
    pub slopes: Slopes,
    /// Flows of the run at `T = t_fixed`, `S = 1`, first seed.
    pub rollouts: Rollouts,
}

/// The whole study.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImdeStudy {
    /// The settings.
    pub config: ImdeStudyConfig,
    /// Names of the state components.
    pub state_names: Vec<String>,
    /// One entry per method.
    pub methods: Vec<MethodStudy>,
}

/// Where a study is: run `run` of `runs` (labelled), at `record.iteration`.
#[derive(Debug, Clone, Copy)]
pub struct StudyProgress<'a> {
    /// Index of the run (0-based).
    pub run: usize,
    /// Number of runs.
    pub runs: usize,
    /// What the run trains (method, T, S, seed).
    pub label: &'a str,
    /// The iteration just completed.
    pub record: &'a IterationRecord,
}

impl ImdeStudyConfig {
    /// Checks every setting; returns the system and the methods.
    pub fn validate(&self) -> Result<(BuiltinSystem, Vec<Method>), ArgError> {
        let preset = TrajectoryConfig::for_system(&self.system)?;
        let system = BuiltinSystem::from_name(&preset.system)?;
        if self.methods.is_empty() {
            return Err(ArgError::invalid(
                "methods",
                "[]",
                "name at least one method",
            ));
        }
        let methods = self
            .methods
            .iter()
            .map(|m| {
                let method = Method::from_name(m)?;
                ModifiedSeries::for_method(Expansion::Inverse, &method, 0)?;
                Ok(method)
            })
            .collect::<Result<Vec<_>, ArgError>>()?;
        let positive = |name: &str, v: f64| -> Result<(), ArgError> {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(ArgError::invalid(name, v, "must be positive and finite"))
            }
        };
        for &t in self.t_values.iter().chain([&self.t_fixed]) {
            positive("T", t)?;
        }
        if let Some(s) = self.s_values.iter().find(|s| **s == 0) {
            return Err(ArgError::invalid("S", s, "must be at least 1"));
        }
        if self.t_values.is_empty() && self.s_values.is_empty() {
            return Err(ArgError::invalid(
                "sweeps",
                "empty",
                "give T values or S values",
            ));
        }
        if self.seeds.is_empty() {
            return Err(ArgError::invalid("seeds", 0, "need at least one seed"));
        }
        for (name, n) in [
            ("train points", self.train_points),
            ("test points", self.test_points),
        ] {
            if n == 0 {
                return Err(ArgError::invalid(name, 0, "must be at least 1"));
            }
        }
        if self.rollout_y0.len() != system.dim() {
            return Err(crate::error::ShapeError {
                what: "rollout start point",
                expected: system.dim(),
                got: self.rollout_y0.len(),
            }
            .into());
        }
        positive("rollout time", self.rollout_t)?;
        positive("rollout step", self.rollout_dt)?;
        if self.rollout_t / self.rollout_dt > 1e6 {
            return Err(ArgError::invalid(
                "rollout step",
                self.rollout_dt,
                format!("takes more than a million steps over {}", self.rollout_t),
            ));
        }
        if self.order > MAX_ORDER {
            return Err(ArgError::invalid(
                "order",
                self.order,
                format!("the truncation order must be at most {MAX_ORDER}"),
            ));
        }
        let probe = LearnConfig {
            method: self.methods[0].clone(),
            ..self.learn.clone()
        };
        probe.validate()?;
        Ok((system, methods))
    }

    /// The `(T, S)` points a method is trained at: the `T` sweep with `S = 1`, then the
    /// `S` sweep at `t_fixed`, without repeats.
    fn points(&self) -> Vec<(f64, usize)> {
        let mut pts: Vec<(f64, usize)> = self.t_values.iter().map(|&t| (t, 1)).collect();
        for &s in &self.s_values {
            if !pts.contains(&(self.t_fixed, s)) {
                pts.push((self.t_fixed, s));
            }
        }
        if !pts.contains(&(self.t_fixed, 1)) {
            pts.push((self.t_fixed, 1));
        }
        pts
    }

    /// Number of training runs the study makes.
    pub fn runs(&self) -> usize {
        self.methods.len() * self.points().len() * self.seeds.len()
    }
}

/// Data and the true field at the test inputs for one `T`.
struct DataAt {
    t: f64,
    data: TrainTest<PairDataset<f64>>,
    truth: Batch<f64>,
}

fn data_at(cfg: &ImdeStudyConfig, system: &BuiltinSystem, t: f64) -> Result<DataAt, LearnError> {
    let data_cfg = TrajectoryConfig {
        t,
        train: cfg.train_points,
        test: cfg.test_points,
        seed: cfg.data_seed,
        ..TrajectoryConfig::for_system(&cfg.system)?
    };
    let data = data_cfg
        .generate::<f64>()
        .map_err(|e| LearnError::Solve {
            what: format!("trajectory data at T = {t}"),
            message: e.to_string(),
        })?
        .data;
    let truth = system_field(system, data.test.x());
    Ok(DataAt { t, data, truth })
}

use crate::stats::mean_std;

/// Runs the study ([module docs](self)); `progress` is called after every iteration.
pub fn run_imde_study(
    cfg: &ImdeStudyConfig,
    progress: &mut dyn FnMut(StudyProgress<'_>),
) -> Result<ImdeStudy, LearnError> {
    let (system, methods) = cfg.validate()?;
    let points = cfg.points();
    let mut ts: Vec<f64> = points.iter().map(|p| p.0).collect();
    ts.sort_by(f64::total_cmp);
    ts.dedup();
    let data: Vec<DataAt> = ts
        .iter()
        .map(|&t| data_at(cfg, &system, t))
        .collect::<Result<_, _>>()?;
    let runs = cfg.runs();
    let mut run = 0;
    let true_flow = flow(
        &mut SystemField(system.clone()),
        &cfg.rollout_y0,
        cfg.rollout_t,
        cfg.rollout_dt,
    )?;
    let mut studies = Vec::new();
    for (name, method) in cfg.methods.iter().zip(&methods) {
        let series = ModifiedSeries::for_method(Expansion::Inverse, method, cfg.order)?;
        let mut results: Vec<SweepPoint> = Vec::new();
        let mut primary = None;
        for &(t, s) in &points {
            let d = data.iter().find(|d| d.t == t).expect("data for every T");
            let h = t / s as f64;
            let imde_values = modified_field(&system, &series, h, d.data.test.x())?;
            let mut point_runs = Vec::new();
            for &seed in &cfg.seeds {
                let label = format!("{name} T={t} S={s} seed={seed}");
                let lc = LearnConfig {
                    method: name.clone(),
                    steps: s,
                    seed,
                    ..cfg.learn.clone()
                };
                let mut learned = learn(&lc, &d.data, t, |rec| {
                    progress(StudyProgress {
                        run,
                        runs,
                        label: &label,
                        record: rec,
                    })
                })?;
                run += 1;
                let values = learned.field.values(d.data.test.x());
                point_runs.push(RunResult {
                    seed,
                    error_true: field_error(&values, &d.truth)?,
                    error_imde: field_error(&values, &imde_values)?,
                    train_loss: learned.train_loss,
                    test_loss: learned.test_loss,
                    seconds: learned.seconds,
                });
                if primary.is_none() && t == cfg.t_fixed && s == 1 {
                    primary = Some(learned);
                }
            }
            let (et, et_sd) =
                mean_std(&point_runs.iter().map(|r| r.error_true).collect::<Vec<_>>());
            let (ei, ei_sd) =
                mean_std(&point_runs.iter().map(|r| r.error_imde).collect::<Vec<_>>());
            results.push(SweepPoint {
                t,
                steps: s,
                h,
                error_true: et,
                error_true_std: et_sd,
                error_imde: ei,
                error_imde_std: ei_sd,
                imde_vs_true: field_error(&imde_values, &d.truth)?,
                runs: point_runs,
            });
        }
        let mut t_sweep: Vec<SweepPoint> = cfg
            .t_values
            .iter()
            .filter_map(|&t| results.iter().find(|p| p.t == t && p.steps == 1).cloned())
            .collect();
        t_sweep.sort_by(|a, b| a.t.total_cmp(&b.t));
        t_sweep.dedup_by(|a, b| a.t == b.t);
        let mut s_sweep: Vec<SweepPoint> = cfg
            .s_values
            .iter()
            .filter_map(|&s| {
                results
                    .iter()
                    .find(|p| p.t == cfg.t_fixed && p.steps == s)
                    .cloned()
            })
            .collect();
        s_sweep.sort_by_key(|p| p.steps);
        s_sweep.dedup_by_key(|p| p.steps);
        let fit = |pts: &[SweepPoint], y: fn(&SweepPoint) -> f64| {
            let hs: Vec<f64> = pts.iter().map(|p| p.h).collect();
            let ys: Vec<f64> = pts.iter().map(y).collect();
            loglog_fit(&hs, &ys)
        };
        let slopes = Slopes {
            t_true: fit(&t_sweep, |p| p.error_true),
            t_imde: fit(&t_sweep, |p| p.error_imde),
            t_gap: fit(&t_sweep, |p| p.imde_vs_true),
            s_true: fit(&s_sweep, |p| p.error_true),
            s_imde: fit(&s_sweep, |p| p.error_imde),
            s_gap: fit(&s_sweep, |p| p.imde_vs_true),
        };
        let mut learned = primary.expect("the primary point (t_fixed, S = 1) is always trained");
        let mut imde_rhs = super::ImdeField::new(system.clone(), series.clone(), learned.h())?;
        let rollouts = Rollouts {
            true_field: true_flow.clone(),
            imde: flow(
                &mut imde_rhs,
                &cfg.rollout_y0,
                cfg.rollout_t,
                cfg.rollout_dt,
            )?,
            learned: flow(
                &mut learned.field,
                &cfg.rollout_y0,
                cfg.rollout_t,
                cfg.rollout_dt,
            )?,
        };
        studies.push(MethodStudy {
            method: method.name().to_string(),
            order: method.order(),
            t_sweep,
            s_sweep,
            slopes,
            rollouts,
        });
    }
    Ok(ImdeStudy {
        config: cfg.clone(),
        state_names: system.state_names(),
        methods: studies,
    })
}
