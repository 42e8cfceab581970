//! The benchmark workloads: one training iteration (forward solve, backward pass, Adam step)
//! of the models this research runs, in `f32`, defined exactly like the peer scripts in
//! `bench/` so the numbers compare:
//!
//! | name | model | data | solver |
//! |---|---|---|---|
//! | `sphere2-euler256` | `simple_odenet` C=32 + Linear(2→2), CE | (128, 1, 2) | 256 Euler steps on [0, 1] |
//! | `sphere2-rk4-64` | same | same | 64 classic RK4 steps |
//! | `pendulum-mlp128-euler2` | MLP 2→128→128→2 tanh, MSE | 10 000 × 2 | 2 Euler steps of 0.02 |
//! | `mnist-odenet64-euler8` | `odenet` C=64 + Linear(784→10), CE | (128, 1, 28, 28) | 8 Euler steps |
//! | `cifar-odenet128-euler8` | `odenet` C=128 + Linear(3072→10), CE | (256, 3, 32, 32) | 8 Euler steps |
//!
//! Inputs (and the pendulum's regression targets) are seeded N(0, 1) data of the right
//! shape, as in the peer scripts (`bench/workloads.py`); `sphere2` uses concentric spheres.
//! The cost of an iteration does not depend on the values.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use super::classifier::ClassBatch;
use super::spec::{resolve_threads, ClassifierSpec, FieldSpec, NeuralClassifier};
use crate::data::spheres;
use crate::error::ArgError;
use crate::field::{ParallelField, Parameterized, VectorField};
use crate::grad::{GradSolver, GradientMethod};
use crate::nn::loss::mse;
use crate::nn::zoo::{mlp_field, MlpOptions};
use crate::nn::{Activation, Init, NeuralField};
use crate::solve::{Method, SolveOptions};
use crate::state::Batch;
use crate::train::{Optimizer, OptimizerConfig, StepMetrics, TrainError, Trainable};

/// A benchmark workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// `sphere2-euler256`.
    Sphere2Euler256,
    /// `sphere2-rk4-64`.
    Sphere2Rk4x64,
    /// `pendulum-mlp128-euler2`.
    PendulumMlp128Euler2,
    /// `mnist-odenet64-euler8`.
    MnistOdenet64Euler8,
    /// `cifar-odenet128-euler8`.
    CifarOdenet128Euler8,
}

impl Workload {
    /// Every workload, in table order.
    pub const ALL: [Workload; 5] = [
        Self::Sphere2Euler256,
        Self::Sphere2Rk4x64,
        Self::PendulumMlp128Euler2,
        Self::MnistOdenet64Euler8,
        Self::CifarOdenet128Euler8,
    ];

    /// The workload's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sphere2Euler256 => "sphere2-euler256",
            Self::Sphere2Rk4x64 => "sphere2-rk4-64",
            Self::PendulumMlp128Euler2 => "pendulum-mlp128-euler2",
            Self::MnistOdenet64Euler8 => "mnist-odenet64-euler8",
            Self::CifarOdenet128Euler8 => "cifar-odenet128-euler8",
        }
    }

    /// The ODE block's field of a classifier workload (`None` for the pendulum regressor).
    pub fn field(self) -> Option<FieldSpec> {
        match self {
            Self::Sphere2Euler256 | Self::Sphere2Rk4x64 => {
                Some(FieldSpec::SimpleOdenet { channels: 32 })
            }
            Self::MnistOdenet64Euler8 => Some(FieldSpec::Odenet { channels: 64 }),
            Self::CifarOdenet128Euler8 => Some(FieldSpec::Odenet { channels: 128 }),
            Self::PendulumMlp128Euler2 => None,
        }
    }

    /// The training solver of a classifier workload: method name and steps on `[0, 1]`.
    pub fn solver(self) -> (&'static str, usize) {
        match self {
            Self::Sphere2Euler256 => ("euler", 256),
            Self::Sphere2Rk4x64 => ("rk4", 64),
            Self::PendulumMlp128Euler2 => ("euler", 2),
            Self::MnistOdenet64Euler8 | Self::CifarOdenet128Euler8 => ("euler", 8),
        }
    }

    /// Looks a workload up by name.
    pub fn from_name(name: &str) -> Result<Self, ArgError> {
        Self::ALL
            .into_iter()
            .find(|w| w.name() == name)
            .ok_or_else(|| ArgError::Unknown {
                kind: "workload",
                name: name.to_string(),
                known: Self::ALL
                    .iter()
                    .map(|w| w.name())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}

/// The `pendulum-mlp128-euler2` problem: the MLP's sizes and options, and the seeded inputs
/// and regression targets — shared by the CPU runner and the device one
/// (`odeflow::cuda::PendulumCuda`, feature `cuda`), so both train the same model on the same
/// data.
pub struct PendulumProblem {
    /// MLP sizes `2 → 128 → 128 → 2`.
    pub dims: [usize; 4],
    /// Tanh, PyTorch's default initialisation, autonomous.
    pub opts: MlpOptions,
    /// Inputs, `10 000 × 2`, N(0, 1).
    pub x: Batch<f32>,
    /// Targets, `10 000 × 2`, N(0, 1).
    pub y: Batch<f32>,
    /// End of the integration interval `[0, t1]`.
    pub t1: f64,
    /// Euler steps.
    pub steps: usize,
}

impl PendulumProblem {
    /// The problem for `seed` (the MLP's parameters come from `mlp_field(dims, opts, seed)`).
    pub fn new(seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let n = 10_000;
        let mut normal = |len: usize| -> Vec<f32> {
            (0..len)
                .map(|_| rng.sample::<f32, _>(StandardNormal))
                .collect()
        };
        let x = Batch::from_vec(n, 2, normal(2 * n)).expect("sized");
        let y = Batch::from_vec(n, 2, normal(2 * n)).expect("sized");
        Self {
            dims: [2, 128, 128, 2],
            opts: MlpOptions {
                activation: Activation::Tanh,
                init: Init::PyTorchDefault,
                time_input: false,
            },
            x,
            y,
            t1: 0.04,
            steps: 2,
        }
    }
}

/// The pendulum workload's field.
type MlpField = ParallelField<f32, NeuralField<f32>>;

enum Runner {
    Classifier {
        model: Box<NeuralClassifier<f32>>,
        batch: ClassBatch<f32>,
    },
    Regressor {
        field: Box<MlpField>,
        solver: Box<GradSolver<Batch<f32>, MlpField>>,
        x: Batch<f32>,
        y: Batch<f32>,
        dy: Batch<f32>,
    },
}

/// A prepared workload: model, data, optimizer.
pub struct WorkloadRunner {
    workload: Workload,
    runner: Runner,
    params: Vec<f32>,
    grad: Vec<f32>,
    opt: Optimizer<f32>,
}

fn random_images(
    rng: &mut ChaCha8Rng,
    n: usize,
    shape: [usize; 3],
    classes: usize,
) -> ClassBatch<f32> {
    let len = n * shape.iter().product::<usize>();
    let x = Batch::from_vec(
        n,
        len / n,
        (0..len)
            .map(|_| rng.sample::<f32, _>(StandardNormal))
            .collect(),
    )
    .expect("sized above");
    ClassBatch {
        x,
        labels: (0..n).map(|_| rng.random_range(0..classes)).collect(),
    }
}

impl WorkloadRunner {
    /// Builds the model and data of `workload` with gradient method `grad`.
    pub fn new(workload: Workload, grad: GradientMethod, seed: u64) -> Result<Self, ArgError> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let classifier = |shape: &[usize], classes| {
            let field = workload.field().expect("a classifier workload");
            let (method, steps) = workload.solver();
            ClassifierSpec::new(field).build::<f32>(
                shape,
                classes,
                Method::from_name(method)?,
                grad.clone(),
                SolveOptions::steps(0.0, 1.0, steps),
                seed,
            )
        };
        let runner = match workload {
            Workload::Sphere2Euler256 | Workload::Sphere2Rk4x64 => {
                let model = classifier(&[1, 2], 2)?;
                let d = spheres::<f32>(2, 128, seed)?;
                Runner::Classifier {
                    model: Box::new(model),
                    batch: ClassBatch {
                        x: d.inputs().clone(),
                        labels: d.labels().to_vec(),
                    },
                }
            }
            Workload::MnistOdenet64Euler8 => {
                let model = classifier(&[1, 28, 28], 10)?;
                Runner::Classifier {
                    model: Box::new(model),
                    batch: random_images(&mut rng, 128, [1, 28, 28], 10),
                }
            }
            Workload::CifarOdenet128Euler8 => {
                let model = classifier(&[3, 32, 32], 10)?;
                Runner::Classifier {
                    model: Box::new(model),
                    batch: random_images(&mut rng, 256, [3, 32, 32], 10),
                }
            }
            Workload::PendulumMlp128Euler2 => {
                let p = PendulumProblem::new(seed);
                let field = mlp_field::<f32>(&p.dims, &p.opts, seed)
                    .map_err(|e| ArgError::invalid("model", "mlp", e.to_string()))?;
                let field = ParallelField::new(field, resolve_threads(0));
                let solver = GradSolver::new(
                    Method::from_name("euler")?,
                    grad,
                    SolveOptions::steps(0.0, p.t1, p.steps),
                )?;
                let (x, y) = (p.x, p.y);
                let n = x.rows();
                Runner::Regressor {
                    field: Box::new(field),
                    solver: Box::new(solver),
                    x,
                    y,
                    dy: Batch::zeros(n, 2),
                }
            }
        };
        let n = match &runner {
            Runner::Classifier { model, .. } => model.num_params(),
            Runner::Regressor { field, .. } => field.num_params(),
        };
        let mut params = vec![0.0; n];
        match &runner {
            Runner::Classifier { model, .. } => model.read_params(&mut params),
            Runner::Regressor { field, .. } => params.copy_from_slice(field.params()),
        }
        Ok(Self {
            workload,
            runner,
            params,
            grad: vec![0.0; n],
            opt: Optimizer::new(OptimizerConfig::adam(1e-3), n)?,
        })
    }

    /// The workload.
    pub fn workload(&self) -> Workload {
        self.workload
    }

    /// Number of parameters.
    pub fn num_params(&self) -> usize {
        self.params.len()
    }

    /// The classifier and its batch (`None` for the pendulum regressor), for a device twin.
    pub fn classifier(&self) -> Option<(&NeuralClassifier<f32>, &ClassBatch<f32>)> {
        match &self.runner {
            Runner::Classifier { model, batch } => Some((model, batch)),
            Runner::Regressor { .. } => None,
        }
    }

    /// One training iteration: forward, backward, Adam step.
    pub fn iteration(&mut self, it: u64) -> Result<StepMetrics, TrainError> {
        self.grad.iter_mut().for_each(|g| *g = 0.0);
        let m = match &mut self.runner {
            Runner::Classifier { model, batch } => {
                model.write_params(&self.params);
                model.loss_and_grad(batch, &mut self.grad, it)?
            }
            Runner::Regressor {
                field,
                solver,
                x,
                y,
                dy,
            } => {
                field.params_mut().copy_from_slice(&self.params);
                let y1 = solver
                    .forward(field, x)
                    .map_err(|e| TrainError::solver(it, e))?;
                let loss = mse(y1, y, dy).map_err(|e| {
                    TrainError::Arg(ArgError::invalid("mse", "shapes", e.to_string()))
                })?;
                let mut g = field.zero_grad();
                solver
                    .backward(field, dy, &mut g)
                    .map_err(|e| TrainError::solver(it, e))?;
                self.grad.copy_from_slice(&g);
                let s = solver.stats();
                StepMetrics {
                    loss,
                    nfe_forward: s.forward.nfe,
                    nfe_backward: s.backward_vjp,
                    ..Default::default()
                }
            }
        };
        self.opt.step(&mut self.params, &self.grad, 1e-3);
        Ok(m)
    }
}
