//! Two runs on one warehouse: the second stops at once naming the first,
//! or waits for it; a killed run's lock does not outlive it. Each test runs
//! on a local warehouse and on an `s3://` one.

use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process, Stdio};
use std::time::{Duration, Instant};

use crate::{generate, repo, scalar, uwf_pipeline, zeekml};

/// `zeekml run PIPELINE --set input=DATA --warehouse WH`.
fn run_cmd(pipeline: &Path, data: &Path, wh: &Path) -> assert_cmd::Command {
    let mut cmd = zeekml();
    cmd.arg("run")
        .arg(pipeline)
        .arg("--set")
        .arg(format!("input={}", data.display()))
        .arg("--warehouse")
        .arg(wh);
    cmd
}

/// `zeekml run PIPELINE` on `data` into `wh` as a child process.
fn spawn_run(pipeline: &Path, data: &Path, wh: &Path) -> Child {
    Process::new(assert_cmd::cargo::cargo_bin("zeekml"))
        .current_dir(repo())
        .env("ZEEKML_LOG", "warn")
        .arg("run")
        .arg(pipeline)
        .arg("--set")
        .arg(format!("input={}", data.display()))
        .arg("--warehouse")
        .arg(wh)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn zeekml run")
}

/// A local warehouse under `dir` and one on the S3 test server.
fn warehouses(dir: &Path) -> Vec<PathBuf> {
    vec![
        dir.join("wh"),
        PathBuf::from(zeekml_testkit::s3().warehouse("locked")),
    ]
}

/// The directory holding a warehouse's lock: the warehouse itself, or for
/// one in object storage its local staging directory. Taken before any run
/// starts (opening a local warehouse for writing clears its staging).
fn lock_dir(wh: &Path) -> PathBuf {
    zeekml_pipeline::Warehouse::create(wh)
        .expect("warehouse")
        .root()
        .to_path_buf()
}

/// Waits until a run has written its description into the warehouse lock.
fn wait_for_holder(lock_dir: &Path) {
    let started = Instant::now();
    let lock = lock_dir.join(".lock");
    while std::fs::read_to_string(&lock).map_or(true, |t| t.is_empty()) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the run never took the lock"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_second_run_stops_naming_the_first_or_waits_for_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("uwf");
    generate(&data, 30_000, 3);
    let pipeline = uwf_pipeline(tmp.path(), Some("{ rule = \"best_f1\" }"), "");
    for wh in warehouses(tmp.path()) {
        second_run_stops_or_waits(&pipeline, &data, &wh);
    }
}

fn second_run_stops_or_waits(pipeline: &Path, data: &Path, wh: &Path) {
    let (pipeline, data, locks) = (pipeline.to_path_buf(), data.to_path_buf(), lock_dir(wh));
    let wh = wh.to_path_buf();
    let mut first = spawn_run(&pipeline, &data, &wh);
    wait_for_holder(&locks);
    let out = run_cmd(&pipeline, &data, &wh).output().expect("second run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("is being written by run ")
            && stderr.contains(&format!("(pid {}, started ", first.id())),
        "{stderr}"
    );
    assert!(first.wait().expect("first run").success());

    // Waiting instead: both runs complete, one after the other.
    let mut first = spawn_run(&pipeline, &data, &wh);
    wait_for_holder(&locks);
    run_cmd(&pipeline, &data, &wh)
        .args(["--wait-for-lock", "300"])
        .assert()
        .success();
    assert!(first.wait().expect("first run").success());
    assert_eq!(
        scalar(
            &wh,
            "SELECT count(DISTINCT run_id) FROM runs WHERE status = 'ok' AND stage = 'train'"
        ),
        "3"
    );
    assert_eq!(scalar(&wh, "SELECT count(*) FROM raw"), "30000");
}

#[test]
fn a_killed_run_leaves_no_lock_and_its_tables_readable() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("uwf");
    generate(&data, 30_000, 4);
    let pipeline = uwf_pipeline(tmp.path(), Some("{ rule = \"best_f1\" }"), "");
    for wh in warehouses(tmp.path()) {
        killed_run_leaves_tables_readable(&pipeline, &data, &wh);
    }
}

fn killed_run_leaves_tables_readable(pipeline: &Path, data: &Path, wh: &Path) {
    let (pipeline, data, locks) = (pipeline.to_path_buf(), data.to_path_buf(), lock_dir(wh));
    let wh = wh.to_path_buf();
    run_cmd(&pipeline, &data, &wh).assert().success();

    let mut victim = spawn_run(&pipeline, &data, &wh);
    wait_for_holder(&locks);
    victim.kill().expect("kill -9");
    victim.wait().expect("reaped");
    // The earlier run's tables are whole.
    assert_eq!(scalar(&wh, "SELECT count(*) FROM features"), "30000");

    let out = run_cmd(&pipeline, &data, &wh).output().expect("rerun");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("the previous run ended without releasing the warehouse lock"),
        "{stderr}"
    );
    assert!(stderr.contains(&format!("pid={}", victim.id())), "{stderr}");
    assert_eq!(scalar(&wh, "SELECT count(*) FROM raw"), "30000");
}
