//! The state/vector abstraction every solver and gradient method is written against.
//!
//! A solver needs very little from its state: a zero of the same shape, copies, linear
//! combinations, a weighted RMS norm for error control, and a finiteness check. [`State`]
//! asks for exactly that, so one Runge–Kutta loop integrates a CPU batch buffer
//! ([`Batch`]), a flat parameter vector (`Vec<T>`), a pair of states (the augmented system of
//! the continuous adjoint), or a framework tensor on a GPU — with no copy of the solver per
//! state type.

mod batch;

pub use batch::Batch;

use crate::real::Real;
use num_traits::Zero;

/// A vector space element a solver can integrate.
///
/// All operations write into `self`; none allocates except [`State::zeros_like`] (called when
/// a solver builds its workspace, never per step).
pub trait State: Clone {
    /// The scalar type of the components.
    type Scalar: Real;

    /// Number of scalar components.
    fn len(&self) -> usize;

    /// True when the state has no components.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A zero state of the same shape.
    fn zeros_like(&self) -> Self;

    /// `self ← other` (shapes must match).
    fn assign(&mut self, other: &Self);

    /// `self ← 0`.
    fn set_zero(&mut self);

    /// `self ← a · self`.
    fn scale(&mut self, a: Self::Scalar);

    /// `self ← self + a · x`.
    fn axpy(&mut self, a: Self::Scalar, x: &Self);

    /// `self ← base + Σⱼ coeffs[j] · terms[j]`; terms whose coefficient is zero are skipped,
    /// and `coeffs.len() == terms.len()`. This is the Runge–Kutta stage combination
    /// `Yᵢ = y + h Σⱼ aᵢⱼ kⱼ` with the `h aᵢⱼ` folded into `coeffs`.
    fn assign_lincomb(&mut self, base: &Self, coeffs: &[Self::Scalar], terms: &[Self]) {
        self.assign(base);
        for (c, k) in coeffs.iter().zip(terms) {
            if *c != Self::Scalar::zero() {
                self.axpy(*c, k);
            }
        }
    }

    /// `Σᵢ (errᵢ / (atol + rtol · max(|y0ᵢ|, |y1ᵢ|)))²` and the number of terms: the pieces
    /// of the mixed absolute/relative RMS error norm. Composite states add their parts.
    fn weighted_sq_sum(
        err: &Self,
        y0: &Self,
        y1: &Self,
        atol: Self::Scalar,
        rtol: Self::Scalar,
    ) -> (f64, usize);

    /// The mixed absolute/relative RMS norm
    /// `sqrt(mean((errᵢ / (atol + rtol · max(|y0ᵢ|, |y1ᵢ|)))²))` used by step-size control.
    fn weighted_rms(
        err: &Self,
        y0: &Self,
        y1: &Self,
        atol: Self::Scalar,
        rtol: Self::Scalar,
    ) -> f64 {
        let (s, n) = Self::weighted_sq_sum(err, y0, y1, atol, rtol);
        if n == 0 {
            0.0
        } else {
            (s / n as f64).sqrt()
        }
    }

    /// Inner product `Σ selfᵢ · otherᵢ`, accumulated in `f64`.
    fn dot(&self, other: &Self) -> f64;

    /// Index and value of the first component that is NaN or infinite, if any.
    fn first_non_finite(&self) -> Option<(usize, f64)>;

    /// True when every component is finite.
    fn is_finite(&self) -> bool {
        self.first_non_finite().is_none()
    }

    /// The components as `f64`, in storage order (for reports and tests; allocates).
    fn to_f64_vec(&self) -> Vec<f64>;

    /// A deferred finiteness check for states where [`State::first_non_finite`] costs a
    /// host synchronisation (a GPU buffer): the fixed-step loop then hands each step's
    /// state to the watch (no synchronisation) and reads it once at the end of the solve.
    /// `None`, the default, means the loop checks each step directly (cheap on the CPU).
    fn finiteness_watch(&self) -> Option<Box<dyn FinitenessWatch<Self>>> {
        None
    }
}

/// The deferred finiteness check of a fixed-step solve (see [`State::finiteness_watch`]):
/// it remembers the first step whose state had a NaN or an infinity, without reading the
/// state back.
pub trait FinitenessWatch<S> {
    /// Notes `state`, the result of step `step` (0-based).
    fn observe(&mut self, step: usize, state: &S);
    /// The first observed step whose state had a non-finite component (one synchronisation).
    /// A watch that could not run (a failed device) answers `Some(0)`, so that the caller
    /// repeats the solve with a check per step and reports what it finds.
    fn first_step(&mut self) -> Option<usize>;
}

/// `Σ (e/(atol + rtol·max(|a|,|b|)))²` over three equally long slices.
pub(crate) fn slice_weighted_sq_sum<T: Real>(
    err: &[T],
    y0: &[T],
    y1: &[T],
    atol: T,
    rtol: T,
) -> f64 {
    let mut s = 0.0f64;
    for ((e, a), b) in err.iter().zip(y0).zip(y1) {
        let sc = atol + rtol * a.abs().max(b.abs());
        let r = (*e / sc).f64();
        s += r * r;
    }
    s
}

pub(crate) fn slice_axpy<T: Real>(y: &mut [T], a: T, x: &[T]) {
    assert_eq!(y.len(), x.len(), "axpy: states of different lengths");
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi += a * *xi;
    }
}

pub(crate) fn slice_first_non_finite<T: Real>(x: &[T]) -> Option<(usize, f64)> {
    x.iter()
        .position(|v| !v.is_finite())
        .map(|i| (i, x[i].f64()))
}

pub(crate) fn slice_dot<T: Real>(x: &[T], y: &[T]) -> f64 {
    x.iter().zip(y).map(|(a, b)| a.f64() * b.f64()).sum()
}

impl<T: Real> State for Vec<T> {
    type Scalar = T;
    fn len(&self) -> usize {
        Vec::len(self)
    }
    fn zeros_like(&self) -> Self {
        vec![T::zero(); Vec::len(self)]
    }
    fn assign(&mut self, other: &Self) {
        self.copy_from_slice(other);
    }
    fn set_zero(&mut self) {
        self.fill(T::zero());
    }
    fn scale(&mut self, a: T) {
        self.iter_mut().for_each(|v| *v *= a);
    }
    fn axpy(&mut self, a: T, x: &Self) {
        slice_axpy(self, a, x);
    }
    fn weighted_sq_sum(err: &Self, y0: &Self, y1: &Self, atol: T, rtol: T) -> (f64, usize) {
        (
            slice_weighted_sq_sum(err, y0, y1, atol, rtol),
            Vec::len(err),
        )
    }
    fn dot(&self, other: &Self) -> f64 {
        slice_dot(self, other)
    }
    fn first_non_finite(&self) -> Option<(usize, f64)> {
        slice_first_non_finite(self)
    }
    fn to_f64_vec(&self) -> Vec<f64> {
        self.iter().map(|v| v.f64()).collect()
    }
}

/// A pair of states integrated together (for example the state and its adjoint). Norms and
/// inner products add over both parts; component indices count through `A` first.
impl<A: State, B: State<Scalar = A::Scalar>> State for (A, B) {
    type Scalar = A::Scalar;
    fn len(&self) -> usize {
        self.0.len() + self.1.len()
    }
    fn zeros_like(&self) -> Self {
        (self.0.zeros_like(), self.1.zeros_like())
    }
    fn assign(&mut self, other: &Self) {
        self.0.assign(&other.0);
        self.1.assign(&other.1);
    }
    fn set_zero(&mut self) {
        self.0.set_zero();
        self.1.set_zero();
    }
    fn scale(&mut self, a: Self::Scalar) {
        self.0.scale(a);
        self.1.scale(a);
    }
    fn axpy(&mut self, a: Self::Scalar, x: &Self) {
        self.0.axpy(a, &x.0);
        self.1.axpy(a, &x.1);
    }
    fn weighted_sq_sum(
        err: &Self,
        y0: &Self,
        y1: &Self,
        atol: Self::Scalar,
        rtol: Self::Scalar,
    ) -> (f64, usize) {
        let (s0, n0) = A::weighted_sq_sum(&err.0, &y0.0, &y1.0, atol, rtol);
        let (s1, n1) = B::weighted_sq_sum(&err.1, &y0.1, &y1.1, atol, rtol);
        (s0 + s1, n0 + n1)
    }
    fn dot(&self, other: &Self) -> f64 {
        self.0.dot(&other.0) + self.1.dot(&other.1)
    }
    fn first_non_finite(&self) -> Option<(usize, f64)> {
        self.0.first_non_finite().or_else(|| {
            self.1
                .first_non_finite()
                .map(|(i, v)| (i + self.0.len(), v))
        })
    }
    fn to_f64_vec(&self) -> Vec<f64> {
        let mut v = self.0.to_f64_vec();
        v.extend(self.1.to_f64_vec());
        v
    }
}
