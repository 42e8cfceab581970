//! The separable Hamiltonian network (Zhu et al., ICML 2022, §5;
//! [`crate::models::hamiltonian`]) on the device, f32, for rollouts
//! (`odeflow predict --model hamiltonian --device cuda`): `H_θ(q, p) = T_θ(p) + V_θ(q)` on
//! states `(p, q)` (momenta first), its symplectic gradient split as
//!
//! ```text
//! drift:  (p, q)' = (0, ∇T_θ(p)),        kick:  (p, q)' = (−∇V_θ(q), 0),
//! ```
//!
//! a [`SplitRhs<CudaBatch>`], so the library's splittings (Störmer–Verlet, …) and, through
//! `solve_split`, every other method integrate it on the GPU unchanged. Each half is the
//! input gradient of a scalar tanh MLP `n → hidden → hidden → 1`: one forward pass of a
//! [`CudaMlp`] (cuBLAS GEMMs, bias/activation kernels) and its VJP with the cotangent `+1`
//! (drift) or `−1` (kick), so `−∇V` comes out signed; `copy_cols_f32` takes the half of the
//! state in and puts the result in place with zeros beside. No arithmetic of its own.
//!
//! The VJP also accumulates a parameter gradient nobody reads (the MLP's VJP computes both);
//! that is two GEMMs per layer of waste in a rollout, accepted for one tested code path.

use std::sync::Arc;

use cudarc::driver::PushKernelArg;

use super::device::{CudaError, Device};
use super::mlp::{CudaMlp, CudaTape};
use super::state::{config, f32s, CudaBatch};
use crate::field::VectorField;
use crate::models::hamiltonian::SeparableHamiltonian;
use crate::nn::Activation;
use crate::real::Real;
use crate::solve::Method;
use crate::solve::{solve_split, SaveAt, SolveOptions, SplitRhs};
use crate::state::Batch;

/// The per-batch buffers of one half field.
struct Scratch {
    rows: usize,
    /// The half of the state the MLP reads (`rows × n`).
    part: CudaBatch,
    /// The MLP's value (`rows × 1`, unused).
    value: CudaBatch,
    /// Its input gradient (`rows × n`).
    grad: CudaBatch,
    /// `+1` per row (the drift's cotangent) and `−1` (the kick's).
    plus: CudaBatch,
    minus: CudaBatch,
    /// The parameter gradients the VJPs accumulate (unread).
    gk: CudaBatch,
    gv: CudaBatch,
}

/// A [`SeparableHamiltonian`] on the device (see the module docs).
pub struct CudaHamiltonian {
    dev: Arc<Device>,
    half: usize,
    kinetic: CudaMlp,
    potential: CudaMlp,
    tape: CudaTape,
    scratch: Option<Scratch>,
}

impl CudaHamiltonian {
    /// The device twin of `h` (its parameters as f32).
    pub fn from_cpu<T: Real>(
        dev: &Arc<Device>,
        h: &SeparableHamiltonian<T>,
    ) -> Result<Self, CudaError> {
        let (n, m) = (h.dim() / 2, h.hidden());
        let (pk, pv) = h.split_params();
        let dims = [n, m, m, 1];
        let kinetic = CudaMlp::map(dev, &dims, Activation::Tanh, &f32s(pk))?;
        let potential = CudaMlp::map(dev, &dims, Activation::Tanh, &f32s(pv))?;
        let tape = kinetic.new_tape();
        Ok(Self {
            dev: dev.clone(),
            half: n,
            kinetic,
            potential,
            tape,
            scratch: None,
        })
    }

    /// State dimension `2n`.
    pub fn dim(&self) -> usize {
        2 * self.half
    }

    fn ensure(&mut self, rows: usize) -> Result<(), CudaError> {
        if self.scratch.as_ref().is_some_and(|s| s.rows == rows) {
            return Ok(());
        }
        let (dev, n) = (&self.dev, self.half);
        let filled = |v: f32| {
            CudaBatch::from_host(
                dev,
                &Batch::from_vec(rows, 1, vec![v; rows]).expect("sized"),
            )
        };
        self.scratch = Some(Scratch {
            rows,
            part: CudaBatch::zeros(dev, rows, n)?,
            value: CudaBatch::zeros(dev, rows, 1)?,
            grad: CudaBatch::zeros(dev, rows, n)?,
            plus: filled(1.0)?,
            minus: filled(-1.0)?,
            gk: CudaBatch::zeros(dev, 1, self.kinetic.num_params())?,
            gv: CudaBatch::zeros(dev, 1, self.potential.num_params())?,
        });
        Ok(())
    }

    /// `copy_cols_f32`: columns `[src_off, src_off + width)` of `src` into columns
    /// `[dst_off, dst_off + width)` of `dst`, the rest of `dst` zeroed when `zero_rest`.
    fn copy_cols(
        &self,
        src: &CudaBatch,
        src_off: usize,
        dst: &mut CudaBatch,
        dst_off: usize,
        zero_rest: bool,
    ) {
        let (rows, width) = (src.rows(), self.half);
        let (sc, dc) = (src.cols() as i32, dst.cols() as i32);
        let n = rows * dst.cols();
        let (Some(s), Some(d)) = (src.slice(), dst.slice_mut()) else {
            return;
        };
        let r = rows as i64;
        let (so, doff, w, z) = (
            src_off as i32,
            dst_off as i32,
            width as i32,
            i32::from(zero_rest),
        );
        let mut b = self.dev.stream().launch_builder(&self.dev.nn.copy_cols);
        b.arg(&r)
            .arg(&sc)
            .arg(&so)
            .arg(&dc)
            .arg(&doff)
            .arg(&w)
            .arg(&z)
            .arg(s)
            .arg(d);
        // SAFETY: copy_cols_f32(long long rows, int src_cols, int src_off, int dst_cols,
        // int dst_off, int width, int zero_rest, const float*, float*) on rows × src_cols
        // and rows × dst_cols buffers; the offsets plus the width fit both (checked shapes).
        self.dev
            .record("copy_cols_f32", unsafe { b.launch(config(n)) });
    }

    /// One half field into `dy`: the drift (`q' = ∇T(p)`) or the kick (`p' = −∇V(q)`).
    fn half_field(&mut self, drift: bool, y: &CudaBatch, dy: &mut CudaBatch) {
        let (n, rows) = (self.half, y.rows());
        if y.cols() != 2 * n || dy.rows() != rows || dy.cols() != 2 * n || rows == 0 {
            self.dev.record::<(), _>(
                "Hamiltonian network state",
                Err(format!(
                    "{}×{} into {}×{} for states of {} values",
                    y.rows(),
                    y.cols(),
                    dy.rows(),
                    dy.cols(),
                    2 * n
                )),
            );
            return;
        }
        if let Err(e) = self.ensure(rows) {
            self.dev.record::<(), _>("allocation", Err(e));
            return;
        }
        let mut s = self.scratch.take().expect("ensured");
        // The half the MLP reads: p (drift) or q (kick).
        self.copy_cols(y, if drift { 0 } else { n }, &mut s.part, 0, true);
        let (mlp, cot, gth) = if drift {
            (&mut self.kinetic, &s.plus, &mut s.gk)
        } else {
            (&mut self.potential, &s.minus, &mut s.gv)
        };
        mlp.eval_taped(0.0, &s.part, &mut s.value, &mut self.tape);
        mlp.vjp(&self.tape, cot, &mut s.grad, gth);
        // Into q' (drift) or p' (kick), zeros beside.
        self.copy_cols(&s.grad, 0, dy, if drift { n } else { 0 }, true);
        self.scratch = Some(s);
    }
}

impl SplitRhs<CudaBatch> for CudaHamiltonian {
    fn drift(&mut self, _t: f64, y: &CudaBatch, dy: &mut CudaBatch) {
        self.half_field(true, y, dy);
    }

    fn kick(&mut self, _t: f64, y: &CudaBatch, dy: &mut CudaBatch) {
        self.half_field(false, y, dy);
    }
}

/// The final states of the Hamiltonian network `h` from the states `y0` (`N × 2n`), solved
/// on the device by `method` (a splitting, or any method on the whole field) and `opts`,
/// with the solve's statistics; the outer error is the device's, the inner the solver's.
pub fn hamiltonian_final_state<T: Real>(
    dev: &Arc<Device>,
    h: &SeparableHamiltonian<T>,
    y0: &Batch<T>,
    (method, opts): (&Method, &SolveOptions),
) -> super::eager::DeviceSolve<Batch<T>> {
    let mut field = CudaHamiltonian::from_cpu(dev, h)?;
    if y0.cols() != field.dim() {
        return Err(CudaError::invalid(
            "Hamiltonian network states",
            format!("{}×{}", y0.rows(), y0.cols()),
            format!("give states (p, q) of {} values", field.dim()),
        ));
    }
    let y = CudaBatch::from_host(dev, &y0.cast::<f32>())?;
    let o = SolveOptions {
        save: SaveAt::Final,
        ..opts.clone()
    };
    let sol = solve_split(method, &mut field, &y, &o);
    dev.check()?;
    Ok(match sol {
        Ok(s) => Ok((s.y_final.to_host()?.cast::<T>(), s.stats)),
        Err(e) => Err(e.to_string()),
    })
}

impl std::fmt::Debug for CudaHamiltonian {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaHamiltonian")
            .field("dim", &self.dim())
            .finish()
    }
}
