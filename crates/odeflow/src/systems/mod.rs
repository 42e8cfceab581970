//! Built-in ODEs for tests, data and demos.
//!
//! Every system is written once, generic over the scalar type `D: DualNum` — plain `f32`/`f64`
//! for solving, nested dual numbers (num-dual) for the derivatives the inverse modified
//! equation needs. Invariants (energy, angular momentum, the Lotka–Volterra first integral)
//! come with the system; separable Hamiltonian systems also provide their drift/kick split
//! for the symplectic methods. State order is documented per system; Hamiltonian systems store
//! momenta first, `(p, q)`.
//!
//! [`SystemField`] turns a system into a field on CPU batches (one sample per row).

mod kepler;
mod lorenz;
mod oscillators;
mod population;

pub use kepler::Kepler;
pub use lorenz::Lorenz;
pub use oscillators::{DampedCubic, Harmonic, Linear, Pendulum, VanDerPol};
pub use population::LotkaVolterra;

use num_dual::DualNum;
use serde::Serialize;

use crate::error::ArgError;
use crate::real::Real;
use crate::solve::{Rhs, SplitRhs};
use crate::state::Batch;

/// `x` as a constant of the scalar type `D`.
#[inline]
pub(crate) fn cst<D: DualNum>(x: f64) -> D {
    D::from_f64(x).unwrap_or_else(D::zero)
}

/// An autonomous ODE `y' = f(y)`, generic over the scalar type.
pub trait System {
    /// Name as the CLI accepts it.
    fn name(&self) -> &'static str;
    /// State dimension.
    fn dim(&self) -> usize;
    /// Names of the state components, in storage order.
    fn state_names(&self) -> Vec<String>;
    /// `dy ← f(y)`.
    fn rhs<D: DualNum + Copy>(&self, y: &[D], dy: &mut [D]);
    /// Names of the conserved quantities (empty if none).
    fn invariant_names(&self) -> Vec<&'static str> {
        Vec::new()
    }
    /// Values of the conserved quantities at `y`, in the order of [`System::invariant_names`].
    fn invariants<D: DualNum + Copy>(&self, y: &[D]) -> Vec<D> {
        let _ = y;
        Vec::new()
    }
    /// True for separable Hamiltonian systems, which implement [`System::drift`] and
    /// [`System::kick`].
    fn is_separable(&self) -> bool {
        false
    }
    /// Drift part `(q' = ∂T/∂p, p' = 0)` of a separable Hamiltonian system; zeros otherwise.
    fn drift<D: DualNum + Copy>(&self, y: &[D], dy: &mut [D]) {
        let _ = y;
        dy.iter_mut().for_each(|v| *v = D::zero());
    }
    /// Kick part `(q' = 0, p' = −∂V/∂q)` of a separable Hamiltonian system; zeros otherwise.
    fn kick<D: DualNum + Copy>(&self, y: &[D], dy: &mut [D]) {
        let _ = y;
        dy.iter_mut().for_each(|v| *v = D::zero());
    }
    /// The exact solution `y(t)` from `y(0) = y0`, where known in closed form.
    fn exact(&self, t: f64, y0: &[f64]) -> Option<Vec<f64>> {
        let _ = (t, y0);
        None
    }
    /// A default initial state for demos.
    fn default_y0(&self) -> Vec<f64>;
}

/// The built-in systems, selectable by name.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "system", rename_all = "kebab-case")]
pub enum BuiltinSystem {
    /// `y' = λy`.
    Linear(Linear),
    /// `q'' = −ω²q`.
    Harmonic(Harmonic),
    /// `p' = −10 sin q`, `q' = p`.
    Pendulum(Pendulum),
    /// Damped cubic oscillator.
    DampedCubic(DampedCubic),
    /// Lorenz, scaled.
    Lorenz(Lorenz),
    /// Kepler two-body problem.
    Kepler(Kepler),
    /// Lotka–Volterra predator–prey.
    LotkaVolterra(LotkaVolterra),
    /// Van der Pol oscillator.
    VanDerPol(VanDerPol),
}

/// Names accepted by [`BuiltinSystem::from_name`].
pub const SYSTEM_NAMES: &[&str] = &[
    "linear",
    "harmonic",
    "pendulum",
    "damped-cubic",
    "lorenz",
    "kepler",
    "lotka-volterra",
    "van-der-pol",
];

impl BuiltinSystem {
    /// The system called `name` with its default parameters.
    pub fn from_name(name: &str) -> Result<Self, ArgError> {
        Ok(match name {
            "linear" => Self::Linear(Linear::default()),
            "harmonic" => Self::Harmonic(Harmonic::default()),
            "pendulum" => Self::Pendulum(Pendulum),
            "damped-cubic" | "cubic" => Self::DampedCubic(DampedCubic),
            "lorenz" => Self::Lorenz(Lorenz::default()),
            "kepler" => Self::Kepler(Kepler),
            "lotka-volterra" | "lv" => Self::LotkaVolterra(LotkaVolterra::default()),
            "van-der-pol" | "vdp" => Self::VanDerPol(VanDerPol::default()),
            _ => {
                return Err(ArgError::Unknown {
                    kind: "system",
                    name: name.to_string(),
                    known: SYSTEM_NAMES.join(", "),
                })
            }
        })
    }
}

macro_rules! dispatch {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            BuiltinSystem::Linear($s) => $e,
            BuiltinSystem::Harmonic($s) => $e,
            BuiltinSystem::Pendulum($s) => $e,
            BuiltinSystem::DampedCubic($s) => $e,
            BuiltinSystem::Lorenz($s) => $e,
            BuiltinSystem::Kepler($s) => $e,
            BuiltinSystem::LotkaVolterra($s) => $e,
            BuiltinSystem::VanDerPol($s) => $e,
        }
    };
}

impl System for BuiltinSystem {
    fn name(&self) -> &'static str {
        dispatch!(self, s => s.name())
    }
    fn dim(&self) -> usize {
        dispatch!(self, s => s.dim())
    }
    fn state_names(&self) -> Vec<String> {
        dispatch!(self, s => s.state_names())
    }
    fn rhs<D: DualNum + Copy>(&self, y: &[D], dy: &mut [D]) {
        dispatch!(self, s => s.rhs(y, dy))
    }
    fn invariant_names(&self) -> Vec<&'static str> {
        dispatch!(self, s => s.invariant_names())
    }
    fn invariants<D: DualNum + Copy>(&self, y: &[D]) -> Vec<D> {
        dispatch!(self, s => s.invariants(y))
    }
    fn is_separable(&self) -> bool {
        dispatch!(self, s => s.is_separable())
    }
    fn drift<D: DualNum + Copy>(&self, y: &[D], dy: &mut [D]) {
        dispatch!(self, s => s.drift(y, dy))
    }
    fn kick<D: DualNum + Copy>(&self, y: &[D], dy: &mut [D]) {
        dispatch!(self, s => s.kick(y, dy))
    }
    fn exact(&self, t: f64, y0: &[f64]) -> Option<Vec<f64>> {
        dispatch!(self, s => s.exact(t, y0))
    }
    fn default_y0(&self) -> Vec<f64> {
        dispatch!(self, s => s.default_y0())
    }
}

/// A system as a field on CPU batches: each row is one state.
#[derive(Debug, Clone)]
pub struct SystemField<Sys>(pub Sys);

impl<Sys: System> SystemField<Sys> {
    /// Checks that a batch has the system's dimension.
    pub fn check(&self, y: &Batch<impl Real>) -> Result<(), ArgError> {
        if y.cols() != self.0.dim() {
            return Err(crate::error::ShapeError {
                what: "state",
                expected: self.0.dim(),
                got: y.cols(),
            }
            .into());
        }
        Ok(())
    }
}

fn rowwise<T: Real>(y: &Batch<T>, dy: &mut Batch<T>, mut f: impl FnMut(&[T], &mut [T])) {
    let cols = y.cols();
    for (yr, dr) in y
        .as_slice()
        .chunks_exact(cols)
        .zip(dy.as_mut_slice().chunks_exact_mut(cols))
    {
        f(yr, dr);
    }
}

impl<Sys: System, T: Real + DualNum + Copy> Rhs<Batch<T>> for SystemField<Sys> {
    fn eval(&mut self, _t: f64, y: &Batch<T>, dy: &mut Batch<T>) {
        rowwise(y, dy, |a, b| self.0.rhs(a, b));
    }
}

impl<Sys: System, T: Real + DualNum + Copy> SplitRhs<Batch<T>> for SystemField<Sys> {
    fn drift(&mut self, _t: f64, y: &Batch<T>, dy: &mut Batch<T>) {
        rowwise(y, dy, |a, b| self.0.drift(a, b));
    }
    fn kick(&mut self, _t: f64, y: &Batch<T>, dy: &mut Batch<T>) {
        rowwise(y, dy, |a, b| self.0.kick(a, b));
    }
}

/// Largest deviation of each invariant from its initial value along the saved states
/// (`|I(y) − I(y₀)|`, maximised over saved points and the final state).
pub fn invariant_drift<Sys: System>(
    sys: &Sys,
    y0: &[f64],
    states: &[Vec<f64>],
) -> Vec<(String, f64)> {
    let i0 = sys.invariants(y0);
    let mut worst = vec![0.0f64; i0.len()];
    for y in states {
        for (w, (a, b)) in worst.iter_mut().zip(sys.invariants(y).iter().zip(&i0)) {
            // NaN (an invariant that overflowed: inf − inf) is kept, never dropped by max.
            let d = (a - b).abs();
            if d.is_nan() || d > *w {
                *w = d;
            }
        }
    }
    sys.invariant_names()
        .into_iter()
        .map(String::from)
        .zip(worst)
        .collect()
}
