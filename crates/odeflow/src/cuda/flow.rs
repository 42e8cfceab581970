//! Evaluating a built-in classifier with its ODE block on the GPU — the MLP field
//! ([`super::CudaMlp`]) or Ott et al.'s `simple_odenet` / `odenet` ([`super::CudaConvField`]):
//! [`CudaFlowModel`] is a
//! [`FlowModel`], so the evaluation grid and Ott et al.'s validity check
//! ([`crate::runs::check_classifier`]) run unchanged with every solver — fixed-step,
//! adaptive or implicit — through the generic solve loop on [`CudaBatch`] states. The
//! ANODE zeros are appended on the host, the state is solved on the device, and the Linear
//! head is applied on the host to the final state (one copy each way per batch).
//!
//! The device computes in f32; models of other scalar types are converted at the copies.
//! **Not yet run on a GPU.**

use std::sync::Arc;

use super::device::{CudaError, Device};
use super::eager::{device_final_state, device_logits, BuiltField, CudaSolverClassifier};
use super::state::f32s;
use crate::field::Parameterized;
use crate::grad::GradientMethod;
use crate::models::{FieldSpec, FlowModel, NeuralClassifier};
use crate::nn::{Network, Shape};
use crate::real::Real;
use crate::solve::{Method, SolveOptions, Stats};
use crate::state::Batch;

/// A built-in classifier whose ODE block is solved on the device (see the module docs).
pub struct CudaFlowModel<T> {
    dev: Arc<Device>,
    field: BuiltField,
    head: Network<T>,
    augment: usize,
}

impl<T: Real> CudaFlowModel<T> {
    /// The device twin of `model` (built from `field`), with the same parameters; the head
    /// stays on the host in `T`.
    pub fn from_cpu(
        dev: &Arc<Device>,
        field: &FieldSpec,
        model: &NeuralClassifier<T>,
    ) -> Result<Self, CudaError> {
        let field = BuiltField::new(
            dev,
            field,
            model.head.in_shape(),
            &f32s(model.field.params()),
        )?;
        let head = model.head.clone();
        Ok(Self {
            dev: dev.clone(),
            field,
            head,
            augment: model.augment(),
        })
    }
}

impl<T: Real> FlowModel<T> for CudaFlowModel<T> {
    fn outputs(
        &mut self,
        x: &Batch<T>,
        method: &Method,
        opts: &SolveOptions,
    ) -> Result<(Batch<T>, Stats), String> {
        let (dev, head, augment) = (&self.dev, &mut self.head, self.augment);
        let r = match &mut self.field {
            BuiltField::Mlp(f) => device_logits(dev, f, head, augment, x, (method, opts)),
            BuiltField::Conv(f) => device_logits(dev, f, head, augment, x, (method, opts)),
        };
        r.map_err(|e| format!("on the GPU: {e}"))?
    }
}

/// The mean cross-entropy of `model` (its field built from `field`) on `(x, labels)` and its
/// gradient with respect to every parameter (`[field | head]`, the CPU model's order), the ODE
/// block solved and differentiated on the device by `method`, `grad` and `opts`, the head on
/// the host — the device half of `odeflow predict --device cuda --labels … --grad-out …`
/// (the same [`CudaSolverClassifier`] as a generic GPU training run).
pub fn classifier_loss_gradient<T: Real>(
    dev: &Arc<Device>,
    field: &FieldSpec,
    model: &NeuralClassifier<T>,
    (x, labels): (&Batch<T>, &[usize]),
    (method, grad, opts): (&Method, GradientMethod, &SolveOptions),
) -> Result<(f64, Vec<T>), CudaError> {
    let fp = model.field.params().to_vec();
    let p = f32s(&fp);
    let (head, augment) = (model.head.clone(), model.augment());
    let solver = (method, grad, opts.clone());
    let fail = |e: crate::weights::WeightsError| CudaError::call("loss gradient on the device", e);
    match BuiltField::new(dev, field, model.head.in_shape(), &p)? {
        BuiltField::Mlp(f) => {
            let mut m = CudaSolverClassifier::new(dev, f, fp, head, augment, solver)?;
            crate::weights::trainable_loss_gradient(&mut m, x, labels).map_err(fail)
        }
        BuiltField::Conv(f) => {
            let mut m = CudaSolverClassifier::new(dev, f, fp, head, augment, solver)?;
            crate::weights::trainable_loss_gradient(&mut m, x, labels).map_err(fail)
        }
    }
}

/// The final state of a bare field (`spec` on states of `state`, parameters `params`, e.g.
/// loaded from a weights file) solved on the device from `z0` by `method` and `opts`, with
/// the solve's statistics (`odeflow predict --device cuda` of a field without a head). The
/// outer error is the device's ([`CudaError::Unsupported`] for a field it does not run), the
/// inner one the solver's.
pub fn field_final_state<T: Real>(
    dev: &Arc<Device>,
    spec: &FieldSpec,
    state: Shape,
    params: &[T],
    z0: &Batch<T>,
    (method, opts): (&Method, &SolveOptions),
) -> Result<Result<(Batch<T>, Stats), String>, CudaError> {
    let p = f32s(params);
    let mut field = BuiltField::new(dev, spec, state, &p)?;
    let z = z0.cast::<f32>();
    let r = match &mut field {
        BuiltField::Mlp(f) => device_final_state(dev, f, &z, (method, opts))?,
        BuiltField::Conv(f) => device_final_state(dev, f, &z, (method, opts))?,
    };
    Ok(r.map(|(y, stats)| (y.cast::<T>(), stats)))
}
