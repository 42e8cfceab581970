//! [`FlowModel`]: what the validity check needs from a model whose middle is an ODE — its
//! outputs on a batch when the ODE block is solved with a given method and stepping. The
//! built-in [`super::OdeClassifier`] implements it; a user implements it for their own field
//! in a few lines (see `examples/check_custom_model.rs`), and
//! [`crate::runs::check_classifier`] / [`crate::runs::check::check_regressor`] give the
//! verdict of Ott et al. (ICLR 2021) for any implementor.
//!
//! For a classifier the outputs are logits (the prediction is the arg-max); for a learned
//! dynamical model (Zhu et al., ICML 2022) they are the predicted states, scored by the
//! mean squared error against targets.

use serde::Serialize;

use crate::data::Dataset;
use crate::nn::loss::{accuracy, softmax_cross_entropy};
use crate::real::Real;
use crate::solve::{Method, SolveOptions, Stats};
use crate::state::{Batch, State};

/// A model whose middle is an ODE block solved by a solver chosen at call time.
pub trait FlowModel<T: Real> {
    /// The outputs of the batch `x` (one sample per row) when the ODE block is solved with
    /// `method` and `opts` (whose `t0`, `t1` are the block's interval), and the solve's
    /// statistics. An `Err` (a solver failure, a blown-up state) counts the batch as
    /// diverged.
    fn outputs(
        &mut self,
        x: &Batch<T>,
        method: &Method,
        opts: &SolveOptions,
    ) -> Result<(Batch<T>, Stats), String>;

    /// Switches the model into (`true`) or out of evaluation mode (batch-norm statistics).
    fn set_eval(&mut self, _eval: bool) {}
}

/// Test-set performance of a classifier with one solver.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvalOutcome {
    /// Correct predictions / total, over the whole set.
    pub accuracy: f64,
    /// Mean cross-entropy.
    pub loss: f64,
    /// Field evaluations per solve (mean over batches).
    pub nfe: f64,
    /// Samples evaluated.
    pub samples: usize,
    /// Samples whose solve failed (e.g. the state blew up to infinity): counted as wrong.
    pub diverged: usize,
    /// The first solver failure, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// The predicted class of every sample (`usize::MAX` where the solve diverged), for the
    /// paired comparison of two solvers on the same points.
    #[serde(skip)]
    pub predictions: Vec<usize>,
}

/// The predicted class of each row of `logits` (the first maximum).
pub fn argmax_rows<T: Real>(logits: &Batch<T>) -> Vec<usize> {
    let c = logits.cols().max(1);
    logits
        .as_slice()
        .chunks_exact(c)
        .map(|row| {
            let mut best = 0;
            for (j, v) in row.iter().enumerate() {
                if *v > row[best] {
                    best = j;
                }
            }
            best
        })
        .collect()
}

/// Accuracy, mean cross-entropy and predictions of `model` over `data` with one solver, in
/// batches of `batch_size`, in evaluation mode. A batch whose solve fails, or whose logits
/// are not finite, counts as wrong (infinite loss) and is reported in `diverged`.
pub fn evaluate_flow<T: Real, M: FlowModel<T> + ?Sized>(
    model: &mut M,
    data: &Dataset<T>,
    method: &Method,
    opts: &SolveOptions,
    batch_size: usize,
) -> Result<EvalOutcome, String> {
    model.set_eval(true);
    let bs = batch_size.max(1);
    let (mut correct, mut loss, mut nfe, mut batches) = (0.0, 0.0, 0.0, 0usize);
    let (mut diverged, mut failure) = (0usize, None);
    let mut predictions = Vec::with_capacity(data.len());
    let mut xb = Batch::zeros(0, data.inputs().cols());
    let mut g = Batch::zeros(0, 0);
    let idx: Vec<usize> = (0..data.len()).collect();
    for chunk in idx.chunks(bs) {
        xb.gather_rows(data.inputs(), chunk);
        let labels: Vec<usize> = chunk.iter().map(|&i| data.labels()[i]).collect();
        let (logits, stats) = match model.outputs(&xb, method, opts) {
            Ok(r) => r,
            Err(e) => {
                diverged += chunk.len();
                failure.get_or_insert(e);
                loss = f64::INFINITY;
                predictions.extend(std::iter::repeat_n(usize::MAX, chunk.len()));
                continue;
            }
        };
        nfe += stats.nfe as f64;
        batches += 1;
        if logits.rows() != chunk.len() {
            model.set_eval(false);
            return Err(format!(
                "the model gave {} rows of outputs for a batch of {} samples",
                logits.rows(),
                chunk.len()
            ));
        }
        if !logits.is_finite() {
            diverged += chunk.len();
            failure.get_or_insert_with(|| "the logits are not finite".to_string());
            loss = f64::INFINITY;
            predictions.extend(std::iter::repeat_n(usize::MAX, chunk.len()));
            continue;
        }
        g.resize(logits.rows(), logits.cols());
        let batch_loss = softmax_cross_entropy(&logits, &labels, &mut g);
        let batch_acc = accuracy(&logits, &labels);
        let (batch_loss, batch_acc) = match (batch_loss, batch_acc) {
            (Ok(l), Ok(a)) => (l, a),
            (Err(e), _) | (_, Err(e)) => {
                model.set_eval(false);
                return Err(e.to_string());
            }
        };
        loss += batch_loss * chunk.len() as f64;
        correct += batch_acc * chunk.len() as f64;
        predictions.extend(argmax_rows(&logits));
    }
    model.set_eval(false);
    let n = data.len().max(1) as f64;
    Ok(EvalOutcome {
        accuracy: correct / n,
        loss: loss / n,
        nfe: nfe / batches.max(1) as f64,
        samples: data.len(),
        diverged,
        failure,
        predictions,
    })
}

/// Squared errors of a flow model's outputs against targets under one solver.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegressionOutcome {
    /// Mean squared error over all points and components (infinite when a solve diverged).
    pub mse: f64,
    /// Field evaluations per solve (mean over batches).
    pub nfe: f64,
    /// Points whose solve failed.
    pub diverged: usize,
    /// The squared error of each point (summed over components; infinite where diverged).
    #[serde(skip)]
    pub point_errors: Vec<f64>,
    /// The outputs (row-major, `f64`), for the label-free comparison of two solvers.
    #[serde(skip)]
    pub outputs: Vec<f64>,
}

/// Mean squared error of `model`'s outputs on `x` against `y` with one solver.
pub fn evaluate_regression<T: Real, M: FlowModel<T> + ?Sized>(
    model: &mut M,
    x: &Batch<T>,
    y: &Batch<T>,
    method: &Method,
    opts: &SolveOptions,
    batch_size: usize,
) -> Result<RegressionOutcome, String> {
    if x.rows() != y.rows() {
        return Err(format!(
            "{} inputs but {} targets: give one target row per input row",
            x.rows(),
            y.rows()
        ));
    }
    model.set_eval(true);
    let d = y.cols();
    let (mut nfe, mut batches, mut diverged) = (0.0, 0usize, 0usize);
    let mut point_errors = Vec::with_capacity(x.rows());
    let mut outputs = Vec::with_capacity(x.rows() * d);
    let mut xb = Batch::zeros(0, x.cols());
    let idx: Vec<usize> = (0..x.rows()).collect();
    for chunk in idx.chunks(batch_size.max(1)) {
        xb.gather_rows(x, chunk);
        match model.outputs(&xb, method, opts) {
            Ok((out, stats)) if out.is_finite() => {
                if out.rows() != chunk.len() || out.cols() != d {
                    model.set_eval(false);
                    return Err(format!(
                        "the model's outputs are {}×{} for a batch of {} with targets of {d} components",
                        out.rows(),
                        out.cols(),
                        chunk.len()
                    ));
                }
                nfe += stats.nfe as f64;
                batches += 1;
                for (row, &i) in out.as_slice().chunks_exact(d.max(1)).zip(chunk) {
                    let target = &y.as_slice()[i * d..(i + 1) * d];
                    point_errors.push(
                        row.iter()
                            .zip(target)
                            .map(|(a, b)| (a.f64() - b.f64()).powi(2))
                            .sum(),
                    );
                    outputs.extend(row.iter().map(|v| v.f64()));
                }
            }
            _ => {
                diverged += chunk.len();
                point_errors.extend(std::iter::repeat_n(f64::INFINITY, chunk.len()));
                outputs.extend(std::iter::repeat_n(f64::NAN, chunk.len() * d));
            }
        }
    }
    model.set_eval(false);
    let mse = point_errors.iter().sum::<f64>() / (point_errors.len().max(1) * d.max(1)) as f64;
    Ok(RegressionOutcome {
        mse,
        nfe: nfe / batches.max(1) as f64,
        diverged,
        point_errors,
        outputs,
    })
}
