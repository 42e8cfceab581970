//! [`CudaConvField`]: Ott et al.'s convolutional fields — `simple_odenet` on `(1, d)`
//! samples and `odenet` on `(c_in, h, w)` images ([`crate::nn::zoo`]) — on the device, with
//! exact VJPs, implementing the same [`VectorField`] as the CPU [`crate::nn::NeuralField`]
//! so that the generic solvers and all three gradient methods run unchanged on a GPU.
//!
//! Each convolution is im2col (for the `k×k` layer) and one cuBLAS SGEMM, each bias and
//! ReLU one kernel; the VJP recomputes the patch matrix from the taped activation, takes
//! the weight gradient as one GEMM over the whole batch, the input gradient as a GEMM and a
//! gather (`col2im`), and the bias gradient as a deterministic two-launch reduction. Which
//! launch runs on which buffer is [`ConvFieldLayout::forward`] / [`ConvFieldLayout::backward`],
//! unit-tested on the CPU against the CPU network (`tests/cuda_plan/conv.rs`); the kernels'
//! arithmetic is tested as host C++ (`tests/cuda_kernels/conv.rs`). Parameters and their
//! gradient are flat f32 device buffers in the CPU network's order.

use std::sync::Arc;

use cudarc::driver::{CudaSlice, DevicePtr, DeviceRepr, PushKernelArg};

use super::conv_plan::{ConvBuf, ConvFieldLayout, ConvOp, ConvShape};
use super::device::{download, upload, CudaError, Device};
use super::state::{config, CudaBatch};
use crate::field::{Parameterized, VectorField};
use crate::nn::zoo::{odenet, simple_odenet};
use crate::state::{Batch, State};

// SAFETY: `#[repr(C)]` plain old data with the layout of `struct ConvShape` in
// `kernels/conv.cu` (two `long long`, then twelve `int`).
unsafe impl DeviceRepr for ConvShape {}

/// What one taped evaluation keeps: the input, channel-major, and the two hidden
/// activations.
pub struct CudaConvTape {
    rows: usize,
    x: Option<CudaSlice<f32>>,
    acts: Vec<CudaSlice<f32>>,
}

/// Scratch buffers for one batch size.
struct Scratch {
    rows: usize,
    acts: Vec<CudaSlice<f32>>,
    grads: Vec<CudaSlice<f32>>,
    col: CudaSlice<f32>,
    partial: CudaSlice<f64>,
    /// Channel-major input, output, cotangent and input gradient (`c_in > 1` only).
    swap: Vec<CudaSlice<f32>>,
}

/// A convolutional field on a GPU.
pub struct CudaConvField {
    dev: Arc<Device>,
    layout: ConvFieldLayout,
    params: CudaSlice<f32>,
    scratch: Option<Scratch>,
}

/// Device addresses of the buffers of one plan execution.
struct Bind<'a> {
    layout: &'a ConvFieldLayout,
    params: u64,
    gparams: u64,
    bufs: Vec<(ConvBuf, u64)>,
}

impl Bind<'_> {
    fn get(&self, b: ConvBuf) -> Result<u64, String> {
        let f = std::mem::size_of::<f32>() as u64;
        if let Some(off) = self.layout.param_offset(b) {
            let base = match b {
                ConvBuf::Weight(_) | ConvBuf::Bias(_) => self.params,
                _ => self.gparams,
            };
            return Ok(base + f * off as u64);
        }
        self.bufs
            .iter()
            .find(|(k, _)| *k == b)
            .map(|&(_, p)| p)
            .ok_or_else(|| format!("the plan names {b:?}, which this call did not bind"))
    }
}

fn ptr<T>(dev: &Device, s: &CudaSlice<T>) -> u64 {
    s.device_ptr(dev.stream()).0
}

fn unsupported(e: impl std::fmt::Display) -> CudaError {
    CudaError::Unsupported(e.to_string())
}

impl CudaConvField {
    /// The field `layout` with the CPU network's flat parameters `params`, on `dev`.
    pub fn new(
        dev: &Arc<Device>,
        layout: ConvFieldLayout,
        params: &[f32],
    ) -> Result<Self, CudaError> {
        if params.len() != layout.num_params() {
            return Err(CudaError::Unsupported(format!(
                "{} parameters given for a convolutional field of {}",
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
            scratch: None,
        })
    }

    /// `simple_odenet` with `channels` hidden channels on `(1, d)` samples and the CPU
    /// network's parameters `params` (`zoo::simple_odenet(channels, d, seed)`'s).
    pub fn simple_odenet(
        dev: &Arc<Device>,
        channels: usize,
        d: usize,
        params: &[f32],
    ) -> Result<Self, CudaError> {
        let layout = ConvFieldLayout::simple_odenet(channels, d).map_err(unsupported)?;
        Self::new(dev, layout, params)
    }

    /// `simple_odenet` initialised as the CPU zoo's from `seed`.
    pub fn simple_odenet_seeded(
        dev: &Arc<Device>,
        channels: usize,
        d: usize,
        seed: u64,
    ) -> Result<Self, CudaError> {
        let cpu = simple_odenet::<f32>(channels, d, seed).map_err(unsupported)?;
        Self::simple_odenet(dev, channels, d, cpu.network().params())
    }

    /// `odenet` with `channels` hidden channels on `(c_in, h, w)` images and the CPU
    /// network's parameters `params`.
    pub fn odenet(
        dev: &Arc<Device>,
        (c_in, h, w): (usize, usize, usize),
        channels: usize,
        params: &[f32],
    ) -> Result<Self, CudaError> {
        let layout = ConvFieldLayout::odenet(c_in, h, w, channels).map_err(unsupported)?;
        Self::new(dev, layout, params)
    }

    /// `odenet` initialised as the CPU zoo's from `seed`.
    pub fn odenet_seeded(
        dev: &Arc<Device>,
        (c_in, h, w): (usize, usize, usize),
        channels: usize,
        seed: u64,
    ) -> Result<Self, CudaError> {
        let cpu = odenet::<f32>(c_in, h, w, channels, seed).map_err(unsupported)?;
        Self::odenet(dev, (c_in, h, w), channels, cpu.network().params())
    }

    /// The shapes and the parameter layout.
    pub fn layout(&self) -> &ConvFieldLayout {
        &self.layout
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

    /// Copies a CPU batch of the field's sample size to the device.
    pub fn upload(&self, x: &Batch<f32>) -> Result<CudaBatch, CudaError> {
        CudaBatch::from_host(&self.dev, x)
    }

    fn alloc<T: DeviceRepr + cudarc::driver::ValidAsZeroBits>(
        &self,
        n: usize,
    ) -> Option<CudaSlice<T>> {
        self.dev
            .record("allocation", self.dev.stream().alloc_zeros::<T>(n.max(1)))
    }

    /// Sizes the scratch buffers for `rows` samples; false when the device failed.
    fn ensure_scratch(&mut self, rows: usize) -> bool {
        if self.scratch.as_ref().is_some_and(|s| s.rows == rows) {
            return true;
        }
        self.scratch = None;
        let l = &self.layout;
        let hidden = l.len_of(ConvBuf::Act(1), rows);
        let state = l.len_of(ConvBuf::Input, rows);
        let mut bufs = Vec::new();
        let n_swap = if l.c_in() > 1 { 4 } else { 0 };
        for len in [hidden; 4]
            .into_iter()
            .chain(std::iter::repeat_n(state, n_swap))
        {
            let Some(b) = self.alloc::<f32>(len) else {
                return false;
            };
            bufs.push(b);
        }
        let (Some(col), Some(partial)) = (
            self.alloc::<f32>(l.len_of(ConvBuf::Col, rows)),
            self.alloc::<f64>(l.len_of(ConvBuf::Partial, rows)),
        ) else {
            return false;
        };
        let swap = bufs.split_off(4);
        let grads = bufs.split_off(2);
        self.scratch = Some(Scratch {
            rows,
            acts: bufs,
            grads,
            col,
            partial,
            swap,
        });
        true
    }

    /// The scratch buffers' bindings (hidden activations included when `acts`).
    fn scratch_bufs(&self, acts: bool) -> Vec<(ConvBuf, u64)> {
        let Some(s) = &self.scratch else {
            return Vec::new();
        };
        let p = |b: &CudaSlice<f32>| ptr(&self.dev, b);
        let mut v = vec![
            (ConvBuf::Col, p(&s.col)),
            (ConvBuf::Partial, ptr(&self.dev, &s.partial)),
            (ConvBuf::Grad(1), p(&s.grads[0])),
            (ConvBuf::Grad(2), p(&s.grads[1])),
        ];
        if acts {
            v.push((ConvBuf::Act(1), p(&s.acts[0])));
            v.push((ConvBuf::Act(2), p(&s.acts[1])));
        }
        let swapped = [
            ConvBuf::InputT,
            ConvBuf::OutputT,
            ConvBuf::CotangentT,
            ConvBuf::GradInputT,
        ];
        v.extend(swapped.into_iter().zip(s.swap.iter().map(p)));
        v
    }

    /// Checks that `y` holds whole samples and `dy` matches it; records the error otherwise.
    fn rows_of(&self, what: &'static str, y: &CudaBatch, dy: &CudaBatch) -> Option<usize> {
        let d = self.layout.sample_len();
        if y.cols() != d || (dy.rows(), dy.cols()) != (y.rows(), d) {
            self.dev.record::<(), _>(
                what,
                Err(format!(
                    "batches {}×{} → {}×{} for a convolutional field of sample size {d}",
                    y.rows(),
                    y.cols(),
                    dy.rows(),
                    dy.cols()
                )),
            );
            return None;
        }
        Some(y.rows())
    }

    fn run(&self, ops: &[ConvOp], bind: &Bind<'_>) {
        if !self.dev.bind() {
            return;
        }
        for op in ops {
            if self.dev.failed() {
                return;
            }
            if let Err(e) = launch_op(&self.dev, op, |b| bind.get(b)) {
                self.dev.record::<(), _>("convolutional field plan", Err(e));
                return;
            }
        }
    }

    fn bind(&self, bufs: Vec<(ConvBuf, u64)>, gparams: u64) -> Bind<'_> {
        Bind {
            layout: &self.layout,
            params: ptr(&self.dev, &self.params),
            gparams,
            bufs,
        }
    }
}

/// Issues one operation of a convolution plan on `dev`'s stream, its buffers' device
/// addresses given by `get`; launch failures are recorded on the device
/// ([`Device::check`]), `Err` is only for an unbound buffer (a plan bug). The one launcher
/// of the convolutional field ([`CudaConvField`]) and the captured classifier iteration
/// ([`super::ClassifierStep`]).
pub(super) fn launch_op<B: Copy>(
    dev: &Device,
    op: &ConvOp<B>,
    get: impl Fn(B) -> Result<u64, String>,
) -> Result<(), String> {
    let stream = dev.stream();
    let k = &dev.conv;
    match *op {
        ConvOp::Gemm(g) => {
            let (a, b, c) = (get(g.a)?, get(g.b)?, get(g.c)?);
            // SAFETY: the plan's shapes and leading dimensions fit the buffers it names
            // (unit-tested in tests/cuda_plan/conv.rs).
            dev.record("cublasSgemm", unsafe { dev.sgemm(&g, a, b, c) });
        }
        ConvOp::SwapOuter { src, dst, a, b, p } => {
            let (s, d) = (get(src)?, get(dst)?);
            let (a64, b64, p64) = (a as i64, b as i64, p as i64);
            let mut l = stream.launch_builder(&k.swap_outer);
            l.arg(&a64).arg(&b64).arg(&p64).arg(&s).arg(&d);
            // SAFETY: swap_outer_f32(long long a, long long b, long long p,
            // const float* src, float* dst) on a·b·p elements.
            dev.record("swap_outer_f32", unsafe { l.launch(config(a * b * p)) });
        }
        ConvOp::Im2col { x, col, shape } => {
            let (xp, cp) = (get(x)?, get(col)?);
            let mut l = stream.launch_builder(&k.im2col);
            l.arg(&shape).arg(&xp).arg(&cp);
            // SAFETY: im2col_f32(ConvShape s, const float* x, float* col): x holds the
            // input of `shape`, col its patch matrix.
            dev.record("im2col_f32", unsafe { l.launch(config(shape.col_len())) });
        }
        ConvOp::Col2im {
            col,
            x,
            shape,
            accumulate,
        } => {
            let (cp, xp) = (get(col)?, get(x)?);
            let acc = i32::from(accumulate);
            let mut l = stream.launch_builder(&k.col2im);
            l.arg(&shape).arg(&cp).arg(&xp).arg(&acc);
            // SAFETY: col2im_f32(ConvShape s, const float* gcol, float* gx,
            // int accumulate) on the buffers of `shape`.
            dev.record("col2im_f32", unsafe { l.launch(config(shape.input_len())) });
        }
        ConvOp::BiasAct { y, b, n, c, p, act } => {
            let (yp, bp) = (get(y)?, get(b)?);
            let (n64, c32, p64) = (n as i64, c as i32, p as i64);
            let mut l = stream.launch_builder(&k.bias_act);
            l.arg(&n64).arg(&c32).arg(&p64).arg(&yp).arg(&bp).arg(&act);
            // SAFETY: bias_act_nchw_f32(long long n, int c, long long p, float* y,
            // const float* b, int act) on n·c·p elements and a bias of c.
            dev.record("bias_act_nchw_f32", unsafe { l.launch(config(n * c * p)) });
        }
        ConvOp::ActGrad { g, a, len, act } => {
            let (gp, ap) = (get(g)?, get(a)?);
            let n = len as i64;
            let mut l = stream.launch_builder(&dev.nn.act_grad);
            l.arg(&n).arg(&gp).arg(&ap).arg(&act);
            // SAFETY: act_grad_f32(long long n, float* g, const float* a, int act).
            dev.record("act_grad_f32", unsafe { l.launch(config(len)) });
        }
        ConvOp::ChannelPartialSums {
            g,
            partial,
            n,
            c,
            p,
            chunks,
        } => {
            let (gp, pp) = (get(g)?, get(partial)?);
            let (n64, c32, p64, k32) = (n as i64, c as i32, p as i64, chunks as i32);
            let mut l = stream.launch_builder(&k.partial_sums);
            l.arg(&n64).arg(&c32).arg(&p64).arg(&k32).arg(&gp).arg(&pp);
            // SAFETY: channel_partial_sums_f32(long long n, int c, long long p,
            // int chunks, const float* g, double* partial): n·c·p floats, c·chunks
            // doubles (the plan sizes ConvBuf::Partial for the largest).
            dev.record("channel_partial_sums_f32", unsafe {
                l.launch(config(c * chunks))
            });
        }
        ConvOp::AddChannelSums {
            partial,
            gb,
            c,
            chunks,
        } => {
            let (pp, gp) = (get(partial)?, get(gb)?);
            let (c32, k32) = (c as i32, chunks as i32);
            let mut l = stream.launch_builder(&k.add_sums);
            l.arg(&c32).arg(&k32).arg(&pp).arg(&gp);
            // SAFETY: add_channel_sums_f32(int c, int chunks, const double* partial,
            // float* gb).
            dev.record("add_channel_sums_f32", unsafe { l.launch(config(c)) });
        }
    }
    Ok(())
}

impl VectorField<CudaBatch> for CudaConvField {
    type Tape = CudaConvTape;
    type Grad = CudaBatch;

    fn new_tape(&self) -> CudaConvTape {
        CudaConvTape {
            rows: 0,
            x: None,
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
        let Some(rows) = self.rows_of("convolutional field input", y, dy) else {
            return;
        };
        if !self.ensure_scratch(rows) {
            return;
        }
        let (Some(x), Some(out)) = (y.slice(), dy.slice_mut()) else {
            return;
        };
        let mut bufs = self.scratch_bufs(true);
        bufs.push((ConvBuf::Input, ptr(&self.dev, x)));
        bufs.push((ConvBuf::Output, ptr(&self.dev, out)));
        self.run(&self.layout.forward(rows), &self.bind(bufs, 0));
    }

    fn eval_taped(&mut self, _t: f64, y: &CudaBatch, dy: &mut CudaBatch, tape: &mut CudaConvTape) {
        let Some(rows) = self.rows_of("convolutional field input", y, dy) else {
            return;
        };
        if !self.ensure_scratch(rows) {
            return;
        }
        if tape.rows != rows || tape.x.is_none() {
            let hidden = self.layout.len_of(ConvBuf::Act(1), rows);
            let (Some(x), Some(a1), Some(a2)) = (
                self.alloc::<f32>(y.len()),
                self.alloc::<f32>(hidden),
                self.alloc::<f32>(hidden),
            ) else {
                return;
            };
            *tape = CudaConvTape {
                rows,
                x: Some(x),
                acts: vec![a1, a2],
            };
        }
        let (Some(ys), Some(tx), Some(out)) = (y.slice(), tape.x.as_mut(), dy.slice_mut()) else {
            return;
        };
        let mut bufs = self.scratch_bufs(false);
        bufs.retain(|(b, _)| *b != ConvBuf::InputT);
        if self.layout.taped_input() == ConvBuf::Input {
            // NCHW is channel-major already (c_in = 1): the tape keeps a copy of y.
            let stream = self.dev.stream();
            if self
                .dev
                .record("copy", stream.memcpy_dtod(ys, tx))
                .is_none()
            {
                return;
            }
            bufs.push((ConvBuf::Input, ptr(&self.dev, tx)));
        } else {
            bufs.push((ConvBuf::Input, ptr(&self.dev, ys)));
            bufs.push((ConvBuf::InputT, ptr(&self.dev, tx)));
        }
        bufs.push((ConvBuf::Act(1), ptr(&self.dev, &tape.acts[0])));
        bufs.push((ConvBuf::Act(2), ptr(&self.dev, &tape.acts[1])));
        bufs.push((ConvBuf::Output, ptr(&self.dev, out)));
        self.run(&self.layout.forward(rows), &self.bind(bufs, 0));
    }

    fn vjp(
        &mut self,
        tape: &CudaConvTape,
        v: &CudaBatch,
        gy: &mut CudaBatch,
        gtheta: &mut CudaBatch,
    ) {
        let rows = tape.rows;
        let d = self.layout.sample_len();
        let ok = (v.rows(), v.cols()) == (rows, d)
            && (gy.rows(), gy.cols()) == (rows, d)
            && gtheta.len() == self.num_params()
            && tape.acts.len() == 2;
        if !ok {
            self.dev.record::<(), _>(
                "convolutional field VJP",
                Err(format!(
                    "cotangent {}×{}, input gradient {}×{}, parameter gradient {} for a tape of \
                     {rows} rows of {d}",
                    v.rows(),
                    v.cols(),
                    gy.rows(),
                    gy.cols(),
                    gtheta.len()
                )),
            );
            return;
        }
        if !self.ensure_scratch(rows) {
            return;
        }
        let (Some(x), Some(vs), Some(gys), Some(gts)) = (
            tape.x.as_ref(),
            v.slice(),
            gy.slice_mut(),
            gtheta.slice_mut(),
        ) else {
            return;
        };
        let mut bufs = self.scratch_bufs(false);
        bufs.retain(|(b, _)| *b != ConvBuf::InputT);
        let xp = ptr(&self.dev, x);
        bufs.push((ConvBuf::Input, xp));
        bufs.push((ConvBuf::InputT, xp));
        bufs.push((ConvBuf::Act(1), ptr(&self.dev, &tape.acts[0])));
        bufs.push((ConvBuf::Act(2), ptr(&self.dev, &tape.acts[1])));
        bufs.push((ConvBuf::Cotangent, ptr(&self.dev, vs)));
        bufs.push((ConvBuf::GradInput, ptr(&self.dev, gys)));
        let gparams = ptr(&self.dev, gts);
        self.run(&self.layout.backward(rows), &self.bind(bufs, gparams));
    }
}
