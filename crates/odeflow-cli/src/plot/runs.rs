//! The figures of the solver-dependence commands: training curves, and test accuracy against
//! the number of test steps (or the tolerance) with the training configuration marked.

use serde_json::Value;

use odeflow::analysis::solver_dependence::{Verdict, WorstCase};
use odeflow::report::short;
use odeflow::runs::{EvalReport, EvalRow};

use crate::plot::{Figure, Legend, Panel, Scale, Series};

/// Mean of a sliding window of `w` values ending at each point (shorter at the start).
pub fn moving_mean(values: &[f64], w: usize) -> Vec<f64> {
    let w = w.max(1);
    let mut out = Vec::with_capacity(values.len());
    let mut sum = 0.0;
    for (i, v) in values.iter().enumerate() {
        sum += v;
        if i >= w {
            sum -= values[i - w];
        }
        out.push(sum / (i + 1).min(w) as f64);
    }
    out
}

/// Training curves from the metrics log: loss and batch accuracy (moving means over 1 % of
/// the run), and — when the step size or tolerance changes during training — the step size
/// (or tolerance) and the forward NFE per iteration.
pub fn training_figure(title: &str, log: &[Value], adapting: bool) -> Figure {
    let it: Vec<f64> = log
        .iter()
        .map(|r| r["iteration"].as_f64().unwrap_or(f64::NAN))
        .collect();
    let col = |k: &str| -> Vec<f64> {
        log.iter()
            .map(|r| r[k].as_f64().unwrap_or(f64::NAN))
            .collect()
    };
    let w = (log.len() / 100).max(1);
    let smooth =
        |k: &str| -> Vec<(f64, f64)> { it.iter().copied().zip(moving_mean(&col(k), w)).collect() };
    let label = |what: &str| {
        if w > 1 {
            format!("{what} (mean of {w})")
        } else {
            what.to_string()
        }
    };
    let mut panels = vec![
        Panel::new("loss", "iteration", "cross-entropy")
            .scales(Scale::Linear, Scale::Log)
            .with(Series::line(label("batch loss"), smooth("loss"))),
        Panel::new("accuracy", "iteration", "batch accuracy")
            .y_limits(0.0, 1.02)
            .with(Series::line(label("batch accuracy"), smooth("accuracy"))),
    ];
    if adapting {
        let (key, name) = if log.iter().any(|r| r.get("tol").is_some()) {
            ("tol", "tolerance")
        } else {
            ("h", "step size h")
        };
        let pts: Vec<(f64, f64)> = it.iter().copied().zip(col(key)).collect();
        panels.push(
            Panel::new(name, "iteration", name)
                .scales(Scale::Linear, Scale::Log)
                .with(Series::line(name, pts)),
        );
        let nfe: Vec<(f64, f64)> = it.iter().copied().zip(col("nfe_forward")).collect();
        panels.push(
            Panel::new("cost", "iteration", "field evaluations per forward solve")
                .with(Series::line("NFE (forward)", nfe)),
        );
    }
    Figure {
        title: title.into(),
        panels,
    }
}

fn steps_points(rows: &[&EvalRow], f: impl Fn(&EvalRow) -> f64) -> Vec<(f64, f64)> {
    rows.iter()
        .map(|r| {
            (
                r.steps.map_or(r.tol.unwrap_or(f64::NAN), |s| s as f64),
                f(r),
            )
        })
        .collect()
}

/// Panels of test accuracy against test steps (and against tolerance, when the report has
/// adaptive results): one line per test method (with a ± std band where rows carry one), the
/// training configuration marked, and the check's threshold line when given.
pub fn accuracy_panels(title: &str, report: &EvalReport, threshold: Option<f64>) -> Vec<Panel> {
    let mut panels = Vec::new();
    for adaptive in [false, true] {
        let rows: Vec<&EvalRow> = report
            .results
            .iter()
            .filter(|r| r.tol.is_some() == adaptive)
            .collect();
        if rows.is_empty() {
            continue;
        }
        let (x_label, sub) = if adaptive {
            ("tolerance", " (adaptive)")
        } else {
            ("number of test steps on [0, 1]", "")
        };
        let mut panel = Panel::new(format!("{title}{sub}"), x_label, "test accuracy")
            .scales(Scale::Log, Scale::Linear)
            .y_limits(0.0, 1.02)
            .legend(Legend::LowerRight);
        let mut methods: Vec<&str> = Vec::new();
        for r in &rows {
            if !methods.contains(&r.method.as_str()) {
                methods.push(&r.method);
            }
        }
        for m in methods {
            let mine: Vec<&EvalRow> = rows.iter().copied().filter(|r| r.method == m).collect();
            panel = panel.with(Series::line_markers(
                format!("test: {m}"),
                steps_points(&mine, |r| r.accuracy),
            ));
            if mine.iter().any(|r| r.accuracy_std.is_some()) {
                let sd = |r: &EvalRow| r.accuracy_std.unwrap_or(0.0);
                panel = panel.with(Series::band(
                    &steps_points(&mine, |r| r.accuracy - sd(r)),
                    &steps_points(&mine, |r| r.accuracy + sd(r)),
                ));
            }
        }
        let t = &report.train;
        let train_x = if adaptive {
            t.solver.tol
        } else {
            t.solver.steps.map(|s| s as f64)
        };
        if let Some(x) = train_x {
            panel = panel.with(Series::markers(
                format!("trained: {} ({:.3})", t.solver.label(), t.accuracy),
                vec![(x, t.accuracy)],
            ));
        }
        if let Some(th) = threshold {
            let xs: Vec<f64> = panel
                .series
                .iter()
                .flat_map(|s| s.points.iter().map(|p| p.0))
                .filter(|x| x.is_finite() && *x > 0.0)
                .collect();
            let lo = xs.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            if lo <= hi {
                let y = t.accuracy - th;
                panel = panel.with(Series::line(
                    format!("validity threshold (−{th})"),
                    vec![(lo, y), (hi, y)],
                ));
            }
        }
        panels.push(panel);
    }
    panels
}

/// The check figure: accuracy against test steps with the threshold line and the worst
/// case, labelled with its drop, the fraction of changed predictions and the paired test's
/// p-value.
pub fn check_figure(report: &EvalReport, v: &Verdict, title: &str) -> Figure {
    let head = if v.valid {
        "VALID ODE flow"
    } else {
        "NOT a valid ODE flow"
    };
    let mut panels = accuracy_panels(title, report, Some(v.threshold));
    let w = &v.worst;
    let x = w.steps.map(|s| s as f64).or(w.tol);
    if let Some(x) = x {
        let adaptive = w.tol.is_some();
        let idx = if adaptive { panels.len() - 1 } else { 0 };
        if let Some(p) = panels.get_mut(idx) {
            p.series.push(Series::markers(
                format!("worst: {} ({})", worst_label(w), noise_label(w)),
                vec![(x, w.accuracy)],
            ));
        }
    }
    Figure {
        title: format!("{head}: {}", report.train.solver.label()),
        panels,
    }
}

fn worst_label(w: &WorstCase) -> String {
    match (w.steps, w.tol) {
        (Some(n), _) => format!("{}, {n} steps", w.method),
        (_, Some(t)) => format!("{}, tol {}", w.method, short(t)),
        _ => w.method.clone(),
    }
}

/// `drop 0.43, 45% changed, p = 1e-30`.
pub fn noise_label(w: &WorstCase) -> String {
    let mut s = format!("drop {:.3}", w.drop);
    if let Some(c) = w.changed {
        s.push_str(&format!(", {:.0}% changed", 100.0 * c));
    }
    if let Some(p) = w.p_value {
        s.push_str(&format!(", p = {}", short(p)));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moving_mean_averages_the_window() {
        assert_eq!(
            moving_mean(&[1.0, 3.0, 5.0, 7.0], 2),
            vec![1.0, 2.0, 4.0, 6.0]
        );
        assert_eq!(moving_mean(&[2.0, 4.0], 1), vec![2.0, 4.0]);
    }
}
