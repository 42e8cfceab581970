//! Step-size and tolerance adaptation during training (Ott, Katiyar, Hennig, Tiemann,
//! "ResNet After All? Neural ODEs and Their Numerical Solution", ICLR 2021, Algorithms 1–2,
//! with the constants of their official code).
//!
//! Every `interval` iterations, after the backward pass and before the optimizer step, the
//! batch accuracy of the training solver is compared with that of a more accurate *test
//! solver*. Disagreement above `threshold` means the model has started to exploit the
//! training solver's discretisation error: the step (or tolerance) is made finer. Agreement
//! means a coarser setting may be safe: it is tried, and kept only if the training solver at
//! the coarser setting still agrees with the test solver.
//!
//! * Fixed steps (`h` on `[0, 1]`): Euler is tested with midpoint at `h_test = h` if
//!   `1/h > 50`, else `√(h/50)`; midpoint with rk4 at `h_test = h` if `1/h² > 50`, else
//!   `(h²/50)^(1/4)` (the test solver's error is then ≲ the training solver's). Shrinking
//!   halves `h`, unless `2/h` exceeds the step cap, in which case the new step count is the
//!   mean of the cap and the current count; at the cap, `h` is kept with a warning (once).
//!   Growing proposes `h' = min(1.1 h, 1)`.
//! * Tolerances (adaptive training, initial 1e-6): `fehlberg2` is tested with `dopri5` at
//!   `tol/5`, `dopri5` with `dopri5` at `tol/10`; the test tolerance is tightened 10× until the
//!   test solve uses strictly more evaluations than the training solve. Disagreement halves
//!   `tol`; otherwise `1.1 tol` is accepted if it still agrees and the training NFE has not
//!   stayed constant over the last 5 checks.
//!
//! The adapters are pure state machines: they call a *probe* that returns the batch accuracy
//! (and NFE) of a given solver, so they are tested with scripted accuracies.

use serde::{Deserialize, Serialize};

use crate::error::ArgError;

/// Thresholds and intervals of the adaptation (defaults from the official code).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdaptationConfig {
    /// Check every this many iterations.
    pub interval: u64,
    /// Largest tolerated accuracy difference between training and test solver.
    pub threshold: f64,
    /// Largest number of fixed steps on `[0, 1]`.
    pub max_steps: f64,
    /// Growth factor of a step or tolerance.
    pub grow: f64,
    /// Largest step size.
    pub max_h: f64,
    /// Initial tolerance for adaptive training.
    pub initial_tol: f64,
    /// Checks over which a constant training NFE blocks tolerance growth.
    pub nfe_window: usize,
}

impl Default for AdaptationConfig {
    fn default() -> Self {
        Self {
            interval: 50,
            threshold: 0.1,
            max_steps: 500.0,
            grow: 1.1,
            max_h: 1.0,
            initial_tol: 1e-6,
            nfe_window: 5,
        }
    }
}

impl AdaptationConfig {
    /// Checks the settings.
    pub fn validate(&self) -> Result<(), ArgError> {
        if self.interval == 0 {
            return Err(ArgError::invalid(
                "adaptation interval",
                0,
                "must be at least 1",
            ));
        }
        if !(self.threshold >= 0.0 && self.threshold <= 1.0) {
            return Err(ArgError::invalid(
                "adaptation threshold",
                self.threshold,
                "must lie in [0, 1]",
            ));
        }
        if !(self.max_steps >= 1.0) {
            return Err(ArgError::invalid(
                "max_steps",
                self.max_steps,
                "must be ≥ 1",
            ));
        }
        if !(self.grow > 1.0) {
            return Err(ArgError::invalid("grow", self.grow, "must be > 1"));
        }
        if !(self.initial_tol > 0.0) {
            return Err(ArgError::BadTolerance {
                name: "initial_tol",
                value: self.initial_tol,
            });
        }
        Ok(())
    }
}

/// The solver a probe is asked about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ProbeSolver {
    /// A fixed-step method with step `h` on `[0, 1]`.
    Fixed {
        /// Method name.
        method: String,
        /// Step size.
        h: f64,
    },
    /// An adaptive method with tolerance `tol` (rtol = atol).
    Adaptive {
        /// Method name.
        method: String,
        /// Tolerance.
        tol: f64,
    },
}

/// What a check did.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum AdaptEvent {
    /// Agreement, and growing was rejected (or impossible).
    Kept,
    /// Disagreement: the setting was made finer.
    Refined {
        /// Accuracy difference that triggered it.
        gap: f64,
    },
    /// Agreement, and the coarser setting was accepted.
    Coarsened,
    /// Disagreement at the step cap: nothing finer is allowed.
    AtCap,
}

/// The test solver and its step for a fixed-step training method (see the module docs).
pub fn fixed_test_solver(train_method: &str, h: f64) -> Result<(String, f64), ArgError> {
    match train_method {
        "euler" => Ok((
            "midpoint".into(),
            if 1.0 / h > 50.0 { h } else { (h / 50.0).sqrt() },
        )),
        "midpoint" => Ok((
            "rk4".into(),
            if 1.0 / (h * h) > 50.0 {
                h
            } else {
                (h * h / 50.0).powf(0.25)
            },
        )),
        other => Err(ArgError::MethodUnsuited {
            method: other.to_string(),
            reason: "has no test solver for step adaptation (Ott et al. adapt euler and midpoint)"
                .into(),
        }),
    }
}

/// Step-size adaptation for fixed-step training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FixedStepAdapter {
    /// Settings.
    pub config: AdaptationConfig,
    /// Training method (`euler` or `midpoint`).
    pub method: String,
    /// Current step size on `[0, 1]`.
    pub h: f64,
    /// Whether the at-cap warning was given.
    pub warned_at_cap: bool,
}

impl FixedStepAdapter {
    /// An adapter starting from step `h`.
    pub fn new(config: AdaptationConfig, method: &str, h: f64) -> Result<Self, ArgError> {
        config.validate()?;
        fixed_test_solver(method, h)?;
        if !(h > 0.0 && h.is_finite()) {
            return Err(ArgError::NonPositiveStep(h));
        }
        Ok(Self {
            config,
            method: method.into(),
            h,
            warned_at_cap: false,
        })
    }

    /// Number of steps on `[0, 1]` at the current step size.
    pub fn steps(&self) -> f64 {
        1.0 / self.h
    }

    /// The step after a disagreement (halving, or the cap rule); `None` at the cap.
    pub fn refined_step(&self) -> Option<f64> {
        let n = self.steps();
        let cap = self.config.max_steps;
        if 2.0 * n <= cap {
            Some(self.h / 2.0)
        } else if n < cap - 1e-9 {
            Some(1.0 / ((cap + n) / 2.0))
        } else {
            None
        }
    }

    /// One check: `acc_train` is the training solver's batch accuracy at `h`; `probe` gives
    /// the accuracy of any solver on the same batch. Updates `h` and says what happened.
    pub fn check<E>(
        &mut self,
        acc_train: f64,
        probe: &mut impl FnMut(&ProbeSolver) -> Result<(f64, usize), E>,
    ) -> Result<AdaptEvent, E> {
        let (test_method, h_test) =
            fixed_test_solver(&self.method, self.h).expect("validated in new");
        let (acc_test, _) = probe(&ProbeSolver::Fixed {
            method: test_method,
            h: h_test,
        })?;
        let gap = (acc_test - acc_train).abs();
        if gap > self.config.threshold {
            return Ok(match self.refined_step() {
                Some(h) => {
                    self.h = h;
                    AdaptEvent::Refined { gap }
                }
                None => {
                    self.warned_at_cap = true;
                    AdaptEvent::AtCap
                }
            });
        }
        let candidate = (self.config.grow * self.h).min(self.config.max_h);
        if candidate <= self.h {
            return Ok(AdaptEvent::Kept);
        }
        let (acc_candidate, _) = probe(&ProbeSolver::Fixed {
            method: self.method.clone(),
            h: candidate,
        })?;
        if (acc_test - acc_candidate).abs() <= self.config.threshold {
            self.h = candidate;
            Ok(AdaptEvent::Coarsened)
        } else {
            Ok(AdaptEvent::Kept)
        }
    }
}

/// Tolerance adaptation for adaptive training (`fehlberg2` or `dopri5`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToleranceAdapter {
    /// Settings.
    pub config: AdaptationConfig,
    /// Training method.
    pub method: String,
    /// Current tolerance.
    pub tol: f64,
    /// Training NFE at the last checks (most recent last).
    pub nfe_history: Vec<usize>,
}

impl ToleranceAdapter {
    /// An adapter starting from `config.initial_tol`.
    pub fn new(config: AdaptationConfig, method: &str) -> Result<Self, ArgError> {
        config.validate()?;
        Self::test_divisor(method)?;
        Ok(Self {
            tol: config.initial_tol,
            config,
            method: method.into(),
            nfe_history: Vec::new(),
        })
    }

    fn test_divisor(method: &str) -> Result<f64, ArgError> {
        match method {
            "fehlberg2" => Ok(5.0),
            "dopri5" => Ok(10.0),
            other => Err(ArgError::MethodUnsuited {
                method: other.to_string(),
                reason: "has no test solver for tolerance adaptation (Ott et al. adapt fehlberg2 and dopri5)".into(),
            }),
        }
    }

    /// One check: `acc_train` and `nfe_train` from the training solve at `tol`.
    pub fn check<E>(
        &mut self,
        acc_train: f64,
        nfe_train: usize,
        probe: &mut impl FnMut(&ProbeSolver) -> Result<(f64, usize), E>,
    ) -> Result<AdaptEvent, E> {
        let mut test_tol = self.tol / Self::test_divisor(&self.method).expect("validated in new");
        let (mut acc_test, mut nfe_test) = probe(&ProbeSolver::Adaptive {
            method: "dopri5".into(),
            tol: test_tol,
        })?;
        // Tighten until the test solve does strictly more work than the training solve.
        let mut tries = 0;
        while nfe_test <= nfe_train && tries < 8 {
            test_tol /= 10.0;
            (acc_test, nfe_test) = probe(&ProbeSolver::Adaptive {
                method: "dopri5".into(),
                tol: test_tol,
            })?;
            tries += 1;
        }
        self.nfe_history.push(nfe_train);
        let w = self.config.nfe_window;
        if self.nfe_history.len() > w {
            self.nfe_history.remove(0);
        }
        let gap = (acc_test - acc_train).abs();
        if gap > self.config.threshold {
            self.tol /= 2.0;
            return Ok(AdaptEvent::Refined { gap });
        }
        let stuck = self.nfe_history.len() == w
            && self.nfe_history.iter().all(|&n| n == self.nfe_history[0]);
        if stuck {
            return Ok(AdaptEvent::Kept);
        }
        let candidate = self.config.grow * self.tol;
        let (acc_candidate, _) = probe(&ProbeSolver::Adaptive {
            method: self.method.clone(),
            tol: candidate,
        })?;
        if (acc_test - acc_candidate).abs() <= self.config.threshold {
            self.tol = candidate;
            Ok(AdaptEvent::Coarsened)
        } else {
            Ok(AdaptEvent::Kept)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Script = Vec<(ProbeSolver, f64, usize)>;

    /// A probe answering from a script, recording what it was asked.
    fn probe<'a>(
        script: &'a Script,
        asked: &'a mut Vec<ProbeSolver>,
    ) -> impl FnMut(&ProbeSolver) -> Result<(f64, usize), String> + 'a {
        move |p: &ProbeSolver| {
            asked.push(p.clone());
            script
                .iter()
                .find(|(q, _, _)| q == p)
                .map(|(_, a, n)| (*a, *n))
                .ok_or_else(|| format!("unscripted probe {p:?}"))
        }
    }

    fn fixed(m: &str, h: f64) -> ProbeSolver {
        ProbeSolver::Fixed {
            method: m.into(),
            h,
        }
    }

    #[test]
    fn test_step_rules() {
        assert_eq!(
            fixed_test_solver("euler", 0.01).unwrap(),
            ("midpoint".into(), 0.01)
        );
        let (m, h) = fixed_test_solver("euler", 0.5).unwrap();
        assert_eq!(m, "midpoint");
        assert!((h - 0.1).abs() < 1e-15); // √(0.5/50)
        assert_eq!(fixed_test_solver("midpoint", 0.1).unwrap().1, 0.1); // 1/h² = 100 > 50
        let (m, h) = fixed_test_solver("midpoint", 0.25).unwrap(); // 1/h² = 16 ≤ 50
        assert_eq!(m, "rk4");
        assert!((h - (0.0625f64 / 50.0).powf(0.25)).abs() < 1e-15);
        assert!(fixed_test_solver("rk4", 0.1).is_err());
    }

    #[test]
    fn disagreement_halves_the_step() {
        let mut a = FixedStepAdapter::new(AdaptationConfig::default(), "euler", 0.5).unwrap();
        let h_test = (0.5f64 / 50.0).sqrt();
        let script = vec![(fixed("midpoint", h_test), 0.9, 0)];
        let mut asked = Vec::new();
        let ev = a.check(0.6, &mut probe(&script, &mut asked)).unwrap();
        assert!(matches!(ev, AdaptEvent::Refined { gap } if (gap - 0.3).abs() < 1e-12));
        assert_eq!(a.h, 0.25);
        assert_eq!(asked.len(), 1);
    }

    #[test]
    fn agreement_grows_by_ten_percent_capped_at_one() {
        let mut a = FixedStepAdapter::new(AdaptationConfig::default(), "euler", 0.5).unwrap();
        let h_test = (0.5f64 / 50.0).sqrt();
        let script = vec![
            (fixed("midpoint", h_test), 0.9, 0),
            (fixed("euler", 0.55), 0.85, 0),
        ];
        let ev = a.check(0.88, &mut probe(&script, &mut Vec::new())).unwrap();
        assert_eq!(ev, AdaptEvent::Coarsened);
        assert!((a.h - 0.55).abs() < 1e-15);
        // Near 1 the candidate is capped at 1.
        let mut b = FixedStepAdapter::new(AdaptationConfig::default(), "euler", 0.95).unwrap();
        let ht = (0.95f64 / 50.0).sqrt();
        let script = vec![
            (fixed("midpoint", ht), 0.9, 0),
            (fixed("euler", 1.0), 0.9, 0),
        ];
        b.check(0.9, &mut probe(&script, &mut Vec::new())).unwrap();
        assert_eq!(b.h, 1.0);
        // At h = 1 there is nothing to grow to.
        let script = vec![(fixed("midpoint", (1.0f64 / 50.0).sqrt()), 0.9, 0)];
        assert_eq!(
            b.check(0.9, &mut probe(&script, &mut Vec::new())).unwrap(),
            AdaptEvent::Kept
        );
    }

    #[test]
    fn growth_rejected_when_the_coarser_solver_disagrees() {
        let mut a = FixedStepAdapter::new(AdaptationConfig::default(), "euler", 0.01).unwrap();
        let script = vec![
            (fixed("midpoint", 0.01), 0.9, 0),
            (fixed("euler", 1.1 * 0.01), 0.5, 0),
        ];
        assert_eq!(
            a.check(0.9, &mut probe(&script, &mut Vec::new())).unwrap(),
            AdaptEvent::Kept
        );
        assert_eq!(a.h, 0.01);
    }

    #[test]
    fn step_cap_formula_and_warning_at_cap() {
        let cfg = AdaptationConfig::default(); // cap 500 steps
                                               // 300 steps: halving would give 600 > 500, so the new count is (500 + 300)/2 = 400.
        let a = FixedStepAdapter::new(cfg.clone(), "euler", 1.0 / 300.0).unwrap();
        assert!((1.0 / a.refined_step().unwrap() - 400.0).abs() < 1e-9);
        // 200 steps: halving gives 400 ≤ 500.
        let b = FixedStepAdapter::new(cfg.clone(), "euler", 1.0 / 200.0).unwrap();
        assert!((b.refined_step().unwrap() - 1.0 / 400.0).abs() < 1e-15);
        // At the cap nothing finer is allowed; h is kept and the warning flag set.
        let mut c = FixedStepAdapter::new(cfg, "euler", 1.0 / 500.0).unwrap();
        assert!(c.refined_step().is_none());
        let script = vec![(fixed("midpoint", 1.0 / 500.0), 0.9, 0)];
        assert_eq!(
            c.check(0.5, &mut probe(&script, &mut Vec::new())).unwrap(),
            AdaptEvent::AtCap
        );
        assert_eq!(c.h, 1.0 / 500.0);
        assert!(c.warned_at_cap);
    }

    fn adaptive(m: &str, tol: f64) -> ProbeSolver {
        ProbeSolver::Adaptive {
            method: m.into(),
            tol,
        }
    }

    #[test]
    fn tolerance_rules() {
        let cfg = AdaptationConfig::default();
        // fehlberg2 at 1e-6 is tested with dopri5 at 2e-7; that solve uses fewer NFE than
        // training (20 ≤ 30), so the test tolerance is tightened to 2e-8 (40 NFE).
        let mut a = ToleranceAdapter::new(cfg.clone(), "fehlberg2").unwrap();
        let script = vec![
            (adaptive("dopri5", 1e-6 / 5.0), 0.9, 20),
            (adaptive("dopri5", 1e-6 / 50.0), 0.95, 40),
            (adaptive("fehlberg2", 1.1e-6), 0.94, 28),
        ];
        let mut asked = Vec::new();
        assert_eq!(
            a.check(0.93, 30, &mut probe(&script, &mut asked)).unwrap(),
            AdaptEvent::Coarsened
        );
        assert!((a.tol - 1.1e-6).abs() < 1e-18);
        assert_eq!(asked[1], adaptive("dopri5", 1e-6 / 50.0));
        // Disagreement halves the tolerance.
        let mut b = ToleranceAdapter::new(cfg.clone(), "dopri5").unwrap();
        let script = vec![(adaptive("dopri5", 1e-7), 0.95, 100)];
        assert!(matches!(
            b.check(0.7, 50, &mut probe(&script, &mut Vec::new()))
                .unwrap(),
            AdaptEvent::Refined { .. }
        ));
        assert_eq!(b.tol, 5e-7);
        // NFE constant over the last 5 checks blocks growth.
        let mut c = ToleranceAdapter::new(cfg, "dopri5").unwrap();
        let script = vec![
            (adaptive("dopri5", 1e-7), 0.9, 100),
            (adaptive("dopri5", 1.1e-6), 0.9, 50),
        ];
        let mut events = Vec::new();
        for _ in 0..5 {
            c.tol = 1e-6;
            events.push(
                c.check(0.9, 50, &mut probe(&script, &mut Vec::new()))
                    .unwrap(),
            );
        }
        assert_eq!(&events[..4], &[AdaptEvent::Coarsened; 4]);
        assert_eq!(events[4], AdaptEvent::Kept);
        assert!(ToleranceAdapter::new(AdaptationConfig::default(), "rk4").is_err());
    }
}
