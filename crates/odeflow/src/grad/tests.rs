//! Gradient methods against finite differences and against each other.

use super::toy_field::TanhField;
use super::*;
use crate::field::Parameterized;
use crate::state::Batch;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn setup(seed: u64) -> (TanhField<f64>, Batch<f64>, Batch<f64>) {
    let field = TanhField::random(3, 1.5, seed);
    let mut rng = ChaCha8Rng::seed_from_u64(seed + 100);
    let y0 = Batch::from_vec(4, 3, (0..12).map(|_| rng.random_range(-1.0..1.0)).collect()).unwrap();
    let w = Batch::from_vec(4, 3, (0..12).map(|_| rng.random_range(-1.0..1.0)).collect()).unwrap();
    (field, y0, w)
}

/// L = Σ w ⊙ y(t₁): its cotangent is w.
fn loss(
    method: &Method,
    opts: &SolveOptions,
    field: &mut TanhField<f64>,
    y0: &Batch<f64>,
    w: &Batch<f64>,
) -> f64 {
    let sol = solve(method, &mut FieldRhs(field), y0, opts).unwrap();
    sol.y_final.dot(w)
}

fn grads(
    method: &Method,
    grad: GradientMethod,
    opts: &SolveOptions,
    field: &mut TanhField<f64>,
    y0: &Batch<f64>,
    w: &Batch<f64>,
) -> (Vec<f64>, Vec<f64>, GradStats) {
    let mut gs = GradSolver::new(method.clone(), grad, opts.clone()).unwrap();
    gs.forward(field, y0).unwrap();
    let mut gt = field.zero_grad();
    let gy0 = gs.backward(field, w, &mut gt).unwrap();
    (gy0.into_vec(), gt, gs.stats())
}

fn rel(a: &[f64], b: &[f64]) -> f64 {
    let num: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).powi(2))
        .sum::<f64>()
        .sqrt();
    let den: f64 = b.iter().map(|y| y * y).sum::<f64>().sqrt();
    num / den
}

fn finite_differences(
    method: &Method,
    opts: &SolveOptions,
    field: &TanhField<f64>,
    y0: &Batch<f64>,
    w: &Batch<f64>,
) -> (Vec<f64>, Vec<f64>) {
    let eps = 1e-6;
    let mut gt = Vec::new();
    for i in 0..field.num_params() {
        let mut fp = field.clone();
        fp.params_mut()[i] += eps;
        let mut fm = field.clone();
        fm.params_mut()[i] -= eps;
        gt.push(
            (loss(method, opts, &mut fp, y0, w) - loss(method, opts, &mut fm, y0, w)) / (2.0 * eps),
        );
    }
    let mut gy = Vec::new();
    for i in 0..y0.len() {
        let mut yp = y0.clone();
        yp.as_mut_slice()[i] += eps;
        let mut ym = y0.clone();
        ym.as_mut_slice()[i] -= eps;
        let mut f = field.clone();
        gy.push(
            (loss(method, opts, &mut f, &yp, w) - loss(method, opts, &mut f, &ym, w)) / (2.0 * eps),
        );
    }
    (gy, gt)
}

#[test]
fn backprop_matches_finite_differences_for_fixed_step_methods() {
    for name in [
        "euler", "midpoint", "rk4", "rk4-38", "dopri5", "tsit5", "bosh3", "ssprk3",
    ] {
        let method = Method::from_name(name).unwrap();
        let opts = SolveOptions::steps(0.0, 1.0, 7);
        let (mut field, y0, w) = setup(1);
        let (gy, gt, stats) = grads(
            &method,
            GradientMethod::Backprop,
            &opts,
            &mut field,
            &y0,
            &w,
        );
        let (fy, ft) = finite_differences(&method, &opts, &field, &y0, &w);
        let (ey, et) = (rel(&gy, &fy), rel(&gt, &ft));
        assert!(
            ey < 1e-6 && et < 1e-6,
            "{name}: rel err dL/dy0 {ey:e}, dL/dθ {et:e}"
        );
        assert_eq!(stats.backward_steps, 7);
    }
}

#[test]
fn backprop_backwards_in_time_matches_finite_differences() {
    let method = Method::from_name("rk4").unwrap();
    let opts = SolveOptions::fixed(1.0, -0.5, 0.2);
    let (mut field, y0, w) = setup(2);
    let (gy, gt, _) = grads(
        &method,
        GradientMethod::Backprop,
        &opts,
        &mut field,
        &y0,
        &w,
    );
    let (fy, ft) = finite_differences(&method, &opts, &field, &y0, &w);
    assert!(rel(&gy, &fy) < 1e-6 && rel(&gt, &ft) < 1e-6);
}

#[test]
fn adaptive_backprop_and_adjoint_agree_at_tight_tolerance() {
    let method = Method::from_name("dopri5").unwrap();
    let (mut field, y0, w) = setup(3);
    let tight = SolveOptions::adaptive(0.0, 1.0, 1e-11, 1e-11);
    let (by, bt, _) = grads(
        &method,
        GradientMethod::Backprop,
        &tight,
        &mut field,
        &y0,
        &w,
    );
    let mut errs = Vec::new();
    for tol in [1e-3, 1e-5, 1e-7, 1e-9] {
        let opts = SolveOptions::adaptive(0.0, 1.0, tol, tol);
        let (ay, at, stats) = grads(
            &method,
            GradientMethod::Adjoint(AdjointOptions::default()),
            &opts,
            &mut field,
            &y0,
            &w,
        );
        assert!(stats.backward_nfe > 0);
        errs.push(rel(&at, &bt).max(rel(&ay, &by)));
    }
    for k in 1..errs.len() {
        assert!(
            errs[k] < errs[k - 1],
            "adjoint error did not shrink with the tolerance: {errs:?}"
        );
    }
    assert!(
        errs[3] < 1e-7,
        "adjoint at tol 1e-9 is off by {:e}",
        errs[3]
    );
}

#[test]
fn adjoint_seminorm_takes_no_more_steps_and_agrees() {
    let method = Method::from_name("dopri5").unwrap();
    let (mut field, y0, w) = setup(4);
    let opts = SolveOptions::adaptive(0.0, 2.0, 1e-6, 1e-6);
    let full = AdjointOptions {
        seminorm: false,
        ..Default::default()
    };
    let semi = AdjointOptions {
        seminorm: true,
        ..Default::default()
    };
    let (_, g_full, s_full) = grads(
        &method,
        GradientMethod::Adjoint(full),
        &opts,
        &mut field,
        &y0,
        &w,
    );
    let (_, g_semi, s_semi) = grads(
        &method,
        GradientMethod::Adjoint(semi),
        &opts,
        &mut field,
        &y0,
        &w,
    );
    assert!(
        s_semi.backward_steps <= s_full.backward_steps,
        "{} > {}",
        s_semi.backward_steps,
        s_full.backward_steps
    );
    assert!(rel(&g_semi, &g_full) < 1e-4);
}

fn fit_slope(xs: &[f64], ys: &[f64]) -> f64 {
    let n = xs.len() as f64;
    let (lx, ly): (Vec<f64>, Vec<f64>) = (
        xs.iter().map(|x| x.ln()).collect(),
        ys.iter().map(|y| y.ln()).collect(),
    );
    let (mx, my) = (lx.iter().sum::<f64>() / n, ly.iter().sum::<f64>() / n);
    let cov: f64 = lx.iter().zip(&ly).map(|(x, y)| (x - mx) * (y - my)).sum();
    let var: f64 = lx.iter().map(|x| (x - mx).powi(2)).sum();
    cov / var
}

/// Euler's reversible gradient error falls like 1/N. Heun's falls at least like 1/N² (Sander
/// et al.'s bound); for a field smooth in time it is even 1/N³ (measured slope −3.0): Heun has
/// even order, so the leading local errors of Φ₋ₕ∘Φₕ cancel (`h³C − h³C`), leaving O(h⁴)
/// per step. Fields whose weights are only piecewise smooth in depth show the slope −2.
#[test]
fn reversible_error_falls_with_steps_at_order_one_for_euler_and_two_for_heun() {
    for (name, lo, hi) in [("euler", -1.2, -0.8), ("heun", -3.3, -1.8)] {
        let method = Method::from_name(name).unwrap();
        let (mut field, y0, w) = setup(5);
        let ns = [16usize, 32, 64, 128, 256];
        let mut errs = Vec::new();
        for &n in &ns {
            let opts = SolveOptions::steps(0.0, 1.0, n);
            let (_, bt, _) = grads(
                &method,
                GradientMethod::Backprop,
                &opts,
                &mut field,
                &y0,
                &w,
            );
            let (_, rt, stats) = grads(
                &method,
                GradientMethod::Reversible,
                &opts,
                &mut field,
                &y0,
                &w,
            );
            assert_eq!(
                stats.tapes_peak,
                method.tableau().unwrap().stages(),
                "reversible memory must not grow with N"
            );
            errs.push(rel(&rt, &bt));
        }
        let xs: Vec<f64> = ns.iter().map(|&n| n as f64).collect();
        let slope = fit_slope(&xs, &errs);
        assert!(
            slope > lo && slope < hi,
            "{name}: slope {slope:.3} (errors {errs:?})"
        );
    }
}

#[test]
fn reversible_is_exact_for_a_field_constant_in_y() {
    // f(t, y) = tanh(b) does not depend on y: reverse steps reconstruct exactly, so the
    // gradient equals backprop to round-off.
    let method = Method::from_name("heun").unwrap();
    let (mut field, y0, w) = setup(6);
    let d = 3;
    for p in &mut field.params_mut()[..2 * d * d] {
        *p = 0.0;
    }
    let opts = SolveOptions::steps(0.0, 1.0, 10);
    let (by, bt, _) = grads(
        &method,
        GradientMethod::Backprop,
        &opts,
        &mut field,
        &y0,
        &w,
    );
    let (ry, rt, _) = grads(
        &method,
        GradientMethod::Reversible,
        &opts,
        &mut field,
        &y0,
        &w,
    );
    assert!(rel(&rt, &bt) < 1e-13 && rel(&ry, &by) < 1e-13);
}

#[test]
fn invalid_combinations_are_typed_errors() {
    let opts = SolveOptions::adaptive(0.0, 1.0, 1e-6, 1e-6);
    let e = GradSolver::<Batch<f64>, TanhField<f64>>::new(
        Method::from_name("dopri5").unwrap(),
        GradientMethod::Reversible,
        opts.clone(),
    );
    assert!(e.err().unwrap().to_string().contains("fixed grid"));
    let e = GradSolver::<Batch<f64>, TanhField<f64>>::new(
        Method::from_name("verlet").unwrap(),
        GradientMethod::Backprop,
        SolveOptions::steps(0.0, 1.0, 4),
    );
    assert!(e.err().unwrap().to_string().contains("verlet"));
    let e = GradSolver::<Batch<f64>, TanhField<f64>>::new(
        Method::from_name("rk4").unwrap(),
        GradientMethod::Backprop,
        opts,
    );
    assert!(e.err().unwrap().to_string().contains("embedded"));
    assert!(GradientMethod::from_name("tape")
        .unwrap_err()
        .to_string()
        .contains("backprop, adjoint, reversible"));
}

#[test]
fn backward_before_forward_is_an_error() {
    let (mut field, _y0, w) = setup(7);
    let mut gs = GradSolver::new(
        Method::from_name("euler").unwrap(),
        GradientMethod::Backprop,
        SolveOptions::steps(0.0, 1.0, 3),
    )
    .unwrap();
    let mut gt = field.zero_grad();
    assert!(gs.backward(&mut field, &w, &mut gt).is_err());
}

#[test]
fn adaptive_backprop_is_the_exact_adjoint_of_the_accepted_steps() {
    // With the accepted step sizes frozen, an adaptive solve is a fixed-grid solve on its own
    // grid: stepping exactly onto those times with one step each must give the same gradient,
    // and it must match finite differences of that fixed-grid solve.
    for name in ["dopri5", "bosh3", "heun-euler", "fehlberg2", "tsit5"] {
        let method = Method::from_name(name).unwrap();
        let (mut field, y0, w) = setup(8);
        let adaptive = SolveOptions::adaptive(0.0, 1.5, 1e-4, 1e-4);
        let mut gs = GradSolver::new(method.clone(), GradientMethod::Backprop, adaptive).unwrap();
        gs.forward(&mut field, &y0).unwrap();
        let mut ga = field.zero_grad();
        let gya = gs.backward(&mut field, &w, &mut ga).unwrap();
        let times: Vec<f64> = gs.accepted_steps().iter().map(|r| r.t + r.h).collect();
        assert!(times.len() > 3, "{name}: only {} steps", times.len());
        let fixed =
            SolveOptions::fixed(0.0, 1.5, 10.0).save(crate::solve::SaveAt::Times(times.clone()));
        assert_eq!(
            crate::solve::fixed_grid(&fixed).unwrap().len(),
            times.len() + 1
        );
        let (gyf, gf, _) = grads(
            &method,
            GradientMethod::Backprop,
            &fixed,
            &mut field,
            &y0,
            &w,
        );
        let (e1, e2) = (rel(&ga, &gf), rel(gya.as_slice(), &gyf));
        assert!(
            e1 < 1e-12 && e2 < 1e-12,
            "{name}: adaptive vs frozen-grid backprop differ: {e1:e} {e2:e}, {} steps",
            times.len()
        );
        let (fy, ft) = finite_differences(&method, &fixed, &field, &y0, &w);
        assert!(
            rel(&gf, &ft) < 1e-6 && rel(&gyf, &fy) < 1e-6,
            "{name}: frozen-grid backprop vs FD"
        );
    }
}
