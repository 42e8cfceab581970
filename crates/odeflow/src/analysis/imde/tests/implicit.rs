//! The modified equations of the implicit midpoint rule: closed form on `y' = λy`, and the
//! defining property (one implicit step on the IMDE reproduces the exact flow to
//! `O(h^{K+2})`) on the pendulum.

use super::{dist, loglog_slope, reference_flow, sci};
use crate::analysis::imde::{Expansion, ImdeField, ModifiedSeries};
use crate::solve::{solve, ImplicitOptions, Method, SolveOptions};
use crate::state::Batch;
use crate::systems::{Linear, Pendulum};

fn midpoint(tol: f64) -> Method {
    Method::Implicit(ImplicitOptions {
        tol,
        max_iterations: 500,
        ..ImplicitOptions::default()
    })
}

#[test]
fn implicit_midpoint_imde_of_a_linear_field_is_the_tanh_closed_form() {
    // R(z) = (1 + z/2)/(1 − z/2) = e^{hλ} for z = hλ' ⇔ λ' = (2/h) tanh(hλ/2);
    // the forward modified equation inverts it: λ̃ = (2/h) artanh(hλ/2).
    let inverse = ModifiedSeries::for_method(Expansion::Inverse, &midpoint(1e-12), 12).unwrap();
    let forward = ModifiedSeries::for_method(Expansion::Forward, &midpoint(1e-12), 12).unwrap();
    for (lambda, h) in [(-1.0, 0.1), (2.0, 0.05), (-4.0, 0.05)] {
        let field = Linear { lambda, dim: 1 };
        let got = inverse.eval(&field, h, &[1.0]).unwrap()[0];
        let want = 2.0 / h * (h * lambda / 2.0).tanh();
        assert!(
            (got - want).abs() < 1e-12,
            "λ = {lambda}, h = {h}: {got} vs {want}"
        );
        let got = forward.eval(&field, h, &[1.0]).unwrap()[0];
        let want = 2.0 / h * (h * lambda / 2.0).atanh();
        assert!(
            (got - want).abs() < 1e-12,
            "λ = {lambda}, h = {h}: {got} vs {want}"
        );
    }
    // A symmetric method: only even powers of h, i.e. b(τ) = 0 for trees with an even
    // number of vertices (the term h^{|τ|−1}).
    // Rounding in the recursion leaves ~1e-14 relative to the coefficients of odd orders.
    let mut largest = [0.0f64; 14];
    for (tree, b) in inverse.coefficients() {
        largest[tree.order()] = largest[tree.order()].max(b.abs());
    }
    for n in (2..=12).step_by(2) {
        assert!(
            largest[n] < 1e-8 * largest[n - 1],
            "order {n}: max |b| = {:e} vs {:e} at order {}",
            largest[n],
            largest[n - 1],
            n - 1
        );
    }
    let terms = inverse.terms(&Pendulum, &[0.3, 0.8]).unwrap();
    assert!(terms[2].iter().any(|v| v.abs() > 1e-3));
}

#[test]
fn one_implicit_midpoint_step_on_the_imde_matches_the_flow_to_order_k_plus_2() {
    let y = [0.6, 0.9];
    for order in [2, 4] {
        let series =
            ModifiedSeries::for_method(Expansion::Inverse, &midpoint(1e-12), order).unwrap();
        let (mut hs, mut errs) = (Vec::new(), Vec::new());
        for j in 0..4 {
            let h = 0.1 * f64::powf(2.0, -(j as f64) / 2.0);
            let mut field = ImdeField::new(Pendulum, series.clone(), h).unwrap();
            let y0 = Batch::from_row(&y);
            let step = solve(
                &midpoint(1e-15),
                &mut field,
                &y0,
                &SolveOptions::steps(0.0, h, 1),
            )
            .unwrap();
            hs.push(h);
            errs.push(dist(
                step.y_final.as_slice(),
                &reference_flow(&Pendulum, h, &y),
            ));
        }
        let slope = loglog_slope(&hs, &errs);
        // K even: f_{K+1} = 0 for a symmetric method, so the error is O(h^{K+3}).
        let expected = (order + 3) as f64;
        assert!(
            (slope - expected).abs() < 0.3,
            "K = {order}: slope {slope:.2} (expected {expected}), errors {}",
            sci(&errs)
        );
    }
    let verlet = Method::from_name("verlet").unwrap();
    assert!(ModifiedSeries::for_method(Expansion::Inverse, &verlet, 3).is_err());
}
