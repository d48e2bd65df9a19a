//! The `metrics` table: one row per split's test side and per evaluation
//! input, each saying which data and which threshold its figures are on.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Float64Array, Int64Array, StringArray};
use datafusion::arrow::datatypes::{Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::metrics::{self, Confusion};
use crate::saved::ModelCard;

/// Value of the `model` column.
pub(crate) const MODEL_KIND: &str = "lightgbm";
/// Value of the `side` column for an evaluation input: every row of it.
pub const EVALUATION_SIDE: &str = "all";

/// One row of the metrics table.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct MetricsRow {
    /// The split, or the evaluation's name.
    pub split: String,
    /// Model kind (`lightgbm`).
    pub model: String,
    /// `test` for a split (its test side, identical rows once), `all` for
    /// an evaluation input.
    pub side: String,
    /// The table the split was drawn from, or the evaluation input.
    pub data: String,
    /// Rows evaluated.
    pub rows: i64,
    /// Positive rows among them.
    pub positives: i64,
    /// Rows without a label, counted as the evaluation says (0 for splits).
    pub unlabelled_rows: i64,
    /// Rows of an evaluation's excluded sources, left out (0 for splits).
    pub excluded_rows: i64,
    /// ROC AUC; `None` unless both classes are present.
    pub roc_auc: Option<f64>,
    /// Average precision; `None` without positives.
    pub pr_auc: Option<f64>,
    /// At the threshold. Splits follow scikit-learn (0 when nothing is
    /// flagged); evaluations leave it `None` without positives.
    pub precision: Option<f64>,
    /// At the threshold; `None` for an evaluation without positives.
    pub recall: Option<f64>,
    /// At the threshold; `None` for an evaluation without positives.
    pub f1: Option<f64>,
    /// Share of the benign rows flagged; `None` without benign rows.
    pub fpr: Option<f64>,
    /// `fpr` per million benign connections: the alert load to expect.
    pub alerts_per_million_benign: Option<f64>,
    /// Decision threshold.
    pub threshold: f64,
    /// `fixed`, `best_f1_on_valid` or `max_fpr_on_valid`.
    pub threshold_rule: String,
    /// The rule's setting (the false-positive budget of `max_fpr`).
    pub threshold_target: Option<f64>,
    /// False-positive rate on the validation side (identical rows once) at
    /// the threshold; `None` without a validation side.
    pub valid_fpr: Option<f64>,
    /// Recall on the validation side at the threshold.
    pub valid_recall: Option<f64>,
    /// True positives.
    pub tp: i64,
    /// False positives.
    pub fp: i64,
    /// True negatives.
    pub tn: i64,
    /// False negatives.
    #[serde(rename = "fn")]
    pub fn_: i64,
    /// Training rows of the model.
    pub train_rows: i64,
    /// Distinct (vector, label) rows LightGBM trained on.
    pub train_weighted_rows: i64,
    /// Validation rows (identical rows once).
    pub valid_rows: i64,
    /// Boosting rounds kept.
    pub best_iteration: i64,
    /// Seconds spent training the model.
    pub train_seconds: f64,
}

/// Rates of a confusion matrix, `None` where undefined.
pub(crate) struct Rates {
    pub fpr: Option<f64>,
    pub recall: Option<f64>,
}

impl Rates {
    pub(crate) fn of(c: &Confusion) -> Self {
        Rates {
            fpr: (c.fp + c.tn > 0).then(|| metrics::fpr(c)),
            recall: (c.tp + c.fn_ > 0).then(|| metrics::recall(c)),
        }
    }
}

/// How an evaluation counts rows that carry no label.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Unlabelled {
    /// As benign: logs of a network believed clean (the common case of
    /// measuring the alert load on one's own traffic).
    #[default]
    Benign,
    /// As attacks: a capture of an attack alone.
    Attack,
    /// Left out of the figures (counted in `unlabelled_rows`).
    Skip,
}

/// Metrics of a deployed model on an evaluation input: `scores` and
/// `labels` (`None` for unlabelled rows) of its rows, identical rows once.
pub fn evaluation_row(
    name: &str,
    data: &str,
    card: &ModelCard,
    scores: &[f64],
    labels: &[Option<bool>],
    unlabelled: Unlabelled,
) -> MetricsRow {
    let (mut s, mut l) = (
        Vec::with_capacity(scores.len()),
        Vec::with_capacity(scores.len()),
    );
    let mut unlabelled_rows = 0i64;
    for (&score, &label) in scores.iter().zip(labels) {
        let label = match (label, unlabelled) {
            (Some(l), _) => l,
            (None, u) => {
                unlabelled_rows += 1;
                match u {
                    Unlabelled::Benign => false,
                    Unlabelled::Attack => true,
                    Unlabelled::Skip => continue,
                }
            }
        };
        s.push(score);
        l.push(label);
    }
    let c = metrics::confusion(&s, &l, card.threshold);
    let rates = Rates::of(&c);
    let has_positives = c.tp + c.fn_ > 0;
    let trained = |key: &str| card.metrics.get(key).and_then(serde_json::Value::as_i64);
    MetricsRow {
        split: name.to_string(),
        model: MODEL_KIND.to_string(),
        side: EVALUATION_SIDE.to_string(),
        data: data.to_string(),
        rows: s.len() as i64,
        positives: l.iter().filter(|&&x| x).count() as i64,
        unlabelled_rows,
        excluded_rows: 0,
        roc_auc: metrics::roc_auc(&s, &l, None),
        pr_auc: metrics::pr_auc(&s, &l, None),
        precision: (has_positives && rates.fpr.is_some()).then(|| metrics::precision(&c)),
        recall: rates.recall,
        f1: (has_positives && rates.fpr.is_some()).then(|| metrics::f1(&c)),
        fpr: rates.fpr,
        alerts_per_million_benign: rates.fpr.map(|r| r * 1e6),
        threshold: card.threshold,
        threshold_rule: card.threshold_rule.clone(),
        threshold_target: card.threshold_target,
        valid_fpr: card
            .metrics
            .get("valid_fpr")
            .and_then(serde_json::Value::as_f64),
        valid_recall: card
            .metrics
            .get("valid_recall")
            .and_then(serde_json::Value::as_f64),
        tp: c.tp as i64,
        fp: c.fp as i64,
        tn: c.tn as i64,
        fn_: c.fn_ as i64,
        train_rows: card.train_rows as i64,
        train_weighted_rows: trained("train_weighted_rows").unwrap_or(0),
        valid_rows: trained("valid_rows").unwrap_or(0),
        best_iteration: card.best_iteration as i64,
        train_seconds: card
            .metrics
            .get("train_seconds")
            .and_then(serde_json::Value::as_f64)
            .unwrap_or(0.0),
    }
}

/// The metrics table of `rows`.
pub fn metrics_batch(rows: &[MetricsRow]) -> Result<RecordBatch> {
    let utf8 = |f: fn(&MetricsRow) -> &str| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(rows.iter().map(f)))
    };
    let int = |f: fn(&MetricsRow) -> i64| -> ArrayRef {
        Arc::new(Int64Array::from_iter_values(rows.iter().map(f)))
    };
    let float = |f: fn(&MetricsRow) -> f64| -> ArrayRef {
        Arc::new(Float64Array::from_iter_values(rows.iter().map(f)))
    };
    let opt = |f: fn(&MetricsRow) -> Option<f64>| -> ArrayRef {
        Arc::new(rows.iter().map(f).collect::<Float64Array>())
    };
    let columns: Vec<(&str, ArrayRef, bool)> = vec![
        ("split", utf8(|r| &r.split), false),
        ("model", utf8(|r| &r.model), false),
        ("side", utf8(|r| &r.side), false),
        ("data", utf8(|r| &r.data), false),
        ("rows", int(|r| r.rows), false),
        ("positives", int(|r| r.positives), false),
        ("unlabelled_rows", int(|r| r.unlabelled_rows), false),
        ("excluded_rows", int(|r| r.excluded_rows), false),
        ("roc_auc", opt(|r| r.roc_auc), true),
        ("pr_auc", opt(|r| r.pr_auc), true),
        ("precision", opt(|r| r.precision), true),
        ("recall", opt(|r| r.recall), true),
        ("f1", opt(|r| r.f1), true),
        ("fpr", opt(|r| r.fpr), true),
        (
            "alerts_per_million_benign",
            opt(|r| r.alerts_per_million_benign),
            true,
        ),
        ("threshold", float(|r| r.threshold), false),
        ("threshold_rule", utf8(|r| &r.threshold_rule), false),
        ("threshold_target", opt(|r| r.threshold_target), true),
        ("valid_fpr", opt(|r| r.valid_fpr), true),
        ("valid_recall", opt(|r| r.valid_recall), true),
        ("tp", int(|r| r.tp), false),
        ("fp", int(|r| r.fp), false),
        ("tn", int(|r| r.tn), false),
        ("fn", int(|r| r.fn_), false),
        ("train_rows", int(|r| r.train_rows), false),
        ("train_weighted_rows", int(|r| r.train_weighted_rows), false),
        ("valid_rows", int(|r| r.valid_rows), false),
        ("best_iteration", int(|r| r.best_iteration), false),
        ("train_seconds", float(|r| r.train_seconds), false),
    ];
    // Nullability is fixed per column, so every run's table has one schema.
    let schema = Schema::new(
        columns
            .iter()
            .map(|(name, a, nullable)| Field::new(*name, a.data_type().clone(), *nullable))
            .collect::<Vec<_>>(),
    );
    RecordBatch::try_new(
        Arc::new(schema),
        columns.into_iter().map(|(_, a, _)| a).collect(),
    )
    .map_err(|source| Error::Arrow {
        context: "model".to_string(),
        during: "build the metrics table",
        source,
    })
}
