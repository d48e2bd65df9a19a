//! Integration tests of the generator: files, format, labels, determinism.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use zeekml_generate::{
    generate, Error, GenerateConfig, GenerateSummary, OutputFormat, HEADER, NULLABLE_COLUMNS,
    RECON_COPIES, ZEEK_FIELDS, ZEEK_TYPES,
};

fn run(rows: u64, seed: u64, dir: &Path) -> GenerateSummary {
    let mut cfg = GenerateConfig::new(rows, dir);
    cfg.seed = seed;
    generate(&cfg).expect("generate")
}

/// All data records of all parts, in part order, parsed by the csv crate.
fn records(files: &[PathBuf]) -> Vec<csv::StringRecord> {
    let mut out = Vec::new();
    for f in files {
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(true)
            .from_path(f)
            .expect("open part");
        let header = rdr.headers().expect("header").clone();
        assert_eq!(header.iter().collect::<Vec<_>>().join(","), HEADER);
        for rec in rdr.records() {
            let rec = rec.expect("valid csv record");
            assert_eq!(rec.len(), 23);
            out.push(rec);
        }
    }
    out
}

fn col(name: &str) -> usize {
    HEADER.split(',').position(|c| c == name).expect("column")
}

/// Epoch milliseconds of `2022-02-10T03:58:29.979Z`.
fn iso_millis(s: &str) -> i64 {
    let b = s.as_bytes();
    assert_eq!(
        (s.len(), b[4], b[10], b[19], b[23]),
        (24, b'-', b'T', b'.', b'Z'),
        "{s}"
    );
    let num = |r: std::ops::Range<usize>| s[r].parse::<i64>().expect("digits");
    let (y, m, d) = (num(0..4), num(5..7), num(8..10));
    let (y, m) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    ((days * 24 + num(11..13)) * 60 + num(14..16)) * 60_000 + num(17..19) * 1000 + num(20..23)
}

#[test]
fn writes_five_parts_with_the_exact_header_and_row_count() {
    let dir = tempfile::tempdir().expect("tempdir");
    let summary = run(10_007, 42, dir.path());
    assert_eq!(summary.files.len(), 5);
    assert_eq!(summary.rows, 10_007);
    let mut total = 0;
    for f in &summary.files {
        let name = f.file_name().and_then(|n| n.to_str()).expect("name");
        assert!(
            name.starts_with("part-00000-") && name.ends_with("-c000.csv"),
            "{name}"
        );
        assert_eq!(name.len(), "part-00000-".len() + 36 + "-c000.csv".len());
        let text = fs::read_to_string(f).expect("read part");
        assert_eq!(text.lines().next(), Some(HEADER));
        assert!(text.ends_with('\n'));
        let rows = text.lines().count() - 1;
        // Parts are balanced.
        assert!((2000..=2002).contains(&rows), "{rows}");
        total += rows;
    }
    assert_eq!(total, 10_007);
    assert_eq!(records(&summary.files).len(), 10_007);
    let listed: Vec<_> = fs::read_dir(dir.path())
        .expect("ls")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(listed.len(), 5, "no temporary files left: {listed:?}");
}

#[test]
fn same_seed_gives_identical_bytes_and_other_seeds_differ() {
    let (a, b, c) = (
        tempfile::tempdir().expect("a"),
        tempfile::tempdir().expect("b"),
        tempfile::tempdir().expect("c"),
    );
    let sa = run(30_000, 7, a.path());
    let sb = run(30_000, 7, b.path());
    let sc = run(30_000, 8, c.path());
    for (fa, fb) in sa.files.iter().zip(&sb.files) {
        assert_eq!(fa.file_name(), fb.file_name());
        assert!(
            fs::read(fa).expect("a") == fs::read(fb).expect("b"),
            "{} differs",
            fa.display()
        );
    }
    assert_ne!(sa.files[0].file_name(), sc.files[0].file_name());
    assert!(fs::read(&sa.files[0]).expect("a") != fs::read(&sc.files[0]).expect("c"));
    assert_eq!(sa.rows_by_label, sc.rows_by_label);
}

#[test]
fn every_recon_flow_is_written_256_times_identically_and_scattered() {
    let dir = tempfile::tempdir().expect("tempdir");
    let summary = run(50_000, 42, dir.path());
    assert_eq!(summary.recon_flows, 41);
    let (uid, label) = (col("uid"), col("mitre_attack_tactics"));
    let mut copies: HashMap<String, Vec<(usize, usize, csv::StringRecord)>> = HashMap::new();
    let mut other_uids: HashMap<String, usize> = HashMap::new();
    for (part, f) in summary.files.iter().enumerate() {
        for (line, rec) in records(std::slice::from_ref(f)).into_iter().enumerate() {
            if &rec[label] == "Reconnaissance" {
                copies
                    .entry(rec[uid].to_string())
                    .or_default()
                    .push((part, line, rec));
            } else {
                *other_uids.entry(rec[uid].to_string()).or_default() += 1;
            }
        }
    }
    assert_eq!(copies.len() as u64, summary.recon_flows);
    for (u, rows) in &copies {
        assert_eq!(rows.len() as u64, RECON_COPIES, "uid {u}");
        assert!(
            rows.iter().all(|(_, _, r)| r == &rows[0].2),
            "copies of {u} differ"
        );
        let parts: std::collections::BTreeSet<usize> = rows.iter().map(|(p, _, _)| *p).collect();
        assert_eq!(parts.len(), 5, "copies of {u} spread over all parts");
        let adjacent = rows
            .windows(2)
            .filter(|w| w[0].0 == w[1].0 && w[1].1 == w[0].1 + 1)
            .count();
        assert!(adjacent < 64, "copies of {u} mostly adjacent: {adjacent}");
    }
    // Non-recon flows are unique and never share a recon uid.
    assert!(other_uids.values().all(|&n| n == 1));
    assert!(copies.keys().all(|u| !other_uids.contains_key(u)));
}

#[test]
fn label_shares_follow_the_uwf_seed_at_200k_rows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let summary = run(200_000, 42, dir.path());
    let expected: BTreeMap<String, u64> = [
        ("Discovery".to_string(), 200),
        ("Reconnaissance".to_string(), 164 * 256),
        ("none".to_string(), 200_000 - 200 - 164 * 256),
    ]
    .into_iter()
    .collect();
    assert_eq!(summary.rows_by_label, expected);
    let mut counted: BTreeMap<String, u64> = BTreeMap::new();
    for rec in records(&summary.files) {
        *counted
            .entry(rec[col("mitre_attack_tactics")].to_string())
            .or_default() += 1;
    }
    assert_eq!(counted, expected);
    let recon_share = counted["Reconnaissance"] as f64 / 200_000.0;
    assert!((recon_share - 0.2099).abs() < 0.002, "{recon_share}");
}

#[test]
fn nulls_only_in_nullable_columns_with_realistic_rates() {
    let dir = tempfile::tempdir().expect("tempdir");
    let summary = run(200_000, 3, dir.path());
    let recs = records(&summary.files);
    let names: Vec<&str> = HEADER.split(',').collect();
    let mut nulls: BTreeMap<&str, usize> = BTreeMap::new();
    let mut null_single_packet = 0;
    for rec in &recs {
        for (i, cell) in rec.iter().enumerate() {
            if cell.is_empty() {
                assert!(NULLABLE_COLUMNS.contains(&names[i]), "null in {}", names[i]);
                *nulls.entry(names[i]).or_default() += 1;
            }
        }
        // Zeek leaves duration and both byte counts unset together.
        let unset = rec[col("duration")].is_empty();
        assert_eq!(rec[col("orig_bytes")].is_empty(), unset);
        assert_eq!(rec[col("resp_bytes")].is_empty(), unset);
        if unset {
            let pkts: u64 = rec[col("orig_pkts")].parse::<u64>().expect("n")
                + rec[col("resp_pkts")].parse::<u64>().expect("n");
            if pkts == 1 {
                null_single_packet += 1;
            }
        }
        // History is unset exactly for ICMP, as Zeek does.
        assert_eq!(
            rec[col("history")].is_empty(),
            &rec[col("protocol")] == "icmp"
        );
    }
    let rate = |c: &str| *nulls.get(c).unwrap_or(&0) as f64 / recs.len() as f64;
    assert!(
        (0.055..0.08).contains(&rate("duration")),
        "duration {}",
        rate("duration")
    );
    assert!(
        (0.018..0.032).contains(&rate("service")),
        "service {}",
        rate("service")
    );
    assert!(
        (0.006..0.012).contains(&rate("history")),
        "history {}",
        rate("history")
    );
    // Unset durations are single-packet flows.
    assert!(null_single_packet as f64 > 0.85 * nulls["duration"] as f64);
}

#[test]
fn cells_have_spark_syntax() {
    let dir = tempfile::tempdir().expect("tempdir");
    let summary = run(20_000, 11, dir.path());
    let recs = records(&summary.files);
    let mut multi_service = 0;
    for rec in &recs {
        assert_eq!(&rec[col("local_orig")], "false");
        assert_eq!(&rec[col("local_resp")], "false");
        let ts_cell = &rec[col("ts")];
        assert!(
            ts_cell.starts_with("1.64") && ts_cell.contains("E9"),
            "{ts_cell}"
        );
        let ts: f64 = ts_cell.parse().expect("ts");
        // Two weeks from Monday 2022-02-07.
        assert!((1_644_192_000.0..1_645_401_601.0).contains(&ts), "{ts}");
        assert_eq!(
            iso_millis(&rec[col("datetime")]),
            ((ts * 1e6) as i64).div_euclid(1000)
        );
        let uid = &rec[col("uid")];
        assert!(
            uid.starts_with('C')
                && (14..=18).contains(&uid.len())
                && uid.bytes().all(|c| c.is_ascii_alphanumeric())
        );
        let cid = &rec[col("community_id")];
        assert!(
            cid.starts_with("1:") && cid.len() == 30 && cid.ends_with('='),
            "{cid}"
        );
        for ip in [col("src_ip"), col("dest_ip")] {
            rec[ip].parse::<Ipv4Addr>().expect("ipv4");
        }
        for port in [col("src_port"), col("dest_port")] {
            assert!(rec[port].parse::<u16>().is_ok());
        }
        for n in [
            "resp_pkts",
            "orig_pkts",
            "orig_ip_bytes",
            "resp_ip_bytes",
            "missed_bytes",
        ] {
            rec[col(n)].parse::<u64>().expect(n);
        }
        let d = &rec[col("duration")];
        if !d.is_empty() {
            let v: f64 = d.parse().expect("duration");
            assert!(v > 0.0);
            // Java notation: plain in [1e-3, 1e7), otherwise d.dddE-n.
            assert_eq!(d.contains('E'), !(1e-3..1e7).contains(&v), "{d}");
            assert!(d.contains('.') && !d.contains('+'), "{d}");
        }
        if rec[col("service")].contains(',') {
            multi_service += 1;
        }
    }
    assert!(multi_service > 50, "{multi_service}");
    let raw = fs::read_to_string(&summary.files[0]).expect("read");
    assert!(raw.contains(",\"smb,gssapi,ntlm\",") || raw.contains(",\"gssapi,smb,krb\","));
    assert!(raw.contains("143.88."));
}

#[test]
fn tiny_row_counts_are_exact() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = run(1000, 42, dir.path());
    assert_eq!(s.recon_flows, 3);
    assert_eq!(s.rows_by_label["Reconnaissance"], 768);
    assert_eq!(s.rows_by_label["none"], 231);
    assert_eq!(s.rows_by_label["Discovery"], 1);
    assert_eq!(records(&s.files).len(), 1000);

    let s = run(100, 42, dir.path());
    assert_eq!(
        (s.recon_flows, s.rows_by_label.get("Reconnaissance")),
        (0, None)
    );
    assert_eq!(records(&s.files).len(), 100);

    let s = run(0, 42, dir.path());
    assert!(s.rows_by_label.is_empty());
    for f in &s.files {
        assert_eq!(fs::read_to_string(f).expect("read"), format!("{HEADER}\n"));
    }
}

#[test]
fn replaces_earlier_parts_and_keeps_other_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = run(2000, 1, dir.path());
    fs::write(dir.path().join("README.txt"), "keep").expect("write");
    fs::write(dir.path().join(".part-00000-dead-c000.csv.tmp"), "stale").expect("write");
    let second = run(3000, 2, dir.path());
    let mut names: Vec<String> = fs::read_dir(dir.path())
        .expect("ls")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut expected: Vec<String> = second
        .files
        .iter()
        .map(|f| f.file_name().expect("name").to_string_lossy().into_owned())
        .chain(["README.txt".to_string()])
        .collect();
    expected.sort();
    assert_eq!(names, expected);
    assert!(first.files.iter().all(|f| !f.exists()));
    assert_eq!(records(&second.files).len(), 3000);
    // Re-running the same config overwrites in place.
    let again = run(3000, 2, dir.path());
    assert_eq!(again.files, second.files);
}

#[test]
fn bad_configs_are_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = GenerateConfig::new(10, dir.path());
    cfg.parts = 0;
    let err = generate(&cfg).expect_err("zero parts");
    assert!(matches!(err, Error::InvalidConfig { .. }));
    assert_eq!(
        err.to_string(),
        "invalid generate config: parts must be at least 1"
    );

    let file = dir.path().join("not-a-dir");
    fs::write(&file, "x").expect("write");
    let err = generate(&GenerateConfig::new(10, &file)).expect_err("file as out_dir");
    assert!(matches!(err, Error::OutputDir { .. }));
    assert!(
        err.to_string().starts_with(&format!(
            "cannot prepare output directory {}: ",
            file.display()
        )),
        "{err}"
    );

    let err = generate(&GenerateConfig::new(u64::from(u32::MAX) + 1, dir.path()))
        .expect_err("too many rows");
    assert_eq!(
        err.to_string(),
        "invalid generate config: rows must be at most 4294967295, got 4294967296"
    );
}

#[test]
fn config_defaults() {
    let cfg = GenerateConfig::new(2_000_000, "data/uwf");
    assert_eq!((cfg.rows, cfg.seed, cfg.parts), (2_000_000, 42, 5));
    assert_eq!(cfg.out_dir, PathBuf::from("data/uwf"));
    assert_eq!(cfg.format, OutputFormat::UwfCsv);
    assert_eq!(OutputFormat::default(), OutputFormat::UwfCsv);
}

fn run_tsv(rows: u64, seed: u64, dir: &Path) -> GenerateSummary {
    let mut cfg = GenerateConfig::new(rows, dir);
    cfg.seed = seed;
    cfg.format = OutputFormat::ZeekTsv;
    generate(&cfg).expect("generate tsv")
}

/// Data lines of the TSV parts (split at tabs), checking each part's header
/// block and `#close` line on the way.
fn tsv_rows(files: &[PathBuf]) -> Vec<Vec<String>> {
    let header = [
        "#separator \\x09",
        "#set_separator\t,",
        "#empty_field\t(empty)",
        "#unset_field\t-",
        "#path\tconn",
        "#open\t2022-02-07-00-00-00",
        ZEEK_FIELDS,
        ZEEK_TYPES,
    ];
    let mut out = Vec::new();
    for f in files {
        let text = fs::read_to_string(f).expect("read part");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(&lines[..8], header, "{}", f.display());
        assert_eq!(lines.last(), Some(&"#close\t2022-02-21-00-00-00"));
        for line in &lines[8..lines.len() - 1] {
            assert!(!line.starts_with('#'), "{line}");
            let cells: Vec<String> = line.split('\t').map(str::to_owned).collect();
            assert_eq!(cells.len(), 21, "{line}");
            out.push(cells);
        }
    }
    out
}

#[test]
fn zeek_tsv_holds_the_same_rows_as_csv() {
    let (csv_dir, tsv_dir) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    let csv = run(5000, 9, csv_dir.path());
    let tsv = run_tsv(5000, 9, tsv_dir.path());
    assert_eq!(
        (tsv.rows, &tsv.rows_by_label),
        (csv.rows, &csv.rows_by_label)
    );
    let names: Vec<String> = tsv
        .files
        .iter()
        .map(|f| f.file_name().expect("name").to_string_lossy().into_owned())
        .collect();
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
    let (records, rows) = (records(&csv.files), tsv_rows(&tsv.files));
    assert_eq!(rows.len(), 5000);
    let unset = |s: &str| {
        if s.is_empty() {
            "-".to_string()
        } else {
            s.to_string()
        }
    };
    let mut unset_durations = 0;
    for (rec, row) in records.iter().zip(&rows) {
        let same = [
            ("uid", 1),
            ("src_ip", 2),
            ("src_port", 3),
            ("dest_ip", 4),
            ("dest_port", 5),
            ("protocol", 6),
            ("orig_bytes", 9),
            ("resp_bytes", 10),
            ("conn_state", 11),
            ("missed_bytes", 14),
            ("history", 15),
            ("orig_pkts", 16),
            ("orig_ip_bytes", 17),
            ("resp_pkts", 18),
            ("resp_ip_bytes", 19),
        ];
        for (name, i) in same {
            assert_eq!(unset(&rec[col(name)]), row[i], "{name}");
        }
        // Multi-value services are quoted in CSV, literal in TSV.
        assert_eq!(unset(&rec[col("service")]), row[7]);
        let ts: f64 = row[0].parse().expect("ts");
        assert_eq!(Some(ts), rec[col("ts")].parse::<f64>().ok());
        assert_eq!(
            row[0].split('.').nth(1).map(str::len),
            Some(6),
            "{}",
            row[0]
        );
        match (&rec[col("duration")], row[8].as_str()) {
            ("", "-") => unset_durations += 1,
            (c, t) => {
                let (c, t): (f64, f64) = (c.parse().expect("csv"), t.parse().expect("tsv"));
                assert!((c - t).abs() <= 5e-7, "{c} vs {t}");
            }
        }
        assert_eq!((row[12].as_str(), row[13].as_str()), ("F", "F"));
        assert_eq!(row[20], "(empty)");
    }
    assert!(unset_durations > 50, "{unset_durations}");
    // Same bytes again for the same seed.
    let again = tempfile::tempdir().expect("tmp");
    let second = run_tsv(5000, 9, again.path());
    for (a, b) in tsv.files.iter().zip(&second.files) {
        assert_eq!(fs::read(a).expect("a"), fs::read(b).expect("b"));
    }
}

#[test]
fn zeek_tsv_replaces_its_own_parts_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = run(1000, 1, dir.path());
    run_tsv(1000, 1, dir.path());
    fs::write(dir.path().join("conn-00009.log"), "stale").expect("write");
    fs::write(dir.path().join(".conn-00007.log.tmp"), "stale").expect("write");
    let tsv = run_tsv(2000, 2, dir.path());
    let mut names: Vec<PathBuf> = fs::read_dir(dir.path())
        .expect("ls")
        .map(|e| e.expect("entry").path())
        .collect();
    names.sort();
    let mut expected: Vec<PathBuf> = csv.files.iter().chain(&tsv.files).cloned().collect();
    expected.sort();
    assert_eq!(names, expected);
    assert_eq!(tsv_rows(&tsv.files).len(), 2000);
    assert_eq!(records(&csv.files).len(), 1000);
}

#[test]
fn zeek_tsv_with_no_rows_is_header_and_close() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = run_tsv(0, 42, dir.path());
    assert_eq!(s.files.len(), 5);
    assert!(tsv_rows(&s.files).is_empty());
}
