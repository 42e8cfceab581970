//! [`ImdeField`]: a truncated modified equation as a right-hand side the solvers integrate.

use super::differentials::{GenericField, Workspace};
use super::series::{check_step, ModifiedSeries};
use crate::error::{ArgError, ShapeError};
use crate::solve::Rhs;
use crate::state::Batch;
use crate::tableau::ButcherTableau;

/// The truncated modified field `Σ_{k≤K} h^k f_k` of `field` for a fixed step size `h`, as an
/// autonomous [`Rhs`] on CPU batches (one state per row).
///
/// Evaluation reuses one [`Workspace`], so integrating it does not allocate per step. Call
/// [`ImdeField::check`] on the initial state first: a batch whose width is not the field's
/// dimension makes every evaluation NaN (which the solvers report as a non-finite failure).
#[derive(Debug)]
pub struct ImdeField<F> {
    field: F,
    series: ModifiedSeries,
    h: f64,
    ws: Workspace,
}

impl<F: GenericField> ImdeField<F> {
    /// Wraps `field` with precomputed series coefficients and the step size `h` they are
    /// evaluated at (finite; `h = 0` gives `field` itself).
    pub fn new(field: F, series: ModifiedSeries, h: f64) -> Result<Self, ArgError> {
        check_step(h)?;
        Ok(Self {
            field,
            series,
            h,
            ws: Workspace::new(),
        })
    }

    /// The inverse modified equation of `tableau` for `field`, truncated after `h^order`.
    pub fn inverse(
        field: F,
        tableau: &ButcherTableau,
        h: f64,
        order: usize,
    ) -> Result<Self, ArgError> {
        Self::new(field, ModifiedSeries::inverse(tableau, order)?, h)
    }

    /// The classical modified equation of `tableau` for `field`, truncated after `h^order`.
    pub fn forward(
        field: F,
        tableau: &ButcherTableau,
        h: f64,
        order: usize,
    ) -> Result<Self, ArgError> {
        Self::new(field, ModifiedSeries::forward(tableau, order)?, h)
    }

    /// Checks that a batch has the field's dimension.
    pub fn check(&self, y: &Batch<f64>) -> Result<(), ArgError> {
        if y.cols() != self.field.dim() {
            return Err(ShapeError {
                what: "state",
                expected: self.field.dim(),
                got: y.cols(),
            }
            .into());
        }
        Ok(())
    }

    /// The underlying field `f`.
    pub fn field(&self) -> &F {
        &self.field
    }

    /// The series coefficients.
    pub fn series(&self) -> &ModifiedSeries {
        &self.series
    }

    /// The step size the series is evaluated at.
    pub fn h(&self) -> f64 {
        self.h
    }
}

impl<F: GenericField> Rhs<Batch<f64>> for ImdeField<F> {
    fn eval(&mut self, _t: f64, y: &Batch<f64>, dy: &mut Batch<f64>) {
        let d = self.field.dim();
        if y.cols() != d || dy.cols() != d || d == 0 {
            dy.as_mut_slice().fill(f64::NAN);
            return;
        }
        for (yr, dr) in y
            .as_slice()
            .chunks_exact(d)
            .zip(dy.as_mut_slice().chunks_exact_mut(d))
        {
            self.series
                .eval_unchecked(&self.field, self.h, yr, dr, &mut self.ws);
        }
    }
}
