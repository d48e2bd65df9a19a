//! The `lightgbm` stage: trains and evaluates on a warehouse table, writes
//! `scored`, `metrics` and `feature_importance`, and saves the model with a
//! card that records the SQL stages its features come from.

use std::path::Path;

use datafusion::prelude::SessionContext;
use zeekml_model::{FeatureStage, TrainSpec};

use crate::config::Pipeline;
use crate::error::Result;
use crate::runner::{sql_lineage, StageOutcome};
use crate::warehouse::Warehouse;

/// Tables the stage writes.
pub const SCORED: &str = "scored";
/// One row per (split, model).
pub const METRICS: &str = "metrics";
/// Gain and split counts per feature.
pub const IMPORTANCE: &str = "feature_importance";

pub(crate) async fn run_train(
    ctx: &SessionContext,
    wh: &Warehouse,
    pipeline: &Pipeline,
    index: usize,
    spec: &TrainSpec,
) -> Result<StageOutcome> {
    crate::runner::register_input(ctx, wh, pipeline, &spec.input).await?;
    let table = ctx.table(spec.input.as_str()).await?;
    // Only the keys, the label and the features are held in memory; a bad
    // feature list keeps every column so that the model names what is wrong.
    let schema = table.schema().as_arrow().clone();
    let table = match spec.resolve_features(&schema) {
        Ok(features) => {
            let keep: Vec<&str> = schema
                .fields()
                .iter()
                .map(|f| f.name().as_str())
                .filter(|n| {
                    spec.keys.iter().any(|k| k == n)
                        || *n == spec.label
                        || features.iter().any(|f| f == n)
                })
                .collect();
            table.select_columns(&keep)?
        }
        Err(_) => table,
    };
    let batches = table.collect().await?;
    let rows_in: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
    let lineage = sql_lineage(pipeline, index, &spec.input)?;
    let owned = spec.clone();
    let outcome =
        tokio::task::spawn_blocking(move || zeekml_model::train_and_evaluate(&owned, &batches))
            .await??;
    let scored_rows: u64 = outcome.scored.iter().map(|b| b.num_rows() as u64).sum();
    let scored_schema = outcome
        .scored
        .first()
        .map(|b| b.schema())
        .unwrap_or_else(|| outcome.metrics.schema());
    wh.write_batches(ctx, scored_schema, outcome.scored, Path::new(SCORED))
        .await?;
    wh.write_batches(
        ctx,
        outcome.metrics.schema(),
        vec![outcome.metrics],
        Path::new(METRICS),
    )
    .await?;
    wh.write_batches(
        ctx,
        outcome.importance.schema(),
        vec![outcome.importance],
        Path::new(IMPORTANCE),
    )
    .await?;
    for table in [SCORED, METRICS, IMPORTANCE] {
        wh.register(ctx, table).await?;
    }
    let mut deployed = outcome.deployed;
    deployed.card.feature_stages = lineage
        .iter()
        .map(|s| FeatureStage {
            name: s.name.clone(),
            sql: s.sql.clone(),
        })
        .collect();
    deployed.card.stage_params = serde_json::to_value(&pipeline.file.params)?;
    let model_dir = wh.model_dir(&spec.model_name);
    let to_save = deployed;
    let dir = model_dir.clone();
    tokio::task::spawn_blocking(move || to_save.save(&dir)).await??;
    tracing::info!(model = %model_dir.display(), "model saved");
    Ok(StageOutcome {
        inputs: vec![spec.input.clone()],
        outputs: vec![
            SCORED.to_string(),
            METRICS.to_string(),
            IMPORTANCE.to_string(),
            format!("models/{}", spec.model_name),
        ],
        rows_in,
        rows_out: scored_rows,
        rejected: 0,
    })
}
