//! The adaptive loop: embedded error estimate, PI control, dense output at save times.

use super::controller::hairer_initial_step;
use super::{
    failure, AdaptiveOptions, Rhs, RkStepper, SaveAt, Saved, Solution, SolveOptions, Stats,
};
use crate::error::{FailReason, SolveError};
use crate::real::Real;
use crate::state::State;

/// Consecutive non-finite attempts after which the solve fails instead of shrinking again.
const MAX_NON_FINITE_RETRIES: usize = 30;

/// Where the last attempt met a NaN or an infinity: its step size and the reason to report.
struct NonFiniteAttempt {
    h: f64,
    reason: FailReason,
}

pub(crate) fn integrate<S: State, F: Rhs<S>>(
    mut rk: RkStepper<'_, S>,
    f: &mut F,
    y0: &S,
    opts: &SolveOptions,
    a: &AdaptiveOptions,
    dir: f64,
) -> Result<Solution<S>, SolveError<S>> {
    let tab = rk.tableau();
    let k = tab.error_estimate_order().unwrap_or(tab.order() + 1) as f64;
    let ctl = a.controller;
    let (atol, rtol) = (S::Scalar::of(a.atol), S::Scalar::of(a.rtol));
    let mut stats = Stats::default();
    let mut saved = Saved::new();
    let mut extra_nfe = 0;
    let (t0, t1) = (opts.t0, opts.t1);
    let save_times: &[f64] = match &opts.save {
        SaveAt::Times(ts) => ts,
        _ => &[],
    };
    let mut next_save = 0;
    if matches!(opts.save, SaveAt::Steps) {
        saved.push(t0, y0);
    }
    while next_save < save_times.len() && save_times[next_save] == t0 {
        saved.push(t0, y0);
        next_save += 1;
    }

    let mut t = t0;
    let mut y = y0.clone();
    let mut y_new = y0.zeros_like();
    let f0 = rk.first_stage(f, t, &y).clone();
    if let Some((index, value)) = f0.first_non_finite() {
        stats.nfe = rk.nfe();
        let reason = FailReason::NonFinite {
            location: "field",
            index,
            value,
        };
        return Err(failure(reason, t, 0.0, 0, saved, &y, stats));
    }
    let mut h = match a.h0 {
        Some(h0) => h0,
        None => {
            extra_nfe += 1;
            hairer_initial_step(f, t, &y, &f0, tab.order(), a.rtol, a.atol, dir)
        }
    };
    h = dir * h.min(a.max_step);
    let mut e_prev = 1.0f64;
    let mut just_rejected = false;
    let mut non_finite_run = 0usize;
    let mut last_non_finite: Option<NonFiniteAttempt> = None;
    let span = (t1 - t0).abs();

    while (t1 - t) * dir > 0.0 {
        let remaining = t1 - t;
        if stats.steps >= opts.max_steps {
            stats.nfe = rk.nfe() + extra_nfe;
            let reason = FailReason::MaxSteps {
                max_steps: opts.max_steps,
            };
            return Err(failure(reason, t, h, stats.steps, saved, &y, stats));
        }
        // Land exactly on t1 (and avoid leaving a sliver shorter than 1e-10 of the span).
        let last = (h - remaining) * dir >= -1e-10 * span;
        if last {
            h = remaining;
        }
        let floor = a.min_step.max(8.0 * f64::EPSILON * t.abs().max(t1.abs()));
        if h.abs() < floor {
            stats.nfe = rk.nfe() + extra_nfe;
            // If the step shrank because the field or the state went non-finite, that is the
            // failure to report: the step size only collapsed in the attempt to avoid it.
            let (reason, h) = match last_non_finite.take() {
                Some(nf) if non_finite_run > 0 => (nf.reason, nf.h),
                _ => (FailReason::StepUnderflow { min_step: floor }, h),
            };
            return Err(failure(reason, t, h, stats.steps, saved, &y, stats));
        }
        rk.attempt(f, t, h, &y, &mut y_new);
        let e = S::weighted_rms(rk.error(), &y, &y_new, atol, rtol);
        if !e.is_finite() || !y_new.is_finite() {
            let (location, (index, value)) =
                match rk.stages().iter().find_map(State::first_non_finite) {
                    Some(p) => ("field", p),
                    None => ("state", y_new.first_non_finite().unwrap_or((0, e))),
                };
            let reason = FailReason::NonFinite {
                location,
                index,
                value,
            };
            rk.finish(f, t, h, false);
            stats.record_reject();
            non_finite_run += 1;
            if non_finite_run > MAX_NON_FINITE_RETRIES {
                stats.nfe = rk.nfe() + extra_nfe;
                return Err(failure(reason, t, h, stats.steps, saved, &y, stats));
            }
            last_non_finite = Some(NonFiniteAttempt { h, reason });
            h *= ctl.factor_min;
            just_rejected = true;
            continue;
        }
        non_finite_run = 0;
        if e <= 1.0 {
            stats.record_accept(h);
            let t_new = if last { t1 } else { t + h };
            let mut thetas = Vec::new();
            let first_pending = next_save;
            while next_save < save_times.len() && (save_times[next_save] - t_new) * dir < 0.0 {
                thetas.push((save_times[next_save] - t) / h);
                next_save += 1;
            }
            let dense = rk.finish_with_dense(f, t, h, &y, &y_new, &thetas);
            for (i, z) in dense.into_iter().enumerate() {
                saved.t.push(save_times[first_pending + i]);
                saved.y.push(z);
            }
            if next_save < save_times.len() && save_times[next_save] == t_new {
                saved.push(t_new, &y_new);
                next_save += 1;
            }
            if matches!(opts.save, SaveAt::Steps) {
                saved.push(t_new, &y_new);
            }
            let mut factor = ctl.accept_factor(e, e_prev, k);
            if just_rejected {
                factor = factor.min(1.0);
            }
            e_prev = e.max(1e-4);
            just_rejected = false;
            t = t_new;
            std::mem::swap(&mut y, &mut y_new);
            h = dir * (h.abs() * factor).min(a.max_step);
        } else {
            rk.finish(f, t, h, false);
            stats.record_reject();
            h *= ctl.reject_factor(e, k);
            just_rejected = true;
        }
    }
    if matches!(opts.save, SaveAt::Final) {
        saved.push(t1, &y);
    }
    stats.nfe = rk.nfe() + extra_nfe;
    Ok(Solution {
        t: saved.t,
        y: saved.y,
        t_final: t1,
        y_final: y,
        stats,
    })
}
