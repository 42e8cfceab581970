//! Interned rooted trees: every tree up to a given order gets an integer id, so that the
//! substitution law and the elementary differentials can index coefficients and vectors by
//! id instead of comparing [`Tree`] values.
//!
//! Ids are assigned order by order (all trees with `n` vertices before those with `n + 1`), so
//! the children of a tree always have smaller ids than the tree itself: a single pass over the
//! ids in increasing order visits every tree after its subtrees.

use std::collections::HashMap;

use crate::tableau::trees::Tree;

/// Index of a tree in a [`TreeTable`].
pub(crate) type TreeId = u32;

/// All rooted trees with at most `max_order` vertices, interned.
#[derive(Debug, Clone)]
pub(crate) struct TreeTable {
    /// Children of each tree, sorted by id (repeated ids for equal subtrees).
    children: Vec<Vec<TreeId>>,
    /// `|τ|`.
    order: Vec<usize>,
    /// Symmetry `σ(τ)`.
    sigma: Vec<f64>,
    /// Density `γ(τ)`.
    gamma: Vec<f64>,
    /// The trees of order `n` have ids `start[n - 1]..start[n]`.
    start: Vec<usize>,
    /// Sorted children → id.
    index: HashMap<Vec<TreeId>, TreeId>,
}

impl TreeTable {
    /// Enumerates every tree with `1..=max_order` vertices (`max_order ≥ 1`).
    pub(crate) fn new(max_order: usize) -> Self {
        let mut table = TreeTable {
            children: Vec::new(),
            order: Vec::new(),
            sigma: Vec::new(),
            gamma: Vec::new(),
            start: vec![0],
            index: HashMap::new(),
        };
        for n in 1..=max_order.max(1) {
            // A tree of order n is a root plus a multiset of subtrees of total order n - 1,
            // enumerated as non-decreasing id sequences so that each multiset appears once.
            let mut found = Vec::new();
            let mut stack = Vec::new();
            table.multisets(0, n - 1, &mut stack, &mut found);
            for children in found {
                table.push(children);
            }
            table.start.push(table.children.len());
        }
        table
    }

    fn multisets(
        &self,
        min_id: usize,
        remaining: usize,
        stack: &mut Vec<TreeId>,
        out: &mut Vec<Vec<TreeId>>,
    ) {
        if remaining == 0 {
            out.push(stack.clone());
            return;
        }
        // Ids of the trees with at most `remaining` vertices.
        let end = self.start[remaining];
        for id in min_id..end {
            stack.push(id as TreeId);
            self.multisets(id, remaining - self.order[id], stack, out);
            stack.pop();
        }
    }

    fn push(&mut self, children: Vec<TreeId>) {
        let id = self.children.len() as TreeId;
        let n = 1 + children
            .iter()
            .map(|&c| self.order[c as usize])
            .sum::<usize>();
        let mut sigma: f64 = children.iter().map(|&c| self.sigma[c as usize]).product();
        let mut run = 1usize;
        for w in children.windows(2) {
            if w[0] == w[1] {
                run += 1;
                sigma *= run as f64;
            } else {
                run = 1;
            }
        }
        let gamma = n as f64
            * children
                .iter()
                .map(|&c| self.gamma[c as usize])
                .product::<f64>();
        self.index.insert(children.clone(), id);
        self.children.push(children);
        self.order.push(n);
        self.sigma.push(sigma);
        self.gamma.push(gamma);
    }

    /// Number of trees.
    pub(crate) fn len(&self) -> usize {
        self.children.len()
    }

    /// The largest order enumerated.
    pub(crate) fn max_order(&self) -> usize {
        self.start.len() - 1
    }

    /// Ids of the trees with exactly `n` vertices.
    pub(crate) fn ids_of_order(&self, n: usize) -> std::ops::Range<usize> {
        if n == 0 || n > self.max_order() {
            return 0..0;
        }
        self.start[n - 1]..self.start[n]
    }

    /// Children of tree `id`, sorted by id.
    pub(crate) fn children(&self, id: usize) -> &[TreeId] {
        &self.children[id]
    }

    /// `|τ|`.
    pub(crate) fn order(&self, id: usize) -> usize {
        self.order[id]
    }

    /// `σ(τ)`.
    pub(crate) fn sigma(&self, id: usize) -> f64 {
        self.sigma[id]
    }

    /// `γ(τ)`.
    pub(crate) fn gamma(&self, id: usize) -> f64 {
        self.gamma[id]
    }

    /// The tree `[children…]`, if its order is within the table (`children` sorted by id).
    pub(crate) fn graft(&self, children: &[TreeId]) -> Option<TreeId> {
        self.index.get(children).copied()
    }

    /// The id of a tree, or `None` when it has more vertices than the table holds.
    pub(crate) fn id_of(&self, tree: &Tree) -> Option<TreeId> {
        let mut ids = tree
            .children()
            .iter()
            .map(|c| self.id_of(c))
            .collect::<Option<Vec<_>>>()?;
        ids.sort_unstable();
        self.graft(&ids)
    }

    /// The tree with id `id`.
    pub(crate) fn tree(&self, id: usize) -> Tree {
        Tree::graft(
            self.children[id]
                .iter()
                .map(|&c| self.tree(c as usize))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tableau::trees::trees_up_to;

    #[test]
    fn table_enumerates_the_same_trees_as_trees_up_to() {
        let table = TreeTable::new(8);
        let reference = trees_up_to(8);
        for (k, group) in reference.iter().enumerate() {
            let ids = table.ids_of_order(k + 1);
            assert_eq!(ids.len(), group.len(), "order {}", k + 1);
            for t in group {
                let id = table.id_of(t).expect("tree missing from the table") as usize;
                assert!(ids.contains(&id));
                assert_eq!(&table.tree(id), t);
                assert_eq!(table.sigma(id), t.sigma(), "σ of {}", t.notation());
                assert_eq!(table.gamma(id), t.gamma(), "γ of {}", t.notation());
                assert_eq!(table.order(id), t.order());
            }
        }
        // Children precede their parents.
        for id in 0..table.len() {
            assert!(table.children(id).iter().all(|&c| (c as usize) < id));
        }
    }

    #[test]
    fn counts_up_to_order_thirteen() {
        let table = TreeTable::new(13);
        let counts: Vec<usize> = (1..=13).map(|n| table.ids_of_order(n).len()).collect();
        assert_eq!(
            counts,
            vec![1, 1, 2, 4, 9, 20, 48, 115, 286, 719, 1842, 4766, 12486]
        );
    }
}
