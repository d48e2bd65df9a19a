//! Training input read in passes. Training holds a few bytes per row, not
//! the rows: each pass (hashing, gathering the training matrix, predicting,
//! writing the scored rows) reads the columns it needs batch by batch, and
//! every pass sees the rows in the same order, so a row's number in one pass
//! is its number in the next.

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;

use crate::error::{Error, Result};

/// An error of a [`Source`] or of a scored-rows sink, passed through.
pub type External = Box<dyn std::error::Error + Send + Sync>;

/// Batches of one pass over a [`Source`].
pub type Batches<'a> = Box<dyn Iterator<Item = std::result::Result<RecordBatch, External>> + 'a>;

/// A table training reads more than once, in the same row order each time.
pub trait Source {
    /// The table's schema; `None` for an input with no batches at all.
    fn schema(&self) -> Option<SchemaRef>;

    /// One pass over the named columns (in schema order), the rows in the
    /// same order on every call.
    fn scan(&self, columns: &[String]) -> std::result::Result<Batches<'_>, External>;

    /// Rows in the table when known without reading it, to size buffers.
    fn num_rows(&self) -> Option<usize> {
        None
    }
}

/// Batches in memory.
pub struct InMemory<'a>(pub &'a [RecordBatch]);

impl Source for InMemory<'_> {
    fn schema(&self) -> Option<SchemaRef> {
        self.0.first().map(|b| b.schema())
    }

    fn scan(&self, columns: &[String]) -> std::result::Result<Batches<'_>, External> {
        scan_batches(self.0, columns)
    }

    fn num_rows(&self) -> Option<usize> {
        Some(self.0.iter().map(RecordBatch::num_rows).sum())
    }
}

/// Batches in memory, owned.
impl Source for Vec<RecordBatch> {
    fn schema(&self) -> Option<SchemaRef> {
        InMemory(self).schema()
    }

    fn scan(&self, columns: &[String]) -> std::result::Result<Batches<'_>, External> {
        scan_batches(self, columns)
    }

    fn num_rows(&self) -> Option<usize> {
        InMemory(self).num_rows()
    }
}

fn scan_batches<'a>(
    batches: &'a [RecordBatch],
    columns: &[String],
) -> std::result::Result<Batches<'a>, External> {
    let Some(schema) = batches.first().map(|b| b.schema()) else {
        return Ok(Box::new(std::iter::empty()));
    };
    let mut indices: Vec<usize> = columns
        .iter()
        .map(|c| schema.index_of(c))
        .collect::<std::result::Result<_, _>>()?;
    indices.sort_unstable();
    indices.dedup();
    Ok(Box::new(
        batches
            .iter()
            .map(move |b| b.project(&indices).map_err(External::from)),
    ))
}

/// Calls `f(first_row, batch)` for every batch of one pass over `columns`,
/// where `first_row` is the batch's first row number in the whole input.
/// Returns the number of rows read.
pub(crate) fn each_batch(
    source: &dyn Source,
    columns: &[String],
    context: &str,
    mut f: impl FnMut(usize, &RecordBatch) -> Result<()>,
) -> Result<usize> {
    let read = |source: External| Error::Input {
        context: context.to_string(),
        source,
    };
    let mut start = 0;
    for batch in source.scan(columns).map_err(read)? {
        let batch = batch.map_err(read)?;
        if batch.num_rows() == 0 {
            continue;
        }
        f(start, &batch)?;
        start += batch.num_rows();
    }
    Ok(start)
}

/// Calls `f(first_row, batch, rows)` for each batch of one pass that holds
/// some of `rows`, with the pairs of `rows` in that batch; `rows` are
/// `(row number, payload)` sorted by row number. Returns the number of rows
/// read.
pub(crate) fn each_batch_with<T: Copy>(
    source: &dyn Source,
    columns: &[String],
    context: &str,
    rows: &[(u32, T)],
    mut f: impl FnMut(usize, &RecordBatch, &[(u32, T)]) -> Result<()>,
) -> Result<usize> {
    let mut rest = rows;
    each_batch(source, columns, context, |start, batch| {
        let end = start + batch.num_rows();
        let n = rest.partition_point(|&(r, _)| (r as usize) < end);
        let (here, next) = rest.split_at(n);
        rest = next;
        if here.is_empty() {
            return Ok(());
        }
        f(start, batch, here)
    })
}
