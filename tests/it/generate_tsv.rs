//! `zeekml generate --format zeek-tsv`: native conn logs that the project's
//! own Zeek reader takes back row for row.

use std::fs;

use datafusion::arrow::array::{Array, BooleanArray, Float64Array, Int64Array, StringArray};
use datafusion::arrow::record_batch::RecordBatch;
use predicates::str::contains;
use zeekml_formats::{read_zeek, ZeekReadOptions};

use crate::zeekml;

/// The header block a Zeek sensor writes, spelled out independently of the
/// generator's constants.
const HEADER: [&str; 8] = [
    "#separator \\x09",
    "#set_separator\t,",
    "#empty_field\t(empty)",
    "#unset_field\t-",
    "#path\tconn",
    "#open\t2022-02-07-00-00-00",
    "#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tservice\tduration\torig_bytes\tresp_bytes\tconn_state\tlocal_orig\tlocal_resp\tmissed_bytes\thistory\torig_pkts\torig_ip_bytes\tresp_pkts\tresp_ip_bytes\ttunnel_parents",
    "#types\ttime\tstring\taddr\tport\taddr\tport\tenum\tstring\tinterval\tcount\tcount\tstring\tbool\tbool\tcount\tstring\tcount\tcount\tcount\tcount\tset[string]",
];

fn column<'a, T: 'static>(batch: &'a RecordBatch, name: &str) -> &'a T {
    batch
        .column_by_name(name)
        .unwrap_or_else(|| panic!("column {name}"))
        .as_any()
        .downcast_ref::<T>()
        .unwrap_or_else(|| panic!("type of {name}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn generated_zeek_tsv_reads_back_with_the_zeek_reader() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("zeek");
    zeekml()
        .args([
            "generate", "--rows", "5000", "--seed", "5", "--format", "zeek-tsv", "--out",
        ])
        .arg(&dir)
        .assert()
        .success()
        .stdout(contains("wrote 5000 rows in 5 Zeek TSV"));

    let mut names: Vec<String> = fs::read_dir(&dir)
        .expect("ls")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "conn-00000.log",
            "conn-00001.log",
            "conn-00002.log",
            "conn-00003.log",
            "conn-00004.log"
        ]
    );

    // Data lines of every file, in file order (the reader's order too).
    let mut lines: Vec<Vec<String>> = Vec::new();
    for name in &names {
        let text = fs::read_to_string(dir.join(name)).expect("read");
        let all: Vec<&str> = text.lines().collect();
        assert_eq!(&all[..8], HEADER, "{name}");
        assert_eq!(all.last(), Some(&"#close\t2022-02-21-00-00-00"), "{name}");
        lines.extend(
            all[8..all.len() - 1]
                .iter()
                .map(|l| l.split('\t').map(str::to_owned).collect()),
        );
    }
    assert_eq!(lines.len(), 5000);

    let location = dir.to_str().expect("utf-8 path");
    let read = read_zeek(location, &ZeekReadOptions::default())
        .await
        .expect("read_zeek");
    assert_eq!((read.rows, read.files), (5000, 5));
    assert!(read.rejects.is_empty(), "{:?}", read.rejects.first());

    let mut i = 0;
    let (mut null_durations, mut multi_service) = (0, 0);
    for batch in &read.batches {
        let ts = column::<Float64Array>(batch, "ts");
        let uid = column::<StringArray>(batch, "uid");
        let dest_port = column::<Int64Array>(batch, "dest_port");
        let duration = column::<Float64Array>(batch, "duration");
        let orig_bytes = column::<Int64Array>(batch, "orig_bytes");
        let service = column::<StringArray>(batch, "service");
        let local_orig = column::<BooleanArray>(batch, "local_orig");
        let local_resp = column::<BooleanArray>(batch, "local_resp");
        let tunnel = column::<StringArray>(batch, "tunnel_parents");
        let label = column::<StringArray>(batch, "label_text");
        for r in 0..batch.num_rows() {
            let cells = &lines[i];
            assert_eq!(Some(ts.value(r)), cells[0].parse().ok(), "row {i}");
            assert_eq!(uid.value(r), cells[1]);
            assert_eq!(Some(dest_port.value(r)), cells[5].parse().ok(), "row {i}");
            if cells[8] == "-" {
                assert!(duration.is_null(r) && orig_bytes.is_null(r), "row {i}");
                null_durations += 1;
            } else {
                assert_eq!(Some(duration.value(r)), cells[8].parse().ok(), "row {i}");
                assert_eq!(Some(orig_bytes.value(r)), cells[9].parse().ok(), "row {i}");
            }
            if cells[7] == "-" {
                assert!(service.is_null(r));
            } else {
                assert_eq!(service.value(r), cells[7]);
                multi_service += usize::from(cells[7].contains(','));
            }
            assert!(!local_orig.is_null(r) && !local_orig.value(r), "row {i}");
            assert!(!local_resp.is_null(r) && !local_resp.value(r), "row {i}");
            // `(empty)` is an empty set, not unset; no labels in a conn log.
            assert!(tunnel.is_valid(r) && tunnel.value(r).is_empty(), "row {i}");
            assert!(label.is_null(r));
            i += 1;
        }
    }
    assert_eq!(i, 5000);
    assert!(null_durations > 50, "{null_durations} unset durations");
    assert!(multi_service > 0, "no multi-value service seen");
}

#[test]
fn generate_rejects_an_unknown_format() {
    let tmp = tempfile::tempdir().expect("tempdir");
    zeekml()
        .args(["generate", "--rows", "10", "--format", "json", "--out"])
        .arg(tmp.path())
        .assert()
        .failure()
        .stderr(contains("zeek-tsv"));
}
