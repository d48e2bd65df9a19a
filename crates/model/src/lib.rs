//! LightGBM training and honest evaluation of Zeek connection features.
//!
//! [`train_and_evaluate`] trains one model per split: the notebook's
//! stratified random split (which lets copies of one flow sit on both sides),
//! a duplicate-aware split by `uid`, and a time split. It scores every input
//! row with each model, reports test metrics and feature importance, and
//! returns the deployed split's model as a [`SavedModel`] with its
//! [`ModelCard`]. This is the only crate that links LightGBM.
#![warn(missing_docs)]

mod binned;
mod error;
mod forest;
mod hash;
pub mod metrics;
mod metrics_table;
mod reasons;
mod saved;
mod shap;
mod source;
mod spec;
mod spill;
mod split;
mod table;
mod train;

pub use error::{Error, Result};
pub use forest::Forest;
pub use metrics_table::{evaluation_row, metrics_batch, MetricsRow, Unlabelled, EVALUATION_SIDE};
pub use reasons::{ReasonRows, Reasons, BASE_VALUE, CONTRIBUTION_REST, REASONS};
pub use saved::{
    FeatureSource, FeatureStage, ModelCard, SavedModel, Scorer, TrainingTable, CARD_FILE,
    LIGHTGBM3_VERSION, MODEL_FILE,
};
pub use shap::{ExplainScratch, Explainer};
pub use source::{Batches, External, InMemory, Source};
pub use spec::{ClassWeight, LgbmParams, SplitKind, Threshold, ThresholdRule, TrainSpec};
pub use train::{train, train_and_evaluate, ScoredSink, TrainOutcome, Trained};
