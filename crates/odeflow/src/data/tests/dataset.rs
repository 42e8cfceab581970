use crate::data::{derive_seed, split_indices, BatchOrder, Dataset, PairDataset};
use crate::error::ArgError;
use crate::state::Batch;

fn toy(n: usize) -> Dataset<f64> {
    // Sample i holds (i, 10 i, 100 i) so rows can be identified after shuffling.
    let data = (0..n)
        .flat_map(|i| [i as f64, 10.0 * i as f64, 100.0 * i as f64])
        .collect();
    Dataset::new(
        Batch::from_vec(n, 3, data).unwrap(),
        (0..n).map(|i| i % 3).collect(),
        vec![1, 3],
        3,
    )
    .unwrap()
}

#[test]
fn new_rejects_inconsistent_parts() {
    let b = Batch::<f64>::zeros(4, 6);
    assert!(Dataset::new(b.clone(), vec![0; 3], vec![6], 2).is_err());
    let e = Dataset::new(b.clone(), vec![0; 4], vec![2, 2], 2).unwrap_err();
    assert!(e.to_string().contains("[2, 2]"), "{e}");
    let e = Dataset::new(b.clone(), vec![0, 1, 2, 1], vec![2, 3], 2).unwrap_err();
    assert!(e.to_string().contains("labels[2] = 2"), "{e}");
    assert!(Dataset::new(b, vec![0, 1, 1, 0], vec![1, 2, 3], 2).is_ok());
}

#[test]
fn shuffled_batches_visit_every_sample_once_per_epoch() {
    let ds = toy(23);
    let mut it = ds.batches(5, false, Some(7)).unwrap();
    assert_eq!(it.order_mut().batches_per_epoch(), 5);
    let mut epochs = Vec::new();
    for _ in 0..3 {
        let mut seen = Vec::new();
        let mut sizes = Vec::new();
        while let Some(b) = it.next_batch() {
            sizes.push(b.inputs.rows());
            assert_eq!(b.labels.len(), b.inputs.rows());
            for (k, &i) in b.indices.iter().enumerate() {
                assert_eq!(b.inputs.row(k), ds.inputs().row(i));
                assert_eq!(b.labels[k], ds.labels()[i]);
            }
            seen.extend_from_slice(b.indices);
        }
        assert_eq!(sizes, vec![5, 5, 5, 5, 3]);
        let mut sorted = seen.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..23).collect::<Vec<_>>());
        assert_ne!(seen, sorted, "a shuffled epoch is not in the stored order");
        epochs.push(seen);
        it.next_epoch();
    }
    assert_ne!(epochs[0], epochs[1]);
    // Same seed: same batches; another seed: other batches; any epoch on its own.
    let replay = |seed: u64, epoch: u64| {
        let mut o = BatchOrder::new(23, 5, false, Some(seed)).unwrap();
        o.set_epoch(epoch);
        let mut v = Vec::new();
        while let Some(ix) = o.next_indices() {
            v.extend_from_slice(ix);
        }
        v
    };
    assert_eq!(replay(7, 0), epochs[0]);
    assert_eq!(replay(7, 2), epochs[2]);
    assert_ne!(replay(8, 0), epochs[0]);
}

#[test]
fn drop_last_unshuffled_and_buffer_reuse() {
    let ds = toy(23);
    let mut it = ds.batches(5, true, None).unwrap();
    assert_eq!(it.order_mut().batches_per_epoch(), 4);
    let mut all = Vec::new();
    let mut ptr = None;
    while let Some(b) = it.next_batch() {
        assert_eq!(b.inputs.rows(), 5);
        let p = b.inputs.as_slice().as_ptr();
        // The batch buffer is allocated once and reused.
        assert!(ptr.is_none() || ptr == Some(p));
        ptr = Some(p);
        all.extend_from_slice(b.indices);
    }
    assert_eq!(all, (0..20).collect::<Vec<_>>());
    assert!(matches!(
        ds.batches(0, false, None),
        Err(ArgError::Invalid { .. })
    ));
    // More samples per batch than in the set.
    let mut it = ds.batches(100, true, Some(1)).unwrap();
    assert!(it.next_batch().is_none());
    let mut it = ds.batches(100, false, Some(1)).unwrap();
    assert_eq!(it.next_batch().unwrap().inputs.rows(), 23);
}

#[test]
fn seeded_split_and_subset() {
    let ds = toy(50);
    let s = ds.split(12, 3).unwrap();
    assert_eq!((s.train.len(), s.test.len()), (38, 12));
    let key = |d: &Dataset<f64>| {
        d.inputs()
            .iter_rows()
            .map(|r| r[0] as usize)
            .collect::<Vec<_>>()
    };
    let (tr, te) = (key(&s.train), key(&s.test));
    let mut all: Vec<usize> = tr.iter().chain(&te).copied().collect();
    all.sort_unstable();
    assert_eq!(
        all,
        (0..50).collect::<Vec<_>>(),
        "parts are disjoint and cover the set"
    );
    assert!(tr.windows(2).all(|w| w[0] < w[1]), "relative order is kept");
    assert_eq!(
        s.test.labels(),
        te.iter().map(|i| i % 3).collect::<Vec<_>>()
    );
    assert_eq!(ds.split(12, 3).unwrap(), s);
    assert_ne!(ds.split(12, 4).unwrap().test, s.test);
    assert_eq!(ds.split_fraction(0.2, 3).unwrap().test.len(), 10);
    assert!(ds.split(51, 0).is_err());
    assert!(ds.split_fraction(1.5, 0).is_err());
    let sub = ds.subset(&[4, 4, 0]).unwrap();
    assert_eq!(key(&sub), vec![4, 4, 0]);
    let e = ds.subset(&[1, 50]).unwrap_err();
    assert!(e.to_string().contains("index[1] = 50"), "{e}");
    assert_eq!(ds.take(5).len(), 5);
    assert_eq!(ds.class_counts(), vec![17, 17, 16]);
    let (a, b) = split_indices(10, 0, 1).unwrap();
    assert_eq!((a.len(), b.len()), (10, 0));
    assert_ne!(derive_seed(1, 1), derive_seed(1, 2));
    assert_ne!(derive_seed(1, 2), derive_seed(2, 1));
}

#[test]
fn pair_dataset_checks_and_batches() {
    let x = Batch::from_vec(4, 2, (0..8).map(f64::from).collect()).unwrap();
    let y = Batch::from_vec(4, 2, (0..8).map(|v| -f64::from(v)).collect()).unwrap();
    let p = PairDataset::with_names(x.clone(), y.clone(), vec!["p".into(), "q".into()]).unwrap();
    assert_eq!(p.y_names(), &["p_T".to_string(), "q_T".to_string()]);
    assert!(PairDataset::new(x.clone(), Batch::zeros(3, 2)).is_err());
    assert!(PairDataset::with_names(x.clone(), y.clone(), vec!["p".into()]).is_err());
    let odd = PairDataset::new(x, Batch::<f64>::zeros(4, 3)).unwrap();
    assert_eq!(odd.y_names(), &["y0", "y1", "y2"]);
    let mut it = p.batches(3, false, Some(5)).unwrap();
    let mut n = 0;
    while let Some(b) = it.next_batch() {
        for k in 0..b.x.rows() {
            assert_eq!(b.x.row(k), p.x().row(b.indices[k]));
            assert_eq!(b.y.row(k)[0], -b.x.row(k)[0]);
        }
        n += b.x.rows();
    }
    assert_eq!(n, 4);
    let s = p.split(1, 0).unwrap();
    assert_eq!((s.train.len(), s.test.len()), (3, 1));
    assert_eq!(p.cast::<f32>().x().row(3), &[6.0f32, 7.0]);
}
