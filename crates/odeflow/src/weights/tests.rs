use std::path::Path;

use super::*;
use crate::field::{Parameterized, VectorField};
use crate::grad::GradientMethod;
use crate::models::FlowModel;
use crate::models::{ClassifierSpec, FieldSpec, NeuralClassifier};
use crate::nn::zoo::zhu_field;
use crate::solve::{Method, SolveOptions};
use crate::state::Batch;
use crate::train::Trainable;

fn opts() -> SolveOptions {
    crate::solve::SolverSpec::fixed("rk4", 4).unwrap().options()
}

fn rk4() -> Method {
    Method::from_name("rk4").unwrap()
}

fn classifier<T: Real>(
    spec: &ClassifierSpec,
    sample: &[usize],
    classes: usize,
) -> NeuralClassifier<T> {
    spec.build::<T>(sample, classes, rk4(), GradientMethod::Backprop, opts(), 7)
        .unwrap()
}

fn params<T: Real>(m: &NeuralClassifier<T>) -> Vec<T> {
    let mut p = vec![T::zero(); m.num_params()];
    m.read_params(&mut p);
    p
}

fn round_trip(file: &TensorFile) -> TensorFile {
    TensorFile::parse(&file.to_bytes().unwrap(), Path::new("mem.safetensors")).unwrap()
}

fn input(rows: usize, cols: usize) -> Batch<f64> {
    let v = (0..rows * cols)
        .map(|i| ((i * 37 % 11) as f64 - 5.0) / 7.0)
        .collect();
    Batch::from_vec(rows, cols, v).unwrap()
}

#[test]
fn simple_odenet_files_have_pytorch_names_and_layouts() {
    let spec = ClassifierSpec::new(FieldSpec::SimpleOdenet { channels: 5 });
    let m = classifier::<f64>(&spec, &[1, 3], 2);
    let file = export_classifier(&m, &spec, FileDtype::F64).unwrap();
    let keys: Vec<(&str, &[usize])> = file
        .tensors
        .iter()
        .map(|(k, t)| (k.as_str(), t.shape.as_slice()))
        .collect();
    let want: Vec<(&str, &[usize])> = vec![
        ("field.0.bias", &[5]),
        ("field.0.weight", &[5, 1, 1]),
        ("field.2.bias", &[5]),
        ("field.2.weight", &[5, 5, 3]),
        ("field.4.bias", &[1]),
        ("field.4.weight", &[1, 5, 1]),
        ("head.bias", &[2]),
        ("head.weight", &[2, 3]),
    ];
    assert_eq!(keys, want);
    assert_eq!(file.metadata["odeflow_model"], "simple_odenet");
    // Values in PyTorch's order: the head's weight is the head's parameter block.
    assert_eq!(
        file.tensors["head.weight"].data,
        m.head.param("1.weight").unwrap().to_vec()
    );
}

#[test]
fn classifiers_round_trip_bit_for_bit_and_give_the_same_logits() {
    let cases = [
        (
            ClassifierSpec::new(FieldSpec::SimpleOdenet { channels: 4 }),
            vec![1, 3],
            2,
        ),
        (
            ClassifierSpec {
                augment: 2,
                ..ClassifierSpec::new(FieldSpec::SimpleOdenet { channels: 3 })
            },
            vec![1, 4],
            3,
        ),
        (
            ClassifierSpec {
                augment: 1,
                ..ClassifierSpec::new(FieldSpec::Odenet { channels: 3 })
            },
            vec![1, 4, 4],
            10,
        ),
        (
            ClassifierSpec::new(FieldSpec::Mlp {
                hidden: vec![6, 5],
                activation: "softplus".into(),
            }),
            vec![3],
            2,
        ),
    ];
    for (spec, sample, classes) in cases {
        let m = classifier::<f64>(&spec, &sample, classes);
        let file = round_trip(&export_classifier(&m, &spec, FileDtype::F64).unwrap());
        let arch = Architecture::of_spec(&spec.field).unwrap();
        let generic: Architecture = match arch {
            Architecture::Mlp(_) => "mlp".parse().unwrap(),
            a => a,
        };
        let (mut back, shape) =
            load_classifier::<f64>(generic, &file, &sample, rk4(), opts()).unwrap();
        assert_eq!(shape.spec.field, spec.field, "{spec:?}");
        assert_eq!(shape.spec.augment, spec.augment);
        assert_eq!(shape.classes, Some(classes));
        assert_eq!(params(&back), params(&m));
        let x = input(5, sample.iter().product());
        let mut m = m;
        let (a, _) = m.outputs(&x, &rk4(), &opts()).unwrap();
        let (b, _) = back.outputs(&x, &rk4(), &opts()).unwrap();
        assert_eq!(a.as_slice(), b.as_slice());
    }
}

#[test]
fn f32_files_keep_every_bit_and_load_into_either_dtype() {
    let spec = ClassifierSpec::new(FieldSpec::SimpleOdenet { channels: 4 });
    let m = classifier::<f32>(&spec, &[1, 2], 2);
    let bytes = export_classifier(&m, &spec, FileDtype::F32)
        .unwrap()
        .to_bytes()
        .unwrap();
    let file = TensorFile::parse(&bytes, Path::new("m.safetensors")).unwrap();
    assert_eq!(file.dtype, FileDtype::F32);
    assert_eq!(file.to_bytes().unwrap(), bytes);
    let arch = Architecture::SimpleOdenet;
    let (b32, _) = load_classifier::<f32>(arch, &file, &[1, 2], rk4(), opts()).unwrap();
    assert_eq!(params(&b32), params(&m));
    let (b64, _) = load_classifier::<f64>(arch, &file, &[1, 2], rk4(), opts()).unwrap();
    let widened: Vec<f64> = params(&m).iter().map(|&v| v as f64).collect();
    assert_eq!(params(&b64), widened);
}

#[test]
fn bare_fields_round_trip() {
    let f = zhu_field::<f64>(2, 3).unwrap();
    let arch: Architecture = "mlp-tanh".parse().unwrap();
    let file = round_trip(&export_field(&f, arch, FileDtype::F64));
    assert_eq!(file.tensors["field.2.weight"].shape, vec![128, 128]);
    let (mut g, shape) = load_field::<f64>(Architecture::Mlp(None), &file, &[2]).unwrap();
    assert_eq!(shape.classes, None);
    assert_eq!(g.params(), f.params());
    let x = input(3, 2);
    let (mut a, mut b) = (Batch::zeros(3, 2), Batch::zeros(3, 2));
    let mut f = f;
    VectorField::eval(&mut f, 0.0, &x, &mut a);
    VectorField::eval(&mut g, 0.0, &x, &mut b);
    assert_eq!(a.as_slice(), b.as_slice());
    // A field file is no classifier.
    let e = load_classifier::<f64>(arch, &file, &[2], rk4(), opts())
        .err()
        .unwrap();
    assert!(e.to_string().contains("no classification head"), "{e}");
}

fn sphere_file() -> TensorFile {
    let spec = ClassifierSpec::new(FieldSpec::SimpleOdenet { channels: 4 });
    export_classifier(&classifier::<f64>(&spec, &[1, 2], 2), &spec, FileDtype::F64).unwrap()
}

fn load_err(file: &TensorFile, arch: &str) -> String {
    load_classifier::<f64>(arch.parse().unwrap(), file, &[1, 2], rk4(), opts())
        .err()
        .unwrap()
        .to_string()
}

#[test]
fn files_that_do_not_fit_name_the_first_bad_key_and_both_shapes() {
    let mut f = sphere_file();
    f.tensors.insert(
        "field.2.weight".into(),
        Tensor::new(vec![4, 4, 5], vec![0.0; 80]),
    );
    assert_eq!(
        load_err(&f, "simple_odenet"),
        "tensor 'field.2.weight' has shape [4, 4, 5] in the weights, but the simple_odenet model needs [4, 4, 3]"
    );
    let mut f = sphere_file();
    f.tensors.remove("field.4.bias");
    assert_eq!(
        load_err(&f, "simple_odenet"),
        "the weights have no tensor 'field.4.bias' (the simple_odenet model needs one of shape [1])"
    );
    let mut f = sphere_file();
    f.tensors
        .insert("field.6.weight".into(), Tensor::new(vec![1], vec![0.0]));
    assert!(load_err(&f, "simple_odenet").contains("'field.6.weight' of shape [1]"));
    // The head must read the flattened state: 2 features here.
    let mut f = sphere_file();
    f.tensors
        .insert("head.weight".into(), Tensor::new(vec![2, 3], vec![0.0; 6]));
    assert!(load_err(&f, "simple_odenet")
        .contains("has shape [2, 3] in the weights, but the simple_odenet model needs [2, 2]"));
    // Another architecture's file.
    let e = load_err(&sphere_file(), "odenet");
    assert!(
        e.contains("needs samples of shape (channels, height, width)"),
        "{e}"
    );
    let e = load_err(&sphere_file(), "mlp-tanh");
    assert!(
        e.contains("'field.0.weight' has shape [4, 1, 1], but a mlp-tanh file has a Linear weight"),
        "{e}"
    );
    let e = load_err(&sphere_file(), "mlp");
    assert!(e.contains("mlp-tanh"), "{e}");
    assert!("resnet50"
        .parse::<Architecture>()
        .err()
        .unwrap()
        .to_string()
        .contains("unknown model 'resnet50'"));
}

#[test]
fn non_safetensors_and_other_dtypes_are_refused() {
    let e = TensorFile::parse(b"not a file at all", Path::new("x.safetensors"))
        .err()
        .unwrap();
    assert!(
        e.to_string()
            .starts_with("'x.safetensors' is not a safetensors file"),
        "{e}"
    );
    let data = [0u8; 4];
    let view =
        safetensors::tensor::TensorView::new(safetensors::Dtype::I32, vec![1], &data).unwrap();
    let bytes = safetensors::serialize([("field.0.weight", view)], None).unwrap();
    let e = TensorFile::parse(&bytes, Path::new("i.safetensors"))
        .err()
        .unwrap();
    assert!(e.to_string().contains("dtype I32"), "{e}");
}

#[test]
fn loss_gradients_match_central_differences_under_the_file_keys() {
    let spec = ClassifierSpec {
        augment: 1,
        ..ClassifierSpec::new(FieldSpec::SimpleOdenet { channels: 3 })
    };
    let mut m = classifier::<f64>(&spec, &[1, 2], 2);
    let x = input(6, 2);
    let labels = [0, 1, 1, 0, 1, 0];
    let (loss, g) = loss_gradient(&mut m, &x, &labels, FileDtype::F64).unwrap();
    let weights = export_classifier(&m, &spec, FileDtype::F64).unwrap();
    let keys: Vec<_> = g
        .tensors
        .iter()
        .map(|(k, t)| (k.clone(), t.shape.clone()))
        .collect();
    let wkeys: Vec<_> = weights
        .tensors
        .iter()
        .map(|(k, t)| (k.clone(), t.shape.clone()))
        .collect();
    assert_eq!(keys, wkeys);
    let loss_of = |file: &TensorFile| {
        let (mut m, _) =
            load_classifier::<f64>(Architecture::SimpleOdenet, file, &[1, 2], rk4(), opts())
                .unwrap();
        let (logits, _) = m.outputs(&x, &rk4(), &opts()).unwrap();
        let mut gl = Batch::zeros(0, 0);
        gl.resize(logits.rows(), logits.cols());
        crate::nn::loss::softmax_cross_entropy(&logits, &labels, &mut gl).unwrap()
    };
    assert!((loss_of(&weights) - loss).abs() <= 1e-14 * loss.abs());
    let eps = 1e-6;
    let mut worst = 0.0f64;
    for (key, t) in &g.tensors {
        for i in 0..t.data.len() {
            let mut plus = weights.clone();
            plus.tensors.get_mut(key).unwrap().data[i] += eps;
            let mut minus = weights.clone();
            minus.tensors.get_mut(key).unwrap().data[i] -= eps;
            let fd = (loss_of(&plus) - loss_of(&minus)) / (2.0 * eps);
            worst = worst.max((fd - t.data[i]).abs() / (1e-3 + fd.abs()));
        }
    }
    assert!(worst < 1e-6, "worst relative difference {worst:e}");
}

#[test]
fn the_same_weights_always_give_the_same_bytes() {
    // Metadata with several keys: safetensors itself writes them in hash order.
    let spec = ClassifierSpec::new(FieldSpec::SimpleOdenet { channels: 2 });
    let m = classifier::<f64>(&spec, &[1, 2], 2);
    let first = export_classifier(&m, &spec, FileDtype::F64)
        .unwrap()
        .to_bytes()
        .unwrap();
    for _ in 0..20 {
        let again = export_classifier(&m, &spec, FileDtype::F64)
            .unwrap()
            .to_bytes()
            .unwrap();
        assert_eq!(again, first);
    }
    let file = TensorFile::parse(&first, Path::new("m.safetensors")).unwrap();
    assert_eq!(file.metadata.get("format").map(String::as_str), Some("pt"));
}
