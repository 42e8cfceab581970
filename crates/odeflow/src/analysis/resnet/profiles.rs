//! Weights as functions of depth, for the reconstruction and gradient-quality analyses.
//!
//! Sander et al.'s error bounds for the reversible method depend on how the weights vary
//! with depth. A [`WeightProfile`] fixes a function `θ(t)`, `t ∈ [0, 1]`, once (seeded),
//! and the depth-`N` network takes `θ_n = θ(n/N)` — so networks of different depths
//! discretise the same continuous-depth model:
//!
//! * [`WeightProfile::Smooth`]: `θ(t) = s·(A + sin(πt)·B + t²·C)`, infinitely smooth;
//! * [`WeightProfile::PiecewiseSmooth`]: the same plus a jump `s·J` for `t ≥ 1/2`;
//! * [`WeightProfile::Iid`]: `θ_n = s·A_n` drawn independently per layer (no limit as
//!   `N → ∞`; `θ_{n+1} − θ_n = O(1)`).
//!
//! `A, B, C, J, A_n` are PyTorch-default draws of the residual function (`U(±1/√fan_in)`
//! per entry) and `s` is a scale.
//!
//! A [`ProfileSweep`] holds the settings both analyses share — depths, schemes, profiles,
//! the residual functions, the batch and where slopes are fitted — and runs the loop over
//! every (scheme, profile, depth) network ([`ProfileSweep::sweep`]); each analysis supplies
//! only its measurement of one network. Helpers: log–log slope fits and Euclidean norms.

use serde::{Deserialize, Serialize};

use crate::data::derive_seed;
use crate::error::ArgError;
use crate::models::depth_field::{DepthField, Tying};
use crate::models::resnet::{mlp_residual, ResNetError, Scheme};
use crate::nn::{Activation, Init, NnError, Sequential};
use crate::state::Batch;

/// How the weights vary with depth (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WeightProfile {
    /// `θ(t)` infinitely differentiable.
    Smooth,
    /// Smooth with one jump at `t = 1/2`.
    PiecewiseSmooth,
    /// Independent layers.
    Iid,
}

impl WeightProfile {
    /// `smooth`, `piecewise` or `iid`.
    pub fn from_name(name: &str) -> Result<Self, ArgError> {
        match name {
            "smooth" => Ok(Self::Smooth),
            "piecewise" | "piecewise-smooth" => Ok(Self::PiecewiseSmooth),
            "iid" => Ok(Self::Iid),
            _ => Err(ArgError::Unknown {
                kind: "weight profile",
                name: name.into(),
                known: "smooth, piecewise, iid".into(),
            }),
        }
    }

    /// The profile's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Smooth => "smooth",
            Self::PiecewiseSmooth => "piecewise",
            Self::Iid => "iid",
        }
    }
}

/// The residual functions the profiles are applied to: `f(x) = tanh(W x + b)` on `dim`
/// features, or `W₂ tanh(W₁ x + b₁) + b₂` with `hidden` units.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProfileModel {
    /// Features `d`.
    pub dim: usize,
    /// Hidden units of a two-layer residual function (`None`: one layer).
    pub hidden: Option<usize>,
    /// Scale `s` of the weights.
    pub scale: f64,
    /// Seed of the draws `A, B, C, J, A_n`.
    pub seed: u64,
}

impl ProfileModel {
    /// The residual function's network.
    pub fn network(&self) -> Result<Sequential<f64>, NnError> {
        if self.dim == 0 {
            return Err(NnError::invalid("dim", 0, "must be at least 1"));
        }
        if !(self.scale.is_finite() && self.scale >= 0.0) {
            return Err(NnError::invalid(
                "scale",
                self.scale,
                "must be finite and ≥ 0",
            ));
        }
        mlp_residual(self.dim, self.hidden, Activation::Tanh)
    }

    /// The depth-`depth` field with `θ_n = θ(n/N)` for `profile`.
    pub fn field(&self, profile: WeightProfile, depth: usize) -> Result<DepthField<f64>, NnError> {
        let net = self.network()?;
        let draw =
            |stream: u64| net.init_params(&Init::PyTorchDefault, derive_seed(self.seed, stream));
        let (a, b, c, j) = (draw(0), draw(1), draw(2), draw(3));
        let s = self.scale;
        let mut params = Vec::with_capacity(depth * a.len());
        for n in 0..depth {
            let t = n as f64 / depth as f64;
            match profile {
                WeightProfile::Iid => {
                    let an = draw(1000 + n as u64);
                    params.extend(an.iter().map(|v| s * v));
                }
                WeightProfile::Smooth | WeightProfile::PiecewiseSmooth => {
                    let jump = if profile == WeightProfile::PiecewiseSmooth && t >= 0.5 {
                        1.0
                    } else {
                        0.0
                    };
                    let (st, t2) = ((std::f64::consts::PI * t).sin(), t * t);
                    for i in 0..a.len() {
                        params.push(s * (a[i] + st * b[i] + t2 * c[i] + jump * j[i]));
                    }
                }
            }
        }
        DepthField::with_params(net, depth, Tying::Untied, params)
    }
}

/// Settings of a sweep over the networks of [`ProfileModel`] for several schemes, weight
/// profiles and depths (the reconstruction and gradient analyses).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProfileSweep {
    /// Depths `N` (at least the schemes' minimum).
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

impl Default for ProfileSweep {
    /// Depths `2, 4, …, 1024`, Euler and Heun, every profile, `d = 16`, scale 1.5, seed 0,
    /// batch 64, slopes over `N ≥ 8`.
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

/// The measurements of one scheme and weight profile, one per depth (in the order of
/// [`ProfileSweep::depths`]).
#[derive(Debug, Clone, PartialEq)]
pub struct SweepCurve<P> {
    /// Euler or Heun.
    pub scheme: Scheme,
    /// Weight profile.
    pub profile: WeightProfile,
    /// One measurement per depth.
    pub points: Vec<P>,
}

impl ProfileSweep {
    /// Checks depths and sizes.
    pub fn validate(&self) -> Result<(), ArgError> {
        check_depths(&self.depths, &self.schemes)?;
        if self.batch == 0 {
            return Err(ArgError::invalid("batch", 0, "must be at least 1"));
        }
        Ok(())
    }

    /// A seeded uniform batch in `[−1, 1]` of `batch × dim`, from the model's seed and
    /// `stream` (different streams give independent batches).
    pub fn input(&self, stream: u64) -> Batch<f64> {
        random_input(
            self.batch,
            self.model.dim,
            derive_seed(self.model.seed, stream),
        )
    }

    /// Validates the settings, then calls `measure(scheme, depth, field)` for every scheme,
    /// profile and depth (depth innermost), `field` holding the depth-`depth` weights of
    /// the profile; `progress` is called after each network with the number done and the
    /// total. Returns one curve per scheme and profile, schemes outermost.
    pub fn sweep<P>(
        &self,
        mut measure: impl FnMut(Scheme, usize, DepthField<f64>) -> Result<P, ResNetError>,
        mut progress: impl FnMut(usize, usize),
    ) -> Result<Vec<SweepCurve<P>>, ResNetError> {
        self.validate()?;
        let total = self.schemes.len() * self.profiles.len() * self.depths.len();
        let mut done = 0;
        let mut curves = Vec::with_capacity(self.schemes.len() * self.profiles.len());
        for &scheme in &self.schemes {
            for &profile in &self.profiles {
                let mut points = Vec::with_capacity(self.depths.len());
                for &depth in &self.depths {
                    let field = self.model.field(profile, depth)?;
                    points.push(measure(scheme, depth, field)?);
                    done += 1;
                    progress(done, total);
                }
                curves.push(SweepCurve {
                    scheme,
                    profile,
                    points,
                });
            }
        }
        Ok(curves)
    }

    /// The log–log slope of `(depth, value)` points over the depths `≥ fit_from`.
    pub fn slope(&self, points: impl IntoIterator<Item = (usize, f64)>) -> Option<f64> {
        let (xs, ys): (Vec<f64>, Vec<f64>) = points.into_iter().map(|(d, y)| (d as f64, y)).unzip();
        loglog_slope_from(&xs, &ys, self.fit_from as f64)
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

/// A seeded uniform batch in `[−1, 1]`.
pub(crate) fn random_input(rows: usize, cols: usize, seed: u64) -> Batch<f64> {
    use rand::RngExt;
    let mut rng = crate::data::seeded_rng(seed);
    let data = (0..rows * cols)
        .map(|_| rng.random_range(-1.0..1.0))
        .collect();
    Batch::from_vec(rows, cols, data).expect("sized")
}

/// Least-squares slope and intercept of `y` against `x`; `None` with fewer than two points
/// or when all `x` are equal.
pub fn linear_fit(pts: &[(f64, f64)]) -> Option<(f64, f64)> {
    crate::stats::linear_fit(pts).map(|f| (f.slope, f.intercept))
}

/// Least-squares slope of `log y` against `log x` over the points with positive, finite
/// coordinates; `None` with fewer than two such points.
pub fn loglog_slope(xs: &[f64], ys: &[f64]) -> Option<f64> {
    let pts: Vec<(f64, f64)> = xs
        .iter()
        .zip(ys)
        .filter(|(x, y)| **x > 0.0 && **y > 0.0 && x.is_finite() && y.is_finite())
        .map(|(x, y)| (x.ln(), y.ln()))
        .collect();
    linear_fit(&pts).map(|(slope, _)| slope)
}

/// The slope fitted over the points with `x ≥ from`.
pub fn loglog_slope_from(xs: &[f64], ys: &[f64], from: f64) -> Option<f64> {
    let (x, y): (Vec<f64>, Vec<f64>) = xs
        .iter()
        .zip(ys)
        .filter(|(x, _)| **x >= from)
        .map(|(x, y)| (*x, *y))
        .unzip();
    loglog_slope(&x, &y)
}

/// Euclidean norm, accumulated in `f64`.
pub fn norm(x: impl IntoIterator<Item = f64>) -> f64 {
    x.into_iter().map(|v| v * v).sum::<f64>().sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::field::Parameterized;

    #[test]
    fn slopes_of_power_laws() {
        let xs = [2.0, 4.0, 8.0, 16.0];
        let ys: Vec<f64> = xs.iter().map(|x: &f64| 3.0 * x.powf(-1.5)).collect();
        assert!((loglog_slope(&xs, &ys).unwrap() + 1.5).abs() < 1e-12);
        assert!((loglog_slope_from(&xs, &ys, 4.0).unwrap() + 1.5).abs() < 1e-12);
        assert!(loglog_slope(&[1.0], &[1.0]).is_none());
        assert!(loglog_slope(&[1.0, 2.0], &[0.0, 1.0]).is_none());
        let (slope, intercept) = linear_fit(&[(1.0, 5.0), (3.0, 11.0), (4.0, 14.0)]).unwrap();
        assert!((slope - 3.0).abs() < 1e-12 && (intercept - 2.0).abs() < 1e-12);
        assert!(linear_fit(&[(2.0, 1.0), (2.0, 3.0)]).is_none());
    }

    #[test]
    fn a_sweep_visits_every_network_in_order_and_validates_first() {
        let cfg = ProfileSweep {
            depths: vec![2, 4],
            profiles: vec![WeightProfile::Smooth, WeightProfile::Iid],
            model: ProfileModel {
                dim: 2,
                hidden: None,
                scale: 1.0,
                seed: 3,
            },
            batch: 2,
            ..Default::default()
        };
        let mut calls = Vec::new();
        let curves = cfg
            .sweep(
                |scheme, depth, field| Ok((scheme, depth, field.num_params())),
                |done, total| calls.push((done, total)),
            )
            .unwrap();
        assert_eq!(calls, (1..=8).map(|k| (k, 8)).collect::<Vec<_>>());
        let order: Vec<_> = curves.iter().map(|c| (c.scheme, c.profile)).collect();
        assert_eq!(
            order,
            [
                (Scheme::Euler, WeightProfile::Smooth),
                (Scheme::Euler, WeightProfile::Iid),
                (Scheme::Heun, WeightProfile::Smooth),
                (Scheme::Heun, WeightProfile::Iid),
            ]
        );
        for c in &curves {
            // tanh(Wx + b) on 2 features: 6 parameters per layer.
            assert_eq!(c.points, [(c.scheme, 2, 12), (c.scheme, 4, 24)]);
        }
        assert_eq!(cfg.input(5), cfg.input(5));
        assert_ne!(cfg.input(5), cfg.input(6));
        let slope = cfg.slope([(4, 1.0), (8, 0.25), (16, 1.0 / 16.0)]);
        assert!((slope.unwrap() + 2.0).abs() < 1e-12);
        // fit_from = 8 leaves out depth 4.
        let slope = cfg.slope([(4, 1.0), (8, 0.5), (16, 0.125)]);
        assert!((slope.unwrap() + 2.0).abs() < 1e-12);
        let empty = ProfileSweep {
            batch: 0,
            ..cfg.clone()
        };
        let err = empty.sweep(|_, _, _| Ok(()), |_, _| {}).unwrap_err();
        assert!(err.to_string().contains("batch = 0"), "{err}");
        let shallow = ProfileSweep {
            depths: vec![1],
            ..cfg
        };
        let err = shallow
            .sweep(
                |_, _, _| -> Result<(), _> { panic!("not validated") },
                |_, _| {},
            )
            .unwrap_err();
        assert!(err.to_string().contains("depth = 1"), "{err}");
    }

    #[test]
    fn profiles_sample_one_function_of_depth() {
        let m = ProfileModel {
            dim: 3,
            hidden: None,
            scale: 1.0,
            seed: 4,
        };
        let f8 = m.field(WeightProfile::Smooth, 8).unwrap();
        let f16 = m.field(WeightProfile::Smooth, 16).unwrap();
        // θ(n/8) = θ(2n/16).
        for n in 0..8 {
            assert_eq!(f8.layer_params(n), f16.layer_params(2 * n));
        }
        // Smooth: neighbouring layers differ by O(1/N); piecewise: one O(1) jump.
        let (max8, _) = f8.smoothness();
        let (max16, _) = f16.smoothness();
        assert!((max16 / max8 - 1.0).abs() < 0.3, "{max8} {max16}");
        let p = m.field(WeightProfile::PiecewiseSmooth, 64).unwrap();
        let (pmax, _) = p.smoothness();
        assert!(pmax > 5.0 * m.field(WeightProfile::Smooth, 64).unwrap().smoothness().0);
        let iid = m.field(WeightProfile::Iid, 16).unwrap();
        assert_eq!(iid.num_params(), 16 * 12);
        assert!(iid.smoothness().0 > 4.0 * max16);
    }
}
