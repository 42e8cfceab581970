//! The fixed-grid loop, shared by explicit Runge–Kutta, splitting and implicit methods.

use super::splitting::{SplitStepper, Splitting};
use super::{
    failure, fixed_grid, Rhs, RkStepper, SaveAt, Saved, Solution, SolveOptions, SplitRhs, Stats,
};
use crate::error::{FailReason, SolveError};
use crate::state::{FinitenessWatch, State};

/// One step of a fixed-step method on a field of type `F`.
pub(crate) trait FixedStepper<S: State, F> {
    /// Advances `(t, y)` by `h` into `y_new`.
    fn step(&mut self, f: &mut F, t: f64, h: f64, y: &S, y_new: &mut S) -> Result<(), FailReason>;
    /// Field evaluations so far.
    fn nfe(&self) -> usize;
    /// Nonlinear iterations so far (implicit methods).
    fn iterations(&self) -> usize {
        0
    }
    /// A non-finite component in the last step's field evaluations, if any.
    fn field_non_finite(&self) -> Option<(usize, f64)>;
}

/// Explicit Runge–Kutta as a fixed stepper.
pub(crate) struct RkFixed<'t, S: State>(pub RkStepper<'t, S>);

impl<S: State, F: Rhs<S>> FixedStepper<S, F> for RkFixed<'_, S> {
    fn step(&mut self, f: &mut F, t: f64, h: f64, y: &S, y_new: &mut S) -> Result<(), FailReason> {
        self.0.attempt(f, t, h, y, y_new);
        self.0.finish(f, t, h, true);
        Ok(())
    }
    fn nfe(&self) -> usize {
        self.0.nfe()
    }
    fn field_non_finite(&self) -> Option<(usize, f64)> {
        self.0.stages().iter().find_map(State::first_non_finite)
    }
}

/// The fixed-grid loop. A NaN or infinity stops the solve at the step where it first
/// appeared, with the field's stage or the state named. For states that defer finiteness
/// checks ([`State::finiteness_watch`], GPU buffers) the loop does not synchronise per step:
/// the watch notes each step's state on the device and is read once at the end; when it
/// saw a non-finite value the solve is repeated with a check per step, which stops at that
/// step and reports its index and value (the field evaluations of both passes are
/// counted).
pub(crate) fn integrate<S: State, F, M: FixedStepper<S, F>>(
    stepper: &mut M,
    f: &mut F,
    y0: &S,
    opts: &SolveOptions,
    _dir: f64,
) -> Result<Solution<S>, SolveError<S>> {
    let grid = fixed_grid(opts)?;
    match y0.finiteness_watch() {
        None => run(stepper, f, y0, opts, &grid, None),
        Some(mut watch) => {
            let sol = run(stepper, f, y0, opts, &grid, Some(watch.as_mut()))?;
            match watch.first_step() {
                None => Ok(sol),
                Some(_) => run(stepper, f, y0, opts, &grid, None),
            }
        }
    }
}

fn run<S: State, F, M: FixedStepper<S, F>>(
    stepper: &mut M,
    f: &mut F,
    y0: &S,
    opts: &SolveOptions,
    grid: &[f64],
    mut watch: Option<&mut dyn FinitenessWatch<S>>,
) -> Result<Solution<S>, SolveError<S>> {
    let mut stats = Stats::default();
    let mut saved = Saved::new();
    let save_times: &[f64] = match &opts.save {
        SaveAt::Times(ts) => ts,
        _ => &[],
    };
    let mut next_save = 0;
    if matches!(opts.save, SaveAt::Steps) || save_times.first() == Some(&opts.t0) {
        saved.push(opts.t0, y0);
        next_save += usize::from(save_times.first() == Some(&opts.t0));
    }
    let mut y = y0.clone();
    let mut y_new = y0.zeros_like();
    for n in 0..grid.len() - 1 {
        let (t, t_next) = (grid[n], grid[n + 1]);
        let h = t_next - t;
        if let Err(reason) = stepper.step(f, t, h, &y, &mut y_new) {
            stats.nfe = stepper.nfe();
            stats.implicit_iterations = stepper.iterations();
            stats.record_reject();
            return Err(failure(reason, t, h, n, saved, &y, stats));
        }
        let non_finite = match watch.as_deref_mut() {
            Some(w) => {
                w.observe(n, &y_new);
                None
            }
            None => y_new.first_non_finite(),
        };
        if let Some((index, value)) = non_finite {
            stats.nfe = stepper.nfe();
            stats.implicit_iterations = stepper.iterations();
            stats.record_reject();
            let (location, (index, value)) = match stepper.field_non_finite() {
                Some(p) => ("field", p),
                None => ("state", (index, value)),
            };
            let reason = FailReason::NonFinite {
                location,
                index,
                value,
            };
            return Err(failure(reason, t, h, n, saved, &y, stats));
        }
        stats.record_accept(h);
        std::mem::swap(&mut y, &mut y_new);
        if matches!(opts.save, SaveAt::Steps) {
            saved.push(t_next, &y);
        } else if next_save < save_times.len() && save_times[next_save] == t_next {
            saved.push(t_next, &y);
            next_save += 1;
        }
    }
    if matches!(opts.save, SaveAt::Final) {
        saved.push(opts.t1, &y);
    }
    stats.nfe = stepper.nfe();
    stats.implicit_iterations = stepper.iterations();
    Ok(Solution {
        t: saved.t,
        y: saved.y,
        t_final: opts.t1,
        y_final: y,
        stats,
    })
}

pub(crate) fn integrate_split<S: State, F: SplitRhs<S>>(
    s: &Splitting,
    f: &mut F,
    y0: &S,
    opts: &SolveOptions,
    dir: f64,
) -> Result<Solution<S>, SolveError<S>> {
    integrate(&mut SplitStepper::new(s, y0), f, y0, opts, dir)
}
