//! The GPU path on [cudarc] (feature `cuda`): the solver core's [`crate::State`] on device
//! buffers ([`CudaBatch`], f32) and the MLP field with exact VJPs on the device
//! ([`CudaMlp`]) and Ott et al.'s convolutional fields `simple_odenet` and `odenet`
//! ([`CudaConvField`], im2col + cuBLAS SGEMM, launch plan [`conv_plan`]), so that the generic
//! solvers and gradient methods run unchanged on an NVIDIA GPU.
//!
//! Nothing CUDA is needed to build: the driver (`libcuda`), NVRTC and cuBLAS are opened at
//! run time ([`Device::open`]); without them the call returns one [`CudaError`] naming the
//! library that did not load, never a panic. The kernels are CUDA C sources in `kernels/`
//! (`include_str!`), compiled by NVRTC when the device opens, to SASS for the device's own
//! architecture (`--gpu-architecture=sm_XX`), so that an NVRTC newer than the driver still
//! gives loadable code.
//!
//! The non-convolutional layers of TinyResNet (Sander et al., NeurIPS 2022) are on the device
//! too, with exact VJPs: batch normalisation ([`CudaBatchNorm`], train and eval mode),
//! average pooling ([`CudaAvgPool`]) and the residual combination ([`residual_update`]),
//! launched in the order of [`norm_plan`]; a whole residual block with its VJP is
//! [`CudaResBlock`] (plan [`res_block_plan`]).
//!
//! A whole fixed-step training iteration of a classifier with the MLP or a convolutional
//! field (forward solve, head, cross-entropy, the backward pass of any of the three gradient
//! methods, Adam) is one
//! [`train_plan::TrainPlan`], issued by [`ClassifierStep`] eagerly or captured once into a
//! CUDA graph (not yet run on a GPU).
//!
//! What the device computes is decided by launch plans ([`plan`], [`train_plan`],
//! [`conv_plan`], [`res_block_plan`]) that are unit-tested on the CPU; the kernels'
//! arithmetic is tested on the CPU by compiling the same sources as host C++
//! (`kernels/host_shim.h`, `tests/cuda_kernels.rs`), and the sources are compiled by NVRTC
//! in CI. See the README's
//! GPU section for what has and has not run on a GPU.

mod agreement;
mod classifier_agreement;
mod conv;
mod conv_agreement;
pub mod conv_bn_plan;
pub mod conv_plan;
mod depth_field;
mod device;
mod eager;
mod flow;
mod hamiltonian;
mod head;
mod loss;
mod mlp;
mod norm;
pub mod norm_plan;
pub mod plan;
mod pool;
mod regression_agreement;
mod res_block;
mod res_block_agreement;
pub mod res_block_plan;
mod state;
pub mod stem_plan;
mod tiny_resnet;
mod tiny_resnet_agreement;
mod tiny_resnet_step;
mod train_graph;
pub mod train_plan;
mod trainable;
mod watch;
mod workload;

pub use agreement::{pendulum_agreement, Agreement};
pub use classifier_agreement::{
    classifier_agreement, classifier_cpu_reference, ClassifierAgreement, ClassifierCase, CpuPass,
};
pub use conv::{CudaConvField, CudaConvTape};
pub use conv_agreement::{conv_agreement, ConvAgreement, ConvModel};
pub use depth_field::{CudaDepthField, CudaDepthTape, DepthLayout, Place, TrainingPass};
pub use device::{compile_all_kernels, compile_source, CudaError, Device, KERNEL_SOURCES};
pub use eager::{BuiltField, CudaSolverClassifier, DeviceParams};
pub use flow::{classifier_loss_gradient, field_final_state, CudaFlowModel};
pub use hamiltonian::{hamiltonian_final_state, CudaHamiltonian};
pub use head::{CudaHead, HeadLoss};
pub use mlp::{CudaMlp, CudaTape};
pub use norm::{BnSaved, CudaBatchNorm};
pub use norm_plan::{ImageBatch, Layout, PoolShape};
pub use pool::{residual_update, CudaAvgPool};
pub use regression_agreement::{
    regression_agreement, regression_cpu_reference, regression_inputs, RegressionAgreement,
    RegressionInputs,
};
pub use res_block::{CudaConvBn, CudaResBlock, CudaStem};
pub use res_block_agreement::{
    res_block_agreement, res_block_cpu_reference, res_block_inputs, ResBlockAgreement,
    ResBlockInputs, ResBlockPass,
};
pub use state::{f32s, CudaBatch};
pub use tiny_resnet::{resnet_final_state, CudaTinyResNet};
pub use tiny_resnet_agreement::{
    tiny_resnet_agreement, tiny_resnet_case, tiny_resnet_cases, tiny_resnet_cpu_reference,
    tiny_resnet_inputs, TinyResNetAgreement, TinyResNetInputs, TinyResNetPass,
};
pub use tiny_resnet_step::plan_tiny_resnet;
pub use train_graph::{ClassifierStep, HostState, StepOutcome};
pub use trainable::{
    plan_classifier, plan_regression, ClassifierSetup, CudaClassifier, SteppingLog,
};
pub use workload::{ClassifierCuda, PendulumCuda};
