//! The small statistics every analysis shares, one copy each: mean ± standard deviation,
//! least-squares lines (linear and log–log, the observed order of a method), and the paired
//! tests that tell a real accuracy drop from the noise of a finite test set.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Mean and (population) standard deviation; `(NaN, NaN)` for no values.
pub fn mean_std(v: &[f64]) -> (f64, f64) {
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / n;
    (m, var.sqrt())
}

/// A least-squares line `y = slope · x + intercept` (for [`loglog_fit`]: in natural
/// logarithms of both coordinates).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LineFit {
    /// Slope (for a log–log fit: the observed order).
    pub slope: f64,
    /// Intercept.
    pub intercept: f64,
}

/// Least-squares line through `pts`; `None` with fewer than two points or when all `x` are
/// equal.
pub fn linear_fit(pts: &[(f64, f64)]) -> Option<LineFit> {
    if pts.len() < 2 {
        return None;
    }
    let n = pts.len() as f64;
    let mx = pts.iter().map(|p| p.0).sum::<f64>() / n;
    let my = pts.iter().map(|p| p.1).sum::<f64>() / n;
    let var: f64 = pts.iter().map(|p| (p.0 - mx).powi(2)).sum();
    if var == 0.0 {
        return None;
    }
    let slope = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum::<f64>() / var;
    Some(LineFit {
        slope,
        intercept: my - slope * mx,
    })
}

/// The log–log least-squares fit `log y = slope · log x + intercept` over the pairs with
/// positive, finite coordinates; `None` with fewer than two such points or one distinct `x`.
pub fn loglog_fit(xs: &[f64], ys: &[f64]) -> Option<LineFit> {
    let pts: Vec<(f64, f64)> = xs
        .iter()
        .zip(ys)
        .filter(|(x, y)| x.is_finite() && y.is_finite() && **x > 0.0 && **y > 0.0)
        .map(|(x, y)| (x.ln(), y.ln()))
        .collect();
    linear_fit(&pts)
}

/// McNemar's exact test of paired binary outcomes (a prediction right under solver A and
/// under solver B, on the same test points): `a_only` points are right only under A,
/// `b_only` only under B. Under the null hypothesis (both solvers equally accurate) the
/// discordant points split as Binomial(`a_only + b_only`, ½); the two-sided p-value is
/// `min(1, 2 P[X ≤ min(a_only, b_only)])`. Computed in log space, exact for any count.
pub fn mcnemar_exact(a_only: usize, b_only: usize) -> f64 {
    let n = a_only + b_only;
    if n == 0 {
        return 1.0;
    }
    let k = a_only.min(b_only);
    // log C(n, i) accumulated incrementally; log-sum-exp over i = 0..=k.
    let ln_half_n = -(n as f64) * std::f64::consts::LN_2;
    let mut log_c = 0.0f64;
    let mut terms = Vec::with_capacity(k + 1);
    for i in 0..=k {
        if i > 0 {
            log_c += ((n - i + 1) as f64).ln() - (i as f64).ln();
        }
        terms.push(log_c + ln_half_n);
    }
    let max = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let tail = max.exp() * terms.iter().map(|t| (t - max).exp()).sum::<f64>();
    (2.0 * tail).min(1.0)
}

/// A paired bootstrap interval of the mean of `diffs` (per-point differences between two
/// solvers on the same points): the `(1 − level)/2` and `(1 + level)/2` quantiles of the
/// means of `resamples` seeded resamples. Returns `(low, high)`; `(NaN, NaN)` for no points.
pub fn bootstrap_mean_interval(
    diffs: &[f64],
    level: f64,
    resamples: usize,
    seed: u64,
) -> (f64, f64) {
    if diffs.is_empty() || resamples == 0 {
        return (f64::NAN, f64::NAN);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = diffs.len();
    let mut means: Vec<f64> = (0..resamples)
        .map(|_| (0..n).map(|_| diffs[rng.random_range(0..n)]).sum::<f64>() / n as f64)
        .collect();
    means.sort_by(f64::total_cmp);
    let q = |p: f64| means[((p * (resamples - 1) as f64).round() as usize).min(resamples - 1)];
    let a = (1.0 - level) / 2.0;
    (q(a), q(1.0 - a))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn means_and_lines() {
        assert_eq!(mean_std(&[1.0, 3.0]), (2.0, 1.0));
        assert!(mean_std(&[]).0.is_nan());
        let f = linear_fit(&[(0.0, 1.0), (1.0, 3.0), (2.0, 5.0)]).unwrap();
        assert!((f.slope - 2.0).abs() < 1e-12 && (f.intercept - 1.0).abs() < 1e-12);
        assert!(linear_fit(&[(1.0, 1.0), (1.0, 2.0)]).is_none());
        let xs = [0.1, 0.01, 0.001];
        let ys: Vec<f64> = xs.iter().map(|x: &f64| 3.0 * x.powi(2)).collect();
        assert!((loglog_fit(&xs, &ys).unwrap().slope - 2.0).abs() < 1e-12);
        assert!(loglog_fit(&[1.0, -1.0], &[1.0, 1.0]).is_none());
    }

    #[test]
    fn mcnemar_matches_the_binomial_tail() {
        // n = 10 discordant, split 1/9: 2 · (1 + 10) / 1024.
        assert!((mcnemar_exact(1, 9) - 22.0 / 1024.0).abs() < 1e-15);
        assert!((mcnemar_exact(9, 1) - 22.0 / 1024.0).abs() < 1e-15);
        assert_eq!(mcnemar_exact(5, 5), 1.0);
        assert_eq!(mcnemar_exact(0, 0), 1.0);
        // Large counts stay finite and tiny: 0 of 1000 discordant points in A's favour.
        let p = mcnemar_exact(0, 1000);
        assert!(p > 0.0 && p < 1e-300, "{p}");
        // Balanced large counts are not significant.
        assert!(mcnemar_exact(480, 520) > 0.2);
    }

    #[test]
    fn bootstrap_intervals_cover_the_mean_and_are_seeded() {
        let d: Vec<f64> = (0..200).map(|i| (i % 7) as f64 - 3.0 + 0.5).collect();
        let (lo, hi) = bootstrap_mean_interval(&d, 0.95, 2000, 1);
        let (m, _) = mean_std(&d);
        assert!(lo < m && m < hi, "{lo} {m} {hi}");
        assert_eq!((lo, hi), bootstrap_mean_interval(&d, 0.95, 2000, 1));
        assert!(lo > 0.0, "a shifted sample excludes 0: {lo}");
    }
}
