//! How well the reverse pass reconstructs a ResNet's input (Sander, Ablin, Peyré 2022, §3).
//!
//! The reversible backward pass never stores activations: from `x_N` it recovers each
//! `x_n` by a reverse step. Running the forward pass from `z = x₀` and then all reverse
//! steps gives `x̃₀`; the relative error `‖z − x̃₀‖ / ‖x̃₀‖` (Frobenius norms over the batch)
//! measures how far the network is from being invertible by its own reverse recursion.
//!
//! Each reverse step inverts its forward step up to a local error: `O(1/N²)` for Euler, and
//! for Heun `(1/4N²)(f′_{n+1} − f′_n)(f_n − f_{n+1}) + O(1/N³)` — `O(1/N⁴)` when the weights
//! are smooth in depth (the `1/N³` terms of the forward and reverse steps cancel because
//! Heun has even order), `O(1/N²)` when consecutive layers are unrelated. Summed over the
//! `N` layers the reconstruction error falls like `N^(−1)` for Euler, like `N^(−3)` for
//! Heun with smooth weights, `N^(−2)` with piecewise-smooth weights (the jump layers
//! contribute `O(1/N²)` each) and only `N^(−1)` with i.i.d. weights. [`run`] measures the
//! error against depth `N ∈ {2, 4, …}` and fits the log–log slopes.
//!
//! With i.i.d. weights the local errors of the layers have random signs: their sum is
//! `N·h²·m + √N·h²·σ` (`m` the mean, `σ` the spread of one layer's local error), so the
//! measured slope lies between −1.5 (while the random part dominates) and −1
//! (asymptotically). Measured with the defaults (`d = 16`, slopes over `N = 8 … 1024`):
//! Euler −0.99 (smooth), −0.99 (piecewise), −1.40 (i.i.d.); Heun −2.94, −2.00, −1.41.

use serde::{Deserialize, Serialize};

pub(crate) use super::profiles::{check_depths, random_input};
use super::profiles::{norm, ProfileSweep, WeightProfile};
use crate::grad::GradientMethod;
use crate::models::resnet::{ResNet, ResNetError, Scheme};

/// Settings of the reconstruction analysis (the default depths are `2, 4, …, 1024`).
pub type ReconstructionConfig = ProfileSweep;

/// The error at one depth.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReconstructionPoint {
    /// Depth `N`.
    pub depth: usize,
    /// `‖z − x̃₀‖ / ‖x̃₀‖`.
    pub relative_error: f64,
    /// `‖x_N − z‖ / ‖z‖`: how far the network moves its input (for scale).
    pub relative_displacement: f64,
}

/// The errors of one scheme and weight profile against depth.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReconstructionCurve {
    /// Euler or Heun.
    pub scheme: Scheme,
    /// Weight profile.
    pub profile: WeightProfile,
    /// One point per depth.
    pub points: Vec<ReconstructionPoint>,
    /// Log–log slope of the error against depth (over depths `≥ fit_from`).
    pub slope: Option<f64>,
}

/// Outcome of [`run`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReconstructionResult {
    /// Settings.
    pub config: ReconstructionConfig,
    /// One curve per scheme and profile.
    pub curves: Vec<ReconstructionCurve>,
}

/// Measures the reconstruction error for every scheme, profile and depth; `progress` is
/// called after each network with the number done and the total.
pub fn run(
    cfg: &ReconstructionConfig,
    progress: impl FnMut(usize, usize),
) -> Result<ReconstructionResult, ResNetError> {
    let z = cfg.input(77);
    let zn = norm(z.as_slice().iter().copied());
    let measure = |scheme, depth, field| {
        let mut net = ResNet::new(field, scheme, GradientMethod::Reversible, 0)?;
        let xn = net.infer(&z)?;
        let rec = net.reconstruct(&xn)?;
        let diff = norm(z.as_slice().iter().zip(rec.as_slice()).map(|(a, b)| a - b));
        let disp = norm(z.as_slice().iter().zip(xn.as_slice()).map(|(a, b)| a - b));
        Ok(ReconstructionPoint {
            depth,
            relative_error: diff / norm(rec.as_slice().iter().copied()),
            relative_displacement: disp / zn,
        })
    };
    let curves = cfg
        .sweep(measure, progress)?
        .into_iter()
        .map(|c| ReconstructionCurve {
            scheme: c.scheme,
            profile: c.profile,
            slope: cfg.slope(c.points.iter().map(|p| (p.depth, p.relative_error))),
            points: c.points,
        })
        .collect();
    Ok(ReconstructionResult {
        config: cfg.clone(),
        curves,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::resnet::profiles::ProfileModel;

    #[test]
    fn slopes_follow_the_local_error_orders() {
        let cfg = ReconstructionConfig {
            depths: vec![16, 32, 64, 128],
            model: ProfileModel {
                dim: 4,
                hidden: None,
                scale: 1.5,
                seed: 1,
            },
            batch: 8,
            fit_from: 16,
            ..Default::default()
        };
        let r = run(&cfg, |_, _| {}).unwrap();
        let slope = |s: Scheme, p: WeightProfile| {
            r.curves
                .iter()
                .find(|c| c.scheme == s && c.profile == p)
                .unwrap()
                .slope
                .unwrap()
        };
        for p in [
            WeightProfile::Smooth,
            WeightProfile::PiecewiseSmooth,
            WeightProfile::Iid,
        ] {
            let s = slope(Scheme::Euler, p);
            let lo = if p == WeightProfile::Iid { -1.6 } else { -1.2 };
            assert!((lo..-0.8).contains(&s), "euler {p:?}: {s}");
        }
        let s = slope(Scheme::Heun, WeightProfile::Smooth);
        assert!((-3.3..-2.7).contains(&s), "heun smooth: {s}");
        let s = slope(Scheme::Heun, WeightProfile::PiecewiseSmooth);
        assert!((-2.3..-1.7).contains(&s), "heun piecewise: {s}");
        let s = slope(Scheme::Heun, WeightProfile::Iid);
        assert!((-1.6..-0.8).contains(&s), "heun iid: {s}");
    }

    #[test]
    fn bad_depths_are_rejected() {
        let cfg = ReconstructionConfig {
            depths: vec![1, 2],
            ..Default::default()
        };
        assert!(run(&cfg, |_, _| {})
            .unwrap_err()
            .to_string()
            .contains("depth = 1"));
    }
}
