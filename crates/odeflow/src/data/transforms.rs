//! Per-channel normalisation and the standard image augmentation.
//!
//! * [`ChannelNorm`]: `x ← (x − mean_c) / std_c` for every pixel of channel `c` (samples of
//!   shape `(C, …)`, channel-major in a row). Constants for MNIST (mean 0.1307, std 0.3081)
//!   and CIFAR-10 (mean (0.4914, 0.4822, 0.4465), std (0.2470, 0.2435, 0.2616), the
//!   statistics of the training images), or [`ChannelNorm::fit`] on any data set. Loaders
//!   never normalise on their own.
//! * [`CropFlip`]: the augmentation of the ResNet CIFAR-10 recipe (He et al. 2016): pad the
//!   `H × W` image by `padding` pixels of value `fill` on each side, cut a random `H × W`
//!   window, then mirror it left–right with probability ½ — per sample, independently.
//!   Draws come from a ChaCha8 generator seeded at construction; reseed it per epoch
//!   ([`CropFlip::reseed`], e.g. with [`super::derive_seed`]`(seed, epoch)`) to make any
//!   epoch reproducible on its own. Apply it to training batches only. The pad value is
//!   `fill` in whatever units the batch is in: 0 on `[0, 1]` pixels is black (torchvision's
//!   default); on normalised pixels it is the channel mean.

use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::dataset::{seeded_rng, Dataset};
use crate::error::{ArgError, ShapeError};
use crate::real::Real;
use crate::state::Batch;

/// Per-channel mean and standard deviation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelNorm {
    /// Mean of each channel.
    pub mean: Vec<f64>,
    /// Standard deviation of each channel (> 0).
    pub std: Vec<f64>,
}

impl ChannelNorm {
    /// Checks that there is one positive, finite std per mean.
    pub fn new(mean: Vec<f64>, std: Vec<f64>) -> Result<Self, ArgError> {
        if mean.len() != std.len() || mean.is_empty() {
            return Err(ShapeError {
                what: "channel std list (one per channel mean)",
                expected: mean.len().max(1),
                got: std.len(),
            }
            .into());
        }
        if let Some(i) = std.iter().position(|s| !(s.is_finite() && *s > 0.0)) {
            return Err(ArgError::invalid(
                format!("std[{i}]"),
                std[i],
                "must be positive and finite",
            ));
        }
        if let Some(i) = mean.iter().position(|m| !m.is_finite()) {
            return Err(ArgError::invalid(
                format!("mean[{i}]"),
                mean[i],
                "must be finite",
            ));
        }
        Ok(Self { mean, std })
    }

    /// The usual MNIST statistics.
    pub fn mnist() -> Self {
        Self {
            mean: vec![0.1307],
            std: vec![0.3081],
        }
    }

    /// The usual CIFAR-10 statistics (of its training images).
    pub fn cifar10() -> Self {
        Self {
            mean: vec![0.4914, 0.4822, 0.4465],
            std: vec![0.2470, 0.2435, 0.2616],
        }
    }

    /// Mean and (population) standard deviation of each channel of a data set.
    pub fn fit<T: Real>(data: &Dataset<T>) -> Result<Self, ArgError> {
        let c = data.sample_shape().first().copied().unwrap_or(1).max(1);
        let plane = data.inputs().cols() / c;
        let mut sum = vec![0.0f64; c];
        let mut sq = vec![0.0f64; c];
        for row in data.inputs().iter_rows() {
            for (k, ch) in row.chunks_exact(plane.max(1)).enumerate() {
                for v in ch {
                    sum[k] += v.f64();
                    sq[k] += v.f64() * v.f64();
                }
            }
        }
        let n = (data.len() * plane) as f64;
        if n == 0.0 {
            return Err(ArgError::invalid(
                "data set size",
                0,
                "cannot fit statistics on no data",
            ));
        }
        let mean: Vec<f64> = sum.iter().map(|s| s / n).collect();
        let std = sq
            .iter()
            .zip(&mean)
            .map(|(q, m)| (q / n - m * m).max(0.0).sqrt())
            .collect();
        Self::new(mean, std)
    }

    /// Number of channels.
    pub fn channels(&self) -> usize {
        self.mean.len()
    }

    fn check(&self, cols: usize) -> Result<usize, ArgError> {
        let c = self.channels();
        if !cols.is_multiple_of(c) {
            return Err(ArgError::invalid(
                "sample size",
                cols,
                format!("is not a multiple of the {c} channels of the normalisation"),
            ));
        }
        Ok(cols / c)
    }

    /// Normalises a batch whose rows hold `channels()` equal planes, in place.
    pub fn apply_batch<T: Real>(&self, batch: &mut Batch<T>) -> Result<(), ArgError> {
        let plane = self.check(batch.cols())?;
        self.map(batch, plane, |v, m, s| (v - m) / s);
        Ok(())
    }

    /// Undoes [`ChannelNorm::apply_batch`].
    pub fn invert_batch<T: Real>(&self, batch: &mut Batch<T>) -> Result<(), ArgError> {
        let plane = self.check(batch.cols())?;
        self.map(batch, plane, |v, m, s| v * s + m);
        Ok(())
    }

    /// Normalises a data set in place; its sample shape must start with `channels()`.
    pub fn apply<T: Real>(&self, data: &mut Dataset<T>) -> Result<(), ArgError> {
        let c = data.sample_shape().first().copied().unwrap_or(0);
        if c != self.channels() {
            return Err(ShapeError {
                what: "channels of the samples (first entry of sample_shape)",
                expected: self.channels(),
                got: c,
            }
            .into());
        }
        self.apply_batch(data.inputs_mut())
    }

    fn map<T: Real>(&self, batch: &mut Batch<T>, plane: usize, f: impl Fn(T, T, T) -> T) {
        let (m, s): (Vec<T>, Vec<T>) = self
            .mean
            .iter()
            .zip(&self.std)
            .map(|(m, s)| (T::of(*m), T::of(*s)))
            .unzip();
        if plane == 0 {
            return;
        }
        for (k, ch) in batch.as_mut_slice().chunks_exact_mut(plane).enumerate() {
            let c = k % m.len();
            ch.iter_mut().for_each(|v| *v = f(*v, m[c], s[c]));
        }
    }
}

/// Random crop with padding and random horizontal flip (see the module docs).
#[derive(Debug, Clone)]
pub struct CropFlip<T> {
    /// Pixels of padding on each side (4 for CIFAR-10).
    pub padding: usize,
    /// Whether to mirror left–right with probability ½.
    pub flip: bool,
    /// Value of the padding pixels.
    pub fill: T,
    shape: [usize; 3],
    rng: ChaCha8Rng,
    scratch: Vec<T>,
}

impl<T: Real> CropFlip<T> {
    /// Augmentation of samples of shape `(C, H, W)`, drawn with `seed`.
    pub fn new(shape: &[usize], padding: usize, flip: bool, seed: u64) -> Result<Self, ArgError> {
        let shape: [usize; 3] = shape.try_into().map_err(|_| {
            ArgError::invalid("sample shape", format!("{shape:?}"), "must be (C, H, W)")
        })?;
        Ok(Self {
            padding,
            flip,
            fill: T::zero(),
            shape,
            rng: seeded_rng(seed),
            scratch: vec![T::zero(); shape.iter().product()],
        })
    }

    /// The CIFAR-10 recipe: shape (3, 32, 32), padding 4, flips.
    pub fn cifar10(seed: u64) -> Self {
        Self::new(&[3, 32, 32], 4, true, seed).expect("a valid shape")
    }

    /// Restarts the random draws from `seed`.
    pub fn reseed(&mut self, seed: u64) {
        self.rng = seeded_rng(seed);
    }

    /// Augments every sample (row) of `batch` in place.
    pub fn apply(&mut self, batch: &mut Batch<T>) -> Result<(), ArgError> {
        let size = self.scratch.len();
        if batch.cols() != size {
            return Err(ShapeError {
                what: "augmented sample",
                expected: size,
                got: batch.cols(),
            }
            .into());
        }
        for i in 0..batch.rows() {
            self.apply_sample(batch.row_mut(i));
        }
        Ok(())
    }

    /// Augments one sample of the constructed shape in place.
    pub fn apply_sample(&mut self, x: &mut [T]) {
        let [c, h, w] = self.shape;
        let p = self.padding as i64;
        let dy = (self.rng.random_range(0..=2 * p) - p) as isize;
        let dx = (self.rng.random_range(0..=2 * p) - p) as isize;
        let mirror = self.flip && self.rng.random::<bool>();
        self.scratch.copy_from_slice(x);
        for ch in 0..c {
            let src = &self.scratch[ch * h * w..(ch + 1) * h * w];
            let dst = &mut x[ch * h * w..(ch + 1) * h * w];
            for i in 0..h {
                let si = i as isize + dy;
                for j in 0..w {
                    let jj = if mirror { w - 1 - j } else { j };
                    let sj = jj as isize + dx;
                    dst[i * w + j] = if si >= 0 && si < h as isize && sj >= 0 && sj < w as isize {
                        src[si as usize * w + sj as usize]
                    } else {
                        self.fill
                    };
                }
            }
        }
    }
}
