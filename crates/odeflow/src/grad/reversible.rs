//! The reversible (memory-free) backward pass of Sander, Ablin, Peyré (NeurIPS 2022).

use super::recorder::{Recorder, StepRecord, TapeArena};
use super::rk_backward::StepBackward;
use crate::error::{ArgError, FailReason, SolveError};
use crate::field::VectorField;
use crate::real::Real;
use crate::solve::{fixed_grid, Method, RkStepper, SolveOptions};
use crate::state::State;
use crate::tableau::ButcherTableau;

pub(crate) struct ReversibleOutput<S> {
    pub lambda: S,
    pub nfe: usize,
    pub vjp: usize,
    pub steps: usize,
}

/// One reverse step: from `x = x̃ₙ₊₁` to `x̃ₙ`, the method with step `−h` whose stage `i`
/// is evaluated at the time of forward stage `s − 1 − i` (Euler: `f(tₙ, x)`; Heun: first
/// `f(tₙ₊₁, ·)`, then `f(tₙ, ·)`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn reverse_step<S: State, F: VectorField<S>>(
    tab: &ButcherTableau,
    field: &mut F,
    t: f64,
    h: f64,
    x: &S,
    out: &mut S,
    ks: &mut [S],
    stage: &mut S,
    coeffs: &mut [S::Scalar],
) {
    let s = tab.stages();
    let (a, b, c) = (tab.a(), tab.b(), tab.c());
    for i in 0..s {
        for j in 0..i {
            coeffs[j] = S::Scalar::of(-h * a[i][j]);
        }
        let (done, rest) = ks.split_at_mut(i);
        stage.assign_lincomb(x, &coeffs[..i], done);
        field.eval(t + c[s - 1 - i] * h, stage, &mut rest[0]);
    }
    for (cf, bi) in coeffs.iter_mut().zip(b) {
        *cf = S::Scalar::of(-h * bi);
    }
    out.assign_lincomb(x, &coeffs[..s], ks);
}

/// The reverse pass alone: from `y1 = y(t₁)`, the reverse steps of the reversible method
/// (see [`crate::grad`]) over the fixed grid of `opts`, back to `t₀`. Returns the
/// reconstruction `x̃₀` of the initial state — the state the reversible backward pass
/// differentiates at in its last step. `opts` must describe the forward solve (same grid).
///
/// Fails for a method without a tableau, an adaptive grid, or a reconstructed state that is
/// not finite.
pub fn reconstruct<S: State, F: VectorField<S>>(
    method: &Method,
    opts: &SolveOptions,
    field: &mut F,
    y1: &S,
) -> Result<S, SolveError<S>> {
    let tab = match method {
        Method::Explicit(t) => t.clone(),
        other => return Err(ArgError::MethodUnsuited {
            method: other.name().to_string(),
            reason:
                "has no reverse step; the reversible method needs an explicit Runge–Kutta method"
                    .into(),
        }
        .into()),
    };
    let grid = fixed_grid(opts)?;
    let s = tab.stages();
    let mut x = y1.clone();
    let mut x_prev = y1.zeros_like();
    let mut ks: Vec<S> = (0..s).map(|_| y1.zeros_like()).collect();
    let mut stage = y1.zeros_like();
    let mut coeffs = vec![S::Scalar::of(0.0); s];
    for n in (0..grid.len() - 1).rev() {
        let (t, h) = (grid[n], grid[n + 1] - grid[n]);
        reverse_step(
            &tab,
            field,
            t,
            h,
            &x,
            &mut x_prev,
            &mut ks,
            &mut stage,
            &mut coeffs,
        );
        if let Some((index, value)) = x_prev.first_non_finite() {
            return Err(non_finite_reconstruction(index, value, &grid, n, x));
        }
        std::mem::swap(&mut x, &mut x_prev);
    }
    Ok(x)
}

fn non_finite_reconstruction<S: State>(
    index: usize,
    value: f64,
    grid: &[f64],
    n: usize,
    x: S,
) -> SolveError<S> {
    SolveError::Failed(Box::new(crate::error::Failure {
        reason: FailReason::NonFinite {
            location: "reconstructed state",
            index,
            value,
        },
        t: grid[n],
        h: grid[n + 1] - grid[n],
        step: n,
        partial: crate::solve::Solution {
            t: vec![grid[n + 1]],
            y: vec![x.clone()],
            t_final: grid[n + 1],
            y_final: x,
            stats: Default::default(),
        },
    }))
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn backward<S: State, F: VectorField<S>>(
    tab: &ButcherTableau,
    opts: &SolveOptions,
    field: &mut F,
    back: &mut StepBackward<S>,
    arena: &mut TapeArena<F::Tape>,
    steps: &mut Vec<StepRecord>,
    y1: &S,
    dl_dy1: &S,
    gtheta: &mut F::Grad,
) -> Result<ReversibleOutput<S>, SolveError<S>> {
    let grid = fixed_grid(opts)?;
    let s = tab.stages();
    let mut x = y1.clone();
    let mut x_prev = y1.zeros_like();
    let mut lambda = dl_dy1.clone();
    let mut ks: Vec<S> = (0..s).map(|_| y1.zeros_like()).collect();
    let mut stage = y1.zeros_like();
    let mut coeffs = vec![S::Scalar::of(0.0); s];
    let mut scratch = y1.zeros_like();
    let mut rk = RkStepper::new(tab, y1);
    let mut out = ReversibleOutput {
        lambda: y1.zeros_like(),
        nfe: 0,
        vjp: 0,
        steps: 0,
    };
    for n in (0..grid.len() - 1).rev() {
        let (t, h) = (grid[n], grid[n + 1] - grid[n]);
        reverse_step(
            tab,
            field,
            t,
            h,
            &x,
            &mut x_prev,
            &mut ks,
            &mut stage,
            &mut coeffs,
        );
        out.nfe += s;
        if let Some((index, value)) = x_prev.first_non_finite() {
            return Err(non_finite_reconstruction(index, value, &grid, n, x));
        }
        // Recompute the forward step from the reconstructed state, with tapes.
        let mut rec = Recorder::new(field, arena, steps, s);
        rk.invalidate_first_stage();
        rk.attempt(&mut rec, t, h, &x_prev, &mut scratch);
        rk.finish(&mut rec, t, h, true);
        out.nfe += s;
        let record = &steps[0];
        let arena_ref = &*arena;
        back.step(
            tab,
            h,
            field,
            |i| arena_ref.get(record.tapes[i]),
            &mut lambda,
            gtheta,
        );
        out.vjp += back.vjps_per_step();
        out.steps += 1;
        std::mem::swap(&mut x, &mut x_prev);
    }
    out.lambda = lambda;
    Ok(out)
}
