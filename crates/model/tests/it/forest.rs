//! The pure-Rust [`Forest`] predicts what LightGBM predicts, on models
//! trained by LightGBM with NaN, zero, integer and one-hot features.

use std::time::Instant;

use lightgbm3::{Booster, Dataset};
use serde_json::{json, Value};
use zeekml_model::Forest;

use crate::data::Rng;

/// Row-major f32 features and 0/1 labels.
pub(crate) struct Data {
    pub(crate) names: Vec<String>,
    pub(crate) x: Vec<f32>,
    pub(crate) labels: Vec<f32>,
}

impl Data {
    pub(crate) fn cols(&self) -> usize {
        self.names.len()
    }

    pub(crate) fn rows(&self) -> usize {
        self.labels.len()
    }

    pub(crate) fn row(&self, r: usize) -> &[f32] {
        &self.x[r * self.cols()..(r + 1) * self.cols()]
    }
}

/// Labels from a logistic model. `nan_right` and `nan_left` are missing for
/// 15% of rows, and those rows lean positive: positives sit above the split
/// in `nan_right` and below it in `nan_left`, so LightGBM sends NaN right in
/// one and left in the other. `zeros` is 0 half the time, `count` is
/// integer-valued, `cat_*` is one-hot; `extra` weak uniform features follow.
pub(crate) fn synthetic(rows: usize, extra: usize, seed: u64) -> Data {
    let mut names: Vec<String> = ["nan_right", "nan_left", "zeros", "count"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    names.extend((0..4).map(|k| format!("cat_{k}")));
    names.push("noise".into());
    names.extend((0..extra).map(|k| format!("extra_{k}")));
    let mut rng = Rng::new(seed);
    let mut x = Vec::with_capacity(rows * names.len());
    let mut labels = Vec::with_capacity(rows);
    for _ in 0..rows {
        let a = (rng.unit() * 10.0) as f32;
        let a = if rng.unit() < 0.15 { f32::NAN } else { a };
        let b = (rng.unit() * 10.0) as f32;
        let b = if rng.unit() < 0.15 { f32::NAN } else { b };
        let z = if rng.unit() < 0.5 {
            0.0
        } else {
            (rng.unit() * 10.0 - 5.0) as f32
        };
        let count = rng.below(21) as f32;
        let cat = rng.below(4) as usize;
        let noise = (rng.unit() * 2.0 - 1.0) as f32;
        let extras: Vec<f32> = (0..extra).map(|_| rng.unit() as f32).collect();
        let la = if a.is_nan() {
            2.0
        } else if a > 6.0 {
            1.5
        } else {
            -1.0
        };
        let lb = if b.is_nan() {
            2.0
        } else if b < 3.0 {
            1.5
        } else {
            -1.0
        };
        let lz = if z == 0.0 { 0.8 } else { 0.2 * f64::from(z) };
        let logit = la
            + lb
            + lz
            + 0.1 * (f64::from(count) - 10.0)
            + [0.5, -0.5, 1.0, -1.0][cat]
            + 0.5 * f64::from(noise)
            + extras
                .iter()
                .map(|&e| 0.3 * (f64::from(e) - 0.5))
                .sum::<f64>()
            - 2.0;
        labels.push(if rng.unit() < 1.0 / (1.0 + (-logit).exp()) {
            1.0
        } else {
            0.0
        });
        x.extend([a, b, z, count]);
        x.extend((0..4).map(|k| if k == cat { 1.0 } else { 0.0 }));
        x.push(noise);
        x.extend(extras);
    }
    Data { names, x, labels }
}

pub(crate) fn params(extra: Value) -> Value {
    let mut p = json!({
        "objective": "binary",
        "verbose": -1,
        "num_iterations": 40,
        "num_leaves": 15,
        "min_data_in_leaf": 5,
        "num_threads": 2,
        "deterministic": true,
        "seed": 7,
    });
    for (k, v) in extra.as_object().into_iter().flatten() {
        p[k.as_str()] = v.clone();
    }
    p
}

pub(crate) fn train(data: &Data, params: &Value) -> Booster {
    let mut ds = Dataset::from_slice(&data.x, &data.labels, data.cols() as i32, true)
        .expect("build a LightGBM dataset");
    ds.set_feature_names(&data.names)
        .expect("set feature names");
    Booster::train(ds, params).expect("train with LightGBM")
}

/// Values of one `key=` line per tree.
pub(crate) fn tree_field(text: &str, key: &str) -> Vec<Vec<String>> {
    let prefix = format!("{key}=");
    text.lines()
        .filter_map(|l| l.strip_prefix(prefix.as_str()))
        .map(|v| v.split_whitespace().map(str::to_string).collect())
        .collect()
}

pub(crate) fn decision_types(text: &str) -> Vec<i32> {
    tree_field(text, "decision_type")
        .into_iter()
        .flatten()
        .map(|d| d.parse().expect("model text field is a number"))
        .collect()
}

fn next_up(v: f32) -> f32 {
    if v.is_nan() || v == f32::INFINITY {
        v
    } else if v == 0.0 {
        f32::from_bits(1)
    } else if v > 0.0 {
        f32::from_bits(v.to_bits() + 1)
    } else {
        f32::from_bits(v.to_bits() - 1)
    }
}

fn next_down(v: f32) -> f32 {
    -next_up(-v)
}

/// `data` plus rows probing every split threshold of the model (the f32
/// nearest to it and its neighbours) and special values in every column.
pub(crate) fn probe_rows(data: &Data, text: &str) -> Data {
    let mut out = Data {
        names: data.names.clone(),
        x: data.x.clone(),
        labels: data.labels.clone(),
    };
    let mut rng = Rng::new(11);
    let mut push = |f: usize, v: f32, out: &mut Data| {
        let base = rng.below(data.rows() as u64) as usize;
        let mut row = data.row(base).to_vec();
        row[f] = v;
        out.x.extend(row);
        out.labels.push(0.0);
    };
    let features = tree_field(text, "split_feature");
    let thresholds = tree_field(text, "threshold");
    for (fs, ts) in features.iter().zip(&thresholds) {
        for (f, t) in fs.iter().zip(ts) {
            let f: usize = f.parse().expect("model text field is a number");
            let t = t.parse::<f64>().expect("threshold is a number") as f32;
            for v in [t, next_up(t), next_down(t)] {
                push(f, v, &mut out);
            }
        }
    }
    let specials = [
        f32::NAN,
        0.0,
        -0.0,
        1e-36,
        -1e-36,
        1e-35,
        -1e-35,
        next_up(1e-35),
        next_down(-1e-35),
        f32::from_bits(1),
        f32::MIN_POSITIVE,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::MAX,
        -f32::MAX,
        1e30,
        -3.0,
    ];
    for f in 0..data.cols() {
        for v in specials {
            push(f, v, &mut out);
        }
    }
    out
}

pub(crate) fn columns(data: &Data) -> Vec<Vec<f32>> {
    (0..data.cols())
        .map(|f| {
            (0..data.rows())
                .map(|r| data.x[r * data.cols() + f])
                .collect()
        })
        .collect()
}

/// Parses the booster's text and checks every row of `data` (and threshold
/// and special-value probes) against LightGBM's own probabilities and raw
/// scores, through the single-row, batch and parallel paths.
fn assert_matches_lightgbm(booster: &Booster, data: &Data) -> (Forest, String) {
    let text = booster.save_string().expect("save the model text");
    let forest = Forest::parse(&text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(forest.num_features(), data.cols());
    assert_eq!(forest.feature_names(), data.names.as_slice());
    assert_eq!(forest.num_trees(), tree_field(&text, "leaf_value").len());
    let probe = probe_rows(data, &text);
    let nf = probe.cols() as i32;
    let params = "num_threads=1 verbose=-1";
    let expected = booster
        .predict_with_params(&probe.x, nf, true, params)
        .expect("LightGBM predict");
    let expected_raw = booster
        .raw_scores_with_params(&probe.x, nf, true, params)
        .expect("LightGBM raw scores");
    let cols = columns(&probe);
    let col_refs: Vec<&[f32]> = cols.iter().map(Vec::as_slice).collect();
    let mut batch = vec![f64::NAN; 3];
    forest
        .predict_columns(&col_refs, &mut batch)
        .expect("predict_columns");
    let mut parallel = Vec::new();
    forest
        .predict_columns_parallel(&col_refs, 3, &mut parallel)
        .expect("predict_columns_parallel");
    assert_eq!(batch.len(), probe.rows());
    assert_eq!(parallel.len(), probe.rows());
    let mut exact = 0;
    for r in 0..probe.rows() {
        let row = probe.row(r);
        let p = forest.predict_row(row);
        assert!(
            (p - expected[r]).abs() <= 1e-12,
            "row {r} {row:?}: forest {p} lightgbm {}",
            expected[r]
        );
        let raw = forest.raw_row(row);
        assert!(
            (raw - expected_raw[r]).abs() <= 1e-12,
            "row {r} {row:?}: forest raw {raw} lightgbm {}",
            expected_raw[r]
        );
        assert_eq!(batch[r].to_bits(), p.to_bits(), "row {r}");
        assert_eq!(parallel[r].to_bits(), p.to_bits(), "row {r}");
        exact += usize::from(p.to_bits() == expected[r].to_bits());
    }
    eprintln!(
        "{} trees, {} rows: {exact} probabilities bit-identical to LightGBM's",
        forest.num_trees(),
        probe.rows()
    );
    (forest, text)
}

#[test]
fn forest_matches_lightgbm_with_nan_going_both_ways() {
    let data = synthetic(4000, 1, 1);
    let booster = train(&data, &params(json!({})));
    let (forest, text) = assert_matches_lightgbm(&booster, &data);
    let dts = decision_types(&text);
    // MissingType::NaN with default right (8) and default left (10).
    assert!(dts.contains(&8), "{dts:?}");
    assert!(dts.contains(&10), "{dts:?}");
    // Features without NaN in training have MissingType::None.
    assert!(dts.iter().any(|d| (d >> 2) & 3 == 0), "{dts:?}");
    assert!(forest.num_trees() == 40);
    assert_eq!(forest.sigmoid(), 1.0);
}

/// `text` with decision type `n` of the whole model replaced by `f(n)`.
/// `tree_sizes` goes: the byte sizes change, and LightGBM can do without.
pub(crate) fn rewrite_decision_types(text: &str, mut f: impl FnMut(usize) -> i32) -> String {
    let mut n = 0;
    let mut out = String::new();
    for line in text.lines().filter(|l| !l.starts_with("tree_sizes=")) {
        match line.strip_prefix("decision_type=") {
            Some(v) => {
                let types: Vec<String> = v
                    .split_whitespace()
                    .map(|_| {
                        n += 1;
                        f(n - 1).to_string()
                    })
                    .collect();
                out.push_str("decision_type=");
                out.push_str(&types.join(" "));
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[test]
fn forest_matches_lightgbm_with_every_missing_type_and_another_sigmoid() {
    // lightgbm3 builds datasets without parameters, so `zero_as_missing` and
    // `use_missing=false` cannot be trained here. Instead every node gets one
    // of the missing types (None, Zero, NaN, and 3, which LightGBM reads as
    // None) with either default direction, and LightGBM scores the rewritten
    // text as the reference.
    let data = synthetic(3000, 2, 2);
    let booster = train(&data, &params(json!({"num_leaves": 31, "sigmoid": 0.7})));
    let text = booster.save_string().expect("save the model text");
    let rewritten = rewrite_decision_types(&text, |n| {
        let missing = (n % 4) as i32;
        let default_left = ((n / 4) % 2) as i32;
        (missing << 2) | (default_left << 1)
    });
    let reference = Booster::from_string(&rewritten).expect("LightGBM loads the rewritten model");
    let (forest, text) = assert_matches_lightgbm(&reference, &data);
    let mut dts = decision_types(&text);
    dts.sort();
    dts.dedup();
    assert_eq!(dts, [0, 2, 4, 6, 8, 10, 12, 14]);
    assert_eq!(forest.sigmoid(), 0.7);
}

#[test]
fn forest_matches_lightgbm_random_forest_average_output() {
    let data = synthetic(3000, 0, 4);
    let booster = train(
        &data,
        &params(
            json!({"boosting": "rf", "bagging_freq": 1, "bagging_fraction": 0.7, "num_iterations": 12}),
        ),
    );
    let (_, text) = assert_matches_lightgbm(&booster, &data);
    assert!(text.contains("\naverage_output\n"));
}

#[test]
fn forest_matches_lightgbm_on_large_trees() {
    // Up to 64 leaves take u64 masks; beyond that trees are walked row by row.
    let data = synthetic(6000, 3, 10);
    for num_leaves in [60, 200] {
        let booster = train(
            &data,
            &params(json!({"num_leaves": num_leaves, "num_iterations": 8, "min_data_in_leaf": 3})),
        );
        let (_, text) = assert_matches_lightgbm(&booster, &data);
        let most = tree_field(&text, "leaf_value")
            .iter()
            .map(Vec::len)
            .max()
            .expect("a tree has leaves");
        assert!(most > num_leaves / 2 && most > 32, "{num_leaves}: {most}");
        if num_leaves > 64 {
            assert!(most > 64, "{most}");
        }
    }
}

#[test]
fn forest_matches_lightgbm_on_constant_tree() {
    // No leaf may hold fewer rows than the data has: the only tree is a constant.
    let data = synthetic(500, 0, 5);
    let booster = train(&data, &params(json!({"min_data_in_leaf": 1000})));
    let (forest, text) = assert_matches_lightgbm(&booster, &data);
    assert_eq!(forest.num_trees(), 1);
    assert!(text.contains("\nnum_leaves=1\n"), "{text}");
    let p = forest.predict_row(&[0.0; 9]);
    assert!(p > 0.0 && p < 1.0);
    assert_eq!(forest.predict_row(&[f32::NAN; 9]), p);
}

#[test]
fn forest_rejects_garbage_and_unsupported_models() {
    let err = |text: &str| {
        Forest::parse(text)
            .expect_err("should be rejected")
            .to_string()
    };
    assert_eq!(
        err("hello world"),
        "forest: model text line 1: not a LightGBM text model (the first line is not `tree`)"
    );
    assert_eq!(
        err(""),
        "forest: model text line 1: not a LightGBM text model (the first line is not `tree`)"
    );
    assert_eq!(
        err("tree\nversion=v4\n"),
        "forest: model text: the header has no `num_class`"
    );

    let data = synthetic(600, 0, 6);
    let multi_labels: Vec<f32> = (0..data.rows()).map(|r| (r % 3) as f32).collect();
    let ds = Dataset::from_slice(&data.x, &multi_labels, data.cols() as i32, true)
        .expect("build a LightGBM dataset");
    let multi = Booster::train(
        ds,
        &params(json!({"objective": "multiclass", "num_class": 3, "num_iterations": 2})),
    )
    .expect("train with LightGBM");
    let e = Forest::parse_with_context(
        "model `m`",
        &multi.save_string().expect("save the model text"),
    )
    .expect_err("should be rejected")
    .to_string();
    assert_eq!(
        e,
        "model `m`: model text line 3: num_class=3: only binary models (num_class=1) are supported"
    );

    let ds = Dataset::from_slice(&data.x, &data.labels, data.cols() as i32, true)
        .expect("build a LightGBM dataset");
    let regression = Booster::train(
        ds,
        &params(json!({"objective": "regression", "num_iterations": 2})),
    )
    .expect("train with LightGBM");
    let e = err(&regression.save_string().expect("save the model text"));
    assert!(
        e.ends_with("objective `regression`: only the binary objective is supported"),
        "{e}"
    );

    let booster = train(&data, &params(json!({"num_iterations": 3})));
    let text = booster.save_string().expect("save the model text");
    Forest::parse(&text).expect("Forest::parse");
    let line_of = |needle: &str| {
        text.lines()
            .position(|l| l.starts_with(needle))
            .expect("model text has the line")
            + 1
    };

    let e = err(&text.replacen("num_cat=0", "num_cat=1", 1));
    assert_eq!(
        e,
        format!(
            "forest: model text line {}: num_cat=1: categorical splits are not supported",
            line_of("num_cat=")
        )
    );
    let dt = tree_field(&text, "decision_type")[0].join(" ");
    let first: i32 = dt
        .split(' ')
        .next()
        .and_then(|d| d.parse().ok())
        .expect("a decision type");
    let categorical = format!(
        "decision_type={}{}",
        first | 1,
        &dt[dt.find(' ').unwrap_or(dt.len())..]
    );
    let e = err(&text.replacen(&format!("decision_type={dt}"), &categorical, 1));
    assert_eq!(
        e,
        format!(
            "forest: model text line {}: node 0 is a categorical split (decision_type bit 0); only numerical splits are supported",
            line_of("decision_type=")
        )
    );
    let e = err(&text.replacen("is_linear=0", "is_linear=1", 1));
    assert!(
        e.ends_with("is_linear=1: linear trees are not supported"),
        "{e}"
    );
    let e = err(&text[..text
        .find("end of trees")
        .expect("model text has `end of trees`")]);
    assert_eq!(
        e,
        "forest: model text: no `end of trees` line: the text is truncated"
    );
    let e = err(&text.replacen("left_child=", "left_child=7 ", 1));
    assert!(e.contains("`left_child` has"), "{e}");
    let e = err(&text.replacen("Tree=1", "Tree=5", 1));
    assert!(e.ends_with("`Tree=5` out of order: expected Tree=1"), "{e}");
}

#[test]
fn forest_checks_input_columns() {
    let data = synthetic(800, 0, 8);
    let booster = train(&data, &params(json!({"num_iterations": 3})));
    let forest =
        Forest::parse(&booster.save_string().expect("save the model text")).expect("Forest::parse");
    let cols = columns(&data);
    let mut refs: Vec<&[f32]> = cols.iter().map(Vec::as_slice).collect();
    let mut out = Vec::new();
    let e = forest
        .predict_columns(&refs[..8], &mut out)
        .expect_err("should be rejected")
        .to_string();
    assert_eq!(
        e,
        "forest: 8 feature columns given; the model has 9 features"
    );
    refs[3] = &refs[3][..10];
    let e = forest
        .predict_columns_parallel(&refs, 2, &mut out)
        .expect_err("should be rejected")
        .to_string();
    assert_eq!(
        e,
        "forest: feature column 3 (`count`) has 10 rows; column 0 has 800"
    );
    // No rows, and any thread count.
    let none: &[f32] = &[];
    let empty = vec![none; 9];
    forest
        .predict_columns_parallel(&empty, 0, &mut out)
        .expect("predict_columns_parallel");
    assert!(out.is_empty());
    // A short row reads absent features as 0, like LightGBM's sparse input.
    let mut row = data.row(0).to_vec();
    row[8] = 0.0;
    assert_eq!(forest.predict_row(&row[..8]), forest.predict_row(&row));
}

/// 2M rows x 26 features, 100 trees of up to 31 leaves: forest vs LightGBM.
/// `cargo test --release --workspace forest_two_million -- --ignored --nocapture`
#[test]
#[ignore]
fn forest_two_million_rows_timing() {
    let rows = 2_000_000;
    let t = Instant::now();
    let data = synthetic(rows, 17, 9);
    assert_eq!(data.cols(), 26);
    eprintln!(
        "generated {rows} rows x {} features in {:.2}s",
        data.cols(),
        t.elapsed().as_secs_f64()
    );
    // Train on a tenth of the rows: scoring, not training, is measured.
    let sample = Data {
        names: data.names.clone(),
        x: data.x[..rows / 10 * data.cols()].to_vec(),
        labels: data.labels[..rows / 10].to_vec(),
    };
    let t = Instant::now();
    let booster = train(
        &sample,
        &params(json!({"num_iterations": 100, "num_leaves": 31, "min_data_in_leaf": 20})),
    );
    let text = booster.save_string().expect("save the model text");
    let forest = Forest::parse(&text).expect("Forest::parse");
    let leaves: usize = tree_field(&text, "leaf_value").iter().map(Vec::len).sum();
    eprintln!(
        "trained {} trees ({leaves} leaves) in {:.2}s",
        forest.num_trees(),
        t.elapsed().as_secs_f64()
    );
    let cols = columns(&data);
    let refs: Vec<&[f32]> = cols.iter().map(Vec::as_slice).collect();
    let mut one = Vec::new();
    let t = Instant::now();
    forest
        .predict_columns(&refs, &mut one)
        .expect("predict_columns");
    eprintln!(
        "Forest::predict_columns (1 thread): {:.3}s",
        t.elapsed().as_secs_f64()
    );
    let mut two = Vec::new();
    let t = Instant::now();
    forest
        .predict_columns_parallel(&refs, 2, &mut two)
        .expect("predict_columns_parallel");
    eprintln!(
        "Forest::predict_columns_parallel (2 threads): {:.3}s",
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let expected = booster
        .predict_with_params(
            &data.x,
            data.cols() as i32,
            true,
            "num_threads=2 verbose=-1",
        )
        .expect("LightGBM predict");
    eprintln!(
        "LightGBM predict (2 threads): {:.3}s",
        t.elapsed().as_secs_f64()
    );
    let worst = expected
        .iter()
        .zip(&two)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    let exact = expected
        .iter()
        .zip(&two)
        .filter(|(a, b)| a.to_bits() == b.to_bits())
        .count();
    eprintln!("max |forest - lightgbm| = {worst:e}; {exact} of {rows} bit-identical");
    assert_eq!(one, two);
}
