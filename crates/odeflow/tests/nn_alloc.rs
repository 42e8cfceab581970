//! Steady state allocates no buffers: after a warm-up call, `eval`, `eval_taped` and `vjp`
//! of the zoo fields reuse their tapes and scratch (a counting global allocator watches).
//!
//! The exception is inside the `gemm` crate (0.19), which per mid-sized product allocates
//! a flag vector `vec![false; mc / MR]` (alignment 1) and, when it packs an operand, a
//! SIMD-aligned packing buffer (alignment ≥ 32). odeflow's buffers are `Vec<f32>`,
//! `Vec<f64>`, `Vec<Vec<_>>`…, with alignment 4 or 8: the test counts exactly those and
//! requires none, and requires the total number of allocations per step to stay constant.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use odeflow::nn::zoo;
use odeflow::nn::{BatchNormOptions, Init, NeuralField, SequentialBuilder, Shape};
use odeflow::{Batch, Parameterized, VectorField};

struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);
static OURS: AtomicUsize = AtomicUsize::new(0);

fn count(layout: Layout) {
    ALLOCS.fetch_add(1, Ordering::Relaxed);
    if (2..=16).contains(&layout.align()) {
        OURS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: forwards to the system allocator; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(layout);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Runs a warm-up step and three steady-state steps; asserts the steady state allocates no
/// buffer of ours and a constant number of `gemm`-internal blocks per step.
fn check_steady_state(name: &str, f: &mut NeuralField<f32>, rows: usize) {
    let cols = f.shape().len();
    let y = Batch::from_vec(
        rows,
        cols,
        (0..rows * cols).map(|i| (i as f32 * 0.37).sin()).collect(),
    )
    .unwrap();
    let (mut dy, mut gy) = (y.clone(), y.clone());
    let mut tape = f.new_tape();
    let mut gt = f.zero_grad();
    let mut step = |f: &mut NeuralField<f32>, k: usize| {
        // A parameter change between steps (an optimiser update) is part of the steady state.
        f.params_mut()[0] += 1e-3 * k as f32;
        f.eval(0.1, &y, &mut dy);
        f.eval_taped(0.2, &y, &mut dy, &mut tape);
        f.vjp(&tape, &y, &mut gy, &mut gt);
    };
    step(f, 0);
    let mut counts = [0; 3];
    let ours = OURS.load(Ordering::Relaxed);
    for (k, c) in counts.iter_mut().enumerate() {
        let before = ALLOCS.load(Ordering::Relaxed);
        step(f, k + 1);
        *c = ALLOCS.load(Ordering::Relaxed) - before;
    }
    let ours = OURS.load(Ordering::Relaxed) - ours;
    assert_eq!(
        ours, 0,
        "{name}: {ours} buffer allocations in the steady state"
    );
    assert!(
        counts.iter().all(|c| *c == counts[0]),
        "{name}: allocations per step {counts:?}"
    );
}

#[test]
fn no_buffer_allocation_in_steady_state() {
    check_steady_state(
        "simple_odenet",
        &mut zoo::simple_odenet::<f32>(32, 2, 0).unwrap(),
        128,
    );
    check_steady_state("odenet", &mut zoo::odenet::<f32>(1, 8, 8, 8, 0).unwrap(), 4);
    check_steady_state("zhu field", &mut zoo::zhu_field::<f32>(2, 0).unwrap(), 64);
    let seq = SequentialBuilder::new(Shape::image(2, 4, 4))
        .time_concat()
        .conv2d(4, 3, 1, 1)
        .batch_norm(BatchNormOptions::default())
        .activation(odeflow::nn::Activation::Silu)
        .conv2d(2, 3, 1, 1)
        .build()
        .unwrap();
    let mut bn = NeuralField::from_sequential(seq, &Init::kaiming_relu(), 1).unwrap();
    check_steady_state("conv + batch norm + time", &mut bn, 3);
}
