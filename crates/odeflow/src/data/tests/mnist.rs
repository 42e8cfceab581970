use std::path::{Path, PathBuf};

use super::write_file;
use crate::data::{load_mnist, read_idx_pair, DataError, MnistOptions, MnistSource};

/// The MNIST test files the folder `$ODEFLOW_TEST_MNIST` names (`.ci/run` sets it;
/// relative paths from the workspace root).
fn shared_mnist() -> Option<PathBuf> {
    let Some(v) = std::env::var_os("ODEFLOW_TEST_MNIST") else {
        println!("skipping: ODEFLOW_TEST_MNIST is not set");
        return None;
    };
    let dir = PathBuf::from(v);
    let dir = if dir.is_relative() {
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")).join(dir)
    } else {
        dir
    };
    assert!(
        dir.join("t10k-images-idx3-ubyte.gz").is_file(),
        "ODEFLOW_TEST_MNIST={} holds no MNIST test files",
        dir.display()
    );
    Some(dir)
}

/// IDX bytes: magic `0x000008nd`, big-endian dims, data.
fn idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 0, 8, dims.len() as u8];
    for d in dims {
        v.extend_from_slice(&d.to_be_bytes());
    }
    v.extend_from_slice(data);
    v
}

/// `n` synthetic 4×3 images (pixel k of image i = (7 i + k) mod 256) and labels `i mod 10`.
fn images(n: u32) -> (Vec<u8>, Vec<u8>) {
    let px: Vec<u8> = (0..n * 12)
        .map(|k| ((7 * (k / 12) + k % 12) % 256) as u8)
        .collect();
    let lab: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
    (idx(&[n, 4, 3], &px), idx(&[n], &lab))
}

#[test]
fn shared_test_set() {
    let Some(dir) = shared_mnist() else { return };
    let ds = read_idx_pair::<f32>(
        &dir.join("t10k-images-idx3-ubyte.gz"),
        &dir.join("t10k-labels-idx1-ubyte.gz"),
        10,
    )
    .unwrap();
    assert_eq!(ds.len(), 10_000);
    assert_eq!(ds.sample_shape(), &[1, 28, 28]);
    assert_eq!(ds.inputs().cols(), 784);
    assert_eq!(&ds.labels()[..5], &[7, 2, 1, 0, 4]);
    assert_eq!(
        ds.class_counts(),
        vec![980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    );
    let px = ds.inputs().as_slice();
    let (lo, hi) = px
        .iter()
        .fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
    assert_eq!((lo, hi), (0.0, 1.0));
    // Pixels are multiples of 1/255, and images are mostly background.
    assert!(px
        .iter()
        .take(784 * 10)
        .all(|v| ((v * 255.0).round() - v * 255.0).abs() < 1e-4));
    let mean = px.iter().map(|&v| v as f64).sum::<f64>() / px.len() as f64;
    assert!((0.12..0.15).contains(&mean), "mean pixel {mean}");

    let m = load_mnist::<f32>(&dir, &MnistOptions::default()).unwrap();
    assert_eq!(
        m.source,
        MnistSource::TestSplit {
            train: 8000,
            test: 2000,
            seed: 0
        }
    );
    assert_eq!((m.data.train.len(), m.data.test.len()), (8000, 2000));
    let opts = MnistOptions {
        holdout: 1000,
        seed: 5,
        ..MnistOptions::default()
    };
    let m2 = load_mnist::<f32>(&dir, &opts).unwrap();
    assert_eq!((m2.data.train.len(), m2.data.test.len()), (9000, 1000));
}

#[test]
fn standard_folder_raw_and_gzip() {
    let dir = tempfile::tempdir().unwrap();
    let (ti, tl) = images(30);
    let (si, sl) = images(12);
    write_file(dir.path(), "train-images-idx3-ubyte", &ti);
    write_file(dir.path(), "train-labels-idx1-ubyte.gz", &tl);
    write_file(dir.path(), "t10k-images.idx3-ubyte", &si);
    write_file(dir.path(), "t10k-labels-idx1-ubyte.gz", &sl);
    let m = load_mnist::<f64>(dir.path(), &MnistOptions::default()).unwrap();
    assert_eq!(m.source, MnistSource::Standard);
    assert_eq!((m.data.train.len(), m.data.test.len()), (30, 12));
    assert_eq!(m.data.train.sample_shape(), &[1, 4, 3]);
    let row = m.data.train.inputs().row(3);
    for (k, v) in row.iter().enumerate() {
        assert_eq!(*v, ((21 + k) % 256) as f64 / 255.0);
    }
    assert_eq!(m.data.test.labels()[11], 1);
}

#[test]
fn test_files_only_give_a_seeded_split() {
    let dir = tempfile::tempdir().unwrap();
    let (si, sl) = images(50);
    write_file(dir.path(), "t10k-images-idx3-ubyte.gz", &si);
    write_file(dir.path(), "t10k-labels-idx1-ubyte", &sl);
    let opts = MnistOptions {
        holdout: 10,
        seed: 3,
        ..MnistOptions::default()
    };
    let a = load_mnist::<f64>(dir.path(), &opts).unwrap();
    assert_eq!((a.data.train.len(), a.data.test.len()), (40, 10));
    let b = load_mnist::<f64>(dir.path(), &opts).unwrap();
    assert_eq!(a.data, b.data);
    let too_many = MnistOptions {
        holdout: 51,
        ..opts
    };
    assert!(matches!(
        load_mnist::<f64>(dir.path(), &too_many),
        Err(DataError::Arg(_))
    ));
}

fn err_of(dir: &Path) -> String {
    load_mnist::<f64>(dir, &MnistOptions::default())
        .unwrap_err()
        .to_string()
}

#[test]
fn missing_files_are_listed() {
    let dir = tempfile::tempdir().unwrap();
    let e = err_of(dir.path());
    assert!(
        e.contains("t10k-images-idx3-ubyte.gz") && e.contains("t10k-images-idx3-ubyte,"),
        "{e}"
    );
    let (si, sl) = images(5);
    write_file(dir.path(), "t10k-images-idx3-ubyte", &si);
    write_file(dir.path(), "t10k-labels-idx1-ubyte", &sl);
    write_file(dir.path(), "train-images-idx3-ubyte", &si);
    let e = err_of(dir.path());
    assert!(
        e.contains("training labels") && e.contains("train-labels-idx1-ubyte.gz"),
        "{e}"
    );
    let e = err_of(&dir.path().join("nowhere"));
    assert!(e.contains("nowhere"), "{e}");
}

#[test]
fn corrupt_files_are_named_and_explained() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (si, sl) = images(5);
    let labels = write_file(d, "t10k-labels-idx1-ubyte", &sl);
    let load = || load_mnist::<f64>(d, &MnistOptions::default()).unwrap_err();

    // Labels where images belong: bad magic.
    write_file(d, "t10k-images-idx3-ubyte", &sl);
    let e = load();
    assert!(matches!(e, DataError::BadMagic { .. }));
    let msg = e.to_string();
    assert!(
        msg.contains("t10k-images-idx3-ubyte")
            && msg.contains("0x00000801")
            && msg.contains("0x00000803"),
        "{msg}"
    );

    // Truncated: header says 5·12 pixels, 7 are missing.
    write_file(d, "t10k-images-idx3-ubyte", &si[..si.len() - 7]);
    match load() {
        DataError::Truncated {
            path,
            expected,
            got,
        } => {
            assert_eq!((expected, got), (16 + 60, 16 + 53));
            assert!(path.ends_with("t10k-images-idx3-ubyte"));
        }
        e => panic!("{e}"),
    }
    // Header cut short.
    write_file(d, "t10k-images-idx3-ubyte", &si[..9]);
    assert!(matches!(
        load(),
        DataError::Truncated {
            expected: 16,
            got: 9,
            ..
        }
    ));
    // Trailing bytes.
    let mut long = si.clone();
    long.push(0);
    write_file(d, "t10k-images-idx3-ubyte", &long);
    assert!(matches!(
        load(),
        DataError::TrailingData {
            expected: 76,
            got: 77,
            ..
        }
    ));

    // Image and label counts disagree.
    write_file(d, "t10k-images-idx3-ubyte", &si);
    write_file(d, "t10k-labels-idx1-ubyte", &idx(&[4], &[0, 1, 2, 3]));
    let msg = load().to_string();
    assert!(
        msg.contains("5 images but 4 labels") && msg.contains("t10k-labels-idx1-ubyte"),
        "{msg}"
    );

    // Label out of range.
    write_file(d, "t10k-labels-idx1-ubyte", &idx(&[5], &[0, 1, 12, 3, 4]));
    match load() {
        DataError::LabelOutOfRange {
            index,
            label,
            num_classes,
            ..
        } => assert_eq!((index, label, num_classes), (2, 12, 10)),
        e => panic!("{e}"),
    }
    std::fs::remove_file(labels).unwrap();

    // Corrupt gzip: a flipped byte in the deflate stream, or a cut-off stream.
    write_file(d, "t10k-labels-idx1-ubyte", &sl);
    let gz = write_file(d, "t10k-images-idx3-ubyte.gz", &si);
    let mut bytes = std::fs::read(&gz).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&gz, &bytes).unwrap();
    let e = load();
    assert!(matches!(e, DataError::Gzip { .. }), "{e}");
    assert!(e.to_string().contains("t10k-images-idx3-ubyte.gz"));
    let good = write_file(d, "t10k-images-idx3-ubyte.gz", &si);
    let bytes = std::fs::read(&good).unwrap();
    std::fs::write(&good, &bytes[..bytes.len() - 6]).unwrap();
    let e = load();
    assert!(matches!(e, DataError::Gzip { .. }), "{e}");
}
