//! Elementary differentials of a field written generically over the scalar type.
//!
//! `F(•)(y) = f(y)` and `F([τ₁,…,τₘ])(y) = f⁽ᵐ⁾(y)[F(τ₁)(y),…,F(τₘ)(y)]`. The symmetric
//! m-linear derivative is computed exactly (to rounding) by forward mode with m nested
//! first-order dual numbers (`num_dual::Dual`): evaluating `f` at
//! `y + ε₁v₁ + … + εₘvₘ` with `εᵢ² = 0` and reading the coefficient of `ε₁ε₂⋯εₘ` gives
//! `f⁽ᵐ⁾(y)[v₁,…,vₘ]`. One evaluation on the depth-m type costs about `3ᵐ` scalar
//! evaluations (products of nested duals), and the trees are visited children first, so every
//! direction `F(τₖ)` is already known when its parent is computed. No finite differences, no
//! polarisation: the only errors are the rounding errors of `f` itself.

use num_dual::{Dual, DualNum};

use super::forest::TreeTable;
use crate::systems::System;

/// A vector field `y' = f(y)` written once, generic over the scalar type, so that odeflow can
/// differentiate it to any order with nested dual numbers.
///
/// Every built-in [`System`] is one (blanket implementation); a learned model implements it by
/// evaluating its layers on `D`.
pub trait GenericField {
    /// State dimension.
    fn dim(&self) -> usize;
    /// `out ← f(y)` (both of length [`GenericField::dim`]).
    fn eval<D: DualNum + Copy>(&self, y: &[D], out: &mut [D]);
}

impl<S: System> GenericField for S {
    fn dim(&self) -> usize {
        System::dim(self)
    }
    fn eval<D: DualNum + Copy>(&self, y: &[D], out: &mut [D]) {
        self.rhs(y, out);
    }
}

/// A scalar type for one nesting depth: `f64`, `Dual<f64>`, `Dual<Dual<f64>>`, ….
trait Level: DualNum<Primitive = f64> + Copy {
    /// `base + Σₖ εₖ dirs[k]`, one infinitesimal per nesting level.
    fn seed(base: f64, dirs: &[f64]) -> Self;
    /// The coefficient of `ε₁⋯ε_depth`.
    fn top(&self) -> f64;
}

impl Level for f64 {
    #[inline]
    fn seed(base: f64, _dirs: &[f64]) -> Self {
        base
    }
    #[inline]
    fn top(&self) -> f64 {
        *self
    }
}

impl<T: Level> Level for Dual<T> {
    #[inline]
    fn seed(base: f64, dirs: &[f64]) -> Self {
        match dirs.split_last() {
            Some((last, rest)) => Dual::new(T::seed(base, rest), T::from(*last)),
            None => Dual::from_re(T::seed(base, dirs)),
        }
    }
    #[inline]
    fn top(&self) -> f64 {
        self.eps.top()
    }
}

/// Input and output buffers of one nesting depth.
type Buffers<D> = (Vec<D>, Vec<D>);

/// `out ← f⁽ᵐ⁾(y)[v₁,…,vₘ]` on the depth-m dual type `D`; `dirs[j·m + k]` is component `j`
/// of `v_k`.
fn mixed_on<F: GenericField, D: Level>(
    field: &F,
    bufs: &mut Buffers<D>,
    y: &[f64],
    dirs: &[f64],
    m: usize,
    out: &mut [f64],
) {
    let (input, output) = bufs;
    input.clear();
    if m == 0 {
        input.extend(y.iter().map(|&v| D::seed(v, &[])));
    } else {
        input.extend(
            y.iter()
                .zip(dirs.chunks_exact(m))
                .map(|(&v, d)| D::seed(v, d)),
        );
    }
    output.clear();
    output.resize(y.len(), D::zero());
    field.eval(input, output);
    for (o, v) in out.iter_mut().zip(output.iter()) {
        *o = v.top();
    }
}

macro_rules! depths {
    ($($depth:literal => $buf:ident : $ty:ty),* $(,)?) => {
        /// Reusable buffers for every nesting depth (allocated on first use).
        #[derive(Default)]
        struct LevelBuffers {
            $($buf: Buffers<$ty>,)*
        }

        /// The deepest derivative the nested types provide.
        pub(crate) const MAX_DEPTH: usize = [$($depth),*].len() - 1;

        /// `out ← f⁽ᵐ⁾(y)[v₁,…,vₘ]` with the nesting depth picked at run time. Depths beyond
        /// [`MAX_DEPTH`] cannot occur (orders are validated); they would yield NaN.
        fn mixed<F: GenericField>(
            field: &F,
            bufs: &mut LevelBuffers,
            y: &[f64],
            dirs: &[f64],
            m: usize,
            out: &mut [f64],
        ) {
            match m {
                $($depth => mixed_on(field, &mut bufs.$buf, y, dirs, m, out),)*
                _ => out.fill(f64::NAN),
            }
        }
    };
}

type L1 = Dual<f64>;
type L2 = Dual<L1>;
type L3 = Dual<L2>;
type L4 = Dual<L3>;
type L5 = Dual<L4>;
type L6 = Dual<L5>;
type L7 = Dual<L6>;
type L8 = Dual<L7>;
type L9 = Dual<L8>;
type L10 = Dual<L9>;
type L11 = Dual<L10>;
type L12 = Dual<L11>;

depths! {
    0 => l0: f64,
    1 => l1: L1,
    2 => l2: L2,
    3 => l3: L3,
    4 => l4: L4,
    5 => l5: L5,
    6 => l6: L6,
    7 => l7: L7,
    8 => l8: L8,
    9 => l9: L9,
    10 => l10: L10,
    11 => l11: L11,
    12 => l12: L12,
}

/// Scratch space of the elementary-differential evaluation; reuse it across points to keep
/// the evaluation allocation-free.
#[derive(Default)]
pub struct Workspace {
    /// `values[id·d..(id+1)·d]` = `F(τ_id)(y)`.
    pub(crate) values: Vec<f64>,
    dirs: Vec<f64>,
    levels: LevelBuffers,
}

impl Workspace {
    /// An empty workspace; buffers grow on first use.
    pub fn new() -> Self {
        Self::default()
    }
}

impl std::fmt::Debug for Workspace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workspace")
            .field("values", &self.values.len())
            .finish_non_exhaustive()
    }
}

/// Fills `ws.values` with `F(τ)(y)` for every tree with `needed[id]` (a needed tree's
/// children must be needed too). The other entries are left as they were.
pub(crate) fn elementary_differentials<F: GenericField>(
    field: &F,
    table: &TreeTable,
    needed: &[bool],
    y: &[f64],
    ws: &mut Workspace,
) {
    let d = y.len();
    ws.values.resize(table.len() * d, 0.0);
    for (id, _) in needed.iter().enumerate().filter(|(_, n)| **n) {
        let children = table.children(id);
        let m = children.len();
        ws.dirs.clear();
        for j in 0..d {
            ws.dirs
                .extend(children.iter().map(|&c| ws.values[c as usize * d + j]));
        }
        let (_, rest) = ws.values.split_at_mut(id * d);
        mixed(field, &mut ws.levels, y, &ws.dirs, m, &mut rest[..d]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::systems::Pendulum;

    /// Directional derivatives of the pendulum by hand: f = (−10 sin q, p).
    #[test]
    fn mixed_derivatives_of_the_pendulum_match_hand_formulas() {
        let (p, q) = (0.3, 1.1);
        let (u, v, w) = ([0.7, -0.2], [-0.4, 0.9], [0.25, 0.5]);
        let mut bufs = LevelBuffers::default();
        let mut out = [0.0; 2];
        let y = [p, q];
        // f'(y)u = (−10 cos q · u_q, u_p)
        let dirs: Vec<f64> = (0..2).flat_map(|j| [u[j]]).collect();
        mixed(&Pendulum, &mut bufs, &y, &dirs, 1, &mut out);
        assert!((out[0] + 10.0 * q.cos() * u[1]).abs() < 1e-14);
        assert!((out[1] - u[0]).abs() < 1e-15);
        // f''(y)[u, v] = (10 sin q · u_q v_q, 0)
        let dirs: Vec<f64> = (0..2).flat_map(|j| [u[j], v[j]]).collect();
        mixed(&Pendulum, &mut bufs, &y, &dirs, 2, &mut out);
        assert!((out[0] - 10.0 * q.sin() * u[1] * v[1]).abs() < 1e-14);
        assert_eq!(out[1], 0.0);
        // f'''(y)[u, v, w] = (10 cos q · u_q v_q w_q, 0)
        let dirs: Vec<f64> = (0..2).flat_map(|j| [u[j], v[j], w[j]]).collect();
        mixed(&Pendulum, &mut bufs, &y, &dirs, 3, &mut out);
        assert!((out[0] - 10.0 * q.cos() * u[1] * v[1] * w[1]).abs() < 1e-14);
        // The 12th derivative in direction e_q: −10 sin⁽¹²⁾(q) = −10 sin q.
        let dirs: Vec<f64> = (0..2)
            .flat_map(|j| std::iter::repeat_n(if j == 1 { 1.0 } else { 0.0 }, 12))
            .collect();
        mixed(&Pendulum, &mut bufs, &y, &dirs, 12, &mut out);
        assert!((out[0] + 10.0 * q.sin()).abs() < 1e-12, "{}", out[0]);
        assert_eq!(MAX_DEPTH, 12);
    }
}
