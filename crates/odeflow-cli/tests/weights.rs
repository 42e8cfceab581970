//! End-to-end tests of `odeflow export` and `odeflow predict`: PyTorch-named safetensors
//! files out of a run and into a solve, checked against numpy.
//!
//! The cross-framework test runs `tests/crosscheck/numpy_predict.py` with the interpreter
//! named by `ODEFLOW_TEST_PYTHON` (which needs numpy and safetensors; `.ci/test` makes such
//! a virtual environment and sets it). Without it that test prints a skip line and passes.

mod common;

use std::path::Path;

use serde_json::Value;

use common::{fails, ok, ok_json};
use odeflow::data::npy::read_npy_shaped;
use odeflow::models::FlowModel;
use odeflow::runs::model_file::{ModelFile, MODEL_FILE};
use odeflow::weights::TensorFile;
use odeflow::Batch;

const TINY: &str =
    "--dataset sphere2 --train-size 128 --test-size 64 --batch-size 32 --lr 1e-2 --iterations 5 --no-check -q";

fn npy(path: &Path) -> (Vec<usize>, Vec<f64>) {
    let (shape, b) = read_npy_shaped::<f64>(path).unwrap();
    (shape, b.as_slice().to_vec())
}

/// max |a − b| / max |b|.
fn rel_err(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let diff = a
        .iter()
        .zip(b)
        .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()));
    diff / scale
}

#[test]
fn predict_matches_numpy_to_1e_12_for_euler_rk4_and_fixed_grid_dopri5() {
    let Some(python) = std::env::var_os("ODEFLOW_TEST_PYTHON") else {
        eprintln!("skipped: ODEFLOW_TEST_PYTHON is not set (.ci/test sets it to a Python with numpy and safetensors)");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/crosscheck/numpy_predict.py");
    let out = std::process::Command::new(&python)
        .arg(&script)
        .arg(d)
        .output()
        .expect("the Python of ODEFLOW_TEST_PYTHON runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cases: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(d.join("cases.json")).unwrap()).unwrap();
    assert_eq!(cases.len(), 15);
    let mut methods = std::collections::BTreeSet::new();
    let mut models = std::collections::BTreeMap::new();
    for c in &cases {
        let s = |k: &str| c[k].as_str().unwrap().to_string();
        let mut cmd = format!(
            "predict --weights {} --model {} --input {} --dtype f64 --out got.npy",
            s("weights"),
            s("model"),
            s("input"),
        );
        // The ResNet models have no solver flags: their depth fixes the solve.
        if c.get("method").is_some() {
            cmd.push_str(&format!(
                " --method {} --steps {} --t0 {} --t1 {}",
                s("method"),
                c["steps"],
                c["t0"],
                c["t1"]
            ));
            methods.insert(s("method"));
        }
        let r = ok_json(d, &cmd);
        let (got_shape, got) = npy(&d.join("got.npy"));
        let (want_shape, want) = npy(&d.join(s("expected")));
        assert_eq!(got_shape, want_shape, "{cmd}");
        let err = rel_err(&got, &want);
        assert!(err <= 1e-12, "{cmd}: relative error {err:e}");
        eprintln!("{}: relative error {err:e}", s("expected"));
        let worst = models.entry(s("model")).or_insert(0.0f64);
        *worst = worst.max(err);
        assert_eq!(r["dtype"], "f64");
    }
    assert_eq!(methods.len(), 4);
    assert_eq!(models.len(), 5, "{models:?}");
    eprintln!("worst relative error per model: {models:?}");
}

#[test]
fn an_exported_run_predicts_its_own_logits_bit_for_bit() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    ok(
        d,
        &format!("train {TINY} --method midpoint --steps 3 --augment 1 --out-dir r"),
    );
    let r = ok_json(d, "export r --out w/model.safetensors");
    assert_eq!(r["model"], "simple_odenet");
    assert_eq!(r["dtype"], "f32");
    let keys: Vec<&str> = r["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        keys,
        [
            "field.0.bias",
            "field.0.weight",
            "field.2.bias",
            "field.2.weight",
            "field.4.bias",
            "field.4.weight",
            "head.bias",
            "head.weight"
        ]
    );
    // ANODE: the state has 2 channels, so the first convolution reads 2.
    let file = TensorFile::read(d.join("w/model.safetensors")).unwrap();
    assert_eq!(file.tensors["field.0.weight"].shape, vec![32, 2, 1]);
    assert_eq!(file.tensors["head.weight"].shape, vec![2, 4]);
    assert_eq!(file.metadata["train_solver"], "midpoint-3");

    // The model's logits with its training solver, computed by the library from model.json.
    let m = ModelFile::load(&d.join("r").join(MODEL_FILE)).unwrap();
    let mut model = m.build::<f32>().unwrap();
    let x: Vec<f32> = (0..12).map(|i| (i as f32 - 5.5) / 3.0).collect();
    let xb = Batch::from_vec(6, 2, x.clone()).unwrap();
    let (want, _) = model
        .outputs(&xb, &m.train.method().unwrap(), &m.train.options())
        .unwrap();
    let bytes = odeflow::data::npy::npy_bytes(&xb);
    std::fs::write(d.join("x.npy"), bytes).unwrap();
    let p = ok_json(
        d,
        "predict --weights w/model.safetensors --model simple_odenet --input x.npy --method midpoint --steps 3 --dtype f32 --out y.npy",
    );
    assert_eq!(p["outputs"], "logits");
    assert_eq!(p["output_shape"], serde_json::json!([6, 2]));
    let (shape, got) = read_npy_shaped::<f32>(d.join("y.npy")).unwrap();
    assert_eq!(shape, vec![6, 2]);
    assert_eq!(got.as_slice(), want.as_slice());

    // The loss and its gradient under the weights' keys.
    let labels = Batch::from_vec(6, 1, vec![0.0f64, 1.0, 1.0, 0.0, 1.0, 0.0]).unwrap();
    std::fs::write(d.join("l.npy"), odeflow::data::npy::npy_bytes(&labels)).unwrap();
    let g = ok_json(
        d,
        "predict --weights w/model.safetensors --model simple_odenet --input x.npy --method midpoint --steps 3 --out y.npy --labels l.npy --grad-out g.safetensors",
    );
    assert!(g["loss"].as_f64().unwrap() > 0.0);
    let grads = TensorFile::read(d.join("g.safetensors")).unwrap();
    let shapes = |f: &TensorFile| -> Vec<(String, Vec<usize>)> {
        f.tensors
            .iter()
            .map(|(k, t)| (k.clone(), t.shape.clone()))
            .collect()
    };
    assert_eq!(shapes(&grads), shapes(&file));
    assert!(grads.tensors["head.weight"].data.iter().any(|v| *v != 0.0));
    let bad = Batch::from_vec(6, 1, vec![0.0f64, 1.0, 2.0, 0.0, 1.0, 0.0]).unwrap();
    std::fs::write(d.join("bad.npy"), odeflow::data::npy::npy_bytes(&bad)).unwrap();
    fails(
        d,
        "predict --weights w/model.safetensors --model simple_odenet --input x.npy --method midpoint --steps 3 --out y.npy --labels bad.npy --grad-out g.safetensors",
        2,
        &["'bad.npy' holds the label 2", "0 to 1"],
    );
}

#[test]
fn bad_weights_models_inputs_and_flags_fail_in_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    ok(
        d,
        &format!("train {TINY} --method euler --steps 2 --out-dir r"),
    );
    ok(d, "export r --out m.safetensors -q");
    let x = Batch::from_vec(2, 2, vec![0.1f64, 0.2, 0.3, 0.4]).unwrap();
    std::fs::write(d.join("x.npy"), odeflow::data::npy::npy_bytes(&x)).unwrap();
    let base = "predict --weights m.safetensors --input x.npy --method rk4";
    fails(
        d,
        &format!("{base} --model simple_odenet --steps 4"),
        2,
        &["--out"],
    );
    fails(
        d,
        &format!("{base} --model simple_odenet --out y.npy"),
        2,
        &["--steps N, --step-size H or --tol T"],
    );
    fails(
        d,
        &format!("{base} --model resnet50 --steps 4 --out y.npy"),
        2,
        &["unknown model 'resnet50'", "simple_odenet"],
    );
    fails(
        d,
        &format!("{base} --model mlp-tanh --steps 4 --out y.npy"),
        2,
        &["'field.0.weight' has shape [32, 1, 1]", "Linear weight"],
    );
    fails(
        d,
        &format!("{base} --model simple_odenet --steps 4 --dtype f16 --out y.npy"),
        2,
        &["'f16'"],
    );
    fails(
        d,
        &format!("{base} --model simple_odenet --steps 4 --t0 1 --out y.npy"),
        2,
        &["--t0 1 equals --t1 1"],
    );
    fails(d, "predict --weights nothere.safetensors --model odenet --input x.npy --method rk4 --steps 2 --out y.npy", 2, &["nothere.safetensors"]);
    fails(
        d,
        "predict --weights x.npy --model odenet --input x.npy --method rk4 --steps 2 --out y.npy",
        2,
        &["'x.npy' is not a safetensors file"],
    );
    // A file whose tensor does not fit: the first bad key and both shapes.
    let mut f = TensorFile::read(d.join("m.safetensors")).unwrap();
    let t = f.tensors.get_mut("field.2.weight").unwrap();
    t.shape = vec![32, 16, 6];
    f.save(d.join("bad.safetensors")).unwrap();
    fails(
        d,
        "predict --weights bad.safetensors --model simple_odenet --input x.npy --method rk4 --steps 2 --out y.npy",
        2,
        &["'field.2.weight' has shape [32, 16, 6]", "needs [32, 32, 3]", "bad.safetensors"],
    );
    // Steps over the budget are refused before any work.
    fails(
        d,
        &format!("{base} --model simple_odenet --steps 100000000 --out y.npy"),
        2,
        &["--steps"],
    );
    assert!(!d.join("y.npy").exists());
    fails(d, "export r", 2, &["--out"]);
    fails(d, "export nowhere --out m2.safetensors", 2, &["nowhere"]);
}

#[test]
fn check_and_eval_of_exported_weights_match_the_run_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    ok(
        d,
        &format!("train {TINY} --method euler --steps 2 --out-dir r"),
    );
    ok(d, "export r --out m.safetensors -q");
    let ext = "--weights m.safetensors --model simple_odenet --dataset sphere2 --test-size 64 --train-method euler --train-steps 2 --dtype f32";
    let from_run = ok_json(d, "check r --exit-zero");
    let from_file = ok_json(d, &format!("check {ext} --out-dir c --exit-zero"));
    assert_eq!(from_file["results"], from_run["results"]);
    assert_eq!(from_file["valid"], from_run["valid"]);
    assert_eq!(
        from_file["model"], from_run["model"],
        "same parameters, same fingerprint"
    );
    assert!(d.join("c/check.json").is_file() && d.join("c/check.png").is_file());
    let e = ok_json(
        d,
        &format!("eval {ext} --out-dir e --methods rk4 --steps 1,8"),
    );
    assert_eq!(e["train"]["accuracy"], from_run["train_accuracy"]);
    assert_eq!(e["results"].as_array().unwrap().len(), 2);
    for f in ["eval.json", "eval.csv", "eval.png"] {
        assert!(d.join("e").join(f).is_file(), "{f}");
    }
    // Bad combinations: one line, exit 2.
    fails(
        d,
        "check r --weights m.safetensors",
        2,
        &["cannot be used with"],
    );
    fails(d, "check --weights m.safetensors --model simple_odenet --dataset sphere2 --train-method euler --out-dir c", 2, &["--train-steps N, --train-step-size H or --train-tol T"]);
    fails(d, "check --weights m.safetensors --model simple_odenet --dataset sphere3 --train-method euler --train-steps 2 --out-dir c", 2, &["'head.weight' has shape [2, 2]", "needs [2, 3]"]);
    fails(d, "eval", 2, &["RUN"]);
}

#[test]
fn zoo_models_predict_what_the_library_computes_bit_for_bit() {
    use odeflow::models::hamiltonian::SeparableHamiltonian;
    use odeflow::models::tiny_resnet::{TinyResNet, TinyResNetConfig};
    use odeflow::nn::Shape;
    use odeflow::weights::{export_hamiltonian, export_tiny_resnet, FileDtype};

    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // The Hamiltonian network with Störmer–Verlet: the library's split solve.
    let mut h = SeparableHamiltonian::<f64>::new(4, 6, 2).unwrap();
    export_hamiltonian(&h, FileDtype::F64)
        .save(d.join("h.safetensors"))
        .unwrap();
    let y0 = Batch::from_vec(3, 4, (0..12).map(|i| (i as f64 - 6.0) / 5.0).collect()).unwrap();
    std::fs::write(d.join("y0.npy"), odeflow::data::npy::npy_bytes(&y0)).unwrap();
    let spec = odeflow::solve::SolverSpec::fixed("verlet", 7).unwrap();
    let want = odeflow::solve::solve_split(
        &spec.method().unwrap(),
        &mut h,
        &y0,
        &spec.options_on(0.0, 2.0),
    )
    .unwrap()
    .y_final;
    let r = ok_json(
        d,
        "predict --weights h.safetensors --model hamiltonian --input y0.npy --method verlet --steps 7 --t1 2 --out y1.npy",
    );
    assert_eq!(r["outputs"], "final states");
    assert_eq!(r["model"], "hamiltonian");
    let (shape, got) = npy(&d.join("y1.npy"));
    assert_eq!(shape, vec![3, 4]);
    assert_eq!(got, want.as_slice());

    // TinyResNet: logits in evaluation mode, no solver flags.
    let cfg = TinyResNetConfig {
        channels: 2,
        depth: 3,
        classes: 3,
        ..TinyResNetConfig::default()
    };
    let mut m = TinyResNet::<f32>::new(Shape::image(1, 14, 14), cfg).unwrap();
    export_tiny_resnet(&m, FileDtype::F32)
        .save(d.join("t.safetensors"))
        .unwrap();
    let x = Batch::from_vec(
        2,
        196,
        (0..392).map(|i| (i % 13) as f32 / 6.0 - 1.0).collect(),
    )
    .unwrap();
    let want = m.logits(&x).unwrap();
    let bytes = odeflow::data::npy::npy_bytes_shaped(&[2, 1, 14, 14], &x);
    std::fs::write(d.join("x.npy"), bytes).unwrap();
    let r = ok_json(
        d,
        "predict --weights t.safetensors --model tiny_resnet --input x.npy --dtype f32 --out l.npy",
    );
    assert_eq!(r["outputs"], "logits");
    assert_eq!(r["solver"]["method"], "euler");
    assert_eq!(r["steps"], 3);
    let (shape, got) = read_npy_shaped::<f32>(d.join("l.npy")).unwrap();
    assert_eq!(shape, vec![2, 3]);
    assert_eq!(got.as_slice(), want.as_slice());

    // Refusals: one line, exit 2.
    fails(
        d,
        "predict --weights t.safetensors --model tiny_resnet --input x.npy --method rk4 --steps 2 --out l.npy",
        2,
        &["--method does not apply to the tiny_resnet model"],
    );
    fails(
        d,
        "predict --weights t.safetensors --model tiny_resnet --input y0.npy --out l.npy",
        2,
        &["'y0.npy' has shape [3, 4]", "(N, C, H, W)"],
    );
    fails(
        d,
        "predict --weights t.safetensors --model resnet --input x.npy --out l.npy",
        2,
        &["t.safetensors", "reads 2 channels", "[1, 14, 14]"],
    );
    fails(
        d,
        "predict --weights h.safetensors --model hamiltonian --input x.npy --method rk4 --steps 2 --out l.npy",
        2,
        &["takes states (p, q) of 4 values"],
    );
    fails(
        d,
        "predict --weights h.safetensors --model hamiltonian --input y0.npy --out l.npy",
        2,
        &["--method NAME"],
    );
    fails(
        d,
        "predict --weights t.safetensors --model hamiltonian --input y0.npy --method rk4 --steps 2 --out l.npy",
        2,
        &["no tensor 'field.kinetic.0.weight'"],
    );
}
