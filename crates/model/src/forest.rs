//! A pure-Rust predictor for LightGBM text models.
//!
//! LightGBM's C API predicts slowly here (it converts and allocates per row,
//! and its `Booster` is not `Send`), so scoring reads the model text itself.
//! The semantics follow LightGBM 4.7 exactly (`Tree::NumericalDecision`,
//! `GBDT::Predict`, the C API's dense-row conversion and
//! `BinaryLogloss::ConvertOutput`): for the same f32 input the scores are
//! the same doubles LightGBM returns.
//!
//! Batches are scored QuickScorer-style (Lucchese et al., SIGIR 2015): every
//! split of a tree is tested on every row of a block, each failed test
//! clears the leaves of its left subtree from the row's leaf bitmask, and the
//! lowest remaining bit is the exit leaf. Those tests are branch-free loops
//! over contiguous columns that the compiler vectorises, where walking trees
//! row by row stalls on one dependent load per level.
//!
//! Only what the trainer produces is supported: binary models with one tree
//! per iteration and numerical splits. Multiclass, other objectives,
//! categorical splits and linear trees are rejected with [`Error::Forest`].

use std::num::NonZeroUsize;
use std::ops::{BitAnd, BitAndAssign, BitOr, Range};
use std::sync::{Mutex, PoisonError};

use crate::error::{Error, Result};

/// LightGBM's `kZeroThreshold` (`1e-35f`): the C API drops dense values at
/// most this far from zero, so the trees see them as exactly 0.
const ZERO_THRESHOLD: f32 = 1e-35;

/// Rows per block: the block's slot columns (rows x slots x 4 bytes) and one
/// tree's leaf masks stay in L1/L2 cache while every tree runs over them.
const BLOCK_ROWS: usize = 256;

/// Split tests applied per pass over the leaf masks: fusing them saves a
/// load and a store of each mask per test. Trees' tests are padded to it,
/// and `Forest::add_masked` unrolls exactly this many.
const FUSED: usize = 4;

/// How a slot presents missing values so that a plain `v <= threshold`
/// sends them the right way: NaN fails every comparison (goes right) and
/// -inf passes every one a non-NaN threshold allows (goes left).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Missing {
    /// NaN goes right; 0 is compared as a value.
    NanRight,
    /// NaN goes left (as -inf); 0 is compared as a value.
    NanLeft,
    /// NaN and 0 go right (both become NaN): `MissingType::Zero`.
    ZeroRight,
    /// NaN and 0 go left (both become -inf): `MissingType::Zero`.
    ZeroLeft,
}

impl Missing {
    /// The value a node sees, from a value already zeroed like the C API does.
    #[inline(always)]
    pub(crate) fn apply(self, v: f32) -> f32 {
        match self {
            Missing::NanRight => v,
            Missing::NanLeft if v.is_nan() => f32::NEG_INFINITY,
            Missing::NanLeft => v,
            Missing::ZeroRight if v == 0.0 => f32::NAN,
            Missing::ZeroRight => v,
            Missing::ZeroLeft if v.is_nan() || v == 0.0 => f32::NEG_INFINITY,
            Missing::ZeroLeft => v,
        }
    }

    /// `apply` over a column, with the match outside the loop so that each
    /// arm vectorises.
    fn apply_all(self, src: &[f32], dst: &mut [f32]) {
        let pairs = dst.iter_mut().zip(src);
        match self {
            Missing::NanRight => pairs.for_each(|(d, &v)| *d = zeroed(v)),
            Missing::NanLeft => pairs.for_each(|(d, &v)| *d = Missing::NanLeft.apply(zeroed(v))),
            Missing::ZeroRight => {
                pairs.for_each(|(d, &v)| *d = Missing::ZeroRight.apply(zeroed(v)))
            }
            Missing::ZeroLeft => pairs.for_each(|(d, &v)| *d = Missing::ZeroLeft.apply(zeroed(v))),
        }
    }
}

/// An internal node, for walking a tree one row at a time.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Node {
    /// The largest f32 at or below LightGBM's f64 threshold: for any f32
    /// value `v`, `v <= threshold` iff `v as f64 <= lightgbm_threshold`.
    pub(crate) threshold: f32,
    /// Index of the (feature, [`Missing`]) slot this node reads.
    pub(crate) slot: u32,
    /// Right and left child (indexed by "goes left"): below the tree's
    /// internal node count a node, else `internal + leaf`.
    pub(crate) children: [u32; 2],
}

/// One split as a QuickScorer test.
#[derive(Debug, Clone, Copy)]
struct Test {
    threshold: f32,
    slot: u32,
    /// Leaf bits (in left-to-right leaf order) that survive when the test
    /// fails: all but the left subtree's.
    keep: u64,
}

/// How a batch scores a tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kernel {
    /// One leaf: its value.
    Constant,
    /// Up to 32 leaves: u32 masks.
    Narrow,
    /// Up to 64 leaves: u64 masks.
    Wide,
    /// More leaves: walk each row.
    Walk,
}

/// Where one tree's parts sit in the [`Forest`] arrays.
#[derive(Debug, Clone)]
pub(crate) struct Tree {
    /// Internal nodes in `Forest::nodes`.
    pub(crate) nodes: Range<usize>,
    /// Leaf values in LightGBM's leaf order in `Forest::leaf_values`.
    pub(crate) leaves: Range<usize>,
    /// Training rows that reached each node (`internal_count`, then
    /// `leaf_count`, indexed like `Node::children`) in `Forest::covers`;
    /// empty when the model text has no counts. TreeSHAP weighs by them.
    pub(crate) covers: Range<usize>,
    /// Tests in `Forest::tests`, padded to a multiple of [`FUSED`].
    tests: Range<usize>,
    /// Start of the leaf values in left-to-right order in
    /// `Forest::ordered`, padded with NaN to 33 or 65 entries so that any
    /// mask's trailing zero count indexes them.
    ordered: usize,
    kernel: Kernel,
}

/// Leaf bitmasks of one row in one tree.
trait LeafMask: Copy + BitAnd<Output = Self> + BitOr<Output = Self> + BitAndAssign {
    const ALL: Self;
    const NONE: Self;
    /// Entries of `Tree::ordered`: one per bit, plus one.
    const SLOTS: usize;
    fn from_keep(keep: u64) -> Self;
    fn lowest(self) -> usize;
}

impl LeafMask for u32 {
    const ALL: Self = u32::MAX;
    const NONE: Self = 0;
    const SLOTS: usize = 33;
    #[inline(always)]
    fn from_keep(keep: u64) -> Self {
        // Trees with at most 32 leaves use the low bits only.
        keep as u32
    }
    #[inline(always)]
    fn lowest(self) -> usize {
        self.trailing_zeros() as usize
    }
}

impl LeafMask for u64 {
    const ALL: Self = u64::MAX;
    const NONE: Self = 0;
    const SLOTS: usize = 65;
    #[inline(always)]
    fn from_keep(keep: u64) -> Self {
        keep
    }
    #[inline(always)]
    fn lowest(self) -> usize {
        self.trailing_zeros() as usize
    }
}

/// A LightGBM binary model read from its text form, ready to score rows.
///
/// It is plain data, so it is `Send + Sync` and can be shared by scoring
/// threads, unlike LightGBM's `Booster`.
#[derive(Debug, Clone)]
pub struct Forest {
    pub(crate) context: String,
    feature_names: Vec<String>,
    sigmoid: f64,
    /// `average_output` (random forest boosting): LightGBM divides the raw
    /// score by the number of iterations.
    average_output: bool,
    /// The (feature, missing handling) pairs that splits read; a row's
    /// slot values are these, in order.
    pub(crate) slots: Vec<(usize, Missing)>,
    pub(crate) trees: Vec<Tree>,
    pub(crate) nodes: Vec<Node>,
    pub(crate) leaf_values: Vec<f64>,
    pub(crate) covers: Vec<f64>,
    tests: Vec<Test>,
    ordered: Vec<f64>,
}

impl Forest {
    /// Reads a model as written by LightGBM's `Booster::save_string`.
    /// Errors name the context `forest`; see [`Forest::parse_with_context`].
    pub fn parse(model_text: &str) -> Result<Forest> {
        Self::parse_with_context("forest", model_text)
    }

    /// Like [`Forest::parse`], with errors (now and when predicting) naming
    /// `context`, e.g. ``model `uwf_recon` ``.
    pub fn parse_with_context(context: &str, model_text: &str) -> Result<Forest> {
        Parser {
            context,
            lines: model_text.lines().enumerate().peekable(),
        }
        .forest()
    }

    /// Features the model expects, in order (`max_feature_idx + 1`).
    pub fn num_features(&self) -> usize {
        self.feature_names.len()
    }

    /// Feature names from the model text, in model order.
    pub fn feature_names(&self) -> &[String] {
        &self.feature_names
    }

    /// Trees in the model (one per iteration).
    pub fn num_trees(&self) -> usize {
        self.trees.len()
    }

    /// The sigmoid parameter of the binary objective.
    pub fn sigmoid(&self) -> f64 {
        self.sigmoid
    }

    /// Raw score of one row as LightGBM's raw-score prediction gives it: the
    /// sum of its leaf values in tree order (not divided by the number of
    /// trees for `average_output` models; LightGBM does not either). NaN is
    /// a missing value. Features beyond the end of `row` count as 0, as
    /// absent values do in LightGBM's sparse input; extra values are ignored.
    ///
    /// This walks each tree, independently of the batch scorer, so tests
    /// can check one against the other.
    pub fn raw_row(&self, row: &[f32]) -> f64 {
        let slots: Vec<f32> = self
            .slots
            .iter()
            .map(|&(f, m)| m.apply(row.get(f).copied().map_or(0.0, zeroed)))
            .collect();
        let mut raw = 0.0;
        for t in &self.trees {
            raw += self.walk(t, |slot| slots[slot]);
        }
        raw
    }

    /// Probability of the positive class for one row; see [`Forest::raw_row`].
    pub fn predict_row(&self, row: &[f32]) -> f64 {
        self.probability(self.average(self.raw_row(row)))
    }

    /// Probabilities of every row of column-major input: one equally long
    /// column per feature, in model order; NaN is a missing value. `out` is
    /// cleared and filled with one score per row. Runs on the calling thread.
    pub fn predict_columns(&self, columns: &[&[f32]], out: &mut Vec<f64>) -> Result<()> {
        let rows = self.check_columns(columns)?;
        out.clear();
        out.resize(rows, 0.0);
        self.score_rows(columns, 0, out);
        Ok(())
    }

    /// [`Forest::predict_columns`] on `threads` scoped threads (0 = the
    /// available parallelism), the calling thread among them. Each row is
    /// scored the same way whichever thread takes it, so results do not
    /// depend on the thread count.
    pub fn predict_columns_parallel(
        &self,
        columns: &[&[f32]],
        threads: usize,
        out: &mut Vec<f64>,
    ) -> Result<()> {
        let rows = self.check_columns(columns)?;
        out.clear();
        out.resize(rows, 0.0);
        let threads = if threads == 0 {
            std::thread::available_parallelism().map_or(1, NonZeroUsize::get)
        } else {
            threads
        };
        let threads = threads.min(rows.div_ceil(BLOCK_ROWS)).max(1);
        if threads == 1 {
            self.score_rows(columns, 0, out);
            return Ok(());
        }
        // Chunks of a few blocks handed out from a queue: threads that finish
        // early take more, and if a thread cannot start the others (and the
        // calling thread) still score every chunk.
        let chunk_rows = (BLOCK_ROWS * 32).min(rows.div_ceil(threads).next_multiple_of(BLOCK_ROWS));
        let queue: Mutex<Vec<(usize, &mut [f64])>> = Mutex::new(
            out.chunks_mut(chunk_rows)
                .enumerate()
                .map(|(i, c)| (i * chunk_rows, c))
                .rev()
                .collect(),
        );
        let work = || loop {
            let next = queue.lock().unwrap_or_else(PoisonError::into_inner).pop();
            match next {
                Some((first, chunk)) => self.score_rows(columns, first, chunk),
                None => break,
            }
        };
        std::thread::scope(|scope| {
            for i in 1..threads {
                let spawned = std::thread::Builder::new()
                    .name(format!("forest-{i}"))
                    .spawn_scoped(scope, work);
                if let Err(e) = spawned {
                    tracing::debug!("forest: could not start scoring thread {i}: {e}");
                    break;
                }
            }
            work();
        });
        Ok(())
    }

    fn check_columns(&self, columns: &[&[f32]]) -> Result<usize> {
        if columns.len() != self.num_features() {
            return Err(self.error(format!(
                "{} feature columns given; the model has {} features",
                columns.len(),
                self.num_features()
            )));
        }
        let rows = columns.first().map_or(0, |c| c.len());
        if let Some((f, c)) = columns.iter().enumerate().find(|(_, c)| c.len() != rows) {
            return Err(self.error(format!(
                "feature column {f} (`{}`) has {} rows; column 0 has {rows}",
                self.feature_names[f],
                c.len()
            )));
        }
        Ok(rows)
    }

    pub(crate) fn error(&self, reason: String) -> Error {
        Error::Forest {
            context: self.context.clone(),
            reason,
        }
    }

    /// Scores rows `first..first + out.len()` block by block.
    fn score_rows(&self, columns: &[&[f32]], first: usize, out: &mut [f64]) {
        // Slot-major: slot `s` of row `r` is `block[s * BLOCK_ROWS + r]`, so
        // a test reads a contiguous column.
        let mut block = vec![0.0f32; BLOCK_ROWS * self.slots.len().max(1)];
        let mut acc = [0.0f64; BLOCK_ROWS];
        for (b, out) in out.chunks_mut(BLOCK_ROWS).enumerate() {
            let start = first + b * BLOCK_ROWS;
            let rows = out.len();
            for (dst, &(f, m)) in block.chunks_exact_mut(BLOCK_ROWS).zip(&self.slots) {
                m.apply_all(&columns[f][start..start + rows], dst);
            }
            let acc = &mut acc[..rows];
            acc.fill(0.0);
            // Trees in the outer loop add leaf values to each row in
            // LightGBM's order, so the sums are the same bit for bit.
            for t in &self.trees {
                match t.kernel {
                    Kernel::Constant => {
                        let v = self.leaf_values[t.leaves.start];
                        acc.iter_mut().for_each(|a| *a += v);
                    }
                    Kernel::Narrow => self.add_masked::<u32>(t, &block, acc),
                    Kernel::Wide => self.add_masked::<u64>(t, &block, acc),
                    Kernel::Walk => self.add_walked(t, &block, acc),
                }
            }
            for (o, &raw) in out.iter_mut().zip(acc.iter()) {
                *o = self.probability(self.average(raw));
            }
        }
    }

    /// Adds one tree's leaf value to each row of the block, QuickScorer-style.
    fn add_masked<M: LeafMask>(&self, t: &Tree, block: &[f32], acc: &mut [f64]) {
        let ordered = &self.ordered[t.ordered..t.ordered + M::SLOTS];
        let rows = acc.len();
        let mut masks = [M::ALL; BLOCK_ROWS];
        let masks = &mut masks[..rows];
        let column = |test: &Test| &block[test.slot as usize * BLOCK_ROWS..][..rows];
        #[inline(always)]
        fn pass<M: LeafMask>(v: f32, threshold: f32, keep: M) -> M {
            (if v <= threshold { M::ALL } else { M::NONE }) | keep
        }
        for quad in self.tests[t.tests.clone()].chunks_exact(FUSED) {
            let [a, b, c, d] = [quad[0], quad[1], quad[2], quad[3]];
            let (ka, kb, kc, kd) = (
                M::from_keep(a.keep),
                M::from_keep(b.keep),
                M::from_keep(c.keep),
                M::from_keep(d.keep),
            );
            let rows = masks
                .iter_mut()
                .zip(column(&a))
                .zip(column(&b))
                .zip(column(&c))
                .zip(column(&d));
            for ((((m, &va), &vb), &vc), &vd) in rows {
                *m &= pass(va, a.threshold, ka)
                    & pass(vb, b.threshold, kb)
                    & pass(vc, c.threshold, kc)
                    & pass(vd, d.threshold, kd);
            }
        }
        for (a, &m) in acc.iter_mut().zip(masks.iter()) {
            // The exit leaf's bit is never cleared, so the lowest set bit is
            // a real leaf; `ordered` has an entry for every count anyway.
            *a += ordered[m.lowest()];
        }
    }

    /// Adds one tree's leaf value to each row of the block by walking it.
    fn add_walked(&self, t: &Tree, block: &[f32], acc: &mut [f64]) {
        for (r, a) in acc.iter_mut().enumerate() {
            *a += self.walk(t, |slot| block[slot * BLOCK_ROWS + r]);
        }
    }

    /// The leaf value a row reaches, `value(slot)` giving its slot values.
    #[inline]
    fn walk(&self, t: &Tree, value: impl Fn(usize) -> f32) -> f64 {
        let nodes = &self.nodes[t.nodes.clone()];
        let internal = nodes.len() as u32;
        let mut i = 0u32;
        while i < internal {
            let n = &nodes[i as usize];
            i = n.children[usize::from(value(n.slot as usize) <= n.threshold)];
        }
        self.leaf_values[t.leaves.start + (i - internal) as usize]
    }

    /// Log-odds per unit of raw score: the sigmoid, over the number of
    /// trees for `average_output` models.
    pub(crate) fn log_odds_per_raw(&self) -> f64 {
        self.average(self.sigmoid)
    }

    fn average(&self, raw: f64) -> f64 {
        if self.average_output {
            raw / self.trees.len() as f64
        } else {
            raw
        }
    }

    /// `BinaryLogloss::ConvertOutput`.
    fn probability(&self, raw: f64) -> f64 {
        1.0 / (1.0 + (-self.sigmoid * raw).exp())
    }
}

/// The C API keeps a dense value only if `|v| > kZeroThreshold` or it is
/// NaN; anything else reaches the trees as 0.
#[inline(always)]
pub(crate) fn zeroed(v: f32) -> f32 {
    if v.abs() <= ZERO_THRESHOLD {
        0.0
    } else {
        v
    }
}

/// The largest f32 at or below `x`, so that f32 comparisons against it
/// agree with LightGBM's comparison of the value widened to f64.
fn f32_at_or_below(x: f64) -> f32 {
    let t = x as f32;
    if f64::from(t) > x {
        // t is above a non-NaN x, so t is not -inf.
        if t == 0.0 {
            -f32::from_bits(1)
        } else if t > 0.0 {
            f32::from_bits(t.to_bits() - 1)
        } else {
            f32::from_bits(t.to_bits() + 1)
        }
    } else {
        t
    }
}

/// LightGBM's `Common::Atof`, which reads the objective's `sigmoid:`
/// parameter: it is not correctly rounded, so `str::parse` could differ in
/// the last bit for some spellings.
fn lightgbm_atof(s: &str) -> Option<f64> {
    fn pow(base: f64, power: i32) -> f64 {
        if power < 0 {
            1.0 / pow(base, -power)
        } else if power == 0 {
            1.0
        } else if power % 2 == 0 {
            pow(base * base, power / 2)
        } else if power % 3 == 0 {
            pow(base * base * base, power / 3)
        } else {
            base * pow(base, power - 1)
        }
    }
    let b = s.trim_start_matches(' ').as_bytes();
    let mut p = 0;
    let at = |p: usize| b.get(p).copied().unwrap_or(0);
    let mut sign = 1.0;
    if at(p) == b'-' {
        sign = -1.0;
        p += 1;
    } else if at(p) == b'+' {
        p += 1;
    }
    let c = at(p);
    if !(c.is_ascii_digit() || c == b'.' || c == b'e' || c == b'E') {
        let word = s[s.len() - (b.len() - p)..].trim().to_ascii_lowercase();
        return match word.as_str() {
            "na" | "nan" | "null" => Some(f64::NAN),
            "inf" | "infinity" => Some(sign * 1e308),
            _ => None,
        };
    }
    let mut value = 0.0f64;
    while at(p).is_ascii_digit() {
        value = value * 10.0 + f64::from(at(p) - b'0');
        p += 1;
    }
    if at(p) == b'.' {
        p += 1;
        let (mut right, mut nn) = (0.0f64, 0i32);
        while at(p).is_ascii_digit() {
            right = f64::from(at(p) - b'0') + right * 10.0;
            nn = nn.saturating_add(1);
            p += 1;
        }
        value += right / pow(10.0, nn);
    }
    let (mut frac, mut scale) = (false, 1.0f64);
    if at(p) == b'e' || at(p) == b'E' {
        p += 1;
        if at(p) == b'-' {
            frac = true;
            p += 1;
        } else if at(p) == b'+' {
            p += 1;
        }
        let mut expon = 0u32;
        while at(p).is_ascii_digit() {
            expon = expon.wrapping_mul(10).wrapping_add(u32::from(at(p) - b'0'));
            p += 1;
        }
        expon = expon.min(308);
        while expon >= 50 {
            scale *= 1e50;
            expon -= 50;
        }
        while expon >= 8 {
            scale *= 1e8;
            expon -= 8;
        }
        while expon > 0 {
            scale *= 10.0;
            expon -= 1;
        }
    }
    Some(sign * if frac { value / scale } else { value * scale })
}

type Lines<'a> = std::iter::Peekable<std::iter::Enumerate<std::str::Lines<'a>>>;

struct Parser<'a> {
    context: &'a str,
    lines: Lines<'a>,
}

/// A tree as written in the text, before it becomes [`Node`]s.
#[derive(Default)]
struct RawTree {
    line: usize,
    num_leaves: Option<usize>,
    split_feature: Vec<i64>,
    threshold: Vec<f64>,
    decision_type: Vec<i8>,
    left_child: Vec<i64>,
    right_child: Vec<i64>,
    leaf_value: Vec<f64>,
    internal_count: Vec<f64>,
    leaf_count: Vec<f64>,
}

impl<'a> Parser<'a> {
    fn error(&self, line: Option<usize>, reason: impl std::fmt::Display) -> Error {
        Error::Forest {
            context: self.context.to_string(),
            reason: match line {
                Some(l) => format!("model text line {}: {reason}", l + 1),
                None => format!("model text: {reason}"),
            },
        }
    }

    fn forest(mut self) -> Result<Forest> {
        match self.lines.next() {
            Some((_, "tree")) => {}
            _ => {
                return Err(self.error(
                    Some(0),
                    "not a LightGBM text model (the first line is not `tree`)",
                ))
            }
        }
        let header = self.header();
        let get = |key: &str| header.iter().find(|(_, k, _)| *k == key).copied();
        let require = |key: &str| {
            get(key).ok_or_else(|| self.error(None, format!("the header has no `{key}`")))
        };
        let int = |(line, key, value): (usize, &str, &str)| {
            value
                .trim()
                .parse::<i64>()
                .map_err(|_| self.error(Some(line), format!("`{key}={value}` is not an integer")))
        };

        let num_class = int(require("num_class")?)?;
        if num_class != 1 {
            return Err(self.error(
                get("num_class").map(|h| h.0),
                format!("num_class={num_class}: only binary models (num_class=1) are supported"),
            ));
        }
        if let Some(h) = get("num_tree_per_iteration") {
            let n = int(h)?;
            if n != 1 {
                return Err(self.error(
                    Some(h.0),
                    format!("num_tree_per_iteration={n}: only one tree per iteration is supported"),
                ));
            }
        }
        let (obj_line, _, objective) = require("objective")?;
        let sigmoid = self.sigmoid(obj_line, objective)?;
        let max_feature_idx = int(require("max_feature_idx")?)?;
        let num_features = max_feature_idx
            .checked_add(1)
            .and_then(|n| usize::try_from(n).ok())
            .filter(|&n| n >= 1 && u32::try_from(n).is_ok())
            .ok_or_else(|| {
                self.error(
                    get("max_feature_idx").map(|h| h.0),
                    format!("max_feature_idx={max_feature_idx} is out of range"),
                )
            })?;
        let (names_line, _, names) = require("feature_names")?;
        let feature_names: Vec<String> =
            names.split_ascii_whitespace().map(str::to_string).collect();
        if feature_names.len() != num_features {
            return Err(self.error(
                Some(names_line),
                format!(
                    "{} feature names for max_feature_idx={max_feature_idx}",
                    feature_names.len()
                ),
            ));
        }
        let average_output = get("average_output").is_some();

        let mut forest = Forest {
            context: self.context.to_string(),
            feature_names,
            sigmoid,
            average_output,
            slots: Vec::new(),
            trees: Vec::new(),
            nodes: Vec::new(),
            leaf_values: Vec::new(),
            covers: Vec::new(),
            tests: Vec::new(),
            ordered: Vec::new(),
        };
        loop {
            let Some((line, text)) = self.lines.next() else {
                return Err(self.error(None, "no `end of trees` line: the text is truncated"));
            };
            if text == "end of trees" {
                break;
            }
            if text.is_empty() {
                continue;
            }
            let Some(id) = text.strip_prefix("Tree=") else {
                return Err(self.error(
                    Some(line),
                    format!("expected `Tree={}` or `end of trees`", forest.trees.len()),
                ));
            };
            if id.parse::<usize>().ok() != Some(forest.trees.len()) {
                return Err(self.error(
                    Some(line),
                    format!(
                        "`{text}` out of order: expected Tree={}",
                        forest.trees.len()
                    ),
                ));
            }
            let raw = self.tree(line)?;
            self.add_tree(&mut forest, raw)?;
        }
        Ok(forest)
    }

    /// `key=value` lines up to the first tree. A line without `=` is a key
    /// with an empty value (`average_output` is written that way).
    fn header(&mut self) -> Vec<(usize, &'a str, &'a str)> {
        let mut out = Vec::new();
        while let Some(&(line, text)) = self.lines.peek() {
            if text.starts_with("Tree=") || text == "end of trees" {
                break;
            }
            self.lines.next();
            if !text.is_empty() {
                let (k, v) = text.split_once('=').unwrap_or((text, ""));
                out.push((line, k, v));
            }
        }
        out
    }

    /// `binary sigmoid:<x>`, read as LightGBM's `BinaryLogloss` does.
    fn sigmoid(&self, line: usize, objective: &str) -> Result<f64> {
        let mut tokens = objective.split_ascii_whitespace();
        let name = tokens.next().unwrap_or("");
        if name != "binary" {
            return Err(self.error(
                Some(line),
                format!("objective `{name}`: only the binary objective is supported"),
            ));
        }
        let mut sigmoid = -1.0;
        for t in tokens {
            if let Some(("sigmoid", v)) = t.split_once(':') {
                sigmoid = lightgbm_atof(v).ok_or_else(|| {
                    self.error(Some(line), format!("`{t}`: the sigmoid is not a number"))
                })?;
            }
        }
        // LightGBM checks `sigmoid_ <= 0`; NaN and infinity are refused too.
        if !sigmoid.is_finite() || sigmoid <= 0.0 {
            return Err(self.error(
                Some(line),
                format!("objective `{objective}`: the sigmoid must be a positive number"),
            ));
        }
        Ok(sigmoid)
    }

    /// The `key=value` lines of one tree, up to a blank line.
    fn tree(&mut self, tree_line: usize) -> Result<RawTree> {
        let mut fields: Vec<(usize, &'a str, &'a str)> = Vec::new();
        while let Some(&(line, text)) = self.lines.peek() {
            if text.is_empty() || text.starts_with("Tree=") || text == "end of trees" {
                break;
            }
            self.lines.next();
            let Some((k, v)) = text.split_once('=') else {
                return Err(self.error(Some(line), format!("expected `key=value`, got `{text}`")));
            };
            fields.push((line, k, v));
        }
        let get = |key: &str| fields.iter().find(|(_, k, _)| *k == key).copied();
        let mut raw = RawTree {
            line: tree_line,
            ..RawTree::default()
        };
        let (nl_line, _, nl) = get("num_leaves")
            .ok_or_else(|| self.error(Some(tree_line), "the tree has no `num_leaves`"))?;
        let num_leaves = nl
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| (1..1 << 30).contains(n))
            .ok_or_else(|| self.error(Some(nl_line), format!("bad `num_leaves={nl}`")))?;
        raw.num_leaves = Some(num_leaves);
        if let Some((line, _, v)) = get("num_cat") {
            if v.trim() != "0" {
                return Err(self.error(
                    Some(line),
                    format!("num_cat={v}: categorical splits are not supported"),
                ));
            }
        }
        if let Some((line, _, v)) = get("is_linear") {
            if v.trim() != "0" {
                return Err(self.error(
                    Some(line),
                    format!("is_linear={v}: linear trees are not supported"),
                ));
            }
        }
        let list = |key: &str, want: usize| -> Result<Option<(usize, Vec<&str>)>> {
            let Some((line, _, v)) = get(key) else {
                return Ok(None);
            };
            let items: Vec<&str> = v.split_ascii_whitespace().collect();
            if items.len() != want {
                return Err(self.error(
                    Some(line),
                    format!("`{key}` has {} values; expected {want}", items.len()),
                ));
            }
            Ok(Some((line, items)))
        };
        let parse_all = |key: &str, want: usize, required: bool| -> Result<Vec<f64>> {
            match list(key, want)? {
                None if required => {
                    Err(self.error(Some(tree_line), format!("the tree has no `{key}`")))
                }
                None => Ok(Vec::new()),
                Some((line, items)) => items
                    .iter()
                    .map(|s| {
                        s.parse::<f64>().map_err(|_| {
                            self.error(Some(line), format!("`{key}` value `{s}` is not a number"))
                        })
                    })
                    .collect(),
            }
        };
        let parse_ints = |key: &str, want: usize, required: bool| -> Result<Vec<i64>> {
            match list(key, want)? {
                None if required => {
                    Err(self.error(Some(tree_line), format!("the tree has no `{key}`")))
                }
                None => Ok(Vec::new()),
                Some((line, items)) => items
                    .iter()
                    .map(|s| {
                        s.parse::<i64>().map_err(|_| {
                            self.error(Some(line), format!("`{key}` value `{s}` is not an integer"))
                        })
                    })
                    .collect(),
            }
        };
        raw.leaf_value = parse_all("leaf_value", num_leaves, true)?;
        if num_leaves == 1 {
            return Ok(raw);
        }
        let internal = num_leaves - 1;
        raw.split_feature = parse_ints("split_feature", internal, true)?;
        raw.threshold = parse_all("threshold", internal, true)?;
        raw.left_child = parse_ints("left_child", internal, true)?;
        raw.right_child = parse_ints("right_child", internal, true)?;
        // Optional: only explanations need them, and LightGBM reads models
        // without them.
        raw.internal_count = parse_all("internal_count", internal, false)?;
        raw.leaf_count = parse_all("leaf_count", num_leaves, false)?;
        // LightGBM defaults a missing `decision_type` to 0 for every node.
        let dt = parse_ints("decision_type", internal, false)?;
        let dt_line = get("decision_type").map_or(tree_line, |h| h.0);
        raw.decision_type = if dt.is_empty() {
            vec![0; internal]
        } else {
            dt.iter()
                .map(|&d| {
                    i8::try_from(d).map_err(|_| {
                        self.error(Some(dt_line), format!("decision_type {d} is out of range"))
                    })
                })
                .collect::<Result<_>>()?
        };
        if let Some(node) = raw.decision_type.iter().position(|d| d & 1 != 0) {
            return Err(self.error(
                Some(dt_line),
                format!("node {node} is a categorical split (decision_type bit 0); only numerical splits are supported"),
            ));
        }
        Ok(raw)
    }

    /// Checks the tree's shape (every node reached once, from the root) and
    /// appends its nodes, leaves and QuickScorer tests.
    fn add_tree(&self, forest: &mut Forest, raw: RawTree) -> Result<()> {
        let num_leaves = raw.num_leaves.unwrap_or(1);
        let internal = num_leaves - 1;
        let bad = |reason: String| self.error(Some(raw.line), reason);
        let nodes_start = forest.nodes.len();
        // A LightGBM child (internal c >= 0, leaf ~c) as a node child:
        // internal c, or `internal + leaf`.
        let local = |c: i64| -> Option<u32> {
            let i = if c >= 0 {
                usize::try_from(c).ok().filter(|&i| i < internal)?
            } else {
                internal + usize::try_from(!c).ok().filter(|&l| l < num_leaves)?
            };
            u32::try_from(i).ok()
        };
        let mut parents = vec![0u8; internal + num_leaves];
        for i in 0..internal {
            let feature = usize::try_from(raw.split_feature[i])
                .ok()
                .filter(|&f| f < forest.num_features())
                .ok_or_else(|| {
                    bad(format!(
                        "node {i} splits on feature {} but the model has {} features",
                        raw.split_feature[i],
                        forest.num_features()
                    ))
                })?;
            let (l, r) = (raw.left_child[i], raw.right_child[i]);
            let (Some(left), Some(right)) = (local(l), local(r)) else {
                return Err(bad(format!(
                    "node {i} has children {l} and {r}, out of range"
                )));
            };
            for c in [left, right] {
                parents[c as usize] += 1;
                if c == 0 || parents[c as usize] > 1 {
                    return Err(bad(format!("node {i}: the children do not form a tree")));
                }
            }
            let dt = raw.decision_type[i];
            let threshold = raw.threshold[i];
            if threshold.is_nan() {
                return Err(bad(format!("node {i} has a NaN threshold")));
            }
            let default_left = dt & 2 != 0;
            // LightGBM's missing types: 0 None, 1 Zero, 2 NaN (3 acts as None).
            let missing = match ((dt >> 2) & 3, default_left) {
                // NaN and zero go the default way.
                (1, true) => Missing::ZeroLeft,
                (1, false) => Missing::ZeroRight,
                // NaN goes the default way.
                (2, true) => Missing::NanLeft,
                (2, false) => Missing::NanRight,
                // NaN becomes 0.0 and is compared like any value.
                _ if 0.0 <= threshold => Missing::NanLeft,
                _ => Missing::NanRight,
            };
            let slot = match forest.slots.iter().position(|&s| s == (feature, missing)) {
                Some(s) => s,
                None => {
                    forest.slots.push((feature, missing));
                    forest.slots.len() - 1
                }
            };
            forest.nodes.push(Node {
                threshold: f32_at_or_below(threshold),
                slot: u32::try_from(slot).map_err(|_| bad("too many splits".to_string()))?,
                children: [right, left],
            });
        }
        if parents.iter().skip(1).any(|&p| p != 1) {
            return Err(bad("some nodes are unreachable: not a tree".to_string()));
        }
        let leaves_start = forest.leaf_values.len();
        forest.leaf_values.extend_from_slice(&raw.leaf_value);
        let covers_start = forest.covers.len();
        if !raw.internal_count.is_empty() && !raw.leaf_count.is_empty() {
            forest.covers.extend_from_slice(&raw.internal_count);
            forest.covers.extend_from_slice(&raw.leaf_count);
        }
        let kernel = match num_leaves {
            1 => Kernel::Constant,
            2..=32 => Kernel::Narrow,
            33..=64 => Kernel::Wide,
            _ => Kernel::Walk,
        };
        let tests_start = forest.tests.len();
        let ordered = forest.ordered.len();
        if matches!(kernel, Kernel::Narrow | Kernel::Wide) {
            let nodes = &forest.nodes[nodes_start..];
            // Left-to-right leaf positions: a depth-first walk, left first,
            // numbers each subtree's leaves consecutively, from `first[c]`
            // up to `end[c]`. The checks above make the walk finite.
            let mut first = vec![0u32; internal + num_leaves];
            let mut end = vec![0u32; internal + num_leaves];
            let mut in_order = Vec::with_capacity(num_leaves);
            let mut stack = vec![(0u32, false)];
            while let Some((c, done)) = stack.pop() {
                let ci = c as usize;
                if ci >= internal {
                    first[ci] = in_order.len() as u32;
                    in_order.push(raw.leaf_value[ci - internal]);
                    end[ci] = in_order.len() as u32;
                } else if done {
                    end[ci] = in_order.len() as u32;
                } else {
                    first[ci] = in_order.len() as u32;
                    let [right, left] = nodes[ci].children;
                    stack.extend([(c, true), (right, false), (left, false)]);
                }
            }
            let below = |n: u32| if n >= 64 { u64::MAX } else { (1u64 << n) - 1 };
            for n in nodes {
                let left = n.children[1] as usize;
                forest.tests.push(Test {
                    threshold: n.threshold,
                    slot: n.slot,
                    keep: !(below(end[left]) & !below(first[left])),
                });
            }
            // Padding tests keep every leaf.
            let padding = (FUSED - internal % FUSED) % FUSED;
            forest.tests.extend(std::iter::repeat_n(
                Test {
                    threshold: 0.0,
                    slot: 0,
                    keep: u64::MAX,
                },
                padding,
            ));
            let slots = if kernel == Kernel::Narrow {
                <u32 as LeafMask>::SLOTS
            } else {
                <u64 as LeafMask>::SLOTS
            };
            in_order.resize(slots, f64::NAN);
            forest.ordered.extend(in_order);
        }
        forest.trees.push(Tree {
            nodes: nodes_start..forest.nodes.len(),
            leaves: leaves_start..forest.leaf_values.len(),
            covers: covers_start..forest.covers.len(),
            tests: tests_start..forest.tests.len(),
            ordered,
            kernel,
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f32_threshold_matches_f64_comparison() {
        let xs = [
            0.5,
            1.0000000180025095e-35,
            -1.0000000180025095e-35,
            0.1,
            -0.1,
            1e-300,
            -1e-300,
            3.5e38,
            -3.5e38,
            f64::INFINITY,
            f64::NEG_INFINITY,
            123456.789,
        ];
        for &x in &xs {
            let t = f32_at_or_below(x);
            assert!(f64::from(t) <= x || x.is_nan(), "{x}");
            let up = if t == f32::INFINITY {
                t
            } else if t == 0.0 {
                f32::from_bits(1)
            } else if t > 0.0 {
                f32::from_bits(t.to_bits() + 1)
            } else {
                f32::from_bits(t.to_bits() - 1)
            };
            if up != t {
                assert!(f64::from(up) > x, "{x}");
            }
        }
    }

    #[test]
    fn atof_reads_plain_numbers() {
        assert_eq!(lightgbm_atof("1"), Some(1.0));
        assert_eq!(lightgbm_atof("0.5"), Some(0.5));
        assert_eq!(lightgbm_atof("2e1"), Some(20.0));
        assert_eq!(lightgbm_atof("-1.5E-1"), Some(-1.5 / 10.0));
        assert_eq!(lightgbm_atof("x"), None);
    }
}
