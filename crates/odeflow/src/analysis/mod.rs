//! The three papers' analyses.
//!
//! * [`solver_dependence`] — Ott et al. (ICLR 2021): adaptation, validity verdict.
//! * [`resnet`] — Sander, Ablin, Peyré (NeurIPS 2022): ResNets as ODE discretisations.

pub mod resnet;
pub mod solver_dependence;
