//! The GPU path tested without a GPU (feature `cuda`):
//!
//! * the kernel sources compile with NVRTC to SASS for the lent GPUs' architectures (NVRTC
//!   from `ODEFLOW_TEST_NVRTC`, the path of a `libnvrtc.so*`, which `.ci/test` installs from
//!   the `nvidia-cuda-nvrtc` wheel; or one on the loader's path; skipped with a message
//!   naming what is missing otherwise);
//! * the kernels' arithmetic: the same `.cu` sources compiled as host C++ with
//!   `kernels/host_shim.h` (the C++ compiler from `CXX`, default `c++`) and run on an
//!   emulated grid, against the CPU `Batch` state, activations, MSE and Adam;
//! * opening a device on a machine without a driver is one error, not a panic.
//!
//! The kernels of a classifier's training iteration (cross-entropy, the graph-safe Adam,
//! padding) are tested in `cuda_kernels/train.rs`, those of the convolutional fields (im2col,
//! col2im, NCHW bias and its gradient, the layout swap) in `cuda_kernels/conv.rs`, batch
//! normalisation and average pooling (`kernels/norm.cu`) in `cuda_kernels/norm.rs`.

#[path = "cuda_kernels/conv.rs"]
mod conv;
#[path = "cuda_kernels/norm.rs"]
mod norm;
#[path = "cuda_kernels/train.rs"]
mod train;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use libloading::{Library, Symbol};
use odeflow::cuda::{compile_all_kernels, CudaError, Device};
use odeflow::nn::loss::mse;
use odeflow::nn::Activation;
use odeflow::{Batch, State};

pub(crate) fn manifest() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Loads NVRTC from `ODEFLOW_TEST_NVRTC` once for the process (never unloaded), so that
/// cudarc's lookup by name (`libnvrtc.so.13`) finds the already loaded library.
fn preload_nvrtc() {
    static NVRTC: OnceLock<Option<Library>> = OnceLock::new();
    NVRTC.get_or_init(|| {
        let path = std::env::var_os("ODEFLOW_TEST_NVRTC")?;
        // SAFETY: loading NVRTC runs no initialisers with preconditions.
        match unsafe { Library::new(&path) } {
            Ok(lib) => Some(lib),
            Err(e) => panic!("ODEFLOW_TEST_NVRTC={path:?} does not load: {e}"),
        }
    });
}

#[test]
fn every_kernel_source_compiles_with_nvrtc() {
    preload_nvrtc();
    // sm_90: H100 and H200 (the lent machines); sm_80: A100.
    for arch in ["sm_90", "sm_80"] {
        match compile_all_kernels(arch) {
            Ok(sizes) => {
                for (name, bytes) in sizes {
                    assert!(bytes > 1000, "{name} for {arch}: a {bytes}-byte cubin");
                }
            }
            Err(CudaError::NoLibrary { lib, hint }) => {
                eprintln!(
                    "skipped: {lib} not found ({hint}); set ODEFLOW_TEST_NVRTC to a libnvrtc.so \
                     (.ci/test installs the nvidia-cuda-nvrtc wheel)"
                );
                assert!(
                    std::env::var_os("ODEFLOW_TEST_NVRTC").is_none(),
                    "ODEFLOW_TEST_NVRTC is set but NVRTC was not found"
                );
                return;
            }
            Err(e) => panic!("{e}"),
        }
    }
}

#[test]
fn a_broken_kernel_source_is_a_compile_error_with_the_log() {
    preload_nvrtc();
    let src = "extern \"C\" __global__ void k(float* x) { x[0] = undefined_name; }";
    match odeflow::cuda::compile_source("broken.cu", src, "sm_90", true) {
        Err(CudaError::Compile { log, .. }) => assert!(log.contains("undefined_name"), "{log}"),
        Err(CudaError::NoLibrary { hint, .. }) => {
            assert!(
                std::env::var_os("ODEFLOW_TEST_NVRTC").is_none(),
                "ODEFLOW_TEST_NVRTC is set but NVRTC was not found: {hint}"
            );
            eprintln!("skipped: NVRTC not found ({hint})");
        }
        other => panic!("expected a compile error, got {other:?}"),
    }
}

#[test]
fn opening_a_device_without_a_driver_is_one_error() {
    let has_driver = ["/dev/nvidiactl", "/proc/driver/nvidia/version"]
        .iter()
        .any(|p| Path::new(p).exists());
    match Device::open(0) {
        Ok(dev) => assert!(has_driver, "opened {dev:?} on a machine without a driver"),
        Err(e) => {
            let msg = e.to_string();
            assert!(!msg.contains('\n'), "one line: {msg}");
            if !has_driver {
                assert!(msg.starts_with("no CUDA driver found: "), "{msg}");
                assert!(msg.contains("libcuda.so"), "{msg}");
            }
        }
    }
}

/// The kernels compiled as host C++ into a shared library.
pub(crate) struct HostKernels {
    lib: Library,
    _dir: tempfile::TempDir,
}

pub(crate) fn host_kernels() -> Option<HostKernels> {
    host_library("host_driver.cpp", &[])
}

/// The driver `tests/cuda_kernels/{driver}` (which includes kernel sources) compiled as host
/// C++ with the extra compiler flags `extra` into a shared library.
pub(crate) fn host_library(driver: &str, extra: &[&str]) -> Option<HostKernels> {
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "c++".into());
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("libodeflow_kernels_host.so");
    let status = Command::new(&cxx)
        .args(["-O1", "-std=c++17", "-shared", "-fPIC", "-Wall", "-Werror"])
        .arg("-Wno-unknown-pragmas")
        .args(extra)
        .arg("-I")
        .arg(manifest().join("src/cuda/kernels"))
        .arg(manifest().join("tests/cuda_kernels").join(driver))
        .arg("-o")
        .arg(&out)
        .status();
    match status {
        Err(e) => {
            eprintln!("skipped: no C++ compiler `{cxx}` ({e}); set CXX");
            None
        }
        Ok(s) => {
            assert!(
                s.success(),
                "the kernels of {driver} do not compile as host C++ with {cxx}"
            );
            // SAFETY: our own library, no initialisers.
            let lib = unsafe { Library::new(&out) }.expect("load the host kernels");
            Some(HostKernels { lib, _dir: dir })
        }
    }
}

impl HostKernels {
    pub(crate) fn sym<T>(&self, name: &[u8]) -> Symbol<'_, T> {
        // SAFETY: the types below match host_driver.cpp.
        unsafe { self.lib.get(name) }.expect("symbol")
    }
}

type Lincomb =
    unsafe extern "C" fn(i64, *mut f32, *const f32, *const *const f32, *const f32, i32, i32, i32);
type Scale = unsafe extern "C" fn(i64, *mut f32, f32, i32, i32);
type Axpy = unsafe extern "C" fn(i64, *mut f32, f32, *const f32, i32, i32);
type Wsq = unsafe extern "C" fn(i64, *const f32, *const f32, *const f32, f32, f32, i32, i32) -> f64;
type Dot = unsafe extern "C" fn(i64, *const f32, *const f32, i32, i32) -> f64;
type FirstNonFinite = unsafe extern "C" fn(i64, *const f32, i32, i32) -> u64;
type BiasAct = unsafe extern "C" fn(i64, i32, *mut f32, *const f32, i32, i32, i32);
type ActGrad = unsafe extern "C" fn(i64, *mut f32, *const f32, i32, i32, i32);
type Mse = unsafe extern "C" fn(i64, *const f32, *const f32, *mut f32, i32, i32) -> f64;
/// Launch shapes: one component per thread, and grid-stride loops over several passes.
pub(crate) const GRIDS: [(i32, i32); 3] = [(4, 256), (3, 64), (1, 1)];

pub(crate) fn data(n: usize, seed: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (((i * 7919 + seed * 104_729) % 2003) as f32 / 1001.0 - 1.0) * 1.7)
        .collect()
}

pub(crate) fn assert_close(got: &[f32], want: &[f32], tol: f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol * (1.0 + w.abs()),
            "{what}[{i}]: {g} vs {w}"
        );
    }
}

#[test]
fn state_kernels_match_the_cpu_batch() {
    let Some(k) = host_kernels() else { return };
    let n = 1000;
    let batch = |seed| Batch::from_vec(250, 4, data(n, seed)).expect("sized");
    let base = batch(1);
    let terms: Vec<Batch<f32>> = (2..9).map(batch).collect();
    // dopri5's fifth-order weights times h = 0.1, one of them zero.
    let coeffs: Vec<f32> = [
        35.0 / 384.0,
        0.0,
        500.0 / 1113.0,
        125.0 / 192.0,
        -2187.0 / 6784.0,
        11.0 / 84.0,
        0.0,
    ]
    .iter()
    .map(|c| (0.1 * c) as f32)
    .collect();
    let mut want = base.zeros_like();
    want.assign_lincomb(&base, &coeffs, &terms);
    let lincomb: Symbol<Lincomb> = k.sym(b"host_lincomb");
    for (grid, block) in GRIDS {
        let nz: Vec<(usize, f32)> = coeffs
            .iter()
            .copied()
            .enumerate()
            .filter(|c| c.1 != 0.0)
            .collect();
        let ptrs: Vec<*const f32> = nz
            .iter()
            .map(|&(j, _)| terms[j].as_slice().as_ptr())
            .collect();
        let cs: Vec<f32> = nz.iter().map(|c| c.1).collect();
        let mut out = vec![f32::NAN; n];
        // SAFETY: buffers of n components; the pointer and coefficient arrays of nterms.
        unsafe {
            lincomb(
                n as i64,
                out.as_mut_ptr(),
                base.as_slice().as_ptr(),
                ptrs.as_ptr(),
                cs.as_ptr(),
                nz.len() as i32,
                grid,
                block,
            )
        };
        assert_close(&out, want.as_slice(), 1e-6, "lincomb");
    }

    let scale: Symbol<Scale> = k.sym(b"host_scale");
    let axpy: Symbol<Axpy> = k.sym(b"host_axpy");
    let wsq: Symbol<Wsq> = k.sym(b"host_weighted_sq_sum");
    let dot: Symbol<Dot> = k.sym(b"host_dot");
    let (x, y) = (batch(11), batch(12));
    let mut want = y.clone();
    want.scale(-0.75);
    want.axpy(0.3, &x);
    let (ws, wn) = Batch::weighted_sq_sum(&x, &y, &base, 1e-3, 1e-2);
    assert_eq!(wn, n);
    let wdot = x.dot(&y);
    for (grid, block) in GRIDS {
        let mut out = y.as_slice().to_vec();
        // SAFETY: buffers of n components.
        let (s, d) = unsafe {
            scale(n as i64, out.as_mut_ptr(), -0.75, grid, block);
            axpy(
                n as i64,
                out.as_mut_ptr(),
                0.3,
                x.as_slice().as_ptr(),
                grid,
                block,
            );
            (
                wsq(
                    n as i64,
                    x.as_slice().as_ptr(),
                    y.as_slice().as_ptr(),
                    base.as_slice().as_ptr(),
                    1e-3,
                    1e-2,
                    grid,
                    block,
                ),
                dot(
                    n as i64,
                    x.as_slice().as_ptr(),
                    y.as_slice().as_ptr(),
                    grid,
                    block,
                ),
            )
        };
        assert_close(&out, want.as_slice(), 1e-7, "scale + axpy");
        assert!((s - ws).abs() <= 1e-12 * ws, "weighted sum {s} vs {ws}");
        assert!(
            (d - wdot).abs() <= 1e-12 * wdot.abs().max(1.0),
            "dot {d} vs {wdot}"
        );
    }

    let first: Symbol<FirstNonFinite> = k.sym(b"host_first_non_finite");
    let mut z = x.clone();
    // SAFETY (below): buffers of n components.
    for (grid, block) in GRIDS {
        assert_eq!(
            unsafe { first(n as i64, z.as_slice().as_ptr(), grid, block) },
            n as u64
        );
    }
    z.as_mut_slice()[901] = f32::INFINITY;
    z.as_mut_slice()[777] = f32::NAN;
    assert_eq!(z.first_non_finite().map(|p| p.0), Some(777));
    for (grid, block) in GRIDS {
        assert_eq!(
            unsafe { first(n as i64, z.as_slice().as_ptr(), grid, block) },
            777
        );
    }
}

#[test]
fn nn_kernels_match_the_cpu_layers_and_loss() {
    let Some(k) = host_kernels() else { return };
    let (rows, cols) = (37, 13);
    let n = rows * cols;
    let z = data(n, 3);
    let b = data(cols, 4);
    let bias_act: Symbol<BiasAct> = k.sym(b"host_bias_act");
    let act_grad: Symbol<ActGrad> = k.sym(b"host_act_grad");
    let g_in = data(n, 5);
    for (act, code) in [(Activation::Tanh, 1), (Activation::Relu, 2)] {
        let pre: Vec<f32> = (0..n).map(|i| z[i] + b[i % cols]).collect();
        let mut want = vec![0.0; n];
        act.forward(&pre, &mut want);
        let mut want_g = vec![0.0; n];
        act.backward(&pre, &want, &g_in, &mut want_g);
        for (grid, block) in GRIDS {
            let mut y = z.clone();
            let mut g = g_in.clone();
            // SAFETY: rows × cols buffers, a bias of cols.
            unsafe {
                bias_act(
                    rows as i64,
                    cols as i32,
                    y.as_mut_ptr(),
                    b.as_ptr(),
                    code,
                    grid,
                    block,
                );
                act_grad(n as i64, g.as_mut_ptr(), y.as_ptr(), code, grid, block);
            }
            assert_close(&y, &want, 2e-6, "bias + activation");
            assert_close(&g, &want_g, 2e-5, "activation VJP");
        }
    }
    // Identity (the last layer): bias only.
    let mut y = z.clone();
    // SAFETY: as above.
    unsafe {
        bias_act(
            rows as i64,
            cols as i32,
            y.as_mut_ptr(),
            b.as_ptr(),
            0,
            2,
            32,
        )
    };
    let want: Vec<f32> = (0..n).map(|i| z[i] + b[i % cols]).collect();
    assert_close(&y, &want, 0.0, "bias");

    let mse_k: Symbol<Mse> = k.sym(b"host_mse");
    let pred = Batch::from_vec(rows, cols, data(n, 6)).expect("sized");
    let target = Batch::from_vec(rows, cols, data(n, 7)).expect("sized");
    let mut want_g = Batch::zeros(0, 0);
    let want_loss = mse(&pred, &target, &mut want_g).expect("shapes");
    for (grid, block) in GRIDS {
        let mut g = vec![0.0f32; n];
        // SAFETY: buffers of n components.
        let loss = unsafe {
            mse_k(
                n as i64,
                pred.as_slice().as_ptr(),
                target.as_slice().as_ptr(),
                g.as_mut_ptr(),
                grid,
                block,
            )
        };
        assert!(
            (loss - want_loss).abs() <= 1e-12 * want_loss,
            "{loss} vs {want_loss}"
        );
        assert_close(&g, want_g.as_slice(), 0.0, "MSE gradient");
    }
}
