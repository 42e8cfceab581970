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

use super::profiles::{loglog_slope_from, norm, ProfileModel, WeightProfile};
use crate::data::derive_seed;
use crate::error::ArgError;
use crate::grad::GradientMethod;
use crate::models::resnet::{ResNet, ResNetError, Scheme};
use crate::state::Batch;

/// Settings of the reconstruction analysis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReconstructionConfig {
    /// Depths `N` (at least the scheme's minimum).
    pub depths: Vec<usize>,
    /// Schemes to compare.
    pub schemes: Vec<Scheme>,
    /// Weight profiles to compare.
    pub profiles: Vec<WeightProfile>,
    /// The residual functions.
    pub model: ProfileModel,
    /// Samples in the input batch.
    pub batch: usize,
    /// Slopes are fitted over depths `≥ fit_from`.
    pub fit_from: usize,
}

impl Default for ReconstructionConfig {
    fn default() -> Self {
        Self {
            depths: (1..=10).map(|k| 1 << k).collect(),
            schemes: vec![Scheme::Euler, Scheme::Heun],
            profiles: vec![
                WeightProfile::Smooth,
                WeightProfile::PiecewiseSmooth,
                WeightProfile::Iid,
            ],
            model: ProfileModel {
                dim: 16,
                hidden: None,
                scale: 1.5,
                seed: 0,
            },
            batch: 64,
            fit_from: 8,
        }
    }
}

impl ReconstructionConfig {
    /// Checks depths and sizes.
    pub fn validate(&self) -> Result<(), ArgError> {
        check_depths(&self.depths, &self.schemes)?;
        if self.batch == 0 {
            return Err(ArgError::invalid("batch", 0, "must be at least 1"));
        }
        Ok(())
    }
}

/// Rejects an empty depth list or a depth too small for one of the schemes.
pub(crate) fn check_depths(depths: &[usize], schemes: &[Scheme]) -> Result<(), ArgError> {
    if depths.is_empty() {
        return Err(ArgError::invalid("depths", "[]", "give at least one depth"));
    }
    if schemes.is_empty() {
        return Err(ArgError::invalid(
            "schemes",
            "[]",
            "give at least one scheme",
        ));
    }
    let need = schemes.iter().map(|s| s.min_depth()).max().unwrap_or(1);
    if let Some(&d) = depths.iter().find(|&&d| d < need) {
        return Err(ArgError::invalid(
            "depth",
            d,
            format!("must be at least {need} (Heun needs two functions)"),
        ));
    }
    Ok(())
}

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

/// A seeded uniform batch in `[−1, 1]`.
pub(crate) fn random_input(rows: usize, cols: usize, seed: u64) -> Batch<f64> {
    use rand::RngExt;
    let mut rng = crate::data::seeded_rng(seed);
    let data = (0..rows * cols)
        .map(|_| rng.random_range(-1.0..1.0))
        .collect();
    Batch::from_vec(rows, cols, data).expect("sized")
}

/// Measures the reconstruction error for every scheme, profile and depth; `progress` is
/// called after each network with the number done and the total.
pub fn run(
    cfg: &ReconstructionConfig,
    mut progress: impl FnMut(usize, usize),
) -> Result<ReconstructionResult, ResNetError> {
    cfg.validate()?;
    let z = random_input(cfg.batch, cfg.model.dim, derive_seed(cfg.model.seed, 77));
    let total = cfg.schemes.len() * cfg.profiles.len() * cfg.depths.len();
    let mut done = 0;
    let mut curves = Vec::new();
    for &scheme in &cfg.schemes {
        for &profile in &cfg.profiles {
            let mut points = Vec::new();
            for &depth in &cfg.depths {
                let field = cfg.model.field(profile, depth)?;
                let mut net = ResNet::new(field, scheme, GradientMethod::Reversible, 0)?;
                let xn = net.infer(&z)?;
                let rec = net.reconstruct(&xn)?;
                let diff = norm(z.as_slice().iter().zip(rec.as_slice()).map(|(a, b)| a - b));
                let disp = norm(z.as_slice().iter().zip(xn.as_slice()).map(|(a, b)| a - b));
                let zn = norm(z.as_slice().iter().copied());
                points.push(ReconstructionPoint {
                    depth,
                    relative_error: diff / norm(rec.as_slice().iter().copied()),
                    relative_displacement: disp / zn,
                });
                done += 1;
                progress(done, total);
            }
            let xs: Vec<f64> = points.iter().map(|p| p.depth as f64).collect();
            let ys: Vec<f64> = points.iter().map(|p| p.relative_error).collect();
            curves.push(ReconstructionCurve {
                scheme,
                profile,
                slope: loglog_slope_from(&xs, &ys, cfg.fit_from as f64),
                points,
            });
        }
    }
    Ok(ReconstructionResult {
        config: cfg.clone(),
        curves,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
