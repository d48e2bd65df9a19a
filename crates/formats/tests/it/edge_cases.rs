//! Hand-made and damaged inputs: gzip, bad rows, odd headers, JSON variants.

use std::io::Write;

use flate2::write::GzEncoder;
use flate2::Compression;
use zeekml_formats::{
    read_zeek, read_zeek_bytes, rejects_schema, rejects_to_batch, Rejected, ZeekReadOptions,
};

use crate::{
    bools, counts, fail, floats, ints, label_counts, nulls, read_text, real, reject, strings,
    tsv_header, CONN_FIELDS, ROW,
};

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    enc.write_all(bytes).expect("gzip write");
    enc.finish().expect("gzip finish")
}

const LABELED_011: &str = "stratosphere-labeled-tsv/011-zeek-mixed.conn.log.labeled";

#[tokio::test]
async fn gzip_round_trip_of_a_real_file() {
    let plain = std::fs::read(real(LABELED_011)).expect("read 011");
    let dir = tempfile::tempdir().expect("tempdir");
    let gz_path = dir.path().join("conn.00:00:00-01:00:00.log.gz");
    std::fs::write(&gz_path, gzip(&plain)).expect("write gz");

    let from_gz = read_zeek(gz_path.to_str().expect("utf8"), &fail())
        .await
        .expect("read gz");
    let from_plain = read_zeek(&real(LABELED_011), &fail())
        .await
        .expect("read plain");
    assert_eq!(from_gz.rows, 9048);
    assert_eq!(label_counts(&from_gz), label_counts(&from_plain));
    assert_eq!(ints(&from_gz, "orig_pkts"), ints(&from_plain, "orig_pkts"));
    assert_eq!(strings(&from_gz, "uid"), strings(&from_plain, "uid"));

    // Detected from the magic bytes when the name does not say .gz, and
    // concatenated gzip members (as `cat a.gz b.gz`) read as one stream.
    let mut two_members = gzip(&plain);
    two_members.extend(gzip(b"#close\t2022-06-17-00-00-07\n"));
    let r = read_zeek_bytes("rotated-conn.log", &two_members, &fail()).expect("magic");
    assert_eq!(r.rows, 9048);
}

#[test]
fn truncated_gzip_is_an_error_naming_the_file() {
    let plain = std::fs::read(real(LABELED_011)).expect("read 011");
    let gz = gzip(&plain);
    let cut = &gz[..gz.len() / 2];
    let err = read_zeek_bytes("/logs/conn.log.gz", cut, &fail()).expect_err("truncated");
    let text = err.to_string();
    assert!(
        text.starts_with("/logs/conn.log.gz: cannot decompress gzip (truncated or corrupt)"),
        "{text}"
    );
    // A .gz name on bytes that are not gzip is an error too.
    let err = read_zeek_bytes("conn.log.gz", b"#fields\tts\n", &fail()).expect_err("not gzip");
    assert!(
        err.to_string()
            .starts_with("conn.log.gz: cannot decompress gzip"),
        "{err}"
    );
}

fn short_row_log() -> String {
    let short = ROW.rsplit_once('\t').expect("tab").0;
    format!("{}{ROW}\n{short}\n{ROW}\n", tsv_header(CONN_FIELDS))
}

#[test]
fn wrong_field_count_fails_with_file_and_line() {
    let err = read_text("conn.log", &short_row_log()).expect_err("short row");
    assert_eq!(err.to_string(), "conn.log:10: expected 21 fields, found 20");
}

#[test]
fn wrong_field_count_is_rejected_and_reading_continues() {
    let log = short_row_log();
    let r = read_zeek_bytes("conn.log", log.as_bytes(), &reject()).expect("reject mode");
    assert_eq!(r.rows, 2);
    assert_eq!(ints(&r, "source_line"), vec![Some(9), Some(11)]);
    let short = ROW.rsplit_once('\t').expect("tab").0;
    assert_eq!(
        r.rejects,
        vec![Rejected {
            file: "conn.log".to_string(),
            line: 10,
            reason: "expected 21 fields, found 20".to_string(),
            text: short.to_string(),
        }]
    );
    let batch = rejects_to_batch(&r.rejects).expect("rejects batch");
    assert_eq!(batch.schema(), rejects_schema());
    assert_eq!(batch.num_rows(), 1);
}

#[test]
fn non_numeric_port_is_a_bad_row() {
    let bad = ROW.replacen("\t443\t", "\thttps\t", 1);
    let log = format!("{}{ROW}\n{bad}\n", tsv_header(CONN_FIELDS));
    let err = read_text("conn.log", &log).expect_err("bad port");
    assert_eq!(
        err.to_string(),
        "conn.log:10: id.resp_p: expected a non-negative integer, found \"https\""
    );
    let r = read_zeek_bytes("conn.log", log.as_bytes(), &reject()).expect("reject");
    assert_eq!(r.rows, 1);
    assert_eq!(
        r.rejects[0].reason,
        "id.resp_p: expected a non-negative integer, found \"https\""
    );
    // A count that is a float, and a NaN duration, are bad rows too.
    let bad = ROW.replacen("\t1596\t", "\t15.5\t", 1);
    let log = format!("{}{bad}\n", tsv_header(CONN_FIELDS));
    let err = read_text("conn.log", &log).expect_err("float count");
    assert_eq!(
        err.to_string(),
        "conn.log:9: orig_bytes: expected a non-negative integer, found \"15.5\""
    );
    let bad = ROW.replacen("\t1.135424\t", "\tnan\t", 1);
    let log = format!("{}{bad}\n", tsv_header(CONN_FIELDS));
    let err = read_text("conn.log", &log).expect_err("nan");
    assert_eq!(
        err.to_string(),
        "conn.log:9: duration: expected a finite number, found \"nan\""
    );
}

#[test]
fn data_before_fields_is_a_bad_row() {
    let log = format!("#separator \\x09\n#path\tconn\n{ROW}\n");
    let err = read_text("conn.log", &log).expect_err("no #fields");
    assert_eq!(
        err.to_string(),
        "conn.log:3: data row before any #fields header"
    );
    let r = read_zeek_bytes("conn.log", log.as_bytes(), &reject()).expect("reject");
    assert_eq!((r.rows, r.rejects.len()), (0, 1));
}

#[test]
fn empty_and_header_only_files() {
    let err = read_text("conn.log", "").expect_err("0 bytes");
    assert_eq!(err.to_string(), "conn.log: empty file");
    let err = read_text("conn.log", "\n \n").expect_err("blank");
    assert_eq!(err.to_string(), "conn.log: empty file");

    let header_only = format!("{}#close\t2024-01-01-01-00-00\n", tsv_header(CONN_FIELDS));
    let r = read_text("conn.log", &header_only).expect("header only");
    assert_eq!((r.files, r.rows, r.batches.len()), (1, 0, 0));

    let err = read_text("conn.csv", "ts,uid\n").expect_err("csv");
    assert!(
        err.to_string().starts_with("conn.csv: not a Zeek log"),
        "{err}"
    );
}

#[test]
fn other_log_paths_are_refused() {
    let log = "#separator \\x09\n#path\tdns\n#fields\tts\tuid\n1.0\tCx\n";
    let err = read_text("dns.log", log).expect_err("dns log");
    assert_eq!(
        err.to_string(),
        "dns.log:2: bad header: #path is \"dns\", not a conn log"
    );
}

#[test]
fn iot23_combined_label_column() {
    let mut fields = CONN_FIELDS[..20].to_vec();
    fields.push("tunnel_parents   label   detailed-label");
    let header = tsv_header(&fields);
    let base = ROW.rsplit_once('\t').expect("tab").0;
    let log = format!(
        "{header}{base}\t-   Malicious   PartOfAHorizontalPortScan\n{base}\t(empty)   Benign   -\n{base}\t-   Benign\n"
    );
    let err = read_text("iot23.log", &log).expect_err("2 of 3 values");
    assert_eq!(
        err.to_string(),
        "iot23.log:11: tunnel_parents   label   detailed-label: expected 3 values separated by \"   \", found 2"
    );
    let r = read_zeek_bytes("iot23.log", log.as_bytes(), &reject()).expect("reject");
    assert_eq!(r.rows, 2);
    assert_eq!(r.rejects.len(), 1);
    assert_eq!(
        strings(&r, "tunnel_parents"),
        vec![None, Some(String::new())]
    );
    assert_eq!(
        label_counts(&r),
        counts(&[("Malicious|PartOfAHorizontalPortScan", 1), ("Benign|-", 1)])
    );
    assert_eq!(ints(&r, "resp_ip_bytes"), vec![Some(1226), Some(1226)]);
}

#[test]
fn extra_columns_any_order_and_community_id() {
    let mut fields = vec!["_node_name"];
    fields.extend(CONN_FIELDS.iter().rev());
    fields.extend(["community_id", "ip_proto"]);
    let cells: Vec<&str> = ROW.split('\t').rev().collect();
    let row = format!(
        "worker-1\t{}\t1:Z2qpnUv+rxq4N1rn7Go962U/gi8=\t6",
        cells.join("\t")
    );
    let log = format!("{}{row}\n", tsv_header(&fields));
    let r = read_text("conn.log", &log).expect("reordered");
    assert_eq!(r.rows, 1);
    assert_eq!(floats(&r, "ts"), vec![Some(1_655_071_198.444_458)]);
    assert_eq!(ints(&r, "src_port"), vec![Some(62771)]);
    assert_eq!(strings(&r, "service"), vec![Some("ssl".to_string())]);
    assert_eq!(bools(&r, "local_resp"), vec![Some(false)]);
    assert_eq!(
        strings(&r, "community_id"),
        vec![Some("1:Z2qpnUv+rxq4N1rn7Go962U/gi8=".to_string())]
    );
    assert_eq!(nulls(&r, "label_text"), 1);
}

#[test]
fn missing_close_no_final_newline_and_crlf() {
    let log = format!("{}{ROW}\n{ROW}", tsv_header(CONN_FIELDS));
    let r = read_text("conn.log", &log).expect("no final newline");
    assert_eq!(r.rows, 2);
    assert_eq!(ints(&r, "resp_ip_bytes"), vec![Some(1226), Some(1226)]);

    let crlf = log.replace('\n', "\r\n");
    let r = read_text("conn.log", &crlf).expect("crlf");
    assert_eq!(r.rows, 2);
    assert_eq!(
        strings(&r, "tunnel_parents"),
        vec![Some(String::new()), Some(String::new())]
    );
}

#[test]
fn concatenated_logs_with_a_second_header_block() {
    let first = format!(
        "{}{ROW}\n#close\t2024-01-01-01-00-00\n",
        tsv_header(CONN_FIELDS)
    );
    // The second block lists fewer fields, in another order, and another set separator.
    let second = "#separator \\x09\n#set_separator\t|\n#path\tconn\n#fields\tuid\tts\tid.orig_p\ttunnel_parents\n#types\tstring\ttime\tport\tset[string]\nCabc\t2.5\t8080\tCa|Cb\n";
    let r = read_text("conn.log", &format!("{first}{second}")).expect("two blocks");
    assert_eq!(r.rows, 2);
    assert_eq!(
        floats(&r, "ts"),
        vec![Some(1_655_071_198.444_458), Some(2.5)]
    );
    assert_eq!(ints(&r, "src_port"), vec![Some(62771), Some(8080)]);
    assert_eq!(
        strings(&r, "tunnel_parents"),
        vec![Some(String::new()), Some("Ca,Cb".to_string())]
    );
    assert_eq!(ints(&r, "dest_port"), vec![Some(443), None]);
    assert_eq!(ints(&r, "source_line"), vec![Some(9), Some(16)]);
}

#[test]
fn json_with_iso_ts_strings_and_bad_lines() {
    let log = concat!(
        "{\"ts\":\"2022-02-10T03:58:29.979Z\",\"uid\":\"CwO2bA321vyBxBjtxb\",\"id.orig_h\":\"143.88.5.12\",\"id.orig_p\":36073,\"id.resp_p\":53,\"proto\":\"udp\",\"duration\":0.00228,\"local_orig\":false,\"tunnel_parents\":[\"Cx\",\"Cy\"],\"detailed-label\":\"scan\",\"label\":\"Malicious\"}\n",
        "\n",
        "{\"ts\":\"1644465509.5\",\"id.orig_p\":\"36074\",\"service\":null}\n",
        "{\"ts\":1644465510,\"id.orig_p\":\"http\"}\n",
        "{\"ts\":1644465511, oops}\n",
    );
    let err = read_text("conn.json", log).expect_err("bad port");
    assert_eq!(
        err.to_string(),
        "conn.json:4: invalid JSON: id.orig_p: expected a non-negative integer, found \"http\" at column 35"
    );
    let r = read_zeek_bytes("conn.json", log.as_bytes(), &reject()).expect("reject");
    assert_eq!(r.rows, 2);
    let ts = floats(&r, "ts");
    assert!(
        (ts[0].unwrap_or_default() - 1_644_465_509.979).abs() < 1e-6,
        "{ts:?}"
    );
    assert_eq!(ts[1], Some(1_644_465_509.5));
    assert_eq!(ints(&r, "src_port"), vec![Some(36073), Some(36074)]);
    assert_eq!(
        strings(&r, "tunnel_parents"),
        vec![Some("Cx,Cy".to_string()), None]
    );
    assert_eq!(
        label_counts(&r),
        counts(&[("Malicious|scan", 1), ("-|-", 1)])
    );
    assert_eq!(bools(&r, "local_orig"), vec![Some(false), None]);
    assert_eq!(ints(&r, "source_line"), vec![Some(1), Some(3)]);
    assert_eq!(r.rejects.len(), 2);
    assert_eq!((r.rejects[0].line, r.rejects[1].line), (4, 5));
    assert!(
        r.rejects[1]
            .reason
            .starts_with("invalid JSON: key must be a string"),
        "{}",
        r.rejects[1].reason
    );
}

#[test]
fn batches_respect_batch_size() {
    let plain = std::fs::read(real(LABELED_011)).expect("read 011");
    let opts = ZeekReadOptions {
        batch_size: 1000,
        ..ZeekReadOptions::default()
    };
    let r = read_zeek_bytes("011", &plain, &opts).expect("read");
    assert_eq!(r.batches.len(), 10);
    assert_eq!(r.batches[0].num_rows(), 1000);
    assert_eq!(r.batches[9].num_rows(), 48);
}

/// A log of `rows` copies of [`ROW`], each with its line number as uid, and
/// the text of a bad row at line `bad_at` when given.
fn numbered_log(rows: usize, bad_at: Option<u64>) -> String {
    let header = tsv_header(CONN_FIELDS);
    let header_lines = header.lines().count() as u64;
    let (_, rest) = ROW.split_once('\t').expect("ts");
    let (_, rest) = rest.split_once('\t').expect("uid");
    let mut text = header;
    for i in 0..rows as u64 {
        let line = header_lines + 1 + i;
        if Some(line) == bad_at {
            text.push_str("1.0\tCbad\tnot a row\n");
        } else {
            text.push_str(&format!("1.0\tC{line}\t{rest}\n"));
        }
    }
    text.push_str("#close\t2022-06-17-00-00-07\n");
    text
}

#[tokio::test]
async fn streamed_chunks_keep_file_and_line_order_across_files() {
    use futures::TryStreamExt;
    let dir = tempfile::tempdir().expect("tempdir");
    // Over 8 MiB each, so every file is read as several chunks.
    let rows = 150_000;
    let log = numbered_log(rows, None);
    assert!(log.len() > 16 << 20, "{} bytes", log.len());
    std::fs::write(dir.path().join("conn.00.log"), &log).expect("write");
    std::fs::write(dir.path().join("conn.01.log.gz"), gzip(log.as_bytes())).expect("write");
    let location = dir.path().to_str().expect("utf8");

    let chunks: Vec<_> = zeekml_formats::stream_zeek(location, &fail())
        .await
        .expect("open")
        .try_collect()
        .await
        .expect("read");
    assert!(chunks.len() >= 4, "{} chunks", chunks.len());
    assert_eq!(chunks.iter().map(|c| c.files).sum::<usize>(), 2);
    let mut all = zeekml_formats::ZeekRead::default();
    for c in chunks {
        all.batches.extend(c.batches);
        all.rows += c.rows;
    }
    assert_eq!(all.rows, 2 * rows as u64);
    let uids = strings(&all, "uid");
    let lines = ints(&all, "source_line");
    let first = tsv_header(CONN_FIELDS).lines().count() as i64 + 1;
    for (i, (uid, line)) in uids.iter().zip(&lines).enumerate() {
        let expected = first + (i % rows) as i64;
        assert_eq!(*line, Some(expected), "row {i}");
        assert_eq!(
            uid.as_deref(),
            Some(format!("C{expected}").as_str()),
            "row {i}"
        );
    }
    // The eager reader is the same stream collected.
    let eager = read_zeek(location, &fail()).await.expect("read");
    assert_eq!(eager.files, 2);
    assert_eq!(strings(&eager, "uid"), uids);
}

#[tokio::test]
async fn a_bad_row_deep_in_a_streamed_file_names_its_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad_line = 100_003;
    let path = dir.path().join("conn.log");
    std::fs::write(&path, numbered_log(120_000, Some(bad_line))).expect("write");
    let err = read_zeek(path.to_str().expect("utf8"), &fail())
        .await
        .expect_err("bad row");
    let text = err.to_string();
    assert!(text.contains(&format!("conn.log:{bad_line}")), "{text}");
    assert!(text.contains("expected"), "{text}");

    let read = read_zeek(path.to_str().expect("utf8"), &reject())
        .await
        .expect("rejected");
    assert_eq!(read.rows, 119_999);
    assert_eq!(read.rejects.len(), 1);
    assert_eq!(read.rejects[0].line, bad_line);
}
