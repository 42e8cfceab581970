//! The captured training iteration of an MSE regression (no head: the final state against
//! targets, the `pendulum-mlp128-euler2` workload's loss) executed with reference arithmetic
//! against the CPU `FlowRegressor` and Adam, with each gradient method.

use odeflow::cuda::plan_regression;
use odeflow::cuda::train_plan::*;
use odeflow::grad::{FieldGradSolver, GradientMethod};
use odeflow::models::regressor::FlowRegressor;
use odeflow::nn::zoo::{mlp_field, MlpOptions};
use odeflow::nn::{Activation, Init};
use odeflow::solve::{Method, SolveOptions};
use odeflow::state::Batch;
use odeflow::train::{Optimizer, OptimizerConfig, Trainable};

use crate::train::{close, data, inputs_read_only, Exec};

fn check(method: &str, grad: &str, dims: &[usize], steps: usize) {
    let (rows, d) = (7, dims[0]);
    let mopts = MlpOptions {
        activation: Activation::Tanh,
        init: Init::PyTorchDefault,
        time_input: false,
    };
    let m = Method::from_name(method).expect("method");
    let g = GradientMethod::from_name(grad).expect("gradient");
    let opts = SolveOptions::steps(0.0, 0.5, steps);
    let field = mlp_field::<f64>(dims, &mopts, 11).expect("field");
    let solver = FieldGradSolver::new(&m, g.clone(), opts.clone()).expect("solver");
    let mut cpu = FlowRegressor::new(field, solver);
    let plan = plan_regression((dims, 1), rows, (&m, &opts), &g).expect("planned");
    inputs_read_only(&plan);
    let n = plan.num_params();
    assert_eq!(n, cpu.num_params());
    assert!(!plan.buffers().contains(&Buf::Labels));
    let mut params = vec![0.0; n];
    cpu.read_params(&mut params);
    let mut opt = Optimizer::<f64>::new(OptimizerConfig::adam(1e-2), n).expect("adam");
    let mut ex = Exec::at_start(&plan, &params);
    for it in 0..2u64 {
        let x = Batch::from_vec(rows, d, data(rows * d, it as usize)).expect("sized");
        let y = Batch::from_vec(rows, d, data(rows * d, 7 + it as usize)).expect("sized");
        let lr = 1e-2 / (1.0 + it as f64);
        ex.bufs.insert(Buf::Input, x.as_slice().to_vec());
        ex.bufs.insert(Buf::Target, y.as_slice().to_vec());
        ex.bufs.insert(Buf::Lr, vec![lr]);
        ex.run();
        let mut grad = vec![0.0; n];
        let metrics = cpu.loss_and_grad(&(x, y), &mut grad, it).expect("CPU step");
        let what = format!(
            "{method} {grad:?} regression, iteration {it}",
            grad = g.name()
        );
        close(
            ex.get(Buf::Loss),
            &[metrics.loss],
            1e-6,
            &format!("loss, {what}"),
        );
        close(
            ex.get(Buf::GradParams),
            &grad,
            1e-6,
            &format!("∂L/∂θ, {what}"),
        );
        opt.step(&mut params, &grad, lr);
        close(
            ex.get(Buf::Params),
            &params,
            1e-6,
            &format!("θ after Adam, {what}"),
        );
        cpu.write_params(&params);
    }
}

#[test]
fn regression_iteration_matches_the_cpu_regressor_with_each_gradient() {
    for grad in ["backprop", "reversible", "adjoint"] {
        check("euler", grad, &[2, 9, 9, 2], 2);
        check("heun", grad, &[3, 5, 3], 3);
    }
}

/// The pendulum workload's plan: the field's parameters only, one MSE launch, no head, no
/// labels, the targets copied in like the inputs.
#[test]
fn the_pendulum_plan_has_no_head() {
    let m = Method::from_name("euler").expect("euler");
    let opts = SolveOptions::steps(0.0, 0.04, 2);
    let grad = GradientMethod::Backprop;
    let plan =
        plan_regression((&[2, 128, 128, 2], 1), 10_000, (&m, &opts), &grad).expect("planned");
    assert_eq!(
        plan.num_params(),
        2 * 128 + 128 + 128 * 128 + 128 + 128 * 2 + 2
    );
    let count = |f: &dyn Fn(&Launch) -> bool| plan.launches.iter().filter(|l| f(l)).count();
    assert_eq!(count(&|l| matches!(l, Launch::Mse { .. })), 1);
    assert_eq!(count(&|l| matches!(l, Launch::SoftmaxCe { .. })), 0);
    let bufs = plan.buffers();
    assert!(bufs.contains(&Buf::Target) && !bufs.contains(&Buf::Logits));
}
