//! A separable Hamiltonian network: `H_θ(q, p) = T_θ(p) + V_θ(q)`, and its symplectic
//! gradient as a vector field.
//!
//! On states `(p, q)` (momenta first, as every Hamiltonian system of odeflow) of dimension
//! `2n`, the field is
//!
//! ```text
//! p' = −∇V_θ(q)   (the kick),        q' = ∇T_θ(p)   (the drift),
//! ```
//!
//! with `T_θ` and `V_θ` scalar tanh MLPs `n → hidden → hidden → 1` (orthogonal weights, zero
//! biases, as Zhu et al.'s field network). Integrated by a symplectic splitting
//! (Störmer–Verlet) the learned model is a symplectic map for every θ: it conserves a
//! modified Hamiltonian `H_θ + O(h²)` over exponentially long times, so energy errors stay
//! bounded instead of drifting (Hairer, Lubich, Wanner, *GNI*, IX.8). This is the structure
//! Zhu et al. (ICML 2022, §5) combine with symplectic integrators: the inverse modified
//! equation of a symplectic method for a Hamiltonian system is Hamiltonian, so the class of
//! Hamiltonian fields can represent what such a model must learn.
//!
//! Training needs the VJPs of the field with respect to θ and to the state — mixed second
//! derivatives of the MLPs, computed batched in closed form (see
//! [`super::scalar_mlp`]). The network is a [`VectorField`] (the full field, for any
//! explicit or implicit method), a [`SplitVectorField`] (drift and kick, for the
//! splittings), a [`Parameterized`] flat vector (kinetic parameters first), and a plain
//! [`Rhs`]/[`SplitRhs`] for rollouts with the solvers.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::scalar_mlp::{MlpTape, ScalarMlp};
use crate::field::{ParamView, Parameterized, VectorField};
use crate::grad::SplitVectorField;
use crate::nn::NnError;
use crate::real::Real;
use crate::solve::{Rhs, SplitPart, SplitRhs};
use crate::state::{Batch, State};

/// `H_θ(q, p) = T_θ(p) + V_θ(q)` on states `(p, q) ∈ ℝ^{2n}` ([module docs](self)).
#[derive(Debug, Clone)]
pub struct SeparableHamiltonian<T> {
    half: usize,
    hidden: usize,
    kinetic: ScalarMlp<T>,
    potential: ScalarMlp<T>,
    params: Vec<T>,
    p: Vec<T>,
    q: Vec<T>,
    g: Vec<T>,
    v: Vec<T>,
    scratch: Option<HamiltonianTape<T>>,
}

/// What one evaluation of a [`SeparableHamiltonian`] field records for its VJP.
#[derive(Debug, Clone, Default)]
pub struct HamiltonianTape<T> {
    kinetic: MlpTape<T>,
    potential: MlpTape<T>,
    has_kinetic: bool,
    has_potential: bool,
    rows: usize,
}

impl<T: Real> SeparableHamiltonian<T> {
    /// A network on states of dimension `dim` (even, at least 2) with `hidden` units per
    /// hidden layer, initialised from `seed`.
    pub fn new(dim: usize, hidden: usize, seed: u64) -> Result<Self, NnError> {
        if dim == 0 || !dim.is_multiple_of(2) {
            return Err(NnError::invalid(
                "state dimension",
                dim,
                "a separable Hamiltonian network needs states (p, q) of even dimension",
            ));
        }
        if hidden == 0 {
            return Err(NnError::invalid("hidden", 0, "must be positive"));
        }
        let half = dim / 2;
        let kinetic = ScalarMlp::new(half, hidden);
        let potential = ScalarMlp::new(half, hidden);
        let nk = kinetic.num_params();
        let mut params = vec![T::zero(); nk + potential.num_params()];
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (pk, pv) = params.split_at_mut(nk);
        kinetic.init(&mut rng, pk);
        potential.init(&mut rng, pv);
        Ok(Self {
            half,
            hidden,
            kinetic,
            potential,
            params,
            p: Vec::new(),
            q: Vec::new(),
            g: Vec::new(),
            v: Vec::new(),
            scratch: None,
        })
    }

    /// State dimension `2n`.
    pub fn dim(&self) -> usize {
        2 * self.half
    }

    /// Hidden width of both MLPs.
    pub fn hidden(&self) -> usize {
        self.hidden
    }

    /// The parameters of `T_θ` (kinetic) and of `V_θ` (potential), each in PyTorch's
    /// `nn.Sequential` order (`W₁, b₁, W₂, b₂, w₃, b₃`).
    pub fn split_params(&self) -> (&[T], &[T]) {
        self.params.split_at(self.kinetic.num_params())
    }

    fn check(&self, y: &Batch<T>) {
        assert_eq!(
            y.cols(),
            self.dim(),
            "SeparableHamiltonian: states have {} components, the network {}",
            y.cols(),
            self.dim()
        );
    }

    /// Copies the momenta and positions of `y` into contiguous `rows × n` buffers.
    fn split_state(&mut self, y: &Batch<T>) {
        let (n, rows) = (self.half, y.rows());
        self.p.resize(rows * n, T::zero());
        self.q.resize(rows * n, T::zero());
        self.g.resize(rows * n, T::zero());
        self.v.resize(rows * n, T::zero());
        for (r, row) in y.iter_rows().enumerate() {
            self.p[r * n..(r + 1) * n].copy_from_slice(&row[..n]);
            self.q[r * n..(r + 1) * n].copy_from_slice(&row[n..]);
        }
    }

    /// `H_θ(q, p)` of every row of `y`.
    pub fn hamiltonian(&mut self, y: &Batch<T>) -> Result<Vec<f64>, NnError> {
        if y.cols() != self.dim() {
            return Err(crate::error::ShapeError {
                what: "Hamiltonian network state",
                expected: self.dim(),
                got: y.cols(),
            }
            .into());
        }
        self.split_state(y);
        let nk = self.kinetic.num_params();
        let (pk, pv) = self.params.split_at(nk);
        let mut tape = MlpTape::default();
        let mut t = vec![T::zero(); y.rows()];
        let mut v = vec![T::zero(); y.rows()];
        self.kinetic.value(pk, &self.p, &mut t, &mut tape);
        self.potential.value(pv, &self.q, &mut v, &mut tape);
        Ok(t.iter().zip(&v).map(|(a, b)| (*a + *b).f64()).collect())
    }

    /// Evaluates the parts in `parts` (drift, kick) into `dy`, recording them in `tape`.
    fn eval_parts(
        &mut self,
        drift: bool,
        kick: bool,
        y: &Batch<T>,
        dy: &mut Batch<T>,
        tape: &mut HamiltonianTape<T>,
    ) {
        self.check(y);
        let (n, rows) = (self.half, y.rows());
        self.split_state(y);
        dy.resize(rows, 2 * n);
        dy.set_zero();
        let nk = self.kinetic.num_params();
        let (pk, pv) = self.params.split_at(nk);
        tape.rows = rows;
        tape.has_kinetic = drift;
        tape.has_potential = kick;
        if drift {
            self.kinetic
                .grad(pk, &self.p, &mut self.g, &mut tape.kinetic);
            for (r, row) in dy.as_mut_slice().chunks_exact_mut(2 * n).enumerate() {
                row[n..].copy_from_slice(&self.g[r * n..(r + 1) * n]);
            }
        }
        if kick {
            self.potential
                .grad(pv, &self.q, &mut self.g, &mut tape.potential);
            for (r, row) in dy.as_mut_slice().chunks_exact_mut(2 * n).enumerate() {
                for (d, g) in row[..n].iter_mut().zip(&self.g[r * n..(r + 1) * n]) {
                    *d = -*g;
                }
            }
        }
    }

    /// The VJP of the parts recorded in `tape` (those of `drift`, `kick` only).
    fn vjp_parts(
        &mut self,
        drift: bool,
        kick: bool,
        tape: &HamiltonianTape<T>,
        v: &Batch<T>,
        gy: &mut Batch<T>,
        gtheta: &mut [T],
    ) {
        let (n, rows) = (self.half, tape.rows);
        assert_eq!(
            (v.rows(), v.cols()),
            (rows, 2 * n),
            "SeparableHamiltonian: cotangent shape differs from the recorded evaluation"
        );
        gy.resize(rows, 2 * n);
        gy.set_zero();
        self.v.resize(rows * n, T::zero());
        self.g.resize(rows * n, T::zero());
        let nk = self.kinetic.num_params();
        let (pk, pv) = self.params.split_at(nk);
        let (gk, gv) = gtheta.split_at_mut(nk);
        if drift {
            assert!(
                tape.has_kinetic,
                "SeparableHamiltonian: the tape holds no drift"
            );
            // q' = ∇T(p): the cotangent of ∇T is v_q; it moves p.
            for (r, row) in v.iter_rows().enumerate() {
                self.v[r * n..(r + 1) * n].copy_from_slice(&row[n..]);
            }
            self.kinetic
                .grad_vjp(pk, &tape.kinetic, &self.v, &mut self.g, gk);
            for (r, row) in gy.as_mut_slice().chunks_exact_mut(2 * n).enumerate() {
                row[..n].copy_from_slice(&self.g[r * n..(r + 1) * n]);
            }
        }
        if kick {
            assert!(
                tape.has_potential,
                "SeparableHamiltonian: the tape holds no kick"
            );
            // p' = −∇V(q): the cotangent of ∇V is −v_p; it moves q.
            for (r, row) in v.iter_rows().enumerate() {
                for (d, x) in self.v[r * n..(r + 1) * n].iter_mut().zip(&row[..n]) {
                    *d = -*x;
                }
            }
            self.potential
                .grad_vjp(pv, &tape.potential, &self.v, &mut self.g, gv);
            for (r, row) in gy.as_mut_slice().chunks_exact_mut(2 * n).enumerate() {
                row[n..].copy_from_slice(&self.g[r * n..(r + 1) * n]);
            }
        }
    }

    fn untaped(&mut self, drift: bool, kick: bool, y: &Batch<T>, dy: &mut Batch<T>) {
        let mut tape = self.scratch.take().unwrap_or_default();
        self.eval_parts(drift, kick, y, dy, &mut tape);
        self.scratch = Some(tape);
    }
}

fn part_flags(part: SplitPart) -> (bool, bool) {
    match part {
        SplitPart::Drift => (true, false),
        SplitPart::Kick => (false, true),
    }
}

impl<T: Real> VectorField<Batch<T>> for SeparableHamiltonian<T> {
    type Tape = HamiltonianTape<T>;
    type Grad = Vec<T>;

    fn new_tape(&self) -> HamiltonianTape<T> {
        HamiltonianTape::default()
    }
    fn zero_grad(&self) -> Vec<T> {
        vec![T::zero(); self.params.len()]
    }
    fn eval(&mut self, _t: f64, y: &Batch<T>, dy: &mut Batch<T>) {
        self.untaped(true, true, y, dy);
    }
    fn eval_taped(&mut self, _t: f64, y: &Batch<T>, dy: &mut Batch<T>, tape: &mut Self::Tape) {
        self.eval_parts(true, true, y, dy, tape);
    }
    fn vjp(&mut self, tape: &Self::Tape, v: &Batch<T>, gy: &mut Batch<T>, gtheta: &mut Vec<T>) {
        self.vjp_parts(true, true, tape, v, gy, gtheta);
    }
}

impl<T: Real> SplitVectorField<Batch<T>> for SeparableHamiltonian<T> {
    type Tape = HamiltonianTape<T>;
    type Grad = Vec<T>;

    fn new_tape(&self) -> HamiltonianTape<T> {
        HamiltonianTape::default()
    }
    fn zero_grad(&self) -> Vec<T> {
        vec![T::zero(); self.params.len()]
    }
    fn eval_part(&mut self, part: SplitPart, _t: f64, y: &Batch<T>, dy: &mut Batch<T>) {
        let (d, k) = part_flags(part);
        self.untaped(d, k, y, dy);
    }
    fn eval_part_taped(
        &mut self,
        part: SplitPart,
        _t: f64,
        y: &Batch<T>,
        dy: &mut Batch<T>,
        tape: &mut Self::Tape,
    ) {
        let (d, k) = part_flags(part);
        self.eval_parts(d, k, y, dy, tape);
    }
    fn vjp_part(
        &mut self,
        part: SplitPart,
        tape: &Self::Tape,
        v: &Batch<T>,
        gy: &mut Batch<T>,
        gtheta: &mut Vec<T>,
    ) {
        let (d, k) = part_flags(part);
        self.vjp_parts(d, k, tape, v, gy, gtheta);
    }
}

impl<T: Real> Parameterized<T> for SeparableHamiltonian<T> {
    fn params(&self) -> &[T] {
        &self.params
    }
    fn params_mut(&mut self) -> &mut [T] {
        &mut self.params
    }
    fn param_views(&self) -> Vec<ParamView> {
        let mut v = self.kinetic.param_views("kinetic", 0);
        v.extend(
            self.potential
                .param_views("potential", self.kinetic.num_params()),
        );
        v
    }
}

impl<T: Real> Rhs<Batch<T>> for SeparableHamiltonian<T> {
    fn eval(&mut self, _t: f64, y: &Batch<T>, dy: &mut Batch<T>) {
        self.untaped(true, true, y, dy);
    }
}

impl<T: Real> SplitRhs<Batch<T>> for SeparableHamiltonian<T> {
    fn drift(&mut self, _t: f64, y: &Batch<T>, dy: &mut Batch<T>) {
        self.untaped(true, false, y, dy);
    }
    fn kick(&mut self, _t: f64, y: &Batch<T>, dy: &mut Batch<T>) {
        self.untaped(false, true, y, dy);
    }
}
