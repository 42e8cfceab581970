//! One solve loop for every method and every state type.
//!
//! The pieces, in the style of diffrax: a *method* ([`Method`]: an explicit tableau, a
//! symplectic splitting, or the implicit midpoint rule) says how one step is made; a *step
//! size policy* ([`Stepping`]: a fixed grid, or adaptive with a PI controller) says where the
//! steps go; *save points* ([`SaveAt`]) say what is kept. They meet in [`solve`] (and
//! [`solve_split`] for fields split into drift and kick), which return a [`Solution`] with
//! serialisable [`Stats`], or a typed [`SolveError`] that keeps the partial solution.
//!
//! ```
//! use odeflow::{solve::{solve, SolveOptions}, Batch, Method};
//! let method = Method::from_name("rk4").unwrap();
//! // y' = -y on [0, 1] with 100 steps of h = 0.01.
//! let mut f = |_t: f64, y: &Batch<f64>, dy: &mut Batch<f64>| {
//!     for (d, v) in dy.as_mut_slice().iter_mut().zip(y.as_slice()) { *d = -v; }
//! };
//! let y0 = Batch::from_row(&[1.0]);
//! let sol = solve(&method, &mut f, &y0, &SolveOptions::fixed(0.0, 1.0, 0.01)).unwrap();
//! assert!((sol.y_final.as_slice()[0] - (-1.0f64).exp()).abs() < 1e-9);
//! assert_eq!(sol.stats.steps, 100);
//! ```

mod adaptive;
mod controller;
mod fixed;
mod implicit;
mod method;
mod rk;
pub mod spec;
mod splitting;

pub use controller::{hairer_initial_step, PiController};
pub use implicit::{ImplicitIteration, ImplicitOptions};
pub use method::{method_catalogue, Method, MethodInfo, MethodKind};
pub use rk::{Attempt, RkStepper};
pub use spec::SolverSpec;
pub use splitting::{SplitPart, Splitting};

use serde::{Deserialize, Serialize};

use crate::error::{ArgError, FailReason, Failure, SolveError};
use crate::state::State;

/// The right-hand side `f(t, y)` of `y' = f(t, y)`, evaluated into a caller buffer.
///
/// Any `FnMut(f64, &S, &mut S)` closure is one. Fields that record what a gradient method
/// needs (see `grad`) override [`Rhs::eval_stage`] and [`Rhs::end_attempt`]; plain fields
/// ignore them.
pub trait Rhs<S: State> {
    /// `dy ← f(t, y)`.
    fn eval(&mut self, t: f64, y: &S, dy: &mut S);

    /// Evaluation of Runge–Kutta stage `stage` of the current step attempt. Stage 0 is
    /// always `f(tₙ, yₙ)` and may be carried over between attempts (see [`Attempt`]).
    fn eval_stage(&mut self, stage: usize, t: f64, y: &S, dy: &mut S) {
        let _ = stage;
        self.eval(t, y, dy);
    }

    /// Called when a step attempt ends, accepted or rejected.
    fn end_attempt(&mut self, attempt: &Attempt) {
        let _ = attempt;
    }
}

impl<S: State, F: FnMut(f64, &S, &mut S)> Rhs<S> for F {
    fn eval(&mut self, t: f64, y: &S, dy: &mut S) {
        self(t, y, dy)
    }
}

/// A field split as `f = f_drift + f_kick` for symplectic splitting methods.
///
/// For a separable Hamiltonian `H(q, p) = T(p) + V(q)` the drift is `(q' = ∂T/∂p, p' = 0)`,
/// which depends on `p` only, and the kick is `(q' = 0, p' = −∂V/∂q)`, which depends on `q`
/// only; each part is then integrated exactly by an Euler step. Both write the whole state
/// (zeros in the components they do not move).
pub trait SplitRhs<S: State> {
    /// `dy ← f_drift(t, y)` (moves positions, depends on momenta).
    fn drift(&mut self, t: f64, y: &S, dy: &mut S);
    /// `dy ← f_kick(t, y)` (moves momenta, depends on positions).
    fn kick(&mut self, t: f64, y: &S, dy: &mut S);
}

/// A split field used as an ordinary one: `f = f_drift + f_kick`.
pub struct Unsplit<'a, F, S> {
    inner: &'a mut F,
    tmp: Option<S>,
}

impl<'a, F, S> Unsplit<'a, F, S> {
    /// Wraps a split field.
    pub fn new(inner: &'a mut F) -> Self {
        Self { inner, tmp: None }
    }
}

impl<S: State, F: SplitRhs<S>> Rhs<S> for Unsplit<'_, F, S> {
    fn eval(&mut self, t: f64, y: &S, dy: &mut S) {
        let tmp = self.tmp.get_or_insert_with(|| y.zeros_like());
        self.inner.drift(t, y, dy);
        self.inner.kick(t, y, tmp);
        dy.axpy(S::Scalar::one(), tmp);
    }
}

use num_traits::One;

/// How steps are placed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Stepping {
    /// A fixed grid with step `h > 0`: `ceil((t1 − t0)/h)` steps, the last one shortened to
    /// land exactly on `t1` (one step when `h ≥ |t1 − t0|`).
    FixedStep(f64),
    /// A fixed grid of `n ≥ 1` equal steps.
    FixedCount(usize),
    /// Adaptive steps controlled by an embedded error estimate.
    Adaptive(AdaptiveOptions),
}

/// Settings of adaptive stepping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdaptiveOptions {
    /// Relative tolerance (> 0).
    pub rtol: f64,
    /// Absolute tolerance (> 0).
    pub atol: f64,
    /// First step; `None` selects it with Hairer's algorithm.
    pub h0: Option<f64>,
    /// Step-size controller.
    pub controller: PiController,
    /// Smallest allowed step (a smaller one is a step-underflow failure).
    pub min_step: f64,
    /// Largest allowed step (`f64::INFINITY` for none; `null` in JSON).
    #[serde(with = "infinite_as_null")]
    pub max_step: f64,
}

impl AdaptiveOptions {
    /// Tolerances with default controller settings.
    pub fn new(rtol: f64, atol: f64) -> Self {
        Self {
            rtol,
            atol,
            h0: None,
            controller: PiController::default(),
            min_step: 0.0,
            max_step: f64::INFINITY,
        }
    }
}

/// `f64::INFINITY` as JSON `null` (JSON has no infinity) and back.
mod infinite_as_null {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        if v.is_infinite() && *v > 0.0 {
            s.serialize_none()
        } else {
            s.serialize_f64(*v)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::INFINITY))
    }
}

/// Which points a solve keeps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SaveAt {
    /// Only the final state.
    Final,
    /// The initial state and the state after every accepted step.
    Steps,
    /// The given times, monotone in the direction of integration, inside `[t0, t1]`.
    /// Fixed grids step exactly onto them; adaptive solves use the method's dense output
    /// (its own continuous extension, or cubic Hermite interpolation).
    Times(Vec<f64>),
}

/// Everything a solve needs besides the method, the field and the initial state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SolveOptions {
    /// Initial time.
    pub t0: f64,
    /// Final time (may be smaller than `t0`: integration backwards in time).
    pub t1: f64,
    /// Step placement.
    pub stepping: Stepping,
    /// Saved points.
    pub save: SaveAt,
    /// Step budget for adaptive solves (attempts, accepted or rejected).
    pub max_steps: usize,
}

impl SolveOptions {
    /// Fixed step `h` on `[t0, t1]`, keeping the final state.
    pub fn fixed(t0: f64, t1: f64, h: f64) -> Self {
        Self {
            t0,
            t1,
            stepping: Stepping::FixedStep(h),
            save: SaveAt::Final,
            max_steps: 1_000_000,
        }
    }
    /// `n` equal steps on `[t0, t1]`, keeping the final state.
    pub fn steps(t0: f64, t1: f64, n: usize) -> Self {
        Self {
            t0,
            t1,
            stepping: Stepping::FixedCount(n),
            save: SaveAt::Final,
            max_steps: 1_000_000,
        }
    }
    /// Adaptive stepping with tolerances `rtol`, `atol`, keeping the final state.
    pub fn adaptive(t0: f64, t1: f64, rtol: f64, atol: f64) -> Self {
        Self {
            t0,
            t1,
            stepping: Stepping::Adaptive(AdaptiveOptions::new(rtol, atol)),
            save: SaveAt::Final,
            max_steps: 100_000,
        }
    }
    /// Replaces the save policy.
    pub fn save(mut self, save: SaveAt) -> Self {
        self.save = save;
        self
    }

    /// Checks times, step sizes, tolerances and save times; returns the direction (±1).
    pub fn validate(&self) -> Result<f64, ArgError> {
        for (name, value) in [("t0", self.t0), ("t1", self.t1)] {
            if !value.is_finite() {
                return Err(ArgError::NonFiniteTime { name, value });
            }
        }
        if self.t0 == self.t1 {
            return Err(ArgError::EmptyInterval(self.t0));
        }
        let dir = if self.t1 > self.t0 { 1.0 } else { -1.0 };
        match &self.stepping {
            Stepping::FixedStep(h) if !(h.is_finite() && *h > 0.0) => {
                return Err(ArgError::NonPositiveStep(*h))
            }
            Stepping::FixedCount(0) => return Err(ArgError::ZeroSteps),
            Stepping::Adaptive(a) => {
                for (name, value) in [("rtol", a.rtol), ("atol", a.atol)] {
                    if !(value.is_finite() && value > 0.0) {
                        return Err(ArgError::BadTolerance { name, value });
                    }
                }
                if let Some(h0) = a.h0 {
                    if !(h0.is_finite() && h0 > 0.0) {
                        return Err(ArgError::NonPositiveStep(h0));
                    }
                }
                if !(a.min_step >= 0.0 && a.min_step.is_finite()) {
                    return Err(ArgError::invalid(
                        "min_step",
                        a.min_step,
                        "must be finite and ≥ 0",
                    ));
                }
                if a.max_step.is_nan() || a.max_step <= 0.0 {
                    return Err(ArgError::invalid("max_step", a.max_step, "must be > 0"));
                }
                a.controller.validate()?;
            }
            _ => {}
        }
        if let SaveAt::Times(ts) = &self.save {
            if ts.is_empty() {
                return Err(ArgError::EmptySaveTimes);
            }
            let (lo, hi) = if dir > 0.0 {
                (self.t0, self.t1)
            } else {
                (self.t1, self.t0)
            };
            for (i, &t) in ts.iter().enumerate() {
                if !(t >= lo && t <= hi) {
                    return Err(ArgError::SaveTimeOutOfRange {
                        index: i,
                        value: t,
                        t0: self.t0,
                        t1: self.t1,
                    });
                }
                if i > 0 && (t - ts[i - 1]) * dir <= 0.0 {
                    return Err(ArgError::NonMonotoneSaveTimes {
                        index: i,
                        value: t,
                        previous: ts[i - 1],
                    });
                }
            }
        }
        Ok(dir)
    }
}

/// Counters of one solve. Every solve returns them, also a failed one (in its partial
/// solution).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, serde::Deserialize)]
pub struct Stats {
    /// Evaluations of the field (for splitting methods: drift and kick evaluations).
    pub nfe: usize,
    /// Step attempts (accepted + rejected).
    pub steps: usize,
    /// Accepted steps.
    pub accepted: usize,
    /// Rejected steps.
    pub rejected: usize,
    /// Smallest accepted step size (absolute value).
    pub h_min: f64,
    /// Largest accepted step size (absolute value).
    pub h_max: f64,
    /// Nonlinear iterations of implicit steps (0 for explicit methods).
    pub implicit_iterations: usize,
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            nfe: 0,
            steps: 0,
            accepted: 0,
            rejected: 0,
            h_min: f64::INFINITY,
            h_max: 0.0,
            implicit_iterations: 0,
        }
    }
}

impl Stats {
    pub(crate) fn record_accept(&mut self, h: f64) {
        self.steps += 1;
        self.accepted += 1;
        self.h_min = self.h_min.min(h.abs());
        self.h_max = self.h_max.max(h.abs());
    }
    pub(crate) fn record_reject(&mut self) {
        self.steps += 1;
        self.rejected += 1;
    }
    /// `h_min` as a finite number (0 when no step was accepted), for reports.
    pub fn h_min_finite(&self) -> f64 {
        if self.h_min.is_finite() {
            self.h_min
        } else {
            0.0
        }
    }
}

/// The result of a solve.
#[derive(Debug, Clone)]
pub struct Solution<S> {
    /// Saved times.
    pub t: Vec<f64>,
    /// Saved states, one per entry of `t`.
    pub y: Vec<S>,
    /// Time reached (`t1` for a successful solve).
    pub t_final: f64,
    /// State at `t_final`.
    pub y_final: S,
    /// Counters.
    pub stats: Stats,
}

impl<S> Solution<S> {
    /// Maps the saved states (e.g. to drop them).
    pub fn map_states<U>(&self, mut f: impl FnMut(&S) -> U) -> Solution<U> {
        Solution {
            t: self.t.clone(),
            y: self.y.iter().map(&mut f).collect(),
            t_final: self.t_final,
            y_final: f(&self.y_final),
            stats: self.stats,
        }
    }
}

/// Builds the failure value of a solve that stopped at `(t, h, step)`.
pub(crate) fn failure<S: State>(
    reason: FailReason,
    t: f64,
    h: f64,
    step: usize,
    saved: Saved<S>,
    y_last: &S,
    stats: Stats,
) -> SolveError<S> {
    SolveError::Failed(Box::new(Failure {
        reason,
        t,
        h,
        step,
        partial: Solution {
            t: saved.t,
            y: saved.y,
            t_final: t,
            y_final: y_last.clone(),
            stats,
        },
    }))
}

/// Saved points accumulated by a loop.
#[derive(Debug, Clone)]
pub(crate) struct Saved<S> {
    pub t: Vec<f64>,
    pub y: Vec<S>,
}

impl<S: State> Saved<S> {
    fn new() -> Self {
        Self {
            t: Vec::new(),
            y: Vec::new(),
        }
    }
    fn push(&mut self, t: f64, y: &S) {
        self.t.push(t);
        self.y.push(y.clone());
    }
}

fn check_initial<S: State>(y0: &S) -> Result<(), ArgError> {
    match y0.first_non_finite() {
        Some((index, value)) => Err(ArgError::NonFiniteInitialState { index, value }),
        None => Ok(()),
    }
}

/// Solves `y' = f(t, y)`, `y(t0) = y0` with an explicit or implicit method.
///
/// Splitting methods need a split field: use [`solve_split`].
pub fn solve<S: State, F: Rhs<S>>(
    method: &Method,
    f: &mut F,
    y0: &S,
    opts: &SolveOptions,
) -> Result<Solution<S>, SolveError<S>> {
    let dir = opts.validate()?;
    check_initial(y0)?;
    match method {
        Method::Explicit(tab) => match &opts.stepping {
            Stepping::Adaptive(a) => {
                if !tab.is_embedded() {
                    return Err(ArgError::MethodUnsuited {
                        method: tab.name().to_string(),
                        reason: "has no embedded error estimate, so it cannot step adaptively; give a step size (--dt) or pick an embedded pair (heun-euler, fehlberg2, bosh3, dopri5, tsit5)".into(),
                    }
                    .into());
                }
                adaptive::integrate(RkStepper::new(tab, y0), f, y0, opts, a, dir)
            }
            _ => fixed::integrate(&mut fixed::RkFixed(RkStepper::new(tab, y0)), f, y0, opts, dir),
        },
        Method::Implicit(io) => {
            reject_adaptive(method, opts)?;
            io.validate()?;
            fixed::integrate(&mut implicit::MidpointStepper::new(io.clone(), y0), f, y0, opts, dir)
        }
        Method::Splitting(s) => Err(ArgError::MethodUnsuited {
            method: s.name.clone(),
            reason: "is a splitting method for separable Hamiltonian systems and needs a split field (solve_split)".into(),
        }
        .into()),
    }
}

/// Solves with a field split into drift and kick: splitting methods use the split; every
/// other method integrates `f = f_drift + f_kick`.
pub fn solve_split<S: State, F: SplitRhs<S>>(
    method: &Method,
    f: &mut F,
    y0: &S,
    opts: &SolveOptions,
) -> Result<Solution<S>, SolveError<S>> {
    match method {
        Method::Splitting(s) => {
            let dir = opts.validate()?;
            check_initial(y0)?;
            reject_adaptive(method, opts)?;
            fixed::integrate_split(s, f, y0, opts, dir)
        }
        _ => solve(method, &mut Unsplit::new(f), y0, opts),
    }
}

fn reject_adaptive(method: &Method, opts: &SolveOptions) -> Result<(), ArgError> {
    if matches!(opts.stepping, Stepping::Adaptive(_)) {
        return Err(ArgError::MethodUnsuited {
            method: method.name().to_string(),
            reason: "is a fixed-step method; give a step size (--dt) or a number of steps".into(),
        });
    }
    Ok(())
}

/// The fixed grid of a solve: step boundaries from `t0` to `t1`, stepping exactly onto every
/// save time, each segment cut into `ceil(len/h)` steps with the last one shortened.
pub fn fixed_grid(opts: &SolveOptions) -> Result<Vec<f64>, ArgError> {
    let dir = opts.validate()?;
    let span = (opts.t1 - opts.t0).abs();
    let h = match &opts.stepping {
        Stepping::FixedStep(h) => *h,
        Stepping::FixedCount(n) => span / *n as f64,
        Stepping::Adaptive(_) => {
            return Err(ArgError::invalid(
                "stepping",
                "adaptive",
                "a fixed grid needs a step size or a step count",
            ))
        }
    };
    let mut stops: Vec<f64> = match &opts.save {
        SaveAt::Times(ts) => ts
            .iter()
            .copied()
            .filter(|t| (t - opts.t0) * dir > 0.0)
            .collect(),
        _ => Vec::new(),
    };
    if stops.last().is_none_or(|&t| t != opts.t1) {
        stops.push(opts.t1);
    }
    let mut grid = vec![opts.t0];
    let mut a = opts.t0;
    for b in stops {
        let len = (b - a).abs();
        let n = steps_for(len, h);
        for i in 1..n {
            grid.push(a + dir * h * i as f64);
        }
        grid.push(b);
        a = b;
    }
    Ok(grid)
}

/// `ceil(len / h)`, ignoring a last step shorter than 1e-9·h (floating-point noise).
fn steps_for(len: f64, h: f64) -> usize {
    let q = len / h;
    let n = q.ceil().max(1.0);
    let n = if n > 1.0 && q - (n - 1.0) < 1e-9 {
        n - 1.0
    } else {
        n
    };
    n as usize
}
