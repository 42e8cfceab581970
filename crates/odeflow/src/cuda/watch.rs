//! The deferred finiteness check of a fixed-step solve on the device
//! ([`crate::State::finiteness_watch`] for [`CudaBatch`]).
//!
//! Reading a flag back after every step would synchronise the host with the GPU once per
//! step. Instead each step launches `mark_non_finite_step_f32`, which lowers a device
//! counter to the step's index when the state holds a NaN or an infinity
//! (`first ← min(first, n)`), and the solve reads the counter once, at its end. The fixed-step
//! loop then repeats a failed solve with a check per step to report the step, the
//! component and its value (see `solve::fixed`).

use std::sync::Arc;

use cudarc::driver::{CudaSlice, PushKernelArg};

use super::device::Device;
use super::state::{config, CudaBatch};
use crate::state::{FinitenessWatch, State};

/// "No non-finite step yet" on the device.
const NONE: u64 = u64::MAX;

/// The device counter of the first step with a non-finite state.
pub(crate) struct DeviceWatch {
    dev: Arc<Device>,
    first: Option<CudaSlice<u64>>,
}

impl DeviceWatch {
    /// A watch on `dev` (one 8-byte buffer set to "none").
    pub(crate) fn new(dev: &Arc<Device>) -> Self {
        let first = dev.record("finiteness watch", dev.stream().clone_htod(&[NONE]));
        Self {
            dev: dev.clone(),
            first,
        }
    }
}

impl FinitenessWatch<CudaBatch> for DeviceWatch {
    fn observe(&mut self, step: usize, state: &CudaBatch) {
        let (Some(first), Some(x)) = (self.first.as_mut(), state.slice()) else {
            return;
        };
        let n = state.len() as i64;
        let step = step as u64;
        let mut b = self
            .dev
            .stream()
            .launch_builder(&self.dev.state.mark_non_finite_step);
        b.arg(&n).arg(x).arg(&step).arg(first);
        // SAFETY: mark_non_finite_step_f32(long long n, const float* x,
        // unsigned long long step, unsigned long long* first).
        self.dev.record("mark_non_finite_step_f32", unsafe {
            b.launch(config(state.len()))
        });
    }

    fn first_step(&mut self) -> Option<usize> {
        let Some(first) = self.first.as_ref() else {
            return Some(0);
        };
        match self
            .dev
            .record("finiteness watch", self.dev.stream().clone_dtoh(first))
        {
            Some(v) if v.first() == Some(&NONE) => None,
            Some(v) => Some(v.first().map_or(0, |&s| s as usize)),
            None => Some(0),
        }
    }
}
