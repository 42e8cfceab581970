//! The Hamiltonian network's field and VJPs against finite differences in f64, its
//! parameter layout, and the S-step regressor's loss and gradient.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::hamiltonian::SeparableHamiltonian;
use super::regressor::{FlowRegressor, FullBatch};
use crate::field::{FieldRhs, Parameterized, VectorField};
use crate::grad::{FieldGradSolver, GradientMethod, SplitGradSolver, SplitVectorField};
use crate::solve::{solve, Method, SolveOptions, SplitPart};
use crate::state::{Batch, State};
use crate::train::{BatchSource, Trainable};

fn random_batch(rows: usize, cols: usize, scale: f64, seed: u64) -> Batch<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let v = (0..rows * cols)
        .map(|_| rng.random_range(-scale..scale))
        .collect();
    Batch::from_vec(rows, cols, v).unwrap()
}

fn max_rel(a: &[f64], b: &[f64]) -> f64 {
    let scale = b.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-300);
    a.iter()
        .zip(b)
        .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()))
        / scale
}

/// A network with non-zero biases, so that every parameter matters.
fn network(dim: usize, hidden: usize, seed: u64) -> SeparableHamiltonian<f64> {
    let mut h = SeparableHamiltonian::<f64>::new(dim, hidden, seed).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(seed + 1);
    for p in h.params_mut() {
        *p += rng.random_range(-0.3..0.3);
    }
    h
}

#[test]
fn field_is_the_symplectic_gradient_of_the_network_hamiltonian() {
    let mut h = network(4, 8, 3);
    let y = random_batch(5, 4, 1.5, 4);
    let mut f = y.zeros_like();
    VectorField::eval(&mut h, 0.0, &y, &mut f);
    let eps = 1e-6;
    let mut fd = vec![0.0; y.len()];
    for i in 0..y.len() {
        let (mut yp, mut ym) = (y.clone(), y.clone());
        yp.as_mut_slice()[i] += eps;
        ym.as_mut_slice()[i] -= eps;
        let (hp, hm) = (h.hamiltonian(&yp).unwrap(), h.hamiltonian(&ym).unwrap());
        let (row, col) = (i / 4, i % 4);
        let d = (hp[row] - hm[row]) / (2.0 * eps);
        // (p, q) = columns (0, 1), (2, 3): p' = −∂H/∂q, q' = ∂H/∂p.
        if col < 2 {
            fd[row * 4 + col + 2] = d;
        } else {
            fd[row * 4 + col - 2] = -d;
        }
    }
    let err = max_rel(f.as_slice(), &fd);
    assert!(err < 1e-8, "field vs FD of H: {err:.2e}");
    assert!(h.hamiltonian(&Batch::zeros(1, 3)).is_err());
}

/// Checks `vjp` (full field, drift, kick) against central differences of `vᵀ f`.
#[test]
fn vjps_match_finite_differences() {
    let mut h = network(2, 9, 5);
    let y = random_batch(6, 2, 2.0, 6);
    let v = random_batch(6, 2, 1.0, 7);
    let eps = 1e-6;
    let parts: [Option<SplitPart>; 3] = [None, Some(SplitPart::Drift), Some(SplitPart::Kick)];
    for part in parts {
        let eval = |h: &mut SeparableHamiltonian<f64>, y: &Batch<f64>| -> f64 {
            let mut f = y.zeros_like();
            match part {
                None => VectorField::eval(h, 0.0, y, &mut f),
                Some(p) => h.eval_part(p, 0.0, y, &mut f),
            }
            f.dot(&v)
        };
        let mut tape = VectorField::<Batch<f64>>::new_tape(&h);
        let mut f = y.zeros_like();
        let mut gy = y.zeros_like();
        let mut gt = VectorField::<Batch<f64>>::zero_grad(&h);
        match part {
            None => {
                h.eval_taped(0.0, &y, &mut f, &mut tape);
                h.vjp(&tape, &v, &mut gy, &mut gt);
            }
            Some(p) => {
                h.eval_part_taped(p, 0.0, &y, &mut f, &mut tape);
                h.vjp_part(p, &tape, &v, &mut gy, &mut gt);
            }
        }
        let fd_y: Vec<f64> = (0..y.len())
            .map(|i| {
                let (mut yp, mut ym) = (y.clone(), y.clone());
                yp.as_mut_slice()[i] += eps;
                ym.as_mut_slice()[i] -= eps;
                (eval(&mut h, &yp) - eval(&mut h, &ym)) / (2.0 * eps)
            })
            .collect();
        let fd_t: Vec<f64> = (0..h.num_params())
            .map(|i| {
                let (mut hp, mut hm) = (h.clone(), h.clone());
                hp.params_mut()[i] += eps;
                hm.params_mut()[i] -= eps;
                (eval(&mut hp, &y) - eval(&mut hm, &y)) / (2.0 * eps)
            })
            .collect();
        let (ey, et) = (max_rel(gy.as_slice(), &fd_y), max_rel(&gt, &fd_t));
        assert!(ey < 1e-7 && et < 1e-7, "{part:?}: y {ey:.2e}, θ {et:.2e}");
        // The output bias of each MLP does not move the field; every other block does.
        let views = h.param_views();
        for view in &views {
            let block = &gt[view.range()];
            let moved = block.iter().any(|g| *g != 0.0);
            let kinetic = view.name.starts_with("kinetic");
            let expected = !view.name.ends_with("4.bias")
                && match part {
                    None => true,
                    Some(SplitPart::Drift) => kinetic,
                    Some(SplitPart::Kick) => !kinetic,
                };
            assert_eq!(moved, expected, "{part:?}: {}", view.name);
        }
    }
}

#[test]
fn parameters_are_seeded_named_and_orthogonally_initialised() {
    let a = SeparableHamiltonian::<f64>::new(2, 16, 1).unwrap();
    let b = SeparableHamiltonian::<f64>::new(2, 16, 1).unwrap();
    let c = SeparableHamiltonian::<f64>::new(2, 16, 2).unwrap();
    assert_eq!(a.params(), b.params());
    assert_ne!(a.params(), c.params());
    let views = a.param_views();
    assert_eq!(views.len(), 12);
    assert_eq!(views[0].name, "kinetic.0.weight");
    assert_eq!(views[6].name, "potential.0.weight");
    let total: usize = views.iter().map(|v| v.len()).sum();
    assert_eq!(total, a.num_params());
    assert_eq!(a.num_params(), 2 * (16 + 16 + 256 + 16 + 16 + 1));
    // The 16×16 hidden weight is orthogonal; biases start at zero.
    let w2 = &a.params()[views[2].range()];
    for i in 0..16 {
        for j in 0..16 {
            let d: f64 = (0..16).map(|k| w2[i * 16 + k] * w2[j * 16 + k]).sum();
            assert!((d - f64::from(u8::from(i == j))).abs() < 1e-12);
        }
    }
    assert!(a.params()[views[1].range()].iter().all(|b| *b == 0.0));
    assert!(SeparableHamiltonian::<f64>::new(3, 4, 0).is_err());
    assert!(SeparableHamiltonian::<f64>::new(2, 0, 0).is_err());
}

/// The regressor's loss is the MSE of the S-step solve and its gradient the solver's.
#[test]
fn regressor_loss_and_gradient_match_finite_differences() {
    let x = random_batch(8, 2, 1.0, 1);
    let y = random_batch(8, 2, 1.0, 2);
    let opts = SolveOptions::steps(0.0, 0.2, 2);
    let loss = |h: &mut SeparableHamiltonian<f64>, method: &Method| -> f64 {
        let p = match method {
            Method::Splitting(_) => crate::solve_split(method, h, &x, &opts).unwrap().y_final,
            _ => solve(method, &mut FieldRhs(h), &x, &opts).unwrap().y_final,
        };
        let mut d = p;
        d.axpy(-1.0, &y);
        d.dot(&d) / 16.0
    };
    let ham = network(2, 5, 8);
    for name in ["verlet", "rk4", "implicit-midpoint"] {
        let method = Method::from_name(name).unwrap();
        let mut grad = vec![0.0; ham.num_params()];
        let metrics = match &method {
            Method::Splitting(_) => {
                let solver = SplitGradSolver::new(&method, opts.clone()).unwrap();
                let mut model = FlowRegressor::new(ham.clone(), solver);
                let mut data = FullBatch::new(x.clone(), y.clone());
                let mut batch = data.new_batch();
                data.fill(0, &mut batch);
                model.loss_and_grad(&batch, &mut grad, 0).unwrap()
            }
            _ => {
                let solver =
                    FieldGradSolver::new(&method, GradientMethod::Backprop, opts.clone()).unwrap();
                let mut model = FlowRegressor::new(ham.clone(), solver);
                model
                    .loss_and_grad(&(x.clone(), y.clone()), &mut grad, 0)
                    .unwrap()
            }
        };
        assert!(
            (metrics.loss - loss(&mut ham.clone(), &method)).abs() < 1e-12,
            "{name}"
        );
        let eps = 1e-6;
        let fd: Vec<f64> = (0..ham.num_params())
            .map(|i| {
                let (mut hp, mut hm) = (ham.clone(), ham.clone());
                hp.params_mut()[i] += eps;
                hm.params_mut()[i] -= eps;
                (loss(&mut hp, &method) - loss(&mut hm, &method)) / (2.0 * eps)
            })
            .collect();
        let err = max_rel(&grad, &fd);
        assert!(err < 1e-6, "{name}: {err:.2e}");
    }
}
