//! The method catalogue: every name the CLI and configs accept.

use std::sync::Arc;

use serde::Serialize;

use super::implicit::ImplicitOptions;
use super::splitting::Splitting;
use crate::error::ArgError;
use crate::tableau::{catalogue, ButcherTableau};

/// A time-stepping method.
#[derive(Debug, Clone, PartialEq)]
pub enum Method {
    /// An explicit Runge–Kutta method (fixed-step or embedded pair).
    Explicit(Arc<ButcherTableau>),
    /// A symplectic splitting method for fields split into drift and kick.
    Splitting(Splitting),
    /// The implicit midpoint rule.
    Implicit(ImplicitOptions),
}

/// The family of a method, as `odeflow methods` prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MethodKind {
    /// Explicit Runge–Kutta, fixed step.
    Explicit,
    /// Explicit Runge–Kutta embedded pair (adaptive or fixed step).
    Embedded,
    /// Symplectic splitting for separable Hamiltonian systems.
    Symplectic,
    /// Implicit (symplectic for any Hamiltonian field).
    Implicit,
}

/// One row of the catalogue.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MethodInfo {
    /// Name as the CLI accepts it.
    pub name: String,
    /// Other accepted names.
    pub aliases: Vec<&'static str>,
    /// Order of the solution.
    pub order: usize,
    /// Order of the embedded error estimate's weights, if any.
    pub embedded_order: Option<usize>,
    /// Stages (sub-steps for splitting methods).
    pub stages: usize,
    /// Family.
    pub kind: MethodKind,
    /// First Same As Last.
    pub fsal: bool,
    /// Whether the method has its own dense output (others use Hermite interpolation).
    pub dense_output: bool,
    /// Whether the method is symplectic.
    pub symplectic: bool,
}

const ALIASES: &[(&str, &str)] = &[
    ("explicit-euler", "euler"),
    ("rk2", "midpoint"),
    ("explicit-midpoint", "midpoint"),
    ("trapezoid", "heun"),
    ("explicit-trapezoid", "heun"),
    ("kutta3", "rk3"),
    ("classic-rk4", "rk4"),
    ("rk38", "rk4-38"),
    ("three-eighths", "rk4-38"),
    ("rkf21", "fehlberg2"),
    ("bs3", "bosh3"),
    ("dp5", "dopri5"),
    ("dormand-prince", "dopri5"),
    ("symplectic-euler", "symplectic-euler-kd"),
    ("leapfrog", "verlet"),
    ("stormer-verlet", "verlet"),
    ("yoshida4", "verlet4"),
    ("yoshida6", "verlet6"),
    ("midpoint-implicit", "implicit-midpoint"),
];

fn splittings() -> Vec<Splitting> {
    vec![
        Splitting::symplectic_euler_kd(),
        Splitting::symplectic_euler_dk(),
        Splitting::verlet(),
        Splitting::verlet4(),
        Splitting::verlet6(),
    ]
}

impl Method {
    /// Looks a method up by name or alias.
    pub fn from_name(name: &str) -> Result<Method, ArgError> {
        let canonical = ALIASES
            .iter()
            .find(|(a, _)| *a == name)
            .map_or(name, |(_, c)| *c);
        if let Some(t) = catalogue::explicit(canonical) {
            return Ok(Method::Explicit(Arc::new(t.clone())));
        }
        if let Some(s) = splittings().into_iter().find(|s| s.name == canonical) {
            return Ok(Method::Splitting(s));
        }
        if canonical == "implicit-midpoint" {
            return Ok(Method::Implicit(ImplicitOptions::default()));
        }
        Err(ArgError::UnknownMethod {
            name: name.to_string(),
            known: method_catalogue()
                .iter()
                .map(|m| m.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })
    }

    /// A user tableau.
    pub fn from_tableau(t: ButcherTableau) -> Method {
        Method::Explicit(Arc::new(t))
    }

    /// The method's name.
    pub fn name(&self) -> &str {
        match self {
            Method::Explicit(t) => t.name(),
            Method::Splitting(s) => &s.name,
            Method::Implicit(_) => "implicit-midpoint",
        }
    }

    /// Classical order.
    pub fn order(&self) -> usize {
        match self {
            Method::Explicit(t) => t.order(),
            Method::Splitting(s) => s.order,
            Method::Implicit(_) => 2,
        }
    }

    /// The tableau of an explicit method.
    pub fn tableau(&self) -> Option<&ButcherTableau> {
        match self {
            Method::Explicit(t) => Some(t),
            _ => None,
        }
    }

    /// True for methods that can step adaptively.
    pub fn is_adaptive(&self) -> bool {
        matches!(self, Method::Explicit(t) if t.is_embedded())
    }

    /// The catalogue row of this method.
    pub fn info(&self) -> MethodInfo {
        let aliases = |n: &str| {
            ALIASES
                .iter()
                .filter(|(_, c)| *c == n)
                .map(|(a, _)| *a)
                .collect()
        };
        match self {
            Method::Explicit(t) => MethodInfo {
                name: t.name().to_string(),
                aliases: aliases(t.name()),
                order: t.order(),
                embedded_order: t.embedded_order(),
                stages: t.stages(),
                kind: if t.is_embedded() {
                    MethodKind::Embedded
                } else {
                    MethodKind::Explicit
                },
                fsal: t.is_fsal(),
                dense_output: t.dense().is_some(),
                symplectic: false,
            },
            Method::Splitting(s) => MethodInfo {
                name: s.name.clone(),
                aliases: aliases(&s.name),
                order: s.order,
                embedded_order: None,
                stages: s.stages(),
                kind: MethodKind::Symplectic,
                fsal: false,
                dense_output: false,
                symplectic: true,
            },
            Method::Implicit(_) => MethodInfo {
                name: "implicit-midpoint".into(),
                aliases: aliases("implicit-midpoint"),
                order: 2,
                embedded_order: None,
                stages: 1,
                kind: MethodKind::Implicit,
                fsal: false,
                dense_output: false,
                symplectic: true,
            },
        }
    }
}

/// Every built-in method, in catalogue order.
pub fn method_catalogue() -> Vec<MethodInfo> {
    let mut all: Vec<Method> = catalogue::EXPLICIT
        .iter()
        .map(|t| Method::Explicit(Arc::new(t.clone())))
        .collect();
    all.extend(splittings().into_iter().map(Method::Splitting));
    all.push(Method::Implicit(ImplicitOptions::default()));
    all.iter().map(Method::info).collect()
}
