//! `odeflow bench --device cuda`: the workloads on GPU 0 and, with `--check-cpu`, the
//! GPU-vs-CPU agreement checks that run before the timing (each fails the command when the
//! GPU's error exceeds ten times the CPU f32 error against the CPU f64):
//!
//! * the pendulum (`pendulum_agreement`): one pass with Euler and with adaptive dopri5 under
//!   the chosen gradient method, one MLP-classifier training iteration with that gradient
//!   through the device plan, eager and as a captured CUDA graph (`classifier_agreement`),
//!   and one iteration of the captured regression plan the benchmark times
//!   (`regression_agreement`);
//! * a classifier workload: one solve and backward pass of its convolutional field on four
//!   samples (`conv_agreement`), and one training iteration of a classifier with the
//!   workload's field on small images, with the chosen gradient, through the captured plan
//!   the benchmark times (`classifier_agreement`, eager and captured, with and without an
//!   ANODE channel);
//!   and on `cifar-odenet128-euler8` a TinyResNet residual block in train and eval mode
//!   (`res_block_agreement`) and a whole TinyResNet on the device, one
//!   training step (eager, and one replay of the captured iteration) and the eval logits,
//!   untied and tied (`tiny_resnet_agreement`).

use odeflow::grad::GradientMethod;
use odeflow::models::Workload;
use serde::Serialize;

use super::bench::Iterate;
use crate::error::CliError;

/// The JSON of `--check-cpu`'s comparisons (absent when not run).
#[derive(Debug, Default)]
pub(super) struct Agreements {
    /// The pendulum's passes or the convolutional field's solve.
    pub agreement: Option<serde_json::Value>,
    /// Classifier training iterations through the device plan.
    pub classifier: Option<serde_json::Value>,
    /// The TinyResNet residual block.
    pub res_block: Option<serde_json::Value>,
    /// The whole TinyResNet.
    pub tiny_resnet: Option<serde_json::Value>,
    /// The pendulum's captured regression iteration.
    pub regression: Option<serde_json::Value>,
}

/// `rows` as JSON; an error naming the first that failed (`describe`) when any did.
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
fn judged<A: Serialize>(
    rows: &[A],
    passed: impl Fn(&A) -> bool,
    describe: impl Fn(&A) -> String,
) -> Result<serde_json::Value, CliError> {
    let json = serde_json::to_value(rows).map_err(|e| CliError::runtime(e.to_string()))?;
    match rows.iter().find(|a| !passed(a)) {
        Some(bad) => Err(CliError::runtime(format!(
            "the GPU disagrees with the CPU: {}; all: {json}",
            describe(bad)
        ))),
        None => Ok(json),
    }
}

/// The workload on GPU 0: the iteration, the parameter count, the GPU's description.
#[cfg(feature = "cuda")]
pub(super) fn cuda_runner(
    workload: Workload,
    grad: GradientMethod,
    seed: u64,
    check_cpu: bool,
) -> Result<(Iterate, usize, String, Agreements), CliError> {
    use odeflow::cuda::{pendulum_agreement, ClassifierCase};
    use odeflow::cuda::{Device, PendulumCuda};
    use odeflow::solve::SolveOptions;
    let gpu_err = |e: odeflow::cuda::CudaError| CliError::runtime(e.to_string());
    let dev = Device::open(0).map_err(gpu_err)?;
    let gpu = format!("{} ({})", dev.name(), dev.arch());
    if workload != Workload::PendulumMlp128Euler2 {
        return conv_runner(&dev, workload, grad, seed, check_cpu, gpu);
    }
    let mut agreements = Agreements::default();
    if check_cpu {
        let problem = odeflow::models::PendulumProblem::new(seed);
        let cases = [
            ("euler", SolveOptions::steps(0.0, problem.t1, problem.steps)),
            (
                "dopri5",
                SolveOptions::adaptive(0.0, problem.t1, 1e-6, 1e-8),
            ),
        ];
        let mut rows = Vec::new();
        for (method, opts) in cases {
            rows.push(
                pendulum_agreement(&dev, method, grad.clone(), &opts, seed).map_err(gpu_err)?,
            );
        }
        agreements.agreement = Some(judged(
            &rows,
            |a| a.passed,
            |a| {
                format!(
                    "{} solve, {} gradients: state error {:.2e} (CPU f32 {:.2e}), gradient \
                     error {:.2e} (CPU f32 {:.2e})",
                    a.method,
                    a.grad,
                    a.y1_rel_gpu,
                    a.y1_rel_cpu_f32,
                    a.grad_rel_gpu,
                    a.grad_rel_cpu_f32
                )
            },
        )?);
        let cases = [
            ClassifierCase::mlp("euler", 4, false),
            ClassifierCase::mlp("euler", 4, true),
            ClassifierCase::mlp("rk4", 2, true),
        ]
        .map(|c| c.with_grad(grad.clone()));
        agreements.classifier = Some(classifier_rows(&dev, &cases, seed)?);
        // The captured regression iteration the benchmark times.
        let r = odeflow::cuda::regression_agreement(&dev, &grad, seed).map_err(gpu_err)?;
        agreements.regression = Some(judged(
            std::slice::from_ref(&r),
            |a| a.passed,
            |a| format!("captured regression iteration: {a:?}"),
        )?);
    }
    let mut runner = PendulumCuda::new(&dev, grad, seed).map_err(gpu_err)?;
    let params = runner.num_params();
    let iterate = move |_| {
        runner
            .iteration()
            .map_err(|e| CliError::runtime(e.to_string()))
    };
    Ok((Box::new(iterate), params, gpu, agreements))
}

/// One training iteration per case through the device plan, judged against the CPU.
#[cfg(feature = "cuda")]
fn classifier_rows(
    dev: &std::sync::Arc<odeflow::cuda::Device>,
    cases: &[odeflow::cuda::ClassifierCase],
    seed: u64,
) -> Result<serde_json::Value, CliError> {
    let mut rows = Vec::new();
    for case in cases {
        rows.push(
            odeflow::cuda::classifier_agreement(dev, case, seed)
                .map_err(|e| CliError::runtime(e.to_string()))?,
        );
    }
    judged(
        &rows,
        |a| a.passed,
        |a| {
            format!(
                "classifier iteration ({:?} on {:?} + {} ANODE, {} in {} steps, {} gradient, \
                 captured: {}): logits {:.2e} (CPU f32 {:.2e}), gradient {:.2e} (CPU f32 {:.2e}), \
                 parameters after Adam {:.2e} (CPU f32 {:.2e})",
                a.case.field,
                a.case.sample,
                a.case.augment,
                a.case.method,
                a.case.steps,
                a.case.grad.name(),
                a.case.captured,
                a.logits_rel_gpu,
                a.logits_rel_cpu_f32,
                a.grad_rel_gpu,
                a.grad_rel_cpu_f32,
                a.params_rel_gpu,
                a.params_rel_cpu_f32
            )
        },
    )
}

/// A classifier workload (convolutional field) on the device, with `--check-cpu`'s checks
/// (module doc).
#[cfg(feature = "cuda")]
fn conv_runner(
    dev: &std::sync::Arc<odeflow::cuda::Device>,
    workload: Workload,
    grad: GradientMethod,
    seed: u64,
    check_cpu: bool,
    gpu: String,
) -> Result<(Iterate, usize, String, Agreements), CliError> {
    use odeflow::cuda::ConvModel;
    use odeflow::cuda::{
        conv_agreement, res_block_agreement, tiny_resnet_agreement, ClassifierCase, ClassifierCuda,
    };
    use odeflow::models::FieldSpec;
    use odeflow::solve::SolveOptions;
    let gpu_err = |e: odeflow::cuda::CudaError| CliError::runtime(e.to_string());
    let mut agreements = Agreements::default();
    if check_cpu {
        // The field's own shapes for the solve; small images for the classifier iteration.
        let (field, model, small) = match (workload.field(), workload) {
            (Some(f @ FieldSpec::SimpleOdenet { channels }), _) => {
                (f, ConvModel::SimpleOdenet { channels, d: 2 }, vec![1, 2])
            }
            (Some(f @ FieldSpec::Odenet { channels }), Workload::MnistOdenet64Euler8) => (
                f,
                ConvModel::Odenet {
                    c_in: 1,
                    h: 28,
                    w: 28,
                    channels,
                },
                vec![1, 8, 8],
            ),
            (Some(f @ FieldSpec::Odenet { channels }), _) => (
                f,
                ConvModel::Odenet {
                    c_in: 3,
                    h: 32,
                    w: 32,
                    channels,
                },
                vec![3, 8, 8],
            ),
            (None | Some(FieldSpec::Mlp { .. }), _) => {
                return Err(CliError::input(format!(
                    "{}: no convolutional field",
                    workload.name()
                )))
            }
        };
        let (method, steps) = workload.solver();
        let opts = SolveOptions::steps(0.0, 1.0, steps);
        let a =
            conv_agreement(dev, model, 4, method, grad.clone(), &opts, seed).map_err(gpu_err)?;
        agreements.agreement = Some(judged(
            std::slice::from_ref(&a),
            |a| a.passed,
            |a| format!("the field of {}: {a:?}", workload.name()),
        )?);
        let anode = usize::from(matches!(field, FieldSpec::Odenet { .. }));
        let case = |method, steps, captured, augment| {
            ClassifierCase::conv(
                field.clone(),
                small.clone(),
                augment,
                method,
                steps,
                captured,
            )
            .with_grad(grad.clone())
        };
        let cases = [
            case("euler", 3, false, 0),
            case("euler", 3, true, 0),
            case("rk4", 2, true, anode),
        ];
        agreements.classifier = Some(classifier_rows(dev, &cases, seed)?);
        if workload == Workload::CifarOdenet128Euler8 {
            let rows = res_block_agreement(dev, (16, 8, 8), 4, seed).map_err(gpu_err)?;
            agreements.res_block = Some(judged(
                &rows,
                |a| a.passed,
                |a| format!("TinyResNet residual block: {a:?}"),
            )?);
            let rows = tiny_resnet_agreement(dev, 6, seed).map_err(gpu_err)?;
            agreements.tiny_resnet = Some(judged(
                &rows,
                |a| a.passed,
                |a| format!("TinyResNet: {a:?}"),
            )?);
        }
    }
    let mut runner = ClassifierCuda::new(dev, workload, grad, seed).map_err(gpu_err)?;
    let params = runner.num_params();
    let iterate = move |it| {
        runner
            .iteration(it)
            .map_err(|e| CliError::runtime(e.to_string()))
    };
    Ok((Box::new(iterate), params, gpu, agreements))
}

/// `--device cuda` in a binary built without the feature: one error line.
#[cfg(not(feature = "cuda"))]
pub(super) fn cuda_runner(
    _: Workload,
    _: GradientMethod,
    _: u64,
    _: bool,
) -> Result<(Iterate, usize, String, Agreements), CliError> {
    Err(crate::device::not_built())
}
