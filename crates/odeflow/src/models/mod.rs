//! Trainable models built from fields, solvers and losses.
//!
//! * [`regressor`]: [`regressor::FlowRegressor`], the S-step ODE regressor
//!   `y ≈ Φ^S_{h,f_θ}(x)` of Zhu et al. (ICML 2022), trained by mean squared error through
//!   any differentiable solve.
//! * [`hamiltonian`]: [`hamiltonian::SeparableHamiltonian`], the network
//!   `H_θ(q, p) = T_θ(p) + V_θ(q)` whose symplectic gradient is the field, for
//!   structure-preserving training.

pub mod hamiltonian;
pub mod regressor;
mod scalar_mlp;
#[cfg(test)]
mod tests_regression;
