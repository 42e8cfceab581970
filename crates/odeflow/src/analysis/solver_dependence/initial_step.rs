//! The initial step of Ott et al.'s adaptation (their code's variant of Hairer's algorithm),
//! computed on the first training batch with plain Euclidean norms averaged over the batch:
//!
//! ```text
//! d₀ = mean‖y₀‖,  d₁ = mean‖f(y₀)‖,  h₀ = 1e-6 if d₀ < 1e-5 or d₁ < 1e-5 else 0.01·d₀/d₁,
//! y₁ = y₀ + h₀ f(y₀),  d₂ = mean‖f(y₁) − f(y₀)‖ / h₀,
//! h₁ = max(1e-6, 1e-3·h₀) if max(d₁, d₂) ≤ 1e-15 else (0.01 / max(d₁, d₂))^(1/(p+1)),
//! h = min(100·h₀, h₁).
//! ```

use crate::real::Real;
use crate::solve::Rhs;
use crate::state::{Batch, State};

fn mean_row_norm<T: Real>(b: &Batch<T>) -> f64 {
    if b.rows() == 0 {
        return 0.0;
    }
    b.iter_rows()
        .map(|r| r.iter().map(|v| v.f64() * v.f64()).sum::<f64>().sqrt())
        .sum::<f64>()
        / b.rows() as f64
}

/// Ott et al.'s initial step for a method of order `order` on the batch `y0` at `t0`.
pub fn ott_initial_step<T: Real, F: Rhs<Batch<T>>>(
    f: &mut F,
    t0: f64,
    y0: &Batch<T>,
    order: usize,
) -> f64 {
    let mut f0 = y0.zeros_like();
    f.eval(t0, y0, &mut f0);
    let d0 = mean_row_norm(y0);
    let d1 = mean_row_norm(&f0);
    let h0 = if d0 < 1e-5 || d1 < 1e-5 {
        1e-6
    } else {
        0.01 * d0 / d1
    };
    let mut y1 = y0.clone();
    y1.axpy(T::of(h0), &f0);
    let mut f1 = y0.zeros_like();
    f.eval(t0 + h0, &y1, &mut f1);
    f1.axpy(T::of(-1.0), &f0);
    let d2 = mean_row_norm(&f1) / h0;
    let m = d1.max(d2);
    let h1 = if m <= 1e-15 {
        (1e-3 * h0).max(1e-6)
    } else {
        (0.01 / m).powf(1.0 / (order as f64 + 1.0))
    };
    (100.0 * h0).min(h1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decay_field_gives_the_closed_form_step() {
        // f(y) = −y, rows of norm r: d₀ = d₁ = r, h₀ = 0.01, d₂ = r, h₁ = (0.01/r)^(1/(p+1)).
        let mut f = |_t: f64, y: &Batch<f64>, dy: &mut Batch<f64>| {
            dy.as_mut_slice()
                .iter_mut()
                .zip(y.as_slice())
                .for_each(|(d, v)| *d = -v);
        };
        let y0 = Batch::from_rows(&[vec![0.6, 0.8], vec![0.0, 1.0]]).unwrap();
        let h = ott_initial_step(&mut f, 0.0, &y0, 1);
        assert!((h - 0.1).abs() < 1e-12, "{h}"); // min(100·0.01, (0.01/1)^(1/2))
        let h4 = ott_initial_step(&mut f, 0.0, &y0, 4);
        assert!((h4 - 0.01f64.powf(0.2)).abs() < 1e-12, "{h4}");
        let small = Batch::from_rows(&[vec![1e-7, 0.0]]).unwrap();
        // d₀ < 1e-5: h₀ = 1e-6, and h = min(1e-4, h₁).
        assert!(ott_initial_step(&mut f, 0.0, &small, 1) <= 1e-4 + 1e-18);
    }
}
