//! The convolution algorithms (channels-last, see [`crate::nn`]).
//!
//! Notation: batch `N`, input `H × W × C_in`, output `H_o × W_o × C_out`, kernel
//! `k_h × k_w` (`K = k_h k_w` taps), stride `(s_h, s_w)`, zero padding `(p_h, p_w)`. Output
//! position `(o_h, o_w)` reads input `(o_h s_h − p_h + i, o_w s_w − p_w + j)` for tap
//! `(i, j)`; taps outside the input read zero.
//!
//! The weight is kept by the caller in PyTorch layout `W[co, ci, i, j]`; the algorithms use
//! it permuted to `Wp[co, (i, j), ci]`, so that a *run* of taps `j₀..j₁` of one kernel row
//! multiplies `(j₁ − j₀)·C_in` contiguous input values (consecutive positions of one input
//! row, channels-last) by a contiguous block of a row of `Wp`.
//!
//! * **im2col**: gather the `N·H_o·W_o × K·C_in` matrix of input patches (zeros for
//!   padding), then `Y = col · Wpᵀ`; backward `∂col = ∂Y · Wp` scattered back
//!   (col2im) and `∂Wp = ∂Yᵀ · col`. One large GEMM each; best for images.
//! * **direct**: for every output position and kernel row, one GEMM over the batch with the
//!   run of *valid* taps only: `Y[:, o, :] += X[:, run, :] · Wp[:, run]ᵀ` with row stride
//!   `H·W·C_in` in `X`. No copies and no multiplications by padding zeros — for the tiny
//!   sequences of Ott et al.'s `simple_odenet` (`L = 2`, `k = 3`, padding 1) a third of
//!   the im2col matrix is padding. Best when `H_o·W_o·k_h` is small.

use super::gemm::{matmul, GemmParams, MatMut, MatRef};
use crate::real::Real;

/// Sizes of one convolution call.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Geom {
    pub n: usize,
    pub cin: usize,
    pub cout: usize,
    pub h: usize,
    pub w: usize,
    pub ho: usize,
    pub wo: usize,
    pub kh: usize,
    pub kw: usize,
    pub sh: usize,
    pub sw: usize,
    pub ph: usize,
    pub pw: usize,
}

const INTERNAL: &str = "conv: view sizes follow from the checked geometry";

impl Geom {
    /// Taps per kernel.
    pub fn taps(&self) -> usize {
        self.kh * self.kw
    }
    /// Input positions per sample.
    pub fn p_in(&self) -> usize {
        self.h * self.w
    }
    /// Output positions per sample.
    pub fn p_out(&self) -> usize {
        self.ho * self.wo
    }
    /// Columns of the im2col matrix.
    pub fn patch(&self) -> usize {
        self.taps() * self.cin
    }

    /// Calls `f(o, i, ih, iw0, j0, m)` for every output position `o = oh·W_o + ow` and kernel
    /// row `i` whose input row `ih` exists and that has a non-empty run of valid taps
    /// `j0..j0 + m` starting at input column `iw0`.
    #[inline]
    pub fn for_each_run(&self, mut f: impl FnMut(usize, usize, usize, usize, usize, usize)) {
        for oh in 0..self.ho {
            for ow in 0..self.wo {
                let o = oh * self.wo + ow;
                let w0 = ow * self.sw; // input column of tap j is w0 + j − pw
                let j0 = self.pw.saturating_sub(w0);
                let j1 = self.kw.min((self.w + self.pw).saturating_sub(w0));
                if j0 >= j1 {
                    continue;
                }
                for i in 0..self.kh {
                    let r = oh * self.sh + i;
                    if r < self.ph || r - self.ph >= self.h {
                        continue;
                    }
                    f(o, i, r - self.ph, w0 + j0 - self.pw, j0, j1 - j0);
                }
            }
        }
    }
}

/// `wp[co, t, ci] ← w[co, ci, t]`.
pub(crate) fn permute_weight<T: Real>(w: &[T], g: &Geom, wp: &mut [T]) {
    let (k, cin) = (g.taps(), g.cin);
    for (src, dst) in w.chunks_exact(cin * k).zip(wp.chunks_exact_mut(cin * k)) {
        for (t, row) in dst.chunks_exact_mut(cin).enumerate() {
            for (d, s) in row.iter_mut().zip(src[t..].iter().step_by(k)) {
                *d = *s;
            }
        }
    }
}

/// `gw[co, ci, t] += gwp[co, t, ci]`.
pub(crate) fn unpermute_add<T: Real>(gwp: &[T], g: &Geom, gw: &mut [T]) {
    let (k, cin) = (g.taps(), g.cin);
    for (src, dst) in gwp.chunks_exact(cin * k).zip(gw.chunks_exact_mut(cin * k)) {
        for (t, row) in src.chunks_exact(cin).enumerate() {
            for (d, s) in dst[t..].iter_mut().step_by(k).zip(row) {
                *d += *s;
            }
        }
    }
}

/// Fills the `N·P_out × K·C_in` patch matrix.
pub(crate) fn im2col<T: Real>(x: &[T], g: &Geom, col: &mut [T]) {
    col.fill(T::zero());
    let (cin, patch, po, pi) = (g.cin, g.patch(), g.p_out(), g.p_in());
    for n in 0..g.n {
        let xs = &x[n * pi * cin..(n + 1) * pi * cin];
        let cs = &mut col[n * po * patch..(n + 1) * po * patch];
        g.for_each_run(|o, i, ih, iw0, j0, m| {
            let src = &xs[(ih * g.w + iw0) * cin..(ih * g.w + iw0 + m) * cin];
            let at = o * patch + (i * g.kw + j0) * cin;
            cs[at..at + m * cin].copy_from_slice(src);
        });
    }
}

/// `gx += col2im(gcol)` (the adjoint of [`im2col`]).
pub(crate) fn col2im_add<T: Real>(gcol: &[T], g: &Geom, gx: &mut [T]) {
    let (cin, patch, po, pi) = (g.cin, g.patch(), g.p_out(), g.p_in());
    for n in 0..g.n {
        let gs = &mut gx[n * pi * cin..(n + 1) * pi * cin];
        let cs = &gcol[n * po * patch..(n + 1) * po * patch];
        g.for_each_run(|o, i, ih, iw0, j0, m| {
            let dst = &mut gs[(ih * g.w + iw0) * cin..(ih * g.w + iw0 + m) * cin];
            let at = o * patch + (i * g.kw + j0) * cin;
            for (d, s) in dst.iter_mut().zip(&cs[at..at + m * cin]) {
                *d += *s;
            }
        });
    }
}

/// `Y (N·P_out × C_out) ← α·A·Wpᵀ + β·Y` for a dense patch matrix `A` (`N·P_out × K·C_in`).
pub(crate) fn patches_times_weight<T: Real>(
    a: &[T],
    wp: &[T],
    g: &Geom,
    y: &mut [T],
    beta: T,
    gp: &GemmParams,
) {
    let rows = g.n * g.p_out();
    matmul(
        MatMut::row_major(y, rows, g.cout).expect(INTERNAL),
        T::one(),
        MatRef::row_major(a, rows, g.patch()).expect(INTERNAL),
        MatRef::row_major(wp, g.cout, g.patch())
            .expect(INTERNAL)
            .t(),
        beta,
        gp,
    )
    .expect(INTERNAL);
}

/// Backward of [`patches_times_weight`]: `gA ← gY·Wp` and `gWp ← gWp + gYᵀ·A`.
pub(crate) fn patches_backward<T: Real>(
    a: &[T],
    wp: &[T],
    gy: &[T],
    g: &Geom,
    ga: &mut [T],
    gwp: &mut [T],
    gp: &GemmParams,
) {
    let rows = g.n * g.p_out();
    let gyv = MatRef::row_major(gy, rows, g.cout).expect(INTERNAL);
    matmul(
        MatMut::row_major(ga, rows, g.patch()).expect(INTERNAL),
        T::one(),
        gyv,
        MatRef::row_major(wp, g.cout, g.patch()).expect(INTERNAL),
        T::zero(),
        gp,
    )
    .expect(INTERNAL);
    matmul(
        MatMut::row_major(gwp, g.cout, g.patch()).expect(INTERNAL),
        T::one(),
        gyv.t(),
        MatRef::row_major(a, rows, g.patch()).expect(INTERNAL),
        T::one(),
        gp,
    )
    .expect(INTERNAL);
}

/// Direct algorithm, forward: `y += conv(x)` (the caller fills `y` with the bias or zero).
pub(crate) fn direct_forward<T: Real>(x: &[T], wp: &[T], g: &Geom, y: &mut [T], gp: &GemmParams) {
    let (cin, cout, patch) = (g.cin, g.cout, g.patch());
    let (xrs, yrs) = (g.p_in() * cin, g.p_out() * cout);
    g.for_each_run(|o, i, ih, iw0, j0, m| {
        let xo = (ih * g.w + iw0) * cin;
        let wo = (i * g.kw + j0) * cin;
        matmul(
            MatMut::new(&mut y[o * cout..], g.n, cout, yrs, 1).expect(INTERNAL),
            T::one(),
            MatRef::new(&x[xo..], g.n, m * cin, xrs, 1).expect(INTERNAL),
            MatRef::new(&wp[wo..], cout, m * cin, patch, 1)
                .expect(INTERNAL)
                .t(),
            T::one(),
            gp,
        )
        .expect(INTERNAL);
    });
}

/// Direct algorithm, backward: `gx ← (∂y/∂x)ᵀ gy` and `gwp ← gwp + (∂y/∂Wp)ᵀ gy`.
pub(crate) fn direct_backward<T: Real>(
    x: &[T],
    wp: &[T],
    gy: &[T],
    g: &Geom,
    gx: &mut [T],
    gwp: &mut [T],
    gp: &GemmParams,
) {
    let (cin, cout, patch) = (g.cin, g.cout, g.patch());
    let (xrs, yrs) = (g.p_in() * cin, g.p_out() * cout);
    gx.fill(T::zero());
    g.for_each_run(|o, i, ih, iw0, j0, m| {
        let xo = (ih * g.w + iw0) * cin;
        let wo = (i * g.kw + j0) * cin;
        let gyv = MatRef::new(&gy[o * cout..], g.n, cout, yrs, 1).expect(INTERNAL);
        matmul(
            MatMut::new(&mut gx[xo..], g.n, m * cin, xrs, 1).expect(INTERNAL),
            T::one(),
            gyv,
            MatRef::new(&wp[wo..], cout, m * cin, patch, 1).expect(INTERNAL),
            T::one(),
            gp,
        )
        .expect(INTERNAL);
        matmul(
            MatMut::new(&mut gwp[wo..], cout, m * cin, patch, 1).expect(INTERNAL),
            T::one(),
            gyv.t(),
            MatRef::new(&x[xo..], g.n, m * cin, xrs, 1).expect(INTERNAL),
            T::one(),
            gp,
        )
        .expect(INTERNAL);
    });
}
