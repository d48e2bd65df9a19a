//! Exact TreeSHAP feature contributions for a [`Forest`].
//!
//! This is Lundberg et al.'s polynomial-time path algorithm ("Consistent
//! individualized feature attribution for tree ensembles", Algorithm 2) as
//! LightGBM 4.7 implements it for `pred_contrib` (`Tree::TreeSHAP`,
//! `ExtendPath`, `UnwindPath`, `UnwoundPathSum`): the same cover weights
//! (`internal_count` / `leaf_count`), the same split and missing-value
//! rules as [`Forest::raw_row`], the same arithmetic. A row's contributions
//! plus the expected value add up to its raw score.
//!
//! The algorithm reads a row only through the way it goes at each split, so
//! a tree's contributions are a function of the row's split decisions. Each
//! explainer keeps, per tree of up to 64 splits, the contributions of every
//! decision pattern its threads have met: traffic repeats a small number of
//! patterns per tree, so most rows cost one bitmask and one table lookup
//! per tree instead of a path walk over every leaf. The threads share the
//! tables, so a pattern is walked once, not once per thread. Cached values
//! are the very doubles the walk computes, so results do not depend on
//! what was cached or by which thread.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use crate::error::Result;
use crate::forest::{zeroed, Forest, Missing};

/// Contributions an explainer caches at most, over all trees (32 MiB).
const CACHE_VALUES: usize = 1 << 22;

/// Rows explained together: a tree runs over the whole block with its
/// pattern table in cache, instead of every tree's table being visited for
/// each row in turn.
const BLOCK_ROWS: usize = 16384;

/// Sentinel feature of the path's root element (LightGBM's -1).
const NO_FEATURE: u32 = u32::MAX;

/// A split, as TreeSHAP reads it.
#[derive(Debug, Clone, Copy)]
struct ShapNode {
    threshold: f32,
    slot: u32,
    /// Index into the tree's `features`.
    feature: u32,
    /// Right and left child, as in the forest: internal node `c`, or leaf
    /// `c - internal`.
    children: [u32; 2],
}

#[derive(Debug, Clone)]
struct ShapTree {
    nodes: Vec<ShapNode>,
    /// Training rows through each node, internal nodes then leaves.
    covers: Vec<f64>,
    leaf_values: Vec<f64>,
    /// The model features the tree splits on; its contributions are
    /// computed over these and then added to the row's.
    features: Vec<u32>,
    /// Path elements the walk needs: `(d + 1)(d + 2) / 2` for depth `d`.
    path_len: usize,
}

/// One element of the path of unique features from the root (LightGBM's
/// `PathElement`).
#[derive(Debug, Clone, Copy, Default)]
struct PathElement {
    feature: u32,
    zero: f64,
    one: f64,
    weight: f64,
}

/// TreeSHAP over a forest: plain data, shared by scoring threads, each with
/// its own [`ExplainScratch`].
#[derive(Debug, Clone)]
pub struct Explainer {
    context: String,
    feature_names: Vec<String>,
    slots: Vec<(usize, Missing)>,
    trees: Vec<ShapTree>,
    base_value: f64,
    log_odds_per_raw: f64,
    /// Shared by every scratch (and clone) of this explainer.
    patterns: Arc<SharedPatterns>,
}

/// Each tree's contributions by decision pattern, filled by every thread
/// that explains with the explainer.
#[derive(Debug, Default)]
struct SharedPatterns {
    trees: Vec<RwLock<PatternCache>>,
    /// Values held over all trees, at most `CACHE_VALUES`.
    values: AtomicUsize,
}

/// Per-thread buffers of an [`Explainer`]: the path, a block's slot values,
/// one tree's contributions and the patterns a block is the first to meet.
/// Allocated once; explaining a row allocates only when a block meets a
/// new pattern.
#[derive(Debug)]
pub struct ExplainScratch {
    path: Vec<PathElement>,
    /// Slot values of a block of rows, slot-major: slot `s` of row `r` is
    /// `slots[s * BLOCK_ROWS + r]`.
    slots: Vec<f32>,
    local: Vec<f64>,
    /// Each row's decision pattern in the current tree ...
    patterns: Vec<u64>,
    /// ... and where its contributions are cached (`u32::MAX`: not yet).
    found: Vec<u32>,
    /// Patterns of the current tree that its shared table did not know
    /// when the block was looked up, and their contributions.
    fresh: PatternCache,
    /// Rows of the block with such a pattern.
    missed: Vec<u32>,
}

/// Contributions of one tree by decision pattern (bit `i`: the row goes
/// left at split `i`).
#[derive(Debug, Default)]
struct PatternCache {
    at: HashMap<u64, u32, BuildHasherDefault<PatternHasher>>,
    values: Vec<f64>,
}

/// A multiplicative hash: the keys are bitmasks, not attacker-chosen.
#[derive(Debug, Default)]
struct PatternHasher(u64);

impl Hasher for PatternHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(self.0 ^ u64::from(b));
        }
    }

    fn write_u64(&mut self, x: u64) {
        self.0 = (x ^ (x >> 31)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }

    fn finish(&self) -> u64 {
        self.0 ^ (self.0 >> 29)
    }
}

impl Forest {
    /// The forest's TreeSHAP explainer. Fails if a tree with splits has no
    /// `internal_count`/`leaf_count` lines or a node no training row reached:
    /// the expected values are weighted by those counts.
    pub fn explainer(&self) -> Result<Explainer> {
        let mut trees = Vec::with_capacity(self.trees.len());
        let mut base_value = 0.0;
        for (ti, t) in self.trees.iter().enumerate() {
            let nodes = &self.nodes[t.nodes.clone()];
            let leaf_values = self.leaf_values[t.leaves.clone()].to_vec();
            if nodes.is_empty() {
                // LightGBM's `Tree::ExpectedValue` of a one-leaf tree.
                base_value += leaf_values[0];
                trees.push(ShapTree {
                    nodes: Vec::new(),
                    covers: Vec::new(),
                    leaf_values,
                    features: Vec::new(),
                    path_len: 0,
                });
                continue;
            }
            let covers = self.covers[t.covers.clone()].to_vec();
            if covers.len() != nodes.len() + leaf_values.len() {
                return Err(self.error(format!(
                    "tree {ti} has no `internal_count` and `leaf_count`: explanations need them"
                )));
            }
            if let Some(i) = covers.iter().position(|&c| !(c > 0.0 && c.is_finite())) {
                return Err(self.error(format!(
                    "tree {ti}: node {i} has a cover of {}; explanations need positive counts",
                    covers[i]
                )));
            }
            let mut features: Vec<u32> = Vec::new();
            let mut shap_nodes = Vec::with_capacity(nodes.len());
            for n in nodes {
                let feature = self.slots[n.slot as usize].0 as u32;
                let local = match features.iter().position(|&f| f == feature) {
                    Some(i) => i,
                    None => {
                        features.push(feature);
                        features.len() - 1
                    }
                };
                shap_nodes.push(ShapNode {
                    threshold: n.threshold,
                    slot: n.slot,
                    feature: local as u32,
                    children: n.children,
                });
            }
            // Leaf depths by a walk from the root; the parser checked that
            // the nodes form a tree.
            let internal = nodes.len() as u32;
            let mut depth = 0usize;
            let mut stack = vec![(0u32, 0usize)];
            while let Some((c, d)) = stack.pop() {
                if c >= internal {
                    depth = depth.max(d);
                } else {
                    for child in nodes[c as usize].children {
                        stack.push((child, d + 1));
                    }
                }
            }
            let total = covers[0];
            base_value += leaf_values
                .iter()
                .zip(&covers[nodes.len()..])
                .map(|(v, c)| (c / total) * v)
                .sum::<f64>();
            trees.push(ShapTree {
                nodes: shap_nodes,
                covers,
                leaf_values,
                features,
                path_len: (depth + 1) * (depth + 2) / 2,
            });
        }
        Ok(Explainer {
            context: self.context.clone(),
            feature_names: self.feature_names().to_vec(),
            slots: self.slots.clone(),
            trees,
            base_value,
            log_odds_per_raw: self.log_odds_per_raw(),
            patterns: Arc::new(SharedPatterns {
                trees: (0..self.trees.len()).map(|_| RwLock::default()).collect(),
                values: AtomicUsize::new(0),
            }),
        })
    }
}

impl Explainer {
    /// The expected raw score over the training rows (LightGBM's bias
    /// column of `pred_contrib`): a row's raw score is this plus the sum of
    /// its contributions.
    pub fn base_value(&self) -> f64 {
        self.base_value
    }

    /// Features the model expects, in model order.
    pub fn num_features(&self) -> usize {
        self.feature_names.len()
    }

    /// Feature names, in model order.
    pub fn feature_names(&self) -> &[String] {
        &self.feature_names
    }

    /// Log-odds (the logit of the probability) per unit of raw score: the
    /// objective's sigmoid, over the number of trees for `average_output`.
    pub fn log_odds_per_raw(&self) -> f64 {
        self.log_odds_per_raw
    }

    /// Buffers for one thread.
    pub fn scratch(&self) -> ExplainScratch {
        let path_len = self.trees.iter().map(|t| t.path_len).max().unwrap_or(0);
        let local_len = self.trees.iter().map(|t| t.features.len()).max();
        ExplainScratch {
            path: vec![PathElement::default(); path_len],
            slots: vec![0.0; self.slots.len() * BLOCK_ROWS],
            local: vec![0.0; local_len.unwrap_or(0)],
            patterns: vec![0; BLOCK_ROWS],
            found: vec![0; BLOCK_ROWS],
            fresh: PatternCache::default(),
            missed: Vec::with_capacity(BLOCK_ROWS),
        }
    }

    /// Contributions of one row to its raw score, one per feature, written
    /// to `out` (cleared). Values are read as [`Forest::raw_row`] reads them.
    pub fn explain_row(&self, row: &[f32], scratch: &mut ExplainScratch, out: &mut Vec<f64>) {
        for (column, &(f, m)) in scratch.slots.chunks_exact_mut(BLOCK_ROWS).zip(&self.slots) {
            column[0] = m.apply(row.get(f).copied().map_or(0.0, zeroed));
        }
        out.clear();
        out.resize(self.num_features(), 0.0);
        self.explain_block(scratch, 1, out);
    }

    /// Contributions of every row of column-major input (one column per
    /// feature, in model order), row-major in `out`: row `r`'s are
    /// `out[r * num_features()..][..num_features()]`.
    pub fn explain_columns(
        &self,
        columns: &[&[f32]],
        scratch: &mut ExplainScratch,
        out: &mut Vec<f64>,
    ) -> Result<()> {
        let rows = self.check_columns(columns)?;
        out.clear();
        out.resize(rows * self.num_features(), 0.0);
        self.explain_rows(columns, 0, scratch, out);
        Ok(())
    }

    /// [`Explainer::explain_columns`] on `threads` scoped threads (0 = the
    /// available parallelism), each with its own scratch.
    pub fn explain_columns_parallel(
        &self,
        columns: &[&[f32]],
        threads: usize,
        out: &mut Vec<f64>,
    ) -> Result<()> {
        let rows = self.check_columns(columns)?;
        let nf = self.num_features();
        out.clear();
        out.resize(rows * nf, 0.0);
        let threads = if threads == 0 {
            std::thread::available_parallelism().map_or(1, NonZeroUsize::get)
        } else {
            threads
        };
        let per_thread = rows.div_ceil(threads.clamp(1, rows.max(1))).max(1);
        std::thread::scope(|scope| {
            let mut chunks = out.chunks_mut(per_thread * nf.max(1)).enumerate();
            let first = chunks.next();
            for (i, chunk) in chunks {
                scope.spawn(move || {
                    let mut scratch = self.scratch();
                    self.explain_rows(columns, i * per_thread, &mut scratch, chunk);
                });
            }
            if let Some((_, chunk)) = first {
                self.explain_rows(columns, 0, &mut self.scratch(), chunk);
            }
        });
        Ok(())
    }

    fn check_columns(&self, columns: &[&[f32]]) -> Result<usize> {
        let err = |reason: String| crate::error::Error::Forest {
            context: self.context.clone(),
            reason,
        };
        if columns.len() != self.num_features() {
            return Err(err(format!(
                "{} feature columns given; the model has {} features",
                columns.len(),
                self.num_features()
            )));
        }
        let rows = columns.first().map_or(0, |c| c.len());
        if let Some((f, c)) = columns.iter().enumerate().find(|(_, c)| c.len() != rows) {
            return Err(err(format!(
                "feature column {f} (`{}`) has {} rows; column 0 has {rows}",
                self.feature_names[f],
                c.len()
            )));
        }
        Ok(rows)
    }

    /// Rows `first..` into `out`, `num_features()` contributions a row.
    fn explain_rows(
        &self,
        columns: &[&[f32]],
        first: usize,
        scratch: &mut ExplainScratch,
        out: &mut [f64],
    ) {
        let nf = self.num_features();
        if nf == 0 {
            return;
        }
        for (b, phi) in out.chunks_mut(BLOCK_ROWS * nf).enumerate() {
            let start = first + b * BLOCK_ROWS;
            let rows = phi.len() / nf;
            for (dst, &(f, m)) in scratch.slots.chunks_exact_mut(BLOCK_ROWS).zip(&self.slots) {
                let src = &columns[f][start..start + rows];
                for (d, &v) in dst.iter_mut().zip(src) {
                    *d = m.apply(zeroed(v));
                }
            }
            self.explain_block(scratch, rows, phi);
        }
    }

    /// Adds every tree's contributions to `phi` (zeroed, `num_features()`
    /// a row) for the first `rows` rows of the slot block in `scratch`.
    /// Each row receives the trees in tree order, as a row-by-row walk adds
    /// them, so blocks change no bit of the result.
    fn explain_block(&self, scratch: &mut ExplainScratch, rows: usize, phi: &mut [f64]) {
        let width = self.num_features();
        let ExplainScratch {
            path,
            slots,
            local,
            patterns,
            found,
            fresh,
            missed,
        } = scratch;
        for (t, shared) in self.trees.iter().zip(&self.patterns.trees) {
            let nf = t.features.len();
            if nf == 0 {
                continue;
            }
            let local = &mut local[..nf];
            if t.nodes.len() > 64 {
                for (r, phi) in phi.chunks_exact_mut(width).enumerate() {
                    let goes_left = |i: usize| {
                        let n = &t.nodes[i];
                        slots[n.slot as usize * BLOCK_ROWS + r] <= n.threshold
                    };
                    local.fill(0.0);
                    t.shap(&goes_left, local, path);
                    add(phi, &t.features, local);
                }
                continue;
            }
            let patterns = &mut patterns[..rows];
            patterns.fill(0);
            for (i, n) in t.nodes.iter().enumerate() {
                let column = &slots[n.slot as usize * BLOCK_ROWS..][..rows];
                for (p, &v) in patterns.iter_mut().zip(column) {
                    *p |= u64::from(v <= n.threshold) << i;
                }
            }
            // All lookups first, then all sums: independent lookups overlap
            // their cache misses.
            let found = &mut found[..rows];
            missed.clear();
            {
                let cache = shared.read().unwrap_or_else(PoisonError::into_inner);
                for (f, p) in found.iter_mut().zip(patterns.iter()) {
                    *f = cache.at.get(p).copied().unwrap_or(u32::MAX);
                }
                let rows_phi = phi.chunks_exact_mut(width);
                for (r, (&at, phi)) in found.iter().zip(rows_phi).enumerate() {
                    match at {
                        u32::MAX => missed.push(r as u32),
                        at => add(phi, &t.features, &cache.values[at as usize..][..nf]),
                    }
                }
            }
            if missed.is_empty() {
                continue;
            }
            // New patterns: each walked once in this block, ...
            fresh.at.clear();
            fresh.values.clear();
            for &r in missed.iter() {
                let pattern = patterns[r as usize];
                let at = match fresh.at.get(&pattern) {
                    Some(&at) => at,
                    None => {
                        local.fill(0.0);
                        t.shap(&|i| (pattern >> i) & 1 != 0, local, path);
                        let at = fresh.values.len() as u32;
                        fresh.values.extend_from_slice(local);
                        fresh.at.insert(pattern, at);
                        at
                    }
                };
                let phi = &mut phi[r as usize * width..][..width];
                add(phi, &t.features, &fresh.values[at as usize..][..nf]);
            }
            // ... then shared, while the cache has room (the threads may
            // overshoot it together by a block's patterns).
            let mut cache = shared.write().unwrap_or_else(PoisonError::into_inner);
            for (&pattern, &at) in &fresh.at {
                if self.patterns.values.load(Ordering::Relaxed) + nf > CACHE_VALUES {
                    break;
                }
                if cache.at.contains_key(&pattern) {
                    continue;
                }
                let to = cache.values.len() as u32;
                cache
                    .values
                    .extend_from_slice(&fresh.values[at as usize..][..nf]);
                cache.at.insert(pattern, to);
                self.patterns.values.fetch_add(nf, Ordering::Relaxed);
            }
        }
    }
}

fn add(phi: &mut [f64], features: &[u32], values: &[f64]) {
    for (&f, &v) in features.iter().zip(values) {
        phi[f as usize] += v;
    }
}

impl ShapTree {
    /// LightGBM's `Tree::PredictContrib` for one tree with splits: adds its
    /// contributions to `phi` (indexed like `features`). `left(i)` says
    /// whether the row goes left at split `i`.
    fn shap(&self, left: &impl Fn(usize) -> bool, phi: &mut [f64], path: &mut [PathElement]) {
        self.walk(left, phi, path, 0, 0, 0, 1.0, 1.0, NO_FEATURE);
    }

    /// `Tree::TreeSHAP`: the path so far is `path[parent..parent + depth]`;
    /// this node's copy, extended by the split that led here, starts at
    /// `parent + depth`.
    #[allow(clippy::too_many_arguments)] // LightGBM's recursion, argument for argument
    fn walk(
        &self,
        left: &impl Fn(usize) -> bool,
        phi: &mut [f64],
        path: &mut [PathElement],
        node: u32,
        depth: usize,
        parent: usize,
        zero: f64,
        one: f64,
        feature: u32,
    ) {
        let start = parent + depth;
        if depth > 0 {
            path.copy_within(parent..parent + depth, start);
        }
        extend(&mut path[start..], depth, zero, one, feature);
        let internal = self.nodes.len() as u32;
        if node >= internal {
            let value = self.leaf_values[(node - internal) as usize];
            let here = &path[start..];
            for i in 1..=depth {
                let w = unwound_sum(here, depth, i);
                let el = here[i];
                phi[el.feature as usize] += w * (el.one - el.zero) * value;
            }
            return;
        }
        let n = self.nodes[node as usize];
        let goes_left = left(node as usize);
        let hot = n.children[usize::from(goes_left)];
        let cold = n.children[usize::from(!goes_left)];
        let w = self.covers[node as usize];
        let hot_zero = self.covers[hot as usize] / w;
        let cold_zero = self.covers[cold as usize] / w;
        let (mut incoming_zero, mut incoming_one) = (1.0, 1.0);
        // A feature split on again higher up is undone and redone here.
        let mut depth = depth;
        if let Some(k) = (0..=depth).find(|&k| path[start + k].feature == n.feature) {
            incoming_zero = path[start + k].zero;
            incoming_one = path[start + k].one;
            unwind(&mut path[start..], depth, k);
            depth -= 1;
        }
        self.walk(
            left,
            phi,
            path,
            hot,
            depth + 1,
            start,
            hot_zero * incoming_zero,
            incoming_one,
            n.feature,
        );
        self.walk(
            left,
            phi,
            path,
            cold,
            depth + 1,
            start,
            cold_zero * incoming_zero,
            0.0,
            n.feature,
        );
    }
}

/// `Tree::ExtendPath`.
fn extend(path: &mut [PathElement], depth: usize, zero: f64, one: f64, feature: u32) {
    path[depth] = PathElement {
        feature,
        zero,
        one,
        weight: if depth == 0 { 1.0 } else { 0.0 },
    };
    let d1 = (depth + 1) as f64;
    for i in (0..depth).rev() {
        path[i + 1].weight += one * path[i].weight * (i + 1) as f64 / d1;
        path[i].weight = zero * path[i].weight * (depth - i) as f64 / d1;
    }
}

/// `Tree::UnwindPath`: removes element `index`.
fn unwind(path: &mut [PathElement], depth: usize, index: usize) {
    let PathElement { one, zero, .. } = path[index];
    let d1 = (depth + 1) as f64;
    let mut next_one = path[depth].weight;
    for i in (0..depth).rev() {
        if one != 0.0 {
            let tmp = path[i].weight;
            path[i].weight = next_one * d1 / ((i + 1) as f64 * one);
            next_one = tmp - path[i].weight * zero * (depth - i) as f64 / d1;
        } else {
            path[i].weight = path[i].weight * d1 / (zero * (depth - i) as f64);
        }
    }
    for i in index..depth {
        path[i].feature = path[i + 1].feature;
        path[i].zero = path[i + 1].zero;
        path[i].one = path[i + 1].one;
    }
}

/// `Tree::UnwoundPathSum`: the path's total weight with element `index`
/// removed, without changing the path.
fn unwound_sum(path: &[PathElement], depth: usize, index: usize) -> f64 {
    let PathElement { one, zero, .. } = path[index];
    let d1 = (depth + 1) as f64;
    let mut next_one = path[depth].weight;
    let mut total = 0.0;
    for i in (0..depth).rev() {
        if one != 0.0 {
            let tmp = next_one * d1 / ((i + 1) as f64 * one);
            total += tmp;
            next_one = path[i].weight - tmp * zero * ((depth - i) as f64 / d1);
        } else if zero != 0.0 {
            total += (path[i].weight / zero) / ((depth - i) as f64 / d1);
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One split on feature 0 at 0.5 (NaN right), 30 rows left, 10 right.
    const STUMP: &str = "tree\nversion=v4\nnum_class=1\nnum_tree_per_iteration=1\n\
        label_index=0\nmax_feature_idx=1\nobjective=binary sigmoid:1\n\
        feature_names=a b\nfeature_infos=none none\ntree_sizes=1\n\n\
        Tree=0\nnum_leaves=2\nnum_cat=0\nsplit_feature=0\nthreshold=0.5\n\
        decision_type=8\nleft_child=-1\nright_child=-2\nleaf_value=-1 3\n\
        leaf_count=30 10\ninternal_value=0\ninternal_count=40\nshrinkage=1\n\n\n\
        end of trees\n";

    #[test]
    fn stump_contribution_is_the_leaf_value_minus_the_expected_value() {
        let forest = Forest::parse(STUMP).unwrap_or_else(|e| panic!("{e}"));
        let explainer = forest.explainer().unwrap_or_else(|e| panic!("{e}"));
        // 0.75 * -1 + 0.25 * 3
        assert_eq!(explainer.base_value(), 0.0);
        let mut scratch = explainer.scratch();
        let mut phi = Vec::new();
        for (row, expected) in [
            ([0.2f32, 9.0], -1.0),
            ([0.7, 0.0], 3.0),
            ([f32::NAN, 1.0], 3.0),
        ] {
            explainer.explain_row(&row, &mut scratch, &mut phi);
            assert_eq!(phi, [expected, 0.0], "{row:?}");
        }
    }

    #[test]
    fn models_without_counts_cannot_be_explained() {
        let text = STUMP
            .replace("leaf_count=30 10\n", "")
            .replace("internal_count=40\n", "");
        let forest = Forest::parse(&text).unwrap_or_else(|e| panic!("{e}"));
        let err = forest.explainer().expect_err("no counts").to_string();
        assert!(err.contains("tree 0 has no `internal_count`"), "{err}");
    }
}
