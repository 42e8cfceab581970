//! The validity check for a model odeflow did not build: a hand-written field, its own data,
//! the default test grid. Run with
//! `cargo run --release -p odeflow --example check_custom_model`.
//!
//! The model rotates a point of the plane, `z' = ω J z` with `J = [[0, −1], [1, 0]]`, and
//! classifies it by the sign of its first coordinate. The labels come from the exact rotation
//! by 2 radians. Fitted through **two Euler steps**, the best `ω` solves
//! `2 atan(ω/2) = 2` (each Euler step rotates by `atan(ω h)` and stretches), i.e.
//! `ω = 2 tan 1 ≈ 3.11`: a perfect classifier with its training solver, which rotates by
//! 3.11 radians — not 2 — when the same ODE is solved accurately. The check finds that the
//! model is not a real ODE flow.

use odeflow::data::Dataset;
use odeflow::runs::{check_classifier, FlowModel, Silent};
use odeflow::solve::{solve, Method, SaveAt, SolveOptions, SolverSpec, Stats};
use odeflow::Batch;

/// The hand-written model: a rotation field with one parameter and a sign head.
struct Rotation {
    omega: f64,
}

impl FlowModel<f64> for Rotation {
    fn outputs(
        &mut self,
        x: &Batch<f64>,
        method: &Method,
        opts: &SolveOptions,
    ) -> Result<(Batch<f64>, Stats), String> {
        let w = self.omega;
        // z' = ω J z on every row of the batch.
        let mut field = |_t: f64, z: &Batch<f64>, dz: &mut Batch<f64>| {
            for (d, p) in dz
                .as_mut_slice()
                .chunks_exact_mut(2)
                .zip(z.as_slice().chunks_exact(2))
            {
                d[0] = -w * p[1];
                d[1] = w * p[0];
            }
        };
        let o = SolveOptions {
            save: SaveAt::Final,
            ..opts.clone()
        };
        let sol = solve(method, &mut field, x, &o).map_err(|e| e.to_string())?;
        // Logits [−x₁, x₁]: class 1 when the first coordinate is positive.
        let logits: Vec<f64> = sol
            .y_final
            .as_slice()
            .chunks_exact(2)
            .flat_map(|p| [-p[0], p[0]])
            .collect();
        let logits = Batch::from_vec(x.rows(), 2, logits).map_err(|e| e.to_string())?;
        Ok((logits, sol.stats))
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 1000 points on the unit circle at evenly spread angles; label 1 when the point rotated
    // exactly by 2 radians has a positive first coordinate.
    let n = 1000;
    let mut inputs = Vec::with_capacity(2 * n);
    let mut labels = Vec::with_capacity(n);
    for k in 0..n {
        let a = (k as f64 + 0.5) * std::f64::consts::TAU / n as f64;
        inputs.extend([a.cos(), a.sin()]);
        labels.push(usize::from((a + 2.0).cos() > 0.0));
    }
    let test = Dataset::new(Batch::from_vec(n, 2, inputs)?, labels, vec![2], 2)?;

    // "Trained" with two Euler steps: ω fitted so that Euler-2 rotates by exactly 2 rad.
    let mut model = Rotation {
        omega: 2.0 * 1f64.tan(),
    };
    let train = SolverSpec::fixed("euler", 2)?;
    let (verdict, report) = check_classifier(
        &mut model,
        "rotation",
        &test,
        &train,
        None, // the default grid: euler, midpoint, rk4 at 2…32 steps
        (0.0, 1.0),
        0.02,
        1000,
        &Silent,
    )?;
    println!(
        "trained with {}: test accuracy {:.3}; {} solvers compared",
        train.label(),
        report.train.accuracy,
        verdict.compared
    );
    println!("{}", verdict.summary);
    Ok(())
}
