//! Rank-one updates and matrix–vector products as plain SIMD loops (see [`super`]).

use super::{MatMut, MatRef};
use crate::real::Real;

/// `y ← β·y + α·s·x` over equal-length contiguous rows (`β = 0`: `y` is not read).
#[inline(always)]
fn scaled_axpy<T: Real>(y: &mut [T], beta: T, a: T, x: &[T]) {
    if beta == T::zero() {
        y.iter_mut().zip(x).for_each(|(o, v)| *o = a * *v);
    } else if beta == T::one() {
        y.iter_mut().zip(x).for_each(|(o, v)| *o += a * *v);
    } else {
        y.iter_mut()
            .zip(x)
            .for_each(|(o, v)| *o = beta * *o + a * *v);
    }
}

/// `Σ xᵢyᵢ` with eight independent partial sums (vectorisable without reassociation).
#[inline(always)]
fn dot8<T: Real>(x: &[T], y: &[T]) -> T {
    let mut acc = [T::zero(); 8];
    let (xc, yc) = (x.chunks_exact(8), y.chunks_exact(8));
    let (xr, yr) = (xc.remainder(), yc.remainder());
    for (a, b) in xc.zip(yc) {
        for l in 0..8 {
            acc[l] += a[l] * b[l];
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (a, b) in xr.iter().zip(yr) {
        s += *a * *b;
    }
    s
}

/// Degenerate products that are a rank-one update or matrix–vector products with
/// contiguous rows, done with plain SIMD loops (the `gemm` crate's blocking and packing
/// cost more than the arithmetic there). Returns false when the shape or strides do not
/// fit, leaving `c` untouched.
#[multiversion::multiversion(targets(
    "x86_64+avx512f+avx512bw+avx512cd+avx512dq+avx512vl+avx2+fma",
    "x86_64+avx2+fma"
))]
pub(super) fn rank_one_or_vector<T: Real>(
    c: &mut MatMut<'_, T>,
    alpha: T,
    a: &MatRef<'_, T>,
    b: &MatRef<'_, T>,
    beta: T,
) -> bool {
    let (m, n, k) = (c.rows, c.cols, a.cols);
    if k == 1 && c.cs == 1 && b.cs == 1 {
        // Outer product: row i of C ← β·row + α·a[i]·(row 0 of B).
        let brow = &b.data[..n];
        for i in 0..m {
            let ai = alpha * a.data[i * a.rs];
            scaled_axpy(&mut c.data[i * c.rs..i * c.rs + n], beta, ai, brow);
        }
        return true;
    }
    if m == 1 && c.cs == 1 && b.cs == 1 {
        // Row vector: C ← β·C + α·Σ_p a[p]·(row p of B).
        let crow = &mut c.data[..n];
        let mut first = true;
        for p in 0..k {
            let ap = alpha * a.data[p * a.cs];
            let eff_beta = if first { beta } else { T::one() };
            scaled_axpy(crow, eff_beta, ap, &b.data[p * b.rs..p * b.rs + n]);
            first = false;
        }
        return true;
    }
    if n == 1 && a.cs == 1 && (b.rs == 1 || k == 1) {
        // Matrix–vector with contiguous rows: c[i] ← β·c[i] + α·⟨row i of A, b⟩.
        let bcol = &b.data[..k];
        for i in 0..m {
            let d = alpha * dot8(&a.data[i * a.rs..i * a.rs + k], bcol);
            let o = &mut c.data[i * c.rs];
            *o = if beta == T::zero() { d } else { beta * *o + d };
        }
        return true;
    }
    if n == 1 && a.rs == 1 && c.rs == 1 {
        // Matrix–vector with contiguous columns: c ← β·c + α·Σ_p b[p]·(column p of A).
        let ccol = &mut c.data[..m];
        let mut first = true;
        for p in 0..k {
            let bp = alpha * b.data[p * b.rs];
            let eff_beta = if first { beta } else { T::one() };
            scaled_axpy(ccol, eff_beta, bp, &a.data[p * a.cs..p * a.cs + m]);
            first = false;
        }
        return true;
    }
    false
}
