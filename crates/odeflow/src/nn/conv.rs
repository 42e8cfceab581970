//! 1-D and 2-D convolutions (cross-correlation, as PyTorch) with stride, zero padding and
//! bias.
//!
//! `y[n, co, oh, ow] = b[co] + Σ_{ci, i, j} W[co, ci, i, j] · x[n, ci, oh·s_h − p_h + i,
//! ow·s_w − p_w + j]`, with zero for indices outside the input. Output size per axis
//! `⌊(L + 2p − k)/s⌋ + 1`. A 1-D convolution is the 2-D one with height 1 and a `1 × k`
//! kernel; its weight is reported with PyTorch's 1-D shape `[C_out, C_in, k]` (same storage).
//!
//! Backward: `∂x` is the transposed convolution of `∂y` (scattered through the same taps),
//! `∂W[co, ci, i, j] += Σ ∂y[n, co, oh, ow] · x[n, ci, …]`, `∂b[co] += Σ ∂y[n, co, ·]`.
//!
//! Three algorithms (module `conv_kernels`): a `1 × 1` kernel with stride 1 and no padding
//! is a plain GEMM over all positions; otherwise im2col + GEMM, or the *direct* per-position
//! GEMMs that skip padded taps, chosen by [`ConvAlgo`].

use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::conv_kernels::{self as ck, Geom};
use super::{
    add_column_sums, broadcast_rows, check_len, Init, Module, NnError, Pass, Saved, Shape,
};
use crate::real::Real;

/// Hyper-parameters of a convolution, as in PyTorch's `nn.Conv2d` (for 1-D use
/// [`ConvSpec::d1`]: the height entries are 1, 1, 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConvSpec {
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Kernel size `(k_h, k_w)`.
    pub kernel: (usize, usize),
    /// Stride `(s_h, s_w)`.
    pub stride: (usize, usize),
    /// Zero padding `(p_h, p_w)` on both sides.
    pub padding: (usize, usize),
    /// Whether the layer has a bias.
    pub bias: bool,
}

impl ConvSpec {
    /// A 1-D convolution `in → out` with kernel `k`, stride `s`, padding `p`, with bias.
    pub fn d1(in_channels: usize, out_channels: usize, k: usize, s: usize, p: usize) -> Self {
        Self {
            in_channels,
            out_channels,
            kernel: (1, k),
            stride: (1, s),
            padding: (0, p),
            bias: true,
        }
    }

    /// A 2-D convolution `in → out` with a square kernel `k`, stride `s`, padding `p`, with
    /// bias.
    pub fn d2(in_channels: usize, out_channels: usize, k: usize, s: usize, p: usize) -> Self {
        Self {
            in_channels,
            out_channels,
            kernel: (k, k),
            stride: (s, s),
            padding: (p, p),
            bias: true,
        }
    }

    /// The same without bias.
    pub fn without_bias(mut self) -> Self {
        self.bias = false;
        self
    }
}

/// Which convolution algorithm to use (the results agree to rounding).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum ConvAlgo {
    /// Direct when `H_o·W_o·k_h ≤ 16` (tiny inputs), im2col otherwise.
    #[default]
    Auto,
    /// Patch matrix + one GEMM.
    Im2col,
    /// One GEMM per output position and kernel row, skipping padded taps.
    Direct,
}

/// A convolution layer on `(C, L)` or `(C, H, W)` samples.
#[derive(Debug, Clone)]
pub struct Conv<T> {
    spec: ConvSpec,
    one_d: bool,
    input: (usize, usize),
    output: (usize, usize),
    algo: ConvAlgo,
    /// The weight `wp` was permuted from, to skip the permutation while the
    /// parameters do not change (every stage of a step reuses them).
    wp_src: Vec<T>,
    wp: Vec<T>,
    gwp: Vec<T>,
    col: Vec<T>,
    gcol: Vec<T>,
}

/// Output length along one axis, or an error naming the axis.
fn out_len(axis: &str, len: usize, k: usize, s: usize, p: usize) -> Result<usize, NnError> {
    if k == 0 {
        return Err(NnError::invalid(
            format!("kernel size ({axis})"),
            k,
            "must be positive",
        ));
    }
    if s == 0 {
        return Err(NnError::invalid(
            format!("stride ({axis})"),
            s,
            "must be positive",
        ));
    }
    if len == 0 {
        return Err(NnError::invalid(
            format!("input {axis}"),
            len,
            "must be positive",
        ));
    }
    if len + 2 * p < k {
        return Err(NnError::invalid(
            format!("kernel size ({axis})"),
            k,
            format!("exceeds the padded input {axis} {len} + 2·{p}"),
        ));
    }
    Ok((len + 2 * p - k) / s + 1)
}

impl<T: Real> Conv<T> {
    /// A 2-D convolution on `(C_in, height, width)` samples.
    pub fn conv2d(spec: ConvSpec, height: usize, width: usize) -> Result<Self, NnError> {
        Self::build(spec, false, height, width)
    }

    /// A 1-D convolution on `(C_in, length)` samples: kernel `k`, stride `s`, padding `p`.
    pub fn conv1d(
        c_in: usize,
        c_out: usize,
        k: usize,
        s: usize,
        p: usize,
        length: usize,
    ) -> Result<Self, NnError> {
        Self::build(ConvSpec::d1(c_in, c_out, k, s, p), true, 1, length)
    }

    /// A convolution on samples of shape `input` (1-D for [`Shape::Seq`], where the spec's
    /// height entries must be `1, 1, 0`; 2-D for [`Shape::Image`]).
    pub fn new(spec: ConvSpec, input: Shape) -> Result<Self, NnError> {
        if spec.in_channels != input.channels() {
            return Err(NnError::invalid(
                "in_channels",
                spec.in_channels,
                format!("the input shape {input} has {} channels", input.channels()),
            ));
        }
        match input {
            Shape::Seq { length, .. } => {
                if spec.kernel.0 != 1 || spec.stride.0 != 1 || spec.padding.0 != 0 {
                    return Err(NnError::invalid(
                        "kernel/stride/padding height",
                        format!("{}/{}/{}", spec.kernel.0, spec.stride.0, spec.padding.0),
                        "a 1-D convolution needs 1/1/0",
                    ));
                }
                Self::build(spec, true, 1, length)
            }
            Shape::Image { height, width, .. } => Self::build(spec, false, height, width),
            Shape::Flat(_) => Err(NnError::invalid(
                "convolution input shape",
                input,
                "needs (C, L) or (C, H, W) samples",
            )),
        }
    }

    fn build(spec: ConvSpec, one_d: bool, h: usize, w: usize) -> Result<Self, NnError> {
        if spec.in_channels == 0 {
            return Err(NnError::invalid("in_channels", 0, "must be positive"));
        }
        if spec.out_channels == 0 {
            return Err(NnError::invalid("out_channels", 0, "must be positive"));
        }
        let (hn, wn) = if one_d {
            ("height", "length")
        } else {
            ("height", "width")
        };
        let ho = out_len(hn, h, spec.kernel.0, spec.stride.0, spec.padding.0)?;
        let wo = out_len(wn, w, spec.kernel.1, spec.stride.1, spec.padding.1)?;
        Ok(Self {
            spec,
            one_d,
            input: (h, w),
            output: (ho, wo),
            algo: ConvAlgo::Auto,
            wp_src: Vec::new(),
            wp: Vec::new(),
            gwp: Vec::new(),
            col: Vec::new(),
            gcol: Vec::new(),
        })
    }

    /// Chooses the algorithm (see [`ConvAlgo`]).
    pub fn with_algo(mut self, algo: ConvAlgo) -> Self {
        self.algo = algo;
        self
    }

    /// Sets the algorithm (see [`ConvAlgo`]).
    pub fn set_algo(&mut self, algo: ConvAlgo) {
        self.algo = algo;
    }

    /// The algorithm setting.
    pub fn algo(&self) -> ConvAlgo {
        self.algo
    }

    /// The hyper-parameters.
    pub fn spec(&self) -> &ConvSpec {
        &self.spec
    }

    fn geom(&self, n: usize) -> Geom {
        Geom {
            n,
            cin: self.spec.in_channels,
            cout: self.spec.out_channels,
            h: self.input.0,
            w: self.input.1,
            ho: self.output.0,
            wo: self.output.1,
            kh: self.spec.kernel.0,
            kw: self.spec.kernel.1,
            sh: self.spec.stride.0,
            sw: self.spec.stride.1,
            ph: self.spec.padding.0,
            pw: self.spec.padding.1,
        }
    }

    fn weight_len(&self) -> usize {
        self.spec.out_channels * self.spec.in_channels * self.spec.kernel.0 * self.spec.kernel.1
    }

    /// A `1 × 1` kernel with stride 1 and no padding: a GEMM over all positions.
    fn pointwise(&self) -> bool {
        let s = &self.spec;
        s.kernel == (1, 1) && s.stride == (1, 1) && s.padding == (0, 0)
    }

    /// Brings the permuted weight up to date with `w`.
    fn refresh_permuted(&mut self, w: &[T], g: &Geom) {
        let same = self.wp_src.len() == w.len()
            && self
                .wp_src
                .iter()
                .zip(w)
                .fold(true, |eq, (a, b)| eq & (*a == *b));
        if !same {
            self.wp_src.clear();
            self.wp_src.extend_from_slice(w);
            self.wp.resize(w.len(), T::zero());
            ck::permute_weight(w, g, &mut self.wp);
        }
    }

    fn use_direct(&self, g: &Geom) -> bool {
        match self.algo {
            ConvAlgo::Direct => true,
            ConvAlgo::Im2col => false,
            ConvAlgo::Auto => g.p_out() * g.kh <= 16,
        }
    }
}

impl<T: Real> Module<T> for Conv<T> {
    fn kind(&self) -> String {
        if self.one_d { "Conv1d" } else { "Conv2d" }.into()
    }
    fn in_shape(&self) -> Shape {
        if self.one_d {
            Shape::seq(self.spec.in_channels, self.input.1)
        } else {
            Shape::image(self.spec.in_channels, self.input.0, self.input.1)
        }
    }
    fn out_shape(&self) -> Shape {
        if self.one_d {
            Shape::seq(self.spec.out_channels, self.output.1)
        } else {
            Shape::image(self.spec.out_channels, self.output.0, self.output.1)
        }
    }
    fn param_shapes(&self) -> Vec<(&'static str, Vec<usize>)> {
        let s = &self.spec;
        let w = if self.one_d {
            vec![s.out_channels, s.in_channels, s.kernel.1]
        } else {
            vec![s.out_channels, s.in_channels, s.kernel.0, s.kernel.1]
        };
        let mut v = vec![("weight", w)];
        if s.bias {
            v.push(("bias", vec![s.out_channels]));
        }
        v
    }
    fn init_params(&self, init: &Init, rng: &mut ChaCha8Rng, params: &mut [T]) {
        let fan_in = self.spec.in_channels * self.spec.kernel.0 * self.spec.kernel.1;
        let (w, b) = params.split_at_mut(self.weight_len());
        init.fill_weight(rng, self.spec.out_channels, fan_in, w);
        init.fill_bias(rng, fan_in, b);
    }
    fn forward(&mut self, pass: &Pass<T>, params: &[T], x: &[T], y: &mut [T], _: &mut [T]) {
        let g = self.geom(pass.batch);
        check_len("conv input", x.len(), g.n * g.p_in() * g.cin);
        check_len("conv output", y.len(), g.n * g.p_out() * g.cout);
        let (w, b) = params.split_at(self.weight_len());
        let beta = if self.spec.bias {
            broadcast_rows(y, b);
            T::one()
        } else {
            T::zero()
        };
        if self.pointwise() {
            ck::patches_times_weight(x, w, &g, y, beta, &pass.gemm);
            return;
        }
        self.refresh_permuted(w, &g);
        if self.use_direct(&g) {
            if !self.spec.bias {
                y.fill(T::zero());
            }
            ck::direct_forward(x, &self.wp, &g, y, &pass.gemm);
        } else {
            self.col.resize(g.n * g.p_out() * g.patch(), T::zero());
            ck::im2col(x, &g, &mut self.col);
            ck::patches_times_weight(&self.col, &self.wp, &g, y, beta, &pass.gemm);
        }
    }
    fn backward(
        &mut self,
        pass: &Pass<T>,
        params: &[T],
        saved: Saved<'_, T>,
        gy: &[T],
        gx: &mut [T],
        gparams: &mut [T],
    ) {
        let g = self.geom(pass.batch);
        check_len("conv output gradient", gy.len(), g.n * g.p_out() * g.cout);
        check_len("conv input gradient", gx.len(), g.n * g.p_in() * g.cin);
        let wl = self.weight_len();
        let w = &params[..wl];
        let (gw, gb) = gparams.split_at_mut(wl);
        if self.spec.bias {
            add_column_sums(gy, g.cout, gb);
        }
        if self.pointwise() {
            // Wp = W for a single tap: accumulate straight into the weight gradient.
            ck::patches_backward(saved.x, w, gy, &g, gx, gw, &pass.gemm);
            return;
        }
        self.refresh_permuted(w, &g);
        self.gwp.clear();
        self.gwp.resize(wl, T::zero());
        if self.use_direct(&g) {
            ck::direct_backward(saved.x, &self.wp, gy, &g, gx, &mut self.gwp, &pass.gemm);
        } else {
            let len = g.n * g.p_out() * g.patch();
            self.col.resize(len, T::zero());
            self.gcol.resize(len, T::zero());
            ck::im2col(saved.x, &g, &mut self.col);
            ck::patches_backward(
                &self.col,
                &self.wp,
                gy,
                &g,
                &mut self.gcol,
                &mut self.gwp,
                &pass.gemm,
            );
            gx.fill(T::zero());
            ck::col2im_add(&self.gcol, &g, gx);
        }
        ck::unpermute_add(&self.gwp, &g, gw);
    }
}
