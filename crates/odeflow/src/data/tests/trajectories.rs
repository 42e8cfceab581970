use crate::data::trajectories::reference_flow;
use crate::data::{DataError, Sampling, TrajectoryConfig};
use crate::error::ArgError;
use crate::solve::Method;
use crate::state::Batch;
use crate::systems::{BuiltinSystem, System};

fn max_diff(a: &Batch<f64>, b: &Batch<f64>) -> f64 {
    a.as_slice()
        .iter()
        .zip(b.as_slice())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

fn small(system: &str, train: usize, test: usize) -> TrajectoryConfig {
    TrajectoryConfig {
        train,
        test,
        ..TrajectoryConfig::for_system(system).unwrap()
    }
}

#[test]
fn pendulum_pairs_are_accurate_and_conserve_energy() {
    let cfg = TrajectoryConfig::for_system("pendulum").unwrap();
    assert_eq!(
        (
            cfg.t,
            cfg.train,
            cfg.test,
            cfg.method.as_str(),
            cfg.substeps
        ),
        (0.04, 10_000, 2_000, "verlet6", 10)
    );
    let d = cfg.generate::<f64>().unwrap();
    let (tr, te) = (&d.data.train, &d.data.test);
    assert_eq!(
        (tr.x().rows(), tr.x().cols(), tr.y().rows(), te.len()),
        (10_000, 2, 10_000, 2_000)
    );
    assert_eq!(tr.x_names(), &["p", "q"]);
    assert_eq!(tr.y_names(), &["p_T", "q_T"]);
    for row in tr.x().iter_rows().chain(te.x().iter_rows()) {
        assert!(row[0].abs() <= 3.8 && row[1].abs() <= 1.2);
    }
    // The box is filled: extreme draws near its corners.
    let pmax = tr.x().iter_rows().map(|r| r[0]).fold(f64::MIN, f64::max);
    assert!(pmax > 3.75);
    // Against a 20× finer verlet6 reference, and an independent rk4 one.
    let sys = BuiltinSystem::from_name("pendulum").unwrap();
    let x = te.x();
    let fine = reference_flow(&sys, &Method::from_name("verlet6").unwrap(), x, 0.04, 200).unwrap();
    let err = max_diff(te.y(), &fine);
    assert!(err <= 1e-10, "verlet6 × 10 vs × 200: {err:e}");
    let rk = reference_flow(&sys, &Method::from_name("rk4").unwrap(), x, 0.04, 400).unwrap();
    assert!(max_diff(te.y(), &rk) <= 1e-10);
    // Energy H = p²/2 − 10 cos q is the same at both ends of every pair.
    let drift = tr
        .x()
        .iter_rows()
        .zip(tr.y().iter_rows())
        .map(|(a, b)| (sys.invariants(a)[0] - sys.invariants(b)[0]).abs())
        .fold(0.0, f64::max);
    assert!(drift <= 1e-11, "energy drift {drift:e}");
}

#[test]
fn seeding_and_scalar_types() {
    let cfg = small("pendulum", 50, 20);
    let a = cfg.generate::<f64>().unwrap();
    assert_eq!(a.data.train, cfg.generate::<f64>().unwrap().data.train);
    let other = TrajectoryConfig {
        seed: 1,
        ..cfg.clone()
    }
    .generate::<f64>()
    .unwrap();
    assert_ne!(other.data.train.x(), a.data.train.x());
    assert_ne!(a.data.train.x().row(0), a.data.test.x().row(0));
    // The first 50 training pairs do not depend on the test count.
    let more = TrajectoryConfig {
        test: 70,
        ..cfg.clone()
    }
    .generate::<f64>()
    .unwrap();
    assert_eq!(more.data.train, a.data.train);
    let f = cfg.generate::<f32>().unwrap();
    assert_eq!(f.data.train.y(), &a.data.train.y().cast::<f32>());
}

#[test]
fn damped_cubic_reference() {
    let cfg = small("damped-cubic", 300, 10);
    assert_eq!(
        (cfg.t, cfg.method.as_str(), cfg.substeps),
        (0.02, "rk4", 100)
    );
    let d = cfg.generate::<f64>().unwrap();
    for row in d.data.train.x().iter_rows() {
        assert!(row.iter().all(|v| v.abs() <= 2.2));
    }
    let sys = BuiltinSystem::from_name("damped-cubic").unwrap();
    let x = d.data.train.x();
    let fine = reference_flow(&sys, &Method::from_name("rk4").unwrap(), x, 0.02, 1000).unwrap();
    let err = max_diff(d.data.train.y(), &fine);
    assert!(err <= 1e-11, "rk4 × 100 vs × 1000: {err:e}");
    // The flow moves the points by about T·|f(x)|.
    let moved = max_diff(d.data.train.y(), x);
    assert!(moved > 0.1, "{moved}");
}

#[test]
fn lorenz_trajectory_pairs() {
    let cfg = TrajectoryConfig::for_system("lorenz").unwrap();
    assert_eq!(
        cfg.sampling,
        Sampling::Trajectory {
            x0: vec![-0.8, 0.7, 2.6]
        }
    );
    let d = cfg.generate::<f64>().unwrap();
    let (tr, te) = (&d.data.train, &d.data.test);
    assert_eq!((tr.len(), te.len(), tr.x().cols()), (250, 250, 3));
    assert_eq!(tr.x().row(0), &[-0.8, 0.7, 2.6]);
    for k in 0..249 {
        assert_eq!(tr.y().row(k), tr.x().row(k + 1), "pairs are consecutive");
    }
    assert_eq!(
        te.x().row(0),
        tr.y().row(249),
        "the test pairs continue the trajectory"
    );
    // Each pair against a 20× finer rk4 reference.
    let sys = BuiltinSystem::from_name("lorenz").unwrap();
    let fine =
        reference_flow(&sys, &Method::from_name("rk4").unwrap(), tr.x(), 0.04, 2000).unwrap();
    let err = max_diff(tr.y(), &fine);
    assert!(err <= 1e-9, "rk4 × 100 vs × 2000: {err:e}");
    // The trajectory stays on the scaled attractor (a box of size about 3).
    assert!(tr
        .x()
        .as_slice()
        .iter()
        .chain(te.x().as_slice())
        .all(|v| v.abs() < 6.0));
}

#[test]
fn configs_from_toml() {
    let c = TrajectoryConfig::from_toml("system = \"pendulum\"").unwrap();
    assert_eq!(c, TrajectoryConfig::for_system("pendulum").unwrap());
    let c =
        TrajectoryConfig::from_toml("system = \"cubic\"\ntrain = 5\nT = 0.1\nseed = 4").unwrap();
    assert_eq!(
        (c.system.as_str(), c.train, c.test, c.t, c.seed),
        ("damped-cubic", 5, 2000, 0.1, 4)
    );
    let c = TrajectoryConfig::from_toml("system = \"pendulum\"\nmethod = \"rk4\"").unwrap();
    assert_eq!(c.substeps, 100);
    // A system without a preset: sampling and t are required; here checked against the
    // exact solution of the harmonic oscillator.
    let text = "system = \"harmonic\"\nt = 0.5\ntrain = 40\ntest = 4\n[sampling]\nkind = \"box\"\nlo = [-1, -1]\nhi = [1, 1]";
    let c = TrajectoryConfig::from_toml(text).unwrap();
    assert_eq!((c.method.as_str(), c.substeps), ("verlet6", 10));
    let d = c.generate::<f64>().unwrap();
    let sys = BuiltinSystem::from_name("harmonic").unwrap();
    for (x, y) in d
        .data
        .train
        .x()
        .iter_rows()
        .zip(d.data.train.y().iter_rows())
    {
        let exact = sys.exact(0.5, x).unwrap();
        assert!((exact[0] - y[0]).abs() < 1e-9 && (exact[1] - y[1]).abs() < 1e-9);
    }
    let round = toml::to_string(&c).unwrap();
    assert_eq!(TrajectoryConfig::from_toml(&round).unwrap(), c);

    let bad = |text: &str, needle: &str| {
        let e = TrajectoryConfig::from_toml(text).unwrap_err().to_string();
        assert!(e.contains(needle), "{text}: {e}");
    };
    bad("system = \"harmonic\"", "give both `sampling` and `t`");
    bad("system = \"pendulm\"", "unknown system 'pendulm'");
    bad("system = \"pendulum\"\nT = -1.0", "t = -1");
    bad("system = \"pendulum\"\nsubsteps = 0", "substeps");
    bad("system = \"pendulum\"\ntrian = 4", "trian");
    bad(
        "system = \"damped-cubic\"\nmethod = \"verlet6\"",
        "not a separable Hamiltonian",
    );
    bad(
        "system = \"pendulum\"\nmethod = \"rk5\"",
        "unknown method 'rk5'",
    );
    bad(
        "system = \"pendulum\"\n[sampling]\nkind = \"box\"\nlo = [0]\nhi = [1]",
        "box lower corner lo should have 2",
    );
    bad(
        "system = \"pendulum\"\n[sampling]\nkind = \"box\"\nlo = [0, 2]\nhi = [1, 1]",
        "lo[1] = 2",
    );
    bad(
        "system = \"lorenz\"\n[sampling]\nkind = \"trajectory\"\nx0 = [1, 2]",
        "initial state x0",
    );
}

#[test]
fn failed_reference_integration_is_reported() {
    // Explicit Euler far beyond its stability limit on a stiff linear system blows up.
    let cfg = TrajectoryConfig {
        system: "linear".into(),
        sampling: Sampling::Trajectory { x0: vec![1.0] },
        t: 1e6,
        train: 400,
        test: 0,
        method: "euler".into(),
        substeps: 1,
        seed: 0,
    };
    match cfg.generate::<f64>() {
        Err(DataError::Solve(msg)) => assert!(msg.contains("non-finite"), "{msg}"),
        other => panic!(
            "expected a solve failure, got {:?}",
            other.map(|d| d.config)
        ),
    }
    assert!(matches!(
        TrajectoryConfig::for_system("kepler"),
        Err(ArgError::Unknown { .. })
    ));
}
