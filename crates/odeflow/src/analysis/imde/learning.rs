//! Learning a vector field from trajectory pairs with the integrator inside the model, and
//! measuring what was learned (Zhu, Jin, Zhu, Tang, ICML 2022, §4–5).
//!
//! [`learn`] fits `x ↦ Φ^S_{h,f_θ}(x)`, `h = T/S`, to pairs `(x, φ_T(x))`
//! ([`crate::data::trajectories`]) by full-batch mean squared error with Adam, the learning
//! rate decaying exponentially from `lr` to `final_lr` over the run (the paper: 1e-2 to
//! 1e-5). The field is
//!
//! * [`ModelKind::Mlp`]: the paper's MLP `dim → hidden → hidden → dim`, tanh, orthogonal
//!   weights, zero biases (hidden = 128 in the paper), with any explicit Runge–Kutta method
//!   (backprop through the stages) or the implicit midpoint rule (implicit-function
//!   theorem);
//! * [`ModelKind::Hamiltonian`]: the separable Hamiltonian network
//!   `H_θ = T_θ(p) + V_θ(q)` ([`SeparableHamiltonian`]), with the same methods or with a
//!   symplectic splitting (Störmer–Verlet), whose learned model is then a symplectic map.
//!
//! What the fit converges to is the method's inverse modified equation `f_h`, not `f`:
//! [`field_error`] measures `error(g₁, g₂) = mean over test points of ‖g₁(y) − g₂(y)‖_∞`
//! between the learned field and the true field ([`system_field`]) or the IMDE truncated at
//! order `K` ([`modified_field`]); [`flow`] integrates any of them accurately from a start
//! point, and [`LearnedField::rollout`] iterates the learned discrete model itself.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::series::ModifiedSeries;
use super::ImdeField;
use crate::data::{PairDataset, TrainTest};
use crate::error::{ArgError, ShapeError, SolveError};
use crate::field::Parameterized;
use crate::grad::{DiffSolve, FieldGradSolver, GradientMethod, SplitGradSolver};
use crate::models::hamiltonian::SeparableHamiltonian;
use crate::models::regressor::{FlowRegressor, FullBatch};
use crate::nn::zoo::{mlp_field, MlpOptions};
use crate::nn::{Activation, Init, NeuralField, NnError};
use crate::solve::{solve, solve_split, Method, Rhs, SaveAt, SolveOptions};
use crate::state::Batch;
use crate::systems::{System, SystemField};
use crate::train::{
    IterationRecord, LrSchedule, NoHook, OptimizerConfig, TrainConfig, TrainError, Trainer,
};

/// Why learning or evaluating a field failed.
#[derive(Debug, Error)]
pub enum LearnError {
    /// An invalid setting (named in the message).
    #[error(transparent)]
    Arg(#[from] ArgError),
    /// The network could not be built.
    #[error(transparent)]
    Nn(#[from] NnError),
    /// Training stopped (solver failure, non-finite loss).
    #[error(transparent)]
    Train(#[from] TrainError),
    /// A solve outside training failed.
    #[error("{what}: {message}")]
    Solve {
        /// What was being solved.
        what: String,
        /// The solver's message.
        message: String,
    },
}

impl LearnError {
    pub(crate) fn solve<S>(what: impl Into<String>, e: &SolveError<S>) -> Self {
        LearnError::Solve {
            what: what.into(),
            message: e.without_state().to_string(),
        }
    }
}

/// Which network represents the field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    /// The tanh MLP `dim → hidden → hidden → dim`.
    Mlp,
    /// The separable Hamiltonian network `T_θ(p) + V_θ(q)` (states `(p, q)`).
    Hamiltonian,
}

impl ModelKind {
    /// `"mlp"` or `"hamiltonian"`.
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Mlp => "mlp",
            ModelKind::Hamiltonian => "hamiltonian",
        }
    }

    /// Parses `mlp` or `hamiltonian`.
    pub fn from_name(name: &str) -> Result<Self, ArgError> {
        match name {
            "mlp" => Ok(ModelKind::Mlp),
            "hamiltonian" | "hnn" => Ok(ModelKind::Hamiltonian),
            _ => Err(ArgError::Unknown {
                kind: "model",
                name: name.into(),
                known: "mlp, hamiltonian".into(),
            }),
        }
    }
}

/// Settings of one training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LearnConfig {
    /// The network.
    pub model: ModelKind,
    /// Hidden width (128 in the paper).
    pub hidden: usize,
    /// Method name (see `odeflow methods`).
    pub method: String,
    /// Steps `S` per data interval `T` (`h = T/S`).
    pub steps: usize,
    /// Adam iterations (full batch).
    pub iterations: u64,
    /// Initial learning rate.
    pub lr: f64,
    /// Learning rate at the last iteration (exponential decay in between).
    pub final_lr: f64,
    /// Seed of the initial parameters.
    pub seed: u64,
}

impl Default for LearnConfig {
    /// The paper's settings except the budget: MLP with 128 units, Euler, S = 1, learning
    /// rate 1e-2 → 1e-5, 1 000 iterations (the paper: 300 000).
    fn default() -> Self {
        Self {
            model: ModelKind::Mlp,
            hidden: 128,
            method: "euler".into(),
            steps: 1,
            iterations: 1000,
            lr: 1e-2,
            final_lr: 1e-5,
            seed: 0,
        }
    }
}

impl LearnConfig {
    /// Checks the settings and resolves the method.
    pub fn validate(&self) -> Result<Method, ArgError> {
        let method = Method::from_name(&self.method)?;
        if self.hidden == 0 {
            return Err(ArgError::invalid("hidden", 0, "must be at least 1"));
        }
        if self.steps == 0 {
            return Err(ArgError::invalid("steps", 0, "must be at least 1"));
        }
        if self.iterations == 0 {
            return Err(ArgError::invalid("iterations", 0, "must be at least 1"));
        }
        for (name, v) in [("lr", self.lr), ("final_lr", self.final_lr)] {
            if !(v.is_finite() && v > 0.0) {
                return Err(ArgError::invalid(name, v, "must be positive and finite"));
            }
        }
        if self.model == ModelKind::Mlp && matches!(method, Method::Splitting(_)) {
            return Err(ArgError::MethodUnsuited {
                method: method.name().to_string(),
                reason: "is a splitting method and needs a field split into drift and kick: \
                         use the Hamiltonian model"
                    .into(),
            });
        }
        Ok(method)
    }
}

/// A learned field: the MLP or the Hamiltonian network.
#[derive(Debug, Clone)]
pub enum LearnedField {
    /// The MLP.
    Mlp(NeuralField<f64>),
    /// The separable Hamiltonian network (boxed: it carries its scratch buffers).
    Hamiltonian(Box<SeparableHamiltonian<f64>>),
}

impl LearnedField {
    /// A freshly initialised network of `kind` on states of dimension `dim`.
    pub fn new(kind: ModelKind, dim: usize, hidden: usize, seed: u64) -> Result<Self, NnError> {
        Ok(match kind {
            ModelKind::Mlp => LearnedField::Mlp(mlp_field(
                &[dim, hidden, hidden, dim],
                &MlpOptions {
                    activation: Activation::Tanh,
                    init: Init::orthogonal(),
                    time_input: false,
                },
                seed,
            )?),
            ModelKind::Hamiltonian => {
                LearnedField::Hamiltonian(Box::new(SeparableHamiltonian::new(dim, hidden, seed)?))
            }
        })
    }

    /// Which network this is.
    pub fn kind(&self) -> ModelKind {
        match self {
            LearnedField::Mlp(_) => ModelKind::Mlp,
            LearnedField::Hamiltonian(_) => ModelKind::Hamiltonian,
        }
    }

    /// Number of parameters.
    pub fn num_params(&self) -> usize {
        match self {
            LearnedField::Mlp(f) => f.num_params(),
            LearnedField::Hamiltonian(f) => f.num_params(),
        }
    }

    /// `f_θ(x)` for every row of `x`.
    pub fn values(&mut self, x: &Batch<f64>) -> Batch<f64> {
        let mut out = Batch::zeros(x.rows(), x.cols());
        self.eval(0.0, x, &mut out);
        out
    }

    /// The network's Hamiltonian `H_θ` at each state (Hamiltonian network only).
    pub fn hamiltonian(&mut self, states: &[Vec<f64>]) -> Option<Vec<f64>> {
        let LearnedField::Hamiltonian(h) = self else {
            return None;
        };
        let rows: Vec<Vec<f64>> = states.to_vec();
        let batch = Batch::from_rows(&rows).ok()?;
        h.hamiltonian(&batch).ok()
    }

    /// The learned discrete model `Φ_{h,f_θ}` iterated `n` times from `y0` with `method`:
    /// the states `y_0, …, y_n`, or fewer when the rollout stops (a non-finite state, an
    /// implicit step that does not converge), with the reason.
    pub fn rollout(
        &mut self,
        method: &Method,
        h: f64,
        y0: &[f64],
        n: usize,
    ) -> Result<Rollout, LearnError> {
        if n == 0 {
            return Err(ArgError::invalid("rollout steps", 0, "must be at least 1").into());
        }
        let opts = SolveOptions::steps(0.0, h * n as f64, n).save(SaveAt::Steps);
        let x0 = Batch::from_row(y0);
        let result = match (self, method) {
            (LearnedField::Hamiltonian(f), Method::Splitting(_)) => {
                solve_split(method, f.as_mut(), &x0, &opts)
            }
            (_, Method::Splitting(s)) => {
                return Err(ArgError::MethodUnsuited {
                    method: s.name.clone(),
                    reason: "needs the Hamiltonian model".into(),
                }
                .into())
            }
            (f, _) => solve(method, f, &x0, &opts),
        };
        Ok(Rollout::from_result(result))
    }
}

impl Rhs<Batch<f64>> for LearnedField {
    fn eval(&mut self, t: f64, y: &Batch<f64>, dy: &mut Batch<f64>) {
        match self {
            LearnedField::Mlp(f) => Rhs::eval(f, t, y, dy),
            LearnedField::Hamiltonian(f) => Rhs::eval(f.as_mut(), t, y, dy),
        }
    }
}

/// States along a trajectory (one row per saved time), possibly cut short.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rollout {
    /// Times.
    pub t: Vec<f64>,
    /// States.
    pub y: Vec<Vec<f64>>,
    /// Why the trajectory stops early, if it does.
    pub stopped: Option<String>,
}

impl Rollout {
    fn from_result(
        result: Result<crate::solve::Solution<Batch<f64>>, SolveError<Batch<f64>>>,
    ) -> Self {
        let (sol, stopped) = match result {
            Ok(sol) => (sol, None),
            Err(e) => {
                let msg = e.to_string();
                match e {
                    SolveError::Failed(f) => (f.partial, Some(msg)),
                    SolveError::Invalid(_) => {
                        return Rollout {
                            t: Vec::new(),
                            y: Vec::new(),
                            stopped: Some(msg),
                        }
                    }
                }
            }
        };
        Rollout {
            t: sol.t,
            y: sol.y.iter().map(|b| b.as_slice().to_vec()).collect(),
            stopped,
        }
    }
}

/// The accurate flow of `rhs` from `y0` over `[0, t_end]`: classical `rk4` with steps of
/// `dt`, every step saved.
pub fn flow<R: Rhs<Batch<f64>>>(
    rhs: &mut R,
    y0: &[f64],
    t_end: f64,
    dt: f64,
) -> Result<Rollout, LearnError> {
    let method = Method::from_name("rk4")?;
    let opts = SolveOptions::fixed(0.0, t_end, dt).save(SaveAt::Steps);
    opts.validate()?;
    Ok(Rollout::from_result(solve(
        &method,
        rhs,
        &Batch::from_row(y0),
        &opts,
    )))
}

/// A trained field and how it was trained.
#[derive(Debug, Clone)]
pub struct Learned {
    /// The field.
    pub field: LearnedField,
    /// The method inside the model.
    pub method: Method,
    /// Data interval `T`.
    pub t: f64,
    /// Steps per interval `S`.
    pub steps: usize,
    /// Training loss (MSE) after the last iteration.
    pub train_loss: f64,
    /// MSE of the trained model on the test pairs.
    pub test_loss: f64,
    /// Wall time of the training in seconds.
    pub seconds: f64,
}

impl Learned {
    /// The step size `h = T/S`.
    pub fn h(&self) -> f64 {
        self.t / self.steps as f64
    }
}

/// Trains the field of `cfg` on `data` (pairs `T` apart), calling `on_iter` after every
/// iteration. Deterministic: the same configuration and data give the same numbers.
pub fn learn(
    cfg: &LearnConfig,
    data: &TrainTest<PairDataset<f64>>,
    t: f64,
    on_iter: impl FnMut(&IterationRecord),
) -> Result<Learned, LearnError> {
    let method = cfg.validate()?;
    if !(t.is_finite() && t > 0.0) {
        return Err(ArgError::invalid("T", t, "must be positive and finite").into());
    }
    let dim = data.train.x().cols();
    let shapes = [
        ("training targets", data.train.y().cols()),
        ("test inputs", data.test.x().cols()),
        ("test targets", data.test.y().cols()),
    ];
    if let Some((what, got)) = shapes.into_iter().find(|(_, c)| *c != dim) {
        return Err(ArgError::Shape(ShapeError {
            what,
            expected: dim,
            got,
        })
        .into());
    }
    if data.train.is_empty() || data.test.is_empty() {
        return Err(ArgError::invalid(
            "data",
            format!(
                "{} training / {} test pairs",
                data.train.len(),
                data.test.len()
            ),
            "need at least one pair of each",
        )
        .into());
    }
    let opts = SolveOptions::steps(0.0, t, cfg.steps);
    let field = LearnedField::new(cfg.model, dim, cfg.hidden, cfg.seed)?;
    let fitted = match (field, &method) {
        (LearnedField::Hamiltonian(h), Method::Splitting(_)) => {
            let solver = SplitGradSolver::new(&method, opts)?;
            fit(FlowRegressor::new(*h, solver), cfg, data, on_iter)
                .map(|(f, l)| (LearnedField::Hamiltonian(Box::new(f)), l))
        }
        (LearnedField::Hamiltonian(h), _) => {
            let solver = FieldGradSolver::new(&method, GradientMethod::Backprop, opts)?;
            fit(FlowRegressor::new(*h, solver), cfg, data, on_iter)
                .map(|(f, l)| (LearnedField::Hamiltonian(Box::new(f)), l))
        }
        (LearnedField::Mlp(m), _) => {
            let solver = FieldGradSolver::new(&method, GradientMethod::Backprop, opts)?;
            fit(FlowRegressor::new(m, solver), cfg, data, on_iter)
                .map(|(f, l)| (LearnedField::Mlp(f), l))
        }
    }?;
    let (field, (train_loss, test_loss, seconds)) = fitted;
    Ok(Learned {
        field,
        method,
        t,
        steps: cfg.steps,
        train_loss,
        test_loss,
        seconds,
    })
}

/// Trains one regressor; returns its field and (train loss, test loss, seconds).
fn fit<F, G>(
    mut model: FlowRegressor<f64, F, G>,
    cfg: &LearnConfig,
    data: &TrainTest<PairDataset<f64>>,
    on_iter: impl FnMut(&IterationRecord),
) -> Result<(F, (f64, f64, f64)), LearnError>
where
    F: Parameterized<f64>,
    G: DiffSolve<Batch<f64>, F, Grad = Vec<f64>>,
{
    let train_cfg = TrainConfig {
        iterations: cfg.iterations,
        optimizer: OptimizerConfig::adam(cfg.lr),
        schedule: LrSchedule::ExponentialTo {
            final_lr: cfg.final_lr,
            iterations: cfg.iterations,
        },
        checkpoint_every: 0,
        out_dir: None,
    };
    let mut source = FullBatch::new(data.train.x().clone(), data.train.y().clone());
    let mut trainer = Trainer::new(train_cfg, &model)?;
    let summary = trainer.run(&mut model, &mut source, &mut NoHook, on_iter)?;
    let train_loss = model.mse(data.train.x(), data.train.y())?;
    let test_loss = model.mse(data.test.x(), data.test.y())?;
    Ok((model.into_field(), (train_loss, test_loss, summary.seconds)))
}

/// `error(g₁, g₂)`: the mean over rows of `max_j |g₁ − g₂|`.
pub fn field_error(a: &Batch<f64>, b: &Batch<f64>) -> Result<f64, ArgError> {
    if (a.rows(), a.cols()) != (b.rows(), b.cols()) {
        return Err(ShapeError {
            what: "field values (rows × dim)",
            expected: a.rows() * a.cols(),
            got: b.rows() * b.cols(),
        }
        .into());
    }
    if a.rows() == 0 {
        return Err(ArgError::invalid(
            "test points",
            0,
            "need at least one point",
        ));
    }
    let total: f64 = a
        .iter_rows()
        .zip(b.iter_rows())
        .map(|(x, y)| {
            x.iter()
                .zip(y)
                .fold(0.0f64, |m, (p, q)| m.max((p - q).abs()))
        })
        .sum();
    Ok(total / a.rows() as f64)
}

/// The true field `f(x)` of a system at every row of `x`.
pub fn system_field<Sys: System + Clone>(sys: &Sys, x: &Batch<f64>) -> Batch<f64> {
    let mut out = Batch::zeros(x.rows(), x.cols());
    SystemField(sys.clone()).eval(0.0, x, &mut out);
    out
}

/// The truncated modified field `Σ_{k≤K} h^k f_k(x)` of `series` at every row of `x`.
pub fn modified_field<Sys: System + Clone>(
    sys: &Sys,
    series: &ModifiedSeries,
    h: f64,
    x: &Batch<f64>,
) -> Result<Batch<f64>, ArgError> {
    let mut field = ImdeField::new(sys.clone(), series.clone(), h)?;
    field.check(x)?;
    let mut out = Batch::zeros(x.rows(), x.cols());
    field.eval(0.0, x, &mut out);
    Ok(out)
}
