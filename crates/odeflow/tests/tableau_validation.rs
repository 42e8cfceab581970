//! Tableau validation: every malformed tableau is rejected with an error that says what is
//! wrong (and, for a claimed order that is not attained, which rooted tree's order condition
//! fails); a user tableau from TOML is accepted and solves at its order; and a property test
//! over the one-parameter family of explicit two-stage second-order methods.

mod common;

use common::*;
use odeflow::solve::{solve, SolveOptions};
use odeflow::tableau::trees::trees_up_to;
use odeflow::tableau::{catalogue, ButcherTableau, TableauError, TableauFileError, TableauSpec};
use odeflow::Method;
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, RngSeed};

fn spec(name: &str, order: usize, c: &[f64], a: &[&[f64]], b: &[f64]) -> TableauSpec {
    TableauSpec {
        name: name.into(),
        order,
        c: c.to_vec(),
        a: a.iter().map(|r| r.to_vec()).collect(),
        b: b.to_vec(),
        b_embedded: None,
        embedded_order: None,
        dense: None,
        dense_order: None,
    }
}

fn heun() -> TableauSpec {
    spec("heun", 2, &[0.0, 1.0], &[&[], &[1.0]], &[0.5, 0.5])
}

fn rejected(s: TableauSpec) -> TableauError {
    match ButcherTableau::new(s) {
        Err(e) => e,
        Ok(t) => panic!("{} was accepted", t.name()),
    }
}

#[test]
fn non_explicit_tableaus_are_rejected() {
    // A nonzero diagonal entry given as a full square row.
    let e = rejected(spec("implicit-euler", 1, &[1.0], &[&[1.0]], &[1.0]));
    assert_eq!(
        e,
        TableauError::NotExplicit {
            name: "implicit-euler".into(),
            i: 0,
            j: 0,
            value: 1.0
        }
    );
    assert!(e.to_string().contains("a[0][0] = 1"), "{e}");
    // An entry above the diagonal.
    let e = rejected(spec(
        "upper",
        2,
        &[0.0, 1.0],
        &[&[0.0, 0.5], &[1.0, 0.0]],
        &[0.5, 0.5],
    ));
    assert!(
        matches!(e, TableauError::NotExplicit { i: 0, j: 1, value, .. } if value == 0.5),
        "{e:?}"
    );
    // Full square rows with zeros on and above the diagonal are fine.
    let t = ButcherTableau::new(spec(
        "heun",
        2,
        &[0.0, 1.0],
        &[&[0.0, 0.0], &[1.0, 0.0]],
        &[0.5, 0.5],
    ))
    .unwrap();
    assert_eq!(t.a(), &[vec![0.0, 0.0], vec![1.0, 0.0]]);
}

#[test]
fn row_sums_must_equal_the_nodes() {
    let e = rejected(spec("bad-c", 2, &[0.0, 0.6], &[&[], &[0.5]], &[0.0, 1.0]));
    assert_eq!(
        e,
        TableauError::RowSum {
            name: "bad-c".into(),
            i: 1,
            sum: 0.5,
            c: 0.6
        }
    );
    let msg = e.to_string();
    assert!(
        msg.contains("row 1") && msg.contains("0.5") && msg.contains("c[1] = 0.6"),
        "{msg}"
    );
}

#[test]
fn weights_must_sum_to_one() {
    let e = rejected(spec("bad-b", 1, &[0.0, 1.0], &[&[], &[1.0]], &[0.5, 0.6]));
    assert!(
        matches!(e, TableauError::WeightSum { which: "b", sum, .. } if (sum - 1.1).abs() < 1e-15),
        "{e:?}"
    );
    assert!(e.to_string().contains("b sum to 1.1"), "{e}");
}

/// A claimed order that is not attained names the first failing tree, with Φ and 1/γ.
#[test]
fn claimed_order_too_high_names_the_tree() {
    // Heun is order 2: both order-3 conditions fail.
    let mut s = heun();
    s.order = 3;
    let e = rejected(s);
    let TableauError::OrderCondition {
        order,
        tree,
        phi,
        expected,
        ..
    } = &e
    else {
        panic!("{e:?}")
    };
    assert_eq!(*order, 3);
    let order3: Vec<String> = trees_up_to(3)[2].iter().map(|t| t.notation()).collect();
    assert!(
        order3.contains(tree),
        "{tree} is not an order-3 tree: {order3:?}"
    );
    // Φ([[•]]) = Σ bᵢ aᵢⱼ cⱼ = 0 vs 1/6; Φ([•,•]) = Σ bᵢ cᵢ² = 1/2 vs 1/3.
    match tree.as_str() {
        "[[•]]" => assert_eq!((*phi, *expected), (0.0, 1.0 / 6.0)),
        "[•,•]" => assert_eq!((*phi, *expected), (0.5, 1.0 / 3.0)),
        other => panic!("{other}"),
    }
    let msg = e.to_string();
    assert!(
        msg.contains("does not have order 3") && msg.contains(&format!("tree {tree}")),
        "{msg}"
    );

    // Every built-in method claimed one order higher fails on a tree of that order.
    for t in catalogue::EXPLICIT.iter() {
        let mut s = t.spec();
        s.order += 1;
        s.b_embedded = None;
        s.embedded_order = None;
        s.dense = None;
        match rejected(s) {
            TableauError::OrderCondition { tree, order, .. } => {
                let trees = trees_up_to(order);
                assert!(
                    trees[order - 1].iter().any(|t| t.notation() == tree),
                    "{}: {tree}",
                    t.name()
                );
            }
            e => panic!("{}: {e:?}", t.name()),
        }
    }
}

#[test]
fn bad_embedded_weights_are_rejected() {
    let base = || spec("rk2-1", 2, &[0.0, 1.0], &[&[], &[1.0]], &[0.5, 0.5]);
    // Embedded weights that do not sum to 1.
    let mut s = base();
    s.b_embedded = Some(vec![0.9, 0.0]);
    s.embedded_order = Some(1);
    let e = rejected(s);
    assert!(
        matches!(
            e,
            TableauError::WeightSum {
                which: "b_embedded",
                ..
            }
        ),
        "{e:?}"
    );
    // Embedded order claimed too high.
    let mut s = base();
    s.b_embedded = Some(vec![1.0, 0.0]);
    s.embedded_order = Some(2);
    let e = rejected(s);
    assert!(
        matches!(e, TableauError::OrderCondition { order: 2, ref tree, .. } if tree == "[•]"),
        "{e:?}"
    );
    // Wrong length.
    let mut s = base();
    s.b_embedded = Some(vec![1.0]);
    s.embedded_order = Some(1);
    assert_eq!(
        rejected(s),
        TableauError::Size {
            name: "rk2-1".into(),
            what: "b_embedded".into(),
            expected: 2,
            got: 1
        }
    );
    // Weights without an order, an order without weights, order 0.
    let mut s = base();
    s.b_embedded = Some(vec![1.0, 0.0]);
    assert!(
        matches!(rejected(s), TableauError::Invalid { ref reason, .. } if reason.contains("together"))
    );
    let mut s = base();
    s.embedded_order = Some(1);
    assert!(matches!(rejected(s), TableauError::Invalid { .. }));
    let mut s = base();
    s.b_embedded = Some(vec![1.0, 0.0]);
    s.embedded_order = Some(0);
    assert!(
        matches!(rejected(s), TableauError::Invalid { ref reason, .. } if reason.contains("embedded_order"))
    );
}

#[test]
fn wrong_sizes_and_bad_values_are_rejected() {
    let size = |what: &str, expected: usize, got: usize| TableauError::Size {
        name: "x".into(),
        what: what.into(),
        expected,
        got,
    };
    assert_eq!(rejected(spec("x", 1, &[], &[], &[])), size("c", 1, 0));
    assert_eq!(
        rejected(spec("x", 2, &[0.0, 1.0], &[&[]], &[0.5, 0.5])),
        size("a (rows)", 2, 1)
    );
    assert_eq!(
        rejected(spec("x", 2, &[0.0, 1.0], &[&[], &[1.0]], &[1.0])),
        size("b", 2, 1)
    );
    assert_eq!(
        rejected(spec(
            "x",
            2,
            &[0.0, 1.0],
            &[&[], &[1.0, 0.0, 0.0]],
            &[0.5, 0.5]
        )),
        size("a row 1", 1, 3)
    );
    let e = rejected(spec(
        "x",
        2,
        &[0.0, 1.0],
        &[&[], &[1.0, 0.0, 0.0]],
        &[0.5, 0.5],
    ));
    assert!(
        e.to_string().contains("a row 1 has 3 entries, expected 1"),
        "{e}"
    );
    // Order 0, NaN and infinite coefficients.
    assert!(matches!(
        rejected(spec("x", 0, &[0.0], &[&[]], &[1.0])),
        TableauError::Invalid { .. }
    ));
    let e = rejected(spec("x", 1, &[0.0, 1.0], &[&[], &[f64::NAN]], &[0.5, 0.5]));
    assert!(
        matches!(e, TableauError::Invalid { ref reason, .. } if reason.contains("NaN")),
        "{e:?}"
    );
    let e = rejected(spec("x", 1, &[0.0], &[&[]], &[f64::INFINITY]));
    assert!(e.to_string().contains("inf"), "{e}");
}

#[test]
fn bad_dense_output_is_rejected() {
    let with_dense = |dense: Vec<Vec<f64>>, order: usize| {
        let mut s = heun();
        s.dense = Some(dense);
        s.dense_order = Some(order);
        s
    };
    // Linear interpolation bᵢ(θ) = θ bᵢ is a valid first-order dense output...
    let t = ButcherTableau::new(with_dense(vec![vec![0.5], vec![0.5]], 1)).unwrap();
    assert_eq!(t.dense_order(), Some(1));
    // ... but not a second-order one: the tree [•] needs Σ bᵢ(θ) cᵢ = θ²/2.
    let e = rejected(with_dense(vec![vec![0.5], vec![0.5]], 2));
    assert!(
        matches!(&e, TableauError::DenseOutput { reason, .. } if reason.contains("order 2") && reason.contains("[•]")),
        "{e}"
    );
    // bᵢ(θ) = θ − θ²/2, θ²/2 has order 2 for Heun.
    ButcherTableau::new(with_dense(vec![vec![1.0, -0.5], vec![0.0, 0.5]], 2)).unwrap();
    // Wrong number of rows, wrong value at θ = 1, NaN.
    assert!(matches!(
        rejected(with_dense(vec![vec![1.0]], 1)),
        TableauError::DenseOutput { .. }
    ));
    let e = rejected(with_dense(vec![vec![0.4], vec![0.5]], 1));
    assert!(e.to_string().contains("b_0(1) = 0.4 but b_0 = 0.5"), "{e}");
    let e = rejected(with_dense(vec![vec![f64::NAN, 0.0], vec![0.5, 0.0]], 1));
    assert!(
        matches!(e, TableauError::Invalid { ref reason, .. } if reason.contains("NaN")),
        "{e:?}"
    );
    // The built-in interpolants are of order 4 exactly.
    for name in ["dopri5", "tsit5"] {
        let mut s = catalogue::explicit(name).unwrap().spec();
        assert_eq!(s.dense_order, Some(4));
        ButcherTableau::new(s.clone()).unwrap();
        s.dense_order = Some(5);
        assert!(
            matches!(rejected(s), TableauError::DenseOutput { .. }),
            "{name} claims order 5"
        );
    }
}

/// The specification of every built-in tableau rebuilds the same tableau.
#[test]
fn spec_round_trips() {
    for t in catalogue::EXPLICIT.iter() {
        assert_eq!(&ButcherTableau::new(t.spec()).unwrap(), t);
        let toml = toml::to_string(&t.spec()).unwrap();
        assert_eq!(
            &ButcherTableau::from_toml(&toml).unwrap(),
            t,
            "{}",
            t.name()
        );
    }
}

/// Kutta's third-order method with the Heun–Euler-like embedded second-order weights
/// (b̂ = (1/2, 0, 1/2)), given in TOML with full square rows.
const USER_TOML: &str = r#"
name = "kutta3-2"
order = 3
c = [0.0, 0.5, 1.0]
a = [[0.0, 0.0, 0.0], [0.5, 0.0, 0.0], [-1.0, 2.0, 0.0]]
b = [0.16666666666666666, 0.6666666666666666, 0.16666666666666666]
b_embedded = [0.5, 0.0, 0.5]
embedded_order = 2
"#;

#[test]
fn a_user_toml_tableau_is_accepted_and_solves() {
    let t = ButcherTableau::from_toml(USER_TOML).unwrap();
    assert_eq!(
        (
            t.name(),
            t.order(),
            t.stages(),
            t.embedded_order(),
            t.is_fsal()
        ),
        ("kutta3-2", 3, 3, Some(2), false)
    );
    let m = Method::from_tableau(t);
    // Fixed steps: third order.
    let ns = [20usize, 40, 80, 160, 320];
    let errs: Vec<f64> = ns
        .iter()
        .map(|&n| {
            let mut f = EXP_SIN.field::<f64>();
            let sol = solve(&m, &mut f, &EXP_SIN.y0(), &SolveOptions::steps(0.0, 2.0, n)).unwrap();
            (scalar(&sol.y_final) - (EXP_SIN.exact)(2.0)).abs()
        })
        .collect();
    let hs: Vec<f64> = ns.iter().map(|&n| 1.0 / n as f64).collect();
    let p = loglog_slope(&hs, &errs);
    assert!((p - 3.0).abs() < 0.15, "user tableau order {p}");
    // Adaptive: it is an embedded pair.
    let mut f = EXP_SIN.field::<f64>();
    let sol = solve(
        &m,
        &mut f,
        &EXP_SIN.y0(),
        &SolveOptions::adaptive(0.0, 2.0, 1e-8, 1e-8),
    )
    .unwrap();
    assert!((scalar(&sol.y_final) - (EXP_SIN.exact)(2.0)).abs() < 1e-6);
    assert!(sol.stats.rejected + sol.stats.accepted == sol.stats.steps);
}

#[test]
fn bad_toml_files_say_what_is_wrong() {
    let e = ButcherTableau::from_toml("name = \"x\"\norder = 1\n").unwrap_err();
    assert!(
        matches!(&e, TableauFileError::Parse(m) if m.contains("missing field")),
        "{e}"
    );
    let e = ButcherTableau::from_toml(&USER_TOML.replace("order = 3", "order = 4")).unwrap_err();
    assert!(
        matches!(
            &e,
            TableauFileError::Invalid(TableauError::OrderCondition { order: 4, .. })
        ),
        "{e}"
    );
    assert!(
        e.to_string().contains("kutta3-2") && e.to_string().contains("order 4"),
        "{e}"
    );
}

/// The explicit two-stage methods of order 2 form the family c₂ = α,
/// b = (1 − 1/(2α), 1/(2α)) (α = 1/2 midpoint, 2/3 Ralston, 1 Heun).
///
/// Their local error is h³[(1/6 − α/4) f''(f, f) + (1/6) f'f'f] + O(h⁴). On the logistic
/// equation (f = y(1 − y)) the bracket is f·[(1 − 2y)²/6 − 2f(1/6 − α/4)], which for α < 2/3
/// changes sign near y = 0.5: for some α the local errors then cancel in the global error
/// and a fit over f64-resolvable steps reads ~2.2 (α = 0.30 on y ∈ [0.1, 0.69]). On
/// y ∈ [0.05, 0.2] the bracket is ≥ 0.06 − 0.037 > 0 for every α ≥ 0.2, so the test
/// integrates the logistic equation from y(0) = 0.05 to t = 1.5 (y = 0.19).
const LOGISTIC_LOW: ScalarProblem = ScalarProblem {
    name: "logistic from 0.05",
    f: |_, y| y * (1.0 - y),
    exact: |t| 1.0 / (1.0 + 19.0 * (-t).exp()),
    t0: 0.0,
    t1: 1.5,
};

fn two_stage(alpha: f64) -> TableauSpec {
    let b2 = 1.0 / (2.0 * alpha);
    spec(
        "two-stage",
        2,
        &[0.0, alpha],
        &[&[], &[alpha]],
        &[1.0 - b2, b2],
    )
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 48,
        rng_seed: RngSeed::Fixed(0x0de_f10),
        ..ProptestConfig::default()
    })]

    #[test]
    fn every_two_stage_second_order_method_validates_and_converges_at_order_two(alpha in 0.2f64..1.5) {
        let t = ButcherTableau::new(two_stage(alpha)).unwrap();
        // No member reaches order 3: the tall tree [[•]] needs Σ bᵢ aᵢⱼ cⱼ = 1/6 but it is 0.
        let mut s = two_stage(alpha);
        s.order = 3;
        prop_assert!(ButcherTableau::new(s).is_err());
        let m = Method::from_tableau(t);
        let ns = [40usize, 80, 160, 320, 640];
        let errs: Vec<f64> = ns.iter().map(|&n| {
            let p = LOGISTIC_LOW;
            let mut f = p.field::<f64>();
            let sol = solve(&m, &mut f, &p.y0(), &SolveOptions::steps(p.t0, p.t1, n)).unwrap();
            (scalar(&sol.y_final) - (p.exact)(p.t1)).abs()
        }).collect();
        let hs: Vec<f64> = ns.iter().map(|&n| 1.0 / n as f64).collect();
        let p = loglog_slope(&hs, &errs);
        prop_assert!((p - 2.0).abs() <= 0.15, "alpha = {alpha}: order {p}, errors {errs:?}");
    }
}
