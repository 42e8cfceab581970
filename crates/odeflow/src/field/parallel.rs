//! Data parallelism over the batch for any field on CPU batches.
//!
//! The networks of this research are small: one evaluation of Ott et al.'s `simple_odenet`
//! on 128 samples takes tens of microseconds, too little for a matrix product to split across
//! cores. The batch splits instead: [`ParallelField`] keeps one copy of the field per worker,
//! gives each a contiguous slice of rows, and runs them on the rayon pool. Parameter
//! gradients of the workers are summed in worker order, so results are bitwise reproducible
//! for a given number of workers (they differ from the serial field only in the order of
//! that sum).
//!
//! Only fields whose rows are independent may be split: every built-in field, but not a
//! network with batch-norm in training mode (its statistics couple the rows).

use rayon::prelude::*;

use super::{ParamView, Parameterized, VectorField};
use crate::real::Real;
use crate::state::Batch;

/// Rows per worker below which splitting does not pay.
const MIN_ROWS: usize = 16;

/// Buffers of one worker: its input rows, output rows and parameter gradient.
#[derive(Debug, Clone)]
struct Slot<T> {
    input: Batch<T>,
    output: Batch<T>,
    grad: Vec<T>,
}

/// A field evaluated by several copies on contiguous slices of the batch.
#[derive(Debug, Clone)]
pub struct ParallelField<T, F> {
    workers: Vec<F>,
    /// Worker 0's parameters changed since the others were synchronised.
    stale: bool,
    slots: Vec<Slot<T>>,
}

/// The tapes of one evaluation: one per worker, and the row split.
#[derive(Debug, Clone)]
pub struct ParallelTape<P> {
    tapes: Vec<P>,
    rows: Vec<(usize, usize)>,
}

/// Contiguous row ranges `(start, len)` for at most `k` workers with at least `MIN_ROWS`
/// rows each.
fn split_rows(rows: usize, k: usize) -> Vec<(usize, usize)> {
    let k = k.min(rows / MIN_ROWS).max(1);
    let (base, extra) = (rows / k, rows % k);
    let mut start = 0;
    (0..k)
        .map(|i| {
            let len = base + usize::from(i < extra);
            start += len;
            (start - len, len)
        })
        .collect()
}

impl<T: Real, F: Clone> ParallelField<T, F> {
    /// Splits evaluations of `field` over `workers ≥ 1` copies (1: the field itself).
    pub fn new(field: F, workers: usize) -> Self {
        Self {
            workers: vec![field; workers.max(1)],
            stale: false,
            slots: Vec::new(),
        }
    }
}

impl<T, F> ParallelField<T, F> {
    /// The underlying field (worker 0).
    pub fn inner(&self) -> &F {
        &self.workers[0]
    }

    /// The underlying field (worker 0), mutable; the other workers copy its parameters
    /// before the next evaluation.
    pub fn inner_mut(&mut self) -> &mut F {
        self.stale = true;
        &mut self.workers[0]
    }

    /// Number of workers.
    pub fn workers(&self) -> usize {
        self.workers.len()
    }
}

impl<T: Real, F> ParallelField<T, F>
where
    F: VectorField<Batch<T>, Grad = Vec<T>> + Parameterized<T> + Clone + Send,
    F::Tape: Send + Sync,
{
    fn sync(&mut self) {
        if self.stale {
            let (first, rest) = self.workers.split_at_mut(1);
            for w in rest {
                w.params_mut().copy_from_slice(first[0].params());
            }
            self.stale = false;
        }
    }

    /// Copies the rows of `src` into the slots' inputs and sizes their outputs.
    fn scatter(&mut self, src: &Batch<T>, rows: &[(usize, usize)]) {
        let c = src.cols();
        let np = self.workers[0].num_params();
        self.slots.resize_with(rows.len(), || Slot {
            input: Batch::zeros(0, c),
            output: Batch::zeros(0, c),
            grad: vec![T::zero(); np],
        });
        for (&(s, n), slot) in rows.iter().zip(self.slots.iter_mut()) {
            slot.input.resize(n, c);
            slot.input
                .as_mut_slice()
                .copy_from_slice(&src.as_slice()[s * c..(s + n) * c]);
            slot.output.resize(n, c);
        }
    }

    /// Copies the slots' outputs into the rows of `dst`.
    fn gather(&self, dst: &mut Batch<T>, rows: &[(usize, usize)]) {
        let c = dst.cols();
        for (&(s, n), slot) in rows.iter().zip(&self.slots) {
            dst.as_mut_slice()[s * c..(s + n) * c].copy_from_slice(slot.output.as_slice());
        }
    }
}

impl<T: Real, F> VectorField<Batch<T>> for ParallelField<T, F>
where
    F: VectorField<Batch<T>, Grad = Vec<T>> + Parameterized<T> + Clone + Send,
    F::Tape: Send + Sync,
{
    type Tape = ParallelTape<F::Tape>;
    type Grad = Vec<T>;

    fn new_tape(&self) -> Self::Tape {
        ParallelTape {
            tapes: self.workers.iter().map(|w| w.new_tape()).collect(),
            rows: Vec::new(),
        }
    }

    fn zero_grad(&self) -> Vec<T> {
        self.workers[0].zero_grad()
    }

    fn eval(&mut self, t: f64, y: &Batch<T>, dy: &mut Batch<T>) {
        self.sync();
        let rows = split_rows(y.rows(), self.workers.len());
        if rows.len() == 1 {
            return self.workers[0].eval(t, y, dy);
        }
        self.scatter(y, &rows);
        let k = rows.len();
        self.workers[..k]
            .par_iter_mut()
            .zip(self.slots.par_iter_mut())
            .for_each(|(w, s)| w.eval(t, &s.input, &mut s.output));
        self.gather(dy, &rows);
    }

    fn eval_taped(&mut self, t: f64, y: &Batch<T>, dy: &mut Batch<T>, tape: &mut Self::Tape) {
        self.sync();
        let rows = split_rows(y.rows(), self.workers.len());
        tape.rows.clone_from(&rows);
        if rows.len() == 1 {
            return self.workers[0].eval_taped(t, y, dy, &mut tape.tapes[0]);
        }
        self.scatter(y, &rows);
        let k = rows.len();
        self.workers[..k]
            .par_iter_mut()
            .zip(self.slots.par_iter_mut())
            .zip(tape.tapes[..k].par_iter_mut())
            .for_each(|((w, s), tp)| w.eval_taped(t, &s.input, &mut s.output, tp));
        self.gather(dy, &rows);
    }

    fn vjp(&mut self, tape: &Self::Tape, v: &Batch<T>, gy: &mut Batch<T>, gtheta: &mut Vec<T>) {
        self.sync();
        let rows = &tape.rows;
        if rows.len() <= 1 {
            return self.workers[0].vjp(&tape.tapes[0], v, gy, gtheta);
        }
        self.scatter(v, rows);
        let k = rows.len();
        self.workers[..k]
            .par_iter_mut()
            .zip(self.slots.par_iter_mut())
            .zip(tape.tapes[..k].par_iter())
            .for_each(|((w, s), tp)| {
                s.grad.iter_mut().for_each(|g| *g = T::zero());
                w.vjp(tp, &s.input, &mut s.output, &mut s.grad);
            });
        self.gather(gy, rows);
        for s in &self.slots[..k] {
            for (a, b) in gtheta.iter_mut().zip(&s.grad) {
                *a += *b;
            }
        }
    }
}

impl<T, F: Parameterized<T>> Parameterized<T> for ParallelField<T, F> {
    fn params(&self) -> &[T] {
        self.workers[0].params()
    }
    fn params_mut(&mut self) -> &mut [T] {
        self.stale = true;
        self.workers[0].params_mut()
    }
    fn param_views(&self) -> Vec<ParamView> {
        self.workers[0].param_views()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grad::toy_field::TanhField;
    use crate::state::State;

    #[test]
    fn parallel_evaluation_and_vjps_match_the_serial_field() {
        let serial = TanhField::<f64>::random(3, 1.5, 1);
        let mut par = ParallelField::new(serial.clone(), 3);
        let mut serial = serial;
        let y = Batch::from_vec(
            50,
            3,
            (0..150)
                .map(|i| ((i * 37 % 101) as f64 / 50.0) - 1.0)
                .collect(),
        )
        .unwrap();
        let v = Batch::from_vec(
            50,
            3,
            (0..150)
                .map(|i| ((i * 53 % 97) as f64 / 48.0) - 1.0)
                .collect(),
        )
        .unwrap();
        let (mut a, mut b) = (y.zeros_like(), y.zeros_like());
        serial.eval(0.3, &y, &mut a);
        par.eval(0.3, &y, &mut b);
        assert_eq!(a, b);
        let (mut ts, mut tp) = (serial.new_tape(), par.new_tape());
        serial.eval_taped(0.3, &y, &mut a, &mut ts);
        par.eval_taped(0.3, &y, &mut b, &mut tp);
        assert_eq!(tp.rows.len(), 3);
        let (mut gs, mut gp) = (y.zeros_like(), y.zeros_like());
        let (mut ths, mut thp) = (serial.zero_grad(), par.zero_grad());
        serial.vjp(&ts, &v, &mut gs, &mut ths);
        par.vjp(&tp, &v, &mut gp, &mut thp);
        assert_eq!(gs, gp);
        for (x, z) in ths.iter().zip(&thp) {
            assert!((x - z).abs() <= 1e-12 * (1.0 + x.abs()));
        }
        // Parameter writes through the wrapper reach every worker.
        par.params_mut()[0] += 0.5;
        serial.params_mut()[0] += 0.5;
        serial.eval(0.3, &y, &mut a);
        par.eval(0.3, &y, &mut b);
        assert_eq!(a, b);
    }

    #[test]
    fn row_split_is_contiguous_and_respects_the_minimum() {
        assert_eq!(split_rows(128, 2), vec![(0, 64), (64, 64)]);
        assert_eq!(split_rows(50, 3), vec![(0, 17), (17, 17), (34, 16)]);
        assert_eq!(split_rows(20, 4), vec![(0, 20)]);
    }
}
