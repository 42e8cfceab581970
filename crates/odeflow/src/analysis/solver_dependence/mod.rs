//! Solver dependence (Ott, Katiyar, Hennig, Tiemann, ICLR 2021): the adaptation algorithms,
//! the initial-step heuristic, the adaptation as a training hook of the ODE classifier, and
//! the ODE-validity verdict.

pub mod adaptation;
pub mod hook;
pub mod initial_step;
pub mod verdict;

pub use adaptation::{
    fixed_test_solver, AdaptEvent, AdaptationConfig, FixedStepAdapter, ProbeSolver,
    ToleranceAdapter,
};
pub use hook::{classifier_initial_step, stepping_metric, AdaptationHook, Adapter, EventCounts};
pub use initial_step::ott_initial_step;
pub use verdict::{qualifies, verdict, EvalResult, SolverSetting, Verdict, WorstCase};
