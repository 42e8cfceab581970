//! Sweeps: a grid of training runs (method × step count, step size or tolerance × seed), each
//! trained, evaluated and checked; shards for cluster array jobs; the merged table; the
//! critical step size.
//!
//! Layout of a sweep folder:
//!
//! ```text
//! OUT/sweep.toml                  the plan: grid and base configuration (shards must agree)
//! OUT/runs/<method>-<steps>-s<seed>/   one run folder per grid point (see `runs`)
//! OUT/shards/shard-<k>-of-<n>.json     the rows a shard finished
//! OUT/sweep.json, sweep.csv, sweep.png the merged table (`merge`)
//! OUT/critical-step.json, .png         the critical step size (`critical-step`)
//! ```
//!
//! Run `i` of the plan (methods outermost, seeds innermost) belongs to shard `k` of `n` when
//! `i mod n = k − 1`, which spreads expensive and cheap settings over the shards.

use std::path::{Path, PathBuf};

use odeflow::analysis::solver_dependence::WorstCase;
use serde::{Deserialize, Serialize};

use super::check::load_check;
use super::config::RunConfig;
use super::model_file::{short, ModelFile, SolverSpec, MODEL_FILE};
use super::train::load_summary;
use crate::error::CliError;

/// The plan file's name in a sweep folder.
pub const PLAN_FILE: &str = "sweep.toml";

/// What a sweep trains.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepPlan {
    /// Training methods.
    pub methods: Vec<String>,
    /// Step counts on [0, 1] (fixed-step methods).
    #[serde(default)]
    pub steps: Vec<usize>,
    /// Step sizes on [0, 1] (fixed-step methods).
    #[serde(default)]
    pub step_sizes: Vec<f64>,
    /// Tolerances (adaptive methods).
    #[serde(default)]
    pub tols: Vec<f64>,
    /// Seeds.
    pub seeds: Vec<u64>,
    /// Everything else, shared by all runs.
    pub base: RunConfig,
}

/// One run of a plan.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedRun {
    /// Position in the plan.
    pub index: usize,
    /// Folder name under `OUT/runs`.
    pub name: String,
    /// The run's resolved configuration.
    pub config: RunConfig,
}

impl SweepPlan {
    /// Every run of the plan, with its resolved configuration.
    pub fn runs(&self) -> Result<Vec<PlannedRun>, CliError> {
        if self.methods.is_empty() || self.seeds.is_empty() {
            return Err(CliError::input(
                "a sweep needs at least one method and one seed",
            ));
        }
        let mut out = Vec::new();
        for m in &self.methods {
            let method = odeflow::Method::from_name(m)?;
            let mut settings: Vec<(Option<usize>, Option<f64>, Option<f64>)> = Vec::new();
            if method.is_adaptive() && !self.tols.is_empty() {
                settings.extend(self.tols.iter().map(|&t| (None, None, Some(t))));
            } else {
                settings.extend(self.steps.iter().map(|&n| (Some(n), None, None)));
                settings.extend(self.step_sizes.iter().map(|&h| (None, Some(h), None)));
            }
            if settings.is_empty() {
                return Err(CliError::input(format!(
                    "the sweep has no setting for method '{m}': give --steps, --step-sizes or (for adaptive methods) --tols"
                )));
            }
            for (steps, step_size, tol) in settings {
                for &seed in &self.seeds {
                    let mut c = self.base.clone();
                    c.solver.method = m.clone();
                    c.solver.steps = steps;
                    c.solver.step_size = step_size;
                    c.solver.tol = tol;
                    c.seed = seed;
                    c.resolve()?;
                    let stepping = c.solver.stepping()?.expect("a setting is given");
                    let slug = SolverSpec::new(&method, &stepping).slug();
                    out.push(PlannedRun {
                        index: out.len(),
                        name: format!("{slug}-s{seed}"),
                        config: c,
                    });
                }
            }
        }
        Ok(out)
    }

    /// Reads `OUT/sweep.toml`.
    pub fn load(dir: &Path) -> Result<Self, CliError> {
        let path = dir.join(PLAN_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            CliError::input(format!(
                "'{}' is not a sweep folder: cannot read {}: {e}",
                dir.display(),
                path.display()
            ))
        })?;
        toml::from_str(&text).map_err(|e| {
            CliError::input(format!("'{}' is corrupt: {}", path.display(), e.message()))
        })
    }

    /// The plan as TOML.
    pub fn to_toml(&self) -> Result<String, CliError> {
        toml::to_string_pretty(self)
            .map_err(|e| CliError::runtime(format!("cannot write the sweep plan: {e}")))
    }
}

/// Parses `k/n` (1 ≤ k ≤ n).
pub fn parse_shard(s: &str) -> Result<(usize, usize), String> {
    let bad = || format!("'{s}' is not a shard: write k/n with 1 ≤ k ≤ n, e.g. 2/8");
    let (k, n) = s.split_once('/').ok_or_else(bad)?;
    let k: usize = k.trim().parse().map_err(|_| bad())?;
    let n: usize = n.trim().parse().map_err(|_| bad())?;
    if k == 0 || n == 0 || k > n {
        return Err(bad());
    }
    Ok((k, n))
}

/// One finished run of a sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepRow {
    /// Folder name under `OUT/runs`.
    pub run: String,
    /// Training method.
    pub method: String,
    /// Its order.
    pub order: usize,
    /// Training steps on [0, 1].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<usize>,
    /// Training step size on [0, 1] (`1/steps` for step counts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_size: Option<f64>,
    /// Training tolerance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tol: Option<f64>,
    /// Seed.
    pub seed: u64,
    /// Test accuracy with the training solver.
    pub test_accuracy: f64,
    /// Accuracy on the training set with the training solver.
    pub train_accuracy: f64,
    /// The verdict.
    pub valid: bool,
    /// The largest accuracy drop under a solver at least as accurate.
    pub drop: f64,
    /// That solver.
    pub worst: WorstCase,
    /// Training wall time in seconds.
    pub seconds: f64,
    /// The training solver at the end (differs from the grid point when adapting).
    pub final_solver: SolverSpec,
}

impl SweepRow {
    /// The value on the sweep's axis: step size for fixed steps, tolerance for adaptive.
    pub fn axis(&self) -> f64 {
        self.tol.or(self.step_size).unwrap_or(f64::NAN)
    }
}

/// The row of a finished run folder, or `None` when it is not finished (no check, or a check
/// of an earlier state of the model, or fewer iterations than configured).
pub fn row_of_run(dir: &Path, name: &str, cfg: &RunConfig) -> Result<Option<SweepRow>, CliError> {
    if !dir.join(super::check::CHECK_FILE).exists() || !dir.join(MODEL_FILE).exists() {
        return Ok(None);
    }
    let model = ModelFile::load(&dir.join(MODEL_FILE))?;
    let check = load_check(dir)?;
    let summary = load_summary(dir)?;
    if check.model != model.fingerprint
        || summary.fingerprint != model.fingerprint
        || model.iterations != cfg.train.iterations
    {
        return Ok(None);
    }
    let method = cfg.solver.method()?;
    let grid = SolverSpec::new(
        &method,
        &cfg.solver.stepping()?.unwrap_or(summary.train.stepping()),
    );
    Ok(Some(SweepRow {
        run: name.into(),
        method: grid.method.clone(),
        order: grid.order,
        steps: grid.steps.filter(|_| grid.tol.is_none()),
        step_size: grid
            .step_size
            .or(grid.steps.map(|n| 1.0 / n as f64))
            .filter(|_| grid.tol.is_none()),
        tol: grid.tol,
        seed: cfg.seed,
        test_accuracy: summary.test_accuracy,
        train_accuracy: summary.train_accuracy,
        valid: check.valid,
        drop: check.worst.drop,
        worst: check.worst,
        seconds: summary.seconds,
        final_solver: summary.train,
    }))
}

/// Rows grouped by (method, axis value): mean and standard deviation over seeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepGroup {
    /// Method.
    pub method: String,
    /// Steps, for fixed-step groups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<usize>,
    /// Step size, for fixed-step groups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_size: Option<f64>,
    /// Tolerance, for adaptive groups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tol: Option<f64>,
    /// Seeds in the group.
    pub seeds: usize,
    /// Mean test accuracy with the training solver.
    pub test_accuracy: f64,
    /// Its standard deviation over seeds (0 for one seed).
    pub test_accuracy_std: f64,
    /// Mean worst-case drop.
    pub drop: f64,
    /// Its standard deviation.
    pub drop_std: f64,
    /// Largest drop over seeds.
    pub drop_max: f64,
    /// Seeds whose model is valid.
    pub valid: usize,
}

/// Mean and (population) standard deviation.
pub fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len().max(1) as f64;
    let m = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / n;
    (m, var.sqrt())
}

/// Groups rows by method and axis value, in order of appearance.
pub fn group_rows(rows: &[SweepRow]) -> Vec<SweepGroup> {
    let mut keys: Vec<(String, u64)> = Vec::new();
    for r in rows {
        let k = (r.method.clone(), r.axis().to_bits());
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    keys.into_iter()
        .map(|(m, bits)| {
            let g: Vec<&SweepRow> = rows
                .iter()
                .filter(|r| r.method == m && r.axis().to_bits() == bits)
                .collect();
            let acc: Vec<f64> = g.iter().map(|r| r.test_accuracy).collect();
            let drop: Vec<f64> = g.iter().map(|r| r.drop).collect();
            let (am, asd) = mean_std(&acc);
            let (dm, dsd) = mean_std(&drop);
            SweepGroup {
                method: m,
                steps: g[0].steps,
                step_size: g[0].step_size,
                tol: g[0].tol,
                seeds: g.len(),
                test_accuracy: am,
                test_accuracy_std: asd,
                drop: dm,
                drop_std: dsd,
                drop_max: drop.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                valid: g.iter().filter(|r| r.valid).count(),
            }
        })
        .collect()
}

/// `sweep.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepTable {
    /// The plan.
    pub plan: SweepPlan,
    /// The check threshold the verdicts used.
    pub threshold: f64,
    /// One row per run, in plan order.
    pub rows: Vec<SweepRow>,
    /// Rows grouped over seeds.
    pub groups: Vec<SweepGroup>,
}

/// The table as CSV, one row per run.
pub fn table_csv(rows: &[SweepRow]) -> String {
    let mut s = String::from(
        "run,method,order,steps,step_size,tol,seed,test_accuracy,train_accuracy,valid,drop,worst_method,worst_steps,worst_tol,worst_accuracy,seconds\n",
    );
    let o = |v: Option<f64>| v.map(short).unwrap_or_default();
    for r in rows {
        s.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{:.3}\n",
            r.run,
            r.method,
            r.order,
            r.steps.map(|n| n.to_string()).unwrap_or_default(),
            o(r.step_size),
            o(r.tol),
            r.seed,
            r.test_accuracy,
            r.train_accuracy,
            r.valid,
            r.drop,
            r.worst.method,
            r.worst.steps.map(|n| n.to_string()).unwrap_or_default(),
            o(r.worst.tol),
            r.worst.accuracy,
            r.seconds
        ));
    }
    s
}

/// The shard file of shard `k` of `n`.
pub fn shard_path(dir: &Path, k: usize, n: usize) -> PathBuf {
    dir.join("shards").join(format!("shard-{k}-of-{n}.json"))
}

/// A shard's finished rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardFile {
    /// `k`.
    pub shard: usize,
    /// `n`.
    pub of: usize,
    /// Runs of the shard, in plan order.
    pub runs: Vec<String>,
    /// Rows finished so far.
    pub rows: Vec<SweepRow>,
}

/// Every row of the plan: from the run folders when finished there, else from shard files.
/// Runs found in neither are returned by name in the error.
pub fn collect_rows(dir: &Path, plan: &SweepPlan) -> Result<Vec<SweepRow>, CliError> {
    let mut from_shards: Vec<SweepRow> = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir.join("shards")) {
        for e in entries.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "json") {
                let text = std::fs::read_to_string(&p)
                    .map_err(|e| CliError::input(format!("cannot read '{}': {e}", p.display())))?;
                let f: ShardFile = serde_json::from_str(&text).map_err(|e| {
                    CliError::input(format!("'{}' is not a shard file: {e}", p.display()))
                })?;
                from_shards.extend(f.rows);
            }
        }
    }
    let mut rows = Vec::new();
    let mut missing = Vec::new();
    for run in plan.runs()? {
        let rdir = dir.join("runs").join(&run.name);
        match row_of_run(&rdir, &run.name, &run.config)? {
            Some(r) => rows.push(r),
            None => match from_shards.iter().find(|r| r.run == run.name) {
                Some(r) => rows.push(r.clone()),
                None => missing.push(run.name),
            },
        }
    }
    if !missing.is_empty() {
        let n = missing.len();
        let shown: Vec<&str> = missing.iter().take(5).map(String::as_str).collect();
        return Err(CliError::input(format!(
            "{n} run{} of the sweep in '{}' not finished: {}{} — run the missing shards (odeflow sweep --out-dir {} --shard k/n) first",
            if n == 1 { " is" } else { "s are" },
            dir.display(),
            shown.join(", "),
            if n > 5 { ", …" } else { "" },
            dir.display()
        )));
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_parse_and_reject_nonsense() {
        assert_eq!(parse_shard("2/8").unwrap(), (2, 8));
        for bad in ["0/3", "4/3", "a/b", "3", "1/0", ""] {
            assert!(parse_shard(bad).unwrap_err().contains("k/n"), "{bad}");
        }
    }

    #[test]
    fn plans_enumerate_methods_settings_and_seeds() {
        let plan = SweepPlan {
            methods: vec!["euler".into(), "dopri5".into()],
            steps: vec![2, 8],
            step_sizes: vec![],
            tols: vec![1e-3],
            seeds: vec![0, 1],
            base: RunConfig::default(),
        };
        let runs = plan.runs().unwrap();
        let names: Vec<&str> = runs.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "euler-2-s0",
                "euler-2-s1",
                "euler-8-s0",
                "euler-8-s1",
                "dopri5-tol1e-3-s0",
                "dopri5-tol1e-3-s1"
            ]
        );
        assert_eq!(runs[3].config.seed, 1);
        let text = plan.to_toml().unwrap();
        assert_eq!(toml::from_str::<SweepPlan>(&text).unwrap(), plan);
        assert_eq!(mean_std(&[1.0, 3.0]), (2.0, 1.0));
    }
}
