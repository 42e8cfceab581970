//! [`Device`]: the driver context, stream, compiled kernels and cuBLAS handle of one GPU.
//!
//! Errors inside the solver's state operations (which cannot return them) are recorded in the
//! device and returned by [`Device::check`] at the end of a solve or iteration: the first
//! error wins, later operations on the failed device are skipped, and nothing panics.

use std::ffi::{c_char, CString};
use std::sync::{Arc, Mutex};

use cudarc::cublas::CudaBlas;

use super::plan::Gemm;
use cudarc::driver::{CudaContext, CudaFunction, CudaModule, CudaSlice, CudaStream};
use cudarc::nvrtc::{result as nvrtc, sys as nvrtc_sys, Ptx};
use thiserror::Error;

/// A failure of the GPU path.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum CudaError {
    /// The CUDA driver library is not on this machine (or not on the loader's path).
    #[error("no CUDA driver found: {0}")]
    NoDriver(String),
    /// A CUDA library other than the driver did not load.
    #[error("the CUDA library {lib} was not found: {hint}")]
    NoLibrary {
        /// `NVRTC` or `cuBLAS`.
        lib: &'static str,
        /// The file names tried and how to point odeflow at the library.
        hint: String,
    },
    /// A driver or cuBLAS call failed.
    #[error("CUDA {what} failed: {msg}")]
    Call {
        /// The operation.
        what: &'static str,
        /// The driver's error.
        msg: String,
    },
    /// NVRTC rejected a kernel source.
    #[error("NVRTC could not compile {source_name} for {arch}: {log}")]
    Compile {
        /// The kernel file.
        source_name: &'static str,
        /// The target architecture.
        arch: String,
        /// The compiler log.
        log: String,
    },
    /// A model or option the device path does not support yet.
    #[error("not yet on cuda: {0}")]
    Unsupported(String),
    /// A bad shape, size or option given to a device layer.
    #[error("invalid {name} {value}: {reason}")]
    Invalid {
        /// What the value is (`batch-norm channels`, `input length`, …).
        name: &'static str,
        /// The value given.
        value: String,
        /// What it should be.
        reason: String,
    },
}

impl CudaError {
    pub(crate) fn invalid(
        name: &'static str,
        value: impl std::fmt::Display,
        reason: impl Into<String>,
    ) -> Self {
        Self::Invalid {
            name,
            value: value.to_string(),
            reason: reason.into(),
        }
    }

    pub(crate) fn call(what: &'static str, e: impl std::fmt::Display) -> Self {
        Self::Call {
            what,
            msg: e.to_string(),
        }
    }
}

/// A parameter buffer copied to the host.
pub(crate) fn download(dev: &Device, buf: &CudaSlice<f32>) -> Result<Vec<f32>, CudaError> {
    dev.stream()
        .clone_dtoh(buf)
        .map_err(|e| CudaError::call("device-to-host copy", e))
}

/// `dst ← src` from the host, for a parameter buffer of the same length.
pub(crate) fn upload(dev: &Device, src: &[f32], dst: &mut CudaSlice<f32>) -> Result<(), CudaError> {
    if src.len() != dst.len() {
        return Err(CudaError::Unsupported(format!(
            "{} parameters given for {}",
            src.len(),
            dst.len()
        )));
    }
    dev.stream()
        .memcpy_htod(src, dst)
        .map_err(|e| CudaError::call("host-to-device copy", e))
}

/// The kernel sources, by file name.
pub const KERNEL_SOURCES: [(&str, &str); 4] = [
    ("state.cu", include_str!("kernels/state.cu")),
    ("nn.cu", include_str!("kernels/nn.cu")),
    ("conv.cu", include_str!("kernels/conv.cu")),
    ("norm.cu", include_str!("kernels/norm.cu")),
];

/// The kernels of `state.cu`.
pub(crate) struct StateKernels {
    pub lincomb: CudaFunction,
    pub scale: CudaFunction,
    pub axpy: CudaFunction,
    pub weighted_sq_sum: CudaFunction,
    pub dot: CudaFunction,
    pub first_non_finite: CudaFunction,
    pub mark_non_finite_step: CudaFunction,
}

/// The kernels of `nn.cu`.
pub(crate) struct NnKernels {
    pub bias_act: CudaFunction,
    pub act_grad: CudaFunction,
    pub mse: CudaFunction,
    pub softmax_ce: CudaFunction,
    pub adam_tick: CudaFunction,
    pub adam_graph: CudaFunction,
    /// `sgd_graph_f32`.
    pub sgd_graph: CudaFunction,
    pub pad_cols: CudaFunction,
    /// `copy_cols_f32`.
    pub copy_cols: CudaFunction,
    pub fill_u64: CudaFunction,
}

/// The kernels of `conv.cu` (the convolutional fields; ReLU' is `nn.cu`'s `act_grad`).
pub(crate) struct ConvKernels {
    pub im2col: CudaFunction,
    pub col2im: CudaFunction,
    pub bias_act: CudaFunction,
    pub partial_sums: CudaFunction,
    pub add_sums: CudaFunction,
    pub swap_outer: CudaFunction,
}

/// The kernels of `norm.cu`.
pub(crate) struct NormKernels {
    pub stats: CudaFunction,
    pub eval_stats: CudaFunction,
    pub normalize: CudaFunction,
    pub backward_sums: CudaFunction,
    pub backward_dx: CudaFunction,
    pub avgpool_fwd: CudaFunction,
    pub avgpool_bwd: CudaFunction,
}

/// One GPU: context, stream, kernels, cuBLAS, and the first recorded error.
pub struct Device {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    name: String,
    arch: String,
    pub(crate) state: StateKernels,
    pub(crate) nn: NnKernels,
    pub(crate) conv: ConvKernels,
    pub(crate) norm: NormKernels,
    pub(crate) blas: CudaBlas,
    error: Mutex<Option<CudaError>>,
}

fn lib_hint(lib: &str, env: &str) -> String {
    format!(
        "tried {}; install it and add its folder to LD_LIBRARY_PATH{env}",
        cudarc::get_lib_name_candidates(lib).join(", ")
    )
}

/// Compiles one kernel source with NVRTC for `arch` (`sm_90`, …): SASS (a cubin) when
/// `cubin` is true, otherwise PTX.
pub fn compile_source(
    source_name: &'static str,
    src: &str,
    arch: &str,
    cubin: bool,
) -> Result<Vec<u8>, CudaError> {
    // SAFETY: the probe only dlopens the library.
    if !unsafe { nvrtc_sys::is_culib_present() } {
        return Err(CudaError::NoLibrary {
            lib: "NVRTC",
            hint: lib_hint("nvrtc", " (pip's nvidia-cuda-nvrtc wheel installs it too)"),
        });
    }
    let c_src = CString::new(src).map_err(|e| CudaError::call("kernel source", e))?;
    let c_name = CString::new(source_name).map_err(|e| CudaError::call("kernel name", e))?;
    let prog = nvrtc::create_program(&c_src, Some(&c_name))
        .map_err(|e| CudaError::call("nvrtcCreateProgram", e))?;
    let opts = [
        format!("--gpu-architecture={arch}"),
        "--std=c++17".to_string(),
        "--fmad=true".to_string(),
    ];
    // SAFETY: `prog` was created above and is destroyed once, at the end.
    let out = unsafe {
        match nvrtc::compile_program(prog, &opts) {
            Err(e) => {
                let log = nvrtc::get_program_log(prog)
                    .map(|l| c_chars_to_string(&l))
                    .unwrap_or_else(|_| e.to_string());
                Err(CudaError::Compile {
                    source_name,
                    arch: arch.to_string(),
                    log,
                })
            }
            Ok(()) if cubin => {
                let mut size = 0usize;
                let r = nvrtc_sys::nvrtcGetCUBINSize(prog, &mut size).result();
                r.and_then(|()| {
                    let mut buf = vec![0u8; size];
                    nvrtc_sys::nvrtcGetCUBIN(prog, buf.as_mut_ptr() as *mut c_char)
                        .result()
                        .map(|()| buf)
                })
                .map_err(|e| CudaError::call("nvrtcGetCUBIN", e))
            }
            Ok(()) => nvrtc::get_ptx(prog)
                .map(|p| p.iter().map(|&c| c as u8).collect())
                .map_err(|e| CudaError::call("nvrtcGetPTX", e)),
        }
    };
    // SAFETY: created above, not yet destroyed.
    let _ = unsafe { nvrtc::destroy_program(prog) };
    out
}

fn c_chars_to_string(v: &[c_char]) -> String {
    let bytes: Vec<u8> = v
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).trim().to_string()
}

/// Compiles every kernel source in [`KERNEL_SOURCES`] for `arch` to SASS; returns the
/// cubin sizes. The CI test of the sources (no GPU needed, only NVRTC).
pub fn compile_all_kernels(arch: &str) -> Result<Vec<(&'static str, usize)>, CudaError> {
    KERNEL_SOURCES
        .iter()
        .map(|(name, src)| compile_source(name, src, arch, true).map(|b| (*name, b.len())))
        .collect()
}

fn load(
    ctx: &Arc<CudaContext>,
    name: &'static str,
    src: &str,
    arch: &str,
) -> Result<Arc<CudaModule>, CudaError> {
    let cubin = compile_source(name, src, arch, true)?;
    ctx.load_module(Ptx::from_binary(cubin))
        .map_err(|e| CudaError::call("module load", e))
}

fn function(m: &Arc<CudaModule>, name: &str) -> Result<CudaFunction, CudaError> {
    m.load_function(name)
        .map_err(|e| CudaError::call("kernel lookup", format!("{name}: {e}")))
}

impl Device {
    /// Opens GPU `ordinal`: loads the driver, NVRTC and cuBLAS, compiles the kernels for the
    /// device's architecture and creates a stream and a cuBLAS handle (full f32 GEMMs: the
    /// default math mode, no TF32). Fails with one error naming what is missing.
    pub fn open(ordinal: usize) -> Result<Arc<Self>, CudaError> {
        // SAFETY: the probes only dlopen the libraries.
        if !unsafe { cudarc::driver::sys::is_culib_present() } {
            return Err(CudaError::NoDriver(lib_hint(
                "cuda",
                " (the NVIDIA driver installs libcuda.so.1)",
            )));
        }
        if !unsafe { cudarc::cublas::sys::is_culib_present() } {
            return Err(CudaError::NoLibrary {
                lib: "cuBLAS",
                hint: lib_hint("cublas", " (pip's nvidia-cublas wheel installs it too)"),
            });
        }
        let count = CudaContext::device_count().map_err(|e| {
            CudaError::NoDriver(format!("the driver loaded but cuInit failed: {e}"))
        })?;
        if ordinal >= count.max(0) as usize {
            return Err(CudaError::NoDriver(format!(
                "GPU {ordinal} asked for, the driver sees {count}"
            )));
        }
        let ctx = CudaContext::new(ordinal).map_err(|e| CudaError::call("context", e))?;
        // One stream: kernels are ordered by it, so cudarc's per-buffer events are not
        // needed (and would break graph capture).
        // SAFETY: no other stream uses this context's buffers.
        unsafe { ctx.disable_event_tracking() };
        let (major, minor) = ctx
            .compute_capability()
            .map_err(|e| CudaError::call("compute capability", e))?;
        let arch = format!("sm_{major}{minor}");
        let name = ctx.name().unwrap_or_else(|_| "unknown GPU".into());
        // A created (non-blocking) stream, not the legacy NULL stream, which CUDA cannot
        // capture into a graph (CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED).
        let stream = ctx
            .new_stream()
            .map_err(|e| CudaError::call("stream creation", e))?;
        let [(sn, ss), (nn, ns), (cn, cs), (bn, bs)] = KERNEL_SOURCES;
        let sm = load(&ctx, sn, ss, &arch)?;
        let nm = load(&ctx, nn, ns, &arch)?;
        let cm = load(&ctx, cn, cs, &arch)?;
        let bm = load(&ctx, bn, bs, &arch)?;
        let state = StateKernels {
            lincomb: function(&sm, "lincomb_f32")?,
            scale: function(&sm, "scale_f32")?,
            axpy: function(&sm, "axpy_f32")?,
            weighted_sq_sum: function(&sm, "weighted_sq_sum_f32")?,
            dot: function(&sm, "dot_f32")?,
            first_non_finite: function(&sm, "first_non_finite_f32")?,
            mark_non_finite_step: function(&sm, "mark_non_finite_step_f32")?,
        };
        let nn = NnKernels {
            bias_act: function(&nm, "bias_act_f32")?,
            act_grad: function(&nm, "act_grad_f32")?,
            mse: function(&nm, "mse_f32")?,
            softmax_ce: function(&nm, "softmax_ce_f32")?,
            adam_tick: function(&nm, "adam_tick")?,
            adam_graph: function(&nm, "adam_graph_f32")?,
            sgd_graph: function(&nm, "sgd_graph_f32")?,
            pad_cols: function(&nm, "pad_cols_f32")?,
            copy_cols: function(&nm, "copy_cols_f32")?,
            fill_u64: function(&nm, "fill_u64")?,
        };
        let conv = ConvKernels {
            im2col: function(&cm, "im2col_f32")?,
            col2im: function(&cm, "col2im_f32")?,
            bias_act: function(&cm, "bias_act_nchw_f32")?,
            partial_sums: function(&cm, "channel_partial_sums_f32")?,
            add_sums: function(&cm, "add_channel_sums_f32")?,
            swap_outer: function(&cm, "swap_outer_f32")?,
        };
        let norm = NormKernels {
            stats: function(&bm, "bn_stats_f32")?,
            eval_stats: function(&bm, "bn_eval_stats_f32")?,
            normalize: function(&bm, "bn_normalize_f32")?,
            backward_sums: function(&bm, "bn_backward_sums_f32")?,
            backward_dx: function(&bm, "bn_backward_dx_f32")?,
            avgpool_fwd: function(&bm, "avgpool_fwd_f32")?,
            avgpool_bwd: function(&bm, "avgpool_bwd_f32")?,
        };
        let blas = CudaBlas::new(stream.clone()).map_err(|e| CudaError::call("cuBLAS init", e))?;
        Ok(Arc::new(Self {
            ctx,
            stream,
            name,
            arch,
            state,
            nn,
            conv,
            norm,
            blas,
            error: Mutex::new(None),
        }))
    }

    /// The device's name, e.g. `NVIDIA H100 80GB HBM3`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The architecture the kernels were compiled for, e.g. `sm_90`.
    pub fn arch(&self) -> &str {
        &self.arch
    }

    /// The stream every operation runs on.
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    /// Makes the device's context current on the calling thread (raw cuBLAS calls need it;
    /// cudarc's launches and copies do it themselves). False when it failed (recorded).
    pub(crate) fn bind(&self) -> bool {
        self.record("context bind", self.ctx.bind_to_thread())
            .is_some()
    }

    /// Waits for the queued work and returns the first error recorded since the last check
    /// (clearing it).
    pub fn check(&self) -> Result<(), CudaError> {
        if let Some(e) = self.take_error() {
            return Err(e);
        }
        self.stream
            .synchronize()
            .map_err(|e| CudaError::call("synchronize", e))?;
        match self.take_error() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Takes the recorded error, if any, without synchronising (capture-safe).
    pub(crate) fn take_error(&self) -> Option<CudaError> {
        self.error.lock().map(|mut g| g.take()).unwrap_or(None)
    }

    /// One [`Gemm`] with cuBLAS on the device's stream, in full f32:
    /// `C ← op(A) op(B) + β C` with `α = 1` and `β = 1` when `g.accumulate`, else 0. `a`,
    /// `b`, `c` are the device addresses of `A`, `B`, `C` (the plan's `g.a`, `g.b`, `g.c`
    /// resolved by the caller).
    ///
    /// # Safety
    /// The buffers at `a`, `b` and `c` must hold the matrices `g`'s shapes and leading
    /// dimensions describe (the launch plans guarantee it; tests/cuda_plan*.rs).
    pub(crate) unsafe fn sgemm<B>(
        &self,
        g: &Gemm<B>,
        a: u64,
        b: u64,
        c: u64,
    ) -> Result<(), cudarc::cublas::result::CublasError> {
        use cudarc::cublas::{result as blas, sys::cublasOperation_t as Op};
        let op = |t: bool| if t { Op::CUBLAS_OP_T } else { Op::CUBLAS_OP_N };
        let (alpha, beta) = (1.0f32, if g.accumulate { 1.0f32 } else { 0.0 });
        // SAFETY: the caller's contract; the handle is bound to the device's stream.
        unsafe {
            blas::sgemm(
                *self.blas.handle(),
                op(g.transa),
                op(g.transb),
                g.m as i32,
                g.n as i32,
                g.k as i32,
                &alpha,
                a as *const f32,
                g.lda as i32,
                b as *const f32,
                g.ldb as i32,
                &beta,
                c as *mut f32,
                g.ldc as i32,
            )
        }
    }

    /// True once an error has been recorded (operations are then skipped).
    pub(crate) fn failed(&self) -> bool {
        self.error.lock().map(|g| g.is_some()).unwrap_or(true)
    }

    /// Records the first error of an operation that cannot return it; `None` on error.
    pub(crate) fn record<T, E: std::fmt::Display>(
        &self,
        what: &'static str,
        r: Result<T, E>,
    ) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                if let Ok(mut g) = self.error.lock() {
                    g.get_or_insert(CudaError::call(what, e));
                }
                None
            }
        }
    }
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device")
            .field("name", &self.name)
            .field("arch", &self.arch)
            .finish()
    }
}
