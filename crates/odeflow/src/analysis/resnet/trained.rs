//! Training a TinyResNet on either device (Sander et al.'s experiments): on the CPU the
//! [`TinyResNet`] itself, on a GPU (feature `cuda`) its device twin
//! `cuda::CudaTinyResNet` (stem, body and head on the device), with the same
//! trainer, batches, optimizer and hooks. [`TrainedTinyResNet`] is the result on the device
//! it trained on; [`TinyResNetHost`] gives a hook the host model, up to date, to measure.

#[cfg(feature = "cuda")]
use super::depth_sweep::train_images;
use super::depth_sweep::{train_tiny_resnet, ImageData, TrainSettings};
use crate::data::Dataset;
use crate::models::tiny_resnet::{TinyResNet, TinyResNetConfig};
use crate::real::Real;
use crate::runs::Compute;
use crate::train::{IterationRecord, TrainError, TrainHook};

/// A model that holds a host [`TinyResNet`] a hook may measure: the CPU model itself, or
/// the device model with its running statistics brought back.
pub trait TinyResNetHost<T: Real> {
    /// The host model, up to date; `iteration` names a failure.
    fn host_model(&mut self, iteration: u64) -> Result<&mut TinyResNet<T>, TrainError>;
}

impl<T: Real> TinyResNetHost<T> for TinyResNet<T> {
    fn host_model(&mut self, _iteration: u64) -> Result<&mut TinyResNet<T>, TrainError> {
        Ok(self)
    }
}

/// A training hook for a TinyResNet on either device.
#[cfg(not(feature = "cuda"))]
pub trait TinyResNetHook<T: Real>: TrainHook<T, TinyResNet<T>> {}
#[cfg(not(feature = "cuda"))]
impl<T: Real, H: TrainHook<T, TinyResNet<T>>> TinyResNetHook<T> for H {}

/// A training hook for a TinyResNet on either device.
#[cfg(feature = "cuda")]
pub trait TinyResNetHook<T: Real>:
    TrainHook<T, TinyResNet<T>> + TrainHook<T, crate::cuda::CudaTinyResNet<T>>
{
}
#[cfg(feature = "cuda")]
impl<T: Real, H> TinyResNetHook<T> for H where
    H: TrainHook<T, TinyResNet<T>> + TrainHook<T, crate::cuda::CudaTinyResNet<T>>
{
}

/// A trained TinyResNet, on the device it trained on.
pub enum TrainedTinyResNet<T: Real> {
    /// Trained on the CPU.
    Cpu(Box<TinyResNet<T>>),
    /// Trained with its body on a GPU.
    #[cfg(feature = "cuda")]
    Cuda(Box<crate::cuda::CudaTinyResNet<T>>),
}

impl<T: Real> TinyResNetHost<T> for TrainedTinyResNet<T> {
    fn host_model(&mut self, iteration: u64) -> Result<&mut TinyResNet<T>, TrainError> {
        match self {
            TrainedTinyResNet::Cpu(m) => m.host_model(iteration),
            #[cfg(feature = "cuda")]
            TrainedTinyResNet::Cuda(m) => m.host_model(iteration),
        }
    }
}

impl<T: Real> TrainedTinyResNet<T> {
    /// Mean loss and accuracy on `data` in evaluation mode, on the device it trained on.
    pub fn evaluate(&mut self, data: &Dataset<T>, batch: usize) -> Result<(f64, f64), String> {
        match self {
            TrainedTinyResNet::Cpu(m) => m.evaluate(data, batch).map_err(|e| e.to_string()),
            #[cfg(feature = "cuda")]
            TrainedTinyResNet::Cuda(m) => m.evaluate(data, batch).map_err(|e| e.to_string()),
        }
    }

    /// The gradient method the body used (`backprop` below the minimum reversible depth).
    // Without the feature `cuda` the enum has one variant.
    #[cfg_attr(not(feature = "cuda"), allow(clippy::infallible_destructuring_match))]
    pub fn effective_grad(&self) -> String {
        let m = match self {
            TrainedTinyResNet::Cpu(m) => m,
            #[cfg(feature = "cuda")]
            TrainedTinyResNet::Cuda(m) => m.host(),
        };
        m.body().gradient_method().name().into()
    }
}

/// Trains a fresh TinyResNet of `cfg` on `data` on `compute`, with `hook` and `on_iter` as
/// [`train_tiny_resnet`] (which it is on the CPU).
pub fn train_tiny_resnet_on<T: Real, H: TinyResNetHook<T>>(
    data: &ImageData<T>,
    cfg: TinyResNetConfig,
    settings: &TrainSettings,
    compute: &Compute,
    hook: &mut H,
    on_iter: impl FnMut(&IterationRecord),
) -> Result<TrainedTinyResNet<T>, TrainError> {
    match compute {
        Compute::Cpu => train_tiny_resnet(data, cfg, settings, hook, on_iter)
            .map(|(m, _)| TrainedTinyResNet::Cpu(Box::new(m))),
        #[cfg(feature = "cuda")]
        Compute::Cuda(dev) => {
            let model = TinyResNet::new(data.shape, cfg).map_err(|e| TrainError::solver(0, e))?;
            let mut gpu = crate::cuda::CudaTinyResNet::from_cpu(dev, model)
                .map_err(|e| TrainError::solver(0, e))?;
            // One captured CUDA graph per iteration where the plan covers the body
            // (backprop, reversible); otherwise the eager device path.
            match gpu.capture_training(&settings.train_config().optimizer) {
                Ok(()) | Err(crate::cuda::CudaError::Unsupported(_)) => {}
                Err(e) => return Err(TrainError::solver(0, e)),
            }
            train_images(&mut gpu, data, settings, hook, on_iter)?;
            Ok(TrainedTinyResNet::Cuda(Box::new(gpu)))
        }
    }
}
