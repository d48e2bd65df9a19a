//! Errors of the pipeline engine. Every variant names what it is about: the
//! pipeline file, stage, table, input file and line.

use std::path::PathBuf;

use datafusion::error::DataFusionError;

/// Result alias used across the pipeline crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong while loading, running or querying a pipeline.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A pipeline file could not be read.
    #[error("cannot read pipeline file {path}: {source}")]
    ReadPipeline {
        /// The pipeline file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A pipeline file is not valid TOML for the pipeline schema.
    #[error("invalid pipeline file {path}: {source}")]
    ParsePipeline {
        /// The pipeline file.
        path: PathBuf,
        /// The TOML error (names the line and key).
        #[source]
        source: Box<toml::de::Error>,
    },
    /// The pipeline file is well-formed but inconsistent.
    #[error("pipeline {path}: {message}")]
    InvalidPipeline {
        /// The pipeline file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A SQL stage file could not be read.
    #[error("cannot read SQL file {path}: {source}")]
    ReadSql {
        /// The `.sql` file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A SQL stage file's header or statement is not acceptable.
    #[error("SQL file {path}: {message}")]
    InvalidSql {
        /// The `.sql` file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A stage failed while running.
    #[error("stage '{stage}' failed: {source}")]
    Stage {
        /// The stage name.
        stage: String,
        /// The cause.
        #[source]
        source: Box<Error>,
    },
    /// An input file holds a row that cannot be read.
    #[error("{file}:{line}: {message}")]
    BadRow {
        /// The input file.
        file: String,
        /// The 1-based line number in that file.
        line: u64,
        /// What is wrong with the row.
        message: String,
    },
    /// An input file as a whole is unusable (empty, missing a column, ...).
    #[error("{file}: {message}")]
    BadFile {
        /// The input file.
        file: String,
        /// What is wrong with it.
        message: String,
    },
    /// A table name that the warehouse does not hold.
    #[error(
        "table '{table}' not found in warehouse {warehouse} (run the stage that writes it first)"
    )]
    MissingTable {
        /// The table.
        table: String,
        /// The warehouse root.
        warehouse: PathBuf,
    },
    /// A warehouse given as an object store URL.
    #[error(
        "warehouse {url}: {scheme}:// warehouses are not supported; give a local directory or an s3:// URL (inputs may be {scheme}:// URLs)"
    )]
    RemoteWarehouse {
        /// The URL given.
        url: String,
        /// Its scheme.
        scheme: String,
    },
    /// Another run holds the warehouse's write lock.
    #[error(
        "warehouse {warehouse} is being written by {holder}{}; run again when it ends, or wait for it with --wait-for-lock SECONDS",
        if waited.is_zero() { String::new() } else { format!(" (waited {} s)", waited.as_secs()) }
    )]
    Locked {
        /// The warehouse root.
        warehouse: PathBuf,
        /// The run holding it, as its lock file describes it.
        holder: String,
        /// How long this run waited.
        waited: std::time::Duration,
    },
    /// A write whose layout (whole table or `column=value` partitions)
    /// differs from the table's: mixing the two would make it unreadable.
    #[error("table {table}: {message}")]
    MixedLayout {
        /// The table directory.
        table: PathBuf,
        /// What was written and how to resolve it.
        message: String,
    },
    /// An object store request of an `s3://` warehouse failed.
    #[error("warehouse {location}: {message}")]
    Remote {
        /// The object or prefix.
        location: String,
        /// What the store answered.
        message: String,
    },
    /// Reading or committing a table's Delta log failed.
    #[error("table '{table}': {message}")]
    Delta {
        /// The table.
        table: String,
        /// What delta-rs reported (a concurrent commit that conflicts with
        /// this one, a log it cannot read, ...).
        message: String,
    },
    /// A warehouse file operation failed.
    #[error("warehouse {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// An evaluation input could not be read or scored.
    #[error("evaluation '{name}': {source}")]
    Evaluation {
        /// The evaluation's name.
        name: String,
        /// What went wrong.
        #[source]
        source: Box<Error>,
    },
    /// A query refused because it would change the warehouse.
    #[error("read-only query refused: {0}")]
    ReadOnly(String),
    /// Reading native Zeek logs or resolving a location failed.
    #[error(transparent)]
    Formats(#[from] zeekml_formats::Error),
    /// Training or scoring failed.
    #[error(transparent)]
    Model(#[from] zeekml_model::Error),
    /// DataFusion failed.
    #[error(transparent)]
    DataFusion(#[from] DataFusionError),
    /// Arrow failed.
    #[error(transparent)]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
    /// A JSON document (run manifest, model card) failed.
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A blocking task panicked or was cancelled.
    #[error("background task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

impl Error {
    /// Wraps an error with the evaluation it happened in.
    pub fn in_evaluation(self, name: &str) -> Self {
        Error::Evaluation {
            name: name.to_string(),
            source: Box::new(self),
        }
    }

    /// Wraps an error with the stage it happened in.
    pub fn in_stage(self, stage: &str) -> Self {
        match self {
            already @ Error::Stage { .. } => already,
            other => Error::Stage {
                stage: stage.to_string(),
                source: Box::new(other),
            },
        }
    }
}

/// Attaches a path to an I/O error.
pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { path, source }
}
