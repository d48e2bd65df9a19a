//! Read-only SQL over the warehouse (`zeekml sql`).

use std::path::Path;

use datafusion::arrow::array::{Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
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

/// Runs one read-only query against every table of the warehouse, each at
/// its latest version but those `as_of` names (`(table, version)`), which
/// are read as of that earlier version.
pub async fn query(
    warehouse: &Path,
    sql: &str,
    as_of: &[(String, u64)],
) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let wh = Warehouse::open(warehouse)?;
    let ctx = session::new_context();
    wh.register_all(&ctx).await?;
    for (table, version) in as_of {
        wh.register_version(&ctx, table, *version).await?;
    }
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
                    writer.write(&nested_as_text(&RecordBatch::new_empty(schema.clone()))?)?;
                }
                for batch in batches {
                    writer.write(&nested_as_text(batch)?)?;
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

/// CSV has no lists or structs: such columns are written as their display
/// text (`[80, 443]`), as the table format shows them.
fn nested_as_text(batch: &RecordBatch) -> Result<RecordBatch> {
    use datafusion::arrow::array::{ArrayRef, StringArray};
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
    if !batch
        .schema()
        .fields()
        .iter()
        .any(|f| f.data_type().is_nested())
    {
        return Ok(batch.clone());
    }
    let mut fields = Vec::with_capacity(batch.num_columns());
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(batch.num_columns());
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        if field.data_type().is_nested() {
            let formatter = ArrayFormatter::try_new(column.as_ref(), &FormatOptions::default())?;
            let text: StringArray = (0..column.len())
                .map(|i| column.is_valid(i).then(|| formatter.value(i).to_string()))
                .collect();
            fields.push(Field::new(field.name(), DataType::Utf8, true));
            columns.push(std::sync::Arc::new(text));
        } else {
            fields.push(field.as_ref().clone());
            columns.push(column.clone());
        }
    }
    Ok(RecordBatch::try_new(
        std::sync::Arc::new(Schema::new(fields)),
        columns,
    )?)
}
