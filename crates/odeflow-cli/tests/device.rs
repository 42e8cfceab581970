//! `--device cpu|cuda`: the CPU default, one-line errors for a binary without the GPU path,
//! for commands that have none yet, and (with the feature, on a machine without a driver)
//! for a missing driver.

mod common;

use std::path::Path;

use common::{fails, ok_json};

const CUDA_BUILT: bool = cfg!(feature = "cuda");

fn has_driver() -> bool {
    ["/dev/nvidiactl", "/proc/driver/nvidia/version"]
        .iter()
        .any(|p| Path::new(p).exists())
}

#[test]
fn bench_on_the_cpu_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let r = ok_json(
        dir.path(),
        "bench pendulum-mlp128-euler2 --iters 1 --warmup 0 --device cpu",
    );
    assert_eq!(r["device"], "cpu");
    assert!(r["gpu"].is_null());
    assert_eq!(r["params"], 17_154);
}

#[test]
fn an_unknown_device_is_a_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    fails(
        dir.path(),
        "bench pendulum-mlp128-euler2 --device gpu",
        2,
        &["gpu", "cpu", "cuda"],
    );
}

#[test]
fn cuda_without_the_feature_says_how_to_build() {
    if CUDA_BUILT {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for cmd in [
        "bench pendulum-mlp128-euler2 --device cuda",
        "solve --system pendulum --device cuda",
    ] {
        fails(dir.path(), cmd, 2, &["--device cuda", "--features cuda"]);
    }
}

#[test]
fn commands_without_a_gpu_path_refuse_cuda() {
    if !CUDA_BUILT {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    fails(
        dir.path(),
        "solve --system pendulum --device cuda",
        2,
        &["`odeflow solve` is not yet on cuda", "--device cpu"],
    );
    fails(
        dir.path(),
        "experiment resnet-memory --out-dir m --device cuda",
        2,
        &["`odeflow experiment resnet-memory` is not yet on cuda"],
    );
    fails(
        dir.path(),
        "check --weights w.safetensors --model mlp --dataset sphere2 --train-method euler \
         --train-steps 2 --out-dir c --device cuda",
        2,
        &[
            "the GPU computes in f32, but --dtype is 'f64'",
            "add --dtype f32",
        ],
    );
    fails(
        dir.path(),
        "bench resnet-memory --device cuda",
        2,
        &["`odeflow bench resnet-memory` is not yet on cuda"],
    );
}

/// `train` (with or without --adapt), `eval` and `check` (of run folders and of --weights),
/// `sweep`, `experiment solver-dependence`, `step-adaptation`, `resnet-distance` and
/// `resnet-depth`, `predict` and every `bench` workload but resnet-memory have a GPU path:
/// without a driver each is the one driver error, before anything is written.
#[test]
fn cuda_without_a_driver_is_one_error() {
    if !CUDA_BUILT || has_driver() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for cmd in [
        "bench pendulum-mlp128-euler2 --device cuda --iters 1",
        "bench mnist-odenet64-euler8 --device cuda --iters 1",
        "train --dataset sphere2 --model mlp --dtype f32 --iterations 2 --out-dir r --device cuda",
        "eval r --device cuda",
        "check r --device cuda",
        "sweep --dataset sphere2 --model mlp --dtype f32 --out-dir r --device cuda",
        "experiment solver-dependence --out-dir r --device cuda",
        "experiment resnet-depth --out-dir r --device cuda",
        "experiment resnet-distance --out-dir r --device cuda",
        "experiment step-adaptation --dtype f32 --out-dir r --device cuda",
        "train --dataset sphere2 --model mlp --dtype f32 --adapt --iterations 2 --out-dir r \
         --device cuda",
        "predict --weights w.safetensors --model mlp-tanh --input x.npy --dtype f32 \
         --out r/y.npy --device cuda",
        "predict --weights w.safetensors --model tiny_resnet --input x.npy --dtype f32 \
         --out r/y.npy --device cuda",
        "predict --weights h.safetensors --model hamiltonian --input y0.npy --method verlet \
         --steps 4 --dtype f32 --out r/y.npy --device cuda",
        "predict --weights w.safetensors --model mlp-tanh --input x.npy --dtype f32 \
         --labels l.npy --grad-out r/g.safetensors --device cuda",
        "eval --weights w.safetensors --model mlp --dataset sphere2 --train-method euler \
         --train-steps 2 --dtype f32 --out-dir r --device cuda",
        "check --weights w.safetensors --model mlp --dataset sphere2 --train-method euler \
         --train-steps 2 --dtype f32 --out-dir r --device cuda",
    ] {
        fails(
            dir.path(),
            cmd,
            1,
            &["no CUDA driver found: ", "libcuda.so", "LD_LIBRARY_PATH"],
        );
    }
    assert!(!dir.path().join("r").exists(), "nothing is written");
}
