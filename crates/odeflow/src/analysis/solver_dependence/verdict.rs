//! The ODE-validity verdict: is a trained model a real ODE flow, or does it only work with
//! the solver it was trained with?
//!
//! Ott et al. (ICLR 2021) show that a Neural ODE trained with a coarse fixed step can learn a
//! field whose accuracy collapses when the same model is solved more accurately. odeflow's
//! criterion: a model is a **valid ODE flow** when swapping in any solver of equal or smaller
//! numerical error — a method of the same or higher order, with the same or a smaller step
//! (or tolerance) — keeps the test accuracy within `threshold` (default 0.02) of the
//! training-solver accuracy. The verdict names the worst such solver and how much accuracy
//! it loses.

use serde::{Deserialize, Serialize};

use crate::error::ArgError;
use crate::solve::SolverSpec;

/// One row of the evaluation matrix: the score of a trained model under one test solver.
/// This is the one evaluation row of odeflow (`eval.json`'s `results`, `check.json`'s
/// `results`, the verdict's input).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalRow {
    /// Method name.
    pub method: String,
    /// Its order.
    pub order: usize,
    /// Steps on [0, 1], for fixed-step results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<usize>,
    /// Tolerance, for adaptive results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tol: Option<f64>,
    /// Test accuracy (correct / total; blown-up solves count as wrong).
    pub accuracy: f64,
    /// Standard deviation over seeds (experiments with several seeds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy_std: Option<f64>,
    /// Mean loss; absent when a solve blew up.
    #[serde(default)]
    pub loss: Option<f64>,
    /// Field evaluations per solve.
    pub nfe: f64,
    /// Samples whose solve blew up.
    pub diverged: usize,
    /// Fraction of test points whose prediction differs from the training solver's
    /// (label-free).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed: Option<f64>,
    /// p-value of the paired test of this row's accuracy against the training solver's on
    /// the same points (McNemar's exact test; a bootstrap for regression).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p_value: Option<f64>,
}

impl EvalRow {
    /// The solver of this row.
    pub fn solver(&self) -> SolverSpec {
        SolverSpec {
            method: self.method.clone(),
            order: self.order,
            steps: self.steps,
            step_size: None,
            tol: self.tol,
        }
    }
}

/// Significance level of the paired test: a drop above the threshold invalidates a model
/// only when its p-value is below this.
pub const SIGNIFICANCE: f64 = 0.05;

/// The worst qualifying test solver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorstCase {
    /// Method name.
    pub method: String,
    /// Steps, if fixed-step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steps: Option<usize>,
    /// Tolerance, if adaptive.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tol: Option<f64>,
    /// Its accuracy.
    pub accuracy: f64,
    /// `train_accuracy − accuracy`.
    pub drop: f64,
    /// Fraction of test points whose prediction changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed: Option<f64>,
    /// p-value of the paired test of the drop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p_value: Option<f64>,
}

/// The verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// True when every qualifying solver keeps the accuracy within the threshold.
    pub valid: bool,
    /// Accuracy with the training solver.
    pub train_accuracy: f64,
    /// The largest accuracy drop among qualifying solvers.
    pub worst: WorstCase,
    /// The threshold used.
    pub threshold: f64,
    /// How many evaluations qualified.
    pub compared: usize,
    /// One sentence for people.
    pub summary: String,
}

/// Whether `r` is at least as accurate a solver as `train` (same or higher order, same or
/// smaller step / tolerance, same kind of stepping).
pub fn qualifies(r: &EvalRow, train: &SolverSpec) -> bool {
    r.solver().at_least_as_accurate_as(train)
}

/// Whether a row's drop below `train_accuracy` is a failure: larger than `threshold` and,
/// when the row carries a paired test, significant at [`SIGNIFICANCE`].
pub fn fails(r: &EvalRow, train_accuracy: f64, threshold: f64) -> bool {
    train_accuracy - r.accuracy > threshold && r.p_value.is_none_or(|p| p < SIGNIFICANCE)
}

/// The verdict from an evaluation matrix. `train_accuracy` is the test accuracy with the
/// training solver itself. The model is invalid when a qualifying solver [`fails`]; the
/// worst case is the failing row with the largest drop, or (for a valid model) the
/// qualifying row with the lowest accuracy.
pub fn verdict(
    train: &SolverSpec,
    train_accuracy: f64,
    results: &[EvalRow],
    threshold: f64,
) -> Result<Verdict, ArgError> {
    if !(0.0..=1.0).contains(&threshold) {
        return Err(ArgError::invalid(
            "threshold",
            threshold,
            "must lie in [0, 1]",
        ));
    }
    let qualifying: Vec<&EvalRow> = results.iter().filter(|r| qualifies(r, train)).collect();
    let compared = qualifying.len();
    let lowest = |rows: &mut dyn Iterator<Item = &&EvalRow>| -> Option<EvalRow> {
        rows.fold(None::<&EvalRow>, |w, r| match w {
            Some(w) if w.accuracy <= r.accuracy => Some(w),
            _ => Some(r),
        })
        .cloned()
    };
    let failing = lowest(
        &mut qualifying
            .iter()
            .filter(|r| fails(r, train_accuracy, threshold)),
    );
    let valid = failing.is_none();
    let Some(w) = failing.or_else(|| lowest(&mut qualifying.iter())) else {
        return Err(ArgError::invalid(
            "evaluation",
            format!("{} results", results.len()),
            format!("none uses a solver at least as accurate as the training solver {} — add finer steps or higher-order methods", describe(&train.method, train.steps, train.tol)),
        ));
    };
    let drop = train_accuracy - w.accuracy;
    let worst = WorstCase {
        method: w.method.clone(),
        steps: w.steps,
        tol: w.tol,
        accuracy: w.accuracy,
        drop,
        changed: w.changed,
        p_value: w.p_value,
    };
    let noise = match (w.changed, w.p_value) {
        (Some(c), Some(p)) => format!(
            ", {:.1}% of predictions change, p = {}",
            100.0 * c,
            crate::report::short(p)
        ),
        (Some(c), None) => format!(", {:.1}% of predictions change", 100.0 * c),
        _ => String::new(),
    };
    let summary = if valid {
        let within = if drop > threshold {
            format!("a drop of {drop:.4} > {threshold} is within the noise of the test set")
        } else {
            format!("accuracy stays within {threshold} of {train_accuracy:.4}")
        };
        format!(
            "VALID ODE flow: for all {compared} solvers at least as accurate as {}, {within} (worst: {} at {:.4}, drop {drop:.4}{noise})",
            describe(&train.method, train.steps, train.tol),
            describe(&w.method, w.steps, w.tol),
            w.accuracy
        )
    } else {
        format!(
            "NOT a valid ODE flow: the model depends on its training solver {} — with {} the accuracy falls from {train_accuracy:.4} to {:.4} (drop {drop:.4} > {threshold}{noise})",
            describe(&train.method, train.steps, train.tol),
            describe(&w.method, w.steps, w.tol),
            w.accuracy
        )
    };
    Ok(Verdict {
        valid,
        train_accuracy,
        worst,
        threshold,
        compared,
        summary,
    })
}

fn describe(method: &str, steps: Option<usize>, tol: Option<f64>) -> String {
    match (steps, tol) {
        (Some(s), _) => format!("{method} with {s} steps"),
        (_, Some(t)) => format!("{method} at tol {}", crate::report::short(t)),
        _ => method.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(method: &str, steps: usize, accuracy: f64) -> EvalRow {
        let s = SolverSpec::fixed(method, steps).unwrap();
        EvalRow {
            method: s.method,
            order: s.order,
            steps: s.steps,
            tol: None,
            accuracy,
            accuracy_std: None,
            loss: None,
            nfe: 0.0,
            diverged: 0,
            changed: None,
            p_value: None,
        }
    }

    fn train() -> SolverSpec {
        SolverSpec::fixed("euler", 2).unwrap()
    }

    #[test]
    fn a_model_that_holds_its_accuracy_is_valid() {
        let res = vec![
            r("euler", 1, 0.5),
            r("euler", 2, 0.97),
            r("euler", 64, 0.965),
            r("rk4", 8, 0.96),
        ];
        let v = verdict(&train(), 0.97, &res, 0.02).unwrap();
        assert!(v.valid, "{}", v.summary);
        // The coarser euler-1 (less accurate than training) does not count.
        assert_eq!(v.compared, 3);
        assert_eq!(v.worst.method, "rk4");
        assert!((v.worst.drop - 0.01).abs() < 1e-12);
    }

    #[test]
    fn a_model_that_collapses_with_finer_steps_is_invalid() {
        let res = vec![
            r("euler", 2, 0.98),
            r("euler", 16, 0.80),
            r("euler", 4096, 0.51),
            r("midpoint", 64, 0.55),
        ];
        let v = verdict(&train(), 0.98, &res, 0.02).unwrap();
        assert!(!v.valid);
        assert_eq!(
            (v.worst.method.as_str(), v.worst.steps),
            ("euler", Some(4096))
        );
        assert!(
            v.summary.contains("NOT a valid ODE flow")
                && v.summary.contains("euler with 4096 steps"),
            "{}",
            v.summary
        );
    }

    #[test]
    fn a_drop_within_the_noise_does_not_invalidate() {
        let mut noisy = r("rk4", 8, 0.90);
        noisy.p_value = Some(0.2);
        noisy.changed = Some(0.05);
        let v = verdict(&train(), 0.93, &[noisy.clone()], 0.02).unwrap();
        assert!(v.valid, "{}", v.summary);
        assert!(v.summary.contains("within the noise"), "{}", v.summary);
        noisy.p_value = Some(0.001);
        let v = verdict(&train(), 0.93, &[noisy], 0.02).unwrap();
        assert!(!v.valid);
        assert!(v.summary.contains("p = 1e-3"), "{}", v.summary);
        assert_eq!(v.worst.changed, Some(0.05));
    }

    #[test]
    fn lower_order_or_coarser_solvers_never_qualify() {
        let t = SolverSpec::fixed("rk4", 8).unwrap();
        assert!(!qualifies(&r("euler", 4096, 0.1), &t));
        assert!(!qualifies(&r("rk4", 4, 0.1), &t));
        assert!(qualifies(&r("rk4", 8, 0.1), &t));
        let e = verdict(&t, 0.9, &[r("euler", 100, 0.9)], 0.02)
            .unwrap_err()
            .to_string();
        assert!(e.contains("rk4 with 8 steps"), "{e}");
        let adaptive = SolverSpec::adaptive("dopri5", 1e-4).unwrap();
        let mut tight = r("dopri5", 1, 0.9);
        tight.steps = None;
        tight.tol = Some(1e-6);
        assert!(qualifies(&tight, &adaptive));
        assert_eq!(
            describe("dopri5", None, Some(1.1 * 1.1 * 1.1e-6)),
            "dopri5 at tol 1.331e-6"
        );
        assert_eq!(describe("dopri5", None, Some(1e-4)), "dopri5 at tol 1e-4");
    }
}
