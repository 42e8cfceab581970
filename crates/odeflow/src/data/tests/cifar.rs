use super::write_file;
use crate::data::cifar::CIFAR_RECORD_BYTES;
use crate::data::{
    load_cifar10, parse_cifar_records, ChannelNorm, Cifar10Options, CropFlip, DataError, Dataset,
};
use crate::state::Batch;

/// `n` records: label `(i + offset) mod 10`; pixel (c, y, x) of record i = (i + 3c + 5y + 7x) mod 256.
fn records(n: usize, offset: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(n * CIFAR_RECORD_BYTES);
    for i in 0..n {
        v.push(((i + offset) % 10) as u8);
        for c in 0..3 {
            for y in 0..32 {
                for x in 0..32 {
                    v.push(((i + 3 * c + 5 * y + 7 * x) % 256) as u8);
                }
            }
        }
    }
    v
}

#[test]
fn standard_folder_layout_and_pixels() {
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("cifar-10-batches-bin");
    std::fs::create_dir(&nested).unwrap();
    write_file(&nested, "data_batch_1.bin", &records(4, 0));
    write_file(&nested, "data_batch_3.bin", &records(3, 4));
    write_file(&nested, "test_batch.bin", &records(5, 0));
    let c = load_cifar10::<f32>(dir.path(), &Cifar10Options::default()).unwrap();
    assert!(!c.split);
    assert_eq!(c.train_files.len(), 2);
    assert_eq!((c.data.train.len(), c.data.test.len()), (7, 5));
    assert_eq!(c.data.train.sample_shape(), &[3, 32, 32]);
    assert_eq!(c.data.train.labels(), &[0, 1, 2, 3, 4, 5, 6]);
    // Record 5 of the training set is record 1 of data_batch_3: (c, y, x) at c·1024 + 32y + x.
    let row = c.data.train.inputs().row(5);
    for (ch, y, x) in [(0, 0, 0), (1, 2, 31), (2, 31, 5)] {
        let want = ((1 + 3 * ch + 5 * y + 7 * x) % 256) as f32 / 255.0;
        assert_eq!(row[ch * 1024 + 32 * y + x], want);
    }
}

#[test]
fn subsets_of_the_files() {
    let dir = tempfile::tempdir().unwrap();
    write_file(dir.path(), "test_batch.bin", &records(20, 0));
    let opts = Cifar10Options {
        holdout: 5,
        seed: 9,
    };
    let c = load_cifar10::<f64>(dir.path(), &opts).unwrap();
    assert!(c.split && c.train_files.is_empty());
    assert_eq!((c.data.train.len(), c.data.test.len()), (15, 5));
    std::fs::remove_file(dir.path().join("test_batch.bin")).unwrap();
    write_file(dir.path(), "data_batch_2.bin", &records(8, 0));
    let c = load_cifar10::<f64>(dir.path(), &opts).unwrap();
    assert!(c.split && c.test_file.is_none());
    assert_eq!((c.data.train.len(), c.data.test.len()), (3, 5));
    let empty = tempfile::tempdir().unwrap();
    let e = load_cifar10::<f64>(empty.path(), &opts).unwrap_err();
    assert!(matches!(e, DataError::MissingFiles { .. }));
    let msg = e.to_string();
    assert!(
        msg.contains("data_batch_5.bin") && msg.contains("test_batch.bin"),
        "{msg}"
    );
}

#[test]
fn corrupt_files() {
    let dir = tempfile::tempdir().unwrap();
    let good = records(3, 0);
    let p = write_file(dir.path(), "test_batch.bin", &good[..good.len() - 100]);
    let e = load_cifar10::<f64>(dir.path(), &Cifar10Options::default()).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("test_batch.bin") && msg.contains("2 whole records and 2973 bytes left over"),
        "{msg}"
    );
    // Records without a label byte (3072 bytes each): wrong size.
    let unlabelled: Vec<u8> = vec![0; 3072 * 4];
    let e = parse_cifar_records::<f64>(&unlabelled, &p).unwrap_err();
    assert!(
        e.to_string()
            .contains("not a multiple of the CIFAR-10 record size 3073"),
        "{e}"
    );
    assert!(parse_cifar_records::<f64>(&[], &p)
        .unwrap_err()
        .to_string()
        .contains("empty"));
    let mut bad = records(3, 0);
    bad[2 * CIFAR_RECORD_BYTES] = 10;
    match parse_cifar_records::<f64>(&bad, &p).unwrap_err() {
        DataError::LabelOutOfRange { index, label, .. } => assert_eq!((index, label), (2, 10)),
        e => panic!("{e}"),
    }
}

fn image_set(n: usize) -> Dataset<f64> {
    let rec = records(n, 0);
    parse_cifar_records(&rec, std::path::Path::new("mem")).unwrap()
}

#[test]
fn channel_normalisation() {
    let mut ds = image_set(6);
    let orig = ds.clone();
    let fitted = ChannelNorm::fit(&ds).unwrap();
    fitted.apply(&mut ds).unwrap();
    let after = ChannelNorm::fit(&ds).unwrap();
    for c in 0..3 {
        assert!(
            after.mean[c].abs() < 1e-12 && (after.std[c] - 1.0).abs() < 1e-12,
            "{after:?}"
        );
    }
    fitted.invert_batch(ds.inputs_mut()).unwrap();
    let err = ds
        .inputs()
        .as_slice()
        .iter()
        .zip(orig.inputs().as_slice())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(err < 1e-12);
    // Known constants; pixel 0 of channel 1 maps to (v − 0.4822)/0.2435.
    let mut one = image_set(1);
    let v = one.inputs().row(0)[1024];
    ChannelNorm::cifar10().apply(&mut one).unwrap();
    assert!((one.inputs().row(0)[1024] - (v - 0.4822) / 0.2435).abs() < 1e-12);
    assert!(
        ChannelNorm::mnist().apply(&mut one).is_err(),
        "1 channel vs 3"
    );
    assert!(ChannelNorm::new(vec![0.0, 0.0], vec![1.0, 0.0])
        .unwrap_err()
        .to_string()
        .contains("std[1]"));
    assert!(ChannelNorm::new(vec![0.0], vec![1.0, 1.0]).is_err());
}

#[test]
fn crop_and_flip() {
    let ds = image_set(40);
    let src = ds.inputs();
    // No padding, no flip: identity.
    let mut b = src.clone();
    CropFlip::new(&[3, 32, 32], 0, false, 1)
        .unwrap()
        .apply(&mut b)
        .unwrap();
    assert_eq!(&b, src);
    // Each augmented image is a shifted window (|dy|, |dx| ≤ 4, zeros outside), maybe mirrored.
    let mut b = src.clone();
    let mut aug = CropFlip::<f64>::cifar10(7);
    aug.apply(&mut b).unwrap();
    let mut shifts = std::collections::HashSet::new();
    let mut flips = 0;
    for i in 0..40 {
        let (s, out) = (src.row(i), b.row(i));
        let found = (-4isize..=4)
            .flat_map(|dy| (-4isize..=4).flat_map(move |dx| [(dy, dx, false), (dy, dx, true)]))
            .find(|&(dy, dx, m)| {
                (0..3 * 32 * 32).all(|k| {
                    let (c, y, x) = (k / 1024, (k / 32) % 32, k % 32);
                    let xx = if m { 31 - x } else { x };
                    let (sy, sx) = (y as isize + dy, xx as isize + dx);
                    let want = if (0..32).contains(&sy) && (0..32).contains(&sx) {
                        s[c * 1024 + sy as usize * 32 + sx as usize]
                    } else {
                        0.0
                    };
                    out[k] == want
                })
            });
        let (dy, dx, m) = found.unwrap_or_else(|| panic!("sample {i} is not a padded crop/flip"));
        shifts.insert((dy, dx));
        flips += m as usize;
    }
    assert!(shifts.len() > 10, "shifts vary: {shifts:?}");
    assert!((8..=32).contains(&flips), "about half flipped: {flips}");
    // Seeded.
    let mut again = src.clone();
    CropFlip::<f64>::cifar10(7).apply(&mut again).unwrap();
    assert_eq!(again, b);
    let mut other = src.clone();
    CropFlip::<f64>::cifar10(8).apply(&mut other).unwrap();
    assert_ne!(other, b);
    assert!(aug.apply(&mut Batch::zeros(2, 10)).is_err());
    assert!(CropFlip::<f64>::new(&[3, 32], 4, true, 0).is_err());
}
