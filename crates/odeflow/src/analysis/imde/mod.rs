//! Inverse modified differential equations (IMDE) and classical modified equations of any
//! Runge–Kutta method (explicit tableaus and the implicit midpoint rule), to any order, for
//! any field written generically over the scalar type — and what a Neural ODE learns from
//! trajectories through an integrator, measured against them.
//!
//! # What is computed
//!
//! A Neural ODE trained on pairs `(x, φ_T(x))` of the exact flow of `y' = f(y)`, with `S`
//! steps of a one-step method `Φ` of step `h = T/S` as its model, does not learn `f`: it
//! learns the *inverse modified differential equation* (Zhu, Jin, Zhu, Tang, "On numerical
//! integration in neural ordinary differential equations", ICML 2022), the formal series
//!
//! ```text
//! f_h = f + h f_1 + h² f_2 + …     with     Φ_{h, f_h} = φ_{h, f},
//! ```
//!
//! the field to which the method must be applied to reproduce the exact flow. Order by order,
//! `f_k` is the coefficient of `h^{k+1}` in `φ_{h,f}(y) − Φ_{h,g}(y)` with
//! `g = Σ_{j<k} h^j f_j`. For Euler `f_1 = ½ f′f` and `f_2 = ⅙ f″(f,f) + ⅙ f′f′f`; for a
//! method of order p, `f_1 = … = f_{p−1} = 0`. The classical modified equation of backward
//! error analysis (Hairer, Lubich, Wanner, *Geometric Numerical Integration*, ch. IX) is the
//! mirror image, `Φ_{h,f} = φ_{h, f̃_h}`; both are available ([`Expansion`]).
//!
//! # How: B-series and the substitution law
//!
//! Both sides are B-series over rooted trees τ (see [`crate::tableau::trees`]): the exact
//! flow has coefficients `e(τ) = 1/γ(τ)`, the method its elementary weights `Φ(τ)`. A modified
//! field is a B-series vector field
//!
//! ```text
//! f_h = Σ_τ h^{|τ|−1} b(τ)/σ(τ) F(τ),    F(•) = f,   F([τ₁…τₘ]) = f⁽ᵐ⁾(F(τ₁), …, F(τₘ)),
//! ```
//!
//! and an integrator with coefficients `a` applied to it is the B-series of `f` with
//! coefficients `b ⋆ a`, the *substitution law* (Chartier, Hairer, Vilmart, "Algebraic
//! structures of B-series", FoCM 2010; GNI III.5 and IX.9; Calaque, Ebrahimi-Fard, Manchon
//! 2011). The IMDE solves `b ⋆ Φ = e`, the modified equation `b ⋆ e = Φ`; since the
//! no-cut term of `(b ⋆ a)(τ)` is `b(τ)`, both are solved tree by tree in order of size
//! (`substitution`, which evaluates the law through the Runge–Kutta recursion on tree
//! coefficients instead of summing over all `2^{|τ|−1}` edge cuts, and checks itself against
//! that sum in its tests). The coefficients depend on the tableau and the truncation order
//! only, and are computed once ([`ModifiedSeries`]).
//!
//! At a point `y`, the elementary differentials `F(τ)(y)` are evaluated exactly with nested
//! forward-mode dual numbers (num-dual), children before parents (`differentials`), and
//! summed with the weights `h^{|τ|−1} b(τ)/σ(τ)`.
//!
//! ## Why B-series rather than Taylor arithmetic in `h`
//!
//! The recursion above can also be run on truncated power series in `h`. But `f_k` needs
//! `f_j` (`j < k`) evaluated along the stage curves `Yᵢ(h)`, and `f_j` is itself defined by a
//! coefficient extraction in a step size, so each level of the recursion adds a series
//! variable: the cost grows like a product of `K` truncation orders, and `f_j` cannot be
//! written generically over the scalar type for the user's field. The B-series route splits
//! the problem cleanly: the method enters only through exact rational-like coefficients
//! `b(τ)` (computed once per tableau and order, any explicit tableau including a user TOML
//! one), the field only through its derivatives at the point. Its cost is independent of the
//! dimension's combinatorics (no multivariate jets), and `b(τ)` themselves are informative
//! (which error terms a method has). The price is the number of trees (85 up to order 7,
//! 20 299 up to order 13), which bounds the order at [`MAX_ORDER`] = 12.
//!
//! # API
//!
//! * [`imde`], [`imde_terms`], [`modified_equation`], [`modified_equation_terms`]: one-shot
//!   pointwise evaluation (value of the truncated series, or the terms `f_0 … f_K`).
//! * [`ModifiedSeries`]: the coefficients for one tableau and order, reusable across points
//!   (with [`Workspace`], evaluation is allocation-free).
//! * [`ImdeField`]: the truncated series as an [`crate::solve::Rhs`] on batches.
//! * [`report`], [`report_series`]: everything the CLI prints, serialisable.
//! * [`GenericField`]: what a field must provide; every [`crate::systems::System`] is one.
//! * [`ModifiedSeries::for_method`]: the series of any catalogue method that is a
//!   Runge–Kutta method (an implicit tableau's elementary weights obey the same recursion).
//!
//! # Learning fields through integrators
//!
//! * [`learning`]: train the paper's MLP (or a separable Hamiltonian network) inside `S`
//!   steps of a method on trajectory pairs; the error metric `error(g₁, g₂)`; accurate flows
//!   and discrete rollouts of learned, true and modified fields.
//! * [`sweep`]: the study of §5.1 — errors against the true field and against the IMDE over
//!   sweeps of `T` and `S`, with fitted log–log slopes.
//! * [`conservation`]: the study of §5.2 — energy drift of long rollouts of models trained
//!   with non-symplectic and symplectic methods.

pub mod conservation;
mod differentials;
mod field;
mod forest;
pub mod learning;
mod series;
mod substitution;
pub mod sweep;

#[cfg(test)]
mod tests;

pub use differentials::{GenericField, Workspace};
pub use field::ImdeField;
pub use series::{Expansion, ModifiedSeries, MAX_ORDER};

use serde::Serialize;

use crate::error::ArgError;
use crate::tableau::ButcherTableau;

/// The inverse modified equation of `tableau` for `field` at `y`, truncated after `h^order`:
/// `Σ_{k=0}^{order} h^k f_k(y)`.
pub fn imde<F: GenericField>(
    field: &F,
    tableau: &ButcherTableau,
    h: f64,
    order: usize,
    y: &[f64],
) -> Result<Vec<f64>, ArgError> {
    ModifiedSeries::inverse(tableau, order)?.eval(field, h, y)
}

/// The terms `f_0(y) = f(y), f_1(y), …, f_order(y)` of the inverse modified equation.
pub fn imde_terms<F: GenericField>(
    field: &F,
    tableau: &ButcherTableau,
    order: usize,
    y: &[f64],
) -> Result<Vec<Vec<f64>>, ArgError> {
    ModifiedSeries::inverse(tableau, order)?.terms(field, y)
}

/// The classical modified equation `Σ_{k=0}^{order} h^k f̃_k(y)` of `tableau` for `field`.
pub fn modified_equation<F: GenericField>(
    field: &F,
    tableau: &ButcherTableau,
    h: f64,
    order: usize,
    y: &[f64],
) -> Result<Vec<f64>, ArgError> {
    ModifiedSeries::forward(tableau, order)?.eval(field, h, y)
}

/// The terms `f̃_0(y) = f(y), f̃_1(y), …, f̃_order(y)` of the classical modified equation.
pub fn modified_equation_terms<F: GenericField>(
    field: &F,
    tableau: &ButcherTableau,
    order: usize,
    y: &[f64],
) -> Result<Vec<Vec<f64>>, ArgError> {
    ModifiedSeries::forward(tableau, order)?.terms(field, y)
}

/// A modified equation evaluated at one point, as the CLI prints it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImdeReport {
    /// The method's name.
    pub method: String,
    /// Inverse (IMDE) or forward (classical modified equation).
    pub expansion: Expansion,
    /// Step size.
    pub h: f64,
    /// Truncation order `K`.
    pub order: usize,
    /// The point `y`.
    pub at: Vec<f64>,
    /// `f(y)`.
    pub field: Vec<f64>,
    /// The truncated series `Σ_{k≤K} h^k f_k(y)` (the modified equation itself for
    /// [`Expansion::Forward`]).
    pub imde: Vec<f64>,
    /// `f_0(y), …, f_K(y)`.
    pub terms: Vec<Vec<f64>>,
    /// `‖h^k f_k(y)‖₂` for `k = 0..=K`: how fast the series decays at this step size.
    pub term_norms: Vec<f64>,
}

/// Evaluates a modified equation at `y` with its terms (for reports and the CLI).
pub fn report<F: GenericField>(
    field: &F,
    tableau: &ButcherTableau,
    expansion: Expansion,
    h: f64,
    order: usize,
    y: &[f64],
) -> Result<ImdeReport, ArgError> {
    report_series(
        field,
        &ModifiedSeries::new(expansion, tableau, order)?,
        h,
        y,
    )
}

/// [`report`] for precomputed series coefficients (any Runge–Kutta method, see
/// [`ModifiedSeries::for_method`]).
pub fn report_series<F: GenericField>(
    field: &F,
    series: &ModifiedSeries,
    h: f64,
    y: &[f64],
) -> Result<ImdeReport, ArgError> {
    series::check_step(h)?;
    let terms = series.terms(field, y)?;
    let mut imde = vec![0.0; y.len()];
    let mut term_norms = Vec::with_capacity(terms.len());
    let mut hk = 1.0;
    for term in &terms {
        imde.iter_mut().zip(term).for_each(|(s, t)| *s += hk * t);
        // |h|^k: a norm, also for a negative (backward) step.
        term_norms.push(hk.abs() * term.iter().map(|t| t * t).sum::<f64>().sqrt());
        hk *= h;
    }
    Ok(ImdeReport {
        method: series.method().to_string(),
        expansion: series.expansion(),
        h,
        order: series.order(),
        at: y.to_vec(),
        field: terms[0].clone(),
        imde,
        terms,
        term_norms,
    })
}
