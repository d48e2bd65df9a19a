//! A deployable model: LightGBM's text model plus a JSON card saying what it
//! was trained on, how, and how well it did.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use datafusion::arrow::record_batch::RecordBatch;
use lightgbm3::Booster;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::forest::Forest;
use crate::reasons::{ReasonRows, Reasons};
use crate::shap::Explainer;
use crate::spec::{resolve_threads, LgbmParams};
use crate::table::{Features, Table};

/// LightGBM's model file inside a model directory.
pub const MODEL_FILE: &str = "model.txt";
/// The card inside a model directory.
pub const CARD_FILE: &str = "model_card.json";
/// Version of the `lightgbm3` crate this build links (it bundles LightGBM 4.7).
pub const LIGHTGBM3_VERSION: &str = "1.0.11";

/// Rows per prediction call: bounds the dense buffer to a few megabytes.
pub(crate) const PREDICT_CHUNK: usize = 1 << 16;

/// Where a feature column came from.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct FeatureSource {
    /// Feature column.
    pub name: String,
    /// Stage (table) that produced it.
    pub stage: String,
}

/// SQL of a stage that produced features, so the model can be reproduced.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct FeatureStage {
    /// Stage name.
    pub name: String,
    /// The stage's SQL text.
    pub sql: String,
}

/// The warehouse table a model was trained on, as of the version it read:
/// that version of the Delta table is its exact training data.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct TrainingTable {
    /// Table name.
    pub name: String,
    /// Delta version read (`None` for a view computed during the run).
    pub version: Option<u64>,
}

/// What a saved model is, where it came from and how well it scored.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ModelCard {
    /// Model name (its directory name).
    pub name: String,
    /// `zeekml <version>`.
    pub created_by: String,
    /// Version of the `lightgbm3` crate that trained it.
    pub lightgbm3_version: String,
    /// LightGBM objective.
    pub objective: String,
    /// Feature columns, in the order the model takes them.
    pub feature_names: Vec<String>,
    /// The stage each feature came from.
    #[serde(default)]
    pub feature_sources: Vec<FeatureSource>,
    /// SQL of the stages that produced the features (filled by the pipeline).
    #[serde(default)]
    pub feature_stages: Vec<FeatureStage>,
    /// Pipeline parameters the feature stages were run with (filled by the pipeline).
    #[serde(default)]
    pub stage_params: serde_json::Value,
    /// The table trained on and its version (filled by the pipeline).
    #[serde(default)]
    pub training_table: Option<TrainingTable>,
    /// Label column.
    pub label: String,
    /// Training settings.
    pub params: LgbmParams,
    /// Split whose model this is.
    pub split: String,
    /// Decision threshold on the score.
    pub threshold: f64,
    /// The rule that set it: `fixed`, `best_f1_on_valid` or `max_fpr_on_valid`.
    #[serde(default)]
    pub threshold_rule: String,
    /// The rule's setting (the false-positive budget of `max_fpr`).
    #[serde(default)]
    pub threshold_target: Option<f64>,
    /// Input rows on the training side (before identical rows were merged).
    pub train_rows: u64,
    /// SHA-256 (hex) over the training matrix, labels and weights as given to LightGBM.
    pub training_fingerprint: String,
    /// The split's test metrics row.
    pub metrics: serde_json::Value,
    /// Metrics rows of the pipeline's evaluation inputs (filled by the pipeline).
    #[serde(default)]
    pub evaluations: Vec<serde_json::Value>,
    /// Boosting rounds kept (after early stopping).
    pub best_iteration: u64,
}

/// A trained model and its card.
#[derive(Clone, Debug, PartialEq)]
pub struct SavedModel {
    /// LightGBM's text model.
    pub model_text: String,
    /// The card.
    pub card: ModelCard,
}

fn io<'a>(during: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |source| Error::Io {
        during,
        path: path.to_path_buf(),
        source,
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = fs::File::create(path).map_err(io("create", path))?;
    f.write_all(bytes).map_err(io("write", path))?;
    f.sync_all().map_err(io("sync", path))
}

/// A sibling path `<parent>/.<name>.<tag>-<pid>-<nanos>` of `dir`.
fn sibling(dir: &Path, tag: &str) -> Result<PathBuf> {
    let name = dir.file_name().ok_or_else(|| Error::Io {
        during: "save a model to",
        path: dir.to_path_buf(),
        source: std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the path has no directory name",
        ),
    })?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    Ok(dir.with_file_name(format!(
        ".{}.{tag}-{}-{nanos}",
        name.to_string_lossy(),
        std::process::id()
    )))
}

impl SavedModel {
    /// Writes `model.txt` and `model_card.json` into a temporary directory
    /// beside `dir`, then renames it to `dir`, replacing an earlier model:
    /// readers see the old model or the complete new one.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let card = serde_json::to_vec_pretty(&self.card).map_err(|source| Error::Card {
            path: dir.join(CARD_FILE),
            source,
        })?;
        let tmp = sibling(dir, "tmp")?;
        if let Some(parent) = tmp.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent).map_err(io("create directory", parent))?;
        }
        let written: Result<()> = (|| {
            fs::create_dir(&tmp).map_err(io("create directory", &tmp))?;
            write_synced(&tmp.join(MODEL_FILE), self.model_text.as_bytes())?;
            write_synced(&tmp.join(CARD_FILE), &card)?;
            let old = if dir.exists() {
                let old = sibling(dir, "old")?;
                fs::rename(dir, &old).map_err(io("move aside", dir))?;
                Some(old)
            } else {
                None
            };
            if let Err(e) = fs::rename(&tmp, dir) {
                if let Some(old) = &old {
                    // Put the previous model back rather than leave nothing.
                    let _ = fs::rename(old, dir);
                }
                return Err(io("rename into place", dir)(e));
            }
            if let Some(old) = old {
                fs::remove_dir_all(&old).map_err(io("remove", &old))?;
            }
            Ok(())
        })();
        if written.is_err() {
            let _ = fs::remove_dir_all(&tmp);
        }
        written
    }

    /// Reads a model directory written by [`SavedModel::save`] and checks
    /// that LightGBM accepts the model and that it matches its card.
    pub fn load(dir: &Path) -> Result<Self> {
        let model_path = dir.join(MODEL_FILE);
        let card_path = dir.join(CARD_FILE);
        let model_text = fs::read_to_string(&model_path).map_err(io("read", &model_path))?;
        let card_text = fs::read_to_string(&card_path).map_err(io("read", &card_path))?;
        let card: ModelCard = serde_json::from_str(&card_text).map_err(|source| Error::Card {
            path: card_path.clone(),
            source,
        })?;
        let model = SavedModel { model_text, card };
        model.booster()?;
        Ok(model)
    }

    fn booster(&self) -> Result<Booster> {
        let booster = Booster::from_string(&self.model_text).map_err(|source| Error::LightGbm {
            context: format!("model `{}`", self.card.name),
            during: "load the model text",
            source,
        })?;
        let in_model = usize::try_from(booster.num_features()).unwrap_or(0);
        if in_model != self.card.feature_names.len() {
            return Err(Error::CardMismatch {
                model: self.card.name.clone(),
                in_model,
                in_card: self.card.feature_names.len(),
            });
        }
        Ok(booster)
    }

    /// Scores every row of `input`, in order, on the card's thread count.
    /// See [`Scorer::score`].
    pub fn score(&self, input: &[RecordBatch]) -> Result<Vec<f64>> {
        self.scorer()?.score(input)
    }

    /// The model parsed once for scoring many inputs, on the card's thread
    /// count (see [`Scorer::with_threads`]).
    pub fn scorer(&self) -> Result<Scorer> {
        Ok(Scorer {
            forest: self.forest()?,
            feature_names: self.card.feature_names.clone(),
            context: format!("model `{}`", self.card.name),
            threads: resolve_threads(self.card.params.num_threads),
        })
    }

    /// The model as a Rust forest, checked against the card's features.
    pub fn forest(&self) -> Result<Forest> {
        let forest =
            Forest::parse_with_context(&format!("model `{}`", self.card.name), &self.model_text)?;
        if forest.num_features() != self.card.feature_names.len() {
            return Err(Error::CardMismatch {
                model: self.card.name.clone(),
                in_model: forest.num_features(),
                in_card: self.card.feature_names.len(),
            });
        }
        Ok(forest)
    }
}

/// A saved model ready to score: the Rust forest and the card's features.
#[derive(Debug, Clone)]
pub struct Scorer {
    forest: Forest,
    feature_names: Vec<String>,
    context: String,
    threads: usize,
}

impl Scorer {
    /// Scores on `threads` threads (0 = every core); 1 keeps scoring on the
    /// calling thread, for callers that run several inputs side by side.
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = threads;
        self
    }

    /// Scores every row of `input`, in order. Features are looked up by
    /// name in card order; nulls are missing values; a missing or
    /// non-numeric column or a NaN/infinite value is an error naming it.
    /// The Rust forest scores exactly as LightGBM would, many times faster.
    pub fn score(&self, input: &[RecordBatch]) -> Result<Vec<f64>> {
        self.score_explained(input, None).map(|(scores, _)| scores)
    }

    /// The model's TreeSHAP explainer, for [`Reasons::new`].
    pub fn explainer(&self) -> Result<Explainer> {
        self.forest.explainer()
    }

    /// [`Scorer::score`], and the reasons behind each score. The scores are
    /// the same doubles `score` gives.
    pub fn score_with_reasons(
        &self,
        input: &[RecordBatch],
        reasons: &mut Reasons,
    ) -> Result<(Vec<f64>, ReasonRows)> {
        let (scores, rows) = self.score_explained(input, Some(reasons))?;
        Ok((scores, rows.unwrap_or_else(|| reasons.rows())))
    }

    fn score_explained(
        &self,
        input: &[RecordBatch],
        mut reasons: Option<&mut Reasons>,
    ) -> Result<(Vec<f64>, Option<ReasonRows>)> {
        let mut explained = reasons.as_deref().map(Reasons::rows);
        let table = Table::new(input, "input", self.context.clone());
        let features = Features::resolve(&table, &self.feature_names)?;
        features.check_finite(&table)?;
        let mut scores = Vec::with_capacity(table.rows());
        let (mut buf, mut out) = (Vec::new(), Vec::new());
        for (b, batch) in input.iter().enumerate() {
            let mut from = 0;
            while from < batch.num_rows() {
                let to = (from + PREDICT_CHUNK).min(batch.num_rows());
                features.batch_col_major(b, from, to, &mut buf);
                let columns: Vec<&[f32]> = buf.chunks(to - from).collect();
                self.forest
                    .predict_columns_parallel(&columns, self.threads, &mut out)?;
                scores.extend_from_slice(&out);
                if let (Some(reasons), Some(rows)) = (reasons.as_deref_mut(), explained.as_mut()) {
                    reasons.explain_columns(&columns, rows)?;
                }
                from = to;
            }
        }
        Ok((scores, explained))
    }
}
