//! Batch normalisation over the batch and spatial axes, per channel (Ioffe & Szegedy 2015),
//! as PyTorch's `BatchNorm1d` (on `(C)` or `(C, L)` samples) and `BatchNorm2d` (on
//! `(C, H, W)` samples).
//!
//! With `M = N·P` values per channel `c`:
//!
//! * train mode: `μ = mean(x)`, `σ² = mean((x − μ)²)` (biased), `x̂ = (x − μ)/√(σ² + ε)`,
//!   `y = γ x̂ + β`; the running statistics move by `r ← (1 − m) r + m s` with the batch
//!   mean and the *unbiased* variance `σ² M/(M − 1)` (PyTorch's convention).
//!   Exact VJP, which couples the samples of the batch:
//!   `∂x = γ/√(σ² + ε) · (∂y − mean(∂y) − x̂ · mean(∂y ⊙ x̂))`,
//!   `∂γ += Σ ∂y ⊙ x̂`, `∂β += Σ ∂y`.
//! * eval mode: `μ, σ²` are the running statistics, so the layer is affine per channel and
//!   `∂x = γ/√(σ² + ε) · ∂y`.
//!
//! A batch with `M = 1` in train mode normalises to `x̂ = 0` (PyTorch refuses it).
//! `ResNet`-style residual blocks often start with the last normalisation's scale at zero
//! (Goyal et al. 2017): [`BatchNormOptions::zero_init`].

use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{check_len, Init, Module, NnError, Pass, Saved, Shape};
use crate::real::Real;

/// Hyper-parameters of [`BatchNorm`] (PyTorch's defaults).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BatchNormOptions {
    /// `ε` added to the variance (1e-5).
    pub eps: f64,
    /// Weight of the new batch statistic in the running averages (0.1).
    pub momentum: f64,
    /// Learnable per-channel scale `γ` and shift `β` (true).
    pub affine: bool,
    /// Initialise `γ` and `β` to 0 instead of 1 and 0 (false).
    pub zero_init: bool,
}

impl Default for BatchNormOptions {
    fn default() -> Self {
        Self {
            eps: 1e-5,
            momentum: 0.1,
            affine: true,
            zero_init: false,
        }
    }
}

/// Per-channel batch normalisation with running statistics.
#[derive(Debug, Clone)]
pub struct BatchNorm<T> {
    shape: Shape,
    opts: BatchNormOptions,
    running_mean: Vec<T>,
    running_var: Vec<T>,
    sums: Vec<T>,
}

impl<T: Real> BatchNorm<T> {
    /// Batch normalisation of samples of shape `shape` (flat vectors normalise each
    /// feature; sequences and images each channel).
    pub fn new(shape: Shape, opts: BatchNormOptions) -> Result<Self, NnError> {
        if shape.channels() == 0 {
            return Err(NnError::invalid(
                "batch-norm channels",
                0,
                "must be positive",
            ));
        }
        if !(opts.eps > 0.0 && opts.eps.is_finite()) {
            return Err(NnError::invalid(
                "batch-norm eps",
                opts.eps,
                "must be positive and finite",
            ));
        }
        if !(0.0..=1.0).contains(&opts.momentum) {
            return Err(NnError::invalid(
                "batch-norm momentum",
                opts.momentum,
                "must lie in [0, 1]",
            ));
        }
        let c = shape.channels();
        Ok(Self {
            shape,
            opts,
            running_mean: vec![T::zero(); c],
            running_var: vec![T::one(); c],
            sums: vec![T::zero(); 2 * c],
        })
    }

    /// The options.
    pub fn options(&self) -> &BatchNormOptions {
        &self.opts
    }

    /// Running mean per channel.
    pub fn running_mean(&self) -> &[T] {
        &self.running_mean
    }

    /// Running (unbiased) variance per channel.
    pub fn running_var(&self) -> &[T] {
        &self.running_var
    }

    /// Sets the running statistics (e.g. loaded from a checkpoint).
    pub fn set_running_stats(&mut self, mean: &[T], var: &[T]) -> Result<(), NnError> {
        let c = self.shape.channels();
        for (what, v) in [("running mean", mean), ("running variance", var)] {
            if v.len() != c {
                return Err(crate::error::ShapeError {
                    what,
                    expected: c,
                    got: v.len(),
                }
                .into());
            }
        }
        self.running_mean.copy_from_slice(mean);
        self.running_var.copy_from_slice(var);
        Ok(())
    }
}

impl<T: Real> Module<T> for BatchNorm<T> {
    fn kind(&self) -> String {
        match self.shape {
            Shape::Image { .. } => "BatchNorm2d",
            _ => "BatchNorm1d",
        }
        .into()
    }
    fn in_shape(&self) -> Shape {
        self.shape
    }
    fn out_shape(&self) -> Shape {
        self.shape
    }
    fn param_shapes(&self) -> Vec<(&'static str, Vec<usize>)> {
        let c = self.shape.channels();
        if self.opts.affine {
            vec![("weight", vec![c]), ("bias", vec![c])]
        } else {
            Vec::new()
        }
    }
    /// `[μ (C), 1/√(σ² + ε) (C), 1 in train mode or 0]`.
    fn aux_len(&self) -> usize {
        2 * self.shape.channels() + 1
    }
    fn init_params(&self, _: &Init, _: &mut ChaCha8Rng, params: &mut [T]) {
        let c = self.shape.channels();
        if self.opts.affine {
            let scale = if self.opts.zero_init {
                T::zero()
            } else {
                T::one()
            };
            params[..c].fill(scale);
            params[c..2 * c].fill(T::zero());
        }
    }
    fn forward(&mut self, pass: &Pass<T>, params: &[T], x: &[T], y: &mut [T], aux: &mut [T]) {
        let c = self.shape.channels();
        let rows = pass.batch * self.shape.positions();
        check_len("batch-norm input", x.len(), rows * c);
        check_len("batch-norm output", y.len(), rows * c);
        let (mean, rest) = aux.split_at_mut(c);
        let (inv_std, mode) = rest.split_at_mut(c);
        let eps = T::of(self.opts.eps);
        if pass.train && rows > 0 {
            let m = T::of(rows as f64);
            mean.fill(T::zero());
            for row in x.chunks_exact(c) {
                for (s, v) in mean.iter_mut().zip(row) {
                    *s += *v;
                }
            }
            mean.iter_mut().for_each(|s| *s /= m);
            let var = &mut self.sums[..c];
            var.fill(T::zero());
            for row in x.chunks_exact(c) {
                for ((s, v), mu) in var.iter_mut().zip(row).zip(mean.iter()) {
                    let d = *v - *mu;
                    *s += d * d;
                }
            }
            let mom = T::of(self.opts.momentum);
            let unbias = if rows > 1 {
                T::of(rows as f64 / (rows - 1) as f64)
            } else {
                T::one()
            };
            for ch in 0..c {
                let v = var[ch] / m;
                inv_std[ch] = T::one() / (v + eps).sqrt();
                self.running_mean[ch] = (T::one() - mom) * self.running_mean[ch] + mom * mean[ch];
                self.running_var[ch] = (T::one() - mom) * self.running_var[ch] + mom * v * unbias;
            }
            mode[0] = T::one();
        } else if pass.train {
            // An empty batch: nothing to normalise, no statistics to record.
            mean.fill(T::zero());
            inv_std.fill(T::one());
            mode[0] = T::one();
        } else {
            mean.copy_from_slice(&self.running_mean);
            for (s, v) in inv_std.iter_mut().zip(&self.running_var) {
                *s = T::one() / (*v + eps).sqrt();
            }
            mode[0] = T::zero();
        }
        // y = a·x + b per channel.
        let (a, b) = self.sums.split_at_mut(c);
        for ch in 0..c {
            let (g, s) = if self.opts.affine {
                (params[ch], params[c + ch])
            } else {
                (T::one(), T::zero())
            };
            a[ch] = g * inv_std[ch];
            b[ch] = s - mean[ch] * a[ch];
        }
        for (xs, ys) in x.chunks_exact(c).zip(y.chunks_exact_mut(c)) {
            for ch in 0..c {
                ys[ch] = xs[ch] * a[ch] + b[ch];
            }
        }
    }
    fn backward(
        &mut self,
        pass: &Pass<T>,
        params: &[T],
        saved: Saved<'_, T>,
        gy: &[T],
        gx: &mut [T],
        gparams: &mut [T],
    ) {
        let c = self.shape.channels();
        let rows = pass.batch * self.shape.positions();
        check_len("batch-norm output gradient", gy.len(), rows * c);
        check_len("batch-norm input gradient", gx.len(), rows * c);
        let (mean, rest) = saved.aux.split_at(c);
        let (inv_std, mode) = rest.split_at(c);
        let train = mode[0] != T::zero();
        // Σ ∂y and Σ ∂y ⊙ x̂ per channel.
        let (sg, sgx) = self.sums.split_at_mut(c);
        sg.fill(T::zero());
        sgx.fill(T::zero());
        for (xs, gs) in saved.x.chunks_exact(c).zip(gy.chunks_exact(c)) {
            for ch in 0..c {
                let xh = (xs[ch] - mean[ch]) * inv_std[ch];
                sg[ch] += gs[ch];
                sgx[ch] += gs[ch] * xh;
            }
        }
        if self.opts.affine {
            let (gw, gb) = gparams.split_at_mut(c);
            for ch in 0..c {
                gw[ch] += sgx[ch];
                gb[ch] += sg[ch];
            }
        }
        let m = T::of(rows.max(1) as f64);
        for ((xs, gs), out) in saved
            .x
            .chunks_exact(c)
            .zip(gy.chunks_exact(c))
            .zip(gx.chunks_exact_mut(c))
        {
            for ch in 0..c {
                let scale = if self.opts.affine {
                    params[ch]
                } else {
                    T::one()
                } * inv_std[ch];
                out[ch] = if train {
                    let xh = (xs[ch] - mean[ch]) * inv_std[ch];
                    scale * (gs[ch] - sg[ch] / m - xh * sgx[ch] / m)
                } else {
                    scale * gs[ch]
                };
            }
        }
    }
}
