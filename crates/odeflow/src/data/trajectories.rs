//! Pairs `(x, φ_T(x))` of the exact flow of a built-in system, for learning vector fields
//! from data as in Zhu, Wu, Tang & Jin, *On numerical integration in neural ordinary
//! differential equations* (ICML 2022).
//!
//! The flow map `φ_T` is replaced by a high-accuracy reference integration with `substeps`
//! equal steps over `[0, T]`: for separable Hamiltonian systems by default the order-6
//! Störmer–Verlet composition `verlet6` (Yoshida's triple jump, through
//! [`crate::solve::solve_split`] on the drift/kick split of [`SystemField`]) with 10
//! substeps — symplectic, so the data respect the energy to round-off — and otherwise
//! classical `rk4` with 100 substeps. Any method of the catalogue can be named instead.
//!
//! Presets (each value can be overridden; see [`TrajectoryConfig`]):
//!
//! | system | sampling | T | train / test | reference |
//! |---|---|---|---|---|
//! | `pendulum` (`p' = −10 sin q, q' = p`, state `(p, q)`) | uniform in `[−3.8, 3.8] × [−1.2, 1.2]` | 0.04 | 10 000 / 2 000 | verlet6 × 10 |
//! | `damped-cubic` | uniform in `[−2.2, 2.2]²` | 0.02 | 10 000 / 2 000 | rk4 × 100 |
//! | `lorenz` (scaled) | one trajectory from `(−0.8, 0.7, 2.6)` | 0.04 | 250 / 250 | rk4 × 100 |
//!
//! **Box sampling** draws the training inputs with seed `derive_seed(seed, 1)` and the test
//! inputs with `derive_seed(seed, 2)`. **Trajectory sampling** integrates one trajectory
//! `x_{k+1} = φ_T(x_k)` from `x0` and forms the consecutive pairs `(x_k, x_{k+1})`: the first
//! `train` pairs are the training set and the next `test` pairs, continuing the same
//! trajectory, the test set (no randomness). Other built-in systems have no preset: give
//! `sampling` and `t` for them (counts then default to 1 000 / 200).
//!
//! When a configuration names a `method` but no `substeps`, `verlet6` gets 10 substeps and
//! every other method 100.
//!
//! Data are computed in `f64` and cast to the requested scalar type. Columns are named after
//! the system's state (`p, q, p_T, q_T` for the pendulum).

use serde::{Deserialize, Serialize};

use super::dataset::{derive_seed, seeded_rng, PairDataset, TrainTest};
use super::error::DataError;
use crate::error::ArgError;
use crate::real::Real;
use crate::solve::{solve, solve_split, Method, SolveOptions};
use crate::state::Batch;
use crate::systems::{BuiltinSystem, System, SystemField};
use rand::RngExt;

/// How the inputs `x` are chosen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Sampling {
    /// Independent draws, uniform in the box `lo ≤ x ≤ hi` (componentwise).
    Box {
        /// Lower corner.
        lo: Vec<f64>,
        /// Upper corner.
        hi: Vec<f64>,
    },
    /// Consecutive points of one trajectory from `x0`.
    Trajectory {
        /// Initial state.
        x0: Vec<f64>,
    },
}

/// A complete, checked description of a trajectory-pair data set. Deserialising fills
/// every field left out from the system's preset and checks the result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawTrajectoryConfig")]
pub struct TrajectoryConfig {
    /// Built-in system name (see [`crate::systems::SYSTEM_NAMES`]).
    pub system: String,
    /// How inputs are chosen.
    pub sampling: Sampling,
    /// Time `T` between input and target (> 0).
    pub t: f64,
    /// Number of training pairs.
    pub train: usize,
    /// Number of test pairs.
    pub test: usize,
    /// Reference method (a catalogue name).
    pub method: String,
    /// Reference steps per `T` (≥ 1).
    pub substeps: usize,
    /// Seed of the box sampling.
    pub seed: u64,
}

/// The deserialised form of [`TrajectoryConfig`] before presets are applied.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTrajectoryConfig {
    system: String,
    sampling: Option<Sampling>,
    #[serde(alias = "T")]
    t: Option<f64>,
    train: Option<usize>,
    test: Option<usize>,
    method: Option<String>,
    substeps: Option<usize>,
    seed: Option<u64>,
}

impl TryFrom<RawTrajectoryConfig> for TrajectoryConfig {
    type Error = DataError;
    fn try_from(r: RawTrajectoryConfig) -> Result<Self, DataError> {
        let preset = Self::preset(&r.system);
        let sys = BuiltinSystem::from_name(&r.system)?;
        let (sampling, t) = match (r.sampling, r.t, &preset) {
            (s, t, Some(p)) => (s.unwrap_or_else(|| p.sampling.clone()), t.unwrap_or(p.t)),
            (Some(s), Some(t), None) => (s, t),
            _ => {
                return Err(ArgError::invalid(
                    "system",
                    &r.system,
                    "has no trajectory-data preset (pendulum, damped-cubic, lorenz have): give both `sampling` and `t`",
                )
                .into())
            }
        };
        let method = r
            .method
            .unwrap_or_else(|| default_reference(&sys).0.to_string());
        let cfg = Self {
            system: sys.name().to_string(),
            sampling,
            t,
            train: r.train.or(preset.as_ref().map(|p| p.train)).unwrap_or(1000),
            test: r.test.or(preset.as_ref().map(|p| p.test)).unwrap_or(200),
            substeps: r
                .substeps
                .unwrap_or(if method == "verlet6" { 10 } else { 100 }),
            method,
            seed: r.seed.unwrap_or(0),
        };
        cfg.validate()?;
        Ok(cfg)
    }
}

/// Default reference integrator: verlet6 × 10 for separable systems, rk4 × 100 otherwise.
fn default_reference(sys: &BuiltinSystem) -> (&'static str, usize) {
    if sys.is_separable() {
        ("verlet6", 10)
    } else {
        ("rk4", 100)
    }
}

impl TrajectoryConfig {
    /// The preset of `pendulum`, `damped-cubic` (alias `cubic`) or `lorenz`; `None` for
    /// other names.
    pub fn preset(system: &str) -> Option<Self> {
        let (name, sampling, t, train, test) = match system {
            "pendulum" => (
                "pendulum",
                Sampling::Box {
                    lo: vec![-3.8, -1.2],
                    hi: vec![3.8, 1.2],
                },
                0.04,
                10_000,
                2_000,
            ),
            "damped-cubic" | "cubic" => (
                "damped-cubic",
                Sampling::Box {
                    lo: vec![-2.2, -2.2],
                    hi: vec![2.2, 2.2],
                },
                0.02,
                10_000,
                2_000,
            ),
            "lorenz" => (
                "lorenz",
                Sampling::Trajectory {
                    x0: vec![-0.8, 0.7, 2.6],
                },
                0.04,
                250,
                250,
            ),
            _ => return None,
        };
        let sys = BuiltinSystem::from_name(name).ok()?;
        let (method, substeps) = default_reference(&sys);
        Some(Self {
            system: name.into(),
            sampling,
            t,
            train,
            test,
            method: method.into(),
            substeps,
            seed: 0,
        })
    }

    /// The preset of `system`, or an error naming the systems that have one.
    pub fn for_system(system: &str) -> Result<Self, ArgError> {
        Self::preset(system).ok_or_else(|| ArgError::Unknown {
            kind: "trajectory-data preset",
            name: system.into(),
            known: "pendulum, damped-cubic, lorenz".into(),
        })
    }

    /// Parses a TOML description (e.g. `system = "pendulum"\ntrain = 500`).
    pub fn from_toml(text: &str) -> Result<Self, DataError> {
        toml::from_str(text)
            .map_err(|e| ArgError::invalid("trajectory config", text.trim(), e.to_string()).into())
    }

    /// The system and the reference method, after checking every value.
    pub fn validate(&self) -> Result<(BuiltinSystem, Method), ArgError> {
        let sys = BuiltinSystem::from_name(&self.system)?;
        let dim = sys.dim();
        if !(self.t.is_finite() && self.t > 0.0) {
            return Err(ArgError::invalid(
                "t",
                self.t,
                "must be positive and finite",
            ));
        }
        if self.substeps == 0 {
            return Err(ArgError::invalid("substeps", 0, "must be at least 1"));
        }
        let method = Method::from_name(&self.method)?;
        if matches!(method, Method::Splitting(_)) && !sys.is_separable() {
            return Err(ArgError::MethodUnsuited {
                method: self.method.clone(),
                reason: format!(
                    "is a splitting method, but {} is not a separable Hamiltonian system",
                    sys.name()
                ),
            });
        }
        let check_len = |what: &'static str, v: &[f64]| -> Result<(), ArgError> {
            if v.len() != dim {
                return Err(crate::error::ShapeError {
                    what,
                    expected: dim,
                    got: v.len(),
                }
                .into());
            }
            match v.iter().position(|x| !x.is_finite()) {
                Some(i) => Err(ArgError::invalid(
                    format!("{what}[{i}]"),
                    v[i],
                    "must be finite",
                )),
                None => Ok(()),
            }
        };
        match &self.sampling {
            Sampling::Box { lo, hi } => {
                check_len("box lower corner lo", lo)?;
                check_len("box upper corner hi", hi)?;
                if let Some(i) = (0..dim).find(|&i| lo[i] > hi[i]) {
                    return Err(ArgError::invalid(
                        format!("lo[{i}]"),
                        lo[i],
                        format!("exceeds hi[{i}] = {}", hi[i]),
                    ));
                }
            }
            Sampling::Trajectory { x0 } => check_len("initial state x0", x0)?,
        }
        Ok((sys, method))
    }

    /// Draws the inputs and integrates the reference flow (see the module docs).
    pub fn generate<T: Real>(&self) -> Result<TrajectoryData<T>, DataError> {
        generate_pairs(self)
    }
}

/// A generated trajectory-pair data set and the configuration that made it.
#[derive(Debug, Clone)]
pub struct TrajectoryData<T> {
    /// Training and test pairs.
    pub data: TrainTest<PairDataset<T>>,
    /// The configuration used.
    pub config: TrajectoryConfig,
}

/// `φ_T(x)` for every row of `x`, by the reference method with `substeps` equal steps.
pub fn reference_flow(
    sys: &BuiltinSystem,
    method: &Method,
    x: &Batch<f64>,
    t: f64,
    substeps: usize,
) -> Result<Batch<f64>, DataError> {
    let mut field = SystemField(sys.clone());
    field.check(x)?;
    let opts = SolveOptions::steps(0.0, t, substeps);
    let sol = match method {
        Method::Splitting(_) => solve_split(method, &mut field, x, &opts),
        _ => solve(method, &mut field, x, &opts),
    };
    sol.map(|s| s.y_final)
        .map_err(|e| DataError::Solve(e.without_state().to_string()))
}

fn uniform_box(lo: &[f64], hi: &[f64], n: usize, seed: u64) -> Batch<f64> {
    let mut rng = seeded_rng(seed);
    let mut x = Batch::zeros(n, lo.len());
    for row in x.as_mut_slice().chunks_exact_mut(lo.len().max(1)) {
        for ((v, a), b) in row.iter_mut().zip(lo).zip(hi) {
            *v = a + (b - a) * rng.random::<f64>();
        }
    }
    x
}

/// Generates the data set `cfg` describes.
pub fn generate_pairs<T: Real>(cfg: &TrajectoryConfig) -> Result<TrajectoryData<T>, DataError> {
    let (sys, method) = cfg.validate()?;
    let names = sys.state_names();
    let pairs = |x: Batch<f64>, y: Batch<f64>| {
        PairDataset::with_names(x.cast::<T>(), y.cast::<T>(), names.clone())
    };
    let flow = |x: &Batch<f64>| reference_flow(&sys, &method, x, cfg.t, cfg.substeps);
    let data = match &cfg.sampling {
        Sampling::Box { lo, hi } => {
            let xtr = uniform_box(lo, hi, cfg.train, derive_seed(cfg.seed, 1));
            let xte = uniform_box(lo, hi, cfg.test, derive_seed(cfg.seed, 2));
            let (ytr, yte) = (flow(&xtr)?, flow(&xte)?);
            TrainTest {
                train: pairs(xtr, ytr)?,
                test: pairs(xte, yte)?,
            }
        }
        Sampling::Trajectory { x0 } => {
            let n = cfg.train + cfg.test;
            let dim = x0.len();
            let mut points = Vec::with_capacity((n + 1) * dim);
            points.extend_from_slice(x0);
            let mut x = Batch::from_row(x0);
            for _ in 0..n {
                x = flow(&x)?;
                points.extend_from_slice(x.as_slice());
            }
            let block = |from: usize, count: usize| {
                Batch::from_vec(
                    count,
                    dim,
                    points[from * dim..(from + count) * dim].to_vec(),
                )
            };
            TrainTest {
                train: pairs(block(0, cfg.train)?, block(1, cfg.train)?)?,
                test: pairs(block(cfg.train, cfg.test)?, block(cfg.train + 1, cfg.test)?)?,
            }
        }
    };
    Ok(TrajectoryData {
        data,
        config: cfg.clone(),
    })
}
