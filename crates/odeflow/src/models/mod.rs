//! Models built from the library's parts: a field, a solver, a gradient method, a loss.
//!
//! * [`classifier`] — Ott et al.'s ODE classifier (ODE block + Linear head), trainable with
//!   any solver and gradient method and evaluable with any other solver.
//! * [`flow_model`] — [`FlowModel`], what the validity check needs from any model whose
//!   middle is an ODE, and the evaluation of one model under one solver.
//! * [`spec`] — serialisable descriptions of the papers' classifiers.
//! * [`regressor`] — [`regressor::FlowRegressor`], the S-step ODE regressor
//!   `y ≈ Φ^S_{h,f_θ}(x)` of Zhu et al. (ICML 2022), trained by mean squared error through
//!   any differentiable solve.
//! * [`hamiltonian`] — [`hamiltonian::SeparableHamiltonian`], the network
//!   `H_θ(q, p) = T_θ(p) + V_θ(q)` whose symplectic gradient is the field, for
//!   structure-preserving training.
//! * [`depth_field`], [`resnet`], [`tiny_resnet`] — Sander et al.'s depth-N ResNets and
//!   HeunNets as discretisations of a layer-indexed field (tied or untied, depth
//!   interpolation), and the TinyResNet image classifier.
//! * [`workloads`] — the benchmark workloads (one training iteration each), defined exactly
//!   like the peer scripts in `bench/`.

pub mod classifier;
pub mod depth_field;
pub mod flow_model;
pub mod hamiltonian;
pub mod regressor;
pub mod resnet;
mod scalar_mlp;
pub mod spec;
#[cfg(test)]
mod tests_regression;
pub mod tiny_resnet;
pub mod workloads;

pub use classifier::{ClassBatch, ClassifierParts, DatasetSource, OdeClassifier};
pub use flow_model::{
    evaluate_flow, evaluate_regression, EvalOutcome, FlowModel, RegressionOutcome,
};
pub use spec::{ClassifierSpec, FieldSpec, NeuralClassifier};
pub use workloads::{PendulumProblem, Workload, WorkloadRunner};
