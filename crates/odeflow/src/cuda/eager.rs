//! Training any built-in classifier with its ODE block on the GPU through the generic
//! gradient solvers: [`CudaSolverClassifier`] is a [`Trainable`] whose forward solve and
//! backward pass (backprop, the continuous adjoint or the reversible method; explicit
//! Runge–Kutta with fixed or adaptive steps, or implicit midpoint) run on [`CudaBatch`]
//! states with a device field ([`CudaMlp`] or [`CudaConvField`]), unchanged from the CPU
//! code. The head, the cross-entropy and the optimizer stay on the host, so each iteration
//! copies the final state and its gradient across (one batch each way) and the parameters
//! (the trainer's optimizer is the CPU's). This is the path for what the captured iteration
//! ([`super::CudaClassifier`]: MLP and convolutional fields, explicit methods on fixed
//! steps, Adam) does not cover: adaptive or implicit solvers, SGD, step-size adaptation.
//! **Not yet run on a GPU.**

use std::sync::Arc;

use super::conv::CudaConvField;
use super::conv_plan::ConvFieldLayout;
use super::device::{CudaError, Device};
use super::mlp::CudaMlp;
use super::state::{f32s, CudaBatch};
use crate::analysis::solver_dependence::AdaptiveSolve;
use crate::error::ArgError;
use crate::field::{FieldRhs, Parameterized, VectorField};
use crate::grad::{DiffSolve, FieldGradSolver, GradientMethod};
use crate::models::{ClassBatch, FieldSpec};
use crate::nn::loss::{accuracy, softmax_cross_entropy};
use crate::nn::{Activation, Network, Shape, Tape};
use crate::real::Real;
use crate::solve::{solve, Method, SaveAt, SolveOptions, Stats, Stepping};
use crate::state::{Batch, State};
use crate::train::{StepMetrics, TrainError, Trainable};

/// `x` in f32 with `augment` zero components appended to each row (the ANODE state `z₀`),
/// ready to copy to the device.
pub(crate) fn padded_f32<T: Real>(x: &Batch<T>, augment: usize) -> Batch<f32> {
    let (rows, c) = (x.rows(), x.cols());
    let d = c + augment;
    let mut z0 = Batch::<f32>::zeros(rows, d);
    for (dst, src) in z0
        .as_mut_slice()
        .chunks_exact_mut(d.max(1))
        .zip(x.as_slice().chunks_exact(c.max(1)))
    {
        for (a, b) in dst.iter_mut().zip(src) {
            *a = b.f64() as f32;
        }
    }
    z0
}

/// A device field whose parameters are one flat f32 buffer in the CPU network's order.
pub trait DeviceParams {
    /// Number of parameters.
    fn count(&self) -> usize;
    /// Replaces the parameters.
    fn upload(&mut self, params: &[f32]) -> Result<(), CudaError>;
}

impl DeviceParams for CudaMlp {
    fn count(&self) -> usize {
        self.num_params()
    }
    fn upload(&mut self, params: &[f32]) -> Result<(), CudaError> {
        self.set_params(params)
    }
}

impl DeviceParams for CudaConvField {
    fn count(&self) -> usize {
        self.num_params()
    }
    fn upload(&mut self, params: &[f32]) -> Result<(), CudaError> {
        self.set_params(params)
    }
}

/// The device twin of a built-in field (`spec`) on states of shape `state`, with the CPU
/// field's parameters `params`.
pub enum BuiltField {
    /// The MLP field.
    Mlp(CudaMlp),
    /// `simple_odenet` or `odenet`.
    Conv(CudaConvField),
}

impl BuiltField {
    /// Builds the device field; fails for what the device does not have.
    pub fn new(
        dev: &Arc<Device>,
        spec: &FieldSpec,
        state: Shape,
        params: &[f32],
    ) -> Result<Self, CudaError> {
        match (spec, state) {
            (FieldSpec::Mlp { hidden, activation }, _) => {
                let act: Activation = activation.parse().map_err(|_| {
                    CudaError::Unsupported(format!("the activation '{activation}'"))
                })?;
                let d = state.len();
                let mut dims = vec![d];
                dims.extend(hidden);
                dims.push(d);
                Ok(Self::Mlp(CudaMlp::new(dev, &dims, act, params)?))
            }
            _ => Ok(Self::Conv(CudaConvField::new(
                dev,
                conv_layout(spec, state)?,
                params,
            )?)),
        }
    }
}

/// The device layout of a convolutional field `spec` on states of shape `state` (with any
/// ANODE channels): `simple_odenet` on `(c, d)` sequences, `odenet` on `(c, h, w)` images.
pub fn conv_layout(spec: &FieldSpec, state: Shape) -> Result<ConvFieldLayout, CudaError> {
    match (spec, state) {
        (
            FieldSpec::SimpleOdenet { channels },
            Shape::Seq {
                channels: c,
                length,
            },
        ) => ConvFieldLayout::new((c, 1, length), *channels, (1, 3), (0, 1), true)
            .map_err(CudaError::Unsupported),
        (
            FieldSpec::Odenet { channels },
            Shape::Image {
                channels: c,
                height,
                width,
            },
        ) => ConvFieldLayout::odenet(c, height, width, *channels).map_err(CudaError::Unsupported),
        (f, s) => Err(CudaError::Unsupported(format!(
            "the field {f:?} on states of shape {s:?}"
        ))),
    }
}

/// A built-in classifier trained on the device through the generic gradient solvers (see
/// the module docs).
pub struct CudaSolverClassifier<T: Real, F: VectorField<CudaBatch, Grad = CudaBatch>> {
    dev: Arc<Device>,
    field: F,
    solver: FieldGradSolver<CudaBatch, F>,
    head: Network<T>,
    tape: Tape<T>,
    augment: usize,
    /// The field's parameters as last written (the device holds them too).
    field_params: Vec<T>,
    /// A failed parameter upload, reported by the next iteration.
    pending: Option<CudaError>,
    logits: Batch<T>,
    dlogits: Batch<T>,
    dz1: Batch<T>,
    /// The field's parameter gradient on the device, kept between iterations.
    gtheta: Option<CudaBatch>,
}

/// The field's parameter gradient buffer kept in `slot`, zeroed on the device (one memset),
/// or a fresh one the first time, so that a training loop allocates it once.
pub(super) fn zeroed_grad<F: VectorField<CudaBatch, Grad = CudaBatch>>(
    slot: &mut Option<CudaBatch>,
    field: &F,
) -> CudaBatch {
    match slot.take() {
        Some(mut g) => {
            g.set_zero();
            g
        }
        None => field.zero_grad(),
    }
}

impl<T: Real, F: VectorField<CudaBatch, Grad = CudaBatch> + DeviceParams>
    CudaSolverClassifier<T, F>
{
    /// The classifier with the device field `field` (holding the CPU field's parameters
    /// `field_params`), the CPU head `head`, `augment` ANODE zeros, trained with `method`,
    /// `grad` and `opts`.
    pub fn new(
        dev: &Arc<Device>,
        field: F,
        field_params: Vec<T>,
        head: Network<T>,
        augment: usize,
        (method, grad, opts): (&Method, GradientMethod, SolveOptions),
    ) -> Result<Self, CudaError> {
        if field.count() != field_params.len() {
            return Err(CudaError::Unsupported(format!(
                "{} field parameters for a device field of {}",
                field_params.len(),
                field.count()
            )));
        }
        let solver = FieldGradSolver::new(method, grad, opts)
            .map_err(|e| CudaError::Unsupported(e.to_string()))?;
        let tape = head.new_tape();
        Ok(Self {
            dev: dev.clone(),
            field,
            solver,
            head,
            tape,
            augment,
            field_params,
            pending: None,
            logits: Batch::zeros(0, 0),
            dlogits: Batch::zeros(0, 0),
            dz1: Batch::zeros(0, 0),
            gtheta: None,
        })
    }

    /// A device error (it explains a solver failure) or the solver's own.
    fn failed(&self, it: u64, e: impl std::fmt::Display) -> TrainError {
        match self.dev.check() {
            Err(d) => TrainError::solver(it, format!("on the GPU: {d}")),
            Ok(()) => TrainError::solver(it, e),
        }
    }
}

impl<T: Real, F: VectorField<CudaBatch, Grad = CudaBatch> + DeviceParams> Trainable<T>
    for CudaSolverClassifier<T, F>
{
    type Batch = ClassBatch<T>;

    fn num_params(&self) -> usize {
        self.field_params.len() + self.head.num_params()
    }

    fn read_params(&self, out: &mut [T]) {
        let f = self.field_params.len();
        out[..f].copy_from_slice(&self.field_params);
        out[f..].copy_from_slice(self.head.params());
    }

    fn write_params(&mut self, src: &[T]) {
        let f = self.field_params.len();
        self.field_params.copy_from_slice(&src[..f]);
        self.head.params_mut().copy_from_slice(&src[f..]);
        let p = f32s(&self.field_params);
        if let Err(e) = self.field.upload(&p) {
            self.pending.get_or_insert(e);
        }
    }

    fn loss_and_grad(
        &mut self,
        batch: &ClassBatch<T>,
        grad: &mut [T],
        it: u64,
    ) -> Result<StepMetrics, TrainError> {
        if let Some(e) = self.pending.take() {
            return Err(TrainError::solver(it, format!("on the GPU: {e}")));
        }
        let nn = |e: crate::nn::NnError| TrainError::solver(it, e);
        let z0 = padded_f32(&batch.x, self.augment);
        let y0 = CudaBatch::from_host(&self.dev, &z0).map_err(|e| self.failed(it, e))?;
        let t1 = self.solver.options().t1;
        let z1 = match self.solver.forward(&mut self.field, &y0) {
            Ok(z1) => z1.to_host(),
            Err(e) => return Err(self.failed(it, e)),
        };
        let z1 = z1.map_err(|e| self.failed(it, e))?.cast::<T>();
        self.head
            .forward_taped(t1, &z1, &mut self.logits, &mut self.tape)
            .map_err(nn)?;
        self.dlogits.resize(self.logits.rows(), self.logits.cols());
        let loss =
            softmax_cross_entropy(&self.logits, &batch.labels, &mut self.dlogits).map_err(nn)?;
        let acc = accuracy(&self.logits, &batch.labels).map_err(nn)?;
        let f = self.field_params.len();
        self.head
            .backward(&self.tape, &self.dlogits, &mut self.dz1, &mut grad[f..])
            .map_err(nn)?;
        let dz1 = CudaBatch::from_host(&self.dev, &self.dz1.cast::<f32>())
            .map_err(|e| self.failed(it, e))?;
        let mut g = zeroed_grad(&mut self.gtheta, &self.field);
        if let Err(e) = self.solver.backward(&mut self.field, &dz1, &mut g) {
            return Err(self.failed(it, e));
        }
        let gv = g.to_f64_vec();
        self.gtheta = Some(g);
        self.dev.check().map_err(|e| self.failed(it, e))?;
        for (o, v) in grad[..f].iter_mut().zip(&gv) {
            *o = T::of(*v);
        }
        let s = self.solver.stats();
        Ok(StepMetrics {
            loss,
            accuracy: Some(acc),
            nfe_forward: s.forward.nfe,
            nfe_backward: s.backward_vjp + s.backward_nfe,
            extra: Default::default(),
        })
    }
}

impl<T: Real, F: VectorField<CudaBatch, Grad = CudaBatch> + DeviceParams> AdaptiveSolve<T>
    for CudaSolverClassifier<T, F>
{
    fn train_options(&self) -> &SolveOptions {
        self.solver.options()
    }

    fn set_train_stepping(&mut self, stepping: Stepping) -> Result<(), ArgError> {
        self.solver.set_stepping(stepping)
    }

    fn probe_logits(
        &mut self,
        x: &Batch<T>,
        method: &Method,
        opts: &SolveOptions,
    ) -> Result<(Batch<T>, Stats), String> {
        let r = device_logits(
            &self.dev,
            &mut self.field,
            &mut self.head,
            self.augment,
            x,
            (method, opts),
        );
        match r {
            Ok(outcome) => outcome,
            Err(e) => {
                // The next iteration reports it; the probe counts as a failed solve.
                let msg = format!("on the GPU: {e}");
                self.pending.get_or_insert(e);
                Err(msg)
            }
        }
    }
}

/// A device solve's outcome: the outer error is the device's (a failed launch, copy or
/// allocation: it must reach the caller), the inner one the solver's (e.g. a blow-up: a
/// result like any other for an evaluation).
pub(crate) type DeviceSolve<X> = Result<Result<(X, Stats), String>, CudaError>;

/// The final state of `field` solved on the device from `z0` by `method` and `opts` (no
/// gradient), copied to the host, with the solve's statistics.
pub(crate) fn device_final_state<F: VectorField<CudaBatch>>(
    dev: &Arc<Device>,
    field: &mut F,
    z0: &Batch<f32>,
    solver: (&Method, &SolveOptions),
) -> DeviceSolve<Batch<f32>> {
    let y0 = CudaBatch::from_host(dev, z0)?;
    Ok(match device_solve(dev, field, &y0, solver)? {
        Ok((y, stats)) => Ok((y.to_host()?, stats)),
        Err(e) => Err(e),
    })
}

/// The final state of `field` solved on the device from the device batch `y0` (no
/// gradient), left on the device, with the solve's statistics.
pub(crate) fn device_solve<F: VectorField<CudaBatch>>(
    dev: &Arc<Device>,
    field: &mut F,
    y0: &CudaBatch,
    (method, opts): (&Method, &SolveOptions),
) -> DeviceSolve<CudaBatch> {
    let o = SolveOptions {
        save: SaveAt::Final,
        ..opts.clone()
    };
    let sol = solve(method, &mut FieldRhs(field), y0, &o);
    dev.check()?;
    Ok(sol.map(|s| (s.y_final, s.stats)).map_err(|e| e.to_string()))
}

/// Logits of `x` with `field` solved on the device by `method` and `opts` (no gradient; the
/// `augment` ANODE zeros appended) and the host `head`, with the solve's statistics: the
/// evaluation of [`super::CudaFlowModel`] and the adaptation probes of
/// [`CudaSolverClassifier`].
pub(crate) fn device_logits<T: Real, F: VectorField<CudaBatch>>(
    dev: &Arc<Device>,
    field: &mut F,
    head: &mut Network<T>,
    augment: usize,
    x: &Batch<T>,
    solver: (&Method, &SolveOptions),
) -> DeviceSolve<Batch<T>> {
    Ok(
        device_final_state(dev, field, &padded_f32(x, augment), solver)?.and_then(|(y, stats)| {
            let mut logits = Batch::zeros(0, 0);
            head.forward(solver.1.t1, &y.cast::<T>(), &mut logits)
                .map_err(|e| e.to_string())?;
            Ok((logits, stats))
        }),
    )
}
