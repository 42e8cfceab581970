//! The kernels of `kernels/norm.cu` (device batch normalisation and average pooling), compiled
//! as host C++ (`cuda_kernels/norm_driver.cpp`; the per-channel reductions with real
//! concurrent threads and barriers) and executed in the order of the launch plans
//! (`odeflow::cuda::norm_plan`), against the CPU layers `nn::BatchNorm` (in f64, the exact
//! arithmetic) and `nn::AvgPool2d` (in f32, the same bits), in NCHW and NHWC, N = 1..4,
//! C = 1..16, 1×1 to 10×10 images, M = N·H·W = 1 included.
//!
//! Tolerances. The kernels accumulate the statistics and backward sums in double and round
//! `μ`, `1/√(σ² + ε)` once to f32 (relative error 2⁻²⁴ ≈ 6e-8); the forward `y = γ x̂ + β`
//! then takes four f32 roundings, the backward `∂x` is formed in double from f32 operands.
//! With the test data (|x| ≲ 5, |x̂| ≲ 2, |γ|, |β| ≲ 1.7) an error of a few ulps of the
//! operands' magnitude is ≲ 2e-6; the checks allow 1e-5 relative to `1 + |reference|` for
//! `y`, `∂x` (relative to the largest `|∂x|`, since the coupled VJP's error is normwise) and
//! the running statistics, and 1e-6 relative to `Σ|∂y|·(1 + |x̂| + |μ|/σ)` for the
//! parameter gradients (sums of up to 400 terms whose f32 `x̂` carries the rounding of `μ`).

use libloading::Symbol;
use odeflow::cuda::norm_plan::{
    bn_backward_plan, bn_forward_plan, ImageBatch, Layout, NormLaunch, NormOp, PoolShape,
};
use odeflow::nn::{AvgPool2d, BatchNorm, BatchNormOptions, GemmParams, Module, Pass, Saved, Shape};

use super::{data, host_library, HostKernels, GRIDS};

type Stats = unsafe extern "C" fn(
    i64,
    i32,
    i64,
    i32,
    *const f32,
    f64,
    f64,
    *mut f32,
    *mut f32,
    *mut f32,
    *mut f32,
    i32,
    i32,
);
type EvalStats =
    unsafe extern "C" fn(i32, *const f32, *const f32, f64, *mut f32, *mut f32, i32, i32);
type Normalize = unsafe extern "C" fn(
    i64,
    i32,
    i64,
    i32,
    *const f32,
    *const f32,
    *const f32,
    *const f32,
    *const f32,
    *mut f32,
    i32,
    i32,
);
type Sums = unsafe extern "C" fn(
    i64,
    i32,
    i64,
    i32,
    *const f32,
    *const f32,
    *const f32,
    *const f32,
    *mut f64,
    *mut f32,
    *mut f32,
    i32,
    i32,
);
type Dx = unsafe extern "C" fn(
    i64,
    i32,
    i64,
    i32,
    *const f32,
    *const f32,
    *const f32,
    *const f32,
    *const f32,
    *const f64,
    *mut f32,
    i32,
    i32,
);
type Pool = unsafe extern "C" fn(i64, i32, i32, i32, i32, i32, i32, *const f32, *mut f32, i32, i32);

/// `-Bsymbolic`: the library's calls of its own kernels (exported `extern "C"` functions,
/// each with its `__shared__` statics) bind inside the library, so that tests running at
/// once on their own copies never share a block's shared memory.
fn norm_kernels() -> Option<HostKernels> {
    host_library("norm_driver.cpp", &["-pthread", "-Wl,-Bsymbolic"])
}

/// NHWC (the CPU layers' order) → `layout`.
fn to_layout(v: &[f32], s: &ImageBatch) -> Vec<f32> {
    let (c, p) = (s.channels, s.positions());
    match s.layout {
        Layout::Nhwc => v.to_vec(),
        Layout::Nchw => (0..v.len())
            .map(|j| {
                let (n, ch, q) = (j / (c * p), (j / p) % c, j % p);
                v[(n * p + q) * c + ch]
            })
            .collect(),
    }
}

/// `layout` → NHWC.
fn from_layout(v: &[f32], s: &ImageBatch) -> Vec<f32> {
    let (c, p) = (s.channels, s.positions());
    match s.layout {
        Layout::Nhwc => v.to_vec(),
        Layout::Nchw => (0..v.len())
            .map(|j| {
                let (n, q, ch) = (j / (c * p), (j / c) % p, j % c);
                v[(n * c + ch) * p + q]
            })
            .collect(),
    }
}

fn f64s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

fn close(got: &[f32], want: &[f64], tol: f64, scale: impl Fn(usize) -> f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g as f64 - w).abs() <= tol * scale(i),
            "{what}[{i}]: {g} vs {w} (allowed {})",
            tol * scale(i)
        );
    }
}

/// The device state of one layer, executed on the host kernels.
struct HostBn<'k> {
    k: &'k HostKernels,
    opts: BatchNormOptions,
    running_mean: Vec<f32>,
    running_var: Vec<f32>,
    mean: Vec<f32>,
    invstd: Vec<f32>,
    sums: Vec<f64>,
    /// Replaces `(grid, block)` of the per-channel reductions (grid-stride over channels,
    /// other tree sizes).
    reduction: Option<(u32, u32)>,
}

impl<'k> HostBn<'k> {
    fn new(k: &'k HostKernels, c: usize, opts: BatchNormOptions) -> Self {
        Self {
            k,
            opts,
            running_mean: vec![0.0; c],
            running_var: vec![1.0; c],
            mean: vec![f32::NAN; c],
            invstd: vec![f32::NAN; c],
            sums: vec![f64::NAN; 2 * c],
            reduction: None,
        }
    }

    fn grid(&self, l: &NormLaunch) -> (i32, i32) {
        let (g, b) = match (l.op, self.reduction) {
            (NormOp::Stats | NormOp::BackwardSums { .. }, Some(r)) => r,
            _ => (l.grid, l.block),
        };
        (g as i32, b as i32)
    }

    fn forward(&mut self, s: &ImageBatch, train: bool, params: &[f32], x: &[f32]) -> Vec<f32> {
        let c = s.channels;
        let (n, ci, p, lay) = (
            s.batch as i64,
            c as i32,
            s.positions() as i64,
            s.layout.code(),
        );
        let (gamma, beta) = if params.is_empty() {
            (std::ptr::null(), std::ptr::null())
        } else {
            (params.as_ptr(), params[c..].as_ptr())
        };
        let mut y = vec![f32::NAN; s.len()];
        for l in bn_forward_plan(s, train) {
            let (grid, block) = self.grid(&l);
            // SAFETY (each launch): the buffers hold the plan's shapes (s.len() values, C per
            // channel vector, 2C sums).
            unsafe {
                match l.op {
                    NormOp::Stats => (self.k.sym::<Stats>(b"host_bn_stats"))(
                        n,
                        ci,
                        p,
                        lay,
                        x.as_ptr(),
                        self.opts.eps,
                        self.opts.momentum,
                        self.running_mean.as_mut_ptr(),
                        self.running_var.as_mut_ptr(),
                        self.mean.as_mut_ptr(),
                        self.invstd.as_mut_ptr(),
                        grid,
                        block,
                    ),
                    NormOp::EvalStats => (self.k.sym::<EvalStats>(b"host_bn_eval_stats"))(
                        ci,
                        self.running_mean.as_ptr(),
                        self.running_var.as_ptr(),
                        self.opts.eps,
                        self.mean.as_mut_ptr(),
                        self.invstd.as_mut_ptr(),
                        grid,
                        block,
                    ),
                    NormOp::Normalize => (self.k.sym::<Normalize>(b"host_bn_normalize"))(
                        n,
                        ci,
                        p,
                        lay,
                        x.as_ptr(),
                        self.mean.as_ptr(),
                        self.invstd.as_ptr(),
                        gamma,
                        beta,
                        y.as_mut_ptr(),
                        grid,
                        block,
                    ),
                    op => panic!("{op:?} in a forward plan"),
                }
            }
        }
        y
    }

    #[allow(clippy::too_many_arguments)]
    fn backward(
        &mut self,
        s: &ImageBatch,
        train: bool,
        params: &[f32],
        x: &[f32],
        gy: &[f32],
        gparams: &mut [f32],
    ) -> Vec<f32> {
        let c = s.channels;
        let (n, ci, p, lay) = (
            s.batch as i64,
            c as i32,
            s.positions() as i64,
            s.layout.code(),
        );
        let affine = !params.is_empty();
        let gamma = if affine {
            params.as_ptr()
        } else {
            std::ptr::null()
        };
        let mut gx = vec![f32::NAN; s.len()];
        self.sums.fill(f64::NAN);
        for l in bn_backward_plan(s, train, affine) {
            let (grid, block) = self.grid(&l);
            // SAFETY: as in forward; gparams holds 2C values when affine.
            unsafe {
                match l.op {
                    NormOp::BackwardSums { grad_params } => {
                        let (gg, gb) = if grad_params {
                            let (a, b) = gparams.split_at_mut(c);
                            (a.as_mut_ptr(), b.as_mut_ptr())
                        } else {
                            (std::ptr::null_mut(), std::ptr::null_mut())
                        };
                        (self.k.sym::<Sums>(b"host_bn_backward_sums"))(
                            n,
                            ci,
                            p,
                            lay,
                            x.as_ptr(),
                            gy.as_ptr(),
                            self.mean.as_ptr(),
                            self.invstd.as_ptr(),
                            self.sums.as_mut_ptr(),
                            gg,
                            gb,
                            grid,
                            block,
                        )
                    }
                    NormOp::BackwardDx { train } => (self.k.sym::<Dx>(b"host_bn_backward_dx"))(
                        n,
                        ci,
                        p,
                        lay,
                        x.as_ptr(),
                        gy.as_ptr(),
                        self.mean.as_ptr(),
                        self.invstd.as_ptr(),
                        gamma,
                        if train {
                            self.sums.as_ptr()
                        } else {
                            std::ptr::null()
                        },
                        gx.as_mut_ptr(),
                        grid,
                        block,
                    ),
                    op => panic!("{op:?} in a backward plan"),
                }
            }
        }
        gx
    }
}

fn pass(batch: usize, train: bool) -> Pass<f64> {
    Pass {
        batch,
        t: 0.0,
        train,
        gemm: GemmParams::default(),
    }
}

/// One layer on the host kernels and on the CPU (f64) through two train steps (forward and
/// backward, the running statistics moving), then an eval forward and backward.
fn check_layer(
    k: &HostKernels,
    (n, c, h, w): (usize, usize, usize, usize),
    layout: Layout,
    opts: BatchNormOptions,
    reduction: Option<(u32, u32)>,
    seed: usize,
) {
    let s = ImageBatch::new(n, c, h, w, layout).expect("shape");
    let what = format!("{s} {opts:?} reduction {reduction:?}");
    let mut cpu = BatchNorm::<f64>::new(Shape::image(c, h, w), opts).expect("cpu layer");
    let mut dev = HostBn::new(k, c, opts);
    dev.reduction = reduction;
    let params: Vec<f32> = if opts.affine {
        data(2 * c, seed).iter().map(|v| v * 0.9 + 0.2).collect()
    } else {
        Vec::new()
    };
    let p64 = f64s(&params);
    let mut gp_dev: Vec<f32> = data(params.len(), seed + 1);
    let mut gp_cpu = f64s(&gp_dev);
    for (step, train) in [(0, true), (1, true), (2, false)] {
        // Channels-last data with a per-channel offset, so that the mean matters.
        let x: Vec<f32> = data(s.len(), seed + 10 + step)
            .iter()
            .enumerate()
            .map(|(i, v)| v + 0.3 * (i % c) as f32)
            .collect();
        let gy = data(s.len(), seed + 20 + step);
        let (x64, gy64) = (f64s(&x), f64s(&gy));
        let mut y64 = vec![0.0; s.len()];
        let mut aux = vec![0.0; 2 * c + 1];
        let ps = pass(n, train);
        cpu.forward(&ps, &p64, &x64, &mut y64, &mut aux);
        let y = from_layout(&dev.forward(&s, train, &params, &to_layout(&x, &s)), &s);
        let mode = format!("{what} step {step} train {train}");
        close(&y, &y64, 1e-5, |i| 1.0 + y64[i].abs(), &format!("y {mode}"));
        close(&dev.mean, &aux[..c], 1e-6, |i| 1.0 + aux[i].abs(), &mode);
        let inv = &aux[c..2 * c];
        close(&dev.invstd, inv, 1e-6, |i| inv[i], &format!("1/σ {mode}"));
        close(
            &dev.running_mean,
            cpu.running_mean(),
            1e-6,
            |i| 1.0 + cpu.running_mean()[i].abs(),
            &format!("running mean {mode}"),
        );
        close(
            &dev.running_var,
            cpu.running_var(),
            1e-6,
            |i| 1.0 + cpu.running_var()[i].abs(),
            &format!("running variance {mode}"),
        );

        let mut gx64 = vec![0.0; s.len()];
        let saved = Saved {
            x: &x64,
            y: &y64,
            aux: &aux,
        };
        cpu.backward(&ps, &p64, saved, &gy64, &mut gx64, &mut gp_cpu);
        let gx = dev.backward(
            &s,
            train,
            &params,
            &to_layout(&x, &s),
            &to_layout(&gy, &s),
            &mut gp_dev,
        );
        let gx = from_layout(&gx, &s);
        let gmax = gx64.iter().fold(1.0f64, |m, v| m.max(1.0 + v.abs()));
        close(&gx, &gx64, 1e-5, |_| gmax, &format!("∂x {mode}"));
        if opts.affine {
            // Σ|∂y|·(1 + |x̂| + |μ|/σ) per channel: the magnitude the sums' rounding scales with.
            let mut mag = vec![0.0f64; c];
            for (i, (&xv, &g)) in x64.iter().zip(&gy64).enumerate() {
                let ch = i % c;
                let xh = (xv - aux[ch]) * aux[c + ch];
                mag[ch] += g.abs() * (1.0 + xh.abs() + aux[ch].abs() * aux[c + ch]);
            }
            let scale = |i: usize| 1.0 + gp_cpu[i].abs() + mag[i % c];
            close(&gp_dev, &gp_cpu, 1e-6, scale, &format!("∂γ, ∂β {mode}"));
        }
        if s.per_channel() == 1 && train {
            // One value per channel: x̂ = 0, y = β, and the coupled VJP is exactly zero.
            assert!(gx.iter().all(|&v| v == 0.0), "∂x at M = 1 {mode}: {gx:?}");
        }
    }
}

const SHAPES: [(usize, usize, usize, usize); 8] = [
    (1, 1, 1, 1),
    (1, 3, 1, 1),
    (4, 16, 1, 1),
    (2, 5, 3, 4),
    (4, 2, 7, 1),
    (1, 4, 10, 10),
    (3, 16, 10, 10),
    (4, 16, 10, 10),
];

#[test]
fn batch_norm_kernels_match_the_cpu_layer_in_train_and_eval_mode() {
    let Some(k) = norm_kernels() else { return };
    let other = BatchNormOptions {
        eps: 1e-3,
        momentum: 0.3,
        ..BatchNormOptions::default()
    };
    let plain = BatchNormOptions {
        affine: false,
        ..BatchNormOptions::default()
    };
    for (i, &shape) in SHAPES.iter().enumerate() {
        for layout in [Layout::Nchw, Layout::Nhwc] {
            check_layer(&k, shape, layout, BatchNormOptions::default(), None, i);
        }
        let opts = if i % 2 == 0 { other } else { plain };
        check_layer(&k, shape, Layout::Nchw, opts, None, 100 + i);
    }
}

#[test]
fn batch_norm_reductions_are_right_for_any_tree_and_grid_and_deterministic() {
    let Some(k) = norm_kernels() else { return };
    // One thread per block, a grid smaller than C (blocks stride over channels), a tree
    // smaller and one larger than the values of a channel.
    for red in [(1, 1), (2, 4), (3, 32), (16, 256)] {
        for shape in [(2, 5, 3, 4), (3, 16, 10, 10), (1, 3, 1, 1)] {
            check_layer(
                &k,
                shape,
                Layout::Nchw,
                BatchNormOptions::default(),
                Some(red),
                7,
            );
        }
    }
    // The same launch twice gives the same bits (no order-dependent atomics; a missing
    // barrier would show as a race between the concurrent threads).
    let s = ImageBatch::new(4, 16, 10, 10, Layout::Nchw).expect("shape");
    let x = data(s.len(), 3);
    let gy = data(s.len(), 4);
    let params = data(32, 5);
    let run = || {
        let mut b = HostBn::new(&k, 16, BatchNormOptions::default());
        let y = b.forward(&s, true, &params, &x);
        let mut gp = vec![0.0f32; 32];
        let gx = b.backward(&s, true, &params, &x, &gy, &mut gp);
        (y, gx, gp, b.mean, b.invstd, b.sums, b.running_var)
    };
    let first = run();
    for _ in 0..3 {
        let again = run();
        assert!(first.0 == again.0 && first.1 == again.1 && first.2 == again.2);
        assert!(first.3 == again.3 && first.4 == again.4 && first.6 == again.6);
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&first.5), bits(&again.5), "backward sums");
    }
}

#[test]
fn batch_norm_stats_of_an_empty_batch_leave_the_running_statistics() {
    let Some(k) = norm_kernels() else { return };
    let stats: Symbol<Stats> = k.sym(b"host_bn_stats");
    let (mut rm, mut rv) = (vec![0.5f32; 3], vec![2.0f32; 3]);
    let (mut mean, mut inv) = (vec![f32::NAN; 3], vec![f32::NAN; 3]);
    // SAFETY: no values are read (N = 0); C-sized outputs.
    unsafe {
        stats(
            0,
            3,
            4,
            0,
            std::ptr::null(),
            1e-5,
            0.1,
            rm.as_mut_ptr(),
            rv.as_mut_ptr(),
            mean.as_mut_ptr(),
            inv.as_mut_ptr(),
            3,
            32,
        )
    };
    assert_eq!((mean, inv), (vec![0.0; 3], vec![1.0; 3]));
    assert_eq!((rm, rv), (vec![0.5; 3], vec![2.0; 3]));
}

#[test]
fn average_pool_kernels_give_the_cpu_layers_bits() {
    let Some(k) = norm_kernels() else { return };
    let fwd: Symbol<Pool> = k.sym(b"host_avgpool_fwd");
    let bwd: Symbol<Pool> = k.sym(b"host_avgpool_bwd");
    // TinyResNet's head (16×10×10 by 4, dropping the last two rows and columns), a window
    // that fits exactly, a rectangular image, 1×1 windows and a sequence (H = 1).
    let cases = [
        (2, 16, 10, 10, 4, 4),
        (3, 2, 6, 6, 3, 3),
        (1, 3, 5, 7, 2, 2),
        (4, 1, 3, 3, 1, 1),
        (2, 4, 1, 9, 1, 4),
        (1, 1, 10, 10, 10, 10),
    ];
    for (n, c, h, w, kh, kw) in cases {
        let cpu_shape = if h == 1 {
            Shape::seq(c, w)
        } else {
            Shape::image(c, h, w)
        };
        let mut cpu = AvgPool2d::new(cpu_shape, kw).expect("cpu pool");
        assert_eq!(cpu.kernel(), (kh, kw));
        let ps = Pass {
            batch: n,
            t: 0.0f32,
            train: true,
            gemm: GemmParams::default(),
        };
        let x = data(n * c * h * w, n + c);
        let s_out = |s: ImageBatch| PoolShape::new(s, kh, kw).expect("pool").output();
        let probe = ImageBatch::new(n, c, h, w, Layout::Nhwc).expect("shape");
        let out_len = s_out(probe).len();
        let gy = data(out_len, 7 + h);
        let mut y = vec![0.0f32; out_len];
        cpu.forward(&ps, &[], &x, &mut y, &mut []);
        let mut gx = vec![0.0f32; x.len()];
        let saved = Saved {
            x: &x,
            y: &y,
            aux: &[],
        };
        cpu.backward(&ps, &[], saved, &gy, &mut gx, &mut []);
        for layout in [Layout::Nchw, Layout::Nhwc] {
            let s = ImageBatch::new(n, c, h, w, layout).expect("shape");
            let o = s_out(s);
            for (grid, block) in GRIDS {
                let mut yd = vec![f32::NAN; o.len()];
                let mut gxd = vec![f32::NAN; s.len()];
                let (xs, gys) = (to_layout(&x, &s), to_layout(&gy, &o));
                let dims = [c, h, w, kh, kw].map(|v| v as i32);
                // SAFETY: input and output buffers of the shapes' lengths.
                unsafe {
                    let [ci, hi, wi, khi, kwi] = dims;
                    let (nn, lay) = (n as i64, layout.code());
                    fwd(
                        nn,
                        ci,
                        hi,
                        wi,
                        khi,
                        kwi,
                        lay,
                        xs.as_ptr(),
                        yd.as_mut_ptr(),
                        grid,
                        block,
                    );
                    bwd(
                        nn,
                        ci,
                        hi,
                        wi,
                        khi,
                        kwi,
                        lay,
                        gys.as_ptr(),
                        gxd.as_mut_ptr(),
                        grid,
                        block,
                    );
                }
                assert_eq!(from_layout(&yd, &o), y, "pool forward {s} by {kh}×{kw}");
                assert_eq!(from_layout(&gxd, &s), gx, "pool backward {s} by {kh}×{kw}");
            }
        }
    }
}
