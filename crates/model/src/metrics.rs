//! Binary classification metrics with scikit-learn's conventions.
//!
//! Scores and labels are paired by position; a length mismatch makes the
//! curve metrics return `None` and the confusion counts use the shorter length.

/// The rows holding one score: the summed weights of its positives and of
/// its negatives.
#[derive(Debug, Clone, Copy)]
struct Tie {
    score: f64,
    positives: f64,
    negatives: f64,
}

/// Distinct scores, highest first, with their rows' weights. The (score,
/// weight, label) triples are sorted in place rather than row indices by
/// score: an index sort reads a score at random for every comparison, which
/// on millions of rows makes the sort grow much faster than the rows.
fn ties(scores: &[f64], labels: &[bool], weights: Option<&[f64]>) -> Vec<Tie> {
    let mut rows: Vec<(f64, f64, bool)> = scores
        .iter()
        .zip(labels)
        .enumerate()
        .map(|(i, (&s, &l))| (s, weights.map_or(1.0, |w| w[i]), l))
        .collect();
    rows.sort_unstable_by(|a, b| b.0.total_cmp(&a.0));
    let mut out: Vec<Tie> = Vec::new();
    for (score, w, label) in rows {
        let (positives, negatives) = if label { (w, 0.0) } else { (0.0, w) };
        match out.last_mut() {
            Some(t) if t.score == score => {
                t.positives += positives;
                t.negatives += negatives;
            }
            _ => out.push(Tie {
                score,
                positives,
                negatives,
            }),
        }
    }
    out
}

/// Walks thresholds from the highest score down, calling `step(tp, fp)` with
/// the cumulative weighted true and false positives after each distinct score.
fn walk(
    scores: &[f64],
    labels: &[bool],
    weights: Option<&[f64]>,
    mut step: impl FnMut(f64, f64),
) -> Option<(f64, f64)> {
    if labels.len() != scores.len() || weights.is_some_and(|w| w.len() != scores.len()) {
        return None;
    }
    let (mut tp, mut fp) = (0.0, 0.0);
    for t in ties(scores, labels, weights) {
        tp += t.positives;
        fp += t.negatives;
        step(tp, fp);
    }
    Some((tp, fp))
}

/// Area under the ROC curve: the probability that a random positive scores
/// above a random negative, ties counting one half (the Mann-Whitney
/// statistic, equal to the trapezoid rule over the tied steps, as
/// `sklearn.metrics.roc_auc_score`). `None` when a class is absent.
pub fn roc_auc(scores: &[f64], labels: &[bool], weights: Option<&[f64]>) -> Option<f64> {
    let (mut prev_tp, mut prev_fp, mut area) = (0.0, 0.0, 0.0);
    let (tp, fp) = walk(scores, labels, weights, |tp, fp| {
        area += (fp - prev_fp) * (prev_tp + tp) / 2.0;
        prev_tp = tp;
        prev_fp = fp;
    })?;
    (tp > 0.0 && fp > 0.0).then(|| area / (tp * fp))
}

/// Average precision: the sum over distinct score thresholds of
/// (recall gained) x (precision there), step-wise without interpolation,
/// as `sklearn.metrics.average_precision_score`. `None` without positives.
pub fn pr_auc(scores: &[f64], labels: &[bool], weights: Option<&[f64]>) -> Option<f64> {
    let positives: f64 = match weights {
        Some(w) if w.len() == labels.len() => labels
            .iter()
            .zip(w)
            .filter(|(l, _)| **l)
            .map(|(_, w)| *w)
            .sum(),
        Some(_) => return None,
        None => labels.iter().filter(|l| **l).count() as f64,
    };
    if positives <= 0.0 {
        return None;
    }
    let (mut prev_recall, mut ap) = (0.0, 0.0);
    walk(scores, labels, weights, |tp, fp| {
        let recall = tp / positives;
        if recall > prev_recall {
            ap += (recall - prev_recall) * tp / (tp + fp);
            prev_recall = recall;
        }
    })?;
    Some(ap)
}

/// The threshold that maximises F1 when scores at or above it are called
/// positive, with that F1. The threshold sits halfway between the lowest
/// score kept and the next lower score, so that scores close to the cut on
/// new data fall on the side the data supported. `None` without positives.
pub fn best_f1_threshold(scores: &[f64], labels: &[bool]) -> Option<(f64, f64)> {
    let positives = labels.iter().filter(|&&l| l).count() as f64;
    if positives == 0.0 || labels.len() != scores.len() {
        return None;
    }
    let ties = ties(scores, labels, None);
    let (mut tp, mut fp) = (0.0, 0.0);
    let mut best: Option<(f64, f64)> = None;
    for (k, t) in ties.iter().enumerate() {
        tp += t.positives;
        fp += t.negatives;
        let next = ties.get(k + 1).map(|n| n.score);
        let f1 = 2.0 * tp / (tp + fp + positives);
        if best.is_none_or(|(_, b)| f1 > b) {
            let cut = next.map_or(t.score, |n| n + (t.score - n) / 2.0);
            best = Some((cut, f1));
        }
    }
    best
}

/// Why no threshold meets a false-positive budget.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FprCutError {
    /// There are no negatives to measure a false-positive rate on.
    NoNegatives,
    /// Even the highest score belongs to more negatives than the budget
    /// allows: every threshold that keeps to it flags nothing.
    NothingFlagged {
        /// False positives the budget allows.
        allowed: u64,
        /// Negatives among the rows.
        negatives: u64,
        /// The highest score.
        top_score: f64,
    },
}

/// The lowest threshold at which at most `max_fpr` of the negatives score
/// at or above it, with the false-positive rate reached there. Ties are one
/// cut; the threshold sits halfway between the lowest score kept and the
/// next lower score, as in [`best_f1_threshold`].
pub fn max_fpr_threshold(
    scores: &[f64],
    labels: &[bool],
    max_fpr: f64,
) -> Result<(f64, f64), FprCutError> {
    let negatives = labels.iter().filter(|&&l| !l).count() as u64;
    if negatives == 0 || labels.len() != scores.len() {
        return Err(FprCutError::NoNegatives);
    }
    // The tolerance keeps 1e-4 x 20,000 from rounding down to 1.
    let allowed = (max_fpr * negatives as f64 + 1e-9).floor() as u64;
    let mut fp = 0u64;
    let mut kept: Option<(f64, u64)> = None;
    for t in ties(scores, labels, None) {
        let (s, fp_here) = (t.score, t.negatives as u64);
        if fp + fp_here > allowed {
            return match kept {
                Some((lowest, fp)) => Ok((s + (lowest - s) / 2.0, fp as f64 / negatives as f64)),
                None => Err(FprCutError::NothingFlagged {
                    allowed,
                    negatives,
                    top_score: s,
                }),
            };
        }
        fp += fp_here;
        kept = Some((s, fp));
    }
    // Every row fits in the budget: the lowest score is the threshold.
    let (lowest, fp) = kept.ok_or(FprCutError::NoNegatives)?;
    Ok((lowest, fp as f64 / negatives as f64))
}

/// Confusion counts at a threshold; a score at or above it is positive.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Confusion {
    /// True positives.
    pub tp: u64,
    /// False positives.
    pub fp: u64,
    /// True negatives.
    pub tn: u64,
    /// False negatives (`fn` is a Rust keyword).
    pub fn_: u64,
}

/// Counts predictions `score >= threshold` against the labels.
pub fn confusion(scores: &[f64], labels: &[bool], threshold: f64) -> Confusion {
    let mut c = Confusion::default();
    for (&s, &l) in scores.iter().zip(labels) {
        match (s >= threshold, l) {
            (true, true) => c.tp += 1,
            (true, false) => c.fp += 1,
            (false, false) => c.tn += 1,
            (false, true) => c.fn_ += 1,
        }
    }
    c
}

fn ratio(num: u64, den: u64) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

/// tp / (tp + fp); 0 when nothing is predicted positive (scikit-learn's
/// `zero_division=0`).
pub fn precision(c: &Confusion) -> f64 {
    ratio(c.tp, c.tp + c.fp)
}

/// tp / (tp + fn); 0 when there are no positives.
pub fn recall(c: &Confusion) -> f64 {
    ratio(c.tp, c.tp + c.fn_)
}

/// fp / (fp + tn): the share of negatives flagged; 0 without negatives.
pub fn fpr(c: &Confusion) -> f64 {
    ratio(c.fp, c.fp + c.tn)
}

/// Harmonic mean of precision and recall; 0 when both are 0.
pub fn f1(c: &Confusion) -> f64 {
    ratio(2 * c.tp, 2 * c.tp + c.fp + c.fn_)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(v: &[u8]) -> Vec<bool> {
        v.iter().map(|&x| x == 1).collect()
    }

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-12, "{a} != {b}");
    }

    #[test]
    fn roc_auc_by_hand() {
        close(
            roc_auc(&[0.1, 0.4, 0.35, 0.8], &b(&[0, 0, 1, 1]), None).unwrap(),
            0.75,
        );
        // Perfect and inverted rankings.
        close(
            roc_auc(&[0.1, 0.2, 0.8, 0.9], &b(&[0, 0, 1, 1]), None).unwrap(),
            1.0,
        );
        close(
            roc_auc(&[0.9, 0.8, 0.2, 0.1], &b(&[0, 0, 1, 1]), None).unwrap(),
            0.0,
        );
    }

    #[test]
    fn roc_auc_ties_count_one_half() {
        // Pairs (pos, neg): 0.5 vs 0.5 tie -> 1/2, 0.5 vs 0.2 -> 1,
        // 0.9 vs 0.5 -> 1, 0.9 vs 0.2 -> 1: 3.5 / 4.
        close(
            roc_auc(&[0.5, 0.5, 0.9, 0.2], &b(&[1, 0, 1, 0]), None).unwrap(),
            0.875,
        );
        // All scores tied: a coin flip.
        close(roc_auc(&[0.3; 4], &b(&[1, 0, 1, 0]), None).unwrap(), 0.5);
        // Two positives tie one negative at 0.4: (1 + 0.5) * 2 + 2 = 5 of 6 pairs.
        close(
            roc_auc(&[0.1, 0.4, 0.4, 0.4, 0.8], &b(&[0, 0, 1, 1, 1]), None).unwrap(),
            5.0 / 6.0,
        );
    }

    #[test]
    fn roc_auc_weights_equal_repetition() {
        let w = roc_auc(
            &[0.1, 0.4, 0.35, 0.8],
            &b(&[0, 0, 1, 1]),
            Some(&[1.0, 3.0, 2.0, 1.0]),
        )
        .unwrap();
        let r = roc_auc(
            &[0.1, 0.4, 0.4, 0.4, 0.35, 0.35, 0.8],
            &b(&[0, 0, 0, 0, 1, 1, 1]),
            None,
        )
        .unwrap();
        close(w, r);
        // 2 negatives (0.1 x1, 0.4 x3) vs positives (0.35 x2, 0.8 x1):
        // 0.35 beats 1 of 4 negative weight, 0.8 beats 4 of 4: (2*1 + 1*4) / (3*4).
        close(w, 0.5);
    }

    #[test]
    fn roc_auc_needs_both_classes() {
        assert_eq!(roc_auc(&[0.1, 0.2], &b(&[1, 1]), None), None);
        assert_eq!(roc_auc(&[0.1, 0.2], &b(&[1]), None), None);
    }

    #[test]
    fn average_precision_by_hand() {
        // sklearn average_precision_score([0,0,1,1],[0.1,0.4,0.35,0.8]) = 0.8333...
        // thresholds 0.8: P=1, R=.5; 0.4: P=.5, R=.5; 0.35: P=2/3, R=1.
        close(
            pr_auc(&[0.1, 0.4, 0.35, 0.8], &b(&[0, 0, 1, 1]), None).unwrap(),
            0.5 * 1.0 + 0.5 * (2.0 / 3.0),
        );
        // Ties form one threshold: sklearn gives 0.5*1 + 0.5*(2/3) as well
        // for scores [0.8, 0.5, 0.5, 0.1] labels [1, 1, 0, 0].
        close(
            pr_auc(&[0.8, 0.5, 0.5, 0.1], &b(&[1, 1, 0, 0]), None).unwrap(),
            0.5 + 0.5 * (2.0 / 3.0),
        );
        // All tied: precision at the only threshold = prevalence.
        close(pr_auc(&[0.5; 4], &b(&[1, 0, 0, 0]), None).unwrap(), 0.25);
        assert_eq!(pr_auc(&[0.5, 0.2], &b(&[0, 0]), None), None);
    }

    #[test]
    fn confusion_and_rates() {
        let scores = [0.1, 0.4, 0.35, 0.8, 0.5, 0.6];
        let labels = b(&[0, 0, 1, 1, 1, 0]);
        let c = confusion(&scores, &labels, 0.5);
        assert_eq!(
            c,
            Confusion {
                tp: 2,
                fp: 1,
                tn: 2,
                fn_: 1
            }
        );
        close(precision(&c), 2.0 / 3.0);
        close(recall(&c), 2.0 / 3.0);
        close(f1(&c), 2.0 / 3.0);
        let none = confusion(&scores, &labels, 0.95);
        assert_eq!(
            none,
            Confusion {
                tp: 0,
                fp: 0,
                tn: 3,
                fn_: 3
            }
        );
        assert_eq!(
            (precision(&none), recall(&none), f1(&none)),
            (0.0, 0.0, 0.0)
        );
        // precision 1, recall 1/3 -> f1 = 2 * 1/3 / (4/3) = 0.5
        let c = confusion(&scores, &labels, 0.7);
        close(f1(&c), 0.5);
    }

    #[test]
    fn best_f1_threshold_by_hand() {
        // Descending: 0.8(1) 0.6(0) 0.5(1) 0.4(0) 0.35(1) 0.1(0); 3 positives.
        // F1 after each: 0.8 -> 2/4, 0.6 -> 2/5, 0.5 -> 4/6, 0.4 -> 4/7,
        // 0.35 -> 6/8 (best), 0.1 -> 6/9.
        let scores = [0.1, 0.4, 0.35, 0.8, 0.5, 0.6];
        let labels = b(&[0, 0, 1, 1, 1, 0]);
        let (t, f) = best_f1_threshold(&scores, &labels).unwrap();
        close(f, 0.75);
        // Halfway between 0.35 and the next lower score 0.1.
        close(t, 0.225);
        let c = confusion(&scores, &labels, t);
        close(f1(&c), f);
        // A tie is one cut: [0.9(1), 0.5(1), 0.5(0)] keeps 0.9 alone (F1 0.67)
        // or both 0.5s (F1 0.8).
        let (t, f) = best_f1_threshold(&[0.9, 0.5, 0.5], &b(&[1, 1, 0])).unwrap();
        close(f, 0.8);
        close(t, 0.5);
        assert_eq!(best_f1_threshold(&[0.2, 0.3], &b(&[0, 0])), None);
    }

    #[test]
    fn max_fpr_threshold_by_hand() {
        // Descending: 0.9(1) 0.8(0) 0.7(1) 0.6(0) 0.5(0) 0.4(1) 0.3(0) ...
        // ten negatives in all; a budget of 0.2 allows two false positives.
        let scores = [
            0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.15, 0.1, 0.05, 0.01, 0.0,
        ];
        let labels = b(&[1, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]);
        let (t, rate) = max_fpr_threshold(&scores, &labels, 0.2).unwrap();
        // 0.8 and 0.6 are the two allowed; 0.5 would be the third.
        close(t, 0.55);
        close(rate, 0.2);
        let c = confusion(&scores, &labels, t);
        assert_eq!((c.tp, c.fp), (2, 2));
        close(fpr(&c), 0.2);
        // 0.25 of ten is 2.5: still two.
        close(max_fpr_threshold(&scores, &labels, 0.25).unwrap().0, 0.55);
        // No false positive allowed: only 0.9 is kept.
        let (t, rate) = max_fpr_threshold(&scores, &labels, 0.0).unwrap();
        close(t, 0.85);
        close(rate, 0.0);
        // 0.29 x 100 is 28.999999999999996 in floating point: still 29.
        let mut s: Vec<f64> = (0..100).map(|i| f64::from(i) / 100.0).collect();
        s.push(0.995);
        let mut l = vec![false; 100];
        l.push(true);
        let (t, rate) = max_fpr_threshold(&s, &l, 0.29).unwrap();
        close(t, 0.705);
        close(rate, 0.29);
    }

    #[test]
    fn max_fpr_threshold_ties_and_failures() {
        // A tie of a positive and a negative at the top is one cut: with no
        // false positive allowed nothing can be flagged.
        let err = max_fpr_threshold(&[0.9, 0.9, 0.1], &b(&[1, 0, 0]), 0.0).unwrap_err();
        assert_eq!(
            err,
            FprCutError::NothingFlagged {
                allowed: 0,
                negatives: 2,
                top_score: 0.9
            }
        );
        // The same tie fits a budget of one false positive in two.
        let (t, rate) = max_fpr_threshold(&[0.9, 0.9, 0.1], &b(&[1, 0, 0]), 0.5).unwrap();
        close(t, 0.5);
        close(rate, 0.5);
        // All benign: the rule still sets a threshold.
        let (t, _) = max_fpr_threshold(&[0.1, 0.2, 0.3, 0.4], &b(&[0, 0, 0, 0]), 0.25).unwrap();
        close(t, 0.35);
        // Everything fits: the lowest score.
        let (t, rate) = max_fpr_threshold(&[0.1, 0.2], &b(&[0, 1]), 1.0).unwrap();
        close(t, 0.1);
        close(rate, 1.0);
        assert_eq!(
            max_fpr_threshold(&[0.5, 0.6], &b(&[1, 1]), 0.1),
            Err(FprCutError::NoNegatives)
        );
    }
}
