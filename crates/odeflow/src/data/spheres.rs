//! Concentric spheres: the classification task of Ott et al., *ResNet after all? Neural
//! ODEs and their numerical solution* (ICLR 2021), used there in d = 2, 3, 10 and 900
//! (`sphere2` is d = 2).
//!
//! Of `N` points, a quarter lie in the inner shell `0.10 ≤ ‖x‖ ≤ 0.15` (label 0), half in the
//! middle shell `0.25 ≤ ‖x‖ ≤ 0.30` (label 1) and a quarter in the outer shell
//! `0.40 ≤ ‖x‖ ≤ 0.45` (label 0). A point of a shell `[r_min, r_max]` is `r · g/‖g‖` with
//! `g ~ N(0, I_d)` (a uniform direction) and `r = (r_max − r_min) · u^{1/d} + r_min`,
//! `u ~ U(0, 1)`, as in the paper's code (`u^{1/d}` would be uniform in volume for a full
//! ball; here it only biases points outwards within the shell).
//!
//! **Counts when `N` is not a multiple of 4**: the inner shell gets `⌊N/4⌋` points, the
//! outer shell `⌊N/2⌋ − ⌊N/4⌋` and the middle shell `N − ⌊N/2⌋`, so the two classes differ
//! by at most one point (`⌊N/2⌋` of label 0, `⌈N/2⌉` of label 1) and each shell is within
//! one point of `N/4, N/2, N/4`. For `N` divisible by 4 the counts are exactly those.
//!
//! Defaults: d = 2, 2000 training and 1000 test points, seed 0. The training and test sets
//! are drawn with independent seeds derived from the one seed
//! ([`super::derive_seed`]`(seed, 1)` and `(seed, 2)`), and each is shuffled. Samples
//! have shape `(1, d)`.

use rand::seq::SliceRandom;
use rand::RngExt;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

use super::dataset::{derive_seed, seeded_rng, Dataset, TrainTest};
use crate::error::ArgError;
use crate::real::Real;
use crate::state::Batch;

/// The three shells: `(r_min, r_max, label)` and the share of the points each gets.
pub const SPHERE_SHELLS: [(f64, f64, usize); 3] =
    [(0.10, 0.15, 0), (0.25, 0.30, 1), (0.40, 0.45, 0)];

/// Settings of the concentric-spheres data set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SpheresConfig {
    /// Dimension d ≥ 1 of the points.
    pub dim: usize,
    /// Number of training points.
    pub train: usize,
    /// Number of test points.
    pub test: usize,
    /// Seed of both sets.
    pub seed: u64,
}

impl Default for SpheresConfig {
    fn default() -> Self {
        Self {
            dim: 2,
            train: 2000,
            test: 1000,
            seed: 0,
        }
    }
}

impl SpheresConfig {
    /// The defaults in dimension `dim`.
    pub fn with_dim(dim: usize) -> Self {
        Self {
            dim,
            ..Self::default()
        }
    }

    /// The defaults for a name `sphere<d>` (or `spheres<d>`), e.g. `sphere2`, `sphere900`.
    pub fn from_name(name: &str) -> Result<Self, ArgError> {
        let digits = name
            .strip_prefix("spheres")
            .or_else(|| name.strip_prefix("sphere"));
        match digits.and_then(|d| d.parse::<usize>().ok()) {
            Some(d) if d >= 1 => Ok(Self::with_dim(d)),
            _ => Err(ArgError::invalid(
                "data set name",
                name,
                "a concentric-spheres name is sphere<d> with a dimension d ≥ 1, e.g. sphere2",
            )),
        }
    }

    /// Draws the training and test sets.
    pub fn generate<T: Real>(&self) -> Result<TrainTest<Dataset<T>>, ArgError> {
        Ok(TrainTest {
            train: spheres(self.dim, self.train, derive_seed(self.seed, 1))?,
            test: spheres(self.dim, self.test, derive_seed(self.seed, 2))?,
        })
    }
}

/// Points per shell `[inner, middle, outer]` for `n` points (see the module docs).
pub fn shell_counts(n: usize) -> [usize; 3] {
    let inner = n / 4;
    let outer = n / 2 - inner;
    [inner, n - n / 2, outer]
}

/// `n` shuffled points of the concentric-spheres task in dimension `dim`, drawn with `seed`.
pub fn spheres<T: Real>(dim: usize, n: usize, seed: u64) -> Result<Dataset<T>, ArgError> {
    if dim == 0 {
        return Err(ArgError::invalid("dim", 0, "must be at least 1"));
    }
    let mut rng = seeded_rng(seed);
    let mut points: Vec<(Vec<f64>, usize)> = Vec::with_capacity(n);
    let mut g = vec![0.0f64; dim];
    for (&(r_min, r_max, label), count) in SPHERE_SHELLS.iter().zip(shell_counts(n)) {
        for _ in 0..count {
            let norm = loop {
                g.iter_mut().for_each(|v| *v = rng.sample(StandardNormal));
                let s = g.iter().map(|v| v * v).sum::<f64>().sqrt();
                if s > 1e-300 {
                    break s;
                }
            };
            let u: f64 = rng.random();
            let r = (r_max - r_min) * u.powf(1.0 / dim as f64) + r_min;
            points.push((g.iter().map(|v| r * v / norm).collect(), label));
        }
    }
    points.shuffle(&mut rng);
    let mut data = Vec::with_capacity(n * dim);
    let mut labels = Vec::with_capacity(n);
    for (p, l) in points {
        data.extend(p.into_iter().map(T::of));
        labels.push(l);
    }
    let inputs = Batch::from_vec(n, dim, data)?;
    Dataset::new(inputs, labels, vec![1, dim], 2)
}
