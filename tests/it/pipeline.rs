//! The UWF pipeline end to end, on generated and real data.

use std::path::Path;
use std::process::Output;

use crate::{generate, realdata, repo, run_command, scalar, sql, uwf_pipeline, zeekml};

#[test]
fn generated_data_runs_through_every_stage_idempotently() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("uwf");
    let wh = tmp.path().join("wh");
    generate(&data, 30_000, 7);
    // 30,000 rows cannot measure the default 1e-4 alert budget (see
    // tests/it/evaluation.rs for it); the stages are what is tested here.
    let pipeline = uwf_pipeline(tmp.path(), Some("{ rule = \"best_f1\" }"), "");
    for _ in 0..2 {
        crate::run_with_input(&pipeline, &data, &wh);
    }
    // Every input row lands in raw; clean keeps them all by default.
    assert_eq!(scalar(&wh, "SELECT count(*) FROM raw"), "30000");
    assert_eq!(scalar(&wh, "SELECT count(*) FROM clean"), "30000");
    assert_eq!(scalar(&wh, "SELECT count(*) FROM features"), "30000");
    // Recon rows come in copies of 256 per uid.
    assert_eq!(
        scalar(
            &wh,
            "SELECT count(*) FROM (SELECT uid, count(*) c FROM features WHERE label = 1 GROUP BY uid) WHERE c <> 256"
        ),
        "0"
    );
    // Two splits evaluated, each with its name; scored holds every row per split.
    let metrics = sql(
        &wh,
        "SELECT split, rows, positives FROM metrics ORDER BY split",
    );
    assert!(metrics.contains("dedup,"), "{metrics}");
    assert!(metrics.contains("random_stratified,"), "{metrics}");
    assert_eq!(scalar(&wh, "SELECT count(*) FROM scored"), "60000");
    assert_eq!(
        scalar(
            &wh,
            "SELECT count(*) FROM metrics WHERE roc_auc < 0.5 OR roc_auc > 1"
        ),
        "0"
    );
    // The manifest records both runs, every stage ok, rows in/out.
    assert_eq!(scalar(&wh, "SELECT count(DISTINCT run_id) FROM runs"), "2");
    assert_eq!(
        scalar(&wh, "SELECT count(*) FROM runs WHERE status <> 'ok'"),
        "0"
    );
    assert_eq!(
        scalar(&wh, "SELECT max(rows_out) FROM runs WHERE stage = 'raw'"),
        "30000"
    );
    // The model directory holds the model and its card.
    let model = wh.join("models/uwf_recon");
    assert!(model.join("model.txt").is_file());
    let card: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(model.join("model_card.json")).expect("card"),
    )
    .expect("card json");
    let stages: Vec<&str> = card["feature_stages"]
        .as_array()
        .expect("stages")
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(stages, vec!["clean", "labeled", "features"]);
}

#[test]
fn stage_selection_runs_a_subset() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("uwf");
    let wh = tmp.path().join("wh");
    generate(&data, 3_000, 1);
    zeekml()
        .args(["run", "pipelines/uwf_recon.toml", "--to", "clean", "--set"])
        .arg(format!("input={}", data.display()))
        .arg("--warehouse")
        .arg(&wh)
        .assert()
        .success();
    assert!(wh.join("clean").is_dir());
    assert!(!wh.join("features").exists());
    zeekml()
        .args([
            "run",
            "pipelines/uwf_recon.toml",
            "--only",
            "labeled",
            "--warehouse",
        ])
        .arg(&wh)
        .assert()
        .success();
    // `labeled` is a view: nothing written, recorded as such.
    assert!(!wh.join("labeled").exists());
    assert!(!wh.join("features").exists());
    assert_eq!(
        scalar(&wh, "SELECT outputs FROM runs WHERE stage = 'labeled'"),
        "labeled (view)"
    );
    // `features` alone computes the view from `clean`.
    zeekml()
        .args([
            "run",
            "pipelines/uwf_recon.toml",
            "--only",
            "features",
            "--warehouse",
        ])
        .arg(&wh)
        .assert()
        .success();
    assert_eq!(scalar(&wh, "SELECT count(*) FROM features"), "3000");
    assert_eq!(
        scalar(&wh, "SELECT rows_in FROM runs WHERE stage = 'features'"),
        "3000"
    );
    // A stage whose input is missing fails with a clear message.
    let tmp2 = tempfile::tempdir().expect("tempdir");
    let out = zeekml()
        .args([
            "run",
            "pipelines/uwf_recon.toml",
            "--only",
            "features",
            "--warehouse",
        ])
        .arg(tmp2.path())
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("table 'clean' not found"), "{err}");
    assert_eq!(err.matches("not found").count(), 1, "{err}");
}

#[test]
fn sql_is_read_only_and_formats_output() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let wh = tmp.path().join("wh");
    zeekml()
        .args(["run", "pipelines/uwf_recon.toml", "--to", "raw", "--set"])
        .arg(format!(
            "input={}",
            realdata("uwf/UWF-ZeekData22_csv_EXCERPT_via_COMIDDS.csv").display()
        ))
        .arg("--warehouse")
        .arg(&wh)
        .assert()
        .success();
    let json = zeekml()
        .args([
            "sql",
            "SELECT uid, dest_port FROM raw LIMIT 1",
            "--format",
            "json",
            "--warehouse",
        ])
        .arg(&wh)
        .output()
        .expect("run");
    assert_eq!(
        String::from_utf8_lossy(&json.stdout).trim(),
        r#"{"uid":"CwO2bA321vyBxBjtxb","dest_port":53}"#
    );
    let table = zeekml()
        .args(["sql", "SELECT count(*) AS n FROM raw", "--warehouse"])
        .arg(&wh)
        .output()
        .expect("run");
    assert!(String::from_utf8_lossy(&table.stdout).contains("| 16 |"));
    for statement in [
        "DROP TABLE raw",
        "CREATE TABLE x AS SELECT 1",
        "INSERT INTO raw SELECT * FROM raw",
    ] {
        let out = zeekml()
            .args(["sql", statement, "--warehouse"])
            .arg(&wh)
            .output()
            .expect("run");
        assert!(!out.status.success(), "{statement} must be refused");
    }
    assert_eq!(scalar(&wh, "SELECT count(*) FROM raw"), "16");
}

#[test]
fn real_uwf_csv_excerpt_keeps_every_row_and_label() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let wh = tmp.path().join("wh");
    zeekml()
        .args([
            "run",
            "pipelines/uwf_recon.toml",
            "--to",
            "features",
            "--set",
        ])
        .arg(format!(
            "input={}",
            realdata("uwf/UWF-ZeekData22_csv_EXCERPT_via_COMIDDS.csv").display()
        ))
        .arg("--warehouse")
        .arg(&wh)
        .assert()
        .success();
    assert_eq!(
        scalar(&wh, "SELECT count(*) FROM features WHERE label = 1"),
        "16"
    );
    assert_eq!(
        scalar(&wh, "SELECT ts FROM raw LIMIT 1"),
        "1644465509.979958"
    );
    assert_eq!(
        scalar(&wh, "SELECT DISTINCT datetime FROM raw"),
        "2022-02-10T03:58:29.979Z"
    );
}

#[test]
fn real_uwf_parquet_release_maps_its_columns() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let wh = tmp.path().join("wh");
    let file = realdata(
        "uwf/UWF-ZeekDataSum25-1_parquet_2025-05-18_-_2025-05-25_part-00000-e1c83503-04fd-4fe4-bd2d-faeaad297203-c000.snappy.parquet",
    );
    zeekml()
        .args([
            "run",
            "pipelines/uwf_parquet.toml",
            "--to",
            "features",
            "--set",
        ])
        .arg(format!("input={}", file.display()))
        .arg("--warehouse")
        .arg(&wh)
        .assert()
        .success();
    assert_eq!(scalar(&wh, "SELECT count(*) FROM raw"), "49893");
    assert_eq!(scalar(&wh, "SELECT count(*) FROM features"), "49893");
    assert_eq!(
        scalar(&wh, "SELECT count(*) FROM features WHERE label = 0"),
        "49893"
    );
    assert_eq!(
        sql(
            &wh,
            "SELECT protocol, count(*) AS n FROM clean GROUP BY protocol ORDER BY n DESC"
        ),
        "protocol,n\nudp,49754\nicmp,138\ntcp,1\n"
    );
    assert_eq!(
        scalar(&wh, "SELECT count(*) FROM clean WHERE duration IS NULL"),
        "9217"
    );
    assert_eq!(
        scalar(&wh, "SELECT count(*) FROM clean WHERE src_ip IS NULL"),
        "0"
    );
    let _ = repo();
}

#[test]
fn logs_captured_by_a_scheduler_have_no_colour_codes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let input = realdata("uwf/UWF-ZeekData22_csv_EXCERPT_via_COMIDDS.csv");
    for format in ["text", "json"] {
        let out = zeekml()
            .env("ZEEKML_LOG", "info")
            .args(["--log-format", format, "run", "pipelines/uwf_recon.toml"])
            .args(["--to", "raw", "--set"])
            .arg(format!("input={}", input.display()))
            .arg("--warehouse")
            .arg(tmp.path().join(format))
            .output()
            .expect("run zeekml");
        assert!(out.status.success());
        let log = String::from_utf8_lossy(&out.stderr);
        assert!(log.contains("stage done"), "{log}");
        assert!(
            !log.contains('\u{1b}'),
            "escape codes in a captured log:\n{log}"
        );
        if format == "json" {
            for line in log.lines().filter(|l| l.starts_with('{')) {
                serde_json::from_str::<serde_json::Value>(line).expect("one JSON object a line");
            }
        }
    }
}

/// `zeekml run` of `pipeline` on `input` with `TMPDIR` set to `tmpdir`.
fn run_with_tmpdir(pipeline: &Path, input: &Path, warehouse: &Path, tmpdir: &Path) -> Output {
    run_command(pipeline, input, warehouse)
        .env("TMPDIR", tmpdir)
        .output()
        .expect("run zeekml")
}

#[test]
fn a_table_read_in_passes_trains_the_model_a_view_in_memory_does() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("uwf");
    generate(&data, 30_000, 11);
    let spill = tmp.path().join("spill");
    // What a run killed while training leaves: its process is gone (pids
    // stop at 4,194,304), so the next run removes it.
    let stale = spill.join("zeekml-train-4194999-a1b2c3");
    std::fs::create_dir_all(&stale).unwrap();
    std::fs::write(stale.join("matrix-0-00000"), b"partial").unwrap();
    // Another program's directory stays.
    let other = spill.join("zeekml-train-notes");
    std::fs::create_dir_all(&other).unwrap();
    let threshold = Some("{ rule = \"best_f1\" }");
    // `features` as a table (read file by file, the rows spilled to TMPDIR
    // in matrix order) and as a view (collected into memory).
    let files = uwf_pipeline(tmp.path(), threshold, "");
    let text = std::fs::read_to_string(&files).unwrap();
    let view_dir = tmp.path().join("view");
    std::fs::create_dir_all(&view_dir).unwrap();
    let view = view_dir.join("uwf_recon_view.toml");
    assert!(text.contains("features.sql\"\n"));
    std::fs::write(
        &view,
        text.replace("features.sql\"\n", "features.sql\"\nmaterialize = false\n"),
    )
    .unwrap();
    let (wh_files, wh_view) = (tmp.path().join("wh_files"), tmp.path().join("wh_view"));
    for (pipeline, wh) in [(&files, &wh_files), (&view, &wh_view)] {
        let out = run_with_tmpdir(pipeline, &data, wh, &spill);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(wh_files.join("features").is_dir());
    assert!(!wh_view.join("features").exists());
    let model = |wh: &Path| std::fs::read_to_string(wh.join("models/uwf_recon/model.txt")).unwrap();
    assert_eq!(model(&wh_files), model(&wh_view));
    let metrics = "SELECT split, rows, positives, roc_auc, pr_auc, f1, threshold, tp, fp FROM metrics ORDER BY split, data";
    assert_eq!(sql(&wh_files, metrics), sql(&wh_view, metrics));
    let scored = "SELECT uid, ts, split, side, score, predicted FROM scored ORDER BY uid, ts, split, side, score";
    let rows = sql(&wh_files, scored);
    assert_eq!(rows.lines().count(), 1 + 60_000);
    assert_eq!(rows, sql(&wh_view, scored));
    // The spilled matrix and LightGBM's binary datasets are gone, and so is
    // the stale run's directory.
    let left: Vec<String> = std::fs::read_dir(&spill)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, vec!["zeekml-train-notes".to_string()]);
}

#[test]
fn a_temporary_directory_that_cannot_be_written_is_named() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("uwf");
    generate(&data, 5_000, 3);
    let pipeline = uwf_pipeline(tmp.path(), Some("{ rule = \"best_f1\" }"), "");
    let missing = tmp.path().join("no-such-dir");
    let out = run_with_tmpdir(&pipeline, &data, &tmp.path().join("wh"), &missing);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "could not create a directory for the training matrix in {}",
            missing.display()
        )),
        "{stderr}"
    );
}
