//! The engine-neutral tree as the query sees it (covertreex.tree.TreeArrays), and the checks that make
//! any query over it safe: offsets in range, every child once, every level inside a counter slot, and
//! every subtree minimum what its children give.

use crate::errors::{check_distinct, check_sizes, CoreError, Result};
use crate::levels::DUPLICATE_LEVEL;

/// A compressed cover tree in CSR form; node id == dataset index.
#[derive(Debug, Clone, Copy)]
pub struct TreeView<'a> {
    pub root: i64,
    /// The highest non-duplicate level (slot 0 of the per-level counters).
    pub root_level: i64,
    /// Rows of the per-level counters: every level from root_level down, then one for duplicates.
    pub n_slots: i64,
    pub levels: &'a [i64],
    pub child_offsets: &'a [i64],
    pub children: &'a [i64],
    pub radius: &'a [f64],
    pub is_copy: &'a [bool],
    /// Per node, the smallest dataset index in its subtree (itself included).
    pub subtree_min: &'a [i64],
}

/// More level slots than any tree over float64 distances needs (levels lie within about [-1076, 1025]).
const MAX_SLOTS: i64 = 1 << 16;

fn invalid(reason: String) -> CoreError {
    CoreError::InvalidTree { reason }
}

impl TreeView<'_> {
    pub fn n_points(&self) -> usize {
        self.levels.len()
    }

    pub fn root(&self) -> usize {
        self.root as usize
    }

    pub fn n_slots(&self) -> usize {
        self.n_slots as usize
    }

    /// The children of `node`, as a range of positions into `children`.
    pub fn child_range(&self, node: usize) -> (usize, usize) {
        (
            self.child_offsets[node] as usize,
            self.child_offsets[node + 1] as usize,
        )
    }

    pub fn child(&self, pos: usize) -> usize {
        self.children[pos] as usize
    }

    /// The per-level counter row of `level` (duplicates share the last row).
    pub fn slot(&self, level: i64) -> usize {
        if level == DUPLICATE_LEVEL {
            return self.n_slots() - 1;
        }
        (self.root_level - level) as usize
    }

    /// Check the arrays against each other and against `n_points` indexed points, so that a query walk
    /// stays in bounds: offsets in range, every child once, every level inside a counter slot.
    pub fn check(&self, n_points: usize) -> Result<()> {
        let n = self.levels.len();
        check_sizes(&[
            ("tree size (one node per indexed point)", n_points, n),
            ("tree radius length", n, self.radius.len()),
            ("tree is_copy length", n, self.is_copy.len()),
            ("tree subtree_min length", n, self.subtree_min.len()),
            ("tree child_offsets length", n + 1, self.child_offsets.len()),
        ])?;
        if self.root < 0 || self.root as usize >= n {
            return Err(CoreError::IndexOutOfRange {
                what: "tree root",
                position: 0,
                index: self.root,
                bound: n,
            });
        }
        self.check_levels()?;
        self.check_offsets()?;
        self.check_children()?;
        self.check_subtree_min()
    }

    /// Each node's subtree minimum is the smallest of its own index and its children's minima, so a walk
    /// that skips subtrees by their minimum never skips an eligible index.
    fn check_subtree_min(&self) -> Result<()> {
        for node in 0..self.levels.len() {
            let (start, end) = self.child_range(node);
            let below = self.children[start..end]
                .iter()
                .map(|&c| self.subtree_min[c as usize]);
            let expected = below.fold(node as i64, i64::min);
            if self.subtree_min[node] != expected {
                return Err(invalid(format!(
                    "subtree_min[{node}] = {} is not the smallest index in its subtree ({expected})",
                    self.subtree_min[node]
                )));
            }
        }
        Ok(())
    }

    fn check_offsets(&self) -> Result<()> {
        if self.child_offsets[0] != 0 {
            return Err(invalid("child_offsets[0] must be 0".into()));
        }
        let total = self.children.len() as i64;
        for (node, pair) in self.child_offsets.windows(2).enumerate() {
            if pair[1] < pair[0] || pair[1] > total {
                return Err(invalid(format!(
                    "child_offsets[{}] = {} is not in [{}, {total}]",
                    node + 1,
                    pair[1],
                    pair[0]
                )));
            }
        }
        if self.child_offsets[self.levels.len()] != total {
            return Err(invalid(format!(
                "child_offsets must end at the number of children ({total})"
            )));
        }
        Ok(())
    }

    /// Every child is a valid node other than the root, and appears once.
    fn check_children(&self) -> Result<()> {
        check_distinct("tree children", self.children, self.levels.len())?;
        match self.children.iter().position(|&c| c == self.root) {
            Some(position) => Err(CoreError::RepeatedIndex {
                what: "tree children (the root is nobody's child)",
                position,
                index: self.root,
            }),
            None => Ok(()),
        }
    }

    /// root_level and n_slots are what covertreex.tree.Tree.arrays() derives from the levels, so every
    /// node's level has a counter slot.
    fn check_levels(&self) -> Result<()> {
        let (top, bottom) = self
            .levels
            .iter()
            .filter(|&&l| l != DUPLICATE_LEVEL)
            .fold((i64::MIN, i64::MAX), |(t, b), &l| (t.max(l), b.min(l)));
        if top < bottom {
            return Err(invalid("every node is at the duplicate level".into()));
        }
        let slots = top.checked_sub(bottom).and_then(|r| r.checked_add(2));
        if self.root_level != top || slots != Some(self.n_slots) {
            return Err(invalid(format!(
                "root_level = {} and n_slots = {} do not match the levels (highest {top}, lowest {bottom})",
                self.root_level, self.n_slots
            )));
        }
        if self.n_slots > MAX_SLOTS {
            return Err(invalid(format!(
                "levels span {} slots; float64 distances never need more than {MAX_SLOTS}",
                self.n_slots
            )));
        }
        Ok(())
    }
}

/// Per node, the smallest dataset index in its subtree, itself included: the rust twin of
/// covertreex.tree_structure.subtree_minima (a breadth-first walk from the root, read backwards so each
/// node is settled after its children), so that assembling a tree loads no Numba. The offsets and
/// children are checked as [`TreeView::check`] checks them first, so no input can index out of bounds;
/// a node the walk does not reach keeps its own index.
pub fn subtree_minima(root: i64, child_offsets: &[i64], children: &[i64]) -> Result<Vec<i64>> {
    let n = child_offsets.len().checked_sub(1).ok_or(CoreError::Empty {
        what: "tree child_offsets",
    })?;
    if root < 0 || root as usize >= n {
        return Err(CoreError::IndexOutOfRange {
            what: "tree root",
            position: 0,
            index: root,
            bound: n,
        });
    }
    let levels = vec![0; n]; // only their count is read by the checks below
    let view = TreeView {
        root,
        root_level: 0,
        n_slots: 2,
        levels: &levels,
        child_offsets,
        children,
        radius: &[],
        is_copy: &[],
        subtree_min: &[],
    };
    view.check_offsets()?;
    view.check_children()?;
    let mut walk = Vec::with_capacity(n);
    walk.push(view.root());
    let mut t = 0;
    while t < walk.len() {
        let (start, end) = view.child_range(walk[t]);
        walk.extend(children[start..end].iter().map(|&c| c as usize));
        t += 1;
    }
    let mut minima: Vec<i64> = (0..n as i64).collect();
    for &node in walk.iter().rev() {
        let (start, end) = view.child_range(node);
        for &child in &children[start..end] {
            minima[node] = minima[node].min(minima[child as usize]);
        }
    }
    Ok(minima)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Root 0 at level 1 with children 1 (level 0) and 2 (duplicate); n_slots = 3 (levels 1, 0, dups).
    const LEVELS: [i64; 3] = [1, 0, DUPLICATE_LEVEL];
    const OFFSETS: [i64; 4] = [0, 2, 2, 2];
    const CHILDREN: [i64; 2] = [1, 2];

    fn view<'a>(levels: &'a [i64], offsets: &'a [i64], children: &'a [i64]) -> TreeView<'a> {
        TreeView {
            root: 0,
            root_level: 1,
            n_slots: 3,
            levels,
            child_offsets: offsets,
            children,
            radius: &[1.0, 0.0, 0.0],
            is_copy: &[false, false, true],
            subtree_min: &[0, 1, 2],
        }
    }

    #[test]
    fn accepts_a_well_formed_tree() {
        let tree = view(&LEVELS, &OFFSETS, &CHILDREN);
        tree.check(3).unwrap();
        assert_eq!(tree.slot(1), 0);
        assert_eq!(tree.slot(0), 1);
        assert_eq!(tree.slot(DUPLICATE_LEVEL), 2);
        assert_eq!(tree.child_range(0), (0, 2));
    }

    #[test]
    fn rejects_malformed_trees() {
        assert!(view(&LEVELS, &OFFSETS, &CHILDREN).check(4).is_err());
        assert!(view(&LEVELS, &[0, 2, 1, 2], &CHILDREN).check(3).is_err());
        assert!(view(&LEVELS, &[0, 2, 2, 3], &CHILDREN).check(3).is_err());
        assert!(view(&LEVELS, &OFFSETS, &[1, 1]).check(3).is_err());
        assert!(view(&LEVELS, &OFFSETS, &[0, 2]).check(3).is_err());
        assert!(view(&LEVELS, &OFFSETS, &[1, 3]).check(3).is_err());
        let mut skips_node_0 = view(&LEVELS, &OFFSETS, &CHILDREN);
        skips_node_0.subtree_min = &[1, 1, 2];
        assert!(skips_node_0.check(3).is_err());
        // Level 5 is above the root's: root_level and n_slots no longer describe the levels.
        assert!(view(&[1, 5, DUPLICATE_LEVEL], &OFFSETS, &CHILDREN)
            .check(3)
            .is_err());
        assert!(view(&[1, i64::MIN + 1, 0], &OFFSETS, &CHILDREN)
            .check(3)
            .is_err());
    }

    #[test]
    fn subtree_minima_settle_children_first() {
        // Root 2 over 3 (over 0) and 1: minima 0, 1, 0, 0; the checks' tree gives its own indices.
        assert_eq!(
            subtree_minima(2, &[0, 0, 0, 2, 3], &[3, 1, 0]).unwrap(),
            vec![0, 1, 0, 0]
        );
        assert_eq!(
            subtree_minima(0, &OFFSETS, &CHILDREN).unwrap(),
            vec![0, 1, 2]
        );
    }

    #[test]
    fn subtree_minima_of_malformed_arrays_are_errors() {
        assert!(subtree_minima(0, &[], &[]).is_err());
        assert!(subtree_minima(3, &OFFSETS, &CHILDREN).is_err());
        assert!(subtree_minima(0, &[0, 2, 1, 2], &CHILDREN).is_err());
        assert!(subtree_minima(0, &OFFSETS, &[1, 1]).is_err());
        assert!(subtree_minima(0, &OFFSETS, &[0, 2]).is_err());
        assert!(subtree_minima(0, &OFFSETS, &[1, 9]).is_err());
    }
}
