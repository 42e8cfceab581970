//! The data set of a run, loaded from its [`DataConfig`].
//!
//! * `sphere<d>`: Ott et al.'s concentric spheres, `train_size` (2000) and `test_size` (1000)
//!   points drawn with `data_seed`.
//! * `mnist`: the IDX files of the folder `dir` (standard 60 000 / 10 000 split, or a seeded
//!   8 000 / 2 000 split of the test files when only those are present), normalised with the
//!   usual mean 0.1307 and std 0.3081; `train_size`/`test_size` keep the first N images of
//!   each (already shuffled) part.
//! * `cifar10`: the binary batches of `dir`, normalised per channel, subsets likewise. The
//!   crop/flip augmentation is not applied (batches stay a pure function of the iteration,
//!   which exact resumption needs).

use crate::data::{
    load_cifar10, load_mnist, ChannelNorm, Cifar10Options, Dataset, MnistOptions, SpheresConfig,
    TrainTest,
};
use crate::Real;

use super::config::{DataConfig, DataKind};
use super::RunError;

/// Training and test set of a run (the one train/test pair type of the library).
pub type RunData<T> = TrainTest<Dataset<T>>;

impl<T: Real> TrainTest<Dataset<T>> {
    /// Shape of one sample.
    pub fn sample_shape(&self) -> &[usize] {
        self.train.sample_shape()
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.train.num_classes()
    }
}

/// Loads the data set a configuration names.
pub fn load_data<T: Real>(cfg: &DataConfig) -> Result<RunData<T>, RunError> {
    let data_err = |e: crate::data::DataError| RunError::input(e.to_string());
    let (mut train, mut test, norm) = match cfg.kind()? {
        DataKind::Spheres(dim) => {
            let s = SpheresConfig {
                dim,
                train: cfg.train_size.unwrap_or(2000),
                test: cfg.test_size.unwrap_or(1000),
                seed: cfg.data_seed,
            };
            if s.train == 0 || s.test == 0 {
                return Err(RunError::input(
                    "train_size and test_size must be at least 1",
                ));
            }
            let tt = s.generate::<T>()?;
            return Ok(tt);
        }
        DataKind::Mnist => {
            let dir = image_dir(cfg)?;
            let opts = MnistOptions {
                seed: cfg.data_seed,
                ..MnistOptions::default()
            };
            let m = load_mnist::<T>(dir, &opts).map_err(data_err)?;
            (m.data.train, m.data.test, ChannelNorm::mnist())
        }
        DataKind::Cifar10 => {
            let dir = image_dir(cfg)?;
            let opts = Cifar10Options {
                seed: cfg.data_seed,
                ..Cifar10Options::default()
            };
            let c = load_cifar10::<T>(dir, &opts).map_err(data_err)?;
            (c.data.train, c.data.test, ChannelNorm::cifar10())
        }
    };
    for (what, n, set) in [
        ("train_size", cfg.train_size, &mut train),
        ("test_size", cfg.test_size, &mut test),
    ] {
        if let Some(n) = n {
            if n == 0 {
                return Err(RunError::input(
                    "train_size and test_size must be at least 1",
                ));
            }
            if n > set.len() {
                return Err(RunError::input(format!(
                    "{} = {n} is larger than the {} images available in '{}': give at most {} (nothing is capped silently)",
                    what,
                    set.len(),
                    cfg.dir.as_deref().map_or_else(String::new, |d| d.display().to_string()),
                    set.len()
                )));
            }
            *set = set.take(n);
        }
        norm.apply(set)?;
    }
    Ok(TrainTest { train, test })
}

fn image_dir(cfg: &DataConfig) -> Result<&std::path::Path, RunError> {
    cfg.dir.as_deref().ok_or_else(|| {
        RunError::input(format!(
            "dataset {} has no data folder: resolve the configuration first (RunConfig::resolve)",
            cfg.name
        ))
    })
}
