//! The convolution kernels (`kernels/conv.cu`) compiled as host C++ and run on an emulated
//! grid: im2col against its definition and against the CPU convolution layer (through a
//! reference GEMM), col2im as its adjoint (`⟨col2im(g), x⟩ = ⟨g, im2col(x)⟩`), the NCHW bias +
//! activation, the deterministic bias gradient against direct sums, and the NCHW ↔
//! channel-major swap — for 1-D and 2-D inputs, strides 1 and 3, paddings 0 and 1, kernels
//! 1, 3 and 5, on NCHW and channel-major strides.

use libloading::Symbol;
use odeflow::cuda::conv_plan::{chunks_for, ConvShape};
use odeflow::field::Parameterized;
use odeflow::nn::{Activation, Init, Network, SequentialBuilder, Shape};
use odeflow::Batch;

use super::{assert_close, data, host_kernels, GRIDS};

type Im2col = unsafe extern "C" fn(*const i64, *const i32, *const f32, *mut f32, i32, i32);
type Col2im = unsafe extern "C" fn(*const i64, *const i32, *const f32, *mut f32, i32, i32, i32);
type BiasActNchw = unsafe extern "C" fn(i64, i32, i64, *mut f32, *const f32, i32, i32, i32);
type BiasGrad = unsafe extern "C" fn(i64, i32, i64, i32, *const f32, *mut f64, *mut f32, i32, i32);
type SwapOuter = unsafe extern "C" fn(i64, i64, i64, *const f32, *mut f32, i32, i32);

/// `ConvShape` as the driver's two arrays.
fn args(s: &ConvShape) -> ([i64; 2], [i32; 12]) {
    (
        [s.sn, s.sc],
        [
            s.n, s.c, s.h, s.w, s.kh, s.kw, s.sh, s.sw, s.ph, s.pw, s.ho, s.wo,
        ],
    )
}

/// im2col by its definition, in f64.
fn im2col_ref(s: &ConvShape, x: &[f32]) -> Vec<f64> {
    let u = |v: i32| v as usize;
    let (po, cols) = (u(s.ho * s.wo), u(s.n * s.ho * s.wo));
    let mut col = vec![0.0; s.col_len()];
    for c in 0..u(s.c) {
        for i in 0..u(s.kh) {
            for j in 0..u(s.kw) {
                let r = (c * u(s.kh) + i) * u(s.kw) + j;
                for n in 0..u(s.n) {
                    for o in 0..po {
                        let ih = (o / u(s.wo) * u(s.sh) + i) as i64 - i64::from(s.ph);
                        let iw = (o % u(s.wo) * u(s.sw) + j) as i64 - i64::from(s.pw);
                        if ih < 0 || iw < 0 || ih >= i64::from(s.h) || iw >= i64::from(s.w) {
                            continue;
                        }
                        let at = n as i64 * s.sn + c as i64 * s.sc + ih * i64::from(s.w) + iw;
                        col[r * cols + n * po + o] = f64::from(x[at as usize]);
                    }
                }
            }
        }
    }
    col
}

/// The geometries: 1-D and 2-D, strides 1 and 3, paddings 0 and 1, kernels 1, 3 and 5.
fn shapes() -> Vec<ConvShape> {
    let mut v = Vec::new();
    for (n, c) in [(1, 1), (3, 2)] {
        for k in [1, 3, 5] {
            for s in [1, 3] {
                for p in [0, 1] {
                    // 1-D: a 1 × k kernel on (c, 1, 11).
                    v.extend(ConvShape::nchw(n, c, (1, 11), (1, k), (1, s), (0, p)));
                    // 2-D: k × k on (c, 7, 9).
                    v.extend(ConvShape::nchw(n, c, (7, 9), (k, k), (s, s), (p, p)));
                }
            }
        }
    }
    assert_eq!(v.len(), 2 * 3 * 2 * 2 * 2);
    v
}

#[test]
fn im2col_is_its_definition_and_col2im_its_adjoint() {
    let Some(k) = host_kernels() else { return };
    let im2col: Symbol<Im2col> = k.sym(b"host_im2col");
    let col2im: Symbol<Col2im> = k.sym(b"host_col2im");
    for nchw in shapes() {
        for s in [nchw, nchw.channel_major()] {
            let (st, g) = args(&s);
            let x = data(s.input_len(), 1);
            let y = data(s.col_len(), 2);
            let x0 = data(s.input_len(), 3);
            let want = im2col_ref(&s, &x);
            let want_f32: Vec<f32> = want.iter().map(|&v| v as f32).collect();
            let want_dot: f64 = want.iter().zip(&y).map(|(a, b)| a * f64::from(*b)).sum();
            let scale: f64 = want
                .iter()
                .zip(&y)
                .map(|(a, b)| (a * f64::from(*b)).abs())
                .sum();
            let mut first = None;
            for (grid, block) in GRIDS {
                let mut col = vec![f32::NAN; s.col_len()];
                let mut gx = vec![f32::NAN; s.input_len()];
                let mut gx_acc = x0.clone();
                // SAFETY: buffers of the sizes `s` describes.
                unsafe {
                    im2col(
                        st.as_ptr(),
                        g.as_ptr(),
                        x.as_ptr(),
                        col.as_mut_ptr(),
                        grid,
                        block,
                    );
                    col2im(
                        st.as_ptr(),
                        g.as_ptr(),
                        y.as_ptr(),
                        gx.as_mut_ptr(),
                        0,
                        grid,
                        block,
                    );
                    col2im(
                        st.as_ptr(),
                        g.as_ptr(),
                        y.as_ptr(),
                        gx_acc.as_mut_ptr(),
                        1,
                        grid,
                        block,
                    );
                }
                assert_eq!(col, want_f32, "im2col {s:?}");
                let dot: f64 = gx
                    .iter()
                    .zip(&x)
                    .map(|(a, b)| f64::from(*a) * f64::from(*b))
                    .sum();
                assert!(
                    (dot - want_dot).abs() <= 1e-6 * (1.0 + scale),
                    "⟨col2im(y), x⟩ = {dot}, ⟨y, im2col(x)⟩ = {want_dot} for {s:?}"
                );
                let sum: Vec<f32> = x0.iter().zip(&gx).map(|(a, b)| a + b).collect();
                assert_close(&gx_acc, &sum, 1e-6, "col2im accumulating");
                // A gather in a fixed order: the same bits on every grid.
                match &first {
                    None => first = Some(gx),
                    Some(f) => assert_eq!(&gx, f, "col2im depends on the grid"),
                }
            }
        }
    }
}

/// im2col followed by the GEMM with the PyTorch weight is the CPU convolution layer, for
/// strided and padded 1-D and 2-D convolutions.
#[test]
fn im2col_times_the_weight_is_the_cpu_convolution() {
    let Some(k) = host_kernels() else { return };
    let im2col: Symbol<Im2col> = k.sym(b"host_im2col");
    let (n, cin, cout) = (2, 3, 4);
    for (one_d, kk, s, p) in [
        (true, 3, 1, 1),
        (true, 5, 3, 1),
        (false, 3, 3, 0),
        (false, 5, 1, 1),
    ] {
        let (h, w) = if one_d { (1, 10) } else { (8, 7) };
        let (input, b) = if one_d {
            let b = SequentialBuilder::<f64>::new(Shape::seq(cin, w));
            (Shape::seq(cin, w), b.conv1d(cout, kk, s, p))
        } else {
            let b = SequentialBuilder::<f64>::new(Shape::image(cin, h, w));
            (Shape::image(cin, h, w), b.conv2d(cout, kk, s, p))
        };
        let mut net = Network::new(b.build().expect("valid"), &Init::PyTorchDefault, 5);
        let x = data(n * input.len(), 4);
        let xb = Batch::from_vec(n, input.len(), x.iter().map(|&v| f64::from(v)).collect())
            .expect("sized");
        let mut yb = Batch::zeros(0, 0);
        net.forward(0.0, &xb, &mut yb).expect("forward");
        let kern = if one_d { (1, kk) } else { (kk, kk) };
        let strides = if one_d { (1, s) } else { (s, s) };
        let pads = if one_d { (0, p) } else { (p, p) };
        let shape = ConvShape::nchw(n, cin, (h, w), kern, strides, pads).expect("fits");
        let (st, g) = args(&shape);
        let mut col = vec![0.0f32; shape.col_len()];
        // SAFETY: buffers of the sizes `shape` describes.
        unsafe { im2col(st.as_ptr(), g.as_ptr(), x.as_ptr(), col.as_mut_ptr(), 3, 64) };
        let params = net.params();
        let taps = kern.0 * kern.1;
        let (wt, bias) = params.split_at(cout * cin * taps);
        let po = (shape.ho * shape.wo) as usize;
        let mut want = vec![0.0; n * cout * po];
        for (idx, y) in want.iter_mut().enumerate() {
            let (nn, co, o) = (idx / (cout * po), idx / po % cout, idx % po);
            *y = bias[co]
                + (0..cin * taps)
                    .map(|r| wt[co * cin * taps + r] * f64::from(col[r * n * po + nn * po + o]))
                    .sum::<f64>();
        }
        let got = yb.as_slice();
        assert_eq!(got.len(), want.len());
        for (i, (a, b)) in got.iter().zip(&want).enumerate() {
            assert!((a - b).abs() <= 1e-12 * (1.0 + b.abs()), "[{i}] {a} vs {b}");
        }
    }
}

#[test]
fn bias_act_and_the_bias_gradient_match_direct_sums() {
    let Some(k) = host_kernels() else { return };
    let bias_act: Symbol<BiasActNchw> = k.sym(b"host_bias_act_nchw");
    let bias_grad: Symbol<BiasGrad> = k.sym(b"host_bias_grad");
    // NCHW (n, c, p) and the channel-major view (1, c, n·p) of the plan.
    for (n, c, p) in [(3, 5, 49), (1, 5, 147), (2, 1, 7), (1, 4, 1000), (4, 3, 1)] {
        let len = n * c * p;
        let z = data(len, 6);
        let b = data(c, 7);
        for (act, code) in [
            (None, 0),
            (Some(Activation::Tanh), 1),
            (Some(Activation::Relu), 2),
        ] {
            let pre: Vec<f32> = (0..len).map(|i| z[i] + b[(i / p) % c]).collect();
            let mut want = pre.clone();
            if let Some(a) = act {
                a.forward(&pre, &mut want);
            }
            for (grid, block) in GRIDS {
                let mut y = z.clone();
                // SAFETY: n·c·p values, c biases.
                unsafe {
                    bias_act(
                        n as i64,
                        c as i32,
                        p as i64,
                        y.as_mut_ptr(),
                        b.as_ptr(),
                        code,
                        grid,
                        block,
                    )
                };
                assert_close(&y, &want, 2e-6, "bias + activation (NCHW)");
            }
        }
        let want: Vec<f64> = (0..c)
            .map(|ch| {
                let s: f64 = (0..n * p)
                    .map(|q| f64::from(z[(q / p * c + ch) * p + q % p]))
                    .sum();
                0.25 + s
            })
            .collect();
        for chunks in [1, 3, chunks_for(n * p), n * p + 2] {
            let mut first: Option<Vec<f32>> = None;
            for (grid, block) in GRIDS {
                let mut gb = vec![0.25f32; c];
                let mut partial = vec![f64::NAN; c * chunks];
                // SAFETY: n·c·p values, c·chunks partial sums, c outputs.
                unsafe {
                    bias_grad(
                        n as i64,
                        c as i32,
                        p as i64,
                        chunks as i32,
                        z.as_ptr(),
                        partial.as_mut_ptr(),
                        gb.as_mut_ptr(),
                        grid,
                        block,
                    )
                };
                for (ch, (g, w)) in gb.iter().zip(&want).enumerate() {
                    assert!(
                        (f64::from(*g) - w).abs() <= 1e-6 * (1.0 + w.abs()),
                        "∂b[{ch}] = {g} vs {w} ({n}, {c}, {p}), {chunks} chunks"
                    );
                }
                match &first {
                    None => first = Some(gb),
                    Some(f) => assert_eq!(&gb, f, "the bias gradient depends on the grid"),
                }
            }
        }
    }
}

#[test]
fn swap_outer_exchanges_nchw_and_channel_major() {
    let Some(k) = host_kernels() else { return };
    let swap: Symbol<SwapOuter> = k.sym(b"host_swap_outer");
    for (a, b, p) in [(3, 2, 5), (1, 4, 6), (4, 1, 3), (2, 3, 1)] {
        let src = data(a * b * p, 8);
        for (grid, block) in GRIDS {
            let mut dst = vec![f32::NAN; a * b * p];
            let mut back = vec![f32::NAN; a * b * p];
            // SAFETY: a·b·p values each.
            unsafe {
                swap(
                    a as i64,
                    b as i64,
                    p as i64,
                    src.as_ptr(),
                    dst.as_mut_ptr(),
                    grid,
                    block,
                );
                swap(
                    b as i64,
                    a as i64,
                    p as i64,
                    dst.as_ptr(),
                    back.as_mut_ptr(),
                    grid,
                    block,
                );
            }
            for i in 0..a {
                for j in 0..b {
                    for q in 0..p {
                        assert_eq!(dst[(j * a + i) * p + q], src[(i * b + j) * p + q]);
                    }
                }
            }
            assert_eq!(back, src, "swapping twice is the identity");
        }
    }
}
