//! [`CudaBatch`]: the solver core's [`State`] on a GPU buffer (f32, row-major `rows × cols`,
//! the device twin of [`Batch`]).
//!
//! Every operation is one kernel launch (or one copy) on the device's stream: the stage
//! combination `Yᵢ = y + h Σⱼ aᵢⱼ kⱼ` is one fused `lincomb_f32` launch ([`lincomb_plan`]),
//! the error norm, inner product and finiteness check are device reductions whose single
//! result is copied back. Operations cannot return errors (the trait's signatures); a failed
//! one records its error in the [`Device`] and later ones are skipped, the norms read NaN so
//! the solver stops, and the caller gets the error from [`Device::check`].

use std::sync::Arc;

use cudarc::driver::{
    CudaFunction, CudaSlice, DevicePtr, DevicePtrMut, DeviceRepr, LaunchConfig, PushKernelArg,
};

use super::device::{CudaError, Device};
use super::plan::{grid_1d, lincomb_plan, MAX_TERMS};
use super::watch::DeviceWatch;
use crate::state::{Batch, FinitenessWatch, State};

/// `struct LincombArgs` of `kernels/state.cu`, passed by value.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct LincombArgs {
    k: [u64; MAX_TERMS],
    c: [f32; MAX_TERMS],
    nterms: i32,
}

// SAFETY: plain old data with the C layout of the kernel's struct.
unsafe impl DeviceRepr for LincombArgs {}

/// The by-value argument of one `lincomb_f32` launch: the terms' device addresses and
/// coefficients (at most [`MAX_TERMS`]; the launch plan splits longer sums).
pub(crate) fn lincomb_args(terms: impl IntoIterator<Item = (u64, f32)>) -> LincombArgs {
    let mut args = LincombArgs {
        k: [0; MAX_TERMS],
        c: [0.0; MAX_TERMS],
        nterms: 0,
    };
    for (slot, (k, c)) in terms.into_iter().take(MAX_TERMS).enumerate() {
        args.k[slot] = k;
        args.c[slot] = c;
        args.nterms = slot as i32 + 1;
    }
    args
}

/// The launch configuration of an elementwise kernel over `n` components.
pub(crate) fn config(n: usize) -> LaunchConfig {
    let (grid, block) = grid_1d(n);
    LaunchConfig {
        grid_dim: (grid, 1, 1),
        block_dim: (block, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// `v` in f32, the device's scalar (parameters, statistics and batches of any `T` move to
/// the device through it).
pub fn f32s<T: crate::real::Real>(v: &[T]) -> Vec<f32> {
    v.iter().map(|x| x.f64() as f32).collect()
}

/// A batch of `rows` samples of `cols` components on a GPU.
pub struct CudaBatch {
    rows: usize,
    cols: usize,
    /// `None` only after a failed allocation (recorded in the device).
    buf: Option<CudaSlice<f32>>,
    dev: Arc<Device>,
}

impl CudaBatch {
    /// A zero batch on `dev`.
    pub fn zeros(dev: &Arc<Device>, rows: usize, cols: usize) -> Result<Self, CudaError> {
        let buf = dev
            .stream()
            .alloc_zeros::<f32>(rows * cols)
            .map_err(|e| CudaError::call("allocation", e))?;
        Ok(Self {
            rows,
            cols,
            buf: Some(buf),
            dev: dev.clone(),
        })
    }

    /// A batch whose allocation failed (the error is recorded in `dev`): every operation on
    /// it is skipped.
    pub(crate) fn unallocated(dev: &Arc<Device>, rows: usize, cols: usize) -> Self {
        Self {
            rows,
            cols,
            buf: None,
            dev: dev.clone(),
        }
    }

    /// A copy of the CPU batch `x` on `dev`.
    pub fn from_host(dev: &Arc<Device>, x: &Batch<f32>) -> Result<Self, CudaError> {
        let buf = dev
            .stream()
            .clone_htod(x.as_slice())
            .map_err(|e| CudaError::call("host-to-device copy", e))?;
        Ok(Self {
            rows: x.rows(),
            cols: x.cols(),
            buf: Some(buf),
            dev: dev.clone(),
        })
    }

    /// `self ← x` (same shape) from the host, into the existing buffer.
    pub fn copy_from_host(&mut self, x: &Batch<f32>) -> Result<(), CudaError> {
        if (x.rows(), x.cols()) != (self.rows, self.cols) {
            return Err(CudaError::Unsupported(format!(
                "copying a {}×{} batch into a {}×{} device batch",
                x.rows(),
                x.cols(),
                self.rows,
                self.cols
            )));
        }
        let stream = self.dev.stream().clone();
        let buf = self.buf_mut()?;
        stream
            .memcpy_htod(x.as_slice(), buf)
            .map_err(|e| CudaError::call("host-to-device copy", e))
    }

    /// `self ← src` (a device buffer of `rows·cols` components), into the existing buffer.
    pub(crate) fn copy_from_device(&mut self, src: &CudaSlice<f32>) -> Result<(), CudaError> {
        if src.len() != self.rows * self.cols {
            return Err(CudaError::Unsupported(format!(
                "copying {} device values into a {}×{} device batch",
                src.len(),
                self.rows,
                self.cols
            )));
        }
        let stream = self.dev.stream().clone();
        let buf = self.buf_mut()?;
        stream
            .memcpy_dtod(src, buf)
            .map_err(|e| CudaError::call("device-to-device copy", e))
    }

    /// The batch copied to the host.
    pub fn to_host(&self) -> Result<Batch<f32>, CudaError> {
        let buf = self.buf.as_ref().ok_or_else(|| self.lost())?;
        let v = self
            .dev
            .stream()
            .clone_dtoh(buf)
            .map_err(|e| CudaError::call("device-to-host copy", e))?;
        Batch::from_vec(self.rows, self.cols, v).map_err(|e| CudaError::call("copy", e))
    }

    /// Number of samples.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Components per sample.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The device the batch lives on.
    pub fn device(&self) -> &Arc<Device> {
        &self.dev
    }

    fn lost(&self) -> CudaError {
        CudaError::call("device batch", "its allocation failed earlier")
    }

    fn buf_mut(&mut self) -> Result<&mut CudaSlice<f32>, CudaError> {
        match self.buf.as_mut() {
            Some(b) => Ok(b),
            None => Err(CudaError::call(
                "device batch",
                "its allocation failed earlier",
            )),
        }
    }

    /// The device buffer, if allocated and the device has not failed.
    pub(crate) fn slice(&self) -> Option<&CudaSlice<f32>> {
        self.buf.as_ref().filter(|_| !self.dev.failed())
    }

    /// The device buffer, mutable, if allocated and the device has not failed.
    pub(crate) fn slice_mut(&mut self) -> Option<&mut CudaSlice<f32>> {
        if self.dev.failed() {
            return None;
        }
        self.buf.as_mut()
    }

    fn alloc_like(&self) -> Option<CudaSlice<f32>> {
        self.dev.record(
            "allocation",
            self.dev.stream().alloc_zeros::<f32>(self.rows * self.cols),
        )
    }

    /// Runs a reduction kernel `(n, inputs…, scalars…, double* acc)` into one zeroed `f64`
    /// and reads it back; `None` when the device has failed.
    fn reduce_f64(
        &self,
        f: &CudaFunction,
        what: &'static str,
        inputs: &[&CudaSlice<f32>],
        scalars: &[f32],
    ) -> Option<f64> {
        if self.dev.failed() {
            return None;
        }
        let stream = self.dev.stream();
        let mut acc = self.dev.record(what, stream.alloc_zeros::<f64>(1))?;
        let n = self.len() as i64;
        let ptrs: Vec<u64> = inputs.iter().map(|s| s.device_ptr(stream).0).collect();
        let mut b = stream.launch_builder(f);
        b.arg(&n);
        for p in &ptrs {
            b.arg(p);
        }
        for x in scalars {
            b.arg(x);
        }
        b.arg(&mut acc);
        // SAFETY: the arguments follow the kernel's signature in state.cu.
        self.dev
            .record(what, unsafe { b.launch(config(self.len())) })?;
        let v = self.dev.record(what, stream.clone_dtoh(&acc))?;
        v.first().copied()
    }
}

impl Clone for CudaBatch {
    fn clone(&self) -> Self {
        let mut buf = self.alloc_like();
        if let (Some(dst), Some(src)) = (buf.as_mut(), self.slice()) {
            self.dev
                .record("copy", self.dev.stream().memcpy_dtod(src, dst));
        }
        Self {
            rows: self.rows,
            cols: self.cols,
            buf,
            dev: self.dev.clone(),
        }
    }
}

impl std::fmt::Debug for CudaBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "CudaBatch({}×{} on {})",
            self.rows,
            self.cols,
            self.dev.name()
        )
    }
}

impl State for CudaBatch {
    type Scalar = f32;

    fn len(&self) -> usize {
        self.rows * self.cols
    }

    fn zeros_like(&self) -> Self {
        Self {
            rows: self.rows,
            cols: self.cols,
            buf: self.alloc_like(),
            dev: self.dev.clone(),
        }
    }

    fn assign(&mut self, other: &Self) {
        debug_assert_eq!((self.rows, self.cols), (other.rows, other.cols));
        let dev = self.dev.clone();
        if let (Some(src), Some(dst)) = (other.slice(), self.buf.as_mut()) {
            if src.len() == dst.len() {
                dev.record("copy", dev.stream().memcpy_dtod(src, dst));
            }
        }
    }

    fn set_zero(&mut self) {
        let dev = self.dev.clone();
        if let Some(dst) = self.slice_mut() {
            dev.record("memset", dev.stream().memset_zeros(dst));
        }
    }

    fn scale(&mut self, a: f32) {
        let dev = self.dev.clone();
        let n = self.len();
        if let Some(x) = self.slice_mut() {
            let n64 = n as i64;
            let mut b = dev.stream().launch_builder(&dev.state.scale);
            b.arg(&n64).arg(x).arg(&a);
            // SAFETY: scale_f32(long long n, float* x, float a).
            dev.record("scale_f32", unsafe { b.launch(config(n)) });
        }
    }

    fn axpy(&mut self, a: f32, x: &Self) {
        let dev = self.dev.clone();
        let n = self.len();
        if let (Some(xs), Some(y)) = (x.slice(), self.buf.as_mut().filter(|_| !dev.failed())) {
            let n64 = n as i64;
            let mut b = dev.stream().launch_builder(&dev.state.axpy);
            b.arg(&n64).arg(y).arg(&a).arg(xs);
            // SAFETY: axpy_f32(long long n, float* y, float a, const float* x).
            dev.record("axpy_f32", unsafe { b.launch(config(n)) });
        }
    }

    fn assign_lincomb(&mut self, base: &Self, coeffs: &[f32], terms: &[Self]) {
        let dev = self.dev.clone();
        let stream = dev.stream().clone();
        let n = self.len();
        let Some(base_buf) = base.slice() else { return };
        let mut term_ptrs = Vec::with_capacity(terms.len());
        for t in terms {
            let Some(s) = t.slice() else { return };
            term_ptrs.push(s.device_ptr(&stream).0);
        }
        let base_ptr = base_buf.device_ptr(&stream).0;
        let Some(out) = self.slice_mut() else { return };
        let out_ptr = out.device_ptr_mut(&stream).0;
        for launch in lincomb_plan(coeffs) {
            let args = lincomb_args(launch.terms.iter().map(|&(j, c)| (term_ptrs[j], c)));
            let from = if launch.from_base { base_ptr } else { out_ptr };
            let n64 = n as i64;
            let mut b = stream.launch_builder(&dev.state.lincomb);
            b.arg(&n64).arg(&out_ptr).arg(&from).arg(&args);
            // SAFETY: lincomb_f32(long long n, float* out, const float* base, LincombArgs);
            // the pointers are live device buffers of n components on this stream.
            if dev
                .record("lincomb_f32", unsafe { b.launch(config(n)) })
                .is_none()
            {
                return;
            }
        }
    }

    fn weighted_sq_sum(err: &Self, y0: &Self, y1: &Self, atol: f32, rtol: f32) -> (f64, usize) {
        let (Some(e), Some(a), Some(b)) = (err.slice(), y0.slice(), y1.slice()) else {
            return (f64::NAN, err.len());
        };
        let s = err.reduce_f64(
            &err.dev.state.weighted_sq_sum,
            "weighted_sq_sum_f32",
            &[e, a, b],
            &[atol, rtol],
        );
        (s.unwrap_or(f64::NAN), err.len())
    }

    fn dot(&self, other: &Self) -> f64 {
        let (Some(x), Some(y)) = (self.slice(), other.slice()) else {
            return f64::NAN;
        };
        self.reduce_f64(&self.dev.state.dot, "dot_f32", &[x, y], &[])
            .unwrap_or(f64::NAN)
    }

    fn first_non_finite(&self) -> Option<(usize, f64)> {
        let failed = Some((0, f64::NAN));
        let Some(x) = self.slice() else {
            return failed;
        };
        let dev = &self.dev;
        let stream = dev.stream();
        let n = self.len();
        let found = || -> Option<usize> {
            let mut first = dev.record("finiteness", stream.clone_htod(&[n as u64]))?;
            let n64 = n as i64;
            let mut b = stream.launch_builder(&dev.state.first_non_finite);
            b.arg(&n64).arg(x).arg(&mut first);
            // SAFETY: first_non_finite_f32(long long n, const float* x, unsigned long long*).
            dev.record("first_non_finite_f32", unsafe { b.launch(config(n)) })?;
            Some(dev.record("finiteness", stream.clone_dtoh(&first))?[0] as usize)
        };
        match found() {
            None => failed,
            Some(i) if i >= n => None,
            Some(i) => match dev.record("finiteness", stream.clone_dtoh(&x.slice(i..i + 1))) {
                Some(v) => Some((i, f64::from(v[0]))),
                None => failed,
            },
        }
    }

    fn finiteness_watch(&self) -> Option<Box<dyn FinitenessWatch<Self>>> {
        Some(Box::new(DeviceWatch::new(&self.dev)))
    }

    fn to_f64_vec(&self) -> Vec<f64> {
        match self.slice() {
            Some(x) => self
                .dev
                .record("device-to-host copy", self.dev.stream().clone_dtoh(x))
                .map(|v| v.into_iter().map(f64::from).collect())
                .unwrap_or_else(|| vec![f64::NAN; self.len()]),
            None => vec![f64::NAN; self.len()],
        }
    }
}
