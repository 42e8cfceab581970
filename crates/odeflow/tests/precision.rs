//! The same solve in f32 and in f64 agrees to f32 precision, for fixed-step, splitting,
//! implicit and adaptive methods; tolerances below f32 resolution degrade gracefully.

mod common;

use common::*;
use num_dual::DualNum;
use odeflow::solve::{
    solve, solve_split, ImplicitIteration, ImplicitOptions, SaveAt, SolveOptions,
};
use odeflow::systems::{Kepler, SystemField};
use odeflow::{Batch, Method, Real, Solution, State};

fn kepler<T: Real + DualNum + Copy>(m: &Method, opts: &SolveOptions) -> Solution<Batch<T>> {
    let y0: Batch<T> = Batch::from_row(&Kepler::orbit(0.5)).cast();
    solve_split(m, &mut SystemField(Kepler), &y0, opts)
        .unwrap_or_else(|e| panic!("{} in {}: {e}", m.name(), T::NAME))
}

/// Largest difference between two runs over all saved points, relative to the largest
/// component of the f64 run.
fn max_relative_difference(a: &Solution<Batch<f32>>, b: &Solution<Batch<f64>>) -> f64 {
    assert_eq!(a.t, b.t);
    let scale =
        b.y.iter()
            .flat_map(|y| y.as_slice())
            .fold(0.0f64, |m, v| m.max(v.abs()));
    a.y.iter()
        .zip(&b.y)
        .map(|(x, y)| max_abs_diff(&x.to_f64_vec(), &y.to_f64_vec()))
        .fold(0.0, f64::max)
        / scale
}

fn all_fixed_step_methods() -> Vec<Method> {
    let mut methods: Vec<Method> = EXPLICIT_METHODS
        .iter()
        .map(|(n, _)| *n)
        .chain(SPLITTING_METHODS.iter().map(|(n, _)| *n))
        .chain(["implicit-midpoint"])
        .map(common::method)
        .collect();
    methods.push(Method::Implicit(ImplicitOptions {
        iteration: ImplicitIteration::Newton,
        ..ImplicitOptions::default()
    }));
    methods
}

/// 100 steps on one Kepler arc (e = 0.5, t ∈ [0, 3]): each step adds ~1 f32 rounding error
/// relative to the state, so the runs differ by ~1e-6 relative (measured 3.7e-7 … 3.3e-6
/// across the methods); the bound is 1e-5.
#[test]
fn fixed_step_kepler_in_f32_matches_f64() {
    let opts = SolveOptions::steps(0.0, 3.0, 100).save(SaveAt::Steps);
    for m in all_fixed_step_methods() {
        let a = kepler::<f32>(&m, &opts);
        let b = kepler::<f64>(&m, &opts);
        let rel = max_relative_difference(&a, &b);
        println!(
            "{:>20} ({:?}): f32 vs f64 max relative difference {rel:.2e}",
            m.name(),
            m.info().kind
        );
        assert!(rel < 1e-5, "{}: f32 and f64 differ by {rel:e}", m.name());
    }
}

/// A non-autonomous scalar problem: times stay f64, only the state is f32.
#[test]
fn fixed_step_scalar_in_f32_matches_f64() {
    let p = ScalarProblem { t1: 5.0, ..EXP_SIN };
    let opts = SolveOptions::fixed(p.t0, p.t1, 0.05).save(SaveAt::Times(vec![1.0, 2.5, 5.0]));
    for &(name, _) in EXPLICIT_METHODS.iter().chain(&[("implicit-midpoint", 2)]) {
        let m = common::method(name);
        let a = solve(&m, &mut p.field::<f32>(), &p.y0::<f32>(), &opts).unwrap();
        let b = solve(&m, &mut p.field::<f64>(), &p.y0::<f64>(), &opts).unwrap();
        let rel = max_relative_difference(&a, &b);
        assert!(rel < 1e-5, "{name}: f32 and f64 differ by {rel:e}");
        assert_eq!(a.stats.steps, b.stats.steps);
    }
}

/// Adaptive solves choose their steps from the error estimate, which is computed in the
/// state's precision, so f32 and f64 runs take different steps; at tol = 1e-5 both are within
/// a few tolerances of the exact solution and of each other.
#[test]
fn adaptive_in_f32_matches_f64_to_the_tolerance() {
    let tol = 1e-5;
    for name in ["bosh3", "dopri5", "tsit5"] {
        let m = common::method(name);
        let opts = SolveOptions::adaptive(0.0, 3.0, tol, tol);
        let a = kepler::<f32>(&m, &opts);
        let b = kepler::<f64>(&m, &opts);
        let exact = kepler_exact(0.5, 3.0);
        let e32 = max_abs_diff(&a.y_final.to_f64_vec(), &exact);
        let e64 = max_abs_diff(b.y_final.as_slice(), &exact);
        let diff = max_abs_diff(&a.y_final.to_f64_vec(), b.y_final.as_slice());
        println!(
            "{name:>6}: error f32 {e32:.2e}, f64 {e64:.2e}, difference {diff:.2e}; steps {} / {}",
            a.stats.steps, b.stats.steps
        );
        // Measured: errors ≤ 1.7e-5, differences ≤ 1e-5.
        assert!(
            e32 < 5.0 * tol && e64 < 5.0 * tol && diff < 5.0 * tol,
            "{name}"
        );
        assert!(
            a.stats.steps.abs_diff(b.stats.steps) <= b.stats.steps / 5 + 2,
            "{name}: step counts"
        );
    }
}

/// Asking an f32 solve for 1e-8 or 1e-10 (below its resolution of ~1e-7) still finishes, with
/// an error at the level of f32 round-off accumulated over the steps, not a failure.
#[test]
fn f32_tolerances_below_resolution_degrade_gracefully() {
    for name in ["bosh3", "dopri5", "tsit5"] {
        for tol in [1e-8, 1e-10] {
            let sol = kepler::<f32>(
                &common::method(name),
                &SolveOptions::adaptive(0.0, 3.0, tol, tol),
            );
            let err = max_abs_diff(&sol.y_final.to_f64_vec(), &kepler_exact(0.5, 3.0));
            // Measured 1e-6 … 1.5e-5.
            assert!(err < 1e-4, "{name} at tol {tol:e}: error {err:e}");
        }
    }
}

/// The implicit midpoint iteration floors its tolerance at 10 ε of the scalar type and uses
/// an ε-aware difference quotient, so both iterations converge in f32 with the default
/// tolerance (1e-12, unreachable in f32) and agree with f64.
#[test]
fn implicit_midpoint_converges_in_f32_with_the_default_tolerance() {
    for iteration in [ImplicitIteration::FixedPoint, ImplicitIteration::Newton] {
        let m = Method::Implicit(ImplicitOptions {
            iteration,
            ..ImplicitOptions::default()
        });
        let opts = SolveOptions::steps(0.0, 3.0, 300).save(SaveAt::Steps);
        let a = kepler::<f32>(&m, &opts);
        let b = kepler::<f64>(&m, &opts);
        let rel = max_relative_difference(&a, &b);
        assert!(rel < 1e-5, "{iteration:?}: {rel:e}");
        assert!(a.stats.implicit_iterations > 0);
        assert_eq!(
            ImplicitOptions::default().effective_tol::<f32>(),
            10.0 * f64::from(f32::EPSILON)
        );
        assert_eq!(ImplicitOptions::default().effective_tol::<f64>(), 1e-12);
    }
}
