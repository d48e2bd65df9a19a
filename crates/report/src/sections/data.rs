//! The data section: the notebook's views of the `features` table by label.

use std::collections::BTreeMap;

use datafusion::arrow::array::{Array, AsArray, Float64Array};
use datafusion::arrow::datatypes::{DataType, Float64Type};
use datafusion::prelude::{cast, ident, DataFrame, Expr};
use futures::StreamExt;

use super::model::label_names;
use super::{missing, Body, Outcome};
use crate::error::{Error, Result};
use crate::html::thousands;
use crate::plot::{self, Series};
use crate::query;
use crate::Source;

/// The log1p measures histogrammed, with their chart titles.
const MEASURES: [(&str, &str); 5] = [
    ("duration", "log1p(duration)"),
    ("orig_bytes", "log1p(orig_bytes)"),
    ("resp_bytes", "log1p(resp_bytes)"),
    ("orig_pkts", "log1p(orig_pkts)"),
    ("resp_pkts", "log1p(resp_pkts)"),
];
/// Services shown by name; the rest are summed as `(other)`.
const TOP_SERVICES: usize = 8;
/// Features in the correlation heatmap.
const CORRELATED: usize = 10;
/// Columns of `features` that are keys or categories, not features.
const NOT_FEATURES: [&str; 10] = [
    "uid",
    "ts",
    "src_ip",
    "src_port",
    "dest_ip",
    "dest_port",
    "protocol",
    "service",
    "conn_state",
    "label",
];

pub(crate) async fn section(source: &Source) -> Result<Outcome> {
    if !source.has("features") {
        return Ok(missing(
            &["features"],
            "The `features` SQL stage writes it (`zeekml run pipelines/uwf_recon.toml`).",
        ));
    }
    let labels = label_names(source.card.as_ref().map(|c| &c.1));
    let mut body = Body::default();
    body.source("From `features`, every row (all splits and sides), by label.");
    histograms(source, &mut body, &labels).await?;
    shares(source, &mut body, &labels).await?;
    correlation(source, &mut body).await?;
    Ok(Outcome::Drawn(body))
}

/// A histogram's (bin start, connections) and its unset connections.
type Bins = (Vec<(f64, f64)>, f64);

async fn histograms(source: &Source, body: &mut Body, labels: &[String; 2]) -> Result<()> {
    let rows = query::run(&source.ctx, &query::VALUE_BINS, vec![]).await?;
    let measure = rows.strings("measure")?;
    let label = rows.i64s("label")?;
    let bin = rows.i64s("bin")?;
    let n = rows.i64s("connections")?;
    // (measure, label) -> (bin start, count) and the unset count
    let mut bins: BTreeMap<(String, usize), Bins> = BTreeMap::new();
    for i in 0..rows.len() {
        let (Some(m), Some(l), Some(n)) = (&measure[i], label[i], n[i]) else {
            continue;
        };
        let entry = bins.entry((m.clone(), usize::from(l == 1))).or_default();
        match bin[i] {
            Some(b) => entry.0.push((b as f64 / 2.0, n as f64)),
            None => entry.1 += n as f64,
        }
    }
    body.heading("Distributions by label");
    for (measure, title) in MEASURES {
        let mut series = Vec::new();
        let mut unset = Vec::new();
        for (g, name) in labels.iter().enumerate() {
            let (points, missing) = bins.remove(&(measure.to_string(), g)).unwrap_or_default();
            let total = points.iter().map(|p| p.1).sum::<f64>() + missing;
            let scale = if total > 0.0 { 1.0 / total } else { 0.0 };
            unset.push(format!(
                "{name} {:.1}%",
                if total > 0.0 {
                    100.0 * missing / total
                } else {
                    0.0
                }
            ));
            series.push(Series {
                name: name.clone(),
                points: points.into_iter().map(|(x, n)| (x, n * scale)).collect(),
            });
        }
        body.chart(
            plot::histogram(&plot::Histogram {
                title,
                x_desc: &format!("{title} (bins of 0.5)"),
                y_desc: "share of the label's connections",
                bin_width: 0.5,
                groups: &series,
                log_y: false,
                markers: &[],
            })?,
            &format!(
                "`features`.{measure}_log1p; unset (not counted in the bars): {}.",
                unset.join(", ")
            ),
        );
    }
    Ok(())
}

async fn shares(source: &Source, body: &mut Body, labels: &[String; 2]) -> Result<()> {
    let rows = query::run(&source.ctx, &query::CATEGORY_COUNTS, vec![]).await?;
    let field = rows.strings("field")?;
    let value = rows.strings("value")?;
    let label = rows.i64s("label")?;
    let n = rows.i64s("connections")?;
    // field -> value -> per-label counts
    let mut counts: BTreeMap<String, BTreeMap<String, [f64; 2]>> = BTreeMap::new();
    for i in 0..rows.len() {
        let (Some(f), Some(v), Some(l), Some(n)) = (&field[i], &value[i], label[i], n[i]) else {
            continue;
        };
        counts
            .entry(f.clone())
            .or_default()
            .entry(v.clone())
            .or_default()[usize::from(l == 1)] += n as f64;
    }
    body.heading("Protocol, connection state and service by label");
    for field in ["protocol", "conn_state", "service"] {
        let Some(values) = counts.remove(field) else {
            continue;
        };
        let totals = values
            .values()
            .fold([0.0; 2], |t, c| [t[0] + c[0], t[1] + c[1]]);
        let mut ranked: Vec<(String, [f64; 2])> = values.into_iter().collect();
        ranked.sort_by(|a, b| {
            (b.1[0] + b.1[1])
                .total_cmp(&(a.1[0] + a.1[1]))
                .then(a.0.cmp(&b.0))
        });
        let mut note = String::new();
        if field == "service" && ranked.len() > TOP_SERVICES {
            let rest = ranked.split_off(TOP_SERVICES);
            note = format!(" {} less common services summed as (other).", rest.len());
            let other = rest
                .iter()
                .fold([0.0; 2], |t, c| [t[0] + c.1[0], t[1] + c.1[1]]);
            ranked.push(("(other)".to_string(), other));
        }
        let categories: Vec<String> = ranked.iter().map(|r| r.0.clone()).collect();
        let groups: Vec<(String, Vec<f64>)> = (0..2)
            .map(|g| {
                let total = if totals[g] > 0.0 { totals[g] } else { 1.0 };
                (
                    labels[g].clone(),
                    ranked.iter().map(|r| r.1[g] / total).collect(),
                )
            })
            .collect();
        body.chart(
            plot::bars(&plot::Bars {
                title: &format!("{field} share by label"),
                value_desc: "share of the label's connections",
                categories: &categories,
                groups: &groups,
                horizontal: true,
                log: false,
            })?,
            &format!(
                "`features`.{field}; {} {}, {} {}.{note}",
                thousands(totals[0] as i64),
                labels[0],
                thousands(totals[1] as i64),
                labels[1]
            ),
        );
    }
    Ok(())
}

/// Pearson correlations of the model's most important features (by gain
/// in `feature_importance`), or of the first feature columns without it,
/// over every row of `features` where both values are set.
async fn correlation(source: &Source, body: &mut Body) -> Result<()> {
    let df = source
        .ctx
        .table("features")
        .await
        .map_err(|source| Error::Query {
            query: "correlation",
            source,
        })?;
    let numeric: Vec<String> = df
        .schema()
        .fields()
        .iter()
        .filter(|f| f.data_type().is_numeric() || f.data_type() == &DataType::Boolean)
        .map(|f| f.name().clone())
        .filter(|n| !NOT_FEATURES.contains(&n.as_str()))
        .collect();
    let mut chosen = Vec::new();
    let mut basis = "the first feature columns of `features`".to_string();
    if source.has("feature_importance") {
        let rows = query::run(&source.ctx, &query::IMPORTANCE, vec![]).await?;
        let splits = rows.strings("split")?;
        let features = rows.strings("feature")?;
        let gains = rows.f64s("gain")?;
        let split = source
            .card
            .as_ref()
            .map(|c| c.1.split.clone())
            .filter(|s| splits.iter().flatten().any(|x| x == s))
            .or_else(|| splits.iter().flatten().min().cloned());
        if let Some(split) = split {
            chosen = (0..rows.len())
                .filter(|&i| splits[i].as_deref() == Some(split.as_str()))
                .filter(|&i| gains[i].is_some_and(|g| g > 0.0))
                .filter_map(|i| features[i].clone())
                .filter(|f| numeric.contains(f))
                .take(CORRELATED)
                .collect();
            basis =
                format!("the {CORRELATED} features with the largest gain in split {split}'s model");
        }
    }
    if chosen.len() < 2 {
        chosen = numeric.into_iter().take(CORRELATED).collect();
    }
    if chosen.len() < 2 {
        body.note("`features` has fewer than two feature columns: no correlation heatmap.");
        return Ok(());
    }
    let columns: Vec<Expr> = chosen
        .iter()
        .map(|c| cast(ident(c), DataType::Float64).alias(c))
        .collect();
    let values = correlations(df, columns, chosen.len()).await?;
    let text: Vec<Vec<String>> = values
        .iter()
        .map(|row| {
            row.iter()
                .map(|v| v.map_or(String::new(), |v| format!("{v:.2}")))
                .collect()
        })
        .collect();
    body.heading("Feature correlations");
    body.chart(
        plot::heatmap(&plot::Heatmap {
            title: "Pearson correlation",
            rows: &chosen,
            cols: &chosen,
            values: &values,
            text: &text,
            range: (-1.0, 1.0),
            diverging: true,
            col_label_rotate: true,
        })?,
        &format!("Over every row of `features`, for {basis}; grey: undefined (a constant column)."),
    );
    Ok(())
}

/// Sums for one pair's correlation over the rows where both are set.
#[derive(Clone, Copy, Default, Debug)]
struct Moments {
    n: f64,
    x: f64,
    y: f64,
    xx: f64,
    yy: f64,
    xy: f64,
}

impl Moments {
    fn add(&mut self, x: f64, y: f64) {
        self.n += 1.0;
        self.x += x;
        self.y += y;
        self.xx += x * x;
        self.yy += y * y;
        self.xy += x * y;
    }

    fn accumulate(&mut self, x: &Float64Array, y: &Float64Array) {
        if x.null_count() == 0 && y.null_count() == 0 {
            for (&a, &b) in x.values().iter().zip(y.values().iter()) {
                self.add(a, b);
            }
        } else {
            for (a, b) in x.iter().zip(y.iter()) {
                if let (Some(a), Some(b)) = (a, b) {
                    self.add(a, b);
                }
            }
        }
    }

    /// Pearson's r; `None` when either side is constant or too short.
    fn r(&self) -> Option<f64> {
        if self.n < 2.0 {
            return None;
        }
        let cov = self.xy - self.x * self.y / self.n;
        let vx = self.xx - self.x * self.x / self.n;
        let vy = self.yy - self.y * self.y / self.n;
        let r = cov / (vx * vy).sqrt();
        (vx > 0.0 && vy > 0.0 && r.is_finite()).then(|| r.clamp(-1.0, 1.0))
    }
}

/// The correlation matrix of `columns` (all cast to Float64), summed batch
/// by batch as DataFusion streams them: a pass over ten columns of 2M rows
/// is a fraction of a second, where 45 `corr` aggregates took seconds.
async fn correlations(
    df: DataFrame,
    columns: Vec<Expr>,
    k: usize,
) -> Result<Vec<Vec<Option<f64>>>> {
    let wrap = |source| Error::Query {
        query: "correlation",
        source,
    };
    let mut stream = df
        .select(columns)
        .map_err(wrap)?
        .execute_stream()
        .await
        .map_err(wrap)?;
    let mut sums = vec![Moments::default(); k * k];
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(wrap)?;
        let arrays: Vec<&Float64Array> = batch
            .columns()
            .iter()
            .map(|a| a.as_primitive::<Float64Type>())
            .collect();
        for i in 0..k {
            for j in i + 1..k {
                sums[i * k + j].accumulate(arrays[i], arrays[j]);
            }
        }
    }
    let mut values = vec![vec![Some(1.0); k]; k];
    for i in 0..k {
        for j in i + 1..k {
            let r = sums[i * k + j].r();
            values[i][j] = r;
            values[j][i] = r;
        }
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_give_pearson_r_over_pairs_set() {
        let x = Float64Array::from(vec![Some(1.0), Some(2.0), None, Some(4.0), Some(8.0)]);
        let y = Float64Array::from(vec![Some(2.0), Some(4.0), Some(5.0), Some(8.0), None]);
        let mut m = Moments::default();
        m.accumulate(&x, &y);
        // Rows 0, 1 and 3 have both: y = 2x exactly.
        assert_eq!(m.n, 3.0);
        assert!((m.r().expect("r") - 1.0).abs() < 1e-12);
        let mut m = Moments::default();
        m.accumulate(
            &Float64Array::from(vec![1.0, 2.0, 3.0, 4.0]),
            &Float64Array::from(vec![4.0, 1.0, 3.0, 2.0]),
        );
        // By hand: the centred cross products sum to -2 and each side's
        // squares to 5, so r = -2 / 5.
        assert!((m.r().expect("r") + 0.4).abs() < 1e-12);
        let mut constant = Moments::default();
        constant.accumulate(
            &Float64Array::from(vec![1.0, 1.0, 1.0]),
            &Float64Array::from(vec![1.0, 2.0, 3.0]),
        );
        assert_eq!(constant.r(), None);
    }
}
