//! Long-time behaviour of the symplectic methods: over 10⁵ steps their energy error stays
//! bounded (no secular drift), while rk4 at the same step drifts steadily; on Kepler the
//! splitting methods and the implicit midpoint rule keep the angular momentum (a quadratic
//! invariant of a central force) to round-off.

mod common;

use common::*;
use odeflow::solve::{solve_split, SaveAt, SolveOptions};
use odeflow::systems::{Kepler, Pendulum, System, SystemField};
use odeflow::{Batch, Solution};

const STEPS: usize = 100_000;

/// The methods with bounded energy error.
const SYMPLECTIC: &[&str] = &[
    "verlet",
    "verlet4",
    "verlet6",
    "symplectic-euler-kd",
    "symplectic-euler-dk",
    "implicit-midpoint",
];

struct Run {
    /// |H(yₙ) − H(y₀)| at every step.
    energy_error: Vec<f64>,
    /// max |L(yₙ) − L(y₀)| / |L(y₀)| (Kepler only).
    angular_momentum_error: f64,
    /// Slope of a least-squares line through |ΔH| against t, times the run's length: the
    /// secular part of the energy error.
    secular: f64,
    sol: Solution<Batch<f64>>,
}

fn run<Sys: System + Copy>(sys: Sys, method: &str, y0: &[f64], h: f64) -> Run {
    let t1 = h * STEPS as f64;
    let opts = SolveOptions::steps(0.0, t1, STEPS).save(SaveAt::Steps);
    let sol = solve_split(
        &common::method(method),
        &mut SystemField(sys),
        &Batch::from_row(y0),
        &opts,
    )
    .unwrap_or_else(|e| panic!("{method}: {e}"));
    let inv0 = sys.invariants(y0);
    let invs: Vec<Vec<f64>> = sol.y.iter().map(|y| sys.invariants(y.as_slice())).collect();
    let energy_error: Vec<f64> = invs.iter().map(|i| (i[0] - inv0[0]).abs()).collect();
    let angular_momentum_error = if inv0.len() > 1 {
        invs.iter()
            .map(|i| (i[1] - inv0[1]).abs())
            .fold(0.0, f64::max)
            / inv0[1].abs()
    } else {
        0.0
    };
    let secular = linear_fit_slope(&sol.t, &energy_error) * t1;
    Run {
        energy_error,
        angular_momentum_error,
        secular,
        sol,
    }
}

/// Largest energy error in each tenth of the run.
fn decile_maxima(e: &[f64]) -> Vec<f64> {
    let n = e.len() / 10;
    (0..10)
        .map(|k| e[k * n..(k + 1) * n].iter().copied().fold(0.0, f64::max))
        .collect()
}

fn check_bounded_and_rk4_drifts<Sys: System + Copy>(sys: Sys, name: &str, y0: &[f64], h: f64) {
    for &m in SYMPLECTIC {
        let r = run(sys, m, y0, h);
        let d = decile_maxima(&r.energy_error);
        let max = d.iter().copied().fold(0.0, f64::max);
        println!(
            "{name:<8} h={h} {m:>20}: max |ΔH| first decile {:.3e}, last decile {:.3e}, secular drift over the run {:+.1e}",
            d[0], d[9], r.secular
        );
        assert_eq!(r.sol.stats.accepted, STEPS);
        // No secular growth: the envelope in the last tenth equals the first to within 5 %
        // (measured: equal to 3 digits), and the fitted trend over the whole run is below 1 %
        // of the error's size (measured ≤ 1e-4 of it).
        assert!(
            (d[9] - d[0]).abs() <= 0.05 * d[0],
            "{m} on {name}: energy error envelope {:.3e} → {:.3e}",
            d[0],
            d[9]
        );
        assert!(
            r.secular.abs() <= 0.01 * max,
            "{m} on {name}: secular drift {:.3e} vs max {max:.3e}",
            r.secular
        );
    }
    let r = run(sys, "rk4", y0, h);
    let d = decile_maxima(&r.energy_error);
    println!(
        "{name:<8} h={h} {:>20}: max |ΔH| first decile {:.3e}, last decile {:.3e}, secular drift over the run {:+.1e}",
        "rk4", d[0], d[9], r.secular
    );
    // rk4 dissipates energy at a steady rate: every decile's envelope exceeds the previous
    // one, the last is ~10× the first, and the linear trend accounts for most of it.
    assert!(
        d.windows(2).all(|w| w[1] > w[0]),
        "rk4 on {name}: envelopes {d:?}"
    );
    assert!(
        d[9] > 5.0 * d[0],
        "rk4 on {name}: {:.3e} → {:.3e}",
        d[0],
        d[9]
    );
    assert!(
        r.secular > 0.5 * d[9],
        "rk4 on {name}: secular drift {:.3e}",
        r.secular
    );
}

/// Pendulum p' = −10 sin q from (p, q) = (0, 1), h = 0.05 (t up to 5000, ~2400 swings).
#[test]
fn pendulum_energy_is_bounded_for_symplectic_methods_and_drifts_for_rk4() {
    check_bounded_and_rk4_drifts(Pendulum, "pendulum", &[0.0, 1.0], 0.05);
}

/// Kepler e = 0.6, h = 0.02 (t up to 2000, ~320 orbits).
#[test]
fn kepler_energy_is_bounded_for_symplectic_methods_and_drifts_for_rk4() {
    check_bounded_and_rk4_drifts(Kepler, "kepler", &Kepler::orbit(0.6), 0.02);
}

#[test]
fn kepler_angular_momentum_is_conserved_to_round_off() {
    let y0 = Kepler::orbit(0.6);
    for m in SYMPLECTIC {
        let r = run(Kepler, m, &y0, 0.02);
        println!(
            "{m:>20}: max relative angular momentum error {:.2e}",
            r.angular_momentum_error
        );
        // Each kick moves p along q and each drift moves q along p, so every sub-step keeps
        // L = q × p exactly; what remains is round-off (measured ≤ 7e-14 over 10⁵ steps). The
        // implicit midpoint rule keeps quadratic invariants only up to its iteration tolerance
        // (1e-12 per step; measured 1.8e-11).
        let bound = if *m == "implicit-midpoint" {
            1e-9
        } else {
            1e-12
        };
        assert!(
            r.angular_momentum_error < bound,
            "{m}: {:.2e}",
            r.angular_momentum_error
        );
    }
    let r = run(Kepler, "rk4", &y0, 0.02);
    assert!(
        r.angular_momentum_error > 1e-6,
        "rk4 is not expected to conserve L: {:.2e}",
        r.angular_momentum_error
    );
}

/// Field evaluations of the splitting methods: a part's evaluation is reused while the
/// components it depends on are unchanged, so the last kick of a Verlet step is the next
/// step's first.
#[test]
fn splitting_evaluation_counts() {
    let y0 = [0.0, 1.0];
    for (m, per_step, first_extra) in [
        ("symplectic-euler-kd", 2, 0),
        ("symplectic-euler-dk", 2, 0),
        ("verlet", 2, 1),
        ("verlet4", 6, 1),
        ("verlet6", 18, 1),
    ] {
        let n = 100;
        let sol = solve_split(
            &common::method(m),
            &mut SystemField(Pendulum),
            &Batch::from_row(&y0),
            &SolveOptions::steps(0.0, 1.0, n),
        )
        .unwrap();
        assert_eq!(sol.stats.nfe, per_step * n + first_extra, "{m}");
        assert_eq!(
            (sol.stats.steps, sol.stats.accepted, sol.stats.rejected),
            (n, n, 0)
        );
    }
}
