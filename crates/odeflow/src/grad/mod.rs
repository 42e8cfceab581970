//! Gradient methods: how `∂L/∂θ` and `∂L/∂y₀` of a loss on `y(t₁)` are computed.
//!
//! All three are written once against [`VectorField`] and the solver's tableau, for every
//! [`State`] type, and are chosen per run ([`GradientMethod`]):
//!
//! 1. **`backprop`** (default) — the exact discrete adjoint of the Runge–Kutta scheme actually
//!    used: the forward solve tapes every stage of every accepted step ([`Recorder`]), and the
//!    backward pass runs [`StepBackward`] over the steps in reverse. The same gradient a tape
//!    through the solver loop would give, with one VJP per stage; memory grows with the
//!    number of stages taped.
//! 2. **`adjoint`** — the continuous adjoint ([`adjoint`]): integrate `a' = −aᵀ∂f/∂y`,
//!    `g' = −aᵀ∂f/∂θ` backwards with the state re-solved alongside; optional RMS seminorm.
//! 3. **`reversible`** — the memory-free discrete adjoint of Sander, Ablin, Peyré (NeurIPS
//!    2022, "Do Residual Neural Networks discretize Neural Ordinary Differential
//!    Equations?"): keep only `y(t₁)`, reconstruct each earlier state by a reverse step
//!    (Euler: `x̃ₙ = x̃ₙ₊₁ − h f(tₙ, x̃ₙ₊₁)`; Heun: a Heun step of size −h whose stages use the
//!    forward stages' times in reverse order, i.e. the roles of consecutive fields swapped),
//!    recompute the forward step at `x̃ₙ` with tapes and apply [`StepBackward`]. Memory does
//!    not grow with the number of steps; the gradient is approximate, with error O(h) for
//!    Euler and O(h²) for Heun when the field is smooth in time (depth).
//!
//! [`GradSolver`] runs these for explicit Runge–Kutta methods. The structure-preserving
//! methods have their own exact discrete adjoints: [`MidpointGradSolver`] differentiates the
//! implicit midpoint rule by the implicit-function theorem ([`implicit`]), and
//! [`SplitGradSolver`] the symplectic splittings of a field split into drift and kick with
//! VJPs of each part ([`SplitVectorField`], [`splitting`]). [`DiffSolve`] is the interface
//! they share, and [`FieldGradSolver`] picks the explicit or implicit solver by method.

pub mod adjoint;
pub mod diff_solve;
pub mod implicit;
mod recorder;
mod reversible;
mod rk_backward;
pub mod splitting;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_structured;
pub mod toy_field;

pub use diff_solve::{DiffSolve, FieldGradSolver};
pub use implicit::MidpointGradSolver;
pub use recorder::{Recorder, StepRecord, TapeArena};
pub use reversible::reconstruct;
pub use rk_backward::StepBackward;
pub use splitting::{SplitGradSolver, SplitVectorField};

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::{ArgError, SolveError};
use crate::field::{FieldRhs, VectorField};
use crate::solve::{solve, AdaptiveOptions, Method, SaveAt, SolveOptions, Stats, Stepping};
use crate::state::State;
use crate::tableau::ButcherTableau;
use adjoint::{AdjointRhs, AdjointState};

/// The final state kept by a forward pass, after checking that `backward` follows a
/// `forward` and that `∂L/∂y(t₁)` has the state's length.
fn checked_final_state<'a, S: State>(
    y1: Option<&'a S>,
    dl_dy1: &S,
) -> Result<&'a S, SolveError<S>> {
    let Some(y1) = y1 else {
        return Err(
            ArgError::invalid("backward", "called first", "run forward before backward").into(),
        );
    };
    if dl_dy1.len() != y1.len() {
        return Err(ArgError::Shape(crate::error::ShapeError {
            what: "dL/dy1",
            expected: y1.len(),
            got: dl_dy1.len(),
        })
        .into());
    }
    Ok(y1)
}

/// Which gradient method a run uses.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum GradientMethod {
    /// Exact discrete adjoint of the scheme (stored stage tapes).
    #[default]
    Backprop,
    /// Continuous adjoint, re-solving the state backwards.
    Adjoint(AdjointOptions),
    /// Memory-free reversible discrete adjoint (fixed grids).
    Reversible,
}

impl GradientMethod {
    /// `backprop`, `adjoint` or `reversible`.
    pub fn from_name(name: &str) -> Result<Self, ArgError> {
        match name {
            "backprop" => Ok(Self::Backprop),
            "adjoint" => Ok(Self::Adjoint(AdjointOptions::default())),
            "reversible" => Ok(Self::Reversible),
            _ => Err(ArgError::Unknown {
                kind: "gradient method",
                name: name.to_string(),
                known: "backprop, adjoint, reversible".into(),
            }),
        }
    }

    /// The method's name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Backprop => "backprop",
            Self::Adjoint(_) => "adjoint",
            Self::Reversible => "reversible",
        }
    }
}

/// Settings of the continuous adjoint's backward solve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdjointOptions {
    /// Relative tolerance of the backward solve (default: the forward one).
    pub rtol: Option<f64>,
    /// Absolute tolerance of the backward solve (default: the forward one).
    pub atol: Option<f64>,
    /// Leave the parameter gradient out of the error norm.
    pub seminorm: bool,
}

impl Default for AdjointOptions {
    fn default() -> Self {
        Self {
            rtol: None,
            atol: None,
            seminorm: true,
        }
    }
}

/// Work counters of one forward + backward pass.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct GradStats {
    /// The forward solve's counters.
    pub forward: Stats,
    /// Field evaluations in the backward pass (re-solves and recomputations).
    pub backward_nfe: usize,
    /// Vector–Jacobian products in the backward pass.
    pub backward_vjp: usize,
    /// Steps of the backward pass.
    pub backward_steps: usize,
    /// Largest number of stage tapes held at once.
    pub tapes_peak: usize,
}

/// A solve with a gradient: [`GradSolver::forward`], then [`GradSolver::backward`] with the
/// loss's cotangent. Workspaces (tapes, stage buffers) are kept between calls, so a training
/// loop allocates only in its first iteration.
pub struct GradSolver<S: State, F: VectorField<S>> {
    method: Method,
    tableau: Arc<ButcherTableau>,
    grad: GradientMethod,
    opts: SolveOptions,
    arena: TapeArena<F::Tape>,
    steps: Vec<StepRecord>,
    back: Option<StepBackward<S>>,
    y1: Option<S>,
    stats: GradStats,
}

impl<S: State, F: VectorField<S>> GradSolver<S, F> {
    /// Checks that `method`, `grad` and `opts` fit together: gradients need an explicit
    /// Runge–Kutta method, and `reversible` a fixed grid.
    pub fn new(method: Method, grad: GradientMethod, opts: SolveOptions) -> Result<Self, ArgError> {
        opts.validate()?;
        let tableau =
            match &method {
                Method::Explicit(t) => t.clone(),
                other => return Err(ArgError::MethodUnsuited {
                    method: other.name().to_string(),
                    reason:
                        "has no gradient method yet; training needs an explicit Runge–Kutta method"
                            .into(),
                }),
            };
        if let Stepping::Adaptive(_) = opts.stepping {
            if !tableau.is_embedded() {
                return Err(ArgError::MethodUnsuited {
                    method: tableau.name().to_string(),
                    reason: "has no embedded error estimate, so it cannot step adaptively".into(),
                });
            }
            if grad == GradientMethod::Reversible {
                return Err(ArgError::invalid(
                    "gradient method",
                    "reversible",
                    "needs a fixed grid (give a step size or a number of steps)",
                ));
            }
        }
        // Save times define a fixed grid (it steps exactly onto them), so they are kept;
        // adaptive solves only need the final state.
        let save = match opts.stepping {
            Stepping::Adaptive(_) => SaveAt::Final,
            _ => opts.save.clone(),
        };
        let opts = SolveOptions { save, ..opts };
        Ok(Self {
            method,
            tableau,
            grad,
            opts,
            arena: TapeArena::default(),
            steps: Vec::new(),
            back: None,
            y1: None,
            stats: GradStats::default(),
        })
    }

    /// The solve options (adaptive solves keep only the final state).
    pub fn options(&self) -> &SolveOptions {
        &self.opts
    }

    /// Replaces the stepping (e.g. a step size adapted during training).
    pub fn set_stepping(&mut self, stepping: Stepping) -> Result<(), ArgError> {
        let opts = SolveOptions {
            stepping,
            ..self.opts.clone()
        };
        let fresh = Self::new(self.method.clone(), self.grad.clone(), opts)?;
        self.opts = fresh.opts;
        Ok(())
    }

    /// The gradient method.
    pub fn gradient_method(&self) -> &GradientMethod {
        &self.grad
    }

    /// The accepted steps of the last `backprop` forward pass (start time, size, tapes);
    /// empty for the other gradient methods.
    pub fn accepted_steps(&self) -> &[StepRecord] {
        &self.steps
    }

    /// Counters of the last forward/backward pass.
    pub fn stats(&self) -> GradStats {
        self.stats
    }

    /// Solves from `y0` and returns `y(t₁)`, keeping what the backward pass needs.
    pub fn forward(&mut self, field: &mut F, y0: &S) -> Result<&S, SolveError<S>> {
        self.stats = GradStats::default();
        let sol = match self.grad {
            GradientMethod::Backprop => {
                let mut rec = Recorder::new(
                    field,
                    &mut self.arena,
                    &mut self.steps,
                    self.tableau.stages(),
                );
                let sol = solve(&self.method, &mut rec, y0, &self.opts);
                self.stats.tapes_peak = self.arena.in_use();
                sol?
            }
            _ => solve(&self.method, &mut FieldRhs(field), y0, &self.opts)?,
        };
        self.stats.forward = sol.stats;
        self.y1 = Some(sol.y_final);
        Ok(self.y1.as_ref().expect("just set"))
    }

    /// Given `dl_dy1 = ∂L/∂y(t₁)`, accumulates `∂L/∂θ` into `gtheta` and returns `∂L/∂y₀`.
    /// Call after [`GradSolver::forward`] with the same field and parameters.
    pub fn backward(
        &mut self,
        field: &mut F,
        dl_dy1: &S,
        gtheta: &mut F::Grad,
    ) -> Result<S, SolveError<S>> {
        let y1 = checked_final_state(self.y1.as_ref(), dl_dy1)?;
        if !self.back.as_ref().is_some_and(|b| b.fits(y1)) {
            // First call, or the batch size changed since the buffers were made.
            self.back = Some(StepBackward::new(&self.tableau, y1));
        }
        let back = self.back.as_mut().expect("just set");
        match &self.grad {
            GradientMethod::Backprop => {
                let mut lambda = dl_dy1.clone();
                let arena = &self.arena;
                for rec in self.steps.iter().rev() {
                    back.step(
                        &self.tableau,
                        rec.h,
                        field,
                        |i| arena.get(rec.tapes[i]),
                        &mut lambda,
                        gtheta,
                    );
                }
                self.stats.backward_steps = self.steps.len();
                self.stats.backward_vjp = self.steps.len() * back.vjps_per_step();
                Ok(lambda)
            }
            GradientMethod::Reversible => {
                let out = reversible::backward(
                    &self.tableau,
                    &self.opts,
                    field,
                    back,
                    &mut self.arena,
                    &mut self.steps,
                    y1,
                    dl_dy1,
                    gtheta,
                )?;
                self.stats.backward_nfe = out.nfe;
                self.stats.backward_vjp = out.vjp;
                self.stats.backward_steps = out.steps;
                self.stats.tapes_peak = self.arena.capacity();
                Ok(out.lambda)
            }
            GradientMethod::Adjoint(ao) => {
                let stepping = match &self.opts.stepping {
                    Stepping::Adaptive(a) => Stepping::Adaptive(AdaptiveOptions {
                        rtol: ao.rtol.unwrap_or(a.rtol),
                        atol: ao.atol.unwrap_or(a.atol),
                        h0: None,
                        ..a.clone()
                    }),
                    fixed => fixed.clone(),
                };
                let opts = SolveOptions {
                    t0: self.opts.t1,
                    t1: self.opts.t0,
                    stepping,
                    save: SaveAt::Final,
                    max_steps: self.opts.max_steps,
                };
                let z1 = AdjointState {
                    y: y1.clone(),
                    a: dl_dy1.clone(),
                    g: field.zero_grad(),
                    seminorm: ao.seminorm,
                };
                let mut tape = field.new_tape();
                let mut rhs = AdjointRhs {
                    field,
                    tape: &mut tape,
                    evals: 0,
                };
                let sol = solve(&self.method, &mut rhs, &z1, &opts).map_err(|e| match e {
                    SolveError::Invalid(a) => SolveError::Invalid(a),
                    SolveError::Failed(f) => {
                        let partial = f.partial.map_states(|z| z.a.clone());
                        SolveError::Failed(Box::new(crate::error::Failure {
                            reason: f.reason.clone(),
                            t: f.t,
                            h: f.h,
                            step: f.step,
                            partial,
                        }))
                    }
                })?;
                self.stats.backward_nfe = rhs.evals;
                self.stats.backward_vjp = rhs.evals;
                self.stats.backward_steps = sol.stats.steps;
                gtheta.axpy(<S::Scalar as num_traits::One>::one(), &sol.y_final.g);
                Ok(sol.y_final.a)
            }
        }
    }
}
