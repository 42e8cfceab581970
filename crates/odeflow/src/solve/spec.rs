//! [`SolverSpec`]: one serialisable description of "a method and its stepping" on `[0, 1]` —
//! a step count, a step size or a tolerance. It is what a run trains with, what a test grid
//! is made of, what the verdict compares, and what `config.toml`, `model.json`, `eval.json`
//! and `check.json` hold (keys `method`, `order`, and one of `steps` / `step_size` / `tol`).

use serde::{Deserialize, Serialize};

use super::{AdaptiveOptions, Method, SolveOptions, Stepping};
use crate::error::ArgError;
use crate::report::short;

/// A method with a step count, a step size, or a tolerance on `[0, 1]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SolverSpec {
    /// Method name.
    pub method: String,
    /// Classical order of the method.
    pub order: usize,
    /// Steps on [0, 1] (for a step size: the number of steps taken, `⌈1/h⌉`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<usize>,
    /// Step size, when the grid is given by a step size rather than a count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_size: Option<f64>,
    /// Tolerance (rtol = atol) of adaptive stepping.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tol: Option<f64>,
}

impl SolverSpec {
    /// The setting of `method` with `stepping` on `[0, 1]`.
    pub fn new(method: &Method, stepping: &Stepping) -> Self {
        let (steps, step_size, tol) = match stepping {
            Stepping::FixedCount(n) => (Some(*n), None, None),
            Stepping::FixedStep(h) => (Some(steps_of(*h)), Some(*h), None),
            Stepping::Adaptive(a) => (None, None, Some(a.rtol)),
        };
        Self {
            method: method.name().to_string(),
            order: method.order(),
            steps,
            step_size,
            tol,
        }
    }

    /// A method at `steps` equal steps.
    pub fn fixed(method: &str, steps: usize) -> Result<Self, ArgError> {
        if steps == 0 {
            return Err(ArgError::ZeroSteps);
        }
        let m = Method::from_name(method)?;
        Ok(Self::new(&m, &Stepping::FixedCount(steps)))
    }

    /// A method at step size `h` (the last step shortened to land on 1).
    pub fn step_size(method: &str, h: f64) -> Result<Self, ArgError> {
        if !(h > 0.0 && h.is_finite()) {
            return Err(ArgError::NonPositiveStep(h));
        }
        let m = Method::from_name(method)?;
        Ok(Self::new(&m, &Stepping::FixedStep(h)))
    }

    /// An adaptive method at tolerance `tol` (rtol = atol).
    pub fn adaptive(method: &str, tol: f64) -> Result<Self, ArgError> {
        let m = Method::from_name(method)?;
        if !m.is_adaptive() {
            return Err(ArgError::MethodUnsuited {
                method: method.into(),
                reason: "has no error estimate, so it cannot run at a tolerance".into(),
            });
        }
        if !(tol > 0.0 && tol.is_finite()) {
            return Err(ArgError::BadTolerance {
                name: "tol",
                value: tol,
            });
        }
        Ok(Self::new(
            &m,
            &Stepping::Adaptive(AdaptiveOptions::new(tol, tol)),
        ))
    }

    /// The method, looked up.
    pub fn method(&self) -> Result<Method, ArgError> {
        Method::from_name(&self.method)
    }

    /// The stepping this setting describes.
    pub fn stepping(&self) -> Stepping {
        match (self.step_size, self.steps, self.tol) {
            (Some(h), _, _) => Stepping::FixedStep(h),
            (_, Some(n), _) => Stepping::FixedCount(n),
            (_, _, Some(t)) => Stepping::Adaptive(AdaptiveOptions::new(t, t)),
            _ => Stepping::FixedCount(1),
        }
    }

    /// Solve options on `[0, 1]`.
    pub fn options(&self) -> SolveOptions {
        unit_options(self.stepping())
    }

    /// Solve options on `[t0, t1]` (step counts and step sizes keep their meaning on the
    /// longer or shorter interval).
    pub fn options_on(&self, t0: f64, t1: f64) -> SolveOptions {
        let mut o = self.options();
        o.t0 = t0;
        o.t1 = t1;
        o
    }

    /// `euler-2`, `euler-h0.37`, `dopri5-tol1e-4`: a name for files and runs.
    pub fn slug(&self) -> String {
        match (self.step_size, self.steps, self.tol) {
            (Some(h), _, _) => format!("{}-h{}", self.method, short(h)),
            (_, Some(n), _) => format!("{}-{n}", self.method),
            (_, _, Some(t)) => format!("{}-tol{}", self.method, short(t)),
            _ => self.method.clone(),
        }
    }

    /// `euler, 2 steps` / `euler, h = 0.37` / `dopri5, tol 1e-4`: a label for people.
    pub fn label(&self) -> String {
        match (self.step_size, self.steps, self.tol) {
            (Some(h), _, _) => format!("{}, h = {}", self.method, short(h)),
            (_, Some(1), _) => format!("{}, 1 step", self.method),
            (_, Some(n), _) => format!("{}, {n} steps", self.method),
            (_, _, Some(t)) => format!("{}, tol {}", self.method, short(t)),
            _ => self.method.clone(),
        }
    }

    /// Whether this solver is at least as accurate as `train`: the same or a higher order,
    /// the same or more steps (the same or a tighter tolerance), the same kind of stepping.
    /// These are the solvers the validity verdict compares (Ott et al., ICLR 2021).
    pub fn at_least_as_accurate_as(&self, train: &SolverSpec) -> bool {
        if self.order < train.order {
            return false;
        }
        match (train.tol, self.tol, train.steps, self.steps) {
            (None, None, Some(ts), Some(rs)) => rs >= ts,
            (Some(tt), Some(rt), _, _) => rt <= tt * (1.0 + 1e-12),
            _ => false,
        }
    }
}

/// Steps of size `h` needed to cover `[0, 1]`.
pub fn steps_of(h: f64) -> usize {
    ((1.0 / h) - 1e-9).ceil().max(1.0) as usize
}

/// Solve options on `[0, 1]` for a stepping.
pub fn unit_options(stepping: Stepping) -> SolveOptions {
    match stepping {
        Stepping::FixedCount(n) => SolveOptions::steps(0.0, 1.0, n),
        Stepping::FixedStep(h) => SolveOptions::fixed(0.0, 1.0, h),
        Stepping::Adaptive(a) => {
            let mut o = SolveOptions::adaptive(0.0, 1.0, a.rtol, a.atol);
            o.stepping = Stepping::Adaptive(a);
            o
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn solver_specs_name_round_trip_and_compare() {
        let s = SolverSpec::fixed("euler", 2).unwrap();
        assert_eq!(
            (s.slug().as_str(), s.label().as_str()),
            ("euler-2", "euler, 2 steps")
        );
        let h = SolverSpec::step_size("euler", 0.3).unwrap();
        assert_eq!(h.steps, Some(4));
        assert_eq!(h.slug(), "euler-h0.3");
        assert_eq!(h.stepping(), Stepping::FixedStep(0.3));
        assert_eq!(steps_of(0.25), 4);
        let t = SolverSpec::adaptive("dopri5", 1e-4).unwrap();
        assert_eq!(t.slug(), "dopri5-tol1e-4");
        assert_eq!(t.order, 5);
        assert!(SolverSpec::adaptive("rk4", 1e-4).is_err());
        assert!(SolverSpec::fixed("euler", 0).is_err());
        let json = serde_json::to_string(&h).unwrap();
        assert_eq!(serde_json::from_str::<SolverSpec>(&json).unwrap(), h);
        // Qualifying solvers: same or higher order, same or finer steps, same kind.
        let rk4_8 = SolverSpec::fixed("rk4", 8).unwrap();
        assert!(!SolverSpec::fixed("euler", 4096)
            .unwrap()
            .at_least_as_accurate_as(&rk4_8));
        assert!(!SolverSpec::fixed("rk4", 4)
            .unwrap()
            .at_least_as_accurate_as(&rk4_8));
        assert!(rk4_8.at_least_as_accurate_as(&rk4_8));
        let tight = SolverSpec::adaptive("dopri5", 1e-6).unwrap();
        assert!(tight.at_least_as_accurate_as(&t));
        assert!(!tight.at_least_as_accurate_as(&rk4_8));
    }

    #[test]
    fn options_deserialise() {
        let o = SolverSpec::adaptive("dopri5", 1e-3).unwrap().options();
        let back: SolveOptions = serde_json::from_str(&serde_json::to_string(&o).unwrap())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back.stepping, o.stepping);
    }
}
