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

/// How a model was trained (or evaluated): method and step count, or tolerance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SolverSetting {
    /// Method name.
    pub method: String,
    /// Order of the method.
    pub order: usize,
    /// Fixed steps on the time interval (for fixed-step settings).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steps: Option<usize>,
    /// Tolerance (for adaptive settings).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tol: Option<f64>,
}

/// One test accuracy of the evaluation matrix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalResult {
    /// Method name.
    pub method: String,
    /// Fixed steps, if fixed-step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steps: Option<usize>,
    /// Tolerance, if adaptive.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tol: Option<f64>,
    /// Test accuracy.
    pub accuracy: f64,
    /// Order of the method (not serialised in reports; used by the verdict).
    #[serde(default, skip_serializing)]
    pub order: usize,
    /// Mean field evaluations per sample solve.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nfe: Option<usize>,
}

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
pub fn qualifies(r: &EvalResult, train: &SolverSetting) -> bool {
    if r.order < train.order {
        return false;
    }
    match (train.steps, train.tol, r.steps, r.tol) {
        (Some(ts), _, Some(rs), _) => rs >= ts,
        (_, Some(tt), _, Some(rt)) => rt <= tt * (1.0 + 1e-12),
        _ => false,
    }
}

/// The verdict from an evaluation matrix. `train_accuracy` is the test accuracy with the
/// training solver itself.
pub fn verdict(
    train: &SolverSetting,
    train_accuracy: f64,
    results: &[EvalResult],
    threshold: f64,
) -> Result<Verdict, ArgError> {
    if !(0.0..=1.0).contains(&threshold) {
        return Err(ArgError::invalid(
            "threshold",
            threshold,
            "must lie in [0, 1]",
        ));
    }
    let mut worst: Option<&EvalResult> = None;
    let mut compared = 0;
    for r in results.iter().filter(|r| qualifies(r, train)) {
        compared += 1;
        if worst.is_none_or(|w| r.accuracy < w.accuracy) {
            worst = Some(r);
        }
    }
    let Some(w) = worst else {
        return Err(ArgError::invalid(
            "evaluation",
            format!("{} results", results.len()),
            format!("none uses a solver at least as accurate as the training solver {} — add finer steps or higher-order methods", describe(&train.method, train.steps, train.tol)),
        ));
    };
    let drop = train_accuracy - w.accuracy;
    let valid = drop <= threshold;
    let worst = WorstCase {
        method: w.method.clone(),
        steps: w.steps,
        tol: w.tol,
        accuracy: w.accuracy,
        drop,
    };
    let summary = if valid {
        format!(
            "VALID ODE flow: all {compared} solvers at least as accurate as {} keep accuracy within {threshold} of {train_accuracy:.4} (worst: {} at {:.4}, drop {drop:.4})",
            describe(&train.method, train.steps, train.tol),
            describe(&w.method, w.steps, w.tol),
            w.accuracy
        )
    } else {
        format!(
            "NOT a valid ODE flow: the model depends on its training solver {} — with {} the accuracy falls from {train_accuracy:.4} to {:.4} (drop {drop:.4} > {threshold})",
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
        (_, Some(t)) => format!("{method} at tol {}", short_sci(t)),
        _ => method.to_string(),
    }
}

/// `t` in scientific notation with at most four significant digits (`1.331e-6`).
fn short_sci(t: f64) -> String {
    let s = format!("{t:.3e}");
    match s.split_once('e') {
        Some((m, e)) => format!("{}e{e}", m.trim_end_matches('0').trim_end_matches('.')),
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(method: &str, order: usize, steps: usize, accuracy: f64) -> EvalResult {
        EvalResult {
            method: method.into(),
            steps: Some(steps),
            tol: None,
            accuracy,
            order,
            nfe: None,
        }
    }

    fn train() -> SolverSetting {
        SolverSetting {
            method: "euler".into(),
            order: 1,
            steps: Some(2),
            tol: None,
        }
    }

    #[test]
    fn a_model_that_holds_its_accuracy_is_valid() {
        let res = vec![
            r("euler", 1, 1, 0.5),
            r("euler", 1, 2, 0.97),
            r("euler", 1, 64, 0.965),
            r("rk4", 4, 8, 0.96),
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
            r("euler", 1, 2, 0.98),
            r("euler", 1, 16, 0.80),
            r("euler", 1, 4096, 0.51),
            r("midpoint", 2, 64, 0.55),
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
    fn lower_order_or_coarser_solvers_never_qualify() {
        let t = SolverSetting {
            method: "rk4".into(),
            order: 4,
            steps: Some(8),
            tol: None,
        };
        assert!(!qualifies(&r("euler", 1, 4096, 0.1), &t));
        assert!(!qualifies(&r("rk4", 4, 4, 0.1), &t));
        assert!(qualifies(&r("rk4", 4, 8, 0.1), &t));
        let e = verdict(&t, 0.9, &[r("euler", 1, 100, 0.9)], 0.02)
            .unwrap_err()
            .to_string();
        assert!(e.contains("rk4 with 8 steps"), "{e}");
        let adaptive = SolverSetting {
            method: "dopri5".into(),
            order: 5,
            steps: None,
            tol: Some(1e-4),
        };
        let tight = EvalResult {
            method: "dopri5".into(),
            steps: None,
            tol: Some(1e-6),
            accuracy: 0.9,
            order: 5,
            nfe: None,
        };
        assert!(qualifies(&tight, &adaptive));
        assert_eq!(
            describe("dopri5", None, Some(1.1 * 1.1 * 1.1e-6)),
            "dopri5 at tol 1.331e-6"
        );
        assert_eq!(describe("dopri5", None, Some(1e-4)), "dopri5 at tol 1e-4");
    }
}
