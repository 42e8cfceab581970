//! [`ClassifierStep`]: one fixed-step training iteration of a classifier (MLP or
//! convolutional field, Linear head) on a GPU,
//! issued from its [`TrainPlan`] onto fixed device buffers, eagerly or as one captured CUDA
//! graph replayed per batch.
//!
//! **Not yet run on a GPU.** This code compiles against cudarc 0.19 and its launch order and
//! arithmetic are tested on the CPU (the plan executed with reference arithmetic in
//! `tests/cuda_plan/train.rs`, the kernels compiled as host C++ in `tests/cuda_kernels/`),
//! but the eager path, the stream capture (`begin_capture` → launches → `end_capture` →
//! `CudaGraph::launch`) and the cuBLAS calls inside a capture have never executed on a device.
//!
//! Per iteration the host copies the batch, the labels and the learning rate into their fixed
//! buffers, launches the graph (or records the launches eagerly), and reads back three small
//! results once at the end: the mean loss, the number of correct predictions and the first
//! non-finite index of every step's state (`yₙ₊₁`), so that a NaN is reported with the step
//! where it first appeared. Nothing inside the sequence synchronises with the host or
//! allocates, which is what capture requires; cuBLAS gets a fixed workspace for the same reason.

mod record;

use std::collections::HashMap;
use std::sync::Arc;

use cudarc::cublas::sys as blas_sys;
use cudarc::driver::{sys as drv, CudaGraph, CudaSlice, DevicePtr};

use super::device::{CudaError, Device};
use super::train_plan::{At, Buf, PlanGradient, PlanLoss, PlanOptimizer, TrainPlan};
use crate::state::Batch;
use crate::train::{OptimizerState, StepMetrics, TrainError};

/// cuBLAS workspace given to the handle before a capture (cuBLAS must not allocate inside).
const BLAS_WORKSPACE: usize = 4 << 20;

/// What one iteration reports (read back after the sequence).
#[derive(Debug, Clone, PartialEq)]
pub struct StepOutcome {
    /// Mean cross-entropy of the batch, before the update.
    pub loss: f64,
    /// Fraction of the batch classified correctly, before the update (`None` for a
    /// regression).
    pub accuracy: Option<f64>,
    /// `(step n, component)` of the first non-finite value in the states `yₙ₊₁`, if any.
    pub non_finite: Option<(usize, usize)>,
    /// For the memory-free gradients, `(what, backward step, component)` of the first
    /// non-finite value in the backward pass's state (the rebuilt `x̃ₙ` of the reversible
    /// method, step `n`; the adjoint `a` after backward step `m`, counted from `t₁`).
    pub backward_non_finite: Option<(&'static str, usize, usize)>,
}

impl StepOutcome {
    /// One line for the first non-finite value, if the iteration met one.
    pub fn non_finite_error(&self) -> Option<String> {
        if let Some((n, i)) = self.non_finite {
            return Some(format!(
                "the forward solve on the GPU gave a non-finite state at step {n} (component {i})"
            ));
        }
        self.backward_non_finite.map(|(what, n, i)| {
            format!(
                "the backward pass on the GPU gave a non-finite {what} at backward step {n} (component {i})"
            )
        })
    }
}

/// The parameters and Adam's state of a [`ClassifierStep`], copied to the host.
#[derive(Debug, Clone, PartialEq)]
pub struct HostState {
    /// The parameters `[field | head]`.
    pub params: Vec<f32>,
    /// Adam's first moment.
    pub m: Vec<f32>,
    /// Adam's second moment.
    pub v: Vec<f32>,
    /// Adam's step count.
    pub t: u64,
}

impl HostState {
    /// The optimizer's state as the trainer and its checkpoints keep it (f64).
    pub fn optimizer_state(&self) -> OptimizerState {
        let f = |v: &[f32]| v.iter().map(|&x| f64::from(x)).collect::<Vec<f64>>();
        OptimizerState {
            t: self.t,
            m: f(&self.m),
            v: f(&self.v),
        }
    }
}

/// The buffers and (once captured) the graph of one classifier training iteration.
pub struct ClassifierStep {
    dev: Arc<Device>,
    plan: TrainPlan,
    opt: PlanOptimizer,
    f32s: HashMap<Buf, CudaSlice<f32>>,
    lr: CudaSlice<f64>,
    loss: CudaSlice<f64>,
    labels: CudaSlice<i32>,
    u64s: HashMap<Buf, CudaSlice<u64>>,
    /// The convolutional field's f64 partial sums ([`Buf::Partial`]), when it has one.
    partial: Option<CudaSlice<f64>>,
    workspace: CudaSlice<u8>,
    graph: Option<CudaGraph>,
}

fn alloc<T: cudarc::driver::DeviceRepr + cudarc::driver::ValidAsZeroBits>(
    dev: &Device,
    n: usize,
) -> Result<CudaSlice<T>, CudaError> {
    dev.stream()
        .alloc_zeros::<T>(n.max(1))
        .map_err(|e| CudaError::call("allocation", e))
}

impl ClassifierStep {
    /// Allocates every buffer of `plan` on `dev`, with the initial parameters `params`
    /// (`[field | head]`, the CPU classifier's order), the update `opt` (Adam's settings,
    /// or SGD's) and fresh moments.
    pub fn new(
        dev: &Arc<Device>,
        plan: TrainPlan,
        params: &[f32],
        opt: impl Into<PlanOptimizer>,
    ) -> Result<Self, CudaError> {
        if params.len() != plan.num_params() {
            return Err(CudaError::Unsupported(format!(
                "{} parameters given for a classifier of {}",
                params.len(),
                plan.num_params()
            )));
        }
        let stream = dev.stream().clone();
        let mut f32s = HashMap::new();
        let mut u64s = HashMap::new();
        let mut partial = None;
        for buf in plan.buffers() {
            let n = plan.len_of(buf);
            match buf {
                Buf::Lr | Buf::Loss | Buf::Labels => {}
                Buf::Partial => partial = Some(alloc::<f64>(dev, n)?),
                Buf::AdamStep | Buf::Correct | Buf::FirstNonFinite => {
                    u64s.insert(buf, alloc::<u64>(dev, n)?);
                }
                Buf::Params => {
                    let p = stream
                        .clone_htod(params)
                        .map_err(|e| CudaError::call("host-to-device copy", e))?;
                    f32s.insert(buf, p);
                }
                Buf::Ones => {
                    let p = stream
                        .clone_htod(&vec![1.0f32; n])
                        .map_err(|e| CudaError::call("host-to-device copy", e))?;
                    f32s.insert(buf, p);
                }
                _ => {
                    f32s.insert(buf, alloc::<f32>(dev, n)?);
                }
            }
        }
        Ok(Self {
            lr: alloc(dev, 1)?,
            loss: alloc(dev, 1)?,
            labels: alloc(dev, plan.len_of(Buf::Labels))?,
            workspace: alloc(dev, BLAS_WORKSPACE)?,
            dev: dev.clone(),
            plan,
            opt: opt.into(),
            f32s,
            u64s,
            partial,
            graph: None,
        })
    }

    /// The plan this step issues.
    pub fn plan(&self) -> &TrainPlan {
        &self.plan
    }

    /// Whether a captured graph replaces the eager launches.
    pub fn is_captured(&self) -> bool {
        self.graph.is_some()
    }

    fn addr(&self, buf: Buf) -> u64 {
        let s = self.dev.stream();
        match buf {
            Buf::Lr => self.lr.device_ptr(s).0,
            Buf::Loss => self.loss.device_ptr(s).0,
            Buf::Labels => self.labels.device_ptr(s).0,
            Buf::Partial => self.partial.as_ref().map_or(0, |p| p.device_ptr(s).0),
            _ => match self.u64s.get(&buf) {
                Some(b) => b.device_ptr(s).0,
                None => self.f32s[&buf].device_ptr(s).0,
            },
        }
    }

    fn at(&self, a: At) -> u64 {
        self.addr(a.buf) + (std::mem::size_of::<f32>() * a.offset) as u64
    }

    /// Captures the plan once into a CUDA graph (replayed by [`ClassifierStep::iteration`]),
    /// on the device's own non-blocking stream (the legacy NULL stream cannot be captured),
    /// in thread-local capture mode. **Never run on a GPU yet.**
    pub fn capture(&mut self) -> Result<(), CudaError> {
        if !self.dev.bind() {
            return self.dev.check();
        }
        let ws = self.workspace.device_ptr(self.dev.stream()).0;
        // SAFETY: a live buffer of BLAS_WORKSPACE bytes owned as long as the handle is used
        // through this step.
        unsafe {
            blas_sys::cublasSetWorkspace_v2(*self.dev.blas.handle(), ws as *mut _, BLAS_WORKSPACE)
        }
        .result()
        .map_err(|e| CudaError::call("cublasSetWorkspace", e))?;
        let stream = self.dev.stream().clone();
        stream
            .begin_capture(drv::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL)
            .map_err(|e| CudaError::call("begin_capture", e))?;
        let recorded = self.record();
        // End the capture even after a failed launch, so that the stream stays usable.
        let graph = stream
            .end_capture(drv::CUgraphInstantiate_flags(0))
            .map_err(|e| CudaError::call("end_capture", e));
        recorded?;
        let graph = graph?.ok_or_else(|| CudaError::call("end_capture", "an empty graph"))?;
        graph
            .upload()
            .map_err(|e| CudaError::call("graph upload", e))?;
        self.graph = Some(graph);
        Ok(())
    }

    /// One training iteration of a classifier plan on the batch `(x, labels)` with learning
    /// rate `lr`: copies them into the fixed buffers, replays the graph (or issues the
    /// launches eagerly before [`ClassifierStep::capture`]) and reads back loss, accuracy
    /// and finiteness.
    pub fn iteration(
        &mut self,
        x: &Batch<f32>,
        labels: &[usize],
        lr: f64,
    ) -> Result<StepOutcome, CudaError> {
        let s = &self.plan.shape;
        let classes = s.classes;
        if s.loss != PlanLoss::CrossEntropy {
            return Err(CudaError::Unsupported(
                "labels for a regression plan (give targets: iteration_regression)".into(),
            ));
        }
        self.check_inputs(x, labels.len())?;
        if let Some(l) = labels.iter().find(|&&l| l >= classes) {
            return Err(CudaError::Unsupported(format!(
                "label {l} for {classes} classes"
            )));
        }
        let lab: Vec<i32> = labels.iter().map(|&l| l as i32).collect();
        self.dev
            .stream()
            .memcpy_htod(&lab, &mut self.labels)
            .map_err(|e| CudaError::call("host-to-device copy", e))?;
        self.replay(x, lr)
    }

    /// One training iteration of a regression plan ([`PlanLoss::MeanSquaredError`]) on the
    /// inputs `x` and targets `y` (same shape) with learning rate `lr`; the outcome has no
    /// accuracy.
    pub fn iteration_regression(
        &mut self,
        x: &Batch<f32>,
        y: &Batch<f32>,
        lr: f64,
    ) -> Result<StepOutcome, CudaError> {
        if self.plan.shape.loss != PlanLoss::MeanSquaredError {
            return Err(CudaError::Unsupported(
                "targets for a classifier plan (give labels: iteration)".into(),
            ));
        }
        self.check_inputs(x, x.rows())?;
        if (y.rows(), y.cols()) != (x.rows(), self.plan.shape.field.state_len()) {
            return Err(CudaError::Unsupported(format!(
                "targets of {}×{} for inputs of {}×{}",
                y.rows(),
                y.cols(),
                x.rows(),
                x.cols()
            )));
        }
        let stream = self.dev.stream().clone();
        let target = self.f32s.get_mut(&Buf::Target).expect("planned buffer");
        stream
            .memcpy_htod(y.as_slice(), target)
            .map_err(|e| CudaError::call("host-to-device copy", e))?;
        self.replay(x, lr)
    }

    fn check_inputs(&self, x: &Batch<f32>, per_row: usize) -> Result<(), CudaError> {
        let s = &self.plan.shape;
        if (x.rows(), x.cols()) != (s.rows, s.input) || per_row != s.rows {
            return Err(CudaError::Unsupported(format!(
                "a batch of {}×{} with {per_row} labels or targets for a step planned for {}×{}",
                x.rows(),
                x.cols(),
                s.rows,
                s.input
            )));
        }
        Ok(())
    }

    /// Copies `x` and `lr` in, runs the iteration and reads back its outcome.
    fn replay(&mut self, x: &Batch<f32>, lr: f64) -> Result<StepOutcome, CudaError> {
        let len = self.plan.state_len() as u64;
        let stream = self.dev.stream().clone();
        let copy = |e| CudaError::call("host-to-device copy", e);
        let input = self.f32s.get_mut(&Buf::Input).expect("planned buffer");
        stream.memcpy_htod(x.as_slice(), input).map_err(copy)?;
        stream.memcpy_htod(&[lr], &mut self.lr).map_err(copy)?;
        match &self.graph {
            Some(g) => g.launch().map_err(|e| CudaError::call("graph launch", e))?,
            None => self.record()?,
        }
        let read = |e| CudaError::call("device-to-host copy", e);
        let loss = stream.clone_dtoh(&self.loss).map_err(read)?[0];
        let accuracy = match self.u64s.get(&Buf::Correct) {
            Some(c) => Some(stream.clone_dtoh(c).map_err(read)?[0] as f64 / x.rows() as f64),
            None => None,
        };
        let first = stream
            .clone_dtoh(&self.u64s[&Buf::FirstNonFinite])
            .map_err(read)?;
        self.dev.check()?;
        let big_n = self.plan.num_steps();
        let first_in = |slots: &[u64]| {
            slots
                .iter()
                .enumerate()
                .find(|(_, &i)| i < len)
                .map(|(n, &i)| (n, i as usize))
        };
        let non_finite = first_in(&first[..big_n.min(first.len())]);
        let what = match self.plan.gradient {
            PlanGradient::Adjoint { .. } => "adjoint state a",
            _ => "rebuilt state x̃ₙ",
        };
        // The reversible pass runs n = N−1…0: its first failure is the highest step.
        let back = &first[big_n.min(first.len())..];
        let backward_non_finite = match self.plan.gradient {
            PlanGradient::Reversible => back
                .iter()
                .enumerate()
                .rev()
                .find(|(_, &i)| i < len)
                .map(|(n, &i)| (n, i as usize)),
            _ => first_in(back),
        }
        .map(|(n, i)| (what, n, i));
        Ok(StepOutcome {
            loss,
            accuracy,
            non_finite,
            backward_non_finite,
        })
    }

    /// The parameters `[field | head]` copied to the host.
    pub fn params_to_host(&self) -> Result<Vec<f32>, CudaError> {
        self.read(Buf::Params)
    }

    /// Sets the parameters and Adam's state — moments `m`, `v` and the step count `t` —
    /// (a run that starts from a checkpoint, possibly written on the CPU).
    pub fn load_state(
        &mut self,
        params: &[f32],
        m: &[f32],
        v: &[f32],
        t: u64,
    ) -> Result<(), CudaError> {
        let n = self.plan.num_params();
        let nv = if self.opt.has_second_moment() { n } else { 0 };
        if params.len() != n || m.len() != n || v.len() != nv {
            return Err(CudaError::Unsupported(format!(
                "a state of {} parameters and {}/{} moments for a classifier of {n}",
                params.len(),
                m.len(),
                v.len()
            )));
        }
        let stream = self.dev.stream().clone();
        let copy = |e| CudaError::call("host-to-device copy", e);
        for (buf, src) in [(Buf::Params, params), (Buf::AdamM, m), (Buf::AdamV, v)] {
            if src.is_empty() {
                continue;
            }
            let dst = self.f32s.get_mut(&buf).expect("planned buffer");
            stream.memcpy_htod(src, dst).map_err(copy)?;
        }
        let step = self.u64s.get_mut(&Buf::AdamStep).expect("planned buffer");
        stream.memcpy_htod(&[t], step).map_err(copy)?;
        self.dev.check()
    }

    /// Sets the parameters and the trainer's optimizer state `opt` (f64, as checkpoints keep
    /// it; a fresh state's moments are zero, and SGD keeps no second moment).
    pub fn load_trainer_state(
        &mut self,
        params: &[f32],
        opt: &OptimizerState,
    ) -> Result<(), CudaError> {
        let n = params.len();
        let f = |v: &[f64]| -> Vec<f32> { v.iter().map(|&x| x as f32).collect() };
        let m = if opt.m.is_empty() {
            vec![0.0; n]
        } else {
            f(&opt.m)
        };
        let v = match (self.opt.has_second_moment(), opt.v.is_empty()) {
            (false, _) => Vec::new(),
            (true, true) => vec![0.0; n],
            (true, false) => f(&opt.v),
        };
        self.load_state(params, &m, &v, opt.t)
    }

    /// The trainer's metrics of the outcome `out` of iteration `iteration` (0-based): loss,
    /// accuracy and the plan's work counts, or the error naming its first non-finite value.
    pub fn metrics(&self, out: &StepOutcome, iteration: u64) -> Result<StepMetrics, TrainError> {
        if let Some(e) = out.non_finite_error() {
            return Err(TrainError::solver(iteration + 1, e));
        }
        Ok(StepMetrics {
            loss: out.loss,
            accuracy: out.accuracy,
            nfe_forward: self.plan.forward_evaluations(),
            nfe_backward: self.plan.backward_evaluations(),
            ..Default::default()
        })
    }

    /// The parameters, Adam's moments and its step count copied to the host.
    pub fn state_to_host(&self) -> Result<HostState, CudaError> {
        let t = self
            .dev
            .stream()
            .clone_dtoh(&self.u64s[&Buf::AdamStep])
            .map_err(|e| CudaError::call("device-to-host copy", e))?;
        Ok(HostState {
            params: self.read(Buf::Params)?,
            m: self.read(Buf::AdamM)?,
            v: if self.opt.has_second_moment() {
                self.read(Buf::AdamV)?
            } else {
                Vec::new()
            },
            t: t.first().copied().unwrap_or(0),
        })
    }

    /// The last iteration's parameter gradient copied to the host.
    pub fn grad_to_host(&self) -> Result<Vec<f32>, CudaError> {
        self.read(Buf::GradParams)
    }

    /// The last iteration's logits copied to the host.
    pub fn logits_to_host(&self) -> Result<Vec<f32>, CudaError> {
        self.read(Buf::Logits)
    }

    /// An f32 buffer of the plan copied to the host (e.g. TinyResNet's running statistics
    /// [`Buf::Stats`] or the parameters before the last update [`Buf::ParamsBefore`]).
    pub fn read(&self, buf: Buf) -> Result<Vec<f32>, CudaError> {
        let src = self.f32s.get(&buf).ok_or_else(|| {
            CudaError::invalid(
                "training-step buffer",
                format!("{buf:?}"),
                "the plan has no such f32 buffer",
            )
        })?;
        self.dev
            .stream()
            .clone_dtoh(src)
            .map_err(|e| CudaError::call("device-to-host copy", e))
    }

    /// Replaces an f32 buffer of the plan (same length), e.g. TinyResNet's running
    /// statistics before the first iteration.
    pub fn write(&mut self, buf: Buf, src: &[f32]) -> Result<(), CudaError> {
        let n = self.plan.len_of(buf);
        let dst = self.f32s.get_mut(&buf).ok_or_else(|| {
            CudaError::invalid(
                "training-step buffer",
                format!("{buf:?}"),
                "the plan has no such f32 buffer",
            )
        })?;
        if src.len() != n {
            return Err(CudaError::invalid(
                "training-step buffer",
                format!("{} values for {buf:?}", src.len()),
                format!("give {n}"),
            ));
        }
        self.dev
            .stream()
            .memcpy_htod(src, dst)
            .map_err(|e| CudaError::call("host-to-device copy", e))
    }
}
