//! TreeSHAP contributions of the Rust [`Forest`] equal LightGBM's own
//! `pred_contrib` on models trained by LightGBM, through every split and
//! missing-value rule the forest reads.

use lightgbm3::Booster;
use serde_json::json;
use zeekml_model::Forest;

use crate::forest::{
    columns, decision_types, params, probe_rows, rewrite_decision_types, synthetic, train, Data,
};

/// Contributions of every row of `data` plus threshold and special-value
/// probes, by row, by columns (cached patterns) and on three threads,
/// against LightGBM's `predict_contrib`: each feature and the bias within
/// 1e-9, and base + contributions equal to the raw score.
fn assert_contributions_match(booster: &Booster, data: &Data) -> Forest {
    let text = booster.save_string().expect("save the model text");
    let forest = Forest::parse(&text).unwrap_or_else(|e| panic!("{e}"));
    let explainer = forest.explainer().unwrap_or_else(|e| panic!("{e}"));
    let probe = probe_rows(data, &text);
    let nf = probe.cols();
    let expected = booster
        .predict_contrib(&probe.x, nf as i32, true)
        .expect("LightGBM predict_contrib");
    assert_eq!(expected.len(), probe.rows() * (nf + 1));
    let cols = columns(&probe);
    let refs: Vec<&[f32]> = cols.iter().map(Vec::as_slice).collect();
    let mut scratch = explainer.scratch();
    let mut by_columns = Vec::new();
    explainer
        .explain_columns(&refs, &mut scratch, &mut by_columns)
        .expect("explain_columns");
    let mut parallel = Vec::new();
    explainer
        .explain_columns_parallel(&refs, 3, &mut parallel)
        .expect("explain_columns_parallel");
    let mut fresh = explainer.scratch();
    let mut phi = Vec::new();
    let mut worst = 0.0f64;
    for r in 0..probe.rows() {
        let row = probe.row(r);
        let want = &expected[r * (nf + 1)..(r + 1) * (nf + 1)];
        explainer.explain_row(row, &mut fresh, &mut phi);
        assert_eq!(phi.len(), nf);
        for f in 0..nf {
            let d = (phi[f] - want[f]).abs();
            worst = worst.max(d);
            assert!(
                d <= 1e-9,
                "row {r} {row:?}, feature {f} (`{}`): zeekml {} lightgbm {}",
                probe.names[f],
                phi[f],
                want[f]
            );
        }
        assert!(
            (explainer.base_value() - want[nf]).abs() <= 1e-9,
            "bias: zeekml {} lightgbm {}",
            explainer.base_value(),
            want[nf]
        );
        let total = explainer.base_value() + phi.iter().sum::<f64>();
        let raw = forest.raw_row(row);
        assert!(
            (total - raw).abs() <= 1e-9,
            "row {r}: base + contributions {total}, raw score {raw}"
        );
        // A cached pattern gives the doubles a walk gives, on any thread.
        let at = r * nf..(r + 1) * nf;
        assert_eq!(&by_columns[at.clone()], phi.as_slice(), "row {r}");
        assert_eq!(&parallel[at], phi.as_slice(), "row {r}");
    }
    eprintln!(
        "{} trees, {} rows: max |zeekml - lightgbm| contribution {worst:e}",
        forest.num_trees(),
        probe.rows()
    );
    forest
}

#[test]
fn contributions_match_lightgbm_with_nan_going_both_ways() {
    let data = synthetic(4000, 1, 21);
    let booster = train(&data, &params(json!({})));
    assert_contributions_match(&booster, &data);
    let dts = decision_types(&booster.save_string().expect("model text"));
    // MissingType::NaN to the right (8) and to the left (10), and None.
    assert!(dts.contains(&8), "{dts:?}");
    assert!(dts.contains(&10), "{dts:?}");
    assert!(dts.iter().any(|d| (d >> 2) & 3 == 0), "{dts:?}");
}

#[test]
fn contributions_match_lightgbm_with_every_missing_type() {
    // As in the forest tests: each node gets one of the missing types (None,
    // Zero, NaN, and 3, read as None) with either default direction, and
    // LightGBM explains the rewritten model.
    let data = synthetic(3000, 2, 22);
    let booster = train(&data, &params(json!({"num_leaves": 31, "sigmoid": 0.7})));
    let text = booster.save_string().expect("save the model text");
    let rewritten = rewrite_decision_types(&text, |n| {
        let missing = (n % 4) as i32;
        let default_left = ((n / 4) % 2) as i32;
        (missing << 2) | (default_left << 1)
    });
    let reference = Booster::from_string(&rewritten).expect("LightGBM loads the rewritten model");
    let forest = assert_contributions_match(&reference, &data);
    let mut dts = decision_types(&rewritten);
    dts.sort();
    dts.dedup();
    assert_eq!(dts, [0, 2, 4, 6, 8, 10, 12, 14]);
    assert_eq!(
        forest.explainer().expect("explainer").log_odds_per_raw(),
        0.7
    );
}

#[test]
fn contributions_match_lightgbm_on_trees_too_large_to_cache() {
    // Trees of more than 64 splits are walked for every row.
    let data = synthetic(6000, 3, 23);
    let booster = train(
        &data,
        &params(json!({"num_leaves": 150, "num_iterations": 6, "min_data_in_leaf": 3})),
    );
    let text = booster.save_string().expect("model text");
    let most = crate::forest::tree_field(&text, "leaf_value")
        .iter()
        .map(Vec::len)
        .max()
        .expect("a tree has leaves");
    assert!(most > 65, "{most}");
    assert_contributions_match(&booster, &data);
}

#[test]
fn contributions_match_lightgbm_random_forest_and_constant_tree() {
    let data = synthetic(3000, 0, 24);
    let rf = train(
        &data,
        &params(
            json!({"boosting": "rf", "bagging_freq": 1, "bagging_fraction": 0.7, "num_iterations": 12}),
        ),
    );
    let forest = assert_contributions_match(&rf, &data);
    // Raw scores of `average_output` models are summed, as LightGBM's
    // contributions are; the log-odds are their mean.
    assert_eq!(
        forest.explainer().expect("explainer").log_odds_per_raw(),
        1.0 / 12.0
    );
    let constant = train(&data, &params(json!({"min_data_in_leaf": 10_000})));
    let forest = assert_contributions_match(&constant, &data);
    let explainer = forest.explainer().expect("explainer");
    let (mut scratch, mut phi) = (explainer.scratch(), Vec::new());
    explainer.explain_row(&[f32::NAN; 9], &mut scratch, &mut phi);
    assert_eq!(phi, [0.0; 9]);
    assert_eq!(explainer.base_value(), forest.raw_row(&[0.0; 9]));
}

#[test]
fn contributions_add_up_to_the_raw_score_on_100k_rows() {
    let data = synthetic(100_000, 3, 25);
    let booster = train(
        &data,
        &params(json!({"num_leaves": 31, "num_iterations": 60})),
    );
    let text = booster.save_string().expect("model text");
    let forest = Forest::parse(&text).expect("Forest::parse");
    let explainer = forest.explainer().expect("explainer");
    let cols = columns(&data);
    let refs: Vec<&[f32]> = cols.iter().map(Vec::as_slice).collect();
    let mut phi = Vec::new();
    explainer
        .explain_columns_parallel(&refs, 2, &mut phi)
        .expect("explain_columns_parallel");
    let nf = data.cols();
    let mut nan_rows = 0;
    for r in 0..data.rows() {
        let row = data.row(r);
        nan_rows += usize::from(row.iter().any(|v| v.is_nan()));
        let total = explainer.base_value() + phi[r * nf..(r + 1) * nf].iter().sum::<f64>();
        let raw = forest.raw_row(row);
        assert!(
            (total - raw).abs() <= 1e-9,
            "row {r} {row:?}: base + contributions {total}, raw score {raw}"
        );
    }
    assert!(nan_rows > 20_000, "{nan_rows}");
}
