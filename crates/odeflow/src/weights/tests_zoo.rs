//! Weights files of the Hamiltonian network and the ResNet / TinyResNet models: names,
//! layouts, bit-exact round trips, and refusals naming the first bad key.

use std::path::Path;

use super::*;
use crate::field::{Parameterized, VectorField};
use crate::grad::GradientMethod;
use crate::models::depth_field::{DepthField, Tying};
use crate::models::hamiltonian::SeparableHamiltonian;
use crate::models::resnet::{conv_residual_block, ResNet};
use crate::models::tiny_resnet::{TinyResNet, TinyResNetConfig};
use crate::nn::{Init, Layer, Shape};
use crate::state::Batch;
use crate::train::Trainable;

fn round_trip(file: &TensorFile) -> TensorFile {
    let bytes = file.to_bytes().unwrap();
    let back = TensorFile::parse(&bytes, Path::new("mem.safetensors")).unwrap();
    assert_eq!(back.to_bytes().unwrap(), bytes, "the bytes are stable");
    back
}

fn input<T: Real>(rows: usize, cols: usize) -> Batch<T> {
    let v = (0..rows * cols)
        .map(|i| T::of(((i * 37 % 11) as f64 - 5.0) / 7.0))
        .collect();
    Batch::from_vec(rows, cols, v).unwrap()
}

fn shapes(file: &TensorFile) -> Vec<(String, Vec<usize>)> {
    file.tensors
        .iter()
        .map(|(k, t)| (k.clone(), t.shape.clone()))
        .collect()
}

fn hamiltonian_case<T: Real>(dtype: FileDtype) {
    let mut h = SeparableHamiltonian::<T>::new(4, 5, 3).unwrap();
    let file = round_trip(&export_hamiltonian(&h, dtype));
    assert_eq!(file.dtype, dtype);
    assert_eq!(file.metadata["odeflow_model"], "hamiltonian");
    assert_eq!(file.tensors["field.kinetic.0.weight"].shape, vec![5, 2]);
    assert_eq!(file.tensors["field.potential.2.weight"].shape, vec![5, 5]);
    assert_eq!(file.tensors["field.potential.4.weight"].shape, vec![1, 5]);
    assert_eq!(file.tensors.len(), 12);
    let mut g = load_hamiltonian::<T>(&file).unwrap();
    assert_eq!(g.params(), h.params());
    let y = input::<T>(3, 4);
    let (mut a, mut b) = (Batch::zeros(3, 4), Batch::zeros(3, 4));
    VectorField::eval(&mut h, 0.0, &y, &mut a);
    VectorField::eval(&mut g, 0.0, &y, &mut b);
    assert_eq!(a.as_slice(), b.as_slice());
}

#[test]
fn hamiltonian_networks_round_trip_bit_for_bit_in_f32_and_f64() {
    hamiltonian_case::<f64>(FileDtype::F64);
    hamiltonian_case::<f32>(FileDtype::F32);
}

/// A conv body of `depth` layers on 2×4×4 features with non-trivial running statistics.
fn body(depth: usize, tying: Tying, scheme: Scheme) -> ResNet<f64> {
    let block = conv_residual_block::<f64>(2, 4, 4).unwrap();
    let mut f = DepthField::new(block, depth, tying, &Init::PyTorchDefault, 5).unwrap();
    // The last batch norm starts at zero (the block is the zero function): move it.
    for (i, p) in f.params_mut().iter_mut().enumerate() {
        *p += 0.01 * ((i % 7) as f64 - 3.0);
    }
    for n in 0..depth {
        let stats: Vec<f64> = (0..8)
            .map(|i| {
                let v = 0.1 * (n * 8 + i) as f64;
                if (i / 2) % 2 == 1 {
                    1.0 + v
                } else {
                    v - 0.3
                }
            })
            .collect();
        f.set_running_stats(n, &stats).unwrap();
    }
    let mut net = ResNet::new(f, scheme, GradientMethod::Backprop, 0).unwrap();
    net.set_train(false);
    net
}

#[test]
fn resnet_bodies_have_module_list_names_and_round_trip_with_running_statistics() {
    for (depth, tying, scheme) in [
        (3, Tying::Untied, Scheme::Euler),
        (3, Tying::Tied, Scheme::Euler),
        (4, Tying::Untied, Scheme::Heun),
        (1, Tying::Untied, Scheme::Euler),
    ] {
        let mut net = body(depth, tying, scheme);
        for dtype in [FileDtype::F64, FileDtype::F32] {
            let file = round_trip(&export_resnet(&net, dtype).unwrap());
            let arch = Architecture::ResNet(scheme);
            assert_eq!(file.metadata["odeflow_model"], arch.name());
            let t = &file.tensors["field.layers.0.4.num_batches_tracked"];
            assert!(t.integer && t.shape.is_empty() && t.data == [0.0]);
            let bytes = file.to_bytes().unwrap();
            let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
            let info = meta.info("field.layers.0.4.num_batches_tracked").unwrap();
            assert_eq!(info.dtype, safetensors::Dtype::I64);
            assert_eq!(
                file.tensors[&format!("field.layers.{}.1.running_var", depth - 1)].shape,
                vec![2]
            );
            assert_eq!(
                file.tensors.contains_key("field.layers.1.0.weight"),
                tying == Tying::Untied && depth > 1
            );
            let mut back = load_resnet::<f64>(scheme, &file, &[2, 4, 4]).unwrap();
            assert_eq!(back.field().tying(), tying);
            assert_eq!(back.depth(), depth);
            let x = input::<f64>(3, 32);
            if dtype == FileDtype::F64 {
                assert_eq!(back.field().params(), net.field().params());
                for n in 0..depth {
                    assert_eq!(back.field().running_stats(n), net.field().running_stats(n));
                }
                let a = net.infer(&x).unwrap();
                let b = back.infer(&x).unwrap();
                assert_eq!(a.as_slice(), b.as_slice());
            } else {
                // f32 files keep every bit of an f32 model: again f32 → same bytes.
                let m32 = load_resnet::<f32>(scheme, &file, &[2, 4, 4]).unwrap();
                let again = export_resnet(&m32, FileDtype::F32).unwrap();
                assert_eq!(again.to_bytes().unwrap(), file.to_bytes().unwrap());
            }
        }
    }
}

#[test]
fn batch_norm_counters_may_be_absent_or_float_as_pytorch_allows() {
    let net = body(2, Tying::Untied, Scheme::Euler);
    let file = export_resnet(&net, FileDtype::F64).unwrap();
    let mut without = file.clone();
    without
        .tensors
        .retain(|k, _| !k.ends_with("num_batches_tracked"));
    assert!(load_resnet::<f64>(Scheme::Euler, &without, &[2, 4, 4]).is_ok());
    let mut float = file.clone();
    float.tensors.insert(
        "field.layers.1.1.num_batches_tracked".into(),
        Tensor::new(vec![], vec![1234.0]),
    );
    assert!(load_resnet::<f64>(Scheme::Euler, &float, &[2, 4, 4]).is_ok());
    let mut bad = file.clone();
    bad.tensors.insert(
        "field.layers.1.1.num_batches_tracked".into(),
        Tensor::new(vec![2], vec![0.0, 0.0]),
    );
    let e = load_resnet::<f64>(Scheme::Euler, &bad, &[2, 4, 4])
        .err()
        .unwrap();
    assert_eq!(
        e.to_string(),
        "tensor 'field.layers.1.1.num_batches_tracked' has shape [2] in the weights, but the resnet model needs []"
    );
}

fn tiny(tying: Tying, scheme: Scheme) -> TinyResNet<f64> {
    let cfg = TinyResNetConfig {
        channels: 3,
        depth: 3,
        tying,
        scheme,
        classes: 4,
        seed: 9,
        ..TinyResNetConfig::default()
    };
    let mut m = TinyResNet::new(Shape::image(1, 14, 14), cfg).unwrap();
    let mut p = vec![0.0; m.num_params()];
    m.read_params(&mut p);
    for (i, v) in p.iter_mut().enumerate() {
        *v += 0.02 * ((i % 5) as f64 - 2.0);
    }
    m.write_params(&p);
    for l in m.stem_mut().sequential_mut().layers_mut() {
        if let Layer::BatchNorm(bn) = l {
            bn.set_running_stats(&[0.1, -0.2, 0.3], &[0.5, 1.5, 2.0])
                .unwrap();
        }
    }
    let f = m.body_mut().field_mut();
    for n in 0..3 {
        let s: Vec<f64> = (0..12).map(|i| 0.5 + 0.05 * (n * 12 + i) as f64).collect();
        f.set_running_stats(n, &s).unwrap();
    }
    m
}

#[test]
fn tiny_resnets_round_trip_and_give_the_same_logits() {
    for (tying, scheme) in [(Tying::Untied, Scheme::Euler), (Tying::Tied, Scheme::Heun)] {
        let mut m = tiny(tying, scheme);
        let file = round_trip(&export_tiny_resnet(&m, FileDtype::F64));
        let keys: Vec<String> = shapes(&file).into_iter().map(|(k, _)| k).collect();
        for k in [
            "stem.0.weight",
            "stem.1.weight",
            "stem.1.bias",
            "stem.1.running_mean",
            "stem.1.running_var",
            "stem.1.num_batches_tracked",
            "field.layers.2.4.running_var",
            "head.weight",
            "head.bias",
        ] {
            assert!(keys.iter().any(|x| x == k), "{k} in {keys:?}");
        }
        assert_eq!(file.tensors["stem.0.weight"].shape, vec![3, 1, 5, 5]);
        // 14×14 → stem 4×4 → pool 1×1: 3 features.
        assert_eq!(file.tensors["head.weight"].shape, vec![4, 3]);
        let mut back = load_tiny_resnet::<f64>(scheme, &file, &[1, 14, 14]).unwrap();
        let (mut p, mut q) = (vec![0.0; m.num_params()], vec![0.0; back.num_params()]);
        m.read_params(&mut p);
        back.read_params(&mut q);
        assert_eq!(p, q);
        let x = input::<f64>(2, 196);
        assert_eq!(
            m.logits(&x).unwrap().as_slice(),
            back.logits(&x).unwrap().as_slice()
        );
        // f32: the file's bits come back.
        let f32_file = round_trip(&export_tiny_resnet(&m, FileDtype::F32));
        let m32 = load_tiny_resnet::<f32>(scheme, &f32_file, &[1, 14, 14]).unwrap();
        assert_eq!(
            export_tiny_resnet(&m32, FileDtype::F32).to_bytes().unwrap(),
            f32_file.to_bytes().unwrap()
        );
    }
}

#[test]
fn zoo_files_that_do_not_fit_name_the_first_bad_key_and_both_shapes() {
    let h = SeparableHamiltonian::<f64>::new(4, 5, 3).unwrap();
    let mut f = export_hamiltonian(&h, FileDtype::F64);
    f.tensors.insert(
        "field.potential.2.weight".into(),
        Tensor::new(vec![5, 4], vec![0.0; 20]),
    );
    assert_eq!(
        load_hamiltonian::<f64>(&f).err().unwrap().to_string(),
        "tensor 'field.potential.2.weight' has shape [5, 4] in the weights, but the hamiltonian model needs [5, 5]"
    );
    let mut f = export_hamiltonian(&h, FileDtype::F64);
    f.tensors.remove("field.potential.4.bias");
    assert_eq!(
        load_hamiltonian::<f64>(&f).err().unwrap().to_string(),
        "the weights have no tensor 'field.potential.4.bias' (the hamiltonian model needs one of shape [1])"
    );

    let net = body(2, Tying::Untied, Scheme::Euler);
    let mut f = export_resnet(&net, FileDtype::F64).unwrap();
    f.tensors.insert(
        "field.layers.1.1.running_mean".into(),
        Tensor::new(vec![3], vec![0.0; 3]),
    );
    assert_eq!(
        load_resnet::<f64>(Scheme::Euler, &f, &[2, 4, 4])
            .err()
            .unwrap()
            .to_string(),
        "tensor 'field.layers.1.1.running_mean' has shape [3] in the weights, but the resnet model needs [2]"
    );
    let mut f = export_resnet(&net, FileDtype::F64).unwrap();
    f.tensors.remove("field.layers.1.3.weight");
    assert!(load_resnet::<f64>(Scheme::Euler, &f, &[2, 4, 4])
        .err()
        .unwrap()
        .to_string()
        .contains("no tensor 'field.layers.1.3.weight'"));
    let f = export_resnet(&net, FileDtype::F64).unwrap();
    let e = load_resnet::<f64>(Scheme::Euler, &f, &[3, 4, 4])
        .err()
        .unwrap();
    assert!(e.to_string().contains("reads 2 channels"), "{e}");
    let e = load_tiny_resnet::<f64>(Scheme::Euler, &f, &[2, 4, 4])
        .err()
        .unwrap();
    assert!(e.to_string().contains("no tensor 'stem.0.weight'"), "{e}");

    let m = tiny(Tying::Untied, Scheme::Euler);
    let f = export_tiny_resnet(&m, FileDtype::F64);
    // 20×20 images give 6×6 stem features and 3·1·1 head features, as 14×14 ones, but
    // 28×28 give 9×9 and 3·2·2 = 12.
    assert!(load_tiny_resnet::<f64>(Scheme::Euler, &f, &[1, 20, 20]).is_ok());
    assert_eq!(
        load_tiny_resnet::<f64>(Scheme::Euler, &f, &[1, 28, 28])
            .err()
            .unwrap()
            .to_string(),
        "tensor 'head.weight' has shape [4, 3] in the weights, but the tiny_resnet model needs [4, 12]"
    );
    // Another architecture's file, and a classifier loader on a zoo file.
    let e = load_hamiltonian::<f64>(&f).err().unwrap();
    assert!(
        e.to_string().contains("no tensor 'field.kinetic.0.weight'"),
        "{e}"
    );
    let e = load_classifier::<f64>(
        Architecture::TinyResNet(Scheme::Euler),
        &f,
        &[1, 14, 14],
        crate::solve::Method::from_name("rk4").unwrap(),
        crate::solve::SolverSpec::fixed("rk4", 1).unwrap().options(),
    )
    .err()
    .unwrap();
    assert!(e.to_string().contains("not one of Ott et al.'s"), "{e}");
}

#[test]
fn shapes_that_describe_more_values_than_the_file_holds_are_refused_before_building() {
    // A Hamiltonian of width 10⁹ declared by a (10⁹, 0) weight: no values, no model.
    let mut f = TensorFile::new(FileDtype::F64);
    f.tensors.insert(
        "field.kinetic.0.weight".into(),
        Tensor::new(vec![1_000_000_000, 0], vec![]),
    );
    let e = load_hamiltonian::<f64>(&f).err().unwrap().to_string();
    assert!(e.contains("holds no values"), "{e}");
    // An MLP whose second layer is declared 10⁹ wide by an empty tensor.
    let mut f = TensorFile::new(FileDtype::F64);
    f.tensors.insert(
        "field.0.weight".into(),
        Tensor::new(vec![2, 2], vec![0.0; 4]),
    );
    f.tensors.insert(
        "field.2.weight".into(),
        Tensor::new(vec![1_000_000_000, 0], vec![]),
    );
    f.tensors.insert(
        "field.4.weight".into(),
        Tensor::new(vec![2, 3], vec![0.0; 6]),
    );
    let e = load_field::<f64>("mlp-tanh".parse().unwrap(), &f, &[2])
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("but the file holds only 10"), "{e}");
    // A body of depth 10⁹ declared by one key.
    let net = body(1, Tying::Untied, Scheme::Euler);
    let mut f = export_resnet(&net, FileDtype::F64).unwrap();
    f.tensors.insert(
        "field.layers.999999999.1.running_mean".into(),
        Tensor::new(vec![2], vec![0.0; 2]),
    );
    let e = load_resnet::<f64>(Scheme::Euler, &f, &[2, 4, 4])
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("model of "), "{e}");
}
