//! The ODE classifier of Ott et al. (ICLR 2021): an ODE block on the input, integrated over
//! `t ∈ [0, 1]` by a solver that is part of the model, then a classification head.
//!
//! ```text
//! x ─(encoder, optional)→ z ─(append `augment` zero channels: ANODE)→ z₀
//!   ─(solve z' = f(z; θ) on [0, 1] with the training solver)→ z₁ ─(head)→ logits ─→ CE loss
//! ```
//!
//! Ott et al. use no encoder and a single Linear head on the flattened state. The parameters
//! of the three parts are one flat vector `[encoder | field | head]` for the optimizer, and
//! gradients of the ODE block come from any [`GradientMethod`]. The same model is evaluated
//! with any other solver by [`OdeClassifier::evaluate`], which is how solver dependence is
//! measured: train with one solver, test with many.

use super::flow_model::{evaluate_flow, EvalOutcome, FlowModel};
use crate::data::{BatchOrder, Dataset};
use crate::error::ArgError;
use crate::field::{FieldRhs, Parameterized, VectorField};
use crate::grad::{DiffSolve, FieldGradSolver, GradientMethod};
use crate::nn::loss::{accuracy, softmax_cross_entropy};
use crate::nn::{Network, Tape};
use crate::real::Real;
use crate::solve::{solve, Method, SaveAt, SolveOptions, Stats};
use crate::state::Batch;
use crate::train::{BatchSource, StepMetrics, TrainError, Trainable};

/// One labelled mini-batch.
#[derive(Debug, Clone)]
pub struct ClassBatch<T> {
    /// Inputs, one sample per row.
    pub x: Batch<T>,
    /// Class labels.
    pub labels: Vec<usize>,
}

/// Mini-batches of a [`Dataset`] as a [`BatchSource`]: batch `k` is the `k mod B`-th batch of
/// epoch `⌊k/B⌋`, shuffled by the seed and the epoch alone (incomplete last batches are
/// dropped), so resumed runs see the same batches.
pub struct DatasetSource<'a, T> {
    data: &'a Dataset<T>,
    order: BatchOrder,
    position: Option<(u64, u64)>,
}

impl<'a, T: Real> DatasetSource<'a, T> {
    /// Batches of `batch_size` (at most the data set's size) shuffled with `seed`.
    pub fn new(data: &'a Dataset<T>, batch_size: usize, seed: u64) -> Result<Self, ArgError> {
        if data.is_empty() {
            return Err(ArgError::invalid("data set", "empty", "has no samples"));
        }
        let bs = batch_size.min(data.len());
        Ok(Self {
            data,
            order: BatchOrder::new(data.len(), bs, true, Some(seed))?,
            position: None,
        })
    }
}

impl<T: Real> BatchSource<ClassBatch<T>> for DatasetSource<'_, T> {
    fn new_batch(&self) -> ClassBatch<T> {
        ClassBatch {
            x: Batch::zeros(0, self.data.inputs().cols()),
            labels: Vec::new(),
        }
    }

    fn fill(&mut self, iteration: u64, batch: &mut ClassBatch<T>) {
        let per_epoch = self.order.batches_per_epoch().max(1) as u64;
        let (epoch, k) = (iteration / per_epoch, iteration % per_epoch);
        if self.position != Some((epoch, k)) {
            self.order.set_epoch(epoch);
            for _ in 0..k {
                self.order.next_indices();
            }
        }
        let idx = self.order.next_indices().unwrap_or(&[]);
        batch.x.gather_rows(self.data.inputs(), idx);
        batch.labels.clear();
        batch
            .labels
            .extend(idx.iter().map(|&i| self.data.labels()[i]));
        self.position = Some((epoch, k + 1));
    }
}

/// The networks of an [`OdeClassifier`].
pub struct ClassifierParts<T: Real, F> {
    /// Optional network before the ODE block.
    pub encoder: Option<Network<T>>,
    /// The vector field of the ODE block.
    pub field: F,
    /// The ODE state's size per sample: the encoder's output size (or the input size) plus
    /// `augment`, and the head's input size.
    pub field_dim: usize,
    /// The head after the ODE block.
    pub head: Network<T>,
    /// Zero components appended to each sample (ANODE channels × spatial size, since rows
    /// are channels-first).
    pub augment: usize,
}

/// An ODE classifier (see the module docs).
pub struct OdeClassifier<T: Real, F: VectorField<Batch<T>, Grad = Vec<T>>> {
    /// Optional network before the ODE block.
    pub encoder: Option<Network<T>>,
    /// The vector field of the ODE block.
    pub field: F,
    /// The head after the ODE block.
    pub head: Network<T>,
    solver: FieldGradSolver<Batch<T>, F>,
    augment: usize,
    enc_tape: Tape<T>,
    head_tape: Tape<T>,
    z: Batch<T>,
    z0: Batch<T>,
    logits: Batch<T>,
    dlogits: Batch<T>,
    dz1: Batch<T>,
    dz: Batch<T>,
    dx: Batch<T>,
    gfield: Vec<T>,
}

fn nn_err(e: impl std::fmt::Display) -> ArgError {
    ArgError::invalid("model", "architecture", e.to_string())
}

impl<T: Real, F: VectorField<Batch<T>, Grad = Vec<T>> + Parameterized<T>> OdeClassifier<T, F> {
    /// Assembles a classifier from its parts and its training solver.
    pub fn new(
        parts: ClassifierParts<T, F>,
        method: Method,
        grad: GradientMethod,
        opts: SolveOptions,
    ) -> Result<Self, ArgError> {
        let ClassifierParts {
            encoder,
            field,
            field_dim,
            head,
            augment,
        } = parts;
        if let Some(e) = &encoder {
            let out = e.out_shape().len();
            if out + augment != field_dim {
                return Err(ArgError::invalid("augment", augment, format!("encoder output {out} + augment must equal the field's dimension {field_dim}")));
            }
        }
        if head.in_shape().len() != field_dim {
            return Err(ArgError::invalid(
                "head",
                head.in_shape().len(),
                format!("the head's input size must equal the field's dimension {field_dim}"),
            ));
        }
        let solver = FieldGradSolver::new(
            &method,
            grad,
            SolveOptions {
                t0: opts.t0,
                t1: opts.t1,
                save: SaveAt::Final,
                ..opts
            },
        )?;
        let tape = head.new_tape();
        Ok(Self {
            encoder,
            gfield: vec![T::zero(); field.num_params()],
            field,
            head,
            solver,
            augment,
            enc_tape: tape.clone(),
            head_tape: tape,
            z: Batch::zeros(0, 0),
            z0: Batch::zeros(0, 0),
            logits: Batch::zeros(0, 0),
            dlogits: Batch::zeros(0, 0),
            dz1: Batch::zeros(0, 0),
            dz: Batch::zeros(0, 0),
            dx: Batch::zeros(0, 0),
        })
    }

    /// The training solver.
    pub fn solver(&self) -> &FieldGradSolver<Batch<T>, F> {
        &self.solver
    }

    /// The training solver, mutable (e.g. to adapt its step size).
    pub fn solver_mut(&mut self) -> &mut FieldGradSolver<Batch<T>, F> {
        &mut self.solver
    }

    /// Zero components appended to each sample of the ODE state.
    pub fn augment(&self) -> usize {
        self.augment
    }

    fn encoder_len(&self) -> usize {
        self.encoder.as_ref().map_or(0, |e| e.num_params())
    }

    /// Switches batch-norm layers between training and evaluation mode.
    pub fn set_train(&mut self, train: bool) {
        if let Some(e) = self.encoder.as_mut() {
            e.set_train(train);
        }
        self.head.set_train(train);
    }

    /// `x → z₀`: encoder (taped when `taped`) and augmentation, into `self.z0`.
    fn lift(&mut self, x: &Batch<T>, taped: bool) -> Result<(), ArgError> {
        let src: &Batch<T> = match self.encoder.as_mut() {
            Some(enc) => {
                let r = if taped {
                    enc.forward_taped(0.0, x, &mut self.z, &mut self.enc_tape)
                } else {
                    enc.forward(0.0, x, &mut self.z)
                };
                r.map_err(nn_err)?;
                &self.z
            }
            None => x,
        };
        let (n, c) = (src.rows(), src.cols());
        self.z0.resize(n, c + self.augment);
        for (dst, row) in self
            .z0
            .as_mut_slice()
            .chunks_exact_mut(c + self.augment)
            .zip(src.as_slice().chunks_exact(c.max(1)))
        {
            dst[..c].copy_from_slice(row);
            dst[c..].iter_mut().for_each(|v| *v = T::zero());
        }
        Ok(())
    }

    /// The ODE block's initial state `z₀` of `x`: the encoder's output (evaluation pass, no
    /// tape) with the `augment` zero components appended.
    pub fn initial_state(&mut self, x: &Batch<T>) -> Result<&Batch<T>, ArgError> {
        self.lift(x, false)?;
        Ok(&self.z0)
    }

    /// Logits of `x` with any solver (no gradient), and the solve's statistics.
    pub fn logits_with(
        &mut self,
        x: &Batch<T>,
        method: &Method,
        opts: &SolveOptions,
    ) -> Result<(Batch<T>, Stats), String> {
        self.lift(x, false).map_err(|e| e.to_string())?;
        let o = SolveOptions {
            save: SaveAt::Final,
            ..opts.clone()
        };
        let sol = solve(method, &mut FieldRhs(&mut self.field), &self.z0, &o)
            .map_err(|e| e.to_string())?;
        let mut logits = Batch::zeros(0, 0);
        self.head
            .forward(o.t1, &sol.y_final, &mut logits)
            .map_err(|e| e.to_string())?;
        Ok((logits, sol.stats))
    }

    /// Exact accuracy (correct / total) and mean loss over `data` with any solver, in
    /// batches of `batch_size`, with batch-norm layers in evaluation mode (see
    /// [`evaluate_flow`]).
    pub fn evaluate(
        &mut self,
        data: &Dataset<T>,
        method: &Method,
        opts: &SolveOptions,
        batch_size: usize,
    ) -> Result<EvalOutcome, String> {
        evaluate_flow(self, data, method, opts, batch_size)
    }
}

impl<T: Real, F: VectorField<Batch<T>, Grad = Vec<T>> + Parameterized<T>> FlowModel<T>
    for OdeClassifier<T, F>
{
    fn outputs(
        &mut self,
        x: &Batch<T>,
        method: &Method,
        opts: &SolveOptions,
    ) -> Result<(Batch<T>, Stats), String> {
        self.logits_with(x, method, opts)
    }

    fn set_eval(&mut self, eval: bool) {
        self.set_train(!eval);
    }
}

impl<T: Real, F: VectorField<Batch<T>, Grad = Vec<T>> + Parameterized<T>> Trainable<T>
    for OdeClassifier<T, F>
{
    type Batch = ClassBatch<T>;

    fn num_params(&self) -> usize {
        self.encoder_len() + self.field.num_params() + self.head.num_params()
    }

    fn read_params(&self, out: &mut [T]) {
        let (e, f) = (self.encoder_len(), self.field.num_params());
        if let Some(enc) = &self.encoder {
            out[..e].copy_from_slice(enc.params());
        }
        out[e..e + f].copy_from_slice(self.field.params());
        out[e + f..].copy_from_slice(self.head.params());
    }

    fn write_params(&mut self, src: &[T]) {
        let (e, f) = (self.encoder_len(), self.field.num_params());
        if let Some(enc) = self.encoder.as_mut() {
            enc.params_mut().copy_from_slice(&src[..e]);
        }
        self.field.params_mut().copy_from_slice(&src[e..e + f]);
        self.head.params_mut().copy_from_slice(&src[e + f..]);
    }

    fn loss_and_grad(
        &mut self,
        batch: &ClassBatch<T>,
        grad: &mut [T],
        it: u64,
    ) -> Result<StepMetrics, TrainError> {
        let (e, f) = (self.encoder_len(), self.field.num_params());
        let arg = |a: ArgError| TrainError::Arg(a);
        self.lift(&batch.x, true).map_err(arg)?;
        let t1 = self.solver.options().t1;
        let z1 = self
            .solver
            .forward(&mut self.field, &self.z0)
            .map_err(|err| TrainError::solver(it, err))?;
        self.head
            .forward_taped(t1, z1, &mut self.logits, &mut self.head_tape)
            .map_err(|x| arg(nn_err(x)))?;
        self.dlogits.resize(self.logits.rows(), self.logits.cols());
        let loss = softmax_cross_entropy(&self.logits, &batch.labels, &mut self.dlogits)
            .map_err(|x| arg(nn_err(x)))?;
        let acc = accuracy(&self.logits, &batch.labels).map_err(|x| arg(nn_err(x)))?;
        self.head
            .backward(
                &self.head_tape,
                &self.dlogits,
                &mut self.dz1,
                &mut grad[e + f..],
            )
            .map_err(|x| arg(nn_err(x)))?;
        self.gfield.iter_mut().for_each(|g| *g = T::zero());
        let dz0 = self
            .solver
            .backward(&mut self.field, &self.dz1, &mut self.gfield)
            .map_err(|err| TrainError::solver(it, err))?;
        grad[e..e + f].copy_from_slice(&self.gfield);
        if let Some(enc) = self.encoder.as_mut() {
            // Drop the augmented channels' gradient, then back through the encoder.
            let c = enc.out_shape().len();
            self.dz.resize(dz0.rows(), c);
            for (dst, row) in self
                .dz
                .as_mut_slice()
                .chunks_exact_mut(c)
                .zip(dz0.as_slice().chunks_exact(c + self.augment))
            {
                dst.copy_from_slice(&row[..c]);
            }
            enc.backward(&self.enc_tape, &self.dz, &mut self.dx, &mut grad[..e])
                .map_err(|x| arg(nn_err(x)))?;
        }
        let s = self.solver.stats();
        Ok(StepMetrics {
            loss,
            accuracy: Some(acc),
            nfe_forward: s.forward.nfe,
            nfe_backward: s.backward_vjp + s.backward_nfe,
            extra: Default::default(),
        })
    }
}
