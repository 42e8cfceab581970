//! The defining property against reference solutions: the method applied to the truncated
//! IMDE reproduces the exact flow, with the local error shrinking as `h^{K+2}`.

use super::{dist, loglog_slope, reference_flow, sci, tab};
use crate::analysis::imde::{ImdeField, ModifiedSeries, Workspace};
use crate::solve::{solve, Method, SolveOptions};
use crate::state::Batch;
use crate::systems::{DampedCubic, Pendulum, System, VanDerPol};
use crate::tableau::catalogue::EXPLICIT;

/// For Euler, `Φ_{h,f_h}(y) = y + h f_h(y) = φ_h(y)`: the IMDE is the difference quotient of
/// the exact flow, and the truncated series converges to it as K grows.
fn euler_limit<S: System + Clone>(sys: &S, h: f64, y: &[f64]) -> Vec<f64> {
    let flow = reference_flow(sys, h, y);
    let quotient: Vec<f64> = flow.iter().zip(y).map(|(p, q)| (p - q) / h).collect();
    let tableau = tab("euler");
    let mut errors = Vec::new();
    let mut ws = Workspace::new();
    for k in 0..=10 {
        let series = ModifiedSeries::inverse(tableau, k).unwrap();
        let mut out = vec![0.0; y.len()];
        series.eval_into(sys, h, y, &mut out, &mut ws).unwrap();
        errors.push(dist(&out, &quotient));
    }
    errors
}

#[test]
fn euler_imde_converges_to_the_flow_difference_quotient() {
    let pendulum = euler_limit(&Pendulum, 0.04, &[1.0, 0.5]);
    let cubic = euler_limit(&DampedCubic, 0.02, &[1.0, -0.5]);
    for (name, errors) in [("pendulum", &pendulum), ("damped cubic", &cubic)] {
        eprintln!("{name}: {}", sci(errors));
        // The error never grows with K, and every two orders gain at least a factor 20, until
        // the rounding floor of the reference (about 1e-13 after the division by h).
        for k in 0..errors.len() - 2 {
            if errors[k] > 1e-11 {
                assert!(
                    errors[k + 1] < errors[k] && errors[k + 2] < errors[k] / 20.0,
                    "{name}: K = {k}: {}",
                    sci(errors)
                );
            }
        }
        assert!(
            errors[0] > 1e-2,
            "{name}: f alone is far off: {}",
            sci(errors)
        );
        assert!(errors[10] < 1e-12, "{name}: {}", sci(errors));
    }
}

/// Local errors `|Φ_h(f_h^{[K]})(y) − φ_h(y)|` of one step of the solver applied to
/// [`ImdeField`], for the four smallest steps `h = 0.2 · 2^{−j/2}` (`j ≤ 12`) whose error is
/// still above 1e-12 (the reference and the step itself are accurate to about 1e-15).
fn local_errors<S: System + Clone>(
    sys: &S,
    method: &str,
    order: usize,
    y: &[f64],
) -> (Vec<f64>, Vec<f64>) {
    let series = ModifiedSeries::inverse(tab(method), order).unwrap();
    let solver = Method::from_name(method).unwrap();
    let (mut hs, mut errs) = (Vec::new(), Vec::new());
    for j in 0..13 {
        let h = 0.2 * f64::powf(2.0, -(j as f64) / 2.0);
        let mut field = ImdeField::new(sys.clone(), series.clone(), h).unwrap();
        let y0 = Batch::from_row(y);
        field.check(&y0).unwrap();
        let one_step = solve(&solver, &mut field, &y0, &SolveOptions::steps(0.0, h, 1)).unwrap();
        let err = dist(one_step.y_final.as_slice(), &reference_flow(sys, h, y));
        if err > 1e-12 {
            hs.push(h);
            errs.push(err);
        }
    }
    let keep = hs.len().saturating_sub(4);
    (hs.split_off(keep), errs.split_off(keep))
}

#[test]
fn every_catalogue_method_on_its_imde_matches_the_flow_to_order_k_plus_2() {
    // K ≥ p − 1 so that f_{K+1} ≠ 0 and the error is exactly O(h^{K+2}) (below that, the
    // vanishing terms of an order-p method make it O(h^{p+1})).
    let y = [0.6, 0.9];
    let mut rows = Vec::new();
    for t in EXPLICIT.iter() {
        let p = t.order();
        let k0 = (p.max(3) - 1).max(2);
        // Tsitouras minimised tsit5's sixth-order error coefficients, so its f₆ is tiny and
        // the order-5 IMDE is still pre-asymptotic at errors of 1e-12 (slope 7.45 there);
        // K = 6 passes through f₆ and shows the clean slope 8 instead.
        let second = if t.name() == "tsit5" { k0 + 2 } else { k0 + 1 };
        for k in [k0, second] {
            let (hs, errs) = local_errors(&Pendulum, t.name(), k, &y);
            assert_eq!(hs.len(), 4, "{} K={k}: {}", t.name(), sci(&errs));
            let slope = loglog_slope(&hs, &errs);
            rows.push(format!(
                "{} K={k}: slope {slope:.3} errors {}",
                t.name(),
                sci(&errs)
            ));
            assert!(
                (slope - (k + 2) as f64).abs() < 0.3,
                "{} with the order-{k} IMDE: slope {slope:.3}, expected {} ({})",
                t.name(),
                k + 2,
                sci(&errs)
            );
        }
    }
    eprintln!("{}", rows.join("\n"));
}

#[test]
fn integrating_the_imde_with_many_steps_follows_the_exact_flow() {
    // Over S steps the global error of the method applied to the order-K IMDE is
    // O(h^{K+1}), against O(h^p) for the method applied to f.
    let sys = VanDerPol::default();
    let y0 = [1.0, 0.5];
    let t_end = 1.0;
    let exact = reference_flow(&sys, t_end, &y0);
    let tableau = tab("heun");
    let method = Method::from_name("heun").unwrap();
    let mut plain = Vec::new();
    let mut modified = Vec::new();
    for steps in [10usize, 20, 40] {
        let h = t_end / steps as f64;
        let opts = SolveOptions::steps(0.0, t_end, steps);
        let y = Batch::from_row(&y0);
        let mut f = crate::systems::SystemField(sys);
        let sol = solve(&method, &mut f, &y, &opts).unwrap();
        plain.push(dist(sol.y_final.as_slice(), &exact));
        let mut g = ImdeField::inverse(sys, tableau, h, 4).unwrap();
        let sol = solve(&method, &mut g, &y, &opts).unwrap();
        modified.push(dist(sol.y_final.as_slice(), &exact));
    }
    let hs = [0.1, 0.05, 0.025];
    let (sp, sm) = (loglog_slope(&hs, &plain), loglog_slope(&hs, &modified));
    assert!(
        (sp - 2.0).abs() < 0.3,
        "heun on f: slope {sp} {}",
        sci(&plain)
    );
    assert!(
        (sm - 5.0).abs() < 0.4,
        "heun on IMDE₄: slope {sm} {}",
        sci(&modified)
    );
    assert!(
        modified[2] < 1e-3 * plain[2],
        "{} vs {}",
        sci(&modified),
        sci(&plain)
    );
}

#[test]
fn imde_field_evaluates_rows_independently_and_flags_bad_widths() {
    use crate::solve::Rhs;
    let mut g = ImdeField::inverse(Pendulum, tab("midpoint"), 0.1, 3).unwrap();
    let y = Batch::from_rows(&[vec![0.2, 0.3], vec![-1.0, 2.0]]).unwrap();
    let mut dy = Batch::zeros(2, 2);
    g.eval(0.0, &y, &mut dy);
    let series = ModifiedSeries::inverse(tab("midpoint"), 3).unwrap();
    for r in 0..2 {
        let want = series.eval(&Pendulum, 0.1, y.row(r)).unwrap();
        assert_eq!(dy.row(r), want.as_slice());
    }
    let wide = Batch::zeros(1, 3);
    assert!(g.check(&wide).is_err());
    let mut out = Batch::zeros(1, 3);
    g.eval(0.0, &wide, &mut out);
    assert!(out.as_slice().iter().all(|v| v.is_nan()));
    assert!(ImdeField::inverse(Pendulum, tab("rk4"), f64::INFINITY, 2).is_err());
}

#[test]
fn exact_flow_of_the_modified_equation_matches_one_step_to_order_k_plus_2() {
    // Backward error analysis: φ_{h, f̃^{[K]}}(y) − Φ_{h,f}(y) = O(h^{K+2}). The flow of the
    // truncated modified equation is integrated with rk4 in steps of at most 5e-4.
    let y = [0.6, 0.9];
    let rk4 = Method::from_name("rk4").unwrap();
    for (name, k) in [("euler", 2), ("heun", 3), ("rk3", 2), ("rk4", 4)] {
        let series = ModifiedSeries::forward(tab(name), k).unwrap();
        let solver = Method::from_name(name).unwrap();
        let (mut hs, mut errs) = (Vec::new(), Vec::new());
        for j in 0..11 {
            let h = 0.2 * f64::powf(2.0, -(j as f64) / 2.0);
            let y0 = Batch::from_row(&y);
            let mut f = crate::systems::SystemField(Pendulum);
            let step = solve(&solver, &mut f, &y0, &SolveOptions::steps(0.0, h, 1)).unwrap();
            let mut modified = ImdeField::new(Pendulum, series.clone(), h).unwrap();
            let n = (h / 5e-4).ceil() as usize;
            let flow = solve(&rk4, &mut modified, &y0, &SolveOptions::steps(0.0, h, n)).unwrap();
            let err = dist(step.y_final.as_slice(), flow.y_final.as_slice());
            if err > 1e-12 {
                hs.push(h);
                errs.push(err);
            }
        }
        let keep = hs.len() - 4;
        let slope = loglog_slope(&hs[keep..], &errs[keep..]);
        assert!(
            (slope - (k + 2) as f64).abs() < 0.3,
            "{name} with the order-{k} modified equation: slope {slope:.3} ({})",
            sci(&errs)
        );
    }
}
