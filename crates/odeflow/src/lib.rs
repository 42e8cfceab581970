//! # odeflow
//!
//! Neural ODEs in which the numerical solver is part of the model.
//!
//! * [`tableau`]: Butcher tableaus as validated data, the method catalogue, rooted trees.
//! * [`solve`]: the solve loop (fixed grid, adaptive with PI control and dense output,
//!   symplectic splitting, implicit midpoint), statistics, typed failures.
//! * [`state`]: the state/vector trait the solvers are generic over, and CPU batch buffers.
//! * [`systems`]: built-in ODEs, generic over the scalar type, with their invariants.
//! * [`nn`]: native CPU layers with exact VJPs, initialisers, losses, and neural vector
//!   fields (the model zoo of the papers).

pub mod error;
pub mod field;
pub mod nn;
pub mod real;
pub mod solve;
pub mod state;
pub mod systems;
pub mod tableau;

pub use error::{ArgError, FailReason, Failure, SolveError};
pub use field::{ParamView, Parameterized, VectorField};
pub use real::Real;
pub use solve::{solve, solve_split, Method, SaveAt, Solution, SolveOptions, Stats, Stepping};
pub use state::{Batch, State};
pub use tableau::ButcherTableau;
