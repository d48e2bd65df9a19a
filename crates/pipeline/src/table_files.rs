//! A committed warehouse table as the `lightgbm` stage reads it: its Parquet
//! files one after the other, row groups in order, so that every pass over
//! it sees the rows in the same order while memory holds one batch.

use std::fs::File;
use std::path::{Path, PathBuf};

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::parquet::arrow::ProjectionMask;
use zeekml_model::{Batches, External, Source};

use crate::error::{io, Result};

/// Rows per batch of a pass.
const BATCH_ROWS: usize = 65_536;

/// The Parquet files of a table written whole.
pub(crate) struct TableFiles {
    files: Vec<PathBuf>,
    schema: SchemaRef,
    rows: usize,
}

impl TableFiles {
    /// The table made of `files`, in that order; `None` when there are none.
    pub(crate) fn open(files: Vec<PathBuf>) -> Result<Option<Self>> {
        let mut schema = None;
        let mut rows = 0;
        for f in &files {
            let reader = Self::reader(f)?;
            rows += usize::try_from(reader.metadata().file_metadata().num_rows()).unwrap_or(0);
            schema.get_or_insert_with(|| reader.schema().clone());
        }
        Ok(schema.map(|schema| TableFiles {
            files,
            schema,
            rows,
        }))
    }

    fn reader(path: &Path) -> Result<ParquetRecordBatchReaderBuilder<File>> {
        let file = File::open(path).map_err(io(path))?;
        ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| crate::error::Error::BadFile {
            file: path.display().to_string(),
            message: e.to_string(),
        })
    }

    /// One file's batches of `columns`.
    fn scan_file(
        path: &Path,
        columns: &[String],
    ) -> std::result::Result<Batches<'static>, External> {
        let named = |e: &dyn std::fmt::Display| External::from(format!("{}: {e}", path.display()));
        let builder = Self::reader(path).map_err(|e| named(&e))?;
        let roots = columns
            .iter()
            .map(|c| builder.schema().index_of(c))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| named(&e))?;
        let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
        let reader = builder
            .with_projection(mask)
            .with_batch_size(BATCH_ROWS)
            .build()
            .map_err(|e| named(&e))?;
        let path = path.to_path_buf();
        Ok(Box::new(reader.map(move |b| {
            b.map_err(|e| External::from(format!("{}: {e}", path.display())))
        })))
    }
}

impl Source for TableFiles {
    fn schema(&self) -> Option<SchemaRef> {
        Some(self.schema.clone())
    }

    fn scan(&self, columns: &[String]) -> std::result::Result<Batches<'_>, External> {
        let columns = columns.to_vec();
        let mut files = self.files.iter();
        let mut current: Option<Batches<'static>> = None;
        Ok(Box::new(std::iter::from_fn(move || loop {
            if let Some(batches) = &mut current {
                if let Some(b) = batches.next() {
                    return Some(b);
                }
            }
            let path = files.next()?;
            match Self::scan_file(path, &columns) {
                Ok(batches) => current = Some(batches),
                Err(e) => return Some(Err(e)),
            }
        })))
    }

    fn num_rows(&self) -> Option<usize> {
        Some(self.rows)
    }
}
