//! The training loop on a tiny Neural ODE: loss decreases, seeds reproduce, resume is exact.

use super::*;
use crate::field::{FieldRhs, Parameterized, VectorField};
use crate::grad::toy_field::TanhField;
use crate::grad::{GradSolver, GradientMethod};
use crate::solve::{Method, SolveOptions};
use crate::state::{Batch, State};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Regress y(1) of the ODE onto a fixed linear map of y(0) (a separable toy problem).
pub(super) struct OdeRegressor {
    field: TanhField<f64>,
    solver: GradSolver<Batch<f64>, TanhField<f64>>,
}

impl Trainable<f64> for OdeRegressor {
    type Batch = (Batch<f64>, Batch<f64>);
    fn num_params(&self) -> usize {
        self.field.num_params()
    }
    fn read_params(&self, out: &mut [f64]) {
        out.copy_from_slice(self.field.params());
    }
    fn write_params(&mut self, src: &[f64]) {
        self.field.params_mut().copy_from_slice(src);
    }
    fn loss_and_grad(
        &mut self,
        (x, y): &Self::Batch,
        grad: &mut [f64],
        it: u64,
    ) -> Result<StepMetrics, TrainError> {
        let y1 = self
            .solver
            .forward(&mut self.field, x)
            .map_err(|e| TrainError::solver(it, e))?
            .clone();
        let n = y1.len() as f64;
        let mut d = y1.clone();
        d.axpy(-1.0, y);
        let loss = d.dot(&d) / n;
        d.scale(2.0 / n);
        let mut g = self.field.zero_grad();
        self.solver
            .backward(&mut self.field, &d, &mut g)
            .map_err(|e| TrainError::solver(it, e))?;
        grad.copy_from_slice(&g);
        let s = self.solver.stats();
        Ok(StepMetrics {
            loss,
            nfe_forward: s.forward.nfe,
            nfe_backward: s.backward_vjp,
            ..Default::default()
        })
    }
}

pub(super) struct Pairs {
    x: Batch<f64>,
    y: Batch<f64>,
    seed: u64,
}

impl BatchSource<(Batch<f64>, Batch<f64>)> for Pairs {
    fn new_batch(&self) -> (Batch<f64>, Batch<f64>) {
        (Batch::zeros(0, 2), Batch::zeros(0, 2))
    }
    fn fill(&mut self, iteration: u64, (bx, by): &mut (Batch<f64>, Batch<f64>)) {
        let mut rng =
            ChaCha8Rng::seed_from_u64(self.seed ^ iteration.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let idx: Vec<usize> = (0..16)
            .map(|_| rng.random_range(0..self.x.rows()))
            .collect();
        bx.gather_rows(&self.x, &idx);
        by.gather_rows(&self.y, &idx);
    }
}

pub(super) fn problem(seed: u64) -> (OdeRegressor, Pairs) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let x: Vec<f64> = (0..128).map(|_| rng.random_range(-1.0..1.0)).collect();
    let y: Vec<f64> = x
        .chunks(2)
        .flat_map(|r| [0.8 * r[0] + 0.3 * r[1], -0.3 * r[0] + 0.8 * r[1]])
        .collect();
    let pairs = Pairs {
        x: Batch::from_vec(64, 2, x).unwrap(),
        y: Batch::from_vec(64, 2, y).unwrap(),
        seed,
    };
    let solver = GradSolver::new(
        Method::from_name("rk4").unwrap(),
        GradientMethod::Backprop,
        SolveOptions::steps(0.0, 1.0, 4),
    )
    .unwrap();
    (
        OdeRegressor {
            field: TanhField::random(2, 0.5, seed),
            solver,
        },
        pairs,
    )
}

pub(super) fn cfg(iterations: u64, dir: Option<&std::path::Path>) -> TrainConfig {
    TrainConfig {
        iterations,
        optimizer: OptimizerConfig::adam(0.02),
        schedule: LrSchedule::Constant,
        checkpoint_every: 10,
        out_dir: dir.map(|d| d.to_path_buf()),
    }
}

pub(super) fn train(iterations: u64, seed: u64) -> (Vec<f64>, Vec<f64>) {
    let (mut model, mut data) = problem(seed);
    let mut t = Trainer::new(cfg(iterations, None), &model).unwrap();
    let mut losses = Vec::new();
    t.run(&mut model, &mut data, &mut NoHook, |r| losses.push(r.loss))
        .unwrap();
    (losses, t.params().to_vec())
}

#[test]
fn training_reduces_the_loss_and_is_reproducible() {
    let (losses, p1) = train(150, 3);
    let first: f64 = losses[..10].iter().sum::<f64>() / 10.0;
    let last: f64 = losses[losses.len() - 10..].iter().sum::<f64>() / 10.0;
    assert!(last < 0.2 * first, "loss {first} -> {last}");
    let (losses2, p2) = train(150, 3);
    assert_eq!(losses, losses2);
    assert_eq!(p1, p2, "same seed must give bitwise identical parameters");
    let (_, p3) = train(150, 4);
    assert_ne!(p1, p3);
}

#[test]
fn a_killed_run_resumes_bitwise_identically() {
    let dir = tempfile::tempdir().unwrap();
    let ck = dir.path().join(CHECKPOINT_FILE);
    let saved20 = dir.path().join("ck20.safetensors");
    let (full_losses, full) = train(40, 5);
    // A run that checkpoints at 10, 20, 30, 40: keep the checkpoint of iteration 20, then
    // pretend the process died after iteration 25 (log has 25 lines, checkpoint is at 20).
    let (mut model, mut data) = problem(5);
    let mut t = Trainer::new(cfg(40, Some(dir.path())), &model).unwrap();
    t.run(&mut model, &mut data, &mut NoHook, |r| {
        if r.iteration == 21 {
            std::fs::copy(&ck, &saved20).unwrap();
        }
    })
    .unwrap();
    std::fs::copy(&saved20, &ck).unwrap();
    let log_path = dir.path().join(METRICS_FILE);
    let text = std::fs::read_to_string(&log_path).unwrap();
    let first25: Vec<&str> = text.lines().take(25).collect();
    std::fs::write(&log_path, first25.join("\n") + "\n").unwrap();

    let (mut model, mut data) = problem(5);
    let mut resumed = Trainer::resume(cfg(40, Some(dir.path())), &mut model, &mut NoHook).unwrap();
    assert_eq!(resumed.iteration(), 20);
    resumed
        .run(&mut model, &mut data, &mut NoHook, |_| {})
        .unwrap();
    assert_eq!(
        resumed.params(),
        &full[..],
        "resumed parameters differ from an uninterrupted run"
    );
    let log = read_log(&log_path).unwrap();
    let iters: Vec<u64> = log
        .iter()
        .map(|r| r["iteration"].as_u64().unwrap())
        .collect();
    assert_eq!(
        iters,
        (1..=40).collect::<Vec<u64>>(),
        "log must hold each iteration once"
    );
    let losses: Vec<f64> = log.iter().map(|r| r["loss"].as_f64().unwrap()).collect();
    assert_eq!(losses, full_losses);
}

#[test]
fn a_run_with_a_legacy_json_checkpoint_resumes_bitwise_identically_and_is_upgraded() {
    let dir = tempfile::tempdir().unwrap();
    let (full_losses, full) = train(40, 6);
    // A run of an older version: 20 iterations, its checkpoint in JSON.
    let (mut model, mut data) = problem(6);
    let mut t = Trainer::new(cfg(20, Some(dir.path())), &model).unwrap();
    t.run(&mut model, &mut data, &mut NoHook, |_| {}).unwrap();
    let new = dir.path().join(CHECKPOINT_FILE);
    let legacy = dir.path().join(LEGACY_CHECKPOINT_FILE);
    let ck = Checkpoint::load(&new).unwrap();
    std::fs::write(&legacy, super::checkpoint::legacy_json(&ck)).unwrap();
    std::fs::remove_file(&new).unwrap();
    assert_eq!(existing_checkpoint(dir.path()), Some(legacy.clone()));

    let (mut model, mut data) = problem(6);
    let mut resumed = Trainer::resume(cfg(40, Some(dir.path())), &mut model, &mut NoHook).unwrap();
    assert_eq!(resumed.iteration(), 20);
    resumed
        .run(&mut model, &mut data, &mut NoHook, |_| {})
        .unwrap();
    assert_eq!(resumed.params(), &full[..]);
    let losses: Vec<f64> = read_log(&dir.path().join(METRICS_FILE))
        .unwrap()
        .iter()
        .map(|r| r["loss"].as_f64().unwrap())
        .collect();
    assert_eq!(losses, full_losses);
    // The next checkpoint replaced the JSON file.
    assert!(new.is_file() && !legacy.exists());
    assert_eq!(Checkpoint::load(&new).unwrap().iteration, 40);
}

#[test]
fn resuming_from_a_corrupt_checkpoint_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(CHECKPOINT_FILE),
        b"{\"format\": \"odeflow-checkpoint\", \"vers",
    )
    .unwrap();
    let (mut model, _) = problem(1);
    let err = Trainer::resume(cfg(10, Some(dir.path())), &mut model, &mut NoHook)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("corrupt or truncated") && err.contains(CHECKPOINT_FILE),
        "{err}"
    );
}

#[test]
fn field_rhs_is_usable_by_the_solver() {
    let (mut model, data) = problem(2);
    let y = crate::solve::solve(
        &Method::from_name("euler").unwrap(),
        &mut FieldRhs(&mut model.field),
        &data.x,
        &SolveOptions::steps(0.0, 1.0, 2),
    )
    .unwrap();
    assert_eq!(y.y_final.rows(), 64);
}
