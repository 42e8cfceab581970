//! Seeded parameter initialisers.
//!
//! A weight tensor of shape `[out, in, k…]` is treated as an `out × fan_in` matrix with
//! `fan_in = in·Πk`. Random numbers are drawn in `f64` from one `ChaCha8Rng`, layer after
//! layer in network order, and rounded to the scalar type at the end, so the same seed
//! gives the same network in `f32` and `f64` (up to rounding).
//!
//! * [`Init::PyTorchDefault`]: what `nn.Linear`/`nn.Conv{1,2}d` do on construction:
//!   `kaiming_uniform_(a = √5)` for the weight, i.e. `U(−b, b)` with
//!   `b = gain·√(3/fan_in)`, `gain = √(2/(1 + a²)) = √(1/3)`, hence `b = 1/√fan_in`; and
//!   `U(−1/√fan_in, 1/√fan_in)` for the bias.
//! * [`Init::KaimingNormal`]: `N(0, gain²/fan_in)` (He et al. 2015, fan-in mode; gain `√2`
//!   for ReLU, `1` for a linear layer), zero bias.
//! * [`Init::Orthogonal`]: `gain·Q` with `Q` Haar-distributed on the orthogonal matrices
//!   (Saxe et al. 2014), zero bias. As in PyTorch's `orthogonal_`: draw a Gaussian
//!   `rows × cols` matrix (transposed when `rows < cols`, so it is tall), factor it `A = QR`,
//!   and multiply column `j` of `Q` by `sign(R_jj)` — the sign correction makes the
//!   distribution of `Q` uniform (Mezzadri 2007). The QR factorisation is Householder's
//!   (see [`householder_qr`]): backward stable, so `QᵀQ = I` to rounding even for badly
//!   conditioned draws, unlike classical Gram–Schmidt.
//!
//! Batch-norm scales start at 1 and shifts at 0 (or both at 0, see
//! [`crate::nn::BatchNormOptions`]) regardless of the scheme.

use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

use crate::real::Real;

/// An initialisation scheme for the weights and biases of linear and convolution layers.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Init {
    /// PyTorch's default for `Linear`/`Conv`: weight and bias `U(−1/√fan_in, 1/√fan_in)`.
    PyTorchDefault,
    /// Weight `N(0, gain²/fan_in)`, zero bias.
    KaimingNormal {
        /// `√2` for ReLU networks, `1` for linear ones.
        gain: f64,
    },
    /// Weight `gain·Q` with `Q` orthogonal (rows or columns orthonormal), zero bias.
    Orthogonal {
        /// Scale of the orthogonal matrix.
        gain: f64,
    },
}

impl Init {
    /// Kaiming normal for ReLU networks (gain `√2`).
    pub fn kaiming_relu() -> Self {
        Init::KaimingNormal {
            gain: std::f64::consts::SQRT_2,
        }
    }

    /// Orthogonal with gain 1.
    pub fn orthogonal() -> Self {
        Init::Orthogonal { gain: 1.0 }
    }

    /// Fills a weight viewed as a `rows × fan_in` row-major matrix.
    pub fn fill_weight<T: Real>(
        &self,
        rng: &mut ChaCha8Rng,
        rows: usize,
        fan_in: usize,
        w: &mut [T],
    ) {
        assert_eq!(w.len(), rows * fan_in, "weight buffer length");
        match *self {
            Init::PyTorchDefault => {
                let b = 1.0 / (fan_in.max(1) as f64).sqrt();
                for v in w.iter_mut() {
                    *v = T::of(rng.random_range(-b..b));
                }
            }
            Init::KaimingNormal { gain } => {
                let std = gain / (fan_in.max(1) as f64).sqrt();
                for v in w.iter_mut() {
                    let z: f64 = rng.sample(StandardNormal);
                    *v = T::of(std * z);
                }
            }
            Init::Orthogonal { gain } => {
                let q = orthogonal(rng, rows, fan_in);
                for (v, q) in w.iter_mut().zip(q) {
                    *v = T::of(gain * q);
                }
            }
        }
    }

    /// Fills a bias of a layer with fan-in `fan_in`.
    pub fn fill_bias<T: Real>(&self, rng: &mut ChaCha8Rng, fan_in: usize, b: &mut [T]) {
        match *self {
            Init::PyTorchDefault => {
                let bound = 1.0 / (fan_in.max(1) as f64).sqrt();
                for v in b.iter_mut() {
                    *v = T::of(rng.random_range(-bound..bound));
                }
            }
            Init::KaimingNormal { .. } | Init::Orthogonal { .. } => b.fill(T::zero()),
        }
    }
}

/// A Haar-random `rows × cols` matrix (row-major) with orthonormal rows (`rows ≤ cols`)
/// or orthonormal columns (`rows ≥ cols`).
pub fn orthogonal(rng: &mut ChaCha8Rng, rows: usize, cols: usize) -> Vec<f64> {
    let (m, n) = (rows.max(cols), rows.min(cols));
    let mut a: Vec<f64> = (0..m * n).map(|_| rng.sample(StandardNormal)).collect();
    let (q, r) = householder_qr(&mut a, m, n);
    // Sign correction: Q·diag(sign(R_jj)).
    let mut q = q;
    for j in 0..n {
        if r[j * n + j] < 0.0 {
            for i in 0..m {
                q[i * n + j] = -q[i * n + j];
            }
        }
    }
    if rows >= cols {
        q
    } else {
        // Transpose the tall m×n factor to rows × cols = n × m.
        let mut t = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                t[j * m + i] = q[i * n + j];
            }
        }
        t
    }
}

/// Thin Householder QR of a row-major `m × n` matrix with `m ≥ n`.
///
/// Returns `(Q, R)`: `Q` is `m × n` with orthonormal columns, `R` is `n × n` upper
/// triangular, and `A = QR`. For column `j` the reflector `H_j = I − 2vvᵀ` (with
/// `‖v‖ = 1`) maps `A[j.., j]` to `αe₁` with `α = −sign(a_jj)‖A[j.., j]‖` (the sign avoids
/// cancellation); `Q = H₀H₁⋯H_{n−1}` applied to the first `n` columns of the identity.
/// `a` is overwritten.
pub fn householder_qr(a: &mut [f64], m: usize, n: usize) -> (Vec<f64>, Vec<f64>) {
    assert!(
        m >= n && a.len() == m * n,
        "householder_qr needs a tall m×n matrix"
    );
    let mut vs: Vec<Vec<f64>> = Vec::with_capacity(n);
    for j in 0..n {
        let norm = (j..m)
            .map(|i| a[i * n + j] * a[i * n + j])
            .sum::<f64>()
            .sqrt();
        let mut v: Vec<f64> = (j..m).map(|i| a[i * n + j]).collect();
        if norm == 0.0 {
            vs.push(vec![0.0; m - j]);
            continue;
        }
        let alpha = if v[0] > 0.0 { -norm } else { norm };
        v[0] -= alpha;
        let vn = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        if vn > 0.0 {
            v.iter_mut().for_each(|x| *x /= vn);
        }
        // A[j.., j..] ← (I − 2vvᵀ) A[j.., j..].
        for c in j..n {
            let dot: f64 = (j..m).map(|i| v[i - j] * a[i * n + c]).sum();
            for i in j..m {
                a[i * n + c] -= 2.0 * v[i - j] * dot;
            }
        }
        vs.push(v);
    }
    let mut r = vec![0.0; n * n];
    for i in 0..n {
        for j in i..n {
            r[i * n + j] = a[i * n + j];
        }
    }
    // Q = H₀⋯H_{n−1} [I_n; 0], applying the reflectors from the last one.
    let mut q = vec![0.0; m * n];
    for i in 0..n {
        q[i * n + i] = 1.0;
    }
    for j in (0..n).rev() {
        let v = &vs[j];
        for c in 0..n {
            let dot: f64 = (j..m).map(|i| v[i - j] * q[i * n + c]).sum();
            for i in j..m {
                q[i * n + c] -= 2.0 * v[i - j] * dot;
            }
        }
    }
    (q, r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn qr_reconstructs_and_is_orthonormal() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for &(m, n) in &[(1, 1), (5, 3), (8, 8), (40, 17)] {
            let a0: Vec<f64> = (0..m * n).map(|_| rng.sample(StandardNormal)).collect();
            let mut a = a0.clone();
            let (q, r) = householder_qr(&mut a, m, n);
            for i in 0..m {
                for j in 0..n {
                    let qr: f64 = (0..n).map(|p| q[i * n + p] * r[p * n + j]).sum();
                    assert!((qr - a0[i * n + j]).abs() < 1e-12);
                }
            }
            for i in 0..n {
                for j in 0..i {
                    assert_eq!(r[i * n + j], 0.0);
                }
            }
        }
    }

    #[test]
    fn orthogonal_rows_or_columns() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        for &(rows, cols) in &[(128, 128), (128, 2), (2, 128), (32, 96)] {
            let w = orthogonal(&mut rng, rows, cols);
            // Gram matrix of the smaller side.
            let (outer, inner, by_rows) = if rows <= cols {
                (rows, cols, true)
            } else {
                (cols, rows, false)
            };
            for a in 0..outer {
                for b in 0..outer {
                    let g: f64 = (0..inner)
                        .map(|k| {
                            if by_rows {
                                w[a * cols + k] * w[b * cols + k]
                            } else {
                                w[k * cols + a] * w[k * cols + b]
                            }
                        })
                        .sum();
                    let want = if a == b { 1.0 } else { 0.0 };
                    assert!((g - want).abs() < 1e-12, "{rows}x{cols}: G[{a},{b}] = {g}");
                }
            }
        }
    }

    #[test]
    fn kaiming_and_pytorch_statistics() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let (rows, fan_in) = (512, 256);
        let mut w = vec![0.0f64; rows * fan_in];
        Init::kaiming_relu().fill_weight(&mut rng, rows, fan_in, &mut w);
        let n = w.len() as f64;
        let mean = w.iter().sum::<f64>() / n;
        let var = w.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
        let want = 2.0 / fan_in as f64;
        assert!(mean.abs() < 3.0 * (want / n).sqrt(), "mean {mean}");
        assert!((var / want - 1.0).abs() < 0.02, "variance {var} vs {want}");
        Init::PyTorchDefault.fill_weight(&mut rng, rows, fan_in, &mut w);
        let b = 1.0 / (fan_in as f64).sqrt();
        assert!(w.iter().all(|v| v.abs() <= b));
        let var = w.iter().map(|v| v * v).sum::<f64>() / n;
        assert!(
            (var / (b * b / 3.0) - 1.0).abs() < 0.02,
            "uniform variance {var}"
        );
        let mut bias = vec![1.0f64; 64];
        Init::orthogonal().fill_bias(&mut rng, fan_in, &mut bias);
        assert!(bias.iter().all(|v| *v == 0.0));
    }

    #[test]
    fn same_seed_same_numbers() {
        let draw = |seed| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let mut w = vec![0.0f32; 12];
            Init::orthogonal().fill_weight(&mut rng, 3, 4, &mut w);
            w
        };
        assert_eq!(draw(5), draw(5));
        assert_ne!(draw(5), draw(6));
    }
}
