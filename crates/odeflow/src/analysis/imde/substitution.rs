//! The substitution law of B-series, solved tree by tree.
//!
//! A *B-series field* is `g_h = Σ_τ h^{|τ|−1} β(τ)/σ(τ) F(τ)` with `β(•) = 1`. Applying an
//! integrator whose B-series coefficients are `a` to `g_h` instead of `f` gives again a
//! B-series in `f`, with coefficients `β ⋆ a` (Chartier, Hairer, Vilmart 2010, Thm. 3.2;
//! Hairer, Lubich, Wanner, *GNI*, III.5, IX.9):
//!
//! ```text
//! (β ⋆ a)(τ) = Σ_{partitions P of τ}  a(χ_P(τ)) · Π_{δ ∈ P} β(δ),
//! ```
//!
//! summed over the ways of cutting edges of τ: the pieces `δ` get `β`, the *skeleton* `χ`
//! (one vertex per piece) gets `a`. The term without cuts is `a(•) β(τ) = β(τ)`, so
//! `(β ⋆ a)(τ) = target(τ)` determines `β(τ)` from `β` on smaller trees.
//!
//! Summing over all `2^{|τ|−1}` cuts is wasteful. When the integrator is a Runge–Kutta method
//! (or the exact flow, a "continuous" one) its coefficients are built from stage weights,
//! `a(τ) = ⟨b, Φ(τ)⟩` with `Φ([τ₁…τₘ]) = Π_k A Φ(τ_k)` (products taken stage by stage).
//! The sum then factorises over the children of the root: for each child `τ_k` of the root
//! either the edge to it is cut — the piece hanging there contributes a stage vector
//! `H(τ_k) = A D(τ_k)` that depends on `τ_k` alone — or it is kept, and the piece containing
//! the root grows by one of the root pieces of `τ_k`. With `Q(τ)` the list of
//! (root piece `u`, stage weight `W`) pairs of τ, merged by the shape of `u`:
//!
//! ```text
//! Q([τ₁…τₘ]) = graft( Π_k ( {(∅, H(τ_k))} ∪ Q(τ_k) ) ),     D(τ) = Σ_{(u,W)∈Q(τ)} β(u) W,
//! (β ⋆ a)(τ) = ⟨b, D(τ)⟩,                                      H(τ) = A D(τ).
//! ```
//!
//! `D(τ)` is the coefficient of `h^{|τ|}F(τ)/σ(τ)` in `h g_h(Yᵢ)` at each stage and `H(τ)` the
//! one of the stage values `Yᵢ` themselves, so this is the Runge–Kutta recursion run on
//! B-series coefficients. The number of distinct root pieces of a tree is far smaller than
//! its number of cuts, which keeps order 13 (20 299 trees) within seconds.
//!
//! The exact flow fits the same mould with stages indexed by `s ∈ [0, 1]`: weights are
//! polynomials in `s`, `A` is `∫₀ˢ`, and `b` is `∫₀¹`; then `a(τ) = 1/γ(τ)`.

use std::collections::BTreeMap;

use super::forest::{TreeId, TreeTable};

/// An integrator given by its stage weights.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Scheme<'a> {
    /// An explicit Runge–Kutta method: weights are vectors over the stages.
    RungeKutta {
        /// `s × s` coefficient matrix.
        a: &'a [Vec<f64>],
        /// Weights.
        b: &'a [f64],
    },
    /// The exact flow over one step: weights are polynomials in `s ∈ [0, 1]`, stored by
    /// ascending coefficients, of degree below `len`.
    ExactFlow {
        /// Number of polynomial coefficients kept (the largest tree order).
        len: usize,
    },
}

impl Scheme<'_> {
    fn width(&self) -> usize {
        match self {
            Scheme::RungeKutta { b, .. } => b.len(),
            Scheme::ExactFlow { len } => *len,
        }
    }

    /// The stage weight of `•`: one at every stage.
    fn one(&self) -> Vec<f64> {
        let mut w = vec![0.0; self.width()];
        match self {
            Scheme::RungeKutta { .. } => w.fill(1.0),
            Scheme::ExactFlow { .. } => w[0] = 1.0,
        }
        w
    }

    /// Stage-wise product.
    fn mul(&self, x: &[f64], y: &[f64]) -> Vec<f64> {
        match self {
            Scheme::RungeKutta { .. } => x.iter().zip(y).map(|(p, q)| p * q).collect(),
            Scheme::ExactFlow { len } => {
                let mut r = vec![0.0; *len];
                for (i, p) in x.iter().enumerate().filter(|(_, p)| **p != 0.0) {
                    for (j, q) in y.iter().enumerate().take(len - i) {
                        r[i + j] += p * q;
                    }
                }
                r
            }
        }
    }

    /// `A w`: Runge–Kutta matrix, or `∫₀ˢ w`.
    fn inner(&self, w: &[f64]) -> Vec<f64> {
        match self {
            Scheme::RungeKutta { a, .. } => a
                .iter()
                .map(|row| row.iter().zip(w).map(|(p, q)| p * q).sum())
                .collect(),
            Scheme::ExactFlow { len } => {
                let mut r = vec![0.0; *len];
                for k in 0..len - 1 {
                    r[k + 1] = w[k] / (k + 1) as f64;
                }
                r
            }
        }
    }

    /// `⟨b, w⟩`: Runge–Kutta weights, or `∫₀¹ w`.
    fn outer(&self, w: &[f64]) -> f64 {
        match self {
            Scheme::RungeKutta { b, .. } => b.iter().zip(w).map(|(p, q)| p * q).sum(),
            Scheme::ExactFlow { .. } => w.iter().enumerate().map(|(k, c)| c / (k + 1) as f64).sum(),
        }
    }
}

/// The B-series coefficients `a(τ)` of the integrator for every tree of the table:
/// elementary weights `Φ(τ)` of a Runge–Kutta method, `1/γ(τ)` for the exact flow.
pub(crate) fn integrator_coefficients(table: &TreeTable, scheme: Scheme<'_>) -> Vec<f64> {
    let mut stage: Vec<Vec<f64>> = Vec::with_capacity(table.len());
    let mut coeff = Vec::with_capacity(table.len());
    for id in 0..table.len() {
        let mut w = scheme.one();
        for &c in table.children(id) {
            w = scheme.mul(&w, &scheme.inner(&stage[c as usize]));
        }
        coeff.push(scheme.outer(&w));
        stage.push(w);
    }
    coeff
}

/// Coefficients whose magnitude is below this fraction of the terms they were computed from
/// are rounding residue of an exact cancellation (e.g. the vanishing low-order terms of an
/// order-p method) and are set to zero.
const FLUSH: f64 = 1e-13;

/// Solves `(β ⋆ a)(τ) = target(τ)` for every tree of the table, where `a` are the B-series
/// coefficients of `scheme` (see the module docs). Returns `β`, indexed by tree id.
pub(crate) fn solve_substitution(
    table: &TreeTable,
    scheme: Scheme<'_>,
    target: &[f64],
) -> Vec<f64> {
    let n_max = table.max_order();
    let one = scheme.one();
    let norm = scheme.outer(&one);
    let mut beta = vec![0.0; table.len()];
    // Q(τ) and H(τ), kept only for the trees that can still occur as children.
    let mut roots: Vec<Vec<(TreeId, Vec<f64>)>> = vec![Vec::new(); table.len()];
    let mut hang: Vec<Vec<f64>> = vec![Vec::new(); table.len()];
    for id in 0..table.len() {
        // Partial root pieces: the multiset of kept child pieces (sorted ids) → weight.
        let mut partial: BTreeMap<Vec<TreeId>, Vec<f64>> = BTreeMap::new();
        partial.insert(Vec::new(), one.clone());
        for &c in table.children(id) {
            let c = c as usize;
            let mut next: BTreeMap<Vec<TreeId>, Vec<f64>> = BTreeMap::new();
            for (forest, w) in &partial {
                accumulate(&mut next, forest.clone(), scheme.mul(w, &hang[c]));
                for (u, wu) in &roots[c] {
                    let mut grown = forest.clone();
                    let at = grown.partition_point(|x| x <= u);
                    grown.insert(at, *u);
                    accumulate(&mut next, grown, scheme.mul(w, wu));
                }
            }
            partial = next;
        }
        let mut pieces = Vec::with_capacity(partial.len());
        let mut rest = 0.0;
        let mut scale = target[id].abs();
        let mut d = vec![0.0; scheme.width()];
        for (forest, w) in partial {
            // Every root piece is a subtree of τ, hence in the table.
            let Some(u) = table.graft(&forest) else {
                continue;
            };
            if u as usize != id {
                let bu = beta[u as usize];
                let term = bu * scheme.outer(&w);
                rest += term;
                scale += term.abs();
                d.iter_mut().zip(&w).for_each(|(di, wi)| *di += bu * wi);
            }
            pieces.push((u, w));
        }
        let mut b = (target[id] - rest) / norm;
        if b.abs() <= FLUSH * scale {
            b = 0.0;
        }
        beta[id] = b;
        if table.order(id) < n_max {
            d.iter_mut().zip(&one).for_each(|(di, oi)| *di += b * oi);
            hang[id] = scheme.inner(&d);
            roots[id] = pieces;
        }
    }
    beta
}

fn accumulate(map: &mut BTreeMap<Vec<TreeId>, Vec<f64>>, key: Vec<TreeId>, w: Vec<f64>) {
    match map.get_mut(&key) {
        Some(acc) => acc.iter_mut().zip(&w).for_each(|(a, x)| *a += x),
        None => {
            map.insert(key, w);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tableau::catalogue::EXPLICIT;

    /// `(β ⋆ a)(τ)` by brute force over all edge cuts of a labelled copy of τ, straight from
    /// the partition formula of Chartier–Hairer–Vilmart.
    fn substitution_by_cuts(table: &TreeTable, id: usize, a: &[f64], beta: &[f64]) -> f64 {
        // Labelled tree: parent of each vertex (vertex 0 is the root), in pre-order.
        let mut parent = vec![usize::MAX];
        let mut stack = vec![(id, 0usize)];
        while let Some((t, v)) = stack.pop() {
            for &c in table.children(t) {
                parent.push(v);
                stack.push((c as usize, parent.len() - 1));
            }
        }
        let n = parent.len();
        let mut total = 0.0;
        for mask in 0u32..(1 << (n - 1)) {
            // Edge (parent[v], v) for v ≥ 1 is cut when bit v-1 is set.
            let cut = |v: usize| mask & (1 << (v - 1)) != 0;
            // Piece root of each vertex, and shapes bottom-up (children have larger labels).
            let mut piece_children: Vec<Vec<TreeId>> = vec![Vec::new(); n];
            let mut skel_children: Vec<Vec<TreeId>> = vec![Vec::new(); n];
            let mut piece_root = vec![0usize; n];
            for v in 1..n {
                piece_root[v] = if cut(v) { v } else { piece_root[parent[v]] };
            }
            let mut product = 1.0;
            for v in (0..n).rev() {
                piece_children[v].sort_unstable();
                let shape = table.graft(&piece_children[v]).unwrap();
                if v == 0 || cut(v) {
                    // v roots a piece: its shape is complete.
                    product *= beta[shape as usize];
                    skel_children[v].sort_unstable();
                    let skel = table.graft(&skel_children[v]).unwrap();
                    if v == 0 {
                        total += product * a[skel as usize];
                    } else {
                        let up = piece_root[parent[v]];
                        skel_children[up].push(skel);
                    }
                } else {
                    piece_children[parent[v]].push(shape);
                    let moved = std::mem::take(&mut skel_children[v]);
                    skel_children[piece_root[v]].extend(moved);
                }
            }
        }
        total
    }

    #[test]
    fn factorised_recursion_agrees_with_the_partition_formula() {
        let table = TreeTable::new(7);
        let target: Vec<f64> = (0..table.len()).map(|i| 1.0 / table.gamma(i)).collect();
        for tab in EXPLICIT.iter() {
            let scheme = Scheme::RungeKutta {
                a: tab.a(),
                b: tab.b(),
            };
            let a = integrator_coefficients(&table, scheme);
            let beta = solve_substitution(&table, scheme, &target);
            for (id, want) in target.iter().enumerate() {
                let got = substitution_by_cuts(&table, id, &a, &beta);
                assert!(
                    (got - want).abs() < 1e-12,
                    "{}: tree {}: (β⋆a) = {got}, want {want}",
                    tab.name(),
                    table.tree(id).notation(),
                );
            }
        }
    }

    #[test]
    fn exact_flow_scheme_has_coefficients_one_over_gamma() {
        let table = TreeTable::new(9);
        let e = integrator_coefficients(&table, Scheme::ExactFlow { len: 9 });
        for (id, v) in e.iter().enumerate() {
            assert!((v - 1.0 / table.gamma(id)).abs() < 1e-15);
        }
    }
}
