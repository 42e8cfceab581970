//! The adaptation of Ott et al. (ICLR 2021, Algorithms 1–2) as a [`TrainHook`] of the ODE
//! classifier.
//!
//! Every `interval` iterations — counted from 1, so the first check follows `interval`
//! training steps — after the backward pass and before the optimizer step, the hook compares
//! the batch accuracy of the training solver (the forward pass just done) with that of a more
//! accurate test solver on the *same* batch and the *same* parameters, using
//! [`OdeClassifier::logits_with`]. The decision rules are those of [`FixedStepAdapter`] and
//! [`ToleranceAdapter`]; the new step size or tolerance is installed in the classifier's
//! training solver with [`crate::grad::GradSolver::set_stepping`] and takes effect from the
//! next iteration. A probe whose solve fails or gives non-finite logits (a field that blows
//! up under another solver) scores 0 on the failed rows, which is what a user of that solver
//! would get.
//!
//! Whether adapting or not, the hook writes the training step size `h` (fixed grids) or the
//! tolerance `tol` (adaptive solves) into every iteration's metrics, and on check iterations
//! also `acc_test` (the test solver's batch accuracy) and `adapt` (the event: 0 kept,
//! 1 refined, 2 coarsened, 3 at the step cap). Its state — the adapter and the event counts —
//! is saved in checkpoints, so a resumed run continues with the adapted step.

use serde::{Deserialize, Serialize};

use super::adaptation::{
    AdaptEvent, AdaptationConfig, FixedStepAdapter, ProbeSolver, ToleranceAdapter,
};
use super::initial_step::ott_initial_step;
use crate::error::ArgError;
use crate::field::{FieldRhs, Parameterized, VectorField};
use crate::models::{ClassBatch, OdeClassifier};
use crate::real::Real;
use crate::solve::{Method, SolveOptions, Stats, Stepping};
use crate::state::Batch;
use crate::train::{StepMetrics, TrainError, TrainHook, Trainable};

/// The adaptation algorithm a hook runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Adapter {
    /// Step-size adaptation of a fixed-step method (Algorithm 1).
    Fixed(FixedStepAdapter),
    /// Tolerance adaptation of an adaptive method (Algorithm 2).
    Tolerance(ToleranceAdapter),
}

/// How often each kind of event happened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventCounts {
    /// Checks done.
    pub checks: u64,
    /// Agreement; the coarser setting was rejected or impossible.
    pub kept: u64,
    /// Disagreement; the setting was made finer.
    pub refined: u64,
    /// Agreement; the coarser setting was accepted.
    pub coarsened: u64,
    /// Disagreement at the step cap.
    pub at_cap: u64,
}

/// The training hook (see the module docs).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AdaptationHook {
    /// The adaptation, or `None` to only log the step size or tolerance.
    pub adapter: Option<Adapter>,
    /// Events so far.
    pub counts: EventCounts,
}

impl AdaptationHook {
    /// A hook that adapts nothing and logs the training solver's step size or tolerance.
    pub fn log_only() -> Self {
        Self::default()
    }

    /// Step-size adaptation of `method` (`euler` or `midpoint`) starting from step `h`.
    pub fn fixed(config: AdaptationConfig, method: &str, h: f64) -> Result<Self, ArgError> {
        Ok(Self {
            adapter: Some(Adapter::Fixed(FixedStepAdapter::new(config, method, h)?)),
            counts: EventCounts::default(),
        })
    }

    /// Tolerance adaptation of `method` (`fehlberg2` or `dopri5`) starting from
    /// `config.initial_tol`.
    pub fn tolerance(config: AdaptationConfig, method: &str) -> Result<Self, ArgError> {
        Ok(Self {
            adapter: Some(Adapter::Tolerance(ToleranceAdapter::new(config, method)?)),
            counts: EventCounts::default(),
        })
    }

    /// The stepping the adapter currently prescribes (`None` when not adapting).
    pub fn stepping(&self) -> Option<Stepping> {
        match &self.adapter {
            None => None,
            Some(Adapter::Fixed(a)) => Some(Stepping::FixedStep(a.h)),
            Some(Adapter::Tolerance(a)) => Some(Stepping::Adaptive(
                crate::solve::AdaptiveOptions::new(a.tol, a.tol),
            )),
        }
    }

    fn interval(&self) -> u64 {
        match &self.adapter {
            Some(Adapter::Fixed(a)) => a.config.interval,
            Some(Adapter::Tolerance(a)) => a.config.interval,
            None => 0,
        }
    }

    fn count(&mut self, ev: AdaptEvent) -> f64 {
        self.counts.checks += 1;
        match ev {
            AdaptEvent::Kept => {
                self.counts.kept += 1;
                0.0
            }
            AdaptEvent::Refined { .. } => {
                self.counts.refined += 1;
                1.0
            }
            AdaptEvent::Coarsened => {
                self.counts.coarsened += 1;
                2.0
            }
            AdaptEvent::AtCap => {
                self.counts.at_cap += 1;
                3.0
            }
        }
    }
}

/// The step size of a fixed stepping on `[t0, t1]`, or the relative tolerance of an adaptive
/// one, with the metric name to log it under (`"h"` or `"tol"`).
pub fn stepping_metric(stepping: &Stepping, t0: f64, t1: f64) -> (&'static str, f64) {
    match stepping {
        Stepping::FixedStep(h) => ("h", h.min((t1 - t0).abs())),
        Stepping::FixedCount(n) => ("h", (t1 - t0).abs() / *n as f64),
        Stepping::Adaptive(a) => ("tol", a.rtol),
    }
}

/// Fraction of rows whose logits are finite and largest at the label.
fn finite_accuracy<T: Real>(logits: &Batch<T>, labels: &[usize]) -> f64 {
    if labels.is_empty() {
        return 0.0;
    }
    let hits = logits
        .iter_rows()
        .zip(labels)
        .filter(|(row, &label)| {
            row.iter().all(|v| v.is_finite())
                && row
                    .iter()
                    .enumerate()
                    .all(|(i, &v)| i == label || v < row[label] || (v == row[label] && i > label))
        })
        .count();
    hits as f64 / labels.len() as f64
}

/// What step-size adaptation needs of the classifier it trains: the training solver's
/// options, a new stepping for it, and logits under a probe solver. Implemented by the CPU
/// [`OdeClassifier`] and, with the feature `cuda`, by the device's generic path
/// (`cuda::CudaSolverClassifier`), so that Ott et al.'s adaptation trains on either device.
pub trait AdaptiveSolve<T: Real> {
    /// The training solver's options.
    fn train_options(&self) -> &SolveOptions;
    /// Trains with `stepping` from the next iteration on.
    fn set_train_stepping(&mut self, stepping: Stepping) -> Result<(), ArgError>;
    /// Logits of `x` with `method` and `opts` (no gradient) and the solve's statistics.
    fn probe_logits(
        &mut self,
        x: &Batch<T>,
        method: &Method,
        opts: &SolveOptions,
    ) -> Result<(Batch<T>, Stats), String>;
}

impl<T, F> AdaptiveSolve<T> for OdeClassifier<T, F>
where
    T: Real,
    F: VectorField<Batch<T>, Grad = Vec<T>> + Parameterized<T>,
{
    fn train_options(&self) -> &SolveOptions {
        self.solver().options()
    }

    fn set_train_stepping(&mut self, stepping: Stepping) -> Result<(), ArgError> {
        self.solver_mut().set_stepping(stepping)
    }

    fn probe_logits(
        &mut self,
        x: &Batch<T>,
        method: &Method,
        opts: &SolveOptions,
    ) -> Result<(Batch<T>, Stats), String> {
        self.logits_with(x, method, opts)
    }
}

/// The batch accuracy and NFE of `model` with the solver a probe names.
fn probe_accuracy<T: Real, M: AdaptiveSolve<T>>(
    model: &mut M,
    batch: &ClassBatch<T>,
    probe: &ProbeSolver,
) -> Result<(f64, usize), TrainError> {
    let (t0, t1) = (model.train_options().t0, model.train_options().t1);
    let (method, opts) = match probe {
        ProbeSolver::Fixed { method, h } => (method, SolveOptions::fixed(t0, t1, *h)),
        ProbeSolver::Adaptive { method, tol } => {
            (method, SolveOptions::adaptive(t0, t1, *tol, *tol))
        }
    };
    let method = Method::from_name(method)?;
    Ok(match model.probe_logits(&batch.x, &method, &opts) {
        Ok((logits, stats)) => (finite_accuracy(&logits, &batch.labels), stats.nfe),
        Err(_) => (0.0, 0),
    })
}

impl<T, M> TrainHook<T, M> for AdaptationHook
where
    T: Real,
    M: Trainable<T, Batch = ClassBatch<T>> + AdaptiveSolve<T>,
{
    fn after_backward(
        &mut self,
        iteration: u64,
        model: &mut M,
        batch: &ClassBatch<T>,
        metrics: &mut StepMetrics,
    ) -> Result<(), TrainError> {
        let opts = model.train_options();
        let (name, value) = stepping_metric(&opts.stepping, opts.t0, opts.t1);
        metrics.extra.insert(name.into(), value);
        let interval = self.interval();
        if interval == 0 || !(iteration + 1).is_multiple_of(interval) {
            return Ok(());
        }
        let acc_train = match metrics.accuracy {
            Some(a) => a,
            None => return Ok(()),
        };
        let nfe_train = metrics.nfe_forward;
        let mut acc_test = f64::NAN;
        let mut probe = |p: &ProbeSolver| {
            let r = probe_accuracy(model, batch, p)?;
            if acc_test.is_nan() {
                acc_test = r.0; // the first probe is always the test solver
            }
            Ok::<_, TrainError>(r)
        };
        let event = match self.adapter.as_mut() {
            Some(Adapter::Fixed(a)) => a.check(acc_train, &mut probe)?,
            Some(Adapter::Tolerance(a)) => a.check(acc_train, nfe_train, &mut probe)?,
            None => return Ok(()),
        };
        let code = self.count(event);
        metrics.extra.insert("acc_test".into(), acc_test);
        metrics.extra.insert("adapt".into(), code);
        if let Some(s) = self.stepping() {
            model.set_train_stepping(s)?;
        }
        Ok(())
    }

    fn state(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    fn restore(&mut self, state: &serde_json::Value, model: &mut M) -> Result<(), TrainError> {
        if state.is_null() {
            return Ok(());
        }
        let saved: AdaptationHook = serde_json::from_value(state.clone()).map_err(|e| {
            ArgError::invalid(
                "checkpoint hook state",
                "adaptation",
                format!("cannot be read: {e}"),
            )
        })?;
        if saved.adapter.is_some() != self.adapter.is_some() {
            return Err(ArgError::invalid(
                "checkpoint hook state",
                if saved.adapter.is_some() {
                    "adapting"
                } else {
                    "not adapting"
                },
                "does not match this run's adaptation setting",
            )
            .into());
        }
        *self = saved;
        if let Some(s) = self.stepping() {
            model.set_train_stepping(s)?;
        }
        Ok(())
    }
}

/// Ott et al.'s initial step ([`ott_initial_step`]) of a method of order `order` for
/// `model` on the batch `x` (its ODE state after the encoder and augmentation), capped at
/// `max_h`.
pub fn classifier_initial_step<T, F>(
    model: &mut OdeClassifier<T, F>,
    x: &Batch<T>,
    order: usize,
    max_h: f64,
) -> Result<f64, ArgError>
where
    T: Real,
    F: VectorField<Batch<T>, Grad = Vec<T>> + Parameterized<T>,
{
    let t0 = model.solver().options().t0;
    let z0 = model.initial_state(x)?.clone();
    let h = ott_initial_step(&mut FieldRhs(&mut model.field), t0, &z0, order);
    if !(h.is_finite() && h > 0.0) {
        return Err(ArgError::invalid(
            "initial step",
            h,
            "the field is not finite on the first batch; give the step explicitly",
        ));
    }
    Ok(h.min(max_h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accuracy_counts_non_finite_rows_as_wrong() {
        let logits = Batch::from_rows(&[
            vec![1.0, 2.0],
            vec![f64::NAN, 0.0],
            vec![3.0, -1.0],
            vec![0.5, 0.5],
        ])
        .unwrap();
        // Row 1 has label 0 and a NaN logit: wrong (plain argmax would call it class 0).
        // Row 3 is a tie: the first index wins, as in `nn::loss::accuracy`.
        let acc = finite_accuracy(&logits, &[1, 0, 0, 0]);
        assert_eq!(acc, 0.75);
        assert_eq!(finite_accuracy(&logits, &[1, 0, 0, 1]), 0.5);
    }

    #[test]
    fn metric_names_follow_the_stepping() {
        assert_eq!(
            stepping_metric(&Stepping::FixedCount(4), 0.0, 1.0),
            ("h", 0.25)
        );
        assert_eq!(
            stepping_metric(&Stepping::FixedStep(2.0), 0.0, 1.0),
            ("h", 1.0)
        );
        let a = Stepping::Adaptive(crate::solve::AdaptiveOptions::new(1e-4, 1e-6));
        assert_eq!(stepping_metric(&a, 0.0, 1.0), ("tol", 1e-4));
    }
}
