//! Typed errors. Bad input names the offending value; a solver that fails mid-run returns
//! where it failed (t, h, step index) together with the partial solution.

use std::fmt;

use serde::Serialize;
use thiserror::Error;

use crate::solve::Solution;

/// Two shapes that should agree do not.
#[derive(Debug, Clone, PartialEq, Eq, Error, Serialize)]
#[error("{what} should have {expected} components, got {got}")]
pub struct ShapeError {
    /// What was measured.
    pub what: &'static str,
    /// The size required.
    pub expected: usize,
    /// The size given.
    pub got: usize,
}

/// An argument of a solve (or of any odeflow call) is invalid. Every variant names the value.
#[derive(Debug, Clone, PartialEq, Error, Serialize)]
pub enum ArgError {
    /// A step size that is zero, negative, NaN or infinite.
    #[error("step size must be positive and finite, got {0}")]
    NonPositiveStep(f64),
    /// A fixed-step solve asked for zero steps.
    #[error("number of steps must be at least 1, got 0")]
    ZeroSteps,
    /// A tolerance that is not positive and finite.
    #[error("{name} must be positive and finite, got {value}")]
    BadTolerance {
        /// `rtol` or `atol` or another tolerance's name.
        name: &'static str,
        /// The value given.
        value: f64,
    },
    /// `t0` or `t1` is NaN or infinite.
    #[error("{name} must be finite, got {value}")]
    NonFiniteTime {
        /// `t0` or `t1`.
        name: &'static str,
        /// The value given.
        value: f64,
    },
    /// `t0 == t1`.
    #[error("the integration interval is empty: t0 = t1 = {0}")]
    EmptyInterval(f64),
    /// Save times were requested but the list is empty.
    #[error("the list of save times is empty")]
    EmptySaveTimes,
    /// Save times go backwards relative to the direction of integration.
    #[error("save times must be monotone in the direction of integration: t_eval[{index}] = {value} comes after {previous}")]
    NonMonotoneSaveTimes {
        /// Position in the list.
        index: usize,
        /// The offending time.
        value: f64,
        /// The time before it.
        previous: f64,
    },
    /// A save time outside the integration interval.
    #[error("save time t_eval[{index}] = {value} lies outside the interval [{t0}, {t1}]")]
    SaveTimeOutOfRange {
        /// Position in the list.
        index: usize,
        /// The offending time.
        value: f64,
        /// Start of the interval.
        t0: f64,
        /// End of the interval.
        t1: f64,
    },
    /// The initial state holds a NaN or an infinity.
    #[error("the initial state has a non-finite component {value} at index {index}")]
    NonFiniteInitialState {
        /// Component index (row-major for batches).
        index: usize,
        /// The value found.
        value: f64,
    },
    /// Sizes that should agree do not.
    #[error(transparent)]
    Shape(#[from] ShapeError),
    /// A method name that is not in the catalogue.
    #[error("unknown method '{name}'; known methods: {known}")]
    UnknownMethod {
        /// The name given.
        name: String,
        /// Comma-separated list of the known names.
        known: String,
    },
    /// A name (system, model, dataset, gradient method…) that is not known.
    #[error("unknown {kind} '{name}'; known: {known}")]
    Unknown {
        /// What kind of thing was named.
        kind: &'static str,
        /// The name given.
        name: String,
        /// Comma-separated list of the known names.
        known: String,
    },
    /// The method cannot be used this way (e.g. adaptive stepping without an embedded pair).
    #[error("method '{method}' {reason}")]
    MethodUnsuited {
        /// The method's name.
        method: String,
        /// Why not.
        reason: String,
    },
    /// Any other invalid value, with its name and the rule it breaks.
    #[error("{name} = {value} is invalid: {reason}")]
    Invalid {
        /// The argument's name.
        name: String,
        /// The value given, printed.
        value: String,
        /// The rule it breaks.
        reason: String,
    },
}

impl ArgError {
    /// Shorthand for [`ArgError::Invalid`].
    pub fn invalid(
        name: impl Into<String>,
        value: impl fmt::Display,
        reason: impl Into<String>,
    ) -> Self {
        ArgError::Invalid {
            name: name.into(),
            value: value.to_string(),
            reason: reason.into(),
        }
    }
}

/// Why a solve stopped before reaching `t1`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum FailReason {
    /// The adaptive step size fell below the smallest allowed step.
    StepUnderflow {
        /// The smallest allowed step.
        min_step: f64,
    },
    /// The step budget ran out.
    MaxSteps {
        /// The budget.
        max_steps: usize,
    },
    /// A NaN or an infinity appeared in the state or in the field's output.
    NonFinite {
        /// Where: `"state"`, `"field"` or `"error estimate"`.
        location: &'static str,
        /// Component index.
        index: usize,
        /// The value found.
        value: f64,
    },
    /// An implicit step's nonlinear iteration did not converge.
    ImplicitNotConverged {
        /// Iterations done.
        iterations: usize,
        /// Final residual (max-norm of the last update).
        residual: f64,
        /// The tolerance asked for.
        tol: f64,
    },
}

impl fmt::Display for FailReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailReason::StepUnderflow { min_step } => {
                write!(f, "step size underflow (below the minimum step {min_step:e})")
            }
            FailReason::MaxSteps { max_steps } => write!(f, "reached max_steps = {max_steps}"),
            FailReason::NonFinite { location, index, value } => {
                write!(f, "non-finite value {value} in the {location} at component {index}")
            }
            FailReason::ImplicitNotConverged { iterations, residual, tol } => write!(
                f,
                "implicit step did not converge in {iterations} iterations (residual {residual:e} > tol {tol:e})"
            ),
        }
    }
}

/// A solve that failed mid-run: where, and everything computed up to there.
#[derive(Debug, Clone)]
pub struct Failure<S> {
    /// Why it stopped.
    pub reason: FailReason,
    /// Time reached (start of the failing step).
    pub t: f64,
    /// Step size of the failing step.
    pub h: f64,
    /// Index of the failing step (number of steps attempted before it).
    pub step: usize,
    /// The solution up to `t`: saved points so far, and the last good state as `y_final`.
    pub partial: Solution<S>,
}

/// The error type of every solve.
#[derive(Debug, Clone, Error)]
pub enum SolveError<S> {
    /// The call's arguments are invalid; nothing was computed.
    #[error(transparent)]
    Invalid(#[from] ArgError),
    /// The solver started and failed; the partial solution is kept.
    #[error("solver failed at t = {t}, h = {h:e}, step {step}: {reason}", t = .0.t, h = .0.h, step = .0.step, reason = .0.reason)]
    Failed(Box<Failure<S>>),
}

impl<S> SolveError<S> {
    /// The partial solution of a failed run, if the solver started.
    pub fn partial(&self) -> Option<&Solution<S>> {
        match self {
            SolveError::Invalid(_) => None,
            SolveError::Failed(f) => Some(&f.partial),
        }
    }

    /// Drops the partial solution, keeping the message (for error types without a state).
    pub fn without_state(&self) -> SolveError<()> {
        match self {
            SolveError::Invalid(a) => SolveError::Invalid(a.clone()),
            SolveError::Failed(f) => SolveError::Failed(Box::new(Failure {
                reason: f.reason.clone(),
                t: f.t,
                h: f.h,
                step: f.step,
                partial: f.partial.map_states(|_| ()),
            })),
        }
    }
}
