//! The built-in explicit Runge–Kutta methods, one declaration each.
//!
//! Fixed-step: `euler`, `midpoint`, `heun`, `ralston`, `rk3`, `ralston3`, `rk4`, `rk4-38`,
//! `ssprk3`. Embedded pairs: `heun-euler` 2(1), `fehlberg2` 2(1), `bosh3` 3(2), `dopri5` 5(4)
//! with Shampine's 4th-order dense output, `tsit5` 5(4) with Tsitouras' dense output.
//! Coefficients from Hairer, Nørsett, Wanner, *Solving ODEs I* (II.1, II.4, II.5, II.6),
//! Bogacki & Shampine (1989), Dormand & Prince (1980), Shampine (1986), Tsitouras (2011),
//! Fehlberg (1969), Shu & Osher (1988).

// Coefficients are written as published, with more digits than f64 keeps.
#![allow(clippy::excessive_precision)]

use std::sync::LazyLock;

use super::{poly_mul, ButcherTableau, TableauSpec};

fn spec(name: &str, order: usize, c: &[f64], a: &[&[f64]], b: &[f64]) -> TableauSpec {
    TableauSpec {
        name: name.to_string(),
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

trait SpecExt {
    fn embedded(self, b_embedded: &[f64], order: usize) -> Self;
    fn with_dense(self, dense: Vec<Vec<f64>>, order: usize) -> Self;
}

impl SpecExt for TableauSpec {
    fn embedded(mut self, b_embedded: &[f64], order: usize) -> Self {
        self.b_embedded = Some(b_embedded.to_vec());
        self.embedded_order = Some(order);
        self
    }
    fn with_dense(mut self, dense: Vec<Vec<f64>>, order: usize) -> Self {
        self.dense = Some(dense);
        self.dense_order = Some(order);
        self
    }
}

/// Every built-in explicit method, validated once.
pub static EXPLICIT: LazyLock<Vec<ButcherTableau>> = LazyLock::new(|| {
    specs()
        .into_iter()
        .map(|s| {
            let name = s.name.clone();
            // The built-in coefficients are constants checked by the test below; a failure
            // here is a bug in this file, not bad input.
            ButcherTableau::new(s)
                .unwrap_or_else(|e| panic!("built-in tableau {name} is invalid: {e}"))
        })
        .collect()
});

/// The built-in explicit tableau called `name`.
pub fn explicit(name: &str) -> Option<&'static ButcherTableau> {
    EXPLICIT.iter().find(|t| t.name() == name)
}

fn specs() -> Vec<TableauSpec> {
    let third = 1.0 / 3.0;
    vec![
        spec("euler", 1, &[0.0], &[&[]], &[1.0]),
        spec("midpoint", 2, &[0.0, 0.5], &[&[], &[0.5]], &[0.0, 1.0]),
        spec("heun", 2, &[0.0, 1.0], &[&[], &[1.0]], &[0.5, 0.5]),
        spec(
            "ralston",
            2,
            &[0.0, 2.0 / 3.0],
            &[&[], &[2.0 / 3.0]],
            &[0.25, 0.75],
        ),
        spec(
            "rk3",
            3,
            &[0.0, 0.5, 1.0],
            &[&[], &[0.5], &[-1.0, 2.0]],
            &[1.0 / 6.0, 2.0 / 3.0, 1.0 / 6.0],
        ),
        spec(
            "ralston3",
            3,
            &[0.0, 0.5, 0.75],
            &[&[], &[0.5], &[0.0, 0.75]],
            &[2.0 / 9.0, third, 4.0 / 9.0],
        ),
        spec(
            "rk4",
            4,
            &[0.0, 0.5, 0.5, 1.0],
            &[&[], &[0.5], &[0.0, 0.5], &[0.0, 0.0, 1.0]],
            &[1.0 / 6.0, third, third, 1.0 / 6.0],
        ),
        spec(
            "rk4-38",
            4,
            &[0.0, third, 2.0 * third, 1.0],
            &[&[], &[third], &[-third, 1.0], &[1.0, -1.0, 1.0]],
            &[0.125, 0.375, 0.375, 0.125],
        ),
        spec(
            "ssprk3",
            3,
            &[0.0, 1.0, 0.5],
            &[&[], &[1.0], &[0.25, 0.25]],
            &[1.0 / 6.0, 1.0 / 6.0, 2.0 / 3.0],
        ),
        spec("heun-euler", 2, &[0.0, 1.0], &[&[], &[1.0]], &[0.5, 0.5]).embedded(&[1.0, 0.0], 1),
        spec(
            "fehlberg2",
            2,
            &[0.0, 0.5, 1.0],
            &[&[], &[0.5], &[1.0 / 256.0, 255.0 / 256.0]],
            &[1.0 / 512.0, 255.0 / 256.0, 1.0 / 512.0],
        )
        .embedded(&[1.0 / 256.0, 255.0 / 256.0, 0.0], 1),
        spec(
            "bosh3",
            3,
            &[0.0, 0.5, 0.75, 1.0],
            &[&[], &[0.5], &[0.0, 0.75], &[2.0 / 9.0, third, 4.0 / 9.0]],
            &[2.0 / 9.0, third, 4.0 / 9.0, 0.0],
        )
        .embedded(&[7.0 / 24.0, 0.25, third, 0.125], 2),
        dopri5(),
        tsit5(),
    ]
}

/// Dormand–Prince 5(4) with Shampine's (1986) continuous extension of order 4
/// (Hairer, Nørsett, Wanner I, II.6, eq. (6.12)).
fn dopri5() -> TableauSpec {
    let b = [
        35.0 / 384.0,
        0.0,
        500.0 / 1113.0,
        125.0 / 192.0,
        -2187.0 / 6784.0,
        11.0 / 84.0,
        0.0,
    ];
    // bᵢ(θ) = θ²(3 − 2θ) bᵢ + θ²(θ − 1)² κᵢ(θ) (+ θ(θ−1)² for i = 1, + θ²(θ−1) for i = 7).
    let kappa: [[f64; 2]; 7] = [
        [
            -5.0 * 2558722523.0 / 11282082432.0,
            5.0 * 31403016.0 / 11282082432.0,
        ],
        [0.0, 0.0],
        [
            100.0 * 882725551.0 / 32700410799.0,
            -100.0 * 15701508.0 / 32700410799.0,
        ],
        [
            -25.0 * 443332067.0 / 1880347072.0,
            25.0 * 31403016.0 / 1880347072.0,
        ],
        [
            32805.0 * 23143187.0 / 199316789632.0,
            -32805.0 * 3489224.0 / 199316789632.0,
        ],
        [
            -55.0 * 29972135.0 / 822651844.0,
            55.0 * 7076736.0 / 822651844.0,
        ],
        [10.0 * 7414447.0 / 29380423.0, -10.0 * 829305.0 / 29380423.0],
    ];
    let t2_3m2t = [0.0, 0.0, 3.0, -2.0]; // θ²(3 − 2θ)
    let t2_tm1_sq = [0.0, 0.0, 1.0, -2.0, 1.0]; // θ²(θ − 1)²
    let mut dense = Vec::new();
    for i in 0..7 {
        let mut p = [0.0; 6];
        for (m, v) in t2_3m2t.iter().enumerate() {
            p[m] += v * b[i];
        }
        for (m, v) in poly_mul(&t2_tm1_sq, &kappa[i]).iter().enumerate() {
            p[m] += v;
        }
        if i == 0 {
            for (m, v) in [0.0, 1.0, -2.0, 1.0].iter().enumerate() {
                p[m] += v; // θ(θ − 1)²
            }
        }
        if i == 6 {
            for (m, v) in [0.0, 0.0, -1.0, 1.0].iter().enumerate() {
                p[m] += v; // θ²(θ − 1)
            }
        }
        dense.push(p[1..].to_vec());
    }
    spec(
        "dopri5",
        5,
        &[0.0, 0.2, 0.3, 0.8, 8.0 / 9.0, 1.0, 1.0],
        &[
            &[],
            &[0.2],
            &[3.0 / 40.0, 9.0 / 40.0],
            &[44.0 / 45.0, -56.0 / 15.0, 32.0 / 9.0],
            &[
                19372.0 / 6561.0,
                -25360.0 / 2187.0,
                64448.0 / 6561.0,
                -212.0 / 729.0,
            ],
            &[
                9017.0 / 3168.0,
                -355.0 / 33.0,
                46732.0 / 5247.0,
                49.0 / 176.0,
                -5103.0 / 18656.0,
            ],
            &b[..6],
        ],
        &b,
    )
    .embedded(
        &[
            5179.0 / 57600.0,
            0.0,
            7571.0 / 16695.0,
            393.0 / 640.0,
            -92097.0 / 339200.0,
            187.0 / 2100.0,
            1.0 / 40.0,
        ],
        4,
    )
    .with_dense(dense, 4)
}

/// Tsitouras 5(4) (2011), with its order-4 interpolant written in factored form.
// The coefficients keep the digits Tsitouras published, some beyond f64 precision.
#[allow(clippy::excessive_precision)]
fn tsit5() -> TableauSpec {
    let b = [
        0.096_460_766_818_065_23,
        0.01,
        0.479_889_650_414_499_6,
        1.379_008_574_103_741_9,
        -3.290_069_515_436_080_7,
        2.324_710_524_099_774,
        0.0,
    ];
    let b_err = [
        0.096_460_766_818_065_23 - 0.094_680_755_765_839_46,
        0.01 - 0.009_183_565_540_343_253,
        0.479_889_650_414_499_6 - 0.487_770_528_424_761_6,
        1.379_008_574_103_741_9 - 1.234_297_566_930_479,
        -3.290_069_515_436_080_7 + 2.707_712_349_983_525_5,
        2.324_710_524_099_774 - 1.866_628_418_170_587,
        -1.0 / 66.0,
    ];
    let bh: Vec<f64> = b.iter().zip(&b_err).map(|(b, e)| b - e).collect();
    // Dense output polynomials bᵢ(θ), from Tsitouras (2011), Table 2, in factored form.
    let quad = |c: f64, p: f64, q: f64| poly_mul(&[0.0, 0.0, c], &[q, p, 1.0]); // c θ² (θ² + pθ + q)
    let lin2 =
        |c: f64, r1: f64, r2: f64| poly_mul(&poly_mul(&[0.0, 0.0, c], &[-r1, 1.0]), &[-r2, 1.0]);
    let dense_full: Vec<Vec<f64>> = vec![
        poly_mul(
            &poly_mul(
                &[0.0, -1.053_088_497_729_021_6],
                &[-1.329_989_018_975_141_2, 1.0],
            ),
            &[0.713_981_691_707_420_9, -1.436_402_854_171_635_1, 1.0],
        ),
        quad(0.1017, -2.196_656_833_824_975_4, 1.294_985_250_737_463_1),
        quad(
            2.490_627_285_651_252_8,
            -2.385_356_454_720_616_5,
            1.578_034_682_080_924_9,
        ),
        lin2(
            -16.548_102_889_244_902,
            1.217_129_272_955_332_4,
            0.616_204_060_378_000_9,
        ),
        lin2(
            47.379_521_962_819_28,
            1.203_071_208_372_362_6,
            0.658_047_292_653_547_4,
        ),
        lin2(-34.870_657_861_496_61, 1.2, 2.0 / 3.0),
        lin2(2.5, 1.0, 0.6),
    ];
    let dense = dense_full.into_iter().map(|p| p[1..].to_vec()).collect();
    let mut s = spec(
        "tsit5",
        5,
        &[0.0, 0.161, 0.327, 0.9, 0.980_025_540_904_509_7, 1.0, 1.0],
        &[
            &[],
            &[0.161],
            &[-0.008_480_655_492_356_989, 0.335_480_655_492_356_99],
            &[
                2.897_153_057_105_493_4,
                -6.359_448_489_975_075,
                4.362_295_432_869_581,
            ],
            &[
                5.325_864_828_439_257,
                -11.748_883_564_062_828,
                7.495_539_342_889_836,
                -0.092_495_066_361_755_25,
            ],
            &[
                5.861_455_442_946_42,
                -12.920_969_317_847_11,
                8.159_367_898_576_159,
                -0.071_584_973_281_401,
                -0.028_269_050_394_068_383,
            ],
            &b[..6],
        ],
        &b,
    )
    .embedded(&bh, 4);
    // The factored coefficients carry ~1e-15..1e-12 rounding; the dense check tolerance covers it.
    s = s.with_dense(dense, 4);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (name, order, stages, embedded order, FSAL). One line per method.
    const EXPECTED: &[(&str, usize, usize, Option<usize>, bool)] = &[
        ("euler", 1, 1, None, false),
        ("midpoint", 2, 2, None, false),
        ("heun", 2, 2, None, false),
        ("ralston", 2, 2, None, false),
        ("rk3", 3, 3, None, false),
        ("ralston3", 3, 3, None, false),
        ("rk4", 4, 4, None, false),
        ("rk4-38", 4, 4, None, false),
        ("ssprk3", 3, 3, None, false),
        ("heun-euler", 2, 2, Some(1), false),
        ("fehlberg2", 2, 3, Some(1), false),
        ("bosh3", 3, 4, Some(2), true),
        ("dopri5", 5, 7, Some(4), true),
        ("tsit5", 5, 7, Some(4), true),
    ];

    #[test]
    fn every_builtin_tableau_validates_with_its_claimed_properties() {
        assert_eq!(EXPLICIT.len(), EXPECTED.len());
        for &(name, order, stages, emb, fsal) in EXPECTED {
            let t = explicit(name).unwrap_or_else(|| panic!("{name} missing"));
            assert_eq!(
                (t.order(), t.stages(), t.embedded_order(), t.is_fsal()),
                (order, stages, emb, fsal),
                "{name}"
            );
        }
    }

    #[test]
    fn claimed_orders_are_sharp() {
        // Each method fails at least one order condition of order p + 1.
        use crate::tableau::trees::trees_up_to;
        for t in EXPLICIT.iter() {
            let trees = trees_up_to(t.order() + 1);
            let next = &trees[t.order()];
            let fails = next
                .iter()
                .any(|tr| (tr.elementary_weight(t.a(), t.b()) - 1.0 / tr.gamma()).abs() > 1e-8);
            assert!(
                fails,
                "{} satisfies all order-{} conditions",
                t.name(),
                t.order() + 1
            );
        }
    }
}
