//! Criterion benches of the training workloads (one forward + backward + Adam iteration);
//! the same workloads as `odeflow bench` and the peer scripts in `bench/`.

use criterion::{criterion_group, criterion_main, Criterion};
use odeflow::grad::GradientMethod;
use odeflow::models::{Workload, WorkloadRunner};

fn workloads(c: &mut Criterion) {
    let mut g = c.benchmark_group("training-iteration");
    g.sample_size(10);
    for w in [
        Workload::Sphere2Euler256,
        Workload::Sphere2Rk4x64,
        Workload::PendulumMlp128Euler2,
    ] {
        for grad in [GradientMethod::Backprop, GradientMethod::Reversible] {
            if grad == GradientMethod::Reversible && w == Workload::Sphere2Rk4x64 {
                continue; // reversible is defined for Euler and Heun
            }
            let mut r = WorkloadRunner::new(w, grad.clone(), 0).expect("workload builds");
            let mut it = 0;
            g.bench_function(format!("{}/{}", w.name(), grad.name()), |b| {
                b.iter(|| {
                    r.iteration(it).expect("iteration runs");
                    it += 1;
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, workloads);
criterion_main!(benches);
