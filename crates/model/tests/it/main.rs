//! Integration tests of training, splits, model storage and scoring on
//! synthetic feature tables.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod data;
mod forest;
mod passes;
mod shap;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::{Array, AsArray, Float64Array, Int32Array, Int64Array, StringArray};
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::{DataType, Float64Type, Int32Type};
use datafusion::arrow::record_batch::RecordBatch;
use zeekml_model::{
    train_and_evaluate, SavedModel, SplitKind, Threshold, ThresholdRule, TrainOutcome, TrainSpec,
};

use data::{scored_rows, Shape};

fn spec() -> TrainSpec {
    let mut s = TrainSpec::new("train", "features", "uwf_recon");
    // Two threads keep tests beside other builds; results do not depend on it.
    s.params.num_threads = 2;
    s
}

fn train(spec: &TrainSpec, input: &[RecordBatch]) -> TrainOutcome {
    train_and_evaluate(spec, input).unwrap_or_else(|e| panic!("training failed: {e}"))
}

/// Metrics table rows by split name: column name -> value as f64.
fn metrics(out: &TrainOutcome) -> BTreeMap<String, BTreeMap<String, f64>> {
    let m = &out.metrics;
    let split = m.column_by_name("split").unwrap().as_string::<i32>();
    let mut res = BTreeMap::new();
    for i in 0..m.num_rows() {
        let mut row = BTreeMap::new();
        for (f, col) in m.schema().fields().iter().zip(m.columns()) {
            let v = match col.data_type() {
                DataType::Float64 => {
                    let a = col.as_primitive::<Float64Type>();
                    if a.is_null(i) {
                        f64::NAN
                    } else {
                        a.value(i)
                    }
                }
                DataType::Int64 => col
                    .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
                    .value(i) as f64,
                _ => continue,
            };
            row.insert(f.name().clone(), v);
        }
        res.insert(split.value(i).to_string(), row);
    }
    res
}

/// The `score` and `label` columns of scored rows.
fn score_and_label(b: &RecordBatch) -> (&Float64Array, &Int32Array) {
    (
        b.column_by_name("score")
            .unwrap()
            .as_primitive::<Float64Type>(),
        b.column_by_name("label")
            .unwrap()
            .as_primitive::<Int32Type>(),
    )
}

/// Scored batches of one split, concatenated.
fn scored_split(out: &TrainOutcome, split: &str) -> RecordBatch {
    let parts: Vec<RecordBatch> = out
        .scored
        .iter()
        .filter(|b| data::text(b, "split").value(0) == split)
        .cloned()
        .collect();
    concat_batches(&parts[0].schema(), &parts).unwrap()
}

#[test]
fn separable_data_scores_high_on_every_split() {
    let input = data::table(&Shape::default());
    let mut s = spec();
    s.splits = vec![
        SplitKind::RandomStratified,
        SplitKind::Dedup,
        SplitKind::Time,
    ];
    let out = train(&s, &input);
    let m = metrics(&out);
    assert_eq!(m.len(), 3);
    for (split, row) in &m {
        assert!(row["roc_auc"] > 0.95, "{split}: {row:?}");
        assert!(row["pr_auc"] > 0.9, "{split}: {row:?}");
        assert!(row["best_iteration"] >= 1.0);
    }
    // 3000 negatives + 40 flows x 16 copies.
    let total = 3000 + 40 * 16;
    assert_eq!(data::rows(&out.scored), 3 * total);
    let rs = &m["random_stratified"];
    // Exactly stratified: round(0.25 * 3000) negatives, round(0.25 * 640) positives.
    assert_eq!(rs["rows"], 750.0 + 160.0);
    assert_eq!(rs["positives"], 160.0);
    assert_eq!(rs["tp"] + rs["fn"], 160.0);
    assert_eq!(rs["tp"] + rs["fp"] + rs["tn"] + rs["fn"], 910.0);
    // Train side: 75% of each class minus 10% of that for validation.
    assert_eq!(rs["train_rows"] + rs["valid_rows"], (2250 + 480) as f64);
    assert_eq!(rs["valid_rows"], 225.0 + 48.0);
    // Identical positive rows collapse into one weighted row each.
    assert!(rs["train_weighted_rows"] < rs["train_rows"]);
    let dd = &m["dedup"];
    // Dedup evaluates 10 of 40 positive flows once each.
    assert_eq!(dd["positives"], 10.0);
    assert_eq!(dd["rows"], 750.0 + 10.0);

    let schema = out.scored[0].schema();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(
        names,
        [
            "uid",
            "ts",
            "src_ip",
            "src_port",
            "dest_ip",
            "dest_port",
            "label",
            "split",
            "side",
            "score",
            "predicted"
        ]
    );
    assert_eq!(
        schema.field_with_name("predicted").unwrap().data_type(),
        &DataType::Boolean
    );
    for b in &out.scored {
        let score = b
            .column_by_name("score")
            .unwrap()
            .as_primitive::<Float64Type>();
        let predicted = b.column_by_name("predicted").unwrap().as_boolean();
        for i in 0..b.num_rows() {
            assert!((0.0..=1.0).contains(&score.value(i)));
            assert_eq!(predicted.value(i), score.value(i) >= 0.5);
        }
    }

    // Importance: one row per split and feature, with gain where splits happen.
    let imp = &out.importance;
    assert_eq!(imp.num_rows(), 3 * 12);
    let gain = imp
        .column_by_name("gain")
        .unwrap()
        .as_primitive::<Float64Type>();
    assert!(gain.values().iter().sum::<f64>() > 0.0);

    let card = &out.deployed.card;
    assert_eq!(card.split, "dedup");
    assert_eq!(card.name, "uwf_recon");
    assert_eq!(card.feature_names.len(), 12);
    assert_eq!(card.feature_names[0], "duration_log1p");
    assert_eq!(card.feature_sources[0].stage, "features");
    assert_eq!(card.training_fingerprint.len(), 64);
    assert_eq!(card.metrics["split"], "dedup");
    assert_eq!(card.metrics["positives"], 10);
    assert_eq!(card.train_rows as f64, dd["train_rows"]);
    assert!(out.deployed.model_text.starts_with("tree\n"));
}

#[test]
fn training_is_deterministic_and_independent_of_row_order() {
    let shape = Shape {
        overlap: 0.2,
        ..Shape::default()
    };
    let input = data::table(&shape);
    let s = spec();
    let a = train(&s, &input);
    let b = train(&s, &input);
    assert_eq!(scored_rows(&a.scored), scored_rows(&b.scored));
    assert_eq!(a.deployed.model_text, b.deployed.model_text);

    // Another row order and other batch boundaries, as another scan would give.
    let shuffled = data::shuffled(&input, 99, 777);
    let c = train(&s, &shuffled);
    assert_eq!(scored_rows(&a.scored), scored_rows(&c.scored));
    assert_eq!(
        a.deployed.card.training_fingerprint,
        c.deployed.card.training_fingerprint
    );
    assert_eq!(a.deployed.model_text, c.deployed.model_text);

    // Another seed moves rows.
    let mut other = s.clone();
    other.seed = 43;
    let d = train(&other, &input);
    assert_ne!(scored_rows(&a.scored), scored_rows(&d.scored));
}

#[test]
fn random_stratified_split_is_exact_per_class_and_leaks_copies() {
    let input = data::table(&Shape::default());
    let mut s = spec();
    s.splits = vec![SplitKind::RandomStratified];
    s.deploy_split = SplitKind::RandomStratified;
    let out = train(&s, &input);
    let b = scored_split(&out, "random_stratified");
    let label = b
        .column_by_name("label")
        .unwrap()
        .as_primitive::<Int32Type>();
    let side = data::text(&b, "side");
    let uid = b.column_by_name("uid").unwrap().as_string::<i32>();
    let mut counts: HashMap<(i32, &str), usize> = HashMap::new();
    let mut uid_sides: HashMap<&str, BTreeSet<&str>> = HashMap::new();
    for i in 0..b.num_rows() {
        *counts.entry((label.value(i), side.value(i))).or_default() += 1;
        uid_sides
            .entry(uid.value(i))
            .or_default()
            .insert(side.value(i));
    }
    assert_eq!(counts[&(0, "test")], 750);
    assert_eq!(counts[&(1, "test")], 160);
    assert_eq!(counts[&(0, "valid")], 225);
    assert_eq!(counts[&(1, "valid")], 48);
    assert_eq!(counts[&(0, "train")], 2025);
    assert_eq!(counts[&(1, "train")], 432);
    // Copies of one flow on both sides: the leak the notebook had.
    let leaked = uid_sides
        .values()
        .filter(|s| s.contains("test") && s.contains("train"))
        .count();
    assert!(leaked > 30, "{leaked}");
}

#[test]
fn dedup_split_keeps_flows_whole_and_evaluates_each_once() {
    let input = data::table(&Shape::default());
    let out = train(&spec(), &input);
    let b = scored_split(&out, "dedup");
    let side = data::text(&b, "side");
    let uid = b.column_by_name("uid").unwrap().as_string::<i32>();
    let ts = b
        .column_by_name("ts")
        .unwrap()
        .as_primitive::<Float64Type>();
    let label = b
        .column_by_name("label")
        .unwrap()
        .as_primitive::<Int32Type>();
    let mut uid_side: HashMap<&str, &str> = HashMap::new();
    let mut test_rows = BTreeSet::new();
    let mut sides: HashMap<&str, usize> = HashMap::new();
    for i in 0..b.num_rows() {
        let s = side.value(i);
        *sides.entry(s).or_default() += 1;
        let coarse = s.trim_end_matches("_dup");
        let prev = uid_side.insert(uid.value(i), coarse);
        assert!(
            prev.is_none() || prev == Some(coarse),
            "uid {} on two sides",
            uid.value(i)
        );
        if s == "test" {
            // Keys identify a row here: a second identical row would repeat them.
            assert!(
                test_rows.insert((uid.value(i), ts.value(i).to_bits())),
                "duplicate test row"
            );
        }
        if s == "test_dup" || s == "valid_dup" {
            assert_eq!(label.value(i), 1);
        }
    }
    // 10 of 40 positive flows in test: 10 evaluated rows + 150 duplicates.
    assert_eq!(sides["test_dup"], 150);
    assert_eq!(sides["test"], 760);
    // A duplicate's twin is always evaluated.
    for i in 0..b.num_rows() {
        if side.value(i) == "test_dup" {
            assert!(test_rows.contains(&(uid.value(i), ts.value(i).to_bits())));
        }
    }
}

#[test]
fn rows_without_uid_are_grouped_by_content() {
    let input = data::table(&Shape::default());
    let no_uid = data::with_column(&input, "uid", |b| {
        Arc::new(StringArray::from(vec![None::<&str>; b.num_rows()]))
    });
    let out = train(&spec(), &no_uid);
    let b = scored_split(&out, "dedup");
    let side = data::text(&b, "side");
    let ts = b
        .column_by_name("ts")
        .unwrap()
        .as_primitive::<Float64Type>();
    // Identical rows share ts here, so ts stands in for the group.
    let mut by_ts: HashMap<u64, BTreeSet<&str>> = HashMap::new();
    for i in 0..b.num_rows() {
        let s = side.value(i);
        by_ts
            .entry(ts.value(i).to_bits())
            .or_default()
            .insert(s.trim_end_matches("_dup"));
    }
    assert!(by_ts.values().all(|s| s.len() == 1));
    assert_eq!(metrics(&out)["dedup"]["positives"], 10.0);
}

#[test]
fn saved_model_reloads_and_scores_identically() {
    let shape = Shape {
        overlap: 0.2,
        ..Shape::default()
    };
    let input = data::table(&shape);
    let out = train(&spec(), &input);
    let dir = tempfile::tempdir().unwrap();
    let model_dir = dir.path().join("models").join("uwf_recon");
    out.deployed.save(&model_dir).unwrap();
    // Saving again replaces the model and leaves no temporary directories.
    out.deployed.save(&model_dir).unwrap();
    let siblings: Vec<_> = std::fs::read_dir(dir.path().join("models"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(siblings, ["uwf_recon"]);
    let loaded = SavedModel::load(&model_dir).unwrap();
    assert_eq!(loaded.model_text, out.deployed.model_text);
    // JSON text round trips of floats may differ in the last bit: compare metrics apart.
    let (mut a, mut b) = (loaded.card.clone(), out.deployed.card.clone());
    let (ma, mb) = (a.metrics.take(), b.metrics.take());
    assert_eq!(a, b);
    let (ma, mb) = (ma.as_object().unwrap(), mb.as_object().unwrap());
    assert_eq!(ma.keys().collect::<Vec<_>>(), mb.keys().collect::<Vec<_>>());
    for (k, v) in ma {
        match (v.as_f64(), mb[k].as_f64()) {
            (Some(x), Some(y)) => assert!((x - y).abs() <= 1e-12 * y.abs(), "{k}"),
            _ => assert_eq!(v, &mb[k], "{k}"),
        }
    }

    let scores = loaded.score(&input).unwrap();
    let dedup = scored_split(&out, "dedup");
    let expected = dedup
        .column_by_name("score")
        .unwrap()
        .as_primitive::<Float64Type>();
    assert_eq!(scores.len(), expected.len());
    for (i, s) in scores.iter().enumerate() {
        assert_eq!(s.to_bits(), expected.value(i).to_bits(), "row {i}");
    }
    // Column order does not matter; names do.
    let reordered: Vec<RecordBatch> = input
        .iter()
        .map(|b| {
            let mut idx: Vec<usize> = (0..b.num_columns()).collect();
            idx.reverse();
            b.project(&idx).unwrap()
        })
        .collect();
    assert_eq!(loaded.score(&reordered).unwrap(), scores);

    let card: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(model_dir.join("model_card.json")).unwrap())
            .unwrap();
    assert_eq!(
        card["created_by"],
        format!("zeekml {}", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(card["lightgbm3_version"], "1.0.11");
    assert_eq!(card["params"]["num_leaves"], 31);
    assert_eq!(card["feature_stages"], serde_json::json!([]));
}

#[test]
fn scoring_names_a_missing_feature() {
    let input = data::table(&Shape::default());
    let out = train(&spec(), &input);
    let without: Vec<RecordBatch> = input
        .iter()
        .map(|b| {
            let idx: Vec<usize> = (0..b.num_columns())
                .filter(|&i| b.schema().field(i).name() != "conn_state_SF")
                .collect();
            b.project(&idx).unwrap()
        })
        .collect();
    let err = out.deployed.score(&without).unwrap_err().to_string();
    assert!(
        err.starts_with("model `uwf_recon`: column `conn_state_SF` not found in table `input`"),
        "{err}"
    );
}

#[test]
fn missing_and_non_numeric_features_are_named() {
    let input = data::table(&Shape::default());
    let mut s = spec();
    s.features = vec!["duration_log1p".into(), "history_len".into()];
    let err = train_and_evaluate(&s, &input).unwrap_err().to_string();
    assert!(
        err.starts_with(
            "stage `train`: column `history_len` not found in table `features` (columns: uid, ts,"
        ),
        "{err}"
    );
    s.features = vec!["duration_log1p".into(), "src_ip".into()];
    let err = train_and_evaluate(&s, &input).unwrap_err().to_string();
    assert_eq!(
        err,
        "stage `train`: feature column `src_ip` of table `features` has type Utf8; features must be numeric or boolean"
    );
    let mut s = spec();
    s.label = "is_attack".into();
    let err = train_and_evaluate(&s, &input).unwrap_err().to_string();
    assert!(err.contains("column `is_attack` not found"), "{err}");
}

#[test]
fn empty_input_is_an_error() {
    let err = train_and_evaluate(&spec(), &[]).unwrap_err().to_string();
    assert_eq!(
        err,
        "stage `train`, split random_stratified: the training set is empty (0 input rows)"
    );
    let input = data::table(&Shape::default());
    let empty = vec![input[0].slice(0, 0)];
    let err = train_and_evaluate(&spec(), &empty).unwrap_err().to_string();
    assert_eq!(
        err,
        "stage `train`, split random_stratified: the training set is empty (0 input rows)"
    );
}

#[test]
fn single_class_training_set_is_an_error() {
    let shape = Shape {
        positive_flows: 0,
        ..Shape::default()
    };
    let input = data::table(&shape);
    let err = train_and_evaluate(&spec(), &input).unwrap_err().to_string();
    assert_eq!(
        err,
        "stage `train`, split random_stratified: the training set holds only class 0 (2025 rows); training needs both 0 and 1"
    );
    // One positive flow: the dedup split puts it in test and trains on negatives only.
    let shape = Shape {
        positive_flows: 1,
        ..Shape::default()
    };
    let mut s = spec();
    s.test_fraction = 0.5;
    s.splits = vec![SplitKind::Dedup];
    let err = train_and_evaluate(&s, &data::table(&shape))
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("stage `train`, split dedup: the training set holds only class 0"),
        "{err}"
    );
}

#[test]
fn bad_labels_and_values_name_the_row() {
    let input = data::table(&Shape::default());
    let nulls = data::with_column(&input, "label", |b| {
        let mut v: Vec<Option<i64>> = data::labels(std::slice::from_ref(b))
            .into_iter()
            .map(Some)
            .collect();
        if b.column_by_name("uid").unwrap().as_string::<i32>().value(0) == "Cn0000001000" {
            v[5] = None;
        }
        Arc::new(Int64Array::from(v))
    });
    let err = train_and_evaluate(&spec(), &nulls).unwrap_err().to_string();
    assert_eq!(
        err,
        "stage `train`: label column `label` is null at row 1006 (uid Cn0000001005)"
    );

    let twos = data::with_column(&input, "label", |b| {
        Arc::new(Int64Array::from_iter_values(
            data::labels(std::slice::from_ref(b))
                .into_iter()
                .map(|l| l * 2),
        ))
    });
    let err = train_and_evaluate(&spec(), &twos).unwrap_err().to_string();
    assert_eq!(
        err,
        "stage `train`: label column `label` holds 2 at row 3001 (uid Cp0000003000); labels must be 0 or 1"
    );

    let nan = data::with_column(&input, "orig_bytes_log1p", |b| {
        let a = b
            .column_by_name("orig_bytes_log1p")
            .unwrap()
            .as_primitive::<Float64Type>();
        let mut v: Vec<f64> = a.values().to_vec();
        if b.column_by_name("uid").unwrap().as_string::<i32>().value(0) == "Cn0000000000" {
            v[2] = f64::INFINITY;
        }
        Arc::new(Float64Array::from(v))
    });
    let err = train_and_evaluate(&spec(), &nan).unwrap_err().to_string();
    assert_eq!(
        err,
        "stage `train`: feature column `orig_bytes_log1p` holds the non-finite value inf at row 3 (uid Cn0000000002)"
    );
}

#[test]
fn feature_selection_skips_keys_label_and_text() {
    let input = data::table(&Shape::default());
    let s = spec();
    let names = s.resolve_features(&input[0].schema()).unwrap();
    assert_eq!(
        names,
        [
            "duration_log1p",
            "duration_missing",
            "orig_bytes_log1p",
            "resp_bytes_log1p",
            "orig_pkts_log1p",
            "resp_pkts_log1p",
            "protocol_udp",
            "conn_state_SF",
            "service_0",
            "service_1",
            "service_2",
            "service_3"
        ]
    );
    // Explicit features may include a key column.
    let mut s = spec();
    s.features = vec!["dest_port".into(), "conn_state_SF".into()];
    let out = train(&s, &input);
    assert_eq!(
        out.deployed.card.feature_names,
        ["dest_port", "conn_state_SF"]
    );
    assert_eq!(out.importance.num_rows(), 4);
}

#[test]
fn class_weight_and_early_stopping_settings_take_effect() {
    let shape = Shape {
        overlap: 0.3,
        ..Shape::default()
    };
    let input = data::table(&shape);
    let mut s = spec();
    s.splits = vec![SplitKind::Dedup];
    s.params.early_stopping_rounds = None;
    s.params.num_iterations = 7;
    let out = train(&s, &input);
    let m = metrics(&out);
    assert_eq!(m["dedup"]["best_iteration"], 7.0);
    assert_eq!(m["dedup"]["valid_rows"], 0.0);
    let mut w = s.clone();
    w.params.class_weight = zeekml_model::ClassWeight::None;
    let unweighted = train(&w, &input);
    assert_ne!(scored_rows(&out.scored), scored_rows(&unweighted.scored));
}

#[test]
fn best_f1_threshold_is_chosen_on_the_validation_side() {
    let shape = Shape {
        overlap: 0.3,
        ..Shape::default()
    };
    let input = data::table(&shape);
    let mut s = spec();
    s.splits = vec![SplitKind::Dedup];
    s.threshold = zeekml_model::Threshold::Rule(zeekml_model::ThresholdRule::BestF1);
    let out = train(&s, &input);
    let m = &out.metrics;
    let rule = m
        .column_by_name("threshold_rule")
        .unwrap()
        .as_string::<i32>();
    assert_eq!(rule.value(0), "best_f1_on_valid");
    let t = metrics(&out)["dedup"]["threshold"];
    assert!(t > 0.0 && t < 1.0, "threshold {t}");
    assert_eq!(out.deployed.card.threshold, t);

    // Recompute the best validation F1 from the scored rows: the same cut.
    let scored = scored_split(&out, "dedup");
    let side = data::text(&scored, "side");
    let (score, label) = score_and_label(&scored);
    let (mut vs, mut vl) = (Vec::new(), Vec::new());
    for i in 0..scored.num_rows() {
        if side.value(i) == "valid" {
            vs.push(score.value(i));
            vl.push(label.value(i) == 1);
        }
        let predicted = scored.column_by_name("predicted").unwrap().as_boolean();
        assert_eq!(predicted.value(i), score.value(i) >= t);
    }
    let (expected, _) = zeekml_model::metrics::best_f1_threshold(&vs, &vl).unwrap();
    assert_eq!(t, expected);

    // Without a validation side there is nothing to choose on.
    s.params.valid_fraction = 0.0;
    let err = train_and_evaluate(&s, &input).unwrap_err().to_string();
    assert!(err.contains("valid_fraction"), "{err}");
}

#[test]
fn max_fpr_threshold_keeps_the_alert_budget_on_a_deduplicated_valid_side() {
    let shape = Shape {
        negatives: 6000,
        overlap: 0.3,
        ..Shape::default()
    };
    let input = data::table(&shape);
    let mut s = spec();
    s.splits = vec![SplitKind::Dedup];
    s.threshold = Threshold::Rule(ThresholdRule::MaxFpr(0.005));
    let out = train(&s, &input);
    let text = |name: &str| {
        out.metrics
            .column_by_name(name)
            .unwrap()
            .as_string::<i32>()
            .value(0)
            .to_string()
    };
    assert_eq!(text("threshold_rule"), "max_fpr_on_valid");
    assert_eq!(text("data"), "features");
    let m = &metrics(&out)["dedup"];
    assert_eq!(m["threshold_target"], 0.005);
    assert!(m["valid_fpr"] <= 0.005, "{m:?}");
    assert_eq!(
        m["alerts_per_million_benign"],
        m["fp"] / (m["fp"] + m["tn"]) * 1e6
    );
    assert_eq!(m["fpr"], m["fp"] / (m["fp"] + m["tn"]));
    let card = &out.deployed.card;
    assert_eq!(card.threshold_rule, "max_fpr_on_valid");
    assert_eq!(card.threshold_target, Some(0.005));
    assert_eq!(card.threshold, m["threshold"]);

    // The validation side holds each positive flow once: 16 copies of a
    // flow give one `valid` row and 15 `valid_dup` rows.
    let scored = scored_split(&out, "dedup");
    let side = data::text(&scored, "side");
    let uid = data::text(&scored, "uid");
    let (score, label) = score_and_label(&scored);
    let mut valid_uids = BTreeSet::new();
    let mut sides_of_uid: HashMap<&str, BTreeSet<&str>> = HashMap::new();
    let (mut vs, mut vl) = (Vec::new(), Vec::new());
    for i in 0..scored.num_rows() {
        sides_of_uid
            .entry(uid.value(i))
            .or_default()
            .insert(side.value(i).trim_end_matches("_dup"));
        if side.value(i) == "valid" {
            assert!(
                valid_uids.insert(uid.value(i)),
                "uid {} twice",
                uid.value(i)
            );
            vs.push(score.value(i));
            vl.push(label.value(i) == 1);
        }
    }
    assert!(sides_of_uid.values().all(|s| s.len() == 1));
    let valid_positive_flows = vl.iter().filter(|&&l| l).count();
    let dup_rows = (0..scored.num_rows())
        .filter(|&i| side.value(i) == "valid_dup")
        .count();
    assert_eq!(dup_rows, valid_positive_flows * 15);
    assert_eq!(m["valid_rows"], vs.len() as f64);
    let (expected, rate) = zeekml_model::metrics::max_fpr_threshold(&vs, &vl, 0.005).unwrap();
    assert_eq!(m["threshold"], expected);
    assert_eq!(m["valid_fpr"], rate);
    let negatives = vl.iter().filter(|&&l| !l).count() as f64;
    let flagged = vs
        .iter()
        .zip(&vl)
        .filter(|(&s, &l)| !l && s >= expected)
        .count() as f64;
    assert_eq!(flagged / negatives, rate);

    // One feature that both classes share: every score is held by benign
    // rows, so a budget of zero cannot flag anything, and the error names
    // the split.
    let mut tied = s.clone();
    tied.threshold = Threshold::Rule(ThresholdRule::MaxFpr(0.0));
    tied.features = vec!["service_0".to_string()];
    let noisy = data::table(&Shape {
        overlap: 1.0,
        ..Shape::default()
    });
    let e = train_and_evaluate(&tied, &noisy).unwrap_err().to_string();
    assert!(e.contains("split dedup") && e.contains("max_fpr 0:"), "{e}");
    assert!(e.contains("no threshold flags any validation row"), "{e}");
    assert!(e.contains("allow 0 false positives"), "{e}");
}

/// 2M rows, 26 features, 1620 positive flows x 256 copies (the UWF shape).
/// `ZEEKML_BENCH_THREADS=2 cargo test --release --workspace two_million -- --ignored --nocapture`
#[test]
#[ignore]
fn two_million_rows_timing() {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter("zeekml_model=info")
        .try_init();
    let shape = Shape {
        negatives: 2_000_000 - 1620 * 256,
        positive_flows: 1620,
        copies: 256,
        one_hots: 18,
        overlap: 0.05,
        batch_rows: 8192,
        seed: 1,
    };
    let t = Instant::now();
    let input = data::table(&shape);
    let n_features = spec().resolve_features(&input[0].schema()).unwrap().len();
    eprintln!(
        "generated {} rows, {} features in {:.2}s; RSS {} MB",
        data::rows(&input),
        n_features,
        t.elapsed().as_secs_f64(),
        rss_mb()
    );
    let mut s = spec();
    s.params.num_threads = std::env::var("ZEEKML_BENCH_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    // Extra LightGBM parameters to try, as a JSON object.
    if let Ok(extra) = std::env::var("ZEEKML_BENCH_PARAMS") {
        s.params.lightgbm = serde_json::from_str(&extra).unwrap();
    }
    let (t, cpu) = (Instant::now(), cpu_seconds());
    let out = train(&s, &input);
    eprintln!(
        "train_and_evaluate: {:.2}s wall, {:.2}s CPU; peak RSS {} MB",
        t.elapsed().as_secs_f64(),
        cpu_seconds() - cpu,
        peak_rss_mb()
    );
    for (split, row) in metrics(&out) {
        eprintln!(
            "  {split}: train_rows {} distinct {} valid {} best_iteration {} train_seconds {:.2} test rows {} auc {:.4} f1 {:.4}",
            row["train_rows"], row["train_weighted_rows"], row["valid_rows"], row["best_iteration"],
            row["train_seconds"], row["rows"], row["roc_auc"], row["f1"]
        );
    }
    let (t, cpu) = (Instant::now(), cpu_seconds());
    let scores = out.deployed.score(&input).unwrap();
    eprintln!(
        "SavedModel::score on {} rows: {:.2}s wall, {:.2}s CPU",
        scores.len(),
        t.elapsed().as_secs_f64(),
        cpu_seconds() - cpu
    );
}

/// User + system CPU seconds of this process, from /proc (ticks of 1/100 s).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    // utime and stime: fields 14 and 15, i.e. 12th and 13th after the name.
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn status_mb(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with(key)).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<u64>().ok())
            })
        })
        .unwrap_or(0)
        / 1024
}

fn rss_mb() -> u64 {
    status_mb("VmRSS:")
}

fn peak_rss_mb() -> u64 {
    status_mb("VmHWM:")
}

#[test]
fn max_train_rows_draws_a_stratified_sample_whatever_the_row_order() {
    let shape = Shape {
        overlap: 0.2,
        ..Shape::default()
    };
    let input = data::table(&shape);
    let mut s = spec();
    s.splits = vec![SplitKind::RandomStratified];
    s.deploy_split = SplitKind::RandomStratified;
    let all = train(&s, &input);
    let full = metrics(&all)["random_stratified"].clone();
    assert!(full["train_rows"] > 2000.0, "{full:?}");

    s.params.max_train_rows = Some(1000);
    let a = train(&s, &input);
    let drawn = metrics(&a)["random_stratified"].clone();
    // The same share of each class, rounded per class.
    assert!((drawn["train_rows"] - 1000.0).abs() <= 1.0, "{drawn:?}");
    // Validation and test sides are those of the full run.
    for key in ["rows", "positives", "valid_rows"] {
        assert_eq!(drawn[key], full[key], "{key}");
    }
    assert_ne!(a.deployed.model_text, all.deployed.model_text);

    // The draw ranks rows by content, not by position.
    let shuffled = data::shuffled(&input, 99, 777);
    let b = train(&s, &shuffled);
    assert_eq!(a.deployed.model_text, b.deployed.model_text);
    assert_eq!(scored_rows(&a.scored), scored_rows(&b.scored));

    // A limit above the training side draws every row.
    s.params.max_train_rows = Some(1_000_000);
    let c = train(&s, &input);
    assert_eq!(c.deployed.model_text, all.deployed.model_text);

    s.params.max_train_rows = Some(0);
    let err = train_and_evaluate(&s, &input)
        .expect_err("0 rows")
        .to_string();
    assert!(err.contains("params.max_train_rows"), "{err}");
}
