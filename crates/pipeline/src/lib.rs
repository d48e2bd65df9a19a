//! The zeekml pipeline engine: pipeline files, the generic SQL stage runner,
//! ingest, the LightGBM and scoring stages, and the Parquet warehouse with
//! its run manifest.
#![warn(missing_docs)]

pub mod config;
pub mod csv_check;
mod delta;
pub mod error;
pub mod evaluate;
pub mod ingest;
pub mod lock;
pub mod manifest;
mod memory;
pub mod net;
mod parquet_out;
pub mod query;
mod remote;
pub mod runner;
pub mod score;
pub mod session;
pub mod sql_stage;
mod table_files;
mod train;
pub mod warehouse;

pub use config::{InputFormat, OnBadRows, Pipeline};
pub use error::{Error, Result};
pub use lock::WarehouseLock;
pub use query::{query, render, OutputFormat};
pub use runner::{run_pipeline, RunOptions};
pub use score::{score_files, ScoreOptions, ScoreSummary};
pub use warehouse::{vacuum, Warehouse, Written};
