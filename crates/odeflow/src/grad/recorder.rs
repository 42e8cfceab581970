//! Recording the stage tapes of accepted Runge–Kutta steps during a solve.
//!
//! [`Recorder`] wraps a [`VectorField`] as the solve loop's [`Rhs`]: every stage evaluation is
//! taped into a slot of a reusable arena, and at the end of each attempt the loop tells it
//! whether the step was accepted (keep its tapes as a [`StepRecord`]) or rejected (free all
//! but stage 0, which the retry reuses). For FSAL tableaus the last stage's tape is shared
//! with the next step's stage 0. Evaluations outside any step (Hairer's initial-step probe)
//! are not taped.

use crate::field::VectorField;
use crate::solve::{Attempt, Rhs};
use crate::state::State;

/// The tapes of one accepted step.
#[derive(Debug, Clone, PartialEq)]
pub struct StepRecord {
    /// Start time.
    pub t: f64,
    /// Step size.
    pub h: f64,
    /// Arena slot of each stage's tape.
    pub tapes: Vec<usize>,
}

/// Tape storage reused across solves: slots are handed out and returned, never dropped.
pub struct TapeArena<T> {
    slots: Vec<T>,
    free: Vec<usize>,
    in_use: usize,
}

impl<T> Default for TapeArena<T> {
    fn default() -> Self {
        Self {
            slots: Vec::new(),
            free: Vec::new(),
            in_use: 0,
        }
    }
}

impl<T> TapeArena<T> {
    /// Releases every slot (keeping the allocations).
    pub fn reset(&mut self) {
        self.free.clear();
        self.free.extend((0..self.slots.len()).rev());
        self.in_use = 0;
    }

    fn alloc(&mut self, make: impl FnOnce() -> T) -> usize {
        self.in_use += 1;
        match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(make());
                self.slots.len() - 1
            }
        }
    }

    fn release(&mut self, i: usize) {
        self.in_use -= 1;
        self.free.push(i);
    }

    /// The tape in slot `i`.
    pub fn get(&self, i: usize) -> &T {
        &self.slots[i]
    }

    /// Number of slots holding live tapes.
    pub fn in_use(&self) -> usize {
        self.in_use
    }

    /// Number of slots ever allocated (the arena's memory high-water mark, in tapes).
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }
}

/// A field that tapes every stage of the solve it is used in.
pub struct Recorder<'a, S: State, F: VectorField<S>> {
    field: &'a mut F,
    arena: &'a mut TapeArena<F::Tape>,
    steps: &'a mut Vec<StepRecord>,
    pending: Vec<Option<usize>>,
    /// Whether `pending[0]` is also the last stage of the previous accepted step.
    shared_first: bool,
}

impl<'a, S: State, F: VectorField<S>> Recorder<'a, S, F> {
    /// A recorder for `stages`-stage steps; `arena` and `steps` are cleared first.
    pub fn new(
        field: &'a mut F,
        arena: &'a mut TapeArena<F::Tape>,
        steps: &'a mut Vec<StepRecord>,
        stages: usize,
    ) -> Self {
        arena.reset();
        steps.clear();
        Self {
            field,
            arena,
            steps,
            pending: vec![None; stages],
            shared_first: false,
        }
    }
}

impl<S: State, F: VectorField<S>> Rhs<S> for Recorder<'_, S, F> {
    fn eval(&mut self, t: f64, y: &S, dy: &mut S) {
        self.field.eval(t, y, dy);
    }

    fn eval_stage(&mut self, stage: usize, t: f64, y: &S, dy: &mut S) {
        if let Some(old) = self.pending[stage].take() {
            if !(stage == 0 && self.shared_first) {
                self.arena.release(old);
            }
        }
        if stage == 0 {
            self.shared_first = false;
        }
        let field = &mut *self.field;
        let slot = self.arena.alloc(|| field.new_tape());
        self.field.eval_taped(t, y, dy, &mut self.arena.slots[slot]);
        self.pending[stage] = Some(slot);
    }

    fn end_attempt(&mut self, a: &Attempt) {
        let s = self.pending.len();
        if a.accepted {
            // Every stage of an accepted step has been evaluated (stage 0 possibly earlier).
            let tapes: Vec<usize> = self
                .pending
                .iter()
                .map(|p| p.expect("accepted step with an untaped stage"))
                .collect();
            self.steps.push(StepRecord {
                t: a.t,
                h: a.h,
                tapes,
            });
            let last = self.pending[s - 1];
            self.pending.iter_mut().for_each(|p| *p = None);
            if a.carry_last_stage {
                self.pending[0] = last;
                self.shared_first = true;
            } else {
                self.shared_first = false;
            }
        } else {
            for p in self.pending.iter_mut().skip(1) {
                if let Some(i) = p.take() {
                    self.arena.release(i);
                }
            }
        }
    }
}
