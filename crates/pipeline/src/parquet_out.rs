//! Parquet files written as batches arrive, with row groups encoded column
//! by column on every core and each column's compression chosen on its
//! first batch.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{Array, RecordBatch};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::error::DataFusionError;
use datafusion::parquet::arrow::arrow_writer::{
    compute_leaves, ArrowColumnChunk, ArrowColumnWriter, ArrowRowGroupWriterFactory,
};
use datafusion::parquet::arrow::ArrowSchemaConverter;
use datafusion::parquet::basic::Compression;
use datafusion::parquet::file::properties::WriterProperties;
use datafusion::parquet::file::writer::SerializedFileWriter;
use datafusion::parquet::schema::types::ColumnPath;
use tokio::sync::mpsc;

use crate::error::{Error, Result};

/// Rows per row group.
const ROW_GROUP_ROWS: usize = 1 << 18;

/// A Parquet file being written from batches that arrive one by one: they
/// are grouped into row groups that a blocking thread encodes while the
/// producer goes on. The file is written aside and renamed by
/// [`ParquetOut::finish`], so it is complete or absent.
pub(crate) struct ParquetOut {
    out: PathBuf,
    tmp: PathBuf,
    pending: Vec<RecordBatch>,
    pending_rows: usize,
    groups: Option<mpsc::Sender<Vec<RecordBatch>>>,
    encoder: Option<tokio::task::JoinHandle<Result<()>>>,
}

impl ParquetOut {
    pub(crate) fn create(out: &Path, schema: SchemaRef) -> Result<Self> {
        if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(crate::error::io(parent))?;
        }
        let tmp = out.with_extension("parquet.partial");
        let file = std::fs::File::create(&tmp).map_err(crate::error::io(&tmp))?;
        // One group queued while one encodes: memory stays at two row groups.
        let (groups, rx) = mpsc::channel(1);
        let encoder = tokio::task::spawn_blocking(move || encode_groups(file, &schema, rx));
        Ok(Self {
            out: out.to_path_buf(),
            tmp,
            pending: Vec::new(),
            pending_rows: 0,
            groups: Some(groups),
            encoder: Some(encoder),
        })
    }

    pub(crate) async fn push(&mut self, batch: RecordBatch) -> Result<()> {
        self.pending_rows += batch.num_rows();
        self.pending.push(batch);
        if self.pending_rows >= ROW_GROUP_ROWS {
            self.send_group().await?;
        }
        Ok(())
    }

    async fn send_group(&mut self) -> Result<()> {
        let group = std::mem::take(&mut self.pending);
        self.pending_rows = 0;
        let sent = match &self.groups {
            Some(groups) => groups.send(group).await.is_ok(),
            None => false,
        };
        if sent {
            return Ok(());
        }
        // The encoder stopped: its error says why.
        self.groups = None;
        self.join_encoder().await?;
        Err(Error::DataFusion(DataFusionError::Internal(
            "the Parquet encoder stopped early".to_string(),
        )))
    }

    async fn join_encoder(&mut self) -> Result<()> {
        match self.encoder.take() {
            Some(encoder) => encoder.await?,
            None => Ok(()),
        }
    }

    pub(crate) async fn finish(mut self) -> Result<()> {
        let written = async {
            if !self.pending.is_empty() {
                self.send_group().await?;
            }
            self.groups = None;
            self.join_encoder().await?;
            std::fs::rename(&self.tmp, &self.out).map_err(crate::error::io(&self.out))
        }
        .await;
        if written.is_err() {
            let _ = std::fs::remove_file(&self.tmp);
        }
        written
    }

    pub(crate) async fn discard(mut self) {
        self.groups = None;
        let _ = self.join_encoder().await;
        let _ = std::fs::remove_file(&self.tmp);
    }
}

/// Encodes row groups as they arrive; the columns of each group are encoded
/// on one thread per core (the output columns are flat: one leaf each).
fn encode_groups(
    file: std::fs::File,
    schema: &SchemaRef,
    mut groups: mpsc::Receiver<Vec<RecordBatch>>,
) -> Result<()> {
    let parquet = |e| Error::DataFusion(DataFusionError::ParquetError(Box::new(e)));
    // The first group chooses each column's compression; without one the
    // file still gets the schema.
    let first = groups.blocking_recv();
    let (mut writer, factory) = open_writer(file, schema, first.as_deref().unwrap_or_default())?;
    let rest = std::iter::from_fn(|| groups.blocking_recv());
    for (index, group) in first.into_iter().chain(rest).enumerate() {
        let columns = factory.create_column_writers(index).map_err(parquet)?;
        let chunks = encode_columns(schema, columns, &group)?;
        let mut row_group = writer.next_row_group().map_err(parquet)?;
        for chunk in chunks {
            chunk.append_to_row_group(&mut row_group).map_err(parquet)?;
        }
        row_group.close().map_err(parquet)?;
    }
    writer.close().map_err(parquet)?;
    Ok(())
}

type ParquetFileWriter = (
    SerializedFileWriter<std::fs::File>,
    ArrowRowGroupWriterFactory,
);

/// The file writer, with each column's compression chosen on `sample`.
fn open_writer(
    file: std::fs::File,
    schema: &SchemaRef,
    sample: &[RecordBatch],
) -> Result<ParquetFileWriter> {
    let parquet = |e| Error::DataFusion(DataFusionError::ParquetError(Box::new(e)));
    let mut props = WriterProperties::builder()
        .set_compression(Compression::LZ4_RAW)
        .set_dictionary_enabled(false);
    for (i, field) in schema.fields().iter().enumerate() {
        let column = sample.first().map(|b| b.column(i));
        if column.is_some_and(|c| !worth_compressing(c.as_ref())) {
            props = props.set_column_compression(
                ColumnPath::from(field.name().as_str()),
                Compression::UNCOMPRESSED,
            );
        }
    }
    let props = Arc::new(props.build());
    let parquet_schema = ArrowSchemaConverter::new()
        .with_coerce_types(props.coerce_types())
        .convert(schema)
        .map_err(parquet)?;
    let writer = SerializedFileWriter::new(file, parquet_schema.root_schema_ptr(), props)
        .map_err(parquet)?;
    let factory = ArrowRowGroupWriterFactory::new(&writer, Arc::clone(schema));
    Ok((writer, factory))
}

/// Whether LZ4 shrinks a column's values by a tenth or more, judged on its
/// first 64 KiB. Nearly unique values (uid, ts) do not shrink, and
/// compressing them was a tenth of the time of a scoring run.
fn worth_compressing(column: &dyn Array) -> bool {
    let data = column.to_data();
    let Some(values) = data.buffers().last() else {
        return true;
    };
    let sample = &values.as_slice()[..values.len().min(1 << 16)];
    if sample.len() < 1024 {
        return true;
    }
    lz4_flex::block::compress(sample).len() * 10 < sample.len() * 9
}

fn encode_columns(
    schema: &SchemaRef,
    columns: Vec<ArrowColumnWriter>,
    group: &[RecordBatch],
) -> Result<Vec<ArrowColumnChunk>> {
    let parquet = |e| Error::DataFusion(DataFusionError::ParquetError(Box::new(e)));
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut shares: Vec<Vec<(usize, ArrowColumnWriter)>> =
        (0..threads).map(|_| Vec::new()).collect();
    for (column, w) in columns.into_iter().enumerate() {
        shares[column % threads].push((column, w));
    }
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
    Ok(chunks.into_iter().map(|(_, chunk)| chunk).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, StringArray};

    #[test]
    fn only_columns_that_shrink_are_compressed() {
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        let noise: Int64Array = (0..20_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as i64
            })
            .collect();
        assert!(!worth_compressing(&noise));
        let ports: Int64Array = (0..20_000).map(|i| [53, 80, 443][i % 3]).collect();
        assert!(worth_compressing(&ports));
        let states: StringArray = (0..20_000)
            .map(|i| Some(["SF", "S0", "REJ"][i % 3]))
            .collect();
        assert!(worth_compressing(&states));
        // Too little to judge: compressed as before.
        let few: Int64Array = (0..10).collect();
        assert!(worth_compressing(&few));
    }
}
