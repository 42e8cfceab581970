//! Conservation laws of learned models (Zhu et al., ICML 2022, §5.2): trained on pendulum
//! data, which models keep the energy over long rollouts?
//!
//! Each model is trained on pairs `(x, φ_T(x))` with `S` steps of its method
//! ([`learn`]) and then iterated as the discrete model it is, `y_{n+1} = Φ_{h,f_θ}(y_n)`,
//! for `n = 10⁴` steps from a start point. Along the rollout the true energy `H(y_n)` is
//! compared with `H(y_0)`:
//!
//! * non-symplectic methods (`euler`, `midpoint`, `rk4`) on an MLP learn a map that
//!   approximates `φ_h` with a small local error of no particular structure; the errors
//!   accumulate and the energy drifts — the orbit spirals;
//! * `verlet` on the separable Hamiltonian network learns a symplectic map for every θ; it
//!   conserves a modified Hamiltonian, so the energy error oscillates with a bounded
//!   amplitude and the orbit closes;
//! * `implicit-midpoint` on a general MLP is symplectic only for Hamiltonian fields; what it
//!   learns is close to the (Hamiltonian) IMDE of a symplectic method, so its drift is
//!   reported, not assumed.
//!
//! [`EnergyDrift`] summarises a rollout: the largest deviation, the mean deviation over
//! the first and over the last tenth of the steps, and their ratio `growth` (≈ 1 for a
//! bounded oscillation, ≫ 1 for a drift). The reference is the exact flow map iterated on
//! the same grid.

use serde::Serialize;

use super::learning::{
    field_error, learn, modified_field, system_field, LearnConfig, LearnError, ModelKind, Rollout,
};
use super::series::{Expansion, ModifiedSeries};
use super::sweep::StudyProgress;
use crate::data::TrajectoryConfig;
use crate::error::ArgError;
use crate::solve::{solve_split, Method, SaveAt, SolveOptions};
use crate::state::Batch;
use crate::systems::{BuiltinSystem, System, SystemField};

/// A method and the network it trains.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModelSpec {
    /// Method name.
    pub method: String,
    /// Network.
    pub model: ModelKind,
}

impl ModelSpec {
    /// The paper's comparison: `euler`, `midpoint`, `rk4` on the MLP, `verlet` on the
    /// Hamiltonian network, `implicit-midpoint` on the MLP.
    pub fn paper_set() -> Vec<ModelSpec> {
        let spec = |method: &str, model| ModelSpec {
            method: method.into(),
            model,
        };
        vec![
            spec("euler", ModelKind::Mlp),
            spec("midpoint", ModelKind::Mlp),
            spec("rk4", ModelKind::Mlp),
            spec("verlet", ModelKind::Hamiltonian),
            spec("implicit-midpoint", ModelKind::Mlp),
        ]
    }

    /// Parses `method` or `method:model` (e.g. `verlet:hamiltonian`); without a model,
    /// splitting methods get the Hamiltonian network and every other method the MLP.
    pub fn parse(text: &str) -> Result<ModelSpec, ArgError> {
        let (method, model) = match text.split_once(':') {
            Some((m, k)) => (m, Some(ModelKind::from_name(k)?)),
            None => (text, None),
        };
        let resolved = Method::from_name(method)?;
        let model = model.unwrap_or(match resolved {
            Method::Splitting(_) => ModelKind::Hamiltonian,
            _ => ModelKind::Mlp,
        });
        Ok(ModelSpec {
            method: resolved.name().to_string(),
            model,
        })
    }

    /// `method` or `method (hamiltonian)`.
    pub fn label(&self) -> String {
        match self.model {
            ModelKind::Mlp => self.method.clone(),
            ModelKind::Hamiltonian => format!("{} (Hamiltonian net)", self.method),
        }
    }
}

/// Settings of the conservation study.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConservationConfig {
    /// A separable Hamiltonian system with a data preset (`pendulum`).
    pub system: String,
    /// Data interval `T`.
    pub t: f64,
    /// Steps per interval `S` (`h = T/S`).
    pub steps: usize,
    /// The models.
    pub models: Vec<ModelSpec>,
    /// Network width and optimiser (method, steps and seed are set per run).
    pub learn: LearnConfig,
    /// Seeds of the network initialisation.
    pub seeds: Vec<u64>,
    /// Training pairs.
    pub train_points: usize,
    /// Test pairs.
    pub test_points: usize,
    /// Seed of the data sampling.
    pub data_seed: u64,
    /// Start of the rollouts.
    pub y0: Vec<f64>,
    /// Steps of each rollout.
    pub rollout_steps: usize,
    /// Truncation order of the IMDE the learned fields are compared with.
    pub imde_order: usize,
}

/// Energy error along a rollout.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EnergyDrift {
    /// `max_n |H(y_n) − H(y_0)|`.
    pub max_abs: f64,
    /// `|H(y_N) − H(y_0)|` at the last state.
    pub final_abs: f64,
    /// Mean of `|H(y_n) − H(y_0)|` over the first tenth of the steps.
    pub early_mean: f64,
    /// Mean of `|H(y_n) − H(y_0)|` over the last tenth of the steps.
    pub late_mean: f64,
    /// `late_mean / early_mean`: ≈ 1 for an error that oscillates with a bounded
    /// amplitude, ≫ 1 for one that drifts; `None` when undefined (no error at all, or a
    /// non-finite one).
    pub growth: Option<f64>,
    /// Steps completed (fewer than asked when the rollout stopped).
    pub steps: usize,
}

impl EnergyDrift {
    /// Summarises the energy deviations `dh[n] = H(y_n) − H(y_0)` (`dh[0] = 0`).
    pub fn from_deviations(dh: &[f64]) -> EnergyDrift {
        let abs: Vec<f64> = dh.iter().map(|d| d.abs()).collect();
        let n = abs.len();
        let w = (n / 10).max(1).min(n.max(1));
        let mean = |s: &[f64]| {
            if s.is_empty() {
                0.0
            } else {
                s.iter().sum::<f64>() / s.len() as f64
            }
        };
        let early = mean(&abs[..w.min(n)]);
        let late = mean(&abs[n.saturating_sub(w)..]);
        EnergyDrift {
            max_abs: abs.iter().fold(0.0f64, |m, v| m.max(*v)),
            final_abs: abs.last().copied().unwrap_or(0.0),
            early_mean: early,
            late_mean: late,
            growth: (early > 0.0 && late.is_finite() && early.is_finite()).then(|| late / early),
            steps: n.saturating_sub(1),
        }
    }
}

/// One trained model and its rollout.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelReport {
    /// Method and network.
    pub spec: ModelSpec,
    /// Seed of the network.
    pub seed: u64,
    /// Whether the learned discrete model is symplectic by construction.
    pub symplectic: bool,
    /// Final training loss.
    pub train_loss: f64,
    /// Test loss.
    pub test_loss: f64,
    /// Training time in seconds.
    pub seconds: f64,
    /// `error(f_θ, f)` on the test inputs.
    pub error_true: f64,
    /// `error(f_θ, f_h^{[K]})` (Runge–Kutta methods only).
    pub error_imde: Option<f64>,
    /// True-energy error along the rollout.
    pub energy: EnergyDrift,
    /// `max |H_θ(y_n) − H_θ(y_0)|` of the network's own Hamiltonian (Hamiltonian net only).
    pub learned_hamiltonian_drift: Option<f64>,
    /// `H(y_n) − H(y_0)` at every step.
    pub energy_deviation: Vec<f64>,
    /// The rollout.
    pub rollout: Rollout,
}

/// The whole study.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConservationStudy {
    /// The settings.
    pub config: ConservationConfig,
    /// Step size `h = T/S` of the models and rollouts.
    pub h: f64,
    /// Energy of the start point.
    pub energy0: f64,
    /// The exact flow map iterated on the same grid.
    pub reference: Rollout,
    /// Its energy error (the reference integrator's).
    pub reference_energy: EnergyDrift,
    /// `H(y_n) − H(y_0)` along the reference.
    pub reference_deviation: Vec<f64>,
    /// One entry per model and seed.
    pub models: Vec<ModelReport>,
}

impl ConservationConfig {
    /// Checks the settings.
    pub fn validate(&self) -> Result<(BuiltinSystem, TrajectoryConfig), ArgError> {
        let data = TrajectoryConfig::for_system(&self.system)?;
        let system = BuiltinSystem::from_name(&data.system)?;
        if !system.is_separable() || system.invariant_names().first() != Some(&"energy") {
            return Err(ArgError::invalid(
                "system",
                &self.system,
                "the conservation study needs a separable Hamiltonian system with an energy",
            ));
        }
        if !(self.t.is_finite() && self.t > 0.0) {
            return Err(ArgError::invalid(
                "T",
                self.t,
                "must be positive and finite",
            ));
        }
        if self.models.is_empty() || self.seeds.is_empty() {
            return Err(ArgError::invalid("models", "[]", "need a model and a seed"));
        }
        if self.rollout_steps < 10 {
            return Err(ArgError::invalid(
                "rollout steps",
                self.rollout_steps,
                "must be at least 10",
            ));
        }
        if self.y0.len() != system.dim() {
            return Err(crate::error::ShapeError {
                what: "rollout start point",
                expected: system.dim(),
                got: self.y0.len(),
            }
            .into());
        }
        for m in &self.models {
            LearnConfig {
                method: m.method.clone(),
                model: m.model,
                steps: self.steps,
                ..self.learn.clone()
            }
            .validate()?;
        }
        Ok((
            system,
            TrajectoryConfig {
                t: self.t,
                train: self.train_points,
                test: self.test_points,
                seed: self.data_seed,
                ..data
            },
        ))
    }

    /// Number of training runs.
    pub fn runs(&self) -> usize {
        self.models.len() * self.seeds.len()
    }
}

/// The exact flow map iterated `n` times with step `h` (verlet6, 10 substeps per step).
fn reference_orbit(
    system: &BuiltinSystem,
    y0: &[f64],
    h: f64,
    n: usize,
) -> Result<Rollout, LearnError> {
    let method = Method::from_name("verlet6")?;
    let times: Vec<f64> = (0..=n).map(|k| k as f64 * h).collect();
    let opts = SolveOptions::steps(0.0, times[n], 10 * n).save(SaveAt::Times(times));
    let sol = solve_split(
        &method,
        &mut SystemField(system.clone()),
        &Batch::from_row(y0),
        &opts,
    )
    .map_err(|e| LearnError::solve("reference orbit", &e))?;
    Ok(Rollout {
        t: sol.t,
        y: sol.y.iter().map(|b| b.as_slice().to_vec()).collect(),
        stopped: None,
    })
}

fn deviations(system: &BuiltinSystem, states: &[Vec<f64>], e0: f64) -> Vec<f64> {
    states
        .iter()
        .map(|y| system.invariants(y)[0] - e0)
        .collect()
}

/// Runs the study ([module docs](self)); `progress` is called after every iteration.
pub fn run_conservation(
    cfg: &ConservationConfig,
    progress: &mut dyn FnMut(StudyProgress<'_>),
) -> Result<ConservationStudy, LearnError> {
    let (system, data_cfg) = cfg.validate()?;
    let data = data_cfg
        .generate::<f64>()
        .map_err(|e| LearnError::Solve {
            what: "trajectory data".into(),
            message: e.to_string(),
        })?
        .data;
    let h = cfg.t / cfg.steps as f64;
    let e0 = system.invariants(&cfg.y0)[0];
    let reference = reference_orbit(&system, &cfg.y0, h, cfg.rollout_steps)?;
    let reference_deviation = deviations(&system, &reference.y, e0);
    let reference_energy = EnergyDrift::from_deviations(&reference_deviation);
    let truth = system_field(&system, data.test.x());
    let runs = cfg.runs();
    let mut run = 0;
    let mut models = Vec::new();
    for spec in &cfg.models {
        let method = Method::from_name(&spec.method)?;
        let imde = match ModifiedSeries::for_method(Expansion::Inverse, &method, cfg.imde_order) {
            Ok(series) => Some(modified_field(&system, &series, h, data.test.x())?),
            Err(_) => None,
        };
        for &seed in &cfg.seeds {
            let label = format!("{} seed={seed}", spec.label());
            let lc = LearnConfig {
                method: spec.method.clone(),
                model: spec.model,
                steps: cfg.steps,
                seed,
                ..cfg.learn.clone()
            };
            let mut learned = learn(&lc, &data, cfg.t, |rec| {
                progress(StudyProgress {
                    run,
                    runs,
                    label: &label,
                    record: rec,
                })
            })?;
            run += 1;
            let values = learned.field.values(data.test.x());
            let rollout = learned
                .field
                .rollout(&method, h, &cfg.y0, cfg.rollout_steps)?;
            let dh = deviations(&system, &rollout.y, e0);
            let learned_hamiltonian_drift = learned
                .field
                .hamiltonian(&rollout.y)
                .map(|hs| hs.iter().fold(0.0f64, |m, v| m.max((v - hs[0]).abs())));
            let symplectic = match &method {
                Method::Splitting(_) => spec.model == ModelKind::Hamiltonian,
                Method::Implicit(_) => spec.model == ModelKind::Hamiltonian,
                Method::Explicit(_) => false,
            };
            models.push(ModelReport {
                spec: spec.clone(),
                seed,
                symplectic,
                train_loss: learned.train_loss,
                test_loss: learned.test_loss,
                seconds: learned.seconds,
                error_true: field_error(&values, &truth)?,
                error_imde: imde.as_ref().map(|v| field_error(&values, v)).transpose()?,
                energy: EnergyDrift::from_deviations(&dh),
                learned_hamiltonian_drift,
                energy_deviation: dh,
                rollout,
            });
        }
    }
    Ok(ConservationStudy {
        config: cfg.clone(),
        h,
        energy0: e0,
        reference,
        reference_energy,
        reference_deviation,
        models,
    })
}
