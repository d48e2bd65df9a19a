//! A DataFusion table over native Zeek logs, so SQL stages can read them
//! directly. Logs are read eagerly into memory: conn logs of one run fit, and
//! it lets the rejects be known before any query runs.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::{Expr, TableType};
use datafusion::physical_plan::ExecutionPlan;

use crate::error::Result;
use crate::zeek::{read_zeek, zeek_schema, Rejected, ZeekRead, ZeekReadOptions};

/// Native Zeek conn logs as a table in [`zeek_schema`].
#[derive(Debug, Clone)]
pub struct ZeekLogTable {
    read: ZeekRead,
}

impl ZeekLogTable {
    /// Reads every log at `location` (see [`crate::resolve_location`]).
    pub async fn try_new(location: &str, opts: ZeekReadOptions) -> Result<Self> {
        Ok(Self::new(read_zeek(location, &opts).await?))
    }

    /// Wraps logs already read.
    pub fn new(read: ZeekRead) -> Self {
        Self { read }
    }

    /// Rows set aside under [`crate::BadRows::Reject`].
    pub fn rejects(&self) -> &[Rejected] {
        &self.read.rejects
    }

    /// Number of rows in the table.
    pub fn rows(&self) -> u64 {
        self.read.rows
    }

    /// Number of files read.
    pub fn files(&self) -> usize {
        self.read.files
    }

    /// The batches of the table.
    pub fn batches(&self) -> &[RecordBatch] {
        &self.read.batches
    }
}

#[async_trait]
impl TableProvider for ZeekLogTable {
    fn schema(&self) -> SchemaRef {
        zeek_schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        // Spread batches over the session's partitions so scans run in parallel.
        let batches = &self.read.batches;
        let n = state.config().target_partitions().min(batches.len()).max(1);
        let mut partitions: Vec<Vec<RecordBatch>> = vec![Vec::new(); n];
        for (i, batch) in batches.iter().enumerate() {
            partitions[i % n].push(batch.clone());
        }
        let source = MemorySourceConfig::try_new(&partitions, zeek_schema(), projection.cloned())?
            .with_limit(limit);
        Ok(datafusion::datasource::source::DataSourceExec::from_data_source(source))
    }
}
