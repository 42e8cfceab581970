//! The ResNet analyses of Sander et al. on small inputs: ResNet–ODE distance, batches as
//! pure functions of the iteration, reproducible depth and distance sweeps.

use odeflow::analysis::resnet::depth_sweep::{
    depth_sweep, AugmentedBatches, DepthSweepConfig, ImageData, TrainSettings,
};
use odeflow::analysis::resnet::distance::{
    distance_sweep, resnet_ode_distance, DistanceSweepConfig,
};
use odeflow::analysis::resnet::profiles::{loglog_slope, ProfileModel, WeightProfile};
use odeflow::data::{ChannelNorm, Dataset};
use odeflow::grad::GradientMethod;
use odeflow::models::depth_field::Tying;
use odeflow::models::resnet::{ResNet, Scheme};
use odeflow::models::tiny_resnet::{BodyInit, TinyResNetConfig};
use odeflow::train::BatchSource;
use odeflow::Batch;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn model() -> ProfileModel {
    ProfileModel {
        dim: 4,
        hidden: None,
        scale: 1.5,
        seed: 3,
    }
}

fn input(rows: usize, cols: usize, seed: u64) -> Batch<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Batch::from_vec(
        rows,
        cols,
        (0..rows * cols)
            .map(|_| rng.random_range(-1.0..1.0))
            .collect(),
    )
    .unwrap()
}

#[test]
fn resnet_ode_distance_falls_like_one_over_depth_only_for_smooth_weights() {
    let x0 = input(5, 4, 1);
    let depths = [8usize, 16, 32, 64];
    let measure = |profile: WeightProfile, scheme: Scheme| -> (Vec<f64>, Vec<f64>) {
        depths
            .iter()
            .map(|&n| {
                let f = model().field(profile, n).unwrap();
                let mut net = ResNet::new(f, scheme, GradientMethod::Backprop, 0).unwrap();
                let r = resnet_ode_distance(&mut net, &x0, 8).unwrap();
                assert_eq!(r.per_layer.len(), scheme.steps(n) + 1);
                assert_eq!(r.per_layer[0], 0.0);
                (r.distance, r.smoothness_max)
            })
            .unzip()
    };
    let xs: Vec<f64> = depths.iter().map(|&d| d as f64).collect();
    for scheme in [Scheme::Euler, Scheme::Heun] {
        let (dist, smooth) = measure(WeightProfile::Smooth, scheme);
        let s = loglog_slope(&xs, &dist).unwrap();
        eprintln!("{scheme:?} smooth: distances {dist:?}, slope {s:.2}");
        // Euler's global error O(1/N); Heun's O(1/N²) against the interpolated ODE, whose
        // weights are piecewise linear (second-order accurate) in depth.
        let want = if scheme == Scheme::Euler { -1.0 } else { -2.0 };
        assert!((s - want).abs() < 0.25, "{scheme:?} smooth slope {s}");
        // N·max‖Δθ‖ bounded for smooth weights, ∝ N for i.i.d. ones.
        let s = loglog_slope(&xs, &smooth).unwrap();
        assert!(s.abs() < 0.1, "smooth weights: N·max‖Δθ‖ slope {s}");
        let (dist, rough) = measure(WeightProfile::Iid, scheme);
        let s = loglog_slope(&xs, &rough).unwrap();
        assert!((s - 1.0).abs() < 0.2, "i.i.d. weights: N·max‖Δθ‖ slope {s}");
        // The interpolated ODE averages neighbouring i.i.d. layers just as the network does
        // (their differences telescope), so the distance still falls; it is only reported.
        eprintln!("{scheme:?} iid: distances {dist:?}");
    }
    // A tied network: constant weights, the distance is Euler's global error.
    let tied = odeflow::models::depth_field::DepthField::new(
        model().network().unwrap(),
        10,
        Tying::Tied,
        &odeflow::nn::Init::PyTorchDefault,
        0,
    )
    .unwrap();
    let mut net = ResNet::new(tied, Scheme::Euler, GradientMethod::Backprop, 0).unwrap();
    let r = resnet_ode_distance(&mut net, &x0, 16).unwrap();
    assert!(r.distance > 0.0 && r.distance < 0.1, "{r:?}");
    assert_eq!((r.smoothness_max, r.smoothness_sum), (0.0, 0.0));
}

fn toy_images(n: usize, seed: u64) -> Dataset<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let labels: Vec<usize> = (0..n).map(|_| rng.random_range(0..3usize)).collect();
    // Class k: brighter k-th third of the image, plus noise.
    let data = labels
        .iter()
        .flat_map(|&k| {
            let noise: Vec<f64> = (0..144).map(|_| rng.random_range(0.0..0.3)).collect();
            (0..144).map(move |i| if i / 48 == k { 0.7 } else { 0.0 } + noise[i])
        })
        .collect();
    Dataset::new(
        Batch::from_vec(n, 144, data).unwrap(),
        labels,
        vec![1, 12, 12],
        3,
    )
    .unwrap()
}

fn toy_data() -> ImageData<f64> {
    let norm = ChannelNorm::new(vec![0.3], vec![0.3]).unwrap();
    ImageData::new("toy", toy_images(48, 1), toy_images(24, 2), norm).unwrap()
}

#[test]
fn training_batches_are_a_pure_function_of_the_iteration() {
    let data = toy_data();
    let mut a = AugmentedBatches::new(&data, 10, true, 5).unwrap();
    let mut b = AugmentedBatches::new(&data, 10, true, 5).unwrap();
    let mut ba = a.new_batch();
    let mut bb = b.new_batch();
    // In order on one source, out of order (and repeated) on the other.
    let order = [3u64, 0, 9, 4, 4, 1, 2, 8];
    let mut seen = std::collections::BTreeMap::new();
    for k in 0..10u64 {
        a.fill(k, &mut ba);
        seen.insert(k, ba.clone());
    }
    for k in order {
        b.fill(k, &mut bb);
        assert_eq!(bb, seen[&k], "batch {k}");
    }
    assert_eq!(ba.inputs.rows(), 10);
    // 4 batches per epoch: batch 4 starts a new permutation.
    assert_ne!(seen[&0].labels, seen[&4].labels);
    assert!(AugmentedBatches::new(&data, 49, false, 0).is_err());
}

#[test]
fn depth_and_distance_sweeps_are_reproducible() {
    let data = toy_data();
    let train = TrainSettings {
        iterations: 4,
        batch_size: 8,
        lr: 0.05,
        milestones: vec![3],
        ..Default::default()
    };
    let model = TinyResNetConfig {
        channels: 3,
        classes: 3,
        ..Default::default()
    };
    let cfg = DepthSweepConfig {
        depths: vec![2, 3],
        schemes: vec![Scheme::Euler, Scheme::Heun],
        grads: vec![GradientMethod::Backprop, GradientMethod::Reversible],
        model: TinyResNetConfig {
            min_reversible_depth: 3,
            ..model.clone()
        },
        train: train.clone(),
        eval_batch: 7,
    };
    let mut calls = 0;
    let r1 = depth_sweep(&data, &cfg, |_| calls += 1).unwrap();
    assert_eq!(calls, 8 * 4);
    assert_eq!(r1.runs.len(), 8);
    assert_eq!(r1.sizes, (48, 24));
    let r2 = depth_sweep(&data, &cfg, |_| {}).unwrap();
    for (a, b) in r1.runs.iter().zip(&r2.runs) {
        assert_eq!(
            (a.test_accuracy, a.test_loss, a.final_train_loss),
            (b.test_accuracy, b.test_loss, b.final_train_loss)
        );
        assert!(a.test_loss.is_finite() && (0.0..=1.0).contains(&a.test_accuracy));
        let want = if a.grad == "reversible" && a.depth >= 3 {
            "reversible"
        } else {
            "backprop"
        };
        assert_eq!(a.effective_grad, want);
        let stages = if a.scheme == Scheme::Euler { 1 } else { 2 };
        let tapes = if a.effective_grad == "backprop" {
            stages * a.scheme.steps(a.depth)
        } else {
            stages
        };
        assert_eq!(a.tapes_peak, tapes, "{a:?}");
    }

    let dcfg = DistanceSweepConfig {
        depths: vec![2, 4],
        inits: vec![BodyInit::Iid, BodyInit::Constant],
        scheme: Scheme::Euler,
        model,
        train,
        every: 2,
        probe_size: 5,
        substeps: 4,
        eval_batch: 24,
    };
    let d = distance_sweep(&data, &dcfg, |_, _, _| {}).unwrap();
    assert_eq!(d.runs.len(), 4);
    for run in &d.runs {
        let its: Vec<u64> = run.records.iter().map(|r| r.iteration).collect();
        assert_eq!(its, [0, 2, 4]);
        // Every block starts as the zero function: network and ODE agree exactly.
        assert_eq!(run.records[0].distance, 0.0);
        if run.init == BodyInit::Constant {
            assert_eq!(run.records[0].smoothness_max, 0.0);
        } else {
            assert!(run.records[0].smoothness_max > 0.0);
        }
        assert!(run.records[2].distance > 0.0 && run.records[2].loss.is_none());
    }
    let d2 = distance_sweep(&data, &dcfg, |_, _, _| {}).unwrap();
    assert_eq!(d, d2);
}
