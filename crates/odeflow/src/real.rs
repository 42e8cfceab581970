//! The scalar types the CPU solvers compute in.
//!
//! Solvers, fields and gradient methods are generic over [`Real`], implemented for `f32` and
//! `f64`. Tableau coefficients are stored as `f64` and converted once per solver with
//! [`Real::of`].

use std::fmt::{Debug, Display};
use std::iter::Sum;
use std::ops::{AddAssign, DivAssign, MulAssign, SubAssign};

use num_traits::{Float, FloatConst, FromPrimitive, ToPrimitive};

/// A floating-point scalar (`f32` or `f64`).
pub trait Real:
    Float
    + FloatConst
    + FromPrimitive
    + ToPrimitive
    + AddAssign
    + SubAssign
    + MulAssign
    + DivAssign
    + Sum
    + Default
    + Debug
    + Display
    + Send
    + Sync
    + serde::Serialize
    + 'static
{
    /// Short name of the type, `"f32"` or `"f64"`.
    const NAME: &'static str;
    /// Converts an `f64` constant (a tableau coefficient, a tolerance) to this type.
    fn of(x: f64) -> Self;
    /// Converts to `f64` (exact for both implementors).
    fn f64(self) -> f64;
}

impl Real for f32 {
    const NAME: &'static str = "f32";
    #[inline(always)]
    fn of(x: f64) -> Self {
        x as f32
    }
    #[inline(always)]
    fn f64(self) -> f64 {
        self as f64
    }
}

impl Real for f64 {
    const NAME: &'static str = "f64";
    #[inline(always)]
    fn of(x: f64) -> Self {
        x
    }
    #[inline(always)]
    fn f64(self) -> f64 {
        self
    }
}
