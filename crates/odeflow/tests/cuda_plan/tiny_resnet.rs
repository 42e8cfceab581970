//! TinyResNet on the device (`odeflow::cuda::CudaTinyResNet`,
//! `CudaDepthField`; Sander et al., NeurIPS 2022), its CPU-testable parts: where the device
//! field keeps each buffer of a layer's plan (`DepthLayout::place`: parameters and gradient
//! in the CPU field's layout, per-layer running statistics or the discard buffer, tape,
//! call, scratch); the device field's rules — layer `round(t·N)`, statistics moved only at a
//! layer's first evaluation of a training pass (`TrainingPass`, shared with the device field)
//! — replayed with CPU blocks through those places under the generic gradient solver, against the CPU ResNet body for ResNet and
//! HeunNet, backprop and reversible, tied and untied; and the CPU half of
//! `tiny_resnet_agreement`.

use odeflow::cuda::res_block_plan::ResBuf;
use odeflow::cuda::{
    tiny_resnet_case, tiny_resnet_cases, tiny_resnet_cpu_reference, tiny_resnet_inputs,
    DepthLayout, Place, TrainingPass,
};
use odeflow::field::{Parameterized, VectorField};
use odeflow::grad::{GradSolver, GradientMethod};
use odeflow::models::depth_field::Tying;
use odeflow::models::resnet::{conv_residual_block, Scheme};
use odeflow::models::tiny_resnet::TinyResNet;
use odeflow::nn::{Layer, Sequential, Tape};
use odeflow::state::Batch;
use odeflow::train::Trainable;

fn max_rel(a: &[f64], r: &[f64]) -> f64 {
    let scale = r.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-300);
    a.iter()
        .zip(r)
        .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()))
        / scale
}

fn norm(v: &[f64]) -> f64 {
    v.iter().map(|a| a * a).sum::<f64>().sqrt()
}

fn model(case: (Scheme, GradientMethod, Tying)) -> TinyResNet<f64> {
    let (shape, cfg) = tiny_resnet_case(case, 3);
    let inputs = tiny_resnet_inputs(shape, &cfg, 5).expect("inputs");
    let mut m = TinyResNet::<f64>::new(shape, cfg).expect("model");
    m.write_params(
        &inputs
            .params
            .iter()
            .map(|&v| f64::from(v))
            .collect::<Vec<_>>(),
    );
    m
}

const C: usize = 8;

#[test]
fn the_depth_layout_places_every_buffer() {
    use ResBuf::*;
    for tying in [Tying::Untied, Tying::Tied] {
        let m = model((Scheme::Euler, GradientMethod::Backprop, tying));
        let field = m.body().field();
        let lay = DepthLayout::of(field).expect("layout");
        let block = lay.block().clone();
        assert_eq!(lay.num_params(), field.num_params());
        for n in 0..lay.depth() {
            // Parameters: the CPU field's own slice for layer n.
            for b in [Weight(1), Gamma(1), Beta(1), Weight(2), Gamma(2), Beta(2)] {
                let Place::Param(o) = lay.place(b, n, true) else {
                    panic!("{b:?} is a parameter")
                };
                let inner = block.param_offset(b).unwrap();
                assert_eq!(
                    field.params()[o],
                    field.layer_params(n)[inner],
                    "{b:?} of {n}"
                );
                let g = match b {
                    Weight(l) => GradWeight(l),
                    Gamma(l) => GradGamma(l),
                    Beta(l) => GradBeta(l),
                    _ => unreachable!(),
                };
                assert_eq!(lay.place(g, n, true), Place::Grad(o));
            }
            // Running statistics: [mean₁, var₁, mean₂, var₂], or the discard buffer.
            for (b, off) in [
                (RunningMean(1), 0),
                (RunningVar(1), C),
                (RunningMean(2), 2 * C),
                (RunningVar(2), 3 * C),
            ] {
                assert_eq!(lay.place(b, n, true), Place::Stats(off));
                assert_eq!(lay.place(b, n, false), Place::Discard(off));
            }
            for (i, &t) in block.taped().iter().enumerate() {
                assert_eq!(lay.place(t, n, true), Place::Tape(i), "{t:?}");
            }
            for b in [Input, Output, Cotangent, GradInput] {
                assert_eq!(lay.place(b, n, true), Place::Call);
            }
            for b in [Col, OutputT, CotangentT, GradZ, GradA1, GradInputT, Sums] {
                assert_eq!(lay.place(b, n, true), Place::Scratch);
            }
        }
        // Layer of time t, as the CPU field.
        for k in 0..=12 {
            let t = k as f64 / 12.0;
            assert_eq!(lay.layer_at(t), field.layer_at(t));
        }
    }
}

/// What `CudaDepthField` binds for a pass: every buffer its plan's launches name
/// (`ResOp::buffers`, exactly what the executor looks up) has a place the pass provides —
/// no parameter gradient in a forward pass (it has none), the call's own buffers only
/// (input and output forward, cotangent and input gradient backward), and no running
/// statistics in a VJP. (A forward pass that named `∂γ` failed on every evaluation before
/// the batch-norm launches bound only their operands.)
#[test]
fn every_buffer_a_pass_names_is_bound() {
    use ResBuf::*;
    let m = model((Scheme::Heun, GradientMethod::Backprop, Tying::Tied));
    let lay = DepthLayout::of(m.body().field()).unwrap();
    let rows = 3;
    for train in [true, false] {
        for (pass, ops) in [
            ("forward", lay.block().forward(rows, train)),
            ("backward", lay.block().backward(rows, train)),
        ] {
            let calls: &[ResBuf] = if pass == "forward" {
                &[Input, Output]
            } else {
                &[Cotangent, GradInput]
            };
            let mut named = 0;
            for op in &ops {
                for b in op.buffers() {
                    named += 1;
                    let p = lay.place(b, 1, train);
                    let ok = match p {
                        Place::Grad(_) => pass == "backward",
                        Place::Call => calls.contains(&b),
                        Place::Stats(_) | Place::Discard(_) => pass == "forward",
                        _ => true,
                    };
                    assert!(ok, "{pass} (train {train}) names {b:?}, placed at {p:?}");
                }
            }
            assert!(named > 20, "{pass}: {named} buffers");
        }
    }
}

/// The device field's rules with CPU arithmetic: layer `n`'s block runs with the parameters,
/// gradient and running statistics where `DepthLayout::place` puts them.
struct Replay {
    lay: DepthLayout,
    net: Sequential<f64>,
    params: Vec<f64>,
    stats: Vec<Vec<f64>>,
    discard: Vec<f64>,
    train: bool,
    pass: TrainingPass,
}

struct ReplayTape {
    layer: usize,
    inner: Tape<f64>,
}

impl Replay {
    fn place_of(&self, b: ResBuf, n: usize, stats: bool) -> (bool, usize) {
        match self.lay.place(b, n, stats) {
            Place::Stats(o) => (true, o),
            Place::Discard(o) => (false, o),
            p => panic!("{b:?} is placed at {p:?}"),
        }
    }

    fn base(&self, n: usize) -> usize {
        let Place::Param(o) = self.lay.place(ResBuf::Weight(1), n, true) else {
            unreachable!()
        };
        o - self.lay.block().param_offset(ResBuf::Weight(1)).unwrap()
    }

    fn run(&mut self, t: f64, y: &Batch<f64>, dy: &mut Batch<f64>, tape: &mut ReplayTape) {
        let n = self.lay.layer_at(t);
        let stats = self.pass.evaluation(n, self.train);
        let places: Vec<(bool, usize)> = [1, 2]
            .iter()
            .flat_map(|&l| [ResBuf::RunningMean(l), ResBuf::RunningVar(l)])
            .map(|b| self.place_of(b, n, stats))
            .collect();
        let read = |(real, o): (bool, usize), me: &Self| -> Vec<f64> {
            let src = if real { &me.stats[n] } else { &me.discard };
            src[o..o + C].to_vec()
        };
        let vals: Vec<Vec<f64>> = places.iter().map(|&p| read(p, self)).collect();
        let mut bns: Vec<_> = self
            .net
            .layers_mut()
            .iter_mut()
            .filter_map(|l| match l {
                Layer::BatchNorm(b) => Some(b),
                _ => None,
            })
            .collect();
        for (k, bn) in bns.iter_mut().enumerate() {
            bn.set_running_stats(&vals[2 * k], &vals[2 * k + 1])
                .unwrap();
        }
        self.net.set_train(self.train);
        let base = self.base(n);
        let per = self.lay.block().num_params();
        let p = self.params[base..base + per].to_vec();
        dy.resize(y.rows(), y.cols());
        self.net
            .forward_taped(&p, 0.0, y.as_slice(), dy.as_mut_slice(), &mut tape.inner)
            .unwrap();
        tape.layer = n;
        let mut out = Vec::new();
        for l in self.net.layers() {
            if let Layer::BatchNorm(b) = l {
                out.push(b.running_mean().to_vec());
                out.push(b.running_var().to_vec());
            }
        }
        for (&(real, o), v) in places.iter().zip(out) {
            let dst = if real {
                &mut self.stats[n]
            } else {
                &mut self.discard
            };
            dst[o..o + C].copy_from_slice(&v);
        }
    }
}

impl VectorField<Batch<f64>> for Replay {
    type Tape = ReplayTape;
    type Grad = Vec<f64>;
    fn new_tape(&self) -> ReplayTape {
        ReplayTape {
            layer: 0,
            inner: Tape::new(),
        }
    }
    fn zero_grad(&self) -> Vec<f64> {
        vec![0.0; self.lay.num_params()]
    }
    fn eval(&mut self, t: f64, y: &Batch<f64>, dy: &mut Batch<f64>) {
        let mut tape = self.new_tape();
        self.run(t, y, dy, &mut tape);
    }
    fn eval_taped(&mut self, t: f64, y: &Batch<f64>, dy: &mut Batch<f64>, tape: &mut ReplayTape) {
        self.run(t, y, dy, tape);
    }
    fn vjp(&mut self, tape: &ReplayTape, v: &Batch<f64>, gy: &mut Batch<f64>, g: &mut Vec<f64>) {
        let base = self.base(tape.layer);
        let per = self.lay.block().num_params();
        let p = self.params[base..base + per].to_vec();
        gy.resize(v.rows(), v.cols());
        self.net
            .backward(
                &p,
                &tape.inner,
                v.as_slice(),
                gy.as_mut_slice(),
                &mut g[base..base + per],
            )
            .unwrap();
    }
}

#[test]
fn the_device_field_rules_are_the_cpu_resnet_body() {
    let cases = [
        (Scheme::Euler, GradientMethod::Backprop, Tying::Untied),
        (Scheme::Euler, GradientMethod::Backprop, Tying::Tied),
        (Scheme::Heun, GradientMethod::Backprop, Tying::Untied),
        (Scheme::Heun, GradientMethod::Backprop, Tying::Tied),
        (Scheme::Euler, GradientMethod::Reversible, Tying::Untied),
        (Scheme::Heun, GradientMethod::Reversible, Tying::Tied),
    ];
    for case in cases {
        let mut m = model(case.clone());
        let field = m.body().field();
        let lay = DepthLayout::of(field).unwrap();
        let mut replay = Replay {
            net: conv_residual_block::<f64>(C, 4, 4).unwrap(),
            params: field.params().to_vec(),
            stats: (0..lay.depth())
                .map(|n| field.running_stats(n).to_vec())
                .collect(),
            discard: vec![0.0; 4 * C],
            pass: TrainingPass::new(lay.depth()),
            train: true,
            lay,
        };
        let d = C * 4 * 4;
        let rows = 5;
        let x0 = Batch::from_vec(
            rows,
            d,
            (0..rows * d)
                .map(|i| ((i * 31 % 17) as f64 - 8.0) * 0.13)
                .collect(),
        )
        .unwrap();
        let g_out = Batch::from_vec(
            rows,
            d,
            (0..rows * d)
                .map(|i| ((i * 11 % 9) as f64 - 4.0) * 0.07)
                .collect(),
        )
        .unwrap();
        let body = m.body();
        let mut solver = GradSolver::new(
            body.scheme().method(),
            body.gradient_method().clone(),
            body.solve_options(),
        )
        .unwrap();
        replay.pass.begin();
        let x_n = solver.forward(&mut replay, &x0).unwrap().clone();
        replay.pass.freeze();
        let mut grad = replay.zero_grad();
        let g0 = solver.backward(&mut replay, &g_out, &mut grad).unwrap();

        m.set_train(true);
        let want_x = m.body_mut().forward(&x0).unwrap().clone();
        let mut want_grad = vec![0.0; m.body().field().num_params()];
        let want_g0 = m.body_mut().backward(&g_out, &mut want_grad).unwrap();
        let f = m.body().field();
        let want_stats: Vec<f64> = (0..f.depth())
            .flat_map(|n| f.running_stats(n).to_vec())
            .collect();
        let stats: Vec<f64> = replay.stats.concat();
        assert!(
            max_rel(x_n.as_slice(), want_x.as_slice()) < 1e-12,
            "{case:?}: x_N"
        );
        assert!(
            max_rel(g0.as_slice(), want_g0.as_slice()) < 1e-12,
            "{case:?}: ∂x_0"
        );
        assert!(
            max_rel(&stats, &want_stats) < 1e-12,
            "{case:?}: running stats"
        );
        assert!(max_rel(&grad, &want_grad) < 1e-12, "{case:?}: ∂θ");
        assert!(
            norm(&want_grad) > 1e-3,
            "{case:?}: the body gradient is not trivial"
        );
        let moved = (0..f.depth()).all(|n| f.running_stats(n)[..C].iter().any(|&v| v != 0.0));
        assert!(moved, "{case:?}: every layer's running mean moved");
    }
}

#[test]
fn the_tiny_resnet_references_agree_in_f32_and_f64() {
    for case in tiny_resnet_cases() {
        let (shape, cfg) = tiny_resnet_case(case.clone(), 3);
        let inputs = tiny_resnet_inputs(shape, &cfg, 6).unwrap();
        let (l32, g32, s32, z32) = tiny_resnet_cpu_reference::<f32>(shape, &cfg, &inputs).unwrap();
        let (l64, g64, s64, z64) = tiny_resnet_cpu_reference::<f64>(shape, &cfg, &inputs).unwrap();
        assert!(
            ((l32 - l64) / l64).abs() < 1e-5,
            "{case:?}: loss {l32} vs {l64}"
        );
        let d: Vec<f64> = g32.iter().zip(&g64).map(|(a, b)| a - b).collect();
        assert!(norm(&d) / norm(&g64) < 1e-4, "{case:?}: gradient");
        assert!(max_rel(&s32, &s64) < 1e-5, "{case:?}: running stats");
        assert!(max_rel(&z32, &z64) < 1e-4, "{case:?}: eval logits");
        // Not trivial: the step moved the body's running statistics off (0, 1), and every
        // parameter set has a gradient.
        assert!(
            s64[..C].iter().any(|&v| v.abs() > 1e-3),
            "running mean moved"
        );
        let m = TinyResNet::<f64>::new(shape, cfg.clone()).unwrap();
        let (ns, per) = (
            m.stem().num_params(),
            m.body().field().params_per_function(),
        );
        for k in 0..m.body().field().num_functions() {
            let gk = &g64[ns + k * per..ns + (k + 1) * per];
            assert!(norm(gk) > 1e-4, "{case:?}: function {k} has a gradient");
        }
    }
}
