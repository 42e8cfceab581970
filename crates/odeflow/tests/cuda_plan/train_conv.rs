//! The captured training iteration of a classifier with one of Ott et al.'s convolutional
//! fields (`simple_odenet`, `odenet`): the plan `odeflow train --device cuda` builds from a
//! run's model (`plan_classifier`), executed with reference arithmetic against the CPU
//! classifier's `loss_and_grad` and Adam, as `cuda_plan/train.rs` does for the MLP field.

use odeflow::cuda::train_plan::{Buf, FieldShape, Launch};
use odeflow::cuda::{plan_classifier, ClassifierSetup};
use odeflow::grad::GradientMethod;
use odeflow::models::{ClassifierSpec, FieldSpec};
use odeflow::nn::Shape;
use odeflow::solve::{Method, SolveOptions};
use odeflow::train::{OptimizerConfig, Trainable};

use crate::train::{inputs_read_only, replay};

/// Plans the built-in classifier `field` on samples of `sample` (with `augment` zero
/// channels), differentiated by `grad`, and replays two iterations and a NaN against the CPU.
pub(crate) fn check(
    field: FieldSpec,
    sample: &[usize],
    augment: usize,
    (method, grad): (&str, &str),
    steps: usize,
) {
    let grad = GradientMethod::from_name(grad).expect("gradient method");
    let spec = ClassifierSpec {
        field: field.clone(),
        augment,
        threads: 1,
    };
    let m = Method::from_name(method).expect("method");
    let opts = SolveOptions::steps(0.0, 1.0, steps);
    let (classes, rows) = (3, 4);
    let mut cpu = spec
        .build::<f64>(sample, classes, m.clone(), grad.clone(), opts.clone(), 5)
        .expect("model");
    let state = cpu.head.in_shape();
    let input: usize = sample.iter().product();
    let adam = OptimizerConfig::adam(1e-2);
    let setup = ClassifierSetup {
        field: &field,
        input,
        state,
        classes,
        rows,
        method: &m,
        opts: &opts,
        grad: grad.clone(),
        optimizer: &adam,
    };
    let (plan, _) = plan_classifier(&setup).expect("planned");
    assert!(matches!(plan.shape.field, FieldShape::Conv(_)));
    assert_eq!(plan.shape.field.state_len(), state.len());
    assert_eq!(plan.num_params(), cpu.num_params());
    inputs_read_only(&plan);
    for b in plan.buffers() {
        assert!(plan.len_of(b) > 0, "{b:?}");
    }
    let label = format!("{field:?} on {sample:?} + {augment}, {}", grad.name());
    replay(&mut cpu, &plan, &m, &opts, input, classes, method, &label);
}

#[test]
fn simple_odenet_iteration_matches_the_cpu_classifier() {
    check(
        FieldSpec::SimpleOdenet { channels: 4 },
        &[1, 7],
        0,
        ("euler", "backprop"),
        3,
    );
    check(
        FieldSpec::SimpleOdenet { channels: 3 },
        &[1, 5],
        0,
        ("rk4", "backprop"),
        2,
    );
}

#[test]
fn odenet_iteration_matches_the_cpu_classifier_with_anode_channels() {
    // One image channel: NCHW is the channel-major layout, no swaps.
    check(
        FieldSpec::Odenet { channels: 4 },
        &[1, 4, 5],
        0,
        ("euler", "backprop"),
        2,
    );
    // Two state channels (one ANODE channel): the state is swapped to channel-major and
    // back, and the swapped input is kept per stage as the tape.
    check(
        FieldSpec::Odenet { channels: 3 },
        &[1, 3, 4],
        1,
        ("midpoint", "backprop"),
        2,
    );
}

/// The MNIST workload's iteration is planned with its tape per stage and one patch
/// buffer: what the captured graph holds on the device.
#[test]
fn the_mnist_odenet_plan_keeps_two_activations_per_stage() {
    let field = FieldSpec::Odenet { channels: 64 };
    let m = Method::from_name("euler").expect("euler");
    let opts = SolveOptions::steps(0.0, 1.0, 8);
    let adam = OptimizerConfig::adam(1e-3);
    let setup = ClassifierSetup {
        field: &field,
        input: 784,
        state: Shape::image(1, 28, 28),
        classes: 10,
        rows: 128,
        method: &m,
        opts: &opts,
        grad: GradientMethod::Backprop,
        optimizer: &adam,
    };
    let (plan, _) = plan_classifier(&setup).expect("planned");
    let acts = plan
        .buffers()
        .into_iter()
        .filter(|b| matches!(b, Buf::Act(..)))
        .count();
    assert_eq!(acts, 8 * 2);
    assert_eq!(plan.len_of(Buf::Act(0, 0, 1)), 128 * 784 * 64);
    assert_eq!(plan.len_of(Buf::Col), 128 * 784 * 64 * 9);
    let convs = plan
        .launches
        .iter()
        .filter(|l| matches!(l, Launch::Conv { .. }))
        .count();
    // Per step: forward 7 (3 GEMMs, 3 bias/activations, im2col); VJP 16 (6 GEMMs, three
    // bias gradients of two launches, two ReLU', im2col, col2im).
    assert_eq!(convs, 8 * (7 + 16));
}
