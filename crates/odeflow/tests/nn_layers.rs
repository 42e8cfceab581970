//! Forward semantics of the layers against naive PyTorch-convention references, shapes and
//! typed errors, initialisation, f32/f64 agreement, and the neural field inside a solve.

mod nn_common;

use nn_common::*;
use odeflow::nn::zoo::{self, MlpOptions};
use odeflow::nn::{
    Activation, BatchNormOptions, ConvAlgo, ConvSpec, Init, Layer, Linear, Network, NeuralField,
    NnError, Sequential, SequentialBuilder, Shape,
};
use odeflow::solve::{solve, SolveOptions};
use odeflow::{Batch, Method, Parameterized, VectorField};

/// `y[n, co, oh, ow] = b[co] + Σ W[co, ci, i, j]·x[n, ci, oh·sh − ph + i, ow·sw − pw + j]`.
fn naive_conv(
    x: &Batch<f64>,
    w: &[f64],
    b: Option<&[f64]>,
    spec: &ConvSpec,
    (h, wd): (usize, usize),
) -> Vec<f64> {
    let (ci_n, co_n) = (spec.in_channels, spec.out_channels);
    let ((kh, kw), (sh, sw), (ph, pw)) = (spec.kernel, spec.stride, spec.padding);
    let ho = (h + 2 * ph - kh) / sh + 1;
    let wo = (wd + 2 * pw - kw) / sw + 1;
    let mut out = Vec::new();
    for n in 0..x.rows() {
        let xs = x.row(n);
        for co in 0..co_n {
            for oh in 0..ho {
                for ow in 0..wo {
                    let mut s = b.map_or(0.0, |b| b[co]);
                    for ci in 0..ci_n {
                        for i in 0..kh {
                            for j in 0..kw {
                                let (r, c) = (
                                    (oh * sh + i) as isize - ph as isize,
                                    (ow * sw + j) as isize - pw as isize,
                                );
                                if r < 0 || c < 0 || r >= h as isize || c >= wd as isize {
                                    continue;
                                }
                                s += w[((co * ci_n + ci) * kh + i) * kw + j]
                                    * xs[(ci * h + r as usize) * wd + c as usize];
                            }
                        }
                    }
                    out.push(s);
                }
            }
        }
    }
    out
}

#[test]
fn conv_forward_matches_naive_reference_for_all_algorithms() {
    let cases = [
        (ConvSpec::d1(2, 3, 3, 1, 1), (1, 5)),
        (ConvSpec::d1(1, 2, 4, 3, 2), (1, 6)),
        (ConvSpec::d1(3, 2, 5, 1, 2), (1, 2)),
        (ConvSpec::d1(2, 2, 1, 2, 1), (1, 5)),
        (ConvSpec::d1(2, 3, 1, 1, 0), (1, 4)),
        (ConvSpec::d2(2, 3, 3, 1, 1), (5, 4)),
        (ConvSpec::d2(1, 2, 3, 2, 0).without_bias(), (7, 6)),
        (
            ConvSpec {
                in_channels: 2,
                out_channels: 2,
                kernel: (2, 3),
                stride: (2, 1),
                padding: (1, 2),
                bias: true,
            },
            (5, 3),
        ),
        (ConvSpec::d2(2, 4, 5, 1, 2), (3, 3)),
        (ConvSpec::d2(3, 2, 3, 1, 1), (9, 9)),
    ];
    for (i, (spec, (h, w))) in cases.into_iter().enumerate() {
        let shape = if spec.kernel.0 == 1 && h == 1 {
            Shape::seq(spec.in_channels, w)
        } else {
            Shape::image(spec.in_channels, h, w)
        };
        let x = random_batch(3, shape.len(), 1.0, i as u64);
        let mut outs = Vec::new();
        for algo in [ConvAlgo::Direct, ConvAlgo::Im2col, ConvAlgo::Auto] {
            let mut net = Network::<f64>::new(
                SequentialBuilder::new(shape).conv(spec).build().unwrap(),
                &Init::PyTorchDefault,
                3,
            );
            if let Layer::Conv(c) = &mut net.sequential_mut().layers_mut()[0] {
                c.set_algo(algo);
            }
            let wt = net.param("0.weight").unwrap().to_vec();
            let bias = spec.bias.then(|| net.param("0.bias").unwrap().to_vec());
            let want = naive_conv(&x, &wt, bias.as_deref(), &spec, (h, w));
            let mut y = Batch::zeros(0, 0);
            net.forward(0.0, &x, &mut y).unwrap();
            assert!(
                rel_err(y.as_slice(), &want, 1e-12) < 1e-14,
                "case {i} {algo:?}"
            );
            outs.push(y);
        }
    }
}

#[test]
fn linear_batchnorm_time_concat_and_flatten_forward_semantics() {
    // Linear: y = W x + b with W [out, in].
    let mut lin = Network::<f64>::new(
        SequentialBuilder::new(Shape::Flat(3))
            .linear(2)
            .build()
            .unwrap(),
        &Init::PyTorchDefault,
        1,
    );
    let (w, b) = (
        lin.param("0.weight").unwrap().to_vec(),
        lin.param("0.bias").unwrap().to_vec(),
    );
    let x = random_batch(2, 3, 1.0, 2);
    let mut y = Batch::zeros(0, 0);
    lin.forward(0.0, &x, &mut y).unwrap();
    for n in 0..2 {
        for o in 0..2 {
            let want: f64 = b[o] + (0..3).map(|i| w[o * 3 + i] * x.row(n)[i]).sum::<f64>();
            assert!((y.row(n)[o] - want).abs() < 1e-15);
        }
    }

    // BatchNorm2d, train mode: per-channel batch statistics over (N, H, W); running stats
    // with momentum 0.1 and the unbiased variance.
    let shape = Shape::image(2, 2, 3);
    let mut bn = Network::<f64>::new(
        SequentialBuilder::new(shape)
            .batch_norm(BatchNormOptions::default())
            .build()
            .unwrap(),
        &Init::PyTorchDefault,
        0,
    );
    let x = random_batch(4, 12, 2.0, 3);
    bn.forward(0.0, &x, &mut y).unwrap();
    for c in 0..2 {
        let vals: Vec<f64> = (0..4)
            .flat_map(|n| x.row(n)[c * 6..c * 6 + 6].to_vec())
            .collect();
        let m = vals.iter().sum::<f64>() / 24.0;
        let var = vals.iter().map(|v| (v - m).powi(2)).sum::<f64>() / 24.0;
        for n in 0..4 {
            for p in 0..6 {
                let want = (x.row(n)[c * 6 + p] - m) / (var + 1e-5).sqrt();
                assert!((y.row(n)[c * 6 + p] - want).abs() < 1e-12);
            }
        }
        if let Layer::BatchNorm(l) = &bn.sequential().layers()[0] {
            assert!((l.running_mean()[c] - 0.1 * m).abs() < 1e-15);
            assert!((l.running_var()[c] - (0.9 + 0.1 * var * 24.0 / 23.0)).abs() < 1e-15);
        }
    }
    // Eval mode: running statistics.
    bn.set_train(false);
    bn.forward(0.0, &x, &mut y).unwrap();
    if let Layer::BatchNorm(l) = &bn.sequential().layers()[0] {
        let (rm, rv) = (l.running_mean()[1], l.running_var()[1]);
        assert!((y.row(2)[7] - (x.row(2)[7] - rm) / (rv + 1e-5).sqrt()).abs() < 1e-14);
    }
    // Zero-initialised scale and shift: output 0.
    let zero = BatchNormOptions {
        zero_init: true,
        ..Default::default()
    };
    let mut bz = Network::<f64>::new(
        SequentialBuilder::new(Shape::Flat(3))
            .batch_norm(zero)
            .build()
            .unwrap(),
        &Init::PyTorchDefault,
        0,
    );
    bz.forward(0.0, &random_batch(3, 3, 1.0, 4), &mut y)
        .unwrap();
    assert!(y.as_slice().iter().all(|v| *v == 0.0));

    // TimeConcat + conv == conv on the explicitly concatenated input [t; x].
    let t = 0.3;
    let spec = ConvSpec::d2(3, 2, 3, 1, 1);
    let mut tc = Network::<f64>::new(
        SequentialBuilder::new(Shape::image(2, 3, 3))
            .time_concat()
            .conv(spec)
            .build()
            .unwrap(),
        &Init::PyTorchDefault,
        5,
    );
    let mut plain = Network::<f64>::with_params(
        SequentialBuilder::new(Shape::image(3, 3, 3))
            .conv(spec)
            .build()
            .unwrap(),
        tc.params().to_vec(),
    )
    .unwrap();
    let x = random_batch(2, 18, 1.0, 6);
    let cat: Vec<Vec<f64>> = (0..2)
        .map(|n| [vec![t; 9], x.row(n).to_vec()].concat())
        .collect();
    let (mut y1, mut y2) = (Batch::zeros(0, 0), Batch::zeros(0, 0));
    tc.forward(t, &x, &mut y1).unwrap();
    plain
        .forward(t, &Batch::from_rows(&cat).unwrap(), &mut y2)
        .unwrap();
    assert!(rel_err(y1.as_slice(), y2.as_slice(), 1e-12) < 1e-14);

    // Flatten keeps PyTorch's channel-major order (the identity on a batch row).
    let mut fl = Network::<f64>::new(
        SequentialBuilder::new(Shape::image(2, 2, 3))
            .flatten()
            .build()
            .unwrap(),
        &Init::PyTorchDefault,
        0,
    );
    let x = random_batch(2, 12, 1.0, 7);
    fl.forward(0.0, &x, &mut y).unwrap();
    assert_eq!(y.as_slice(), x.as_slice());
}

#[test]
fn shapes_and_typed_errors() {
    let bad = Sequential::<f64>::new(vec![
        Layer::Linear(Linear::new(3, 4, true).unwrap()),
        Layer::Linear(Linear::new(5, 2, true).unwrap()),
    ])
    .unwrap_err();
    assert_eq!(
        bad,
        NnError::ShapeMismatch {
            index: 1,
            layer: "Linear".into(),
            expected: Shape::Flat(5),
            got: Shape::Flat(4)
        }
    );
    assert!(bad.to_string().contains("layer 1"));
    let e = SequentialBuilder::<f64>::new(Shape::image(1, 4, 4))
        .linear(3)
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("flatten"), "{e}");
    let e = SequentialBuilder::<f64>::new(Shape::seq(1, 2))
        .conv1d(4, 7, 1, 2)
        .build()
        .unwrap_err();
    assert!(
        e.to_string().contains("kernel size") && e.to_string().contains('7'),
        "{e}"
    );
    let e = SequentialBuilder::<f64>::new(Shape::seq(1, 2))
        .conv1d(4, 3, 0, 1)
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("stride"), "{e}");
    assert!(Linear::new(0, 3, true).is_err());
    assert!(matches!(
        zoo::mlp_field::<f64>(
            &[2, 4, 3],
            &MlpOptions {
                activation: Activation::Tanh,
                init: Init::orthogonal(),
                time_input: false
            },
            0
        ),
        Err(NnError::NotAField { .. })
    ));
    assert!(zoo::mlp::<f64>(
        &[2],
        &MlpOptions {
            activation: Activation::Tanh,
            init: Init::orthogonal(),
            time_input: false
        },
        0
    )
    .is_err());
    // Wrong sample length is an error naming the sizes, not a panic.
    let mut f = zoo::simple_odenet::<f64>(4, 3, 0).unwrap();
    let mut y = Batch::zeros(0, 0);
    let e = f
        .network_mut()
        .forward(0.0, &Batch::zeros(2, 4), &mut y)
        .unwrap_err();
    assert!(
        e.to_string().contains('3') && e.to_string().contains('4'),
        "{e}"
    );
    let e = f.network().param("9.weight").unwrap_err();
    assert!(e.to_string().contains("0.weight"), "{e}");
    // An empty tape is refused by backward.
    let tape = f.new_tape();
    let mut gx = Batch::zeros(0, 0);
    let mut gp = f.zero_grad();
    assert!(f
        .network_mut()
        .backward(&tape, &Batch::zeros(1, 3), &mut gx, &mut gp)
        .is_err());
    // Output-size formula on odd sizes.
    for (l, k, s, p) in [(7, 3, 2, 0), (6, 4, 3, 2), (5, 1, 2, 1), (9, 5, 4, 2)] {
        let net = SequentialBuilder::<f64>::new(Shape::seq(1, l))
            .conv1d(1, k, s, p)
            .build()
            .unwrap();
        assert_eq!(net.out_shape(), Shape::seq(1, (l + 2 * p - k) / s + 1));
    }
}

#[test]
fn simple_odenet_parameter_names_shapes_and_pytorch_init() {
    let f = zoo::simple_odenet::<f32>(32, 2, 7).unwrap();
    let views = f.param_views();
    let got: Vec<(String, Vec<usize>)> = views
        .iter()
        .map(|v| (v.name.clone(), v.shape.clone()))
        .collect();
    let want = [
        ("0.weight", vec![32, 1, 1]),
        ("0.bias", vec![32]),
        ("2.weight", vec![32, 32, 3]),
        ("2.bias", vec![32]),
        ("4.weight", vec![1, 32, 1]),
        ("4.bias", vec![1]),
    ];
    assert_eq!(
        got,
        want.iter()
            .map(|(n, s)| (n.to_string(), s.clone()))
            .collect::<Vec<_>>()
    );
    let mut off = 0;
    for v in &views {
        assert_eq!(v.offset, off);
        off += v.len();
    }
    assert_eq!(off, f.num_params());
    for (name, fan_in) in [("0", 1.0f32), ("2", 96.0), ("4", 32.0)] {
        let bound = 1.0 / fan_in.sqrt();
        for suffix in ["weight", "bias"] {
            let p = f.network().param(&format!("{name}.{suffix}")).unwrap();
            assert!(p.iter().all(|v| v.abs() <= bound), "{name}.{suffix}");
            assert!(p.iter().any(|v| v.abs() > 0.5 * bound));
        }
    }
}

#[test]
fn same_seed_same_params_and_f32_is_f64_rounded() {
    let a = zoo::simple_odenet::<f64>(8, 2, 42).unwrap();
    let b = zoo::simple_odenet::<f64>(8, 2, 42).unwrap();
    let c = zoo::simple_odenet::<f64>(8, 2, 43).unwrap();
    let d = zoo::simple_odenet::<f32>(8, 2, 42).unwrap();
    assert_eq!(a.params(), b.params());
    assert_ne!(a.params(), c.params());
    assert!(a
        .params()
        .iter()
        .zip(d.params())
        .all(|(x, y)| (*x as f32) == *y));
    let z1 = zoo::zhu_field::<f64>(2, 5).unwrap();
    let z2 = zoo::zhu_field::<f64>(2, 5).unwrap();
    assert_eq!(z1.params(), z2.params());
}

#[test]
fn zhu_field_is_orthogonal_with_zero_bias() {
    let f = zoo::zhu_field::<f64>(2, 9).unwrap();
    let net = f.network();
    for (name, rows, cols) in [
        ("0.weight", 128, 2),
        ("2.weight", 128, 128),
        ("4.weight", 2, 128),
    ] {
        let w = net.param(name).unwrap();
        let (small, by_rows) = if rows <= cols {
            (rows, true)
        } else {
            (cols, false)
        };
        for a in 0..small {
            for b in 0..small {
                let g: f64 = if by_rows {
                    (0..cols).map(|k| w[a * cols + k] * w[b * cols + k]).sum()
                } else {
                    (0..rows).map(|k| w[k * cols + a] * w[k * cols + b]).sum()
                };
                assert!(
                    (g - f64::from(u8::from(a == b))).abs() < 1e-12,
                    "{name}: G[{a},{b}] = {g}"
                );
            }
        }
    }
    for name in ["0.bias", "2.bias", "4.bias"] {
        assert!(net.param(name).unwrap().iter().all(|v| *v == 0.0));
    }
}

fn f32_vs_f64(
    name: &str,
    f64f: &mut NeuralField<f64>,
    f32f: &mut NeuralField<f32>,
    rows: usize,
    t: f64,
) {
    // Same parameters: the f32 ones, widened.
    let p: Vec<f64> = f32f.params().iter().map(|v| *v as f64).collect();
    f64f.params_mut().copy_from_slice(&p);
    let y = random_batch(rows, f64f.shape().len(), 1.0, 90);
    let v = random_batch(rows, f64f.shape().len(), 1.0, 91);
    let (y32, v32) = (y.cast::<f32>(), v.cast::<f32>());
    let (mut d64, mut d32) = (y.clone(), y32.clone());
    let (mut t64, mut t32) = (f64f.new_tape(), f32f.new_tape());
    f64f.eval_taped(t, &y, &mut d64, &mut t64);
    f32f.eval_taped(t, &y32, &mut d32, &mut t32);
    let (mut g64, mut g32) = (y.clone(), y32.clone());
    let (mut p64, mut p32) = (f64f.zero_grad(), f32f.zero_grad());
    f64f.vjp(&t64, &v, &mut g64, &mut p64);
    f32f.vjp(&t32, &v32, &mut g32, &mut p32);
    let w = |x: &[f32]| x.iter().map(|v| *v as f64).collect::<Vec<_>>();
    for (what, a, b) in [
        ("eval", w(d32.as_slice()), d64.as_slice().to_vec()),
        ("state vjp", w(g32.as_slice()), g64.as_slice().to_vec()),
        ("param vjp", w(&p32), p64),
    ] {
        let e = rel_err(&a, &b, 1e-6);
        assert!(e < 2e-5, "{name} {what}: f32 vs f64 relative error {e:e}");
    }
}

#[test]
fn f32_agrees_with_f64() {
    f32_vs_f64(
        "simple_odenet",
        &mut zoo::simple_odenet(32, 2, 1).unwrap(),
        &mut zoo::simple_odenet(32, 2, 1).unwrap(),
        16,
        0.0,
    );
    f32_vs_f64(
        "odenet",
        &mut zoo::odenet(1, 6, 5, 8, 2).unwrap(),
        &mut zoo::odenet(1, 6, 5, 8, 2).unwrap(),
        3,
        0.0,
    );
    f32_vs_f64(
        "zhu",
        &mut zoo::zhu_field(2, 3).unwrap(),
        &mut zoo::zhu_field(2, 3).unwrap(),
        32,
        0.0,
    );
    for a in Activation::ALL {
        let o = MlpOptions {
            activation: a,
            init: Init::PyTorchDefault,
            time_input: true,
        };
        f32_vs_f64(
            a.name(),
            &mut zoo::mlp_field(&[3, 16, 3], &o, 4).unwrap(),
            &mut zoo::mlp_field(&[3, 16, 3], &o, 4).unwrap(),
            8,
            0.7,
        );
    }
}

#[test]
fn neural_field_drives_a_solve() {
    // Euler through `solve` equals a hand-written Euler loop over `eval`.
    let mut f = zoo::simple_odenet::<f64>(8, 2, 3).unwrap();
    let y0 = random_batch(5, 2, 1.0, 100);
    let method = Method::from_name("euler").unwrap();
    let sol = solve(&method, &mut f, &y0, &SolveOptions::steps(0.0, 1.0, 10)).unwrap();
    let mut y = y0.clone();
    let mut dy = y0.clone();
    for _ in 0..10 {
        VectorField::eval(&mut f, 0.0, &y, &mut dy);
        for (a, b) in y.as_mut_slice().iter_mut().zip(dy.as_slice()) {
            *a += 0.1 * b;
        }
    }
    assert!(rel_err(sol.y_final.as_slice(), y.as_slice(), 1e-12) < 1e-14);
}
