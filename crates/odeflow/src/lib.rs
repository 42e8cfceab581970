//! # odeflow
//!
//! Neural ODEs in which the numerical solver is part of the model.
//!
//! * [`analysis`]: what the solver makes a model learn — inverse modified equations.
//! * [`tableau`]: Butcher tableaus as validated data, the method catalogue, rooted trees.
//! * [`solve`]: the solve loop (fixed grid, adaptive with PI control and dense output,
//!   symplectic splitting, implicit midpoint), statistics, typed failures.
//! * [`state`]: the state/vector trait the solvers are generic over, and CPU batch buffers.
//! * [`systems`]: built-in ODEs, generic over the scalar type, with their invariants.

pub mod analysis;
pub mod error;
pub mod field;
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
