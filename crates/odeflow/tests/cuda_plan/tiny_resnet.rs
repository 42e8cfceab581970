//! TinyResNet with its body on the device (`odeflow::cuda::CudaTinyResNet`; Sander et al.,
//! NeurIPS 2022), its CPU-testable parts: the correspondence between the CPU body and one
//! residual block per layer (`BodyMap`: parameters, tied gradients, running statistics);
//! the device's composition — `x ← x + f_n(x)/N` forward, `g ← g + (1/N)(∂f_n/∂x)ᵀ g`
//! backward at per-layer tapes, each block's running statistics moved once — replayed with
//! CPU blocks against the CPU ResNet body; and the CPU half of `tiny_resnet_agreement`.

use odeflow::cuda::res_block_plan::ResBlockLayout;
use odeflow::cuda::{tiny_resnet_case, tiny_resnet_cpu_reference, tiny_resnet_inputs, BodyMap};
use odeflow::field::Parameterized;
use odeflow::models::depth_field::Tying;
use odeflow::models::resnet::conv_residual_block;
use odeflow::models::tiny_resnet::TinyResNet;
use odeflow::nn::{Layer, Tape};
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

fn model(tying: Tying) -> TinyResNet<f64> {
    let (shape, cfg) = tiny_resnet_case(tying, 3);
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

#[test]
fn the_body_map_matches_the_cpu_body() {
    for tying in [Tying::Untied, Tying::Tied] {
        let mut m = model(tying);
        let field = m.body_mut().field_mut();
        let layout = ResBlockLayout::new(8, 4, 4).unwrap();
        let map = BodyMap::new(field, &layout).expect("map");
        let (depth, per) = (field.depth(), layout.num_params());
        assert_eq!(map.depth(), depth);
        for n in 0..depth {
            let want: Vec<f32> = field.layer_params(n).iter().map(|&v| v as f32).collect();
            assert_eq!(map.layer_params(field.params(), n), want, "layer {n}");
            let stats: Vec<f64> = (0..4 * 8).map(|i| (100 * n + i) as f64).collect();
            field.set_running_stats(n, &stats).unwrap();
            let split = map.split_stats(field.running_stats(n));
            assert_eq!(split[0].0[0], (100 * n) as f32, "mean of batch norm 1");
            assert_eq!(split[0].1[0], (100 * n + 8) as f32, "var of batch norm 1");
            assert_eq!(split[1].0[0], (100 * n + 16) as f32, "mean of batch norm 2");
            assert_eq!(split[1].1[7], (100 * n + 31) as f32, "var of batch norm 2");
            assert_eq!(map.merge_stats::<f64>(&split), stats);
        }
        let per_layer: Vec<Vec<f32>> = (0..depth).map(|n| vec![(n + 1) as f32; per]).collect();
        let mut grad = vec![0.5f64; field.num_params()];
        map.fold_grads(&per_layer, &mut grad);
        match tying {
            // Each layer enters the state as f_n/N: its gradient is scaled by 1/N = 1/3.
            Tying::Untied => {
                for n in 0..depth {
                    let want = 0.5 + (n + 1) as f64 / 3.0;
                    assert!(grad[n * per..(n + 1) * per]
                        .iter()
                        .all(|&g| (g - want).abs() < 1e-15));
                }
            }
            Tying::Tied => {
                assert_eq!(grad.len(), per);
                let want = 0.5 + 6.0 / 3.0;
                assert!(
                    grad.iter().all(|&g| (g - want).abs() < 1e-15),
                    "(1 + 2 + 3)/3"
                );
            }
        }
        let other = ResBlockLayout::new(4, 4, 4).unwrap();
        let e = BodyMap::new(field, &other).unwrap_err().to_string();
        assert!(e.contains("parameters per layer"), "{e}");
    }
}

/// The device body's composition with CPU blocks: one `conv_residual_block` per layer,
/// parameters and running statistics through `BodyMap`, the updates of the module docs.
fn replayed_body(
    m: &TinyResNet<f64>,
    x0: &Batch<f64>,
    g_out: &Batch<f64>,
) -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<Vec<f64>>) {
    let field = m.body().field();
    let layout = ResBlockLayout::new(8, 4, 4).unwrap();
    let map = BodyMap::new(field, &layout).unwrap();
    let n_layers = map.depth();
    let h = 1.0 / n_layers as f64;
    let mut blocks = Vec::new();
    let mut x = x0.as_slice().to_vec();
    for n in 0..n_layers {
        let mut net = conv_residual_block::<f64>(8, 4, 4).unwrap();
        let split = map.split_stats(field.running_stats(n));
        let bns = net.layers_mut().iter_mut().filter_map(|l| match l {
            Layer::BatchNorm(b) => Some(b),
            _ => None,
        });
        for (bn, (mean, var)) in bns.zip(&split) {
            let f = |v: &Vec<f32>| v.iter().map(|&a| f64::from(a)).collect::<Vec<_>>();
            bn.set_running_stats(&f(mean), &f(var)).unwrap();
        }
        net.set_train(true);
        let p: Vec<f64> = map
            .layer_params(field.params(), n)
            .iter()
            .map(|&v| f64::from(v))
            .collect();
        let mut tape = Tape::new();
        let mut f = vec![0.0; x.len()];
        net.forward_taped(&p, 0.0, &x, &mut f, &mut tape).unwrap();
        x.iter_mut().zip(&f).for_each(|(a, b)| *a += h * b);
        blocks.push((net, p, tape));
    }
    let mut g = g_out.as_slice().to_vec();
    let mut per_layer = vec![Vec::new(); n_layers];
    for (n, (net, p, tape)) in blocks.iter_mut().enumerate().rev() {
        let mut gx = vec![0.0; g.len()];
        let mut gp = vec![0.0; p.len()];
        net.backward(p, tape, &g, &mut gx, &mut gp).unwrap();
        g.iter_mut().zip(&gx).for_each(|(a, b)| *a += h * b);
        per_layer[n] = gp.iter().map(|&v| v as f32 as f64).collect();
    }
    let mut grad = vec![0.0f64; field.num_params()];
    let per_f32: Vec<Vec<f32>> = per_layer
        .iter()
        .map(|v| v.iter().map(|&a| a as f32).collect())
        .collect();
    map.fold_grads(&per_f32, &mut grad);
    let mut stats = Vec::new();
    for (net, _, _) in &mut blocks {
        for l in net.layers_mut() {
            if let Layer::BatchNorm(b) = l {
                stats.extend_from_slice(b.running_mean());
                stats.extend_from_slice(b.running_var());
            }
        }
    }
    (x, g, stats, vec![grad])
}

#[test]
fn the_device_composition_is_the_cpu_resnet_body() {
    for tying in [Tying::Untied, Tying::Tied] {
        let mut m = model(tying);
        let d = 8 * 4 * 4;
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
        let (x_n, g0, stats, grads) = replayed_body(&m, &x0, &g_out);
        m.set_train(true);
        let want_x = m.body_mut().forward(&x0).unwrap().as_slice().to_vec();
        let mut want_grad = vec![0.0; m.body().field().num_params()];
        let want_g0 = m.body_mut().backward(&g_out, &mut want_grad).unwrap();
        let f = m.body().field();
        let want_stats: Vec<f64> = (0..f.depth())
            .flat_map(|n| f.running_stats(n).to_vec())
            .collect();
        assert!(max_rel(&x_n, &want_x) < 1e-12, "{tying:?}: x_N");
        assert!(
            max_rel(g0.as_slice(), want_g0.as_slice()) < 1e-12,
            "{tying:?}: ∂x_0"
        );
        assert!(
            max_rel(&stats, &want_stats) < 1e-12,
            "{tying:?}: running stats"
        );
        // The blocks' gradients pass through f32 on the device (and here).
        let e = max_rel(&grads[0], &want_grad);
        assert!(e < 1e-6, "{tying:?}: body gradient {e:e}");
        assert!(
            norm(&want_grad) > 1e-3,
            "{tying:?}: the body gradient is not trivial"
        );
    }
}

#[test]
fn the_tiny_resnet_references_agree_in_f32_and_f64() {
    for tying in [Tying::Untied, Tying::Tied] {
        let (shape, cfg) = tiny_resnet_case(tying, 3);
        let inputs = tiny_resnet_inputs(shape, &cfg, 6).unwrap();
        let (l32, g32, s32, z32) = tiny_resnet_cpu_reference::<f32>(shape, &cfg, &inputs).unwrap();
        let (l64, g64, s64, z64) = tiny_resnet_cpu_reference::<f64>(shape, &cfg, &inputs).unwrap();
        assert!(
            ((l32 - l64) / l64).abs() < 1e-5,
            "{tying:?}: loss {l32} vs {l64}"
        );
        let d: Vec<f64> = g32.iter().zip(&g64).map(|(a, b)| a - b).collect();
        assert!(norm(&d) / norm(&g64) < 1e-4, "{tying:?}: gradient");
        assert!(max_rel(&s32, &s64) < 1e-5, "{tying:?}: running stats");
        assert!(max_rel(&z32, &z64) < 1e-4, "{tying:?}: eval logits");
        // Not trivial: the step moved the body's running statistics off (0, 1), and every
        // layer's parameters have a gradient.
        let c = 8;
        assert!(
            s64[..c].iter().any(|&v| v.abs() > 1e-3),
            "running mean moved"
        );
        let m = TinyResNet::<f64>::new(shape, cfg.clone()).unwrap();
        let (ns, per) = (
            m.stem().num_params(),
            m.body().field().params_per_function(),
        );
        for k in 0..m.body().field().num_functions() {
            let gk = &g64[ns + k * per..ns + (k + 1) * per];
            assert!(norm(gk) > 1e-4, "{tying:?}: function {k} has a gradient");
        }
    }
}
