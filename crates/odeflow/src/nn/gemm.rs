//! Matrix products: a thin, safe wrapper over the [`gemm`] crate.
//!
//! `C ← α·A·B + β·C` for strided matrices of `f32` or `f64`. Every layer of [`crate::nn`]
//! is written as a few calls of [`matmul`]; the views [`MatRef`] and [`MatMut`] carry a
//! row stride and a column stride, so a transpose is a view with its strides swapped
//! ([`MatRef::t`]) and a block of a larger buffer (one tap of a convolution kernel, one
//! position of a batch of sequences) is a view with a larger stride — no copies.
//!
//! The views check at construction that every element they address lies inside the slice,
//! and an output view additionally that no two of its elements share a memory location,
//! so the `unsafe` call into `gemm` is sound for any view this module lets you build.
//!
//! Degenerate products — a rank-one update (`k = 1`) or a matrix–vector product (`m = 1`
//! or `n = 1`) with contiguous rows or columns, as in the `1 × 1` convolutions from and to
//! a single channel — bypass `gemm`'s blocking and packing and run as plain SIMD loops
//! (multiversioned for AVX-512 and AVX2+FMA).
//!
//! Threading follows faer's convention of tunables in a parameter struct: [`GemmParams`]
//! runs products below a work threshold on the calling thread and larger ones on the rayon
//! pool. On a 2-core machine the small products of a Neural ODE field are faster serial.

use std::any::TypeId;

use thiserror::Error;

use crate::real::Real;

#[path = "gemm_small.rs"]
mod small;
use small::rank_one_or_vector;

/// An invalid matrix view or product.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum GemmError {
    /// A view addresses an element past the end of its slice.
    #[error("{what}: a {rows}×{cols} view with strides ({rs}, {cs}) needs {needed} elements, the slice has {len}")]
    OutOfBounds {
        /// Which operand.
        what: &'static str,
        /// Rows of the view.
        rows: usize,
        /// Columns of the view.
        cols: usize,
        /// Row stride.
        rs: usize,
        /// Column stride.
        cs: usize,
        /// Elements needed.
        needed: usize,
        /// Elements available.
        len: usize,
    },
    /// An output view whose strides make two elements share a location.
    #[error("output view {rows}×{cols} with strides ({rs}, {cs}) overlaps itself")]
    SelfOverlap {
        /// Rows of the view.
        rows: usize,
        /// Columns of the view.
        cols: usize,
        /// Row stride.
        rs: usize,
        /// Column stride.
        cs: usize,
    },
    /// The inner or outer dimensions of a product disagree.
    #[error("matmul dimensions disagree: C is {c_rows}×{c_cols}, A is {a_rows}×{a_cols}, B is {b_rows}×{b_cols}")]
    Dimensions {
        /// Rows of C.
        c_rows: usize,
        /// Columns of C.
        c_cols: usize,
        /// Rows of A.
        a_rows: usize,
        /// Columns of A.
        a_cols: usize,
        /// Rows of B.
        b_rows: usize,
        /// Columns of B.
        b_cols: usize,
    },
}

/// Number of slice elements a view spans (0 for an empty view).
fn extent(rows: usize, cols: usize, rs: usize, cs: usize) -> usize {
    if rows == 0 || cols == 0 {
        0
    } else {
        (rows - 1) * rs + (cols - 1) * cs + 1
    }
}

/// A read-only strided matrix view: element `(i, j)` is `data[i·rs + j·cs]`.
#[derive(Debug, Clone, Copy)]
pub struct MatRef<'a, T> {
    data: &'a [T],
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

impl<'a, T> MatRef<'a, T> {
    /// A strided view; fails if it addresses an element past the end of `data`.
    pub fn new(
        data: &'a [T],
        rows: usize,
        cols: usize,
        rs: usize,
        cs: usize,
    ) -> Result<Self, GemmError> {
        let needed = extent(rows, cols, rs, cs);
        if needed > data.len() {
            return Err(GemmError::OutOfBounds {
                what: "input view",
                rows,
                cols,
                rs,
                cs,
                needed,
                len: data.len(),
            });
        }
        Ok(Self {
            data,
            rows,
            cols,
            rs,
            cs,
        })
    }

    /// A dense row-major view (`rs = cols`, `cs = 1`).
    pub fn row_major(data: &'a [T], rows: usize, cols: usize) -> Result<Self, GemmError> {
        Self::new(data, rows, cols, cols, 1)
    }

    /// The transpose (strides swapped; no copy).
    pub fn t(self) -> Self {
        Self {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
        }
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Element `(i, j)`.
    pub fn at(&self, i: usize, j: usize) -> &T {
        &self.data[i * self.rs + j * self.cs]
    }
}

/// A mutable strided matrix view whose elements occupy distinct locations.
#[derive(Debug)]
pub struct MatMut<'a, T> {
    data: &'a mut [T],
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

impl<'a, T> MatMut<'a, T> {
    /// A strided mutable view; fails if it addresses an element past the end of `data` or
    /// if two of its elements would share a location.
    pub fn new(
        data: &'a mut [T],
        rows: usize,
        cols: usize,
        rs: usize,
        cs: usize,
    ) -> Result<Self, GemmError> {
        let needed = extent(rows, cols, rs, cs);
        if needed > data.len() {
            return Err(GemmError::OutOfBounds {
                what: "output view",
                rows,
                cols,
                rs,
                cs,
                needed,
                len: data.len(),
            });
        }
        // Distinct locations: one stride must step over the whole extent of the other axis.
        let distinct = rows <= 1 && (cols <= 1 || cs > 0)
            || cols <= 1 && rs > 0
            || (cs > 0 && rs >= cols * cs)
            || (rs > 0 && cs >= rows * rs);
        if !distinct {
            return Err(GemmError::SelfOverlap { rows, cols, rs, cs });
        }
        Ok(Self {
            data,
            rows,
            cols,
            rs,
            cs,
        })
    }

    /// A dense row-major view (`rs = cols`, `cs = 1`).
    pub fn row_major(data: &'a mut [T], rows: usize, cols: usize) -> Result<Self, GemmError> {
        Self::new(data, rows, cols, cols, 1)
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }
}

/// Threading policy of [`matmul`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GemmParams {
    /// Products with `m·n·k` below this many multiply–adds run on the calling thread.
    pub parallel_threshold: usize,
    /// Threads for larger products (run on the rayon pool); `0` means one per available core.
    pub threads: usize,
}

impl Default for GemmParams {
    /// Serial below 2²² multiply–adds (about 1 ms of work at a few GFLOP/s per core),
    /// otherwise one thread per core on the rayon pool.
    fn default() -> Self {
        Self {
            parallel_threshold: 1 << 22,
            threads: 0,
        }
    }
}

impl GemmParams {
    /// Always on the calling thread.
    pub fn serial() -> Self {
        Self {
            parallel_threshold: usize::MAX,
            threads: 1,
        }
    }

    fn parallelism(&self, work: usize) -> gemm::Parallelism {
        if work < self.parallel_threshold {
            return gemm::Parallelism::None;
        }
        let n = if self.threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            self.threads
        };
        if n <= 1 {
            gemm::Parallelism::None
        } else {
            gemm::Parallelism::Rayon(n)
        }
    }
}

/// `C ← α·A·B + β·C` (`A: m×k`, `B: k×n`, `C: m×n`).
///
/// With `β = 0` the old contents of `C` are not read (NaN in `C` does not propagate).
/// Supported scalars are `f32` and `f64`, the two [`Real`] types.
pub fn matmul<T: Real>(
    mut c: MatMut<'_, T>,
    alpha: T,
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    beta: T,
    params: &GemmParams,
) -> Result<(), GemmError> {
    if a.rows != c.rows || b.cols != c.cols || a.cols != b.rows {
        return Err(GemmError::Dimensions {
            c_rows: c.rows,
            c_cols: c.cols,
            a_rows: a.rows,
            a_cols: a.cols,
            b_rows: b.rows,
            b_cols: b.cols,
        });
    }
    let (m, n, k) = (c.rows, c.cols, a.cols);
    if m == 0 || n == 0 {
        return Ok(());
    }
    debug_assert!(
        TypeId::of::<T>() == TypeId::of::<f32>() || TypeId::of::<T>() == TypeId::of::<f64>()
    );
    let read_dst = beta != T::zero();
    if k == 0 {
        // gemm's kernels are not needed for an empty inner dimension: C ← β·C.
        for i in 0..m {
            for j in 0..n {
                let v = &mut c.data[i * c.rs + j * c.cs];
                *v = if read_dst { beta * *v } else { T::zero() };
            }
        }
        return Ok(());
    }
    if rank_one_or_vector(&mut c, alpha, &a, &b, beta) {
        return Ok(());
    }
    let par = params.parallelism(m.saturating_mul(n).saturating_mul(k));
    // SAFETY: the views were validated at construction: every element (i, j) with i < rows,
    // j < cols lies inside its slice, and the output's elements are pairwise distinct. `c`
    // is borrowed mutably and `a`, `b` immutably, so the output aliases neither input. `T`
    // is f32 or f64 (the only `Real` types), both supported by gemm's dispatch. gemm's
    // convention is dst ← alpha·dst + beta·lhs·rhs, hence the swapped scalars.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.data.as_mut_ptr(),
            c.cs as isize,
            c.rs as isize,
            read_dst,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            beta,
            alpha,
            false,
            false,
            false,
            par,
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngExt, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    #[allow(clippy::too_many_arguments)]
    fn naive(
        m: usize,
        n: usize,
        k: usize,
        alpha: f64,
        a: impl Fn(usize, usize) -> f64,
        b: impl Fn(usize, usize) -> f64,
        beta: f64,
        c: &mut [f64],
        crs: usize,
        ccs: usize,
    ) {
        for i in 0..m {
            for j in 0..n {
                let s: f64 = (0..k).map(|p| a(i, p) * b(p, j)).sum();
                let v = &mut c[i * crs + j * ccs];
                *v = alpha * s + if beta == 0.0 { 0.0 } else { beta * *v };
            }
        }
    }

    #[test]
    fn matmul_matches_naive_for_transposes_strides_and_sizes() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for &(m, n, k) in &[
            (1, 1, 1),
            (3, 5, 7),
            (17, 9, 33),
            (64, 48, 40),
            (5, 1, 0),
            (130, 70, 3),
        ] {
            for &(ta, tb, alpha, beta) in &[
                (false, false, 1.0, 0.0),
                (true, false, 0.5, 1.0),
                (false, true, -2.0, 0.25),
                (true, true, 1.0, 1.0),
            ] {
                let a: Vec<f64> = (0..m * k + 3)
                    .map(|_| rng.random_range(-1.0..1.0))
                    .collect();
                let b: Vec<f64> = (0..k * n * 2 + 1)
                    .map(|_| rng.random_range(-1.0..1.0))
                    .collect();
                // A stored row-major (or transposed), B with a padded row stride 2n.
                let av = if ta {
                    MatRef::new(&a, k, m, m, 1).unwrap().t()
                } else {
                    MatRef::new(&a, m, k, k, 1).unwrap()
                };
                let bv = if tb {
                    MatRef::new(&b, n, k, 2 * k, 1).unwrap().t()
                } else {
                    MatRef::new(&b, k, n, 2 * n, 1).unwrap()
                };
                let c0: Vec<f64> = (0..m * n * 2)
                    .map(|_| rng.random_range(-1.0..1.0))
                    .collect();
                // C column-major with a padded column stride, or row-major with a padded
                // row stride.
                for (crs, ccs) in [(1, 2 * m.max(1)), (2 * n.max(1), 1)] {
                    let mut c = c0.clone();
                    matmul(
                        MatMut::new(&mut c, m, n, crs, ccs).unwrap(),
                        alpha,
                        av,
                        bv,
                        beta,
                        &GemmParams::default(),
                    )
                    .unwrap();
                    let mut want = c0.clone();
                    naive(
                        m,
                        n,
                        k,
                        alpha,
                        |i, p| *av.at(i, p),
                        |p, j| *bv.at(p, j),
                        beta,
                        &mut want,
                        crs,
                        ccs,
                    );
                    for (x, y) in c.iter().zip(&want) {
                        assert!(
                            (x - y).abs() < 1e-12,
                            "{m}x{n}x{k} ta={ta} tb={tb} C strides ({crs}, {ccs}): {x} vs {y}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn f32_parallel_matches_serial() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let (m, n, k) = (200, 150, 120);
        let a: Vec<f32> = (0..m * k).map(|_| rng.random_range(-1.0..1.0)).collect();
        let b: Vec<f32> = (0..k * n).map(|_| rng.random_range(-1.0..1.0)).collect();
        let mut c1 = vec![0.0f32; m * n];
        let mut c2 = vec![0.0f32; m * n];
        let run = |c: &mut [f32], p: GemmParams| {
            matmul(
                MatMut::row_major(c, m, n).unwrap(),
                1.0,
                MatRef::row_major(&a, m, k).unwrap(),
                MatRef::row_major(&b, k, n).unwrap(),
                0.0,
                &p,
            )
            .unwrap()
        };
        run(&mut c1, GemmParams::serial());
        run(
            &mut c2,
            GemmParams {
                parallel_threshold: 0,
                threads: 2,
            },
        );
        let mut want = vec![0.0f64; m * n];
        naive(
            m,
            n,
            k,
            1.0,
            |i, p| a[i * k + p] as f64,
            |p, j| b[p * n + j] as f64,
            0.0,
            &mut want,
            n,
            1,
        );
        for ((x, y), w) in c1.iter().zip(&c2).zip(&want) {
            assert!((*x as f64 - w).abs() < 1e-4 && (*y as f64 - w).abs() < 1e-4);
        }
    }

    #[test]
    fn beta_zero_ignores_nan_in_output() {
        let a = [1.0, 2.0];
        let b = [3.0, 4.0];
        let mut c = [f64::NAN];
        matmul(
            MatMut::row_major(&mut c, 1, 1).unwrap(),
            1.0,
            MatRef::row_major(&a, 1, 2).unwrap(),
            MatRef::row_major(&b, 2, 1).unwrap(),
            0.0,
            &GemmParams::default(),
        )
        .unwrap();
        assert_eq!(c[0], 11.0);
    }

    #[test]
    fn invalid_views_and_dimensions_are_errors() {
        let v = [0.0f64; 6];
        assert!(matches!(
            MatRef::new(&v, 2, 3, 4, 1),
            Err(GemmError::OutOfBounds {
                needed: 7,
                len: 6,
                ..
            })
        ));
        let mut w = [0.0f64; 6];
        assert!(matches!(
            MatMut::new(&mut w, 2, 3, 1, 1),
            Err(GemmError::SelfOverlap { .. })
        ));
        assert!(MatMut::new(&mut w, 2, 3, 1, 2).is_ok());
        let a = MatRef::row_major(&v, 2, 3).unwrap();
        let err = matmul(
            MatMut::row_major(&mut w, 2, 3).unwrap(),
            1.0,
            a,
            a,
            0.0,
            &GemmParams::default(),
        );
        assert!(matches!(err, Err(GemmError::Dimensions { .. })));
    }
}
