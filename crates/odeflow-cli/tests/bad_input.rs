//! The bad-input suite: one table of kinds of bad input across every command. Each case
//! must fail with a non-zero exit code (2 for bad input, 1 where the failure is found while
//! writing), exactly one line on stderr that starts with `error:` and names the offending
//! value, no panic text, and no file created or left half-written in its folder (no
//! temporary `*.tmp*` file, no final file).
//!
//! Every case runs in a fresh copy of one fixture folder: a tiny trained run (`run`), a tiny
//! sweep (`sw`), copies of the run with a model of another data set (`run_other`), a
//! truncated model (`run_trunc`), a config with an unknown key (`run_badcfg`) and a corrupt
//! metrics line (`run_badlog`), a sweep plan with an unknown key (`sw_badplan`), a regular
//! file (`afile`), an empty folder (`emptydir`), and TOML files with an unknown key, a syntax
//! error and a wrong tableau.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use common::{one_line_failure, stderr};

/// One kind of bad input: what it is, the command line (split on whitespace), the exit
/// code, and the texts the error line must contain (the value given, at least).
struct Case {
    kind: &'static str,
    cmd: &'static str,
    code: i32,
    needles: &'static [&'static str],
}

const fn case(
    kind: &'static str,
    cmd: &'static str,
    code: i32,
    needles: &'static [&'static str],
) -> Case {
    Case {
        kind,
        cmd,
        code,
        needles,
    }
}

const TINY: &str =
    "--dataset sphere2 --train-size 20 --test-size 20 --batch-size 10 --iterations 2";

#[rustfmt::skip]
const CASES: &[Case] = &[
    // solve
    case("unknown system", "solve --system nosuch", 2, &["'nosuch'", "pendulum"]),
    case("unknown method", "solve --system pendulum --method nosuch", 2, &["'nosuch'", "dopri5"]),
    case("zero step size", "solve --system pendulum --dt 0", 2, &["--dt", "got 0"]),
    case("NaN step size", "solve --system pendulum --dt nan", 2, &["--dt", "NaN"]),
    case("state of the wrong length", "solve --system pendulum --y0 1,2,3", 2, &["--y0 1,2,3", "2 state components"]),
    case("state item not a number", "solve --system pendulum --y0 1,x", 2, &["'x'"]),
    case("tolerance with a fixed-step method", "solve --system pendulum --method rk4 --rtol 1e-6", 2, &["--rtol", "'rk4' is fixed-step"]),
    case("fixed-step method without a step", "solve --system pendulum --method euler", 2, &["'euler' is fixed-step", "--dt"]),
    case("step size over the step budget", "solve --system pendulum --method euler --dt 1e-12", 2, &["--dt 1e-12", "1e13 steps", "--max-steps"]),
    case("global --max-steps below a fixed grid", "solve --system pendulum --method euler --dt 1e-3 --max-steps 100", 2, &["--dt 0.001", "10000 steps", "--max-steps 100"]),
    case("tolerance below f64 resolution", "solve --system pendulum --rtol 1e-300", 2, &["--rtol 1e-300", "1e-14"]),
    case("missing tableau file", "solve --system pendulum --tableau missing.toml", 2, &["'missing.toml'"]),
    case("tableau file with an unknown key", "solve --system pendulum --tableau tab_extra.toml --dt 0.1", 2, &["tab_extra.toml", "extra"]),
    case("inconsistent tableau", "solve --system pendulum --tableau tab_bad.toml --dt 0.1", 2, &["tab_bad.toml", "sum to 0.5"]),
    case("tableau path is a folder", "solve --system pendulum --tableau emptydir --dt 0.1", 2, &["'emptydir'", "directory"]),
    case("save times not monotone", "solve --system pendulum --t-eval 5,1", 2, &["t_eval[1] = 1", "after 5"]),
    case("save time outside the interval", "solve --system pendulum --t-eval 0,100", 2, &["t_eval[1] = 100", "[0, 10]"]),
    case("empty integration interval", "solve --system pendulum --t1 0", 2, &["t0 = t1 = 0"]),
    case("invariant overflows f64 at the start", "solve --system harmonic --y0 1e308,1e308 --method rk4 --dt 0.1", 2, &["--y0 1e308,1e308", "energy", "overflows"]),
    case("initial state beyond f32", "solve --system lorenz --dtype f32 --y0 1e200,0,0 --method rk4 --dt 0.01", 2, &["1e200", "f32", "--dtype f64"]),
    case("plot with an unknown extension", "solve --system pendulum --plot out.txt", 2, &["'out.txt'", ".png or .svg"]),
    case("plot under a regular file", "solve --system pendulum --plot afile/p.png", 2, &["'afile'", "regular file"]),
    case("splitting method on a non-separable system", "solve --system lorenz --method verlet --dt 0.1", 2, &["'verlet'", "'lorenz'", "not separable"]),
    case("too many save points", "solve --system pendulum --save-every 1e-9", 2, &["--save-every 1e-9", "larger --save-every"]),
    case("unknown dtype", "solve --system pendulum --dtype f16", 2, &["'f16'", "f64"]),
    case("zero fixed steps", "solve --system pendulum --steps 0", 2, &["'0'", "--steps"]),
    case("solver runs out of steps", "solve --system pendulum --max-steps 3", 1, &["max_steps = 3", "raise --max-steps"]),
    case("conflicting save options", "solve --system pendulum --method euler --dt 0.01 --save-every 0.1 --t-eval 0,1", 2, &["--save-every", "--t-eval"]),
    // global flags
    case("--max-steps not a number", "solve --system pendulum --max-steps lots", 2, &["--max-steps 'lots'"]),
    case("--max-steps zero", "methods --max-steps 0", 2, &["--max-steps '0'"]),
    case("--memory-budget zero", "solve --system pendulum --memory-budget 0", 2, &["--memory-budget '0'"]),
    case("--memory-budget not a size", "methods --memory-budget lots", 2, &["--memory-budget 'lots'"]),
    case("--out is a folder", "methods --out emptydir", 2, &["'emptydir'", "directory"]),
    case("--out under a regular file", "methods --out afile/x.json", 2, &["'afile'", "regular file"]),
    case("unexpected argument", "methods extra", 2, &["'extra'"]),
    // bench
    case("unknown workload", "bench nosuch", 2, &["'nosuch'", "sphere2-euler256"]),
    case("zero timed iterations", "bench sphere2-euler256 --iters 0", 2, &["--iters"]),
    case("timed iterations over the budget", "bench sphere2-euler256 --iters 100000000000", 2, &["--iters 100000000000", "--max-steps"]),
    case("zero depth", "bench resnet-memory --depth 0", 2, &["--depth"]),
    case("depth over the budget", "bench resnet-memory --depth 100000000", 2, &["--depth 100000000"]),
    case("--depth for a workload without depth", "bench sphere2-euler256 --depth 3", 2, &["--depth 3", "does not apply"]),
    case("--untied for a workload without layers", "bench sphere2-euler256 --untied", 2, &["--untied", "does not apply"]),
    case("unknown gradient method", "bench sphere2-euler256 --grad nosuch", 2, &["'nosuch'", "backprop"]),
    // train
    case("unknown data set", "train --dataset nosuch --method euler --steps 2", 2, &["'nosuch'", "sphere2"]),
    case("unknown training method", "train --dataset sphere2 --method nosuch --steps 2", 2, &["'nosuch'"]),
    case("zero training steps", "train --dataset sphere2 --method euler --steps 0", 2, &["got 0"]),
    case("two training steps given", "train --dataset sphere2 --method dopri5 --tol 1e-3 --steps 2", 2, &["--steps 2", "--tol 0.001", "only one"]),
    case("no training step", "train --dataset sphere2 --method euler", 2, &["--steps N", "--adapt"]),
    case("zero iterations", "train --dataset sphere2 --method euler --steps 2 --iterations 0", 2, &["--iterations"]),
    case("zero batch size", "train --dataset sphere2 --method euler --steps 2 --batch-size 0", 2, &["batch sizes"]),
    case("zero checkpoint interval", "train --dataset sphere2 --method euler --steps 2 --checkpoint-every 0", 2, &["checkpoint_every = 0"]),
    case("negative learning rate", "train --dataset sphere2 --method euler --steps 2 --lr -1", 2, &["'-1'", "--lr"]),
    case("negative weight decay", "train --dataset sphere2 --method euler --steps 2 --weight-decay -1", 2, &["weight_decay = -1"]),
    case("missing config file", "train --config missing.toml", 2, &["'missing.toml'"]),
    case("config with an unknown key", "train --config bad.toml --method euler --steps 2", 2, &["'bad.toml'", "bogus"]),
    case("config that does not parse", "train --config syntax.toml", 2, &["'syntax.toml'"]),
    case("config path is a folder", "train --config emptydir", 2, &["'emptydir'", "directory"]),
    case("data set larger than the memory budget", "train --dataset sphere2 --method euler --steps 2 --train-size 1000000000000", 2, &["1000000001000 × 2", "--memory-budget"]),
    case("global --memory-budget below the data set", "train --dataset sphere2 --method euler --steps 2 --train-size 1000000 --memory-budget 1M", 2, &["1001000 × 2", "1 MiB"]),
    case("data dimension over the budget", "train --dataset sphere100000000 --method euler --steps 2", 2, &["1e8", "memory budget"]),
    case("augmentation over the budget", "train --dataset sphere2 --method euler --steps 2 --augment 1000000000", 2, &["memory budget"]),
    case("batch over the budget", "train --dataset sphere2 --method euler --steps 2 --batch-size 100000000000", 2, &["100000000000", "memory budget"]),
    case("training step size over the step budget", "train --dataset sphere2 --method euler --step-size 1e-9", 2, &["--step-size 1e-9", "--max-steps"]),
    case("global --max-steps below the training steps", "train --dataset sphere2 --method euler --steps 2000 --max-steps 1000", 2, &["--steps 2000", "1000"]),
    case("training tolerance below f64 resolution", "train --dataset sphere2 --method dopri5 --tol 1e-300", 2, &["--tol 1e-300"]),
    case("run folder is a regular file", "train --dataset sphere2 --method euler --steps 2 --out-dir afile", 1, &["'afile'", "regular file"]),
    case("resume without a run", "train --resume --out-dir nonexist", 2, &["'nonexist'", "config.toml"]),
    case("corrupt metrics line on resume", "train --resume --out-dir run_badlog --iterations 4 -q", 2, &["run_badlog/metrics.jsonl", "line 1", "garbage"]),
    case("changed setting on resume", "train --resume --out-dir run --lr 0.1", 2, &["--lr"]),
    case("overwriting a run", "train --dataset sphere2 --method euler --steps 2 --out-dir run", 2, &["'run'", "--resume"]),
    case("image data folder missing", "train --dataset mnist --method euler --steps 2 --data-dir nonexist", 2, &["'nonexist'", "does not exist"]),
    case("image data folder is a regular file", "train --dataset mnist --method euler --steps 2 --data-dir afile", 2, &["'afile'", "regular file"]),
    case("image data folder without the files", "train --dataset mnist --method euler --steps 2 --data-dir emptydir", 2, &["emptydir", "t10k-images-idx3-ubyte.gz"]),
    case("unknown model", "train --dataset sphere2 --method euler --steps 2 --model nosuch", 2, &["'nosuch'"]),
    case("zero hidden width", "train --dataset sphere2 --method euler --steps 2 --model mlp --hidden 64,0", 2, &["width = 0"]),
    case("--hidden for a convolutional model", "train --dataset sphere2 --method euler --steps 2 --hidden 64", 2, &["--hidden 64", "does not apply"]),
    case("--activation for a fixed-activation model", "train --dataset sphere2 --method euler --steps 2 --activation relu", 2, &["--activation relu", "does not apply"]),
    case("--channels for an MLP", "train --dataset sphere2 --method euler --steps 2 --model mlp --channels 8", 2, &["--channels 8", "does not apply"]),
    case("--momentum with Adam", "train --dataset sphere2 --method euler --steps 2 --momentum 0.5", 2, &["--momentum 0.5", "--optimizer sgd"]),
    case("adaptation setting without --adapt", "train --dataset sphere2 --method euler --steps 2 --adapt-interval 10", 2, &["--adapt-interval 10", "--adapt"]),
    case("--data-dir for generated data", "train --dataset sphere2 --method euler --steps 2 --data-dir emptydir", 2, &["--data-dir emptydir", "does not apply"]),
    case("--check-threshold with --no-check", "train --dataset sphere2 --method euler --steps 2 --no-check --check-threshold 0.1", 2, &["--check-threshold 0.1", "--no-check"]),
    case("zero adaptation interval", "train --dataset sphere2 --method euler --steps 2 --adapt --adapt-interval 0", 2, &["interval = 0"]),
    case("adaptation growth below 1", "train --dataset sphere2 --method euler --steps 2 --adapt --adapt-grow 0.5", 2, &["grow = 0.5"]),
    case("negative check threshold", "train --dataset sphere2 --method euler --steps 2 --check-threshold -1", 2, &["threshold = -1"]),
    case("too many workers", "train --dataset sphere2 --method euler --steps 2 --threads 100000", 2, &["--threads 100000"]),
    case("zero test samples", "train --dataset sphere2 --method euler --steps 2 --test-size 0", 2, &["--test-size 0"]),
    case("unknown optimizer", "train --dataset sphere2 --method euler --steps 2 --optimizer nosuch", 2, &["'nosuch'", "adam"]),
    case("unknown activation", "train --dataset sphere2 --method euler --steps 2 --model mlp --activation nosuch", 2, &["'nosuch'", "tanh"]),
    case("gradient method unsuited to the method", "train --dataset sphere2 --method implicit-midpoint --steps 2 --grad adjoint", 2, &["adjoint", "backprop"]),
    case("splitting method for a classifier", "train --dataset sphere2 --method verlet --steps 2", 2, &["'verlet'"]),
    case("unknown training dtype", "train --dataset sphere2 --method euler --steps 2 --dtype f16", 2, &["'f16'"]),
    // eval
    case("run folder missing", "eval nonexist", 2, &["'nonexist'", "not a run folder"]),
    case("evaluated run is a regular file", "eval afile", 2, &["'afile'", "not a run folder"]),
    case("unknown test method", "eval run --methods nosuch", 2, &["'nosuch'"]),
    case("zero test steps", "eval run --steps 0", 2, &["got 0"]),
    case("test steps over the budget", "eval run --steps 100000000", 2, &["100000000", "--max-steps"]),
    case("test tolerance below f64 resolution", "eval run --methods dopri5 --tols 1e-300", 2, &["1e-300"]),
    case("--tols without an adaptive test method", "eval run --methods euler --tols 1e-3", 2, &["--tols 0.001", "does not apply"]),
    case("zero evaluation batch", "eval run --batch-size 0", 2, &["'0'", "--batch-size"]),
    case("truncated model file", "eval run_trunc", 2, &["run_trunc/model.json", "truncated"]),
    case("model of another data set", "eval run_other", 2, &["sphere3", "sphere2", "not the run's model"]),
    case("run config with an unknown key", "eval run_badcfg", 2, &["run_badcfg/config.toml", "bogus"]),
    case("duplicate test grid entry", "eval run --steps 4,4", 2, &["4 steps twice"]),
    case("CSV under a regular file", "eval run --csv afile/x.csv", 2, &["'afile'", "regular file"]),
    // check
    case("check of a missing run", "check nonexist", 2, &["'nonexist'"]),
    case("negative threshold", "check run --threshold -0.1", 2, &["--threshold -0.1", "[0, 1]"]),
    case("threshold above 1", "check run --threshold 2", 2, &["--threshold 2"]),
    case("NaN threshold", "check run --threshold nan", 2, &["'nan'"]),
    case("check of a foreign model", "check run_other", 2, &["sphere3"]),
    // sweep
    case("duplicate step count", "sweep --out-dir s --methods euler --steps 2,2", 2, &["step count 2 twice"]),
    case("duplicate seed", "sweep --out-dir s --methods euler --steps 2 --seeds 0,0", 2, &["seed 0 twice"]),
    case("duplicate method", "sweep --out-dir s --methods euler,euler --steps 2", 2, &["\"euler\" twice"]),
    case("shard zero", "sweep --out-dir s --methods euler --steps 2 --shard 0/2", 2, &["'0/2'"]),
    case("shard beyond its count", "sweep --out-dir s --methods euler --steps 2 --shard 3/2", 2, &["'3/2'"]),
    case("more shards than runs", "sweep --out-dir s --methods euler --steps 2 --shard 1/100000000000", 2, &["--shard 1/100000000000", "n ≤ 1"]),
    case("method without a step", "sweep --out-dir s --methods euler", 2, &["'euler'", "--steps"]),
    case("--tols without an adaptive method", "sweep --out-dir s --methods euler --steps 2 --tols 1e-3", 2, &["--tols 0.001", "does not apply"]),
    case("sweep steps over the budget", "sweep --out-dir s --methods euler --steps 100000000", 2, &["--steps 100000000"]),
    case("seed not a number", "sweep --out-dir s --methods euler --steps 2 --seeds x", 2, &["'x'"]),
    case("another plan in the sweep folder", "sweep --out-dir sw --methods euler --steps 8", 2, &["'sw'", "different sweep"]),
    case("sweep folder is a regular file", "sweep --out-dir afile --methods euler --steps 2", 1, &["'afile'", "regular file"]),
    case("sweep flag that does not apply", "sweep --out-dir s --methods euler --steps 2 --hidden 8", 2, &["--hidden 8", "does not apply"]),
    // merge, critical-step
    case("merge of a missing folder", "merge nonexist", 2, &["'nonexist'", "missing"]),
    case("merge of a regular file", "merge afile", 2, &["'afile'", "regular file"]),
    case("merge of a run folder", "merge run", 2, &["'run'", "not a sweep folder"]),
    case("sweep plan with an unknown key", "merge sw_badplan", 2, &["sw_badplan/sweep.toml", "bogus"]),
    case("critical step of a missing sweep", "critical-step nonexist", 2, &["'nonexist'"]),
    case("negative critical-step threshold", "critical-step sw --threshold -1", 2, &["--threshold -1"]),
    // imde
    case("imde of an unknown system", "imde --system nosuch --method euler --h 0.1", 2, &["'nosuch'"]),
    case("zero modified-equation step", "imde --system pendulum --method euler --h 0", 2, &["--h 0"]),
    case("zero truncation order", "imde --system pendulum --method euler --h 0.1 --order 0", 2, &["--order 0"]),
    case("truncation order beyond the series", "imde --system pendulum --method euler --h 0.1 --order 1000", 2, &["--order 1000"]),
    case("point of the wrong length", "imde --system pendulum --method euler --h 0.1 --at 1,2,3", 2, &["--at 1,2,3"]),
    case("modified equation overflows", "imde --system pendulum --method euler --h 0.1 --at 1e300,1e300", 2, &["--at 1e300,1e300", "overflows"]),
    case("imde tableau with an unknown key", "imde --system pendulum --tableau tab_extra.toml --h 0.1", 2, &["tab_extra.toml", "extra"]),
    case("missing required flag", "imde --system pendulum --method euler", 2, &["--h"]),
    // experiments
    case("unknown experiment", "experiment nosuch", 2, &["'nosuch'"]),
    case("zero training steps of an experiment", "experiment solver-dependence --train-steps 0", 2, &["got 0"]),
    case("experiment steps over the budget", "experiment solver-dependence --train-steps 100000000", 2, &["100000000"]),
    case("experiment output folder is a regular file", "experiment solver-dependence --out-dir afile --iterations 1 --train-steps 2 --test-steps 1", 1, &["'afile'", "regular file"]),
    case("zero depth of a profile sweep", "experiment resnet-reconstruction --depths 0", 2, &["depth = 0"]),
    case("profile sweep width over the budget", "experiment resnet-reconstruction --dim 100000000", 2, &["width 100000000", "memory budget"]),
    case("memory-experiment depth over the budget", "experiment resnet-memory --depths 100000000", 2, &["--depths 100000000"]),
    case("linear ResNet dimension over the budget", "experiment linear-resnet --dim 1000000", 2, &["1000000 × 1000000", "memory budget"]),
    case("zero IMDE order of the experiment", "experiment imde --order 0", 2, &["--order 0"]),
    case("MLP width over the budget", "experiment imde --hidden 100000000", 2, &["width 100000000", "memory budget"]),
    case("zero sweep interval", "experiment imde --t-values 0", 2, &["T = 0"]),
    case("rollout over the budget", "experiment conservation --rollout-steps 100000000000", 2, &["--rollout-steps 100000000000"]),
    case("unknown conservation model", "experiment conservation --methods nosuch", 2, &["'nosuch'"]),
    case("MNIST folder without the files", "experiment step-adaptation --mnist emptydir", 2, &["--mnist emptydir", "t10k-images-idx3-ubyte.gz"]),
    case("NaN weight scale", "experiment resnet-gradients --scale nan", 2, &["'nan'"]),
    // data
    case("unknown data set to download", "data download nosuch", 2, &["'nosuch'", "mnist"]),
    case("download root is a regular file", "data download mnist --dir afile", 2, &["afile", "file"]),
    case("download mirror that is not a URL", "data download mnist --dir emptydir --mirror notaurl", 2, &["--mirror 'notaurl'", "https://"]),
    case("download mirror of another scheme", "data download mnist --dir emptydir --mirror ftp://host/mnist/", 2, &["'ftp://host/mnist/'", "http://"]),
    case("listing root is a regular file", "data list --dir afile", 2, &["--dir afile", "regular file"]),
];

/// The fixture folder every case starts from (made once per test process).
fn template() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let run = |cmdline: &str| {
            let out = odeflow(d, cmdline);
            assert!(out.status.success(), "{cmdline}: {}", stderr(&out));
        };
        run(&format!(
            "train {TINY} --method euler --steps 2 --out-dir run --no-check -q"
        ));
        run(&format!(
            "sweep {TINY} --methods euler --steps 2,4 --out-dir sw -q"
        ));
        run(&format!(
            "train {} --method euler --steps 2 --out-dir other --no-check -q",
            TINY.replace("sphere2", "sphere3")
        ));
        copy_dir(&d.join("run"), &d.join("run_other"));
        fs::copy(d.join("other/model.json"), d.join("run_other/model.json")).unwrap();
        fs::remove_dir_all(d.join("other")).unwrap();
        copy_dir(&d.join("run"), &d.join("run_trunc"));
        let model = fs::read(d.join("run/model.json")).unwrap();
        fs::write(d.join("run_trunc/model.json"), &model[..100]).unwrap();
        copy_dir(&d.join("run"), &d.join("run_badcfg"));
        let mut cfg = fs::read_to_string(d.join("run/config.toml")).unwrap();
        cfg.push_str("bogus = 1\n");
        fs::write(d.join("run_badcfg/config.toml"), cfg).unwrap();
        copy_dir(&d.join("run"), &d.join("run_badlog"));
        let log = fs::read_to_string(d.join("run/metrics.jsonl")).unwrap();
        fs::write(
            d.join("run_badlog/metrics.jsonl"),
            format!("garbage\n{log}"),
        )
        .unwrap();
        copy_dir(&d.join("sw"), &d.join("sw_badplan"));
        let mut plan = fs::read_to_string(d.join("sw/sweep.toml")).unwrap();
        plan.push_str("bogus = 1\n");
        fs::write(d.join("sw_badplan/sweep.toml"), plan).unwrap();
        fs::write(d.join("afile"), "x").unwrap();
        fs::create_dir(d.join("emptydir")).unwrap();
        fs::write(d.join("bad.toml"), "seed = 0\nbogus = 1\n").unwrap();
        fs::write(d.join("syntax.toml"), "seed = [\n").unwrap();
        let tableau = "name = \"t\"\norder = 1\nc = [0.0]\na = [[0.0]]\n";
        fs::write(
            d.join("tab_extra.toml"),
            format!("{tableau}b = [1.0]\nextra = 3\n"),
        )
        .unwrap();
        fs::write(d.join("tab_bad.toml"), format!("{tableau}b = [0.5]\n")).unwrap();
        dir
    })
    .path()
}

/// Runs `odeflow` in `dir` with the budgets at their defaults and no data set on disk.
fn odeflow(dir: &Path, cmdline: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_odeflow"))
        .args(cmdline.split_whitespace())
        .current_dir(dir)
        .env_remove("ODEFLOW_MAX_STEPS")
        .env_remove("ODEFLOW_MEMORY_BUDGET")
        .env("ODEFLOW_DATA", dir.join("no-data"))
        .env("XDG_CACHE_HOME", dir.join("no-cache"))
        .output()
        .expect("the odeflow binary runs")
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Every file under `dir`, relative to it.
fn files(dir: &Path) -> BTreeSet<PathBuf> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeSet<PathBuf>) {
        for entry in fs::read_dir(dir).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.insert(p.strip_prefix(root).unwrap().to_path_buf());
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(dir, dir, &mut out);
    out
}

#[test]
fn every_kind_of_bad_input_is_one_line_naming_the_value_and_leaves_no_file() {
    let kinds: BTreeSet<&str> = CASES.iter().map(|c| c.kind).collect();
    assert_eq!(kinds.len(), CASES.len(), "every case is a different kind");
    assert!(kinds.len() >= 60, "{} kinds", kinds.len());
    let template = template();
    let before = files(template);
    let mut failures = Vec::new();
    for c in CASES {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(template, dir.path());
        let out = odeflow(dir.path(), c.cmd);
        let checked = std::panic::catch_unwind(|| {
            one_line_failure(&out, c.code, c.cmd, c.needles);
        });
        if checked.is_err() {
            failures.push(format!("{}: `{}`: {}", c.kind, c.cmd, stderr(&out).trim()));
            continue;
        }
        let after = files(dir.path());
        let new: Vec<_> = after.difference(&before).collect();
        if !new.is_empty() {
            failures.push(format!("{}: `{}` left files {new:?}", c.kind, c.cmd));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n")
    );
}

/// `--max-steps` overrides `ODEFLOW_MAX_STEPS`, in both directions.
#[test]
fn the_max_steps_flag_overrides_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let run = |env: &str, flag: &str| {
        Command::new(env!("CARGO_BIN_EXE_odeflow"))
            .args(
                format!("solve --system pendulum --method euler --dt 0.001 --quiet {flag}")
                    .split_whitespace(),
            )
            .current_dir(dir.path())
            .env("ODEFLOW_MAX_STEPS", env)
            .output()
            .unwrap()
    };
    // 10 000 steps: refused by the variable alone, allowed when the flag raises the budget.
    let out = run("100", "");
    one_line_failure(&out, 2, "env 100", &["10000 steps", "--max-steps 100"]);
    let out = run("100", "--max-steps 20000");
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run("1000000", "--max-steps 5000");
    one_line_failure(&out, 2, "flag 5000", &["--max-steps 5000"]);
}

/// Norms are norms: a backward step (h < 0) gives `|h|^k ‖f_k‖`, never a negative number.
#[test]
fn imde_term_norms_are_not_negative_for_a_backward_step() {
    let dir = tempfile::tempdir().unwrap();
    let fwd = common::ok_json(
        dir.path(),
        "imde --system pendulum --method euler --h 0.1 --order 3",
    );
    let bwd = common::ok_json(
        dir.path(),
        "imde --system pendulum --method euler --h -0.1 --order 3",
    );
    let (f, b) = (
        common::floats(&fwd["term_norms"]),
        common::floats(&bwd["term_norms"]),
    );
    assert_eq!(f.len(), 4);
    for (x, y) in f.iter().zip(&b) {
        assert!(*y >= 0.0, "negative norm {y} in {b:?}");
        // ‖h^k f_k‖ depends on |h| only.
        assert!((x - y).abs() <= 1e-12 * x.abs().max(1.0), "{f:?} vs {b:?}");
    }
}
