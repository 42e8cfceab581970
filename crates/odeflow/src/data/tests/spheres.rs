use crate::data::spheres::SPHERE_SHELLS;
use crate::data::{shell_counts, spheres, Dataset, SpheresConfig};

fn norms(ds: &Dataset<f64>) -> Vec<f64> {
    ds.inputs()
        .iter_rows()
        .map(|r| r.iter().map(|v| v * v).sum::<f64>().sqrt())
        .collect()
}

/// Shell index of each point, checking that its radius lies inside that shell and that its
/// label is the shell's.
fn shells(ds: &Dataset<f64>) -> Vec<usize> {
    norms(ds)
        .iter()
        .zip(ds.labels())
        .map(|(&r, &l)| {
            let k = SPHERE_SHELLS
                .iter()
                .position(|&(lo, hi, _)| r >= lo - 1e-12 && r <= hi + 1e-12)
                .unwrap_or_else(|| panic!("radius {r} outside every shell"));
            assert_eq!(l, SPHERE_SHELLS[k].2, "label of a point of radius {r}");
            k
        })
        .collect()
}

#[test]
fn radii_bands_labels_and_exact_counts() {
    let data = SpheresConfig::default().generate::<f64>().unwrap();
    assert_eq!((data.train.len(), data.test.len()), (2000, 1000));
    assert_eq!(data.train.sample_shape(), &[1, 2]);
    for (ds, n) in [(&data.train, 2000), (&data.test, 1000)] {
        let s = shells(ds);
        let count = |k| s.iter().filter(|&&v| v == k).count();
        assert_eq!([count(0), count(1), count(2)], [n / 4, n / 2, n / 4]);
        assert_eq!(ds.class_counts(), vec![n / 2, n / 2]);
        // Shuffled: the shells are interleaved, not in blocks.
        assert!(s[..n / 4].iter().any(|&k| k != 0));
        // Radii fill their bands: smallest and largest close to the band edges.
        let r = norms(ds);
        let inner: Vec<f64> = r.iter().copied().filter(|&v| v < 0.2).collect();
        let lo = inner.iter().copied().fold(1.0, f64::min);
        let hi = inner.iter().copied().fold(0.0, f64::max);
        assert!(lo < 0.105 && hi > 0.145, "inner band covered: [{lo}, {hi}]");
    }
}

#[test]
fn counts_for_sizes_not_divisible_by_four() {
    for n in 0..40 {
        let [a, b, c] = shell_counts(n);
        assert_eq!(a + b + c, n);
        assert_eq!(a + c, n / 2, "label 0 gets ⌊n/2⌋");
        assert!(a.abs_diff(c) <= 1);
        if n % 4 == 0 {
            assert_eq!([a, b, c], [n / 4, n / 2, n / 4]);
        }
    }
    assert_eq!(shell_counts(7), [1, 4, 2]);
    let ds = spheres::<f64>(3, 7, 1).unwrap();
    let s = shells(&ds);
    assert_eq!(
        [0, 1, 2].map(|k| s.iter().filter(|&&v| v == k).count()),
        [1, 4, 2]
    );
}

#[test]
fn seeding() {
    let a = SpheresConfig::default().generate::<f64>().unwrap();
    let b = SpheresConfig::default().generate::<f64>().unwrap();
    assert_eq!(a, b);
    let c = SpheresConfig {
        seed: 1,
        ..SpheresConfig::default()
    }
    .generate::<f64>()
    .unwrap();
    assert_ne!(a.train.inputs(), c.train.inputs());
    // Training and test sets come from independent streams.
    assert_ne!(a.train.inputs().row(0), a.test.inputs().row(0));
    let f = SpheresConfig::default().generate::<f32>().unwrap();
    assert_eq!(f.train.inputs(), &a.train.inputs().cast::<f32>());
}

#[test]
fn directions_are_uniform() {
    for (dim, n) in [(2, 4000), (10, 2000), (900, 200)] {
        let ds = spheres::<f64>(dim, n, 11).unwrap();
        let r = norms(&ds);
        shells(&ds);
        let mut mean = vec![0.0; dim];
        let mut second = vec![0.0; dim];
        for (row, rn) in ds.inputs().iter_rows().zip(&r) {
            for j in 0..dim {
                let u = row[j] / rn;
                mean[j] += u / n as f64;
                second[j] += u * u / n as f64;
            }
        }
        // Each component of a uniform unit vector has mean 0 and variance 1/dim.
        let sd = (1.0 / (dim * n) as f64).sqrt();
        let worst = mean.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        assert!(
            worst < 5.0 * sd,
            "dim {dim}: mean direction component {worst} (sd {sd})"
        );
        let total: f64 = second.iter().sum();
        assert!((total - 1.0).abs() < 1e-9);
        if dim <= 10 {
            for s in &second {
                assert!(
                    (s * dim as f64 - 1.0).abs() < 0.15,
                    "dim {dim}: E[u_j²]·d = {}",
                    s * dim as f64
                );
            }
        }
    }
}

#[test]
fn names_and_bad_arguments() {
    assert_eq!(SpheresConfig::from_name("sphere2").unwrap().dim, 2);
    assert_eq!(SpheresConfig::from_name("spheres900").unwrap().dim, 900);
    for bad in ["sphere", "sphere0", "cube3", "sphere2x"] {
        let e = SpheresConfig::from_name(bad).unwrap_err();
        assert!(e.to_string().contains(bad), "{e}");
    }
    assert!(spheres::<f64>(0, 10, 0).is_err());
    let cfg: SpheresConfig = toml::from_str("dim = 3\ntrain = 8").unwrap();
    assert_eq!((cfg.dim, cfg.train, cfg.test), (3, 8, 1000));
    assert!(toml::from_str::<SpheresConfig>("dims = 3").is_err());
}
