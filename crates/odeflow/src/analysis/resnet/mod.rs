//! ResNets as ODE discretisations (Sander, Ablin, Peyré, NeurIPS 2022).
//!
//! * [`linear`] — the linear ResNet: trained weights stay smooth in depth.
//! * [`profiles`] — weights as functions of depth (smooth, piecewise smooth, i.i.d.).
//! * [`reconstruction`] — how well reverse steps recover a ResNet's input, against depth.
//! * [`gradients`] — reversible against backprop gradients, against depth.
//! * [`distance`] — the ResNet–ODE distance and weight smoothness, tracked in training.
//! * [`memory`] — the memory benchmark's workload and peak-memory probe.
//! * [`depth_sweep`] — image data, training of TinyResNets, test accuracy against depth.
//! * [`trained`] — training a TinyResNet on the CPU or (feature `cuda`) with its body on a
//!   GPU.

pub mod depth_sweep;
pub mod distance;
pub mod gradients;
pub mod linear;
pub mod memory;
pub mod profiles;
pub mod reconstruction;
pub mod trained;
