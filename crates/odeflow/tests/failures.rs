//! Failures mid-run: step-size underflow, the step budget, NaN from the field (fixed-step,
//! adaptive, splitting, implicit) and implicit non-convergence. Each says where it stopped
//! (t, h, step) and why, names the offending value, and keeps the partial solution.

mod common;

use common::*;
use odeflow::solve::{
    solve, solve_split, AdaptiveOptions, ImplicitIteration, ImplicitOptions, SaveAt, SolveOptions,
    Stepping,
};
use odeflow::{Batch, FailReason, Method, SolveError, State};

fn decay() -> impl FnMut(f64, &Batch<f64>, &mut Batch<f64>) {
    |_t, y, dy| {
        for (d, v) in dy.as_mut_slice().iter_mut().zip(y.as_slice()) {
            *d = -v;
        }
    }
}

fn failure(
    result: Result<odeflow::Solution<Batch<f64>>, SolveError<Batch<f64>>>,
) -> Box<odeflow::Failure<Batch<f64>>> {
    match result {
        Err(SolveError::Failed(f)) => f,
        Err(e) => panic!("expected a failure mid-run, got {e}"),
        Ok(s) => panic!(
            "expected a failure mid-run, the solve succeeded: {:?}",
            s.stats
        ),
    }
}

/// y' = y² from y(0) = 1 blows up at t = 1; integrated adaptively to t = 2 the step size
/// collapses there and the solve fails with a step-size underflow, keeping what it computed.
#[test]
fn step_size_underflow() {
    for method in ["bosh3", "dopri5", "tsit5"] {
        let mut f = |_t: f64, y: &Batch<f64>, dy: &mut Batch<f64>| {
            dy.as_mut_slice()[0] = y.as_slice()[0] * y.as_slice()[0];
        };
        let opts = SolveOptions::adaptive(0.0, 2.0, 1e-8, 1e-8).save(SaveAt::Steps);
        let fail = failure(solve(
            &common::method(method),
            &mut f,
            &Batch::from_row(&[1.0]),
            &opts,
        ));
        let FailReason::StepUnderflow { min_step } = fail.reason else {
            panic!("{method}: {:?}", fail.reason)
        };
        // The floor is 8 ε max(|t|, |t1|) = 16 ε.
        assert_eq!(min_step, 16.0 * f64::EPSILON, "{method}");
        assert!(
            fail.h.abs() < min_step && fail.h > 0.0,
            "{method}: h = {:e}",
            fail.h
        );
        // Where: at the blow-up (the numerical one lags the exact t = 1 by the global error).
        assert!((fail.t - 1.0).abs() < 1e-6, "{method}: t = {}", fail.t);
        let p = &fail.partial;
        assert_eq!(p.t_final, fail.t);
        assert_eq!(fail.step, p.stats.steps);
        assert_eq!(p.stats.accepted + p.stats.rejected, p.stats.steps);
        // The saved points are the accepted steps, the last good state is the last of them.
        assert_eq!(p.t.len(), p.stats.accepted + 1);
        assert_eq!(*p.t.last().unwrap(), fail.t);
        assert_eq!(p.y.last().unwrap(), &p.y_final);
        assert!(
            scalar(&p.y_final) > 1e6,
            "{method}: y = {:e}",
            scalar(&p.y_final)
        );
        // Before the blow-up the partial solution is accurate: y = 1/(1 − t).
        let k = p.t.iter().position(|&t| t > 0.9).unwrap();
        assert!(
            (scalar(&p.y[k]) * (1.0 - p.t[k]) - 1.0).abs() < 1e-6,
            "{method}"
        );
        let msg = SolveError::Failed(fail.clone()).to_string();
        assert!(
            msg.contains("step size underflow") && msg.contains(&format!("t = {}", fail.t)),
            "{msg}"
        );
        // A user minimum step is honoured and reported.
        let mut a = AdaptiveOptions::new(1e-8, 1e-8);
        a.min_step = 1e-6;
        let opts = SolveOptions {
            stepping: Stepping::Adaptive(a),
            ..SolveOptions::adaptive(0.0, 2.0, 1.0, 1.0)
        };
        let fail = failure(solve(
            &common::method(method),
            &mut f,
            &Batch::from_row(&[1.0]),
            &opts,
        ));
        assert_eq!(fail.reason, FailReason::StepUnderflow { min_step: 1e-6 });
        assert!(fail.t < 1.0 && fail.t > 0.99, "{method}: t = {}", fail.t);
    }
}

#[test]
fn max_steps() {
    let mut f = decay();
    let mut opts = SolveOptions::adaptive(0.0, 10.0, 1e-10, 1e-10).save(SaveAt::Steps);
    opts.max_steps = 10;
    let fail = failure(solve(
        &common::method("dopri5"),
        &mut f,
        &Batch::from_row(&[1.0]),
        &opts,
    ));
    assert_eq!(fail.reason, FailReason::MaxSteps { max_steps: 10 });
    assert_eq!((fail.step, fail.partial.stats.steps), (10, 10));
    assert_eq!(fail.partial.t.len(), fail.partial.stats.accepted + 1);
    assert!(fail.t > 0.0 && fail.t < 10.0);
    assert_eq!(fail.partial.t_final, fail.t);
    assert!((scalar(&fail.partial.y_final) - (-fail.t).exp()).abs() < 1e-9);
    let msg = SolveError::Failed(fail).to_string();
    assert!(msg.contains("max_steps = 10"), "{msg}");
}

/// A field that returns NaN from t > 0.5 on: fixed-step solves stop at the first step that
/// reaches past 0.5, saying where and which component, with everything before it.
#[test]
fn nan_from_the_field_in_a_fixed_step_solve() {
    let mut f = |t: f64, y: &Batch<f64>, dy: &mut Batch<f64>| {
        dy.as_mut_slice()[0] = -y.as_slice()[0];
        dy.as_mut_slice()[1] = if t > 0.5 { f64::NAN } else { -y.as_slice()[1] };
    };
    for method in ["euler", "rk4", "dopri5", "implicit-midpoint"] {
        let opts = SolveOptions::fixed(0.0, 1.0, 0.1).save(SaveAt::Steps);
        let fail = failure(solve(
            &common::method(method),
            &mut f,
            &Batch::from_row(&[1.0, 2.0]),
            &opts,
        ));
        match fail.reason {
            FailReason::NonFinite {
                location: "field",
                index: 1,
                value,
            } => assert!(value.is_nan()),
            ref r => panic!("{method}: {r:?}"),
        }
        // Euler's stages sit at the step start: its first NaN step starts after 0.5. All
        // other methods evaluate inside the step [0.5, 0.6] (at t = 0.5 + c h).
        let expected_step = if method == "euler" { 6 } else { 5 };
        assert_eq!(fail.step, expected_step, "{method}");
        assert!(
            (fail.t - 0.1 * expected_step as f64).abs() < 1e-12,
            "{method}: t = {}",
            fail.t
        );
        assert!((fail.h - 0.1).abs() < 1e-12);
        let p = &fail.partial;
        assert_eq!(
            p.t.len(),
            expected_step + 1,
            "{method}: saved points up to t"
        );
        assert_eq!(p.t_final, fail.t);
        assert_eq!(p.y.last().unwrap(), &p.y_final);
        assert!(p.y_final.is_finite(), "the last good state");
        // Euler at h = 0.1 is off by ~0.04 at t = 0.6.
        assert!(
            (p.y_final.as_slice()[1] - 2.0 * (-fail.t).exp()).abs() < 0.05,
            "{method}"
        );
        let msg = SolveError::Failed(fail.clone()).to_string();
        assert!(
            msg.contains("NaN") && msg.contains("component 1") && msg.contains("field"),
            "{msg}"
        );
    }
}

/// A field that turns NaN mid-run, in an adaptive solve: the step is retried smaller, and when
/// even the smallest step meets the NaN the failure names it (not a step-size underflow).
#[test]
fn nan_from_the_field_in_an_adaptive_solve() {
    for method in ["heun-euler", "bosh3", "dopri5", "tsit5"] {
        // (a) NaN for t > 0.5: steps approach 0.5 until they cannot.
        let mut f = |t: f64, y: &Batch<f64>, dy: &mut Batch<f64>| {
            dy.as_mut_slice()[0] = if t > 0.5 { f64::NAN } else { -y.as_slice()[0] };
        };
        let opts = SolveOptions::adaptive(0.0, 2.0, 1e-8, 1e-8).save(SaveAt::Steps);
        let fail = failure(solve(
            &common::method(method),
            &mut f,
            &Batch::from_row(&[1.0]),
            &opts,
        ));
        assert!(
            matches!(fail.reason, FailReason::NonFinite { location: "field", index: 0, value } if value.is_nan()),
            "{method}: {:?}",
            fail.reason
        );
        assert!(
            (fail.t - 0.5).abs() < 1e-9 && fail.t <= 0.5,
            "{method}: t = {}",
            fail.t
        );
        let p = &fail.partial;
        assert_eq!(p.t.len(), p.stats.accepted + 1);
        assert!(
            (scalar(&p.y_final) - (-fail.t).exp()).abs() < 1e-7,
            "{method}"
        );
        assert_eq!(fail.step, p.stats.steps);

        // (b) A field that breaks for good after 50 evaluations.
        let mut calls = 0;
        let mut f = |_t: f64, y: &Batch<f64>, dy: &mut Batch<f64>| {
            calls += 1;
            dy.as_mut_slice()[0] = if calls > 50 {
                f64::NAN
            } else {
                -y.as_slice()[0]
            };
        };
        let fail = failure(solve(
            &common::method(method),
            &mut f,
            &Batch::from_row(&[1.0]),
            &opts,
        ));
        assert!(
            matches!(
                fail.reason,
                FailReason::NonFinite {
                    location: "field",
                    ..
                }
            ),
            "{method}: {:?}",
            fail.reason
        );
        assert!(fail.partial.stats.rejected > 0 && fail.partial.y_final.is_finite());
        let msg = SolveError::Failed(fail).to_string();
        assert!(msg.contains("non-finite value NaN in the field"), "{msg}");
    }
    // (c) NaN at the very first evaluation.
    let mut f =
        |_t: f64, _y: &Batch<f64>, dy: &mut Batch<f64>| dy.as_mut_slice()[0] = f64::INFINITY;
    let fail = failure(solve(
        &common::method("dopri5"),
        &mut f,
        &Batch::from_row(&[1.0]),
        &SolveOptions::adaptive(0.0, 1.0, 1e-6, 1e-6),
    ));
    assert_eq!(
        fail.reason,
        FailReason::NonFinite {
            location: "field",
            index: 0,
            value: f64::INFINITY
        }
    );
    assert_eq!((fail.t, fail.step, fail.partial.stats.nfe), (0.0, 0, 1));
}

/// Splitting methods report a NaN force too.
#[test]
fn nan_from_a_split_field() {
    struct Broken;
    impl odeflow::solve::SplitRhs<Batch<f64>> for Broken {
        fn drift(&mut self, _t: f64, y: &Batch<f64>, dy: &mut Batch<f64>) {
            dy.as_mut_slice().copy_from_slice(&[0.0, y.as_slice()[0]]);
        }
        fn kick(&mut self, _t: f64, y: &Batch<f64>, dy: &mut Batch<f64>) {
            let q = y.as_slice()[1];
            dy.as_mut_slice()
                .copy_from_slice(&[if q < 0.5 { f64::NAN } else { -q }, 0.0]);
        }
    }
    let opts = SolveOptions::fixed(0.0, 10.0, 0.01).save(SaveAt::Steps);
    let fail = failure(solve_split(
        &common::method("verlet"),
        &mut Broken,
        &Batch::from_row(&[0.0, 1.0]),
        &opts,
    ));
    assert!(
        matches!(
            fail.reason,
            FailReason::NonFinite {
                location: "field",
                index: 0,
                ..
            }
        ),
        "{:?}",
        fail.reason
    );
    assert!(
        fail.t > 0.9 && fail.t < 1.2,
        "q = cos t reaches 0.5 at t = π/3: {}",
        fail.t
    );
    assert_eq!(fail.partial.t.len(), fail.step + 1);
}

/// The implicit midpoint rule fails with the iteration count and the residual when its
/// nonlinear solve does not converge.
#[test]
fn implicit_non_convergence() {
    let y0 = Batch::from_row(&[1.0]);
    // (a) One iteration is not enough for tol 1e-12.
    let m = Method::Implicit(ImplicitOptions {
        max_iterations: 1,
        ..ImplicitOptions::default()
    });
    let mut f = decay();
    let fail = failure(solve(&m, &mut f, &y0, &SolveOptions::fixed(0.0, 1.0, 0.1)));
    match fail.reason {
        FailReason::ImplicitNotConverged {
            iterations: 1,
            residual,
            tol,
        } => {
            assert_eq!(tol, 1e-12);
            assert!(residual > tol && residual.is_finite(), "{residual:e}");
        }
        ref r => panic!("{r:?}"),
    }
    assert_eq!(
        (fail.t, fail.step, fail.partial.stats.implicit_iterations),
        (0.0, 0, 1)
    );
    let msg = SolveError::Failed(fail).to_string();
    assert!(
        msg.contains("did not converge in 1 iterations") && msg.contains("tol 1e-12"),
        "{msg}"
    );

    // (b) A stiff field with h·λ/2 = 50: fixed-point iteration diverges.
    let m = Method::Implicit(ImplicitOptions {
        iteration: ImplicitIteration::FixedPoint,
        ..ImplicitOptions::default()
    });
    let mut stiff = |_t: f64, y: &Batch<f64>, dy: &mut Batch<f64>| {
        dy.as_mut_slice()[0] = -1000.0 * y.as_slice()[0]
    };
    let fail = failure(solve(
        &m,
        &mut stiff,
        &y0,
        &SolveOptions::fixed(0.0, 1.0, 0.1),
    ));
    let FailReason::ImplicitNotConverged {
        iterations,
        residual,
        ..
    } = fail.reason
    else {
        panic!("{:?}", fail.reason)
    };
    // Y ← 1 − 50 Y diverges: all 100 iterations are spent, and the residual (the update
    // relative to the iterate, ≈ 51/50) shows the divergence.
    assert_eq!(iterations, 100);
    assert!(residual > 1.0, "{residual:e}");
    assert_eq!(fail.step, 0);
}
