//! `odeflow experiment resnet-memory`: peak memory of one training iteration with backprop
//! and with the reversible method, against depth, for the paper's workload
//! `Linear(500 → 8) → tanh → Linear(8 → 500)` on a 500 × 500 input in f32 (see
//! `odeflow::analysis::resnet::memory`).
//!
//! ```text
//! odeflow experiment resnet-memory --out-dir results/memory
//! odeflow experiment resnet-memory --depths 1,51,101,151,301 --grads backprop,reversible
//! ```
//!
//! A process's peak resident memory (`VmHWM`, Linux) only grows, so every depth runs in a
//! fresh process: this command re-invokes its own binary (`std::env::current_exe()`) as
//! `odeflow experiment resnet-memory --child --depth N --grad G --seed S`, which runs the
//! workload once and prints one JSON object (the workload's timings and counters,
//! `vm_hwm_bytes` and `vm_rss_bytes`) on stdout. `--child` is hidden: it is the
//! measurement protocol, not a user feature. On systems without `/proc/self/status` the
//! experiment fails with a clear message.
//!
//! Files: `result.json`, `memory.csv` (grad, depth, peak MiB, timings), `memory.png` (peak
//! MiB against depth, with the fitted MiB-per-layer slopes).

use std::process::Command;

use clap::Args;
use odeflow::analysis::resnet::memory::{
    current_rss_bytes, peak_rss_bytes, resnet_memory_workload, MemoryWorkload,
};
use odeflow::analysis::resnet::profiles::linear_fit;
use odeflow::grad::GradientMethod;
use odeflow::models::depth_field::Tying;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::common;
use super::resnet_common::{
    cell, non_empty, resnet_error, GradArg, GradsArgs, OutputArgs, Outputs,
};
use crate::error::CliError;
use crate::output::{self, Layout};
use crate::plot::{Figure, Panel, Series};
use crate::progress::Reporter;

const MIB: f64 = 1024.0 * 1024.0;

/// Flags of `odeflow experiment resnet-memory`.
#[derive(Debug, Args)]
pub struct MemoryArgs {
    /// Give every layer its own weights (the paper's ResNets); default: the same residual
    /// function at every depth, as in `odeflow bench resnet-memory`.
    #[arg(long)]
    untied: bool,

    /// Depths N.
    #[arg(
        long,
        value_name = "LIST",
        value_delimiter = ',',
        default_value = "1,11,21,31,41,51,61,71,81,91,101,111,121,131,141,151"
    )]
    depths: Vec<usize>,

    #[command(flatten)]
    grads: GradsArgs,

    /// Seed of the weights and input.
    #[arg(long, default_value_t = 0)]
    seed: u64,

    /// Run one workload in this process and print its measurement (used by the
    /// experiment itself; needs --depth and --grad).
    #[arg(long, hide = true, requires_all = ["depth", "grad"])]
    child: bool,

    /// Depth of the --child workload.
    #[arg(long, hide = true)]
    depth: Option<usize>,

    /// Gradient method of the --child workload.
    #[arg(long, hide = true, value_enum)]
    grad: Option<GradArg>,

    #[command(flatten)]
    output: OutputArgs,
}

/// What a child process reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChildReport {
    /// The workload's counters and timings.
    pub workload: MemoryWorkload,
    /// Peak resident memory of the child.
    pub vm_hwm_bytes: u64,
    /// Resident memory at the end.
    pub vm_rss_bytes: u64,
}

fn child(depth: usize, grad: GradArg, untied: bool, seed: u64) -> Result<(), CliError> {
    if depth == 0 {
        return Err(CliError::input("--depth 0: give at least 1"));
    }
    let workload = resnet_memory_workload(depth, &GradientMethod::from(grad), tying(untied), seed)
        .map_err(resnet_error)?;
    let (Some(vm_hwm_bytes), Some(vm_rss_bytes)) = (peak_rss_bytes(), current_rss_bytes()) else {
        return Err(CliError::runtime(
            "cannot read VmHWM/VmRSS from /proc/self/status: peak memory is measured on Linux only",
        ));
    };
    output::write_json(
        &ChildReport {
            workload,
            vm_hwm_bytes,
            vm_rss_bytes,
        },
        None,
        Layout::Compact,
    )
}

fn tying(untied: bool) -> Tying {
    if untied {
        Tying::Untied
    } else {
        Tying::Tied
    }
}

fn grad_name(g: GradArg) -> &'static str {
    match g {
        GradArg::Backprop => "backprop",
        GradArg::Reversible => "reversible",
    }
}

/// Runs `depth`/`grad` in a fresh process of this binary.
fn measure(depth: usize, grad: GradArg, untied: bool, seed: u64) -> Result<ChildReport, CliError> {
    let exe = std::env::current_exe()
        .map_err(|e| CliError::runtime(format!("cannot locate the odeflow binary: {e}")))?;
    let out = Command::new(&exe)
        .args(["--quiet", "experiment", "resnet-memory", "--child"])
        .args(["--depth", &depth.to_string(), "--grad", grad_name(grad)])
        .args(["--seed", &seed.to_string()])
        .args(if untied { &["--untied"][..] } else { &[][..] })
        .output()
        .map_err(|e| CliError::runtime(format!("cannot run '{}': {e}", exe.display())))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(CliError::runtime(format!(
            "the measurement at depth {depth} ({}) failed: {}",
            grad_name(grad),
            err.trim()
        )));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| {
        CliError::runtime(format!(
            "the measurement at depth {depth} printed no valid report: {e}"
        ))
    })
}

/// Runs the experiment (or, with `--child`, one measurement).
pub fn run(args: MemoryArgs, reporter: &Reporter) -> Result<(), CliError> {
    if args.child {
        let (Some(depth), Some(grad)) = (args.depth, args.grad) else {
            return Err(CliError::input("--child needs --depth and --grad"));
        };
        return child(depth, grad, args.untied, args.seed);
    }
    non_empty("--depths", &args.depths)?;
    let grads = args.grads.list()?;
    if let Some(d) = args.depths.iter().find(|&&d| d == 0) {
        return Err(CliError::input(format!(
            "--depths contains {d}; depths start at 1"
        )));
    }
    let mut out = Outputs::new(&args.output, "resnet-memory");
    let depth = args.depths.iter().copied().max().unwrap_or(0) as u64;
    common::check_steps(&format!("--depths {depth}"), depth)?;
    // Backprop keeps the 500 × 500 input's activations at every layer (f32).
    common::check_memory(
        &format!("backprop through depth {depth} on a 500 × 500 input (--depths)"),
        &[&[depth, 500, 508]],
        4,
    )?;
    let bar = reporter.bar((args.depths.len() * grads.len()) as u64, "peak memory");
    let mut reports = Vec::new();
    for &grad in grads {
        for &depth in &args.depths {
            reports.push(measure(depth, grad, args.untied, args.seed)?);
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    out.json("result.json", &reports)?;
    let rows: Vec<Vec<String>> = reports
        .iter()
        .map(|r| {
            let w = &r.workload;
            vec![
                w.grad.clone(),
                w.depth.to_string(),
                cell(r.vm_hwm_bytes as f64 / MIB),
                w.tapes_peak.to_string(),
                cell(w.forward_seconds),
                cell(w.backward_seconds),
                cell(w.step_seconds),
            ]
        })
        .collect();
    out.csv(
        "memory.csv",
        &[
            "grad",
            "depth",
            "peak_mib",
            "tapes_peak",
            "forward_s",
            "backward_s",
            "step_s",
        ],
        &rows,
    )?;
    let activation_mib = reports
        .first()
        .map_or(0.0, |r| r.workload.activation_bytes as f64 / MIB);
    let mut panel = Panel::new(
        "one training iteration, 500 × 500 input, f32",
        "depth N",
        "peak resident memory (MiB)",
    );
    let mut fits = Vec::new();
    for &grad in grads {
        let name = grad_name(grad);
        let pts: Vec<(f64, f64)> = reports
            .iter()
            .filter(|r| r.workload.grad == name)
            .map(|r| (r.workload.depth as f64, r.vm_hwm_bytes as f64 / MIB))
            .collect();
        let fit = linear_fit(&pts);
        let label = match fit {
            Some((s, _)) => format!("{name} ({s:.3} MiB/layer)"),
            None => name.to_string(),
        };
        fits.push(json!({
            "grad": name,
            "mib_per_layer": fit.map(|f| f.0),
            "intercept_mib": fit.map(|f| f.1),
            "activations_per_layer": fit.map(|f| f.0 / activation_mib),
            "peak_mib": pts.iter().map(|p| json!({"depth": p.0, "mib": p.1})).collect::<Vec<_>>(),
        }));
        panel = panel.with(Series::line_markers(label, pts));
    }
    out.plot(
        "memory.png",
        &Figure {
            title: "Memory of backprop against the reversible method".into(),
            panels: vec![panel],
        },
    )?;
    let summary = json!({
        "experiment": "resnet-memory",
        "activation_mib": activation_mib,
        "fits": fits,
        "seconds": out.seconds(),
        "files": out.files(),
    });
    let headline = fits
        .iter()
        .map(|f| {
            format!(
                "{} {:.3} MiB/layer",
                f["grad"].as_str().unwrap_or("?"),
                f["mib_per_layer"].as_f64().unwrap_or(f64::NAN)
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    out.finish(&summary, &args.output, reporter, &headline)
}
