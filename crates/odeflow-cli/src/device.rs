//! `--device cpu|cuda`: where a command computes.
//!
//! The GPU path needs the binary built with `--features cuda`; without it `--device cuda` is
//! one error saying so. With it, `train`, `eval` and `check` of run folders, `sweep`,
//! `experiment solver-dependence` and `bench` (every workload but resnet-memory) run on the
//! GPU (see the README's GPU section); every other command refuses `--device cuda` by name
//! ("not yet on cuda") rather than silently running on the CPU.

use clap::ValueEnum;

use crate::error::CliError;

/// The device of `--device`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum DeviceArg {
    /// The CPU (the default).
    #[default]
    Cpu,
    /// An NVIDIA GPU through CUDA (binaries built with `--features cuda`).
    Cuda,
}

impl DeviceArg {
    /// The name, as on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Cpu => "cpu",
            Self::Cuda => "cuda",
        }
    }
}

/// True when this binary was built with the GPU path.
pub const CUDA_BUILT: bool = cfg!(feature = "cuda");

/// The error of `--device cuda` in a binary built without the feature.
pub fn not_built() -> CliError {
    CliError::input(
        "--device cuda: this odeflow was built without the GPU path; rebuild with \
         `cargo build --release -p odeflow-cli --features cuda`",
    )
}

/// Fails for `--device cuda` in a binary built without the feature.
pub fn check_built(device: DeviceArg) -> Result<(), CliError> {
    if device == DeviceArg::Cuda && !CUDA_BUILT {
        return Err(not_built());
    }
    Ok(())
}

/// The library's compute target for `device`: the CPU, or GPU 0 opened (one error line
/// naming the missing driver or library when it cannot be).
pub fn open(device: DeviceArg) -> Result<odeflow::runs::Compute, CliError> {
    match device {
        DeviceArg::Cpu => Ok(odeflow::runs::Compute::Cpu),
        #[cfg(feature = "cuda")]
        DeviceArg::Cuda => odeflow::cuda::Device::open(0)
            .map(odeflow::runs::Compute::Cuda)
            .map_err(|e| CliError::runtime(e.to_string())),
        #[cfg(not(feature = "cuda"))]
        DeviceArg::Cuda => Err(not_built()),
    }
}

/// Fails for `--device cuda` with a `--dtype` other than f32 (the GPU computes in f32).
pub fn require_f32(device: DeviceArg, dtype: &str) -> Result<(), CliError> {
    if device == DeviceArg::Cuda && dtype != "f32" {
        return Err(CliError::input(format!(
            "--device cuda: the GPU computes in f32, but --dtype is '{dtype}'; add --dtype f32"
        )));
    }
    Ok(())
}

/// Fails for `--device cuda` on a command that has no GPU path yet.
pub fn require_cpu(device: DeviceArg, command: &str) -> Result<(), CliError> {
    if device == DeviceArg::Cuda {
        return Err(CliError::input(format!(
            "--device cuda: `odeflow {command}` is not yet on cuda (train, eval, check, sweep, \
             experiment solver-dependence, step-adaptation, resnet-distance and resnet-depth, \
             bench and predict run on the GPU); use --device cpu"
        )));
    }
    Ok(())
}
