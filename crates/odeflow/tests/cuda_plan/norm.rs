//! The launch plans of the device batch normalisation and average pooling
//! (`odeflow::cuda::norm_plan`): which kernels run in which order with which grids, and the
//! shape checks (one error naming the value). Their arithmetic, executed in these orders with
//! the kernels compiled as host C++, is tested against the CPU layers in
//! `tests/cuda_kernels/norm.rs`.

use odeflow::cuda::norm_plan::*;
use odeflow::cuda::plan::{grid_1d, MAX_BLOCKS};
use odeflow::cuda::CudaError;

fn shape(n: usize, c: usize, h: usize, w: usize) -> ImageBatch {
    ImageBatch::new(n, c, h, w, Layout::Nchw).expect("valid shape")
}

#[test]
fn reduction_blocks_are_powers_of_two_between_a_warp_and_the_kernels_buffer() {
    for (m, want) in [
        (1, 32),
        (32, 32),
        (33, 64),
        (100, 128),
        (256, 256),
        (400, 256),
    ] {
        assert_eq!(reduction_block(m), want, "M = {m}");
    }
    for m in 1..2000 {
        let b = reduction_block(m);
        assert!(b.is_power_of_two() && (NORM_MIN_BLOCK..=NORM_MAX_BLOCK).contains(&b));
    }
    // ODEFLOW_NORM_MAX_BLOCK in norm.cu sizes the shared buffers.
    let src = include_str!("../../src/cuda/kernels/norm.cu");
    assert!(src.contains(&format!("#define ODEFLOW_NORM_MAX_BLOCK {NORM_MAX_BLOCK}")));
}

#[test]
fn forward_plans_compute_the_statistics_then_normalise() {
    // TinyResNet's body: 128 samples of 16×10×10.
    let s = shape(128, 16, 10, 10);
    let train = bn_forward_plan(&s, true);
    assert_eq!(
        train,
        vec![
            NormLaunch {
                op: NormOp::Stats,
                grid: 16,
                block: 256
            },
            NormLaunch {
                op: NormOp::Normalize,
                grid: grid_1d(s.len()).0,
                block: grid_1d(s.len()).1
            },
        ]
    );
    let eval = bn_forward_plan(&s, false);
    assert_eq!(eval[0].op, NormOp::EvalStats);
    assert_eq!((eval[0].grid, eval[0].block), grid_1d(16));
    assert_eq!(eval[1], train[1]);
    // One value per channel: a one-warp tree; more channels than blocks: the blocks stride.
    let p = bn_forward_plan(&shape(1, 3, 1, 1), true);
    assert_eq!((p[0].grid, p[0].block), (3, 32));
    let wide = shape(2, 5000, 1, 1);
    assert_eq!(bn_forward_plan(&wide, true)[0].grid, MAX_BLOCKS);
}

#[test]
fn backward_plans_take_the_sums_only_when_something_reads_them() {
    let s = shape(4, 16, 10, 10);
    let ops = |train, affine| -> Vec<NormOp> {
        bn_backward_plan(&s, train, affine)
            .iter()
            .map(|l| l.op)
            .collect()
    };
    let sums = |grad_params| NormOp::BackwardSums { grad_params };
    let dx = |train| NormOp::BackwardDx { train };
    assert_eq!(ops(true, true), vec![sums(true), dx(true)]);
    assert_eq!(ops(true, false), vec![sums(false), dx(true)]);
    assert_eq!(ops(false, true), vec![sums(true), dx(false)]);
    assert_eq!(ops(false, false), vec![dx(false)]);
    let p = bn_backward_plan(&s, true, true);
    assert_eq!((p[0].grid, p[0].block), (16, 256));
    assert_eq!((p[1].grid, p[1].block), grid_1d(s.len()));
}

fn invalid(e: CudaError) -> (String, String) {
    let msg = e.to_string();
    assert!(!msg.contains('\n'), "one line: {msg}");
    match e {
        CudaError::Invalid { name, value, .. } => (name.to_string(), value),
        other => panic!("expected an invalid-value error, got {other:?}"),
    }
}

#[test]
fn bad_shapes_are_one_error_naming_the_value() {
    let e = ImageBatch::new(0, 3, 4, 4, Layout::Nchw).expect_err("empty batch");
    assert_eq!(invalid(e), ("batch size".into(), "0".into()));
    let e = ImageBatch::new(2, 0, 4, 4, Layout::Nhwc).expect_err("no channels");
    assert_eq!(invalid(e), ("channels".into(), "0".into()));
    let e = ImageBatch::new(2, 3, 0, 4, Layout::Nchw).expect_err("no rows");
    assert_eq!(invalid(e).0, "image height");
    let big = i32::MAX as usize + 1;
    let e = ImageBatch::new(1, big, 1, 1, Layout::Nchw).expect_err("too many channels");
    assert_eq!(invalid(e), ("channels".into(), big.to_string()));
    let e =
        ImageBatch::new(1 << 20, 1 << 20, 1 << 20, 1 << 20, Layout::Nchw).expect_err("overflow");
    assert_eq!(invalid(e).0, "image batch");

    let s = shape(2, 3, 4, 5);
    assert_eq!(s.to_string(), "2×3×4×5 (NCHW)");
    assert_eq!((s.positions(), s.per_channel(), s.len()), (20, 40, 120));
    s.check_len("input", 120).expect("right length");
    let e = s.check_len("batch-norm input", 119).expect_err("short");
    assert!(
        e.to_string()
            .contains("2×3×4×5 (NCHW) batch has 120 values"),
        "{e}"
    );
    assert_eq!(invalid(e), ("batch-norm input".into(), "length 119".into()));
}

#[test]
fn pool_shapes_floor_and_check_the_window() {
    let s = shape(8, 16, 10, 10);
    let p = PoolShape::new(s, 4, 4).expect("fits");
    assert_eq!(p.output(), shape(8, 16, 2, 2));
    assert_eq!(p.grids(), (grid_1d(8 * 16 * 4), grid_1d(s.len())));
    let nhwc = ImageBatch::new(2, 4, 1, 9, Layout::Nhwc).expect("sequence");
    let q = PoolShape::new(nhwc, 1, 4).expect("fits");
    assert_eq!((q.output().height, q.output().width), (1, 2));
    assert_eq!(q.output().layout, Layout::Nhwc);
    let e = PoolShape::new(s, 11, 2).expect_err("too tall");
    assert_eq!(invalid(e), ("pooling window".into(), "11×2".into()));
    let e = PoolShape::new(s, 2, 0).expect_err("empty window");
    assert_eq!(invalid(e), ("pooling window width".into(), "0".into()));
}
