//! The depth-indexed field of TinyResNet's body on the device (Sander, Ablin, Peyré, NeurIPS
//! 2022): the twin of the CPU [`DepthField`] of residual blocks
//! `f_n(x) = BN₂(W₂ ⋆ ReLU(BN₁(W₁ ⋆ x)))`, layer `n = round(t·N)` at time `t`, as a
//! [`VectorField<CudaBatch>`], so that the generic gradient solvers run a ResNet (Euler) or
//! HeunNet (Heun) body with backprop or the reversible adjoint unchanged on the GPU.
//!
//! Each evaluation issues the residual block's launch plan ([`super::res_block_plan`], tested
//! in f64 against the CPU block) through the block's one executor
//! ([`super::res_block::run_res_plan`]); [`DepthLayout::place`] says where each of the plan's
//! buffers lives for layer `n`:
//!
//! * the parameters are one flat buffer in the CPU field's layout (`N` or one parameter sets
//!   of the block's `Sequential` order), so they move between devices as they are; the
//!   gradient `gθ` has the same layout;
//! * the running statistics are kept **per layer** as on the CPU (`[mean₁, var₁, mean₂,
//!   var₂]`, tied or not); in train mode an evaluation moves them only when it is the layer's
//!   first in an open training pass ([`CudaDepthField::begin_training_pass`] …
//!   [`CudaDepthField::freeze_running_stats`], the CPU's rule); any other evaluation binds
//!   the running statistics to a discard buffer, so the kernels' update lands there;
//! * the tape of an evaluation ([`CudaDepthTape`]) holds the block's taped buffers
//!   ([`ResBlockLayout::taped`]) and its layer and mode, so the solver keeps one per stage;
//!   the rest is the field's scratch.
//!
//! Errors cannot be returned through [`VectorField`]: they are recorded in the device and
//! reported by the next `Device::check` (as for the other device fields).

use std::collections::HashMap;
use std::sync::Arc;

use cudarc::driver::{CudaSlice, DevicePtr};

use super::device::{CudaError, Device};
use super::res_block::run_res_plan;
use super::res_block_plan::{ResBlockLayout, ResBuf};
use super::state::{f32s, CudaBatch};
use crate::field::{Parameterized, VectorField};
use crate::models::depth_field::{layer_at, DepthField, Tying};
use crate::real::Real;
use crate::state::State;

/// Where a buffer of one layer's plan lives in a [`CudaDepthField`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// The parameters at this offset (the CPU field's layout).
    Param(usize),
    /// The parameter gradient `gθ` at this offset (accumulated).
    Grad(usize),
    /// The layer's running statistics at this offset (`[mean₁, var₁, mean₂, var₂]`).
    Stats(usize),
    /// The discard buffer at this offset (an evaluation that must not move the statistics).
    Discard(usize),
    /// The evaluation's tape: this index of [`ResBlockLayout::taped`].
    Tape(usize),
    /// The call's own buffer: input, output, cotangent or input gradient.
    Call,
    /// The field's scratch (f64 for [`ResBuf::Sums`]).
    Scratch,
}

/// The shapes of a depth field of residual blocks and where each plan buffer lives.
#[derive(Debug, Clone, PartialEq)]
pub struct DepthLayout {
    block: ResBlockLayout,
    depth: usize,
    tying: Tying,
}

impl DepthLayout {
    /// The layout of `field`, whose layers must be residual blocks on its state's shape.
    pub fn of<T: Real>(field: &DepthField<T>) -> Result<Self, CudaError> {
        let shape = field.shape();
        let (h, w) = shape.spatial();
        let block = ResBlockLayout::new(shape.channels(), h, w)
            .map_err(|e| CudaError::invalid("TinyResNet body", format!("{shape:?}"), e))?;
        let c = block.channels();
        if field.params_per_function() != block.num_params() || field.depth() == 0 {
            return Err(CudaError::Unsupported(format!(
                "a depth field of {} layers with {} parameters per layer: the device body is \
                 residual blocks on {shape:?} ({} parameters each)",
                field.depth(),
                field.params_per_function(),
                block.num_params()
            )));
        }
        if field.running_stats(0).len() != 4 * c {
            return Err(CudaError::invalid(
                "TinyResNet body running statistics",
                field.running_stats(0).len(),
                format!("a residual block keeps 4·{c}"),
            ));
        }
        Ok(Self {
            block,
            depth: field.depth(),
            tying: field.tying(),
        })
    }

    /// The residual block of every layer.
    pub fn block(&self) -> &ResBlockLayout {
        &self.block
    }

    /// Layers `N`.
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// The layer evaluated at time `t` (as the CPU field).
    pub fn layer_at(&self, t: f64) -> usize {
        layer_at(t, self.depth)
    }

    /// Number of parameters (`N` or one sets).
    pub fn num_params(&self) -> usize {
        let sets = match self.tying {
            Tying::Untied => self.depth,
            Tying::Tied => 1,
        };
        sets * self.block.num_params()
    }

    /// Where `b` lives for a pass of `layer`'s plan; `stats`: the pass reads or moves the
    /// layer's running statistics (eval mode, or a training pass's first evaluation),
    /// otherwise they are bound to the discard buffer.
    pub fn place(&self, b: ResBuf, layer: usize, stats: bool) -> Place {
        use ResBuf::*;
        let base = self.tying.function_of_layer(layer) * self.block.num_params();
        let c = self.block.channels();
        if let Some(i) = self.block.taped().iter().position(|&t| t == b) {
            return Place::Tape(i);
        }
        match b {
            Weight(_) | Gamma(_) | Beta(_) => {
                Place::Param(base + self.block.param_offset(b).expect("a parameter"))
            }
            GradWeight(_) | GradGamma(_) | GradBeta(_) => {
                Place::Grad(base + self.block.param_offset(b).expect("a parameter gradient"))
            }
            RunningMean(l) | RunningVar(l) => {
                let off = 2 * c * (l - 1) + if matches!(b, RunningVar(_)) { c } else { 0 };
                if stats {
                    Place::Stats(off)
                } else {
                    Place::Discard(off)
                }
            }
            Input | Output | Cotangent | GradInput => Place::Call,
            _ => Place::Scratch,
        }
    }
}

/// The CPU field's rule for the running statistics, per layer: in train mode an evaluation
/// moves them only when it is the layer's first in an open training pass; eval mode reads
/// them. [`TrainingPass::evaluation`] says whether an evaluation binds the layer's real
/// statistics (moved or read) or the discard buffer.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingPass {
    open: bool,
    updated: Vec<bool>,
}

impl TrainingPass {
    /// A closed pass over `depth` layers.
    pub fn new(depth: usize) -> Self {
        Self {
            open: false,
            updated: vec![false; depth],
        }
    }

    /// Opens a pass: every layer's next training evaluation moves its statistics.
    pub fn begin(&mut self) {
        self.open = true;
        self.updated.iter_mut().for_each(|u| *u = false);
    }

    /// Closes the pass: training evaluations move nothing until the next one.
    pub fn freeze(&mut self) {
        self.open = false;
    }

    /// An evaluation of layer `n` in train mode or not: true when it binds the layer's
    /// running statistics (it moves them, or eval mode reads them).
    pub fn evaluation(&mut self, n: usize, train: bool) -> bool {
        if !train {
            return true;
        }
        let moves = self.open && !self.updated[n];
        if moves {
            self.updated[n] = true;
        }
        moves
    }
}

/// What one evaluation of a [`CudaDepthField`] keeps for its VJP.
pub struct CudaDepthTape {
    layer: usize,
    train: bool,
    rows: usize,
    bufs: Vec<CudaSlice<f32>>,
}

/// The body's field on the device (see the module docs).
pub struct CudaDepthField {
    dev: Arc<Device>,
    layout: DepthLayout,
    params: CudaSlice<f32>,
    /// Per layer, `[mean₁, var₁, mean₂, var₂]`.
    stats: Vec<CudaSlice<f32>>,
    discard: CudaSlice<f32>,
    train: bool,
    pass: TrainingPass,
    rows: usize,
    scratch: HashMap<ResBuf, CudaSlice<f32>>,
    sums: Option<CudaSlice<f64>>,
    /// The tape of untaped evaluations.
    own_tape: Option<CudaDepthTape>,
}

fn ptr<T>(dev: &Device, s: &CudaSlice<T>) -> u64 {
    s.device_ptr(dev.stream()).0
}

/// The address `off` elements of f32 into `base`.
fn at(base: u64, off: usize) -> u64 {
    base + (off * std::mem::size_of::<f32>()) as u64
}

impl CudaDepthField {
    /// The device twin of `field`: its parameters and running statistics copied (as f32),
    /// evaluation mode.
    pub fn from_cpu<T: Real>(dev: &Arc<Device>, field: &DepthField<T>) -> Result<Self, CudaError> {
        let layout = DepthLayout::of(field)?;
        let s = dev.stream();
        let up = |v: Vec<f32>| {
            s.clone_htod(&v)
                .map_err(|e| CudaError::call("host-to-device copy", e))
        };
        let stats = (0..layout.depth())
            .map(|n| up(f32s(field.running_stats(n))))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            dev: dev.clone(),
            params: up(f32s(field.params()))?,
            stats,
            discard: up(vec![0.0; 4 * layout.block().channels()])?,
            pass: TrainingPass::new(layout.depth()),
            layout,
            train: false,
            rows: 0,
            scratch: HashMap::new(),
            sums: None,
            own_tape: None,
        })
    }

    /// The layout.
    pub fn layout(&self) -> &DepthLayout {
        &self.layout
    }

    /// Training mode (batch statistics) or evaluation mode (running statistics).
    pub fn set_train(&mut self, train: bool) {
        self.train = train;
    }

    /// Opens a training pass: each layer's first evaluation in training mode moves its
    /// running statistics (as [`DepthField::begin_training_pass`]).
    pub fn begin_training_pass(&mut self) {
        self.pass.begin();
    }

    /// Closes the training pass.
    pub fn freeze_running_stats(&mut self) {
        self.pass.freeze();
    }

    /// Replaces the parameters (the CPU field's layout).
    pub fn set_params(&mut self, params: &[f32]) -> Result<(), CudaError> {
        super::device::upload(&self.dev, params, &mut self.params)
    }

    /// Layer `n`'s running statistics `[mean₁, var₁, mean₂, var₂]`, copied to the host.
    pub fn running_stats(&self, n: usize) -> Result<Vec<f32>, CudaError> {
        let s = self.stats.get(n).ok_or_else(|| {
            CudaError::invalid(
                "layer",
                n,
                format!("the body has {} layers", self.stats.len()),
            )
        })?;
        super::device::download(&self.dev, s)
    }

    /// Replaces layer `n`'s running statistics (`[mean₁, var₁, mean₂, var₂]`).
    pub fn set_running_stats(&mut self, n: usize, v: &[f32]) -> Result<(), CudaError> {
        let depth = self.stats.len();
        let s = self.stats.get_mut(n).ok_or_else(|| {
            CudaError::invalid("layer", n, format!("the body has {depth} layers"))
        })?;
        super::device::upload(&self.dev, v, s)
    }

    fn alloc<T: cudarc::driver::DeviceRepr + cudarc::driver::ValidAsZeroBits>(
        &self,
        n: usize,
    ) -> Option<CudaSlice<T>> {
        self.dev
            .record("allocation", self.dev.stream().alloc_zeros::<T>(n.max(1)))
    }

    fn alloc_tape(&self, rows: usize) -> Option<Vec<CudaSlice<f32>>> {
        let b = self.layout.block();
        b.taped()
            .iter()
            .map(|&t| self.alloc::<f32>(b.len_of(t, rows)))
            .collect()
    }

    /// Sizes the scratch for `rows` samples; false when the device failed.
    fn ensure_scratch(&mut self, rows: usize) -> bool {
        if self.rows == rows && self.sums.is_some() && self.own_tape.is_some() {
            return true;
        }
        use ResBuf::*;
        let b = self.layout.block().clone();
        // Sized for `rows` only once every buffer is there (a failed allocation retries).
        self.rows = 0;
        self.scratch.clear();
        for s in [Col, OutputT, CotangentT, GradZ, GradA1, GradInputT] {
            match self.alloc::<f32>(b.len_of(s, rows)) {
                Some(buf) => {
                    self.scratch.insert(s, buf);
                }
                None => return false,
            }
        }
        self.sums = self.alloc::<f64>(b.len_of(Sums, rows));
        self.own_tape = self.alloc_tape(rows).map(|bufs| CudaDepthTape {
            layer: 0,
            train: false,
            rows,
            bufs,
        });
        let ok = self.sums.is_some() && self.own_tape.is_some();
        if ok {
            self.rows = rows;
        }
        ok
    }

    fn check_rows(&self, what: &'static str, pairs: &[&CudaBatch]) -> Option<usize> {
        let d = self.layout.block().sample_len();
        let rows = pairs[0].rows();
        if rows == 0 || pairs.iter().any(|b| b.rows() != rows || b.cols() != d) {
            let got: Vec<String> = pairs
                .iter()
                .map(|b| format!("{}×{}", b.rows(), b.cols()))
                .collect();
            self.dev.record::<(), _>(
                what,
                Err(format!(
                    "{} for a body of {d} values per sample",
                    got.join(", ")
                )),
            );
            return None;
        }
        Some(rows)
    }

    /// Issues the forward plan of layer `n` from `y` into `dy`, taping into `tape`.
    fn forward(
        &mut self,
        t: f64,
        y: &CudaBatch,
        dy: &mut CudaBatch,
        tape: Option<&mut CudaDepthTape>,
    ) {
        let Some(rows) = self.check_rows("TinyResNet body input", &[y, dy]) else {
            return;
        };
        if !self.ensure_scratch(rows) {
            return;
        }
        let n = self.layout.layer_at(t);
        let stats = self.pass.evaluation(n, self.train);
        let mut own = self.own_tape.take();
        let tape = match tape {
            Some(tp) => {
                if tp.rows != rows || tp.bufs.is_empty() {
                    let Some(bufs) = self.alloc_tape(rows) else {
                        self.own_tape = own;
                        return;
                    };
                    (tp.rows, tp.bufs) = (rows, bufs);
                }
                tp
            }
            None => own.as_mut().expect("allocated with the scratch"),
        };
        (tape.layer, tape.train) = (n, self.train);
        let ops = self.layout.block().forward(rows, self.train);
        let out = dy.slice_mut().map(|s| &*s);
        let calls = [(ResBuf::Input, y.slice()), (ResBuf::Output, out)];
        self.run(&ops, n, stats, tape, &calls, None);
        self.own_tape = own;
    }

    /// Binds and issues `ops` for layer `n`.
    fn run(
        &self,
        ops: &[super::res_block_plan::ResOp],
        n: usize,
        stats: bool,
        tape: &CudaDepthTape,
        calls: &[(ResBuf, Option<&CudaSlice<f32>>)],
        grad: Option<u64>,
    ) {
        let dev = &self.dev;
        let get = |b: ResBuf| -> Result<u64, String> {
            let missing = || format!("the plan names {b:?}, which is unbound");
            Ok(match self.layout.place(b, n, stats) {
                Place::Param(o) => at(ptr(dev, &self.params), o),
                Place::Grad(o) => at(grad.ok_or_else(missing)?, o),
                Place::Stats(o) => at(ptr(dev, &self.stats[n]), o),
                Place::Discard(o) => at(ptr(dev, &self.discard), o),
                Place::Tape(i) => ptr(dev, tape.bufs.get(i).ok_or_else(missing)?),
                Place::Call => calls
                    .iter()
                    .find(|(c, _)| *c == b)
                    .and_then(|(_, s)| *s)
                    .map(|s| ptr(dev, s))
                    .ok_or_else(missing)?,
                Place::Scratch if b == ResBuf::Sums => {
                    ptr(dev, self.sums.as_ref().ok_or_else(missing)?)
                }
                Place::Scratch => ptr(dev, self.scratch.get(&b).ok_or_else(missing)?),
            })
        };
        if let Err(e) = run_res_plan(dev, self.layout.block().bn_options(), ops, get) {
            dev.record::<(), _>("TinyResNet body", Err(e));
        }
    }
}

impl VectorField<CudaBatch> for CudaDepthField {
    type Tape = CudaDepthTape;
    type Grad = CudaBatch;

    fn new_tape(&self) -> CudaDepthTape {
        CudaDepthTape {
            layer: 0,
            train: false,
            rows: 0,
            bufs: Vec::new(),
        }
    }

    fn zero_grad(&self) -> CudaBatch {
        let n = self.layout.num_params();
        match CudaBatch::zeros(&self.dev, 1, n) {
            Ok(g) => g,
            Err(e) => {
                self.dev.record::<(), _>("allocation", Err(e));
                CudaBatch::unallocated(&self.dev, 1, n)
            }
        }
    }

    fn eval(&mut self, t: f64, y: &CudaBatch, dy: &mut CudaBatch) {
        self.forward(t, y, dy, None);
    }

    fn eval_taped(&mut self, t: f64, y: &CudaBatch, dy: &mut CudaBatch, tape: &mut CudaDepthTape) {
        self.forward(t, y, dy, Some(tape));
    }

    fn vjp(
        &mut self,
        tape: &CudaDepthTape,
        v: &CudaBatch,
        gy: &mut CudaBatch,
        gtheta: &mut CudaBatch,
    ) {
        let Some(rows) = self.check_rows("TinyResNet body cotangent", &[v, gy]) else {
            return;
        };
        if rows != tape.rows || gtheta.len() != self.layout.num_params() {
            self.dev.record::<(), _>(
                "TinyResNet body VJP",
                Err(format!(
                    "{rows} rows and a gradient of {} for a tape of {} rows and {} parameters",
                    gtheta.len(),
                    tape.rows,
                    self.layout.num_params()
                )),
            );
            return;
        }
        if !self.ensure_scratch(rows) {
            return;
        }
        let Some(g) = gtheta.slice_mut().map(|s| ptr(&self.dev, &*s)) else {
            return;
        };
        let ops = self.layout.block().backward(rows, tape.train);
        // The VJP reads the taped statistics, never the running ones.
        let gx = gy.slice_mut().map(|s| &*s);
        let calls = [(ResBuf::Cotangent, v.slice()), (ResBuf::GradInput, gx)];
        self.run(&ops, tape.layer, false, tape, &calls, Some(g));
    }
}

impl std::fmt::Debug for CudaDepthField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaDepthField")
            .field("layout", &self.layout)
            .field("rows", &self.rows)
            .finish()
    }
}
