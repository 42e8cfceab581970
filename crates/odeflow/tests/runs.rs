//! The pipeline through the public API (`odeflow::runs`): training a run folder with every
//! method family, cancelling and resuming it bit for bit, refusing a model that is not the
//! run's, and the check of a model odeflow did not build, in closed form.

use std::cell::Cell;
use std::path::Path;

use odeflow::data::Dataset;
use odeflow::runs::check::{check_regressor, check_run};
use odeflow::runs::{self, check_classifier, FlowModel, Observer, RunConfig, RunError, Silent};
use odeflow::solve::{solve, Method, SaveAt, SolveOptions, SolverSpec, Stats};
use odeflow::Batch;

fn tiny(method: &str, steps: usize, iterations: u64) -> RunConfig {
    let mut c = RunConfig::default();
    c.data.train_size = Some(128);
    c.data.test_size = Some(64);
    c.model.channels = Some(4);
    c.model.threads = 1;
    c.solver.method = method.into();
    c.solver.steps = Some(steps);
    c.train.iterations = iterations;
    c.train.batch_size = 32;
    c.train.lr = 1e-2;
    c.train.checkpoint_every = 5;
    c
}

/// Notes the pipeline gives, kept.
#[derive(Default)]
struct Notes(std::cell::RefCell<Vec<String>>);

impl Observer for Notes {
    fn note(&self, message: &str) {
        self.0.borrow_mut().push(message.to_string());
    }
}

#[test]
fn a_batch_larger_than_the_training_set_is_said_and_recorded() {
    let tmp = tempfile::tempdir().unwrap();
    let mut c = tiny("euler", 2, 2);
    c.train.batch_size = 500;
    let notes = Notes::default();
    let s = runs::train_new(&tmp.path().join("big"), c, &notes).unwrap();
    assert_eq!(s.capped.len(), 1, "{:?}", s.capped);
    assert!(s.capped[0].contains("train.batch_size 500") && s.capped[0].contains("128"));
    assert!(notes.0.borrow().iter().any(|n| n.contains("full-batch")));
    let on_disk = runs::train::load_summary(&tmp.path().join("big")).unwrap();
    assert_eq!(on_disk.capped, s.capped);
    let exact = runs::train_new(&tmp.path().join("fits"), tiny("euler", 2, 2), &Silent).unwrap();
    assert!(exact.capped.is_empty());
}

#[test]
fn a_run_trains_and_is_checked_with_implicit_midpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("im");
    let s = runs::train_new(&dir, tiny("implicit-midpoint", 2, 6), &Silent).unwrap();
    assert_eq!(s.train.method, "implicit-midpoint");
    assert!(s.train_loss.unwrap().is_finite());
    let c = check_run(&dir, 0.02, 64, &Silent).unwrap();
    assert!(c.verdict.compared > 0, "{}", c.verdict.summary);
    // A splitting needs a separable field; the gradient method must exist for the method.
    let e = runs::train_new(&tmp.path().join("v"), tiny("verlet", 2, 2), &Silent).unwrap_err();
    assert!(
        e.message().contains("verlet") && e.message().contains("splitting"),
        "{e}"
    );
    let mut c = tiny("implicit-midpoint", 2, 2);
    c.solver.grad = "reversible".into();
    let e = runs::train_new(&tmp.path().join("r"), c, &Silent).unwrap_err();
    assert!(e.message().contains("reversible"), "{e}");
}

/// Stops training after `stop_at` iterations have been reported.
struct StopAt {
    stop_at: u64,
    seen: Cell<u64>,
}

impl Observer for StopAt {
    fn progress(&self, position: u64, _status: &str) {
        self.seen.set(position);
    }
    fn cancelled(&self) -> bool {
        self.seen.get() >= self.stop_at
    }
}

fn params(dir: &Path) -> Vec<serde_json::Value> {
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("model.json")).unwrap()).unwrap();
    m["params"].as_array().unwrap().clone()
}

#[test]
fn a_cancelled_run_resumes_bit_for_bit() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let cfg = tiny("euler", 2, 20);
    runs::train_new(&a, cfg.clone(), &Silent).unwrap();
    let stop = StopAt {
        stop_at: 7,
        seen: Cell::new(0),
    };
    // Progress is reported every iteration for short runs (iterations / 200 < 1).
    let e = runs::train_new(&b, cfg, &stop).unwrap_err();
    assert!(matches!(e, RunError::Cancelled(_)), "{e}");
    assert!(e.message().contains("--resume"), "{e}");
    runs::resume(&b, None, None, &Silent).unwrap();
    assert_eq!(params(&a), params(&b));
}

/// `checkpoint.json` as odeflow wrote it before checkpoints were safetensors (format
/// version 1: JSON with a CRC-32 of the numeric payload).
fn legacy_json(c: &odeflow::train::Checkpoint) -> Vec<u8> {
    let mut h = crc32fast::Hasher::new();
    h.update(&c.iteration.to_le_bytes());
    h.update(c.dtype.as_bytes());
    for v in c.params.iter().chain(&c.optimizer.m).chain(&c.optimizer.v) {
        h.update(&v.to_le_bytes());
    }
    h.update(&c.optimizer.t.to_le_bytes());
    h.update(c.hook.to_string().as_bytes());
    serde_json::to_vec(&serde_json::json!({
        "format": "odeflow-checkpoint",
        "version": 1,
        "iteration": c.iteration,
        "dtype": c.dtype,
        "params": c.params,
        "optimizer": c.optimizer,
        "hook": c.hook,
        "meta": c.meta,
        "checksum": h.finalize(),
    }))
    .unwrap()
}

#[test]
fn a_run_checkpointed_by_an_older_version_resumes_bit_for_bit() {
    use odeflow::train::{Checkpoint, CHECKPOINT_FILE, LEGACY_CHECKPOINT_FILE};
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    // Adapted f32 training: the hook's state (the adapted step) must survive the upgrade.
    let mut cfg = tiny("euler", 2, 20);
    cfg.solver.steps = None;
    cfg.adapt.enabled = true;
    cfg.adapt.interval = 5;
    runs::train_new(&a, cfg.clone(), &Silent).unwrap();
    let stop = StopAt {
        stop_at: 7,
        seen: Cell::new(0),
    };
    runs::train_new(&b, cfg, &stop).unwrap_err();
    let (new, legacy) = (b.join(CHECKPOINT_FILE), b.join(LEGACY_CHECKPOINT_FILE));
    let ck = Checkpoint::load(&new).unwrap();
    assert_eq!((ck.iteration, ck.dtype.as_str()), (7, "f32"));
    assert!(!ck.hook.is_null());
    std::fs::write(&legacy, legacy_json(&ck)).unwrap();
    std::fs::remove_file(&new).unwrap();
    // A new run must not start over it.
    let e = runs::train_new(&b, tiny("euler", 2, 2), &Silent).unwrap_err();
    assert!(e.message().contains("already holds a run"), "{e}");
    runs::resume(&b, None, None, &Silent).unwrap();
    assert_eq!(params(&a), params(&b));
    assert!(new.is_file() && !legacy.exists());
}

#[test]
fn a_locked_run_folder_is_refused_and_budgets_are_checked_first() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("busy");
    let held = odeflow::runs::files::lock(&dir, "train").unwrap();
    let e = runs::train_new(&dir, tiny("euler", 2, 2), &Silent).unwrap_err();
    let pid = std::process::id().to_string();
    assert!(
        e.message().contains("in use by process") && e.message().contains(&pid),
        "{e}"
    );
    drop(held);
    runs::train_new(&dir, tiny("euler", 2, 2), &Silent).unwrap();
    // A step size that implies 10⁹ steps is refused before any work, naming the value.
    let mut c = tiny("euler", 2, 2);
    c.solver.steps = None;
    c.solver.step_size = Some(1e-9);
    let e = runs::train_new(&tmp.path().join("tiny-h"), c, &Silent).unwrap_err();
    assert!(e.message().contains("--step-size 1e-9"), "{e}");
    let mut c = tiny("euler", 2, 2);
    c.data.train_size = Some(usize::MAX / 4);
    let e = runs::train_new(&tmp.path().join("huge"), c, &Silent).unwrap_err();
    assert!(
        e.message().contains("memory budget") || e.message().contains("budget"),
        "{e}"
    );
    let mut c = tiny("euler", 2, 2);
    c.train.checkpoint_every = 0;
    let e = runs::train_new(&tmp.path().join("zero"), c, &Silent).unwrap_err();
    assert!(e.message().contains("checkpoint_every = 0"), "{e}");
}

#[test]
fn a_model_of_another_run_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    runs::train_new(&a, tiny("euler", 2, 2), &Silent).unwrap();
    let mut other = tiny("euler", 2, 2);
    other.model.kind = "mlp".into();
    other.model.channels = None;
    runs::train_new(&b, other, &Silent).unwrap();
    std::fs::copy(b.join("model.json"), a.join("model.json")).unwrap();
    let e = check_run(&a, 0.02, 64, &Silent).unwrap_err();
    assert!(
        e.message().contains("architecture") && e.message().contains("Mlp"),
        "{e}"
    );
    assert!(
        !a.join("check.json").exists(),
        "no verdict on the wrong model"
    );
}

/// `z' = ω J z`, classified by the sign of the first coordinate (logits `[−x, x]`).
struct Rotation {
    omega: f64,
}

impl FlowModel<f64> for Rotation {
    fn outputs(
        &mut self,
        x: &Batch<f64>,
        method: &Method,
        opts: &SolveOptions,
    ) -> Result<(Batch<f64>, Stats), String> {
        let w = self.omega;
        let (z1, stats) = solve_linear([[0.0, -w], [w, 0.0]], x, method, opts)?;
        let logits = z1
            .as_slice()
            .chunks_exact(2)
            .flat_map(|p| [-p[0], p[0]])
            .collect();
        Ok((Batch::from_vec(x.rows(), 2, logits).unwrap(), stats))
    }
}

/// The final states of `z' = A z` from the rows of `x`, solved with `method` and `opts`.
fn solve_linear(
    a: [[f64; 2]; 2],
    x: &Batch<f64>,
    method: &Method,
    opts: &SolveOptions,
) -> Result<(Batch<f64>, Stats), String> {
    let mut f = |_t: f64, z: &Batch<f64>, dz: &mut Batch<f64>| {
        for (d, p) in dz
            .as_mut_slice()
            .chunks_exact_mut(2)
            .zip(z.as_slice().chunks_exact(2))
        {
            d[0] = a[0][0] * p[0] + a[0][1] * p[1];
            d[1] = a[1][0] * p[0] + a[1][1] * p[1];
        }
    };
    let o = SolveOptions {
        save: SaveAt::Final,
        ..opts.clone()
    };
    let sol = solve(method, &mut f, x, &o).map_err(|e| e.to_string())?;
    Ok((sol.y_final, sol.stats))
}

/// Points on the unit circle at angles `a_k`, labelled by the sign of `cos(a_k + θ)`.
fn circle(n: usize, theta: f64) -> (Dataset<f64>, Vec<f64>) {
    let angles: Vec<f64> = (0..n)
        .map(|k| (k as f64 + 0.5) * std::f64::consts::TAU / n as f64)
        .collect();
    let x = angles.iter().flat_map(|a| [a.cos(), a.sin()]).collect();
    let labels = angles
        .iter()
        .map(|a| usize::from((a + theta).cos() > 0.0))
        .collect();
    (
        Dataset::new(Batch::from_vec(n, 2, x).unwrap(), labels, vec![2], 2).unwrap(),
        angles,
    )
}

#[test]
fn a_hand_written_model_fitted_through_euler_is_not_a_flow_in_closed_form() {
    // Euler with 2 steps of ω/2 rotates by 2 atan(ω/2): ω = 2 tan 1 reproduces the rotation
    // by 2 rad exactly. Solved accurately, the flow rotates by ω ≈ 3.115 rad instead; the
    // labels of points whose angle lies between the two rotations flip: a fraction
    // 2 (ω − 2) / 2π of the circle.
    let n = 2000;
    let (test, _) = circle(n, 2.0);
    let omega = 2.0 * 1f64.tan();
    let train = SolverSpec::fixed("euler", 2).unwrap();
    let grid = [SolverSpec::fixed("rk4", 64).unwrap()];
    let (v, report) = check_classifier(
        &mut Rotation { omega },
        "rotation",
        &test,
        &train,
        Some(&grid),
        (0.0, 1.0),
        0.02,
        500,
        &Silent,
    )
    .unwrap();
    assert_eq!(report.train.accuracy, 1.0);
    let expected = 2.0 * (omega - 2.0) / std::f64::consts::TAU;
    let row = &report.results[0];
    assert!(
        (row.changed.unwrap() - expected).abs() < 2e-3,
        "{row:?} vs {expected}"
    );
    assert!((v.worst.drop - expected).abs() < 2e-3, "{:?}", v.worst);
    assert!(
        !v.valid && v.worst.p_value.unwrap() < 1e-10,
        "{}",
        v.summary
    );
    // The exact rotation (ω = 2) trained with a fine solver is a flow: valid.
    let (v, _) = check_classifier(
        &mut Rotation { omega: 2.0 },
        "exact",
        &test,
        &SolverSpec::fixed("rk4", 32).unwrap(),
        None,
        (0.0, 1.0),
        0.02,
        500,
        &Silent,
    )
    .unwrap();
    assert!(v.valid, "{}", v.summary);
}

/// `z' = A z` on every row, outputs the final state (a learned linear dynamical model).
struct Linear {
    a: [[f64; 2]; 2],
}

impl FlowModel<f64> for Linear {
    fn outputs(
        &mut self,
        x: &Batch<f64>,
        method: &Method,
        opts: &SolveOptions,
    ) -> Result<(Batch<f64>, Stats), String> {
        solve_linear(self.a, x, method, opts)
    }
}

#[test]
fn the_regression_check_sees_a_model_that_only_works_with_its_solver() {
    // Targets: the rotation R(2) of points on the circle. With A = 2 (R(1) − I), two Euler
    // steps give (I + A/2)² = R(1)² = R(2) exactly: R² = 1 with the training solver. The
    // ODE z' = A z itself is a spiral, exp(A) ≠ R(2): solved accurately it misses.
    let n = 256;
    let (data, angles) = circle(n, 2.0);
    let y: Vec<f64> = angles
        .iter()
        .flat_map(|a| [(a + 2.0).cos(), (a + 2.0).sin()])
        .collect();
    let y = Batch::from_vec(n, 2, y).unwrap();
    let (c, s) = (1f64.cos(), 1f64.sin());
    let mut fitted = Linear {
        a: [[2.0 * (c - 1.0), -2.0 * s], [2.0 * s, 2.0 * (c - 1.0)]],
    };
    let train = SolverSpec::fixed("euler", 2).unwrap();
    let grid = [SolverSpec::fixed("rk4", 64).unwrap()];
    let (v, report) = check_regressor(
        &mut fitted,
        data.inputs(),
        &y,
        &train,
        Some(&grid),
        (0.0, 1.0),
        0.05,
        7,
    )
    .unwrap();
    assert!((report.train.accuracy - 1.0).abs() < 1e-12, "{report:?}");
    assert_eq!(report.results[0].changed, Some(1.0));
    // Closed form: exp(A) = e^{2(cos 1 − 1)} R(2 sin 1), so the squared miss per point is
    // r² + 1 − 2 r cos(2 − 2 sin 1) with r = e^{2(cos 1 − 1)}, and var(y) = ½ per component.
    let (c, s1) = (1f64.cos(), 1f64.sin());
    let r = (2.0 * (c - 1.0)).exp();
    let miss = r * r + 1.0 - 2.0 * r * (2.0 - 2.0 * s1).cos();
    let expected_drop = miss; // 1 − R² = (miss / 2) / ½
    assert!(!v.valid, "{}", v.summary);
    assert!(
        (v.worst.drop - expected_drop).abs() < 1e-6,
        "{} vs {expected_drop}",
        v.worst.drop
    );
    assert_eq!(v.worst.p_value, Some(0.01));
    // The exact generator of R(2) (A = 2J) checked from a fine solver is a flow.
    let mut exact = Linear {
        a: [[0.0, -2.0], [2.0, 0.0]],
    };
    let (v, _) = check_regressor(
        &mut exact,
        data.inputs(),
        &y,
        &SolverSpec::fixed("rk4", 32).unwrap(),
        None,
        (0.0, 1.0),
        0.05,
        7,
    )
    .unwrap();
    assert!(v.valid, "{}", v.summary);
}
