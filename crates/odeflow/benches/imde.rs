//! Inverse modified equations: building the series coefficients, and evaluating the order-6
//! IMDE at 2 000 points.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use odeflow::analysis::imde::{ModifiedSeries, Workspace};
use odeflow::systems::Pendulum;
use odeflow::tableau::catalogue::explicit;

fn points(n: usize) -> Vec<[f64; 2]> {
    (0..n)
        .map(|i| {
            let t = i as f64 / n as f64;
            [4.0 * t - 2.0, 3.0 * (7.0 * t).sin()]
        })
        .collect()
}

fn build(c: &mut Criterion) {
    let mut g = c.benchmark_group("imde_build");
    g.sample_size(10);
    for order in [6, 8, 10] {
        g.bench_function(format!("dopri5_order{order}"), |b| {
            b.iter(|| ModifiedSeries::inverse(explicit("dopri5").unwrap(), black_box(order)))
        });
    }
    g.finish();
}

fn eval_2000(c: &mut Criterion) {
    let pts = points(2000);
    let mut g = c.benchmark_group("imde_eval_2000_points");
    g.sample_size(10);
    for method in ["euler", "rk4", "dopri5"] {
        let series = ModifiedSeries::inverse(explicit(method).unwrap(), 6).unwrap();
        let mut ws = Workspace::new();
        let mut out = [0.0; 2];
        g.bench_function(format!("{method}_order6_pendulum"), |b| {
            b.iter(|| {
                let mut acc = 0.0;
                for p in &pts {
                    series
                        .eval_into(&Pendulum, 0.04, p, &mut out, &mut ws)
                        .unwrap();
                    acc += out[0];
                }
                black_box(acc)
            })
        });
    }
    g.finish();
}

criterion_group!(benches, build, eval_2000);
criterion_main!(benches);
