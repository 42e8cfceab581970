//! The launch plan of TinyResNet's stem (`odeflow::cuda::stem_plan`: conv 5×5/3 → batch
//! norm → ReLU) executed in f64 by the residual block's reference executor against the CPU
//! stem (`models::tiny_resnet::tiny_resnet_stem`) by the block test's comparison
//! (`res_block::compare_with_cpu`): output, running statistics, input gradient and
//! accumulated parameter gradient, in train and eval mode; the VJP starts from the tape alone.

use crate::res_block::compare_with_cpu;
use odeflow::cuda::conv_bn_plan::ConvBnLayout;
use odeflow::cuda::norm_plan::NormOp;
use odeflow::cuda::res_block_plan::{ResBuf, ResOp};
use odeflow::cuda::stem_plan::StemLayout;
use odeflow::models::tiny_resnet::tiny_resnet_stem;
use odeflow::nn::{Init, Shape};

fn check(c_in: usize, c: usize, (h, w): (usize, usize), rows: usize, train: bool) {
    let layout = StemLayout::new(c_in, c, h, w).expect("valid");
    let mut net = tiny_resnet_stem::<f64>(Shape::image(c_in, h, w), c).expect("stem");
    assert_eq!(layout.param_views(), net.param_views());
    assert_eq!(layout.num_params(), net.num_params());
    assert_eq!(
        (layout.input_len(), layout.output_len()),
        (net.in_shape().len(), net.out_shape().len())
    );
    let mut params = net.init_params(&Init::PyTorchDefault, 3);
    let gamma = layout.param_offset(ResBuf::Gamma(1)).expect("γ");
    for k in 0..c {
        params[gamma + k] = 0.8 + 0.1 * k as f64;
        params[gamma + c + k] = 0.1 * k as f64 - 0.2;
    }
    let mean: Vec<f64> = (0..c).map(|k| 0.05 * k as f64 - 0.1).collect();
    let var: Vec<f64> = (0..c).map(|k| 0.6 + 0.2 * (k % 3) as f64).collect();
    let (di, d) = (layout.input_len(), layout.output_len());
    let x: Vec<f64> = (0..rows * di)
        .map(|i| ((i * 29 % 13) as f64 - 6.0) * 0.2)
        .collect();
    let v: Vec<f64> = (0..rows * d)
        .map(|i| ((i * 11 % 7) as f64 - 3.0) * 0.3)
        .collect();
    let what = format!("{c_in} → {c}, {h}×{w}, {rows} rows, train {train}");
    compare_with_cpu(
        &layout,
        &mut net,
        (params, vec![(mean, var)]),
        (rows, train),
        (x, v),
        (&layout.taped(), &what),
    );
}

#[test]
fn stem_plan_matches_the_cpu_stem_in_train_and_eval_mode() {
    // CIFAR-like (three channels, 32×32 → 10×10), MNIST-like (one channel, 28×28 → 9×9),
    // and a small odd shape.
    for (c_in, c, hw, rows) in [(3, 4, (32, 32), 2), (1, 16, (28, 28), 2), (2, 3, (7, 5), 3)] {
        for train in [true, false] {
            check(c_in, c, hw, rows, train);
        }
    }
}

#[test]
fn stem_plan_shapes() {
    assert!(StemLayout::new(3, 16, 2, 2).is_err());
    assert!(StemLayout::new(0, 16, 32, 32).is_err());
    let l = StemLayout::new(3, 16, 32, 32).expect("valid");
    assert_eq!(l.out_hw(), (10, 10));
    assert_eq!(l.num_params(), 16 * 3 * 25 + 32);
    assert_eq!(
        StemLayout::new(1, 16, 28, 28).expect("valid").out_hw(),
        (9, 9)
    );
    // One batch norm: statistics in train mode only; its VJP always needs the sums (∂γ, ∂β).
    let norms = |ops: &[ResOp], op: fn(NormOp) -> bool| {
        ops.iter()
            .filter(|o| matches!(o, ResOp::Norm(s) if op(s.launch.op)))
            .count()
    };
    assert_eq!(norms(&l.forward(4, true), |o| o == NormOp::Stats), 1);
    assert_eq!(norms(&l.forward(4, false), |o| o == NormOp::Stats), 0);
    assert_eq!(norms(&l.forward(4, false), |o| o == NormOp::EvalStats), 1);
    assert_eq!(l.len_of(ResBuf::Z(2), 4), 0, "no second layer");
}

/// The executor (`CudaConvBn`) allocates the buffers its layout sizes (`len_of > 0`) besides
/// the parameters, the input, the cotangent and the sums: every buffer the stem's and the
/// block's passes name must be one of those, or the launch would find it unbound.
#[test]
fn every_buffer_the_stem_and_block_plans_name_is_sized() {
    use odeflow::cuda::res_block_plan::ResBlockLayout;
    fn check(l: &impl ConvBnLayout, rows: usize) {
        for train in [true, false] {
            for op in l
                .forward(rows, train)
                .iter()
                .chain(&l.backward(rows, train))
            {
                for b in op.buffers() {
                    let external = matches!(b, ResBuf::Input | ResBuf::Cotangent | ResBuf::Sums);
                    assert!(
                        external || l.param_offset(b).is_some() || l.len_of(b, rows) > 0,
                        "the {} plan names {b:?}, which its layout does not size",
                        l.name()
                    );
                }
            }
        }
    }
    check(&StemLayout::new(3, 8, 14, 14).expect("valid"), 3);
    check(&ResBlockLayout::new(8, 4, 4).expect("valid"), 3);
}
