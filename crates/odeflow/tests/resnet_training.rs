//! Reverse steps of the reversible method against their local error orders, batch-norm
//! running statistics in training passes, and TinyResNet's gradient.

mod nn_common;

use nn_common::*;
use odeflow::field::{FieldRhs, Parameterized, VectorField};
use odeflow::grad::toy_field::{TanhField, TanhTape};
use odeflow::grad::{reconstruct, GradientMethod};
use odeflow::models::depth_field::{DepthField, Tying};
use odeflow::models::resnet::{conv_residual_block, ResNet, Scheme};
use odeflow::models::tiny_resnet::{TinyResNet, TinyResNetConfig};
use odeflow::nn::{Init, Layer, Sequential, Shape};
use odeflow::train::Trainable;
use odeflow::{solve, Batch, Method, SolveOptions, State};

/// `TanhField` whose weights jump at the middle of each step: `f_a = f(0, ·)` before,
/// `f_b = f(1, ·)` after — two unrelated layers, as with i.i.d. weights.
struct Jump {
    inner: TanhField<f64>,
    t0: f64,
    h: f64,
}

impl VectorField<Batch<f64>> for Jump {
    type Tape = TanhTape<f64>;
    type Grad = Vec<f64>;
    fn new_tape(&self) -> Self::Tape {
        self.inner.new_tape()
    }
    fn zero_grad(&self) -> Vec<f64> {
        self.inner.zero_grad()
    }
    fn eval(&mut self, t: f64, y: &Batch<f64>, dy: &mut Batch<f64>) {
        let s = if t < self.t0 + self.h / 2.0 { 0.0 } else { 1.0 };
        self.inner.eval(s, y, dy);
    }
    fn eval_taped(&mut self, t: f64, y: &Batch<f64>, dy: &mut Batch<f64>, tape: &mut Self::Tape) {
        let s = if t < self.t0 + self.h / 2.0 { 0.0 } else { 1.0 };
        self.inner.eval_taped(s, y, dy, tape);
    }
    fn vjp(&mut self, tape: &Self::Tape, v: &Batch<f64>, gy: &mut Batch<f64>, g: &mut Vec<f64>) {
        self.inner.vjp(tape, v, gy, g);
    }
}

fn slope(hs: &[f64], errs: &[f64]) -> f64 {
    let n = hs.len() as f64;
    let lx: Vec<f64> = hs.iter().map(|h| h.ln()).collect();
    let ly: Vec<f64> = errs.iter().map(|e| e.ln()).collect();
    let (mx, my) = (lx.iter().sum::<f64>() / n, ly.iter().sum::<f64>() / n);
    let cov: f64 = lx.iter().zip(&ly).map(|(x, y)| (x - mx) * (y - my)).sum();
    cov / lx.iter().map(|x| (x - mx).powi(2)).sum::<f64>()
}

/// `‖Φ̃₋ₕ(Φₕ(x)) − x‖∞` for one step from `t0`.
fn round_trip<F: VectorField<Batch<f64>>>(
    name: &str,
    field: &mut F,
    x: &Batch<f64>,
    t0: f64,
    h: f64,
) -> f64 {
    let method = Method::from_name(name).unwrap();
    let opts = SolveOptions::steps(t0, t0 + h, 1);
    let x1 = solve(&method, &mut FieldRhs(field), x, &opts)
        .unwrap()
        .y_final;
    let back = reconstruct(&method, &opts, field, &x1).unwrap();
    back.as_slice()
        .iter()
        .zip(x.as_slice())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max)
}

#[test]
fn reverse_steps_invert_forward_steps_to_their_local_orders() {
    let x = random_batch(3, 4, 1.0, 1);
    let hs = [0.2, 0.1, 0.05, 0.025, 0.0125];
    let measure = |name: &str, jump: bool| -> f64 {
        let errs: Vec<f64> = hs
            .iter()
            .map(|&h| {
                let inner = TanhField::random(4, 1.5, 2);
                if jump {
                    let mut f = Jump { inner, t0: 0.3, h };
                    round_trip(name, &mut f, &x, 0.3, h)
                } else {
                    let mut f = inner;
                    round_trip(name, &mut f, &x, 0.3, h)
                }
            })
            .collect();
        let s = slope(&hs, &errs);
        eprintln!("{name} (jump {jump}): local errors {errs:?}, slope {s:.2}");
        s
    };
    // Euler: Φ̃₋ₕ∘Φₕ = id − h² f′f + O(h³), smooth or not.
    for jump in [false, true] {
        let s = measure("euler", jump);
        assert!((1.8..2.2).contains(&s), "euler slope {s}");
    }
    // Heun: the paper's bound O(h³); for a field smooth in time the h³ terms of Φₕ and
    // Φ̃₋ₕ cancel (Heun has even order), leaving O(h⁴).
    let s = measure("heun", false);
    assert!((3.7..4.3).contains(&s), "heun (smooth) slope {s}");
    // Two unrelated layers: (h²/4)(f′_b − f′_a)(f_a − f_b) remains, O(h²).
    let s = measure("heun", true);
    assert!((1.8..2.2).contains(&s), "heun (jump) slope {s}");
}

fn conv_field(depth: usize, seed: u64) -> DepthField<f64> {
    let block = conv_residual_block::<f64>(2, 4, 4).unwrap();
    let mut f = DepthField::new(block, depth, Tying::Untied, &Init::PyTorchDefault, seed).unwrap();
    let views = f.param_views();
    for v in views.iter().filter(|v| v.name.contains(".4.")) {
        for (i, p) in f.params_mut()[v.range()].iter_mut().enumerate() {
            *p = 0.8 - 0.25 * i as f64;
        }
    }
    f
}

fn all_stats(f: &DepthField<f64>) -> Vec<f64> {
    (0..f.depth())
        .flat_map(|n| f.running_stats(n).to_vec())
        .collect()
}

/// Running statistics after one forward (and backward, if `grad` is given) in train mode.
fn stats_after(scheme: Scheme, grad: Option<GradientMethod>, x: &Batch<f64>) -> Vec<f64> {
    let field = conv_field(4, 3);
    let mut net = ResNet::new(
        field,
        scheme,
        grad.clone().unwrap_or(GradientMethod::Backprop),
        0,
    )
    .unwrap();
    net.set_train(true);
    let x1 = net.forward(x).unwrap().clone();
    if grad.is_some() {
        let mut g = net.field().zero_grad();
        net.backward(&x1, &mut g).unwrap();
    }
    all_stats(net.field())
}

#[test]
fn batch_norm_statistics_move_once_per_layer_per_training_pass() {
    let x = random_batch(5, 32, 1.0, 4);
    for scheme in [Scheme::Euler, Scheme::Heun] {
        let fwd = stats_after(scheme, None, &x);
        let bp = stats_after(scheme, Some(GradientMethod::Backprop), &x);
        let rev = stats_after(scheme, Some(GradientMethod::Reversible), &x);
        assert_eq!(
            fwd, bp,
            "{scheme:?}: backprop's backward moved the statistics"
        );
        assert_eq!(
            fwd, rev,
            "{scheme:?}: reverse/recomputed steps moved the statistics"
        );
        let fresh = all_stats(&conv_field(4, 3));
        let per_layer = fresh.len() / 4;
        for n in 0..4 {
            let r = n * per_layer..(n + 1) * per_layer;
            assert!(
                fwd[r.clone()] != fresh[r],
                "{scheme:?}: layer {n} never updated"
            );
        }
    }
    // Euler: layer n's statistics are one momentum step from the initial ones on x_n.
    let field = conv_field(4, 3);
    let mut net = ResNet::new(field.clone(), Scheme::Euler, GradientMethod::Reversible, 0).unwrap();
    net.set_train(true);
    net.forward(&x).unwrap();
    let after_forward = all_stats(net.field());
    let xs = net.trajectory(&x).unwrap();
    assert_eq!(
        all_stats(net.field()),
        after_forward,
        "trajectory moved the statistics"
    );
    for (n, xn) in xs.iter().enumerate().take(4) {
        let mut one: Sequential<f64> = field.network().clone();
        let mut y = xn.zeros_like();
        one.forward(field.layer_params(n), 0.0, xn.as_slice(), y.as_mut_slice())
            .unwrap();
        let want: Vec<f64> = one
            .layers()
            .iter()
            .filter_map(|l| match l {
                Layer::BatchNorm(b) => Some([b.running_mean(), b.running_var()].concat()),
                _ => None,
            })
            .flatten()
            .collect();
        let err = rel_err(net.field().running_stats(n), &want, 1e-12);
        assert!(err < 1e-14, "layer {n}: {err:e}");
    }
    // Evaluation mode never moves them.
    net.set_train(false);
    net.forward(&x).unwrap();
    assert_eq!(all_stats(net.field()), after_forward);
}

fn tiny(scheme: Scheme, grad: GradientMethod) -> TinyResNet<f64> {
    let cfg = TinyResNetConfig {
        channels: 3,
        depth: 4,
        scheme,
        grad,
        seed: 7,
        ..Default::default()
    };
    TinyResNet::new(Shape::image(1, 12, 12), cfg).unwrap()
}

fn perturb_last_norms(m: &mut TinyResNet<f64>) {
    let f = m.body_mut().field_mut();
    let views = f.param_views();
    for v in views.iter().filter(|v| v.name.contains(".4.")) {
        for (i, p) in f.params_mut()[v.range()].iter_mut().enumerate() {
            *p = 0.6 + 0.2 * (i as f64) - 0.1 * v.offset as f64 / 100.0;
        }
    }
}

fn loss_grad(m: &mut TinyResNet<f64>, x: &Batch<f64>, labels: &[usize]) -> (f64, Vec<f64>) {
    let mut g = vec![0.0; m.num_params()];
    let loss = m.train_step(x, labels, &mut g).unwrap().loss;
    (loss, g)
}

#[test]
fn tiny_resnet_shapes_follow_the_paper() {
    for (shape, feat) in [
        (Shape::image(3, 32, 32), Shape::image(16, 10, 10)),
        (Shape::image(1, 28, 28), Shape::image(16, 9, 9)),
    ] {
        let m = TinyResNet::<f32>::new(shape, TinyResNetConfig::default()).unwrap();
        assert_eq!(m.body().field().shape(), feat);
        let head = m.num_params() - 16 * shape.channels() * 25 - 32 - m.body().field().num_params();
        assert_eq!(head, 64 * 10 + 10, "head Linear(64 → 10)");
        let logits = TinyResNet::<f32>::new(shape, TinyResNetConfig::default())
            .unwrap()
            .logits(&Batch::zeros(2, shape.len()))
            .unwrap();
        assert_eq!((logits.rows(), logits.cols()), (2, 10));
    }
    let e = TinyResNet::<f32>::new(Shape::image(1, 8, 8), TinyResNetConfig::default())
        .err()
        .unwrap();
    assert!(e.to_string().contains("pooling window"), "{e}");
}

#[test]
fn tiny_resnet_backprop_gradient_matches_finite_differences() {
    let x = random_batch(4, 144, 1.0, 8);
    let labels = [0, 3, 9, 3];
    for scheme in [Scheme::Euler, Scheme::Heun] {
        let mut m = tiny(scheme, GradientMethod::Backprop);
        perturb_last_norms(&mut m);
        let (_, g) = loss_grad(&mut m, &x, &labels);
        let mut theta = vec![0.0; m.num_params()];
        m.read_params(&mut theta);
        let idx: Vec<usize> = (0..theta.len()).step_by(7).collect();
        let picked: Vec<f64> = idx.iter().map(|&i| theta[i]).collect();
        let fd = fd_grad(&picked, H, |z| {
            let mut p = theta.clone();
            for (&i, v) in idx.iter().zip(z) {
                p[i] = *v;
            }
            m.write_params(&p);
            loss_grad(&mut m, &x, &labels).0
        });
        let got: Vec<f64> = idx.iter().map(|&i| g[i]).collect();
        let err = rel_err(&got, &fd, 1e-8);
        assert!(
            err < 1e-6,
            "{scheme:?}: gradient vs finite differences {err:e}"
        );
    }
}

#[test]
fn tiny_resnet_reversible_gradient_is_exact_at_init_and_close_after() {
    let x = random_batch(4, 144, 1.0, 9);
    let labels = [1, 2, 3, 4];
    for scheme in [Scheme::Euler, Scheme::Heun] {
        // At initialisation every block is the zero function: reconstruction is exact.
        let (_, gb) = loss_grad(&mut tiny(scheme, GradientMethod::Backprop), &x, &labels);
        let (_, gr) = loss_grad(&mut tiny(scheme, GradientMethod::Reversible), &x, &labels);
        let err = rel_err(&gr, &gb, 1e-12);
        assert!(err < 1e-12, "{scheme:?} at init: {err:e}");
        // Non-zero blocks: approximate, but close at depth 4 already.
        let mut mb = tiny(scheme, GradientMethod::Backprop);
        let mut mr = tiny(scheme, GradientMethod::Reversible);
        perturb_last_norms(&mut mb);
        perturb_last_norms(&mut mr);
        let (lb, gb) = loss_grad(&mut mb, &x, &labels);
        let (lr, gr) = loss_grad(&mut mr, &x, &labels);
        assert_eq!(
            lb, lr,
            "the forward pass does not depend on the gradient method"
        );
        let err = rel_err(&gr, &gb, 1e-12);
        eprintln!("{scheme:?}: reversible vs backprop at depth 4: {err:.2e}");
        assert!(
            err > 1e-9 && err < 0.2,
            "{scheme:?}: reversible vs backprop {err:e}"
        );
    }
}

#[test]
fn tiny_resnet_untying_and_depth_interpolation_keep_the_function() {
    let x = random_batch(3, 144, 1.0, 10);
    let cfg = TinyResNetConfig {
        channels: 3,
        depth: 3,
        tying: Tying::Tied,
        seed: 11,
        ..Default::default()
    };
    let mut tied = TinyResNet::<f64>::new(Shape::image(1, 12, 12), cfg).unwrap();
    perturb_last_norms(&mut tied);
    let mut untied = tied.untie().unwrap();
    assert_eq!(untied.body().field().tying(), Tying::Untied);
    assert_eq!(
        untied.num_params(),
        tied.num_params() + 2 * tied.body().field().params_per_function()
    );
    assert_eq!(tied.logits(&x).unwrap(), untied.logits(&x).unwrap());
    // 3 → 12 → 3 returns the same network.
    let deep = untied.interpolate_depth(12).unwrap();
    assert_eq!(deep.config().depth, 12);
    let mut back = deep.interpolate_depth(3).unwrap();
    assert_eq!(untied.logits(&x).unwrap(), back.logits(&x).unwrap());
}
