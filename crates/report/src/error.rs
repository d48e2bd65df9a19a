//! Errors of the report.

use std::path::PathBuf;

use plotters::drawing::DrawingAreaErrorKind;

/// The report's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can stop a report or one of its sections.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The warehouse could not be opened or listed.
    #[error(transparent)]
    Warehouse(#[from] zeekml_pipeline::Error),
    /// A report query failed to plan or run.
    #[error("report query {query}: {source}")]
    Query {
        /// The query file under `crates/report/sql/`, or the computed query's name.
        query: &'static str,
        /// DataFusion's error.
        #[source]
        source: datafusion::error::DataFusionError,
    },
    /// A query result lacks a column the section reads.
    #[error("report query {query}: no column `{column}` in its result")]
    MissingColumn {
        /// The query.
        query: &'static str,
        /// The column.
        column: String,
    },
    /// A result column has a type the section cannot read.
    #[error("report query {query}: column `{column}`: {source}")]
    Column {
        /// The query.
        query: &'static str,
        /// The column.
        column: String,
        /// Arrow's cast error.
        #[source]
        source: datafusion::arrow::error::ArrowError,
    },
    /// A model card could not be read or parsed.
    #[error("model card {path}: {source}")]
    Card {
        /// The card file.
        path: PathBuf,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// plotters failed to draw a chart.
    #[error("chart '{chart}': {source}")]
    Plot {
        /// The chart's title.
        chart: String,
        /// plotters' error.
        #[source]
        source: DrawingAreaErrorKind<std::io::Error>,
    },
}
