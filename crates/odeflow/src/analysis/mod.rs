//! Analyses of what a Neural ODE learns when the solver is part of the model.
//!
//! * [`imde`]: inverse modified differential equations (Zhu et al., ICML 2022) and classical
//!   modified equations of explicit Runge–Kutta methods, to any order, via B-series.

pub mod imde;
