//! Scoring new traffic with a saved model: `zeekml score` and the `score`
//! pipeline stage. The input is read into the canonical connection schema,
//! the SQL stages recorded in the model card are replayed on it, and the
//! model scores the result.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, Float64Array, RecordBatch, StringArray,
};
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef};
use datafusion::catalog::streaming::StreamingTable;
use datafusion::catalog::TableProvider;
use datafusion::error::DataFusionError;
use datafusion::execution::TaskContext;
use datafusion::physical_plan::{collect, ExecutionPlan};
use datafusion::prelude::{DataFrame, SessionContext};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use zeekml_model::{Reasons, SavedModel, Scorer};

use crate::config::{IngestSpec, InputFormat, OnBadRows, Pipeline, ScoreSpec};
use crate::error::{Error, Result};
use crate::ingest::OnceSource;
use crate::parquet_out::ParquetOut;
use crate::runner::{target_path, StageOutcome};
use crate::sql_stage::SqlStage;
use crate::warehouse::Warehouse;
use crate::{ingest, session};

/// Columns copied from the scored rows to the output, when present.
const CONTEXT: &[&str] = &[
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

/// Parameters that only shape training data and must not drop rows at scoring.
const TRAINING_ONLY_PARAMS: &[(&str, toml::Value)] = &[("dropna", toml::Value::Boolean(false))];

/// What `zeekml score` was asked to do.
#[derive(Debug, Clone)]
pub struct ScoreOptions {
    /// Model directory (`<warehouse>/models/<name>`).
    pub model: PathBuf,
    /// Files, directory, glob or URL of connections to score.
    pub input: String,
    /// Input layout; native Zeek logs by default.
    pub format: InputFormat,
    /// Output Parquet file.
    pub out: PathBuf,
    /// Decision threshold; the model card's when absent.
    pub threshold: Option<f64>,
    /// Policy for unreadable rows.
    pub on_bad_rows: OnBadRows,
    /// Reasons per row: the `explain` largest feature contributions
    /// (TreeSHAP); 0 writes no reason columns.
    pub explain: usize,
}

/// What a scoring run produced.
#[derive(Debug, Clone)]
pub struct ScoreSummary {
    /// Connections scored.
    pub rows: u64,
    /// Connections at or above the threshold.
    pub flagged: u64,
    /// Threshold used.
    pub threshold: f64,
    /// Rows set aside as unreadable.
    pub rejected: u64,
    /// Sources with the most flagged connections, most first.
    pub top_sources: Vec<(String, u64)>,
}

/// Scores files and writes one Parquet file (written aside, then renamed).
///
/// The input streams through: chunks of the logs parse on blocking threads,
/// one worker per core replays the feature stages and scores each batch as
/// it arrives, and row groups are encoded while later batches are still
/// being scored. Memory holds a few chunks of the logs, a few batches and
/// two row groups, not the input.
pub async fn score_files(opts: &ScoreOptions) -> Result<ScoreSummary> {
    let model = load_model(&opts.model).await?;
    let threshold = opts.threshold.unwrap_or(model.card.threshold);
    let ctx = session::new_context();
    let spec = IngestSpec {
        name: "input".into(),
        input: opts.input.clone(),
        format: opts.format,
        columns: BTreeMap::new(),
        on_bad_rows: opts.on_bad_rows,
        rejects_table: "rejects".into(),
        partition: None,
    };
    let (summary, stats) =
        score_input(&ctx, &model, &spec, threshold, opts.explain, &opts.out).await?;
    for r in stats.rejects.iter().take(5) {
        tracing::warn!(file = %r.file, line = r.line, reason = %r.reason, "row rejected");
    }
    Ok(summary.finish(threshold, stats.rejects.len() as u64))
}

/// Reads the input `spec` names and scores it into the Parquet file `out`;
/// a reader's error (file and line) comes before the scoring error it caused.
pub(crate) async fn score_input(
    ctx: &SessionContext,
    model: &SavedModel,
    spec: &IngestSpec,
    threshold: f64,
    explain: usize,
    out: &Path,
) -> Result<(Summary, ingest::ReadStats)> {
    let read = ingest::read_input(ctx, spec, &spec.input).await?;
    let schema: SchemaRef = Arc::new(read.df.schema().as_arrow().clone());
    let input = read.df.clone().execute_stream().await?;
    let scored = score_stream(
        model,
        schema,
        input.map_err(Error::from).boxed(),
        threshold,
        explain,
        out,
    )
    .await;
    read.settle(scored)
}

/// Scores a stream of canonical connections into the Parquet file `out`
/// (written aside, then renamed), in input order, with `explain` reasons
/// per row.
async fn score_stream(
    model: &SavedModel,
    input_schema: SchemaRef,
    input: BoxStream<'static, Result<RecordBatch>>,
    threshold: f64,
    explain: usize,
    out: &Path,
) -> Result<Summary> {
    let started = std::time::Instant::now();
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let scorer = Arc::new(model.scorer()?.with_threads(1));
    let explainer = match explain {
        0 => None,
        _ => Some(Arc::new(scorer.explainer()?)),
    };
    let mut plans = Vec::with_capacity(workers);
    for _ in 0..workers {
        let mut plan = FeaturePlan::new(model, Arc::clone(&input_schema)).await?;
        plan.reasons = explainer
            .as_ref()
            .map(|e| Reasons::new(Arc::clone(e), explain));
        plans.push(plan);
    }
    let schema = output_schema(&plans[0], threshold)?;

    let (out_tx, mut out_rx) = mpsc::channel::<Result<(u64, RecordBatch)>>(workers * 2);
    let mut tasks = JoinSet::new();
    let mut work = Vec::with_capacity(workers);
    for mut plan in plans {
        let (tx, mut rx) = mpsc::channel::<(u64, RecordBatch)>(1);
        work.push(tx);
        let (out_tx, scorer) = (out_tx.clone(), Arc::clone(&scorer));
        tasks.spawn(async move {
            while let Some((seq, batch)) = rx.recv().await {
                let result = plan.score(batch, &scorer, threshold).await;
                let failed = result.is_err();
                if out_tx.send(result.map(|b| (seq, b))).await.is_err() || failed {
                    break;
                }
            }
        });
    }
    tasks.spawn(feed(input, work, out_tx));

    // Batches come back in any order; they are written in input order.
    let mut file = ParquetOut::create(out, Arc::clone(&schema), workers)?;
    let mut summary = Summary::default();
    let mut done: BTreeMap<u64, RecordBatch> = BTreeMap::new();
    let mut next = 0u64;
    while let Some(item) = out_rx.recv().await {
        let (seq, batch) = match item {
            Ok(scored) => scored,
            Err(e) => {
                file.discard().await;
                return Err(e);
            }
        };
        done.insert(seq, batch);
        while let Some(batch) = done.remove(&next) {
            summary.add(&batch)?;
            if let Err(e) = file.push(batch).await {
                file.discard().await;
                return Err(e);
            }
            next += 1;
        }
    }
    tracing::info!(seconds = started.elapsed().as_secs_f64(), "scored");
    file.finish().await?;
    tracing::info!(seconds = started.elapsed().as_secs_f64(), "written");
    Ok(summary)
}

/// Hands input batches to the workers in turn, numbered in input order; an
/// input error goes straight to the writer, which stops the run.
async fn feed(
    mut input: BoxStream<'static, Result<RecordBatch>>,
    work: Vec<mpsc::Sender<(u64, RecordBatch)>>,
    out: mpsc::Sender<Result<(u64, RecordBatch)>>,
) {
    let mut seq = 0u64;
    while let Some(item) = input.next().await {
        match item {
            Ok(batch) if batch.num_rows() == 0 => {}
            Ok(batch) => {
                let worker = &work[(seq % work.len() as u64) as usize];
                if worker.send((seq, batch)).await.is_err() {
                    return;
                }
                seq += 1;
            }
            Err(e) => {
                let _ = out.send(Err(e)).await;
                return;
            }
        }
    }
}

/// The card's feature stages planned once over a one-batch source, so each
/// batch is computed by re-running the same physical plan.
struct FeaturePlan {
    source: Arc<OnceSource>,
    plan: Arc<dyn ExecutionPlan>,
    task: Arc<TaskContext>,
    schema: SchemaRef,
    /// This worker's explanation buffers, when reasons are asked for.
    reasons: Option<Reasons>,
    feature_names: Vec<String>,
}

impl FeaturePlan {
    async fn new(model: &SavedModel, input: SchemaRef) -> Result<Self> {
        // One partition: the plan runs on the worker that polls it.
        let ctx = session::context_with_partitions(1);
        let source = Arc::new(OnceSource::new(Arc::clone(&input)));
        let table = StreamingTable::try_new(input, vec![Arc::clone(&source) as _])?;
        let df = replay_stages(&ctx, model, Arc::new(table)).await?;
        let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        let plan = df.create_physical_plan().await?;
        Ok(Self {
            source,
            plan,
            task: ctx.task_ctx(),
            schema,
            reasons: None,
            feature_names: model.card.feature_names.clone(),
        })
    }

    /// Features of `batch`, scored: the output columns of [`output_batch`].
    async fn score(
        &mut self,
        batch: RecordBatch,
        scorer: &Scorer,
        threshold: f64,
    ) -> Result<RecordBatch> {
        let rows = batch.num_rows();
        self.source
            .set(futures::stream::once(async { Ok(batch) }).boxed());
        let computed = collect(Arc::clone(&self.plan), Arc::clone(&self.task)).await?;
        let features = concat_batches(&self.schema, &computed)?;
        if features.num_rows() != rows {
            return Err(Error::DataFusion(DataFusionError::Execution(format!(
                "the model's feature stages kept {} of {rows} rows",
                features.num_rows()
            ))));
        }
        let input = std::slice::from_ref(&features);
        let Some(reasons) = self.reasons.as_mut() else {
            return output_batch(&features, scorer.score(input)?, threshold, Vec::new());
        };
        let (scores, explained) = scorer.score_with_reasons(input, reasons)?;
        let columns = explained.columns(&self.feature_names, 0..explained.len());
        output_batch(&features, scores, threshold, columns)
    }
}

/// The model in `dir`, a local directory or an object store URL
/// (`s3://bucket/warehouse/models/uwf_recon`).
async fn load_model(dir: &Path) -> Result<SavedModel> {
    let text = dir.to_string_lossy();
    if text.contains("://") {
        return crate::warehouse::load_model_at(&text).await;
    }
    let dir = dir.to_path_buf();
    Ok(tokio::task::spawn_blocking(move || SavedModel::load(&dir)).await??)
}

/// The card's SQL stages planned over `input` (the canonical connections):
/// the last stage's frame, or the input itself when the card has none.
async fn replay_stages(
    ctx: &SessionContext,
    model: &SavedModel,
    input: Arc<dyn TableProvider>,
) -> Result<DataFrame> {
    let stages: Vec<SqlStage> = model
        .card
        .feature_stages
        .iter()
        .map(|s| SqlStage::parse(Path::new(&format!("<model card stage {}>", s.name)), &s.sql))
        .collect::<Result<_>>()?;
    let produced: BTreeSet<&str> = stages.iter().map(|s| s.name.as_str()).collect();
    let roots: BTreeSet<&str> = stages
        .iter()
        .flat_map(|s| s.inputs.iter().map(String::as_str))
        .filter(|t| !produced.contains(t))
        .collect();
    for root in &roots {
        ctx.register_table(*root, Arc::clone(&input))?;
    }
    let mut params: BTreeMap<String, toml::Value> =
        serde_json::from_value(model.card.stage_params.clone()).unwrap_or_default();
    for (key, value) in TRAINING_ONLY_PARAMS {
        if params.contains_key(*key) {
            params.insert((*key).to_string(), value.clone());
        }
    }
    let mut last = None;
    for stage in &stages {
        let df = stage.plan(ctx, &params).await?;
        ctx.register_table(stage.name.as_str(), df.into_view())?;
        last = Some(stage.name.clone());
    }
    Ok(match last {
        Some(name) => ctx.table(name.as_str()).await?,
        None => ctx.read_table(input)?,
    })
}

/// The output schema of `plan`'s batches.
fn output_schema(plan: &FeaturePlan, threshold: f64) -> Result<SchemaRef> {
    let reasons = match &plan.reasons {
        Some(r) => r.rows().columns(&plan.feature_names, 0..0),
        None => Vec::new(),
    };
    Ok(output_batch(
        &RecordBatch::new_empty(Arc::clone(&plan.schema)),
        Vec::new(),
        threshold,
        reasons,
    )?
    .schema())
}

/// Context columns, `score`, `flag` and the reason columns (if any) for
/// every scored row.
fn output_batch(
    batch: &RecordBatch,
    scores: Vec<f64>,
    threshold: f64,
    reasons: Vec<(FieldRef, ArrayRef)>,
) -> Result<RecordBatch> {
    let mut fields = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    for name in CONTEXT {
        if let Ok(idx) = batch.schema().index_of(name) {
            fields.push(batch.schema().field(idx).clone());
            columns.push(Arc::clone(batch.column(idx)));
        }
    }
    let flags: BooleanArray = scores.iter().map(|s| Some(*s >= threshold)).collect();
    fields.push(Field::new("score", DataType::Float64, false));
    fields.push(Field::new("flag", DataType::Boolean, false));
    columns.push(Arc::new(Float64Array::from(scores)));
    columns.push(Arc::new(flags));
    for (field, column) in reasons {
        fields.push(field.as_ref().clone());
        columns.push(column);
    }
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}

/// Running totals of the scored rows for the printed summary.
#[derive(Debug, Default)]
pub(crate) struct Summary {
    rows: u64,
    flagged: u64,
    by_source: HashMap<String, u64>,
}

impl Summary {
    fn add(&mut self, batch: &RecordBatch) -> Result<()> {
        self.rows += batch.num_rows() as u64;
        let Some(flags) = batch
            .column_by_name("flag")
            .and_then(|c| c.as_any().downcast_ref::<BooleanArray>())
        else {
            return Ok(());
        };
        self.flagged += flags.true_count() as u64;
        if let Some(src) = batch.column_by_name("src_ip") {
            let src = datafusion::arrow::compute::cast(src, &DataType::Utf8)?;
            if let Some(src) = src.as_any().downcast_ref::<StringArray>() {
                for i in 0..flags.len() {
                    if flags.value(i) && !flags.is_null(i) && !src.is_null(i) {
                        *self.by_source.entry(src.value(i).to_string()).or_default() += 1;
                    }
                }
            }
        }
        Ok(())
    }

    fn finish(self, threshold: f64, rejected: u64) -> ScoreSummary {
        let mut top: Vec<(String, u64)> = self.by_source.into_iter().collect();
        top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        top.truncate(5);
        ScoreSummary {
            rows: self.rows,
            flagged: self.flagged,
            threshold,
            rejected,
            top_sources: top,
        }
    }
}

/// The `score` pipeline stage: scores a warehouse table into a table or partition.
pub(crate) async fn run_score_stage(
    ctx: &SessionContext,
    wh: &Warehouse,
    pipeline: &Pipeline,
    spec: &ScoreSpec,
) -> Result<StageOutcome> {
    // A relative path is under the warehouse; a URL or an absolute path
    // is taken as it is.
    let model_ref = pipeline.substitute(&spec.model)?;
    let is_url = model_ref.contains("://");
    let (model, model_path) = if !is_url && Path::new(&model_ref).is_relative() {
        let at = format!("{}/{model_ref}", wh.location().trim_end_matches('/'));
        (wh.load_model(&model_ref).await?, at)
    } else if is_url || Path::new(&model_ref).is_dir() {
        (Some(load_model(Path::new(&model_ref)).await?), model_ref)
    } else {
        (None, model_ref)
    };
    let Some(model) = model else {
        return Err(pipeline.invalid(format!(
            "stage {}: model directory {model_path} does not exist (train it first)",
            spec.name,
        )));
    };
    crate::runner::register_input(ctx, wh, pipeline, &spec.input).await?;
    let input = ctx.table(spec.input.as_str()).await?;
    let input_schema: SchemaRef = Arc::new(input.schema().as_arrow().clone());
    let stream = input.execute_stream().await?.map_err(Error::from).boxed();
    let threshold = spec.threshold.unwrap_or(model.card.threshold);
    let target = target_path(pipeline, &spec.name, spec.partition.as_ref())?;
    let staging = wh.staging_for(&target)?;
    let scored = score_stream(
        &model,
        input_schema,
        stream,
        threshold,
        spec.explain,
        &staging.join("part-00000.parquet"),
    )
    .await;
    let summary = match scored {
        Ok(summary) => summary,
        Err(e) => {
            wh.discard(&staging);
            return Err(e);
        }
    };
    let version = wh.commit(&staging, &target).await?;
    wh.register(ctx, &spec.name).await?;
    let rows = summary.rows;
    Ok(StageOutcome {
        inputs: vec![spec.input.clone(), model_path],
        outputs: vec![spec.name.clone()],
        rows_in: rows,
        rows_out: rows,
        rejected: 0,
        versions: version
            .map(|v| (spec.name.clone(), v))
            .into_iter()
            .collect(),
    })
}
