//! The CPU halves of the GPU agreement checks (`odeflow::cuda::classifier_agreement`,
//! `res_block_agreement`): the f32 and f64 references they judge the device against agree
//! to f32 round-off from the same inputs, and what they compare is not trivial (a gradient,
//! an Adam step, moving running statistics), so a device that computed nothing would fail.

use odeflow::cuda::res_block_plan::ResBlockLayout;
use odeflow::cuda::{
    classifier_cpu_reference, res_block_cpu_reference, res_block_inputs, ClassifierCase,
};
use odeflow::models::{ClassBatch, FieldSpec};
use odeflow::state::Batch;
use odeflow::train::Trainable;

fn max_rel(a: &[f64], r: &[f64]) -> f64 {
    let scale = r
        .iter()
        .fold(0.0f64, |m, v| m.max(v.abs()))
        .max(f64::MIN_POSITIVE);
    a.iter()
        .zip(r)
        .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()))
        / scale
}

fn norm_rel(a: &[f64], r: &[f64]) -> f64 {
    let d: f64 = a.iter().zip(r).map(|(x, y)| (x - y) * (x - y)).sum();
    let n: f64 = r.iter().map(|y| y * y).sum();
    (d / n.max(f64::MIN_POSITIVE)).sqrt()
}

#[test]
fn classifier_references_agree_in_f32_and_f64() {
    let cases = [
        ClassifierCase::mlp("rk4", 2, true),
        ClassifierCase::conv(
            FieldSpec::Odenet { channels: 3 },
            vec![1, 4, 5],
            1,
            "euler",
            3,
            true,
        ),
        ClassifierCase::conv(
            FieldSpec::SimpleOdenet { channels: 4 },
            vec![1, 2],
            0,
            "euler",
            4,
            false,
        ),
    ];
    for case in cases {
        let model = case.cpu_model::<f32>(1).expect("model");
        // The model's own (random) initialisation and data off the grid, so that no ReLU
        // input sits on its kink, where f32 and f64 may take different sides.
        let mut p0 = vec![0.0f32; model.num_params()];
        model.read_params(&mut p0);
        let (rows, input) = (case.rows, case.input());
        let batch = ClassBatch {
            x: Batch::from_vec(
                rows,
                input,
                (0..rows * input)
                    .map(|i| ((i * 7919 + 13) % 2003) as f32 / 1001.0 - 0.9873)
                    .collect(),
            )
            .expect("sized"),
            labels: (0..rows).map(|i| i % case.classes).collect(),
        };
        let (l32, _, z32, g32, p32) =
            classifier_cpu_reference::<f32>(&case, &p0, &batch, 1).expect("f32");
        let (l64, _, z64, g64, p64) =
            classifier_cpu_reference::<f64>(&case, &p0, &batch, 1).expect("f64");
        let what = format!("{:?}", case.field);
        assert!((l32 - l64).abs() < 1e-5 * l64, "{what}: {l32} vs {l64}");
        let zr = max_rel(&z32, &z64);
        assert!(zr < 1e-5, "{what}: logits {zr:e}");
        let gr = norm_rel(&g32, &g64);
        assert!(gr < 1e-4, "{what}: gradient {gr:e}");
        assert!(
            g64.iter().map(|g| g.abs()).sum::<f64>() > 1e-3,
            "{what}: a gradient"
        );
        let start: Vec<f64> = p0.iter().map(|&v| f64::from(v)).collect();
        let moved = norm_rel(&p64, &start);
        assert!(moved > 1e-3, "{what}: Adam moved the parameters by {moved}");
        assert!(norm_rel(&p32, &p64) < 1e-5, "{what}");
    }
}

#[test]
fn res_block_references_agree_and_train_mode_moves_the_running_statistics() {
    let layout = ResBlockLayout::new(3, 4, 5).expect("valid");
    let inp = res_block_inputs(&layout, 2, 7).expect("inputs");
    let start: Vec<f64> = inp
        .stats
        .iter()
        .flat_map(|(m, v)| m.iter().chain(v))
        .map(|&a| f64::from(a))
        .collect();
    for train in [true, false] {
        let (y32, s32, gx32, g32) =
            res_block_cpu_reference::<f32>((3, 4, 5), &inp, train).expect("f32");
        let (y64, s64, gx64, g64) =
            res_block_cpu_reference::<f64>((3, 4, 5), &inp, train).expect("f64");
        assert!(max_rel(&y32, &y64) < 1e-5, "train {train}");
        assert!(max_rel(&s32, &s64) < 1e-5, "train {train}");
        assert!(norm_rel(&gx32, &gx64) < 1e-4, "train {train}");
        assert!(norm_rel(&g32, &g64) < 1e-4, "train {train}");
        assert!(
            g64.iter().map(|g| g.abs()).sum::<f64>() > 1e-2,
            "a gradient"
        );
        assert!(y64.iter().map(|g| g.abs()).sum::<f64>() > 1e-2, "f ≠ 0");
        let moved = max_rel(&s64, &start);
        assert_eq!(moved > 1e-3, train, "running statistics moved by {moved}");
    }
}

/// The regression check's CPU half (`regression_agreement`, the pendulum workload's captured
/// plan): f32 and f64 agree to round-off for each gradient method, the gradient and the Adam
/// step are not trivial, and the memory-free gradients are the methods' own (the reversible
/// one differs from backprop by O(h), beyond round-off).
#[test]
fn regression_references_agree_in_f32_and_f64() {
    use odeflow::cuda::{regression_cpu_reference, regression_inputs};
    use odeflow::grad::GradientMethod;
    let (p0, x, y) = regression_inputs(3).expect("inputs");
    let mut grads = Vec::new();
    for name in ["backprop", "reversible", "adjoint"] {
        let g = GradientMethod::from_name(name).expect("gradient");
        let (l32, g32, p32) = regression_cpu_reference::<f32>(&g, &p0, (&x, &y)).expect("f32");
        let (l64, g64, p64) = regression_cpu_reference::<f64>(&g, &p0, (&x, &y)).expect("f64");
        assert!(
            l64 > 0.1 && (l32 - l64).abs() <= 1e-5 * l64,
            "{name}: {l32} vs {l64}"
        );
        let e = norm_rel(&g32, &g64);
        assert!(e > 0.0 && e < 1e-4, "{name}: gradient f32 error {e}");
        assert!(norm_rel(&p32, &p64) < 1e-6, "{name}: Adam step");
        let p0f: Vec<f64> = p0.iter().map(|&v| f64::from(v)).collect();
        assert!(
            norm_rel(&p64, &p0f) > 1e-4,
            "{name}: the Adam step moved nothing"
        );
        grads.push(g64);
    }
    let gap = norm_rel(&grads[1], &grads[0]);
    assert!(gap > 1e-6 && gap < 0.1, "reversible vs backprop: {gap}");
}
