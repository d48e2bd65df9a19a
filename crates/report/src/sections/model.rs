//! The model section: curves and score distributions from `scored`, the
//! confusion matrix at the deployed threshold, feature importance and the
//! `metrics` table.

use std::collections::BTreeMap;
use std::path::Path;

use datafusion::scalar::ScalarValue;
use plotters::chart::SeriesLabelPosition;
use zeekml_model::ModelCard;
use zeekml_pipeline::Warehouse;

use super::{missing, Body, Outcome};
use crate::error::Result;
use crate::html::{self, float, thousands};
use crate::plot::{self, Series};
use crate::query;
use crate::Source;

/// Decimals of AUC figures, in the legends and the metrics table alike.
const AUC_DECIMALS: usize = 6;
/// Features shown in the importance chart.
const TOP_FEATURES: usize = 20;

/// The card of the model the latest successful `lightgbm` stage saved (its
/// `models/<name>` output), or else of the most recently written card.
pub(crate) async fn deployed_card(
    source: &Source,
    wh: &Warehouse,
) -> Result<Option<(String, ModelCard)>> {
    let mut dir = None;
    if source.has("runs") {
        let rows = query::run(&source.ctx, &query::MODEL_STAGE, vec![]).await?;
        dir = rows
            .strings("outputs")?
            .into_iter()
            .flatten()
            .flat_map(|o| o.split(',').map(str::to_string).collect::<Vec<_>>())
            .find(|o| o.starts_with("models/"));
    }
    let dir = match dir {
        Some(d) => Some(d),
        None => newest_card(&wh.root().join("models")),
    };
    let Some(dir) = dir else { return Ok(None) };
    Ok(wh.load_model(&dir).await?.map(|model| (dir, model.card)))
}

/// `models/<name>` of the most recently modified card under `models`.
fn newest_card(models: &Path) -> Option<String> {
    let entries = std::fs::read_dir(models).ok()?;
    entries
        .flatten()
        .filter_map(|e| {
            let card = e.path().join(zeekml_model::CARD_FILE);
            let modified = card.metadata().and_then(|m| m.modified()).ok()?;
            Some((modified, e.file_name().to_string_lossy().to_string()))
        })
        .max()
        .map(|(_, name)| format!("models/{name}"))
}

/// A split's ROC and precision-recall curves and their areas.
#[derive(Debug)]
pub(crate) struct Curves {
    pub roc: Vec<(f64, f64)>,
    pub pr: Vec<(f64, f64)>,
    pub roc_auc: Option<f64>,
    pub average_precision: Option<f64>,
    pub positives: u64,
    pub negatives: u64,
}

/// The curves from (score, positives, negatives) per distinct score. The
/// areas are computed step by step exactly as `zeekml_model::metrics`
/// computes them from single rows (the same sums in the same order), so
/// they equal the `metrics` table's figures.
pub(crate) fn curves(mut steps: Vec<(f64, u64, u64)>) -> Curves {
    steps.sort_unstable_by(|a, b| b.0.total_cmp(&a.0));
    let positives: u64 = steps.iter().map(|s| s.1).sum();
    let negatives: u64 = steps.iter().map(|s| s.2).sum();
    let (p, n) = (positives as f64, negatives as f64);
    let (mut tp, mut fp) = (0.0, 0.0);
    let (mut prev_tp, mut prev_fp, mut area) = (0.0, 0.0, 0.0);
    let (mut prev_recall, mut ap) = (0.0, 0.0);
    let mut roc = vec![(0.0, 0.0)];
    let mut pr = vec![(0.0, 1.0)];
    for &(_, pos, neg) in &steps {
        tp += pos as f64;
        fp += neg as f64;
        area += (fp - prev_fp) * (prev_tp + tp) / 2.0;
        prev_tp = tp;
        prev_fp = fp;
        if p > 0.0 {
            let recall = tp / p;
            if recall > prev_recall {
                ap += (recall - prev_recall) * tp / (tp + fp);
                prev_recall = recall;
            }
            pr.push((recall, tp / (tp + fp)));
        }
        if p > 0.0 && n > 0.0 {
            roc.push((fp / n, tp / p));
        }
    }
    Curves {
        roc,
        pr,
        roc_auc: (tp > 0.0 && fp > 0.0).then(|| area / (tp * fp)),
        average_precision: (p > 0.0).then_some(ap),
        positives,
        negatives,
    }
}

/// A `metrics` row as the report shows it.
struct MetricsRow {
    cells: Vec<String>,
    split: String,
    threshold: Option<f64>,
}

const METRIC_HEADERS: [&str; 17] = [
    "split",
    "side",
    "data",
    "rows",
    "positives",
    "roc_auc",
    "pr_auc",
    "precision",
    "recall",
    "f1",
    "fpr",
    "threshold",
    "threshold_rule",
    "tp",
    "fp",
    "tn",
    "fn",
];

async fn metrics_rows(source: &Source) -> Result<Vec<MetricsRow>> {
    let rows = query::run(&source.ctx, &query::METRICS, vec![]).await?;
    let mut columns: Vec<Vec<String>> = Vec::new();
    for h in METRIC_HEADERS {
        let col: Vec<String> = match h {
            "split" | "side" | "data" | "threshold_rule" => rows
                .strings(h)?
                .into_iter()
                .map(Option::unwrap_or_default)
                .collect(),
            "rows" | "positives" | "tp" | "fp" | "tn" | "fn" => rows
                .i64s(h)?
                .into_iter()
                .map(|v| v.map(thousands).unwrap_or_default())
                .collect(),
            "fpr" => rows
                .f64s(h)?
                .into_iter()
                .map(|v| v.map(|v| format!("{v:.3e}")).unwrap_or_default())
                .collect(),
            _ => rows
                .f64s(h)?
                .into_iter()
                .map(|v| float(v, AUC_DECIMALS))
                .collect(),
        };
        columns.push(col);
    }
    let thresholds = rows.f64s("threshold")?;
    Ok((0..rows.len())
        .map(|i| MetricsRow {
            cells: columns.iter().map(|c| c[i].clone()).collect(),
            split: columns[0][i].clone(),
            threshold: thresholds[i],
        })
        .collect())
}

/// The name of label 1, from the card's pipeline parameters.
pub(crate) fn label_names(card: Option<&ModelCard>) -> [String; 2] {
    let positive = card
        .and_then(|c| c.stage_params.get("positive_label"))
        .and_then(|v| v.as_str())
        .unwrap_or("positive");
    [
        "benign (label 0)".to_string(),
        format!("{positive} (label 1)"),
    ]
}

pub(crate) async fn section(source: &Source) -> Result<Outcome> {
    let tables = ["scored", "metrics", "feature_importance"];
    if !tables.iter().any(|t| source.has(t)) {
        return Ok(missing(
            &tables,
            "A `lightgbm` stage writes them (`zeekml run pipelines/uwf_recon.toml`).",
        ));
    }
    let card = source.card.as_ref();
    let mut body = Body::default();
    body.source(&match card {
        Some((dir, c)) => format!(
            "From `scored` (each split's test side: rows held out of training, identical rows once, as in `metrics`), `metrics`, `feature_importance` and {dir}/model_card.json (deployed split {}, threshold {:.6}, rule {}).",
            c.split, c.threshold, c.threshold_rule
        ),
        None => "From `scored` (each split's test side: rows held out of training, identical rows once, as in `metrics`), `metrics` and `feature_importance`; no model card in models/.".to_string(),
    });
    let metrics = if source.has("metrics") {
        metrics_rows(source).await?
    } else {
        Vec::new()
    };
    let labels = label_names(card.map(|c| &c.1));
    if source.has("scored") {
        curve_charts(source, &mut body).await?;
        score_charts(source, &mut body, &metrics, &labels).await?;
        match card {
            Some((dir, c)) => confusion_chart(source, &mut body, dir, c, &labels).await?,
            None => body.note("No model card in models/: the confusion matrix at the deployed threshold needs one."),
        }
    } else {
        body.note("No `scored` table: no curves, score distributions or confusion matrix.");
    }
    if source.has("feature_importance") {
        importance_chart(source, &mut body, card.map(|c| &c.1)).await?;
    } else {
        body.note("No `feature_importance` table.");
    }
    if metrics.is_empty() {
        body.note("No `metrics` table.");
    } else {
        body.heading("The metrics table");
        body.source("From `metrics`: one row per split's test side and per evaluation input (side `all`), at each row's threshold.");
        let rows: Vec<Vec<String>> = metrics.iter().map(|m| m.cells.clone()).collect();
        body.html(&html::table(
            &METRIC_HEADERS,
            &rows,
            &[
                "rows",
                "positives",
                "roc_auc",
                "pr_auc",
                "precision",
                "recall",
                "f1",
                "fpr",
                "threshold",
                "tp",
                "fp",
                "tn",
                "fn",
            ],
        ));
    }
    Ok(Outcome::Drawn(body))
}

async fn curve_charts(source: &Source, body: &mut Body) -> Result<()> {
    let rows = query::run(&source.ctx, &query::ROC_STEPS, vec![]).await?;
    let mut by_split: BTreeMap<String, Vec<(f64, u64, u64)>> = BTreeMap::new();
    let splits = rows.strings("split")?;
    let scores = rows.f64s("score")?;
    let pos = rows.i64s("positives")?;
    let neg = rows.i64s("negatives")?;
    for i in 0..rows.len() {
        if let (Some(split), Some(score)) = (&splits[i], scores[i]) {
            let count = |v: Option<i64>| v.map_or(0, |v| v.max(0) as u64);
            by_split
                .entry(split.clone())
                .or_default()
                .push((score, count(pos[i]), count(neg[i])));
        }
    }
    if by_split.is_empty() {
        body.note("`scored` holds no test-side rows.");
        return Ok(());
    }
    let mut roc = Vec::new();
    let mut pr = Vec::new();
    let mut sizes = Vec::new();
    for (split, steps) in by_split {
        let c = curves(steps);
        roc.push(Series {
            name: format!("{split} (AUC {})", float(c.roc_auc, AUC_DECIMALS)),
            points: plot::thin(&c.roc, 0.002),
        });
        pr.push(Series {
            name: format!("{split} (AP {})", float(c.average_precision, AUC_DECIMALS)),
            points: plot::thin(&c.pr, 0.002),
        });
        sizes.push(format!(
            "{split}: {} positive, {} benign",
            thousands(c.positives as i64),
            thousands(c.negatives as i64)
        ));
    }
    body.heading("ROC and precision-recall curves, test side of each split");
    let sizes = sizes.join("; ");
    body.chart(
        plot::lines(&plot::Lines {
            title: "ROC curve",
            x_desc: "false-positive rate",
            y_desc: "true-positive rate",
            x: 0.0..1.0,
            y: 0.0..1.0,
            series: &roc,
            diagonal: true,
            legend: SeriesLabelPosition::LowerRight,
        })?,
        &format!("AUC from every distinct score of `scored` (side = test); {sizes}."),
    );
    body.chart(
        plot::lines(&plot::Lines {
            title: "Precision-recall curve",
            x_desc: "recall",
            y_desc: "precision",
            x: 0.0..1.0,
            y: 0.0..1.02,
            series: &pr,
            diagonal: false,
            legend: SeriesLabelPosition::LowerLeft,
        })?,
        "AP: average precision, the metrics table's pr_auc.",
    );
    Ok(())
}

async fn score_charts(
    source: &Source,
    body: &mut Body,
    metrics: &[MetricsRow],
    labels: &[String; 2],
) -> Result<()> {
    let rows = query::run(&source.ctx, &query::SCORE_BINS, vec![]).await?;
    let splits = rows.strings("split")?;
    let label = rows.i64s("label")?;
    let bin = rows.i64s("bin")?;
    let n = rows.i64s("connections")?;
    let mut by_split: BTreeMap<String, [Vec<(f64, f64)>; 2]> = BTreeMap::new();
    for i in 0..rows.len() {
        let (Some(split), Some(l), Some(b), Some(n)) = (&splits[i], label[i], bin[i], n[i]) else {
            continue;
        };
        let group = usize::from(l == 1);
        by_split.entry(split.clone()).or_default()[group].push((b as f64 * 0.02, n as f64));
    }
    body.heading("Score distributions by label, test side");
    for (split, groups) in by_split {
        let [benign, positive] = groups;
        let series = [
            Series {
                name: labels[0].clone(),
                points: benign,
            },
            Series {
                name: labels[1].clone(),
                points: positive,
            },
        ];
        let markers: Vec<(f64, String)> = metrics
            .iter()
            .filter(|m| m.split == split)
            .filter_map(|m| m.threshold)
            .map(|t| (t, format!("threshold {t:.4}")))
            .collect();
        let title = format!("Scores, split {split}");
        body.chart(
            plot::histogram(&plot::Histogram {
                title: &title,
                x_desc: "score (bins of 0.02)",
                y_desc: "connections (log scale)",
                bin_width: 0.02,
                groups: &series,
                log_y: true,
                markers: &markers,
            })?,
            &format!("Connections per score bin of split {split}'s test side in `scored`, by label; the dashed line is the split's threshold in `metrics`."),
        );
    }
    Ok(())
}

async fn confusion_chart(
    source: &Source,
    body: &mut Body,
    dir: &str,
    card: &ModelCard,
    labels: &[String; 2],
) -> Result<()> {
    let rows = query::run(
        &source.ctx,
        &query::CONFUSION,
        vec![
            ("split", ScalarValue::Utf8(Some(card.split.clone()))),
            ("threshold", ScalarValue::Float64(Some(card.threshold))),
        ],
    )
    .await?;
    let label = rows.i64s("label")?;
    let flagged = rows.i64s("flagged")?;
    let n = rows.i64s("connections")?;
    // counts[actual][flagged]
    let mut counts = [[0i64; 2]; 2];
    for i in 0..rows.len() {
        if let (Some(l), Some(f), Some(n)) = (label[i], flagged[i], n[i]) {
            counts[usize::from(l == 1)][usize::from(f == 1)] += n;
        }
    }
    let names = [["TN", "FP"], ["FN", "TP"]];
    let values: Vec<Vec<Option<f64>>> = counts
        .iter()
        .map(|row| {
            let total = (row[0] + row[1]) as f64;
            row.iter()
                .map(|&c| (total > 0.0).then(|| c as f64 / total))
                .collect()
        })
        .collect();
    let text: Vec<Vec<String>> = counts
        .iter()
        .zip(names)
        .map(|(row, names)| {
            row.iter()
                .zip(names)
                .map(|(&c, name)| format!("{name} {}", thousands(c)))
                .collect()
        })
        .collect();
    body.heading(&format!(
        "Confusion matrix of the deployed model (split {}) at threshold {:.6}",
        card.split, card.threshold
    ));
    body.chart(
        plot::heatmap(&plot::Heatmap {
            title: "Confusion matrix, test side",
            rows: &labels.clone(),
            cols: &["not flagged".to_string(), "flagged".to_string()],
            values: &values,
            text: &text,
            range: (0.0, 1.0),
            diverging: false,
            col_label_rotate: false,
        })?,
        &format!(
            "Split {}'s test side in `scored`, flagged when score >= {} ({} in {dir}/model_card.json); shading is the share of the actual class.",
            card.split, card.threshold, card.threshold_rule
        ),
    );
    Ok(())
}

async fn importance_chart(
    source: &Source,
    body: &mut Body,
    card: Option<&ModelCard>,
) -> Result<()> {
    let rows = query::run(&source.ctx, &query::IMPORTANCE, vec![]).await?;
    let splits = rows.strings("split")?;
    let features = rows.strings("feature")?;
    let gains = rows.f64s("gain")?;
    let chosen = card
        .map(|c| c.split.clone())
        .filter(|s| splits.iter().flatten().any(|x| x == s))
        .or_else(|| splits.iter().flatten().min().cloned());
    let Some(split) = chosen else {
        body.note("`feature_importance` is empty.");
        return Ok(());
    };
    let (names, values): (Vec<String>, Vec<f64>) = (0..rows.len())
        .filter(|&i| splits[i].as_deref() == Some(split.as_str()))
        .filter_map(|i| Some((features[i].clone()?, gains[i]?)))
        .take(TOP_FEATURES)
        .unzip();
    body.heading(&format!("Feature importance, split {split}"));
    body.chart(
        plot::bars(&plot::Bars {
            title: "Total gain per feature",
            value_desc: "gain",
            categories: &names,
            groups: &[("gain".to_string(), values)],
            horizontal: true,
            log: false,
        })?,
        &format!("The {TOP_FEATURES} features of split {split}'s model with the largest total gain, from `feature_importance`."),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small xorshift stream, for rows with many tied scores.
    fn rows(n: usize, seed: u64) -> (Vec<f64>, Vec<bool>) {
        let mut x = seed;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        (0..n)
            .map(|_| {
                let score = (next() % 200) as f64 / 200.0;
                let label = next() % 1000 < (score * 700.0) as u64 + 50;
                (score, label)
            })
            .unzip()
    }

    #[test]
    fn areas_equal_the_model_metrics_bit_for_bit() {
        for seed in [1, 7, 42] {
            let (scores, labels) = rows(20_000, seed);
            let mut steps: BTreeMap<u64, (f64, u64, u64)> = BTreeMap::new();
            for (s, l) in scores.iter().zip(&labels) {
                let e = steps.entry(s.to_bits()).or_insert((*s, 0, 0));
                if *l {
                    e.1 += 1;
                } else {
                    e.2 += 1;
                }
            }
            let c = curves(steps.into_values().collect());
            let auc = zeekml_model::metrics::roc_auc(&scores, &labels, None).expect("auc");
            let ap = zeekml_model::metrics::pr_auc(&scores, &labels, None).expect("ap");
            assert_eq!(c.roc_auc.expect("auc").to_bits(), auc.to_bits());
            assert_eq!(c.average_precision.expect("ap").to_bits(), ap.to_bits());
            assert_eq!(c.positives + c.negatives, 20_000);
            assert_eq!(c.roc.last(), Some(&(1.0, 1.0)));
        }
    }

    #[test]
    fn curves_by_hand() {
        // Scores 0.9 (pos), 0.8 (neg), 0.8 (pos), 0.1 (neg): of the four
        // (positive, negative) pairs three are won and the tie at 0.8
        // counts one half, so AUC = 3.5 / 4.
        let c = curves(vec![(0.1, 0, 1), (0.9, 1, 0), (0.8, 1, 1)]);
        assert_eq!(c.roc_auc, Some(0.875));
        assert_eq!(c.roc, vec![(0.0, 0.0), (0.0, 0.5), (0.5, 1.0), (1.0, 1.0)]);
        // AP = 0.5 * 1 + 0.5 * (2/3).
        assert!((c.average_precision.expect("ap") - (0.5 + 1.0 / 3.0)).abs() < 1e-15);
        // One class only: no AUC.
        assert_eq!(curves(vec![(0.5, 0, 3)]).roc_auc, None);
        assert_eq!(curves(vec![(0.5, 0, 3)]).average_precision, None);
    }
}
