//! The `lightgbm` stage: trains and evaluates on a warehouse table, writes
//! `scored`, `metrics` and `feature_importance`, and saves the model with a
//! card that records the SQL stages its features come from.

use std::path::{Path, PathBuf};

use datafusion::arrow::array::RecordBatch;
use datafusion::prelude::SessionContext;
use tokio::sync::mpsc;
use zeekml_model::{External, FeatureStage, Source, TrainSpec, TrainingTable};

use crate::config::Pipeline;
use crate::error::Result;
use crate::evaluate::{self, EVALUATED};
use crate::runner::{sql_lineage, StageOutcome};
use crate::table_files::TableFiles;
use crate::warehouse::Warehouse;

/// The input table as training reads it: a committed table file by file,
/// and a view (or a partitioned table) collected into memory; with the
/// version of the table read (`None` for a view).
async fn training_input(
    ctx: &SessionContext,
    wh: &Warehouse,
    pipeline: &Pipeline,
    spec: &TrainSpec,
) -> Result<(Box<dyn Source + Send>, Option<u64>)> {
    let version = crate::runner::register_input(ctx, wh, pipeline, &spec.input).await?;
    if version.is_some() {
        if let Some((read, files)) = wh.unpartitioned_files(&spec.input).await? {
            if let Some(files) = TableFiles::open(files)? {
                return Ok((Box::new(files), Some(read)));
            }
        }
    }
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
    Ok((Box::new(table.collect().await?), version))
}

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
    let (source, input_version) = training_input(ctx, wh, pipeline, spec).await?;
    let lineage = sql_lineage(pipeline, index, &spec.input)?;
    // The scored rows are written as training produces them, split by
    // split, so that they are never all in memory.
    let (tx, rx) = mpsc::channel::<RecordBatch>(2);
    let owned = spec.clone();
    let training = tokio::task::spawn_blocking(move || {
        let mut sink = |b: RecordBatch| {
            tx.blocking_send(b)
                .map_err(|_| External::from("the writer of the scored table stopped"))
        };
        zeekml_model::train(&owned, source.as_ref(), &mut sink)
    });
    let (trained, written) = tokio::join!(training, wh.stage_received(Path::new(SCORED), rx));
    // Training is done with its input (the closure that read it is gone).
    wh.discard_fetched(&spec.input);
    let (trained, scored_dir) = match (trained?, written) {
        (Ok(trained), Ok((dir, _))) => (trained, dir),
        (Err(e), Ok((dir, _))) => {
            wh.discard(&dir);
            return Err(e.into());
        }
        // The writer's error is the cause of the one training reports.
        (_, Err(e)) => return Err(e),
    };
    let rows_in = trained.input_rows;
    let scored_rows = trained.scored_rows;
    let mut deployed = trained.deployed;
    // Every table is staged, and committed only once all are written and
    // the evaluations have run: a failure leaves the earlier run's tables.
    let mut staged: Vec<(PathBuf, &str)> = vec![(scored_dir, SCORED)];
    let result = async {
        let (dir, _) = wh
            .stage_batches(
                ctx,
                trained.importance.schema(),
                vec![trained.importance],
                Path::new(IMPORTANCE),
            )
            .await?;
        staged.push((dir, IMPORTANCE));
        deployed.card.feature_stages = lineage
            .iter()
            .map(|s| FeatureStage {
                name: s.name.clone(),
                sql: s.sql.clone(),
            })
            .collect();
        deployed.card.stage_params = serde_json::to_value(&pipeline.file.params)?;
        deployed.card.training_table = Some(TrainingTable {
            name: spec.input.clone(),
            version: input_version,
        });
        // Other data, scored by the model as it will be deployed.
        let evaluated = evaluate::run_evaluations(wh, pipeline, &spec.name, &deployed).await?;
        if let Some(dir) = evaluated.staging {
            staged.push((dir, EVALUATED));
        }
        deployed.card.evaluations = evaluated
            .rows
            .iter()
            .map(serde_json::to_value)
            .collect::<std::result::Result<_, _>>()?;
        let mut metric_rows = trained.metric_rows;
        metric_rows.extend(evaluated.rows);
        let metrics = zeekml_model::metrics_batch(&metric_rows)?;
        let (dir, _) = wh
            .stage_batches(ctx, metrics.schema(), vec![metrics], Path::new(METRICS))
            .await?;
        staged.push((dir, METRICS));
        Ok::<_, crate::error::Error>(())
    }
    .await;
    if let Err(e) = result {
        for (dir, _) in &staged {
            wh.discard(dir);
        }
        return Err(e);
    }
    let mut outputs = Vec::new();
    let mut versions = Vec::new();
    for (dir, table) in &staged {
        if let Some(v) = wh.commit(dir, Path::new(table)).await? {
            versions.push((table.to_string(), v));
        }
        outputs.push(table.to_string());
    }
    if !outputs.iter().any(|t| t == EVALUATED) {
        // An earlier run's evaluations are not this model's.
        wh.drop_table(EVALUATED).await?;
    }
    for table in &outputs {
        wh.register(ctx, table).await?;
    }
    let saved = wh.save_model(&spec.model_name, deployed).await?;
    tracing::info!(model = %saved, "model saved");
    outputs.push(format!("models/{}", spec.model_name));
    Ok(StageOutcome {
        inputs: vec![spec.input.clone()],
        outputs,
        rows_in,
        rows_out: scored_rows,
        rejected: 0,
        versions,
    })
}
