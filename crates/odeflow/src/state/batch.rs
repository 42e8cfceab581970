//! [`Batch`]: a contiguous row-major `rows × cols` buffer, one row per sample.

use serde::{Deserialize, Serialize};

use super::{slice_axpy, slice_dot, slice_first_non_finite, slice_weighted_sq_sum, State};
use crate::error::ShapeError;
use crate::real::Real;

/// A batch of states: `rows` samples of `cols` components each, row-major and contiguous.
///
/// This is the CPU state type of odeflow. Image-shaped samples `(C, H, W)` are stored
/// flattened in a row (`cols = C·H·W`); the model that reads them knows their shape.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Batch<T> {
    rows: usize,
    cols: usize,
    data: Vec<T>,
}

impl<T: Real> Batch<T> {
    /// A zero batch.
    pub fn zeros(rows: usize, cols: usize) -> Self {
        Self {
            rows,
            cols,
            data: vec![T::zero(); rows * cols],
        }
    }

    /// Wraps `data` (row-major) as a `rows × cols` batch.
    pub fn from_vec(rows: usize, cols: usize, data: Vec<T>) -> Result<Self, ShapeError> {
        if data.len() != rows * cols {
            return Err(ShapeError {
                what: "batch data",
                expected: rows * cols,
                got: data.len(),
            });
        }
        Ok(Self { rows, cols, data })
    }

    /// A batch from equally long rows.
    pub fn from_rows(rows: &[Vec<T>]) -> Result<Self, ShapeError> {
        let cols = rows.first().map_or(0, Vec::len);
        let mut data = Vec::with_capacity(rows.len() * cols);
        for r in rows {
            if r.len() != cols {
                return Err(ShapeError {
                    what: "batch row",
                    expected: cols,
                    got: r.len(),
                });
            }
            data.extend_from_slice(r);
        }
        Ok(Self {
            rows: rows.len(),
            cols,
            data,
        })
    }

    /// A one-row batch holding `row`.
    pub fn from_row(row: &[T]) -> Self {
        Self {
            rows: 1,
            cols: row.len(),
            data: row.to_vec(),
        }
    }

    /// Converts every component to another scalar type.
    pub fn cast<U: Real>(&self) -> Batch<U> {
        Batch {
            rows: self.rows,
            cols: self.cols,
            data: self.data.iter().map(|v| U::of(v.f64())).collect(),
        }
    }

    /// Number of samples.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Components per sample.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Sample `i`.
    pub fn row(&self, i: usize) -> &[T] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }

    /// Sample `i`, mutable.
    pub fn row_mut(&mut self, i: usize) -> &mut [T] {
        &mut self.data[i * self.cols..(i + 1) * self.cols]
    }

    /// All components, row-major.
    pub fn as_slice(&self) -> &[T] {
        &self.data
    }

    /// All components, row-major, mutable.
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        &mut self.data
    }

    /// The underlying vector.
    pub fn into_vec(self) -> Vec<T> {
        self.data
    }

    /// Iterator over the samples.
    pub fn iter_rows(&self) -> impl Iterator<Item = &[T]> {
        self.data.chunks_exact(self.cols.max(1)).take(self.rows)
    }

    /// Changes the shape in place to `rows × cols`, reusing the allocation (contents are
    /// unspecified afterwards).
    pub fn resize(&mut self, rows: usize, cols: usize) {
        self.rows = rows;
        self.cols = cols;
        self.data.resize(rows * cols, T::zero());
    }

    /// Copies rows `idx` of `src` into `self` (resized to `idx.len() × src.cols()`).
    pub fn gather_rows(&mut self, src: &Batch<T>, idx: &[usize]) {
        self.resize(idx.len(), src.cols);
        for (k, &i) in idx.iter().enumerate() {
            let c = self.cols;
            self.data[k * c..(k + 1) * c].copy_from_slice(src.row(i));
        }
    }
}

impl<T: Real> State for Batch<T> {
    type Scalar = T;
    fn len(&self) -> usize {
        self.data.len()
    }
    fn zeros_like(&self) -> Self {
        Self::zeros(self.rows, self.cols)
    }
    fn assign(&mut self, other: &Self) {
        debug_assert_eq!((self.rows, self.cols), (other.rows, other.cols));
        self.data.copy_from_slice(&other.data);
    }
    fn set_zero(&mut self) {
        self.data.fill(T::zero());
    }
    fn scale(&mut self, a: T) {
        self.data.iter_mut().for_each(|v| *v *= a);
    }
    fn axpy(&mut self, a: T, x: &Self) {
        slice_axpy(&mut self.data, a, &x.data);
    }
    fn assign_lincomb(&mut self, base: &Self, coeffs: &[T], terms: &[Self]) {
        // Fused over up to four terms per pass: the stage combination is memory-bound.
        let out = &mut self.data;
        out.copy_from_slice(&base.data);
        let mut pending: [(T, &[T]); 4] = [(T::zero(), &[]); 4];
        let mut n = 0;
        for (c, k) in coeffs.iter().zip(terms) {
            if *c == T::zero() {
                continue;
            }
            pending[n] = (*c, &k.data);
            n += 1;
            if n == 4 {
                fused_axpy4(out, &pending);
                n = 0;
            }
        }
        for &(c, k) in &pending[..n] {
            slice_axpy(out, c, k);
        }
    }
    fn weighted_sq_sum(err: &Self, y0: &Self, y1: &Self, atol: T, rtol: T) -> (f64, usize) {
        (
            slice_weighted_sq_sum(&err.data, &y0.data, &y1.data, atol, rtol),
            err.data.len(),
        )
    }
    fn dot(&self, other: &Self) -> f64 {
        slice_dot(&self.data, &other.data)
    }
    fn first_non_finite(&self) -> Option<(usize, f64)> {
        slice_first_non_finite(&self.data)
    }
    fn to_f64_vec(&self) -> Vec<f64> {
        self.data.iter().map(|v| v.f64()).collect()
    }
}

#[inline]
fn fused_axpy4<T: Real>(out: &mut [T], t: &[(T, &[T]); 4]) {
    let (c0, k0) = t[0];
    let (c1, k1) = t[1];
    let (c2, k2) = t[2];
    let (c3, k3) = t[3];
    let n = out.len();
    let (k0, k1, k2, k3) = (&k0[..n], &k1[..n], &k2[..n], &k3[..n]);
    for i in 0..n {
        out[i] += c0 * k0[i] + c1 * k1[i] + c2 * k2[i] + c3 * k3[i];
    }
}
