//! Losses with their gradients.
//!
//! * Softmax cross-entropy, mean over the batch (PyTorch's `CrossEntropyLoss`):
//!   `L = (1/N) Σₙ [log Σ_k exp(zₙₖ) − zₙ,yₙ]`, computed with the max subtracted
//!   (`log Σ exp(z) = m + log Σ exp(z − m)`) so large logits neither overflow nor lose
//!   the small terms; `∂L/∂zₙₖ = (softmax(zₙ)ₖ − 1[k = yₙ])/N`.
//! * Mean squared error over all components (PyTorch's `MSELoss`):
//!   `L = (1/(N·D)) Σ (p − q)²`, `∂L/∂p = 2(p − q)/(N·D)`.
//!
//! Values are accumulated and returned in `f64`.

use super::NnError;
use crate::error::ShapeError;
use crate::real::Real;
use crate::state::Batch;

/// Mean softmax cross-entropy of `logits` (`N × classes`) against `labels`; writes
/// `∂L/∂logits` into `grad` (resized to the shape of `logits`).
pub fn softmax_cross_entropy<T: Real>(
    logits: &Batch<T>,
    labels: &[usize],
    grad: &mut Batch<T>,
) -> Result<f64, NnError> {
    let (n, k) = (logits.rows(), logits.cols());
    if labels.len() != n {
        return Err(ShapeError {
            what: "labels",
            expected: n,
            got: labels.len(),
        }
        .into());
    }
    if let Some((index, &label)) = labels.iter().enumerate().find(|(_, &l)| l >= k) {
        return Err(NnError::LabelOutOfRange {
            index,
            label,
            classes: k,
        });
    }
    grad.resize(n, k);
    if n == 0 {
        return Ok(0.0);
    }
    let inv_n = 1.0 / n as f64;
    let mut total = 0.0;
    for (i, &label) in labels.iter().enumerate() {
        let z = logits.row(i);
        let m = z.iter().fold(f64::NEG_INFINITY, |a, v| a.max(v.f64()));
        let sum: f64 = z.iter().map(|v| (v.f64() - m).exp()).sum();
        let lse = m + sum.ln();
        total += lse - z[label].f64();
        let g = grad.row_mut(i);
        for (gk, zk) in g.iter_mut().zip(z) {
            *gk = T::of((zk.f64() - lse).exp() * inv_n);
        }
        g[label] -= T::of(inv_n);
    }
    Ok(total * inv_n)
}

/// Fraction of rows of `logits` whose largest entry is at the label (ties: first index).
pub fn accuracy<T: Real>(logits: &Batch<T>, labels: &[usize]) -> Result<f64, NnError> {
    if labels.len() != logits.rows() {
        return Err(ShapeError {
            what: "labels",
            expected: logits.rows(),
            got: labels.len(),
        }
        .into());
    }
    if labels.is_empty() {
        return Ok(0.0);
    }
    let hits = logits
        .iter_rows()
        .zip(labels)
        .filter(|(z, &l)| {
            let best =
                z.iter().enumerate().fold(
                    (0, T::neg_infinity()),
                    |b, (i, &v)| if v > b.1 { (i, v) } else { b },
                );
            best.0 == l
        })
        .count();
    Ok(hits as f64 / labels.len() as f64)
}

/// Mean squared error of `pred` against `target` over all components; writes `∂L/∂pred`
/// into `grad` (resized to the shape of `pred`).
pub fn mse<T: Real>(
    pred: &Batch<T>,
    target: &Batch<T>,
    grad: &mut Batch<T>,
) -> Result<f64, NnError> {
    if (pred.rows(), pred.cols()) != (target.rows(), target.cols()) {
        return Err(ShapeError {
            what: "MSE target",
            expected: pred.rows() * pred.cols(),
            got: target.rows() * target.cols(),
        }
        .into());
    }
    grad.resize(pred.rows(), pred.cols());
    let count = pred.as_slice().len();
    if count == 0 {
        return Ok(0.0);
    }
    let scale = 1.0 / count as f64;
    let mut total = 0.0;
    for ((g, p), q) in grad
        .as_mut_slice()
        .iter_mut()
        .zip(pred.as_slice())
        .zip(target.as_slice())
    {
        let d = p.f64() - q.f64();
        total += d * d;
        *g = T::of(2.0 * d * scale);
    }
    Ok(total * scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fd_check(f: impl Fn(&Batch<f64>) -> f64, x: &Batch<f64>, g: &Batch<f64>) {
        let h = 1e-6;
        for i in 0..x.as_slice().len() {
            let mut p = x.clone();
            p.as_mut_slice()[i] += h;
            let mut m = x.clone();
            m.as_mut_slice()[i] -= h;
            let fd = (f(&p) - f(&m)) / (2.0 * h);
            let a = g.as_slice()[i];
            assert!(
                (fd - a).abs() <= 1e-7 * a.abs().max(1e-2),
                "component {i}: {a} vs {fd}"
            );
        }
    }

    #[test]
    fn cross_entropy_value_gradient_and_stability() {
        let z = Batch::from_rows(&[vec![1.0, -2.0, 0.5], vec![0.1, 0.2, 0.3]]).unwrap();
        let labels = [2, 0];
        let mut g = Batch::zeros(0, 0);
        let l = softmax_cross_entropy(&z, &labels, &mut g).unwrap();
        let manual = |r: &[f64], y: usize| r.iter().map(|v| v.exp()).sum::<f64>().ln() - r[y];
        let want = (manual(z.row(0), 2) + manual(z.row(1), 0)) / 2.0;
        assert!((l - want).abs() < 1e-14);
        fd_check(
            |x| softmax_cross_entropy(x, &labels, &mut Batch::zeros(0, 0)).unwrap(),
            &z,
            &g,
        );
        // Huge logits: finite value and gradient.
        let big = Batch::from_rows(&[vec![1000.0f32, -1000.0, 999.0]]).unwrap();
        let mut gb = Batch::zeros(0, 0);
        let l = softmax_cross_entropy(&big, &[2], &mut gb).unwrap();
        assert!((l - (1.0 + (1.0 + (-1.0f64).exp()).ln())).abs() < 1e-6);
        assert!(gb.as_slice().iter().all(|v| v.is_finite()));
        assert!(gb.as_slice().iter().sum::<f32>().abs() < 1e-6);
    }

    #[test]
    fn cross_entropy_rejects_bad_labels() {
        let z = Batch::<f64>::zeros(2, 3);
        let mut g = Batch::zeros(0, 0);
        let e = softmax_cross_entropy(&z, &[0, 3], &mut g).unwrap_err();
        assert_eq!(
            e,
            NnError::LabelOutOfRange {
                index: 1,
                label: 3,
                classes: 3
            }
        );
        assert!(softmax_cross_entropy(&z, &[0], &mut g).is_err());
    }

    #[test]
    fn mse_value_and_gradient() {
        let p = Batch::from_rows(&[vec![1.0, 2.0], vec![-1.0, 0.5]]).unwrap();
        let q = Batch::from_rows(&[vec![0.0, 2.5], vec![1.0, 0.5]]).unwrap();
        let mut g = Batch::zeros(0, 0);
        let l = mse(&p, &q, &mut g).unwrap();
        assert!((l - (1.0 + 0.25 + 4.0) / 4.0).abs() < 1e-15);
        fd_check(|x| mse(x, &q, &mut Batch::zeros(0, 0)).unwrap(), &p, &g);
        assert!(mse(&p, &Batch::zeros(1, 2), &mut g).is_err());
    }

    #[test]
    fn accuracy_counts_argmax() {
        let z = Batch::from_rows(&[vec![0.1, 0.9], vec![0.8, 0.2], vec![0.3, 0.7]]).unwrap();
        assert!((accuracy(&z, &[1, 0, 0]).unwrap() - 2.0 / 3.0).abs() < 1e-15);
    }
}
