//! `zeekml score` and the scheduled `zeek_score` pipeline on real Zeek logs.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::{generate, realdata, scalar, uwf_pipeline, zeekml};

/// Trains the default pipeline (threshold at best F1: 8,000 rows cannot
/// measure a 1e-4 alert budget) on a small generated set; returns the
/// warehouse.
fn trained(dir: &Path) -> PathBuf {
    let data = dir.join("uwf");
    let wh = dir.join("wh");
    generate(&data, 8_000, 3);
    let pipeline = uwf_pipeline(dir, Some("{ rule = \"best_f1\" }"), "");
    crate::run_with_input(&pipeline, &data, &wh);
    wh
}

fn parquet_rows(path: &Path) -> (usize, Vec<String>) {
    let file = std::fs::File::open(path).expect("output exists");
    let reader =
        datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .expect("parquet");
    let names = reader
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let rows = reader
        .build()
        .expect("reader")
        .map(|b| b.expect("batch").num_rows())
        .sum();
    (rows, names)
}

/// `zeekml score` with a model directory, an input and an output file.
fn score(model: &Path, input: &Path, out: &Path) -> assert_cmd::Command {
    let mut cmd = zeekml();
    cmd.args(["score", "--model"])
        .arg(model)
        .arg("--input")
        .arg(input)
        .arg("--out")
        .arg(out);
    cmd
}

/// `(uid, score)` pairs sorted, scores as bits: generated recon flows repeat
/// their uid, so scored tables are compared as sorted pairs, bit for bit.
fn sorted_bits(rows: Vec<(String, f64)>) -> Vec<(String, u64)> {
    let mut rows: Vec<(String, u64)> = rows.into_iter().map(|(u, s)| (u, s.to_bits())).collect();
    rows.sort_unstable();
    rows
}

#[test]
fn score_writes_every_connection_of_native_logs() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let wh = trained(tmp.path());
    let model = wh.join("models/uwf_recon");
    for (file, rows) in [
        (
            "stratosphere-unlabeled-tsv/003-zeek-scenario-malicious.conn.log",
            361,
        ),
        (
            "stratosphere-json-portscan/002-zeek-scenario-port-scanning.conn.log",
            4504,
        ),
        ("rita-json/conn.log", 29),
    ] {
        let out = tmp.path().join("scored.parquet");
        let output = score(&model, &realdata(file), &out).output().expect("run");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            stdout.contains(&format!("scored {rows} connections")),
            "{stdout}"
        );
        let (n, names) = parquet_rows(&out);
        assert_eq!(n, rows, "{file}");
        for col in [
            "uid",
            "ts",
            "src_ip",
            "dest_port",
            "protocol",
            "conn_state",
            "score",
            "flag",
        ] {
            assert!(names.iter().any(|c| c == col), "{col} missing in {names:?}");
        }
    }
}

#[test]
fn score_rejects_a_missing_model_and_bad_logs_clearly() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = score(
        &tmp.path().join("nope"),
        &realdata("rita-json/conn.log"),
        &tmp.path().join("x.parquet"),
    )
    .output()
    .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nope"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn scheduled_pipeline_fills_one_partition_per_day_idempotently() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let wh = trained(tmp.path());
    let logs = tmp.path().join("logs");
    let day = logs.join("2024-05-01");
    std::fs::create_dir_all(&day).expect("mkdir");
    let text = std::fs::read(realdata(
        "stratosphere-unlabeled-tsv/005-zeek-scenario-malicious.conn.log",
    ))
    .expect("read");
    let gz = std::fs::File::create(day.join("conn.13:00:00-14:00:00.log.gz")).expect("create");
    let mut enc = flate2::write::GzEncoder::new(gz, flate2::Compression::fast());
    enc.write_all(&text).expect("gzip");
    enc.finish().expect("finish");
    std::fs::copy(
        realdata("stratosphere-unlabeled-tsv/006-zeek-scenario-ssh.conn.log"),
        day.join("conn.14:00:00-15:00:00.log"),
    )
    .expect("copy");
    for _ in 0..2 {
        zeekml()
            .args(["run", "pipelines/zeek_score.toml", "--set"])
            .arg(format!("logs={}", logs.display()))
            .args(["--set", "date=2024-05-01", "--warehouse"])
            .arg(&wh)
            .assert()
            .success();
    }
    assert!(wh.join("alerts/date=2024-05-01").is_dir());
    assert_eq!(scalar(&wh, "SELECT count(*) FROM alerts"), "1010");
    assert_eq!(
        scalar(
            &wh,
            "SELECT count(*) FROM alerts WHERE date = '2024-05-01' AND score BETWEEN 0 AND 1"
        ),
        "1010"
    );
}

#[test]
fn one_place_query_joins_model_beacon_and_host_scores() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let wh = trained(tmp.path());
    crate::score_njrat_day(tmp.path(), &wh);
    // Every scored connection finds its beacon and host context by key.
    let keys = "USING (uid, ts, src_ip, src_port, dest_ip, dest_port)";
    assert_eq!(
        scalar(
            &wh,
            &format!("SELECT count(*) FROM alerts a JOIN conn_scores c {keys}")
        ),
        "992"
    );
    // The NjRAT C&C pair carries its beacon score on each of its 237 rows.
    assert_eq!(
        scalar(
            &wh,
            &format!(
                "SELECT count(*) FROM alerts a JOIN conn_scores c {keys} \
                 WHERE a.dest_ip = '41.108.179.197' AND c.beacon_score > 0.9"
            )
        ),
        "237"
    );
    // The documented query runs as written, from its file.
    let out = zeekml()
        .args(["sql", "--file", "sql/queries/flagged_with_context.sql"])
        .args(["--format", "csv", "--warehouse"])
        .arg(&wh)
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.starts_with("ts,src_ip,dest_ip"), "{text}");
    assert!(text.lines().count() >= 2, "{text}");
    // A missing query file is named.
    let out = zeekml()
        .args(["sql", "--file", "no/such.sql", "--warehouse"])
        .arg(&wh)
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no/such.sql"));
}

#[test]
fn a_log_without_connections_scores_to_an_empty_file() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let wh = trained(tmp.path());
    let text = std::fs::read_to_string(realdata(
        "stratosphere-unlabeled-tsv/003-zeek-scenario-malicious.conn.log",
    ))
    .expect("read");
    let header: String = text
        .lines()
        .filter(|l| l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect();
    let log = tmp.path().join("conn.log");
    std::fs::write(&log, header).expect("write");
    let out = tmp.path().join("scored.parquet");
    score(&wh.join("models/uwf_recon"), &log, &out)
        .assert()
        .success();
    let (rows, names) = parquet_rows(&out);
    assert_eq!(rows, 0);
    assert!(names.iter().any(|n| n == "score"), "{names:?}");
}

/// `(uid, score)` of every row of the Parquet files under `path`, in order.
fn uid_scores(path: &Path) -> Vec<(String, f64)> {
    use datafusion::arrow::array::{Array, Float64Array, StringArray};
    let files: Vec<PathBuf> = if path.is_dir() {
        let partition = path.file_name().expect("partition").to_string_lossy();
        crate::delta_files(path.parent().expect("table"), &partition)
    } else {
        vec![path.to_path_buf()]
    };
    let mut out = Vec::new();
    for file in files {
        let file = std::fs::File::open(file).expect("open");
        let reader =
            datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
                file,
            )
            .expect("parquet")
            .build()
            .expect("reader");
        for batch in reader {
            let batch = batch.expect("batch");
            let uid = batch.column_by_name("uid").expect("uid");
            let uid = datafusion::arrow::compute::cast(
                uid,
                &datafusion::arrow::datatypes::DataType::Utf8,
            )
            .expect("cast");
            let uid = uid.as_any().downcast_ref::<StringArray>().expect("utf8");
            let score = batch.column_by_name("score").expect("score");
            let score = score.as_any().downcast_ref::<Float64Array>().expect("f64");
            for i in 0..batch.num_rows() {
                out.push((uid.value(i).to_string(), score.value(i)));
            }
        }
    }
    out
}

#[test]
fn streamed_scores_keep_input_order_and_match_the_score_stage() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let wh = trained(tmp.path());
    // Large enough for several files, chunks and batches per worker.
    let day = tmp.path().join("logs/2024-05-02");
    zeekml()
        .args([
            "generate", "--format", "zeek-tsv", "--rows", "300000", "--seed", "9", "--out",
        ])
        .arg(&day)
        .assert()
        .success();
    let mut input_uids = Vec::new();
    let mut logs: Vec<PathBuf> = std::fs::read_dir(&day)
        .expect("dir")
        .map(|e| e.expect("entry").path())
        .collect();
    logs.sort();
    assert!(logs.len() > 1, "{logs:?}");
    for log in &logs {
        let text = std::fs::read_to_string(log).expect("read");
        input_uids.extend(
            text.lines()
                .filter(|l| !l.starts_with('#'))
                .map(|l| l.split('\t').nth(1).expect("uid").to_string()),
        );
    }
    assert_eq!(input_uids.len(), 300_000);

    let out = tmp.path().join("scored.parquet");
    score(&wh.join("models/uwf_recon"), &day, &out)
        .assert()
        .success();
    let streamed = uid_scores(&out);
    let streamed_uids: Vec<&str> = streamed.iter().map(|(u, _)| u.as_str()).collect();
    assert!(
        streamed_uids == input_uids,
        "scored rows are not in input order"
    );

    // The pipeline's score stage scores the same rows the same way.
    zeekml()
        .args(["run", "pipelines/zeek_score.toml", "--set"])
        .arg(format!("logs={}", tmp.path().join("logs").display()))
        .args([
            "--set",
            "date=2024-05-02",
            "--set",
            "pattern=*",
            "--warehouse",
        ])
        .arg(&wh)
        .assert()
        .success();
    let staged = sorted_bits(uid_scores(&wh.join("alerts/date=2024-05-02")));
    assert_eq!(staged.len(), 300_000);
    assert!(
        sorted_bits(streamed) == staged,
        "streamed and staged scores differ"
    );
}

#[test]
fn scoring_uwf_csv_reproduces_the_deployed_split_scores() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let wh = trained(tmp.path());
    let out = tmp.path().join("scored.parquet");
    let output = score(&wh.join("models/uwf_recon"), &tmp.path().join("uwf"), &out)
        .args(["--input-format", "csv"])
        .output()
        .expect("run");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("scored 8000 connections"));
    // The deployed model is the dedup split's; `scored` holds its score for
    // every row of `features`.
    let staged: Vec<(String, f64)> =
        crate::sql(&wh, "SELECT uid, score FROM scored WHERE split = 'dedup'")
            .lines()
            .skip(1)
            .map(|line| {
                let (uid, score) = line.split_once(',').expect("two columns");
                (uid.to_string(), score.parse().expect("score"))
            })
            .collect();
    assert_eq!(staged.len(), 8000);
    assert!(
        sorted_bits(uid_scores(&out)) == sorted_bits(staged),
        "zeekml score and the train stage disagree"
    );
}
