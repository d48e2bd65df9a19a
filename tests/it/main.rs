//! End-to-end tests: the real `zeekml` binary on generated data and on the
//! real files in ../shared/realdata.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod bad_input;
mod concurrency;
mod evaluation;
mod explain;
mod generate_tsv;
mod pipeline;
mod report;
mod s3;
mod score;

use std::path::{Path, PathBuf};

use assert_cmd::Command;

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A real-data file from ../shared/realdata.
pub fn realdata(rel: &str) -> PathBuf {
    repo().join("../shared/realdata").join(rel)
}

/// The binary, run from the repository root.
pub fn zeekml() -> Command {
    let mut cmd = Command::cargo_bin("zeekml").expect("zeekml binary");
    cmd.current_dir(repo()).env("ZEEKML_LOG", "warn");
    cmd
}

/// `zeekml run PIPELINE --set input=INPUT --warehouse WH`, not yet run.
pub fn run_command(pipeline: &Path, input: &Path, warehouse: &Path) -> Command {
    let mut cmd = zeekml();
    cmd.arg("run")
        .arg(pipeline)
        .arg("--set")
        .arg(format!("input={}", input.display()))
        .arg("--warehouse")
        .arg(warehouse);
    cmd
}

/// [`run_command`], which must succeed.
pub fn run_with_input(pipeline: &Path, input: &Path, warehouse: &Path) {
    run_command(pipeline, input, warehouse).assert().success();
}

/// The NjRAT capture as the day 2017-03-08 under `dir/logs`, scored into
/// `warehouse` (which must hold a trained model) by
/// `pipelines/zeek_score.toml` and run through `pipelines/beacon.toml`.
pub fn score_njrat_day(dir: &Path, warehouse: &Path) {
    let day = dir.join("logs/2017-03-08");
    std::fs::create_dir_all(&day).expect("mkdir");
    std::fs::copy(
        realdata("stratosphere-labeled-tsv/001-zeek-scenario-malicious.labeled-conn.log"),
        day.join("conn.log"),
    )
    .expect("copy");
    zeekml()
        .args(["run", "pipelines/zeek_score.toml", "--set"])
        .arg(format!("logs={}", dir.join("logs").display()))
        .args(["--set", "date=2017-03-08", "--warehouse"])
        .arg(warehouse)
        .assert()
        .success();
    run_with_input(Path::new("pipelines/beacon.toml"), &day, warehouse);
}

/// The data files of a warehouse table's latest Delta version, as delta-rs
/// (not zeekml) reads its log, sorted; only those under `partition`
/// (`date=2024-05-03`) when it is not empty.
pub fn delta_files(table: &Path, partition: &str) -> Vec<PathBuf> {
    let url = url::Url::from_directory_path(table).expect("absolute table path");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let table = runtime
        .block_on(deltalake::open_table(url))
        .expect("a Delta table");
    let mut files: Vec<PathBuf> = table
        .get_file_uris()
        .expect("files")
        .map(|uri| {
            url::Url::parse(&uri)
                .ok()
                .and_then(|u| u.to_file_path().ok())
                .unwrap_or_else(|| PathBuf::from(uri))
        })
        .filter(|p| {
            partition.is_empty()
                || p.parent()
                    .and_then(|d| d.file_name())
                    .is_some_and(|d| d == partition)
        })
        .collect();
    files.sort();
    files
}

/// Runs a query and returns its CSV output.
pub fn sql(warehouse: &Path, query: &str) -> String {
    let out = zeekml()
        .args(["sql", query, "--format", "csv", "--warehouse"])
        .arg(warehouse)
        .output()
        .expect("run zeekml sql");
    assert!(
        out.status.success(),
        "query failed: {query}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The single value of a one-row, one-column query.
pub fn scalar(warehouse: &Path, query: &str) -> String {
    let out = sql(warehouse, query);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "expected one row from {query}, got:\n{out}");
    lines[1].to_string()
}

/// `pipelines/uwf_recon.toml` written into `dir` with its SQL paths made
/// absolute, its threshold setting replaced when `threshold` is given, and
/// `extra` appended. Small training sets cannot hold the default 1e-4
/// false-positive budget (it needs 10,000 benign validation rows).
pub fn uwf_pipeline(dir: &Path, threshold: Option<&str>, extra: &str) -> PathBuf {
    let text = std::fs::read_to_string(repo().join("pipelines/uwf_recon.toml")).unwrap();
    let sql_dir = repo().join("sql");
    let mut text = text.replace("\"../sql/", &format!("\"{}/", sql_dir.display()));
    if let Some(t) = threshold {
        let default = "threshold = { rule = \"max_fpr\", value = 1e-4 }";
        assert!(
            text.contains(default),
            "the pipeline's threshold line moved"
        );
        text = text.replace(default, &format!("threshold = {t}"));
    }
    let path = dir.join("uwf_recon_test.toml");
    std::fs::write(&path, format!("{text}\n{extra}")).unwrap();
    path
}

/// Generates a small UWF-shaped data set of the default (campus) profile.
pub fn generate(dir: &Path, rows: u64, seed: u64) {
    generate_profile(dir, rows, seed, "campus");
}

/// Generates a small UWF-shaped data set of a traffic profile into `dir`.
pub fn generate_profile(dir: &Path, rows: u64, seed: u64, profile: &str) {
    zeekml()
        .args(["generate", "--rows", &rows.to_string()])
        .args(["--seed", &seed.to_string(), "--profile", profile, "--out"])
        .arg(dir)
        .assert()
        .success();
}
