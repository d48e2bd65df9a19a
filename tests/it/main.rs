//! End-to-end tests: the real `zeekml` binary on generated data and on the
//! real files in ../shared/realdata.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod bad_input;
mod generate_tsv;
mod pipeline;
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

/// Generates a small UWF-shaped data set into `dir`.
pub fn generate(dir: &Path, rows: u64, seed: u64) {
    zeekml()
        .args([
            "generate",
            "--rows",
            &rows.to_string(),
            "--seed",
            &seed.to_string(),
            "--out",
        ])
        .arg(dir)
        .assert()
        .success();
}
