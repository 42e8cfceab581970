//! ResNets as depth fields (Sander et al. 2022): the forward pass is the residual recursion,
//! layers are visited in the paper's order by the forward, reverse and recomputation steps,
//! batch-norm running statistics move once per layer per training pass, tying/untying and
//! depth interpolation preserve the function, and the VJPs of the residual blocks and the
//! pooling layer match finite differences.

mod nn_common;

use nn_common::*;
use odeflow::field::{ParamView, Parameterized, VectorField};
use odeflow::grad::{GradSolver, GradientMethod};
use odeflow::models::depth_field::{DepthField, DepthTape, Tying};
use odeflow::models::resnet::{conv_residual_block, mlp_residual, ResNet, Scheme};
use odeflow::nn::{Activation, Init, Network, Sequential, SequentialBuilder, Shape};
use odeflow::{Batch, State};

fn mlp_field(dim: usize, depth: usize, tying: Tying, seed: u64) -> DepthField<f64> {
    let net = mlp_residual(dim, Some(5), Activation::Tanh).unwrap();
    DepthField::new(net, depth, tying, &Init::PyTorchDefault, seed).unwrap()
}

/// `f_n(x)` through the shared network with layer `n`'s parameters (eval of a clone).
fn apply_layer(field: &DepthField<f64>, n: usize, x: &Batch<f64>) -> Batch<f64> {
    let mut net: Sequential<f64> = field.network().clone();
    let mut y = x.zeros_like();
    net.forward(field.layer_params(n), 0.0, x.as_slice(), y.as_mut_slice())
        .unwrap();
    y
}

fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

#[test]
fn resnet_and_heunnet_forward_passes_are_the_residual_recursions() {
    let (dim, depth) = (4, 7);
    let x0 = random_batch(3, dim, 1.0, 1);
    let field = mlp_field(dim, depth, Tying::Untied, 2);
    let h = 1.0 / depth as f64;
    // Euler: x_{n+1} = x_n + f_n(x_n)/N.
    let mut x = x0.clone();
    for n in 0..depth {
        let f = apply_layer(&field, n, &x);
        x.axpy(h, &f);
    }
    let mut net = ResNet::new(field.clone(), Scheme::Euler, GradientMethod::Backprop, 0).unwrap();
    let out = net.forward(&x0).unwrap().clone();
    assert!(max_abs_diff(out.as_slice(), x.as_slice()) < 1e-14);
    // Heun: N functions, N − 1 steps.
    let mut x = x0.clone();
    for n in 0..depth - 1 {
        let k1 = apply_layer(&field, n, &x);
        let mut mid = x.clone();
        mid.axpy(h, &k1);
        let k2 = apply_layer(&field, n + 1, &mid);
        x.axpy(h / 2.0, &k1);
        x.axpy(h / 2.0, &k2);
    }
    let mut net = ResNet::new(field, Scheme::Heun, GradientMethod::Backprop, 0).unwrap();
    assert_eq!(net.solve_options().t1, (depth - 1) as f64 / depth as f64);
    let out = net.infer(&x0).unwrap();
    assert!(max_abs_diff(out.as_slice(), x.as_slice()) < 1e-14);
}

/// Logs which layer each evaluation used (`e` untaped, `t` taped).
struct Logged {
    inner: DepthField<f64>,
    log: Vec<(char, usize)>,
}

impl VectorField<Batch<f64>> for Logged {
    type Tape = DepthTape<f64>;
    type Grad = Vec<f64>;
    fn new_tape(&self) -> Self::Tape {
        self.inner.new_tape()
    }
    fn zero_grad(&self) -> Vec<f64> {
        self.inner.zero_grad()
    }
    fn eval(&mut self, t: f64, y: &Batch<f64>, dy: &mut Batch<f64>) {
        self.log.push(('e', self.inner.layer_at(t)));
        self.inner.eval(t, y, dy);
    }
    fn eval_taped(&mut self, t: f64, y: &Batch<f64>, dy: &mut Batch<f64>, tape: &mut Self::Tape) {
        self.inner.eval_taped(t, y, dy, tape);
        self.log.push(('t', tape.layer()));
    }
    fn vjp(&mut self, tape: &Self::Tape, v: &Batch<f64>, gy: &mut Batch<f64>, g: &mut Vec<f64>) {
        self.log.push(('v', tape.layer()));
        self.inner.vjp(tape, v, gy, g);
    }
}

fn layer_log(scheme: Scheme, depth: usize) -> Vec<(char, usize)> {
    let mut f = Logged {
        inner: mlp_field(3, depth, Tying::Untied, 3),
        log: Vec::new(),
    };
    let x0 = random_batch(2, 3, 1.0, 4);
    let mut gs = GradSolver::new(
        scheme.method(),
        GradientMethod::Reversible,
        scheme.solve_options(depth),
    )
    .unwrap();
    let x1 = gs.forward(&mut f, &x0).unwrap().clone();
    let mut g = f.zero_grad();
    gs.backward(&mut f, &x1, &mut g).unwrap();
    f.log
}

fn parse(s: &str) -> Vec<(char, usize)> {
    s.split_whitespace()
        .map(|w| (w.as_bytes()[0] as char, w[1..].parse().unwrap()))
        .collect()
}

#[test]
fn forward_reverse_and_recomputation_visit_the_papers_layers() {
    // Euler: forward f_0, f_1, f_2; each reverse step n evaluates f_n, then the recomputed
    // step tapes f_n and its VJP is taken.
    let want = parse("e0 e1 e2  e2 t2 v2  e1 t1 v1  e0 t0 v0");
    assert_eq!(layer_log(Scheme::Euler, 3), want);
    // Heun (4 functions, 3 steps): forward (f_n, f_{n+1}); reverse step n evaluates
    // f_{n+1} then f_n; the recomputation tapes f_n, f_{n+1}; VJPs in reverse stage order.
    let want = parse("e0 e1 e1 e2 e2 e3  e3 e2 t2 t3 v3 v2  e2 e1 t1 t2 v2 v1  e1 e0 t0 t1 v1 v0");
    assert_eq!(layer_log(Scheme::Heun, 4), want);
}

#[test]
fn reversible_gradient_equals_backprop_for_functions_constant_in_x() {
    let (dim, depth) = (3, 9);
    let mut field = mlp_field(dim, depth, Tying::Untied, 5);
    // Zero the first linear layer's weight of every layer: f_n(x) = W₂ tanh(b₁) + b₂.
    let views: Vec<ParamView> = field.param_views();
    for v in views.iter().filter(|v| v.name.ends_with(".0.weight")) {
        field.params_mut()[v.range()].fill(0.0);
    }
    let x0 = random_batch(4, dim, 1.0, 6);
    let w = random_batch(4, dim, 1.0, 7);
    for scheme in [Scheme::Euler, Scheme::Heun] {
        let mut grads = Vec::new();
        for grad in [GradientMethod::Backprop, GradientMethod::Reversible] {
            let mut net = ResNet::new(field.clone(), scheme, grad, 0).unwrap();
            net.forward(&x0).unwrap();
            let mut g = vec![0.0; field.num_params()];
            let gx = net.backward(&w, &mut g).unwrap();
            g.extend(gx.into_vec());
            grads.push(g);
        }
        let err = rel_err(&grads[1], &grads[0], 1e-12);
        assert!(err < 1e-13, "{scheme:?}: reversible vs backprop {err:e}");
        assert!(grads[0].iter().any(|g| g.abs() > 1e-3));
    }
}

#[test]
fn parameters_are_named_per_layer_and_errors_are_typed() {
    let f = mlp_field(3, 4, Tying::Untied, 1);
    let names: Vec<String> = f.param_views().into_iter().map(|v| v.name).collect();
    assert_eq!(names[0], "layers.0.0.weight");
    assert!(names.contains(&"layers.3.2.bias".to_string()));
    assert_eq!(f.num_params(), 4 * f.params_per_function());
    let tied = mlp_field(3, 4, Tying::Tied, 1);
    assert_eq!(tied.num_params(), f.params_per_function());
    assert_eq!(tied.num_functions(), 1);

    let net = mlp_residual::<f64>(3, None, Activation::Tanh).unwrap();
    let e = DepthField::new(net, 0, Tying::Untied, &Init::PyTorchDefault, 0).unwrap_err();
    assert!(e.to_string().contains("depth = 0"), "{e}");
    let not_field = SequentialBuilder::<f64>::new(Shape::Flat(3))
        .linear(2)
        .build()
        .unwrap();
    assert!(DepthField::new(not_field, 2, Tying::Untied, &Init::PyTorchDefault, 0).is_err());
    let one = mlp_field(3, 1, Tying::Untied, 1);
    let e = ResNet::new(one, Scheme::Heun, GradientMethod::Backprop, 0)
        .err()
        .unwrap();
    assert!(e.to_string().contains("heun needs at least 2"), "{e}");
    let mut net = ResNet::new(f, Scheme::Euler, GradientMethod::Backprop, 0).unwrap();
    let e = net.forward(&random_batch(2, 4, 1.0, 0)).unwrap_err();
    assert!(e.to_string().contains("3 components, got 4"), "{e}");
    assert!(Scheme::from_name("rk4").is_err());
}

#[test]
fn shallow_networks_fall_back_to_backprop() {
    let f = mlp_field(3, 4, Tying::Untied, 1);
    let net = ResNet::new(f.clone(), Scheme::Euler, GradientMethod::Reversible, 8).unwrap();
    assert_eq!(net.gradient_method(), &GradientMethod::Backprop);
    let net = ResNet::new(f, Scheme::Euler, GradientMethod::Reversible, 4).unwrap();
    assert_eq!(net.gradient_method(), &GradientMethod::Reversible);
}

#[test]
fn untying_and_depth_interpolation_round_trips_preserve_the_function() {
    let x0 = random_batch(3, 4, 1.0, 8);
    for scheme in [Scheme::Euler, Scheme::Heun] {
        // Tied → untied: N identical copies, the same function.
        let tied = mlp_field(4, 6, Tying::Tied, 9);
        let untied = tied.untie();
        assert_eq!(untied.tying(), Tying::Untied);
        assert_eq!(untied.num_functions(), 6);
        let a = ResNet::new(tied, scheme, GradientMethod::Backprop, 0)
            .unwrap()
            .infer(&x0)
            .unwrap();
        let b = ResNet::new(untied, scheme, GradientMethod::Backprop, 0)
            .unwrap()
            .infer(&x0)
            .unwrap();
        assert_eq!(a, b, "{scheme:?}: untying changed the function");

        // M → kM → M returns the original layers, hence the same function.
        let f = mlp_field(4, 3, Tying::Untied, 10);
        let deep = f.interpolate_depth(12).unwrap();
        for i in 0..12 {
            assert_eq!(deep.layer_params(i), f.layer_params(3 * i / 12));
        }
        let back = deep.interpolate_depth(3).unwrap();
        assert_eq!(back.params(), f.params());
        let a = ResNet::new(f, scheme, GradientMethod::Backprop, 0)
            .unwrap()
            .infer(&x0)
            .unwrap();
        let b = ResNet::new(back, scheme, GradientMethod::Backprop, 0)
            .unwrap()
            .infer(&x0)
            .unwrap();
        assert_eq!(a, b);
    }
    // A tied field stays tied with its parameters.
    let tied = mlp_field(4, 5, Tying::Tied, 11);
    let deeper = tied.interpolate_depth(20).unwrap();
    assert_eq!(deeper.tying(), Tying::Tied);
    assert_eq!(deeper.params(), tied.params());
}

#[test]
fn interpolating_a_shallow_network_to_depth_approaches_its_ode() {
    // Depth-N copies of a depth-4 network discretise the same piecewise-constant-weight
    // ODE ever more finely: the outputs converge (Euler: error O(1/N)).
    let x0 = random_batch(3, 4, 1.0, 12);
    let f = mlp_field(4, 4, Tying::Untied, 13);
    let out = |n: usize| {
        ResNet::new(
            f.interpolate_depth(n).unwrap(),
            Scheme::Euler,
            GradientMethod::Backprop,
            0,
        )
        .unwrap()
        .infer(&x0)
        .unwrap()
    };
    let reference = out(4096);
    let errs: Vec<f64> = [64, 128, 256]
        .iter()
        .map(|&n| max_abs_diff(out(n).as_slice(), reference.as_slice()))
        .collect();
    let ratio = errs[0] / errs[1];
    assert!((1.7..2.3).contains(&ratio), "errors {errs:?}");
    assert!(errs[2] < errs[1]);
}

#[test]
fn residual_conv_block_and_pooling_vjps_match_finite_differences() {
    // The block with its last batch norm's scale and shift moved off 0 (at 0 every input
    // and most parameter gradients vanish), in training and evaluation mode.
    let block = conv_residual_block::<f64>(3, 5, 4).unwrap();
    let mut net = Network::new(block, &Init::PyTorchDefault, 1);
    let views = net.sequential().param_views();
    assert_eq!(views.last().unwrap().name, "4.bias");
    for name in ["4.weight", "4.bias"] {
        net.param_mut(name)
            .unwrap()
            .copy_from_slice(&[0.7, -1.1, 0.4]);
    }
    assert_eq!(net.param("1.weight").unwrap(), &[1.0, 1.0, 1.0]);
    let x = random_batch(4, 3 * 5 * 4, 1.0, 2);
    assert_network_vjp("conv block (train)", &mut net, &x, 0.0);
    net.set_train(false);
    assert_network_vjp("conv block (eval)", &mut net, &x, 0.0);

    // Average pooling on 10×10 (rows/cols 8 and 9 dropped) and on a sequence.
    for (shape, k) in [(Shape::image(2, 10, 10), 4), (Shape::seq(3, 7), 2)] {
        let seq = SequentialBuilder::<f64>::new(shape)
            .avg_pool(k)
            .flatten()
            .linear(3)
            .build()
            .unwrap();
        let mut net = Network::new(seq, &Init::PyTorchDefault, 3);
        let x = random_batch(2, shape.len(), 1.0, 4);
        assert_network_vjp(&format!("avg-pool {shape}"), &mut net, &x, 0.0);
    }
    let pooled = SequentialBuilder::<f64>::new(Shape::image(16, 10, 10))
        .avg_pool(4)
        .build()
        .unwrap();
    assert_eq!(pooled.out_shape(), Shape::image(16, 2, 2));
    assert!(SequentialBuilder::<f64>::new(Shape::image(1, 3, 3))
        .avg_pool(4)
        .build()
        .is_err());
}

#[test]
fn depth_field_vjp_matches_finite_differences_per_layer() {
    let block = conv_residual_block::<f64>(2, 4, 3).unwrap();
    let mut f = DepthField::new(block, 3, Tying::Untied, &Init::PyTorchDefault, 5).unwrap();
    // Non-zero last batch norms.
    let views = f.param_views();
    for v in views.iter().filter(|v| v.name.contains(".4.")) {
        for (i, p) in f.params_mut()[v.range()].iter_mut().enumerate() {
            *p = 0.5 + 0.3 * i as f64;
        }
    }
    f.set_train(true);
    let y = random_batch(3, 24, 1.0, 6);
    for layer in 0..3 {
        let t = layer as f64 / 3.0;
        let mut dy = y.zeros_like();
        let mut tape = f.new_tape();
        f.eval_taped(t, &y, &mut dy, &mut tape);
        let v = random_batch(3, 24, 1.0, 7);
        let mut gy = y.zeros_like();
        let mut g = f.zero_grad();
        f.vjp(&tape, &v, &mut gy, &mut g);
        let theta = f.params().to_vec();
        let mut out = y.zeros_like();
        let fd = fd_grad(&theta, H, |z| {
            f.params_mut().copy_from_slice(z);
            f.eval(t, &y, &mut out);
            out.dot(&v)
        });
        f.params_mut().copy_from_slice(&theta);
        let err = rel_err(&g, &fd, 1e-8);
        assert!(err < 1e-6, "layer {layer}: parameter VJP error {err:e}");
        // Only layer `layer`'s parameters get a gradient.
        let r = layer * f.params_per_function()..(layer + 1) * f.params_per_function();
        assert!(g
            .iter()
            .enumerate()
            .all(|(i, gi)| r.contains(&i) || *gi == 0.0));
    }
}
