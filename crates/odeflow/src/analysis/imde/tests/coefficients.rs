//! The first terms against elementary-differential formulas, with `f′` and `f″` computed
//! independently (plain `Dual64` and `HyperDual64` instead of the nested duals).
//!
//! Hand derivations from the substitution law `(b ⋆ a)(τ) = e(τ)` with the RK weights
//! `a(•) = 1`, `a([•]) = Σbᵢcᵢ`, `a([•,•]) = Σbᵢcᵢ²`, `a([[•]]) = Σbᵢaᵢⱼcⱼ`:
//!
//! ```text
//! b([•])   = 1/2 − a([•])
//! b([•,•]) = 1/3 − a([•,•]) − 2 a([•]) b([•])
//! b([[•]]) = 1/6 − a([[•]]) − 2 a([•]) b([•])
//! f₁ = b([•]) f′f,    f₂ = b([•,•])/2 f″(f,f) + b([[•]]) f′f′f
//! ```
//!
//! Euler (`a = 0` beyond `•`): `f₁ = ½f′f`, `f₂ = ⅙f″(f,f) + ⅙f′f′f`.
//! Midpoint (`a([•]) = ½, a([•,•]) = ¼, a([[•]]) = 0`): `f₁ = 0`, `f₂ = 1/24 f″(f,f) + ⅙f′f′f`.
//! Heun (`a([•]) = ½, a([•,•]) = ½, a([[•]]) = 0`): `f₁ = 0`, `f₂ = −1/12 f″(f,f) + ⅙f′f′f`.
//! Euler's forward modified equation (GNI IX.1): `f̃₁ = −½f′f`, `f̃₂ = 1/12 f″(f,f) + ⅓f′f′f`.

use super::{f_at, hessian_uv, jvp, tab, Wobbly};
use crate::analysis::imde::{
    imde_terms, modified_equation_terms, report, Expansion, ModifiedSeries,
};
use crate::systems::{DampedCubic, Pendulum};
use crate::tableau::trees::{trees_up_to, Tree};
use crate::ArgError;

const Y: [f64; 3] = [0.4, -0.7, 1.2];

/// `(f′f, f″(f,f), f′f′f)` at `Y`.
fn basic_differentials() -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let f = f_at(&Wobbly, &Y);
    let fpf = jvp(&Wobbly, &Y, &f);
    let fppff = hessian_uv(&Wobbly, &Y, &f, &f);
    let fpfpf = jvp(&Wobbly, &Y, &fpf);
    (fpf, fppff, fpfpf)
}

fn assert_close(got: &[f64], want: &[f64], what: &str) {
    for (g, w) in got.iter().zip(want) {
        assert!(
            (g - w).abs() < 1e-12 * (1.0 + w.abs()),
            "{what}: got {got:?}, want {want:?}"
        );
    }
}

/// `c₁ f″(f,f) + c₂ f′f′f`.
fn combo(c1: f64, c2: f64) -> Vec<f64> {
    let (_, fppff, fpfpf) = basic_differentials();
    fppff
        .iter()
        .zip(&fpfpf)
        .map(|(a, b)| c1 * a + c2 * b)
        .collect()
}

#[test]
fn euler_first_terms() {
    let terms = imde_terms(&Wobbly, tab("euler"), 2, &Y).unwrap();
    let (fpf, _, _) = basic_differentials();
    assert_close(&terms[0], &f_at(&Wobbly, &Y), "f₀ = f");
    let half: Vec<f64> = fpf.iter().map(|v| 0.5 * v).collect();
    assert_close(&terms[1], &half, "euler f₁ = ½f′f");
    assert_close(&terms[2], &combo(1.0 / 6.0, 1.0 / 6.0), "euler f₂");
}

#[test]
fn midpoint_and_heun_first_terms() {
    for (name, c1) in [("midpoint", 1.0 / 24.0), ("heun", -1.0 / 12.0)] {
        let terms = imde_terms(&Wobbly, tab(name), 2, &Y).unwrap();
        assert_close(&terms[1], &[0.0; 3], &format!("{name} f₁ = 0"));
        assert_close(&terms[2], &combo(c1, 1.0 / 6.0), &format!("{name} f₂"));
    }
}

#[test]
fn order_p_methods_have_no_terms_below_p() {
    for name in ["rk3", "ssprk3", "rk4", "rk4-38", "dopri5", "tsit5"] {
        let t = tab(name);
        let p = t.order();
        let terms = imde_terms(&Wobbly, t, p, &Y).unwrap();
        for (k, term) in terms.iter().enumerate().take(p).skip(1) {
            assert!(
                term.iter().all(|v| v.abs() < 1e-13),
                "{name}: f_{k} = {term:?} should vanish"
            );
        }
        let lead = terms[p].iter().map(|v| v.abs()).fold(0.0, f64::max);
        assert!(lead > 1e-6, "{name}: leading term f_{p} = {:?}", terms[p]);
    }
}

#[test]
fn euler_forward_modified_equation_first_terms() {
    let terms = modified_equation_terms(&Wobbly, tab("euler"), 2, &Y).unwrap();
    let (fpf, _, _) = basic_differentials();
    let minus_half: Vec<f64> = fpf.iter().map(|v| -0.5 * v).collect();
    assert_close(&terms[1], &minus_half, "euler f̃₁ = −½f′f");
    assert_close(&terms[2], &combo(1.0 / 12.0, 1.0 / 3.0), "euler f̃₂");
}

#[test]
fn euler_imde_coefficients_are_the_exact_flow_coefficients() {
    // Euler applied to f_h is y + h f_h(y), so f_h = (φ_h − id)/h: b(τ) = 1/γ(τ).
    let series = ModifiedSeries::inverse(tab("euler"), 6).unwrap();
    for group in trees_up_to(7) {
        for t in group {
            let b = series.coefficient(&t).unwrap();
            assert!((b - 1.0 / t.gamma()).abs() < 1e-15, "{}", t.notation());
        }
    }
    assert_eq!(series.coefficients().len(), series.num_trees());
    let big = Tree::graft(vec![Tree::leaf(); 7]);
    assert_eq!(series.coefficient(&big), None);
}

#[test]
fn inverse_and_forward_series_undo_each_other() {
    // For an order-p method, the IMDE starts with −(error term) and the modified equation
    // with +(error term): f_p = −f̃_p.
    for name in ["euler", "midpoint", "heun", "rk3", "rk4", "dopri5"] {
        let t = tab(name);
        let p = t.order();
        let inv = imde_terms(&Pendulum, t, p, &[0.3, 1.1]).unwrap();
        let fwd = modified_equation_terms(&Pendulum, t, p, &[0.3, 1.1]).unwrap();
        let neg: Vec<f64> = fwd[p].iter().map(|v| -v).collect();
        assert_close(&inv[p], &neg, &format!("{name}: f_p = −f̃_p"));
    }
}

#[test]
fn report_collects_value_and_terms() {
    let r = report(
        &Pendulum,
        tab("euler"),
        Expansion::Inverse,
        0.04,
        3,
        &[1.0, 0.5],
    )
    .unwrap();
    assert_eq!(r.field, vec![-10.0 * 0.5f64.sin(), 1.0]);
    assert_eq!(r.terms.len(), 4);
    let direct =
        crate::analysis::imde::imde(&Pendulum, tab("euler"), 0.04, 3, &[1.0, 0.5]).unwrap();
    assert_close(&r.imde, &direct, "report value");
    assert!(r.term_norms.windows(2).all(|w| w[1] < w[0]));
    let json = serde_json::to_value(&r).unwrap();
    for key in [
        "imde",
        "field",
        "order",
        "h",
        "terms",
        "method",
        "expansion",
    ] {
        assert!(json.get(key).is_some(), "missing {key}");
    }
    assert_eq!(json["expansion"], "inverse");
}

#[test]
fn bad_input_is_a_typed_error() {
    let t = tab("euler");
    let e = imde_terms(&DampedCubic, t, 2, &[1.0, 2.0, 3.0]).unwrap_err();
    assert!(matches!(e, ArgError::Shape(_)), "{e}");
    let e = crate::analysis::imde::imde(&DampedCubic, t, f64::NAN, 2, &[1.0, 2.0]).unwrap_err();
    assert!(e.to_string().contains("h = NaN"), "{e}");
    let e =
        crate::analysis::imde::imde(&DampedCubic, t, 0.1, 2, &[1.0, f64::INFINITY]).unwrap_err();
    assert!(e.to_string().contains("y[1] = inf"), "{e}");
    let e = ModifiedSeries::inverse(t, 13).unwrap_err();
    assert!(e.to_string().contains("order = 13"), "{e}");
    let series = ModifiedSeries::inverse(t, 2).unwrap();
    let mut out = [0.0; 3];
    let e = series
        .eval_into(
            &DampedCubic,
            0.1,
            &[1.0, 2.0],
            &mut out,
            &mut Default::default(),
        )
        .unwrap_err();
    assert!(matches!(e, ArgError::Shape(_)), "{e}");
}
