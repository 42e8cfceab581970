//! Every layer's VJP (input and parameters) against central finite differences in f64,
//! relative error ≤ 1e-6; the zoo models as vector fields (`vjp` against FD of `eval`).

mod nn_common;

use nn_common::*;
use odeflow::nn::zoo::{self, MlpOptions};
use odeflow::nn::{
    Activation, BatchNormOptions, ConvAlgo, ConvSpec, Init, Layer, Network, NeuralField,
    SequentialBuilder, Shape,
};
use odeflow::{Batch, Parameterized, VectorField};

fn network(b: SequentialBuilder<f64>, init: Init, seed: u64) -> Network<f64> {
    Network::new(b.build().unwrap(), &init, seed)
}

fn set_conv_algo(net: &mut Network<f64>, algo: ConvAlgo) {
    for l in net.sequential_mut().layers_mut() {
        if let Layer::Conv(c) = l {
            c.set_algo(algo);
        }
    }
}

#[test]
fn linear_vjp_with_and_without_bias() {
    let x = random_batch(5, 3, 1.0, 1);
    let mut net = network(
        SequentialBuilder::new(Shape::Flat(3)).linear(4),
        Init::PyTorchDefault,
        2,
    );
    assert_network_vjp("linear", &mut net, &x, 0.0);
    let seq = odeflow::nn::Sequential::new(vec![Layer::Linear(
        odeflow::nn::Linear::new(3, 2, false).unwrap(),
    )])
    .unwrap();
    let mut net = Network::new(seq, &Init::kaiming_relu(), 3);
    assert_eq!(net.num_params(), 6);
    assert_network_vjp("linear without bias", &mut net, &x, 0.0);
}

/// (C_in, C_out, k, stride, padding, L)
const CONV1D_CASES: [(usize, usize, usize, usize, usize, usize); 8] = [
    (2, 3, 3, 1, 1, 5),
    (2, 3, 3, 2, 0, 7),
    (1, 2, 4, 3, 2, 6),
    (3, 2, 5, 1, 2, 2), // kernel longer than the input
    (2, 2, 1, 2, 1, 5), // 1-tap kernel with stride and padding
    (2, 3, 1, 1, 0, 4), // pointwise
    (2, 2, 2, 1, 0, 1), // padding-free, output length 0 → rejected below
    (1, 1, 3, 1, 1, 1),
];

#[test]
fn conv1d_vjp_edge_cases() {
    for (i, &(ci, co, k, s, p, l)) in CONV1D_CASES.iter().enumerate() {
        let b = SequentialBuilder::<f64>::new(Shape::seq(ci, l)).conv1d(co, k, s, p);
        if l + 2 * p < k {
            assert!(b.build().is_err(), "case {i} must be rejected");
            continue;
        }
        let x = random_batch(3, ci * l, 1.0, 10 + i as u64);
        for algo in [ConvAlgo::Direct, ConvAlgo::Im2col] {
            let mut net = network(
                SequentialBuilder::new(Shape::seq(ci, l)).conv1d(co, k, s, p),
                Init::PyTorchDefault,
                i as u64,
            );
            set_conv_algo(&mut net, algo);
            assert_eq!(net.out_shape(), Shape::seq(co, (l + 2 * p - k) / s + 1));
            assert_network_vjp(&format!("conv1d case {i} {algo:?}"), &mut net, &x, 0.0);
        }
    }
}

#[test]
fn conv2d_vjp_edge_cases() {
    // (C_in, C_out, kernel, stride, padding, H, W)
    let cases = [
        (2, 3, (3, 3), (1, 1), (1, 1), 5, 4),
        (1, 2, (3, 3), (2, 2), (0, 0), 7, 6),
        (2, 2, (2, 3), (2, 1), (1, 2), 5, 3),
        (1, 2, (5, 5), (1, 1), (2, 2), 3, 3),
        (3, 2, (1, 1), (1, 1), (0, 0), 3, 2),
        (2, 1, (3, 1), (1, 3), (0, 1), 4, 5),
    ];
    for (i, &(ci, co, k, s, p, h, w)) in cases.iter().enumerate() {
        let spec = ConvSpec {
            in_channels: ci,
            out_channels: co,
            kernel: k,
            stride: s,
            padding: p,
            bias: i % 2 == 0,
        };
        let x = random_batch(2, ci * h * w, 1.0, 20 + i as u64);
        for algo in [ConvAlgo::Direct, ConvAlgo::Im2col] {
            let mut net = network(
                SequentialBuilder::new(Shape::image(ci, h, w)).conv(spec),
                Init::PyTorchDefault,
                7,
            );
            set_conv_algo(&mut net, algo);
            let ho = (h + 2 * p.0 - k.0) / s.0 + 1;
            let wo = (w + 2 * p.1 - k.1) / s.1 + 1;
            assert_eq!(net.out_shape(), Shape::image(co, ho, wo));
            assert_network_vjp(&format!("conv2d case {i} {algo:?}"), &mut net, &x, 0.0);
        }
    }
}

#[test]
fn activation_vjps() {
    for a in Activation::ALL {
        let mut net = network(
            SequentialBuilder::new(Shape::Flat(3))
                .linear(5)
                .activation(a)
                .linear(2),
            Init::PyTorchDefault,
            4,
        );
        let x = random_batch(4, 3, 2.0, 5);
        assert_network_vjp(a.name(), &mut net, &x, 0.0);
    }
}

#[test]
fn batchnorm_train_and_eval_vjps() {
    let shapes = [Shape::Flat(3), Shape::seq(2, 3), Shape::image(2, 2, 3)];
    for (i, s) in shapes.into_iter().enumerate() {
        for affine in [true, false] {
            let opts = BatchNormOptions {
                affine,
                ..Default::default()
            };
            // A layer in front so the BN input is not the raw input, and one after so the
            // upstream gradient is not uniform.
            let b = match s {
                Shape::Flat(_) => SequentialBuilder::new(s).linear(3),
                Shape::Seq { .. } => SequentialBuilder::new(s).conv1d(2, 3, 1, 1),
                Shape::Image { .. } => SequentialBuilder::new(s).conv2d(2, 3, 1, 1),
            };
            let mut net = network(
                b.batch_norm(opts).activation(Activation::Tanh),
                Init::PyTorchDefault,
                8,
            );
            if affine {
                // Non-trivial scale and shift.
                let n = net.sequential().param_views().len();
                let views = net.sequential().param_views();
                let (g, bb) = (views[n - 2].clone(), views[n - 1].clone());
                for (j, v) in net.params_mut()[g.range()].iter_mut().enumerate() {
                    *v = 0.7 + 0.2 * j as f64;
                }
                for (j, v) in net.params_mut()[bb.range()].iter_mut().enumerate() {
                    *v = 0.1 - 0.15 * j as f64;
                }
            }
            let x = random_batch(4, s.len(), 1.5, 30 + i as u64);
            assert_network_vjp(
                &format!("batchnorm {s} affine={affine} train"),
                &mut net,
                &x,
                0.0,
            );
            net.set_train(false);
            assert_network_vjp(
                &format!("batchnorm {s} affine={affine} eval"),
                &mut net,
                &x,
                0.0,
            );
        }
    }
}

#[test]
fn time_input_vjps_and_time_dependence() {
    let opts = MlpOptions {
        activation: Activation::Softplus,
        init: Init::PyTorchDefault,
        time_input: true,
    };
    let mut net = zoo::mlp::<f64>(&[2, 6, 2], &opts, 3).unwrap();
    let x = random_batch(3, 2, 1.0, 40);
    assert_network_vjp("mlp with time input", &mut net, &x, 0.37);
    let (mut y0, mut y1) = (Batch::zeros(0, 0), Batch::zeros(0, 0));
    net.forward(0.0, &x, &mut y0).unwrap();
    net.forward(1.0, &x, &mut y1).unwrap();
    assert!(
        rel_err(y0.as_slice(), y1.as_slice(), 1e-8) > 1e-3,
        "output must depend on t"
    );

    let mut conv = network(
        SequentialBuilder::new(Shape::image(2, 3, 3))
            .time_concat()
            .conv2d(3, 3, 1, 1)
            .activation(Activation::Silu)
            .time_concat()
            .conv2d(2, 3, 1, 1),
        Init::PyTorchDefault,
        5,
    );
    let x = random_batch(2, 18, 1.0, 41);
    assert_network_vjp("concat conv", &mut conv, &x, -0.8);
}

#[test]
fn flatten_and_head_vjp() {
    let mut head = zoo::linear_head::<f64>(Shape::image(2, 3, 2), 4, 6).unwrap();
    let x = random_batch(3, 12, 1.0, 42);
    assert_network_vjp("linear head", &mut head, &x, 0.0);
    let mut net = network(
        SequentialBuilder::new(Shape::seq(3, 4))
            .conv1d(2, 3, 2, 1)
            .flatten()
            .linear(3),
        Init::PyTorchDefault,
        9,
    );
    let x = random_batch(2, 12, 1.0, 43);
    assert_network_vjp("conv → flatten → linear", &mut net, &x, 0.0);
}

fn assert_field(name: &str, f: &mut NeuralField<f64>, rows: usize, t: f64) {
    let y = random_batch(rows, f.shape().len(), 1.0, 50);
    let (ey, ep) = field_vjp_errors(f, &y, t, 51);
    eprintln!("{name}: VJP relative error state {ey:.1e}, params {ep:.1e}");
    assert!(ey <= TOL, "{name}: state VJP relative error {ey:e}");
    assert!(ep <= TOL, "{name}: parameter VJP relative error {ep:e}");
}

#[test]
fn zoo_fields_vjp_against_fd_of_eval() {
    assert_field(
        "simple_odenet",
        &mut zoo::simple_odenet(6, 2, 1).unwrap(),
        4,
        0.0,
    );
    assert_field(
        "simple_odenet d=5",
        &mut zoo::simple_odenet(3, 5, 2).unwrap(),
        3,
        0.0,
    );
    assert_field("odenet", &mut zoo::odenet(2, 4, 3, 3, 3).unwrap(), 2, 0.0);
    let opts = MlpOptions {
        activation: Activation::Tanh,
        init: Init::orthogonal(),
        time_input: true,
    };
    assert_field(
        "tanh mlp field with time",
        &mut zoo::mlp_field(&[3, 8, 8, 3], &opts, 4).unwrap(),
        3,
        0.5,
    );
}

#[test]
fn zhu_field_vjp_along_random_directions() {
    // 17 k parameters: the state gradient in full, the parameter gradient along random
    // directions u: ⟨∂θ, u⟩ against (φ(θ + hu) − φ(θ − hu))/2h.
    let mut f = zoo::zhu_field::<f64>(2, 11).unwrap();
    let y = random_batch(5, 2, 1.5, 60);
    let mut dy = y.clone();
    let mut tape = f.new_tape();
    f.eval_taped(0.0, &y, &mut dy, &mut tape);
    let v = random_batch(5, 2, 1.0, 61);
    let (mut gy, mut gt) = (y.clone(), f.zero_grad());
    f.vjp(&tape, &v, &mut gy, &mut gt);
    let theta = f.params().to_vec();
    let mut out = y.clone();
    let mut phi = |f: &mut NeuralField<f64>, p: &[f64], yy: &Batch<f64>| {
        f.params_mut().copy_from_slice(p);
        f.eval(0.0, yy, &mut out);
        out.as_slice()
            .iter()
            .zip(v.as_slice())
            .map(|(a, b)| a * b)
            .sum::<f64>()
    };
    for k in 0..4 {
        let u = random_batch(1, theta.len(), 1.0, 70 + k);
        let plus: Vec<f64> = theta
            .iter()
            .zip(u.as_slice())
            .map(|(a, b)| a + H * b)
            .collect();
        let minus: Vec<f64> = theta
            .iter()
            .zip(u.as_slice())
            .map(|(a, b)| a - H * b)
            .collect();
        let fd = (phi(&mut f, &plus, &y) - phi(&mut f, &minus, &y)) / (2.0 * H);
        let an: f64 = gt.iter().zip(u.as_slice()).map(|(a, b)| a * b).sum();
        assert!(
            (fd - an).abs() <= TOL * an.abs(),
            "direction {k}: {an} vs {fd}"
        );
    }
    let fy = fd_grad(y.as_slice(), H, |z| {
        phi(&mut f, &theta, &Batch::from_vec(5, 2, z.to_vec()).unwrap())
    });
    assert!(rel_err(gy.as_slice(), &fy, 1e-8) <= TOL);
}

#[test]
fn tapes_are_reusable_and_independent() {
    let mut f = zoo::simple_odenet::<f64>(5, 3, 12).unwrap();
    let (y1, y2) = (random_batch(4, 3, 1.0, 80), random_batch(7, 3, 1.0, 81));
    let v1 = random_batch(4, 3, 1.0, 82);
    let run = |f: &mut NeuralField<f64>, tape: &odeflow::nn::Tape<f64>, v: &Batch<f64>| {
        let (mut gy, mut gt) = (v.clone(), f.zero_grad());
        f.vjp(tape, v, &mut gy, &mut gt);
        (gy, gt)
    };
    let mut t1 = f.new_tape();
    let mut d = y1.clone();
    f.eval_taped(0.0, &y1, &mut d, &mut t1);
    let reference = run(&mut f, &t1, &v1);
    // A second tape recorded in between (other batch size) does not disturb the first.
    let mut t2 = f.new_tape();
    let mut d2 = y2.clone();
    f.eval_taped(0.0, &y2, &mut d2, &mut t2);
    assert_eq!(run(&mut f, &t1, &v1), reference);
    // Reusing a tape for another batch size, then back.
    f.eval_taped(0.0, &y2, &mut d2, &mut t1);
    f.eval_taped(0.0, &y1, &mut d, &mut t1);
    assert_eq!(run(&mut f, &t1, &v1), reference);
    // Gradients accumulate.
    let mut gt = reference.1.clone();
    let mut gy = v1.clone();
    f.vjp(&t1, &v1, &mut gy, &mut gt);
    for (a, b) in gt.iter().zip(&reference.1) {
        assert!((a - 2.0 * b).abs() <= 1e-15 * b.abs().max(1.0));
    }
}
