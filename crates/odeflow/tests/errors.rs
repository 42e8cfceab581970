//! Every argument error of a solve: invalid arguments are rejected before anything is
//! computed, with a message that names the offending value. Failures mid-run are in
//! `failures.rs`.

mod common;

use odeflow::solve::{solve, solve_split, AdaptiveOptions, SaveAt, SolveOptions, Stepping};
use odeflow::systems::{Pendulum, SystemField};
use odeflow::{ArgError, Batch, Method, SolveError};

fn decay() -> impl FnMut(f64, &Batch<f64>, &mut Batch<f64>) {
    |_t, y, dy| {
        for (d, v) in dy.as_mut_slice().iter_mut().zip(y.as_slice()) {
            *d = -v;
        }
    }
}

/// Solves y' = −y from 1 with `method`, expecting an argument error.
fn arg_error(method: &str, opts: &SolveOptions) -> ArgError {
    let mut f = decay();
    match solve(
        &common::method(method),
        &mut f,
        &Batch::from_row(&[1.0]),
        opts,
    ) {
        Err(SolveError::Invalid(e)) => e,
        Err(e) => panic!("expected an argument error, got {e}"),
        Ok(_) => panic!("expected an argument error, the solve succeeded"),
    }
}

#[test]
fn bad_step_sizes() {
    for h in [0.0, -0.1, f64::NAN, f64::INFINITY] {
        let e = arg_error("rk4", &SolveOptions::fixed(0.0, 1.0, h));
        assert!(
            matches!(e, ArgError::NonPositiveStep(v) if v.to_bits() == h.to_bits()),
            "{e:?}"
        );
        assert!(e.to_string().contains(&h.to_string()), "{e}");
    }
    let e = arg_error("rk4", &SolveOptions::steps(0.0, 1.0, 0));
    assert_eq!(e, ArgError::ZeroSteps);
    assert!(e.to_string().contains("got 0"), "{e}");
    // A first step for adaptive stepping is checked too.
    let mut a = AdaptiveOptions::new(1e-6, 1e-6);
    a.h0 = Some(-1e-3);
    let opts = SolveOptions {
        stepping: Stepping::Adaptive(a),
        ..SolveOptions::adaptive(0.0, 1.0, 1.0, 1.0)
    };
    assert_eq!(arg_error("dopri5", &opts), ArgError::NonPositiveStep(-1e-3));
}

#[test]
fn bad_tolerances() {
    for (rtol, atol, name, value) in [
        (0.0, 1e-6, "rtol", 0.0),
        (-1e-6, 1e-6, "rtol", -1e-6),
        (f64::NAN, 1e-6, "rtol", f64::NAN),
        (1e-6, 0.0, "atol", 0.0),
        (1e-6, f64::NAN, "atol", f64::NAN),
        (1e-6, f64::INFINITY, "atol", f64::INFINITY),
    ] {
        let e = arg_error("dopri5", &SolveOptions::adaptive(0.0, 1.0, rtol, atol));
        match &e {
            ArgError::BadTolerance { name: n, value: v } => {
                assert_eq!(*n, name);
                assert_eq!(v.to_bits(), value.to_bits());
            }
            _ => panic!("{e:?}"),
        }
        let msg = e.to_string();
        assert!(
            msg.contains(name) && msg.contains(&value.to_string()),
            "{msg}"
        );
    }
}

#[test]
fn bad_adaptive_settings_name_the_setting() {
    let with = |edit: fn(&mut AdaptiveOptions)| {
        let mut a = AdaptiveOptions::new(1e-6, 1e-6);
        edit(&mut a);
        SolveOptions {
            stepping: Stepping::Adaptive(a),
            ..SolveOptions::adaptive(0.0, 1.0, 1.0, 1.0)
        }
    };
    for (opts, name) in [
        (with(|a| a.min_step = f64::NAN), "min_step"),
        (with(|a| a.min_step = -1.0), "min_step"),
        (with(|a| a.max_step = 0.0), "max_step"),
        (with(|a| a.controller.safety = 1.5), "safety"),
        (with(|a| a.controller.factor_min = 0.0), "factor_min"),
        (with(|a| a.controller.factor_max = 0.5), "factor_max"),
        (with(|a| a.controller.alpha = 0.0), "alpha/beta"),
    ] {
        let e = arg_error("dopri5", &opts);
        assert!(
            matches!(&e, ArgError::Invalid { name: n, .. } if n == name),
            "{e:?}"
        );
        assert!(e.to_string().starts_with(name), "{e}");
    }
}

#[test]
fn bad_times() {
    let e = arg_error("rk4", &SolveOptions::fixed(0.5, 0.5, 0.1));
    assert_eq!(e, ArgError::EmptyInterval(0.5));
    assert!(e.to_string().contains("0.5"), "{e}");
    for (t0, t1, name) in [
        (f64::NAN, 1.0, "t0"),
        (0.0, f64::NAN, "t1"),
        (0.0, f64::INFINITY, "t1"),
        (f64::NEG_INFINITY, 0.0, "t0"),
    ] {
        let e = arg_error("rk4", &SolveOptions::fixed(t0, t1, 0.1));
        assert!(
            matches!(&e, ArgError::NonFiniteTime { name: n, .. } if *n == name),
            "{e:?}"
        );
        let shown = if name == "t0" { t0 } else { t1 };
        assert!(
            e.to_string().contains(name) && e.to_string().contains(&shown.to_string()),
            "{e}"
        );
    }
}

#[test]
fn bad_save_times() {
    for method in ["rk4", "dopri5"] {
        let base = if method == "rk4" {
            SolveOptions::fixed(0.0, 1.0, 0.1)
        } else {
            SolveOptions::adaptive(0.0, 1.0, 1e-6, 1e-6)
        };
        let e = arg_error(method, &base.clone().save(SaveAt::Times(vec![])));
        assert_eq!(e, ArgError::EmptySaveTimes);

        let e = arg_error(
            method,
            &base.clone().save(SaveAt::Times(vec![0.1, 0.5, 0.3])),
        );
        assert_eq!(
            e,
            ArgError::NonMonotoneSaveTimes {
                index: 2,
                value: 0.3,
                previous: 0.5
            }
        );
        let msg = e.to_string();
        assert!(
            msg.contains("t_eval[2] = 0.3") && msg.contains("0.5"),
            "{msg}"
        );
        // A repeated time is not monotone either.
        let e = arg_error(method, &base.clone().save(SaveAt::Times(vec![0.1, 0.1])));
        assert!(
            matches!(e, ArgError::NonMonotoneSaveTimes { index: 1, .. }),
            "{e:?}"
        );

        for (ts, index, value) in [
            (vec![0.2, 1.5], 1, 1.5),
            (vec![-0.1], 0, -0.1),
            (vec![f64::NAN], 0, f64::NAN),
        ] {
            let e = arg_error(method, &base.clone().save(SaveAt::Times(ts)));
            match &e {
                ArgError::SaveTimeOutOfRange {
                    index: i,
                    value: v,
                    t0,
                    t1,
                } => {
                    assert_eq!(
                        (*i, v.to_bits(), *t0, *t1),
                        (index, value.to_bits(), 0.0, 1.0)
                    );
                }
                _ => panic!("{e:?}"),
            }
            assert!(
                e.to_string()
                    .contains(&format!("t_eval[{index}] = {value}")),
                "{e}"
            );
        }
    }
    // Backwards: save times must decrease, and ascending ones are rejected.
    let back = SolveOptions::fixed(1.0, 0.0, 0.1);
    let e = arg_error("rk4", &back.clone().save(SaveAt::Times(vec![0.2, 0.8])));
    assert_eq!(
        e,
        ArgError::NonMonotoneSaveTimes {
            index: 1,
            value: 0.8,
            previous: 0.2
        }
    );
    let e = arg_error("rk4", &back.save(SaveAt::Times(vec![0.8, 1.2])));
    assert!(
        matches!(e, ArgError::SaveTimeOutOfRange { index: 1, .. }),
        "{e:?}"
    );
}

#[test]
fn non_finite_initial_state_names_index_and_value() {
    let y0 = Batch::from_vec(2, 3, vec![1.0, 2.0, 3.0, 4.0, 5.0, f64::NAN]).unwrap();
    let mut f = decay();
    for method in ["rk4", "dopri5", "implicit-midpoint"] {
        let opts = if method == "dopri5" {
            SolveOptions::adaptive(0.0, 1.0, 1e-6, 1e-6)
        } else {
            SolveOptions::fixed(0.0, 1.0, 0.1)
        };
        let e = solve(&common::method(method), &mut f, &y0, &opts).unwrap_err();
        match &e {
            SolveError::Invalid(ArgError::NonFiniteInitialState { index, value }) => {
                assert_eq!(*index, 5);
                assert!(value.is_nan());
            }
            _ => panic!("{e}"),
        }
        assert!(
            e.to_string().contains("index 5") && e.to_string().contains("NaN"),
            "{e}"
        );
    }
    let y0 = Batch::from_row(&[0.0, f64::NEG_INFINITY]);
    let e = solve_split(
        &common::method("verlet"),
        &mut SystemField(Pendulum),
        &y0,
        &SolveOptions::fixed(0.0, 1.0, 0.1),
    )
    .unwrap_err();
    assert!(
        matches!(e, SolveError::Invalid(ArgError::NonFiniteInitialState { index: 1, value }) if value == f64::NEG_INFINITY),
        "{e}"
    );
    assert!(e.to_string().contains("-inf"), "{e}");
}

#[test]
fn unknown_method_lists_the_known_ones() {
    let e = Method::from_name("rk5").unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("'rk5'"), "{msg}");
    for known in [
        "euler",
        "rk4",
        "dopri5",
        "tsit5",
        "verlet",
        "verlet6",
        "symplectic-euler-kd",
        "implicit-midpoint",
    ] {
        assert!(msg.contains(known), "{known} missing from: {msg}");
    }
    // Aliases resolve.
    assert_eq!(
        Method::from_name("dormand-prince").unwrap().name(),
        "dopri5"
    );
    assert_eq!(Method::from_name("leapfrog").unwrap().name(), "verlet");
}

#[test]
fn methods_used_the_wrong_way() {
    // Adaptive stepping needs an embedded pair.
    for method in ["euler", "rk4", "ssprk3"] {
        let e = arg_error(method, &SolveOptions::adaptive(0.0, 1.0, 1e-6, 1e-6));
        assert!(
            matches!(&e, ArgError::MethodUnsuited { method: m, .. } if m == method),
            "{e:?}"
        );
        let msg = e.to_string();
        assert!(
            msg.contains(method) && msg.contains("dopri5") && msg.contains("embedded"),
            "{msg}"
        );
    }
    let adaptive = SolveOptions::adaptive(0.0, 1.0, 1e-6, 1e-6);
    let y0 = Batch::from_row(&[0.0, 1.0]);
    for method in ["verlet", "implicit-midpoint"] {
        let e = solve_split(
            &common::method(method),
            &mut SystemField(Pendulum),
            &y0,
            &adaptive,
        )
        .unwrap_err();
        assert!(
            matches!(&e, SolveError::Invalid(ArgError::MethodUnsuited { method: m, .. }) if m == method),
            "{e}"
        );
        assert!(e.to_string().contains("fixed-step"), "{e}");
    }
    // Splitting methods need a split field.
    let mut f = decay();
    let e = solve(
        &common::method("verlet4"),
        &mut f,
        &Batch::from_row(&[1.0]),
        &SolveOptions::fixed(0.0, 1.0, 0.1),
    )
    .unwrap_err();
    assert!(
        matches!(&e, SolveError::Invalid(ArgError::MethodUnsuited { method, .. }) if method == "verlet4"),
        "{e}"
    );
    assert!(e.to_string().contains("solve_split"), "{e}");
}
