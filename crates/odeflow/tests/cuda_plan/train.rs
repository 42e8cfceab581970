//! The launch plan of one classifier training iteration (`odeflow::cuda::train_plan`)
//! executed with reference arithmetic (f64, cuBLAS's column-major GEMM, the kernels'
//! formulas) against the CPU classifier's `loss_and_grad` and `train::Optimizer`: logits,
//! loss, accuracy, parameter gradient and the updated parameters, over two replays of the
//! same plan (as a captured graph would replay it) with new batches and learning rates.

use odeflow::cuda::plan::act_code;
use odeflow::cuda::train_plan::*;
use odeflow::grad::GradientMethod;
use odeflow::models::{ClassBatch, ClassifierParts, OdeClassifier};
use odeflow::nn::zoo::{linear_head, mlp_field, MlpOptions};
use odeflow::nn::{Activation, Init, Shape};
use odeflow::solve::{fixed_grid, Method, SolveOptions};
use odeflow::state::Batch;
use odeflow::train::{Optimizer, OptimizerConfig, Trainable};

pub(crate) use crate::train_exec::Exec;

pub(crate) fn data(n: usize, seed: usize) -> Vec<f64> {
    (0..n)
        .map(|i| (((i * 7919 + seed * 104_729) % 2003) as f64 / 1001.0 - 1.0) * 1.3)
        .collect()
}

pub(crate) fn close(got: &[f64], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol * (1.0 + w.abs()),
            "{what}[{i}]: {g} vs {w}"
        );
    }
}

/// Two iterations of the plan differentiated by `grad` against the CPU classifier with the
/// same gradient method, and its optimizer.
pub(crate) fn check(
    method: &str,
    grad: &str,
    dims: &[usize],
    activation: Activation,
    input: usize,
    opts: SolveOptions,
) {
    let grad = GradientMethod::from_name(grad).expect("gradient method");
    let (rows, classes) = (6, 4);
    let d = dims[0];
    let mopts = MlpOptions {
        activation,
        init: Init::PyTorchDefault,
        time_input: false,
    };
    let field = mlp_field::<f64>(dims, &mopts, 3).expect("field");
    let head = linear_head::<f64>(Shape::Flat(d), classes, 4).expect("head");
    let m = Method::from_name(method).expect("method");
    let grid = fixed_grid(&opts).expect("fixed grid");
    let parts = ClassifierParts {
        encoder: None,
        field,
        field_dim: d,
        head,
        augment: d - input,
    };
    let mut cpu =
        OdeClassifier::new(parts, m.clone(), grad.clone(), opts.clone()).expect("classifier");
    let shape = ClassifierShape {
        field: FieldShape::Mlp {
            dims: dims.to_vec(),
            act: act_code(Some(activation)).expect("device activation"),
        },
        input,
        classes,
        rows,
        loss: PlanLoss::CrossEntropy,
    };
    let gradient = PlanGradient::for_method(&grad, &opts).expect("fixed grid");
    let plan = TrainPlan::new(shape, m.tableau().expect("explicit"), &grid, gradient);
    replay(
        &mut cpu,
        &plan,
        &m,
        &opts,
        input,
        classes,
        method,
        &format!("{dims:?}, {}", grad.name()),
    );
}

/// Two iterations of `plan` against the CPU classifier `cpu` and the CPU's Adam, then a NaN.
#[allow(clippy::too_many_arguments)]
pub(crate) fn replay<F>(
    cpu: &mut OdeClassifier<f64, F>,
    plan: &TrainPlan,
    m: &Method,
    opts: &SolveOptions,
    input: usize,
    classes: usize,
    method: &str,
    field: &str,
) where
    F: odeflow::field::VectorField<Batch<f64>, Grad = Vec<f64>>
        + odeflow::field::Parameterized<f64>,
{
    let rows = plan.shape.rows;
    let d = plan.shape.field.state_len();
    let n = plan.num_params();
    assert_eq!(n, cpu.num_params());
    let mut opt = Optimizer::<f64>::new(OptimizerConfig::adam(1e-2), n).expect("adam");
    let mut params = vec![0.0; n];
    cpu.read_params(&mut params);
    let mut ex = Exec::at_start(plan, &params);
    for it in 0..2u64 {
        let x = Batch::from_vec(rows, input, data(rows * input, it as usize)).expect("sized");
        let labels: Vec<usize> = (0..rows).map(|r| (r * 3 + it as usize) % classes).collect();
        let lr = 1e-2 / (1.0 + it as f64);
        ex.bufs.insert(Buf::Input, x.as_slice().to_vec());
        ex.bufs
            .insert(Buf::Labels, labels.iter().map(|&l| l as f64).collect());
        ex.bufs.insert(Buf::Lr, vec![lr]);
        ex.run();

        let (logits, _) = cpu.logits_with(&x, m, opts).expect("logits");
        let mut grad = vec![0.0; n];
        let batch = ClassBatch { x, labels };
        let metrics = cpu.loss_and_grad(&batch, &mut grad, it).expect("CPU step");
        let what = format!("{method} {field}, iteration {it}");
        // The plan's stage coefficients h·aᵢⱼ are the device's f32 (relative rounding ≤ 6e-8),
        // the rest is f64: a wrong buffer or order would be off by O(1), not 1e-6.
        let tol = 1e-6;
        close(
            ex.get(Buf::Logits),
            logits.as_slice(),
            tol,
            &format!("logits, {what}"),
        );
        close(
            ex.get(Buf::Loss),
            &[metrics.loss],
            tol,
            &format!("loss, {what}"),
        );
        let acc = ex.get(Buf::Correct)[0] / rows as f64;
        assert_eq!(Some(acc), metrics.accuracy, "accuracy, {what}");
        close(
            ex.get(Buf::GradParams),
            &grad,
            tol,
            &format!("∂L/∂θ, {what}"),
        );
        let first = ex.get(Buf::FirstNonFinite);
        assert!(
            first.iter().all(|&f| f == (rows * d) as f64),
            "finite: {first:?}"
        );
        opt.step(&mut params, &grad, lr);
        close(
            ex.get(Buf::Params),
            &params,
            tol,
            &format!("θ after Adam, {what}"),
        );
        cpu.write_params(&params);
    }
    assert_eq!(ex.get(Buf::AdamStep), &vec![2.0]);

    // A NaN in the input is reported at the step where it first appears (step 0).
    let mut x = data(rows * input, 5);
    x[input + 1] = f64::NAN;
    ex.bufs.insert(Buf::Input, x);
    ex.run();
    let first = ex.get(Buf::FirstNonFinite);
    assert!(first[0] < (rows * d) as f64, "{first:?}");
}

#[test]
fn train_plan_matches_the_cpu_classifier_iteration_euler_and_rk4() {
    let steps = |n| SolveOptions::steps(0.0, 1.0, n);
    check(
        "euler",
        "backprop",
        &[5, 16, 5],
        Activation::Tanh,
        5,
        steps(3),
    );
    // ANODE: two zero channels, ReLU, two hidden layers, four stages per step.
    check(
        "rk4",
        "backprop",
        &[6, 7, 8, 6],
        Activation::Relu,
        4,
        steps(2),
    );
    // dopri5's tableau on a fixed grid: seven stages, the FSAL stage never differentiated.
    check(
        "dopri5",
        "backprop",
        &[3, 9, 3],
        Activation::Tanh,
        3,
        steps(2),
    );
}

/// The plan of a small MLP classifier (`[4 → 8 → 8 → 4]`, tanh, three classes, five rows)
/// with `method` in `n` steps on `[0, 1]`, differentiated by `grad`.
pub(crate) fn small_plan(grad: &str, method: &str, n: usize) -> TrainPlan {
    let shape = ClassifierShape {
        field: FieldShape::Mlp {
            dims: vec![4, 8, 8, 4],
            act: 1,
        },
        input: 4,
        classes: 3,
        rows: 5,
        loss: PlanLoss::CrossEntropy,
    };
    let m = Method::from_name(method).expect("method");
    let opts = SolveOptions::steps(0.0, 1.0, n);
    let g = GradientMethod::from_name(grad).expect("gradient");
    let gradient = PlanGradient::for_method(&g, &opts).expect("fixed grid");
    let grid = fixed_grid(&opts).expect("grid");
    TrainPlan::new(shape, m.tableau().expect("explicit"), &grid, gradient)
}

#[test]
fn train_plan_is_graph_ready_inputs_read_only_and_fused() {
    let plan = small_plan("backprop", "rk4", 4);
    // Replayed unchanged: planning twice gives the same launches.
    assert_eq!(plan, small_plan("backprop", "rk4", 4));
    inputs_read_only(&plan);
    // Fused stage sums: per step three stage inputs and one update forward, four k̄ and one
    // λ update backward, one launch each (rk4's sums have at most four terms).
    let lincombs = plan
        .launches
        .iter()
        .filter(|l| matches!(l, Launch::Lincomb { .. }))
        .count();
    assert_eq!(lincombs, 4 * (3 + 1 + 4 + 1));
    // The step count ticks right before the one Adam launch, which is last; one loss launch.
    let tail = &plan.launches[plan.launches.len() - 2..];
    assert!(
        matches!(tail, [Launch::AdamTick, Launch::Adam { .. }]),
        "{tail:?}"
    );
    let ce = plan
        .launches
        .iter()
        .filter(|l| matches!(l, Launch::SoftmaxCe { .. }));
    assert_eq!(ce.count(), 1);
    // Every buffer has a size.
    for b in plan.buffers() {
        assert!(plan.len_of(b) > 0, "{b:?}");
    }
}

/// The copied-in buffers (and the parameters, outside Adam) are never written inside the
/// sequence, so that a captured graph replays on new batches.
pub(crate) fn inputs_read_only(plan: &TrainPlan) {
    use odeflow::cuda::conv_plan::ConvOp;
    for l in &plan.launches {
        let written: Vec<Buf> = match l {
            Launch::Zero(b) | Launch::Fill { buf: b, .. } => vec![*b],
            Launch::Pad { dst, .. } => vec![*dst],
            Launch::Lincomb { out, .. } => vec![*out],
            Launch::Gemm { c, .. } => vec![c.buf],
            Launch::BiasAct { y, .. } => vec![y.buf],
            Launch::ActGrad { g, .. } => vec![g.buf],
            Launch::FirstNonFinite { .. } => vec![Buf::FirstNonFinite],
            Launch::SoftmaxCe { .. } => vec![Buf::GradLogits, Buf::Loss, Buf::Correct],
            Launch::Mse { .. } => vec![Buf::Lambda, Buf::Loss],
            Launch::AdamTick => vec![Buf::AdamStep],
            Launch::Adam { .. } => vec![Buf::AdamM, Buf::AdamV],
            Launch::Conv { op, n, i } => {
                let out = match *op {
                    ConvOp::Gemm(g) => g.c,
                    ConvOp::SwapOuter { dst, .. } => dst,
                    ConvOp::Im2col { col, .. } => col,
                    ConvOp::Col2im { x, .. } => x,
                    ConvOp::BiasAct { y, .. } => y,
                    ConvOp::ActGrad { g, .. } => g,
                    ConvOp::ChannelPartialSums { partial, .. } => partial,
                    ConvOp::AddChannelSums { gb, .. } => gb,
                };
                vec![plan.conv_at(out, *n, *i).buf]
            }
            Launch::Res { op, piece } => {
                use odeflow::cuda::res_block_plan::ResOp;
                let out = match *op {
                    ResOp::Conv(ConvOp::Gemm(g)) => Some(g.c),
                    ResOp::Conv(ConvOp::SwapOuter { dst, .. }) => Some(dst),
                    ResOp::Conv(ConvOp::Im2col { col, .. }) => Some(col),
                    ResOp::Conv(ConvOp::Col2im { x, .. }) => Some(x),
                    ResOp::Conv(ConvOp::BiasAct { y, .. }) => Some(y),
                    ResOp::Conv(ConvOp::ActGrad { g, .. }) => Some(g),
                    ResOp::Conv(ConvOp::ChannelPartialSums { partial, .. }) => Some(partial),
                    ResOp::Conv(ConvOp::AddChannelSums { gb, .. }) => Some(gb),
                    ResOp::Norm(st) => st.out,
                };
                out.map(|o| plan.res_at(o, *piece).buf)
                    .into_iter()
                    .collect()
            }
            Launch::Pool { forward: true } => vec![Buf::Pooled],
            Launch::Pool { forward: false } => vec![Buf::Lambda],
        };
        for b in written {
            assert!(
                !matches!(
                    b,
                    Buf::Input
                        | Buf::Labels
                        | Buf::Target
                        | Buf::Lr
                        | Buf::Ones
                        | Buf::Zeros
                        | Buf::Params
                ),
                "{l:?} writes {b:?}"
            );
        }
    }
}

/// The plan `odeflow train --device cuda` builds from a run's model (`plan_classifier`) is
/// the built-in classifier's iteration: parameters in the CPU model's order, ANODE zeros,
/// the training solver's grid and Adam's settings.
#[test]
fn the_plan_of_a_gpu_run_is_the_built_in_classifiers_iteration() {
    use odeflow::cuda::{plan_classifier, ClassifierSetup};
    use odeflow::models::{ClassifierSpec, FieldSpec};
    let field = FieldSpec::Mlp {
        hidden: vec![12, 9],
        activation: "tanh".into(),
    };
    let spec = ClassifierSpec {
        field: field.clone(),
        augment: 2,
        threads: 1,
    };
    let m = Method::from_name("midpoint").expect("method");
    let opts = SolveOptions::steps(0.0, 1.0, 3);
    let (input, classes, rows) = (4, 3, 5);
    let mut cpu = spec
        .build::<f64>(
            &[input],
            classes,
            m.clone(),
            GradientMethod::Backprop,
            opts.clone(),
            9,
        )
        .expect("model");
    let adam = OptimizerConfig::adam(1e-2);
    let setup = ClassifierSetup {
        field: &field,
        input,
        state: Shape::Flat(6),
        classes,
        rows,
        method: &m,
        opts: &opts,
        grad: GradientMethod::Backprop,
        optimizer: &adam,
    };
    let (plan, hyper) = plan_classifier(&setup).expect("planned");
    assert_eq!(plan.num_params(), cpu.num_params());
    assert_eq!(
        plan.shape.field,
        FieldShape::Mlp {
            dims: vec![6, 12, 9, 6],
            act: 1
        }
    );
    assert_eq!((hyper.beta1, hyper.beta2), (0.9, 0.999));
    replay(
        &mut cpu,
        &plan,
        &m,
        &opts,
        input,
        classes,
        "midpoint",
        "mlp [6, 12, 9, 6]",
    );

    // What the device plan does not cover is refused by name.
    let refuse = |s: &ClassifierSetup<'_>, want: &str| {
        let e = plan_classifier(s).expect_err("refused").to_string();
        assert!(e.contains(want) && e.contains("not yet on cuda"), "{e}");
    };
    let silu = FieldSpec::Mlp {
        hidden: vec![4],
        activation: "silu".into(),
    };
    refuse(
        &ClassifierSetup {
            field: &silu,
            ..setup.clone()
        },
        "silu",
    );
    let implicit = Method::from_name("implicit-midpoint").expect("method");
    refuse(
        &ClassifierSetup {
            method: &implicit,
            ..setup.clone()
        },
        "implicit-midpoint",
    );
    let dopri = Method::from_name("dopri5").expect("method");
    let adaptive = SolveOptions::adaptive(0.0, 1.0, 1e-3, 1e-3);
    refuse(
        &ClassifierSetup {
            method: &dopri,
            opts: &adaptive,
            ..setup.clone()
        },
        "adaptive",
    );
    let sgd = OptimizerConfig::sgd(0.1, 0.9, 0.0);
    refuse(
        &ClassifierSetup {
            optimizer: &sgd,
            ..setup
        },
        "SGD",
    );
}
