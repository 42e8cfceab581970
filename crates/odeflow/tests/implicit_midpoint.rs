//! The implicit midpoint rule's two nonlinear solvers: fixed-point iteration and
//! Jacobian-free Newton–Krylov converge to the same steps; Newton handles a stiff linear
//! system on which fixed-point iteration diverges, and both report their iterations.

mod common;

use common::*;
use odeflow::solve::{
    solve, solve_split, ImplicitIteration, ImplicitOptions, SaveAt, SolveOptions,
};
use odeflow::systems::{Kepler, Pendulum, SystemField};
use odeflow::{ArgError, Batch, FailReason, Method, SolveError, State};

fn midpoint(iteration: ImplicitIteration) -> Method {
    Method::Implicit(ImplicitOptions {
        iteration,
        ..ImplicitOptions::default()
    })
}

#[test]
fn fixed_point_and_newton_agree_on_nonlinear_problems() {
    let fp = midpoint(ImplicitIteration::FixedPoint);
    let nt = midpoint(ImplicitIteration::Newton);
    let opts = SolveOptions::fixed(0.0, 5.0, 0.01).save(SaveAt::Steps);
    for (name, y0) in [("kepler", Kepler::orbit(0.5)), ("pendulum", vec![0.0, 2.0])] {
        let y0 = Batch::from_row(&y0);
        let (a, b) = if name == "kepler" {
            (
                solve_split(&fp, &mut SystemField(Kepler), &y0, &opts).unwrap(),
                solve_split(&nt, &mut SystemField(Kepler), &y0, &opts).unwrap(),
            )
        } else {
            (
                solve_split(&fp, &mut SystemField(Pendulum), &y0, &opts).unwrap(),
                solve_split(&nt, &mut SystemField(Pendulum), &y0, &opts).unwrap(),
            )
        };
        let diff =
            a.y.iter()
                .zip(&b.y)
                .map(|(x, y)| max_abs_diff(x.as_slice(), y.as_slice()))
                .fold(0.0, f64::max);
        let steps = a.stats.steps;
        println!(
            "{name}: max difference {diff:.1e}; iterations per step fixed point {:.2}, Newton {:.2}; nfe {} / {}",
            a.stats.implicit_iterations as f64 / steps as f64,
            b.stats.implicit_iterations as f64 / steps as f64,
            a.stats.nfe,
            b.stats.nfe
        );
        // Both solve each step to 1e-12 relative; over 500 steps the difference stays ~1e-11.
        assert!(diff < 1e-9, "{name}: {diff:e}");
        assert!(a.stats.implicit_iterations >= steps && b.stats.implicit_iterations >= steps);
        // Newton converges quadratically: a few iterations per step.
        assert!(
            b.stats.implicit_iterations <= 4 * steps,
            "{name}: {:?}",
            b.stats
        );
    }
}

/// y' = A y with the eigenvalues −1 and −500 (A = V diag(−1, −500) V⁻¹, V a rotation by 0.3),
/// h = 0.05: h·|λ|/2 = 12.5, far outside the fixed-point iteration's contraction region.
/// Newton solves the linear step in one iteration (its finite-difference Jacobian-vector
/// products are exact up to rounding for a linear field), and the result is the Cayley
/// transform y₁ = (I − hA/2)⁻¹(I + hA/2) y₀ of the exact midpoint rule.
#[test]
fn newton_handles_a_stiff_linear_system_where_fixed_point_diverges() {
    let (c, s) = (0.3f64.cos(), 0.3f64.sin());
    let (l1, l2) = (-1.0, -500.0);
    // A = V diag(l1, l2) Vᵀ with V = [[c, −s], [s, c]].
    let a = [
        [c * c * l1 + s * s * l2, c * s * (l1 - l2)],
        [c * s * (l1 - l2), s * s * l1 + c * c * l2],
    ];
    let mut field = |_t: f64, y: &Batch<f64>, dy: &mut Batch<f64>| {
        let (u, v) = (y.as_slice()[0], y.as_slice()[1]);
        dy.as_mut_slice()
            .copy_from_slice(&[a[0][0] * u + a[0][1] * v, a[1][0] * u + a[1][1] * v]);
    };
    let y0 = Batch::from_row(&[1.0, 0.5]);
    let (h, n) = (0.05, 20);
    let opts = SolveOptions::steps(0.0, h * n as f64, n);

    let err = solve(
        &midpoint(ImplicitIteration::FixedPoint),
        &mut field,
        &y0,
        &opts,
    )
    .unwrap_err();
    let SolveError::Failed(fail) = err else {
        panic!("{err}")
    };
    assert!(
        matches!(fail.reason, FailReason::ImplicitNotConverged { .. }),
        "{:?}",
        fail.reason
    );
    assert_eq!(fail.step, 0, "fixed point fails on the first step");

    let sol = solve(&midpoint(ImplicitIteration::Newton), &mut field, &y0, &opts).unwrap();
    // Each component of y₀ in the eigenbasis is multiplied by R(hλ) = (1 + hλ/2)/(1 − hλ/2)
    // per step.
    let r = |l: f64| (1.0 + h * l / 2.0) / (1.0 - h * l / 2.0);
    let (p1, p2) = (c * 1.0 + s * 0.5, -s * 1.0 + c * 0.5); // Vᵀ y₀
    let (q1, q2) = (p1 * r(l1).powi(n as i32), p2 * r(l2).powi(n as i32));
    let expected = [c * q1 - s * q2, s * q1 + c * q2];
    let e = max_abs_diff(sol.y_final.as_slice(), &expected);
    println!(
        "Newton on the stiff system: error vs Cayley {e:.1e}, {} iterations in {n} steps, nfe {}",
        sol.stats.implicit_iterations, sol.stats.nfe
    );
    assert!(e < 1e-12, "{e:e}");
    // The stiff mode is damped (|R| = 0.85), the slow one follows e^{−t} to O(h²).
    assert!((sol.y_final.as_slice()[0] - c * p1 * (-1.0f64).exp()).abs() < 0.05);
    // The difference quotients make the Jacobian-vector products accurate to ~√ε·h|λ|/2
    // (~1e-7 here), so Newton contracts by that factor per iteration: the first iteration
    // solves the step, the second and third shrink the update below 1e-12 (measured: exactly
    // 3 per step).
    assert!(
        sol.stats.implicit_iterations >= 2 * n && sol.stats.implicit_iterations <= 3 * n,
        "{:?}",
        sol.stats
    );
}

#[test]
fn iterations_are_counted_and_cost_evaluations() {
    let y0 = Batch::from_row(&[1.0]);
    let mut calls = 0usize;
    let mut f = |_t: f64, y: &Batch<f64>, dy: &mut Batch<f64>| {
        calls += 1;
        dy.as_mut_slice()[0] = -y.as_slice()[0] * y.as_slice()[0];
    };
    let sol = solve(
        &midpoint(ImplicitIteration::FixedPoint),
        &mut f,
        &y0,
        &SolveOptions::steps(0.0, 1.0, 10),
    )
    .unwrap();
    // Per step: one predictor evaluation, one per iteration, one to refresh f at the
    // converged midpoint.
    assert_eq!(sol.stats.nfe, sol.stats.implicit_iterations + 2 * 10);
    assert_eq!(calls, sol.stats.nfe);
    // y' = −y², y(1) = 1/2.
    assert!((scalar(&sol.y_final) - 0.5).abs() < 1e-3);
}

#[test]
fn invalid_implicit_options_are_argument_errors() {
    let y0 = Batch::from_row(&[1.0]);
    let mut f =
        |_t: f64, y: &Batch<f64>, dy: &mut Batch<f64>| dy.as_mut_slice()[0] = -y.as_slice()[0];
    for (opts, expect) in [
        (
            ImplicitOptions {
                tol: 0.0,
                ..ImplicitOptions::default()
            },
            "implicit tol must be positive and finite, got 0",
        ),
        (
            ImplicitOptions {
                tol: f64::NAN,
                ..ImplicitOptions::default()
            },
            "implicit tol must be positive and finite, got NaN",
        ),
        (
            ImplicitOptions {
                max_iterations: 0,
                ..ImplicitOptions::default()
            },
            "max_iterations = 0 is invalid",
        ),
    ] {
        let err = solve(
            &Method::Implicit(opts),
            &mut f,
            &y0,
            &SolveOptions::fixed(0.0, 1.0, 0.1),
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                SolveError::Invalid(ArgError::BadTolerance { .. } | ArgError::Invalid { .. })
            ),
            "{err:?}"
        );
        assert!(err.to_string().starts_with(expect), "{err}");
    }
}

/// A NaN from the field inside the nonlinear solve is reported as such, not as
/// non-convergence and not as a converged step.
#[test]
fn nan_inside_the_nonlinear_solve_is_named() {
    // (a) NaN at the predicted midpoint 0.95 (y₀ = 1, h = 0.1): both iterations meet it.
    for iteration in [ImplicitIteration::FixedPoint, ImplicitIteration::Newton] {
        let mut f = |_t: f64, y: &Batch<f64>, dy: &mut Batch<f64>| {
            let v = y.as_slice()[0];
            dy.as_mut_slice()[0] = if v < 0.99 { f64::NAN } else { -v };
        };
        let sol = solve(
            &midpoint(iteration),
            &mut f,
            &Batch::from_row(&[1.0]),
            &SolveOptions::steps(0.0, 1.0, 10),
        );
        let Err(SolveError::Failed(fail)) = sol else {
            panic!("{iteration:?}: {sol:?}")
        };
        assert!(
            matches!(fail.reason, FailReason::NonFinite { location: "field", index: 0, value } if value.is_nan()),
            "{iteration:?}: {:?}",
            fail.reason
        );
        assert_eq!(
            (fail.step, fail.partial.stats.implicit_iterations),
            (0, 1),
            "{iteration:?}"
        );
    }
    // (b) NaN only within 1e-9 … 1e-7 of the midpoint: only Newton's difference-quotient
    // probes (at ±3e-8) see it. A NaN Jacobian-vector product used to end GMRES with a zero
    // update, which passed as a converged iteration and accepted the explicit predictor.
    let mut f = |t: f64, y: &Batch<f64>, dy: &mut Batch<f64>| {
        let v = y.as_slice()[0];
        let d = (v - 0.95).abs();
        dy.as_mut_slice()[0] = if t < 0.1 && d > 1e-9 && d < 1e-7 {
            f64::NAN
        } else {
            -v
        };
    };
    let sol = solve(
        &midpoint(ImplicitIteration::Newton),
        &mut f,
        &Batch::from_row(&[1.0]),
        &SolveOptions::steps(0.0, 1.0, 10),
    );
    let Err(SolveError::Failed(fail)) = sol else {
        panic!("{sol:?}")
    };
    assert!(
        matches!(
            fail.reason,
            FailReason::NonFinite {
                location: "field",
                ..
            }
        ),
        "{:?}",
        fail.reason
    );
    assert_eq!(fail.step, 0);
    assert!(fail.partial.y_final.is_finite());
}
