//! The recipe of the device Hamiltonian network (`odeflow::cuda::CudaHamiltonian`; Zhu et
//! al., ICML 2022) with the CPU twins of its pieces: the drift is the input gradient of the
//! tanh MLP `n → m → m → 1` (the `CudaMlp::map` of `split_params().0`, PyTorch's layout) —
//! its VJP with cotangent `+1` — placed in `q'` with `p' = 0`, and the kick the VJP of the
//! potential's MLP with cotangent `−1` placed in `p'` with `q' = 0`; against the CPU
//! `SeparableHamiltonian`'s `SplitRhs`, to round-off.

use odeflow::models::hamiltonian::SeparableHamiltonian;
use odeflow::nn::zoo::{mlp, MlpOptions};
use odeflow::nn::{Activation, Init, Tape};
use odeflow::solve::SplitRhs;
use odeflow::state::Batch;

use crate::exec::close;

/// `cot · ∇ₓφ(x)` per row of the scalar MLP with parameters `params` (the device recipe:
/// one forward pass and the VJP with a constant cotangent).
fn input_gradient(n: usize, m: usize, params: &[f64], x: &[f64], cot: f64) -> Vec<f64> {
    let opts = MlpOptions {
        activation: Activation::Tanh,
        init: Init::PyTorchDefault,
        time_input: false,
    };
    let mut net = mlp::<f64>(&[n, m, m, 1], &opts, 0).expect("mlp");
    let rows = x.len() / n;
    let seq = net.sequential_mut();
    let (mut y, mut tape) = (vec![0.0; rows], Tape::new());
    seq.forward_taped(params, 0.0, x, &mut y, &mut tape)
        .expect("forward");
    let (mut gx, mut gp) = (vec![0.0; x.len()], vec![0.0; params.len()]);
    seq.backward(params, &tape, &vec![cot; rows], &mut gx, &mut gp)
        .expect("VJP");
    gx
}

#[test]
fn the_device_recipe_is_the_cpu_hamiltonian_field() {
    let (n, m, rows) = (3, 7, 5);
    let mut h = SeparableHamiltonian::<f64>::new(2 * n, m, 4).expect("network");
    let (pk, pv) = h.split_params();
    let (pk, pv) = (pk.to_vec(), pv.to_vec());
    let y = Batch::from_vec(
        rows,
        2 * n,
        (0..rows * 2 * n)
            .map(|i| ((i * 7 % 11) as f64 - 5.0) / 4.0)
            .collect(),
    )
    .expect("sized");
    let half = |off: usize| -> Vec<f64> {
        y.iter_rows()
            .flat_map(|r| r[off..off + n].to_vec())
            .collect()
    };
    let (p, q) = (half(0), half(n));
    let drift = input_gradient(n, m, &pk, &p, 1.0);
    let kick = input_gradient(n, m, &pv, &q, -1.0);
    let mut dy = Batch::zeros(rows, 2 * n);
    for (is_drift, g) in [(true, &drift), (false, &kick)] {
        if is_drift {
            h.drift(0.0, &y, &mut dy);
        } else {
            h.kick(0.0, &y, &mut dy);
        }
        let off = if is_drift { n } else { 0 };
        let mut want = vec![0.0; rows * 2 * n];
        for r in 0..rows {
            want[r * 2 * n + off..r * 2 * n + off + n].copy_from_slice(&g[r * n..(r + 1) * n]);
        }
        close(
            dy.as_slice(),
            &want,
            1e-12,
            if is_drift { "drift" } else { "kick" },
        );
        assert!(g.iter().any(|v| v.abs() > 1e-3), "a non-trivial gradient");
    }
}
