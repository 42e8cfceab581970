//! `odeflow train`: train an ODE classifier with a given solver, then check whether it is a
//! valid ODE flow.
//!
//! ```text
//! odeflow train --dataset sphere2 --method euler --steps 2 --iterations 2000 --lr 1e-2 --out-dir runs/e2
//! odeflow train --config run.toml --out-dir runs/from-file
//! odeflow train --dataset sphere2 --method euler --adapt --out-dir runs/adapted
//! odeflow train --out-dir runs/e2 --resume --iterations 4000
//! odeflow --device cuda train --dataset sphere2 --model mlp --dtype f32 --out-dir runs/gpu
//! ```
//!
//! With `--device cuda` (binaries built with `--features cuda`) the iterations run on the GPU
//! as one captured CUDA graph each; the run folder is the same, and the final evaluation and
//! the check run on the CPU.
//!
//! The run folder receives `config.toml`, `checkpoint.safetensors`, `metrics.jsonl`, `model.json`,
//! `summary.json`, `training.png`, and — unless `--no-check` — `check.json` and `check.png`;
//! a short summary and the verdict are printed on stdout (`--json`: the JSON result).

use std::path::{Path, PathBuf};

use clap::Args;
use odeflow::runs::check::check_run;
use odeflow::runs::model_file::MODEL_FILE;
use odeflow::runs::{resumed_config, train_run_on, write_config, RunConfig};
use odeflow::solve::SolverSpec;

use crate::args::{finite, positive};
use crate::device::DeviceArg;
use crate::error::CliError;
use crate::progress::{Reporter, RunObserver};

/// Flags that configure a run, except the training solver and the seed (shared by `train`
/// and `sweep`). Each overrides the value of `--config`.
#[derive(Debug, Clone, Default, Args)]
pub struct BaseFlags {
    /// TOML configuration file (see the README); flags override its values.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Data set: sphere2 (or sphere<d>: sphere3, sphere10, sphere900), mnist, cifar10.
    #[arg(long)]
    pub dataset: Option<String>,
    /// Folder of the MNIST IDX or CIFAR-10 binary files.
    #[arg(long, value_name = "FOLDER")]
    pub data_dir: Option<PathBuf>,
    /// Spheres: training points (2000); images: keep the first N training images.
    #[arg(long, value_name = "N")]
    pub train_size: Option<usize>,
    /// Spheres: test points (1000); images: keep the first N test images.
    #[arg(long, value_name = "N")]
    pub test_size: Option<usize>,
    /// Seed of the data (sphere points, image splits); default 0.
    #[arg(long, value_name = "SEED")]
    pub data_seed: Option<u64>,
    /// Model: simple_odenet (spheres), odenet (images) or mlp; default per data set.
    #[arg(long)]
    pub model: Option<String>,
    /// Hidden channels of simple_odenet (32) / odenet (64).
    #[arg(long, value_name = "C")]
    pub channels: Option<usize>,
    /// Hidden widths of mlp, comma-separated (64,64).
    #[arg(long, value_delimiter = ',', value_name = "W,W")]
    pub hidden: Option<Vec<usize>>,
    /// Activation of mlp: relu, tanh, softplus, silu, sigmoid (tanh).
    #[arg(long)]
    pub activation: Option<String>,
    /// Zero channels appended to the ODE state (augmented Neural ODE); default 0.
    #[arg(long, value_name = "C")]
    pub augment: Option<usize>,
    /// Workers the batch is split over (default 0: every core); results are bitwise
    /// reproducible for the same seed and worker count.
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Gradient method: backprop, adjoint, reversible.
    #[arg(long)]
    pub grad: Option<String>,
    /// Training iterations (10000).
    #[arg(long, value_name = "N")]
    pub iterations: Option<u64>,
    /// Mini-batch size (128).
    #[arg(long, value_name = "N")]
    pub batch_size: Option<usize>,
    /// Optimizer: adam or sgd.
    #[arg(long)]
    pub optimizer: Option<String>,
    /// Learning rate (1e-4).
    #[arg(long, value_parser = positive, allow_hyphen_values = true)]
    pub lr: Option<f64>,
    /// SGD momentum (0.9).
    #[arg(long, value_parser = finite, allow_hyphen_values = true)]
    pub momentum: Option<f64>,
    /// L2 weight decay (0).
    #[arg(long, value_parser = finite, allow_hyphen_values = true)]
    pub weight_decay: Option<f64>,
    /// Scalar type: f32 (default, faster) or f64.
    #[arg(long)]
    pub dtype: Option<String>,
    /// Checkpoint every N iterations (100) and at the end.
    #[arg(long, value_name = "N")]
    pub checkpoint_every: Option<u64>,
    /// Adapt the step size (euler, midpoint) or tolerance (fehlberg2, dopri5) during training
    /// (Ott et al.); without a step, the initial step is chosen on the first batch.
    #[arg(long)]
    pub adapt: bool,
    /// Adaptation: check every N iterations (50).
    #[arg(long, value_name = "N")]
    pub adapt_interval: Option<u64>,
    /// Adaptation: largest tolerated batch-accuracy gap (0.1).
    #[arg(long, value_name = "GAP", value_parser = finite, allow_hyphen_values = true)]
    pub adapt_threshold: Option<f64>,
    /// Adaptation: largest number of steps on [0, 1] (500).
    #[arg(long, value_name = "N", value_parser = finite, allow_hyphen_values = true)]
    pub adapt_max_steps: Option<f64>,
    /// Adaptation: growth factor (1.1).
    #[arg(long, value_name = "F", value_parser = finite, allow_hyphen_values = true)]
    pub adapt_grow: Option<f64>,
    /// Adaptation: largest step size (1).
    #[arg(long, value_name = "H", value_parser = positive, allow_hyphen_values = true)]
    pub adapt_max_h: Option<f64>,
    /// Adaptation: initial tolerance of adaptive methods (1e-6).
    #[arg(long, value_name = "TOL", value_parser = positive, allow_hyphen_values = true)]
    pub adapt_initial_tol: Option<f64>,
    /// Largest tolerated test-accuracy drop of the validity check (0.02).
    #[arg(long, value_name = "DROP", value_parser = finite, allow_hyphen_values = true)]
    pub check_threshold: Option<f64>,
    /// Samples per evaluation batch (1000).
    #[arg(long, value_name = "N")]
    pub eval_batch_size: Option<usize>,
}

/// The training solver and the seed of one run.
#[derive(Debug, Clone, Default, Args)]
pub struct SolverFlags {
    /// Training method (euler).
    #[arg(long)]
    pub method: Option<String>,
    /// Equal training steps on [0, 1].
    #[arg(long, value_name = "N")]
    pub steps: Option<usize>,
    /// Training step size on [0, 1] (last step shortened).
    #[arg(long, value_name = "H", value_parser = positive, allow_hyphen_values = true)]
    pub step_size: Option<f64>,
    /// Tolerance (rtol = atol) of an adaptive training method.
    #[arg(long, value_name = "TOL", value_parser = positive, allow_hyphen_values = true)]
    pub tol: Option<f64>,
    /// Seed of the model and the batch order (0).
    #[arg(long)]
    pub seed: Option<u64>,
}

impl BaseFlags {
    /// The configuration of `--config` (or the defaults) with these flags applied.
    pub fn config(&self) -> Result<RunConfig, CliError> {
        let mut c = match &self.config {
            Some(p) => RunConfig::load(p)?,
            None => RunConfig::default(),
        };
        self.apply(&mut c);
        Ok(c)
    }

    /// Overrides the values of `c` with the flags given.
    pub fn apply(&self, c: &mut RunConfig) {
        macro_rules! set {
            ($flag:expr, $field:expr) => {
                if let Some(v) = $flag.clone() {
                    $field = v;
                }
            };
        }
        if let Some(name) = &self.dataset {
            if *name != c.data.name {
                // Model defaults depend on the data set.
                c.model = Default::default();
            }
            c.data.name = name.clone();
        }
        if self.data_dir.is_some() {
            c.data.dir = self.data_dir.clone();
        }
        if self.train_size.is_some() {
            c.data.train_size = self.train_size;
        }
        if self.test_size.is_some() {
            c.data.test_size = self.test_size;
        }
        set!(self.data_seed, c.data.data_seed);
        set!(self.model, c.model.kind);
        if self.channels.is_some() {
            c.model.channels = self.channels;
        }
        if self.hidden.is_some() {
            c.model.hidden = self.hidden.clone();
        }
        if self.activation.is_some() {
            c.model.activation = self.activation.clone();
        }
        set!(self.augment, c.model.augment);
        set!(self.threads, c.model.threads);
        set!(self.grad, c.solver.grad);
        set!(self.iterations, c.train.iterations);
        set!(self.batch_size, c.train.batch_size);
        set!(self.optimizer, c.train.optimizer);
        set!(self.lr, c.train.lr);
        set!(self.momentum, c.train.momentum);
        set!(self.weight_decay, c.train.weight_decay);
        set!(self.dtype, c.dtype);
        set!(self.checkpoint_every, c.train.checkpoint_every);
        if self.adapt {
            c.adapt.enabled = true;
        }
        set!(self.adapt_interval, c.adapt.interval);
        set!(self.adapt_threshold, c.adapt.threshold);
        set!(self.adapt_max_steps, c.adapt.max_steps);
        set!(self.adapt_grow, c.adapt.grow);
        set!(self.adapt_max_h, c.adapt.max_h);
        set!(self.adapt_initial_tol, c.adapt.initial_tol);
        set!(self.check_threshold, c.check.threshold);
        set!(self.eval_batch_size, c.check.batch_size);
    }

    /// Flags that change what a run computes (everything but `--iterations` and
    /// `--checkpoint-every`), by name, when given.
    pub fn given(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        let mut add = |set: bool, name| {
            if set {
                v.push(name)
            }
        };
        add(self.config.is_some(), "--config");
        add(self.dataset.is_some(), "--dataset");
        add(self.data_dir.is_some(), "--data-dir");
        add(self.train_size.is_some(), "--train-size");
        add(self.test_size.is_some(), "--test-size");
        add(self.data_seed.is_some(), "--data-seed");
        add(self.model.is_some(), "--model");
        add(self.channels.is_some(), "--channels");
        add(self.hidden.is_some(), "--hidden");
        add(self.activation.is_some(), "--activation");
        add(self.augment.is_some(), "--augment");
        add(self.threads.is_some(), "--threads");
        add(self.grad.is_some(), "--grad");
        add(self.batch_size.is_some(), "--batch-size");
        add(self.optimizer.is_some(), "--optimizer");
        add(self.lr.is_some(), "--lr");
        add(self.momentum.is_some(), "--momentum");
        add(self.weight_decay.is_some(), "--weight-decay");
        add(self.dtype.is_some(), "--dtype");
        add(self.adapt, "--adapt");
        add(self.adapt_interval.is_some(), "--adapt-interval");
        add(self.adapt_threshold.is_some(), "--adapt-threshold");
        add(self.adapt_max_steps.is_some(), "--adapt-max-steps");
        add(self.adapt_grow.is_some(), "--adapt-grow");
        add(self.adapt_max_h.is_some(), "--adapt-max-h");
        add(self.adapt_initial_tol.is_some(), "--adapt-initial-tol");
        add(self.check_threshold.is_some(), "--check-threshold");
        add(self.eval_batch_size.is_some(), "--eval-batch-size");
        v
    }
}

impl BaseFlags {
    /// Refuses a flag given that the resolved configuration `c` would ignore (an MLP width
    /// for a convolutional model, SGD momentum for Adam, an adaptation setting without
    /// `--adapt`, a data folder for generated spheres): a flag is never accepted in silence.
    pub fn check_applies(&self, c: &RunConfig) -> Result<(), CliError> {
        let not = |flag: &str, value: &dyn std::fmt::Display, why: String| {
            Err(CliError::input(format!(
                "{flag} {value} does not apply: {why}"
            )))
        };
        let kind = c.model.kind.as_str();
        if kind != "mlp" {
            if let Some(h) = &self.hidden {
                let list: Vec<String> = h.iter().map(|w| w.to_string()).collect();
                return not(
                    "--hidden",
                    &list.join(","),
                    format!("model {kind} has no hidden widths; use --channels, or --model mlp"),
                );
            }
            if let Some(a) = &self.activation {
                return not(
                    "--activation",
                    a,
                    format!("model {kind} has a fixed activation; use --model mlp to choose one"),
                );
            }
        } else if let Some(ch) = self.channels {
            return not(
                "--channels",
                &ch,
                "model mlp has hidden widths, not channels; use --hidden".into(),
            );
        }
        if let Some(m) = self.momentum {
            if !c.train.optimizer.eq_ignore_ascii_case("sgd") {
                return not(
                    "--momentum",
                    &m,
                    format!(
                        "it is a setting of SGD, and the optimizer is {}; add --optimizer sgd",
                        c.train.optimizer
                    ),
                );
            }
        }
        if let Some(d) = &self.data_dir {
            if c.data.name.starts_with("sphere") {
                return not(
                    "--data-dir",
                    &d.display(),
                    format!("data set {} is generated, not read from files", c.data.name),
                );
            }
        }
        if !c.adapt.enabled {
            let adapt_flags: [(&str, Option<String>); 6] = [
                (
                    "--adapt-interval",
                    self.adapt_interval.map(|v| v.to_string()),
                ),
                (
                    "--adapt-threshold",
                    self.adapt_threshold.map(|v| v.to_string()),
                ),
                (
                    "--adapt-max-steps",
                    self.adapt_max_steps.map(|v| v.to_string()),
                ),
                ("--adapt-grow", self.adapt_grow.map(|v| v.to_string())),
                ("--adapt-max-h", self.adapt_max_h.map(|v| v.to_string())),
                (
                    "--adapt-initial-tol",
                    self.adapt_initial_tol.map(|v| v.to_string()),
                ),
            ];
            if let Some((flag, Some(v))) = adapt_flags.into_iter().find(|(_, v)| v.is_some()) {
                return not(
                    flag,
                    &v,
                    "it is a setting of the step adaptation; add --adapt".into(),
                );
            }
        }
        Ok(())
    }
}

impl SolverFlags {
    /// Overrides the solver and seed of `c` with the flags given (a new step kind replaces
    /// the configured one).
    pub fn apply(&self, c: &mut RunConfig) {
        if let Some(m) = &self.method {
            c.solver.method = m.clone();
        }
        if self.steps.is_some() || self.step_size.is_some() || self.tol.is_some() {
            c.solver.steps = self.steps;
            c.solver.step_size = self.step_size;
            c.solver.tol = self.tol;
        }
        if let Some(s) = self.seed {
            c.seed = s;
        }
    }

    fn given(&self) -> Vec<&'static str> {
        [
            (self.method.is_some(), "--method"),
            (self.steps.is_some(), "--steps"),
            (self.step_size.is_some(), "--step-size"),
            (self.tol.is_some(), "--tol"),
            (self.seed.is_some(), "--seed"),
        ]
        .into_iter()
        .filter_map(|(g, n)| g.then_some(n))
        .collect()
    }
}

/// Flags of `odeflow train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// The run folder (default: runs/<dataset>-<method>-<steps>-s<seed>).
    #[arg(long, value_name = "FOLDER")]
    pub out_dir: Option<PathBuf>,
    /// Continue the run in --out-dir from its checkpoint; its config.toml is authoritative
    /// (only --iterations, to extend the run, and --checkpoint-every may be given).
    #[arg(long)]
    pub resume: bool,
    /// Skip the validity check after training.
    #[arg(long)]
    pub no_check: bool,
    /// The training solver and seed.
    #[command(flatten)]
    pub solver: SolverFlags,
    /// Everything else.
    #[command(flatten)]
    pub base: BaseFlags,
}

/// The configuration for `dir`: a fresh one from flags, or (with `resume`) the folder's own
/// with `--iterations`/`--checkpoint-every` applied. Refuses to overwrite an existing run.
pub fn prepare(
    dir: &Path,
    resume: bool,
    fresh: impl FnOnce() -> Result<RunConfig, CliError>,
    base: &BaseFlags,
    extra_given: &[&'static str],
) -> Result<RunConfig, CliError> {
    if resume {
        let mut given = base.given();
        given.extend_from_slice(extra_given);
        if !given.is_empty() && dir.join(odeflow::runs::CONFIG_FILE).exists() {
            return Err(CliError::input(format!(
                "with --resume the run's {} is authoritative; drop {} (only --iterations and --checkpoint-every may change)",
                odeflow::runs::CONFIG_FILE,
                given.join(", ")
            )));
        }
        Ok(resumed_config(dir, base.iterations, base.checkpoint_every)?)
    } else {
        let mut cfg = fresh()?;
        cfg.resolve()?;
        base.check_applies(&cfg)?;
        for f in [
            odeflow::train::CHECKPOINT_FILE,
            odeflow::train::LEGACY_CHECKPOINT_FILE,
            MODEL_FILE,
        ] {
            if dir.join(f).exists() {
                return Err(CliError::input(format!(
                    "'{}' already holds a run; pass --resume to continue it, or choose another --out-dir",
                    dir.display()
                )));
            }
        }
        write_config(dir, &cfg)?;
        Ok(cfg)
    }
}

/// Runs `odeflow train`.
pub fn run(args: TrainArgs, reporter: &Reporter, device: DeviceArg) -> Result<(), CliError> {
    // Opened first: without a GPU nothing is written.
    let compute = crate::device::open(device)?;
    let fresh = || {
        let mut c = args.base.config()?;
        args.solver.apply(&mut c);
        Ok(c)
    };
    let dir = match &args.out_dir {
        Some(d) => d.clone(),
        None if args.resume => {
            return Err(CliError::input("--resume needs --out-dir, the run folder"))
        }
        None => {
            let mut c = fresh()?;
            c.resolve()?;
            let m = c.solver.method()?;
            let slug = match c.solver.stepping()? {
                Some(s) => SolverSpec::new(&m, &s).slug(),
                None => format!("{}-adapt", m.name()),
            };
            PathBuf::from("runs").join(format!("{}-{slug}-s{}", c.data.name, c.seed))
        }
    };
    if let (true, Some(t)) = (args.no_check, args.base.check_threshold) {
        return Err(CliError::input(format!(
            "--check-threshold {t} does not apply with --no-check (no check is made); drop one of them"
        )));
    }
    let cfg = prepare(&dir, args.resume, fresh, &args.base, &args.solver.given())?;
    let observer = RunObserver::new(reporter);
    let summary = train_run_on(&dir, &cfg, &observer, &compute)?;
    let check = if cfg.check.enabled && !args.no_check {
        Some(check_run(
            &dir,
            cfg.check.threshold,
            cfg.check.batch_size,
            &observer,
        )?)
    } else {
        None
    };
    observer.finish()?;
    let result = serde_json::json!({ "run": dir, "summary": summary, "check": check });
    reporter.result(&result, || {
        let verdict = match &check {
            Some(c) => c.verdict.summary.clone(),
            None => "validity not checked (--no-check)".into(),
        };
        format!(
            "trained {} iterations in {:.1} s: test accuracy {:.4} with {}\n{verdict}\nrun folder: {}\n",
            summary.iterations,
            summary.seconds,
            summary.test_accuracy,
            summary.train.label(),
            dir.display()
        )
    })
}
