//! Launch plans of the device batch normalisation and average pooling (`kernels/norm.cu`):
//! the validated shapes, which kernels run in which order, and their grids — decided without
//! the driver, so that they are unit-tested on a machine with no GPU (`tests/cuda_plan/norm.rs`)
//! and executed with the kernels compiled as host C++ (`tests/cuda_kernels/norm.rs`).
//!
//! Batch normalisation (Ioffe & Szegedy 2015) with `M = N·H·W` values per channel:
//!
//! * train forward: [`NormOp::Stats`] (one block per channel: `μ`, `1/√(σ² + ε)`, running
//!   statistics), then [`NormOp::Normalize`] (`y = γ x̂ + β`, elementwise);
//! * eval forward: [`NormOp::EvalStats`] (`μ`, `1/√(σ² + ε)` from the running statistics),
//!   then [`NormOp::Normalize`];
//! * backward: [`NormOp::BackwardSums`] (one block per channel: `Σ ∂y`, `Σ ∂y ⊙ x̂`, and
//!   `∂γ`, `∂β` accumulated), then [`NormOp::BackwardDx`] (elementwise). In eval mode
//!   without affine parameters the sums are not needed and the plan skips them.

use super::device::CudaError;
use super::plan::{grid_1d, MAX_BLOCKS};

/// Most threads per block of the per-channel reductions (`ODEFLOW_NORM_MAX_BLOCK`).
pub const NORM_MAX_BLOCK: u32 = 256;

/// Fewest threads per block of the reductions (one warp).
pub const NORM_MIN_BLOCK: u32 = 32;

/// Memory order of a batch of images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Layout {
    /// PyTorch's `(N, C, H, W)`: value `(n, c, h, w)` at `((n·C + c)·H + h)·W + w` (a
    /// [`crate::Batch`] row per sample).
    #[default]
    Nchw,
    /// Channels-last `(N, H, W, C)`: at `((n·H + h)·W + w)·C + c` (the CPU layers' order
    /// inside a network, see [`crate::nn`]).
    Nhwc,
}

impl Layout {
    /// The kernels' `layout` argument (0 NCHW, 1 NHWC).
    pub fn code(self) -> i32 {
        match self {
            Layout::Nchw => 0,
            Layout::Nhwc => 1,
        }
    }
}

/// The shape of a batch of `batch` images of `channels × height × width` (sequences are
/// `height = 1`, flat features `height = width = 1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ImageBatch {
    /// Samples `N`.
    pub batch: usize,
    /// Channels `C`.
    pub channels: usize,
    /// Rows `H`.
    pub height: usize,
    /// Columns `W`.
    pub width: usize,
    /// Memory order.
    pub layout: Layout,
}

fn positive_int(name: &'static str, v: usize) -> Result<(), CudaError> {
    if v == 0 {
        Err(CudaError::invalid(name, v, "must be positive"))
    } else if v > i32::MAX as usize {
        Err(CudaError::invalid(
            name,
            v,
            format!("exceeds the kernels' range ({})", i32::MAX),
        ))
    } else {
        Ok(())
    }
}

impl ImageBatch {
    /// A batch shape; every size must be positive and fit the kernels' `int` arguments.
    pub fn new(
        batch: usize,
        channels: usize,
        height: usize,
        width: usize,
        layout: Layout,
    ) -> Result<Self, CudaError> {
        positive_int("batch size", batch)?;
        positive_int("channels", channels)?;
        positive_int("image height", height)?;
        positive_int("image width", width)?;
        let s = Self {
            batch,
            channels,
            height,
            width,
            layout,
        };
        batch
            .checked_mul(channels)
            .and_then(|v| v.checked_mul(height))
            .and_then(|v| v.checked_mul(width))
            .filter(|&v| v <= i64::MAX as usize)
            .ok_or_else(|| CudaError::invalid("image batch", s, "has too many values"))?;
        Ok(s)
    }

    /// Positions per sample `P = H·W`.
    pub fn positions(&self) -> usize {
        self.height * self.width
    }

    /// Values per channel `M = N·P`.
    pub fn per_channel(&self) -> usize {
        self.batch * self.positions()
    }

    /// Number of values `N·C·H·W`.
    pub fn len(&self) -> usize {
        self.batch * self.channels * self.positions()
    }

    /// Never: the sizes are positive.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Checks that a buffer holds this batch.
    pub fn check_len(&self, what: &'static str, len: usize) -> Result<(), CudaError> {
        if len == self.len() {
            Ok(())
        } else {
            Err(CudaError::invalid(
                what,
                format!("length {len}"),
                format!("a {self} batch has {} values", self.len()),
            ))
        }
    }
}

impl std::fmt::Display for ImageBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (n, c, h, w) = (self.batch, self.channels, self.height, self.width);
        match self.layout {
            Layout::Nchw => write!(f, "{n}×{c}×{h}×{w} (NCHW)"),
            Layout::Nhwc => write!(f, "{n}×{h}×{w}×{c} (NHWC)"),
        }
    }
}

/// One kernel of a batch-norm plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NormOp {
    /// `bn_stats_f32`: batch `μ`, `1/√(σ² + ε)` and the running-statistics update.
    Stats,
    /// `bn_eval_stats_f32`: `μ`, `1/√(σ² + ε)` from the running statistics.
    EvalStats,
    /// `bn_normalize_f32`: `y = γ (x − μ)/√(σ² + ε) + β`.
    Normalize,
    /// `bn_backward_sums_f32`: `Σ ∂y`, `Σ ∂y ⊙ x̂` per channel; `∂γ`, `∂β` accumulated when
    /// `grad_params`.
    BackwardSums {
        /// Accumulate into `∂γ`, `∂β` (affine layers).
        grad_params: bool,
    },
    /// `bn_backward_dx_f32`: `∂x` (overwritten), coupled through the sums when `train`.
    BackwardDx {
        /// Train mode (reads the sums).
        train: bool,
    },
}

/// One launch: the kernel and its grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NormLaunch {
    /// The kernel.
    pub op: NormOp,
    /// Blocks.
    pub grid: u32,
    /// Threads per block.
    pub block: u32,
}

/// Threads per block of a per-channel reduction over `m` values: the power of two at least
/// `m`, clamped to [[`NORM_MIN_BLOCK`], [`NORM_MAX_BLOCK`]] (the kernels' tree needs a power
/// of two).
pub fn reduction_block(m: usize) -> u32 {
    (m.clamp(NORM_MIN_BLOCK as usize, NORM_MAX_BLOCK as usize) as u32).next_power_of_two()
}

fn per_channel(op: NormOp, s: &ImageBatch) -> NormLaunch {
    NormLaunch {
        op,
        grid: s.channels.min(MAX_BLOCKS as usize) as u32,
        block: reduction_block(s.per_channel()),
    }
}

fn elementwise(op: NormOp, n: usize) -> NormLaunch {
    let (grid, block) = grid_1d(n);
    NormLaunch { op, grid, block }
}

/// The launches of a forward pass (train mode: batch statistics; eval: running ones).
pub fn bn_forward_plan(s: &ImageBatch, train: bool) -> Vec<NormLaunch> {
    let stats = if train {
        per_channel(NormOp::Stats, s)
    } else {
        elementwise(NormOp::EvalStats, s.channels)
    };
    vec![stats, elementwise(NormOp::Normalize, s.len())]
}

/// The launches of the VJP of a forward pass in mode `train` of a layer with (`affine`) or
/// without learnable `γ`, `β`.
pub fn bn_backward_plan(s: &ImageBatch, train: bool, affine: bool) -> Vec<NormLaunch> {
    let mut plan = Vec::with_capacity(2);
    if train || affine {
        plan.push(per_channel(
            NormOp::BackwardSums {
                grad_params: affine,
            },
            s,
        ));
    }
    plan.push(elementwise(NormOp::BackwardDx { train }, s.len()));
    plan
}

/// Average pooling of an [`ImageBatch`] with a `kh × kw` window and the same stride (no
/// padding, floor mode: PyTorch's `F.avg_pool2d(x, (kh, kw))`, [`crate::nn::AvgPool2d`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolShape {
    /// The input.
    pub input: ImageBatch,
    /// Window rows.
    pub kh: usize,
    /// Window columns.
    pub kw: usize,
}

impl PoolShape {
    /// A pooling of `input` by `kh × kw`; the window must be positive and fit the image.
    pub fn new(input: ImageBatch, kh: usize, kw: usize) -> Result<Self, CudaError> {
        positive_int("pooling window height", kh)?;
        positive_int("pooling window width", kw)?;
        if kh > input.height || kw > input.width {
            return Err(CudaError::invalid(
                "pooling window",
                format!("{kh}×{kw}"),
                format!("exceeds the {}×{} input", input.height, input.width),
            ));
        }
        Ok(Self { input, kh, kw })
    }

    /// The output `⌊H/kh⌋ × ⌊W/kw⌋`, same batch, channels and layout.
    pub fn output(&self) -> ImageBatch {
        ImageBatch {
            height: self.input.height / self.kh,
            width: self.input.width / self.kw,
            ..self.input
        }
    }

    /// `(blocks, threads)` of the forward launch (one thread per output value) and of the
    /// backward launch (one per input value).
    pub fn grids(&self) -> ((u32, u32), (u32, u32)) {
        (grid_1d(self.output().len()), grid_1d(self.input.len()))
    }
}
