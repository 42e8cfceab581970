//! Branch-free `f32` transcendental kernels and the SIMD slice loops of the activations.
//!
//! The `f32` kernels follow Cephes (S. L. Moshier) and are written without branches so
//! LLVM vectorises the slice loops; the loops are compiled for AVX-512, AVX2+FMA and SSE4.1
//! and chosen at run time by `multiversion`.
//!
//! * `exp`: `x = n·ln2 + r` with `|r| ≤ ln2/2` (ln2 split in two parts for an exact
//!   product), a degree-7 polynomial for `eʳ`, and `2ⁿ` assembled in the exponent bits.
//!   Inputs are clamped to `[−87.3, 88]`, so no overflow reaches the bit trick.
//! * `log` (for `x > 0`): `x = m·2ᵉ` with `m ∈ [√½, √2)`, a degree-9 polynomial in `m − 1`.
//! * `tanh`: Cephes' odd polynomial `x + x³P(x²)` for `|x| < 0.625`, otherwise
//!   `sign(x)·(1 − 2/(e^{2|x|} + 1))` (no cancellation there since `|tanh x| > 0.55`).
//! * `sigmoid`: `1/(1 + e^{−x})`, accurate in relative terms at both tails.
//! * `softplus`: `max(x, 0) + log1p(e^{−|x|})` with Kahan's `log1p(u) = log(w)·u/(w − 1)`,
//!   `w = 1 + u`.
//!
//! The tests measure the maximum relative error against `f64` references (about 2·10⁻⁷).
//! `f64` activations use the standard library's correctly rounded-or-nearly functions: the
//! gradient checks in `f64` need ~1e-15 accuracy, and `f64` is the checking precision, not
//! the training one.

use multiversion::multiversion;

const LOG2E: f32 = std::f32::consts::LOG2_E;
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;

/// `eˣ` (relative error ≈ 1 ulp for `x ∈ [−87.3, 88]`; clamped outside).
#[inline(always)]
pub(crate) fn exp_f32(x: f32) -> f32 {
    let x = x.clamp(-87.3, 88.0);
    let fx = (x * LOG2E + 0.5).floor();
    let r = x - fx * LN2_HI - fx * LN2_LO;
    let z = r * r;
    let p = (((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2)
        * r
        + 1.666_666_5e-1)
        * r
        + 5e-1)
        * z
        + r
        + 1.0;
    // fx + 127 ∈ [1, 254] is an exact integer; adding 2²³ puts it in the low mantissa bits.
    let biased = (fx + (127.0 + 8_388_608.0)).to_bits();
    p * f32::from_bits(biased << 23)
}

/// `ln x` for positive normal `x`.
#[inline(always)]
pub(crate) fn log_f32(x: f32) -> f32 {
    let bits = x.to_bits();
    let e = ((bits >> 23) & 0xff) as i32 as f32 - 126.0;
    let m = f32::from_bits((bits & 0x007f_ffff) | 0x3f00_0000); // m ∈ [0.5, 1)
    let small = m < std::f32::consts::FRAC_1_SQRT_2;
    let e = if small { e - 1.0 } else { e };
    let u = if small { m + m - 1.0 } else { m - 1.0 };
    let z = u * u;
    let mut y = ((((((((7.037_683_6e-2 * u - 1.151_461e-1) * u + 1.167_699_9e-1) * u
        - 1.242_014_1e-1)
        * u
        + 1.424_932_3e-1)
        * u
        - 1.666_805_8e-1)
        * u
        + 2.000_071_4e-1)
        * u
        - 2.499_999_4e-1)
        * u
        + 3.333_333e-1)
        * u
        * z;
    y += e * LN2_LO;
    y += -0.5 * z;
    u + y + e * LN2_HI
}

/// `tanh x`.
#[inline(always)]
pub(crate) fn tanh_f32(x: f32) -> f32 {
    let a = x.abs();
    let z = x * x;
    let small =
        ((((-5.704_988_7e-3 * z + 2.063_909e-2) * z - 5.373_971_6e-2) * z + 1.333_144_2e-1) * z
            - 3.333_328e-1)
            * z
            * x
            + x;
    let e = exp_f32((a + a).min(20.0));
    let big = (1.0 - 2.0 / (e + 1.0)).copysign(x);
    // NaN fails the comparison and takes the polynomial branch, which propagates it.
    if a >= 0.625 {
        big
    } else {
        small
    }
}

/// `1 / (1 + e^{−x})`.
#[inline(always)]
pub(crate) fn sigmoid_f32(x: f32) -> f32 {
    1.0 / (1.0 + exp_f32(-x))
}

/// `ln(1 + eˣ)`.
#[inline(always)]
pub(crate) fn softplus_f32(x: f32) -> f32 {
    let u = exp_f32(-x.abs());
    let w = 1.0 + u;
    let d = w - 1.0;
    let l = if d == 0.0 { u } else { log_f32(w) * (u / d) };
    if x > 0.0 {
        x + l
    } else {
        l
    }
}

/// Generates a multiversioned `fn name(x: &[T], y: &mut [T])` applying `f` elementwise.
macro_rules! unary_loop {
    ($name:ident, $t:ty, $f:expr) => {
        #[multiversion(targets(
            "x86_64+avx512f+avx512bw+avx512cd+avx512dq+avx512vl+avx2+fma",
            "x86_64+avx2+fma",
            "x86_64+sse4.1"
        ))]
        pub(crate) fn $name(x: &[$t], y: &mut [$t]) {
            let f = $f;
            let n = y.len();
            let x = &x[..n];
            for i in 0..n {
                y[i] = f(x[i]);
            }
        }
    };
}

/// Generates a multiversioned `fn name(x: &[T], y: &[T], gy: &[T], gx: &mut [T])` applying
/// `f(x, y, gy)` elementwise.
macro_rules! backward_loop {
    ($name:ident, $t:ty, $f:expr) => {
        #[multiversion(targets(
            "x86_64+avx512f+avx512bw+avx512cd+avx512dq+avx512vl+avx2+fma",
            "x86_64+avx2+fma",
            "x86_64+sse4.1"
        ))]
        pub(crate) fn $name(x: &[$t], y: &[$t], gy: &[$t], gx: &mut [$t]) {
            let f = $f;
            let n = gx.len();
            let (x, y, gy) = (&x[..n], &y[..n], &gy[..n]);
            for i in 0..n {
                gx[i] = f(x[i], y[i], gy[i]);
            }
        }
    };
}

unary_loop!(tanh_slice_f32, f32, tanh_f32);
unary_loop!(sigmoid_slice_f32, f32, sigmoid_f32);
unary_loop!(softplus_slice_f32, f32, softplus_f32);
unary_loop!(silu_slice_f32, f32, |x: f32| x * sigmoid_f32(x));
unary_loop!(relu_slice_f32, f32, |x: f32| if x < 0.0 { 0.0 } else { x });
unary_loop!(relu_slice_f64, f64, |x: f64| if x < 0.0 { 0.0 } else { x });

backward_loop!(relu_back_f32, f32, |x: f32, _y: f32, g: f32| if x > 0.0 {
    g
} else {
    0.0
});
backward_loop!(relu_back_f64, f64, |x: f64, _y: f64, g: f64| if x > 0.0 {
    g
} else {
    0.0
});
backward_loop!(tanh_back_f32, f32, |_x: f32, y: f32, g: f32| g
    * (1.0 - y * y));
backward_loop!(tanh_back_f64, f64, |_x: f64, y: f64, g: f64| g
    * (1.0 - y * y));
backward_loop!(sigmoid_back_f32, f32, |_x: f32, y: f32, g: f32| g
    * y
    * (1.0 - y));
backward_loop!(sigmoid_back_f64, f64, |_x: f64, y: f64, g: f64| g
    * y
    * (1.0 - y));
backward_loop!(softplus_back_f32, f32, |x: f32, _y: f32, g: f32| g
    * sigmoid_f32(x));
backward_loop!(silu_back_f32, f32, |x: f32, _y: f32, g: f32| {
    let s = sigmoid_f32(x);
    g * s * (1.0 + x * (1.0 - s))
});

/// `σ(x)` in `f64`, stable at both tails.
#[inline]
pub(crate) fn sigmoid_f64(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// `ln(1 + eˣ)` in `f64`.
#[inline]
pub(crate) fn softplus_f64(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Max relative error of `f` against `reference` on a fine grid of `[lo, hi]`, with the
    /// error measured relative to `max(|ref|, floor)`.
    fn max_rel_err(
        f: impl Fn(f32) -> f32,
        reference: impl Fn(f64) -> f64,
        lo: f64,
        hi: f64,
        floor: f64,
    ) -> (f64, f64) {
        let n = 400_001;
        let mut worst = (0.0, lo);
        for i in 0..n {
            let x = (lo + (hi - lo) * i as f64 / (n - 1) as f64) as f32;
            let want = reference(x as f64);
            let got = f(x) as f64;
            let e = (got - want).abs() / want.abs().max(floor);
            if e > worst.0 {
                worst = (e, x as f64);
            }
        }
        worst
    }

    #[test]
    fn f32_kernels_are_accurate() {
        type Case = (&'static str, fn(f32) -> f32, fn(f64) -> f64, f64, f64);
        let cases: [Case; 6] = [
            ("exp", exp_f32, f64::exp, -87.0, 88.0),
            ("log", log_f32, f64::ln, 1e-30, 1e30),
            ("tanh", tanh_f32, f64::tanh, -20.0, 20.0),
            ("sigmoid", sigmoid_f32, sigmoid_f64, -80.0, 40.0),
            ("softplus", softplus_f32, softplus_f64, -80.0, 80.0),
            (
                "silu",
                |x| x * sigmoid_f32(x),
                |x| x * sigmoid_f64(x),
                -80.0,
                80.0,
            ),
        ];
        for (name, f, r, lo, hi) in cases {
            let (e, at) = if name == "log" {
                // Log-spaced grid for log.
                max_rel_err(
                    |u| log_f32((u as f64).exp() as f32),
                    |u| (u.exp() as f32 as f64).ln(),
                    lo.ln(),
                    hi.ln(),
                    1e-30,
                )
            } else {
                max_rel_err(f, r, lo, hi, 1e-30)
            };
            eprintln!("{name}: max relative error {e:.2e} (at x = {at:.4}) on [{lo}, {hi}]");
            assert!(e < 1e-6, "{name}: max relative error {e:e} at x = {at}");
        }
        // Tiny arguments keep full relative accuracy.
        for &x in &[1e-30f32, -3e-12, 1e-6, 4e-4] {
            assert!(((tanh_f32(x) as f64 - (x as f64).tanh()) / (x as f64)).abs() < 1e-6);
        }
    }

    #[test]
    fn special_values() {
        assert!(tanh_f32(f32::NAN).is_nan());
        assert!(sigmoid_f32(f32::NAN).is_nan());
        assert_eq!(tanh_f32(f32::INFINITY), 1.0);
        assert_eq!(tanh_f32(f32::NEG_INFINITY), -1.0);
        assert_eq!(sigmoid_f32(f32::INFINITY), 1.0);
        assert!(sigmoid_f32(f32::NEG_INFINITY) < 1e-37);
        assert_eq!(softplus_f32(f32::INFINITY), f32::INFINITY);
        let mut y = [0.0f32; 3];
        relu_slice_f32(&[-1.0, f32::NAN, 2.0], &mut y);
        assert_eq!(y[0], 0.0);
        assert!(y[1].is_nan());
        assert_eq!(y[2], 2.0);
    }
}
