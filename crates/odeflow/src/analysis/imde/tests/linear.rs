//! `y' = λy`: every modified equation is `λ'y` with `λ'` in closed form.

use super::tab;
use crate::analysis::imde::{imde, modified_equation, ModifiedSeries};
use crate::systems::Linear;
use crate::tableau::ButcherTableau;

/// Truncated exponential `Σ_{k≤deg} z^k/k!` — the stability function of an explicit
/// method of order `deg` with `deg` stages — and its derivative.
fn taylor_exp(deg: usize, z: f64) -> (f64, f64) {
    let (mut p, mut dp, mut term) = (1.0, 0.0, 1.0);
    for k in 1..=deg {
        dp += term; // z^{k-1}/(k-1)!
        term *= z / k as f64;
        p += term;
    }
    (p, dp)
}

/// The root `z` of `taylor_exp(deg, z) = e^x` near `x` (Newton).
fn stability_inverse(deg: usize, x: f64) -> f64 {
    let target = x.exp();
    let mut z = x;
    for _ in 0..50 {
        let (p, dp) = taylor_exp(deg, z);
        z -= (p - target) / dp;
    }
    z
}

/// (λ, h) pairs with |hλ| ≤ 0.1, both signs.
const CASES: [(f64, f64); 4] = [(-1.0, 0.1), (2.0, 0.05), (-4.0, 0.02), (0.5, 0.1)];

/// The order-12 IMDE of a method whose stability function is the degree-`deg` Taylor
/// polynomial of `e^z` is `λ'y` with `P(hλ') = e^{hλ}`.
fn check_imde(method: &str, deg: usize) {
    let series = ModifiedSeries::inverse(tab(method), 12).unwrap();
    for (lambda, h) in CASES {
        let field = Linear { lambda, dim: 2 };
        let y = [0.7, -1.3];
        let got = series.eval(&field, h, &y).unwrap();
        let lambda_mod = stability_inverse(deg, h * lambda) / h;
        for (g, yi) in got.iter().zip(y) {
            let err = (g - lambda_mod * yi).abs();
            assert!(
                err < 1e-10 * yi.abs(),
                "{method}, λ = {lambda}, h = {h}: IMDE {g} vs closed form {} (error {err:e})",
                lambda_mod * yi
            );
        }
        // The truncation is what makes it exact: order 1 is visibly different (except for
        // Euler, whose first term is already there, the error is of order h²λ³).
        let low = imde(&field, tab(method), h, 1, &y).unwrap();
        assert!((low[0] - lambda_mod * y[0]).abs() > 1e-6 * (h * lambda).powi(2).abs());
    }
}

#[test]
fn euler_imde_is_expm1_over_h() {
    check_imde("euler", 1);
    // And directly against (e^{hλ} − 1)/h.
    let field = Linear {
        lambda: -1.5,
        dim: 1,
    };
    let h = 0.06;
    let got = imde(&field, tab("euler"), h, 8, &[1.0]).unwrap()[0];
    let want = (h * -1.5f64).exp_m1() / h;
    assert!((got - want).abs() < 1e-13, "{got} vs {want}");
}

#[test]
fn midpoint_and_heun_imde_solve_the_quadratic() {
    check_imde("midpoint", 2);
    check_imde("heun", 2);
    check_imde("ralston", 2);
}

#[test]
fn rk4_imde_solves_the_quartic() {
    check_imde("rk4", 4);
    check_imde("rk4-38", 4);
}

#[test]
fn euler_modified_equation_is_log1p_over_h() {
    let series = ModifiedSeries::forward(tab("euler"), 12).unwrap();
    for (lambda, h) in CASES {
        let field = Linear { lambda, dim: 1 };
        let got = series.eval(&field, h, &[1.0]).unwrap()[0];
        let want = (h * lambda).ln_1p() / h;
        assert!(
            (got - want).abs() < 1e-10 * lambda.abs(),
            "λ = {lambda}, h = {h}: {got} vs {want}"
        );
    }
    // The one-shot function agrees with the reusable series.
    let field = Linear {
        lambda: -2.0,
        dim: 1,
    };
    // Truncated after h⁶: exactly the degree-7 Taylor polynomial of log(1 + x), x = hλ.
    let once = modified_equation(&field, tab("euler"), 0.05, 6, &[1.0]).unwrap()[0];
    let x = -0.1f64;
    let want: f64 = (1..=7).map(|k| -(-x).powi(k) / k as f64).sum::<f64>() / 0.05;
    assert!((once - want).abs() < 1e-13, "{once} vs {want}");
}

#[test]
fn rk4_modified_equation_is_log_of_the_stability_function() {
    let series = ModifiedSeries::forward(tab("rk4"), 12).unwrap();
    for (lambda, h) in CASES {
        let field = Linear { lambda, dim: 1 };
        let got = series.eval(&field, h, &[1.0]).unwrap()[0];
        let want = taylor_exp(4, h * lambda).0.ln() / h;
        assert!(
            (got - want).abs() < 1e-12 * lambda.abs(),
            "λ = {lambda}, h = {h}: {got} vs {want}"
        );
    }
}

#[test]
fn user_toml_tableau_gets_its_own_imde() {
    // Heun's third-order method, not in the catalogue: stability function 1 + z + z²/2 + z³/6.
    let text = r#"
        name = "heun3"
        order = 3
        c = [0.0, 0.3333333333333333, 0.6666666666666666]
        a = [[], [0.3333333333333333], [0.0, 0.6666666666666666]]
        b = [0.25, 0.0, 0.75]
    "#;
    let tableau = ButcherTableau::from_toml(text).unwrap();
    let series = ModifiedSeries::inverse(&tableau, 10).unwrap();
    assert_eq!(series.method(), "heun3");
    for (lambda, h) in CASES {
        let field = Linear { lambda, dim: 1 };
        let got = series.eval(&field, h, &[1.0]).unwrap()[0];
        let want = stability_inverse(3, h * lambda) / h;
        assert!(
            (got - want).abs() < 1e-10 * lambda.abs(),
            "λ = {lambda}, h = {h}: {got} vs {want}"
        );
    }
}
