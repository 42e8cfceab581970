//! Property-based fuzzing of safetensors import: [`TensorFile::parse`] and every loader of
//! `odeflow::weights` (Ott et al.'s classifiers and fields, the Hamiltonian network, the
//! ResNet bodies, TinyResNet).
//!
//! Inputs: arbitrary bytes; valid files of each architecture mutated (truncated, bytes
//! flipped or inserted, the 8-byte header length overwritten with huge values, bytes
//! appended); and generated headers whose shapes, dtypes and data offsets disagree with the
//! data (shape/data-length mismatch, overflowing shapes, zeros in shapes that make one
//! tensor declare dimensions for others). The properties: no panic; what is not a valid
//! file is an error; and memory is never allocated for a size the file only declares — a
//! counting global allocator records the largest single allocation while a file is parsed
//! and loaded, which must stay within a small multiple of the file's length (values become
//! `f64`, 8 bytes per stored `f32`/`f64` value at most, and a model's parameters are read
//! from the file).

use std::path::Path;

use odeflow::grad::GradientMethod;
use odeflow::models::depth_field::{DepthField, Tying};
use odeflow::models::hamiltonian::SeparableHamiltonian;
use odeflow::models::resnet::{conv_residual_block, ResNet, Scheme};
use odeflow::models::tiny_resnet::{TinyResNet, TinyResNetConfig};
use odeflow::models::{ClassifierSpec, FieldSpec};
use odeflow::nn::{Init, Shape};
use odeflow::solve::{Method, SolverSpec};
use odeflow::weights::{
    export_classifier, export_hamiltonian, export_resnet, export_tiny_resnet, load_classifier,
    load_field, load_hamiltonian, load_resnet, load_tiny_resnet, Architecture, FileDtype,
    TensorFile,
};
use proptest::prelude::*;

mod fuzz_common;

use fuzz_common::{apply, config, largest_allocation};

#[global_allocator]
static ALLOCATOR: fuzz_common::Counting = fuzz_common::Counting;

/// The most an import may allocate at once for a file of `len` bytes: its values as `f64`
/// (8 bytes per input byte at most), doubled for a growing vector, plus slack for the
/// models' fixed-size buffers (the sample shapes here are small) and messages.
fn allowance(len: usize) -> usize {
    16 * len + (1 << 20)
}

fn here() -> &'static Path {
    Path::new("fuzzed.safetensors")
}

// ---------------------------------------------------------------------------------------
// Valid files of every architecture, and what reads them.

fn rk4() -> (Method, odeflow::solve::SolveOptions) {
    let s = SolverSpec::fixed("rk4", 2).unwrap();
    (s.method().unwrap(), s.options())
}

fn classifier_file(field: FieldSpec, sample: &[usize], dtype: FileDtype) -> Vec<u8> {
    let spec = ClassifierSpec::new(field);
    let (m, o) = rk4();
    let model = spec
        .build::<f64>(sample, 2, m, GradientMethod::Backprop, o, 1)
        .unwrap();
    export_classifier(&model, &spec, dtype)
        .unwrap()
        .to_bytes()
        .unwrap()
}

fn resnet_file(dtype: FileDtype, tying: Tying) -> Vec<u8> {
    let block = conv_residual_block::<f64>(2, 3, 3).unwrap();
    let f = DepthField::new(block, 3, tying, &Init::PyTorchDefault, 2).unwrap();
    let net = ResNet::new(f, Scheme::Euler, GradientMethod::Backprop, 0).unwrap();
    export_resnet(&net, dtype).unwrap().to_bytes().unwrap()
}

fn tiny_file(dtype: FileDtype) -> Vec<u8> {
    let cfg = TinyResNetConfig {
        channels: 2,
        depth: 2,
        classes: 3,
        ..TinyResNetConfig::default()
    };
    let m = TinyResNet::<f64>::new(Shape::image(1, 14, 14), cfg).unwrap();
    export_tiny_resnet(&m, dtype).to_bytes().unwrap()
}

fn hamiltonian_file(dtype: FileDtype) -> Vec<u8> {
    let h = SeparableHamiltonian::<f64>::new(4, 3, 1).unwrap();
    export_hamiltonian(&h, dtype).to_bytes().unwrap()
}

/// Valid files: `(bytes, index of the loader that reads it)`, made once.
fn valid_files() -> &'static [(Vec<u8>, usize)] {
    static FILES: std::sync::OnceLock<Vec<(Vec<u8>, usize)>> = std::sync::OnceLock::new();
    FILES.get_or_init(make_valid_files)
}

fn make_valid_files() -> Vec<(Vec<u8>, usize)> {
    let mut out = Vec::new();
    for dtype in [FileDtype::F32, FileDtype::F64] {
        out.push((
            classifier_file(FieldSpec::SimpleOdenet { channels: 2 }, &[1, 3], dtype),
            0,
        ));
        out.push((
            classifier_file(FieldSpec::Odenet { channels: 2 }, &[1, 3, 3], dtype),
            1,
        ));
        out.push((
            classifier_file(
                FieldSpec::Mlp {
                    hidden: vec![3, 2],
                    activation: "tanh".into(),
                },
                &[3],
                dtype,
            ),
            2,
        ));
        out.push((hamiltonian_file(dtype), 4));
        out.push((resnet_file(dtype, Tying::Untied), 5));
        out.push((resnet_file(dtype, Tying::Tied), 5));
        out.push((tiny_file(dtype), 6));
    }
    out
}

/// Every loader on a parsed file; returns how many accepted it.
fn load_all(file: &TensorFile) -> usize {
    let (m, o) = rk4();
    [
        load_classifier::<f64>(
            Architecture::SimpleOdenet,
            file,
            &[1, 3],
            m.clone(),
            o.clone(),
        )
        .is_ok(),
        load_classifier::<f32>(Architecture::Odenet, file, &[1, 3, 3], m.clone(), o.clone())
            .is_ok(),
        load_classifier::<f64>(Architecture::Mlp(None), file, &[3], m, o).is_ok(),
        load_field::<f64>(Architecture::Mlp(None), file, &[3]).is_ok(),
        load_hamiltonian::<f64>(file).is_ok(),
        load_resnet::<f64>(Scheme::Euler, file, &[2, 3, 3]).is_ok(),
        load_tiny_resnet::<f32>(Scheme::Heun, file, &[1, 14, 14]).is_ok(),
    ]
    .iter()
    .filter(|ok| **ok)
    .count()
}

/// Parses and loads `bytes`, checking the allocation bound; `Some(accepted loaders)` when
/// the bytes parse.
fn import(bytes: &[u8]) -> Option<usize> {
    let (r, largest) =
        largest_allocation(|| TensorFile::parse(bytes, here()).ok().map(|f| load_all(&f)));
    assert!(
        largest <= allowance(bytes.len()),
        "importing {} bytes allocated {largest} bytes at once",
        bytes.len()
    );
    r
}

#[test]
fn every_valid_file_loads_with_its_own_loader() {
    assert_eq!(valid_files().len(), 14);
    for (bytes, _) in valid_files() {
        assert!(import(bytes).unwrap() >= 1);
    }
}

// ---------------------------------------------------------------------------------------
// Mutations.

/// The shared mutations, with the 8-byte little-endian header length overwritten.
fn mutation() -> impl Strategy<Value = fuzz_common::Mutation> {
    fuzz_common::mutation(
        prop_oneof![
            Just(0u64),
            Just(1),
            Just(u64::MAX),
            Just(1 << 31),
            Just(1 << 40),
            Just(100_000_000),
            any::<u64>()
        ]
        .prop_map(|v| (0, v.to_le_bytes().to_vec())),
    )
}

/// A file with one hand-written header: each tensor `(name, dtype, shape, offsets)`, and
/// `data_len` bytes of data.
fn with_header(tensors: &[(String, &str, Vec<u64>, [u64; 2])], data_len: usize) -> Vec<u8> {
    let entries: Vec<String> = tensors
        .iter()
        .map(|(name, dtype, shape, [a, b])| {
            let dims: Vec<String> = shape.iter().map(u64::to_string).collect();
            format!(
                "\"{name}\":{{\"dtype\":\"{dtype}\",\"shape\":[{}],\"data_offsets\":[{a},{b}]}}",
                dims.join(",")
            )
        })
        .collect();
    let header = format!("{{{}}}", entries.join(","));
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend(std::iter::repeat_n(0x3fu8, data_len));
    out
}

fn dim() -> impl Strategy<Value = u64> {
    prop_oneof![
        4 => 0u64..6,
        1 => Just(1u64 << 31),
        1 => Just(1u64 << 62),
        1 => Just(u64::MAX),
        1 => Just(1_000_000_000),
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("field.0.weight".to_string()),
        Just("field.2.weight".to_string()),
        Just("field.4.weight".to_string()),
        Just("head.weight".to_string()),
        Just("field.kinetic.0.weight".to_string()),
        Just("field.layers.0.0.weight".to_string()),
        Just("field.layers.7.1.running_mean".to_string()),
        Just("field.layers.99999999999.1.running_var".to_string()),
        Just("stem.0.weight".to_string()),
        Just("stem.1.num_batches_tracked".to_string()),
    ]
}

fn header_tensor() -> impl Strategy<Value = (String, &'static str, Vec<u64>, [u64; 2])> {
    (
        key(),
        prop_oneof![
            Just("F64"),
            Just("F32"),
            Just("I64"),
            Just("F16"),
            Just("BOOL")
        ],
        prop::collection::vec(dim(), 0..5),
        (0u64..64, 0u64..64),
    )
        .prop_map(|(k, d, s, (a, b))| (k, d, s, [a.min(b), a.max(b)]))
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn arbitrary_bytes_are_errors_or_files(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        import(&bytes);
    }

    #[test]
    fn mutated_valid_files(which in 0usize..14, ms in prop::collection::vec(mutation(), 1..4)) {
        let mut bytes = valid_files()[which].0.clone();
        for m in &ms {
            apply(&mut bytes, m);
        }
        import(&bytes);
    }

    #[test]
    fn generated_headers_with_mismatched_shapes_and_data(
        tensors in prop::collection::vec(header_tensor(), 1..5),
        data_len in 0usize..80,
    ) {
        let bytes = with_header(&tensors, data_len);
        import(&bytes);
    }
}

#[test]
fn a_huge_header_length_or_shape_is_an_error_not_an_allocation() {
    let mut bytes = hamiltonian_file(FileDtype::F64);
    bytes[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    assert_eq!(import(&bytes), None);
    // A shape of 2^31 × 2^31 over 8 bytes of data; an overflowing one.
    for shape in [
        vec![1u64 << 31, 1 << 31],
        vec![u64::MAX, 2],
        vec![1 << 62, 4],
    ] {
        let t = [("field.0.weight".to_string(), "F64", shape, [0, 8])];
        assert_eq!(import(&with_header(&t, 8)), None);
    }
    // Data shorter than the shape says.
    let t = [("field.0.weight".to_string(), "F64", vec![2, 2], [0, 16])];
    assert_eq!(import(&with_header(&t, 16)), None);
}

#[test]
fn zero_sized_tensors_cannot_declare_a_huge_model() {
    // field.kinetic.0.weight of shape (10⁹, 0): parses (no data), loads as nothing.
    let t = [(
        "field.kinetic.0.weight".to_string(),
        "F64",
        vec![1_000_000_000, 0],
        [0, 0],
    )];
    assert_eq!(import(&with_header(&t, 0)), Some(0));
    let t = [
        (
            "field.layers.0.0.weight".to_string(),
            "F64",
            vec![2, 2, 3, 3],
            [0, 288],
        ),
        (
            "field.layers.999999999999.1.running_var".to_string(),
            "F64",
            vec![0],
            [288, 288],
        ),
        (
            "stem.0.weight".to_string(),
            "F64",
            vec![100_000, 1, 5, 0],
            [288, 288],
        ),
    ];
    assert_eq!(import(&with_header(&t, 288)), Some(0));
}
