//! Rooted trees: the index set of B-series.
//!
//! A Runge–Kutta method's numerical solution and the exact flow of `y' = f(y)` both expand as
//! B-series `y + Σ_τ h^|τ| a(τ)/σ(τ) F(τ)(y)` over rooted trees τ (Butcher 1963; Hairer,
//! Lubich, Wanner, *Geometric Numerical Integration*, ch. III). For the exact flow
//! `a(τ) = 1/γ(τ)`; for an RK method `a(τ) = Φ(τ)`, its elementary weight. The method has
//! order p iff `Φ(τ) = 1/γ(τ)` for every tree with `|τ| ≤ p`. This module enumerates trees in
//! canonical form and computes |τ|, γ(τ), σ(τ) and Φ(τ); the inverse modified equation
//! (`analysis::imde`) builds on it.

use std::cmp::Ordering;

/// A rooted tree `τ = [τ₁, …, τₘ]`, stored canonically (children sorted), so that equal
/// trees compare equal.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Tree {
    children: Vec<Tree>,
}

impl PartialOrd for Tree {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Tree {
    fn cmp(&self, other: &Self) -> Ordering {
        self.order()
            .cmp(&other.order())
            .then_with(|| self.children.len().cmp(&other.children.len()))
            .then_with(|| self.children.cmp(&other.children))
    }
}

impl Tree {
    /// The single vertex `•`.
    pub fn leaf() -> Self {
        Tree {
            children: Vec::new(),
        }
    }

    /// `[τ₁, …, τₘ]`: a new root with the given subtrees (canonicalised).
    pub fn graft(mut children: Vec<Tree>) -> Self {
        children.sort();
        Tree { children }
    }

    /// The subtrees of the root.
    pub fn children(&self) -> &[Tree] {
        &self.children
    }

    /// Number of vertices `|τ|`.
    pub fn order(&self) -> usize {
        1 + self.children.iter().map(Tree::order).sum::<usize>()
    }

    /// The density `γ(τ) = |τ| Π γ(τₖ)`; the exact flow's coefficient is `1/γ(τ)`.
    pub fn gamma(&self) -> f64 {
        self.order() as f64 * self.children.iter().map(Tree::gamma).product::<f64>()
    }

    /// The symmetry `σ(τ) = Π σ(τₖ) · Π μᵢ!` with `μᵢ` the multiplicities of equal subtrees.
    pub fn sigma(&self) -> f64 {
        let mut s: f64 = self.children.iter().map(Tree::sigma).product();
        let mut i = 0;
        while i < self.children.len() {
            let mut j = i;
            while j < self.children.len() && self.children[j] == self.children[i] {
                j += 1;
            }
            s *= (1..=(j - i)).map(|k| k as f64).product::<f64>();
            i = j;
        }
        s
    }

    /// Stage weights `Φᵢ(τ) = Πₖ (A Φ(τₖ))ᵢ` of an `s`-stage method (with `Φᵢ(•) = 1`).
    pub fn stage_weights(&self, a: &[Vec<f64>]) -> Vec<f64> {
        let s = a.len();
        let mut w = vec![1.0; s];
        for child in &self.children {
            let g = child.stage_weights(a);
            for (i, wi) in w.iter_mut().enumerate() {
                let ag: f64 = (0..s).map(|j| a[i][j] * g[j]).sum();
                *wi *= ag;
            }
        }
        w
    }

    /// The elementary weight `Φ(τ) = Σᵢ bᵢ Φᵢ(τ)` of the method `(a, b)`.
    pub fn elementary_weight(&self, a: &[Vec<f64>], b: &[f64]) -> f64 {
        self.stage_weights(a)
            .iter()
            .zip(b)
            .map(|(g, bi)| g * bi)
            .sum()
    }

    /// Bracket notation, e.g. `[•,[•]]`.
    pub fn notation(&self) -> String {
        if self.children.is_empty() {
            "•".to_string()
        } else {
            let inner: Vec<String> = self.children.iter().map(Tree::notation).collect();
            format!("[{}]", inner.join(","))
        }
    }
}

/// All rooted trees of order `1..=max_order`, grouped by order (`result[k]` holds the trees of
/// order `k + 1`), each group sorted. Counts are 1, 1, 2, 4, 9, 20, 48, 115, 286, …
pub fn trees_up_to(max_order: usize) -> Vec<Vec<Tree>> {
    let mut by_order: Vec<Vec<Tree>> = Vec::new();
    for n in 1..=max_order {
        let mut found: Vec<Tree> = Vec::new();
        // A tree of order n is a root plus a multiset of subtrees whose orders sum to n - 1.
        let mut stack: Vec<Tree> = Vec::new();
        multisets(&by_order, n - 1, None, &mut stack, &mut found);
        found.sort();
        found.dedup();
        by_order.push(found);
    }
    by_order
}

/// Enumerates non-increasing sequences of subtrees (so each multiset appears once) whose orders
/// sum to `remaining`, each subtree no greater than `bound`.
fn multisets(
    by_order: &[Vec<Tree>],
    remaining: usize,
    bound: Option<&Tree>,
    stack: &mut Vec<Tree>,
    out: &mut Vec<Tree>,
) {
    if remaining == 0 {
        out.push(Tree::graft(stack.clone()));
        return;
    }
    for k in (1..=remaining).rev() {
        for t in &by_order[k - 1] {
            if bound.is_some_and(|b| t > b) {
                continue;
            }
            stack.push(t.clone());
            let last = stack.last().cloned();
            multisets(by_order, remaining - k, last.as_ref(), stack, out);
            stack.pop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_counts_match_oeis_a000081() {
        let counts: Vec<usize> = trees_up_to(9).iter().map(Vec::len).collect();
        assert_eq!(counts, vec![1, 1, 2, 4, 9, 20, 48, 115, 286]);
    }

    #[test]
    fn gamma_and_sigma_of_small_trees() {
        let leaf = Tree::leaf();
        let t2 = Tree::graft(vec![leaf.clone()]);
        let cherry = Tree::graft(vec![leaf.clone(), leaf.clone()]);
        let tall = Tree::graft(vec![t2.clone()]);
        assert_eq!((t2.gamma(), t2.sigma()), (2.0, 1.0));
        assert_eq!((cherry.gamma(), cherry.sigma()), (3.0, 2.0));
        assert_eq!((tall.gamma(), tall.sigma()), (6.0, 1.0));
        // Σ_{|τ|=n} n!/(γ σ) = (number of monotone labellings) sums to (n-1)! for each n.
        for (k, group) in trees_up_to(7).iter().enumerate() {
            let n = k + 1;
            let fact = |m: usize| (1..=m).map(|i| i as f64).product::<f64>();
            let total: f64 = group
                .iter()
                .map(|t| fact(n) / (t.gamma() * t.sigma()))
                .sum();
            assert!((total - fact(n - 1)).abs() < 1e-9, "order {n}: {total}");
        }
    }
}
