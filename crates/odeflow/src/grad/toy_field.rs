//! A small field for tests and examples: `f(t, y) = tanh((W₀ + t W₁) y + b)` on each row.
//!
//! It shows how to implement [`VectorField`] by hand, and its time-dependent weights make it
//! "smooth in depth", which the reversible method's error analysis needs.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::field::{ParamView, Parameterized, VectorField};
use crate::real::Real;
use crate::state::{Batch, State};

/// `f(t, y) = tanh((W₀ + t W₁) y + b)` with `W₀, W₁ ∈ ℝ^{d×d}`, `b ∈ ℝ^d`.
#[derive(Debug, Clone)]
pub struct TanhField<T> {
    dim: usize,
    params: Vec<T>,
    w: Vec<T>,
}

/// What one evaluation of [`TanhField`] keeps for its VJP.
#[derive(Debug, Clone, Default)]
pub struct TanhTape<T> {
    t: f64,
    y: Vec<T>,
    u: Vec<T>,
}

impl<T: Real> TanhField<T> {
    /// Random weights (uniform in ±scale/√d), seeded.
    pub fn random(dim: usize, scale: f64, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let s = scale / (dim as f64).sqrt();
        let params = (0..2 * dim * dim + dim)
            .map(|_| T::of(rng.random_range(-s..s)))
            .collect();
        Self {
            dim,
            params,
            w: vec![T::zero(); dim * dim],
        }
    }

    fn weights_at(&mut self, t: f64) {
        let d2 = self.dim * self.dim;
        let tt = T::of(t);
        for i in 0..d2 {
            self.w[i] = self.params[i] + tt * self.params[d2 + i];
        }
    }

    fn forward(&mut self, t: f64, y: &Batch<T>, dy: &mut Batch<T>) {
        self.weights_at(t);
        let d = self.dim;
        let b = &self.params[2 * d * d..];
        for (yr, dr) in y
            .as_slice()
            .chunks_exact(d)
            .zip(dy.as_mut_slice().chunks_exact_mut(d))
        {
            for i in 0..d {
                let z: T = (0..d).map(|j| self.w[i * d + j] * yr[j]).sum::<T>() + b[i];
                dr[i] = z.tanh();
            }
        }
    }
}

impl<T: Real> VectorField<Batch<T>> for TanhField<T> {
    type Tape = TanhTape<T>;
    type Grad = Vec<T>;

    fn new_tape(&self) -> TanhTape<T> {
        TanhTape::default()
    }
    fn zero_grad(&self) -> Vec<T> {
        vec![T::zero(); self.params.len()]
    }
    fn eval(&mut self, t: f64, y: &Batch<T>, dy: &mut Batch<T>) {
        self.forward(t, y, dy);
    }
    fn eval_taped(&mut self, t: f64, y: &Batch<T>, dy: &mut Batch<T>, tape: &mut TanhTape<T>) {
        self.forward(t, y, dy);
        tape.t = t;
        tape.y.clear();
        tape.y.extend_from_slice(y.as_slice());
        tape.u.clear();
        tape.u.extend_from_slice(dy.as_slice());
    }
    fn vjp(&mut self, tape: &TanhTape<T>, v: &Batch<T>, gy: &mut Batch<T>, gtheta: &mut Vec<T>) {
        self.weights_at(tape.t);
        let d = self.dim;
        let d2 = d * d;
        let tt = T::of(tape.t);
        let rows = tape.y.len() / d;
        gy.set_zero();
        let mut delta = vec![T::zero(); d];
        for r in 0..rows {
            let (yr, ur, vr) = (
                &tape.y[r * d..(r + 1) * d],
                &tape.u[r * d..(r + 1) * d],
                &v.as_slice()[r * d..(r + 1) * d],
            );
            for i in 0..d {
                delta[i] = vr[i] * (T::one() - ur[i] * ur[i]);
            }
            let g = &mut gy.as_mut_slice()[r * d..(r + 1) * d];
            for i in 0..d {
                for j in 0..d {
                    g[j] += self.w[i * d + j] * delta[i];
                    gtheta[i * d + j] += delta[i] * yr[j];
                    gtheta[d2 + i * d + j] += tt * delta[i] * yr[j];
                }
                gtheta[2 * d2 + i] += delta[i];
            }
        }
    }
}

impl<T: Real> Parameterized<T> for TanhField<T> {
    fn params(&self) -> &[T] {
        &self.params
    }
    fn params_mut(&mut self) -> &mut [T] {
        &mut self.params
    }
    fn param_views(&self) -> Vec<ParamView> {
        let d = self.dim;
        vec![
            ParamView {
                name: "w0".into(),
                offset: 0,
                shape: vec![d, d],
            },
            ParamView {
                name: "w1".into(),
                offset: d * d,
                shape: vec![d, d],
            },
            ParamView {
                name: "b".into(),
                offset: 2 * d * d,
                shape: vec![d],
            },
        ]
    }
}
