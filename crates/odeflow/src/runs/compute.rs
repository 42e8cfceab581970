//! Where a run computes: the CPU (the default) or, with the feature `cuda`, a GPU.

/// The device a run's work goes to (`--device cpu|cuda` in the command-line tool).
#[derive(Clone, Default)]
pub enum Compute {
    /// The CPU (every model, every solver).
    #[default]
    Cpu,
    /// A GPU opened with [`crate::cuda::Device::open`].
    #[cfg(feature = "cuda")]
    Cuda(std::sync::Arc<crate::cuda::Device>),
}

impl Compute {
    /// `cpu` or `cuda`.
    pub fn name(&self) -> &'static str {
        match self {
            Compute::Cpu => "cpu",
            #[cfg(feature = "cuda")]
            Compute::Cuda(_) => "cuda",
        }
    }

    /// True for the CPU.
    pub fn is_cpu(&self) -> bool {
        matches!(self, Compute::Cpu)
    }

    /// The device in words, e.g. `NVIDIA H200 (sm_90)`.
    pub fn describe(&self) -> String {
        match self {
            Compute::Cpu => "the CPU".into(),
            #[cfg(feature = "cuda")]
            Compute::Cuda(d) => format!("{} ({})", d.name(), d.arch()),
        }
    }
}

impl std::fmt::Debug for Compute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
