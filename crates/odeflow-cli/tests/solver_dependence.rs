//! End-to-end tests of the solver-dependence commands (train, eval, check, sweep, merge,
//! critical-step, experiment) on tiny budgets: files written, exact resumption, JSON keys,
//! exit codes, and one-line errors for bad input.

use std::path::{Path, PathBuf};

mod common;

use common::{json_file, odeflow, ok, one_line_failure, stderr, stdout, stdout_json};
use serde_json::Value;

/// A tiny sphere2 run: 256 training and 128 test points, batches of 32.
const TINY: &str = "--dataset sphere2 --train-size 256 --test-size 128 --batch-size 32 --lr 1e-2 --checkpoint-every 5";

/// The metrics log without the wall-time field.
fn metrics(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).unwrap();
            v.as_object_mut().unwrap().remove("ms");
            v
        })
        .collect()
}

fn check_resume(extra: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let base = format!("train {TINY} --method euler {extra} --no-check -q");
    ok(d, &format!("{base} --iterations 40 --out-dir full"));
    // Interrupted run: 20 iterations, then 5 more whose checkpoint is lost (the process is
    // killed between two checkpoints), then resumed to 40.
    ok(d, &format!("{base} --iterations 20 --out-dir part"));
    let ck20 = std::fs::read(d.join("part/checkpoint.safetensors")).unwrap();
    ok(
        d,
        "train --out-dir part --resume --iterations 25 --no-check -q",
    );
    std::fs::write(d.join("part/checkpoint.safetensors"), ck20).unwrap();
    ok(
        d,
        "train --out-dir part --resume --iterations 40 --no-check -q",
    );
    let (a, b) = (
        json_file(&d.join("full/model.json")),
        json_file(&d.join("part/model.json")),
    );
    assert_eq!(
        a["params"], b["params"],
        "{extra}: resumed parameters differ"
    );
    assert_eq!(a["train"], b["train"]);
    let (ma, mb) = (metrics(&d.join("full")), metrics(&d.join("part")));
    assert_eq!(ma.len(), 40);
    assert_eq!(ma, mb, "{extra}: metrics logs differ");
    for f in [
        "config.toml",
        "checkpoint.safetensors",
        "metrics.jsonl",
        "model.json",
        "summary.json",
        "training.png",
    ] {
        assert!(d.join("part").join(f).is_file(), "{f} missing");
    }
    let cfg = std::fs::read_to_string(d.join("part/config.toml")).unwrap();
    assert!(cfg.contains("iterations = 40"), "{cfg}");
}

#[test]
fn train_resumes_bit_for_bit_after_a_kill() {
    check_resume("--steps 2");
}

#[test]
fn adapted_f64_training_resumes_bit_for_bit_and_logs_the_step() {
    check_resume("--adapt --adapt-interval 5 --dtype f64");
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    ok(d, &format!("train {TINY} --method euler --adapt --adapt-interval 5 --iterations 30 --dtype f64 --out-dir a --no-check -q"));
    let log = metrics(&d.join("a"));
    assert!(log.iter().all(|r| r["h"].as_f64().unwrap() > 0.0));
    let checks: Vec<&Value> = log.iter().filter(|r| r.get("adapt").is_some()).collect();
    assert_eq!(checks.len(), 6);
    assert!(checks.iter().all(|r| r["acc_test"].is_number()));
    let s = json_file(&d.join("a/summary.json"));
    assert_eq!(s["adaptation"]["checks"], 6);
    assert_eq!(s["dtype"], "f64");
    assert!(s["adaptation"]["initial"]["step_size"].as_f64().unwrap() > 0.0);
    // The final training solver is the one of the last iteration.
    let h_last = log.last().unwrap()["h"].as_f64().unwrap();
    assert_eq!(s["train"]["step_size"].as_f64().unwrap(), h_last);
}

#[test]
fn train_checks_and_eval_writes_json_csv_and_plot() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let out = ok(
        d,
        &format!("train {TINY} --method euler --steps 2 --iterations 20 --out-dir r --json"),
    );
    let result = stdout_json(&out);
    assert!(
        result["check"]["summary"]
            .as_str()
            .unwrap()
            .contains("ODE flow"),
        "{result}"
    );
    assert!(result["summary"]["test_accuracy"].is_number(), "{result}");
    // Without --json, people get the summary and the verdict on stdout.
    let human = stdout(&ok(d, "check r -q --exit-zero"));
    assert!(
        human.contains("ODE flow") && human.contains("test solver"),
        "{human}"
    );
    for f in ["check.json", "check.png", "summary.json"] {
        assert!(d.join("r").join(f).is_file(), "{f} missing");
    }
    let s = json_file(&d.join("r/summary.json"));
    for k in ["train_accuracy", "test_accuracy", "seconds", "train"] {
        assert!(s.get(k).is_some(), "summary.{k}");
    }
    ok(
        d,
        "eval r --methods euler,rk4,dopri5 --steps 1,2,4 --tols 1e-3,1e-5 -q",
    );
    let e = json_file(&d.join("r/eval.json"));
    assert_eq!(e["train"]["method"], "euler");
    assert_eq!(e["train"]["steps"], 2);
    assert!(e["train"]["accuracy"].is_number());
    let results = e["results"].as_array().unwrap();
    assert_eq!(results.len(), 8); // euler ×3, rk4 ×3, dopri5 at 2 tolerances
    for r in results {
        assert!(r["method"].is_string() && r["accuracy"].is_number());
        assert!(r.get("steps").is_some() != r.get("tol").is_some(), "{r}");
    }
    assert_eq!(results[7]["tol"], 1e-5);
    // The training solver itself is in the grid: same accuracy as `train`.
    assert_eq!(results[1]["accuracy"], e["train"]["accuracy"]);
    let csv = std::fs::read_to_string(d.join("r/eval.csv")).unwrap();
    assert!(
        csv.starts_with("role,method,order,steps,tol,accuracy"),
        "{csv}"
    );
    assert_eq!(csv.lines().count(), 10);
    let png = std::fs::read(d.join("r/eval.png")).unwrap();
    assert_eq!(&png[1..4], b"PNG");
}

#[test]
fn check_gives_the_verdict_and_its_exit_code() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // Two Euler steps on the concentric shells: ~100 % with the training solver, collapse
    // under finer solvers.
    ok(d, "train --dataset sphere2 --train-size 1024 --test-size 256 --batch-size 64 --lr 1e-2 --method euler --steps 2 --iterations 600 --out-dir coarse --no-check -q");
    let out = odeflow(d, "check coarse -q --json");
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let v = stdout_json(&out);
    // The drop is beyond the noise: most predictions change and McNemar's p is tiny.
    let (changed, p) = (
        v["worst"]["changed"].as_f64().unwrap(),
        v["worst"]["p_value"].as_f64().unwrap(),
    );
    assert!(changed > 0.2 && p < 1e-6, "{v}");
    // For people: the verdict, the training solver and a table, on one screen.
    let out = odeflow(d, "check coarse -q");
    assert_eq!(out.status.code(), Some(3));
    let text = stdout(&out);
    assert!(text.starts_with("NOT a valid ODE flow"), "{text}");
    assert!(
        text.contains("trained with euler, 2 steps") && text.contains("p"),
        "{text}"
    );
    assert!(text.lines().count() <= 24, "more than one screen: {text}");
    let out = ok(d, "check coarse -q --exit-zero --out verdict.json");
    assert_eq!(json_file(&d.join("verdict.json"))["valid"], false);
    assert!(stdout(&out).contains("JSON result written to verdict.json"));
    assert_eq!(v["valid"], false);
    assert!(
        v["summary"]
            .as_str()
            .unwrap()
            .starts_with("NOT a valid ODE flow"),
        "{v}"
    );
    let c = json_file(&d.join("coarse/check.json"));
    assert_eq!(c["valid"], false);
    assert!(c["train_accuracy"].as_f64().unwrap() > 0.95, "{c}");
    for k in ["method", "steps", "accuracy", "drop"] {
        assert!(c["worst"].get(k).is_some(), "worst.{k}");
    }
    assert!(c["worst"]["drop"].as_f64().unwrap() > 0.2);
    assert_eq!(c["source"], "default grid");
    assert!(d.join("coarse/check.png").is_file());
    ok(d, "check coarse --exit-zero -q");
    // A model whose eval.json has qualifying results reuses it.
    ok(d, "eval coarse --methods euler --steps 2,4 -q");
    let _ = odeflow(d, "check coarse -q");
    assert_eq!(
        json_file(&d.join("coarse/check.json"))["source"],
        "eval.json"
    );
    // An almost untrained model is the same function under every solver: valid, exit 0.
    let out = ok(d, "train --dataset sphere2 --train-size 256 --test-size 128 --method rk4 --steps 4 --iterations 3 --out-dir calm -q --json");
    let v = stdout_json(&out);
    assert!(
        v["check"]["summary"]
            .as_str()
            .unwrap()
            .starts_with("VALID ODE flow"),
        "{v}"
    );
    ok(d, "check calm -q");
    assert_eq!(json_file(&d.join("calm/check.json"))["valid"], true);
}

#[test]
fn sweep_shards_merge_and_critical_step() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let sweep = format!(
        "sweep --out-dir sw {TINY} --iterations 30 --methods euler --steps 2,8 --seeds 0,1 -q"
    );
    let out = ok(d, &format!("{sweep} --shard 1/2 --json"));
    assert_eq!(
        stdout_json(&out)["rows"].as_array().unwrap().len(),
        2,
        "{}",
        stdout(&out)
    );
    let out = odeflow(d, "merge sw");
    one_line_failure(
        &out,
        2,
        "merge before shard 2",
        &["2 runs", "not finished", "euler-2-s1"],
    );
    ok(d, &format!("{sweep} --shard 2/2"));
    let shard: Value = json_file(&d.join("sw/shards/shard-2-of-2.json"));
    assert_eq!(shard["rows"].as_array().unwrap().len(), 2);
    ok(d, "merge sw -q");
    let t = json_file(&d.join("sw/sweep.json"));
    let rows = t["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 4);
    let names: Vec<&str> = rows.iter().map(|r| r["run"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["euler-2-s0", "euler-2-s1", "euler-8-s0", "euler-8-s1"]
    );
    for r in rows {
        assert!(r["valid"].is_boolean() && r["drop"].is_number() && r["test_accuracy"].is_number());
    }
    assert_eq!(t["groups"].as_array().unwrap().len(), 2);
    assert_eq!(t["groups"][0]["seeds"], 2);
    assert_eq!(
        std::fs::read_to_string(d.join("sw/sweep.csv"))
            .unwrap()
            .lines()
            .count(),
        5
    );
    assert!(d.join("sw/sweep.png").is_file());
    let out = ok(d, "critical-step sw -q --json");
    let c = json_file(&d.join("sw/critical-step.json"));
    assert_eq!(c["methods"][0]["method"], "euler");
    assert_eq!(c["threshold"], 0.02);
    let passing = c["methods"][0]["passing"].as_array().unwrap().len();
    let failing = c["methods"][0]["failing"].as_array().unwrap().len();
    assert_eq!(passing + failing, 2);
    assert_eq!(stdout_json(&out)["methods"][0]["method"], "euler");
    assert!(d.join("sw/critical-step.png").is_file());
    // Re-running skips finished runs; a different grid in the same folder is refused.
    let out = odeflow(d, "sweep --out-dir sw --shard 1/2");
    assert!(
        out.status.success() && stderr(&out).contains("done before"),
        "{}",
        stderr(&out)
    );
    let out = odeflow(
        d,
        &format!("sweep --out-dir sw {TINY} --iterations 30 --methods euler --steps 4 -q"),
    );
    one_line_failure(&out, 2, "different plan", &["different sweep"]);
}

#[test]
fn bad_inputs_give_one_line_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let out = odeflow(d, "train --dataset imagenet --steps 2 --out-dir x");
    one_line_failure(
        &out,
        2,
        "unknown dataset",
        &["unknown dataset 'imagenet'", "sphere2"],
    );
    let out = odeflow(
        d,
        "train --dataset mnist --data-dir no/such/folder --steps 2 --out-dir x",
    );
    one_line_failure(&out, 2, "missing MNIST folder", &["no/such/folder"]);
    let out = odeflow(d, "train --dataset mnist --steps 2 --out-dir x");
    one_line_failure(&out, 2, "MNIST without folder", &["--data-dir"]);
    let out = odeflow(d, "sweep --out-dir s --steps 2 --shard 3/2");
    one_line_failure(&out, 2, "bad shard", &["3/2", "k/n"]);
    let out = odeflow(d, "train --dataset sphere2 --out-dir x");
    one_line_failure(&out, 2, "no step", &["--steps", "--adapt"]);
    let out = odeflow(d, "train --method rk4 --adapt --out-dir x");
    one_line_failure(&out, 2, "adapt rk4", &["rk4", "euler or midpoint"]);
    let out = odeflow(d, "eval nowhere");
    one_line_failure(
        &out,
        2,
        "eval without run",
        &["nowhere", "not a run folder"],
    );
    ok(
        d,
        &format!("train {TINY} --method euler --steps 1 --iterations 10 --out-dir r --no-check -q"),
    );
    let out = odeflow(d, "eval r --methods euler,warp9 --steps 1");
    one_line_failure(&out, 2, "unknown test method", &["warp9"]);
    let out = odeflow(
        d,
        &format!("train {TINY} --method euler --steps 1 --iterations 10 --out-dir r"),
    );
    one_line_failure(&out, 2, "overwrite", &["already holds a run", "--resume"]);
    let out = odeflow(d, "train --out-dir r --resume --lr 0.5");
    one_line_failure(
        &out,
        2,
        "resume with other flags",
        &["--lr", "authoritative"],
    );
    let out = odeflow(d, "train --out-dir elsewhere --resume");
    one_line_failure(
        &out,
        2,
        "resume nothing",
        &["nothing to resume", "elsewhere"],
    );
    let ck = d.join("r/checkpoint.safetensors");
    let bytes = std::fs::read(&ck).unwrap();
    std::fs::write(&ck, &bytes[..bytes.len() / 2]).unwrap();
    let out = odeflow(d, "train --out-dir r --resume --iterations 20");
    one_line_failure(
        &out,
        2,
        "corrupt checkpoint",
        &["checkpoint.safetensors", "corrupt"],
    );
    let mut flipped = bytes.clone();
    *flipped.last_mut().unwrap() ^= 1;
    std::fs::write(&ck, &flipped).unwrap();
    let out = odeflow(d, "train --out-dir r --resume --iterations 20");
    one_line_failure(
        &out,
        2,
        "edited checkpoint",
        &["checkpoint.safetensors", "checksum"],
    );
    std::fs::write(&ck, &bytes).unwrap();
    std::fs::write(d.join("r/model.json"), "{\"format\": 1").unwrap();
    let out = odeflow(d, "check r");
    one_line_failure(&out, 2, "corrupt model", &["model.json", "corrupt"]);
}

#[test]
fn experiments_are_listed() {
    let tmp = tempfile::tempdir().unwrap();
    let out = ok(tmp.path(), "experiment --list");
    let text = stdout(&out);
    assert!(
        text.contains("solver-dependence") && text.contains("step-adaptation"),
        "{text}"
    );
}

#[test]
fn solver_dependence_experiment_writes_one_file_per_model_and_the_figure() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let out = ok(d, "experiment solver-dependence --out-dir sd --train-steps 1,4 --iterations 20 --test-steps 1,4,16 --seeds 2 -q --json");
    assert_eq!(
        stdout_json(&out)["models"].as_array().unwrap().len(),
        2,
        "{}",
        stdout(&out)
    );
    for name in ["euler-1.json", "euler-4.json"] {
        let r = json_file(&d.join("sd").join(name));
        assert_eq!(r["seeds"], 2);
        assert!(r["train"]["method"] == "euler" && r["train"]["accuracy_std"].is_number());
        let results = r["results"].as_array().unwrap();
        assert_eq!(results.len(), 9);
        assert!(results.iter().all(|x| x["accuracy_std"].is_number()));
        assert!(r["valid"].is_boolean() && r["worst"]["drop"].is_number());
    }
    assert!(d.join("sd/solver-dependence.png").is_file());
    assert_eq!(
        json_file(&d.join("sd/summary.json"))["models"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

/// The MNIST test files for tests: the folder `$ODEFLOW_TEST_MNIST` names (`.ci/run` sets
/// it), relative paths taken from the workspace root.
fn shared_mnist() -> Option<PathBuf> {
    let Some(v) = std::env::var_os("ODEFLOW_TEST_MNIST") else {
        eprintln!("skipping: ODEFLOW_TEST_MNIST is not set");
        return None;
    };
    let p = PathBuf::from(v);
    let p = if p.is_relative() {
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")).join(p)
    } else {
        p
    };
    assert!(
        p.is_dir(),
        "ODEFLOW_TEST_MNIST={} is not a folder",
        p.display()
    );
    Some(p)
}

#[test]
fn mnist_trains_from_a_folder() {
    let Some(mnist) = shared_mnist() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    ok(d, &format!("train --dataset mnist --data-dir {} --model mlp --hidden 16 --train-size 256 --test-size 128 --batch-size 32 --method euler --steps 1 --iterations 5 --lr 1e-3 --out-dir m --no-check -q", mnist.display()));
    let s = json_file(&d.join("m/summary.json"));
    assert_eq!(s["dataset"], "mnist");
    assert!(s["test_accuracy"].as_f64().unwrap() > 0.1);
    let m = json_file(&d.join("m/model.json"));
    assert_eq!(m["sample_shape"], serde_json::json!([1, 28, 28]));
    assert_eq!(m["classes"], 10);
}
