//! Every real Zeek log under `shared/realdata`, with exact counts.

use zeekml_formats::{read_zeek, ZeekRead};

use crate::{bools, counts, fail, floats, ints, label_counts, nulls, real, strings};

async fn read(rel: &str) -> ZeekRead {
    read_zeek(&real(rel), &fail())
        .await
        .expect("read real file")
}

fn sum(values: Vec<Option<i64>>) -> i64 {
    values.into_iter().flatten().sum()
}

#[tokio::test]
async fn stratosphere_001_labeled() {
    let r = read("stratosphere-labeled-tsv/001-zeek-scenario-malicious.labeled-conn.log").await;
    assert_eq!((r.files, r.rows), (1, 992));
    assert!(r.rejects.is_empty());
    assert_eq!(
        label_counts(&r),
        counts(&[
            ("Background|(empty)", 739),
            ("Malicious|CC", 244),
            ("Benign|Google", 9),
        ])
    );
    // First data row, line 9 after the 8 header lines; ts is relative.
    assert_eq!(floats(&r, "ts")[0], Some(19.981745));
    assert_eq!(strings(&r, "uid")[0].as_deref(), Some("C91Ycq25p2quMWzEMk"));
    assert_eq!(
        strings(&r, "src_ip")[0].as_deref(),
        Some("fd2d:ab8c:225:0:81d3:fd3e:7f62:aec8")
    );
    assert_eq!(ints(&r, "src_port")[0], Some(56464));
    assert_eq!(ints(&r, "dest_port")[0], Some(53));
    assert_eq!(strings(&r, "protocol")[0].as_deref(), Some("udp"));
    assert_eq!(floats(&r, "duration")[0], Some(0.136721));
    assert_eq!(bools(&r, "local_orig")[0], Some(false));
    assert_eq!(strings(&r, "tunnel_parents")[0].as_deref(), Some(""));
    assert_eq!(ints(&r, "source_line")[0], Some(9));
    assert_eq!(ints(&r, "source_line")[991], Some(1000));
    let file = strings(&r, "source_file")[0].clone().unwrap_or_default();
    assert!(
        file.ends_with("/shared/realdata/stratosphere-labeled-tsv/001-zeek-scenario-malicious.labeled-conn.log")
            && !file.contains(".."),
        "{file}"
    );
    assert_eq!(nulls(&r, "duration"), 405);
    assert_eq!(sum(ints(&r, "orig_pkts")), 1898);
    assert_eq!(
        bools(&r, "local_orig")
            .iter()
            .filter(|v| **v == Some(true))
            .count(),
        331
    );
    assert_eq!(nulls(&r, "community_id"), 992);
}

#[tokio::test]
async fn stratosphere_008_labeled() {
    let r = read("stratosphere-labeled-tsv/008-zeek-mixed.conn.log.labeled").await;
    assert_eq!(r.rows, 5663);
    assert_eq!(
        label_counts(&r),
        counts(&[
            ("Malicious|External-Attack-to-Device", 4201),
            ("Benign|Microsoft", 652),
            ("Benign|ESET", 604),
            ("Benign|Dropbox", 135),
            ("Background|(empty)", 60),
            ("Benign|Cert-Validation", 11),
        ])
    );
    assert_eq!(nulls(&r, "duration"), 155);
    assert_eq!(sum(ints(&r, "orig_pkts")), 35935);
}

#[tokio::test]
async fn stratosphere_010_labeled() {
    let r = read("stratosphere-labeled-tsv/010-zeek-mixed.conn.log.labeled").await;
    assert_eq!(r.rows, 5347);
    assert_eq!(
        label_counts(&r),
        counts(&[
            ("Malicious|External-Attack-to-Device", 3373),
            ("Benign|(empty)", 1689),
            ("Benign|Microsoft", 245),
            ("Background|(empty)", 37),
            ("Benign|Cert-Validation", 3),
        ])
    );
    assert_eq!(nulls(&r, "duration"), 215);
    assert_eq!(sum(ints(&r, "orig_pkts")), 888_443);
}

#[tokio::test]
async fn stratosphere_011_labeled() {
    let r = read("stratosphere-labeled-tsv/011-zeek-mixed.conn.log.labeled").await;
    assert_eq!(r.rows, 9048);
    assert_eq!(
        label_counts(&r),
        counts(&[
            ("Benign|(empty)", 4652),
            ("Malicious|External-Attack-to-Device", 3951),
            ("Background|(empty)", 326),
            ("Benign|Microsoft", 111),
            ("Benign|Cert-Validation", 8),
        ])
    );
    assert_eq!(nulls(&r, "duration"), 167);
    assert_eq!(sum(ints(&r, "orig_pkts")), 939_909);
}

#[tokio::test]
async fn stratosphere_012_labeled() {
    let r = read("stratosphere-labeled-tsv/012-zeek-mixed.conn.log.labeled").await;
    assert_eq!(r.rows, 4740);
    assert_eq!(
        label_counts(&r),
        counts(&[
            ("Malicious|External-Attack-to-Device", 3028),
            ("Background|(empty)", 930),
            ("Benign|(empty)", 689),
            ("Benign|Microsoft", 93),
        ])
    );
    assert_eq!(nulls(&r, "duration"), 79);
    assert_eq!(sum(ints(&r, "orig_pkts")), 179_605);
}

#[tokio::test]
async fn stratosphere_003_unlabeled_with_unset_booleans() {
    let r = read("stratosphere-unlabeled-tsv/003-zeek-scenario-malicious.conn.log").await;
    assert_eq!(r.rows, 361);
    assert_eq!(nulls(&r, "local_orig"), 361);
    assert_eq!(nulls(&r, "local_resp"), 361);
    // `-` is unset, not an empty set.
    assert_eq!(nulls(&r, "tunnel_parents"), 361);
    assert_eq!(nulls(&r, "label_text"), 361);
    assert_eq!(nulls(&r, "duration"), 11);
    assert_eq!(sum(ints(&r, "orig_pkts")), 45031);
    assert_eq!(floats(&r, "ts")[0], Some(1_596_790_164.509_987));
}

#[tokio::test]
async fn stratosphere_005_unlabeled() {
    let r = read("stratosphere-unlabeled-tsv/005-zeek-scenario-malicious.conn.log").await;
    assert_eq!(r.rows, 992);
    assert_eq!(nulls(&r, "duration"), 148);
    assert_eq!(sum(ints(&r, "orig_pkts")), 2331);
    assert_eq!(
        bools(&r, "local_orig")
            .iter()
            .filter(|v| **v == Some(true))
            .count(),
        289
    );
    assert_eq!(floats(&r, "ts")[0], Some(13.184015));
}

#[tokio::test]
async fn stratosphere_006_with_close_line() {
    let r = read("stratosphere-unlabeled-tsv/006-zeek-scenario-ssh.conn.log").await;
    assert_eq!(r.rows, 18);
    assert_eq!(nulls(&r, "duration"), 4);
    assert_eq!(sum(ints(&r, "orig_pkts")), 5942);
    assert_eq!(ints(&r, "dest_port").last().copied().flatten(), Some(902));
}

#[tokio::test]
async fn rita_json() {
    let r = read("rita-json/conn.log").await;
    assert_eq!((r.files, r.rows), (1, 29));
    assert_eq!(floats(&r, "ts")[0], Some(1_517_422_326.539_915));
    assert_eq!(strings(&r, "src_ip")[0].as_deref(), Some("10.55.100.100"));
    assert_eq!(ints(&r, "dest_port")[0], Some(80));
    assert_eq!(bools(&r, "local_orig")[0], Some(true));
    assert_eq!(bools(&r, "local_resp")[0], Some(false));
    assert_eq!(ints(&r, "missed_bytes")[0], Some(20));
    assert_eq!(sum(ints(&r, "orig_pkts")), 406);
    assert_eq!(sum(ints(&r, "resp_bytes")), 265_950);
    assert_eq!(nulls(&r, "service"), 1);
    assert_eq!(nulls(&r, "tunnel_parents"), 29);
    assert_eq!(ints(&r, "source_line")[28], Some(29));
}

#[tokio::test]
async fn stratosphere_json_port_scan() {
    let r = read("stratosphere-json-portscan/002-zeek-scenario-port-scanning.conn.log").await;
    assert_eq!(r.rows, 4504);
    for col in ["duration", "orig_bytes", "resp_bytes"] {
        assert_eq!(nulls(&r, col), 2698, "{col}");
    }
    assert_eq!(nulls(&r, "service"), 4496);
    assert_eq!(nulls(&r, "history"), 383);
    assert_eq!(nulls(&r, "tunnel_parents"), 4504);
    assert!(strings(&r, "src_ip")
        .iter()
        .all(|ip| ip.as_deref() == Some("172.16.1.11")));
    assert_eq!(sum(ints(&r, "orig_pkts")), 4703);
    assert_eq!(sum(ints(&r, "resp_bytes")), 14616);
    let states = strings(&r, "conn_state");
    let s0 = states.iter().filter(|s| s.as_deref() == Some("S0")).count();
    let rej = states
        .iter()
        .filter(|s| s.as_deref() == Some("REJ"))
        .count();
    assert_eq!((s0, rej), (2409, 1273));
}

#[tokio::test]
async fn glob_over_all_labeled_files() {
    let r = read_zeek(&real("stratosphere-labeled-tsv/*labeled*"), &fail())
        .await
        .expect("glob read");
    assert_eq!(r.files, 5);
    assert_eq!(r.rows, 992 + 5663 + 5347 + 9048 + 4740);
    // File order is path order: 001 first, 012 last.
    let files = strings(&r, "source_file");
    assert!(files[0]
        .as_deref()
        .unwrap_or_default()
        .ends_with("001-zeek-scenario-malicious.labeled-conn.log"));
    assert!(files[files.len() - 1]
        .as_deref()
        .unwrap_or_default()
        .ends_with("012-zeek-mixed.conn.log.labeled"));
}
