//! Optimizers over flat parameter vectors: Adam (Kingma & Ba 2015, with PyTorch's
//! conventions: bias correction, L2 weight decay added to the gradient) and SGD with
//! momentum, optional Nesterov and weight decay (PyTorch's `torch.optim.SGD`).

use serde::{Deserialize, Serialize};

use crate::error::ArgError;
use crate::real::Real;

/// Which optimizer, with its hyper-parameters (the learning rate is the schedule's base).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum OptimizerConfig {
    /// Adam.
    Adam {
        /// Learning rate.
        lr: f64,
        /// β₁.
        #[serde(default = "default_beta1")]
        beta1: f64,
        /// β₂.
        #[serde(default = "default_beta2")]
        beta2: f64,
        /// ε.
        #[serde(default = "default_eps")]
        eps: f64,
        /// L2 penalty added to the gradient.
        #[serde(default)]
        weight_decay: f64,
    },
    /// Stochastic gradient descent with momentum.
    Sgd {
        /// Learning rate.
        lr: f64,
        /// Momentum (0 for plain SGD).
        #[serde(default)]
        momentum: f64,
        /// L2 penalty added to the gradient.
        #[serde(default)]
        weight_decay: f64,
        /// Nesterov momentum.
        #[serde(default)]
        nesterov: bool,
    },
}

fn default_beta1() -> f64 {
    0.9
}
fn default_beta2() -> f64 {
    0.999
}
fn default_eps() -> f64 {
    1e-8
}

impl OptimizerConfig {
    /// Adam with PyTorch's defaults and learning rate `lr`.
    pub fn adam(lr: f64) -> Self {
        Self::Adam {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
    /// SGD with momentum and weight decay.
    pub fn sgd(lr: f64, momentum: f64, weight_decay: f64) -> Self {
        Self::Sgd {
            lr,
            momentum,
            weight_decay,
            nesterov: false,
        }
    }
    /// The base learning rate.
    pub fn lr(&self) -> f64 {
        match self {
            Self::Adam { lr, .. } | Self::Sgd { lr, .. } => *lr,
        }
    }
    /// Checks the hyper-parameters.
    pub fn validate(&self) -> Result<(), ArgError> {
        let lr = self.lr();
        if !(lr > 0.0 && lr.is_finite()) {
            return Err(ArgError::invalid(
                "learning rate",
                lr,
                "must be positive and finite",
            ));
        }
        match *self {
            Self::Adam {
                beta1,
                beta2,
                eps,
                weight_decay,
                ..
            } => {
                for (n, b) in [("beta1", beta1), ("beta2", beta2)] {
                    if !(0.0..1.0).contains(&b) {
                        return Err(ArgError::invalid(n, b, "must lie in [0, 1)"));
                    }
                }
                if !(eps > 0.0) {
                    return Err(ArgError::invalid("eps", eps, "must be > 0"));
                }
                if !(weight_decay >= 0.0) {
                    return Err(ArgError::invalid(
                        "weight_decay",
                        weight_decay,
                        "must be ≥ 0",
                    ));
                }
            }
            Self::Sgd {
                momentum,
                weight_decay,
                ..
            } => {
                if !(0.0..1.0).contains(&momentum) {
                    return Err(ArgError::invalid(
                        "momentum",
                        momentum,
                        "must lie in [0, 1)",
                    ));
                }
                if !(weight_decay >= 0.0) {
                    return Err(ArgError::invalid(
                        "weight_decay",
                        weight_decay,
                        "must be ≥ 0",
                    ));
                }
            }
        }
        Ok(())
    }
}

/// The optimizer's moving state (what a checkpoint saves).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OptimizerState {
    /// Steps taken.
    pub t: u64,
    /// First moment (Adam) or momentum buffer (SGD).
    pub m: Vec<f64>,
    /// Second moment (Adam; empty for SGD).
    pub v: Vec<f64>,
}

/// An optimizer bound to a parameter count.
#[derive(Debug, Clone)]
pub struct Optimizer<T> {
    config: OptimizerConfig,
    t: u64,
    m: Vec<T>,
    v: Vec<T>,
}

impl<T: Real> Optimizer<T> {
    /// A fresh optimizer for `n` parameters.
    pub fn new(config: OptimizerConfig, n: usize) -> Result<Self, ArgError> {
        config.validate()?;
        let v = if matches!(config, OptimizerConfig::Adam { .. }) {
            vec![T::zero(); n]
        } else {
            Vec::new()
        };
        Ok(Self {
            config,
            t: 0,
            m: vec![T::zero(); n],
            v,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &OptimizerConfig {
        &self.config
    }

    /// One update `params ← params − step(grads)` at learning rate `lr`.
    pub fn step(&mut self, params: &mut [T], grads: &[T], lr: f64) {
        assert_eq!(
            params.len(),
            grads.len(),
            "optimizer: parameter and gradient sizes differ"
        );
        self.t += 1;
        match self.config {
            OptimizerConfig::Adam {
                beta1,
                beta2,
                eps,
                weight_decay,
                ..
            } => {
                let (b1, b2) = (T::of(beta1), T::of(beta2));
                let c1 = 1.0 - beta1.powi(self.t.min(i32::MAX as u64) as i32);
                let c2 = 1.0 - beta2.powi(self.t.min(i32::MAX as u64) as i32);
                let step = T::of(lr / c1);
                let c2s = T::of(c2.sqrt());
                let (eps, wd) = (T::of(eps), T::of(weight_decay));
                let one = T::one();
                for i in 0..params.len() {
                    let g = grads[i] + wd * params[i];
                    self.m[i] = b1 * self.m[i] + (one - b1) * g;
                    self.v[i] = b2 * self.v[i] + (one - b2) * g * g;
                    params[i] -= step * self.m[i] / (self.v[i].sqrt() / c2s + eps);
                }
            }
            OptimizerConfig::Sgd {
                momentum,
                weight_decay,
                nesterov,
                ..
            } => {
                let (mu, wd, lr) = (T::of(momentum), T::of(weight_decay), T::of(lr));
                for i in 0..params.len() {
                    let mut g = grads[i] + wd * params[i];
                    if momentum > 0.0 {
                        self.m[i] = if self.t == 1 { g } else { mu * self.m[i] + g };
                        g = if nesterov {
                            g + mu * self.m[i]
                        } else {
                            self.m[i]
                        };
                    }
                    params[i] -= lr * g;
                }
            }
        }
    }

    /// The state to checkpoint.
    pub fn state(&self) -> OptimizerState {
        OptimizerState {
            t: self.t,
            m: self.m.iter().map(|x| x.f64()).collect(),
            v: self.v.iter().map(|x| x.f64()).collect(),
        }
    }

    /// Restores a checkpointed state.
    pub fn restore(&mut self, s: &OptimizerState) -> Result<(), ArgError> {
        if s.m.len() != self.m.len() || s.v.len() != self.v.len() {
            return Err(ArgError::invalid(
                "optimizer state",
                format!("{} / {} entries", s.m.len(), s.v.len()),
                format!(
                    "expected {} / {} for this model and optimizer",
                    self.m.len(),
                    self.v.len()
                ),
            ));
        }
        self.t = s.t;
        self.m
            .iter_mut()
            .zip(&s.m)
            .for_each(|(a, b)| *a = T::of(*b));
        self.v
            .iter_mut()
            .zip(&s.v)
            .for_each(|(a, b)| *a = T::of(*b));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adam_first_step_moves_each_parameter_by_lr() {
        // With bias correction, Adam's first step is lr·g/(|g| + ε) ≈ lr·sign(g).
        let mut opt = Optimizer::<f64>::new(OptimizerConfig::adam(0.1), 3).unwrap();
        let mut p = vec![1.0, 2.0, 3.0];
        opt.step(&mut p, &[0.5, -2.0, 1e-3], 0.1);
        for (a, b) in p.iter().zip([0.9, 2.1, 2.9]) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
    }

    #[test]
    fn sgd_with_momentum_matches_pytorch_recurrence() {
        let mut opt = Optimizer::<f64>::new(OptimizerConfig::sgd(0.1, 0.9, 0.0), 1).unwrap();
        let mut p = vec![0.0];
        opt.step(&mut p, &[1.0], 0.1); // buf = 1, p = -0.1
        opt.step(&mut p, &[1.0], 0.1); // buf = 1.9, p = -0.29
        assert!((p[0] + 0.29).abs() < 1e-12);
    }

    #[test]
    fn adam_minimises_a_quadratic() {
        let mut opt = Optimizer::<f64>::new(OptimizerConfig::adam(0.05), 2).unwrap();
        let mut p = vec![3.0, -2.0];
        for _ in 0..2000 {
            let g = vec![2.0 * (p[0] - 1.0), 20.0 * (p[1] + 0.5)];
            opt.step(&mut p, &g, 0.05);
        }
        assert!(
            (p[0] - 1.0).abs() < 1e-3 && (p[1] + 0.5).abs() < 1e-3,
            "{p:?}"
        );
    }

    #[test]
    fn state_round_trip_and_bad_hyperparameters() {
        let mut a = Optimizer::<f32>::new(OptimizerConfig::adam(1e-3), 4).unwrap();
        a.step(&mut [1.0; 4], &[0.1, 0.2, 0.3, 0.4], 1e-3);
        let mut b = Optimizer::<f32>::new(OptimizerConfig::adam(1e-3), 4).unwrap();
        b.restore(&a.state()).unwrap();
        assert_eq!(a.state(), b.state());
        assert!(b
            .restore(&OptimizerState {
                t: 1,
                m: vec![0.0; 3],
                v: vec![0.0; 3]
            })
            .is_err());
        assert!(Optimizer::<f32>::new(OptimizerConfig::adam(0.0), 1).is_err());
        assert!(Optimizer::<f32>::new(OptimizerConfig::sgd(0.1, 1.5, 0.0), 1).is_err());
    }
}
