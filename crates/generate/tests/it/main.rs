//! Integration tests of the generator: files, format, labels, determinism.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use zeekml_generate::{
    generate, Error, GenerateConfig, GenerateSummary, OutputFormat, Profile, HEADER,
    NULLABLE_COLUMNS, RECON_COPIES, ZEEK_FIELDS, ZEEK_TYPES,
};

fn run(rows: u64, seed: u64, dir: &Path) -> GenerateSummary {
    run_profile(Profile::Campus, rows, seed, dir)
}

fn run_profile(profile: Profile, rows: u64, seed: u64, dir: &Path) -> GenerateSummary {
    let mut cfg = GenerateConfig::new(rows, dir);
    cfg.seed = seed;
    cfg.profile = profile;
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
    assert_eq!(cfg.profile, Profile::Campus);
    assert_eq!(Profile::default(), Profile::Campus);
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

// ---- Traffic profiles ----

/// FNV-1a over every part's file name and bytes, in part order.
fn digest(files: &[PathBuf]) -> u64 {
    let mut h = 0xCBF2_9CE4_8422_2325_u64;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01B3);
        }
    };
    for f in files {
        eat(f.file_name().expect("name").as_encoded_bytes());
        eat(&fs::read(f).expect("read part"));
    }
    h
}

#[test]
fn campus_bytes_match_the_generator_before_profiles() {
    // Digests recorded from the generator as it was before profiles existed:
    // the campus profile must keep writing the same bytes.
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = run(50_000, 42, dir.path());
    assert_eq!(csv.profile, Profile::Campus);
    assert_eq!(digest(&csv.files), 0x058d_3db0_fd75_925b);
    let tsv_dir = tempfile::tempdir().expect("tempdir");
    let tsv = run_tsv(5000, 9, tsv_dir.path());
    assert_eq!(digest(&tsv.files), 0x3394_af37_5425_aeba);
    let mut cfg = GenerateConfig::new(1000, dir.path().join("three"));
    (cfg.seed, cfg.parts) = (1, 3);
    assert_eq!(
        digest(&generate(&cfg).expect("generate").files),
        0x6a83_c9b6_9783_e9e5
    );
}

#[test]
fn enterprise_output_is_deterministic_and_differs_from_campus() {
    let dirs: Vec<_> = (0..4).map(|_| tempfile::tempdir().expect("tmp")).collect();
    let a = run_profile(Profile::Enterprise, 30_000, 7, dirs[0].path());
    let b = run_profile(Profile::Enterprise, 30_000, 7, dirs[1].path());
    let other_seed = run_profile(Profile::Enterprise, 30_000, 8, dirs[2].path());
    let campus = run_profile(Profile::Campus, 30_000, 7, dirs[3].path());
    assert_eq!(a.profile, Profile::Enterprise);
    for (fa, fb) in a.files.iter().zip(&b.files) {
        assert_eq!(fa.file_name(), fb.file_name());
        assert!(
            fs::read(fa).expect("a") == fs::read(fb).expect("b"),
            "{}",
            fa.display()
        );
    }
    assert_eq!(digest(&a.files), digest(&b.files));
    assert_ne!(digest(&a.files), digest(&other_seed.files));
    assert_ne!(digest(&a.files), digest(&campus.files));
    // Other part names and no uid in common, so the two datasets can sit
    // side by side or be combined.
    let names = |s: &GenerateSummary| -> BTreeSet<_> {
        s.files
            .iter()
            .map(|f| f.file_name().map(|n| n.to_owned()))
            .collect()
    };
    assert!(names(&a).is_disjoint(&names(&campus)));
    let uids = |s: &GenerateSummary| -> HashSet<String> {
        records(&s.files)
            .iter()
            .map(|r| r[col("uid")].to_string())
            .collect()
    };
    assert!(uids(&a).is_disjoint(&uids(&campus)));
    // Enterprise plans its own shares: 18 flows of 30,000 rows (15%), 60 Discovery.
    assert_eq!(a.recon_flows, 18);
    assert_eq!(
        (
            a.rows_by_label["Discovery"],
            campus.rows_by_label["Discovery"]
        ),
        (60, 30)
    );
    // The Zeek TSV layout carries the same enterprise connections.
    let tsv_dir = tempfile::tempdir().expect("tmp");
    let mut cfg = GenerateConfig::new(30_000, tsv_dir.path());
    (cfg.seed, cfg.profile, cfg.format) = (7, Profile::Enterprise, OutputFormat::ZeekTsv);
    let tsv = generate(&cfg).expect("tsv");
    let csv_uids: Vec<String> = records(&a.files)
        .iter()
        .map(|r| r[col("uid")].to_string())
        .collect();
    let tsv_uids: Vec<String> = tsv_rows(&tsv.files)
        .into_iter()
        .map(|r| r[1].clone())
        .collect();
    assert_eq!(csv_uids, tsv_uids);
}

/// One enterprise dataset of 200,000 rows, parsed once for several checks.
fn enterprise_200k() -> (tempfile::TempDir, GenerateSummary, Vec<csv::StringRecord>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let summary = run_profile(Profile::Enterprise, 200_000, 42, dir.path());
    let recs = records(&summary.files);
    (dir, summary, recs)
}

#[test]
fn enterprise_rows_have_the_uwf_shape_and_labels() {
    let (_dir, summary, recs) = enterprise_200k();
    assert_eq!(summary.files.len(), 5);
    assert_eq!(recs.len(), 200_000);
    let expected: BTreeMap<String, u64> = [
        ("Discovery".to_string(), 400),
        ("Reconnaissance".to_string(), 117 * 256),
        ("none".to_string(), 200_000 - 400 - 117 * 256),
    ]
    .into_iter()
    .collect();
    assert_eq!(summary.rows_by_label, expected);
    assert_eq!(summary.recon_flows, 117);
    let mut counted: BTreeMap<String, u64> = BTreeMap::new();
    let mut copies: HashMap<&str, (usize, &csv::StringRecord)> = HashMap::new();
    for rec in &recs {
        let label = &rec[col("mitre_attack_tactics")];
        *counted.entry(label.to_string()).or_default() += 1;
        if label == "Reconnaissance" {
            let e = copies.entry(&rec[col("uid")]).or_insert((0, rec));
            e.0 += 1;
            assert_eq!(e.1, rec, "copies of one flow are identical");
        }
        // Same cell syntax as campus.
        assert_eq!(
            (&rec[col("local_orig")], &rec[col("local_resp")]),
            ("false", "false")
        );
        let unset = rec[col("duration")].is_empty();
        assert_eq!(rec[col("orig_bytes")].is_empty(), unset);
        assert_eq!(rec[col("resp_bytes")].is_empty(), unset);
        assert_eq!(
            rec[col("history")].is_empty(),
            &rec[col("protocol")] == "icmp"
        );
        let ts: f64 = rec[col("ts")].parse().expect("ts");
        assert!((1_644_192_000.0..1_645_401_601.0).contains(&ts), "{ts}");
        assert_eq!(
            iso_millis(&rec[col("datetime")]),
            ((ts * 1e6) as i64).div_euclid(1000)
        );
    }
    assert_eq!(counted, expected);
    assert_eq!(copies.len(), 117);
    assert!(copies.values().all(|(n, _)| *n as u64 == RECON_COPIES));
    let share = counted["Reconnaissance"] as f64 / 200_000.0;
    assert!((0.12..0.18).contains(&share), "{share}");
    // Multi-protocol services are quoted like the export does.
    let raw = fs::read_to_string(&summary.files[0]).expect("read");
    assert!(raw.contains(",\"gssapi,smb,ntlm\",") || raw.contains(",\"gssapi,smb,krb\","));
}

fn ip(s: &str) -> [u8; 4] {
    s.parse::<Ipv4Addr>().expect("ipv4").octets()
}

#[test]
fn enterprise_uses_its_own_address_space() {
    let (_dir, _summary, recs) = enterprise_200k();
    let multicast_or_broadcast = |a: [u8; 4]| a[0] >= 224 || a == [0, 0, 0, 0];
    let mut clients = 0;
    let mut attackers = BTreeSet::new();
    for rec in &recs {
        let (src, dst) = (ip(&rec[col("src_ip")]), ip(&rec[col("dest_ip")]));
        for a in [src, dst] {
            assert!(a[..2] != [143, 88], "campus address {a:?}");
            // Inside is 10.20/16 (clients) and 10.10/16 (servers); no other 10/8.
            if a[0] == 10 {
                assert!(a[1] == 20 || a[1] == 10, "{a:?}");
            }
        }
        if src[..2] == [10, 20] {
            assert!(src[2] < 64 && src[3] >= 10, "client {src:?}");
            clients += 1;
        }
        assert!(
            src[0] == 10 || src == [0, 0, 0, 0],
            "outside source {src:?}"
        );
        if &rec[col("mitre_attack_tactics")] == "Reconnaissance" {
            attackers.insert(src);
            // Recon stays inside (the resolvers are domain controllers).
            assert_eq!(dst[0], 10, "{dst:?}");
        } else if dst[0] != 10 {
            assert!(
                multicast_or_broadcast(dst) || !matches!(dst[0], 10 | 127 | 192),
                "{dst:?}"
            );
        }
    }
    assert!(clients as f64 > 0.7 * recs.len() as f64, "{clients}");
    let expected: BTreeSet<[u8; 4]> = [[10, 10, 4, 66], [10, 20, 7, 99], [10, 20, 33, 142]].into();
    assert_eq!(attackers, expected);

    // The campus keeps to 143.88/16 and never uses 10/8.
    let dir = tempfile::tempdir().expect("tempdir");
    let campus = run(20_000, 42, dir.path());
    for rec in records(&campus.files) {
        for c in [col("src_ip"), col("dest_ip")] {
            assert_ne!(ip(&rec[c])[0], 10, "{}", &rec[c]);
        }
    }
}

/// Share of benign client rows (TCP/UDP from the client range) whose source
/// port is neither a fixed service port (DHCP 68, NTP 123, NetBIOS 137,
/// mDNS 5353) nor in the IANA ephemeral range 49152-65535 that Windows and
/// macOS use; Linux allocates 32768-60999.
fn client_ports_outside_iana(recs: &[csv::StringRecord], client_prefix: &str) -> (usize, f64) {
    let mut total = 0;
    let mut outside = 0;
    for rec in recs {
        if &rec[col("mitre_attack_tactics")] != "none"
            || &rec[col("protocol")] == "icmp"
            || !rec[col("src_ip")].starts_with(client_prefix)
        {
            continue;
        }
        total += 1;
        let port: u16 = rec[col("src_port")].parse().expect("port");
        if port < 49_152 && ![68, 123, 137, 5353].contains(&port) {
            outside += 1;
        }
    }
    (total, outside as f64 / total as f64)
}

#[test]
fn enterprise_clients_use_the_windows_and_macos_port_range() {
    let (_dir, _summary, recs) = enterprise_200k();
    let (total, outside) = client_ports_outside_iana(&recs, "10.20.");
    assert!(total > 150_000, "{total}");
    assert_eq!(outside, 0.0);
    // On campus a quarter of the client rows come from Linux hosts' range.
    let dir = tempfile::tempdir().expect("tempdir");
    let campus = run(50_000, 42, dir.path());
    let (total, outside) = client_ports_outside_iana(&records(&campus.files), "143.88.");
    assert!(total > 35_000, "{total}");
    assert!((0.2..0.3).contains(&outside), "{outside}");
}

/// Share of all rows per first `service` entry, `""` for unset.
fn service_shares(recs: &[csv::StringRecord]) -> HashMap<String, f64> {
    let mut counts: HashMap<String, usize> = HashMap::new();
    for rec in recs {
        let first = rec[col("service")].split(',').next().unwrap_or("");
        *counts.entry(first.to_string()).or_default() += 1;
    }
    counts
        .into_iter()
        .map(|(k, n)| (k, n as f64 / recs.len() as f64))
        .collect()
}

#[test]
fn enterprise_service_mix_differs_from_campus_by_a_clear_margin() {
    let (ent_dir, cam_dir) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    let ent = service_shares(&records(
        &run_profile(Profile::Enterprise, 100_000, 5, ent_dir.path()).files,
    ));
    let cam = service_shares(&records(&run(100_000, 5, cam_dir.path()).files));
    let share = |m: &HashMap<String, f64>, s: &str| m.get(s).copied().unwrap_or(0.0);
    let windows = |m: &HashMap<String, f64>| {
        ["smb", "gssapi", "krb", "krb_tcp", "dce_rpc", "rdp"]
            .iter()
            .map(|s| share(m, s))
            .sum::<f64>()
    };
    // Measured at this seed: campus dns 0.52, ssl 0.19, ntp 0.046,
    // http 0.078, unset 0.025, Windows 0.055; enterprise 0.26, 0.27, 0.010,
    // 0.030, 0.19, 0.21.
    assert!((0.48..0.56).contains(&share(&cam, "dns")), "{cam:?}");
    assert!((0.22..0.30).contains(&share(&ent, "dns")), "{ent:?}");
    assert!(
        share(&ent, "ssl") > share(&cam, "ssl") + 0.05,
        "{ent:?} {cam:?}"
    );
    assert!(share(&ent, "") > share(&cam, "") + 0.12, "{ent:?} {cam:?}");
    assert!(
        share(&ent, "ntp") < share(&cam, "ntp") / 3.0,
        "{ent:?} {cam:?}"
    );
    assert!(
        share(&ent, "http") < share(&cam, "http") / 2.0,
        "{ent:?} {cam:?}"
    );
    assert!(windows(&ent) > windows(&cam) + 0.12, "{ent:?} {cam:?}");
}

/// Distinct recon flows of a dataset, one record per uid.
fn recon_flows(recs: &[csv::StringRecord]) -> Vec<&csv::StringRecord> {
    let mut seen = HashSet::new();
    recs.iter()
        .filter(|r| &r[col("mitre_attack_tactics")] == "Reconnaissance")
        .filter(|r| seen.insert(r[col("uid")].to_string()))
        .collect()
}

/// Median gap in seconds between one attacker's consecutive recon flows.
fn median_recon_gap(flows: &[&csv::StringRecord]) -> f64 {
    let mut by_src: HashMap<&str, Vec<f64>> = HashMap::new();
    for f in flows {
        by_src
            .entry(&f[col("src_ip")])
            .or_default()
            .push(f[col("ts")].parse().expect("ts"));
    }
    let mut gaps = Vec::new();
    for ts in by_src.values_mut() {
        ts.sort_by(f64::total_cmp);
        gaps.extend(ts.windows(2).map(|w| w[1] - w[0]));
    }
    gaps.sort_by(f64::total_cmp);
    gaps[gaps.len() / 2]
}

#[test]
fn enterprise_recon_uses_other_tools_and_timing() {
    let (_dir, _summary, recs) = enterprise_200k();
    let cam_dir = tempfile::tempdir().expect("tmp");
    let cam_recs = records(&run(200_000, 42, cam_dir.path()).files);
    let (ent, cam) = (recon_flows(&recs), recon_flows(&cam_recs));
    assert_eq!((ent.len(), cam.len()), (117, 164));
    let share = |flows: &[&csv::StringRecord], pred: &dyn Fn(&csv::StringRecord) -> bool| {
        flows.iter().filter(|r| pred(r)).count() as f64 / flows.len() as f64
    };
    // A stateless sweep's SYN has no TCP options: 40 IP bytes, never retried.
    let stateless = |r: &csv::StringRecord| {
        &r[col("protocol")] == "tcp"
            && &r[col("conn_state")] == "S0"
            && &r[col("orig_ip_bytes")] == "40"
    };
    assert!(
        share(&ent, &stateless) > 0.08,
        "{}",
        share(&ent, &stateless)
    );
    assert_eq!(share(&cam, &stateless), 0.0);
    // Fewer DNS sweeps, more SMB (enumeration and version probes).
    let dns = |r: &csv::StringRecord| &r[col("service")] == "dns";
    assert!(share(&cam, &dns) > 0.5 && share(&ent, &dns) < 0.35);
    let smb = |r: &csv::StringRecord| &r[col("dest_port")] == "445";
    assert!(share(&ent, &smb) > share(&cam, &smb) + 0.1);
    // Half-open and unanswered probes are far more common.
    let s0 = |r: &csv::StringRecord| &r[col("conn_state")] == "S0";
    assert!(share(&ent, &s0) > share(&cam, &s0) + 0.15);
    // Polite timing: consecutive probes of one attacker are further apart.
    let (ent_gap, cam_gap) = (median_recon_gap(&ent), median_recon_gap(&cam));
    assert!(
        ent_gap > 2.0 * cam_gap,
        "enterprise {ent_gap} campus {cam_gap}"
    );
    // Still learnable: recon never shares a row with benign traffic.
    let benign: HashSet<&str> = recs
        .iter()
        .filter(|r| &r[col("mitre_attack_tactics")] == "none")
        .map(|r| &r[col("uid")])
        .collect();
    assert!(ent.iter().all(|r| !benign.contains(&r[col("uid")])));
}

#[test]
fn profiles_parse_from_their_names() {
    assert_eq!(
        "enterprise".parse::<Profile>().ok(),
        Some(Profile::Enterprise)
    );
    assert_eq!("campus".parse::<Profile>().ok(), Some(Profile::Campus));
    let err = "home".parse::<Profile>().expect_err("unknown");
    assert!(matches!(err, Error::UnknownProfile { ref name } if name == "home"));
    assert_eq!(Profile::ALL.map(Profile::name), ["campus", "enterprise"]);
}
