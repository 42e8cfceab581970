//! The deferred finiteness check of the fixed-step loop (`State::finiteness_watch`), which
//! GPU states use so that a fixed-step solve does not synchronise with the host once per
//! step: tested with a CPU state that defers its checks and counts them.
//!
//! * A finite solve checks finiteness only for the initial state, never per step, and gives
//!   exactly the solution of the per-step path.
//! * A solve that overflows reports the same failure as the per-step path: the step, t, h,
//!   the component, its value, where it was found, and the partial solution.

use std::cell::Cell;
use std::rc::Rc;

use odeflow::solve::{solve, SaveAt, SolveOptions};
use odeflow::{FailReason, FinitenessWatch, Method, SolveError, State};

/// Counters shared by the states of one solve.
#[derive(Debug, Default)]
struct Counts {
    /// `first_non_finite` calls (a host synchronisation on a GPU).
    checks: Cell<usize>,
    /// States handed to the watch.
    observed: Cell<usize>,
    /// Watch read-backs.
    reads: Cell<usize>,
}

/// `Vec<f64>` whose finiteness checks are deferred to a watch, like a GPU buffer's.
#[derive(Debug, Clone)]
struct Deferred {
    v: Vec<f64>,
    counts: Rc<Counts>,
}

struct Watch {
    first: Option<usize>,
    counts: Rc<Counts>,
}

impl FinitenessWatch<Deferred> for Watch {
    fn observe(&mut self, step: usize, state: &Deferred) {
        self.counts.observed.set(self.counts.observed.get() + 1);
        if self.first.is_none() && state.v.iter().any(|x| !x.is_finite()) {
            self.first = Some(step);
        }
    }
    fn first_step(&mut self) -> Option<usize> {
        self.counts.reads.set(self.counts.reads.get() + 1);
        self.first
    }
}

impl State for Deferred {
    type Scalar = f64;
    fn len(&self) -> usize {
        self.v.len()
    }
    fn zeros_like(&self) -> Self {
        Self {
            v: vec![0.0; self.v.len()],
            counts: self.counts.clone(),
        }
    }
    fn assign(&mut self, other: &Self) {
        self.v.assign(&other.v);
    }
    fn set_zero(&mut self) {
        self.v.set_zero();
    }
    fn scale(&mut self, a: f64) {
        self.v.scale(a);
    }
    fn axpy(&mut self, a: f64, x: &Self) {
        self.v.axpy(a, &x.v);
    }
    fn weighted_sq_sum(err: &Self, y0: &Self, y1: &Self, atol: f64, rtol: f64) -> (f64, usize) {
        Vec::weighted_sq_sum(&err.v, &y0.v, &y1.v, atol, rtol)
    }
    fn dot(&self, other: &Self) -> f64 {
        self.v.dot(&other.v)
    }
    fn first_non_finite(&self) -> Option<(usize, f64)> {
        self.counts.checks.set(self.counts.checks.get() + 1);
        self.v.first_non_finite()
    }
    fn to_f64_vec(&self) -> Vec<f64> {
        self.v.clone()
    }
    fn finiteness_watch(&self) -> Option<Box<dyn FinitenessWatch<Self>>> {
        Some(Box::new(Watch {
            first: None,
            counts: self.counts.clone(),
        }))
    }
}

/// `y₀' = y₀²`, `y₁' = −y₁`: the first component blows up at t = 1 (from y₀ = 1).
fn blow_up<S: State<Scalar = f64>>(
    get: impl Fn(&S) -> &[f64],
    set: impl Fn(&mut S) -> &mut [f64],
) -> impl FnMut(f64, &S, &mut S) {
    move |_t, y, dy| {
        let (a, b) = (get(y)[0], get(y)[1]);
        let d = set(dy);
        d[0] = a * a;
        d[1] = -b;
    }
}

fn deferred(v: &[f64]) -> Deferred {
    Deferred {
        v: v.to_vec(),
        counts: Rc::new(Counts::default()),
    }
}

#[test]
fn a_finite_fixed_step_solve_checks_no_step_and_matches_the_per_step_path() {
    for method in ["euler", "rk4", "dopri5", "ssprk3"] {
        let m = Method::from_name(method).unwrap();
        let opts = SolveOptions::fixed(0.0, 0.9, 0.01).save(SaveAt::Steps);
        let y0 = deferred(&[0.5, 1.0]);
        let mut f = blow_up(|s: &Deferred| &s.v, |s: &mut Deferred| &mut s.v);
        let d = solve(&m, &mut f, &y0, &opts).unwrap();
        let mut g = blow_up(|s: &Vec<f64>| s, |s: &mut Vec<f64>| s);
        let p = solve(&m, &mut g, &vec![0.5, 1.0], &opts).unwrap();
        let c = &y0.counts;
        assert_eq!(
            c.checks.get(),
            1,
            "{method}: only the initial state is checked"
        );
        assert_eq!(c.observed.get(), 90, "{method}: every step observed");
        assert_eq!(c.reads.get(), 1, "{method}: the watch is read once");
        assert_eq!(d.stats.nfe, p.stats.nfe, "{method}");
        assert_eq!(d.t, p.t, "{method}");
        for (a, b) in d.y.iter().zip(&p.y) {
            assert_eq!(a.v, *b, "{method}");
        }
    }
}

#[test]
fn an_overflow_reports_the_step_where_it_first_appeared() {
    for method in ["euler", "heun", "rk4"] {
        let m = Method::from_name(method).unwrap();
        // y₀ = 1 blows up at t = 1; Euler with h = 0.05 overflows f64 a few steps after.
        let opts = SolveOptions::fixed(0.0, 3.0, 0.05).save(SaveAt::Steps);
        let y0 = deferred(&[1.0, 1.0]);
        let mut f = blow_up(|s: &Deferred| &s.v, |s: &mut Deferred| &mut s.v);
        let Err(SolveError::Failed(d)) = solve(&m, &mut f, &y0, &opts) else {
            panic!("{method}: the deferred solve did not fail")
        };
        let mut g = blow_up(|s: &Vec<f64>| s, |s: &mut Vec<f64>| s);
        let Err(SolveError::Failed(p)) = solve(&m, &mut g, &vec![1.0, 1.0], &opts) else {
            panic!("{method}: the per-step solve did not fail")
        };
        let FailReason::NonFinite { index, value, .. } = d.reason else {
            panic!("{method}: {:?}", d.reason)
        };
        assert_eq!(index, 0, "{method}");
        assert!(!value.is_finite(), "{method}");
        assert_eq!(
            format!("{:?}", d.reason),
            format!("{:?}", p.reason),
            "{method}"
        );
        assert_eq!((d.t, d.h, d.step), (p.t, p.h, p.step), "{method}");
        assert!(d.step > 20 && d.step < 59, "{method}: step {}", d.step);
        assert_eq!(d.partial.t, p.partial.t, "{method}");
        assert_eq!(d.partial.y_final.v, p.partial.y_final, "{method}");
        // Both passes' field evaluations are counted.
        let per_step = m.tableau().unwrap().stages();
        assert_eq!(
            d.partial.stats.nfe,
            p.partial.stats.nfe + 60 * per_step,
            "{method}"
        );
        // The watch was read once; the repeat checked each step up to the failure.
        let c = &y0.counts;
        assert_eq!(c.reads.get(), 1, "{method}");
        assert_eq!(c.observed.get(), 60, "{method}");
    }
}
