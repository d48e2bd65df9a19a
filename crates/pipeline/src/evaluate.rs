//! `[[evaluations]]`: the deployed model scored on data it was not trained
//! or tuned on, each input giving one `metrics` row and its scored rows in
//! the `evaluated` table (`evaluated/split=<name>/`).

use std::path::{Path, PathBuf};

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type};
use datafusion::common::ScalarValue;
use datafusion::execution::FunctionRegistry;
use datafusion::functions::expr_fn::coalesce;
use datafusion::logical_expr::cast as cast_expr;
use datafusion::prelude::{col, lit, ParquetReadOptions, SessionContext};
use zeekml_model::{MetricsRow, SavedModel};

use crate::config::{EvaluationSpec, IfMissing, IngestSpec, OnBadRows, Pipeline, StageSpec};
use crate::error::Result;
use crate::warehouse::Warehouse;
use crate::{score, session};

/// The table holding every evaluation's scored rows.
pub const EVALUATED: &str = "evaluated";

/// What the evaluations of one training stage produced: metrics rows and
/// the staged `evaluated` table, committed with the stage's other tables.
pub(crate) struct Evaluated {
    pub rows: Vec<MetricsRow>,
    pub staging: Option<PathBuf>,
}

/// The evaluations that belong to the `lightgbm` stage `stage`.
fn of_stage<'p>(pipeline: &'p Pipeline, stage: &str) -> Vec<&'p EvaluationSpec> {
    let trainers = pipeline
        .file
        .stages
        .iter()
        .filter(|s| matches!(s, StageSpec::Lightgbm(_)))
        .count();
    pipeline
        .file
        .evaluations
        .iter()
        .filter(|e| match &e.stage {
            Some(s) => s == stage,
            None => trainers == 1,
        })
        .collect()
}

/// Scores every evaluation input of `stage` with `model` into a staging
/// directory of the `evaluated` table and computes its metrics row.
pub(crate) async fn run_evaluations(
    wh: &Warehouse,
    pipeline: &Pipeline,
    stage: &str,
    model: &SavedModel,
) -> Result<Evaluated> {
    let mut out = Evaluated {
        rows: Vec::new(),
        staging: None,
    };
    for spec in of_stage(pipeline, stage) {
        let input = pipeline.substitute(&spec.input)?;
        if input.trim().is_empty() {
            tracing::info!(evaluation = %spec.name, "no input set: evaluation skipped");
            continue;
        }
        if spec.if_missing == IfMissing::Skip && is_missing(&input).await {
            tracing::warn!(evaluation = %spec.name, input = %input, "input not found: evaluation skipped");
            continue;
        }
        let staging = match &out.staging {
            Some(dir) => dir.clone(),
            None => out.staging.insert(wh.staging(EVALUATED)?).clone(),
        };
        let dir = staging.join(format!("split={}", spec.name));
        std::fs::create_dir_all(&dir).map_err(crate::error::io(&dir))?;
        let file = dir.join("part-00000.parquet");
        let exclude = pipeline.substitute(&spec.exclude_sources)?;
        match evaluate_one(spec, &input, &exclude, model, &file).await {
            Ok(row) => {
                tracing::info!(
                    evaluation = %spec.name,
                    rows = row.rows,
                    positives = row.positives,
                    roc_auc = row.roc_auc,
                    precision = row.precision,
                    recall = row.recall,
                    fpr = row.fpr,
                    "evaluated"
                );
                out.rows.push(row);
            }
            Err(e) => {
                wh.discard(&staging);
                return Err(e.in_evaluation(&spec.name));
            }
        }
    }
    Ok(out)
}

/// Whether a local input path or glob matches nothing.
async fn is_missing(input: &str) -> bool {
    matches!(
        zeekml_formats::resolve_location(input).await,
        Err(zeekml_formats::Error::NotFound { .. } | zeekml_formats::Error::NoFiles { .. })
    )
}

async fn evaluate_one(
    spec: &EvaluationSpec,
    input: &str,
    exclude: &str,
    model: &SavedModel,
    file: &Path,
) -> Result<MetricsRow> {
    let ctx = session::new_context();
    let ingest_spec = IngestSpec {
        name: spec.name.clone(),
        input: input.to_string(),
        format: spec.format,
        columns: spec.columns.clone(),
        // Evaluation figures must cover every row: a bad row stops the run.
        on_bad_rows: OnBadRows::Fail,
        rejects_table: String::new(),
        partition: None,
    };
    score::score_input(&ctx, model, &ingest_spec, model.card.threshold, 0, file).await?;
    let rows = scores_and_labels(&ctx, file, spec.dedup, exclude).await?;
    let mut row = zeekml_model::evaluation_row(
        &spec.name,
        input,
        &model.card,
        &rows.scores,
        &rows.labels,
        spec.unlabelled,
    );
    row.excluded_rows = rows.excluded;
    Ok(row)
}

/// What an evaluation's figures are computed on.
struct Rows {
    scores: Vec<f64>,
    labels: Vec<Option<bool>>,
    /// Rows of excluded sources, left out.
    excluded: i64,
}

/// Scores and labels of a scored file, identical rows once when `dedup`,
/// without the rows whose source lies in `exclude` (CIDR blocks). A file
/// without a `label` column (the model's stages add none) is unlabelled
/// throughout.
async fn scores_and_labels(
    ctx: &SessionContext,
    file: &Path,
    dedup: bool,
    exclude: &str,
) -> Result<Rows> {
    let mut df = ctx
        .read_parquet(file.display().to_string(), ParquetReadOptions::default())
        .await?;
    if dedup {
        df = df.distinct()?;
    }
    let excluded = if exclude.trim().is_empty() {
        lit(false)
    } else {
        let within = ctx
            .udf("ip_in_cidrs")?
            .call(vec![col("src_ip"), lit(exclude)]);
        coalesce(vec![within, lit(false)])
    };
    let label = if df.schema().has_column_with_unqualified_name("label") {
        cast_expr(col("label"), DataType::Int64)
    } else {
        lit(ScalarValue::Int64(None))
    };
    let batches = df
        .select(vec![
            col("score"),
            label.alias("label"),
            excluded.alias("excluded"),
        ])?
        .collect()
        .await?;
    let mut rows = Rows {
        scores: Vec::new(),
        labels: Vec::new(),
        excluded: 0,
    };
    for b in &batches {
        let score = b.column(0).as_primitive::<Float64Type>();
        let label = b.column(1).as_primitive::<Int64Type>();
        let excluded = b.column(2).as_boolean();
        for i in 0..b.num_rows() {
            if excluded.value(i) {
                rows.excluded += 1;
                continue;
            }
            rows.scores.push(score.value(i));
            rows.labels
                .push(label.is_valid(i).then(|| label.value(i) == 1));
        }
    }
    Ok(rows)
}
