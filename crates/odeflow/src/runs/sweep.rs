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

use serde::{Deserialize, Serialize};

use super::check::load_check;
use super::config::RunConfig;
use super::model_file::{ModelFile, MODEL_FILE};
use super::train::load_summary;
use super::{files, RunError};
use crate::analysis::solver_dependence::{
    critical_setting, CriticalSetting, SettingDrop, WorstCase,
};
use crate::report::{cell, short, Table};
use crate::solve::spec::steps_of;
use crate::solve::SolverSpec;
use crate::stats::mean_std;

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
    pub fn runs(&self) -> Result<Vec<PlannedRun>, RunError> {
        if self.methods.is_empty() || self.seeds.is_empty() {
            return Err(RunError::input(
                "a sweep needs at least one method and one seed",
            ));
        }
        fn unique<V: PartialEq + std::fmt::Debug>(what: &str, v: &[V]) -> Result<(), RunError> {
            for (i, x) in v.iter().enumerate() {
                if v[..i].contains(x) {
                    return Err(RunError::input(format!(
                        "the sweep lists {what} {x:?} twice: give each once (a repeated entry would be counted as an independent run)"
                    )));
                }
            }
            Ok(())
        }
        unique("method", &self.methods)?;
        unique("step count", &self.steps)?;
        unique("step size", &self.step_sizes)?;
        unique("tolerance", &self.tols)?;
        unique("seed", &self.seeds)?;
        if let Some(t) = self.tols.first() {
            let mut adaptive = false;
            for m in &self.methods {
                adaptive |= crate::Method::from_name(m)?.is_adaptive();
            }
            if !adaptive {
                return Err(RunError::input(format!(
                    "--tols {} does not apply: none of the methods ({}) is adaptive; add an embedded pair such as dopri5, or drop --tols",
                    crate::budget::readable(*t),
                    self.methods.join(", ")
                )));
            }
        }
        let mut out = Vec::new();
        for m in &self.methods {
            let method = crate::Method::from_name(m)?;
            let mut settings: Vec<(Option<usize>, Option<f64>, Option<f64>)> = Vec::new();
            if method.is_adaptive() && !self.tols.is_empty() {
                settings.extend(self.tols.iter().map(|&t| (None, None, Some(t))));
            } else {
                settings.extend(self.steps.iter().map(|&n| (Some(n), None, None)));
                settings.extend(self.step_sizes.iter().map(|&h| (None, Some(h), None)));
            }
            if settings.is_empty() {
                return Err(RunError::input(format!(
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
    pub fn load(dir: &Path) -> Result<Self, RunError> {
        let path = dir.join(PLAN_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            if !dir.is_dir() {
                return RunError::input(format!(
                    "'{}' is not a sweep folder: it is {}",
                    dir.display(),
                    crate::fsutil::describe_path(dir)
                ));
            }
            RunError::input(format!(
                "'{}' is not a sweep folder: cannot read {}: {e}",
                dir.display(),
                path.display()
            ))
        })?;
        toml::from_str(&text).map_err(|e| {
            RunError::input(format!("'{}' is corrupt: {}", path.display(), e.message()))
        })
    }

    /// The plan as TOML.
    pub fn to_toml(&self) -> Result<String, RunError> {
        toml::to_string_pretty(self)
            .map_err(|e| RunError::runtime(format!("cannot write the sweep plan: {e}")))
    }
}

/// The plan of the sweep folder `dir`: `given` (which must match a plan already in the
/// folder, and is written to `sweep.toml` when the folder has none), or the folder's own
/// plan when `given` is `None`. Every grid point is validated.
pub fn settle_plan(dir: &Path, given: Option<SweepPlan>) -> Result<SweepPlan, RunError> {
    let existing = dir.join(PLAN_FILE).exists();
    let Some(plan) = given else {
        return SweepPlan::load(dir);
    };
    plan.runs()?;
    if existing {
        let old = SweepPlan::load(dir)?;
        if old != plan {
            return Err(RunError::input(format!(
                "'{}' holds a different sweep ({}); repeat its flags, give none to continue it, or choose another --out-dir",
                dir.display(),
                dir.join(PLAN_FILE).display()
            )));
        }
    } else {
        let text = format!("# odeflow sweep plan\n{}", plan.to_toml()?);
        files::write_atomic(&dir.join(PLAN_FILE), text.as_bytes())?;
    }
    Ok(plan)
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
pub fn row_of_run(dir: &Path, name: &str, cfg: &RunConfig) -> Result<Option<SweepRow>, RunError> {
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
        valid: check.verdict.valid,
        drop: check.verdict.worst.drop,
        worst: check.verdict.worst,
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
    let mut t = Table::new(&[
        "run",
        "method",
        "order",
        "steps",
        "step_size",
        "tol",
        "seed",
        "test_accuracy",
        "train_accuracy",
        "valid",
        "drop",
        "worst_method",
        "worst_steps",
        "worst_tol",
        "worst_accuracy",
        "seconds",
    ]);
    for r in rows {
        t.push(vec![
            cell(r.run.as_str()),
            cell(r.method.as_str()),
            cell(r.order),
            cell(r.steps),
            cell(r.step_size),
            cell(r.tol),
            cell(r.seed),
            cell(r.test_accuracy),
            cell(r.train_accuracy),
            cell(r.valid),
            cell(r.drop),
            cell(r.worst.method.as_str()),
            cell(r.worst.steps),
            cell(r.worst.tol),
            cell(r.worst.accuracy),
            cell(r.seconds),
        ]);
    }
    t.to_csv()
}

/// Takes the lock of shard `k` of `n` of the sweep in `dir` (the folder
/// `dir/shards/.shard-k-of-n`): two processes running the same shard are refused, two
/// shards run side by side.
pub fn lock_shard(dir: &Path, k: usize, n: usize) -> Result<crate::fsutil::FolderLock, RunError> {
    files::lock(
        &dir.join("shards").join(format!(".shard-{k}-of-{n}")),
        "sweep shard",
    )
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
pub fn collect_rows(dir: &Path, plan: &SweepPlan) -> Result<Vec<SweepRow>, RunError> {
    let mut from_shards: Vec<SweepRow> = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir.join("shards")) {
        for e in entries.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "json") {
                let f: ShardFile = files::read_json(&p, "the shard file")?;
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
        return Err(RunError::input(format!(
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

/// Collects the rows of the sweep in `dir` and writes `sweep.json` and `sweep.csv`.
pub fn merge(dir: &Path, plan: &SweepPlan) -> Result<SweepTable, RunError> {
    let _lock = files::lock(dir, "merge")?;
    let rows = collect_rows(dir, plan)?;
    let table = SweepTable {
        plan: plan.clone(),
        threshold: plan.base.check.threshold,
        groups: group_rows(&rows),
        rows,
    };
    files::write_json(&table, &dir.join("sweep.json"))?;
    files::write_atomic(&dir.join("sweep.csv"), table_csv(&table.rows).as_bytes())?;
    Ok(table)
}

/// Reads the merged table `dir/sweep.json`.
pub fn load_table(dir: &Path) -> Result<SweepTable, RunError> {
    files::read_json(&dir.join("sweep.json"), "the sweep table")
}

/// The x value of a group: the training step size, or the tolerance.
pub fn group_axis(g: &SweepGroup) -> f64 {
    g.tol.or(g.step_size).unwrap_or(f64::NAN)
}

/// Methods in order of appearance.
pub fn methods_of(groups: &[SweepGroup]) -> Vec<String> {
    let mut m: Vec<String> = Vec::new();
    for g in groups {
        if !m.contains(&g.method) {
            m.push(g.method.clone());
        }
    }
    m
}

/// The critical step of one method.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CriticalStep {
    /// Method.
    pub method: String,
    /// The critical training step size (fixed-step methods), if any step passes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub critical_step_size: Option<f64>,
    /// Steps on [0, 1] at the critical step size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub critical_steps: Option<usize>,
    /// The critical tolerance (adaptive methods), if any passes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub critical_tol: Option<f64>,
    /// Grid values (step sizes or tolerances) whose models all pass.
    pub passing: Vec<f64>,
    /// Grid values with at least one failing model.
    pub failing: Vec<f64>,
    /// One sentence.
    pub summary: String,
}

/// `critical-step.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CriticalReport {
    /// Threshold on the accuracy drop.
    pub threshold: f64,
    /// One entry per method.
    pub methods: Vec<CriticalStep>,
}

/// The critical step of `method` among `groups` (see
/// [`crate::analysis::solver_dependence::critical`]).
pub fn critical_step(method: &str, groups: &[SweepGroup], threshold: f64) -> CriticalStep {
    let mine: Vec<&SweepGroup> = groups.iter().filter(|g| g.method == method).collect();
    let drops: Vec<SettingDrop> = mine
        .iter()
        .map(|g| SettingDrop {
            setting: group_axis(g),
            drop_max: g.drop_max,
        })
        .collect();
    let CriticalSetting {
        critical,
        passing,
        failing,
    } = critical_setting(&drops, threshold);
    let critical = critical.and_then(|c| mine.iter().find(|g| group_axis(g) == c).copied());
    let adaptive = mine.first().is_some_and(|g| g.tol.is_some());
    let steps = |g: &SweepGroup| g.steps.unwrap_or_else(|| steps_of(group_axis(g)));
    let summary = match critical {
        Some(g) if adaptive => format!(
            "{method}: critical tolerance {} — the largest training tolerance whose models (and those of every tighter one) pass the check at threshold {threshold}",
            short(group_axis(g))
        ),
        Some(g) => format!(
            "{method}: critical step size h* = {} ({} steps) — the largest training step whose models (and those of every smaller one) pass the check at threshold {threshold}",
            short(group_axis(g)),
            steps(g)
        ),
        None => format!(
            "{method}: no critical step — even the finest training setting of the sweep fails the check at threshold {threshold}; sweep finer steps"
        ),
    };
    CriticalStep {
        method: method.into(),
        critical_step_size: critical.filter(|_| !adaptive).map(group_axis),
        critical_steps: critical.filter(|_| !adaptive).map(steps),
        critical_tol: critical.filter(|_| adaptive).map(group_axis),
        passing,
        failing,
        summary,
    }
}

/// The critical step of every method of a sweep table at `threshold` (the table's own when
/// `None`), written to `dir/critical-step.json`.
pub fn critical_report(
    dir: &Path,
    table: &SweepTable,
    threshold: Option<f64>,
) -> Result<CriticalReport, RunError> {
    let threshold = threshold.unwrap_or(table.threshold);
    if !(0.0..=1.0).contains(&threshold) {
        return Err(RunError::input(format!(
            "--threshold {threshold} is invalid: it must lie in [0, 1]"
        )));
    }
    let groups = group_rows(&table.rows);
    let methods = methods_of(&groups)
        .iter()
        .map(|m| critical_step(m, &groups, threshold))
        .collect();
    let report = CriticalReport { threshold, methods };
    files::write_json(&report, &dir.join("critical-step.json"))?;
    Ok(report)
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
        let mut dup = plan.clone();
        dup.seeds = vec![0, 0];
        let e = dup.runs().unwrap_err();
        assert!(e.message().contains("seed 0 twice"), "{e}");
    }

    fn g(steps: usize, drop_max: f64) -> SweepGroup {
        SweepGroup {
            method: "euler".into(),
            steps: Some(steps),
            step_size: Some(1.0 / steps as f64),
            tol: None,
            seeds: 1,
            test_accuracy: 0.9,
            test_accuracy_std: 0.0,
            drop: drop_max,
            drop_std: 0.0,
            drop_max,
            valid: usize::from(drop_max <= 0.02),
        }
    }

    #[test]
    fn the_critical_step_is_the_largest_step_below_which_all_pass() {
        // h = 1/64, 1/16 pass; 1/8 fails; 1/4 passes again (by chance); 1/2 fails.
        let groups = vec![g(2, 0.4), g(4, 0.01), g(8, 0.3), g(16, 0.0), g(64, 0.01)];
        let c = critical_step("euler", &groups, 0.02);
        assert_eq!(c.critical_steps, Some(16));
        assert_eq!(c.critical_step_size, Some(1.0 / 16.0));
        assert_eq!(c.passing.len(), 3);
        assert_eq!(c.failing, vec![0.125, 0.5]);
        let none = critical_step("euler", &[g(64, 0.5)], 0.02);
        assert!(none.critical_step_size.is_none());
        assert!(none.summary.contains("no critical step"));
    }
}
