//! The three papers' analyses.
//!
//! * [`solver_dependence`] — Ott et al. (ICLR 2021): adaptation, validity verdict.

pub mod solver_dependence;
