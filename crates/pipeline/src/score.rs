//! Scoring new traffic with a saved model: `zeekml score` and the `score`
//! pipeline stage. The input is read into the canonical connection schema,
//! the SQL stages recorded in the model card are replayed on it, and the
//! model scores the result.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, Float64Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::prelude::{DataFrame, SessionContext};
use zeekml_model::SavedModel;

use crate::config::{IngestSpec, InputFormat, OnBadRows, Pipeline, ScoreSpec};
use crate::error::{Error, Result};
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
pub async fn score_files(opts: &ScoreOptions) -> Result<ScoreSummary> {
    let model = load_model(&opts.model).await?;
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
    let started = std::time::Instant::now();
    let (df, _files, rejects) = ingest::read_input(&ctx, &spec, &opts.input).await?;
    tracing::info!(seconds = started.elapsed().as_secs_f64(), "read the input");
    for r in rejects.iter().take(5) {
        tracing::warn!(file = %r.file, line = r.line, reason = %r.reason, "row rejected");
    }
    let threshold = opts.threshold.unwrap_or(model.card.threshold);
    let scored = score_frame(&ctx, &model, df, threshold).await?;
    tracing::info!(seconds = started.elapsed().as_secs_f64(), "scored");
    let mut summary = summarize(&scored.batches, threshold)?;
    write_file(scored, &opts.out).await?;
    tracing::info!(seconds = started.elapsed().as_secs_f64(), "written");
    summary.rejected = rejects.len() as u64;
    Ok(summary)
}

async fn load_model(dir: &Path) -> Result<SavedModel> {
    let dir = dir.to_path_buf();
    Ok(tokio::task::spawn_blocking(move || SavedModel::load(&dir)).await??)
}

/// Connections scored in input order, with their schema (which an input
/// without connections still has).
struct Scored {
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
}

/// Replays the card's SQL stages on canonical connections and scores them.
async fn score_frame(
    ctx: &SessionContext,
    model: &SavedModel,
    canonical: DataFrame,
    threshold: f64,
) -> Result<Scored> {
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
    let view = canonical.into_view();
    for root in &roots {
        ctx.register_table(*root, Arc::clone(&view))?;
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
    let final_df = match last {
        Some(name) => ctx.table(name.as_str()).await?,
        None => ctx.read_table(view)?,
    };
    let planned: SchemaRef = Arc::new(final_df.schema().as_arrow().clone());
    let schema = output_batch(&RecordBatch::new_empty(planned), Vec::new(), threshold)?.schema();
    // Partitions in order keep the input's row order.
    let batches: Vec<RecordBatch> = final_df
        .collect_partitioned()
        .await?
        .into_iter()
        .flatten()
        .filter(|b| b.num_rows() > 0)
        .collect();
    tracing::debug!(batches = batches.len(), "feature stages computed");
    let owned = model.clone();
    let (batches, scores) = tokio::task::spawn_blocking(move || {
        let scores = owned.score(&batches);
        (batches, scores)
    })
    .await?;
    let scores = scores?;
    let mut out = Vec::with_capacity(batches.len());
    let mut from = 0;
    for batch in &batches {
        let to = from + batch.num_rows();
        out.push(output_batch(batch, scores[from..to].to_vec(), threshold)?);
        from = to;
    }
    Ok(Scored {
        schema,
        batches: out,
    })
}

/// Context columns, `score` and `flag` for every scored row.
fn output_batch(batch: &RecordBatch, scores: Vec<f64>, threshold: f64) -> Result<RecordBatch> {
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
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}

fn summarize(batches: &[RecordBatch], threshold: f64) -> Result<ScoreSummary> {
    let mut flagged = 0u64;
    let mut rows = 0u64;
    let mut by_source: HashMap<String, u64> = HashMap::new();
    for batch in batches {
        rows += batch.num_rows() as u64;
        let Some(flags) = batch
            .column_by_name("flag")
            .and_then(|c| c.as_any().downcast_ref::<BooleanArray>())
        else {
            continue;
        };
        flagged += flags.true_count() as u64;
        if let Some(src) = batch.column_by_name("src_ip") {
            let src = datafusion::arrow::compute::cast(src, &DataType::Utf8)?;
            if let Some(src) = src
                .as_any()
                .downcast_ref::<datafusion::arrow::array::StringArray>()
            {
                for i in 0..flags.len() {
                    if flags.value(i) && !flags.is_null(i) && !src.is_null(i) {
                        *by_source.entry(src.value(i).to_string()).or_default() += 1;
                    }
                }
            }
        }
    }
    let mut top: Vec<(String, u64)> = by_source.into_iter().collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    top.truncate(5);
    Ok(ScoreSummary {
        rows,
        flagged,
        threshold,
        rejected: 0,
        top_sources: top,
    })
}

/// Writes the scored batches as one Parquet file, aside and then renamed.
/// Row groups are encoded on a blocking thread; the file is complete or
/// absent.
async fn write_file(scored: Scored, out: &Path) -> Result<()> {
    let out = out.to_path_buf();
    tokio::task::spawn_blocking(move || write_file_blocking(&scored, &out)).await?
}

/// Rows per row group of a scored file.
const ROW_GROUP_ROWS: usize = 1 << 20;

fn write_file_blocking(scored: &Scored, out: &Path) -> Result<()> {
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(crate::error::io(parent))?;
    }
    let tmp = out.with_extension("parquet.partial");
    let file = std::fs::File::create(&tmp).map_err(crate::error::io(&tmp))?;
    let written = write_parallel(file, Arc::clone(&scored.schema), &scored.batches)
        .and_then(|()| std::fs::rename(&tmp, out).map_err(crate::error::io(out)));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Writes `batches` as Parquet, encoding the columns of each row group on
/// one thread per core (the output columns are flat: one leaf each).
fn write_parallel(
    file: std::fs::File,
    schema: datafusion::arrow::datatypes::SchemaRef,
    batches: &[RecordBatch],
) -> Result<()> {
    use datafusion::error::DataFusionError;
    use datafusion::parquet::arrow::arrow_writer::{
        compute_leaves, ArrowColumnChunk, ArrowColumnWriter, ArrowRowGroupWriterFactory,
    };
    use datafusion::parquet::arrow::ArrowSchemaConverter;
    use datafusion::parquet::basic::Compression;
    use datafusion::parquet::file::properties::WriterProperties;
    use datafusion::parquet::file::writer::SerializedFileWriter;
    let parquet = |e| Error::DataFusion(DataFusionError::ParquetError(Box::new(e)));
    // LZ4 encodes faster than Snappy at a similar size here, and scoring
    // throughput is what the hourly schedule waits on.
    let props = Arc::new(
        WriterProperties::builder()
            .set_compression(Compression::LZ4_RAW)
            .set_dictionary_enabled(false)
            .build(),
    );
    let parquet_schema = ArrowSchemaConverter::new()
        .with_coerce_types(props.coerce_types())
        .convert(&schema)
        .map_err(parquet)?;
    let mut writer =
        SerializedFileWriter::new(file, parquet_schema.root_schema_ptr(), Arc::clone(&props))
            .map_err(parquet)?;
    let factory = ArrowRowGroupWriterFactory::new(&writer, Arc::clone(&schema));
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut groups: Vec<&[RecordBatch]> = Vec::new();
    let (mut from, mut rows) = (0, 0);
    for (i, b) in batches.iter().enumerate() {
        rows += b.num_rows();
        if rows >= ROW_GROUP_ROWS || i + 1 == batches.len() {
            groups.push(&batches[from..=i]);
            (from, rows) = (i + 1, 0);
        }
    }
    for (index, group) in groups.into_iter().enumerate() {
        let writers = factory.create_column_writers(index).map_err(parquet)?;
        let mut shares: Vec<Vec<(usize, ArrowColumnWriter)>> =
            (0..threads).map(|_| Vec::new()).collect();
        for (column, w) in writers.into_iter().enumerate() {
            shares[column % threads].push((column, w));
        }
        let schema = &schema;
        let encoded: Vec<Result<Vec<(usize, ArrowColumnChunk)>>> = std::thread::scope(|scope| {
            let handles: Vec<_> = shares
                .into_iter()
                .map(|share| {
                    scope.spawn(move || {
                        let mut done = Vec::with_capacity(share.len());
                        for (column, mut w) in share {
                            let field = schema.field(column);
                            for batch in group {
                                for leaf in
                                    compute_leaves(field, batch.column(column)).map_err(parquet)?
                                {
                                    w.write(&leaf).map_err(parquet)?;
                                }
                            }
                            done.push((column, w.close().map_err(parquet)?));
                        }
                        Ok(done)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(Error::DataFusion(DataFusionError::Internal(
                            "a Parquet encoding thread panicked".to_string(),
                        )))
                    })
                })
                .collect()
        });
        let mut chunks = Vec::new();
        for part in encoded {
            chunks.extend(part?);
        }
        chunks.sort_by_key(|(column, _)| *column);
        let mut row_group = writer.next_row_group().map_err(parquet)?;
        for (_, chunk) in chunks {
            chunk.append_to_row_group(&mut row_group).map_err(parquet)?;
        }
        row_group.close().map_err(parquet)?;
    }
    writer.close().map_err(parquet)?;
    Ok(())
}

/// The `score` pipeline stage: scores a warehouse table into a table or partition.
pub(crate) async fn run_score_stage(
    ctx: &SessionContext,
    wh: &Warehouse,
    pipeline: &Pipeline,
    spec: &ScoreSpec,
) -> Result<StageOutcome> {
    let model_path = PathBuf::from(pipeline.substitute(&spec.model)?);
    let model_path = if model_path.is_relative() {
        wh.root().join(model_path)
    } else {
        model_path
    };
    if !model_path.is_dir() {
        return Err(pipeline.invalid(format!(
            "stage {}: model directory {} does not exist (train it first)",
            spec.name,
            model_path.display()
        )));
    }
    let model = load_model(&model_path).await?;
    crate::runner::register_input(ctx, wh, pipeline, &spec.input).await?;
    let input = ctx.table(spec.input.as_str()).await?;
    let rows_in = input.clone().count().await? as u64;
    // A fresh session keeps the replayed stage views from shadowing warehouse tables.
    let scoring_ctx = session::new_context();
    let input_view = input.into_view();
    let canonical = scoring_ctx.read_table(input_view)?;
    let threshold = spec.threshold.unwrap_or(model.card.threshold);
    let Scored { schema, batches } =
        score_frame(&scoring_ctx, &model, canonical, threshold).await?;
    let scored: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
    if scored != rows_in {
        // The replayed stages must keep every connection.
        return Err(Error::InvalidPipeline {
            path: pipeline.path.clone(),
            message: format!(
                "stage {}: the model's feature stages kept {scored} of {rows_in} rows",
                spec.name,
            ),
        });
    }
    let target = target_path(pipeline, &spec.name, spec.partition.as_ref())?;
    let rows_out = wh.write_batches(ctx, schema, batches, &target).await?;
    wh.register(ctx, &spec.name).await?;
    Ok(StageOutcome {
        inputs: vec![spec.input.clone(), model_path.display().to_string()],
        outputs: vec![spec.name.clone()],
        rows_in,
        rows_out,
        rejected: 0,
    })
}
