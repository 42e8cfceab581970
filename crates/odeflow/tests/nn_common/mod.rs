//! Helpers shared by the `nn` integration tests: random batches and finite-difference
//! checks of VJPs.

#![allow(dead_code)]

use odeflow::nn::{Network, NeuralField};
use odeflow::{Batch, Parameterized, VectorField};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A `rows × cols` batch of uniform values in `[-scale, scale]`.
pub fn random_batch(rows: usize, cols: usize, scale: f64, seed: u64) -> Batch<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let data = (0..rows * cols)
        .map(|_| rng.random_range(-scale..scale))
        .collect();
    Batch::from_vec(rows, cols, data).unwrap()
}

/// `‖a − b‖∞ / max(‖b‖∞, floor)`.
pub fn rel_err(a: &[f64], b: &[f64], floor: f64) -> f64 {
    assert_eq!(a.len(), b.len());
    let num = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max);
    let den = b.iter().map(|y| y.abs()).fold(floor, f64::max);
    num / den
}

/// Central-difference gradient of `g(z) = φ(z)` at `z`, component by component.
pub fn fd_grad(z: &[f64], h: f64, mut phi: impl FnMut(&[f64]) -> f64) -> Vec<f64> {
    let mut zz = z.to_vec();
    (0..z.len())
        .map(|i| {
            zz[i] = z[i] + h;
            let p = phi(&zz);
            zz[i] = z[i] - h;
            let m = phi(&zz);
            zz[i] = z[i];
            (p - m) / (2.0 * h)
        })
        .collect()
}

/// Step of the central differences.
pub const H: f64 = 1e-6;
/// Tolerance on the relative error of an analytic gradient.
pub const TOL: f64 = 1e-6;

/// Errors `(input, params)` of the network's VJP against central differences of
/// `⟨v, f(t, x; θ)⟩`. Checks that the parameter gradient is accumulated (starts from a
/// non-zero buffer).
pub fn network_vjp_errors(net: &mut Network<f64>, x: &Batch<f64>, t: f64, seed: u64) -> (f64, f64) {
    let mut y = Batch::zeros(0, 0);
    let mut tape = net.new_tape();
    net.forward_taped(t, x, &mut y, &mut tape).unwrap();
    let v = random_batch(y.rows(), y.cols(), 1.0, seed);
    let mut gx = Batch::zeros(0, 0);
    let offset = 0.75;
    let mut gp = vec![offset; net.num_params()];
    net.backward(&tape, &v, &mut gx, &mut gp).unwrap();
    gp.iter_mut().for_each(|g| *g -= offset);

    let mut out = Batch::zeros(0, 0);
    let mut dot = |net: &mut Network<f64>, xx: &Batch<f64>| {
        net.forward(t, xx, &mut out).unwrap();
        out.as_slice()
            .iter()
            .zip(v.as_slice())
            .map(|(a, b)| a * b)
            .sum::<f64>()
    };
    let fx = fd_grad(x.as_slice(), H, |z| {
        let xx = Batch::from_vec(x.rows(), x.cols(), z.to_vec()).unwrap();
        dot(net, &xx)
    });
    let theta = net.params().to_vec();
    let fp = fd_grad(&theta, H, |z| {
        net.params_mut().copy_from_slice(z);
        dot(net, x)
    });
    net.params_mut().copy_from_slice(&theta);
    (rel_err(gx.as_slice(), &fx, 1e-8), rel_err(&gp, &fp, 1e-8))
}

/// Asserts the network's VJP matches finite differences to [`TOL`].
pub fn assert_network_vjp(name: &str, net: &mut Network<f64>, x: &Batch<f64>, t: f64) {
    let (ex, ep) = network_vjp_errors(net, x, t, 99);
    eprintln!("{name}: VJP relative error input {ex:.1e}, params {ep:.1e}");
    assert!(ex <= TOL, "{name}: input VJP relative error {ex:e}");
    assert!(ep <= TOL, "{name}: parameter VJP relative error {ep:e}");
}

/// Errors `(state, params)` of a field's [`VectorField::vjp`] against central differences
/// of [`VectorField::eval`].
pub fn field_vjp_errors(f: &mut NeuralField<f64>, y: &Batch<f64>, t: f64, seed: u64) -> (f64, f64) {
    let mut dy = y.clone();
    let mut tape = f.new_tape();
    f.eval_taped(t, y, &mut dy, &mut tape);
    let v = random_batch(y.rows(), y.cols(), 1.0, seed);
    let mut gy = y.clone();
    let mut gt = f.zero_grad();
    f.vjp(&tape, &v, &mut gy, &mut gt);

    let mut out = y.clone();
    let mut dot = |f: &mut NeuralField<f64>, yy: &Batch<f64>| {
        f.eval(t, yy, &mut out);
        out.as_slice()
            .iter()
            .zip(v.as_slice())
            .map(|(a, b)| a * b)
            .sum::<f64>()
    };
    let fy = fd_grad(y.as_slice(), H, |z| {
        let yy = Batch::from_vec(y.rows(), y.cols(), z.to_vec()).unwrap();
        dot(f, &yy)
    });
    let theta = f.params().to_vec();
    let fp = fd_grad(&theta, H, |z| {
        f.params_mut().copy_from_slice(z);
        dot(f, y)
    });
    f.params_mut().copy_from_slice(&theta);
    (rel_err(gy.as_slice(), &fy, 1e-8), rel_err(&gt, &fp, 1e-8))
}
