//! Fixed-grid semantics: step counts, the shortened last step, save times stepped onto
//! exactly, `FixedCount`, integration backwards in time, `fixed_grid` itself, and the
//! evaluation counts of fixed-step Runge–Kutta.

mod common;

use common::*;
use odeflow::solve::{fixed_grid, solve, solve_split, SaveAt, SolveOptions, Stepping};
use odeflow::systems::{Kepler, Pendulum, SystemField};
use odeflow::{ArgError, Batch};

fn grid(t0: f64, t1: f64, h: f64) -> Vec<f64> {
    fixed_grid(&SolveOptions::fixed(t0, t1, h)).unwrap()
}

#[test]
fn step_count_is_the_ceiling_with_a_shortened_last_step() {
    for (t0, t1, h, n) in [
        (0.0, 1.0, 0.3, 4),
        (0.0, 1.0, 0.1, 10), // 1/0.1 = 10 up to rounding: no sliver step
        (0.0, 1.0, 0.7, 2),
        (2.0, 5.5, 1.0, 4),
        (-1.0, 1.0, 0.25, 8),
        (0.0, 3.0, 1e-3, 3000),
    ] {
        let g = grid(t0, t1, h);
        assert_eq!(g.len() - 1, n, "[{t0}, {t1}] with h = {h}: {g:?}");
        assert_eq!(g[0], t0);
        assert_eq!(*g.last().unwrap(), t1, "lands exactly on t1");
        for (k, w) in g.windows(2).enumerate() {
            let step = w[1] - w[0];
            if k + 1 < n {
                assert!(
                    (step - h).abs() <= 1e-12 * t1.abs().max(1.0),
                    "step {k}: {step} ≠ {h}"
                );
            } else {
                assert!(step > 0.0 && step <= h * (1.0 + 1e-9), "last step {step}");
            }
        }
    }
    let g = grid(0.0, 1.0, 0.3);
    assert!(
        max_abs_diff(&g, &[0.0, 0.3, 0.6, 0.9, 1.0]) < 1e-15,
        "{g:?}"
    );
}

#[test]
fn a_step_at_least_the_interval_gives_one_step() {
    for h in [1.0, 1.5, 1e6] {
        assert_eq!(grid(0.0, 1.0, h), vec![0.0, 1.0]);
        assert_eq!(grid(1.0, 0.0, h), vec![1.0, 0.0]);
    }
    let m = common::method("rk4");
    let mut f = EXP_SIN.field::<f64>();
    let sol = solve(
        &m,
        &mut f,
        &EXP_SIN.y0(),
        &SolveOptions::fixed(0.0, 0.1, 5.0),
    )
    .unwrap();
    assert_eq!(sol.stats.steps, 1);
    assert_eq!(sol.stats.h_max, 0.1);
}

#[test]
fn fixed_count_gives_equal_steps() {
    for n in [1, 3, 7, 100] {
        let g = fixed_grid(&SolveOptions::steps(0.5, 2.0, n)).unwrap();
        assert_eq!(g.len(), n + 1);
        assert_eq!((g[0], g[n]), (0.5, 2.0));
        for w in g.windows(2) {
            assert!((w[1] - w[0] - 1.5 / n as f64).abs() < 1e-14);
        }
    }
    let m = common::method("heun");
    let mut f = EXP_SIN.field::<f64>();
    let opts = SolveOptions::steps(0.0, 2.0, 7).save(SaveAt::Steps);
    let sol = solve(&m, &mut f, &EXP_SIN.y0(), &opts).unwrap();
    assert_eq!(sol.t, fixed_grid(&opts).unwrap());
    assert_eq!(sol.stats.steps, 7);
    assert_eq!(sol.y.len(), 8);
}

/// Save times become grid points; the state saved there is the state the step lands on.
#[test]
fn save_times_are_stepped_onto_exactly() {
    let saves = vec![0.0, 0.25, 0.333, 0.9, 1.0];
    let opts = SolveOptions::fixed(0.0, 1.0, 0.1).save(SaveAt::Times(saves.clone()));
    let g = fixed_grid(&opts).unwrap();
    for s in &saves {
        assert!(g.contains(s), "{s} missing from {g:?}");
    }
    // Each segment between save times is cut into ceil(len/h) steps.
    assert_eq!(
        g.len() - 1,
        3 /* 0..0.25 */ + 1 /* 0.25..0.333 */ + 6 /* 0.333..0.9 */ + 1 /* 0.9..1 */
    );
    assert!(g
        .windows(2)
        .all(|w| w[1] > w[0] && w[1] - w[0] <= 0.1 + 1e-15));

    for name in ["rk4", "dopri5", "implicit-midpoint"] {
        let m = common::method(name);
        let mut f = EXP_SIN.field::<f64>();
        let sol = solve(&m, &mut f, &EXP_SIN.y0(), &opts).unwrap();
        assert_eq!(sol.t, saves, "{name}");
        assert_eq!(sol.stats.steps, g.len() - 1, "{name}");
        assert_eq!(sol.y[0].as_slice(), EXP_SIN.y0::<f64>().as_slice());
        for (t, y) in sol.t.iter().zip(&sol.y) {
            // h ≤ 0.1: ~2e-3 for the second-order implicit midpoint, ≤ 1e-5 for the others.
            let bound = if name == "implicit-midpoint" {
                5e-3
            } else {
                1e-5
            };
            assert!(
                (scalar(y) - (EXP_SIN.exact)(*t)).abs() < bound,
                "{name} at {t}"
            );
        }
        // Stepping onto 0.9 exactly: the same as solving [0, 0.9] on the same grid.
        let opts_09 =
            SolveOptions::fixed(0.0, 0.9, 0.1).save(SaveAt::Times(vec![0.25, 0.333, 0.9]));
        let sol_09 = solve(&m, &mut f, &EXP_SIN.y0(), &opts_09).unwrap();
        assert_eq!(sol_09.y_final.as_slice(), sol.y[3].as_slice(), "{name}");
    }
    // A save time that is not t0 nor t1 also works for splitting methods.
    let y0 = Batch::from_row(&[0.0, 1.0]);
    let sol = solve_split(
        &common::method("verlet"),
        &mut SystemField(Pendulum),
        &y0,
        &opts,
    )
    .unwrap();
    assert_eq!(sol.t, saves);
    assert_eq!(sol.stats.steps, g.len() - 1);
}

#[test]
fn steps_saves_every_grid_point() {
    let opts = SolveOptions::fixed(0.0, 1.0, 0.3).save(SaveAt::Steps);
    let mut f = EXP_SIN.field::<f64>();
    let sol = solve(&common::method("rk3"), &mut f, &EXP_SIN.y0(), &opts).unwrap();
    assert_eq!(sol.t, fixed_grid(&opts).unwrap());
    assert_eq!(sol.y.len(), 5);
    assert_eq!(sol.y_final, sol.y[4]);
    assert_eq!(sol.t_final, 1.0);
    assert!((sol.stats.h_min - 0.1).abs() < 1e-12 && sol.stats.h_max == 0.3);
}

/// Field evaluations of fixed-step Runge–Kutta: `s` per step, `s − 1` after the first for
/// FSAL tableaus.
#[test]
fn fixed_step_evaluation_counts() {
    for &(name, _) in EXPLICIT_METHODS {
        let m = common::method(name);
        let tab = m.tableau().unwrap();
        let n = 37;
        let mut calls = 0usize;
        let mut f = |t: f64, y: &Batch<f64>, dy: &mut Batch<f64>| {
            calls += 1;
            dy.as_mut_slice()[0] = y.as_slice()[0] * t.cos();
        };
        let sol = solve(&m, &mut f, &EXP_SIN.y0(), &SolveOptions::steps(0.0, 2.0, n)).unwrap();
        let s = tab.stages();
        let expected = if tab.is_fsal() {
            1 + (s - 1) * n
        } else {
            s * n
        };
        assert_eq!(sol.stats.nfe, expected, "{name}");
        assert_eq!(
            calls, expected,
            "{name}: the field was called as often as counted"
        );
        assert_eq!(
            (sol.stats.steps, sol.stats.accepted, sol.stats.rejected),
            (n, n, 0)
        );
    }
}

#[test]
fn fixed_grid_backwards_and_errors() {
    let g = grid(1.0, 0.0, 0.3);
    assert!(
        max_abs_diff(&g, &[1.0, 0.7, 0.4, 0.1, 0.0]) < 1e-15,
        "{g:?}"
    );
    assert_eq!(*g.last().unwrap(), 0.0);
    let opts = SolveOptions::fixed(1.0, 0.0, 0.3).save(SaveAt::Times(vec![0.5]));
    let g = fixed_grid(&opts).unwrap();
    assert!(
        max_abs_diff(&g, &[1.0, 0.7, 0.5, 0.2, 0.0]) < 1e-15,
        "{g:?}"
    );
    assert_eq!(g[2], 0.5, "the save time is a grid point exactly");
    let adaptive = SolveOptions::adaptive(0.0, 1.0, 1e-6, 1e-6);
    let err = fixed_grid(&adaptive).unwrap_err();
    assert!(
        matches!(err, ArgError::Invalid { ref name, .. } if name == "stepping"),
        "{err}"
    );
    assert!(matches!(
        fixed_grid(&SolveOptions::fixed(0.0, 1.0, -0.1)),
        Err(ArgError::NonPositiveStep(h)) if h == -0.1
    ));
}

/// Runge–Kutta backwards: y' = y cos t from t = 2 to 0 hits the exact solution, and the
/// steps are negative.
#[test]
fn explicit_methods_integrate_backwards() {
    for &(name, order) in EXPLICIT_METHODS {
        let m = common::method(name);
        let mut f = EXP_SIN.field::<f64>();
        let y2 = Batch::from_row(&[(EXP_SIN.exact)(2.0)]);
        let n = 400;
        let opts = SolveOptions::steps(2.0, 0.0, n).save(SaveAt::Times(vec![1.5, 0.5, 0.0]));
        let sol = solve(&m, &mut f, &y2, &opts).unwrap();
        assert_eq!(sol.t, vec![1.5, 0.5, 0.0]);
        assert_eq!(sol.stats.steps, n);
        let err = (scalar(&sol.y_final) - 1.0).abs();
        // Global error ≈ C (2/n)^p with C ≤ 2 (the forward errors of the convergence test).
        let bound = 2.0 * (2.0 / n as f64).powi(order as i32);
        assert!(err < bound, "{name}: backwards error {err:e} > {bound:e}");
    }
}

/// Symmetric methods (Störmer–Verlet and its compositions, implicit midpoint) satisfy
/// Φ₋ₕ = Φₕ⁻¹: integrating forward and then backward on the same grid returns to y₀ up to
/// round-off, which checks the backward splitting sub-steps and their times.
#[test]
fn symmetric_methods_retrace_their_steps_backwards() {
    let y0 = Kepler::orbit(0.5);
    for name in ["verlet", "verlet4", "verlet6", "implicit-midpoint"] {
        let m = common::method(name);
        let mut field = SystemField(Kepler);
        let fwd = solve_split(
            &m,
            &mut field,
            &Batch::from_row(&y0),
            &SolveOptions::fixed(0.0, 5.0, 0.01),
        )
        .unwrap();
        let back = solve_split(
            &m,
            &mut field,
            &fwd.y_final,
            &SolveOptions::fixed(5.0, 0.0, 0.01),
        )
        .unwrap();
        let moved = max_abs_diff(fwd.y_final.as_slice(), &y0);
        let err = max_abs_diff(back.y_final.as_slice(), &y0);
        assert!(moved > 0.5, "{name}: the orbit moved");
        let bound = if name == "implicit-midpoint" {
            1e-9
        } else {
            1e-11
        };
        assert!(
            err < bound,
            "{name}: forward then backward misses y0 by {err:e}"
        );
        assert_eq!(back.t_final, 0.0);
    }
    // Symplectic Euler is not symmetric, but its adjoint undoes it: kd backwards = dk⁻¹.
    let m_kd = common::method("symplectic-euler-kd");
    let m_dk = common::method("symplectic-euler-dk");
    let mut field = SystemField(Kepler);
    let fwd = solve_split(
        &m_kd,
        &mut field,
        &Batch::from_row(&y0),
        &SolveOptions::fixed(0.0, 5.0, 0.01),
    )
    .unwrap();
    let back = solve_split(
        &m_dk,
        &mut field,
        &fwd.y_final,
        &SolveOptions::fixed(5.0, 0.0, 0.01),
    )
    .unwrap();
    assert!(max_abs_diff(back.y_final.as_slice(), &y0) < 1e-11);
}

#[test]
fn fixed_stepping_variants_are_reported_in_options() {
    // The public options say what they do.
    let o = SolveOptions::fixed(0.0, 1.0, 0.1);
    assert_eq!(o.stepping, Stepping::FixedStep(0.1));
    assert_eq!(o.save, SaveAt::Final);
    let o = SolveOptions::steps(0.0, 1.0, 10);
    assert_eq!(o.stepping, Stepping::FixedCount(10));
}
