//! TinyResNet's captured training iteration (`odeflow::cuda::plan_tiny_resnet`; Sander et
//! al., NeurIPS 2022) executed with reference arithmetic — the stem's and the blocks' plans
//! by the shared executors, the head, the pooling and the update by the kernels' formulas —
//! against the CPU `TinyResNet`'s `loss_and_grad` and `train::Optimizer` (SGD with momentum,
//! as the experiments train; and Adam), over two replays: loss, accuracy, `∂L/∂θ`, the
//! parameters before and after the update, and the running statistics of the stem and of
//! every body layer. ResNet (Euler) and HeunNet (Heun), backprop and reversible, tied and
//! untied.

use odeflow::cuda::res_block_plan::ResBuf;
use odeflow::cuda::train_plan::*;
use odeflow::cuda::{plan_tiny_resnet, tiny_resnet_case, tiny_resnet_cases, tiny_resnet_inputs};
use odeflow::field::Parameterized;
use odeflow::grad::GradientMethod;
use odeflow::models::depth_field::Tying;
use odeflow::models::resnet::Scheme;
use odeflow::models::tiny_resnet::{ImageBatch, TinyResNet};
use odeflow::nn::Layer;
use odeflow::state::Batch;
use odeflow::train::{Optimizer, OptimizerConfig, Trainable};

use crate::train::{close, inputs_read_only, Exec};

/// `[mean, var]` of the stem's batch norm and every body layer's `[mean₁, var₁, mean₂, var₂]`.
fn stats(m: &TinyResNet<f64>) -> (Vec<f64>, Vec<f64>) {
    let bn = m
        .stem()
        .sequential()
        .layers()
        .iter()
        .find_map(|l| match l {
            Layer::BatchNorm(b) => Some(b),
            _ => None,
        })
        .expect("the stem has a batch norm");
    let mut stem = bn.running_mean().to_vec();
    stem.extend_from_slice(bn.running_var());
    let f = m.body().field();
    let body = (0..f.depth())
        .flat_map(|n| f.running_stats(n).to_vec())
        .collect();
    (stem, body)
}

fn check(case: (Scheme, GradientMethod, Tying), opt_cfg: &OptimizerConfig) {
    let what = format!("{case:?}");
    let (shape, cfg) = tiny_resnet_case(case, 3);
    let rows = 5;
    let inputs = tiny_resnet_inputs(shape, &cfg, rows).expect("inputs");
    let mut cpu = TinyResNet::<f64>::new(shape, cfg).expect("model");
    let p0: Vec<f64> = inputs.params.iter().map(|&v| f64::from(v)).collect();
    cpu.write_params(&p0);
    let plan = plan_tiny_resnet(&cpu, rows).expect("planned");
    inputs_read_only(&plan);
    let n = plan.num_params();
    assert_eq!(n, cpu.num_params(), "{what}: [stem | body | head]");
    let mut opt = Optimizer::<f64>::new(opt_cfg.clone(), n).expect("optimizer");
    let mut ex = Exec::at_start_with(&plan, &p0, opt_cfg);
    let (stem0, body0) = stats(&cpu);
    ex.bufs.insert(Buf::StemStats, stem0);
    ex.bufs.insert(Buf::Stats, body0);
    ex.bufs
        .insert(Buf::Discard, vec![0.0; plan.len_of(Buf::Discard)]);
    let mut params = p0.clone();
    for it in 0..2u64 {
        let x: Vec<f64> = inputs
            .x
            .as_slice()
            .iter()
            .map(|&v| f64::from(v) * (1.0 - 0.3 * it as f64))
            .collect();
        let mut labels = inputs.labels.clone();
        labels.rotate_left(it as usize);
        let lr = 0.1 / (1.0 + it as f64);
        ex.bufs.insert(Buf::Input, x.clone());
        ex.bufs
            .insert(Buf::Labels, labels.iter().map(|&l| l as f64).collect());
        ex.bufs.insert(Buf::Lr, vec![lr]);
        ex.run();
        let batch = ImageBatch {
            inputs: Batch::from_vec(rows, shape.len(), x).expect("sized"),
            labels,
        };
        let mut grad = vec![0.0; n];
        let m = cpu.loss_and_grad(&batch, &mut grad, it).expect("CPU step");
        let at = format!("{what}, iteration {it}");
        // f64 arithmetic with the kernels' f32 coefficients: the stage weights `h bᵢ`, and
        // the update's settings (Adam's ε, SGD's μ and decay).
        let (tight, tol) = (1e-6, 1e-6);
        close(ex.get(Buf::Loss), &[m.loss], tight, &format!("loss, {at}"));
        let acc = ex.get(Buf::Correct)[0] / rows as f64;
        assert_eq!(Some(acc), m.accuracy, "accuracy, {at}");
        close(
            ex.get(Buf::GradParams),
            &grad,
            tight,
            &format!("∂L/∂θ, {at}"),
        );
        close(
            ex.get(Buf::ParamsBefore),
            &params,
            tight,
            &format!("θ before, {at}"),
        );
        let (stem, body) = stats(&cpu);
        close(
            ex.get(Buf::StemStats),
            &stem,
            tight,
            &format!("stem stats, {at}"),
        );
        close(
            ex.get(Buf::Stats),
            &body,
            tight,
            &format!("body stats, {at}"),
        );
        opt.step(&mut params, &grad, lr);
        cpu.write_params(&params);
        close(ex.get(Buf::Params), &params, tol, &format!("θ after, {at}"));
        close(
            ex.get(Buf::AdamM),
            &opt.state().m,
            tol,
            &format!("momentum, {at}"),
        );
        // Not trivial: every part of the model has a gradient, and the update moved it.
        let (ns, nb) = (cpu.stem().num_params(), cpu.body().field().num_params());
        for (part, g) in [
            ("stem", &grad[..ns]),
            ("body", &grad[ns..ns + nb]),
            ("head", &grad[ns + nb..]),
        ] {
            assert!(g.iter().any(|v| v.abs() > 1e-6), "{part} gradient, {at}");
        }
    }
    assert!(
        params.iter().zip(&p0).any(|(a, b)| a != b),
        "{what}: the updates moved the parameters"
    );
}

#[test]
fn tiny_resnet_iteration_matches_the_cpu_model_and_sgd() {
    let mut cases = tiny_resnet_cases();
    cases.push((Scheme::Heun, GradientMethod::Reversible, Tying::Tied));
    let sgd = OptimizerConfig::sgd(0.1, 0.9, 5e-4);
    for case in cases {
        check(case, &sgd);
    }
}

#[test]
fn tiny_resnet_iteration_with_adam_and_nesterov() {
    let case = (Scheme::Heun, GradientMethod::Backprop, Tying::Untied);
    check(case.clone(), &OptimizerConfig::adam(1e-2));
    let nesterov = OptimizerConfig::Sgd {
        lr: 0.05,
        momentum: 0.8,
        weight_decay: 1e-3,
        nesterov: true,
    };
    check(case, &nesterov);
}

/// Which layers' evaluations bind their running statistics, in launch order.
fn stats_bindings(plan: &TrainPlan) -> Vec<usize> {
    let mut out = Vec::new();
    for l in &plan.launches {
        if let Launch::Res {
            op,
            piece: Piece::Layer {
                layer, stats: true, ..
            },
        } = l
        {
            if op.buffers().contains(&ResBuf::RunningMean(1)) && !out.ends_with(&[*layer]) {
                out.push(*layer);
            }
        }
    }
    out
}

#[test]
fn tiny_resnet_plan_shape() {
    for case in [
        (Scheme::Euler, GradientMethod::Backprop, Tying::Untied),
        (Scheme::Heun, GradientMethod::Reversible, Tying::Tied),
    ] {
        let (shape, mut cfg) = tiny_resnet_case(case.clone(), 3);
        for depth in [3, 6] {
            cfg.depth = depth;
            let m = TinyResNet::<f64>::new(shape, cfg.clone()).expect("model");
            let plan = plan_tiny_resnet(&m, 4).expect("planned");
            // Each layer moves its statistics once, in depth order, in the forward solve.
            assert_eq!(
                stats_bindings(&plan),
                (0..depth).collect::<Vec<_>>(),
                "{case:?}"
            );
            let bufs = plan.buffers();
            let tapes = bufs
                .iter()
                .filter(|b| matches!(b, Buf::BodyTape(..)))
                .count();
            let states = bufs.iter().filter(|b| matches!(b, Buf::State(_))).count();
            let stages = if case.0 == Scheme::Heun { 2 } else { 1 };
            let taped = 8;
            match case.1 {
                GradientMethod::Backprop => {
                    assert_eq!(states, plan.num_steps() + 1);
                    assert_eq!(tapes, plan.num_steps() * stages * taped);
                }
                _ => {
                    // Memory-free: two states and one step's tapes, whatever the depth.
                    assert_eq!(states, 2);
                    assert_eq!(tapes, stages * taped);
                }
            }
            // One launch of the update at the end; the pool around the head.
            assert!(matches!(plan.launches.last(), Some(Launch::Adam { .. })));
            let pools: Vec<bool> = plan
                .launches
                .iter()
                .filter_map(|l| match l {
                    Launch::Pool { forward } => Some(*forward),
                    _ => None,
                })
                .collect();
            assert_eq!(pools, [true, false]);
        }
    }
}

#[test]
fn the_adjoint_and_empty_batches_are_refused() {
    let (shape, cfg) =
        tiny_resnet_case((Scheme::Euler, GradientMethod::Backprop, Tying::Untied), 3);
    let m = TinyResNet::<f64>::new(shape, cfg.clone()).expect("model");
    let e = plan_tiny_resnet(&m, 0).expect_err("no rows").to_string();
    assert!(e.contains("TinyResNet batch") && e.contains('0'), "{e}");
    let adj = odeflow::models::tiny_resnet::TinyResNetConfig {
        grad: GradientMethod::from_name("adjoint").expect("adjoint"),
        ..cfg
    };
    let m = TinyResNet::<f64>::new(shape, adj).expect("model");
    let e = plan_tiny_resnet(&m, 4).expect_err("adjoint").to_string();
    assert!(e.contains("adjoint"), "{e}");
}
