//! # odeflow
//!
//! Neural ODEs in which the numerical solver is part of the model.
//!
//! * [`tableau`]: Butcher tableaus as validated data, the method catalogue, rooted trees.
//! * [`solve`]: the solve loop (fixed grid, adaptive with PI control and dense output,
//!   symplectic splitting, implicit midpoint), statistics, typed failures.
//! * [`state`]: the state/vector trait the solvers are generic over, and CPU batch buffers.
//! * [`systems`]: built-in ODEs, generic over the scalar type, with their invariants.
//! * [`field`]: the vector-field trait (evaluation and VJPs into caller buffers).
//! * [`grad`]: gradient methods — backprop (discrete adjoint), continuous adjoint, reversible.
//! * [`train`]: optimizers, schedules, the training loop, checkpoints, metrics log.
//! * [`analysis`]: the three papers' analyses — solver dependence (adaptation, validity
//!   verdict), inverse modified equations, ResNets as discretisations.
//! * [`data`]: data sets (concentric spheres, MNIST, CIFAR-10, trajectory pairs), NPY/CSV
//!   import and export, seeded splits and mini-batches.
//! * [`models`]: models assembled from the pieces — Ott et al.'s ODE classifier, Zhu et al.'s
//!   S-step regressor and separable Hamiltonian network, Sander et al.'s depth-N ResNets.
//! * [`runs`]: the training pipeline as library calls — run configuration, training a run
//!   folder (adaptation, checkpoints, resume), evaluation under a grid of test solvers, the
//!   ODE-validity verdict for any [`runs::FlowModel`], sweeps, shards, merge, critical step.
//! * [`stats`], [`report`]: mean ± std, line fits, paired tests; one number format and one
//!   table writer.
//! * [`nn`]: native CPU layers with exact VJPs, initialisers, losses, and neural vector
//!   fields (the model zoo of the papers).
//! * [`weights`]: safetensors files with PyTorch `state_dict` names and layouts, in and out
//!   (export a trained classifier, load one trained with torchdiffeq).
//! * [`fsutil`]: atomic file writes, an exclusive per-folder lock naming its holder, and
//!   words for what a path is.
//! * [`budget`]: step and memory budgets checked before work starts, with one-line errors,
//!   and readable numbers and byte sizes for messages.

// Numerical kernels index several arrays with one loop variable, and `!(x > 0.0)` is the
// NaN-rejecting comparison on purpose.
#![allow(clippy::needless_range_loop, clippy::neg_cmp_op_on_partial_ord)]

pub mod analysis;
pub mod budget;
#[cfg(feature = "cuda")]
pub mod cuda;
pub mod data;
pub mod error;
pub mod field;
pub mod fsutil;
pub mod grad;
pub mod models;
pub mod nn;
pub mod real;
pub mod report;
pub mod runs;
pub mod solve;
pub mod state;
pub mod stats;
pub mod systems;
pub mod tableau;
pub mod train;
pub mod weights;

pub use error::{ArgError, FailReason, Failure, SolveError};
pub use field::{ParamView, Parameterized, VectorField};
pub use real::Real;
pub use solve::{solve, solve_split, Method, SaveAt, Solution, SolveOptions, Stats, Stepping};
pub use state::{Batch, FinitenessWatch, State};
pub use tableau::ButcherTableau;

/// The README's Rust examples, compiled and run by `cargo test` so that they stay true.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
