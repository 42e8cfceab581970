//! Quality of the memory-free gradient against depth (Sander, Ablin, Peyré 2022, §3).
//!
//! For the same weights the gradient of `L = ‖x_N − y‖²/(2B)` (batch of `B`, random
//! target `y`) is computed twice: by backprop (`g_bp`, exact) and by the reversible method
//! (`g_rev`, reconstructed activations). Per weight tensor (all layers' copies of it
//! together), for all parameters and for `∂L/∂x₀`:
//!
//! * `rel_mse = mean((g_bp − g_rev)²) / mean(g_bp²)`, the squared relative error, and its
//!   square root `rel_err = ‖g_bp − g_rev‖ / ‖g_bp‖`;
//! * the cosine similarity `⟨g_bp, g_rev⟩ / (‖g_bp‖ ‖g_rev‖)`.
//!
//! The paper bounds `rel_err` by `O(1/N)` for Euler and, when the weights are smooth in
//! depth, `O(1/N²)` for Heun; `rel_mse` falls twice as fast in the log–log plot. Measured
//! with [`super::profiles`]: Euler has slope −1 for every profile; Heun has slope −3 for
//! `C^∞` weights (the even-order cancellation of the reconstruction's local errors, see
//! [`super::reconstruction`]; −2 is an upper bound), −2 for piecewise-smooth weights and
//! between −1.5 and −1 for i.i.d. weights (random-sign local errors partly cancel before
//! the systematic part dominates). With the defaults (`d = 16`, slopes over
//! `N = 8 … 1024`): Euler −1.01 (smooth), −1.00 (piecewise), −1.45 (i.i.d.); Heun −2.94,
//! −2.01, −1.45.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::profiles::{norm, ProfileSweep, WeightProfile};
use crate::field::{Parameterized, VectorField};
use crate::grad::GradientMethod;
use crate::models::depth_field::DepthField;
use crate::models::resnet::{ResNet, ResNetError, Scheme};
use crate::state::Batch;

/// Settings of the gradient analysis (the default depths are `2, 4, …, 1024`).
pub type GradientConfig = ProfileSweep;

/// The comparison of one gradient block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GradError {
    /// `mean((g_bp − g_rev)²) / mean(g_bp²)`.
    pub rel_mse: f64,
    /// `‖g_bp − g_rev‖ / ‖g_bp‖` (the square root of `rel_mse`).
    pub rel_err: f64,
    /// Cosine similarity of the two gradients (clamped to `[−1, 1]` against rounding).
    pub cosine: f64,
}

impl GradError {
    /// Compares `approx` with `exact`.
    pub fn between(exact: &[f64], approx: &[f64]) -> Self {
        let d = norm(exact.iter().zip(approx).map(|(a, b)| a - b));
        let (ne, na) = (norm(exact.iter().copied()), norm(approx.iter().copied()));
        let dot: f64 = exact.iter().zip(approx).map(|(a, b)| a * b).sum();
        let rel_err = if ne > 0.0 {
            d / ne
        } else if d == 0.0 {
            0.0
        } else {
            f64::INFINITY
        };
        Self {
            rel_mse: rel_err * rel_err,
            rel_err,
            cosine: if ne > 0.0 && na > 0.0 {
                (dot / (ne * na)).clamp(-1.0, 1.0)
            } else {
                1.0
            },
        }
    }
}

/// The errors at one depth.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GradientPoint {
    /// Depth `N`.
    pub depth: usize,
    /// All parameters.
    pub params: GradError,
    /// `∂L/∂x₀`.
    pub input: GradError,
    /// Per weight tensor (e.g. `"0.weight"`), every layer's copy together.
    pub tensors: BTreeMap<String, GradError>,
}

/// One scheme and weight profile against depth.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GradientCurve {
    /// Euler or Heun.
    pub scheme: Scheme,
    /// Weight profile.
    pub profile: WeightProfile,
    /// One point per depth.
    pub points: Vec<GradientPoint>,
    /// Log–log slope of `rel_err` (all parameters) against depth.
    pub slope_rel_err: Option<f64>,
    /// Log–log slope of `rel_mse` (all parameters): twice `slope_rel_err`.
    pub slope_rel_mse: Option<f64>,
    /// Log–log slope of `rel_err` of `∂L/∂x₀`.
    pub slope_input: Option<f64>,
    /// At the largest depth: `rel_err` of each layer's parameters (where the error sits).
    pub per_layer_at_max_depth: Vec<f64>,
}

/// Outcome of [`run`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GradientResult {
    /// Settings.
    pub config: GradientConfig,
    /// One curve per scheme and profile.
    pub curves: Vec<GradientCurve>,
}

/// `(∂L/∂θ, ∂L/∂x₀)` by `grad` for the loss of the module docs.
fn gradient(
    net: &mut ResNet<f64>,
    x0: &Batch<f64>,
    target: &Batch<f64>,
) -> Result<(Vec<f64>, Vec<f64>), ResNetError> {
    let xn = net.forward(x0)?.clone();
    let b = x0.rows().max(1) as f64;
    let data = xn
        .as_slice()
        .iter()
        .zip(target.as_slice())
        .map(|(a, y)| (a - y) / b)
        .collect();
    let cot = Batch::from_vec(xn.rows(), xn.cols(), data).expect("sized");
    let mut g = net.field().zero_grad();
    let gx = net.backward(&cot, &mut g)?;
    Ok((g, gx.into_vec()))
}

/// The errors of one network of depth `depth` and, with `per_layer`, the `rel_err` of each
/// layer's parameters.
fn measure(
    scheme: Scheme,
    depth: usize,
    field: DepthField<f64>,
    (x0, target): (&Batch<f64>, &Batch<f64>),
    per_layer: bool,
) -> Result<(GradientPoint, Option<Vec<f64>>), ResNetError> {
    let views = field.param_views();
    let per_fn = field.params_per_function();
    let mut bp = ResNet::new(field.clone(), scheme, GradientMethod::Backprop, 0)?;
    let mut rev = ResNet::new(field, scheme, GradientMethod::Reversible, 0)?;
    let (gb, xb) = gradient(&mut bp, x0, target)?;
    let (gr, xr) = gradient(&mut rev, x0, target)?;
    let mut tensors: BTreeMap<String, (Vec<f64>, Vec<f64>)> = BTreeMap::new();
    for v in &views {
        let key = v.name.splitn(3, '.').nth(2).unwrap_or(&v.name).to_string();
        let e = tensors.entry(key).or_default();
        e.0.extend_from_slice(&gb[v.range()]);
        e.1.extend_from_slice(&gr[v.range()]);
    }
    let layers = per_layer.then(|| {
        (0..depth)
            .map(|n| {
                let r = n * per_fn..(n + 1) * per_fn;
                GradError::between(&gb[r.clone()], &gr[r]).rel_err
            })
            .collect()
    });
    let point = GradientPoint {
        depth,
        params: GradError::between(&gb, &gr),
        input: GradError::between(&xb, &xr),
        tensors: tensors
            .into_iter()
            .map(|(k, (a, b))| (k, GradError::between(&a, &b)))
            .collect(),
    };
    Ok((point, layers))
}

/// Compares reversible with backprop gradients for every scheme, profile and depth;
/// `progress` is called after each depth with the number done and the total.
pub fn run(
    cfg: &GradientConfig,
    progress: impl FnMut(usize, usize),
) -> Result<GradientResult, ResNetError> {
    let x0 = cfg.input(78);
    let target = cfg.input(79);
    let max_depth = cfg.depths.iter().copied().max().unwrap_or(0);
    let sweep = cfg.sweep(
        |scheme, depth, field| measure(scheme, depth, field, (&x0, &target), depth == max_depth),
        progress,
    )?;
    let curves = sweep
        .into_iter()
        .map(|c| {
            let (points, layers): (Vec<GradientPoint>, Vec<_>) = c.points.into_iter().unzip();
            let slope =
                |f: fn(&GradientPoint) -> f64| cfg.slope(points.iter().map(|p| (p.depth, f(p))));
            GradientCurve {
                scheme: c.scheme,
                profile: c.profile,
                slope_rel_err: slope(|p| p.params.rel_err),
                slope_rel_mse: slope(|p| p.params.rel_mse),
                slope_input: slope(|p| p.input.rel_err),
                per_layer_at_max_depth: layers.into_iter().flatten().last().unwrap_or_default(),
                points,
            }
        })
        .collect();
    Ok(GradientResult {
        config: cfg.clone(),
        curves,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::resnet::profiles::ProfileModel;

    #[test]
    fn reversible_gradient_errors_fall_at_the_expected_rates() {
        let cfg = GradientConfig {
            depths: vec![16, 32, 64, 128],
            model: ProfileModel {
                dim: 4,
                hidden: Some(6),
                scale: 1.5,
                seed: 2,
            },
            batch: 8,
            fit_from: 16,
            ..Default::default()
        };
        let r = run(&cfg, |_, _| {}).unwrap();
        let curve = |s: Scheme, p: WeightProfile| {
            r.curves
                .iter()
                .find(|c| c.scheme == s && c.profile == p)
                .unwrap()
        };
        for (p, lo) in [(WeightProfile::Smooth, -1.25), (WeightProfile::Iid, -1.7)] {
            let c = curve(Scheme::Euler, p);
            let s = c.slope_rel_err.unwrap();
            assert!((lo..-0.75).contains(&s), "euler {p:?}: {s}");
            assert!((c.slope_rel_mse.unwrap() - 2.0 * s).abs() < 1e-9);
        }
        let s = curve(Scheme::Heun, WeightProfile::Smooth)
            .slope_rel_err
            .unwrap();
        assert!((-3.4..-2.6).contains(&s), "heun smooth: {s}");
        let s = curve(Scheme::Heun, WeightProfile::PiecewiseSmooth)
            .slope_rel_err
            .unwrap();
        assert!((-2.4..-1.6).contains(&s), "heun piecewise: {s}");
        let s = curve(Scheme::Heun, WeightProfile::Iid)
            .slope_rel_err
            .unwrap();
        assert!((-1.7..-0.8).contains(&s), "heun iid: {s}");
        // Deep networks: gradients almost aligned; names per tensor.
        let last = curve(Scheme::Euler, WeightProfile::Smooth)
            .points
            .last()
            .unwrap();
        assert!(last.params.cosine > 0.99, "{:?}", last.params);
        let names: Vec<&String> = last.tensors.keys().collect();
        assert_eq!(names, ["0.bias", "0.weight", "2.bias", "2.weight"]);
        assert_eq!(
            curve(Scheme::Euler, WeightProfile::Iid)
                .per_layer_at_max_depth
                .len(),
            128
        );
    }

    #[test]
    fn identical_gradients_have_zero_error_and_unit_cosine() {
        let e = GradError::between(&[1.0, -2.0], &[1.0, -2.0]);
        assert_eq!((e.rel_mse, e.rel_err), (0.0, 0.0));
        assert!((e.cosine - 1.0).abs() < 1e-15);
        let e = GradError::between(&[1.0, 0.0], &[0.0, 1.0]);
        assert!((e.rel_err - 2f64.sqrt()).abs() < 1e-15 && e.cosine.abs() < 1e-15);
    }
}
