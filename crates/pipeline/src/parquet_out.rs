//! Parquet files written as batches arrive: the warehouse's tables and
//! `zeekml score`'s output. Row groups are encoded column by column on a
//! given number of threads, and each column's compression is chosen on its
//! first batch.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::error::DataFusionError;
use datafusion::parquet::arrow::arrow_writer::{
    compute_leaves, ArrowColumnChunk, ArrowColumnWriter, ArrowRowGroupWriterFactory,
};
use datafusion::parquet::arrow::ArrowSchemaConverter;
use datafusion::parquet::basic::Compression;
use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties};
use datafusion::parquet::file::writer::SerializedFileWriter;
use datafusion::parquet::schema::types::ColumnPath;
use tokio::sync::mpsc;

use crate::error::{Error, Result};

/// Rows per row group: 131,072 rows of a wide table are about 25 MB of
/// values, and a writer holds up to three groups (one filling, one queued,
/// one encoding). Larger groups were no faster.
const ROW_GROUP_ROWS: usize = 1 << 17;

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
    /// The schema batches are cast to when it differs from theirs.
    storable: Option<SchemaRef>,
}

impl ParquetOut {
    /// A file whose row groups are each encoded on `threads` threads (at
    /// least one): the cores this file may use while others are written.
    pub(crate) fn create(out: &Path, schema: SchemaRef, threads: usize) -> Result<Self> {
        if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(crate::error::io(parent))?;
        }
        let tmp = out.with_extension("parquet.partial");
        let stored = crate::delta::storable_schema(&schema);
        let storable = (!Arc::ptr_eq(&stored, &schema)).then(|| Arc::clone(&stored));
        let schema = stored;
        let file = std::fs::File::create(&tmp).map_err(crate::error::io(&tmp))?;
        // One group queued while one encodes: memory stays at two row groups.
        let (groups, rx) = mpsc::channel(1);
        let threads = threads.max(1);
        let encoder =
            tokio::task::spawn_blocking(move || encode_groups(file, &schema, threads, rx));
        Ok(Self {
            out: out.to_path_buf(),
            tmp,
            pending: Vec::new(),
            pending_rows: 0,
            groups: Some(groups),
            encoder: Some(encoder),
            storable,
        })
    }

    pub(crate) async fn push(&mut self, batch: RecordBatch) -> Result<()> {
        let batch = match &self.storable {
            Some(schema) => cast_batch(&batch, schema)?,
            None => batch,
        };
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

/// `batch` with its columns cast to `schema`'s types (unsigned integers
/// widened for a Delta table).
fn cast_batch(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(c, f)| {
            if c.data_type() == f.data_type() {
                Ok(Arc::clone(c))
            } else {
                datafusion::arrow::compute::cast(c, f.data_type())
            }
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
}

/// Encodes row groups as they arrive, the columns of each group side by side
/// on `threads` threads.
fn encode_groups(
    file: std::fs::File,
    schema: &SchemaRef,
    threads: usize,
    mut groups: mpsc::Receiver<Vec<RecordBatch>>,
) -> Result<()> {
    let parquet = |e| Error::DataFusion(DataFusionError::ParquetError(Box::new(e)));
    // The first group chooses each column's compression; without one the
    // file still gets the schema.
    let first = groups.blocking_recv();
    let (mut writer, factory, roots) =
        open_writer(file, schema, first.as_deref().unwrap_or_default())?;
    let rest = std::iter::from_fn(|| groups.blocking_recv());
    for (index, group) in first.into_iter().chain(rest).enumerate() {
        let columns = factory.create_column_writers(index).map_err(parquet)?;
        let chunks = encode_columns(schema, columns, &roots, threads, &group)?;
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
    Vec<usize>,
);

/// The file writer, with each column's compression chosen on `sample`, and
/// the top-level field of each Parquet leaf column.
fn open_writer(
    file: std::fs::File,
    schema: &SchemaRef,
    sample: &[RecordBatch],
) -> Result<ParquetFileWriter> {
    let parquet = |e| Error::DataFusion(DataFusionError::ParquetError(Box::new(e)));
    // Chunk statistics keep row-group pruning on times, ports and counters;
    // page statistics and the page index cost a min/max per page that the
    // warehouse's readers do not use. Text columns get none: comparing every
    // value was a twentieth of a stage, and the min/max of addresses or
    // uids prune nothing.
    let mut props = WriterProperties::builder()
        .set_compression(Compression::LZ4_RAW)
        .set_dictionary_enabled(false)
        .set_statistics_enabled(EnabledStatistics::Chunk);
    for (i, field) in schema.fields().iter().enumerate() {
        let path = || ColumnPath::from(field.name().as_str());
        let column = sample.first().map(|b| b.column(i));
        if column.is_some_and(|c| !worth_compressing(c.as_ref())) {
            props = props.set_column_compression(path(), Compression::UNCOMPRESSED);
        }
        if is_text(field.data_type()) {
            props = props.set_column_statistics_enabled(path(), EnabledStatistics::None);
        }
    }
    let props = Arc::new(props.build());
    let parquet_schema = ArrowSchemaConverter::new()
        .with_coerce_types(props.coerce_types())
        .convert(schema)
        .map_err(parquet)?;
    let roots = (0..parquet_schema.num_columns())
        .map(|leaf| parquet_schema.get_column_root_idx(leaf))
        .collect();
    let writer = SerializedFileWriter::new(file, parquet_schema.root_schema_ptr(), props)
        .map_err(parquet)?;
    let factory = ArrowRowGroupWriterFactory::new(&writer, Arc::clone(schema));
    Ok((writer, factory, roots))
}

/// Text and binary columns, which get no min/max statistics.
fn is_text(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Utf8
            | DataType::LargeUtf8
            | DataType::Utf8View
            | DataType::Binary
            | DataType::LargeBinary
            | DataType::BinaryView
    )
}

/// Whether LZ4 is worth its time on a column, judged on its first 64 KiB of
/// values: only when it shrinks them to a third or less. Nearly unique
/// values (uid, ts, durations, byte counts) shrink little, and LZ4 doubled
/// the time to encode a column; repetitive ones (categories, sparse flags,
/// counters that are mostly zero) shrink fivefold or more, and addresses
/// about fourfold.
fn worth_compressing(column: &dyn Array) -> bool {
    let data = column.to_data();
    let Some(values) = data.buffers().last() else {
        return true;
    };
    let sample = &values.as_slice()[..values.len().min(1 << 16)];
    if sample.len() < 1024 {
        return true;
    }
    lz4_flex::block::compress(sample).len() * MIN_RATIO <= sample.len()
}

/// See [`worth_compressing`].
const MIN_RATIO: usize = 3;

/// A top-level field's index and its encoded leaf columns.
type FieldChunks = (usize, Vec<ArrowColumnChunk>);

/// Encodes one row group: each top-level field (its leaf columns) on one of
/// `threads` threads. `roots[i]` is the field of leaf writer `i`.
fn encode_columns(
    schema: &SchemaRef,
    writers: Vec<ArrowColumnWriter>,
    roots: &[usize],
    threads: usize,
    group: &[RecordBatch],
) -> Result<Vec<ArrowColumnChunk>> {
    let parquet = |e| Error::DataFusion(DataFusionError::ParquetError(Box::new(e)));
    let mut fields: Vec<Vec<ArrowColumnWriter>> =
        (0..schema.fields().len()).map(|_| Vec::new()).collect();
    for (w, &root) in writers.into_iter().zip(roots) {
        fields[root].push(w);
    }
    let mut shares: Vec<Vec<(usize, Vec<ArrowColumnWriter>)>> =
        (0..threads).map(|_| Vec::new()).collect();
    for (column, ws) in fields.into_iter().enumerate() {
        shares[column % threads].push((column, ws));
    }
    let encoded: Vec<Result<Vec<FieldChunks>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = shares
            .into_iter()
            .map(|share| {
                scope.spawn(move || {
                    let mut done = Vec::with_capacity(share.len());
                    for (column, mut ws) in share {
                        let field = schema.field(column);
                        for batch in group {
                            let leaves =
                                compute_leaves(field, batch.column(column)).map_err(parquet)?;
                            for (leaf, w) in leaves.iter().zip(ws.iter_mut()) {
                                w.write(leaf).map_err(parquet)?;
                            }
                        }
                        let chunks = ws
                            .into_iter()
                            .map(|w| w.close().map_err(parquet))
                            .collect::<Result<Vec<_>>>()?;
                        done.push((column, chunks));
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
    Ok(chunks.into_iter().flat_map(|(_, c)| c).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, StringArray};

    /// Pseudo-random values that LZ4 cannot shrink.
    fn xorshift(mut x: u64) -> impl Iterator<Item = u64> {
        std::iter::repeat_with(move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        })
    }

    #[test]
    fn only_columns_that_shrink_are_compressed() {
        let noise: Int64Array = xorshift(0x9e37_79b9_7f4a_7c15)
            .take(20_000)
            .map(|x| x as i64)
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

    #[tokio::test]
    async fn nested_columns_round_trip_across_row_groups() {
        use datafusion::arrow::array::{Int32Array, ListArray, StructArray};
        use datafusion::arrow::datatypes::{DataType, Field, Int32Type, Schema};
        use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

        let pair = DataType::Struct(
            vec![
                Field::new("a", DataType::Int32, true),
                Field::new("b", DataType::Utf8, true),
            ]
            .into(),
        );
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("pair", pair, true),
            Field::new_list("gaps", Field::new_list_field(DataType::Int32, true), true),
            Field::new("name", DataType::Utf8, true),
        ]));
        let batch = |start: i64, n: usize| {
            let ids: Int64Array = (start..start + n as i64).collect();
            let a: Int32Array = (0..n).map(|i| (i % 7 != 0).then_some(i as i32)).collect();
            let b: StringArray = (0..n).map(|i| Some(format!("b{}", i % 5))).collect();
            let pair = StructArray::from(vec![
                (
                    Arc::new(Field::new("a", DataType::Int32, true)),
                    Arc::new(a) as _,
                ),
                (
                    Arc::new(Field::new("b", DataType::Utf8, true)),
                    Arc::new(b) as _,
                ),
            ]);
            let gaps = ListArray::from_iter_primitive::<Int32Type, _, _>((0..n).map(|i| {
                (i % 3 != 0).then(|| (0..i % 4).map(|j| Some(j as i32)).collect::<Vec<_>>())
            }));
            let names: StringArray = (0..n)
                .map(|i| (i % 2 == 0).then(|| format!("n{i}")))
                .collect();
            RecordBatch::try_new(
                Arc::clone(&schema),
                vec![
                    Arc::new(ids),
                    Arc::new(pair),
                    Arc::new(gaps),
                    Arc::new(names),
                ],
            )
            .expect("batch")
        };
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("nested.parquet");
        let mut out = ParquetOut::create(&path, Arc::clone(&schema), 2).expect("create");
        // Three row groups, the last one short.
        let batches: Vec<RecordBatch> = (0..5).map(|k| batch(k * 70_000, 70_000)).collect();
        for b in &batches {
            out.push(b.clone()).await.expect("push");
        }
        out.finish().await.expect("finish");
        assert!(!tmp.path().join("nested.parquet.partial").exists());

        let file = std::fs::File::open(&path).expect("open");
        let builder = ParquetRecordBatchReaderBuilder::try_new(file).expect("reader");
        assert_eq!(builder.metadata().num_row_groups(), 3);
        let read: Vec<RecordBatch> = builder
            .build()
            .expect("build")
            .collect::<std::result::Result<_, _>>()
            .expect("read");
        let expected =
            datafusion::arrow::compute::concat_batches(&schema, &batches).expect("concat");
        let got = datafusion::arrow::compute::concat_batches(&schema, &read).expect("concat");
        assert_eq!(got, expected);
    }

    #[tokio::test]
    async fn layout_follows_the_data() {
        use datafusion::arrow::datatypes::{DataType, Field, Schema};
        use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};

        let schema = Arc::new(Schema::new(vec![
            Field::new("uid", DataType::Utf8, false),
            Field::new("conn_state", DataType::Utf8, false),
            Field::new("dest_port", DataType::Int64, false),
        ]));
        let uids: StringArray = xorshift(0x2545_f491_4f6c_dd1d)
            .take(50_000)
            .map(|x| Some(format!("C{x:016x}")))
            .collect();
        let states: StringArray = (0..50_000)
            .map(|i| Some(["SF", "S0", "REJ", "OTH"][i % 4]))
            .collect();
        let ports: Int64Array = (0..50_000).map(|i| [53, 80, 443, 8080][i % 4]).collect();
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![Arc::new(uids), Arc::new(states), Arc::new(ports)],
        )
        .expect("batch");
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("t.parquet");
        let mut out = ParquetOut::create(&path, schema, 2).expect("create");
        out.push(batch).await.expect("push");
        out.finish().await.expect("finish");

        let reader =
            SerializedFileReader::new(std::fs::File::open(&path).expect("open")).expect("reader");
        let group = reader.metadata().row_group(0);
        assert_eq!(group.num_rows(), 50_000);
        let (uid, state, port) = (group.column(0), group.column(1), group.column(2));
        assert_eq!(uid.compression(), Compression::UNCOMPRESSED);
        assert!(matches!(state.compression(), Compression::LZ4_RAW));
        assert!(matches!(port.compression(), Compression::LZ4_RAW));
        // Statistics on numbers, none on text.
        assert!(uid.statistics().is_none());
        assert!(state.statistics().is_none());
        let stats = port.statistics().expect("port statistics");
        assert_eq!(stats.min_bytes_opt(), Some(&53_i64.to_le_bytes()[..]));
        assert_eq!(stats.max_bytes_opt(), Some(&8080_i64.to_le_bytes()[..]));
    }
}
