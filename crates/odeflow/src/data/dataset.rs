//! In-memory data sets and their seeded mini-batch iterators.
//!
//! * [`Dataset`]: labelled samples for classification: `inputs` is a [`Batch`] with one
//!   sample per row (image samples of shape `(C, H, W)` flattened in C, H, W order), `labels`
//!   one class index per row, `sample_shape` the shape of one sample and `num_classes`.
//! * [`PairDataset`]: regression pairs `(x, y)` (e.g. a state and the exact flow applied to
//!   it), with component names for CSV headers.
//! * [`TrainTest`]: a training and a test part.
//! * [`BatchOrder`]: the index order of mini-batches. With a seed, epoch `e` visits the
//!   samples in a permutation drawn from `ChaCha8Rng::seed_from_u64(derive_seed(seed, e))`,
//!   so any epoch can be reproduced on its own (resuming a run) and the same seed always
//!   gives the same batches. Without a seed the stored order is kept. The last, short batch
//!   of an epoch is kept unless `drop_last` is set.
//! * [`MiniBatches`] / [`PairBatches`]: iterate an epoch's batches, copying the rows into
//!   buffers that are reused from batch to batch ([`Batch::gather_rows`]), so a training loop
//!   allocates nothing per batch.
//!
//! Splits ([`Dataset::split`], [`PairDataset::split`]) draw the test indices with a seeded
//! permutation and keep the relative order of the source in both parts.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::error::ArgError;
use crate::real::Real;
use crate::state::Batch;

/// A seed for a sub-task (`stream`) derived from a user seed, by the SplitMix64 mix: nearby
/// `(seed, stream)` pairs give unrelated seeds.
pub fn derive_seed(seed: u64, stream: u64) -> u64 {
    let mut z = seed
        .wrapping_add(stream.wrapping_mul(0xD1B5_4A32_D192_ED03))
        .wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The generator odeflow uses for every random choice: ChaCha8 seeded with `seed`.
pub fn seeded_rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// Sorted index sets `(train, test)` of a seeded split of `n` samples with `n_test` in the
/// test part.
pub fn split_indices(
    n: usize,
    n_test: usize,
    seed: u64,
) -> Result<(Vec<usize>, Vec<usize>), ArgError> {
    if n_test > n {
        return Err(ArgError::invalid(
            "test size",
            n_test,
            format!("must not exceed the number of samples ({n})"),
        ));
    }
    let mut perm: Vec<usize> = (0..n).collect();
    perm.shuffle(&mut seeded_rng(seed));
    let mut test = perm[..n_test].to_vec();
    let mut train = perm[n_test..].to_vec();
    test.sort_unstable();
    train.sort_unstable();
    Ok((train, test))
}

/// Number of test samples for a test fraction in `[0, 1]` (rounded to the nearest integer).
pub fn test_count(n: usize, test_fraction: f64) -> Result<usize, ArgError> {
    if !(0.0..=1.0).contains(&test_fraction) {
        return Err(ArgError::invalid(
            "test_fraction",
            test_fraction,
            "must lie in [0, 1]",
        ));
    }
    Ok((test_fraction * n as f64).round() as usize)
}

fn check_indices(idx: &[usize], n: usize) -> Result<(), ArgError> {
    match idx.iter().position(|&i| i >= n) {
        Some(k) => Err(ArgError::invalid(
            format!("index[{k}]"),
            idx[k],
            format!("out of range for a data set of {n} samples"),
        )),
        None => Ok(()),
    }
}

/// A training part and a test part.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainTest<D> {
    /// Training data.
    pub train: D,
    /// Test data.
    pub test: D,
}

/// Labelled samples for classification.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset<T> {
    inputs: Batch<T>,
    labels: Vec<usize>,
    sample_shape: Vec<usize>,
    num_classes: usize,
}

impl<T: Real> Dataset<T> {
    /// Checks and wraps: one label per row, labels below `num_classes`, and
    /// `Π sample_shape = inputs.cols()`.
    pub fn new(
        inputs: Batch<T>,
        labels: Vec<usize>,
        sample_shape: Vec<usize>,
        num_classes: usize,
    ) -> Result<Self, ArgError> {
        if labels.len() != inputs.rows() {
            return Err(crate::error::ShapeError {
                what: "label list (one label per sample)",
                expected: inputs.rows(),
                got: labels.len(),
            }
            .into());
        }
        let size: usize = sample_shape.iter().product();
        if size != inputs.cols() {
            return Err(ArgError::invalid(
                "sample_shape",
                format!("{sample_shape:?}"),
                format!("has {size} elements but a sample has {}", inputs.cols()),
            ));
        }
        if let Some(i) = labels.iter().position(|&l| l >= num_classes) {
            return Err(ArgError::invalid(
                format!("labels[{i}]"),
                labels[i],
                format!("must be below num_classes = {num_classes}"),
            ));
        }
        Ok(Self {
            inputs,
            labels,
            sample_shape,
            num_classes,
        })
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when there are no samples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The samples, one per row.
    pub fn inputs(&self) -> &Batch<T> {
        &self.inputs
    }

    /// The samples, mutable (for in-place transforms that keep the shape).
    pub fn inputs_mut(&mut self) -> &mut Batch<T> {
        &mut self.inputs
    }

    /// One class index per sample.
    pub fn labels(&self) -> &[usize] {
        &self.labels
    }

    /// Shape of one sample, e.g. `[1, 28, 28]` or `[1, d]`.
    pub fn sample_shape(&self) -> &[usize] {
        &self.sample_shape
    }

    /// Number of classes.
    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// Number of samples of each class.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut c = vec![0; self.num_classes];
        for &l in &self.labels {
            c[l] += 1;
        }
        c
    }

    /// The parts `(inputs, labels, sample_shape, num_classes)`.
    pub fn into_parts(self) -> (Batch<T>, Vec<usize>, Vec<usize>, usize) {
        (
            self.inputs,
            self.labels,
            self.sample_shape,
            self.num_classes,
        )
    }

    /// The samples at `idx`, in that order (indices may repeat).
    pub fn subset(&self, idx: &[usize]) -> Result<Self, ArgError> {
        check_indices(idx, self.len())?;
        let mut inputs = Batch::zeros(0, self.inputs.cols());
        inputs.gather_rows(&self.inputs, idx);
        Ok(Self {
            inputs,
            labels: idx.iter().map(|&i| self.labels[i]).collect(),
            sample_shape: self.sample_shape.clone(),
            num_classes: self.num_classes,
        })
    }

    /// The first `n` samples (all of them if there are fewer).
    pub fn take(&self, n: usize) -> Self {
        let idx: Vec<usize> = (0..n.min(self.len())).collect();
        self.subset(&idx).expect("indices are in range")
    }

    /// A seeded split with `n_test` samples in the test part (see the module docs).
    pub fn split(&self, n_test: usize, seed: u64) -> Result<TrainTest<Self>, ArgError> {
        let (train, test) = split_indices(self.len(), n_test, seed)?;
        Ok(TrainTest {
            train: self.subset(&train)?,
            test: self.subset(&test)?,
        })
    }

    /// A seeded split with `round(test_fraction · len)` samples in the test part.
    pub fn split_fraction(
        &self,
        test_fraction: f64,
        seed: u64,
    ) -> Result<TrainTest<Self>, ArgError> {
        self.split(test_count(self.len(), test_fraction)?, seed)
    }

    /// The same samples in another scalar type.
    pub fn cast<U: Real>(&self) -> Dataset<U> {
        Dataset {
            inputs: self.inputs.cast(),
            labels: self.labels.clone(),
            sample_shape: self.sample_shape.clone(),
            num_classes: self.num_classes,
        }
    }

    /// Mini-batches of `batch_size` samples: shuffled per epoch when `seed` is given, in the
    /// stored order otherwise (see [`BatchOrder`]).
    pub fn batches(
        &self,
        batch_size: usize,
        drop_last: bool,
        seed: Option<u64>,
    ) -> Result<MiniBatches<'_, T>, ArgError> {
        Ok(MiniBatches {
            data: self,
            order: BatchOrder::new(self.len(), batch_size, drop_last, seed)?,
            inputs: Batch::zeros(0, self.inputs.cols()),
            labels: Vec::with_capacity(batch_size),
        })
    }
}

/// Regression pairs `(x, y)`, one pair per row of `x` and `y`.
#[derive(Debug, Clone, PartialEq)]
pub struct PairDataset<T> {
    x: Batch<T>,
    y: Batch<T>,
    x_names: Vec<String>,
    y_names: Vec<String>,
}

impl<T: Real> PairDataset<T> {
    /// Wraps `x` and `y` (equal row counts). Columns are named `x0, x1, …` and, when `y` has
    /// as many columns as `x`, `x0_T, x1_T, …` (else `y0, y1, …`).
    pub fn new(x: Batch<T>, y: Batch<T>) -> Result<Self, ArgError> {
        let names: Vec<String> = (0..x.cols()).map(|i| format!("x{i}")).collect();
        Self::with_names(x, y, names)
    }

    /// Wraps `x` and `y`, naming the components of `x` by `names`; the components of `y`
    /// are named `<name>_T` when `y` has as many columns as `x`, else `y0, y1, …`.
    pub fn with_names(x: Batch<T>, y: Batch<T>, names: Vec<String>) -> Result<Self, ArgError> {
        let y_names = if y.cols() == x.cols() {
            names.iter().map(|n| format!("{n}_T")).collect()
        } else {
            (0..y.cols()).map(|i| format!("y{i}")).collect()
        };
        Self::with_all_names(x, y, names, y_names)
    }

    /// Wraps `x` and `y` with explicit column names for both.
    pub fn with_all_names(
        x: Batch<T>,
        y: Batch<T>,
        x_names: Vec<String>,
        y_names: Vec<String>,
    ) -> Result<Self, ArgError> {
        let checks = [
            ("y rows (one target per input)", x.rows(), y.rows()),
            ("x column names", x.cols(), x_names.len()),
            ("y column names", y.cols(), y_names.len()),
        ];
        for (what, expected, got) in checks {
            if expected != got {
                return Err(crate::error::ShapeError {
                    what,
                    expected,
                    got,
                }
                .into());
            }
        }
        Ok(Self {
            x,
            y,
            x_names,
            y_names,
        })
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.x.rows()
    }

    /// True when there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.x.rows() == 0
    }

    /// Inputs, one per row.
    pub fn x(&self) -> &Batch<T> {
        &self.x
    }

    /// Targets, one per row.
    pub fn y(&self) -> &Batch<T> {
        &self.y
    }

    /// Names of the input columns.
    pub fn x_names(&self) -> &[String] {
        &self.x_names
    }

    /// Names of the target columns.
    pub fn y_names(&self) -> &[String] {
        &self.y_names
    }

    /// The parts `(x, y)`.
    pub fn into_parts(self) -> (Batch<T>, Batch<T>) {
        (self.x, self.y)
    }

    /// The pairs at `idx`, in that order.
    pub fn subset(&self, idx: &[usize]) -> Result<Self, ArgError> {
        check_indices(idx, self.len())?;
        let mut x = Batch::zeros(0, self.x.cols());
        let mut y = Batch::zeros(0, self.y.cols());
        x.gather_rows(&self.x, idx);
        y.gather_rows(&self.y, idx);
        Ok(Self {
            x,
            y,
            x_names: self.x_names.clone(),
            y_names: self.y_names.clone(),
        })
    }

    /// A seeded split with `n_test` pairs in the test part.
    pub fn split(&self, n_test: usize, seed: u64) -> Result<TrainTest<Self>, ArgError> {
        let (train, test) = split_indices(self.len(), n_test, seed)?;
        Ok(TrainTest {
            train: self.subset(&train)?,
            test: self.subset(&test)?,
        })
    }

    /// The same pairs in another scalar type.
    pub fn cast<U: Real>(&self) -> PairDataset<U> {
        PairDataset {
            x: self.x.cast(),
            y: self.y.cast(),
            x_names: self.x_names.clone(),
            y_names: self.y_names.clone(),
        }
    }

    /// Mini-batches of `batch_size` pairs (see [`BatchOrder`]).
    pub fn batches(
        &self,
        batch_size: usize,
        drop_last: bool,
        seed: Option<u64>,
    ) -> Result<PairBatches<'_, T>, ArgError> {
        Ok(PairBatches {
            data: self,
            order: BatchOrder::new(self.len(), batch_size, drop_last, seed)?,
            x: Batch::zeros(0, self.x.cols()),
            y: Batch::zeros(0, self.y.cols()),
        })
    }
}

/// The order in which the samples of one epoch are visited, cut into batches.
#[derive(Debug, Clone)]
pub struct BatchOrder {
    batch_size: usize,
    drop_last: bool,
    seed: Option<u64>,
    epoch: u64,
    order: Vec<usize>,
    pos: usize,
}

impl BatchOrder {
    /// Batches of `batch_size ≥ 1` out of `n` samples, starting at epoch 0.
    pub fn new(
        n: usize,
        batch_size: usize,
        drop_last: bool,
        seed: Option<u64>,
    ) -> Result<Self, ArgError> {
        if batch_size == 0 {
            return Err(ArgError::invalid("batch_size", 0, "must be at least 1"));
        }
        let mut o = Self {
            batch_size,
            drop_last,
            seed,
            epoch: 0,
            order: (0..n).collect(),
            pos: 0,
        };
        o.set_epoch(0);
        Ok(o)
    }

    /// Restarts at the beginning of epoch `epoch` (its order depends only on the seed and
    /// `epoch`).
    pub fn set_epoch(&mut self, epoch: u64) {
        self.epoch = epoch;
        self.pos = 0;
        for (k, v) in self.order.iter_mut().enumerate() {
            *v = k;
        }
        if let Some(seed) = self.seed {
            self.order
                .shuffle(&mut seeded_rng(derive_seed(seed, epoch)));
        }
    }

    /// Starts the next epoch.
    pub fn next_epoch(&mut self) {
        self.set_epoch(self.epoch + 1);
    }

    /// The current epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Batches per epoch.
    pub fn batches_per_epoch(&self) -> usize {
        let n = self.order.len();
        if self.drop_last {
            n / self.batch_size
        } else {
            n.div_ceil(self.batch_size)
        }
    }

    /// Indices of the next batch of this epoch, or `None` when the epoch is over.
    pub fn next_indices(&mut self) -> Option<&[usize]> {
        let n = self.order.len();
        let end = (self.pos + self.batch_size).min(n);
        if self.pos >= n || (self.drop_last && end - self.pos < self.batch_size) {
            return None;
        }
        let start = self.pos;
        self.pos = end;
        Some(&self.order[start..end])
    }
}

/// One mini-batch of a [`Dataset`].
#[derive(Debug, Clone, Copy)]
pub struct LabelledBatch<'a, T> {
    /// The samples, one per row.
    pub inputs: &'a Batch<T>,
    /// Their labels.
    pub labels: &'a [usize],
    /// Their indices in the data set.
    pub indices: &'a [usize],
}

/// Mini-batches of a [`Dataset`], in reused buffers (see [`Dataset::batches`]).
#[derive(Debug)]
pub struct MiniBatches<'a, T> {
    data: &'a Dataset<T>,
    order: BatchOrder,
    inputs: Batch<T>,
    labels: Vec<usize>,
}

impl<T: Real> MiniBatches<'_, T> {
    /// The next batch of the current epoch, or `None` when the epoch is over.
    pub fn next_batch(&mut self) -> Option<LabelledBatch<'_, T>> {
        let idx = self.order.next_indices()?;
        self.inputs.gather_rows(&self.data.inputs, idx);
        self.labels.clear();
        self.labels.extend(idx.iter().map(|&i| self.data.labels[i]));
        Some(LabelledBatch {
            inputs: &self.inputs,
            labels: &self.labels,
            indices: idx,
        })
    }

    /// Starts the next epoch (a fresh permutation when shuffling).
    pub fn next_epoch(&mut self) {
        self.order.next_epoch();
    }

    /// The batch order (epoch, batches per epoch; `set_epoch` to resume).
    pub fn order_mut(&mut self) -> &mut BatchOrder {
        &mut self.order
    }
}

/// One mini-batch of a [`PairDataset`].
#[derive(Debug, Clone, Copy)]
pub struct PairBatch<'a, T> {
    /// Inputs.
    pub x: &'a Batch<T>,
    /// Targets.
    pub y: &'a Batch<T>,
    /// Their indices in the data set.
    pub indices: &'a [usize],
}

/// Mini-batches of a [`PairDataset`], in reused buffers (see [`PairDataset::batches`]).
#[derive(Debug)]
pub struct PairBatches<'a, T> {
    data: &'a PairDataset<T>,
    order: BatchOrder,
    x: Batch<T>,
    y: Batch<T>,
}

impl<T: Real> PairBatches<'_, T> {
    /// The next batch of the current epoch, or `None` when the epoch is over.
    pub fn next_batch(&mut self) -> Option<PairBatch<'_, T>> {
        let idx = self.order.next_indices()?;
        self.x.gather_rows(&self.data.x, idx);
        self.y.gather_rows(&self.data.y, idx);
        Some(PairBatch {
            x: &self.x,
            y: &self.y,
            indices: idx,
        })
    }

    /// Starts the next epoch.
    pub fn next_epoch(&mut self) {
        self.order.next_epoch();
    }

    /// The batch order (epoch, batches per epoch; `set_epoch` to resume).
    pub fn order_mut(&mut self) -> &mut BatchOrder {
        &mut self.order
    }
}
