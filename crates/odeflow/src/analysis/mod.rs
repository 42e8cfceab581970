//! The three papers' analyses: what a Neural ODE learns when the solver is part of the model.
//!
//! * [`solver_dependence`] — Ott et al. (ICLR 2021): step/tolerance adaptation, the
//!   ODE-validity verdict.
//! * [`imde`] — Zhu et al. (ICML 2022): inverse modified differential equations and classical
//!   modified equations of explicit Runge–Kutta methods, to any order, via B-series.
//! * [`resnet`] — Sander, Ablin, Peyré (NeurIPS 2022): ResNets as ODE discretisations.

pub mod imde;
pub mod resnet;
pub mod solver_dependence;
