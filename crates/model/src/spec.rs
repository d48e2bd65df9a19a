//! The `lightgbm` stage settings, as written in a pipeline file.

use datafusion::arrow::datatypes::{DataType, Schema};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// One `[[stages]]` entry of kind `lightgbm` (the pipeline removes `kind`).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TrainSpec {
    /// Stage name, e.g. `train`.
    pub name: String,
    /// Input table, e.g. `features`.
    pub input: String,
    /// The deployed model is saved under `<warehouse>/models/<model_name>/`.
    pub model_name: String,
    /// Label column (0/1 integers or booleans).
    #[serde(default = "default_label")]
    pub label: String,
    /// Feature columns; empty means every numeric or boolean column of the
    /// input except the keys and the label, in table order.
    #[serde(default)]
    pub features: Vec<String>,
    /// Row identity columns; those present in the input are carried to the
    /// scored table and never used as features unless listed in `features`.
    #[serde(default = "default_keys")]
    pub keys: Vec<String>,
    /// Evaluation splits; one model is trained and evaluated per split.
    #[serde(default = "default_splits")]
    pub splits: Vec<SplitKind>,
    /// The split whose model is saved and deployed.
    #[serde(default)]
    pub deploy_split: SplitKind,
    /// Share of rows (or of groups, or of time) held out for testing.
    #[serde(default = "default_test_fraction")]
    pub test_fraction: f64,
    /// Seed of the split assignment and of LightGBM.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Scores at or above the threshold are predicted positive: a fixed
    /// number, or a rule that chooses it on the validation side.
    #[serde(default)]
    pub threshold: Threshold,
    /// LightGBM settings.
    #[serde(default)]
    pub params: LgbmParams,
    /// Reasons in `scored`: each score's `explain` largest feature
    /// contributions (TreeSHAP, in log-odds); 0 adds no reason columns.
    #[serde(default)]
    pub explain: usize,
}

/// How rows are divided into training and test sides.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[serde(rename_all = "snake_case")]
pub enum SplitKind {
    /// Stratified random split over rows, as the reference notebook did:
    /// copies of one flow land on both sides, which inflates the scores.
    RandomStratified,
    /// Every row of one `uid` on one side, groups stratified by label, and
    /// identical test rows evaluated once.
    #[default]
    #[serde(alias = "duplicate_aware")]
    Dedup,
    /// Train on the earliest rows by `ts`, test on the latest.
    Time,
}

impl SplitKind {
    /// The name written in the `split` columns and the model card.
    pub fn name(self) -> &'static str {
        match self {
            SplitKind::RandomStratified => "random_stratified",
            SplitKind::Dedup => "dedup",
            SplitKind::Time => "time",
        }
    }
}

impl std::fmt::Display for SplitKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How the two classes are weighted in training.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum ClassWeight {
    /// Weight the minority class up to the size of the majority class
    /// (LightGBM's `is_unbalance`).
    #[default]
    IsUnbalance,
    /// Weight positives by negatives / positives of the training side
    /// (the usual XGBoost `scale_pos_weight` setting).
    ScalePosWeight,
    /// No class weighting.
    None,
}

/// LightGBM settings; every field has a default.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LgbmParams {
    /// Maximum leaves per tree.
    pub num_leaves: u32,
    /// Shrinkage per boosting round.
    pub learning_rate: f64,
    /// Maximum boosting rounds.
    pub num_iterations: u32,
    /// Stop when the validation log loss has not improved for this many
    /// rounds; absent or 0 trains all rounds without a validation side.
    pub early_stopping_rounds: Option<u32>,
    /// Share of the training side (by the split's own grouping rule) held
    /// out as validation for early stopping.
    pub valid_fraction: f64,
    /// Minimum distinct training rows per leaf.
    pub min_data_in_leaf: u32,
    /// Share of features sampled per tree.
    pub feature_fraction: f64,
    /// L2 regularisation of leaf values.
    pub lambda_l2: f64,
    /// Class weighting.
    pub class_weight: ClassWeight,
    /// Threads for LightGBM; 0 means one per core.
    pub num_threads: usize,
    /// Train on a seeded draw of about this many rows of the training side,
    /// the same share of each class, instead of all of them; validation and
    /// test sides are unchanged. Bounds the training matrix and boosting
    /// time on large inputs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_train_rows: Option<u64>,
    /// Any other LightGBM training parameter, passed through as written
    /// (e.g. `neg_bagging_fraction`, `use_quantized_grad`). Parameters that
    /// the fields above or zeekml itself control are refused here.
    pub lightgbm: std::collections::BTreeMap<String, serde_json::Value>,
}

impl Default for LgbmParams {
    fn default() -> Self {
        LgbmParams {
            num_leaves: 31,
            learning_rate: 0.1,
            num_iterations: 100,
            early_stopping_rounds: Some(20),
            valid_fraction: 0.1,
            min_data_in_leaf: 20,
            feature_fraction: 1.0,
            lambda_l2: 0.0,
            class_weight: ClassWeight::IsUnbalance,
            num_threads: 0,
            max_train_rows: None,
            lightgbm: Default::default(),
        }
    }
}

impl LgbmParams {
    /// Early stopping rounds when early stopping is on.
    pub(crate) fn early_stopping(&self) -> Option<u32> {
        self.early_stopping_rounds.filter(|&r| r > 0)
    }

    /// The thread count handed to LightGBM: fixed, so that training with
    /// `deterministic` gives the same trees on every run of one machine.
    pub(crate) fn threads(&self) -> usize {
        resolve_threads(self.num_threads)
    }
}

/// LightGBM parameters (and aliases) that zeekml sets itself or exposes as
/// typed fields of [`LgbmParams`].
const RESERVED_PARAMS: &[&str] = &[
    "objective",
    "application",
    "app",
    "metric",
    "verbose",
    "verbosity",
    "num_iterations",
    "num_iteration",
    "n_iter",
    "num_tree",
    "num_trees",
    "num_round",
    "num_rounds",
    "nrounds",
    "num_boost_round",
    "n_estimators",
    "max_iter",
    "learning_rate",
    "shrinkage_rate",
    "eta",
    "num_leaves",
    "num_leaf",
    "max_leaves",
    "max_leaf",
    "max_leaf_nodes",
    "min_data_in_leaf",
    "min_data_per_leaf",
    "min_data",
    "min_child_samples",
    "min_samples_leaf",
    "feature_fraction",
    "sub_feature",
    "colsample_bytree",
    "lambda_l2",
    "reg_lambda",
    "lambda",
    "l2_regularization",
    "seed",
    "random_seed",
    "random_state",
    "deterministic",
    "num_threads",
    "num_thread",
    "nthread",
    "nthreads",
    "n_jobs",
    "early_stopping_rounds",
    "early_stopping_round",
    "early_stopping",
    "n_iter_no_change",
    "is_unbalance",
    "unbalance",
    "unbalanced_sets",
    "scale_pos_weight",
    "task",
    "config",
    "data",
    "valid",
    "input_model",
    "output_model",
];

pub(crate) fn resolve_threads(n: usize) -> usize {
    if n > 0 {
        n
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }
}

fn default_label() -> String {
    "label".to_string()
}

fn default_keys() -> Vec<String> {
    ["uid", "ts", "src_ip", "src_port", "dest_ip", "dest_port"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

fn default_splits() -> Vec<SplitKind> {
    vec![SplitKind::RandomStratified, SplitKind::Dedup]
}

fn default_test_fraction() -> f64 {
    0.25
}

fn default_seed() -> u64 {
    42
}

/// How the decision threshold of each split's model is set. In a pipeline
/// file: a number (`threshold = 0.5`), a rule name (`threshold = "best_f1"`)
/// or a rule table (`threshold = { rule = "max_fpr", value = 1e-4 }`).
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq)]
#[serde(try_from = "ThresholdRepr", into = "ThresholdRepr")]
pub enum Threshold {
    /// The same number for every split.
    Fixed(f64),
    /// Chosen per split on its validation side, never on the test side.
    Rule(ThresholdRule),
}

impl Default for Threshold {
    fn default() -> Self {
        Threshold::Fixed(0.5)
    }
}

impl Threshold {
    /// The name written in the metrics table's `threshold_rule` column.
    pub fn rule_name(&self) -> &'static str {
        match self {
            Threshold::Fixed(_) => "fixed",
            Threshold::Rule(r) => r.name(),
        }
    }

    /// The rule's setting (the false-positive budget of `max_fpr`), if any.
    pub fn target(&self) -> Option<f64> {
        match self {
            Threshold::Rule(ThresholdRule::MaxFpr(v)) => Some(*v),
            _ => None,
        }
    }
}

/// A rule that picks the threshold from validation scores.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ThresholdRule {
    /// The threshold of highest F1 on the (deduplicated) validation rows.
    /// F1 depends on the share of positives, so this holds only on data
    /// with the validation side's base rate.
    BestF1,
    /// The lowest threshold whose false-positive rate on the validation
    /// side's benign rows is at most the value: an alert budget, which does
    /// not depend on how many attacks the data holds.
    MaxFpr(f64),
}

impl ThresholdRule {
    /// The name written in the metrics table.
    pub fn name(self) -> &'static str {
        match self {
            ThresholdRule::BestF1 => "best_f1_on_valid",
            ThresholdRule::MaxFpr(_) => "max_fpr_on_valid",
        }
    }
}

/// How a threshold is written in a pipeline file.
#[derive(Deserialize, Serialize)]
#[serde(untagged)]
enum ThresholdRepr {
    Fixed(f64),
    Name(String),
    Table(RuleTable),
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RuleTable {
    rule: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    value: Option<f64>,
}

impl TryFrom<ThresholdRepr> for Threshold {
    type Error = String;

    fn try_from(repr: ThresholdRepr) -> std::result::Result<Self, String> {
        let (rule, value) = match repr {
            ThresholdRepr::Fixed(t) => return Ok(Threshold::Fixed(t)),
            ThresholdRepr::Name(rule) => (rule, None),
            ThresholdRepr::Table(t) => (t.rule, t.value),
        };
        match (rule.as_str(), value) {
            ("best_f1", None) => Ok(Threshold::Rule(ThresholdRule::BestF1)),
            ("best_f1", Some(_)) => Err("threshold rule `best_f1` takes no `value`".to_string()),
            ("max_fpr", Some(v)) => Ok(Threshold::Rule(ThresholdRule::MaxFpr(v))),
            ("max_fpr", None) => Err(
                "threshold rule `max_fpr` needs a `value`, the false-positive rate allowed (e.g. 1e-4)"
                    .to_string(),
            ),
            ("fixed", Some(v)) => Ok(Threshold::Fixed(v)),
            ("fixed", None) => Err("threshold rule `fixed` needs a `value`".to_string()),
            (other, _) => Err(format!(
                "unknown threshold rule `{other}` (rules: max_fpr, best_f1, fixed, or a number)"
            )),
        }
    }
}

impl From<Threshold> for ThresholdRepr {
    fn from(t: Threshold) -> Self {
        match t {
            Threshold::Fixed(v) => ThresholdRepr::Fixed(v),
            Threshold::Rule(ThresholdRule::BestF1) => ThresholdRepr::Table(RuleTable {
                rule: "best_f1".to_string(),
                value: None,
            }),
            Threshold::Rule(ThresholdRule::MaxFpr(v)) => ThresholdRepr::Table(RuleTable {
                rule: "max_fpr".to_string(),
                value: Some(v),
            }),
        }
    }
}

impl TrainSpec {
    /// A spec with every optional setting at its default.
    pub fn new(
        name: impl Into<String>,
        input: impl Into<String>,
        model_name: impl Into<String>,
    ) -> Self {
        TrainSpec {
            name: name.into(),
            input: input.into(),
            model_name: model_name.into(),
            label: default_label(),
            features: Vec::new(),
            keys: default_keys(),
            splits: default_splits(),
            deploy_split: SplitKind::default(),
            test_fraction: default_test_fraction(),
            seed: default_seed(),
            threshold: Threshold::default(),
            params: LgbmParams::default(),
            explain: 0,
        }
    }

    pub(crate) fn context(&self) -> String {
        format!("stage `{}`", self.name)
    }

    /// Checks the settings that do not depend on the input table.
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &'static str, reason: String| {
            Err(Error::InvalidSpec {
                context: self.context(),
                field,
                reason,
            })
        };
        if self.model_name.is_empty()
            || self.model_name.starts_with('.')
            || self.model_name.contains(['/', '\\'])
        {
            return bad(
                "model_name",
                format!(
                    "`{}` must be a plain directory name (not empty, no `/`, not starting with `.`)",
                    self.model_name
                ),
            );
        }
        if !(0.0..1.0).contains(&self.test_fraction) {
            return bad(
                "test_fraction",
                format!("{} is not in [0, 1)", self.test_fraction),
            );
        }
        if let Threshold::Fixed(t) = self.threshold {
            if !(0.0..=1.0).contains(&t) {
                return bad("threshold", format!("{t} is not in [0, 1]"));
            }
        }
        if let Threshold::Rule(ThresholdRule::MaxFpr(v)) = self.threshold {
            if !(0.0..1.0).contains(&v) {
                return bad(
                    "threshold",
                    format!("max_fpr value {v} is not a rate in [0, 1)"),
                );
            }
        }
        if matches!(self.threshold, Threshold::Rule(_)) && self.params.valid_fraction <= 0.0 {
            return bad(
                "threshold",
                "a chosen threshold needs a validation side: set params.valid_fraction above 0"
                    .to_string(),
            );
        }
        if self.splits.is_empty() {
            return bad("splits", "at least one split is needed".to_string());
        }
        for (i, s) in self.splits.iter().enumerate() {
            if self.splits[..i].contains(s) {
                return bad("splits", format!("`{s}` is listed twice"));
            }
        }
        if !self.splits.contains(&self.deploy_split) {
            return bad(
                "deploy_split",
                format!(
                    "`{}` is not one of the splits [{}]",
                    self.deploy_split,
                    self.splits
                        .iter()
                        .map(|s| s.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
        }
        for (i, f) in self.features.iter().enumerate() {
            if self.features[..i].contains(f) {
                return bad("features", format!("`{f}` is listed twice"));
            }
            if *f == self.label {
                return bad("features", format!("the label `{f}` cannot be a feature"));
            }
        }
        let p = &self.params;
        if let Some(key) = p
            .lightgbm
            .keys()
            .find(|k| RESERVED_PARAMS.contains(&k.as_str()))
        {
            return bad(
                "params.lightgbm",
                format!("`{key}` is set by zeekml or by a field of [params], not here"),
            );
        }
        if p.num_leaves < 2 {
            return bad("params.num_leaves", format!("{} is below 2", p.num_leaves));
        }
        if p.num_iterations == 0 {
            return bad("params.num_iterations", "must be at least 1".to_string());
        }
        if !(p.learning_rate > 0.0 && p.learning_rate.is_finite()) {
            return bad(
                "params.learning_rate",
                format!("{} is not a positive number", p.learning_rate),
            );
        }
        if p.max_train_rows == Some(0) {
            return bad("params.max_train_rows", "0 draws no training rows".into());
        }
        if !(0.0..1.0).contains(&p.valid_fraction) {
            return bad(
                "params.valid_fraction",
                format!("{} is not in [0, 1)", p.valid_fraction),
            );
        }
        if !(p.feature_fraction > 0.0 && p.feature_fraction <= 1.0) {
            return bad(
                "params.feature_fraction",
                format!("{} is not in (0, 1]", p.feature_fraction),
            );
        }
        if !(p.lambda_l2 >= 0.0 && p.lambda_l2.is_finite()) {
            return bad(
                "params.lambda_l2",
                format!("{} is not a non-negative number", p.lambda_l2),
            );
        }
        Ok(())
    }

    /// The feature columns this spec trains on, given the input schema:
    /// the listed ones (checked to exist and be numeric), or every numeric or
    /// boolean column except the keys and the label.
    pub fn resolve_features(&self, schema: &Schema) -> Result<Vec<String>> {
        let context = self.context();
        if self.features.is_empty() {
            let found: Vec<String> = schema
                .fields()
                .iter()
                .filter(|f| {
                    is_feature_type(f.data_type())
                        && *f.name() != self.label
                        && !self.keys.contains(f.name())
                })
                .map(|f| f.name().clone())
                .collect();
            if found.is_empty() {
                return Err(Error::NoFeatures {
                    context,
                    table: self.input.clone(),
                });
            }
            return Ok(found);
        }
        for name in &self.features {
            let field = schema
                .field_with_name(name)
                .map_err(|_| Error::MissingColumn {
                    context: context.clone(),
                    table: self.input.clone(),
                    column: name.clone(),
                    available: column_list(schema),
                })?;
            if !is_feature_type(field.data_type()) {
                return Err(Error::NonNumericFeature {
                    context,
                    table: self.input.clone(),
                    column: name.clone(),
                    data_type: field.data_type().clone(),
                });
            }
        }
        Ok(self.features.clone())
    }
}

/// Types a feature column may have.
pub(crate) fn is_feature_type(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Float64
            | DataType::Float32
            | DataType::Int64
            | DataType::Int32
            | DataType::Int16
            | DataType::Int8
            | DataType::UInt64
            | DataType::UInt32
            | DataType::UInt16
            | DataType::UInt8
            | DataType::Boolean
    )
}

pub(crate) fn column_list(schema: &Schema) -> String {
    schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_notebook() {
        let spec: TrainSpec = serde_json::from_str(
            r#"{"name": "train", "input": "features", "model_name": "uwf_recon"}"#,
        )
        .unwrap();
        assert_eq!(spec, TrainSpec::new("train", "features", "uwf_recon"));
        assert_eq!(spec.label, "label");
        assert_eq!(spec.keys.len(), 6);
        assert_eq!(
            spec.splits,
            vec![SplitKind::RandomStratified, SplitKind::Dedup]
        );
        assert_eq!(spec.deploy_split, SplitKind::Dedup);
        assert_eq!(spec.test_fraction, 0.25);
        assert_eq!(spec.seed, 42);
        assert_eq!(spec.params.num_leaves, 31);
        assert_eq!(spec.params.early_stopping_rounds, Some(20));
        assert_eq!(spec.params.class_weight, ClassWeight::IsUnbalance);
        spec.validate().unwrap();
    }

    #[test]
    fn alias_and_unknown_fields() {
        let spec: TrainSpec = serde_json::from_str(
            r#"{"name": "t", "input": "f", "model_name": "m", "splits": ["duplicate_aware", "time"],
                "deploy_split": "time", "params": {"class_weight": "scale_pos_weight", "num_leaves": 7}}"#,
        )
        .unwrap();
        assert_eq!(spec.splits, vec![SplitKind::Dedup, SplitKind::Time]);
        assert_eq!(spec.params.num_leaves, 7);
        assert_eq!(spec.params.learning_rate, 0.1);
        let err = serde_json::from_str::<TrainSpec>(
            r#"{"name": "t", "input": "f", "model_name": "m", "params": {"num_leaf": 7}}"#,
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("unknown field `num_leaf`"),
            "{err}"
        );
    }

    #[test]
    fn threshold_forms() {
        let parse = |t: &str| {
            toml::from_str::<TrainSpec>(&format!(
                "name = \"t\"\ninput = \"f\"\nmodel_name = \"m\"\nthreshold = {t}"
            ))
        };
        let t = |s: &str| {
            parse(s)
                .map(|spec| spec.threshold)
                .map_err(|e| e.to_string())
        };
        assert_eq!(t("0.7"), Ok(Threshold::Fixed(0.7)));
        assert_eq!(t("\"best_f1\""), Ok(Threshold::Rule(ThresholdRule::BestF1)));
        assert_eq!(
            t("{ rule = \"best_f1\" }"),
            Ok(Threshold::Rule(ThresholdRule::BestF1))
        );
        assert_eq!(
            t("{ rule = \"max_fpr\", value = 1e-4 }"),
            Ok(Threshold::Rule(ThresholdRule::MaxFpr(1e-4)))
        );
        assert_eq!(
            t("{ rule = \"fixed\", value = 0.9 }"),
            Ok(Threshold::Fixed(0.9))
        );
        assert!(t("{ rule = \"max_fpr\" }")
            .unwrap_err()
            .contains("needs a `value`"));
        assert!(t("\"top_k\"")
            .unwrap_err()
            .contains("unknown threshold rule `top_k`"));
        let mut spec = TrainSpec::new("train", "features", "m");
        spec.threshold = Threshold::Rule(ThresholdRule::MaxFpr(1.5));
        assert!(spec
            .validate()
            .unwrap_err()
            .to_string()
            .contains("max_fpr value 1.5 is not a rate in [0, 1)"));
        // The card stores the rule as it is written in a pipeline file.
        let json = serde_json::to_string(&Threshold::Rule(ThresholdRule::MaxFpr(1e-4))).unwrap();
        assert_eq!(json, r#"{"rule":"max_fpr","value":0.0001}"#);
        assert_eq!(
            serde_json::from_str::<Threshold>(&json).unwrap(),
            Threshold::Rule(ThresholdRule::MaxFpr(1e-4))
        );
    }

    #[test]
    fn validation_names_the_setting() {
        let mut spec = TrainSpec::new("train", "features", "m");
        spec.splits = vec![SplitKind::RandomStratified];
        let err = spec.validate().unwrap_err().to_string();
        assert_eq!(
            err,
            "stage `train`: invalid setting `deploy_split`: `dedup` is not one of the splits [random_stratified]"
        );
        let mut spec = TrainSpec::new("train", "features", "m");
        spec.test_fraction = 1.0;
        assert!(spec
            .validate()
            .unwrap_err()
            .to_string()
            .contains("`test_fraction`: 1 is not in [0, 1)"));
        let mut spec = TrainSpec::new("train", "features", "../x");
        spec.model_name = "../x".into();
        assert!(spec.validate().is_err());
    }
}
