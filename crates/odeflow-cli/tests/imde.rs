//! End-to-end tests of `odeflow imde` and `odeflow experiment` (small budgets): JSON on
//! stdout, files in the output folder, and one-line errors with exit code 2 for bad input.

use std::path::Path;

mod common;

use common::{fails, floats, odeflow, ok_json};

/// Runs `cmdline`, which must be rejected as bad input: exit code 2, one line naming
/// every needle.
fn bad_input(dir: &Path, cmdline: &str, needles: &[&str]) {
    fails(dir, cmdline, 2, needles);
}

/// `(φ_h(y) − y)/h` of the pendulum from `odeflow solve` with tiny rk4 steps: for Euler the
/// IMDE is exactly this difference quotient.
fn euler_quotient(dir: &Path, h: f64, y: [f64; 2]) -> Vec<f64> {
    let r = ok_json(
        dir,
        &format!(
            "solve --system pendulum --method rk4 --dt 1e-4 --t1 {h} --y0 {},{} -q",
            y[0], y[1]
        ),
    );
    floats(&r["final"])
        .iter()
        .zip(y)
        .map(|(a, b)| (a - b) / h)
        .collect()
}

#[test]
fn imde_prints_the_series_and_matches_the_flow_for_euler() {
    let dir = tempfile::tempdir().unwrap();
    let r = ok_json(
        dir.path(),
        "imde --system pendulum --method euler --h 0.04 --order 3 --at 1,0.5",
    );
    assert_eq!(r["order"], 3);
    assert_eq!(r["h"], 0.04);
    assert_eq!(r["method"], "euler");
    assert_eq!(r["expansion"], "inverse");
    assert!(r.get("terms").is_none(), "terms only with --terms");
    let field = floats(&r["field"]);
    assert!((field[0] + 10.0 * 0.5f64.sin()).abs() < 1e-14 && field[1] == 1.0);
    let imde = floats(&r["imde"]);
    let q = euler_quotient(dir.path(), 0.04, [1.0, 0.5]);
    let dist = |a: &[f64]| {
        a.iter()
            .zip(&q)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max)
    };
    // Truncation after h³: the next term is ≈ h⁴|f₄| ~ 1e-5; f alone is off by ~0.1.
    assert!(dist(&imde) < 2e-5, "imde {imde:?} vs quotient {q:?}");
    assert!(dist(&field) > 0.05);
    assert_eq!(floats(&r["term_norms"]).len(), 4);
}

#[test]
fn imde_terms_expansions_tableaus_and_implicit_midpoint() {
    let dir = tempfile::tempdir().unwrap();
    let r = ok_json(
        dir.path(),
        "imde --system damped-cubic --method rk4 --h 0.02 --order 6 --terms -q",
    );
    let terms = r["terms"].as_array().unwrap();
    assert_eq!(terms.len(), 7);
    // rk4 has order 4: f₁ = f₂ = f₃ = 0, f₄ ≠ 0.
    for (k, term) in terms.iter().enumerate().take(4).skip(1) {
        assert!(floats(term).iter().all(|v| v.abs() < 1e-12), "f_{k}");
    }
    assert!(floats(&terms[4]).iter().any(|v| v.abs() > 1e-6));
    let fwd = ok_json(
        dir.path(),
        "imde --system damped-cubic --method rk4 --h 0.02 --order 6 --expansion forward -q",
    );
    assert_eq!(fwd["expansion"], "forward");
    assert_ne!(fwd["imde"], r["imde"]);
    // A user tableau gives the catalogue method's numbers.
    std::fs::write(
        dir.path().join("heun.toml"),
        "name = \"my-heun\"\norder = 2\nc = [0.0, 1.0]\na = [[], [1.0]]\nb = [0.5, 0.5]\n",
    )
    .unwrap();
    let user = ok_json(
        dir.path(),
        "imde --system lorenz --tableau heun.toml --h 0.04 --order 4 -q",
    );
    let builtin = ok_json(
        dir.path(),
        "imde --system lorenz --method heun --h 0.04 --order 4 -q",
    );
    assert_eq!(user["method"], "my-heun");
    assert_eq!(user["imde"], builtin["imde"]);
    // The implicit midpoint rule is symmetric: odd terms vanish.
    let mid = ok_json(
        dir.path(),
        "imde --system pendulum --method implicit-midpoint --h 0.04 --order 4 -q",
    );
    let norms = floats(&mid["term_norms"]);
    assert!(
        norms[1] == 0.0 && norms[3] == 0.0 && norms[2] > 1e-4,
        "{norms:?}"
    );
    // `linear` takes its dimension from --at.
    let lin = ok_json(
        dir.path(),
        "imde --system linear --method euler --h 0.1 --order 8 --at 1,2,3 -q",
    );
    let want = ((-0.1f64).exp() - 1.0) / 0.1;
    for (v, y) in floats(&lin["imde"]).iter().zip([1.0, 2.0, 3.0]) {
        assert!((v - want * y).abs() < 1e-9);
    }
}

#[test]
fn imde_rejects_bad_input_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    bad_input(
        d,
        "imde --system pendulum --method verlet --h 0.04",
        &["verlet", "splitting"],
    );
    bad_input(
        d,
        "imde --system pendulum --method nope --h 0.04",
        &["nope", "euler"],
    );
    bad_input(
        d,
        "imde --system pendulum --h 0.04 --at 1",
        &["--at 1", "2 state components"],
    );
    bad_input(
        d,
        "imde --system pendulum --h 0.04 --order 13",
        &["--order 13"],
    );
    bad_input(d, "imde --system comet --h 0.04", &["comet"]);
    bad_input(d, "imde --system pendulum --h nan", &["--h"]);
    bad_input(
        d,
        "imde --system pendulum --tableau missing.toml --h 0.1",
        &["missing.toml"],
    );
}

#[test]
fn experiment_list_describes_every_experiment() {
    let dir = tempfile::tempdir().unwrap();
    let out = odeflow(dir.path(), "experiment --list");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text
        .lines()
        .any(|l| l.starts_with("imde ") && l.contains("Zhu")));
    assert!(text.lines().any(|l| l.starts_with("conservation ")));
    let list = ok_json(dir.path(), "experiment --list");
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"imde") && names.contains(&"conservation"));
    bad_input(dir.path(), "experiment", &["--list", "imde"]);
}

#[test]
fn experiment_imde_writes_its_files_and_summary() {
    let dir = tempfile::tempdir().unwrap();
    let s = ok_json(
        dir.path(),
        "experiment imde --iterations 30 --hidden 8 --train-points 60 --test-points 40 \
         --t-values 0.02,0.04 --s-values 1,2 --rollout-t 0.3 --rollout-dt 0.01 --out-dir out -q",
    );
    assert_eq!(s["experiment"], "imde");
    let m = &s["methods"][0];
    assert_eq!(m["method"], "euler");
    assert_eq!(m["order"], 1);
    for key in ["t_true", "t_imde", "t_gap", "s_true", "s_imde", "s_gap"] {
        assert!(m["slopes"][key].as_f64().is_some(), "slope {key}: {m}");
    }
    // The theoretical gap of Euler is first order in h whatever the training did.
    assert!((m["slopes"]["t_gap"].as_f64().unwrap() - 1.0).abs() < 0.1);
    assert_eq!(m["t_sweep"].as_array().unwrap().len(), 2);
    assert_eq!(m["s_sweep"].as_array().unwrap().len(), 2);
    for f in [
        "imde.json",
        "sweeps.csv",
        "rollouts.csv",
        "errors_vs_T.png",
        "errors_vs_S.png",
        "field_errors.png",
        "rollouts.png",
    ] {
        let p = dir.path().join("out").join(f);
        assert!(p.metadata().map(|m| m.len() > 0).unwrap_or(false), "{f}");
    }
    let csv = std::fs::read_to_string(dir.path().join("out/sweeps.csv")).unwrap();
    assert!(csv.starts_with("method,sweep,T,S,h,seed,error_true,error_imde"));
    assert_eq!(csv.lines().count(), 1 + 4, "{csv}");
    // Same flags, same numbers.
    let again = ok_json(
        dir.path(),
        "experiment imde --iterations 30 --hidden 8 --train-points 60 --test-points 40 \
         --t-values 0.02,0.04 --s-values 1,2 --rollout-t 0.3 --rollout-dt 0.01 --out-dir out2 -q",
    );
    assert_eq!(again["methods"][0]["t_sweep"], m["t_sweep"]);
}

#[test]
fn experiment_conservation_writes_its_files_and_summary() {
    let dir = tempfile::tempdir().unwrap();
    let s = ok_json(
        dir.path(),
        "experiment conservation --methods euler,verlet --iterations 20 --hidden 8 \
         --train-points 50 --test-points 20 --rollout-steps 200 --out-dir out -q",
    );
    assert_eq!(s["experiment"], "conservation");
    let models = s["models"].as_array().unwrap();
    assert_eq!(models.len(), 2);
    assert_eq!(models[1]["model"], "hamiltonian");
    assert_eq!(models[1]["symplectic"], true);
    assert_eq!(models[0]["symplectic"], false);
    for m in models {
        assert!(m["energy"]["max_abs"].as_f64().is_some(), "{m}");
        assert_eq!(m["energy"]["steps"], 200);
    }
    assert!(s["reference_energy"]["max_abs"].as_f64().unwrap() < 1e-9);
    for f in [
        "conservation.json",
        "models.csv",
        "energy.csv",
        "energy.png",
        "phase_portraits.png",
    ] {
        let p = dir.path().join("out").join(f);
        assert!(p.metadata().map(|m| m.len() > 0).unwrap_or(false), "{f}");
    }
    let energy = std::fs::read_to_string(dir.path().join("out/energy.csv")).unwrap();
    assert_eq!(energy.lines().count(), 1 + 201);
}

#[test]
fn experiments_reject_bad_input_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    bad_input(
        d,
        "experiment conservation --methods verlet:mlp --iterations 1",
        &["verlet", "Hamiltonian"],
    );
    bad_input(
        d,
        "experiment conservation --methods euler:cnn",
        &["cnn", "mlp"],
    );
    bad_input(
        d,
        "experiment imde --system kepler",
        &["kepler", "pendulum"],
    );
    bad_input(
        d,
        "experiment imde --methods verlet",
        &["verlet", "splitting"],
    );
    bad_input(d, "experiment imde --s-values 0", &["S = 0"]);
    bad_input(d, "experiment imde --seeds 0", &["seeds"]);
    bad_input(d, "experiment conservation --y0 1,2,3", &["start point"]);
}
