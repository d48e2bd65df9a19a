//! Read-only SQL over the warehouse (`zeekml sql`).

use std::path::Path;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::execution::context::SQLOptions;

use crate::error::{Error, Result};
use crate::session;
use crate::warehouse::Warehouse;

/// Output formats of query results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// An aligned text table.
    Table,
    /// CSV with a header row.
    Csv,
    /// One JSON object per line.
    Json,
}

/// Runs one read-only query against every table of the warehouse.
pub async fn query(warehouse: &Path, sql: &str) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let wh = Warehouse::open(warehouse)?;
    let ctx = session::new_context();
    wh.register_all(&ctx).await?;
    let options = SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false);
    let df = ctx.sql_with_options(sql, options).await.map_err(|e| {
        let text = e.to_string();
        if text.contains("not supported") || text.contains("DDL") || text.contains("DML") {
            Error::ReadOnly(text)
        } else {
            Error::DataFusion(e)
        }
    })?;
    let schema: SchemaRef = std::sync::Arc::new(df.schema().as_arrow().clone());
    Ok((schema, df.collect().await?))
}

/// Renders query results in the chosen format.
pub fn render(schema: &SchemaRef, batches: &[RecordBatch], format: OutputFormat) -> Result<String> {
    Ok(match format {
        OutputFormat::Table => {
            if batches.iter().all(|b| b.num_rows() == 0) {
                let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
                format!("{}\n(0 rows)", names.join(" | "))
            } else {
                datafusion::arrow::util::pretty::pretty_format_batches(batches)?.to_string()
            }
        }
        OutputFormat::Csv => {
            let mut buf = Vec::new();
            {
                let mut writer = datafusion::arrow::csv::WriterBuilder::new()
                    .with_header(true)
                    .build(&mut buf);
                if batches.is_empty() {
                    writer.write(&RecordBatch::new_empty(schema.clone()))?;
                }
                for batch in batches {
                    writer.write(batch)?;
                }
            }
            String::from_utf8_lossy(&buf).into_owned()
        }
        OutputFormat::Json => {
            let mut buf = Vec::new();
            {
                let mut writer = datafusion::arrow::json::LineDelimitedWriter::new(&mut buf);
                for batch in batches {
                    writer.write(batch)?;
                }
                writer.finish()?;
            }
            String::from_utf8_lossy(&buf).into_owned()
        }
    })
}
