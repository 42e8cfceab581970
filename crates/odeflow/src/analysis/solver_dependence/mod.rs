//! Solver dependence (Ott, Katiyar, Hennig, Tiemann, ICLR 2021): the adaptation algorithms,
//! the initial-step heuristic, the adaptation as a training hook of the ODE classifier, the
//! ODE-validity verdict, and the critical step size of a sweep.

pub mod adaptation;
pub mod critical;
pub mod hook;
pub mod initial_step;
pub mod verdict;

pub use adaptation::{
    fixed_test_solver, AdaptEvent, AdaptationConfig, FixedStepAdapter, ProbeSolver,
    ToleranceAdapter,
};
pub use critical::{critical_setting, CriticalSetting, SettingDrop};
pub use hook::{
    classifier_initial_step, stepping_metric, AdaptationHook, Adapter, AdaptiveSolve, EventCounts,
};
pub use initial_step::ott_initial_step;
pub use verdict::{fails, qualifies, verdict, EvalRow, Verdict, WorstCase, SIGNIFICANCE};
