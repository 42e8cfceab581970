//! The JSON result of `odeflow solve` and its plot.

use std::collections::BTreeMap;

use odeflow::systems::{invariant_drift, System};
use odeflow::{Solution, SolveOptions, Stats, Stepping};
use serde::Serialize;

use super::{Dtype, Problem};
use crate::plot::{Figure, Panel, Series};

/// Most points per series drawn in a plot (longer trajectories are thinned evenly).
const MAX_PLOT_POINTS: usize = 4000;

/// The JSON result of `odeflow solve`.
#[derive(Debug, Serialize)]
pub(super) struct SolveReport {
    pub(super) system: String,
    pub(super) method: String,
    pub(super) dtype: &'static str,
    pub(super) state_names: Vec<String>,
    pub(super) t0: f64,
    pub(super) t1: f64,
    pub(super) y0: Vec<f64>,
    pub(super) stepping: SteppingReport,
    #[serde(rename = "final")]
    pub(super) final_state: Vec<f64>,
    pub(super) t_final: f64,
    pub(super) t: Vec<f64>,
    pub(super) y: Vec<Vec<f64>>,
    pub(super) stats: Stats,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) invariant_drift: Option<BTreeMap<String, f64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) error: Option<String>,
}

/// How the steps were placed, as the JSON result records it.
#[derive(Debug, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub(super) enum SteppingReport {
    /// `--dt`.
    FixedStep { dt: f64 },
    /// `--steps`.
    FixedCount { steps: usize },
    /// `--rtol`/`--atol`.
    Adaptive {
        rtol: f64,
        atol: f64,
        max_steps: usize,
    },
}

impl SteppingReport {
    fn new(opts: &SolveOptions) -> Self {
        match &opts.stepping {
            Stepping::FixedStep(dt) => SteppingReport::FixedStep { dt: *dt },
            Stepping::FixedCount(steps) => SteppingReport::FixedCount { steps: *steps },
            Stepping::Adaptive(a) => SteppingReport::Adaptive {
                rtol: a.rtol,
                atol: a.atol,
                max_steps: opts.max_steps,
            },
        }
    }
}

/// The result of a solve (or of a failed one, with its message) as JSON-ready data.
pub(super) fn report(
    p: &Problem,
    dtype: Dtype,
    sol: Solution<Vec<f64>>,
    error: Option<String>,
) -> SolveReport {
    let invariant_drift = (!p.system.invariant_names().is_empty()).then(|| {
        let mut states = sol.y.clone();
        states.push(sol.y_final.clone());
        invariant_drift(&p.system, &p.y0, &states)
            .into_iter()
            .collect()
    });
    SolveReport {
        system: p.system.name().to_string(),
        method: p.method.name().to_string(),
        dtype: match dtype {
            Dtype::F64 => "f64",
            Dtype::F32 => "f32",
        },
        state_names: p.system.state_names(),
        t0: p.opts.t0,
        t1: p.opts.t1,
        y0: p.y0.clone(),
        stepping: SteppingReport::new(&p.opts),
        final_state: sol.y_final,
        t_final: sol.t_final,
        t: sol.t,
        y: sol.y,
        stats: Stats {
            h_min: sol.stats.h_min_finite(),
            ..sol.stats
        },
        invariant_drift,
        error,
    }
}

/// States against t, and for 2-D systems the phase portrait (for separable Hamiltonian
/// systems, stored as `(p, q)`, with q horizontal).
pub(super) fn figure(r: &SolveReport, hamiltonian: bool) -> Figure {
    let n = r.t.len();
    let stride = n.div_ceil(MAX_PLOT_POINTS).max(1);
    let mut idx: Vec<usize> = (0..n).step_by(stride).collect();
    if n > 0 && idx.last() != Some(&(n - 1)) {
        idx.push(n - 1);
    }
    let series = |label: &str, pts: Vec<(f64, f64)>| {
        if pts.len() <= 50 {
            Series::line_markers(label, pts)
        } else {
            Series::line(label, pts)
        }
    };
    let mut states = Panel::new("states", "t", "state");
    for (k, name) in r.state_names.iter().enumerate() {
        states = states.with(series(
            name,
            idx.iter().map(|&i| (r.t[i], r.y[i][k])).collect(),
        ));
    }
    let mut panels = vec![states];
    if r.state_names.len() == 2 {
        let (a, b) = if hamiltonian { (1, 0) } else { (0, 1) };
        let mut phase = Panel::new(
            "phase portrait",
            r.state_names[a].as_str(),
            r.state_names[b].as_str(),
        )
        .with(series(
            "trajectory",
            idx.iter().map(|&i| (r.y[i][a], r.y[i][b])).collect(),
        ));
        if let Some(first) = r.y.first() {
            phase = phase.with(Series::markers("start", vec![(first[a], first[b])]));
        }
        panels.push(phase);
    }
    let mut title = format!("{} — {}", r.system, r.method);
    if r.error.is_some() {
        title.push_str(&format!(" (failed at t = {:.6})", r.t_final));
    }
    Figure { title, panels }
}
