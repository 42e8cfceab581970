//! End-to-end tests of the `odeflow` binary: results on disk and stdout, plots, exit codes,
//! and one-line errors that name the offending value.

mod common;

use common::{floats, json_file, odeflow, ok_json, one_line_failure, stderr};
use serde_json::Value;

#[test]
fn solve_writes_json_with_every_key_and_a_png() {
    let dir = tempfile::tempdir().unwrap();
    let out = odeflow(
        dir.path(),
        "solve --system pendulum --method verlet --dt 0.01 --t1 10 \
         --out res/pendulum.json --plot res/pendulum.png",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let line = String::from_utf8_lossy(&out.stdout);
    assert!(
        line.starts_with("solved pendulum with verlet: 1000 steps") && line.lines().count() == 1,
        "a one-line summary on stdout, the JSON in --out: {line}"
    );
    let r = json_file(&dir.path().join("res/pendulum.json"));
    for key in [
        "final",
        "t",
        "y",
        "stats",
        "invariant_drift",
        "system",
        "method",
        "state_names",
    ] {
        assert!(r.get(key).is_some(), "missing key {key}");
    }
    assert!(r.get("error").is_none());
    assert_eq!(r["system"], "pendulum");
    assert_eq!(r["method"], "verlet");
    assert_eq!(r["state_names"], serde_json::json!(["p", "q"]));
    for key in ["nfe", "steps", "accepted", "rejected", "h_min", "h_max"] {
        assert!(r["stats"][key].is_number(), "stats.{key}");
    }
    assert_eq!(r["stats"]["accepted"], 1000);
    assert_eq!(r["stats"]["rejected"], 0);
    // Without save options every step is saved: t0 and the 1000 steps.
    let t = floats(&r["t"]);
    let y = r["y"].as_array().unwrap();
    assert_eq!(t.len(), 1001);
    assert_eq!(y.len(), 1001);
    assert_eq!((t[0], t[1000]), (0.0, 10.0));
    assert_eq!(floats(&y[0]), vec![0.0, 1.0]);
    assert_eq!(floats(&y[1000]), floats(&r["final"]));
    // Störmer–Verlet keeps the energy error O(h²) and bounded: about 1e-3 at h = 0.01.
    let drift = r["invariant_drift"]["energy"].as_f64().unwrap();
    assert!(drift > 1e-5 && drift < 5e-3, "energy drift {drift}");
    let png = std::fs::read(dir.path().join("res/pendulum.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert!(png.len() > 10_000, "the PNG is suspiciously small");
    let names: Vec<_> = std::fs::read_dir(dir.path().join("res"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "temporary files left behind: {names:?}");
}

#[test]
fn solve_is_accurate_and_prints_on_stdout_without_out() {
    let dir = tempfile::tempdir().unwrap();
    // One period of the harmonic oscillator with RK4: back to y0 up to O(h⁴).
    let tau = std::f64::consts::TAU;
    let cmdline = format!(
        "solve --system harmonic --method rk4 --dt 0.01 --t1 {tau} --y0 0.5,-1 \
         --save-every 1 --quiet --json"
    );
    let out = odeflow(dir.path(), &cmdline);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        out.stderr.is_empty(),
        "--quiet prints nothing: {}",
        stderr(&out)
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    let fin = floats(&r["final"]);
    assert!(
        (fin[0] - 0.5).abs() < 1e-8 && (fin[1] + 1.0).abs() < 1e-8,
        "{fin:?}"
    );
    let t = floats(&r["t"]);
    assert_eq!(t, vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, tau]);
    assert!(r["invariant_drift"]["energy"].as_f64().unwrap() < 1e-9);
}

#[test]
fn adaptive_solve_meets_its_tolerance_at_t_eval() {
    let dir = tempfile::tempdir().unwrap();
    let r = ok_json(
        dir.path(),
        "solve --system linear --method dopri5 --rtol 1e-8 --atol 1e-10 \
         --t-eval 0,0.5,1 --y0 1,2",
    );
    assert_eq!(floats(&r["t"]), vec![0.0, 0.5, 1.0]);
    assert_eq!(r["stepping"]["kind"], "adaptive");
    for (t, y) in floats(&r["t"]).iter().zip(r["y"].as_array().unwrap()) {
        let y = floats(y);
        assert!((y[0] - (-t).exp()).abs() < 1e-7, "t = {t}: {y:?}");
        assert!((y[1] - 2.0 * (-t).exp()).abs() < 1e-7, "t = {t}: {y:?}");
    }
    assert!(
        r.get("invariant_drift").is_none(),
        "linear has no invariant"
    );
    assert!(r["stats"]["accepted"].as_u64().unwrap() > 3);
}

#[test]
fn a_user_tableau_matches_the_builtin_method() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("heun.toml"),
        "name = \"my-heun\"\norder = 2\nc = [0.0, 1.0]\na = [[], [1.0]]\nb = [0.5, 0.5]\n",
    )
    .unwrap();
    let base = "solve --system van-der-pol --dt 0.05 --t1 3";
    let user = ok_json(dir.path(), &format!("{base} --tableau heun.toml"));
    let builtin = ok_json(dir.path(), &format!("{base} --method heun"));
    assert_eq!(user["method"], "my-heun");
    assert_eq!(user["final"], builtin["final"]);
    assert_eq!(user["stats"]["nfe"], builtin["stats"]["nfe"]);
}

#[test]
fn f32_solves_agree_with_f64_to_single_precision() {
    let dir = tempfile::tempdir().unwrap();
    let base = "solve --system kepler --method rk4 --steps 200 --t1 3 --save-every 3";
    let a = ok_json(dir.path(), &format!("{base} --dtype f32"));
    let b = ok_json(dir.path(), &format!("{base} --dtype f64"));
    assert_eq!(a["dtype"], "f32");
    let (fa, fb) = (floats(&a["final"]), floats(&b["final"]));
    let diff = fa
        .iter()
        .zip(&fb)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max);
    assert!(diff > 0.0 && diff < 1e-4, "f32 vs f64 differ by {diff}");
}

#[test]
fn svg_plots_carry_the_labels() {
    let dir = tempfile::tempdir().unwrap();
    let out = odeflow(
        dir.path(),
        "solve --system lotka-volterra --method tsit5 --plot lv.svg --out lv.json",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let svg = std::fs::read_to_string(dir.path().join("lv.svg")).unwrap();
    assert!(svg.starts_with("<svg"));
    for text in [
        "lotka-volterra — tsit5",
        "phase portrait",
        "trajectory",
        "x",
        "y",
    ] {
        // plotters writes each text element's content on a line of its own.
        assert!(
            svg.contains(&format!("\n{text}\n</text>")),
            "the SVG lacks the label {text}"
        );
    }
}

#[test]
fn methods_json_lists_every_method() {
    let dir = tempfile::tempdir().unwrap();
    let listed = ok_json(dir.path(), "methods");
    common::ok(dir.path(), "methods --out listed.json");
    assert_eq!(listed, json_file(&dir.path().join("listed.json")));
    let listed = listed.as_array().unwrap();
    let catalogue = odeflow::solve::method_catalogue();
    assert_eq!(listed.len(), catalogue.len());
    for (row, info) in listed.iter().zip(&catalogue) {
        assert_eq!(row["name"], info.name.as_str());
        assert_eq!(row["order"], info.order);
        assert_eq!(row["stages"], info.stages);
        for key in ["kind", "fsal", "dense_output", "aliases"] {
            assert!(row.get(key).is_some(), "{} lacks {key}", info.name);
        }
    }
    let table = odeflow(dir.path(), "methods");
    let text = String::from_utf8(table.stdout).unwrap();
    assert_eq!(text.lines().count(), catalogue.len() + 1);
    for info in &catalogue {
        assert!(
            text.lines()
                .any(|l| l.split_whitespace().next() == Some(&info.name)),
            "{} missing from the table",
            info.name
        );
    }
}

#[test]
fn bad_inputs_fail_with_one_line_naming_the_value() {
    let p = "solve --system pendulum";
    let cases: Vec<(String, Vec<&str>)> = vec![
        (
            format!("{p} --method rk5 --dt 0.1"),
            vec!["'rk5'", "dopri5"],
        ),
        (
            "solve --system pendlum --method rk4 --dt 0.1".into(),
            vec!["'pendlum'", "pendulum"],
        ),
        (format!("{p} --method rk4 --dt 0"), vec!["--dt", "'0'"]),
        (format!("{p} --method rk4 --dt -1"), vec!["--dt", "'-1'"]),
        (
            format!("{p} --method dopri5 --rtol 0"),
            vec!["--rtol", "'0'"],
        ),
        (
            format!("{p} --method rk4 --dt 0.1 --y0 NaN,1"),
            vec!["--y0", "NaN"],
        ),
        (
            format!("{p} --method rk4 --dt 0.1 --y0 1,2,3"),
            vec!["--y0 1,2,3", "2 state components"],
        ),
        (
            "solve --system lorenz --method verlet --dt 0.01".into(),
            vec!["'verlet'", "'lorenz'", "separable"],
        ),
        (
            format!("{p} --method rk4 --rtol 1e-6"),
            vec!["--rtol", "'rk4'", "--dt"],
        ),
        (
            format!("{p} --method rk4 --dt 0.1 --t-eval 0,2,1"),
            vec!["t_eval[2] = 1", "monotone"],
        ),
        (
            format!("{p} --method rk4 --dt 0.1 --plot p.jpg"),
            vec!["p.jpg"],
        ),
        (
            format!("{p} --method rk4 --tableau missing.toml --dt 0.1"),
            vec!["--tableau"],
        ),
        (
            format!("{p} --tableau missing.toml --dt 0.1"),
            vec!["missing.toml"],
        ),
        ("solve --method rk4".into(), vec!["--system"]),
        (
            format!("{p} --method rk4 --dt 1e-7"),
            vec!["--dt", "--max-steps"],
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    for (cmdline, needles) in &cases {
        let out = odeflow(dir.path(), cmdline);
        one_line_failure(&out, 2, cmdline, needles);
        assert!(out.stdout.is_empty(), "{cmdline} printed a result");
    }
}

#[test]
fn a_solver_failure_keeps_the_partial_solution() {
    let dir = tempfile::tempdir().unwrap();
    let cmdline = "solve --system pendulum --method dopri5 --t1 1000 --max-steps 5 \
                   --out partial.json --plot partial.png";
    let out = odeflow(dir.path(), cmdline);
    let needles = [
        "t = ",
        "h = ",
        "step 5",
        "max_steps = 5",
        "partial.json",
        "--max-steps",
    ];
    one_line_failure(&out, 1, cmdline, &needles);
    let r = json_file(&dir.path().join("partial.json"));
    assert!(r["error"].as_str().unwrap().contains("max_steps = 5"));
    assert_eq!(r["stats"]["steps"], 5);
    let t_final = r["t_final"].as_f64().unwrap();
    assert!(t_final > 0.0 && t_final < 1000.0);
    assert_eq!(floats(&r["t"]).len(), 6, "t0 and the 5 accepted steps");
    assert_eq!(*floats(&r["t"]).last().unwrap(), t_final);
    assert!(dir.path().join("partial.png").exists());
}

#[test]
fn an_unwritable_out_path_is_refused_before_work_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("blocker"), "a file, not a folder").unwrap();
    let cmdline = "solve --system harmonic --method rk4 --dt 0.1 --out blocker/r.json";
    let out = odeflow(dir.path(), cmdline);
    one_line_failure(&out, 2, cmdline, &["'blocker' is a regular file"]);
}
