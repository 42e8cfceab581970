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
use super::eager::{padded_f32, BuiltField};
use super::state::CudaBatch;
use crate::field::{FieldRhs, Parameterized};
use crate::models::{FieldSpec, FlowModel, NeuralClassifier};
use crate::nn::Network;
use crate::real::Real;
use crate::solve::{solve, Method, SaveAt, SolveOptions, Stats};
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
        let p: Vec<f32> = model
            .field
            .params()
            .iter()
            .map(|v| v.f64() as f32)
            .collect();
        let field = BuiltField::new(dev, field, model.head.in_shape(), &p)?;
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
        let z0 = padded_f32(x, self.augment);
        let on_gpu = |e: CudaError| format!("on the GPU: {e}");
        let y0 = CudaBatch::from_host(&self.dev, &z0).map_err(on_gpu)?;
        let o = SolveOptions {
            save: SaveAt::Final,
            ..opts.clone()
        };
        let sol = match &mut self.field {
            BuiltField::Mlp(f) => solve(method, &mut FieldRhs(f), &y0, &o),
            BuiltField::Conv(f) => solve(method, &mut FieldRhs(f), &y0, &o),
        };
        self.dev.check().map_err(on_gpu)?;
        let sol = sol.map_err(|e| e.to_string())?;
        let y = sol.y_final.to_host().map_err(on_gpu)?.cast::<T>();
        let mut logits = Batch::zeros(0, 0);
        self.head
            .forward(o.t1, &y, &mut logits)
            .map_err(|e| e.to_string())?;
        Ok((logits, sol.stats))
    }
}
