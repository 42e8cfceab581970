//! A scalar tanh MLP `φ(x) = w₃ᵀ tanh(W₂ tanh(W₁x + b₁) + b₂) + b₃` on a batch, its input
//! gradient `∇ₓφ`, and the VJPs of that gradient — the second derivatives a Hamiltonian
//! network's training needs.
//!
//! With the batch as rows (`X: N×n`, PyTorch weight layout `W₁: m×n`, `W₂: m×m`, `w₃: 1×m`):
//!
//! ```text
//! H₁ = tanh(XW₁ᵀ + b₁),  H₂ = tanh(H₁W₂ᵀ + b₂),  φ = H₂w₃ᵀ + b₃,   Dᵢ = 1 − Hᵢ²,
//! G₂ = D₂ ⊙ w₃,  P = G₂W₂,  G₁ = P ⊙ D₁,  ∇ₓφ = G₁W₁.
//! ```
//!
//! The VJP of `x ↦ ∇ₓφ(x; θ)` with cotangent `V` is reverse mode applied to the scalar
//! `ψ = Σ V ⊙ ∇ₓφ` through those formulas (each line the adjoint of one above):
//!
//! ```text
//! Ḡ₁ = VW₁ᵀ,        W̄₁ += G₁ᵀV,
//! P̄ = Ḡ₁ ⊙ D₁,      D̄₁ = Ḡ₁ ⊙ P,
//! W̄₂ += G₂ᵀP̄,       Ḡ₂ = P̄W₂ᵀ,
//! w̄₃ += Σ_rows Ḡ₂ ⊙ D₂,   Ā₂ = −2H₂ ⊙ (Ḡ₂ ⊙ w₃) ⊙ D₂,
//! W̄₂ += Ā₂ᵀH₁,      b̄₂ += Σ_rows Ā₂,
//! Ā₁ = (Ā₂W₂ − 2H₁ ⊙ D̄₁) ⊙ D₁,
//! W̄₁ += Ā₁ᵀX,       b̄₁ += Σ_rows Ā₁,     X̄ = Ā₁W₁.
//! ```
//!
//! `X̄ = ∂ψ/∂X` is the Hessian–vector product `∇²φ V` (row by row) and the `θ̄` are
//! `Vᵀ∂(∇ₓφ)/∂θ`: nine matrix products, no dual numbers, and `b₃` receives nothing (it
//! does not move the gradient). Checked against finite differences in the tests.

use rand_chacha::ChaCha8Rng;

use crate::field::ParamView;
use crate::nn::gemm::{matmul, GemmParams, MatMut, MatRef};
use crate::nn::{Activation, Init};
use crate::real::Real;

const INTERNAL: &str = "scalar MLP: buffer sizes follow from the checked dimensions";

/// `C (m×n) ← α·op(A)·op(B) + β·C` on dense row-major buffers; `op(A)` is `A` (`m×k`) or,
/// with `ta`, the transpose of an `A` stored `k×m` (likewise `op(B)` with `tb`).
#[allow(clippy::too_many_arguments)]
fn mm<T: Real>(
    c: &mut [T],
    (m, n, k): (usize, usize, usize),
    a: &[T],
    ta: bool,
    b: &[T],
    tb: bool,
    beta: T,
    gp: &GemmParams,
) {
    let av = if ta {
        MatRef::row_major(a, k, m).expect(INTERNAL).t()
    } else {
        MatRef::row_major(a, m, k).expect(INTERNAL)
    };
    let bv = if tb {
        MatRef::row_major(b, n, k).expect(INTERNAL).t()
    } else {
        MatRef::row_major(b, k, n).expect(INTERNAL)
    };
    matmul(
        MatMut::row_major(c, m, n).expect(INTERNAL),
        T::one(),
        av,
        bv,
        beta,
        gp,
    )
    .expect(INTERNAL);
}

/// `out[j] += Σ_r g[r·cols + j]`.
fn add_column_sums<T: Real>(g: &[T], out: &mut [T]) {
    for row in g.chunks_exact(out.len()) {
        out.iter_mut().zip(row).for_each(|(o, v)| *o += *v);
    }
}

/// What one gradient evaluation keeps for its VJP.
#[derive(Debug, Clone, Default)]
pub struct MlpTape<T> {
    rows: usize,
    x: Vec<T>,
    h1: Vec<T>,
    h2: Vec<T>,
    d1: Vec<T>,
    d2: Vec<T>,
    g2: Vec<T>,
    p: Vec<T>,
    g1: Vec<T>,
}

impl<T: Real> MlpTape<T> {
    fn resize(&mut self, rows: usize, n: usize, m: usize) {
        self.rows = rows;
        self.x.resize(rows * n, T::zero());
        for b in [
            &mut self.h1,
            &mut self.h2,
            &mut self.d1,
            &mut self.d2,
            &mut self.g2,
            &mut self.p,
            &mut self.g1,
        ] {
            b.resize(rows * m, T::zero());
        }
    }
}

/// The architecture `n → m → m → 1` (tanh) and its scratch buffers; parameters live outside.
#[derive(Debug, Clone)]
pub struct ScalarMlp<T> {
    n: usize,
    m: usize,
    gemm: GemmParams,
    a: Vec<T>,
    bufs: [Vec<T>; 4],
}

impl<T: Real> ScalarMlp<T> {
    /// Input width `n`, hidden width `m` (both positive; checked by the caller).
    pub fn new(n: usize, m: usize) -> Self {
        Self {
            n,
            m,
            gemm: GemmParams::default(),
            a: Vec::new(),
            bufs: Default::default(),
        }
    }

    /// Number of parameters: `W₁, b₁, W₂, b₂, w₃, b₃`.
    pub fn num_params(&self) -> usize {
        let (n, m) = (self.n, self.m);
        m * n + m + m * m + m + m + 1
    }

    /// Named views of the parameters, offset by `offset`, names prefixed by `prefix`
    /// (PyTorch `nn.Sequential` indices: linear layers 0, 2, 4).
    pub fn param_views(&self, prefix: &str, offset: usize) -> Vec<ParamView> {
        let (n, m) = (self.n, self.m);
        let shapes: [(&str, Vec<usize>); 6] = [
            ("0.weight", vec![m, n]),
            ("0.bias", vec![m]),
            ("2.weight", vec![m, m]),
            ("2.bias", vec![m]),
            ("4.weight", vec![1, m]),
            ("4.bias", vec![1]),
        ];
        let mut off = offset;
        shapes
            .into_iter()
            .map(|(name, shape)| {
                let v = ParamView {
                    name: format!("{prefix}.{name}"),
                    offset: off,
                    shape,
                };
                off += v.len();
                v
            })
            .collect()
    }

    /// Orthogonal weights (gain 1), zero biases, drawn from `rng`.
    pub fn init(&self, rng: &mut ChaCha8Rng, params: &mut [T]) {
        let init = Init::orthogonal();
        let (n, m) = (self.n, self.m);
        params.fill(T::zero());
        let (w1, rest) = params.split_at_mut(m * n);
        init.fill_weight(rng, m, n, w1);
        let (w2, rest) = rest[m..].split_at_mut(m * m);
        init.fill_weight(rng, m, m, w2);
        init.fill_weight(rng, 1, m, &mut rest[m..2 * m]);
    }

    /// `(W₁, b₁, W₂, b₂, w₃, b₃)`.
    fn split<'a>(&self, p: &'a [T]) -> [&'a [T]; 6] {
        let (n, m) = (self.n, self.m);
        let (w1, p) = p.split_at(m * n);
        let (b1, p) = p.split_at(m);
        let (w2, p) = p.split_at(m * m);
        let (b2, p) = p.split_at(m);
        let (w3, b3) = p.split_at(m);
        [w1, b1, w2, b2, w3, b3]
    }

    /// `H = tanh(X Wᵀ + b)` for a layer `W: m×k`, and `D = 1 − H²`.
    #[allow(clippy::too_many_arguments)]
    fn layer(
        &mut self,
        rows: usize,
        k: usize,
        x: &[T],
        w: &[T],
        b: &[T],
        h: &mut [T],
        d: &mut [T],
    ) {
        let m = self.m;
        self.a.resize(rows * m, T::zero());
        for row in self.a.chunks_exact_mut(m) {
            row.copy_from_slice(b);
        }
        mm(
            &mut self.a,
            (rows, m, k),
            x,
            false,
            w,
            true,
            T::one(),
            &self.gemm,
        );
        Activation::Tanh.forward(&self.a, h);
        d.iter_mut()
            .zip(h.iter())
            .for_each(|(d, h)| *d = T::one() - *h * *h);
    }

    /// `out[r] ← φ(x_r)` for the `rows` samples of `x` (`rows × n`).
    pub fn value(&mut self, params: &[T], x: &[T], out: &mut [T], tape: &mut MlpTape<T>) {
        let rows = out.len();
        self.forward(params, x, rows, tape);
        let [_, _, _, _, w3, b3] = self.split(params);
        for (o, h2) in out.iter_mut().zip(tape.h2.chunks_exact(self.m)) {
            *o = b3[0] + h2.iter().zip(w3).map(|(h, w)| *h * *w).sum::<T>();
        }
    }

    fn forward(&mut self, params: &[T], x: &[T], rows: usize, tape: &mut MlpTape<T>) {
        let (n, m) = (self.n, self.m);
        tape.resize(rows, n, m);
        tape.x.copy_from_slice(&x[..rows * n]);
        let [w1, b1, w2, b2, _, _] = self.split(params);
        self.layer(rows, n, x, w1, b1, &mut tape.h1, &mut tape.d1);
        self.layer(rows, m, &tape.h1, w2, b2, &mut tape.h2, &mut tape.d2);
    }

    /// `gx ← ∇ₓφ` (`rows × n`) for the samples of `x`, recording the VJP's needs in `tape`.
    pub fn grad(&mut self, params: &[T], x: &[T], gx: &mut [T], tape: &mut MlpTape<T>) {
        let (n, m) = (self.n, self.m);
        let rows = gx.len() / n;
        self.forward(params, x, rows, tape);
        let [w1, _, w2, _, w3, _] = self.split(params);
        for (g2, d2) in tape.g2.chunks_exact_mut(m).zip(tape.d2.chunks_exact(m)) {
            g2.iter_mut()
                .zip(d2)
                .zip(w3)
                .for_each(|((g, d), w)| *g = *d * *w);
        }
        mm(
            &mut tape.p,
            (rows, m, m),
            &tape.g2,
            false,
            w2,
            false,
            T::zero(),
            &self.gemm,
        );
        tape.g1
            .iter_mut()
            .zip(tape.p.iter().zip(&tape.d1))
            .for_each(|(g, (p, d))| *g = *p * *d);
        mm(
            gx,
            (rows, n, m),
            &tape.g1,
            false,
            w1,
            false,
            T::zero(),
            &self.gemm,
        );
    }

    /// At the point recorded in `tape`, for the cotangent `v` of `∇ₓφ` (`rows × n`):
    /// `gx ← ∇²φ v` (overwritten) and `gparams += vᵀ ∂(∇ₓφ)/∂θ` (accumulated).
    pub fn grad_vjp(
        &mut self,
        params: &[T],
        tape: &MlpTape<T>,
        v: &[T],
        gx: &mut [T],
        gparams: &mut [T],
    ) {
        let (n, m, rows) = (self.n, self.m, tape.rows);
        let gp = self.gemm;
        let [w1, _, w2, _, w3, _] = self.split(params);
        let two = T::of(2.0);
        let (gw1, rest) = gparams.split_at_mut(m * n);
        let (gb1, rest) = rest.split_at_mut(m);
        let (gw2, rest) = rest.split_at_mut(m * m);
        let (gb2, rest) = rest.split_at_mut(m);
        let gw3 = &mut rest[..m];
        for b in self.bufs.iter_mut() {
            b.resize(rows * m, T::zero());
        }
        let [gbar1, d1bar, g2bar, h1bar] = &mut self.bufs;
        // Ḡ₁ = VW₁ᵀ, W̄₁ += G₁ᵀV.
        mm(gbar1, (rows, m, n), v, false, w1, true, T::zero(), &gp);
        mm(gw1, (m, n, rows), &tape.g1, true, v, false, T::one(), &gp);
        // D̄₁ = Ḡ₁ ⊙ P, then P̄ = Ḡ₁ ⊙ D₁ in place.
        for i in 0..rows * m {
            d1bar[i] = gbar1[i] * tape.p[i];
            gbar1[i] *= tape.d1[i];
        }
        let pbar = &*gbar1;
        // W̄₂ += G₂ᵀP̄, Ḡ₂ = P̄W₂ᵀ.
        mm(
            gw2,
            (m, m, rows),
            &tape.g2,
            true,
            pbar,
            false,
            T::one(),
            &gp,
        );
        mm(g2bar, (rows, m, m), pbar, false, w2, true, T::zero(), &gp);
        // w̄₃ += Σ Ḡ₂ ⊙ D₂;  Ā₂ = −2H₂ ⊙ (Ḡ₂ ⊙ w₃) ⊙ D₂ in place.
        for r in 0..rows {
            for j in 0..m {
                let i = r * m + j;
                let g = g2bar[i];
                gw3[j] += g * tape.d2[i];
                g2bar[i] = -two * tape.h2[i] * g * w3[j] * tape.d2[i];
            }
        }
        let a2bar = &*g2bar;
        // W̄₂ += Ā₂ᵀH₁, b̄₂ += Σ Ā₂, H̄₁ = Ā₂W₂.
        mm(
            gw2,
            (m, m, rows),
            a2bar,
            true,
            &tape.h1,
            false,
            T::one(),
            &gp,
        );
        add_column_sums(a2bar, gb2);
        mm(h1bar, (rows, m, m), a2bar, false, w2, false, T::zero(), &gp);
        // Ā₁ = (H̄₁ − 2H₁ ⊙ D̄₁) ⊙ D₁ in place.
        for i in 0..rows * m {
            h1bar[i] = (h1bar[i] - two * tape.h1[i] * d1bar[i]) * tape.d1[i];
        }
        let a1bar = &*h1bar;
        // W̄₁ += Ā₁ᵀX, b̄₁ += Σ Ā₁, X̄ = Ā₁W₁.
        mm(
            gw1,
            (m, n, rows),
            a1bar,
            true,
            &tape.x,
            false,
            T::one(),
            &gp,
        );
        add_column_sums(a1bar, gb1);
        mm(gx, (rows, n, m), a1bar, false, w1, false, T::zero(), &gp);
    }
}
