//! [`CudaMlp`]: the MLP field `dims[0] → … → dims[L]` (one activation after every layer but
//! the last, as [`crate::nn::zoo::mlp`]) on the device, with exact VJPs, implementing the
//! same [`VectorField`] as the CPU [`crate::nn::NeuralField`] so that the generic solvers and
//! gradient methods run unchanged.
//!
//! Each layer is one cuBLAS SGEMM and one fused bias + activation kernel forward; its VJP is
//! the activation-derivative kernel and three SGEMMs (`∂W`, `∂b` as a GEMM with ones, `∂x`),
//! in the order of [`MlpLayout::forward`] / [`MlpLayout::backward`], which are unit-tested
//! against the CPU network. Parameters and their gradient are flat f32 device buffers in the
//! CPU network's order, so they move between devices by one copy.

use std::sync::Arc;

use cudarc::driver::{CudaSlice, DevicePtr, PushKernelArg};

use super::device::{download, upload, CudaError, Device};
use super::plan::{act_code, Gemm, Mat, MlpLayout, Op};
use super::state::{config, CudaBatch};
use crate::field::VectorField;
use crate::nn::Activation;
use crate::state::{Batch, State};

/// What one taped evaluation keeps: a copy of the input and the hidden activations.
pub struct CudaTape {
    rows: usize,
    input: Option<CudaSlice<f32>>,
    acts: Vec<CudaSlice<f32>>,
}

/// The MLP field on a GPU.
pub struct CudaMlp {
    dev: Arc<Device>,
    layout: MlpLayout,
    params: CudaSlice<f32>,
    /// Hidden activations of untaped evaluations and hidden gradients of VJPs, for `rows`.
    rows: usize,
    acts: Vec<CudaSlice<f32>>,
    grads: Vec<CudaSlice<f32>>,
    ones: Option<CudaSlice<f32>>,
}

/// Device addresses of the buffers one plan execution uses.
#[derive(Default)]
struct Ptrs {
    input: u64,
    acts: Vec<u64>,
    output: u64,
    cotangent: u64,
    grads: Vec<u64>,
    grad_input: u64,
    params: u64,
    gparams: u64,
    ones: u64,
}

impl Ptrs {
    fn get(&self, layout: &MlpLayout, m: Mat) -> u64 {
        let f = std::mem::size_of::<f32>() as u64;
        match m {
            Mat::Input => self.input,
            Mat::Act(l) => self.acts[l - 1],
            Mat::Output => self.output,
            Mat::Cotangent => self.cotangent,
            Mat::Grad(l) => self.grads[l - 1],
            Mat::GradInput => self.grad_input,
            Mat::Weight(l) => self.params + f * layout.weight_offset(l) as u64,
            Mat::Bias(l) => self.params + f * layout.bias_offset(l) as u64,
            Mat::GradWeight(l) => self.gparams + f * layout.weight_offset(l) as u64,
            Mat::GradBias(l) => self.gparams + f * layout.bias_offset(l) as u64,
            Mat::Ones => self.ones,
        }
    }
}

fn ptr(dev: &Device, s: &CudaSlice<f32>) -> u64 {
    s.device_ptr(dev.stream()).0
}

impl CudaMlp {
    /// The MLP `dims` with `activation` and the CPU network's flat parameters `params`, on
    /// `dev`. Tanh and ReLU have device kernels; other activations are refused.
    pub fn new(
        dev: &Arc<Device>,
        dims: &[usize],
        activation: Activation,
        params: &[f32],
    ) -> Result<Self, CudaError> {
        if dims.len() >= 2 && dims[0] != dims[dims.len() - 1] {
            return Err(CudaError::Unsupported(format!(
                "MLP sizes {dims:?}: a field's output size must equal its input size"
            )));
        }
        Self::map(dev, dims, activation, params)
    }

    /// The MLP `dims` with `activation` after every layer but the last as a map: its output
    /// size may differ from its input size (e.g. the scalar networks `n → m → m → 1` of a
    /// Hamiltonian network, whose input gradient is the VJP with cotangent 1).
    pub fn map(
        dev: &Arc<Device>,
        dims: &[usize],
        activation: Activation,
        params: &[f32],
    ) -> Result<Self, CudaError> {
        if dims.len() < 2 || dims.contains(&0) {
            return Err(CudaError::Unsupported(format!(
                "MLP sizes {dims:?}: need at least two positive sizes"
            )));
        }
        let act = act_code(Some(activation)).ok_or_else(|| {
            CudaError::Unsupported(format!(
                "activation {activation:?} (the device MLP has tanh and relu)"
            ))
        })?;
        Self::build(dev, MlpLayout::new(dims, act), params)
    }

    /// One Linear layer `inputs → outputs` with the CPU `Linear`'s parameters (weight
    /// `[outputs, inputs]`, then bias): a map, not a field (its output size may differ from
    /// its input size), e.g. TinyResNet's head.
    pub fn linear(
        dev: &Arc<Device>,
        inputs: usize,
        outputs: usize,
        params: &[f32],
    ) -> Result<Self, CudaError> {
        if inputs == 0 || outputs == 0 {
            return Err(CudaError::Unsupported(format!(
                "a Linear layer {inputs} → {outputs}: sizes must be positive"
            )));
        }
        Self::build(dev, MlpLayout::new(&[inputs, outputs], 0), params)
    }

    fn build(dev: &Arc<Device>, layout: MlpLayout, params: &[f32]) -> Result<Self, CudaError> {
        let dims = layout.dims();
        if params.len() != layout.num_params() {
            return Err(CudaError::Unsupported(format!(
                "{} parameters given for an MLP {dims:?} of {}",
                params.len(),
                layout.num_params()
            )));
        }
        let params = dev
            .stream()
            .clone_htod(params)
            .map_err(|e| CudaError::call("host-to-device copy", e))?;
        Ok(Self {
            dev: dev.clone(),
            layout,
            params,
            rows: 0,
            acts: Vec::new(),
            grads: Vec::new(),
            ones: None,
        })
    }

    /// The layer sizes.
    pub fn dims(&self) -> &[usize] {
        self.layout.dims()
    }

    /// Number of parameters.
    pub fn num_params(&self) -> usize {
        self.layout.num_params()
    }

    /// The parameter buffer (updated in place by a device optimizer).
    pub fn params_mut(&mut self) -> &mut CudaSlice<f32> {
        &mut self.params
    }

    /// The parameters copied to the host (the CPU network's order).
    pub fn params_to_host(&self) -> Result<Vec<f32>, CudaError> {
        download(&self.dev, &self.params)
    }

    /// Replaces the parameters from the host.
    pub fn set_params(&mut self, params: &[f32]) -> Result<(), CudaError> {
        upload(&self.dev, params, &mut self.params)
    }

    fn hidden(&self) -> impl Iterator<Item = usize> + '_ {
        1..self.layout.layers()
    }

    /// Sizes the scratch buffers for `rows` samples; false when the device failed.
    fn ensure_rows(&mut self, rows: usize) -> bool {
        if self.rows == rows && self.ones.is_some() {
            return true;
        }
        let stream = self.dev.stream().clone();
        let mut acts = Vec::new();
        let mut grads = Vec::new();
        for l in self.hidden() {
            let n = rows * self.layout.dims()[l];
            let (Some(a), Some(g)) = (
                self.dev.record("allocation", stream.alloc_zeros::<f32>(n)),
                self.dev.record("allocation", stream.alloc_zeros::<f32>(n)),
            ) else {
                return false;
            };
            acts.push(a);
            grads.push(g);
        }
        let Some(ones) = self
            .dev
            .record("allocation", stream.clone_htod(&vec![1.0f32; rows]))
        else {
            return false;
        };
        self.acts = acts;
        self.grads = grads;
        self.ones = Some(ones);
        self.rows = rows;
        true
    }

    /// Checks that a state holds whole samples; records the error otherwise.
    fn rows_of(&self, y: &CudaBatch, what: &'static str) -> Option<usize> {
        let d = self.layout.dims()[0];
        if y.cols() != d {
            self.dev.record::<(), _>(
                what,
                Err(format!(
                    "a state of {} columns for an MLP of input size {d}",
                    y.cols()
                )),
            );
            return None;
        }
        Some(y.rows())
    }

    fn run(&self, ops: &[Op], p: &Ptrs) {
        if !self.dev.bind() {
            return;
        }
        let stream = self.dev.stream();
        for op in ops {
            if self.dev.failed() {
                return;
            }
            match *op {
                Op::Gemm(g) => self.gemm(&g, p),
                Op::BiasAct {
                    y,
                    b,
                    rows,
                    cols,
                    act,
                } => {
                    let (yp, bp) = (p.get(&self.layout, y), p.get(&self.layout, b));
                    let (r, c) = (rows as i64, cols as i32);
                    let mut l = stream.launch_builder(&self.dev.nn.bias_act);
                    l.arg(&r).arg(&c).arg(&yp).arg(&bp).arg(&act);
                    // SAFETY: bias_act_f32(long long rows, int cols, float* y,
                    // const float* b, int act) on buffers of the planned sizes.
                    self.dev
                        .record("bias_act_f32", unsafe { l.launch(config(rows * cols)) });
                }
                Op::ActGrad { g, a, len, act } => {
                    let (gp, ap) = (p.get(&self.layout, g), p.get(&self.layout, a));
                    let n = len as i64;
                    let mut l = stream.launch_builder(&self.dev.nn.act_grad);
                    l.arg(&n).arg(&gp).arg(&ap).arg(&act);
                    // SAFETY: act_grad_f32(long long n, float* g, const float* a, int act).
                    self.dev
                        .record("act_grad_f32", unsafe { l.launch(config(len)) });
                }
            }
        }
    }

    fn gemm(&self, g: &Gemm, p: &Ptrs) {
        let (a, b, c) = (
            p.get(&self.layout, g.a),
            p.get(&self.layout, g.b),
            p.get(&self.layout, g.c),
        );
        // SAFETY: the plan's shapes and leading dimensions fit the buffers it names (unit-
        // tested in tests/cuda_plan.rs).
        let r = unsafe { self.dev.sgemm(g, a, b, c) };
        self.dev.record("cublasSgemm", r);
    }

    /// `dy ← f(y)` with the hidden activations in `acts` (scratch or a tape).
    fn forward_into(&self, input: u64, acts: Vec<u64>, dy: &mut CudaBatch, rows: usize) {
        let Some(out) = dy.slice_mut() else { return };
        let p = Ptrs {
            input,
            acts,
            output: ptr(&self.dev, out),
            params: ptr(&self.dev, &self.params),
            ..Default::default()
        };
        self.run(&self.layout.forward(rows), &p);
    }

    fn check_out(&self, y: &CudaBatch, dy: &CudaBatch) -> bool {
        let out = self.layout.dims()[self.layout.layers()];
        if (dy.rows(), dy.cols()) != (y.rows(), out) {
            self.dev.record::<(), _>(
                "MLP output",
                Err(format!(
                    "output batch {}×{} for an input of {}×{} (output size {out})",
                    dy.rows(),
                    dy.cols(),
                    y.rows(),
                    y.cols()
                )),
            );
            return false;
        }
        true
    }
}

impl VectorField<CudaBatch> for CudaMlp {
    type Tape = CudaTape;
    type Grad = CudaBatch;

    fn new_tape(&self) -> CudaTape {
        CudaTape {
            rows: 0,
            input: None,
            acts: Vec::new(),
        }
    }

    fn zero_grad(&self) -> CudaBatch {
        match CudaBatch::zeros(&self.dev, 1, self.num_params()) {
            Ok(g) => g,
            Err(e) => {
                self.dev.record::<(), _>("allocation", Err(e));
                CudaBatch::unallocated(&self.dev, 1, self.num_params())
            }
        }
    }

    fn eval(&mut self, _t: f64, y: &CudaBatch, dy: &mut CudaBatch) {
        let Some(rows) = self.rows_of(y, "MLP input") else {
            return;
        };
        if !self.check_out(y, dy) || !self.ensure_rows(rows) {
            return;
        }
        let Some(x) = y.slice() else { return };
        let input = ptr(&self.dev, x);
        let acts = self.acts.iter().map(|a| ptr(&self.dev, a)).collect();
        self.forward_into(input, acts, dy, rows);
    }

    fn eval_taped(&mut self, _t: f64, y: &CudaBatch, dy: &mut CudaBatch, tape: &mut CudaTape) {
        let Some(rows) = self.rows_of(y, "MLP input") else {
            return;
        };
        if !self.check_out(y, dy) {
            return;
        }
        let stream = self.dev.stream().clone();
        if tape.rows != rows || tape.input.is_none() {
            let Some(input) = self
                .dev
                .record("allocation", stream.alloc_zeros::<f32>(y.len()))
            else {
                return;
            };
            let mut acts = Vec::new();
            for l in self.hidden() {
                let n = rows * self.layout.dims()[l];
                let Some(a) = self.dev.record("allocation", stream.alloc_zeros::<f32>(n)) else {
                    return;
                };
                acts.push(a);
            }
            *tape = CudaTape {
                rows,
                input: Some(input),
                acts,
            };
        }
        let (Some(x), Some(tin)) = (y.slice(), tape.input.as_mut()) else {
            return;
        };
        if self
            .dev
            .record("copy", stream.memcpy_dtod(x, tin))
            .is_none()
        {
            return;
        }
        let input = ptr(&self.dev, tin);
        let acts = tape.acts.iter().map(|a| ptr(&self.dev, a)).collect();
        self.forward_into(input, acts, dy, rows);
    }

    fn vjp(&mut self, tape: &CudaTape, v: &CudaBatch, gy: &mut CudaBatch, gtheta: &mut CudaBatch) {
        let rows = tape.rows;
        if !self.ensure_rows(rows) {
            return;
        }
        let ok = v.rows() == rows
            && v.cols() == self.layout.dims()[self.layout.layers()]
            && gy.rows() == rows
            && gy.cols() == self.layout.dims()[0]
            && gtheta.len() == self.num_params();
        if !ok {
            self.dev.record::<(), _>(
                "MLP VJP",
                Err(format!(
                    "cotangent {}×{}, input gradient {}×{}, parameter gradient {} for a tape of {rows} rows",
                    v.rows(),
                    v.cols(),
                    gy.rows(),
                    gy.cols(),
                    gtheta.len()
                )),
            );
            return;
        }
        let (Some(input), Some(vs), Some(ones)) =
            (tape.input.as_ref(), v.slice(), self.ones.as_ref())
        else {
            return;
        };
        let mut p = Ptrs {
            input: ptr(&self.dev, input),
            acts: tape.acts.iter().map(|a| ptr(&self.dev, a)).collect(),
            cotangent: ptr(&self.dev, vs),
            grads: self.grads.iter().map(|g| ptr(&self.dev, g)).collect(),
            params: ptr(&self.dev, &self.params),
            ones: ptr(&self.dev, ones),
            ..Default::default()
        };
        let (Some(gys), Some(gts)) = (gy.slice_mut(), gtheta.slice_mut()) else {
            return;
        };
        p.grad_input = ptr(&self.dev, gys);
        p.gparams = ptr(&self.dev, gts);
        self.run(&self.layout.backward(rows), &p);
    }
}

impl CudaMlp {
    /// Copies a CPU batch of the field's sample size to the device.
    pub fn upload(&self, x: &Batch<f32>) -> Result<CudaBatch, CudaError> {
        CudaBatch::from_host(&self.dev, x)
    }
}
