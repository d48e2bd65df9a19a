//! The `ingest` stage: input files (UWF CSV or Parquet exports, native Zeek
//! logs) into a Parquet table in the canonical connection schema.
//!
//! CSV takes a fast path first: DataFusion scans every part with an explicit
//! schema built from the header. Only when that scan fails, or when the
//! pipeline asks for rejects, does a line-level pass run that names the file
//! and line of each bad row.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::datasource::MemTable;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{cast, col, lit, Expr};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::prelude::{CsvReadOptions, DataFrame, ParquetReadOptions, SessionContext};
use datafusion::scalar::ScalarValue;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::{ObjectStore, ObjectStoreExt};
use zeekml_formats::schema::CONN_COLUMNS;
use zeekml_formats::{BadRows, Rejected, ZeekReadOptions};

use crate::config::{IngestSpec, InputFormat, OnBadRows};
use crate::csv_check::{check_line, split_csv_line};
use crate::error::{Error, Result};
use crate::warehouse::Warehouse;

/// Zeek conn fields a native log must list: who talked to whom, how, and
/// how it ended (the feature and beacon stages compute from them).
const ZEEK_REQUIRED: &[&str] = &[
    "ts",
    "id.orig_h",
    "id.orig_p",
    "id.resp_h",
    "id.resp_p",
    "proto",
    "conn_state",
];

/// Canonical columns every CSV or Parquet input must carry (under its own
/// name or a mapped one): the Zeek conn fields the stages compute from.
const REQUIRED: &[&str] = &[
    "ts",
    "uid",
    "src_ip",
    "src_port",
    "dest_ip",
    "dest_port",
    "protocol",
    "service",
    "duration",
    "orig_bytes",
    "resp_bytes",
    "conn_state",
    "history",
    "orig_pkts",
    "orig_ip_bytes",
    "resp_pkts",
    "resp_ip_bytes",
];

/// Row counts of one ingest.
#[derive(Debug, Clone, Default)]
pub struct IngestOutcome {
    /// Input files read.
    pub files: usize,
    /// Rows read from the input (kept plus rejected).
    pub rows_in: u64,
    /// Rows written to the table.
    pub rows_out: u64,
    /// Rows set aside in the rejects table.
    pub rejected: u64,
    /// The Delta version of each table written.
    pub versions: Vec<(String, u64)>,
}

/// Runs an ingest stage into `target` (the table or one of its partitions).
pub async fn run_ingest(
    ctx: &SessionContext,
    wh: &Warehouse,
    spec: &IngestSpec,
    input: &str,
    target: &Path,
) -> Result<IngestOutcome> {
    let read = read_input(ctx, spec, input).await?;
    let written = wh.write_df(read.df.clone(), target).await;
    let (written, ReadStats { files, rejects, .. }) = match read.settle(written) {
        Err(e) if spec.format == InputFormat::Csv => {
            return Err(locate_csv_error(spec, input).await?.unwrap_or(e))
        }
        settled => settled?,
    };
    let rows_out = written.rows;
    let mut versions: Vec<(String, u64)> = written
        .version
        .map(|v| (spec.name.clone(), v))
        .into_iter()
        .collect();
    let rejected = rejects.len() as u64;
    if spec.on_bad_rows == OnBadRows::Reject {
        for r in rejects.iter().take(5) {
            tracing::warn!(file = %r.file, line = r.line, reason = %r.reason, "row rejected");
        }
        let batch = zeekml_formats::rejects_to_batch(&rejects)?;
        let written = wh
            .write_batches(
                ctx,
                zeekml_formats::rejects_schema(),
                vec![batch],
                Path::new(&spec.rejects_table),
            )
            .await?;
        if let Some(v) = written.version {
            versions.push((spec.rejects_table.clone(), v));
        }
    }
    Ok(IngestOutcome {
        files,
        rows_in: rows_out + rejected,
        rows_out,
        rejected,
        versions,
    })
}

/// Reads an input in the spec's format as canonical connections, with the
/// number of files read and the rows set aside.
pub(crate) async fn read_input(
    ctx: &SessionContext,
    spec: &IngestSpec,
    input: &str,
) -> Result<Read> {
    match spec.format {
        InputFormat::Csv => read_csv(ctx, spec, input).await,
        InputFormat::Parquet => read_parquet(ctx, spec, input).await,
        InputFormat::Zeek => read_zeek(ctx, spec, input).await,
    }
}

/// Names other published layouts use for canonical columns; consulted only
/// when the pipeline maps nothing and the canonical name is absent.
const ALIASES: &[(&str, &[&str])] = &[
    ("src_ip", &["src_ip_zeek", "id.orig_h"]),
    ("src_port", &["src_port_zeek", "id.orig_p"]),
    ("dest_ip", &["dest_ip_zeek", "id.resp_h"]),
    ("dest_port", &["dest_port_zeek", "id.resp_p"]),
    ("protocol", &["proto"]),
    (
        "label_text",
        &["mitre_attack_tactics", "label_tactic", "label"],
    ),
];

/// The source column for a canonical column: the pipeline's mapping, the
/// canonical name itself, or a known alias present in the input.
fn source_of<'a>(spec: &'a IngestSpec, input: &'a Schema, canonical: &'a str) -> &'a str {
    if let Some(mapped) = spec.columns.get(canonical) {
        return mapped;
    }
    if input.field_with_name(canonical).is_ok() {
        return canonical;
    }
    ALIASES
        .iter()
        .filter(|(name, _)| *name == canonical)
        .flat_map(|(_, aliases)| aliases.iter())
        .find(|alias| input.field_with_name(alias).is_ok())
        .copied()
        .unwrap_or(canonical)
}

fn canonical_type(name: &str) -> Option<&'static DataType> {
    CONN_COLUMNS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, _, t)| t)
}

/// Projects an input schema onto the canonical columns (renamed and cast),
/// followed by the input's other columns unchanged.
fn canonical_projection(input: &Schema, spec: &IngestSpec, file: &str) -> Result<Vec<Expr>> {
    let mut exprs = Vec::new();
    let mut used = Vec::new();
    for (name, _, ty) in CONN_COLUMNS {
        let source = source_of(spec, input, name);
        if input.field_with_name(source).is_ok() {
            exprs.push(cast(col(quoted(source)), ty.clone()).alias(*name));
            used.push(source.to_string());
        } else if REQUIRED.contains(name) || spec.columns.contains_key(*name) {
            return Err(Error::BadFile {
                file: file.to_string(),
                message: format!(
                    "missing column '{source}'{} (columns: {})",
                    if source != *name {
                        format!(" (mapped to '{name}')")
                    } else {
                        String::new()
                    },
                    input
                        .fields()
                        .iter()
                        .map(|f| f.name().as_str())
                        .collect::<Vec<_>>()
                        .join(",")
                ),
            });
        } else {
            let null = ScalarValue::try_from(ty)?;
            exprs.push(lit(null).alias(*name));
        }
    }
    for field in input.fields() {
        let taken =
            used.contains(field.name()) || CONN_COLUMNS.iter().any(|(n, _, _)| n == field.name());
        if !taken {
            exprs.push(col(quoted(field.name())));
        }
    }
    Ok(exprs)
}

/// Column names such as `id.orig_h` must not be read as `table.column`.
fn quoted(name: &str) -> datafusion::common::Column {
    datafusion::common::Column::new_unqualified(name)
}

/// A canonical frame and what reading it found. Native Zeek logs are read
/// as the frame is consumed, so their stats are complete only after that.
pub(crate) struct Read {
    /// The canonical connections.
    pub df: DataFrame,
    stats: Arc<Mutex<ReadStats>>,
}

/// Files read, rows set aside, and the error that stopped a streamed read.
#[derive(Debug, Default)]
pub(crate) struct ReadStats {
    pub files: usize,
    pub rejects: Vec<Rejected>,
    pub error: Option<zeekml_formats::Error>,
}

impl Read {
    fn ready(df: DataFrame, files: usize, rejects: Vec<Rejected>) -> Self {
        let stats = ReadStats {
            files,
            rejects,
            error: None,
        };
        Self {
            df,
            stats: Arc::new(Mutex::new(stats)),
        }
    }

    /// What reading found so far (all of it once `df` has been consumed).
    pub(crate) fn take_stats(&self) -> ReadStats {
        std::mem::take(&mut *self.stats.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// The outcome of consuming `df`, with what reading found. A reader
    /// error (file and line) comes first: DataFusion, which stopped on it,
    /// only carries its text.
    pub(crate) fn settle<T>(&self, outcome: Result<T>) -> Result<(T, ReadStats)> {
        let mut stats = self.take_stats();
        if let Some(e) = stats.error.take() {
            return Err(e.into());
        }
        Ok((outcome?, stats))
    }
}

async fn read_parquet(ctx: &SessionContext, spec: &IngestSpec, input: &str) -> Result<Read> {
    let resolved = zeekml_formats::resolve_location(input).await?;
    ctx.register_object_store(&resolved.store_url, Arc::clone(&resolved.store));
    let urls = file_urls(&resolved);
    let df = ctx
        .read_parquet(
            urls.clone(),
            ParquetReadOptions::default().file_extension(""),
        )
        .await?;
    let exprs = canonical_projection(df.schema().as_arrow(), spec, &urls[0])?;
    Ok(Read::ready(df.select(exprs)?, urls.len(), Vec::new()))
}

async fn read_zeek(ctx: &SessionContext, spec: &IngestSpec, input: &str) -> Result<Read> {
    let opts = ZeekReadOptions {
        bad_rows: match spec.on_bad_rows {
            OnBadRows::Fail => BadRows::Fail,
            OnBadRows::Reject => BadRows::Reject,
        },
        required_fields: ZEEK_REQUIRED,
        ..ZeekReadOptions::default()
    };
    let chunks = zeekml_formats::stream_zeek(input, &opts).await?;
    let stats = Arc::new(Mutex::new(ReadStats::default()));
    let found = Arc::clone(&stats);
    // The reader's own error is kept for the caller: DataFusion's wrapping
    // would lose its type and prefix its message.
    let batches = chunks
        .map(move |chunk| {
            let mut found = found.lock().unwrap_or_else(PoisonError::into_inner);
            match chunk {
                Ok(read) => {
                    found.files += read.files;
                    found.rejects.extend(read.rejects);
                    Ok(futures::stream::iter(read.batches.into_iter().map(Ok)))
                }
                Err(e) => {
                    let message = e.to_string();
                    found.error.get_or_insert(e);
                    Err(DataFusionError::Execution(message))
                }
            }
        })
        .try_flatten()
        .boxed();
    let source = OnceSource::new(zeekml_formats::zeek_schema());
    source.set(batches);
    let table = StreamingTable::try_new(source.schema.clone(), vec![Arc::new(source)])?;
    Ok(Read {
        df: ctx.read_table(Arc::new(table))?,
        stats,
    })
}

/// A table source whose batches come from a stream set from outside, read
/// once per [`OnceSource::set`]: streamed logs are parsed as the stage's
/// output is written, and scoring re-runs one plan per batch.
pub(crate) struct OnceSource {
    schema: SchemaRef,
    stream: Mutex<Option<BoxStream<'static, DfResult<RecordBatch>>>>,
}

impl OnceSource {
    pub(crate) fn new(schema: SchemaRef) -> Self {
        Self {
            schema,
            stream: Mutex::new(None),
        }
    }

    /// The stream the next execution reads.
    pub(crate) fn set(&self, stream: BoxStream<'static, DfResult<RecordBatch>>) {
        *self.stream.lock().unwrap_or_else(PoisonError::into_inner) = Some(stream);
    }
}

impl std::fmt::Debug for OnceSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnceSource").finish_non_exhaustive()
    }
}

impl PartitionStream for OnceSource {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let taken = self
            .stream
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let stream = taken.unwrap_or_else(|| {
            futures::stream::once(async {
                Err(DataFusionError::Internal(
                    "a one-time table source was read twice".to_string(),
                ))
            })
            .boxed()
        });
        Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            stream,
        ))
    }
}

fn file_urls(resolved: &zeekml_formats::Resolved) -> Vec<String> {
    resolved
        .files
        .iter()
        .map(|meta| format!("{}{}", resolved.store_url, meta.location))
        .collect()
}

/// First line of a CSV file, checked for being there and for having data after it.
async fn csv_header(
    store: &dyn ObjectStore,
    meta: &object_store::ObjectMeta,
    url: &str,
) -> Result<Vec<String>> {
    let bad = |message: &str| Error::BadFile {
        file: url.to_string(),
        message: message.to_string(),
    };
    if meta.size == 0 {
        return Err(bad("empty file (0 bytes)"));
    }
    let head = store
        .get_range(&meta.location, 0..meta.size.min(1 << 16))
        .await
        .map_err(|e| bad(&e.to_string()))?;
    let text = String::from_utf8_lossy(&head);
    let Some((first, rest)) = text.split_once('\n') else {
        return Err(bad("header only, no data rows"));
    };
    if rest.trim().is_empty() && meta.size <= head.len() as u64 {
        return Err(bad("header only, no data rows"));
    }
    Ok(split_csv_line(first.trim_end_matches('\r')))
}

/// The typed schema of a CSV file: canonical types for known columns
/// (after mapping), text for the rest.
fn csv_schema(header: &[String], spec: &IngestSpec) -> SchemaRef {
    let reverse: BTreeMap<&str, &str> = spec
        .columns
        .iter()
        .map(|(canonical, source)| (source.as_str(), canonical.as_str()))
        .collect();
    Arc::new(Schema::new(
        header
            .iter()
            .map(|h| {
                let canonical = reverse.get(h.as_str()).copied().unwrap_or(h.as_str());
                let ty = canonical_type(canonical).cloned().unwrap_or(DataType::Utf8);
                Field::new(h, ty, true)
            })
            .collect::<Vec<_>>(),
    ))
}

async fn read_csv(ctx: &SessionContext, spec: &IngestSpec, input: &str) -> Result<Read> {
    let resolved = zeekml_formats::resolve_location(input).await?;
    ctx.register_object_store(&resolved.store_url, Arc::clone(&resolved.store));
    let urls = file_urls(&resolved);
    let mut header: Option<Vec<String>> = None;
    for (meta, url) in resolved.files.iter().zip(&urls) {
        let this = csv_header(resolved.store.as_ref(), meta, url).await?;
        match &header {
            None => header = Some(this),
            Some(first) if *first != this => {
                let differs = first
                    .iter()
                    .zip(&this)
                    .find(|(a, b)| a != b)
                    .map(|(a, b)| format!("'{b}' where {} has '{a}'", urls[0]))
                    .unwrap_or_else(|| {
                        format!(
                            "{} columns where {} has {}",
                            this.len(),
                            urls[0],
                            first.len()
                        )
                    });
                return Err(Error::BadFile {
                    file: url.clone(),
                    message: format!("header differs from the first file: {differs}"),
                });
            }
            Some(_) => {}
        }
    }
    let header = header.unwrap_or_default();
    let schema = csv_schema(&header, spec);
    canonical_projection(&schema, spec, &urls[0])?;
    if spec.on_bad_rows == OnBadRows::Reject {
        return read_csv_rejecting(ctx, spec, &resolved, &urls, schema).await;
    }
    let options = CsvReadOptions::new()
        .has_header(true)
        .schema(&schema)
        .file_extension("");
    let df = ctx.read_csv(urls.clone(), options).await?;
    let exprs = canonical_projection(df.schema().as_arrow(), spec, &urls[0])?;
    Ok(Read::ready(df.select(exprs)?, urls.len(), Vec::new()))
}

/// Validates every line, keeps the good ones, sets the rest aside.
async fn read_csv_rejecting(
    ctx: &SessionContext,
    spec: &IngestSpec,
    resolved: &zeekml_formats::Resolved,
    urls: &[String],
    schema: SchemaRef,
) -> Result<Read> {
    let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let types: Vec<DataType> = schema
        .fields()
        .iter()
        .map(|f| f.data_type().clone())
        .collect();
    let mut batches = Vec::new();
    let mut rejects = Vec::new();
    for (meta, url) in resolved.files.iter().zip(urls) {
        let bytes = fetch(resolved.store.as_ref(), meta, url).await?;
        let text = String::from_utf8_lossy(&bytes);
        let mut good = String::with_capacity(text.len());
        for (i, line) in text.lines().enumerate() {
            if i == 0 || line.trim().is_empty() {
                continue;
            }
            match check_line(line, &names, &types) {
                None => {
                    good.push_str(line);
                    good.push('\n');
                }
                Some(reason) => rejects.push(Rejected {
                    file: url.clone(),
                    line: i as u64 + 1,
                    reason,
                    text: line.to_string(),
                }),
            }
        }
        let reader = datafusion::arrow::csv::ReaderBuilder::new(Arc::clone(&schema))
            .with_header(false)
            .with_batch_size(65536)
            .build(std::io::Cursor::new(good.into_bytes()))?;
        for batch in reader {
            batches.push(batch?);
        }
    }
    let table = MemTable::try_new(schema, vec![batches])?;
    let df = ctx.read_table(Arc::new(table))?;
    let exprs = canonical_projection(df.schema().as_arrow(), spec, &urls[0])?;
    Ok(Read::ready(df.select(exprs)?, urls.len(), rejects))
}

async fn fetch(
    store: &dyn ObjectStore,
    meta: &object_store::ObjectMeta,
    url: &str,
) -> Result<bytes::Bytes> {
    let get = store
        .get(&meta.location)
        .await
        .map_err(|e| Error::BadFile {
            file: url.to_string(),
            message: e.to_string(),
        })?;
    get.bytes().await.map_err(|e| Error::BadFile {
        file: url.to_string(),
        message: e.to_string(),
    })
}

/// After the fast scan failed, finds the first bad line across the files.
async fn locate_csv_error(spec: &IngestSpec, input: &str) -> Result<Option<Error>> {
    let resolved = zeekml_formats::resolve_location(input).await?;
    let urls = file_urls(&resolved);
    for (meta, url) in resolved.files.iter().zip(&urls) {
        let bytes = fetch(resolved.store.as_ref(), meta, url).await?;
        let text = String::from_utf8_lossy(&bytes);
        let mut lines = text.lines();
        let header = split_csv_line(lines.next().unwrap_or_default());
        let schema = csv_schema(&header, spec);
        let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        let types: Vec<DataType> = schema
            .fields()
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        for (i, line) in lines.enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            if let Some(message) = check_line(line, &names, &types) {
                return Ok(Some(Error::BadRow {
                    file: url.clone(),
                    line: i as u64 + 2,
                    message,
                }));
            }
        }
    }
    Ok(None)
}
