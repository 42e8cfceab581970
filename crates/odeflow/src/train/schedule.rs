//! Learning-rate schedules: constant, step decay, exponential decay, and exponential decay
//! between two rates over a run (Zhu et al.: from 1e-2 to 1e-5).

use serde::{Deserialize, Serialize};

use crate::error::ArgError;

/// How the learning rate changes with the iteration `k` (counted from 0).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum LrSchedule {
    /// `lr(k) = lr₀`.
    #[default]
    Constant,
    /// `lr(k) = lr₀ · γ^⌊k / every⌋`, or at explicit milestones.
    Step {
        /// Decay factor.
        gamma: f64,
        /// Decay every this many iterations (ignored when `milestones` is not empty).
        #[serde(default)]
        every: u64,
        /// Iterations at which to decay.
        #[serde(default)]
        milestones: Vec<u64>,
    },
    /// `lr(k) = lr₀ · γ^k`.
    Exponential {
        /// Per-iteration factor.
        gamma: f64,
    },
    /// `lr(k) = lr₀ · (final/lr₀)^(k / (iterations − 1))`: geometric from `lr₀` to `final`.
    ExponentialTo {
        /// The rate at the last iteration.
        final_lr: f64,
        /// Length of the run.
        iterations: u64,
    },
}

impl LrSchedule {
    /// The learning rate at iteration `k` for base rate `lr0`.
    pub fn lr(&self, lr0: f64, k: u64) -> f64 {
        match self {
            Self::Constant => lr0,
            Self::Step {
                gamma,
                every,
                milestones,
            } => {
                let n = if milestones.is_empty() {
                    if *every == 0 {
                        0
                    } else {
                        k / every
                    }
                } else {
                    milestones.iter().filter(|&&m| k >= m).count() as u64
                };
                lr0 * gamma.powi(n as i32)
            }
            Self::Exponential { gamma } => lr0 * gamma.powf(k as f64),
            Self::ExponentialTo {
                final_lr,
                iterations,
            } => {
                if *iterations <= 1 {
                    return lr0;
                }
                let frac = (k.min(iterations - 1)) as f64 / (iterations - 1) as f64;
                lr0 * (final_lr / lr0).powf(frac)
            }
        }
    }

    /// Checks the parameters.
    pub fn validate(&self) -> Result<(), ArgError> {
        match self {
            Self::Step { gamma, .. } | Self::Exponential { gamma }
                if !(*gamma > 0.0 && gamma.is_finite()) =>
            {
                Err(ArgError::invalid(
                    "gamma",
                    gamma,
                    "must be positive and finite",
                ))
            }
            Self::ExponentialTo { final_lr, .. } if !(*final_lr > 0.0 && final_lr.is_finite()) => {
                Err(ArgError::invalid(
                    "final_lr",
                    final_lr,
                    "must be positive and finite",
                ))
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_give_the_documented_rates() {
        assert_eq!(LrSchedule::Constant.lr(0.1, 999), 0.1);
        let step = LrSchedule::Step {
            gamma: 0.1,
            every: 10,
            milestones: vec![],
        };
        assert!((step.lr(1.0, 9) - 1.0).abs() < 1e-15 && (step.lr(1.0, 25) - 0.01).abs() < 1e-15);
        let ms = LrSchedule::Step {
            gamma: 0.5,
            every: 0,
            milestones: vec![5, 8],
        };
        assert_eq!(
            (ms.lr(1.0, 4), ms.lr(1.0, 5), ms.lr(1.0, 9)),
            (1.0, 0.5, 0.25)
        );
        let e = LrSchedule::ExponentialTo {
            final_lr: 1e-5,
            iterations: 101,
        };
        assert!((e.lr(1e-2, 0) - 1e-2).abs() < 1e-15);
        assert!((e.lr(1e-2, 100) - 1e-5).abs() < 1e-15);
        assert!((e.lr(1e-2, 50) - 1e-2 * (1e-3f64).sqrt()).abs() < 1e-12);
        assert!(LrSchedule::Exponential { gamma: -1.0 }.validate().is_err());
    }
}
