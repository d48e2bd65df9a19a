//! The report's queries: one `.sql` file each under `crates/report/sql/`,
//! run read-only in a session with every warehouse table registered.

use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type};
use datafusion::common::ParamValues;
use datafusion::execution::context::SQLOptions;
use datafusion::prelude::SessionContext;
use datafusion::scalar::ScalarValue;

use crate::error::{Error, Result};

/// A query file, embedded at build time.
pub(crate) struct Sql {
    /// File name, for errors.
    pub name: &'static str,
    /// The query.
    pub text: &'static str,
}

macro_rules! sql_file {
    ($name:literal) => {
        Sql {
            name: concat!($name, ".sql"),
            text: include_str!(concat!("../sql/", $name, ".sql")),
        }
    };
}

pub(crate) const ROC_STEPS: Sql = sql_file!("roc_steps");
pub(crate) const SCORE_BINS: Sql = sql_file!("score_bins");
pub(crate) const CONFUSION: Sql = sql_file!("confusion");
pub(crate) const METRICS: Sql = sql_file!("metrics");
pub(crate) const IMPORTANCE: Sql = sql_file!("importance");
pub(crate) const MODEL_STAGE: Sql = sql_file!("model_stage");
pub(crate) const VALUE_BINS: Sql = sql_file!("value_bins");
pub(crate) const CATEGORY_COUNTS: Sql = sql_file!("category_counts");
pub(crate) const LATEST_RUN: Sql = sql_file!("latest_run");
pub(crate) const TOP_BEACONS: Sql = sql_file!("top_beacons");
pub(crate) const BEACON_BINS: Sql = sql_file!("beacon_bins");
pub(crate) const TOP_HOSTS: Sql = sql_file!("top_hosts");
pub(crate) const ALERTS_BY_DAY: Sql = sql_file!("alerts_by_day");
pub(crate) const ALERT_SOURCES: Sql = sql_file!("alert_sources");

/// Runs a query file with its named parameters (`$split`, `$threshold`).
pub(crate) async fn run(
    ctx: &SessionContext,
    sql: &Sql,
    params: Vec<(&str, ScalarValue)>,
) -> Result<Rows> {
    let wrap = |source| Error::Query {
        query: sql.name,
        source,
    };
    let options = SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false);
    let mut df = ctx
        .sql_with_options(sql.text, options)
        .await
        .map_err(wrap)?;
    if !params.is_empty() {
        let values: Vec<(String, ScalarValue)> = params
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        df = df
            .with_param_values(ParamValues::from(values))
            .map_err(wrap)?;
    }
    let batches = df.collect().await.map_err(wrap)?;
    Ok(Rows {
        query: sql.name,
        batches,
    })
}

/// A query's result, read column by column.
pub(crate) struct Rows {
    query: &'static str,
    batches: Vec<RecordBatch>,
}

impl Rows {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }

    /// Whether the result has no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Each batch's column `name` cast to `to`.
    fn column(&self, name: &str, to: &DataType) -> Result<Vec<Arc<dyn Array>>> {
        self.batches
            .iter()
            .map(|b| {
                let array = b.column_by_name(name).ok_or_else(|| Error::MissingColumn {
                    query: self.query,
                    column: name.to_string(),
                })?;
                cast(array, to).map_err(|source| Error::Column {
                    query: self.query,
                    column: name.to_string(),
                    source,
                })
            })
            .collect()
    }

    /// A numeric or boolean column as floats (NULL as `None`).
    pub fn f64s(&self, name: &str) -> Result<Vec<Option<f64>>> {
        Ok(self
            .column(name, &DataType::Float64)?
            .iter()
            .flat_map(|a| a.as_primitive::<Float64Type>().iter().collect::<Vec<_>>())
            .collect())
    }

    /// A numeric or boolean column as integers (NULL as `None`).
    pub fn i64s(&self, name: &str) -> Result<Vec<Option<i64>>> {
        Ok(self
            .column(name, &DataType::Int64)?
            .iter()
            .flat_map(|a| a.as_primitive::<Int64Type>().iter().collect::<Vec<_>>())
            .collect())
    }

    /// Any column as text (NULL as `None`).
    pub fn strings(&self, name: &str) -> Result<Vec<Option<String>>> {
        Ok(self
            .column(name, &DataType::Utf8)?
            .iter()
            .flat_map(|a| {
                a.as_string::<i32>()
                    .iter()
                    .map(|v| v.map(str::to_string))
                    .collect::<Vec<_>>()
            })
            .collect())
    }
}
