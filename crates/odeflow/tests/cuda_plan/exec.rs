//! The reference executor shared by the plan tests: column-major GEMM as cuBLAS defines it
//! and the convolution kernels (`kernels/conv.cu`) by their formulas, in f64, on any buffer
//! naming ([`Store`]) — the convolutional fields' [`ConvBuf`] and the residual block's
//! `ResBuf`.

use std::fmt::Debug;

use odeflow::cuda::conv_plan::{ConvOp, ConvShape};
use odeflow::cuda::plan::{act_code, Gemm};
use odeflow::nn::Activation;

/// The buffers of an executed plan.
pub trait Store<B: Copy + Debug> {
    /// The contents of `b` (panics when nothing wrote it).
    fn read(&self, b: B) -> Vec<f64>;
    /// The contents of `b` for an update (zeros of the planned size when new); panics on a
    /// read-only buffer.
    fn target(&self, b: B) -> Vec<f64>;
    /// Stores `v` into `b`.
    fn write(&mut self, b: B, v: Vec<f64>);
}

pub fn close(a: &[f64], b: &[f64], tol: f64, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}");
    for (i, (p, q)) in a.iter().zip(b).enumerate() {
        assert!(
            (p - q).abs() <= tol * (1.0 + q.abs()),
            "{what}[{i}]: {p} vs {q}"
        );
    }
}

pub fn gemm<B: Copy + Debug, S: Store<B>>(s: &mut S, g: &Gemm<B>) {
    let ext = |ld: usize, rows: usize, cols: usize| ld * (cols - 1) + rows;
    let (ar, ac) = if g.transa { (g.k, g.m) } else { (g.m, g.k) };
    let (br, bc) = if g.transb { (g.n, g.k) } else { (g.k, g.n) };
    assert!(g.lda >= ar && g.ldb >= br && g.ldc >= g.m, "{g:?}");
    let (a, b) = (s.read(g.a), s.read(g.b));
    assert!(
        ext(g.lda, ar, ac) <= a.len() && ext(g.ldb, br, bc) <= b.len(),
        "{g:?}"
    );
    if g.accumulate {
        let _ = s.read(g.c); // written before
    }
    let mut c = s.target(g.c);
    assert!(ext(g.ldc, g.m, g.n) <= c.len(), "{g:?}");
    for j in 0..g.n {
        for i in 0..g.m {
            let s: f64 = (0..g.k)
                .map(|p| {
                    let x = if g.transa {
                        a[p + i * g.lda]
                    } else {
                        a[i + p * g.lda]
                    };
                    let y = if g.transb {
                        b[j + p * g.ldb]
                    } else {
                        b[p + j * g.ldb]
                    };
                    x * y
                })
                .sum();
            let d = &mut c[i + j * g.ldc];
            *d = if g.accumulate { *d + s } else { s };
        }
    }
    s.write(g.c, c);
}

/// `(input index, patch index)` of every tap inside the input.
pub fn taps(s: &ConvShape) -> Vec<(usize, usize)> {
    let u = |v: i32| v as usize;
    let (po, cols) = (u(s.ho * s.wo), u(s.n * s.ho * s.wo));
    let mut v = Vec::new();
    for c in 0..u(s.c) {
        for i in 0..u(s.kh) {
            for j in 0..u(s.kw) {
                let r = (c * u(s.kh) + i) * u(s.kw) + j;
                for n in 0..u(s.n) {
                    for o in 0..po {
                        let ih = (o / u(s.wo) * u(s.sh) + i) as i64 - i64::from(s.ph);
                        let iw = (o % u(s.wo) * u(s.sw) + j) as i64 - i64::from(s.pw);
                        if ih >= 0 && iw >= 0 && ih < i64::from(s.h) && iw < i64::from(s.w) {
                            let x = n as i64 * s.sn + c as i64 * s.sc + ih * i64::from(s.w);
                            v.push(((x + iw) as usize, r * cols + n * po + o));
                        }
                    }
                }
            }
        }
    }
    v
}

/// Executes one convolution-plan operation.
pub fn conv_op<B: Copy + Debug, S: Store<B>>(s: &mut S, op: &ConvOp<B>) {
    let relu = act_code(Some(Activation::Relu)).expect("on device");
    match *op {
        ConvOp::Gemm(g) => gemm(s, &g),
        ConvOp::SwapOuter { src, dst, a, b, p } => {
            let v = s.read(src);
            let mut d = s.target(dst);
            assert_eq!((v.len(), d.len()), (a * b * p, a * b * p), "{op:?}");
            for i in 0..a {
                for j in 0..b {
                    for q in 0..p {
                        d[(j * a + i) * p + q] = v[(i * b + j) * p + q];
                    }
                }
            }
            s.write(dst, d);
        }
        ConvOp::Im2col { x, col, shape } => {
            let xv = s.read(x);
            assert_eq!(xv.len(), shape.input_len(), "{op:?}");
            let mut cv = s.target(col);
            assert!(shape.col_len() <= cv.len(), "{op:?}");
            cv[..shape.col_len()].fill(0.0);
            for (xi, ci) in taps(&shape) {
                cv[ci] = xv[xi];
            }
            s.write(col, cv);
        }
        ConvOp::Col2im {
            col,
            x,
            shape,
            accumulate,
        } => {
            let cv = s.read(col);
            let mut xv = if accumulate {
                s.read(x)
            } else {
                {
                    let mut v = s.target(x);
                    v.fill(0.0);
                    v
                }
            };
            assert_eq!(xv.len(), shape.input_len(), "{op:?}");
            for (xi, ci) in taps(&shape) {
                xv[xi] += cv[ci];
            }
            s.write(x, xv);
        }
        ConvOp::BiasAct { y, b, n, c, p, act } => {
            assert!(act == 0 || act == relu, "{op:?}");
            let bias = s.read(b);
            let mut v = s.read(y);
            assert_eq!((v.len(), bias.len()), (n * c * p, c), "{op:?}");
            for (i, z) in v.iter_mut().enumerate() {
                let s = *z + bias[(i / p) % c];
                *z = if act == relu { s.max(0.0) } else { s };
            }
            s.write(y, v);
        }
        ConvOp::ActGrad { g, a, len, act } => {
            assert_eq!(act, relu, "{op:?}");
            let av = s.read(a);
            let mut gv = s.read(g);
            assert_eq!((gv.len(), av.len()), (len, len), "{op:?}");
            for (gi, ai) in gv.iter_mut().zip(&av) {
                *gi *= f64::from(u8::from(*ai > 0.0));
            }
            s.write(g, gv);
        }
        ConvOp::ChannelPartialSums {
            g,
            partial,
            n,
            c,
            p,
            chunks,
        } => {
            let gv = s.read(g);
            assert_eq!(gv.len(), n * c * p, "{op:?}");
            let mut pv = s.target(partial);
            assert!(c * chunks <= pv.len(), "{op:?}");
            let m = n * p;
            for ch in 0..c {
                for k in 0..chunks {
                    pv[ch * chunks + k] = (k * m / chunks..(k + 1) * m / chunks)
                        .map(|q| gv[(q / p * c + ch) * p + q % p])
                        .sum();
                }
            }
            s.write(partial, pv);
        }
        ConvOp::AddChannelSums {
            partial,
            gb,
            c,
            chunks,
        } => {
            let pv = s.read(partial);
            let mut gv = s.read(gb);
            assert_eq!(gv.len(), c, "{op:?}");
            for (ch, g) in gv.iter_mut().enumerate() {
                *g += pv[ch * chunks..(ch + 1) * chunks].iter().sum::<f64>();
            }
            s.write(gb, gv);
        }
    }
}
