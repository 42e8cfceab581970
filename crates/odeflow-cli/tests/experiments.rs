//! End-to-end tests of `odeflow experiment` (Sander et al.'s ResNet experiments) on tiny
//! budgets: JSON summaries on stdout, result files and plots in --out-dir, one-line errors.

use std::path::Path;

mod common;

use common::{fails, odeflow, ok_json};
use serde_json::Value;

/// Every file the summary lists exists; PNGs are PNGs.
fn files_exist(summary: &Value, dir: &Path, want: &[&str]) {
    let files: Vec<String> = summary["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap().to_string())
        .collect();
    for w in want {
        assert!(files.iter().any(|f| f.ends_with(w)), "{w} not in {files:?}");
    }
    for f in &files {
        let bytes = std::fs::read(dir.join(f)).unwrap();
        if f.ends_with(".png") {
            assert_eq!(&bytes[1..4], b"PNG", "{f}");
        }
        assert!(!bytes.is_empty(), "{f}");
    }
}

#[test]
fn list_names_every_experiment() {
    let dir = tempfile::tempdir().unwrap();
    let out = odeflow(dir.path(), "experiment --list");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for name in [
        "resnet-reconstruction",
        "resnet-gradients",
        "resnet-distance",
        "linear-resnet",
        "resnet-memory",
        "resnet-depth",
    ] {
        assert!(text.contains(name), "{name} missing:\n{text}");
    }
    fails(dir.path(), "experiment", 2, &["--list"]);
}

#[test]
fn reconstruction_and_gradients_report_slopes_and_files() {
    let dir = tempfile::tempdir().unwrap();
    let s = ok_json(
        dir.path(),
        "-q experiment resnet-reconstruction --depths 8,16,32,64 --dim 4 --batch 4 --out-dir rec",
    );
    files_exist(
        &s,
        dir.path(),
        &["result.json", "reconstruction.csv", "reconstruction.png"],
    );
    let slopes = s["slopes"].as_array().unwrap();
    assert_eq!(slopes.len(), 6);
    let euler = slopes
        .iter()
        .find(|c| c["scheme"] == "euler" && c["profile"] == "smooth")
        .unwrap();
    assert!(
        (euler["slope"].as_f64().unwrap() + 1.0).abs() < 0.2,
        "{euler}"
    );
    let csv = std::fs::read_to_string(dir.path().join("rec/reconstruction.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 6 * 4);

    let s = ok_json(
        dir.path(),
        "-q experiment resnet-gradients --depths 8,16,32 --schemes heun --profiles smooth --dim 3 --hidden 4 --batch 4 --out-dir grad",
    );
    files_exist(
        &s,
        dir.path(),
        &["gradients.csv", "gradients.png", "gradients_per_layer.png"],
    );
    let c = &s["slopes"][0];
    let (e, m) = (
        c["slope_rel_err"].as_f64().unwrap(),
        c["slope_rel_mse"].as_f64().unwrap(),
    );
    assert!(e < -2.5 && (m - 2.0 * e).abs() < 1e-9, "{c}");
    let csv = std::fs::read_to_string(dir.path().join("grad/gradients.csv")).unwrap();
    assert!(csv.contains("heun,smooth,8,input,") && csv.contains(",0.weight,"));

    fails(
        dir.path(),
        "experiment resnet-gradients --depths 1,2 --out-dir g",
        2,
        &["depth = 1"],
    );
    fails(
        dir.path(),
        "experiment resnet-reconstruction --schemes rk4",
        2,
        &["rk4"],
    );
}

#[test]
fn linear_resnet_smoothness_is_bounded_in_depth() {
    let dir = tempfile::tempdir().unwrap();
    let s = ok_json(
        dir.path(),
        "-q experiment linear-resnet --depths 25,50 --snapshots 0,5 --out-dir lin",
    );
    files_exist(
        &s,
        dir.path(),
        &[
            "linear_weights.png",
            "linear_smoothness.png",
            "linear_weights.csv",
        ],
    );
    let runs = s["runs"].as_array().unwrap();
    let m: Vec<f64> = runs
        .iter()
        .map(|r| r["smoothness_max"].as_f64().unwrap())
        .collect();
    assert!(runs.iter().all(|r| r["converged"] == true));
    assert!(m[1] < 1.5 * m[0], "{m:?}");
    fails(
        dir.path(),
        "experiment linear-resnet --depths 25 --plot-depth 30",
        2,
        &["--plot-depth 30"],
    );
}

#[test]
fn memory_runs_each_depth_in_a_child_process() {
    let dir = tempfile::tempdir().unwrap();
    let s = ok_json(
        dir.path(),
        "-q experiment resnet-memory --depths 2,12,22 --out-dir mem",
    );
    files_exist(&s, dir.path(), &["memory.csv", "memory.png"]);
    let fits = s["fits"].as_array().unwrap();
    let slope = |g: &str| {
        fits.iter().find(|f| f["grad"] == g).unwrap()["mib_per_layer"]
            .as_f64()
            .unwrap()
    };
    // About one 0.95 MiB activation per layer for backprop; flat for reversible (the same
    // residual function at every depth). Depth 1 is left out and the depths are spread over
    // 20 layers: the allocator's first-iteration layout (e.g. gemm's packing buffers) shifts
    // the peak by 1–2 MiB, which over a short range would read as a per-layer slope.
    let (bp, rev) = (slope("backprop"), slope("reversible"));
    assert!(bp > 0.7 && bp < 1.3, "{fits:?}");
    assert!(rev.abs() < 0.2, "{fits:?}");
    let child = ok_json(
        dir.path(),
        "experiment resnet-memory --child --depth 2 --grad reversible",
    );
    assert_eq!(child["workload"]["tapes_peak"], 1);
    assert!(child["vm_hwm_bytes"].as_u64().unwrap() > 1 << 20);
    fails(
        dir.path(),
        "experiment resnet-memory --depths 0,1",
        2,
        &["--depths"],
    );
}

#[test]
fn depth_and_distance_train_tiny_resnets_on_mnist() {
    let Some(mnist) = std::env::var_os("ODEFLOW_TEST_MNIST") else {
        eprintln!("skipping: ODEFLOW_TEST_MNIST is not set");
        return;
    };
    let mnist = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(mnist);
    let dir = tempfile::tempdir().unwrap();
    let data = format!(
        "--data-dir {} --train-limit 200 --test-limit 50 --iterations 3 --batch-size 16 --channels 4",
        mnist.display()
    );
    let s = ok_json(
        dir.path(),
        &format!("-q experiment resnet-depth --depths 2,3 --schemes euler --min-reversible-depth 3 {data} --out-dir depth"),
    );
    files_exist(&s, dir.path(), &["depth.csv", "depth.png"]);
    assert_eq!(
        (s["train_size"].as_u64(), s["test_size"].as_u64()),
        (Some(200), Some(50))
    );
    let runs = s["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 4);
    let fallback = runs
        .iter()
        .find(|r| r["depth"] == 2 && r["grad"] == "reversible")
        .unwrap();
    assert_eq!(fallback["effective_grad"], "backprop");

    let s = ok_json(
        dir.path(),
        &format!(
            "-q experiment resnet-distance --depths 2 --every 2 --probe 8 {data} --out-dir dist"
        ),
    );
    files_exist(&s, dir.path(), &["distance.csv", "distance.png"]);
    let runs = s["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    let constant = runs.iter().find(|r| r["init"] == "constant").unwrap();
    assert!(
        constant["smoothness_max"].as_f64().unwrap() < 1e-2,
        "{constant}"
    );

    fails(
        dir.path(),
        "experiment resnet-depth --dataset cifar10",
        2,
        &["--data-dir"],
    );
    fails(
        dir.path(),
        "experiment resnet-distance --data-dir no/such/folder",
        2,
        &["no/such/folder"],
    );
}
