//! The optimizer's update at the end of a captured iteration: Adam or SGD with momentum,
//! with the settings the kernels take (`adam_graph_f32`, `sgd_graph_f32`; both read the
//! step count and the learning rate on the device).

use crate::train::OptimizerConfig;

/// Adam's hyper-parameters as the kernel takes them (`OptimizerConfig::Adam`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamHyper {
    /// β₁ (f64, as the CPU's bias correction).
    pub beta1: f64,
    /// β₂.
    pub beta2: f64,
    /// ε.
    pub eps: f32,
    /// L2 weight decay.
    pub weight_decay: f32,
}

/// SGD with momentum's settings as `sgd_graph_f32` takes them (`OptimizerConfig::Sgd`,
/// PyTorch's `torch.optim.SGD`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SgdHyper {
    /// μ (0: plain SGD).
    pub momentum: f32,
    /// L2 weight decay.
    pub weight_decay: f32,
    /// Nesterov momentum.
    pub nesterov: bool,
}

/// The update a captured iteration ends with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PlanOptimizer {
    /// Adam.
    Adam(AdamHyper),
    /// SGD with momentum.
    Sgd(SgdHyper),
}

impl PlanOptimizer {
    /// The update of `cfg`.
    pub fn of(cfg: &OptimizerConfig) -> Self {
        match *cfg {
            OptimizerConfig::Sgd {
                momentum,
                weight_decay,
                nesterov,
                ..
            } => Self::Sgd(SgdHyper {
                momentum: momentum as f32,
                weight_decay: weight_decay as f32,
                nesterov,
            }),
            OptimizerConfig::Adam { .. } => {
                Self::Adam(AdamHyper::of(cfg).expect("an Adam configuration"))
            }
        }
    }

    /// Whether it keeps a second moment (Adam's `v`).
    pub fn has_second_moment(&self) -> bool {
        matches!(self, Self::Adam(_))
    }
}

impl From<AdamHyper> for PlanOptimizer {
    fn from(h: AdamHyper) -> Self {
        Self::Adam(h)
    }
}

impl AdamHyper {
    /// Adam's settings of `cfg`, or `None` for another optimizer.
    pub fn of(cfg: &OptimizerConfig) -> Option<Self> {
        match *cfg {
            OptimizerConfig::Adam {
                beta1,
                beta2,
                eps,
                weight_decay,
                ..
            } => Some(Self {
                beta1,
                beta2,
                eps: eps as f32,
                weight_decay: weight_decay as f32,
            }),
            _ => None,
        }
    }
}
