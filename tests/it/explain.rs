//! Reasons behind scores: `zeekml score --explain K` and `explain = K` in
//! the `lightgbm` and `score` stages.

use std::path::{Path, PathBuf};

use datafusion::arrow::array::{Array, AsArray, Float64Array, RecordBatch};
use datafusion::arrow::datatypes::Float64Type;

use crate::{generate, repo, scalar, sql, uwf_pipeline, zeekml};

/// Trains the default pipeline with `explain = 3` in its `lightgbm` stage
/// on a small generated set; returns the warehouse.
fn trained_with_reasons(dir: &Path) -> PathBuf {
    let data = dir.join("uwf");
    let wh = dir.join("wh");
    generate(&data, 8_000, 5);
    let pipeline = uwf_pipeline(dir, Some("{ rule = \"best_f1\" }"), "");
    let text = std::fs::read_to_string(&pipeline).unwrap();
    let stage = "model_name = \"uwf_recon\"\n";
    assert!(
        text.contains(stage),
        "the train stage's model_name line moved"
    );
    std::fs::write(
        &pipeline,
        text.replace(stage, &format!("{stage}explain = 3\n")),
    )
    .unwrap();
    crate::run_with_input(&pipeline, &data, &wh);
    wh
}

fn read_parquet(path: &Path) -> Vec<RecordBatch> {
    let file = std::fs::File::open(path).expect("output exists");
    datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .expect("parquet")
        .build()
        .expect("reader")
        .map(|b| b.expect("batch"))
        .collect()
}

fn f64s<'a>(batch: &'a RecordBatch, name: &str) -> &'a Float64Array {
    batch
        .column_by_name(name)
        .unwrap_or_else(|| panic!("no column {name}"))
        .as_primitive::<Float64Type>()
}

/// Checks every row's reasons: `k` entries, largest |contribution| first,
/// named by model features, adding up with the rest and the base value to
/// the logit of the score. Returns the scores and base values.
fn check_reasons(batches: &[RecordBatch], k: usize, features: &[String]) -> (Vec<f64>, Vec<f64>) {
    let (mut scores, mut bases) = (Vec::new(), Vec::new());
    for batch in batches {
        let score = f64s(batch, "score");
        let rest = f64s(batch, "contribution_rest");
        let base_value = f64s(batch, "base_value");
        let reasons = batch
            .column_by_name("reasons")
            .expect("reasons")
            .as_list::<i32>();
        for r in 0..batch.num_rows() {
            let entry = reasons.value(r);
            let entry = entry.as_struct();
            assert_eq!(entry.len(), k, "row {r}");
            let names = entry.column_by_name("feature").unwrap().as_string::<i32>();
            let contribution = entry
                .column_by_name("contribution")
                .unwrap()
                .as_primitive::<Float64Type>();
            let mut sum = base_value.value(r) + rest.value(r);
            for j in 0..k {
                assert!(
                    features.iter().any(|f| f == names.value(j)),
                    "row {r}: `{}` is not a model feature",
                    names.value(j)
                );
                if j > 0 {
                    assert!(
                        contribution.value(j - 1).abs() >= contribution.value(j).abs(),
                        "row {r}: reasons not sorted by |contribution|: {:?}",
                        contribution.values()
                    );
                }
                sum += contribution.value(j);
            }
            let s = score.value(r);
            // The logit of a score near 0 or 1 is ill-conditioned: allow its
            // rounding error (about eps / (s (1 - s))) on top of 1e-6.
            let logit = s.ln() - (-s).ln_1p();
            let slack = 1e-6 + 4.0 * f64::EPSILON / (s * (1.0 - s));
            assert!(
                (sum - logit).abs() <= slack || (s == 1.0 && sum > 36.0),
                "row {r}: base + contributions = {sum}, logit(score {s}) = {logit}"
            );
            scores.push(s);
            bases.push(base_value.value(r));
        }
    }
    (scores, bases)
}

fn card_features(model: &Path) -> Vec<String> {
    let card: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(model.join("model_card.json")).unwrap())
            .unwrap();
    card["feature_names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn score_explain_gives_sorted_reasons_that_add_up_to_each_score() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let wh = trained_with_reasons(tmp.path());
    let model = wh.join("models/uwf_recon");
    let features = card_features(&model);
    let logs = tmp.path().join("logs");
    zeekml()
        .args([
            "generate", "--format", "zeek-tsv", "--rows", "40000", "--seed", "8", "--out",
        ])
        .arg(&logs)
        .assert()
        .success();
    let score = |out: &Path, explain: Option<&str>| {
        let mut cmd = zeekml();
        cmd.args(["score", "--model"])
            .arg(&model)
            .arg("--input")
            .arg(&logs)
            .arg("--out")
            .arg(out);
        if let Some(k) = explain {
            cmd.args(["--explain", k]);
        }
        cmd.assert().success();
        read_parquet(out)
    };
    let explained = score(&tmp.path().join("explained.parquet"), Some("3"));
    let (scores, bases) = check_reasons(&explained, 3, &features);
    assert_eq!(scores.len(), 40_000);
    // One model, one expected value.
    assert!(bases.iter().all(|&b| b == bases[0]), "{:?}", &bases[..3]);
    assert!(scores.iter().any(|&s| s > 0.5) && scores.iter().any(|&s| s < 0.5));

    // Without --explain the output is what it was, scores bit for bit.
    let plain = score(&tmp.path().join("plain.parquet"), None);
    let names: Vec<String> = plain[0]
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert!(
        !names.iter().any(|n| n == "reasons" || n == "base_value"),
        "{names:?}"
    );
    let plain_scores: Vec<u64> = plain
        .iter()
        .flat_map(|b| {
            f64s(b, "score")
                .values()
                .iter()
                .map(|s| s.to_bits())
                .collect::<Vec<_>>()
        })
        .collect();
    let explained_scores: Vec<u64> = scores.iter().map(|s| s.to_bits()).collect();
    assert!(plain_scores == explained_scores, "--explain changed scores");

    // The train stage wrote the same columns into `scored`, for each split's model.
    let scored: Vec<RecordBatch> = crate::delta_files(&wh.join("scored"), "")
        .iter()
        .flat_map(|p| read_parquet(p))
        .collect();
    let rows: usize = scored.iter().map(|b| b.num_rows()).sum();
    assert_eq!(check_reasons(&scored, 3, &features).0.len(), rows);
    assert_eq!(rows, 2 * 8_000);

    // CSV shows the list of reasons as text.
    let csv = sql(
        &wh,
        "SELECT reasons, contribution_rest, base_value FROM scored ORDER BY score DESC LIMIT 1",
    );
    let row = csv.lines().nth(1).expect("one row");
    assert!(row.starts_with("\"[{feature: "), "{csv}");
    assert!(row.contains("contribution: "), "{csv}");
}

/// The scores in `batches`, as bits.
fn score_bits(batches: &[RecordBatch]) -> Vec<u64> {
    batches
        .iter()
        .flat_map(|b| f64s(b, "score").values().iter().map(|s| s.to_bits()))
        .collect()
}

/// The Parquet files of a table partition's latest version, in name order.
fn read_partition(dir: &Path) -> Vec<RecordBatch> {
    let (table, partition) = (dir.parent().unwrap(), dir.file_name().unwrap());
    let files = crate::delta_files(table, &partition.to_string_lossy());
    assert!(!files.is_empty(), "no Parquet files in {}", dir.display());
    files.iter().flat_map(|p| read_parquet(p)).collect()
}

#[test]
fn score_stage_explain_writes_reasons_that_add_up_into_alerts() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let wh = trained_with_reasons(tmp.path());
    let features = card_features(&wh.join("models/uwf_recon"));
    let logs = tmp.path().join("logs");
    zeekml()
        .args([
            "generate", "--format", "zeek-tsv", "--rows", "20000", "--seed", "11", "--out",
        ])
        .arg(logs.join("2024-05-03"))
        .assert()
        .success();
    let run = |pipeline: &Path| {
        zeekml()
            .arg("run")
            .arg(pipeline)
            .arg("--set")
            .arg(format!("logs={}", logs.display()))
            .args([
                "--set",
                "date=2024-05-03",
                "--set",
                "pattern=*",
                "--warehouse",
            ])
            .arg(&wh)
            .assert()
            .success();
        read_partition(&wh.join("alerts/date=2024-05-03"))
    };

    // As shipped (`explain = 0`): no reason columns.
    let shipped = repo().join("pipelines/zeek_score.toml");
    let plain = run(&shipped);
    let names: Vec<String> = plain[0]
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert!(
        !names
            .iter()
            .any(|n| n == "reasons" || n == "contribution_rest" || n == "base_value"),
        "{names:?}"
    );

    // `explain = 3` in the score stage: every row of the partition has three
    // reasons adding up to the logit of its score, and the same scores.
    let text = std::fs::read_to_string(&shipped).unwrap();
    assert!(
        text.contains("\nexplain = 0\n"),
        "the score stage's explain line moved"
    );
    let explained_pipeline = tmp.path().join("zeek_score.toml");
    std::fs::write(
        &explained_pipeline,
        text.replace("\nexplain = 0\n", "\nexplain = 3\n"),
    )
    .unwrap();
    let explained = run(&explained_pipeline);
    let (scores, bases) = check_reasons(&explained, 3, &features);
    assert_eq!(scores.len(), 20_000);
    assert!(bases.iter().all(|&b| b == bases[0]), "{:?}", &bases[..3]);
    assert!(
        score_bits(&plain) == score_bits(&explained),
        "explain changed the scores"
    );
    assert_eq!(
        scalar(
            &wh,
            "SELECT count(*) FROM alerts WHERE date = '2024-05-03' AND cardinality(reasons) = 3"
        ),
        "20000"
    );
}
