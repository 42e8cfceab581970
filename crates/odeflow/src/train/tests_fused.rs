//! The trainer with a model that takes its own optimizer step ([`FusedStep`], as a captured
//! GPU iteration does), tested with a host stand-in: the same numbers as the trainer's own
//! optimizer, checkpoints that any model resumes, and a failure that keeps the last
//! synchronised state.

use super::tests::{cfg, problem, train, OdeRegressor};
use super::*;

/// [`OdeRegressor`] with its parameters and Adam moments held by the model, as a device
/// would hold them.
struct Fused {
    inner: OdeRegressor,
    params: Vec<f64>,
    grad: Vec<f64>,
    opt: Optimizer<f64>,
    fail_at: Option<u64>,
    loads: usize,
    stores: usize,
}

impl Fused {
    fn new(inner: OdeRegressor) -> Self {
        let n = inner.num_params();
        Self {
            inner,
            params: vec![0.0; n],
            grad: vec![0.0; n],
            opt: Optimizer::new(OptimizerConfig::adam(0.02), n).unwrap(),
            fail_at: None,
            loads: 0,
            stores: 0,
        }
    }
}

impl Trainable<f64> for Fused {
    type Batch = <OdeRegressor as Trainable<f64>>::Batch;
    fn num_params(&self) -> usize {
        self.inner.num_params()
    }
    fn read_params(&self, out: &mut [f64]) {
        self.inner.read_params(out);
    }
    fn write_params(&mut self, src: &[f64]) {
        self.inner.write_params(src);
    }
    fn loss_and_grad(
        &mut self,
        _: &Self::Batch,
        _: &mut [f64],
        _: u64,
    ) -> Result<StepMetrics, TrainError> {
        unreachable!("a fused model is stepped through FusedStep")
    }
    fn fused(&mut self) -> Option<&mut dyn FusedStep<f64, Self::Batch>> {
        Some(self)
    }
}

impl FusedStep<f64, <OdeRegressor as Trainable<f64>>::Batch> for Fused {
    fn load(&mut self, params: &[f64], opt: &OptimizerState) -> Result<(), TrainError> {
        self.loads += 1;
        self.params.copy_from_slice(params);
        self.opt.restore(opt)?;
        Ok(())
    }
    fn step(
        &mut self,
        batch: &<OdeRegressor as Trainable<f64>>::Batch,
        lr: f64,
        iteration: u64,
    ) -> Result<StepMetrics, TrainError> {
        self.inner.write_params(&self.params);
        self.grad.iter_mut().for_each(|g| *g = 0.0);
        let m = self.inner.loss_and_grad(batch, &mut self.grad, iteration)?;
        // Like the device, the update happens whatever the loss.
        self.opt.step(&mut self.params, &self.grad, lr);
        if self.fail_at == Some(iteration) {
            self.params.iter_mut().for_each(|p| *p = f64::NAN);
            return Ok(StepMetrics {
                loss: f64::NAN,
                ..m
            });
        }
        Ok(m)
    }
    fn store(&mut self, params: &mut [f64], opt: &mut OptimizerState) -> Result<(), TrainError> {
        self.stores += 1;
        params.copy_from_slice(&self.params);
        *opt = self.opt.state();
        Ok(())
    }
}

#[test]
fn a_fused_model_trains_bitwise_like_the_trainers_optimizer() {
    let (full_losses, full) = train(40, 5);
    let (model, mut data) = problem(5);
    let mut model = Fused::new(model);
    let mut t = Trainer::new(cfg(40, None), &model).unwrap();
    let mut losses = Vec::new();
    t.run(&mut model, &mut data, &mut NoHook, |r| losses.push(r.loss))
        .unwrap();
    assert_eq!(losses, full_losses);
    assert_eq!(t.params(), &full[..]);
    // Loaded once; synchronised at the checkpoints 10, 20, 30 and 40 only.
    assert_eq!((model.loads, model.stores), (1, 4));
}

#[test]
fn fused_and_host_runs_resume_each_other() {
    let (_, full) = train(40, 6);
    let dir = tempfile::tempdir().unwrap();
    // Fused for 20 iterations, cancelled there (its state is pulled into the checkpoint) …
    let (model, mut data) = problem(6);
    let mut model = Fused::new(model);
    let mut t = Trainer::new(cfg(40, Some(dir.path())), &model).unwrap();
    let r = t.run_until(&mut model, &mut data, &mut NoHook, |r| r.iteration < 20);
    assert!(matches!(r, Err(TrainError::Cancelled { iteration: 20 })));
    // … then on the host to 30 …
    let mut cfg30 = cfg(30, Some(dir.path()));
    cfg30.checkpoint_every = 0;
    let (mut host, mut data) = problem(6);
    let mut t = Trainer::resume(cfg30, &mut host, &mut NoHook).unwrap();
    assert_eq!(t.iteration(), 20);
    t.run(&mut host, &mut data, &mut NoHook, |_| {}).unwrap();
    // … then fused again to 40.
    let (model, mut data) = problem(6);
    let mut model = Fused::new(model);
    let mut t = Trainer::resume(cfg(40, Some(dir.path())), &mut model, &mut NoHook).unwrap();
    assert_eq!(t.iteration(), 30);
    t.run(&mut model, &mut data, &mut NoHook, |_| {}).unwrap();
    assert_eq!(
        t.params(),
        &full[..],
        "the moves between devices changed the run"
    );
    let log = read_log(&dir.path().join(METRICS_FILE)).unwrap();
    assert_eq!(log.len(), 40);
}

#[test]
fn a_failed_fused_step_keeps_the_last_synchronised_state() {
    let dir = tempfile::tempdir().unwrap();
    let (model, mut data) = problem(7);
    let mut model = Fused::new(model);
    model.fail_at = Some(14);
    let mut t = Trainer::new(cfg(40, Some(dir.path())), &model).unwrap();
    let e = t.run(&mut model, &mut data, &mut NoHook, |_| {});
    assert!(
        matches!(e, Err(TrainError::NonFiniteLoss { iteration: 15, .. })),
        "{e:?}"
    );
    // The checkpoint is the one of iteration 10, and holds finite parameters.
    assert_eq!(t.iteration(), 10);
    let (mut host, _) = problem(7);
    let resumed = Trainer::resume(cfg(40, Some(dir.path())), &mut host, &mut NoHook).unwrap();
    assert_eq!(resumed.iteration(), 10);
    assert!(resumed.params().iter().all(|p| p.is_finite()));
    let (_, p10) = train(10, 7);
    assert_eq!(resumed.params(), &p10[..]);
}
