//! `odeflow predict`: a model from a safetensors file (PyTorch `state_dict` names, see
//! `odeflow::weights`) on the inputs of an NPY file, solved with a solver given on the
//! command line; the logits (classifiers) or the final states (bare fields) go to an NPY
//! file.
//!
//! ```text
//! odeflow predict --weights model.safetensors --model simple_odenet --input x.npy \
//!     --method rk4 --steps 16 --out logits.npy
//! odeflow predict --weights field.safetensors --model mlp-tanh --input y0.npy \
//!     --method dopri5 --tol 1e-8 --t1 10 --dtype f64 --out y1.npy
//! odeflow predict --weights h.safetensors --model hamiltonian --input y0.npy \
//!     --method leapfrog --step-size 0.1 --t1 10 --out y1.npy
//! odeflow predict --weights tiny.safetensors --model tiny_resnet --input images.npy \
//!     --out logits.npy
//! ```
//!
//! A Hamiltonian network takes states `(N, 2n)` (momenta first) and gives the final states
//! (splitting methods use its drift and kick). The ResNet models take images
//! `(N, C, H, W)` and have no solver flags: a depth-`N` ResNet is Euler with `N` steps on
//! `[0, 1]`, a HeunNet Heun with `N − 1` steps of `1/N` (the report names that solve);
//! `resnet`/`heunnet` (a bare body) give the final features, `tiny_resnet`/`tiny_heunnet`
//! the logits, both with batch norm in evaluation mode (running statistics).
//!
//! The input holds one sample per row of its first axis: `(N, d)` or `(N, c, d)` for
//! `simple_odenet` (`(N, d)` means one channel), `(N, c, h, w)` for `odenet`, `(N, …)` for
//! an MLP (flattened). The whole input is solved as one batch, so an adaptive solver's
//! steps are controlled over all samples together (as torchdiffeq does for a batch). The
//! output is `(N, classes)` for a classifier and the input's shape for a field (with any
//! ANODE channels, `(N, c + a, …)`). `--out` names that NPY file (written atomically);
//! `--json` prints the result's description on stdout.
//!
//! `--device cuda` (binaries built with `--features cuda`, `--dtype f32`) solves a
//! classifier's ODE block on the GPU (`odeflow::cuda::CudaFlowModel`: MLP, `simple_odenet`
//! or `odenet` field, every solver), the Linear head on the host, and a whole TinyResNet
//! (`odeflow::cuda::CudaTinyResNet`, ResNet or HeunNet body; stem and head too), a bare
//! ResNet body (`odeflow::cuda::resnet_final_state`) and a bare MLP or convolutional field
//! (`odeflow::cuda::field_final_state`); a classifier's loss gradient (`--labels`,
//! `--grad-out`) is computed on the device too (`odeflow::cuda::classifier_loss_gradient`:
//! the ODE block by backprop on the GPU, the head on the host), and the Hamiltonian model's
//! rollout (`odeflow::cuda::hamiltonian_final_state`: its drift and kick on the device under
//! the same splitting, or any method on the whole field).

use std::path::PathBuf;

use clap::Args;
use serde::Serialize;

use odeflow::budget::{check_tolerance, Budget};
use odeflow::data::npy::{npy_bytes_shaped, read_npy_shaped};
use odeflow::models::FlowModel;
use odeflow::runs::Compute;
use odeflow::solve::{solve, solve_split, SaveAt, SolverSpec};
use odeflow::weights::{
    load_classifier, load_field, load_hamiltonian, load_resnet, load_tiny_resnet, loss_gradient,
    Architecture, FileDtype, TensorFile,
};
use odeflow::{Batch, Real};

use crate::args::{finite, positive};
use crate::commands::export::destination;
use crate::device::DeviceArg;
use crate::error::CliError;
use crate::output;
use crate::progress::Reporter;

/// Flags of `odeflow predict`.
#[derive(Debug, Args)]
pub struct PredictArgs {
    /// The safetensors file (keys field.* and, for a classifier, head.*).
    #[arg(long, value_name = "FILE")]
    pub weights: PathBuf,
    /// The architecture: simple_odenet, odenet, mlp, mlp-tanh, mlp-relu, …, hamiltonian,
    /// resnet, heunnet, tiny_resnet, tiny_heunnet (shapes come from the file).
    #[arg(long, value_name = "NAME")]
    pub model: String,
    /// The inputs, an NPY file of float32 or float64 with one sample per row.
    #[arg(long, value_name = "FILE")]
    pub input: PathBuf,
    /// Solver method (any of `odeflow methods`; a splitting method for hamiltonian). Not
    /// for the ResNet models, whose depth fixes their steps.
    #[arg(long, value_name = "NAME")]
    pub method: Option<String>,
    /// N equal steps on [t0, t1].
    #[arg(long, value_name = "N", conflicts_with_all = ["step_size", "tol"])]
    pub steps: Option<usize>,
    /// Step H (the last step shortened to land on t1).
    #[arg(long, value_name = "H", value_parser = positive, conflicts_with = "tol")]
    pub step_size: Option<f64>,
    /// Tolerance (rtol = atol) of an adaptive method.
    #[arg(long, value_name = "T", value_parser = positive)]
    pub tol: Option<f64>,
    /// Start of the ODE block's interval (default 0).
    #[arg(long, value_parser = finite)]
    pub t0: Option<f64>,
    /// End of the ODE block's interval (default 1).
    #[arg(long, value_parser = finite)]
    pub t1: Option<f64>,
    /// Scalar type of the computation and of the output file.
    #[arg(long, default_value = "f64", value_name = "f32|f64")]
    pub dtype: String,
    /// Class labels of the inputs (an NPY array of N whole numbers) for a classifier: the
    /// result then holds the mean cross-entropy, and --grad-out its parameter gradient.
    #[arg(long, value_name = "FILE", requires = "grad_out")]
    pub labels: Option<PathBuf>,
    /// Where to write the gradient of the loss (a safetensors file with the weights' keys,
    /// PyTorch's `param.grad` of each parameter).
    #[arg(long, value_name = "FILE", requires = "labels")]
    pub grad_out: Option<PathBuf>,
}

/// The result of `odeflow predict`.
#[derive(Debug, Serialize)]
pub struct PredictReport {
    /// The weights file.
    pub weights: PathBuf,
    /// The architecture as read (`mlp` with its activation).
    pub model: String,
    /// `logits` (a classifier) or `final states` (a bare field).
    pub outputs: String,
    /// The input file and its shape.
    pub input: PathBuf,
    /// Shape of the input array.
    pub input_shape: Vec<usize>,
    /// The output file.
    pub out: PathBuf,
    /// Shape of the output array.
    pub output_shape: Vec<usize>,
    /// The solver.
    pub solver: SolverSpec,
    /// The interval.
    pub t0: f64,
    /// The interval.
    pub t1: f64,
    /// Scalar type.
    pub dtype: String,
    /// `cpu` or `cuda`.
    pub device: String,
    /// Field evaluations.
    pub nfe: usize,
    /// Steps (attempts).
    pub steps: usize,
    /// Mean cross-entropy on --labels (with --grad-out).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loss: Option<f64>,
    /// The gradient file written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grad_out: Option<PathBuf>,
}

/// The interval `[t0, t1]` of the solve (default `[0, 1]`).
fn interval(args: &PredictArgs) -> (f64, f64) {
    (args.t0.unwrap_or(0.0), args.t1.unwrap_or(1.0))
}

fn solver(args: &PredictArgs) -> Result<SolverSpec, CliError> {
    let budget = Budget::from_env().map_err(|e| CliError::input(e.to_string()))?;
    let (t0, t1) = interval(args);
    let span = (t1 - t0).abs();
    if span == 0.0 {
        return Err(CliError::input(format!(
            "--t0 {t0} equals --t1 {t1}: give an interval of positive length"
        )));
    }
    let method = args.method.as_deref().ok_or_else(|| {
        CliError::input("give the solver: --method NAME with --steps N, --step-size H or --tol T")
    })?;
    let spec = match (args.steps, args.step_size, args.tol) {
        (Some(n), None, None) => {
            budget
                .check_steps("--steps", n as u64)
                .map_err(|e| CliError::input(e.to_string()))?;
            SolverSpec::fixed(method, n)?
        }
        (None, Some(h), None) => {
            budget
                .check_step_size("--step-size", h, span)
                .map_err(|e| CliError::input(e.to_string()))?;
            SolverSpec::step_size(method, h)?
        }
        (None, None, Some(t)) => {
            check_tolerance("--tol", t).map_err(|e| CliError::input(e.to_string()))?;
            SolverSpec::adaptive(method, t)?
        }
        _ => {
            return Err(CliError::input(
                "give the solver's stepping: one of --steps N, --step-size H or --tol T",
            ))
        }
    };
    Ok(spec)
}

/// The sample shape the architecture reads from an input array of `shape`.
fn sample_shape(arch: Architecture, shape: &[usize]) -> Vec<usize> {
    match (arch, shape) {
        (Architecture::SimpleOdenet, [_, d]) => vec![1, *d],
        (Architecture::Mlp(_) | Architecture::Hamiltonian, [_, rest @ ..]) => {
            vec![rest.iter().product()]
        }
        (_, [_, rest @ ..]) => rest.to_vec(),
        _ => Vec::new(),
    }
}

struct Predicted<T> {
    outputs: Batch<T>,
    shape: Vec<usize>,
    kind: &'static str,
    model: String,
    nfe: usize,
    steps: usize,
    loss: Option<f64>,
}

/// A device error as the command's: what the device does not run is a bad input.
#[cfg(feature = "cuda")]
fn gpu_err(e: odeflow::cuda::CudaError) -> CliError {
    match e {
        odeflow::cuda::CudaError::Unsupported(m) => {
            CliError::input(format!("--device cuda: not yet on cuda: {m}"))
        }
        other => CliError::runtime(format!("--device cuda: {other}")),
    }
}

fn predict<T: Real>(
    args: &PredictArgs,
    spec: &SolverSpec,
    file: &TensorFile,
    arch: Architecture,
    compute: &Compute,
) -> Result<(Vec<usize>, Predicted<T>), CliError> {
    let (in_shape, x) = read_npy_shaped::<T>(&args.input)
        .map_err(|e| CliError::input(format!("cannot read the input {e}")))?;
    if x.rows() == 0 {
        return Err(CliError::input(format!(
            "'{}' holds no samples (shape {in_shape:?})",
            args.input.display()
        )));
    }
    let sample = sample_shape(arch, &in_shape);
    let method = spec.method()?;
    let (t0, t1) = interval(args);
    let mut opts = spec.options_on(t0, t1);
    opts.save = SaveAt::Final;
    let weights_err = |e: odeflow::weights::WeightsError| {
        CliError::input(format!("{}: {e}", args.weights.display()))
    };
    // The solve keeps a few copies of the state per stage: refuse inputs whose states
    // would not fit the memory budget before building anything.
    let budget = Budget::from_env().map_err(|e| CliError::input(e.to_string()))?;
    let stages = method.tableau().map_or(2, |t| t.stages()) as u64 + 4;
    budget
        .check_shape(
            "the solver's states for this input",
            &[x.as_slice().len() as u64, stages],
            std::mem::size_of::<T>() as u64,
        )
        .map_err(|e| CliError::input(e.to_string()))?;
    let fail = |e: String| CliError::runtime(format!("the solve failed: {e}"));
    if arch == Architecture::Hamiltonian {
        if args.labels.is_some() {
            return Err(CliError::input(
                "--labels needs a classifier, but the hamiltonian model is a bare field",
            ));
        }
        let mut h = load_hamiltonian::<T>(file).map_err(weights_err)?;
        if x.cols() != h.dim() || in_shape.len() != 2 {
            return Err(CliError::input(format!(
                "the weights' hamiltonian model takes states (p, q) of {} values (field.kinetic.0.weight), but '{}' has shape {in_shape:?}: give (N, {})",
                h.dim(),
                args.input.display(),
                h.dim()
            )));
        }
        let (y_final, stats) = match compute {
            Compute::Cpu => {
                let sol =
                    solve_split(&method, &mut h, &x, &opts).map_err(|e| fail(e.to_string()))?;
                (sol.y_final, sol.stats)
            }
            #[cfg(feature = "cuda")]
            Compute::Cuda(dev) => {
                odeflow::cuda::hamiltonian_final_state(dev, &h, &x, (&method, &opts))
                    .map_err(gpu_err)?
                    .map_err(fail)?
            }
        };
        let p = Predicted {
            loss: None,
            shape: in_shape.clone(),
            outputs: y_final,
            kind: "final states",
            model: arch.name(),
            nfe: stats.nfe,
            steps: stats.steps,
        };
        return Ok((in_shape, p));
    }
    let predicted = if file.tensors.contains_key("head.weight") {
        let (mut model, shape) =
            load_classifier::<T>(arch, file, &sample, method.clone(), opts.clone())
                .map_err(weights_err)?;
        let (logits, stats) = match compute {
            Compute::Cpu => model.outputs(&x, &method, &opts).map_err(fail)?,
            #[cfg(feature = "cuda")]
            Compute::Cuda(dev) => {
                let mut gpu =
                    odeflow::cuda::CudaFlowModel::from_cpu(dev, &shape.spec.field, &model)
                        .map_err(|e| CliError::input(format!("--device cuda: {e}")))?;
                gpu.outputs(&x, &method, &opts).map_err(fail)?
            }
        };
        let loss = match (&args.labels, &args.grad_out) {
            (Some(l), Some(g)) => {
                let labels = read_labels(l, x.rows(), logits.cols())?;
                let dtype =
                    FileDtype::from_name(T::NAME).map_err(|e| CliError::input(e.to_string()))?;
                let (loss, grads) = match compute {
                    Compute::Cpu => loss_gradient(&mut model, &x, &labels, dtype)
                        .map_err(|e| CliError::runtime(e.to_string()))?,
                    // The ODE block solved and differentiated on the device (backprop, as
                    // the loaded CPU model), the head on the host.
                    #[cfg(feature = "cuda")]
                    Compute::Cuda(dev) => {
                        let solver = (&method, odeflow::grad::GradientMethod::Backprop, &opts);
                        let (loss, grad) = odeflow::cuda::classifier_loss_gradient(
                            dev,
                            &shape.spec.field,
                            &model,
                            (&x, &labels),
                            solver,
                        )
                        .map_err(gpu_err)?;
                        (loss, odeflow::weights::gradient_file(&model, &grad, dtype))
                    }
                };
                grads
                    .save(g)
                    .map_err(|e| CliError::runtime(format!("cannot write the gradient: {e}")))?;
                Some(loss)
            }
            _ => None,
        };
        Predicted {
            loss,
            shape: vec![logits.rows(), logits.cols()],
            outputs: logits,
            kind: "logits",
            model: shape.arch.name(),
            nfe: stats.nfe,
            steps: stats.steps,
        }
    } else {
        let (mut field, shape) = load_field::<T>(arch, file, &sample).map_err(weights_err)?;
        let state = field.shape();
        let z0 = if state.len() == x.cols() {
            x
        } else {
            let mut z = Batch::zeros(x.rows(), state.len());
            for (dst, src) in z
                .as_mut_slice()
                .chunks_exact_mut(state.len())
                .zip(x.as_slice().chunks_exact(x.cols().max(1)))
            {
                dst[..src.len()].copy_from_slice(src);
            }
            z
        };
        let (y_final, stats) = match compute {
            Compute::Cpu => {
                let sol =
                    solve(&method, &mut field, &z0, &opts).map_err(|e| fail(e.to_string()))?;
                (sol.y_final, sol.stats)
            }
            #[cfg(feature = "cuda")]
            Compute::Cuda(dev) => odeflow::cuda::field_final_state(
                dev,
                &shape.spec.field,
                state,
                odeflow::field::Parameterized::params(&field),
                &z0,
                (&method, &opts),
            )
            .map_err(gpu_err)?
            .map_err(fail)?,
        };
        let out_shape = if shape.spec.augment == 0 {
            in_shape.clone()
        } else {
            let mut s = vec![x_rows(&in_shape)];
            s.extend(state_dims(state));
            s
        };
        if args.labels.is_some() {
            return Err(CliError::input(format!(
                "--labels needs a classifier, but '{}' holds a bare field (no head.weight)",
                args.weights.display()
            )));
        }
        Predicted {
            loss: None,
            shape: out_shape,
            outputs: y_final,
            kind: "final states",
            model: shape.arch.name(),
            nfe: stats.nfe,
            steps: stats.steps,
        }
    };
    Ok((in_shape, predicted))
}

/// Class labels from an NPY array of `n` whole numbers below `classes`.
fn read_labels(path: &std::path::Path, n: usize, classes: usize) -> Result<Vec<usize>, CliError> {
    let (shape, b) = read_npy_shaped::<f64>(path)
        .map_err(|e| CliError::input(format!("cannot read the labels {e}")))?;
    if b.as_slice().len() != n {
        return Err(CliError::input(format!(
            "'{}' holds {} labels (shape {shape:?}) for {n} inputs: give one label per input",
            path.display(),
            b.as_slice().len()
        )));
    }
    b.as_slice()
        .iter()
        .map(|&v| {
            if v.fract() == 0.0 && v >= 0.0 && v < classes as f64 {
                Ok(v as usize)
            } else {
                Err(CliError::input(format!(
                    "'{}' holds the label {v}: labels are whole numbers from 0 to {}",
                    path.display(),
                    classes - 1
                )))
            }
        })
        .collect()
}

fn x_rows(shape: &[usize]) -> usize {
    shape.first().copied().unwrap_or(0)
}

fn state_dims(s: odeflow::nn::Shape) -> Vec<usize> {
    use odeflow::nn::Shape;
    match s {
        Shape::Flat(n) => vec![n],
        Shape::Seq { channels, length } => vec![channels, length],
        Shape::Image {
            channels,
            height,
            width,
        } => vec![channels, height, width],
    }
}

/// The input's shape, the outputs, the solve they are and its interval.
type Prediction<T> = (Vec<usize>, Predicted<T>, SolverSpec, (f64, f64));

/// A ResNet body (final features) or TinyResNet (logits) on the input: the network's
/// depth fixes its solve, so no solver flag applies; the report names the solve it is.
fn predict_resnet<T: Real>(
    args: &PredictArgs,
    file: &TensorFile,
    arch: Architecture,
    compute: &Compute,
) -> Result<Prediction<T>, CliError> {
    let given = [
        ("--method", args.method.is_some()),
        ("--steps", args.steps.is_some()),
        ("--step-size", args.step_size.is_some()),
        ("--tol", args.tol.is_some()),
        ("--t0", args.t0.is_some()),
        ("--t1", args.t1.is_some()),
        ("--labels", args.labels.is_some()),
    ];
    if let Some((flag, _)) = given.iter().find(|(_, g)| *g) {
        return Err(CliError::input(format!(
            "{flag} does not apply to the {arch} model: its depth N fixes its solve (a ResNet is Euler with N steps on [0, 1], a HeunNet Heun with N - 1 steps of 1/N)"
        )));
    }
    let (in_shape, x) = read_npy_shaped::<T>(&args.input)
        .map_err(|e| CliError::input(format!("cannot read the input {e}")))?;
    if x.rows() == 0 || in_shape.len() != 4 {
        return Err(CliError::input(format!(
            "'{}' has shape {in_shape:?}: the {arch} model takes images (N, C, H, W), N > 0",
            args.input.display()
        )));
    }
    let sample = &in_shape[1..];
    let weights_err = |e: odeflow::weights::WeightsError| {
        CliError::input(format!("{}: {e}", args.weights.display()))
    };
    let fail = |e: String| CliError::runtime(format!("the forward pass failed: {e}"));
    let (scheme, depth, outputs, shape, kind) = match arch {
        Architecture::ResNet(scheme) => {
            let mut net = load_resnet::<T>(scheme, file, sample).map_err(weights_err)?;
            let y = match compute {
                Compute::Cpu => net.infer(&x).map_err(|e| fail(e.to_string()))?,
                #[cfg(feature = "cuda")]
                Compute::Cuda(dev) => odeflow::cuda::resnet_final_state(dev, &net, &x)
                    .map_err(gpu_err)?
                    .map_err(fail)?,
            };
            (scheme, net.depth(), y, in_shape.clone(), "final states")
        }
        Architecture::TinyResNet(scheme) => {
            let mut m = load_tiny_resnet::<T>(scheme, file, sample).map_err(weights_err)?;
            let depth = m.body().depth();
            let y = match compute {
                Compute::Cpu => m.logits(&x).map_err(|e| fail(e.to_string()))?,
                #[cfg(feature = "cuda")]
                Compute::Cuda(dev) => {
                    let mut gpu =
                        odeflow::cuda::CudaTinyResNet::from_cpu(dev, m).map_err(gpu_err)?;
                    gpu.logits(&x).map_err(gpu_err)?
                }
            };
            let shape = vec![y.rows(), y.cols()];
            (scheme, depth, y, shape, "logits")
        }
        _ => unreachable!("predict_resnet is called for the ResNet models"),
    };
    let steps = scheme.steps(depth);
    let spec = SolverSpec::fixed(scheme.name(), steps)?;
    let stages = if scheme == odeflow::models::resnet::Scheme::Heun {
        2
    } else {
        1
    };
    let p = Predicted {
        outputs,
        shape,
        kind,
        model: arch.name(),
        nfe: stages * steps,
        steps,
        loss: None,
    };
    Ok((in_shape, p, spec, (0.0, steps as f64 / depth as f64)))
}

fn run_typed<T: Real>(
    args: &PredictArgs,
    dest: PathBuf,
    reporter: &Reporter,
    compute: &Compute,
) -> Result<(), CliError> {
    let arch: Architecture = args
        .model
        .parse()
        .map_err(|e: odeflow::weights::WeightsError| CliError::input(format!("--model: {e}")))?;
    let (input_shape, p, spec, (t0, t1)) = match arch {
        Architecture::ResNet(_) | Architecture::TinyResNet(_) => {
            let file =
                TensorFile::read(&args.weights).map_err(|e| CliError::input(e.to_string()))?;
            predict_resnet::<T>(args, &file, arch, compute)?
        }
        _ => {
            let spec = solver(args)?;
            let file =
                TensorFile::read(&args.weights).map_err(|e| CliError::input(e.to_string()))?;
            let (s, p) = predict::<T>(args, &spec, &file, arch, compute)?;
            (s, p, spec, interval(args))
        }
    };
    output::write_atomic(&dest, &npy_bytes_shaped(&p.shape, &p.outputs))?;
    let report = PredictReport {
        weights: args.weights.clone(),
        model: p.model,
        outputs: p.kind.into(),
        input: args.input.clone(),
        input_shape,
        out: dest,
        output_shape: p.shape,
        solver: spec,
        t0,
        t1,
        dtype: T::NAME.into(),
        device: compute.name().into(),
        nfe: p.nfe,
        steps: p.steps,
        loss: p.loss,
        grad_out: args.grad_out.clone().filter(|_| p.loss.is_some()),
    };
    reporter.result(&report, || {
        format!(
            "{} of {} samples ({} model, {} on [{}, {}], {} evaluations): wrote {} {:?}\n",
            report.outputs,
            report.input_shape.first().copied().unwrap_or(0),
            report.model,
            report.solver.label(),
            report.t0,
            report.t1,
            report.nfe,
            report.out.display(),
            report.output_shape
        )
    })
}

/// Runs `odeflow predict` on `device`.
pub fn run(args: PredictArgs, reporter: &Reporter, device: DeviceArg) -> Result<(), CliError> {
    crate::device::require_f32(device, &args.dtype)?;
    let compute = crate::device::open(device)?;
    let (dest, reporter) = destination(reporter, "outputs.npy")?;
    match args.dtype.as_str() {
        "f64" => run_typed::<f64>(&args, dest, &reporter, &compute),
        "f32" => run_typed::<f32>(&args, dest, &reporter, &compute),
        other => Err(CliError::input(format!(
            "--dtype '{other}' is not supported: use f32 or f64"
        ))),
    }
}
