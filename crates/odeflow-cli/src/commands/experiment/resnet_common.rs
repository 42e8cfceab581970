//! Pieces shared by the ResNet experiments: output folders, CSV tables, value enums for
//! schemes, weight profiles and gradient methods, image data sets, and the flags, progress
//! bar, slope plots and summary of the profile sweeps (`resnet-reconstruction`,
//! `resnet-gradients`).

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::{Args, ValueEnum};
use odeflow::analysis::resnet::depth_sweep::{ImageData, TrainSettings};
use odeflow::analysis::resnet::profiles::{ProfileModel, ProfileSweep, WeightProfile};
use odeflow::data::{Cifar10Options, MnistOptions};
use odeflow::grad::GradientMethod;
use odeflow::models::resnet::{ResNetError, Scheme};
use odeflow::models::tiny_resnet::BodyInit;
use serde::Serialize;
use serde_json::{json, Value};

use crate::error::CliError;
use crate::output::{self, Layout};
use crate::plot::{self, Figure, Panel, Scale, Series};
use crate::progress::Reporter;

/// Where an experiment's results go.
#[derive(Debug, Clone, Args)]
pub struct OutputArgs {
    /// Folder for the full results (result.json, CSV tables) and the PNG plots
    /// [default: results/<experiment>].
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
}

/// The files of one experiment run.
pub struct Outputs {
    dir: PathBuf,
    written: Vec<PathBuf>,
    start: Instant,
}

impl Outputs {
    /// The folder of experiment `name` (created on first write).
    pub fn new(args: &OutputArgs, name: &str) -> Self {
        Self {
            dir: args
                .out_dir
                .clone()
                .unwrap_or_else(|| Path::new("results").join(name)),
            written: Vec::new(),
            start: Instant::now(),
        }
    }

    /// `dir/file`.
    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    /// Writes `value` as indented JSON to `dir/file`.
    pub fn json<T: Serialize>(&mut self, file: &str, value: &T) -> Result<(), CliError> {
        let path = self.path(file);
        output::write_json(value, Some(&path), Layout::Pretty)?;
        self.written.push(path);
        Ok(())
    }

    /// Writes a CSV table (a header row, then `rows`) to `dir/file`.
    pub fn csv(
        &mut self,
        file: &str,
        header: &[&str],
        rows: &[Vec<String>],
    ) -> Result<(), CliError> {
        let mut text = header.join(",");
        text.push('\n');
        for r in rows {
            text.push_str(&r.join(","));
            text.push('\n');
        }
        let path = self.path(file);
        output::write_atomic(&path, text.as_bytes())?;
        self.written.push(path);
        Ok(())
    }

    /// Draws `fig` into `dir/file`.
    pub fn plot(&mut self, file: &str, fig: &Figure) -> Result<(), CliError> {
        let path = self.path(file);
        plot::save(fig, &path)?;
        self.written.push(path);
        Ok(())
    }

    /// Seconds since the run started.
    pub fn seconds(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    /// The files written so far.
    pub fn files(&self) -> Vec<String> {
        self.written
            .iter()
            .map(|p| p.display().to_string())
            .collect()
    }

    /// Emits the summary (human text, `--json`, `--out`; see [`Reporter::result`]).
    pub fn finish<T: Serialize>(
        &self,
        summary: &T,
        _args: &OutputArgs,
        reporter: &Reporter,
        headline: &str,
    ) -> Result<(), CliError> {
        reporter.result(summary, || {
            format!(
                "{headline} ({:.1} s)\nwrote {}\n",
                self.seconds(),
                self.files().join(", ")
            )
        })
    }
}

/// A number for a CSV cell (empty for none).
pub fn cell(v: impl Into<Option<f64>>) -> String {
    match v.into() {
        Some(x) => format!("{x:e}"),
        None => String::new(),
    }
}

/// Scheme of the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SchemeArg {
    /// ResNet: Euler steps.
    Euler,
    /// HeunNet: Heun steps.
    Heun,
}

impl From<SchemeArg> for Scheme {
    fn from(s: SchemeArg) -> Self {
        match s {
            SchemeArg::Euler => Scheme::Euler,
            SchemeArg::Heun => Scheme::Heun,
        }
    }
}

/// How weights vary with depth.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProfileArg {
    /// θ(t) infinitely smooth.
    Smooth,
    /// Smooth with a jump at t = 1/2.
    Piecewise,
    /// Independent layers.
    Iid,
}

impl From<ProfileArg> for WeightProfile {
    fn from(p: ProfileArg) -> Self {
        match p {
            ProfileArg::Smooth => WeightProfile::Smooth,
            ProfileArg::Piecewise => WeightProfile::PiecewiseSmooth,
            ProfileArg::Iid => WeightProfile::Iid,
        }
    }
}

/// Gradient method of the ResNet body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GradArg {
    /// Exact: tapes every layer.
    Backprop,
    /// Memory-free: reconstructs activations by reverse steps.
    Reversible,
}

impl From<GradArg> for GradientMethod {
    fn from(g: GradArg) -> Self {
        match g {
            GradArg::Backprop => GradientMethod::Backprop,
            GradArg::Reversible => GradientMethod::Reversible,
        }
    }
}

/// The `--grads` flag of the experiments that compare gradient methods.
#[derive(Debug, Clone, Args)]
pub struct GradsArgs {
    /// Gradient methods.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "backprop,reversible"
    )]
    pub grads: Vec<GradArg>,
}

impl GradsArgs {
    /// The methods, rejecting an empty list.
    pub fn list(&self) -> Result<&[GradArg], CliError> {
        non_empty("--grads", &self.grads)?;
        Ok(&self.grads)
    }
}

/// Initialisation of the body's layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InitArg {
    /// Every layer drawn independently.
    Iid,
    /// One draw copied into every layer.
    Constant,
}

impl From<InitArg> for BodyInit {
    fn from(i: InitArg) -> Self {
        match i {
            InitArg::Iid => BodyInit::Iid,
            InitArg::Constant => BodyInit::Constant,
        }
    }
}

/// Image data set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DatasetArg {
    /// MNIST IDX files (a seeded split of the test files when the training files are absent).
    Mnist,
    /// CIFAR-10 binary batches.
    Cifar10,
}

/// Flags choosing the image data and the optimisation of TinyResNets.
#[derive(Debug, Clone, Args)]
pub struct TrainArgs {
    /// Data set.
    #[arg(long, value_enum, default_value_t = DatasetArg::Mnist)]
    pub dataset: DatasetArg,

    /// Folder with the data set's files, or a data root holding NAME/ [default:
    /// $ODEFLOW_DATA/NAME, else ~/.cache/odeflow/data/NAME; see `odeflow data`].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Use only the first N training images (all: the full set).
    #[arg(long, value_name = "N")]
    pub train_limit: Option<usize>,

    /// Use only the first N test images.
    #[arg(long, value_name = "N")]
    pub test_limit: Option<usize>,

    /// Training iterations (mini-batches).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub iterations: Option<u64>,

    /// Samples per mini-batch.
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub batch_size: usize,

    /// Base learning rate of SGD.
    #[arg(long, value_name = "LR", default_value_t = 0.1, value_parser = crate::args::positive)]
    pub lr: f64,

    /// SGD momentum.
    #[arg(long, default_value_t = 0.9, value_parser = crate::args::finite)]
    pub momentum: f64,

    /// L2 weight decay.
    #[arg(long, default_value_t = 5e-4, value_parser = crate::args::finite)]
    pub weight_decay: f64,

    /// Iterations at which the learning rate is multiplied by --gamma [default: at 2/3 of
    /// the run].
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub milestones: Option<Vec<u64>>,

    /// Decay factor of the step schedule.
    #[arg(long, default_value_t = 0.1, value_parser = crate::args::positive)]
    pub gamma: f64,

    /// Random crop (padding 4) and horizontal flip [default: on for cifar10, off for mnist].
    #[arg(long, value_name = "BOOL")]
    pub augment: Option<bool>,

    /// Channels of the TinyResNet body.
    #[arg(long, default_value_t = 16)]
    pub channels: usize,

    /// Seed of initialisation, batch order and augmentation.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

impl TrainArgs {
    /// Loads the data set (f32).
    pub fn load(&self, reporter: &Reporter) -> Result<ImageData<f32>, CliError> {
        let data = match self.dataset {
            DatasetArg::Mnist => {
                let dir = odeflow::data::store::dataset_dir("mnist", self.data_dir.as_deref())
                    .map_err(CliError::input)?;
                ImageData::mnist(&dir, &MnistOptions::default())
            }
            DatasetArg::Cifar10 => {
                let dir = odeflow::data::store::dataset_dir("cifar10", self.data_dir.as_deref())
                    .map_err(CliError::input)?;
                ImageData::cifar10(&dir, &Cifar10Options::default())
            }
        }
        .map_err(|e| CliError::input(e.to_string()))?;
        let data = data.limit(self.train_limit, self.test_limit);
        if data.train.is_empty() || data.test.is_empty() {
            return Err(CliError::input(format!(
                "the {} data has {} training and {} test images; both must be non-empty",
                data.name,
                data.train.len(),
                data.test.len()
            )));
        }
        reporter.note(format!(
            "{}: {} training and {} test images of shape {}",
            data.name,
            data.train.len(),
            data.test.len(),
            data.shape
        ));
        Ok(data)
    }

    /// The optimisation settings, `iterations` defaulting to `default_iterations`.
    pub fn settings(&self, default_iterations: u64) -> Result<TrainSettings, CliError> {
        let iterations = self.iterations.unwrap_or(default_iterations);
        if self.batch_size == 0 {
            return Err(CliError::input("--batch-size 0: give at least 1"));
        }
        if self.channels == 0 {
            return Err(CliError::input("--channels 0: give at least 1"));
        }
        Ok(TrainSettings {
            iterations,
            batch_size: self.batch_size,
            lr: self.lr,
            momentum: self.momentum,
            weight_decay: self.weight_decay,
            milestones: self
                .milestones
                .clone()
                .unwrap_or_else(|| vec![(2 * iterations) / 3]),
            gamma: self.gamma,
            augment: self.augment.unwrap_or(self.dataset == DatasetArg::Cifar10),
            seed: self.seed,
        })
    }
}

/// `--depths` and `--schemes` of a sweep over depth. The defaults and help lines are the
/// profile sweeps'; `resnet-depth` changes them with `#[command(mut_arg("depths", ..))]`.
#[derive(Debug, Clone, Args)]
pub struct DepthSchemeArgs {
    /// Depths N.
    #[arg(
        long,
        value_name = "LIST",
        value_delimiter = ',',
        default_value = "2,4,8,16,32,64,128,256,512,1024"
    )]
    depths: Vec<usize>,

    /// Schemes.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "euler,heun")]
    schemes: Vec<SchemeArg>,
}

impl DepthSchemeArgs {
    /// The depths and the schemes, rejecting an empty list.
    pub fn checked(&self) -> Result<(Vec<usize>, Vec<Scheme>), CliError> {
        non_empty("--depths", &self.depths)?;
        non_empty("--schemes", &self.schemes)?;
        let schemes = self.schemes.iter().map(|&s| s.into()).collect();
        Ok((self.depths.clone(), schemes))
    }
}

/// Flags of the profile sweeps (`resnet-reconstruction`, `resnet-gradients`). The defaults
/// and help lines are `resnet-reconstruction`'s; another experiment changes one with
/// `#[command(mut_arg("flag", ..))]` on its own flags.
#[derive(Debug, Clone, Args)]
pub struct ProfileSweepArgs {
    #[command(flatten)]
    axes: DepthSchemeArgs,

    /// Weight profiles in depth.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "smooth,piecewise,iid"
    )]
    profiles: Vec<ProfileArg>,

    /// Features d of the residual functions f(x) = tanh(Wx + b).
    #[arg(long, default_value_t = 16)]
    dim: usize,

    /// Hidden units: f(x) = W₂ tanh(W₁x + b₁) + b₂ instead.
    #[arg(long, value_name = "H")]
    hidden: Option<usize>,

    /// Scale of the weights.
    #[arg(long, default_value_t = 1.5, value_parser = crate::args::finite)]
    scale: f64,

    /// Samples in the input batch.
    #[arg(long, default_value_t = 64)]
    batch: usize,

    /// Fit slopes over depths ≥ this.
    #[arg(long, default_value_t = 8)]
    fit_from: usize,

    /// Seed of the weights and the input.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

impl ProfileSweepArgs {
    /// The sweep's settings.
    pub fn config(&self) -> Result<ProfileSweep, CliError> {
        let (depths, schemes) = self.axes.checked()?;
        let depth = depths.iter().copied().max().unwrap_or(0) as u64;
        let (d, h, n) = (
            self.dim as u64,
            self.hidden.unwrap_or(self.dim) as u64,
            self.batch as u64,
        );
        super::common::check_steps(&format!("--depths {depth}"), depth)?;
        // Per layer: the weights (d × h, twice with a hidden layer) and the activations of
        // the batch (n × (d + h)), kept for every layer, in f64.
        super::common::check_memory(
            &format!(
                "a depth-{depth} network of width {d} (hidden {h}) on a batch of {n} (--depths, --dim, --hidden, --batch)"
            ),
            &[&[depth, 2, d, h], &[depth, n, d + h]],
            8,
        )?;
        Ok(ProfileSweep {
            depths,
            schemes,
            profiles: self.profiles.iter().map(|&p| p.into()).collect(),
            model: ProfileModel {
                dim: self.dim,
                hidden: self.hidden,
                scale: self.scale,
                seed: self.seed,
            },
            batch: self.batch,
            fit_from: self.fit_from,
        })
    }
}

/// Runs `analysis` on `cfg` behind a progress bar named `label` (one tick per network).
pub fn run_sweep<R>(
    cfg: &ProfileSweep,
    reporter: &Reporter,
    label: &str,
    analysis: impl FnOnce(&ProfileSweep, &mut dyn FnMut(usize, usize)) -> Result<R, ResNetError>,
) -> Result<R, CliError> {
    let total = (cfg.depths.len() * cfg.schemes.len() * cfg.profiles.len()) as u64;
    let bar = reporter.bar(total, label);
    let result =
        analysis(cfg, &mut |done, _| bar.set_position(done as u64)).map_err(resnet_error)?;
    bar.finish_and_clear();
    Ok(result)
}

/// One curve of a profile sweep as plotted: `(depth, value)` points and their fitted slope.
pub struct SlopeCurve {
    /// Euler or Heun.
    pub scheme: Scheme,
    /// Weight profile.
    pub profile: WeightProfile,
    /// `(depth, value)` per depth.
    pub points: Vec<(f64, f64)>,
    /// Log–log slope of the values against depth.
    pub slope: Option<f64>,
}

impl SlopeCurve {
    /// The curve of `scheme` and `profile` through `(depth, value)` points.
    pub fn new(
        scheme: Scheme,
        profile: WeightProfile,
        points: impl IntoIterator<Item = (usize, f64)>,
        slope: Option<f64>,
    ) -> Self {
        Self {
            scheme,
            profile,
            points: points.into_iter().map(|(d, v)| (d as f64, v)).collect(),
            slope,
        }
    }
}

/// A slope for people: two decimals, `–` for none.
pub fn fmt_slope(s: Option<f64>) -> String {
    s.map_or("–".into(), |s| format!("{s:.2}"))
}

/// One log–log panel per scheme of `cfg` (titled by `title`): each profile's curve labelled
/// with its slope, and guides `∝ N^-1`, `N^-2`, `N^-3` through the first point.
pub fn slope_panels(
    cfg: &ProfileSweep,
    curves: &[SlopeCurve],
    title: impl Fn(Scheme) -> String,
    y_label: &str,
) -> Vec<Panel> {
    let xs: Vec<f64> = cfg.depths.iter().map(|&d| d as f64).collect();
    let mut panels = Vec::new();
    for &scheme in &cfg.schemes {
        let mut panel =
            Panel::new(title(scheme), "depth N", y_label).scales(Scale::Log, Scale::Log);
        let mut first = None;
        for c in curves.iter().filter(|c| c.scheme == scheme) {
            first = first.or(c.points.first().copied());
            panel = panel.with(Series::line_markers(
                format!("{} (slope {})", c.profile.name(), fmt_slope(c.slope)),
                c.points.clone(),
            ));
        }
        if let Some((x0, y0)) = first {
            for k in 1..=3 {
                // y = y0·(x/x0)^-k: a guide line through the first point.
                let guide = xs.iter().map(|&x| (x, y0 * (x / x0).powf(-(k as f64))));
                panel = panel.with(Series::line(format!("∝ N^-{k}"), guide.collect()));
            }
        }
        panels.push(panel);
    }
    panels
}

/// `scheme/profile slope, …` for the closing note.
pub fn slope_headline(curves: &[SlopeCurve]) -> String {
    let one = |c: &SlopeCurve| {
        let (s, p, slope) = (c.scheme.name(), c.profile.name(), fmt_slope(c.slope));
        format!("{s}/{p} {slope}")
    };
    curves.iter().map(one).collect::<Vec<_>>().join(", ")
}

/// The JSON summary of a profile sweep: the experiment, its depths and `fit_from`, the
/// per-curve `slopes`, the run time and the files written.
pub fn sweep_summary(
    experiment: &str,
    cfg: &ProfileSweep,
    slopes: Vec<Value>,
    out: &Outputs,
) -> Value {
    json!({
        "experiment": experiment,
        "depths": cfg.depths,
        "fit_from": cfg.fit_from,
        "slopes": slopes,
        "seconds": out.seconds(),
        "files": out.files(),
    })
}

/// Rejects an empty list given for `flag`.
pub fn non_empty<T>(flag: &str, v: &[T]) -> Result<(), CliError> {
    if v.is_empty() {
        return Err(CliError::input(format!(
            "{flag} is empty; give at least one value"
        )));
    }
    Ok(())
}

/// A ResNet analysis error as a CLI error: bad settings are bad input, a failed solve is a
/// run-time failure.
pub fn resnet_error(e: ResNetError) -> CliError {
    match e {
        ResNetError::Solve(_) => CliError::runtime(format!(
            "{e}; the network blew up — lower --scale or the learning rate"
        )),
        _ => CliError::input(e.to_string()),
    }
}

/// A training error as a CLI error (bad settings are bad input).
pub fn train_error(e: odeflow::train::TrainError) -> CliError {
    use odeflow::train::TrainError;
    match e {
        TrainError::Arg(a) => CliError::input(a.to_string()),
        _ => CliError::runtime(e.to_string()),
    }
}
