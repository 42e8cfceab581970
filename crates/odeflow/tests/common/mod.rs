//! Shared helpers of the solver-core integration tests: problems with closed-form solutions,
//! least-squares slope fits, and small conveniences around `Batch`.
//!
//! Every test file compiles this module separately and uses a different subset of it.
#![allow(dead_code)]

use odeflow::solve::SplitRhs;
use odeflow::{Batch, Method, Real};

/// Names of every explicit Runge–Kutta method in the catalogue with its classical order.
pub const EXPLICIT_METHODS: &[(&str, usize)] = &[
    ("euler", 1),
    ("midpoint", 2),
    ("heun", 2),
    ("ralston", 2),
    ("rk3", 3),
    ("ralston3", 3),
    ("rk4", 4),
    ("rk4-38", 4),
    ("ssprk3", 3),
    ("heun-euler", 2),
    ("fehlberg2", 2),
    ("bosh3", 3),
    ("dopri5", 5),
    ("tsit5", 5),
];

/// The embedded pairs with (order, embedded order).
pub const EMBEDDED_METHODS: &[(&str, usize, usize)] = &[
    ("heun-euler", 2, 1),
    ("fehlberg2", 2, 1),
    ("bosh3", 3, 2),
    ("dopri5", 5, 4),
    ("tsit5", 5, 4),
];

/// The splitting methods with their orders.
pub const SPLITTING_METHODS: &[(&str, usize)] = &[
    ("symplectic-euler-kd", 1),
    ("symplectic-euler-dk", 1),
    ("verlet", 2),
    ("verlet4", 4),
    ("verlet6", 6),
];

/// Looks a catalogue method up, panicking with its name if it is missing.
pub fn method(name: &str) -> Method {
    Method::from_name(name).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Least-squares slope of `log y` against `log x`.
pub fn loglog_slope(x: &[f64], y: &[f64]) -> f64 {
    assert_eq!(x.len(), y.len());
    assert!(x.len() >= 2, "need at least two points to fit a slope");
    let lx: Vec<f64> = x.iter().map(|v| v.ln()).collect();
    let ly: Vec<f64> = y.iter().map(|v| v.ln()).collect();
    linear_fit_slope(&lx, &ly)
}

/// Least-squares slope of `y` against `x`.
pub fn linear_fit_slope(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len() as f64;
    let mx = x.iter().sum::<f64>() / n;
    let my = y.iter().sum::<f64>() / n;
    let sxy: f64 = x.iter().zip(y).map(|(a, b)| (a - mx) * (b - my)).sum();
    let sxx: f64 = x.iter().map(|a| (a - mx) * (a - mx)).sum();
    sxy / sxx
}

/// Max-norm distance between two equally long slices.
pub fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

/// A scalar problem `y' = f(t, y)` on `[t0, t1]` with its exact solution.
#[derive(Clone, Copy)]
pub struct ScalarProblem {
    /// Name for messages.
    pub name: &'static str,
    /// Right-hand side.
    pub f: fn(f64, f64) -> f64,
    /// Exact solution `y(t)` (for the initial value `exact(t0)`).
    pub exact: fn(f64) -> f64,
    /// Start time.
    pub t0: f64,
    /// End time.
    pub t1: f64,
}

impl ScalarProblem {
    /// The field on one-component batches, in any precision.
    pub fn field<T: Real>(&self) -> impl FnMut(f64, &Batch<T>, &mut Batch<T>) + Copy {
        let f = self.f;
        move |t: f64, y: &Batch<T>, dy: &mut Batch<T>| {
            for (d, v) in dy.as_mut_slice().iter_mut().zip(y.as_slice()) {
                *d = T::of(f(t, v.f64()));
            }
        }
    }
    /// `y(t0)` as a one-component batch.
    pub fn y0<T: Real>(&self) -> Batch<T> {
        Batch::from_row(&[T::of((self.exact)(self.t0))])
    }
}

/// Non-autonomous linear: `y' = y cos t`, `y = e^{sin t}`.
pub const EXP_SIN: ScalarProblem = ScalarProblem {
    name: "y' = y cos t",
    f: |t, y| y * t.cos(),
    exact: |t| t.sin().exp(),
    t0: 0.0,
    t1: 2.0,
};

/// Nonlinear autonomous: the logistic equation `y' = y(1 − y)`, `y(0) = 0.1`,
/// `y = 1/(1 + 9e^{−t})`.
pub const LOGISTIC: ScalarProblem = ScalarProblem {
    name: "logistic",
    f: |_, y| y * (1.0 - y),
    exact: |t| 1.0 / (1.0 + 9.0 * (-t).exp()),
    t0: 0.0,
    t1: 3.0,
};

/// Nonlinear and non-autonomous: `y' = −2t y²`, `y(0) = 1`, `y = 1/(1 + t²)`.
pub const RATIONAL: ScalarProblem = ScalarProblem {
    name: "y' = -2t y^2",
    f: |t, y| -2.0 * t * y * y,
    exact: |t| 1.0 / (1.0 + t * t),
    t0: 0.0,
    t1: 2.0,
};

/// The exact Kepler orbit of eccentricity `e` started at pericentre (`Kepler::orbit(e)`),
/// state `(p₁, p₂, q₁, q₂)`: with the eccentric anomaly `E − e sin E = t` (period 2π),
/// `q = (cos E − e, √(1−e²) sin E)`, `p = (−sin E, √(1−e²) cos E)/(1 − e cos E)`.
pub fn kepler_exact(e: f64, t: f64) -> Vec<f64> {
    let mut big_e = t + e * t.sin();
    for _ in 0..100 {
        let d = (big_e - e * big_e.sin() - t) / (1.0 - e * big_e.cos());
        big_e -= d;
        if d.abs() < 1e-16 {
            break;
        }
    }
    let (s, c) = big_e.sin_cos();
    let w = (1.0 - e * e).sqrt();
    let den = 1.0 - e * c;
    vec![-s / den, w * c / den, c - e, w * s]
}

/// A split field from two plain closures (drift, kick) on batches.
pub struct Split<D, K> {
    /// Drift part.
    pub drift: D,
    /// Kick part.
    pub kick: K,
}

impl<T: Real, D, K> SplitRhs<Batch<T>> for Split<D, K>
where
    D: FnMut(f64, &Batch<T>, &mut Batch<T>),
    K: FnMut(f64, &Batch<T>, &mut Batch<T>),
{
    fn drift(&mut self, t: f64, y: &Batch<T>, dy: &mut Batch<T>) {
        (self.drift)(t, y, dy)
    }
    fn kick(&mut self, t: f64, y: &Batch<T>, dy: &mut Batch<T>) {
        (self.kick)(t, y, dy)
    }
}

/// The first component of a one-component batch as `f64`.
pub fn scalar<T: Real>(y: &Batch<T>) -> f64 {
    y.as_slice()[0].f64()
}
