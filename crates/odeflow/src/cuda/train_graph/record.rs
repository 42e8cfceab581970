//! The launches of a [`ClassifierStep`]: each of its plan's [`Launch`]es issued on the
//! device's stream with the addresses of the step's buffers — no host synchronisation and
//! no allocation, so that the sequence can be captured.

use cudarc::driver::{sys as drv, PushKernelArg};

use super::ClassifierStep;
use crate::cuda::device::CudaError;
use crate::cuda::loss::{launch_mse, launch_softmax_ce};
use crate::cuda::state::config;
use crate::cuda::train_plan::{Buf, Launch, PlanOptimizer, ADAM_BUFFERS};

impl ClassifierStep {
    /// Issues every launch of the plan on the device's stream: no host synchronisation, no
    /// allocation (capturable).
    pub(super) fn record(&self) -> Result<(), CudaError> {
        if !self.dev.bind() {
            return self.dev.check();
        }
        let stream = self.dev.stream();
        let k = &self.dev.nn;
        let launch = |what: &'static str, r: Result<(), cudarc::driver::DriverError>| {
            r.map_err(|e| CudaError::call(what, e))
        };
        for l in &self.plan.launches {
            match l {
                Launch::Zero(b) => {
                    let bytes = match b {
                        Buf::Loss => 8,
                        Buf::Correct => 8,
                        _ => 4 * self.plan.len_of(*b),
                    };
                    // SAFETY: `bytes` is the size of the planned buffer.
                    let r = unsafe {
                        drv::cuMemsetD8Async(self.addr(*b), 0, bytes, stream.cu_stream())
                    };
                    launch("memset", r.result())?;
                }
                Launch::Fill { buf, len, value } => {
                    let (n, p) = (*len as i64, self.addr(*buf));
                    let mut b = stream.launch_builder(&k.fill_u64);
                    b.arg(&n).arg(&p).arg(value);
                    // SAFETY: fill_u64(long long n, unsigned long long* x, unsigned long long v).
                    launch("fill_u64", unsafe { b.launch(config(*len)) }.map(|_| ()))?;
                }
                Launch::Pad {
                    rows,
                    cols,
                    extra,
                    src,
                    dst,
                } => {
                    let (r, c, e) = (*rows as i64, *cols as i32, *extra as i32);
                    let (s, d) = (self.addr(*src), self.addr(*dst));
                    let mut b = stream.launch_builder(&k.pad_cols);
                    b.arg(&r).arg(&c).arg(&e).arg(&s).arg(&d);
                    // SAFETY: pad_cols_f32(long long rows, int cols, int extra, const float*,
                    // float*) on buffers of rows·cols and rows·(cols + extra).
                    let n = rows * (cols + extra);
                    launch("pad_cols_f32", unsafe { b.launch(config(n)) }.map(|_| ()))?;
                }
                Launch::Lincomb {
                    len,
                    out,
                    base,
                    terms,
                } => self.lincomb(*len, *out, *base, terms)?,
                Launch::Gemm { g, a, b, c } => {
                    let (a, b, c) = (self.at(*a), self.at(*b), self.at(*c));
                    // SAFETY: the plan's shapes fit the buffers it names (tests/cuda_plan*.rs).
                    unsafe { self.dev.sgemm(g, a, b, c) }
                        .map_err(|e| CudaError::call("cublasSgemm", e))?;
                }
                Launch::BiasAct {
                    y,
                    b,
                    rows,
                    cols,
                    act,
                } => {
                    let (r, c, yp, bp) = (*rows as i64, *cols as i32, self.at(*y), self.at(*b));
                    let mut l = stream.launch_builder(&k.bias_act);
                    l.arg(&r).arg(&c).arg(&yp).arg(&bp).arg(act);
                    // SAFETY: bias_act_f32(long long, int, float*, const float*, int).
                    launch(
                        "bias_act_f32",
                        unsafe { l.launch(config(rows * cols)) }.map(|_| ()),
                    )?;
                }
                Launch::ActGrad { g, a, len, act } => {
                    let (n, gp, ap) = (*len as i64, self.at(*g), self.at(*a));
                    let mut l = stream.launch_builder(&k.act_grad);
                    l.arg(&n).arg(&gp).arg(&ap).arg(act);
                    // SAFETY: act_grad_f32(long long, float*, const float*, int).
                    launch(
                        "act_grad_f32",
                        unsafe { l.launch(config(*len)) }.map(|_| ()),
                    )?;
                }
                Launch::FirstNonFinite { x, len, slot } => {
                    let (n, xp) = (*len as i64, self.addr(*x));
                    let fp = self.addr(Buf::FirstNonFinite) + 8 * *slot as u64;
                    let mut l = stream.launch_builder(&self.dev.state.first_non_finite);
                    l.arg(&n).arg(&xp).arg(&fp);
                    // SAFETY: first_non_finite_f32(long long, const float*, unsigned long long*).
                    launch(
                        "first_non_finite_f32",
                        unsafe { l.launch(config(*len)) }.map(|_| ()),
                    )?;
                }
                Launch::SoftmaxCe { rows, classes } => {
                    let ptrs = [
                        Buf::Logits,
                        Buf::Labels,
                        Buf::GradLogits,
                        Buf::Loss,
                        Buf::Correct,
                    ]
                    .map(|b| self.addr(b));
                    launch_softmax_ce(&self.dev, *rows, *classes, ptrs)?;
                }
                Launch::Mse { x, len } => {
                    let ptrs = [*x, Buf::Target, Buf::Lambda, Buf::Loss].map(|b| self.addr(b));
                    launch_mse(&self.dev, *len, ptrs)?;
                }
                Launch::AdamTick => {
                    let t = self.addr(Buf::AdamStep);
                    let mut l = stream.launch_builder(&k.adam_tick);
                    l.arg(&t);
                    // SAFETY: adam_tick(unsigned long long* t) on the one-element step count.
                    launch("adam_tick", unsafe { l.launch(config(1)) }.map(|_| ()))?;
                }
                Launch::Adam { n } => self.update(*n)?,
                Launch::Res { op, piece } => {
                    let at = |b| Ok(self.at(self.plan.res_at(b, *piece)));
                    let bn = self.plan.res_bn(*piece);
                    crate::cuda::res_block::run_res_plan(
                        &self.dev,
                        bn,
                        std::slice::from_ref(op),
                        at,
                    )?;
                }
                Launch::Pool { forward } => {
                    let (shape, k) = self.plan.pool_shape().ok_or_else(|| {
                        CudaError::call("training plan", "average pooling without TinyResNet")
                    })?;
                    let (src, dst) = if *forward {
                        (self.plan.final_state(), Buf::Pooled)
                    } else {
                        (Buf::GradPooled, Buf::Lambda)
                    };
                    let ptrs = (self.addr(src), self.addr(dst));
                    crate::cuda::pool::launch_avgpool(&self.dev, &shape, (k, k), *forward, ptrs)?;
                }
                Launch::Conv { op, n, i } => {
                    let at = |b| Ok(self.at(self.plan.conv_at(b, *n, *i)));
                    crate::cuda::conv::launch_op(&self.dev, op, at)
                        .map_err(|e| CudaError::call("convolutional field plan", e))?;
                    // The launcher records launch failures on the device; take them here
                    // (no synchronisation, which a capture forbids).
                    if let Some(e) = self.dev.take_error() {
                        return Err(e);
                    }
                }
            }
        }
        Ok(())
    }

    /// The optimizer's update of the `n` parameters: `adam_graph_f32` or `sgd_graph_f32`.
    fn update(&self, n: usize) -> Result<(), CudaError> {
        let (stream, k) = (self.dev.stream(), &self.dev.nn);
        let n64 = n as i64;
        let ptrs = ADAM_BUFFERS.map(|b| self.addr(b));
        let (what, r) = match self.opt {
            PlanOptimizer::Adam(h) => {
                let mut l = stream.launch_builder(&k.adam_graph);
                l.arg(&n64);
                for p in &ptrs {
                    l.arg(p);
                }
                l.arg(&h.beta1)
                    .arg(&h.beta2)
                    .arg(&h.eps)
                    .arg(&h.weight_decay);
                // SAFETY: adam_graph_f32(long long n, float* p, const float* grad,
                // float* m, float* v, const double* lr, const unsigned long long* t,
                // double beta1, double beta2, float eps, float wd).
                ("adam_graph_f32", unsafe { l.launch(config(n)) })
            }
            PlanOptimizer::Sgd(h) => {
                let [p, g, m, _, lr, t] = ptrs;
                let nest = i32::from(h.nesterov);
                let mut l = stream.launch_builder(&k.sgd_graph);
                l.arg(&n64).arg(&p).arg(&g).arg(&m).arg(&lr).arg(&t);
                l.arg(&h.momentum).arg(&h.weight_decay).arg(&nest);
                // SAFETY: sgd_graph_f32(long long n, float* p, const float* grad,
                // float* buf, const double* lr, const unsigned long long* t,
                // float momentum, float wd, int nesterov).
                ("sgd_graph_f32", unsafe { l.launch(config(n)) })
            }
        };
        r.map(|_| ()).map_err(|e| CudaError::call(what, e))
    }

    fn lincomb(
        &self,
        len: usize,
        out: Buf,
        base: Buf,
        terms: &[(Buf, f32)],
    ) -> Result<(), CudaError> {
        let args = crate::cuda::state::lincomb_args(terms.iter().map(|&(b, c)| (self.addr(b), c)));
        let (n, o, bp) = (len as i64, self.addr(out), self.addr(base));
        let mut l = self.dev.stream().launch_builder(&self.dev.state.lincomb);
        l.arg(&n).arg(&o).arg(&bp).arg(&args);
        // SAFETY: lincomb_f32(long long n, float* out, const float* base, LincombArgs) on
        // planned buffers of `len` components (at most MAX_TERMS terms per launch).
        unsafe { l.launch(config(len)) }
            .map(|_| ())
            .map_err(|e| CudaError::call("lincomb_f32", e))
    }
}
