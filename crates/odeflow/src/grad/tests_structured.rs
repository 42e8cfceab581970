//! The structure-preserving gradient solvers against finite differences of independent
//! forward solves: the splitting adjoint against `solve_split`, the implicit-function-theorem
//! gradient of the implicit midpoint rule against `solve` with a tight implicit tolerance.

use super::toy_field::TanhField;
use super::*;
use crate::field::{FieldRhs, Parameterized};
use crate::models::hamiltonian::SeparableHamiltonian;
use crate::solve::{solve_split, ImplicitOptions, SplitPart};
use crate::state::Batch;
use crate::FailReason;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn random_batch(rows: usize, cols: usize, scale: f64, seed: u64) -> Batch<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let v = (0..rows * cols)
        .map(|_| rng.random_range(-scale..scale))
        .collect();
    Batch::from_vec(rows, cols, v).unwrap()
}

/// ‖a − b‖ / ‖b‖.
fn rel(a: &[f64], b: &[f64]) -> f64 {
    let num: f64 = a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum();
    let den: f64 = b.iter().map(|y| y * y).sum();
    (num / den).sqrt()
}

/// Central differences of `loss` in every parameter and every initial-state component.
fn fd<F: Parameterized<f64> + Clone>(
    field: &F,
    y0: &Batch<f64>,
    mut loss: impl FnMut(&mut F, &Batch<f64>) -> f64,
) -> (Vec<f64>, Vec<f64>) {
    let eps = 1e-6;
    let mut gt = Vec::new();
    for i in 0..field.num_params() {
        let (mut fp, mut fm) = (field.clone(), field.clone());
        fp.params_mut()[i] += eps;
        fm.params_mut()[i] -= eps;
        gt.push((loss(&mut fp, y0) - loss(&mut fm, y0)) / (2.0 * eps));
    }
    let mut gy = Vec::new();
    for i in 0..y0.len() {
        let (mut yp, mut ym) = (y0.clone(), y0.clone());
        yp.as_mut_slice()[i] += eps;
        ym.as_mut_slice()[i] -= eps;
        let mut f = field.clone();
        gy.push((loss(&mut f, &yp) - loss(&mut f, &ym)) / (2.0 * eps));
    }
    (gt, gy)
}

#[test]
fn splitting_backprop_matches_finite_differences_of_solve_split() {
    let y0 = random_batch(3, 2, 1.0, 7);
    let w = random_batch(3, 2, 1.0, 8);
    for name in [
        "verlet",
        "verlet4",
        "symplectic-euler-kd",
        "symplectic-euler-dk",
    ] {
        let method = Method::from_name(name).unwrap();
        let opts = SolveOptions::steps(0.0, 0.3, 3);
        let mut field = SeparableHamiltonian::<f64>::new(2, 6, 11).unwrap();
        let mut gs = SplitGradSolver::new(&method, opts.clone()).unwrap();
        let y1 = gs.forward(&mut field, &y0).unwrap().clone();
        // The forward pass is the splitting solve itself, evaluation for evaluation.
        let reference = solve_split(&method, &mut field.clone(), &y0, &opts).unwrap();
        assert_eq!(y1.as_slice(), reference.y_final.as_slice(), "{name}");
        assert_eq!(gs.stats().forward.nfe, reference.stats.nfe, "{name}");
        let mut gt = SplitVectorField::<Batch<f64>>::zero_grad(&field);
        let gy = gs.backward(&mut field, &w, &mut gt).unwrap();
        let (ft, fy) = fd(&field, &y0, |f, y| {
            solve_split(&method, f, y, &opts).unwrap().y_final.dot(&w)
        });
        let (et, ey) = (rel(&gt, &ft), rel(gy.as_slice(), &fy));
        assert!(et < 1e-7 && ey < 1e-7, "{name}: θ {et:.2e}, y0 {ey:.2e}");
    }
}

#[test]
fn splitting_gradient_solver_refuses_other_methods_and_adaptive_steps() {
    let rk4 = Method::from_name("rk4").unwrap();
    let opts = SolveOptions::steps(0.0, 1.0, 2);
    assert!(matches!(
        SplitGradSolver::<Batch<f64>, SeparableHamiltonian<f64>>::new(&rk4, opts),
        Err(ArgError::MethodUnsuited { .. })
    ));
    let verlet = Method::from_name("verlet").unwrap();
    let adaptive = SolveOptions::adaptive(0.0, 1.0, 1e-6, 1e-6);
    assert!(
        SplitGradSolver::<Batch<f64>, SeparableHamiltonian<f64>>::new(&verlet, adaptive).is_err()
    );
    let verlet = FieldGradSolver::<Batch<f64>, TanhField<f64>>::new(
        &verlet,
        GradientMethod::Backprop,
        SolveOptions::steps(0.0, 1.0, 2),
    );
    assert!(matches!(verlet, Err(ArgError::MethodUnsuited { .. })));
}

fn tight_midpoint() -> Method {
    Method::Implicit(ImplicitOptions {
        tol: 1e-14,
        max_iterations: 400,
        ..ImplicitOptions::default()
    })
}

/// `L = Σ w ⊙ y(t₁)` through `solve` with the implicit midpoint rule.
fn midpoint_loss<F: VectorField<Batch<f64>>>(
    f: &mut F,
    y: &Batch<f64>,
    opts: &SolveOptions,
    w: &Batch<f64>,
) -> f64 {
    solve(&tight_midpoint(), &mut FieldRhs(f), y, opts)
        .unwrap()
        .y_final
        .dot(w)
}

fn midpoint_gradient<F: VectorField<Batch<f64>, Grad = Vec<f64>>>(
    field: &mut F,
    y0: &Batch<f64>,
    w: &Batch<f64>,
    opts: &SolveOptions,
) -> (Batch<f64>, Vec<f64>, Vec<f64>, GradStats) {
    let mut gs = MidpointGradSolver::new(&tight_midpoint(), opts.clone()).unwrap();
    let y1 = gs.forward(field, y0).unwrap().clone();
    let mut gt = field.zero_grad();
    let gy = gs.backward(field, w, &mut gt).unwrap();
    // A second pass starts from the first one's midpoints and adjoints (warm start) and
    // must give the same numbers to the tolerance, with fewer iterations.
    let first = gs.stats();
    gs.forward(field, y0).unwrap();
    let mut gt2 = field.zero_grad();
    let gy2 = gs.backward(field, w, &mut gt2).unwrap();
    assert!(rel(&gt2, &gt) < 1e-12 && rel(gy2.as_slice(), gy.as_slice()) < 1e-12);
    assert!(gs.stats().forward.implicit_iterations < first.forward.implicit_iterations);
    (y1, gy.into_vec(), gt, first)
}

#[test]
fn implicit_midpoint_gradient_matches_finite_differences_of_the_implicit_solve() {
    let opts = SolveOptions::steps(0.0, 0.6, 4);
    let y0 = random_batch(4, 3, 1.0, 3);
    let w = random_batch(4, 3, 1.0, 4);
    // A time-dependent field: the midpoint is evaluated at t + h/2.
    let mut field = TanhField::<f64>::random(3, 1.5, 5);
    let (y1, gy, gt, stats) = midpoint_gradient(&mut field, &y0, &w, &opts);
    let reference = solve(&tight_midpoint(), &mut FieldRhs(&mut field), &y0, &opts).unwrap();
    assert!(rel(y1.as_slice(), reference.y_final.as_slice()) < 1e-13);
    assert!(stats.backward_vjp > 4, "the adjoint iterated: {stats:?}");
    let (ft, fy) = fd(&field, &y0, |f, y| midpoint_loss(f, y, &opts, &w));
    let (et, ey) = (rel(&gt, &ft), rel(&gy, &fy));
    assert!(et < 1e-7 && ey < 1e-7, "θ {et:.2e}, y0 {ey:.2e}");

    // The same through the Hamiltonian network used as a plain field.
    let mut ham = SeparableHamiltonian::<f64>::new(2, 5, 9).unwrap();
    let (y0, w) = (random_batch(3, 2, 1.0, 12), random_batch(3, 2, 1.0, 13));
    let opts = SolveOptions::steps(0.0, 0.2, 2);
    let (_, gy, gt, _) = midpoint_gradient(&mut ham, &y0, &w, &opts);
    let (ft, fy) = fd(&ham, &y0, |f, y| midpoint_loss(f, y, &opts, &w));
    let (et, ey) = (rel(&gt, &ft), rel(&gy, &fy));
    assert!(
        et < 1e-7 && ey < 1e-7,
        "Hamiltonian: θ {et:.2e}, y0 {ey:.2e}"
    );
}

/// A field whose value is constant (so the midpoint iteration converges at once) but whose
/// VJP claims a Jacobian `100·I`: the adjoint iteration `μ ← 2λ + (h/2)·100·μ` diverges.
#[derive(Clone)]
struct SteepAdjoint;

impl VectorField<Batch<f64>> for SteepAdjoint {
    type Tape = ();
    type Grad = Vec<f64>;
    fn new_tape(&self) {}
    fn zero_grad(&self) -> Vec<f64> {
        Vec::new()
    }
    fn eval(&mut self, _t: f64, _y: &Batch<f64>, dy: &mut Batch<f64>) {
        dy.as_mut_slice().fill(1.0);
    }
    fn eval_taped(&mut self, t: f64, y: &Batch<f64>, dy: &mut Batch<f64>, _tape: &mut ()) {
        self.eval(t, y, dy);
    }
    fn vjp(&mut self, _tape: &(), v: &Batch<f64>, gy: &mut Batch<f64>, _g: &mut Vec<f64>) {
        gy.assign(v);
        gy.scale(100.0);
    }
}

#[test]
fn implicit_midpoint_non_convergence_is_a_typed_failure() {
    let y0 = random_batch(2, 2, 1.0, 1);
    // Forward: y' = 8y with h = 1 makes the fixed-point map expand (h/2 · 8 = 4).
    let mut gs =
        MidpointGradSolver::new(&tight_midpoint(), SolveOptions::steps(0.0, 1.0, 1)).unwrap();
    let mut big = BigLinear(8.0);
    let err = gs.forward(&mut big, &y0).unwrap_err();
    match err {
        SolveError::Failed(f) => {
            assert!(matches!(
                f.reason,
                FailReason::ImplicitNotConverged {
                    iterations: 400,
                    ..
                }
            ))
        }
        other => panic!("expected a failure, got {other}"),
    }
    // Backward: the forward pass converges, the adjoint cannot.
    let mut gs =
        MidpointGradSolver::new(&tight_midpoint(), SolveOptions::steps(0.0, 0.5, 2)).unwrap();
    gs.forward(&mut SteepAdjoint, &y0).unwrap();
    let mut g = Vec::new();
    let err = gs.backward(&mut SteepAdjoint, &y0, &mut g).unwrap_err();
    let msg = err.to_string();
    match err {
        SolveError::Failed(f) => {
            assert!(
                matches!(f.reason, FailReason::ImplicitNotConverged { .. }),
                "{msg}"
            );
            assert_eq!(f.step, 1, "the last step is differentiated first: {msg}");
        }
        other => panic!("expected a failure, got {other}"),
    }
}

/// `f(y) = a·y` with exact VJPs.
#[derive(Clone)]
struct BigLinear(f64);

impl VectorField<Batch<f64>> for BigLinear {
    type Tape = ();
    type Grad = Vec<f64>;
    fn new_tape(&self) {}
    fn zero_grad(&self) -> Vec<f64> {
        Vec::new()
    }
    fn eval(&mut self, _t: f64, y: &Batch<f64>, dy: &mut Batch<f64>) {
        dy.assign(y);
        dy.scale(self.0);
    }
    fn eval_taped(&mut self, t: f64, y: &Batch<f64>, dy: &mut Batch<f64>, _tape: &mut ()) {
        self.eval(t, y, dy);
    }
    fn vjp(&mut self, _tape: &(), v: &Batch<f64>, gy: &mut Batch<f64>, _g: &mut Vec<f64>) {
        gy.assign(v);
        gy.scale(self.0);
    }
}

#[test]
fn split_parts_of_the_hamiltonian_network_add_up_to_its_field() {
    let mut ham = SeparableHamiltonian::<f64>::new(4, 7, 2).unwrap();
    let y = random_batch(5, 4, 1.0, 3);
    let (mut full, mut drift, mut kick) = (y.zeros_like(), y.zeros_like(), y.zeros_like());
    VectorField::eval(&mut ham, 0.0, &y, &mut full);
    ham.eval_part(SplitPart::Drift, 0.0, &y, &mut drift);
    ham.eval_part(SplitPart::Kick, 0.0, &y, &mut kick);
    drift.axpy(1.0, &kick);
    assert_eq!(drift.as_slice(), full.as_slice());
    // The drift moves only q (columns 2, 3), the kick only p (columns 0, 1).
    ham.eval_part(SplitPart::Drift, 0.0, &y, &mut drift);
    assert!(drift.iter_rows().all(|r| r[0] == 0.0 && r[1] == 0.0));
    assert!(kick.iter_rows().all(|r| r[2] == 0.0 && r[3] == 0.0));
}
