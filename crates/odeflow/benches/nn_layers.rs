//! Per-evaluation cost of the native layers on the research's networks.
//!
//! * Ott et al.'s `simple_odenet`, C = 32, on a batch of 128 samples `(1, 2)`, f32: one
//!   `eval`, and one `eval_taped` + `vjp` (the unit of work of a backpropagated solver
//!   step; a 256-step Euler training step is 256 of them plus the optimiser).
//! * Zhu et al.'s MLP `2 → 128 → 128 → 2`, tanh, on a batch of 10 000, f32.

use criterion::{criterion_group, criterion_main, Criterion};
use odeflow::nn::zoo;
use odeflow::nn::NeuralField;
use odeflow::{Batch, VectorField};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::hint::black_box;

fn batch(rows: usize, cols: usize, seed: u64) -> Batch<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Batch::from_vec(
        rows,
        cols,
        (0..rows * cols)
            .map(|_| rng.random_range(-1.0..1.0))
            .collect(),
    )
    .unwrap()
}

fn bench_field(c: &mut Criterion, name: &str, f: &mut NeuralField<f32>, rows: usize) {
    let cols = f.shape().len();
    let y = batch(rows, cols, 1);
    let v = batch(rows, cols, 2);
    let mut dy = y.clone();
    let mut gy = y.clone();
    let mut tape = f.new_tape();
    let mut gt = f.zero_grad();
    c.bench_function(&format!("{name}/eval"), |b| {
        b.iter(|| {
            f.eval(0.0, black_box(&y), &mut dy);
            black_box(&dy);
        })
    });
    c.bench_function(&format!("{name}/eval_taped+vjp"), |b| {
        b.iter(|| {
            f.eval_taped(0.0, black_box(&y), &mut dy, &mut tape);
            f.vjp(&tape, black_box(&v), &mut gy, &mut gt);
            black_box(&gy);
        })
    });
}

fn nn_layers(c: &mut Criterion) {
    let mut ott = zoo::simple_odenet::<f32>(32, 2, 0).unwrap();
    bench_field(c, "simple_odenet_c32_b128_f32", &mut ott, 128);
    let mut zhu = zoo::zhu_field::<f32>(2, 0).unwrap();
    bench_field(c, "mlp_2_128_128_2_tanh_b10000_f32", &mut zhu, 10_000);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2))
        .sample_size(30);
    targets = nn_layers
}
criterion_main!(benches);
