//! Tests of the modified equations against closed forms, hand-derived coefficients,
//! reference solutions and convergence orders.

mod coefficients;
mod convergence;
mod implicit;
mod learning;
mod linear;

use num_dual::{Dual64, DualNum, HyperDual64};

use super::GenericField;
use crate::solve::{solve, Method, SolveOptions};
use crate::state::Batch;
use crate::systems::{System, SystemField};
use crate::tableau::catalogue::explicit;
use crate::tableau::ButcherTableau;

/// A built-in tableau by name.
fn tab(name: &str) -> &'static ButcherTableau {
    explicit(name).unwrap_or_else(|| panic!("no tableau {name}"))
}

/// A nonlinear 3-d field with nonzero derivatives of every order, implemented directly as a
/// [`GenericField`] (not a `System`).
pub(super) struct Wobbly;

impl GenericField for Wobbly {
    fn dim(&self) -> usize {
        3
    }
    fn eval<D: DualNum + Copy>(&self, y: &[D], out: &mut [D]) {
        let c = |x: f64| D::from_f64(x).unwrap_or_else(D::zero);
        out[0] = y[1] * y[2].sin() + c(0.3) * y[0];
        out[1] = (-y[0]).exp() + y[2] * y[2] * c(0.5);
        out[2] = y[0] * y[1] - y[2].cos();
    }
}

/// `f(y)` in plain `f64`.
fn f_at<F: GenericField>(field: &F, y: &[f64]) -> Vec<f64> {
    let mut out = vec![0.0; y.len()];
    field.eval(y, &mut out);
    out
}

/// `f′(y)v` with a first-order dual number (independent of the nested-dual code).
fn jvp<F: GenericField>(field: &F, y: &[f64], v: &[f64]) -> Vec<f64> {
    let x: Vec<Dual64> = y.iter().zip(v).map(|(a, b)| Dual64::new(*a, *b)).collect();
    let mut out = vec![Dual64::from(0.0); y.len()];
    field.eval(&x, &mut out);
    out.iter().map(|o| o.eps).collect()
}

/// `f″(y)(u, v)` with a hyper-dual number.
fn hessian_uv<F: GenericField>(field: &F, y: &[f64], u: &[f64], v: &[f64]) -> Vec<f64> {
    let x: Vec<HyperDual64> = (0..y.len())
        .map(|i| HyperDual64::new(y[i], u[i], v[i], 0.0))
        .collect();
    let mut out = vec![HyperDual64::from(0.0); y.len()];
    field.eval(&x, &mut out);
    out.iter().map(|o| o.eps1eps2).collect()
}

/// `φ_h(y)` of a system: rk4 with steps of at most 5e-4 (local errors ~1e-17 per step for
/// the test systems, so the result is accurate to rounding, ~1e-15).
fn reference_flow<S: System + Clone>(sys: &S, h: f64, y: &[f64]) -> Vec<f64> {
    let n = (h.abs() / 5e-4).ceil().max(1.0) as usize;
    let method = Method::from_name("rk4").unwrap();
    let sol = solve(
        &method,
        &mut SystemField(sys.clone()),
        &Batch::from_row(y),
        &SolveOptions::steps(0.0, h, n),
    )
    .unwrap();
    sol.y_final.as_slice().to_vec()
}

/// Euclidean distance.
fn dist(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f64>()
        .sqrt()
}

/// Least-squares slope of `log e` against `log h`.
fn loglog_slope(hs: &[f64], errs: &[f64]) -> f64 {
    let xs: Vec<f64> = hs.iter().map(|h| h.ln()).collect();
    let ys: Vec<f64> = errs.iter().map(|e| e.ln()).collect();
    let n = xs.len() as f64;
    let (mx, my) = (xs.iter().sum::<f64>() / n, ys.iter().sum::<f64>() / n);
    let sxy: f64 = xs.iter().zip(&ys).map(|(x, y)| (x - mx) * (y - my)).sum();
    let sxx: f64 = xs.iter().map(|x| (x - mx) * (x - mx)).sum();
    sxy / sxx
}

/// Numbers in scientific notation, for failure messages.
fn sci(xs: &[f64]) -> String {
    let parts: Vec<String> = xs.iter().map(|x| format!("{x:.2e}")).collect();
    format!("[{}]", parts.join(", "))
}
