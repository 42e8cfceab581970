//! `odeflow bench`: time one training iteration of a workload on this machine.
//!
//! ```text
//! odeflow bench sphere2-euler256 --iters 50
//! odeflow bench pendulum-mlp128-euler2 --grad reversible
//! odeflow bench pendulum-mlp128-euler2 --device cuda   # binaries built with --features cuda
//! odeflow bench mnist-odenet64-euler8 --device cuda --check-cpu
//! ```
//!
//! On the GPU the pendulum runs wholly on the device (solves, MSE, Adam); a classifier
//! workload with backprop runs its whole iteration (solve, head, cross-entropy, backward,
//! Adam) as one captured CUDA graph, with adjoint or reversible gradients its field on the
//! device through the generic solvers and the head on the host
//! (`odeflow::cuda::ClassifierCuda`). `--check-cpu` and the device runners: `bench_cuda.rs`.
//!
//! Prints JSON with `workload`, `ms_per_iter` (median over the timed iterations, after
//! warm-up), `peak_mib` (the process's peak resident memory, VmHWM) and more. The workloads
//! are defined in `odeflow::models::workloads`, identically to the peer scripts in `bench/`.

use std::time::Instant;

use clap::Args;
use odeflow::analysis::resnet::memory::{peak_rss_bytes, resnet_memory_workload};
use odeflow::grad::GradientMethod;
use odeflow::models::depth_field::Tying;
use odeflow::models::{Workload, WorkloadRunner};
use serde::Serialize;

use odeflow::train::StepMetrics;

use super::bench_cuda::{cuda_runner, Agreements};
use crate::device::{require_cpu, DeviceArg};
use crate::error::CliError;
use crate::progress::Reporter;

/// Flags of `odeflow bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Workload: sphere2-euler256, sphere2-rk4-64, pendulum-mlp128-euler2,
    /// mnist-odenet64-euler8, cifar-odenet128-euler8, or resnet-memory (a residual function
    /// Linear(500→8) → tanh → Linear(8→500) applied --depth times to a 500×500 input).
    workload: String,

    /// Depth of the resnet-memory workload [default: 1].
    #[arg(long)]
    depth: Option<usize>,

    /// resnet-memory: give every layer its own weights (default: the same function at every
    /// depth).
    #[arg(long)]
    untied: bool,

    /// Timed iterations.
    #[arg(long, default_value_t = 20)]
    iters: usize,

    /// Untimed warm-up iterations.
    #[arg(long, default_value_t = 3)]
    warmup: usize,

    /// Gradient method: backprop, adjoint or reversible.
    #[arg(long, default_value = "backprop")]
    grad: String,

    /// Seed of the model and data.
    #[arg(long, default_value_t = 0)]
    seed: u64,

    /// With --device cuda: first compare the GPU with the CPU (f32 and f64) and report the
    /// errors — "agreement": one forward/backward pass (the pendulum with Euler and adaptive
    /// dopri5; a classifier workload's convolutional field on four samples with its own
    /// solver); "classifier_agreement": training iterations with the chosen gradient through
    /// the device plan, eager and as a CUDA graph (an MLP classifier for the pendulum, the
    /// workload's field on small images otherwise); for the pendulum
    /// "regression_agreement": one replay of its captured plan; on cifar-odenet128-euler8
    /// "res_block_agreement": a TinyResNet block in train and eval mode, and
    /// "tiny_resnet_agreement": a whole TinyResNet's training step (eager and captured) and
    /// eval logits. Fails
    /// (exit 1) when the GPU disagrees.
    #[arg(long)]
    check_cpu: bool,
}

/// The result of `odeflow bench`.
#[derive(Debug, Serialize)]
pub struct BenchResult {
    /// Workload name.
    pub workload: String,
    /// Median milliseconds per iteration (forward + backward + Adam).
    pub ms_per_iter: f64,
    /// Fastest iteration.
    pub ms_min: f64,
    /// Slowest iteration.
    pub ms_max: f64,
    /// Timed iterations.
    pub iters: usize,
    /// Warm-up iterations.
    pub warmup: usize,
    /// Gradient method.
    pub grad: String,
    /// Peak resident memory of the process in MiB (Linux VmHWM), if known.
    pub peak_mib: Option<f64>,
    /// Parameters of the model.
    pub params: usize,
    /// Field evaluations in one forward pass.
    pub nfe_forward: usize,
    /// Evaluations and VJPs in one backward pass.
    pub nfe_backward: usize,
    /// Milliseconds of every timed iteration, in order.
    pub ms_iters: Vec<f64>,
    /// Loss of the first iteration (≈ ln(classes) for a fresh classifier).
    pub initial_loss: f64,
    /// Loss of the first iteration.
    pub loss_first: f64,
    /// Loss of the last iteration.
    pub loss_last: f64,
    /// Logical CPUs available.
    pub cpus: usize,
    /// `cpu` or `cuda`.
    pub device: String,
    /// The GPU's name and architecture with `--device cuda`.
    pub gpu: Option<String>,
    /// With `--check-cpu`: the GPU-vs-CPU comparisons (`odeflow::cuda::Agreement`).
    pub agreement: Option<serde_json::Value>,
    /// With `--check-cpu`: the GPU-vs-CPU comparisons of one classifier training iteration
    /// through the device plan (`odeflow::cuda::ClassifierAgreement`).
    pub classifier_agreement: Option<serde_json::Value>,
    /// With `--check-cpu` on `cifar-odenet128-euler8`: a TinyResNet residual block on the
    /// GPU against the CPU, train and eval mode (`odeflow::cuda::ResBlockAgreement`).
    pub res_block_agreement: Option<serde_json::Value>,
    /// With `--check-cpu` on `cifar-odenet128-euler8`: a whole TinyResNet on the GPU
    /// against the CPU (`odeflow::cuda::TinyResNetAgreement`).
    pub tiny_resnet_agreement: Option<serde_json::Value>,
    /// With `--check-cpu` on `pendulum-mlp128-euler2`: one replay of its captured regression
    /// plan against the CPU (`odeflow::cuda::RegressionAgreement`).
    pub regression_agreement: Option<serde_json::Value>,
}

/// A prepared workload: one training iteration per call.
pub(super) type Iterate = Box<dyn FnMut(u64) -> Result<StepMetrics, CliError>>;

/// The workload on the CPU: the iteration, the parameter count.
fn cpu_runner(
    workload: Workload,
    grad: GradientMethod,
    seed: u64,
) -> Result<(Iterate, usize), CliError> {
    let mut runner = WorkloadRunner::new(workload, grad, seed)?;
    let params = runner.num_params();
    let iterate = move |it| {
        runner
            .iteration(it)
            .map_err(|e| CliError::runtime(e.to_string()))
    };
    Ok((Box::new(iterate), params))
}

/// Peak resident set size of this process in MiB (Linux VmHWM).
pub fn peak_rss_mib() -> Option<f64> {
    peak_rss_bytes().map(|b| b as f64 / (1024.0 * 1024.0))
}

/// `odeflow bench resnet-memory`: one process, one depth, one gradient method.
fn run_memory(
    args: &BenchArgs,
    grad: &GradientMethod,
    reporter: &Reporter,
) -> Result<(), CliError> {
    let depth = args.depth.unwrap_or(1);
    if depth == 0 {
        return Err(CliError::input("--depth must be at least 1"));
    }
    super::experiment::common::check_steps(&format!("--depth {depth}"), depth as u64)?;
    super::experiment::common::check_memory(
        &format!("backprop through depth {depth} on a 500 × 500 input (--depth)"),
        &[&[depth as u64, 500, 508]],
        4,
    )?;
    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..args.iters {
        let tying = if args.untied {
            Tying::Untied
        } else {
            Tying::Tied
        };
        let w = resnet_memory_workload(depth, grad, tying, args.seed)
            .map_err(|e| CliError::input(e.to_string()))?;
        times.push((w.forward_seconds + w.backward_seconds + w.step_seconds) * 1e3);
        last = Some(w);
    }
    let w = last.expect("iters ≥ 1");
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    let result = serde_json::json!({
        "workload": "resnet-memory",
        "depth": depth,
        "tied": !args.untied,
        "grad": w.grad,
        "ms_per_iter": sorted[sorted.len() / 2],
        "ms_iters": times,
        "peak_mib": peak_rss_mib(),
        "params": w.params,
        "activation_mib": w.activation_bytes as f64 / (1024.0 * 1024.0),
        "tapes_peak": w.tapes_peak,
        "initial_loss": w.loss,
        "cpus": std::thread::available_parallelism().map_or(1, |n| n.get()),
    });
    reporter.note(format!(
        "resnet-memory depth {} ({}): peak {:.1} MiB",
        depth,
        w.grad,
        peak_rss_mib().unwrap_or(f64::NAN)
    ));
    reporter.result(&result, || {
        format!(
            "resnet-memory depth {} ({}): peak {:.1} MiB\n",
            depth,
            w.grad,
            peak_rss_mib().unwrap_or(f64::NAN)
        )
    })
}

/// Runs `odeflow bench`.
pub fn run(args: BenchArgs, reporter: &Reporter, device: DeviceArg) -> Result<(), CliError> {
    let grad = GradientMethod::from_name(&args.grad)?;
    if args.iters == 0 {
        return Err(CliError::input("--iters must be at least 1"));
    }
    for (flag, n) in [("--iters", args.iters), ("--warmup", args.warmup)] {
        super::experiment::common::check_steps(&format!("{flag} {n}"), n as u64)?;
    }
    if args.workload != "resnet-memory" {
        if let Some(d) = args.depth {
            return Err(CliError::input(format!(
                "--depth {d} does not apply: only the resnet-memory workload has a depth, not {}",
                args.workload
            )));
        }
        if args.untied {
            return Err(CliError::input(format!(
                "--untied does not apply: only the resnet-memory workload has layers to untie, not {}",
                args.workload
            )));
        }
    }
    if args.workload == "resnet-memory" {
        require_cpu(device, "bench resnet-memory")?;
        return run_memory(&args, &grad, reporter);
    }
    let workload = Workload::from_name(&args.workload)
        .map_err(|e| CliError::input(format!("{e}, resnet-memory")))?;
    let (mut iterate, params, gpu, agreements) = match device {
        DeviceArg::Cpu => {
            if args.check_cpu {
                return Err(CliError::input(
                    "--check-cpu compares the GPU with the CPU; add --device cuda",
                ));
            }
            let (it, p) = cpu_runner(workload, grad, args.seed)?;
            (it, p, None, Agreements::default())
        }
        DeviceArg::Cuda => {
            let (it, p, gpu, agreements) = cuda_runner(workload, grad, args.seed, args.check_cpu)?;
            (it, p, Some(gpu), agreements)
        }
    };
    let bar = reporter.bar(
        (args.warmup + args.iters) as u64,
        format!("bench {}", workload.name()),
    );
    let mut times = Vec::with_capacity(args.iters);
    let mut first = None;
    let mut last = None;
    for it in 0..args.warmup + args.iters {
        let t0 = Instant::now();
        let m = iterate(it as u64)?;
        let ms = t0.elapsed().as_secs_f64() * 1e3;
        if it >= args.warmup {
            times.push(ms);
        }
        first.get_or_insert(m.clone());
        last = Some(m);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let (first, last) = (first.unwrap_or_default(), last.unwrap_or_default());
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    let median = if sorted.len() % 2 == 1 {
        sorted[sorted.len() / 2]
    } else {
        0.5 * (sorted[sorted.len() / 2 - 1] + sorted[sorted.len() / 2])
    };
    let result = BenchResult {
        workload: workload.name().to_string(),
        ms_per_iter: median,
        ms_min: sorted[0],
        ms_max: sorted[sorted.len() - 1],
        ms_iters: times.clone(),
        initial_loss: first.loss,
        iters: args.iters,
        warmup: args.warmup,
        grad: args.grad.clone(),
        peak_mib: peak_rss_mib(),
        params,
        nfe_forward: last.nfe_forward,
        nfe_backward: last.nfe_backward,
        loss_first: first.loss,
        loss_last: last.loss,
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        device: device.name().to_string(),
        gpu,
        agreement: agreements.agreement,
        classifier_agreement: agreements.classifier,
        res_block_agreement: agreements.res_block,
        tiny_resnet_agreement: agreements.tiny_resnet,
        regression_agreement: agreements.regression,
    };
    reporter.result(&result, || {
        format!(
            "{} on {}: {:.2} ms per iteration (median of {}, min {:.2}, max {:.2}); {} parameters, loss {:.4} → {:.4}\n",
            result.workload,
            result.gpu.as_deref().unwrap_or("cpu"),
            median,
            args.iters,
            result.ms_min,
            result.ms_max,
            result.params,
            result.loss_first,
            result.loss_last
        )
    })
}
