//! Bad input: a clear message naming the file (and line), a non-zero exit,
//! no panic, and no partial table left visible.

use std::path::Path;

use crate::{realdata, scalar, zeekml};

const HEADER: &str = "resp_pkts,service,orig_ip_bytes,local_resp,missed_bytes,protocol,duration,conn_state,dest_ip,orig_pkts,community_id,resp_ip_bytes,dest_port,orig_bytes,local_orig,datetime,history,resp_bytes,uid,src_port,ts,src_ip,mitre_attack_tactics";
const ROW: &str = "2,dns,186,false,0,udp,0.002279996871948242,SF,143.88.5.1,2,1:Z2qpnUv+rxq4N1rn7Go962U/gi8=,186,53,130,false,2022-02-10T03:58:29.979Z,Dd,130,CwO2bA321vyBxBjtxb,36073,1.644465509979958E9,143.88.5.12,Reconnaissance";

/// Runs the raw stage on `input` into a warehouse that already holds a good
/// `raw` table; returns stderr after checking the failure contract.
fn fails_cleanly(input: &Path, wh: &Path, expected: &[&str]) -> String {
    let out = zeekml()
        .args(["run", "pipelines/uwf_recon.toml", "--only", "raw", "--set"])
        .arg(format!("input={}", input.display()))
        .arg("--warehouse")
        .arg(wh)
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "must fail: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(err.matches("error:").count(), 1, "one message: {err}");
    for e in expected {
        assert!(err.contains(e), "'{e}' missing from: {err}");
    }
    // The earlier committed table is intact and nothing half-written shows.
    assert_eq!(scalar(wh, "SELECT count(*) FROM raw"), "16");
    assert!(
        !wh.join(".staging").exists()
            || std::fs::read_dir(wh.join(".staging"))
                .map(|d| d.count())
                .unwrap_or(0)
                == 0
    );
    err
}

fn warehouse_with_raw(dir: &Path) -> std::path::PathBuf {
    let wh = dir.join("wh");
    zeekml()
        .args(["run", "pipelines/uwf_recon.toml", "--only", "raw", "--set"])
        .arg(format!(
            "input={}",
            realdata("uwf/UWF-ZeekData22_csv_EXCERPT_via_COMIDDS.csv").display()
        ))
        .arg("--warehouse")
        .arg(&wh)
        .assert()
        .success();
    wh
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write");
    p
}

#[test]
fn empty_header_only_renamed_and_missing_inputs() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let wh = warehouse_with_raw(tmp.path());
    let empty = write(tmp.path(), "empty.csv", "");
    fails_cleanly(&empty, &wh, &["empty.csv", "empty file"]);
    let header_only = write(tmp.path(), "header.csv", &format!("{HEADER}\n"));
    fails_cleanly(&header_only, &wh, &["header.csv", "no data rows"]);
    let renamed = write(
        tmp.path(),
        "renamed.csv",
        &format!("{}\n{ROW}\n", HEADER.replace("dest_port", "dst_port")),
    );
    fails_cleanly(
        &renamed,
        &wh,
        &["renamed.csv", "missing column 'dest_port'"],
    );
    fails_cleanly(&tmp.path().join("nope"), &wh, &["nope"]);
}

#[test]
fn bad_cells_and_truncated_rows_name_file_and_line() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let wh = warehouse_with_raw(tmp.path());
    let text_in_number = write(
        tmp.path(),
        "text.csv",
        &format!(
            "{HEADER}\n{ROW}\n{}\n{ROW}\n",
            ROW.replace(",36073,", ",http,")
        ),
    );
    fails_cleanly(
        &text_in_number,
        &wh,
        &["text.csv:3", "column 'src_port'", "'http'"],
    );
    let truncated = write(
        tmp.path(),
        "trunc.csv",
        &format!("{HEADER}\n{ROW}\n{ROW}\n{}", &ROW[..40]),
    );
    fails_cleanly(
        &truncated,
        &wh,
        &["trunc.csv:4", "expected 23 fields, found"],
    );
}

#[test]
fn reject_mode_sets_bad_rows_aside_with_reasons() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("in");
    std::fs::create_dir_all(&data).expect("mkdir");
    write(
        &data,
        "part-1.csv",
        &format!(
            "{HEADER}\n{ROW}\n{}\n{ROW}\n{}",
            ROW.replace(",53,", ",dns,"),
            &ROW[..30]
        ),
    );
    let pipeline = write(
        tmp.path(),
        "reject.toml",
        r#"
name = "reject"
[params]
input = "x"
[[stages]]
name = "raw"
kind = "ingest"
format = "csv"
input = "${input}"
on_bad_rows = "reject"
columns = { label_text = "mitre_attack_tactics" }
"#,
    );
    let wh = tmp.path().join("wh");
    crate::run_with_input(&pipeline, &data, &wh);
    assert_eq!(scalar(&wh, "SELECT count(*) FROM raw"), "2");
    let rejects = crate::sql(&wh, "SELECT line, reason FROM rejects ORDER BY line");
    assert!(
        rejects.contains("3,column 'dest_port': cannot read 'dns' as an integer"),
        "{rejects}"
    );
    assert!(
        rejects.contains("5,\"expected 23 fields, found 7"),
        "{rejects}"
    );
    assert_eq!(
        scalar(
            &wh,
            "SELECT rows_in || '/' || rows_out || '/' || rows_rejected FROM runs"
        ),
        "4/2/2"
    );
}

/// An object store URL as the warehouse is refused, naming it, instead of
/// being taken as a local directory called `s3:`.
#[test]
fn an_unsupported_object_store_warehouse_is_refused_not_made_a_local_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let pipeline = crate::repo().join("pipelines/beacon.toml");
    let pipeline = pipeline.to_str().unwrap();
    for args in [
        vec!["run", pipeline, "--warehouse", "gs://zeekml/wh"],
        vec!["sql", "SELECT 1", "--warehouse", "gs://zeekml/wh"],
    ] {
        let out = crate::zeekml()
            .current_dir(tmp.path())
            .args(&args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{stderr}");
        assert!(
            stderr.contains(
                "warehouse gs://zeekml/wh: gs:// warehouses are not supported; give a local directory or an s3:// URL"
            ),
            "{stderr}"
        );
        assert!(!tmp.path().join("gs:").exists());
    }
}
