//! Property-based fuzzing of the readers of user-supplied files: IDX (MNIST), CIFAR-10
//! binary batches, NPY, CSV, gzip, user tableaus in TOML and the configuration TOML the
//! library parses (trajectory data, training, classifier descriptions).
//!
//! Each reader gets arbitrary bytes and mutated valid files (truncated, bytes flipped,
//! inserted or appended, header sizes overwritten with huge values such as 2^31 × 2^31).
//! The properties: no panic; a file that is not exactly valid is an error; and memory is
//! never allocated for a size the file only declares. The last is measured: a counting
//! global allocator records the largest single allocation made while a reader runs, which
//! must stay within a small multiple of the input's length (the readers convert bytes to
//! `f64`, 8 bytes per input byte at most) — a header declaring terabytes must be refused
//! before anything that size is requested.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use odeflow::data::cifar::CIFAR_RECORD_BYTES;
use odeflow::data::csv::parse_csv;
use odeflow::data::npy::{npy_bytes, parse_npy};
use odeflow::data::{
    parse_cifar_records, parse_idx, read_cifar_batch, read_idx_pair, read_pairs_csv,
    read_pairs_npy, DataError, TrajectoryConfig,
};
use odeflow::tableau::{ButcherTableau, TableauError, TableauFileError};
use odeflow::Batch;
use proptest::prelude::*;

mod fuzz_common;

use fuzz_common::{apply, config, largest_allocation};

#[global_allocator]
static ALLOCATOR: fuzz_common::Counting = fuzz_common::Counting;

/// The most a reader may allocate at once for an input of `len` bytes: its values as
/// `f64` (8 bytes per input byte), doubled for a growing vector, plus slack for messages.
fn allowance(len: usize) -> usize {
    16 * len + (1 << 16)
}

// ---------------------------------------------------------------------------------------
// Mutations of valid files.

fn interesting_u32() -> impl Strategy<Value = u32> {
    prop_oneof![
        Just(0u32),
        Just(1),
        Just(1 << 31),
        Just(u32::MAX),
        Just(u32::MAX - 1),
        Just(1 << 16),
        any::<u32>(),
    ]
}

/// The shared mutations, with IDX's big-endian and NPY's little-endian `u32` sizes.
fn mutation() -> impl Strategy<Value = fuzz_common::Mutation> {
    fuzz_common::mutation(prop_oneof![
        (0usize..32, interesting_u32()).prop_map(|(i, v)| (i, v.to_be_bytes().to_vec())),
        (0usize..16, interesting_u32()).prop_map(|(i, v)| (i, v.to_le_bytes().to_vec())),
    ])
}

fn here() -> &'static Path {
    Path::new("fuzzed")
}

// ---------------------------------------------------------------------------------------
// IDX.

fn idx_bytes(dims: &[u32], fill: u8) -> Vec<u8> {
    let mut out = vec![0, 0, 0x08, dims.len() as u8];
    for d in dims {
        out.extend_from_slice(&d.to_be_bytes());
    }
    let count: usize = dims.iter().map(|&d| d as usize).product();
    out.extend((0..count).map(|i| fill.wrapping_add(i as u8)));
    out
}

/// The oracle: the magic number for `ndim` dimensions, and exactly the bytes the header
/// declares.
fn idx_is_valid(bytes: &[u8], ndim: usize) -> bool {
    let header = 4 + 4 * ndim;
    if bytes.len() < header || bytes[..4] != [0, 0, 0x08, ndim as u8] {
        return false;
    }
    let count = bytes[4..header].chunks_exact(4).try_fold(1u64, |a, c| {
        a.checked_mul(u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as u64)
    });
    count.and_then(|c| c.checked_add(header as u64)) == Some(bytes.len() as u64)
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn idx_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512), ndim in 1usize..=3) {
        let (r, largest) = largest_allocation(|| parse_idx(&bytes, ndim, here()));
        prop_assert_eq!(r.is_ok(), idx_is_valid(&bytes, ndim));
        if let Ok(a) = &r {
            prop_assert_eq!(a.dims.len(), ndim);
            prop_assert_eq!(a.data.len(), a.dims.iter().product::<usize>());
        }
        prop_assert!(largest <= allowance(bytes.len()), "{largest} bytes for {} input bytes", bytes.len());
    }

    #[test]
    fn idx_mutated_files(
        dims in prop::collection::vec(0u32..6, 1..=3),
        muts in prop::collection::vec(mutation(), 1..4),
    ) {
        let mut bytes = idx_bytes(&dims, 7);
        for m in &muts {
            apply(&mut bytes, m);
        }
        let (r, largest) = largest_allocation(|| parse_idx(&bytes, dims.len(), here()));
        prop_assert!(largest <= allowance(bytes.len()));
        prop_assert_eq!(r.is_ok(), idx_is_valid(&bytes, dims.len()));
        if let Ok(a) = r {
            prop_assert_eq!(a.data.len(), a.dims.iter().product::<usize>());
        }
    }

    #[test]
    fn idx_huge_declared_dimensions_are_refused(
        dims in prop::collection::vec(interesting_u32(), 1..=3),
        payload in 0usize..64,
    ) {
        let mut bytes = vec![0, 0, 0x08, dims.len() as u8];
        for d in &dims {
            bytes.extend_from_slice(&d.to_be_bytes());
        }
        bytes.extend(std::iter::repeat_n(1u8, payload));
        let count = dims.iter().try_fold(1u64, |a, &d| a.checked_mul(d as u64));
        let (r, largest) = largest_allocation(|| parse_idx(&bytes, dims.len(), here()));
        prop_assert!(largest <= allowance(bytes.len()));
        prop_assert_eq!(r.is_ok(), count == Some(payload as u64));
    }
}

#[test]
fn idx_header_of_2_31_by_2_31_images_is_an_error_not_an_allocation() {
    let mut bytes = vec![0, 0, 0x08, 3];
    for d in [1u32 << 31, 1 << 31, 1 << 31] {
        bytes.extend_from_slice(&d.to_be_bytes());
    }
    bytes.extend_from_slice(&[0; 100]);
    let (r, largest) = largest_allocation(|| parse_idx(&bytes, 3, here()));
    let e = r.unwrap_err();
    assert!(
        matches!(e, DataError::Format { .. } | DataError::Truncated { .. }),
        "{e:?}"
    );
    assert!(largest < 1 << 16, "{largest}");
    let msg = e.to_string();
    assert!(!msg.contains('\n'), "{msg}");
}

#[test]
fn an_idx_pair_with_no_images_but_huge_images_is_refused() {
    // Zero images of 2^31 × 2^31 pixels: no data to read, but a model sized for such
    // samples would ask for exabytes.
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("images");
    let labels = dir.path().join("labels");
    std::fs::write(&images, idx_bytes(&[0, 1 << 31, 1 << 31], 0)).unwrap();
    std::fs::write(&labels, idx_bytes(&[0], 0)).unwrap();
    let e = read_idx_pair::<f32>(&images, &labels, 10).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("no images"), "{msg}");
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn idx_pairs_from_files(
        n in 0u32..4,
        rows in 0u32..4,
        cols in 0u32..4,
        label_fill in 0u8..12,
        mi in prop::collection::vec(mutation(), 0..2),
        ml in prop::collection::vec(mutation(), 0..2),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let (images, labels) = (dir.path().join("i"), dir.path().join("l"));
        let mut ib = idx_bytes(&[n, rows, cols], 3);
        let mut lb = idx_bytes(&[n], label_fill);
        for m in &mi { apply(&mut ib, m); }
        for m in &ml { apply(&mut lb, m); }
        std::fs::write(&images, &ib).unwrap();
        std::fs::write(&labels, &lb).unwrap();
        let (r, largest) = largest_allocation(|| read_idx_pair::<f64>(&images, &labels, 10));
        prop_assert!(largest <= allowance(ib.len() + lb.len()));
        if let Ok(d) = r {
            prop_assert!(!d.is_empty());
            prop_assert!(d.labels().iter().all(|&l| l < 10));
        }
    }
}

// ---------------------------------------------------------------------------------------
// CIFAR-10.

fn cifar_bytes(labels: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(labels.len() * CIFAR_RECORD_BYTES);
    for (i, &l) in labels.iter().enumerate() {
        out.push(l);
        out.extend((0..CIFAR_RECORD_BYTES - 1).map(|k| (k + i) as u8));
    }
    out
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn cifar_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..8000)) {
        let (r, largest) = largest_allocation(|| parse_cifar_records::<f32>(&bytes, here()));
        prop_assert!(largest <= allowance(bytes.len()));
        let whole = !bytes.is_empty() && bytes.len() % CIFAR_RECORD_BYTES == 0;
        let labels_ok = bytes.chunks_exact(CIFAR_RECORD_BYTES).all(|r| r[0] < 10);
        prop_assert_eq!(r.is_ok(), whole && labels_ok);
    }

    #[test]
    fn cifar_mutated_files(
        labels in prop::collection::vec(0u8..10, 1..3),
        muts in prop::collection::vec(mutation(), 1..3),
    ) {
        let mut bytes = cifar_bytes(&labels);
        for m in &muts {
            apply(&mut bytes, m);
        }
        let (r, largest) = largest_allocation(|| parse_cifar_records::<f64>(&bytes, here()));
        prop_assert!(largest <= allowance(bytes.len()));
        if let Ok(d) = r {
            prop_assert_eq!(d.len() * CIFAR_RECORD_BYTES, bytes.len());
        }
    }
}

// ---------------------------------------------------------------------------------------
// gzip (shared by the IDX and CIFAR readers).

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn gzip_streams_mutated(
        labels in prop::collection::vec(0u8..10, 1..3),
        muts in prop::collection::vec(mutation(), 1..3),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("test_batch.bin");
        let mut bytes = gzip(&cifar_bytes(&labels));
        for m in &muts {
            apply(&mut bytes, m);
        }
        std::fs::write(&path, &bytes).unwrap();
        // A corrupt stream is an error (or, rarely, a different valid file); never a panic.
        let (r, largest) = largest_allocation(|| read_cifar_batch::<f32>(&path));
        prop_assert!(largest <= allowance(labels.len() * CIFAR_RECORD_BYTES + bytes.len()));
        if let Err(e) = r {
            prop_assert!(!e.to_string().contains('\n'), "{e}");
        }
    }
}

#[test]
fn a_gzip_bomb_is_refused_at_the_limit() {
    use odeflow::data::read_file_maybe_gz_limited;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bomb.gz");
    // 64 MiB of zeros compress to about 64 KiB.
    let bomb = gzip(&vec![0u8; 64 << 20]);
    assert!(bomb.len() < 1 << 20);
    std::fs::write(&path, &bomb).unwrap();
    let (r, largest) = largest_allocation(|| read_file_maybe_gz_limited(&path, 1 << 20));
    let e = r.unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("decompresses to more than 1 MiB"), "{msg}");
    assert!(largest < 8 << 20, "{largest}");
    // Under a large enough limit the same file reads.
    assert_eq!(
        read_file_maybe_gz_limited(&path, 64 << 20).unwrap().len(),
        64 << 20
    );
}

#[test]
fn a_file_over_the_memory_budget_is_refused_before_it_is_read() {
    use odeflow::data::read_file_maybe_gz_limited;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t10k-images-idx3-ubyte");
    // A sparse 2 MiB file: nothing is written, so the test is cheap.
    std::fs::File::create(&path)
        .unwrap()
        .set_len(2 << 20)
        .unwrap();
    let (r, largest) = largest_allocation(|| read_file_maybe_gz_limited(&path, 1 << 20));
    let msg = r.unwrap_err().to_string();
    assert!(
        msg.contains("the file is 2 MiB, over the memory budget of 1 MiB"),
        "{msg}"
    );
    assert!(largest < 1 << 16, "{largest}");
    assert_eq!(
        read_file_maybe_gz_limited(&path, 2 << 20).unwrap().len(),
        2 << 20
    );
}

#[test]
fn a_csv_file_that_is_not_utf8_names_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data.csv");
    std::fs::write(&path, b"p,q\n1,2\n3,\xff\n").unwrap();
    let msg = odeflow::data::read_csv::<f64>(&path)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("data.csv: line 3: not UTF-8 text"), "{msg}");
}

// ---------------------------------------------------------------------------------------
// NPY.

fn npy_with_header(major: u8, dict: &str, data: &[u8]) -> Vec<u8> {
    let mut out = b"\x93NUMPY".to_vec();
    out.push(major);
    out.push(0);
    let header = format!("{dict}\n");
    if major == 1 {
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    } else {
        out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    }
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

fn shape_entry() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u64..5).prop_map(|d| d.to_string()),
        Just("2147483648".to_string()),
        Just("4294967296".to_string()),
        Just("18446744073709551615".to_string()),
        Just("18446744073709551616".to_string()),
        Just("9223372036854775807".to_string()),
        Just("-1".to_string()),
        Just("3L".to_string()),
        Just("".to_string()),
        "[0-9a-z]{0,4}",
    ]
}

fn npy_dict() -> impl Strategy<Value = String> {
    let descr = prop_oneof![
        Just("'<f8'"),
        Just("'<f4'"),
        Just("'>f8'"),
        Just("'|u1'"),
        Just("\"<f8\""),
        Just("'<f8"),
        Just("[('a', '<f4')]"),
    ];
    let fortran = prop_oneof![Just("False"), Just("True"), Just("Fals"), Just("0")];
    (
        descr,
        fortran,
        prop::collection::vec(shape_entry(), 0..4),
        any::<bool>(),
    )
        .prop_map(|(d, f, shape, trailing_comma)| {
            let mut s = shape.join(", ");
            if trailing_comma || shape.len() == 1 {
                s.push(',');
            }
            format!("{{'descr': {d}, 'fortran_order': {f}, 'shape': ({s}), }}")
        })
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn npy_arbitrary_bytes(
        tail in prop::collection::vec(any::<u8>(), 0..256),
        with_magic in any::<bool>(),
    ) {
        let bytes = if with_magic {
            let mut b = b"\x93NUMPY".to_vec();
            b.extend_from_slice(&tail);
            b
        } else {
            tail
        };
        let (_, largest) = largest_allocation(|| parse_npy::<f64>(&bytes, here()));
        prop_assert!(largest <= allowance(bytes.len()));
    }

    #[test]
    fn npy_generated_headers(
        major in prop_oneof![Just(1u8), Just(2), Just(3), Just(4)],
        dict in npy_dict(),
        data in prop::collection::vec(any::<u8>(), 0..96),
    ) {
        let bytes = npy_with_header(major, &dict, &data);
        let (r, largest) = largest_allocation(|| parse_npy::<f64>(&bytes, here()));
        prop_assert!(largest <= allowance(bytes.len()), "{largest} for {dict}");
        match r {
            Ok(b) => prop_assert!(b.rows() * b.cols() * 4 <= data.len()),
            Err(e) => prop_assert!(!e.to_string().contains('\n') || e.to_string().contains("header"), "{e}"),
        }
    }

    #[test]
    fn npy_mutated_files(
        rows in 0usize..4,
        cols in 1usize..4,
        f32_data in any::<bool>(),
        muts in prop::collection::vec(mutation(), 1..4),
    ) {
        let values: Vec<f64> = (0..rows * cols).map(|i| i as f64 * 0.5 - 1.0).collect();
        let valid = if f32_data {
            npy_bytes(&Batch::<f32>::from_vec(rows, cols, values.iter().map(|&v| v as f32).collect()).unwrap())
        } else {
            npy_bytes(&Batch::<f64>::from_vec(rows, cols, values).unwrap())
        };
        let mut bytes = valid.clone();
        for m in &muts {
            apply(&mut bytes, m);
        }
        let (r, largest) = largest_allocation(|| parse_npy::<f32>(&bytes, here()));
        prop_assert!(largest <= allowance(bytes.len()));
        if bytes.len() < valid.len() {
            prop_assert!(r.is_err(), "a truncated file was accepted");
        }
    }
}

#[test]
fn npy_huge_shapes_are_errors_before_allocating() {
    for shape in [
        "(2147483648, 2147483648)",
        "(18446744073709551615, 2)",
        "(4294967296,)",
        "(1, 18446744073709551615)",
    ] {
        let dict = format!("{{'descr': '<f8', 'fortran_order': False, 'shape': {shape}, }}");
        let bytes = npy_with_header(1, &dict, &[0; 64]);
        let (r, largest) = largest_allocation(|| parse_npy::<f64>(&bytes, here()));
        assert!(r.is_err(), "{shape} accepted");
        assert!(largest < 1 << 16, "{shape}: {largest}");
    }
}

#[test]
fn an_empty_npy_array_with_huge_columns_is_refused() {
    // No data, so nothing bounds the declared column count by the file's length; pair data
    // name every column, and a model sized for such rows would ask for terabytes.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pairs.npy");
    let dict = "{'descr': '<f8', 'fortran_order': False, 'shape': (0, 1099511627776), }";
    std::fs::write(&path, npy_with_header(1, dict, &[])).unwrap();
    let (r, largest) = largest_allocation(|| read_pairs_npy::<f64>(&path, None));
    let msg = r.unwrap_err().to_string();
    assert!(msg.contains("1099511627776 columns"), "{msg}");
    assert!(largest < 1 << 16, "{largest}");
    // An empty array of a sensible width still reads.
    let dict = "{'descr': '<f8', 'fortran_order': False, 'shape': (0, 4), }";
    std::fs::write(&path, npy_with_header(1, dict, &[])).unwrap();
    assert_eq!(read_pairs_npy::<f64>(&path, None).unwrap().len(), 0);
}

// ---------------------------------------------------------------------------------------
// CSV.

fn csv_text() -> impl Strategy<Value = String> {
    let cell = prop_oneof![
        (-1e6f64..1e6).prop_map(|v| v.to_string()),
        Just("nan".to_string()),
        Just("inf".to_string()),
        Just("".to_string()),
        Just("1e400".to_string()),
        Just("\"x\"".to_string()),
        "[ -~]{0,6}",
    ];
    let line = prop::collection::vec(cell, 0..5).prop_map(|c| c.join(","));
    let sep = prop_oneof![Just("\n"), Just("\r\n"), Just("\n\n"), Just("\n# c\n")];
    prop::collection::vec((line, sep), 0..6).prop_map(|ls| {
        ls.into_iter()
            .map(|(l, s)| format!("{l}{s}"))
            .collect::<String>()
    })
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn csv_arbitrary_text(text in "\\PC{0,200}") {
        let (r, largest) = largest_allocation(|| parse_csv::<f64>(&text, here()));
        prop_assert!(largest <= allowance(text.len()));
        if let Ok((names, b)) = r {
            prop_assert_eq!(names.len(), b.cols());
        }
    }

    #[test]
    fn csv_structured_text(text in csv_text()) {
        let (r, largest) = largest_allocation(|| parse_csv::<f32>(&text, here()));
        prop_assert!(largest <= allowance(text.len()));
        match r {
            Ok((names, b)) => prop_assert_eq!(names.len(), b.cols()),
            Err(e) => prop_assert!(!e.to_string().contains('\n'), "{e}"),
        }
    }

    #[test]
    fn csv_pairs_from_files(text in csv_text(), x_cols in prop::option::of(0usize..6)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pairs.csv");
        std::fs::write(&path, &text).unwrap();
        if let Ok(p) = read_pairs_csv::<f64>(&path, x_cols) {
            prop_assert_eq!(p.x_names().len(), p.x().cols());
            prop_assert_eq!(p.y_names().len(), p.y().cols());
        }
    }
}

// ---------------------------------------------------------------------------------------
// Tableaus from TOML.

fn float_array(max: usize) -> impl Strategy<Value = String> {
    let v = prop_oneof![
        (-2.0f64..2.0).prop_map(|x| format!("{x:?}")),
        Just("0.5".to_string()),
        Just("1.0".to_string()),
        Just("0.0".to_string()),
        Just("nan".to_string()),
        Just("inf".to_string()),
        Just("1e308".to_string()),
        Just("\"x\"".to_string()),
    ];
    prop::collection::vec(v, 0..max).prop_map(|v| format!("[{}]", v.join(", ")))
}

fn order_value() -> impl Strategy<Value = String> {
    prop_oneof![
        (0i64..8).prop_map(|o| o.to_string()),
        Just("30".to_string()),
        Just("100".to_string()),
        Just("9223372036854775807".to_string()),
        Just("-1".to_string()),
        Just("2.5".to_string()),
    ]
}

fn tableau_toml() -> impl Strategy<Value = String> {
    (
        order_value(),
        float_array(5),
        prop::collection::vec(float_array(5), 0..5),
        float_array(5),
        prop::option::of((float_array(5), order_value())),
        prop::option::of((prop::collection::vec(float_array(4), 0..5), order_value())),
    )
        .prop_map(|(order, c, a, b, emb, dense)| {
            let mut s = format!(
                "name = \"fuzz\"\norder = {order}\nc = {c}\na = [{}]\nb = {b}\n",
                a.join(", ")
            );
            if let Some((be, eo)) = emb {
                s += &format!("b_embedded = {be}\nembedded_order = {eo}\n");
            }
            if let Some((d, dorder)) = dense {
                s += &format!("dense = [{}]\ndense_order = {dorder}\n", d.join(", "));
            }
            s
        })
}

/// Runs `f`, failing if it takes longer than `limit` (a claimed order can make the
/// validation enumerate exponentially many rooted trees).
fn within<R>(limit: Duration, what: &str, f: impl FnOnce() -> R) -> R {
    let t = Instant::now();
    let r = f();
    assert!(t.elapsed() < limit, "{what} took {:?}", t.elapsed());
    r
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn tableau_arbitrary_text(text in "\\PC{0,120}") {
        let r = within(Duration::from_secs(5), &text, || ButcherTableau::from_toml(&text));
        prop_assert!(r.is_err() || text.contains("order"));
    }

    #[test]
    fn tableau_structured_toml(text in tableau_toml()) {
        let (r, largest) = largest_allocation(|| {
            within(Duration::from_secs(5), &text, || ButcherTableau::from_toml(&text))
        });
        prop_assert!(largest <= allowance(text.len()) + (1 << 20), "{largest} for {text}");
        match r {
            Ok(t) => {
                prop_assert!(t.order() <= t.stages());
                prop_assert!(t.b().iter().all(|x| x.is_finite()));
            }
            // TOML syntax errors come with the toml crate's multi-line caret diagram; the
            // tableau's own errors are one line.
            Err(TableauFileError::Invalid(e)) => prop_assert!(!e.to_string().contains('\n'), "{e}"),
            Err(TableauFileError::Parse(_)) => {}
        }
    }
}

#[test]
fn claimed_orders_are_refused_without_enumerating_huge_tree_sets() {
    let heun = |order: &str| {
        format!(
            "name = \"heun\"\norder = {order}\nc = [0.0, 1.0]\na = [[], [1.0]]\nb = [0.5, 0.5]\n"
        )
    };
    // Above the stages but within the orders checked: the first failing tree is named
    // (order 3 at the latest for two stages), without building the trees of order 14.
    for order in [3, 5, 14] {
        let text = heun(&order.to_string());
        let e = within(Duration::from_secs(1), "order", || {
            ButcherTableau::from_toml(&text)
        })
        .unwrap_err();
        assert!(
            matches!(
                e,
                TableauFileError::Invalid(TableauError::OrderCondition { .. })
            ),
            "{e:?}"
        );
        assert!(
            e.to_string()
                .contains(&format!("does not have order {order}")),
            "{e}"
        );
    }
    // Above any order checked: refused before any tree is built.
    for order in ["15", "30", "100", "1000000", "9223372036854775807"] {
        let text = heun(order);
        let e = within(Duration::from_secs(1), "order", || {
            ButcherTableau::from_toml(&text)
        })
        .unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains(&format!("order {order} is above 14")), "{msg}");
    }
    // The same for the embedded and dense-output orders.
    let text = "name = \"heun-euler\"\norder = 2\nc = [0.0, 1.0]\na = [[], [1.0]]\n\
                b = [0.5, 0.5]\nb_embedded = [1.0, 0.0]\nembedded_order = 40\n";
    let msg = within(Duration::from_secs(1), "embedded", || {
        ButcherTableau::from_toml(text)
    })
    .unwrap_err()
    .to_string();
    assert!(msg.contains("embedded_order 40 is above 14"), "{msg}");
    let text = "name = \"heun\"\norder = 2\nc = [0.0, 1.0]\na = [[], [1.0]]\n\
                b = [0.5, 0.5]\ndense = [[1.0, -0.5], [0.0, 0.5]]\ndense_order = 13\n";
    let e = within(Duration::from_secs(1), "dense", || {
        ButcherTableau::from_toml(text)
    })
    .unwrap_err();
    assert!(e.to_string().contains("dense output"), "{e}");
}

#[test]
fn coefficients_whose_weights_overflow_to_nan_are_not_accepted() {
    // Rows and weights sum correctly and the order-1 and order-2 conditions hold, but the
    // order-3 elementary weights overflow: Σ a₂ⱼcⱼ = 1e308 · 1e308 = inf, and b₂ = 0 makes
    // Φ = 0 · inf = NaN. A check written `|Φ − 1/γ| > tol` is false for NaN, so every
    // higher condition "passed" and this order-2 tableau was accepted as order 10.
    let text = "name = \"overflow\"\norder = 10\nc = [0.0, 1e308, 1e308]\n\
                a = [[], [1e308], [0.0, 1e308]]\nb = [1.0, 5e-309, 0.0]\n";
    let e = ButcherTableau::from_toml(text).unwrap_err();
    assert!(
        matches!(
            e,
            TableauFileError::Invalid(TableauError::OrderCondition { order: 10, .. })
        ),
        "{e:?}"
    );
    // Claimed as order 2 it is (numerically) what it says.
    assert!(ButcherTableau::from_toml(&text.replace("order = 10", "order = 2")).is_ok());
}

#[test]
fn deeply_nested_toml_is_an_error_not_a_stack_overflow() {
    for depth in [100, 10_000, 200_000] {
        let text = format!("a = {}1{}", "[".repeat(depth), "]".repeat(depth));
        // Run on a thread with a modest stack, as a command's worker might be.
        let r = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || {
                let t = ButcherTableau::from_toml(&text).is_err();
                let c = TrajectoryConfig::from_toml(&text).is_err();
                t && c
            })
            .unwrap()
            .join();
        assert!(matches!(r, Ok(true)), "depth {depth}: {r:?}");
    }
}

// ---------------------------------------------------------------------------------------
// Configuration TOML the library parses.

fn config_toml() -> impl Strategy<Value = String> {
    let number = prop_oneof![
        Just("0".to_string()),
        Just("1".to_string()),
        Just("-1".to_string()),
        Just("1e308".to_string()),
        Just("nan".to_string()),
        Just("-inf".to_string()),
        Just("9223372036854775807".to_string()),
        Just("0.04".to_string()),
        Just("\"x\"".to_string()),
        Just("[1.0, 2.0]".to_string()),
        Just("[]".to_string()),
    ];
    let key = prop_oneof![
        Just("system"),
        Just("t"),
        Just("T"),
        Just("train"),
        Just("test"),
        Just("method"),
        Just("substeps"),
        Just("seed"),
        Just("sampling"),
        Just("iterations"),
        Just("checkpoint_every"),
        Just("optimizer"),
        Just("schedule"),
        Just("augment"),
        Just("threads"),
        Just("field"),
        Just("bogus"),
    ];
    let value = prop_oneof![
        number,
        Just("\"pendulum\"".to_string()),
        Just("\"lorenz\"".to_string()),
        Just("\"rk4\"".to_string()),
        Just("\"verlet\"".to_string()),
        Just("{ kind = \"box\", lo = [-1.0, -1.0], hi = [1.0, 1.0] }".to_string()),
        Just("{ kind = \"trajectory\", x0 = [1.0, 2.0, 3.0] }".to_string()),
        Just("{ kind = \"adam\", lr = 0.001 }".to_string()),
        Just("{ kind = \"mlp\", hidden = [4], activation = \"tanh\" }".to_string()),
        Just("{ kind = \"odenet\", channels = 1e9 }".to_string()),
    ];
    prop::collection::vec((key, value), 0..6).prop_map(|kv| {
        kv.into_iter()
            .map(|(k, v)| format!("{k} = {v}\n"))
            .collect::<String>()
    })
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn configuration_toml_never_panics(text in config_toml()) {
        if let Ok(c) = TrajectoryConfig::from_toml(&text) {
            let _ = c.validate();
        }
        if let Ok(c) = toml::from_str::<odeflow::train::TrainConfig>(&text) {
            let _ = c.optimizer.validate();
            let _ = c.schedule.validate();
        }
        let _ = toml::from_str::<odeflow::models::ClassifierSpec>(&text);
    }

    #[test]
    fn configuration_toml_arbitrary_text(text in "\\PC{0,160}") {
        let _ = TrajectoryConfig::from_toml(&text);
        let _ = toml::from_str::<odeflow::train::TrainConfig>(&text);
    }
}

// ---------------------------------------------------------------------------------------
// Errors are about the file the user named.

#[test]
fn reader_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("weird name.npy");
    std::fs::write(&p, b"\x93NUMPY\x01\x00\xff\xff{").unwrap();
    let msg = read_pairs_npy::<f64>(&p, None).unwrap_err().to_string();
    assert!(msg.contains("weird name.npy"), "{msg}");
    let msg = read_pairs_csv::<f64>(dir.path().join("missing.csv"), None)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("missing.csv"), "{msg}");
}

// ---------------------------------------------------------------------------------------
// Run files: checkpoints and the metrics log.

fn checkpoint_bytes() -> Vec<u8> {
    use odeflow::train::{Checkpoint, OptimizerState};
    let opt = OptimizerState {
        t: 3,
        m: vec![0.1, -0.2],
        v: vec![1e-8, 3.0],
    };
    let c = Checkpoint::new(
        42,
        "f64",
        vec![0.5, -1.0 / 3.0],
        opt,
        serde_json::json!({"h": 0.25}),
        serde_json::json!({"model": "x"}),
    );
    c.to_bytes(std::path::Path::new("checkpoint.safetensors"))
        .unwrap()
}

proptest! {
    #![proptest_config(config(128))]

    #[test]
    fn checkpoints_mutated(muts in prop::collection::vec(mutation(), 1..4)) {
        use odeflow::train::Checkpoint;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("checkpoint.safetensors");
        let valid = checkpoint_bytes();
        let mut bytes = valid.clone();
        for m in &muts {
            apply(&mut bytes, m);
        }
        std::fs::write(&path, &bytes).unwrap();
        let (r, largest) = largest_allocation(|| Checkpoint::load(&path));
        prop_assert!(largest <= allowance(bytes.len()));
        match r {
            // A mutation that keeps the checksummed content (e.g. the header's padding)
            // may still load; the numbers it carries are then the original ones.
            Ok(c) => {
                let original = Checkpoint::from_bytes(&valid, &path).unwrap();
                prop_assert_eq!(&c.params, &original.params);
                prop_assert_eq!(&c.optimizer, &original.optimizer);
                prop_assert_eq!(c.iteration, original.iteration);
            }
            Err(e) => {
                let msg = e.to_string();
                prop_assert!(msg.contains("checkpoint.safetensors"), "{msg}");
            }
        }
    }

    /// A run killed while writing leaves a torn last line (any bytes but the newline that
    /// ends a record, not necessarily UTF-8); resuming keeps the whole lines up to the
    /// checkpoint and drops the rest.
    #[test]
    fn metrics_log_with_a_torn_tail_resumes(
        lines in 1u64..6,
        keep in 0u64..6,
        tail in prop::collection::vec(any::<u8>().prop_filter("a torn record has no newline", |b| *b != b'\n'), 0..24),
    ) {
        use odeflow::train::{read_log, MetricsLog};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.jsonl");
        let mut bytes = Vec::new();
        for i in 1..=lines {
            bytes.extend_from_slice(format!("{{\"iteration\":{i},\"loss\":0.5}}\n").as_bytes());
        }
        bytes.extend_from_slice(&tail);
        std::fs::write(&path, &bytes).unwrap();
        let log = MetricsLog::resume(&path, keep);
        prop_assert!(log.is_ok(), "{:?}", log.err());
        drop(log);
        let records = read_log(&path).unwrap();
        prop_assert_eq!(records.len() as u64, lines.min(keep));
        // Reading the torn file itself is an error naming the file, or succeeds.
        std::fs::write(&path, &bytes).unwrap();
        if let Err(e) = read_log(&path) {
            prop_assert!(e.to_string().contains("metrics.jsonl"), "{e}");
        }
    }
}

/// A corrupt line that is not the torn tail is an error naming the line on resume, and the
/// log is left as it was (never silently dropped).
#[test]
fn metrics_log_with_a_corrupt_middle_line_is_refused_on_resume() {
    use odeflow::train::MetricsLog;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("metrics.jsonl");
    let text = "{\"iteration\":1,\"loss\":0.5}\nnot json\n{\"iteration\":2,\"loss\":0.4}\n";
    std::fs::write(&path, text).unwrap();
    let e = MetricsLog::resume(&path, 2)
        .err()
        .expect("a corrupt line is an error");
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
    assert!(
        e.to_string().contains("line 2") && e.to_string().contains("not json"),
        "{e}"
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
}
