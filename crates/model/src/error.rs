//! Errors of training, scoring and model storage. `context` names the stage
//! (`stage `train``) or the model (`model `uwf_recon``) an error is about;
//! `row` names the row, with its `uid` when the input has one.

use std::path::PathBuf;

use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::error::ArrowError;

/// Result alias used across the model crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong while training, evaluating, saving or scoring.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A stage setting is out of range or inconsistent.
    #[error("{context}: invalid setting `{field}`: {reason}")]
    InvalidSpec {
        /// Stage the setting belongs to.
        context: String,
        /// The setting.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A feature, label or time column is absent from the input.
    #[error("{context}: column `{column}` not found in table `{table}` (columns: {available})")]
    MissingColumn {
        /// Stage or model.
        context: String,
        /// Table that lacks the column.
        table: String,
        /// The missing column.
        column: String,
        /// The columns the table has.
        available: String,
    },
    /// A feature column is not numeric or boolean.
    #[error("{context}: feature column `{column}` of table `{table}` has type {data_type}; features must be numeric or boolean")]
    NonNumericFeature {
        /// Stage or model.
        context: String,
        /// Table holding the column.
        table: String,
        /// The column.
        column: String,
        /// Its type.
        data_type: DataType,
    },
    /// No column qualifies as a feature.
    #[error("{context}: table `{table}` has no numeric or boolean column besides the keys and the label")]
    NoFeatures {
        /// Stage.
        context: String,
        /// The input table.
        table: String,
    },
    /// The label column has a type that cannot hold 0/1 labels.
    #[error("{context}: label column `{column}` of table `{table}` has type {data_type}; expected integers or booleans")]
    LabelType {
        /// Stage.
        context: String,
        /// The input table.
        table: String,
        /// The label column.
        column: String,
        /// Its type.
        data_type: DataType,
    },
    /// A label is null.
    #[error("{context}: label column `{column}` is null at {row}")]
    NullLabel {
        /// Stage.
        context: String,
        /// The label column.
        column: String,
        /// The row.
        row: String,
    },
    /// A label is neither 0 nor 1.
    #[error("{context}: label column `{column}` holds {value} at {row}; labels must be 0 or 1")]
    InvalidLabel {
        /// Stage.
        context: String,
        /// The label column.
        column: String,
        /// The value found.
        value: i128,
        /// The row.
        row: String,
    },
    /// A feature value is NaN or infinite (nulls are fine: they are missing values).
    #[error("{context}: feature column `{column}` holds the non-finite value {value} at {row}")]
    NonFiniteFeature {
        /// Stage or model.
        context: String,
        /// The feature column.
        column: String,
        /// The value found.
        value: f64,
        /// The row.
        row: String,
    },
    /// The time split needs a numeric or timestamp `ts` column.
    #[error("{context}: time column `{column}` has type {data_type}; the time split needs numbers or timestamps")]
    TimeType {
        /// Stage.
        context: String,
        /// The time column.
        column: String,
        /// Its type.
        data_type: DataType,
    },
    /// The time split met a null or non-finite time.
    #[error("{context}: time column `{column}` is null or not finite at {row}")]
    BadTime {
        /// Stage.
        context: String,
        /// The time column.
        column: String,
        /// The row.
        row: String,
    },
    /// A split left no rows to train on.
    #[error("{context}, split {split}: the training set is empty ({input_rows} input rows)")]
    EmptyTrainingSet {
        /// Stage.
        context: String,
        /// The split.
        split: String,
        /// Rows in the input table.
        input_rows: usize,
    },
    /// A split's training side holds only one class.
    #[error("{context}, split {split}: the training set holds only class {class} ({rows} rows); training needs both 0 and 1")]
    SingleClass {
        /// Stage.
        context: String,
        /// The split.
        split: String,
        /// The only class present.
        class: u8,
        /// Training rows.
        rows: usize,
    },
    /// More rows than LightGBM's 32-bit row index can hold.
    #[error("{context}: {rows} rows exceed LightGBM's limit of {} rows", i32::MAX)]
    TooManyRows {
        /// Stage or model.
        context: String,
        /// Rows asked for.
        rows: usize,
    },
    /// LightGBM refused or failed.
    #[error("{context}: LightGBM could not {during}: {source}")]
    LightGbm {
        /// Stage (with split) or model.
        context: String,
        /// What was being done.
        during: &'static str,
        /// LightGBM's message.
        #[source]
        source: lightgbm3::Error,
    },
    /// A call of LightGBM's C API failed.
    #[error("{context}: LightGBM could not {during}: {message}")]
    LightGbmApi {
        /// Stage with split.
        context: String,
        /// What was being done.
        during: &'static str,
        /// LightGBM's message.
        message: String,
    },
    /// An Arrow operation failed.
    #[error("{context}: could not {during}: {source}")]
    Arrow {
        /// Stage or model.
        context: String,
        /// What was being done.
        during: &'static str,
        /// Arrow's error.
        #[source]
        source: ArrowError,
    },
    /// The training input could not be read, or changed between passes.
    #[error("{context}: could not read the input: {source}")]
    Input {
        /// Stage.
        context: String,
        /// What the input reported.
        #[source]
        source: crate::source::External,
    },
    /// The scored rows could not be written.
    #[error("{context}: could not write the scored rows: {source}")]
    Output {
        /// Stage.
        context: String,
        /// What the writer reported.
        #[source]
        source: crate::source::External,
    },
    /// A model directory could not be written or read.
    #[error("could not {during} {path}: {source}")]
    Io {
        /// What was being done.
        during: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A model card is not valid JSON for the card schema.
    #[error("invalid model card {path}: {source}")]
    Card {
        /// The card file.
        path: PathBuf,
        /// The JSON error (with line and column).
        #[source]
        source: serde_json::Error,
    },
    /// The model text and its card disagree.
    #[error(
        "model `{model}`: the model file has {in_model} features but the card lists {in_card}"
    )]
    CardMismatch {
        /// Model name.
        model: String,
        /// Features in the LightGBM model.
        in_model: usize,
        /// Features in the card.
        in_card: usize,
    },
    /// The pure-Rust predictor ([`crate::Forest`]) cannot use a model text,
    /// or an input does not fit the model.
    #[error("{context}: {reason}")]
    Forest {
        /// Model, or `forest` when the caller named none.
        context: String,
        /// What is wrong, with the model text line when there is one.
        reason: String,
    },
}
