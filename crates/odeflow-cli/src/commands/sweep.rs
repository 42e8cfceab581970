//! `odeflow sweep`: train, evaluate and check a grid of runs (training method × step count,
//! step size or tolerance × seed), optionally one shard of it.
//!
//! ```text
//! odeflow sweep --out-dir sweeps/s2 --dataset sphere2 --methods euler,midpoint \
//!     --steps 1,2,4,8,16,32 --seeds 0,1,2 --iterations 2000 --lr 1e-3
//! # on a cluster: one array task per shard (SLURM: --array=1-8), then merge
//! odeflow sweep --out-dir sweeps/s2 … --shard $SLURM_ARRAY_TASK_ID/8
//! odeflow merge sweeps/s2
//! odeflow critical-step sweeps/s2
//! ```
//!
//! Every run gets its own run folder under `OUT/runs/`; a run already checked is skipped and
//! a half-trained one resumes from its checkpoint, so an interrupted sweep is continued by
//! running the same command again (or `odeflow sweep --out-dir OUT` alone, which reuses the
//! folder's plan). Without `--shard` the merged table is written at the end.

use std::path::{Path, PathBuf};

use clap::Args;

use odeflow::runs::pipeline::{ensure_checked, ensure_trained};
use odeflow::runs::sweep::{
    lock_shard, parse_shard, row_of_run, settle_plan, shard_path, ShardFile, SweepPlan,
};
use odeflow::runs::{Compute, Observer, RunConfig};

use super::merge::{human_table, write_merged};
use super::train::BaseFlags;
use crate::args::positive;
use crate::device::DeviceArg;
use crate::error::CliError;
use crate::output::{self, Layout};
use crate::progress::{Reporter, RunObserver};

/// Flags of `odeflow sweep`.
#[derive(Debug, Args)]
pub struct SweepArgs {
    /// The sweep folder.
    #[arg(long, value_name = "FOLDER")]
    pub out_dir: PathBuf,
    /// Training methods, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub methods: Option<Vec<String>>,
    /// Training step counts on [0, 1], comma-separated.
    #[arg(long, value_delimiter = ',', value_name = "N,N")]
    pub steps: Option<Vec<usize>>,
    /// Training step sizes on [0, 1], comma-separated.
    #[arg(long, value_delimiter = ',', value_name = "H,H", value_parser = positive)]
    pub step_sizes: Option<Vec<f64>>,
    /// Training tolerances of the adaptive methods among --methods, comma-separated.
    #[arg(long, value_delimiter = ',', value_name = "TOL,TOL", value_parser = positive)]
    pub tols: Option<Vec<f64>>,
    /// Seeds, comma-separated (default 0).
    #[arg(long, value_delimiter = ',')]
    pub seeds: Option<Vec<u64>>,
    /// Run only the k-th of n slices of the grid (1 ≤ k ≤ n), e.g. for a SLURM array job.
    #[arg(long, value_name = "K/N", value_parser = parse_shard)]
    pub shard: Option<(usize, usize)>,
    /// The run configuration shared by every grid point.
    #[command(flatten)]
    pub base: BaseFlags,
}

impl SweepArgs {
    fn grid_given(&self) -> bool {
        self.methods.is_some()
            || self.steps.is_some()
            || self.step_sizes.is_some()
            || self.tols.is_some()
            || self.seeds.is_some()
            || !self.base.given().is_empty()
            || self.base.iterations.is_some()
            || self.base.checkpoint_every.is_some()
    }

    fn plan(&self) -> Result<SweepPlan, CliError> {
        let mut base = self.base.config()?;
        base.solver.steps = None;
        base.solver.step_size = None;
        base.solver.tol = None;
        let mut probe = base.clone();
        probe.model.resolve(probe.data.kind()?)?;
        self.base.check_applies(&probe)?;
        Ok(SweepPlan {
            methods: self.methods.clone().unwrap_or_else(|| vec!["euler".into()]),
            steps: self.steps.clone().unwrap_or_default(),
            step_sizes: self.step_sizes.clone().unwrap_or_default(),
            tols: self.tols.clone().unwrap_or_default(),
            seeds: self.seeds.clone().unwrap_or_else(|| vec![0]),
            base,
        })
    }
}

/// The plan of the sweep folder: the one the flags describe, or the folder's own when no
/// grid flag is given (see [`settle_plan`]).
fn plan_of(args: &SweepArgs) -> Result<SweepPlan, CliError> {
    let given = if args.grid_given() {
        Some(args.plan()?)
    } else {
        None
    };
    Ok(settle_plan(&args.out_dir, given)?)
}

/// Trains and checks one run of a sweep unless it is finished; returns whether it was.
fn run_one(
    dir: &Path,
    name: &str,
    cfg: &RunConfig,
    observer: &dyn Observer,
    compute: &Compute,
) -> Result<bool, CliError> {
    if row_of_run(dir, name, cfg)?.is_some() {
        return Ok(true);
    }
    ensure_trained(dir, cfg, observer, compute)?;
    let (t, bs) = (cfg.check.threshold, cfg.check.batch_size);
    ensure_checked(dir, t, bs, observer, compute)?;
    Ok(false)
}

/// Refuses more shards than runs (some array tasks would have nothing to do).
fn check_shard(k: usize, n: usize, runs: usize) -> Result<(), CliError> {
    if n > runs {
        return Err(CliError::input(format!(
            "--shard {k}/{n} splits a grid of {runs} runs into {n} slices, so some would be empty; use n ≤ {runs}"
        )));
    }
    Ok(())
}

/// Runs `odeflow sweep`.
pub fn run(args: SweepArgs, reporter: &Reporter, device: DeviceArg) -> Result<(), CliError> {
    let compute = crate::device::open(device)?;
    let (k, n) = args.shard.unwrap_or((1, 1));
    if args.grid_given() {
        // Before the plan is written to the folder.
        check_shard(k, n, args.plan()?.runs()?.len())?;
    }
    let plan = plan_of(&args)?;
    let runs = plan.runs()?;
    check_shard(k, n, runs.len())?;
    let _lock = lock_shard(&args.out_dir, k, n)?;
    let mine: Vec<_> = runs.iter().filter(|r| r.index % n == k - 1).collect();
    reporter.note(format!(
        "sweep '{}': {} runs in all, {} in shard {k}/{n}",
        args.out_dir.display(),
        runs.len(),
        mine.len()
    ));
    let mut shard = ShardFile {
        shard: k,
        of: n,
        runs: mine.iter().map(|r| r.name.clone()).collect(),
        rows: Vec::new(),
    };
    let observer = RunObserver::new(reporter);
    for (i, r) in mine.iter().enumerate() {
        let dir = args.out_dir.join("runs").join(&r.name);
        let skipped = run_one(&dir, &r.name, &r.config, &observer, &compute)?;
        let row = row_of_run(&dir, &r.name, &r.config)?.ok_or_else(|| {
            CliError::runtime(format!("the run '{}' did not finish", dir.display()))
        })?;
        reporter.note(format!(
            "[{}/{}] {}{}: test accuracy {:.4}, {} (worst drop {:.4})",
            i + 1,
            mine.len(),
            r.name,
            if skipped { " (done before)" } else { "" },
            row.test_accuracy,
            if row.valid { "valid" } else { "NOT valid" },
            row.drop
        ));
        shard.rows.push(row);
        output::write_json(
            &shard,
            Some(&shard_path(&args.out_dir, k, n)),
            Layout::Pretty,
        )?;
    }
    observer.finish()?;
    if n == 1 {
        let table = write_merged(&args.out_dir, &plan)?;
        reporter.result(&table, || human_table(&table, &args.out_dir))
    } else {
        reporter.result(&shard, || {
            format!(
                "shard {k}/{n} finished ({} runs, {} valid ODE flows); run odeflow merge {} when every shard is done\n",
                shard.rows.len(),
                shard.rows.iter().filter(|r| r.valid).count(),
                args.out_dir.display()
            )
        })
    }
}
