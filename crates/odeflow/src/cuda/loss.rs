//! The losses' kernel launches on device addresses (`kernels/nn.cu`), shared by the captured
//! training iteration ([`super::ClassifierStep`]), TinyResNet's head ([`super::CudaHead`])
//! and the pendulum workload ([`super::PendulumCuda`]).

use cudarc::driver::PushKernelArg;

use super::device::{CudaError, Device};
use super::state::config;

/// `softmax_ce_f32(rows, classes, logits, labels, ∂logits, loss, correct)` on device
/// addresses: the mean cross-entropy added to `loss` (f64) and the number of correct
/// predictions to `correct` (u64), both zeroed beforehand; `∂logits` overwritten.
pub(super) fn launch_softmax_ce(
    dev: &Device,
    rows: usize,
    classes: usize,
    ptrs: [u64; 5],
) -> Result<(), CudaError> {
    let (r, c) = (rows as i64, classes as i32);
    let mut l = dev.stream().launch_builder(&dev.nn.softmax_ce);
    l.arg(&r).arg(&c);
    for p in &ptrs {
        l.arg(p);
    }
    // SAFETY: softmax_ce_f32(long long rows, int classes, const float*, const int*, float*,
    // double*, unsigned long long*) on buffers of rows·classes, rows, rows·classes, 1, 1.
    unsafe { l.launch(config(rows)) }
        .map(|_| ())
        .map_err(|e| CudaError::call("softmax_ce_f32", e))
}

/// `mse_f32(n, pred, target, ∂pred, loss)` on device addresses: `∂pred ← 2(pred − target)/n`
/// (overwritten) and the mean squared error added to `loss` (f64, zeroed beforehand).
pub(super) fn launch_mse(dev: &Device, n: usize, ptrs: [u64; 4]) -> Result<(), CudaError> {
    let n64 = n as i64;
    let mut l = dev.stream().launch_builder(&dev.nn.mse);
    l.arg(&n64);
    for p in &ptrs {
        l.arg(p);
    }
    // SAFETY: mse_f32(long long n, const float* pred, const float* target, float* grad,
    // double* loss) on buffers of n, n, n and 1 elements.
    unsafe { l.launch(config(n)) }
        .map(|_| ())
        .map_err(|e| CudaError::call("mse_f32", e))
}
