//! Assignment of rows to train / valid / test sides. Every rule ranks rows
//! (or groups) by hashes of their content, never by position: DataFusion
//! scans hand rows over in a different order from run to run.

use crate::hash;

/// Side codes, indexes into [`SIDE_NAMES`].
pub(crate) const TRAIN: u8 = 0;
pub(crate) const VALID: u8 = 1;
pub(crate) const TEST: u8 = 2;
/// A test row identical to another test row: scored, not evaluated.
pub(crate) const TEST_DUP: u8 = 3;
/// A validation row identical to another validation row: scored, not used
/// for early stopping or for choosing the threshold.
pub(crate) const VALID_DUP: u8 = 4;
pub(crate) const SIDE_NAMES: [&str; 5] = ["train", "valid", "test", "test_dup", "valid_dup"];

const SALT_TEST: u64 = 0x7465_7374;
const SALT_GROUP: u64 = 0x0067_726f_7570;

/// How many of `n` items a fraction takes, rounded half up.
fn share(n: usize, fraction: f64) -> usize {
    ((n as f64 * fraction).round() as usize).min(n)
}

/// Validation items out of `n` training items: never all of them.
fn valid_share(n: usize, fraction: f64) -> usize {
    share(n, fraction).min(n.saturating_sub(1))
}

/// Hands out sides to items sorted by rank: the first `n_test` items
/// test, the next share of the rest valid, the remainder train, each told
/// to `set(item, side)`.
fn deal(
    ranked: Vec<(u64, u32)>,
    test_fraction: f64,
    valid_fraction: f64,
    mut set: impl FnMut(u32, u8),
) {
    let n_test = share(ranked.len(), test_fraction);
    let n_valid = valid_share(ranked.len() - n_test, valid_fraction);
    for (k, (_, item)) in ranked.into_iter().enumerate() {
        let side = if k < n_test {
            TEST
        } else if k < n_test + n_valid {
            VALID
        } else {
            TRAIN
        };
        set(item, side);
    }
}

/// Occurrence number of each row among rows with the same content hash.
/// Which of several identical rows gets which number depends on input
/// order, but identical rows cannot be told apart, so the outcome does not.
fn occurrences(content: &[u64]) -> Vec<u32> {
    let mut pairs: Vec<(u64, u32)> = content
        .iter()
        .enumerate()
        .map(|(i, &c)| (c, i as u32))
        .collect();
    pairs.sort_unstable();
    let mut occ = vec![0u32; content.len()];
    let mut run = 0u32;
    for k in 0..pairs.len() {
        run = if k > 0 && pairs[k].0 == pairs[k - 1].0 {
            run + 1
        } else {
            0
        };
        occ[pairs[k].1 as usize] = run;
    }
    occ
}

const SALT_DRAW: u64 = 0x0000_6472_6177;

/// `params.max_train_rows`: which training rows of `sides` are drawn, about
/// `max_rows` of them, the same share of each class, ranked by content like
/// the splits (so the draw does not depend on input order). `None` when the
/// training side holds no more than `max_rows`.
pub(crate) fn draw(
    sides: &[u8],
    content: &[u64],
    labels: &[u8],
    seed: u64,
    max_rows: usize,
) -> Option<Vec<bool>> {
    let train = sides.iter().filter(|&&s| s == TRAIN).count();
    if train <= max_rows {
        return None;
    }
    let fraction = max_rows as f64 / train as f64;
    let occ = occurrences(content);
    let mut drawn = vec![false; sides.len()];
    for class in [0u8, 1] {
        let mut ranked: Vec<(u64, u64, u32)> = (0..content.len())
            .filter(|&i| sides[i] == TRAIN && labels[i] == class)
            .map(|i| {
                (
                    hash::rank(seed, SALT_DRAW, content[i], u64::from(occ[i])),
                    content[i],
                    i as u32,
                )
            })
            .collect();
        ranked.sort_unstable();
        // At least one row of a class the side holds, so that a small
        // sample never loses the positives.
        let keep = share(ranked.len(), fraction).max(usize::from(!ranked.is_empty()));
        for &(_, _, i) in &ranked[..keep] {
            drawn[i as usize] = true;
        }
    }
    Some(drawn)
}

/// The notebook's stratified random split: within each class, rows ranked
/// by hash(seed, content, occurrence); the first `test_fraction` of each
/// class is test (exact per class), then `valid_fraction` of the rest valid.
pub(crate) fn random_stratified(
    content: &[u64],
    labels: &[u8],
    seed: u64,
    test_fraction: f64,
    valid_fraction: f64,
) -> Vec<u8> {
    let occ = occurrences(content);
    let mut sides = vec![TRAIN; content.len()];
    for class in [0u8, 1] {
        let mut ranked: Vec<(u64, u32)> = (0..content.len())
            .filter(|&i| labels[i] == class)
            .map(|i| {
                (
                    hash::rank(seed, SALT_TEST, content[i], u64::from(occ[i])),
                    i as u32,
                )
            })
            .collect();
        ranked.sort_unstable();
        // Rows whose ranks collide are ordered by content, so that the row
        // position only orders identical rows.
        let mut k = 0;
        while k < ranked.len() {
            let run = ranked[k..].partition_point(|r| r.0 == ranked[k].0);
            if run > 1 {
                ranked[k..k + run].sort_unstable_by_key(|&(_, i)| (content[i as usize], i));
            }
            k += run;
        }
        deal(ranked, test_fraction, valid_fraction, |i, side| {
            sides[i as usize] = side
        });
    }
    sides
}

/// Duplicate-aware split: rows grouped by `group` (the uid hash, or the
/// content hash for rows without uid); whole groups ranked by
/// hash(seed, group) within each group label (a group is positive when any
/// of its rows is). Test rows identical to an earlier test row become
/// `TEST_DUP`, and validation rows identical to an earlier validation row
/// `VALID_DUP`: the validation side is built like the test side, so a
/// threshold chosen on it meets the test side's share of positives.
pub(crate) fn dedup(
    group: &[u64],
    content: &[u64],
    labels: &[u8],
    seed: u64,
    test_fraction: f64,
    valid_fraction: f64,
) -> Vec<u8> {
    let n = group.len();
    let mut by_group: Vec<(u64, u32)> = group
        .iter()
        .enumerate()
        .map(|(i, &g)| (g, i as u32))
        .collect();
    by_group.sort_unstable();
    // Runs of equal group key: where each starts in `by_group` (and one
    // end), and the group's label. Groups are numbered in key order, so the
    // number breaks rank ties as the key would.
    let mut starts: Vec<u32> = Vec::new();
    let mut group_labels: Vec<u8> = Vec::new();
    for (k, &(key, row)) in by_group.iter().enumerate() {
        if k == 0 || by_group[k - 1].0 != key {
            starts.push(k as u32);
            group_labels.push(0);
        }
        if let Some(l) = group_labels.last_mut() {
            *l = (*l).max(labels[row as usize]);
        }
    }
    starts.push(n as u32);
    let mut sides = vec![TRAIN; n];
    for class in [0u8, 1] {
        let mut ranked: Vec<(u64, u32)> = (0..group_labels.len())
            .filter(|&g| group_labels[g] == class)
            .map(|g| {
                let key = by_group[starts[g] as usize].0;
                (hash::rank(seed, SALT_GROUP, key, 0), g as u32)
            })
            .collect();
        ranked.sort_unstable();
        deal(ranked, test_fraction, valid_fraction, |g, side| {
            let (from, to) = (starts[g as usize] as usize, starts[g as usize + 1] as usize);
            for &(_, row) in &by_group[from..to] {
                sides[row as usize] = side;
            }
        });
    }
    drop((by_group, starts, group_labels));
    mark_duplicates(&mut sides, content, TEST, TEST_DUP);
    mark_duplicates(&mut sides, content, VALID, VALID_DUP);
    sides
}

/// Rows of `side` whose content equals an earlier such row's become `dup`.
fn mark_duplicates(sides: &mut [u8], content: &[u64], side: u8, dup: u8) {
    let mut rows: Vec<(u64, u32)> = (0..sides.len())
        .filter(|&i| sides[i] == side)
        .map(|i| (content[i], i as u32))
        .collect();
    rows.sort_unstable();
    for k in 1..rows.len() {
        if rows[k].0 == rows[k - 1].0 {
            sides[rows[k].1 as usize] = dup;
        }
    }
}

/// Time split: rows before the `1 - test_fraction` quantile of `ts` train,
/// the rest test; the latest `valid_fraction` of the training rows valid.
/// Rows at one time always share a side.
pub(crate) fn time(ts: &[f64], test_fraction: f64, valid_fraction: f64) -> Vec<u8> {
    let n = ts.len();
    let mut sorted = ts.to_vec();
    sorted.sort_unstable_by(f64::total_cmp);
    let keep = n - share(n, test_fraction);
    let test_cut = (keep < n).then(|| sorted[keep]);
    let n_train = test_cut.map_or(n, |c| sorted.partition_point(|&t| t < c));
    let train = &sorted[..n_train];
    let n_valid = valid_share(n_train, valid_fraction);
    // The cut must leave earlier rows to train on.
    let valid_cut = (n_valid > 0)
        .then(|| train[n_train - n_valid])
        .filter(|&c| c > train[0]);
    ts.iter()
        .map(|&t| {
            if test_cut.is_some_and(|c| t >= c) {
                TEST
            } else if valid_cut.is_some_and(|c| t >= c) {
                VALID
            } else {
                TRAIN
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_round_half_up() {
        assert_eq!(share(10, 0.25), 3);
        assert_eq!(share(4, 0.25), 1);
        assert_eq!(share(1, 0.25), 0);
        assert_eq!(valid_share(1, 0.5), 0);
        assert_eq!(valid_share(2, 0.9), 1);
    }

    #[test]
    fn time_split_cuts_at_the_quantile() {
        let ts: Vec<f64> = (0..20).rev().map(f64::from).collect();
        let sides = time(&ts, 0.25, 0.2);
        let side_of = |t: f64| sides[ts.iter().position(|&x| x == t).unwrap()];
        // 20 rows: 5 latest test; of the 15 earlier, 3 latest valid.
        assert!((15..20).all(|t| side_of(f64::from(t)) == TEST));
        assert!((12..15).all(|t| side_of(f64::from(t)) == VALID));
        assert!((0..12).all(|t| side_of(f64::from(t)) == TRAIN));
        // All at one time: nothing can be held out before it.
        assert_eq!(time(&[3.0; 4], 0.25, 0.1), vec![TEST; 4]);
    }

    #[test]
    fn dedup_sides_keep_flows_whole_and_evaluate_each_row_once() {
        // 40 flows of 8 identical rows (every fourth positive) and 400
        // single benign rows.
        let (mut group, mut content, mut labels) = (Vec::new(), Vec::new(), Vec::new());
        for f in 0..40u64 {
            for _ in 0..8 {
                group.push(1000 + f);
                content.push(5000 + f);
                labels.push(u8::from(f % 4 == 0));
            }
        }
        for r in 0..400u64 {
            group.push(10_000 + r);
            content.push(20_000 + r);
            labels.push(0);
        }
        let sides = dedup(&group, &content, &labels, 42, 0.25, 0.2);
        let mut side_of_group = std::collections::HashMap::new();
        for i in 0..sides.len() {
            let base = match sides[i] {
                TEST_DUP => TEST,
                VALID_DUP => VALID,
                s => s,
            };
            let prev = side_of_group.insert(group[i], base);
            assert!(prev.is_none_or(|p| p == base), "flow {} split", group[i]);
        }
        for (side, dup) in [(TEST, TEST_DUP), (VALID, VALID_DUP)] {
            let kept: Vec<u64> = (0..sides.len())
                .filter(|&i| sides[i] == side)
                .map(|i| content[i])
                .collect();
            let mut distinct = kept.clone();
            distinct.sort_unstable();
            distinct.dedup();
            assert_eq!(kept.len(), distinct.len(), "side {side} holds duplicates");
            // Every flow on the side keeps exactly one row there.
            let flows = (0..sides.len())
                .filter(|&i| sides[i] == side || sides[i] == dup)
                .map(|i| group[i])
                .collect::<std::collections::BTreeSet<_>>();
            assert_eq!(flows.len(), kept.len());
        }
        assert!(sides.contains(&VALID_DUP) && sides.contains(&TEST_DUP));
    }

    #[test]
    fn occurrences_number_identical_rows() {
        assert_eq!(
            occurrences(&[5, 7, 5, 5, 7])
                .iter()
                .filter(|&&o| o == 2)
                .count(),
            1
        );
        let occ = occurrences(&[5, 7, 5, 5, 7]);
        let mut fives: Vec<u32> = [0, 2, 3].iter().map(|&i| occ[i]).collect();
        fives.sort();
        assert_eq!(fives, vec![0, 1, 2]);
    }
}
