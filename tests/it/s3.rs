//! The warehouse in object storage: the same commands on an `s3://`
//! warehouse, against a real S3-protocol server (`s3s-fs`, which
//! `zeekml_testkit::s3` starts and points the `AWS_*` variables at; the
//! `zeekml` processes inherit them).

use std::path::{Path, PathBuf};

use predicates::prelude::PredicateBooleanExt;

use crate::{generate, realdata, run_with_input, scalar, score_njrat_day, uwf_pipeline, zeekml};

/// Where the server keeps the objects of `url` (`s3://bucket/prefix`).
fn objects(server: &zeekml_testkit::S3Server, url: &str) -> PathBuf {
    server.root.join(url.trim_start_matches("s3://"))
}

/// A new warehouse on the S3 test server, trained by `uwf_recon.toml`
/// (best-F1 threshold) on 20,000 rows generated with `seed`; with the
/// temporary directory and pipeline file it used, and its URL.
fn trained_s3_warehouse(name: &str, seed: u64) -> (tempfile::TempDir, PathBuf, String) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let pipeline = uwf_pipeline(tmp.path(), Some("{ rule = \"best_f1\" }"), "");
    let url = zeekml_testkit::s3().warehouse(name);
    let data = tmp.path().join(format!("data-{seed}"));
    generate(&data, 20_000, seed);
    run_with_input(&pipeline, &data, Path::new(&url));
    (tmp, pipeline, url)
}

#[test]
fn a_pipeline_writes_an_s3_warehouse_that_sql_score_and_report_read() {
    let server = zeekml_testkit::s3();
    let (tmp, pipeline, url) = trained_s3_warehouse("e2e", 3);
    let wh = Path::new(&url);

    // The tables are in the bucket as Delta tables, not in a local
    // directory named `s3:`.
    let stored = objects(server, &url);
    assert!(
        stored
            .join("features/_delta_log/00000000000000000000.json")
            .is_file(),
        "no Delta log under {}",
        stored.display()
    );
    assert!(stored.join("models/uwf_recon/model_card.json").is_file());
    assert!(!crate::repo().join("s3:").exists());
    // The copies of `features` that training read are gone.
    let spool = zeekml_pipeline::Warehouse::open(wh)
        .expect("open")
        .root()
        .join(".staging");
    let left: Vec<_> = std::fs::read_dir(&spool)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(scalar(wh, "SELECT count(*) FROM features"), "20000");

    // A second run is version 1 of each table; version 0 stays readable,
    // and the model card names the version it was trained on.
    let second = tmp.path().join("second");
    generate(&second, 12_000, 4);
    run_with_input(&pipeline, &second, wh);
    assert_eq!(scalar(wh, "SELECT count(*) FROM features"), "12000");
    let as_of = zeekml()
        .args(["sql", "--format", "csv", "--as-of", "features=0"])
        .args(["SELECT count(*) AS n FROM features", "--warehouse"])
        .arg(wh)
        .output()
        .expect("sql --as-of");
    assert_eq!(String::from_utf8_lossy(&as_of.stdout), "n\n20000\n");
    assert_eq!(
        scalar(
            wh,
            "SELECT table_version FROM runs WHERE stage = 'features' ORDER BY started_at DESC LIMIT 1"
        ),
        "1"
    );
    let card: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(stored.join("models/uwf_recon/model_card.json")).expect("card"),
    )
    .expect("json");
    assert_eq!(
        card["training_table"],
        serde_json::json!({"name": "features", "version": 1})
    );

    // `zeekml score` takes the model from the bucket.
    let out = tmp.path().join("scored.parquet");
    zeekml()
        .args(["score", "--model"])
        .arg(format!("{url}/models/uwf_recon"))
        .arg("--input")
        .arg(realdata(
            "stratosphere-labeled-tsv/001-zeek-scenario-malicious.labeled-conn.log",
        ))
        .arg("--out")
        .arg(&out)
        .assert()
        .success()
        .stdout(predicates::str::contains("scored "));
    assert!(out.is_file());

    // The report reads the tables and the model card from the bucket.
    let html = tmp.path().join("report.html");
    zeekml()
        .args(["report", "--warehouse"])
        .arg(wh)
        .arg("--out")
        .arg(&html)
        .assert()
        .success()
        .stdout(predicates::str::contains("model    6 charts"));
    assert!(std::fs::read_to_string(&html)
        .expect("html")
        .contains(url.as_str()));

    // Vacuum keeps what recent versions read; with no retention it deletes
    // the first run's replaced files and leaves the tables readable.
    zeekml()
        .args(["vacuum", "--retain-hours", "0", "--warehouse"])
        .arg(wh)
        .assert()
        .success()
        .stdout(
            predicates::str::contains("features").and(predicates::str::contains("deleted 1 files")),
        );
    assert_eq!(scalar(wh, "SELECT count(*) FROM features"), "12000");
}

#[test]
fn a_day_of_real_zeek_logs_scored_into_an_s3_partition_twice_leaves_the_same_rows() {
    let server = zeekml_testkit::s3();
    let (tmp, _, url) = trained_s3_warehouse("day", 5);
    let wh = Path::new(&url);

    score_njrat_day(tmp.path(), wh);
    let count = "SELECT count(*) FROM alerts WHERE date = '2017-03-08'";
    let rows = scalar(wh, count);
    assert_ne!(rows, "0");
    assert!(objects(server, &url)
        .join("alerts/date=2017-03-08")
        .is_dir());
    let beacons = scalar(wh, "SELECT count(*) FROM beacons");
    score_njrat_day(tmp.path(), wh);
    assert_eq!(scalar(wh, count), rows);
    assert_eq!(scalar(wh, "SELECT count(*) FROM beacons"), beacons);
    assert_eq!(
        scalar(
            wh,
            "SELECT table_version FROM runs WHERE stage = 'alerts' ORDER BY started_at DESC LIMIT 1"
        ),
        "1"
    );
}
