//! Warehouse tables as Delta Lake tables, through delta-rs.
//!
//! zeekml's own Parquet writer makes the data files; a table write is then
//! one Delta transaction that adds them and removes the files they replace
//! (the whole table, one `column=value` partition, or nothing for an
//! append). Until the commit lands, readers see the previous version; files
//! written by a run that died before its commit are in no version, and
//! `zeekml vacuum` deletes them.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::catalog::TableProvider;
use datafusion::prelude::SessionContext;
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel;
use deltalake::kernel::transaction::{CommitBuilder, TableReference};
use deltalake::kernel::{new_metadata, Action, Add, MetadataExt, Protocol, Remove, StructType};
use deltalake::operations::vacuum::VacuumMode;
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::{DeltaTable, DeltaTableBuilder, DeltaTableError};
use url::Url;

use crate::error::{Error, Result};

/// The directory of a table's transaction log.
pub(crate) const LOG_DIR: &str = "_delta_log";

/// A data file about to be committed.
#[derive(Debug, Clone)]
pub(crate) struct DataFile {
    /// Path under the table root, `/`-separated (`date=2026-11-30/part-….parquet`).
    pub path: String,
    /// Its `column=value` directories, outermost first.
    pub partition: Vec<(String, String)>,
    /// Size in bytes.
    pub size: i64,
    /// Rows it holds.
    pub rows: i64,
    /// When it was written, in milliseconds since the epoch.
    pub modified_ms: i64,
}

/// What a commit replaces.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Replace<'a> {
    /// Every file of the table.
    Table,
    /// The files of one partition, `column = value`.
    Partition {
        /// The partition column.
        column: &'a str,
        /// Its value.
        value: &'a str,
    },
    /// Nothing: the files are appended.
    Nothing,
}

/// The table at `url` as of its latest version, or `None` when it has no
/// transaction log.
pub(crate) async fn load(url: &Url, name: &str) -> Result<Option<DeltaTable>> {
    let builder = DeltaTableBuilder::from_url(url.clone()).map_err(delta_error(name))?;
    match builder.load().await {
        Ok(table) => Ok(Some(table)),
        Err(DeltaTableError::NotATable(_)) => Ok(None),
        Err(e) => Err(delta_error(name)(e)),
    }
}

/// The table at `url` as of `version`.
pub(crate) async fn load_version(url: &Url, name: &str, version: u64) -> Result<DeltaTable> {
    DeltaTableBuilder::from_url(url.clone())
        .map_err(delta_error(name))?
        .with_version(version)
        .load()
        .await
        .map_err(delta_error(name))
}

/// A DataFusion provider that reads the files of `table`'s loaded version.
pub(crate) async fn provider(
    ctx: &SessionContext,
    table: &DeltaTable,
    name: &str,
) -> Result<Arc<dyn TableProvider>> {
    let state = ctx.state();
    table
        .update_datafusion_session(&state)
        .map_err(delta_error(name))?;
    Ok(table.table_provider().with_session(Arc::new(state)).await?)
}

/// Deletes the files of `table` that no version newer than `retain` reads
/// (`dry_run`: only lists them); returns their paths.
pub(crate) async fn vacuum(
    table: DeltaTable,
    name: &str,
    retain: std::time::Duration,
    dry_run: bool,
) -> Result<Vec<String>> {
    let retain = chrono::Duration::from_std(retain).unwrap_or(chrono::Duration::MAX);
    let (_, metrics) = table
        .vacuum()
        .with_retention_period(retain)
        .with_enforce_retention_duration(false)
        .with_mode(VacuumMode::Full)
        .with_dry_run(dry_run)
        .await
        .map_err(delta_error(name))?;
    Ok(metrics.files_deleted)
}

/// The version a loaded table is at.
pub(crate) fn version(table: &DeltaTable) -> Option<u64> {
    table.version()
}

/// The paths, under the table root, of the files of `table`'s loaded
/// version, sorted; `None` when the table is partitioned.
pub(crate) fn unpartitioned_files(table: &DeltaTable, name: &str) -> Result<Option<Vec<String>>> {
    let state = table.snapshot().map_err(delta_error(name))?;
    if !state.metadata().partition_columns().is_empty() {
        return Ok(None);
    }
    let mut files: Vec<String> = state
        .log_data()
        .iter()
        .map(|f| f.path().into_owned())
        .collect();
    files.sort();
    Ok(Some(files))
}

/// Commits `files` (whose own columns are `file_schema`) to the table at
/// `url`, replacing what `replace` says, as one transaction; creates the
/// table when `current` is `None`. With no files (`file_schema` `None`)
/// the table keeps its schema. Returns the new version.
pub(crate) async fn commit(
    url: &Url,
    name: &str,
    current: Option<&DeltaTable>,
    file_schema: Option<&Schema>,
    files: Vec<DataFile>,
    replace: Replace<'_>,
) -> Result<u64> {
    let state = match current {
        Some(table) => Some(table.snapshot().map_err(delta_error(name))?),
        None => None,
    };
    // Those of the files' directories; with no files, the partition's
    // column, or the table's own.
    let partition_columns: Vec<String> = match (files.first(), replace, state) {
        (Some(f), _, _) => f.partition.iter().map(|(c, _)| c.clone()).collect(),
        (None, Replace::Partition { column, .. }, _) => vec![column.to_string()],
        (None, _, Some(state)) => state.metadata().partition_columns().to_vec(),
        (None, _, None) => Vec::new(),
    };
    let schema = file_schema
        .map(|s| table_schema(s, &partition_columns))
        .transpose()
        .map_err(|e| Error::Delta {
            table: name.to_string(),
            message: format!("its columns cannot be stored in a Delta table: {e}"),
        })?;
    let mut actions = Vec::new();
    match state {
        None => {
            let Some(schema) = &schema else {
                return Err(Error::Delta {
                    table: name.to_string(),
                    message: "a write of no files cannot create the table".to_string(),
                });
            };
            actions.push(Action::Protocol(protocol()?));
            actions.push(Action::Metadata(
                new_metadata(schema, &partition_columns, no_configuration())
                    .map_err(delta_error(name))?,
            ));
        }
        Some(state) => {
            let existing = state.metadata().partition_columns();
            if !matches!(replace, Replace::Nothing) && *existing != partition_columns {
                return Err(mixed_layout(name, existing, replace));
            }
            if let Some(schema) = schema.as_ref().filter(|s| state.schema().as_ref() != *s) {
                actions.push(Action::Metadata(
                    state
                        .metadata()
                        .clone()
                        .with_schema(schema)
                        .map_err(delta_error(name))?,
                ));
            }
            let now = now_ms();
            for file in state.log_data().iter() {
                let values = file.partition_values_map();
                let replaced = match replace {
                    Replace::Table => true,
                    Replace::Partition { column, value } => {
                        values.get(column).and_then(|v| v.as_deref()) == Some(value)
                    }
                    Replace::Nothing => false,
                };
                if replaced {
                    actions.push(Action::Remove(Remove {
                        path: file.path().into_owned(),
                        data_change: true,
                        deletion_timestamp: Some(now),
                        extended_file_metadata: Some(true),
                        partition_values: Some(values),
                        size: Some(file.size()),
                        ..Remove::default()
                    }));
                }
            }
        }
    }
    for file in files {
        actions.push(Action::Add(Add {
            path: file.path,
            partition_values: file
                .partition
                .into_iter()
                .map(|(c, v)| (c, Some(v)))
                .collect(),
            size: file.size,
            modification_time: file.modified_ms,
            data_change: true,
            stats: Some(format!("{{\"numRecords\":{}}}", file.rows)),
            ..Add::default()
        }));
    }
    let operation = DeltaOperation::Write {
        mode: match replace {
            Replace::Nothing => SaveMode::Append,
            _ => SaveMode::Overwrite,
        },
        partition_by: (!partition_columns.is_empty()).then(|| partition_columns.clone()),
        predicate: match replace {
            Replace::Partition { column, value } => {
                Some(format!("{column} = '{}'", value.replace('\'', "''")))
            }
            _ => None,
        },
    };
    let log_store = match current {
        Some(table) => table.log_store(),
        None => DeltaTableBuilder::from_url(url.clone())
            .and_then(|b| b.build_storage())
            .map_err(delta_error(name))?,
    };
    let committed = CommitBuilder::default()
        .with_actions(actions)
        .build(
            state.map(|s| s as &dyn TableReference),
            log_store,
            operation,
        )
        .await
        .map_err(delta_error(name))?;
    Ok(committed.version() as u64)
}

/// The Delta schema of a table: the files' columns, then the partition
/// columns (strings, as the directory names hold them).
fn table_schema(
    file_schema: &Schema,
    partition_columns: &[String],
) -> std::result::Result<StructType, datafusion::arrow::error::ArrowError> {
    let mut fields: Vec<Field> = file_schema
        .fields()
        .iter()
        .filter(|f| !partition_columns.contains(f.name()))
        .map(|f| f.as_ref().clone())
        .collect();
    fields.extend(
        partition_columns
            .iter()
            .map(|c| Field::new(c, DataType::Utf8, true)),
    );
    (&Schema::new(fields)).try_into_kernel()
}

/// The Arrow schema zeekml writes for `schema`, in the types every Delta
/// reader takes: Delta has no unsigned integers, so they are widened to the
/// next signed type (counts in a `UInt64` stay far below `i64::MAX`), and
/// its timestamps are microseconds, with a time zone unless the table
/// takes on the `timestampNtz` feature; Zeek's times are UTC, so zone-less
/// timestamps are stored as UTC.
pub(crate) fn storable_schema(schema: &SchemaRef) -> SchemaRef {
    let widen = |t: &DataType| match t {
        DataType::UInt8 => Some(DataType::Int16),
        DataType::UInt16 => Some(DataType::Int32),
        DataType::UInt32 | DataType::UInt64 => Some(DataType::Int64),
        DataType::Timestamp(unit, tz) if *unit != TimeUnit::Microsecond || tz.is_none() => {
            Some(DataType::Timestamp(
                TimeUnit::Microsecond,
                Some(tz.clone().unwrap_or_else(|| "UTC".into())),
            ))
        }
        _ => None,
    };
    if !schema
        .fields()
        .iter()
        .any(|f| widen(f.data_type()).is_some())
    {
        return Arc::clone(schema);
    }
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match widen(f.data_type()) {
            Some(t) => f.as_ref().clone().with_data_type(t),
            None => f.as_ref().clone(),
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// Reader version 1, writer version 2: the features every Delta reader has.
fn protocol() -> Result<Protocol> {
    Ok(serde_json::from_value(serde_json::json!({
        "minReaderVersion": 1,
        "minWriterVersion": 2,
    }))?)
}

fn no_configuration() -> HashMap<String, String> {
    HashMap::new()
}

fn mixed_layout(name: &str, existing: &[String], replace: Replace<'_>) -> Error {
    let message = match replace {
        Replace::Partition { column, value } if existing.is_empty() => format!(
            "it was written whole, so a partition {column}={value} cannot be added; \
             remove the table directory or run without the partition value"
        ),
        Replace::Partition { column, .. } => {
            format!("it is partitioned by {}, not {column}", existing.join(", "))
        }
        _ => "it holds partitions, which a whole-table write would replace; \
              set the partition value (e.g. --set date=YYYY-MM-DD) or remove the \
              table directory first"
            .to_string(),
    };
    Error::MixedLayout {
        table: name.into(),
        message,
    }
}

fn delta_error<E: std::fmt::Display>(name: &str) -> impl Fn(E) -> Error + '_ {
    move |e: E| Error::Delta {
        table: name.to_string(),
        message: e.to_string(),
    }
}

/// Milliseconds since the epoch, as Delta's actions record times.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsigned_integers_and_zoneless_times_are_stored_as_delta_types() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("rows", DataType::UInt64, false),
            Field::new("port", DataType::UInt16, true),
            Field::new("name", DataType::Utf8, true),
            Field::new("at", DataType::Timestamp(TimeUnit::Nanosecond, None), true),
        ]));
        let stored = storable_schema(&schema);
        let types: Vec<&DataType> = stored.fields().iter().map(|f| f.data_type()).collect();
        assert_eq!(
            types,
            [
                &DataType::Int64,
                &DataType::Int32,
                &DataType::Utf8,
                &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
            ]
        );
        let plain = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, true)]));
        assert!(Arc::ptr_eq(&storable_schema(&plain), &plain));
    }

    #[test]
    fn partition_columns_come_last_as_strings() {
        let files = Schema::new(vec![
            Field::new("uid", DataType::Utf8, true),
            Field::new("score", DataType::Float64, true),
        ]);
        let schema = table_schema(&files, &["date".to_string()]).expect("schema");
        let names: Vec<&str> = schema.fields().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["uid", "score", "date"]);
    }
}
