//! Solver throughput: an adaptive high-accuracy solve of a chaotic system, a large batch of
//! fixed-step solves (the Neural-ODE shape: many samples, few steps), and a long symplectic
//! run.
//!
//! Run with `cargo bench -p odeflow --bench solvers`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use odeflow::solve::{solve, solve_split, SolveOptions};
use odeflow::systems::{Kepler, Lorenz, Pendulum, System, SystemField};
use odeflow::{Batch, Method};

fn method(name: &str) -> Method {
    Method::from_name(name).expect("built-in method")
}

/// dopri5 on the (scaled) Lorenz system, t ∈ [0, 10], rtol = atol = 1e-8.
fn dopri5_lorenz(c: &mut Criterion) {
    let m = method("dopri5");
    let sys = Lorenz::default();
    let y0 = Batch::from_row(&sys.default_y0());
    let opts = SolveOptions::adaptive(0.0, 10.0, 1e-8, 1e-8);
    let steps = solve(&m, &mut SystemField(sys), &y0, &opts).unwrap().stats;
    println!(
        "dopri5 on Lorenz: {} steps, {} field evaluations",
        steps.steps, steps.nfe
    );
    c.bench_function("dopri5_lorenz_t10_rtol1e-8", |b| {
        b.iter(|| {
            let sol = solve(&m, &mut SystemField(sys), black_box(&y0), &opts).unwrap();
            black_box(sol.y_final)
        })
    });
}

/// rk4 on 10 000 pendulums at once (a 10000 × 2 batch), 100 steps.
fn rk4_pendulum_batch(c: &mut Criterion) {
    let m = method("rk4");
    let rows: Vec<Vec<f64>> = (0..10_000)
        .map(|i| vec![0.0, -1.5 + 3.0 * i as f64 / 10_000.0])
        .collect();
    let y0 = Batch::from_rows(&rows).unwrap();
    let opts = SolveOptions::steps(0.0, 1.0, 100);
    let mut group = c.benchmark_group("rk4_pendulum_batch");
    // Throughput in sample-steps.
    group.throughput(Throughput::Elements(10_000 * 100));
    group.bench_function("10000x2_100_steps", |b| {
        b.iter(|| {
            let sol = solve(&m, &mut SystemField(Pendulum), black_box(&y0), &opts).unwrap();
            black_box(sol.y_final)
        })
    });
    group.finish();
}

/// Störmer–Verlet on Kepler (e = 0.6), 10⁴ steps of h = 0.01.
fn verlet_kepler(c: &mut Criterion) {
    let m = method("verlet");
    let y0 = Batch::from_row(&Kepler::orbit(0.6));
    let opts = SolveOptions::steps(0.0, 100.0, 10_000);
    let mut group = c.benchmark_group("verlet_kepler");
    group.throughput(Throughput::Elements(10_000));
    group.bench_function("10000_steps", |b| {
        b.iter(|| {
            let sol = solve_split(&m, &mut SystemField(Kepler), black_box(&y0), &opts).unwrap();
            black_box(sol.y_final)
        })
    });
    group.finish();
}

criterion_group!(benches, dopri5_lorenz, rk4_pendulum_batch, verlet_kepler);
criterion_main!(benches);
