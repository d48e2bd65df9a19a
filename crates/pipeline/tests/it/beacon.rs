//! `pipelines/beacon.toml` through the real runner: native Zeek logs in,
//! `beacons`, `hosts` and `conn_scores` out.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use zeekml_pipeline::{query, render, run_pipeline, OutputFormat, RunOptions};

const NJRAT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/realdata/stratosphere-labeled-tsv/001-zeek-scenario-malicious.labeled-conn.log"
);
const PORTSCAN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/realdata/stratosphere-json-portscan/002-zeek-scenario-port-scanning.conn.log"
);
const MIXED_008: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/realdata/stratosphere-labeled-tsv/008-zeek-mixed.conn.log.labeled"
);

fn pipeline() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pipelines/beacon.toml")
}

/// Runs the beacon pipeline on `input` into `warehouse`.
async fn run(input: &Path, warehouse: &Path) {
    let mut opts = RunOptions::new(warehouse);
    opts.progress = false;
    opts.overrides = vec![("input".into(), input.display().to_string())];
    let record = run_pipeline(&pipeline(), &opts)
        .await
        .expect("beacon pipeline runs");
    let stages: Vec<&str> = record.stages.iter().map(|s| s.stage.as_str()).collect();
    assert_eq!(
        stages,
        [
            "raw",
            "clean",
            "beacon_conns",
            "beacon_scope",
            "beacon_dests",
            "beacon_regularity",
            "beacon_histograms",
            "beacon_evidence",
            "beacons",
            "host_conns",
            "hosts",
            "conn_scores"
        ]
    );
}

/// Query result as CSV text without the header.
async fn rows(warehouse: &Path, sql: &str) -> Vec<String> {
    let (schema, batches) = query(warehouse, sql, &[]).await.expect("query runs");
    let text = render(&schema, &batches, OutputFormat::Csv).expect("render");
    text.lines().skip(1).map(str::to_string).collect()
}

#[tokio::test]
async fn njrat_cc_pair_ranks_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    run(Path::new(NJRAT), dir.path()).await;
    let wh = dir.path();

    // Sub-scores as RITA v5 computes them (checked against a port of its
    // analysis/beacons.go): pairs by address, ports and protocols listed.
    let top = rows(
        wh,
        "SELECT src_ip, dest_ip, ports, connections, timestamps, score, ts_score, ds_score, \
                hist_cv_score, hist_bimodal_score, hist_score, dur_score, uncommon_port, threat_score, \
                cardinality(uids) \
         FROM beacons ORDER BY threat_score DESC",
    )
    .await;
    assert_eq!(
        top,
        [
            "192.168.1.115,41.108.179.197,[1177],237,237,0.973,0.891,1.0,0.956,1.0,1.0,1.0,true,1.0,10",
            "192.168.1.115,8.8.8.8,\"[3, 53]\",9,4,0.378,1.0,0.512,0.0,0.0,0.0,0.0,false,0.528,9",
            "192.168.1.115,54.247.115.15,\"[80, 443]\",5,5,0.319,0.833,0.443,0.0,0.0,0.0,0.0,false,0.469,5",
            "192.168.1.115,85.31.204.81,\"[80, 443]\",12,6,0.232,0.6,0.329,0.0,0.0,0.0,0.0,false,0.382,10",
        ]
    );
    // The evidence: the C&C pair's first connections, in time order.
    let uids = rows(
        wh,
        "SELECT count(*) FROM (SELECT unnest(uids) AS uid FROM beacons WHERE dest_ip = '41.108.179.197') u \
         JOIN clean c ON c.uid = u.uid WHERE c.label_detail = 'CC'",
    )
    .await;
    assert_eq!(uids, ["10"]);

    // Internal-to-internal DNS (ULA to ULA) and neighbour discovery to
    // multicast are not scored.
    let left_out = rows(
        wh,
        "SELECT count(*) FROM beacons WHERE dest_ip LIKE 'fd2d:%' OR dest_ip LIKE 'ff02:%'",
    )
    .await;
    assert_eq!(left_out, ["0"]);

    // conn_scores puts each connection next to its pair's and host's scores.
    let cc = rows(
        wh,
        "SELECT count(*), min(beacon_score), max(beacon_score), max(beacon_threat_score), \
                min(recon_score), max(recon_score) \
         FROM conn_scores WHERE label_text = 'Malicious' AND dest_port = 1177",
    )
    .await;
    assert_eq!(cc, ["237,0.973,0.973,1.0,0.0625,0.0625"]);
}

/// Every table the beacon pipeline writes, in a fixed order, as CSV text.
async fn beacon_tables(warehouse: &Path) -> Vec<String> {
    let mut all = Vec::new();
    for sql in [
        "SELECT * FROM beacons ORDER BY src_ip, dest_ip, dest_port, protocol, window_start",
        "SELECT * FROM hosts ORDER BY src_ip, window_start",
        "SELECT * FROM conn_scores ORDER BY uid",
    ] {
        all.extend(rows(warehouse, sql).await);
    }
    all
}

/// Parallel scans deliver rows in any order; the tables must not depend on
/// it (a float sum over durations once differed in its last digits from run
/// to run, so a scheduler's rerun changed a day it should have left alone).
/// On several worker threads, as the CLI runs: one thread keeps the order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reruns_write_the_same_rows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wh = dir.path();
    // The scheduled form, as a retried or backfilled day runs it.
    let day = [("input", NJRAT.to_string()), ("date", "2017-03-08".into())];
    run_set(wh, &day, None, None).await.expect("day 1 runs");
    let first = beacon_tables(wh).await;
    assert!(first.len() > 1000, "{} rows", first.len());
    for rerun in 1..=5 {
        run_set(wh, &day, None, None).await.expect("rerun runs");
        let again = beacon_tables(wh).await;
        let differ = first.iter().zip(&again).find(|(a, b)| a != b);
        assert_eq!(differ, None, "rerun {rerun}");
        assert_eq!(again.len(), first.len(), "rerun {rerun}");
    }
}

#[tokio::test]
async fn scanner_is_the_top_host() {
    // The port scan (JSON) next to the NjRAT capture (TSV): one input directory.
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("logs");
    std::fs::create_dir(&input).expect("mkdir");
    link(Path::new(NJRAT), &input.join("njrat.conn.log"));
    link(Path::new(PORTSCAN), &input.join("portscan.conn.log"));
    let wh = dir.path().join("wh");
    run(&input, &wh).await;

    let top = rows(
        &wh,
        "SELECT src_ip, window_start, connections, dest_hosts, dest_ports, horizontal_hosts, \
                vertical_ports, horizontal_scan, vertical_scan, recon_score \
         FROM hosts ORDER BY recon_score DESC, horizontal_hosts + vertical_ports DESC LIMIT 2",
    )
    .await;
    assert_eq!(
        top[0],
        "172.16.1.11,1664463600.0,4500,182,105,111,100,true,true,1.0"
    );
    assert!(!top[1].starts_with("172.16.1.11,"), "{top:?}");
    let next: f64 = top[1]
        .rsplit(',')
        .next()
        .and_then(|s| s.parse().ok())
        .expect("score");
    assert!(next < 0.25, "{top:?}");

    // The NjRAT host's web browsing ends in RSTO with payload: not probes.
    let njrat = rows(
        &wh,
        "SELECT horizontal_hosts, vertical_ports, horizontal_scan, vertical_scan FROM hosts \
         WHERE src_ip = '192.168.1.115'",
    )
    .await;
    assert_eq!(njrat, ["1,1,false,false"]);
}

#[tokio::test]
async fn labelled_scanners_top_the_hosts_of_a_mixed_capture() {
    let dir = tempfile::tempdir().expect("tempdir");
    run(Path::new(MIXED_008), dir.path()).await;
    // Host windows over the vertical-scan threshold, and how many of them
    // belong to sources whose connections are labelled Malicious.
    let flagged = rows(
        dir.path(),
        "WITH bad AS (SELECT DISTINCT src_ip FROM clean WHERE label_text = 'Malicious') \
         SELECT count(*), count(bad.src_ip), sum(CAST(h.vertical_scan AS INT)) \
         FROM hosts h LEFT JOIN bad ON h.src_ip = bad.src_ip WHERE h.recon_score >= 1",
    )
    .await;
    assert_eq!(flagged, ["11,11,11"]);
}

/// A day of traffic: five beacons (periods 1 min to 1 h, jitter up to 10 %
/// of the period, fixed sizes) and, for each, a pair with the same number of
/// connections at uniformly random times with random sizes.
#[tokio::test]
async fn generated_beacons_rank_above_random_traffic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, wh) = run_log(dir.path(), &generated_log()).await;

    let ranked = rows(
        &wh,
        "SELECT src_ip, connections, round(score, 3) FROM beacons ORDER BY score DESC",
    )
    .await;
    assert_eq!(ranked.len(), 10, "{ranked:?}");
    for (i, row) in ranked.iter().enumerate() {
        let beacon = row.starts_with("10.1.0.");
        assert_eq!(beacon, i < 5, "rank {}: {row}\n{ranked:#?}", i + 1);
    }
    let gap = rows(
        &wh,
        "SELECT round(min(score) FILTER (WHERE src_ip LIKE '10.1.%'), 3), \
                round(max(score) FILTER (WHERE src_ip LIKE '10.2.%'), 3) FROM beacons",
    )
    .await;
    let (low_beacon, high_random) = gap[0].split_once(',').expect("two values");
    let low_beacon: f64 = low_beacon.parse().expect("number");
    let high_random: f64 = high_random.parse().expect("number");
    assert!(low_beacon > 0.95, "{gap:?}");
    assert!(high_random < 0.85, "{gap:?}");
}

/// A week of logs: an NTP client polling every 1024 s all week, and a
/// trojan beaconing every 200 s (5% jitter) to one server on tcp/449 for
/// five hours of day 3 only.
fn week_log() -> String {
    zeek_log(week_rows())
}

/// The rows of [`week_log`], as (ts, line).
fn week_rows() -> Vec<(f64, String)> {
    const T0: f64 = 1_699_920_000.0; // 2023-11-14 00:00 UTC
    const DAY: f64 = 86_400.0;
    let mut rng = Rng(0x5EED_BEAC_0000_0007);
    let mut rows: Vec<(f64, String)> = Vec::new();
    let mut t = T0 + 7.0;
    let mut n = 0;
    while t < T0 + 7.0 * DAY {
        rows.push((
            t,
            format!("{t:.6}\tN{n}\t10.3.0.9\t123\t203.0.113.123\t123\tudp\tntp\t0.03\t48\t48\tSF\tT\tF\t0\tDd\t1\t76\t1\t76\t(empty)"),
        ));
        t += 1024.0 + rng.uniform(-2.0, 2.0);
        n += 1;
    }
    let start = T0 + 2.0 * DAY + 9.0 * 3600.0;
    let mut t = start;
    let mut n = 0;
    while t < start + 5.0 * 3600.0 {
        let ts = t + rng.uniform(-10.0, 10.0);
        rows.push((
            ts,
            format!("{ts:.6}\tT{n}\t10.3.0.7\t{}\t198.51.100.44\t449\ttcp\t-\t1.2\t310\t1200\tSF\tT\tF\t0\tShADadFf\t7\t682\t6\t1520\t(empty)", 49_152 + n),
        ));
        t += 200.0;
        n += 1;
    }
    rows
}

/// Daily windows: a beacon active five hours of one day is scored against
/// that day, where its duration score counts; in one window for the whole
/// week its histogram and duration scores are 0.
#[tokio::test]
async fn a_beacon_of_five_hours_scores_on_its_own_day() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, wh) = run_log(dir.path(), &week_log()).await;

    let days = rows(
        &wh,
        "SELECT count(DISTINCT window_start), count(*) FILTER (WHERE dest_ip = '203.0.113.123') FROM beacons",
    )
    .await;
    assert_eq!(days, ["7,7"]);
    let trojan = rows(
        &wh,
        "SELECT CAST(window_start AS BIGINT), connections, ts_score >= 0.9, ds_score, dur_score, \
                uncommon_port, score >= 0.6, prevalence, prevalence_modifier, \
                uncommon_port_modifier, first_seen_modifier, round(threat_score - score, 3) \
         FROM beacons WHERE dest_ip = '198.51.100.44'",
    )
    .await;
    // Tcp/449 without a service: +0.15; one of the day's two internal
    // sources reaches the server: prevalence 0.5, -0.15; a destination
    // first seen that day: +0.15.
    assert_eq!(
        trojan,
        ["1700092800,90,true,1.0,0.5,true,true,0.5,-0.15,0.15,0.15,0.15"]
    );

    let wh_week = dir.path().join("wh_week");
    let mut opts = RunOptions::new(&wh_week);
    opts.progress = false;
    opts.overrides = vec![
        ("input".into(), log.display().to_string()),
        ("window_seconds".into(), "0".into()),
    ];
    run_pipeline(&pipeline(), &opts).await.expect("one window");
    let week = rows(
        &wh_week,
        "SELECT count(*), max(hist_score), max(dur_score) FROM beacons WHERE dest_ip = '198.51.100.44'",
    )
    .await;
    assert_eq!(week, ["1,0.0,0.0"]);
    let lower = rows(
        &wh_week,
        "SELECT score FROM beacons WHERE dest_ip = '198.51.100.44'",
    )
    .await;
    let week_score: f64 = lower[0].parse().expect("score");
    assert!(week_score < 0.6, "{week_score}");
}

/// Writes the log text `log` into `dir` and runs the beacon pipeline on it
/// into `dir/wh`; returns the log and warehouse paths.
async fn run_log(dir: &Path, log: &str) -> (PathBuf, PathBuf) {
    let path = dir.join("conn.log");
    std::fs::write(&path, log).expect("write log");
    let wh = dir.join("wh");
    run(&path, &wh).await;
    (path, wh)
}

/// A Zeek TSV conn log of the 21 default fields from (ts, line) rows.
fn zeek_log(mut rows: Vec<(f64, String)>) -> String {
    rows.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut out = String::from(
        "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tconn\n\
         #fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tservice\tduration\torig_bytes\tresp_bytes\tconn_state\tlocal_orig\tlocal_resp\tmissed_bytes\thistory\torig_pkts\torig_ip_bytes\tresp_pkts\tresp_ip_bytes\ttunnel_parents\n\
         #types\ttime\tstring\taddr\tport\taddr\tport\tenum\tstring\tinterval\tcount\tcount\tstring\tbool\tbool\tcount\tstring\tcount\tcount\tcount\tcount\tset[string]\n",
    );
    for (_, text) in rows {
        let _ = writeln!(out, "{text}");
    }
    out
}

fn link(target: &Path, at: &Path) {
    #[cfg(unix)]
    std::os::unix::fs::symlink(target, at).expect("symlink");
    #[cfg(not(unix))]
    std::fs::copy(target, at).map(|_| ()).expect("copy");
}

/// xorshift64*: a seeded generator, so the test data never changes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }

    fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.next()
    }
}

fn generated_log() -> String {
    // 2023-11-14 00:00 UTC: the day is one beacon window.
    const T0: f64 = 1_699_920_000.0;
    const DAY: f64 = 86_400.0;
    let mut rng = Rng(0x5EED_BEAC_0000_0001);
    let mut rows: Vec<(f64, String)> = Vec::new();
    let line = |ts: f64, uid: &str, src: &str, sport: usize, dst: &str, size: i64| {
        let orig_bytes = size - 52;
        let text = format!(
            "{ts:.6}\t{uid}\t{src}\t{sport}\t{dst}\t443\ttcp\tssl\t0.5\t{orig_bytes}\t400\tSF\tT\tF\t0\tShADadFf\t6\t{size}\t5\t600\t(empty)"
        );
        (ts, text)
    };
    for (i, period) in [60.0, 300.0, 900.0, 1800.0, 3600.0].into_iter().enumerate() {
        let (beacon_src, beacon_dst) =
            (format!("10.1.0.{}", i + 1), format!("198.51.100.{}", i + 1));
        let (random_src, random_dst) =
            (format!("10.2.0.{}", i + 1), format!("203.0.113.{}", i + 1));
        let mut count = 0;
        let mut t = T0 + rng.uniform(0.0, period);
        while t < T0 + DAY {
            let jitter = rng.uniform(-0.1 * period, 0.1 * period);
            let uid = format!("B{i}x{count}");
            rows.push(line(
                t + jitter,
                &uid,
                &beacon_src,
                40_000 + count % 20_000,
                &beacon_dst,
                312,
            ));
            count += 1;
            t += period;
        }
        for j in 0..count {
            let (ts, size) = (
                T0 + rng.uniform(0.0, DAY),
                rng.uniform(60.0, 60_000.0) as i64,
            );
            let uid = format!("R{i}x{j}");
            rows.push(line(
                ts,
                &uid,
                &random_src,
                40_000 + j % 20_000,
                &random_dst,
                size,
            ));
        }
    }
    zeek_log(rows)
}

/// A TSV log whose `#fields` lacks the connection's addresses, ports,
/// protocol or state stops the run, naming the file, the line and the
/// missing fields, instead of scoring rows that cannot be scored.
#[tokio::test]
async fn a_log_without_the_connection_fields_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("short.log");
    std::fs::write(
        &log,
        "#separator \\x09\n#path\tconn\n#fields\tts\tuid\tid.orig_h\n#types\ttime\tstring\taddr\n1.0\tCx\t10.0.0.1\n",
    )
    .expect("write log");
    let mut opts = RunOptions::new(dir.path().join("wh"));
    opts.progress = false;
    opts.overrides = vec![("input".into(), log.display().to_string())];
    let err = run_pipeline(&pipeline(), &opts)
        .await
        .expect_err("missing fields")
        .to_string();
    assert!(
        err.contains("short.log:3: bad header: #fields lacks id.orig_p, id.resp_h, id.resp_p, proto, conn_state"),
        "{err}"
    );
    // JSON logs have no header: the row is bad, named by its line.
    let json = dir.path().join("short.json");
    std::fs::write(
        &json,
        "{\"ts\":1.0,\"uid\":\"Ca\",\"id.orig_h\":\"10.0.0.1\",\"id.orig_p\":1,\"id.resp_h\":\"10.0.0.2\",\"id.resp_p\":80,\"proto\":\"tcp\",\"conn_state\":\"S0\"}\n\
         {\"ts\":2.0,\"uid\":\"Cb\",\"id.orig_h\":\"10.0.0.1\",\"id.orig_p\":2,\"id.resp_h\":\"10.0.0.2\",\"proto\":\"tcp\"}\n",
    )
    .expect("write log");
    opts.overrides = vec![("input".into(), json.display().to_string())];
    let err = run_pipeline(&pipeline(), &opts)
        .await
        .expect_err("missing fields")
        .to_string();
    assert!(
        err.contains("short.json:2: missing id.resp_p, conn_state"),
        "{err}"
    );
}

/// Runs the beacon pipeline with `overrides` (and stage bounds) into `wh`.
async fn run_set(
    wh: &Path,
    overrides: &[(&str, String)],
    from: Option<&str>,
    to: Option<&str>,
) -> zeekml_pipeline::Result<()> {
    let mut opts = RunOptions::new(wh);
    opts.progress = false;
    opts.overrides = overrides
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    opts.from = from.map(str::to_string);
    opts.to = to.map(str::to_string);
    run_pipeline(&pipeline(), &opts).await.map(|_| ())
}

/// Files of a table partition with their modification times.
fn partition_files(dir: &Path) -> Vec<(PathBuf, std::time::SystemTime)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("partition exists")
        .map(|e| {
            let e = e.expect("entry");
            (
                e.path(),
                e.metadata().expect("meta").modified().expect("mtime"),
            )
        })
        .collect();
    files.sort();
    files
}

/// The scheduled form: one run per day with `--set date=`, each writing that
/// day's partitions; a rerun replaces its day only, first-seen reads the
/// stored days, and a list edit rescores a stored day without its logs.
#[tokio::test]
async fn scheduled_days_write_their_own_partitions() {
    const T0: f64 = 1_699_920_000.0; // 2023-11-14 00:00 UTC
    const DAY: f64 = 86_400.0;
    let dir = tempfile::tempdir().expect("tempdir");
    let days: Vec<String> = (14..=20).map(|d| format!("2023-11-{d}")).collect();
    let week = week_rows();
    for (i, day) in days.iter().enumerate() {
        let lo = T0 + i as f64 * DAY;
        let of_day = week
            .iter()
            .filter(|(ts, _)| *ts >= lo && *ts < lo + DAY)
            .cloned()
            .collect();
        std::fs::create_dir_all(dir.path().join(day)).expect("day dir");
        std::fs::write(dir.path().join(day).join("conn.log"), zeek_log(of_day)).expect("log");
    }
    let wh = dir.path().join("wh");
    let day_run = |day: &str| {
        vec![
            ("date", day.to_string()),
            (
                "input",
                dir.path().join(day).join("conn.log").display().to_string(),
            ),
        ]
    };
    // Days out of order: the trojan's day first, then the week.
    run_set(&wh, &day_run("2023-11-16"), None, None)
        .await
        .expect("day 3");
    for day in &days {
        run_set(&wh, &day_run(day), None, None).await.expect("day");
    }
    let per_day = rows(
        &wh,
        "SELECT date, count(*), count(*) FILTER (WHERE dest_ip = '198.51.100.44') FROM beacons GROUP BY date ORDER BY date",
    )
    .await;
    assert_eq!(
        per_day,
        [
            "2023-11-14,1,0",
            "2023-11-15,1,0",
            "2023-11-16,2,1",
            "2023-11-17,1,0",
            "2023-11-18,1,0",
            "2023-11-19,1,0",
            "2023-11-20,1,0"
        ]
    );
    for table in ["beacon_conns", "beacon_dests", "hosts", "conn_scores"] {
        let n = rows(&wh, &format!("SELECT count(DISTINCT date) FROM {table}")).await;
        assert_eq!(n, ["7"], "{table}");
    }

    // The trojan's day scores as in a one-off run of the whole week.
    let columns =
        "CAST(window_start AS BIGINT), connections, timestamps, score, ts_score, ds_score, \
                   hist_score, dur_score, prevalence, prevalence_modifier, first_seen_modifier, \
                   uncommon_port_modifier, threat_score";
    let daily = rows(
        &wh,
        &format!("SELECT {columns} FROM beacons WHERE dest_ip = '198.51.100.44'"),
    )
    .await;
    std::fs::create_dir_all(dir.path().join("week")).expect("week dir");
    let (_, wh_week) = run_log(&dir.path().join("week"), &week_log()).await;
    let once = rows(
        &wh_week,
        &format!("SELECT {columns} FROM beacons WHERE dest_ip = '198.51.100.44'"),
    )
    .await;
    assert_eq!(daily, once);
    assert_eq!(
        daily,
        ["1700092800,90,90,0.616,0.965,1.0,0.0,0.5,0.5,-0.15,0.15,0.15,0.766"]
    );

    // First seen: the NTP server has been polled since the first day.
    let ntp = rows(
        &wh,
        "SELECT date, dest_first_seen < 1699920100, dest_age_days > 6.9, first_seen_modifier \
         FROM beacons WHERE dest_ip = '203.0.113.123' AND date IN ('2023-11-14', '2023-11-20') ORDER BY date",
    )
    .await;
    assert_eq!(
        ntp,
        ["2023-11-14,true,false,0.15", "2023-11-20,true,true,0.15"]
    );
    // Thirty-six days later it is an old destination (-0.15), unless the
    // history kept is shorter than that.
    let later = T0 + 36.0 * DAY;
    let ntp_rows = (0..80)
        .map(|n| {
            let t = later + 7.0 + 1024.0 * n as f64;
            (t, format!("{t:.6}\tL{n}\t10.3.0.9\t123\t203.0.113.123\t123\tudp\tntp\t0.03\t48\t48\tSF\tT\tF\t0\tDd\t1\t76\t1\t76\t(empty)"))
        })
        .collect();
    std::fs::create_dir_all(dir.path().join("2023-12-20")).expect("day dir");
    std::fs::write(dir.path().join("2023-12-20/conn.log"), zeek_log(ntp_rows)).expect("log");
    run_set(&wh, &day_run("2023-12-20"), None, None)
        .await
        .expect("later day");
    let old = "SELECT count(*), min(round(dest_age_days)), min(first_seen_modifier) FROM beacons WHERE date = '2023-12-20'";
    assert_eq!(rows(&wh, old).await, ["1,37.0,-0.15"]);
    let mut shorter = day_run("2023-12-20");
    shorter.push(("history_days", "30".into()));
    run_set(&wh, &shorter, None, None).await.expect("rerun");
    assert_eq!(rows(&wh, old).await, ["1,1.0,0.15"]);

    // A rerun of a day replaces that day's partition and no other.
    let other = wh.join("beacons/date=2023-11-15");
    let before = partition_files(&other);
    run_set(&wh, &day_run("2023-11-16"), None, None)
        .await
        .expect("rerun");
    assert_eq!(partition_files(&other), before);
    assert_eq!(
        rows(
            &wh,
            "SELECT count(*) FROM beacons WHERE date = '2023-11-16'"
        )
        .await,
        ["2"]
    );

    // An edited list rescores a stored day from its stored connections:
    // the logs are not read (the input does not exist).
    let rescore = vec![
        ("date", "2023-11-16".to_string()),
        ("input", dir.path().join("gone.log").display().to_string()),
        ("never_score", "198.51.100.44/32".to_string()),
    ];
    run_set(&wh, &rescore, Some("beacon_scope"), Some("beacons"))
        .await
        .expect("rescore");
    assert_eq!(
        rows(&wh, "SELECT date, count(*) FROM beacons WHERE date IN ('2023-11-15', '2023-11-16') GROUP BY date ORDER BY date").await,
        ["2023-11-15,1", "2023-11-16,1"]
    );

    // A run without a date would replace every day: refused.
    let err = run_set(&wh, &day_run("2023-11-16")[1..], None, None)
        .await
        .expect_err("whole-table write over partitions")
        .to_string();
    assert!(err.contains("it holds partitions"), "{err}");
}

/// `memory_limit` bounds the SQL stages' memory pool without changing a
/// result; a setting that is not a size stops the run before any stage.
#[tokio::test]
async fn a_memory_limit_leaves_the_scores_unchanged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let free = dir.path().join("free");
    run(Path::new(NJRAT), &free).await;
    let bounded = dir.path().join("bounded");
    let input = ("input", NJRAT.to_string());
    run_set(
        &bounded,
        &[input.clone(), ("memory_limit", "64MB".into())],
        None,
        None,
    )
    .await
    .expect("runs within 64 MB");
    // Sums of durations are rounded: parallel sums add in any order.
    let all = "SELECT * EXCEPT (uids, total_duration), round(total_duration, 6), \
               array_to_string(uids, ' ') AS uids FROM beacons ORDER BY src_ip, dest_ip";
    assert_eq!(rows(&free, all).await, rows(&bounded, all).await);
    let hosts = "SELECT * FROM hosts ORDER BY src_ip, window_start";
    let bounded_hosts = rows(&bounded, hosts).await;
    assert!(bounded_hosts.len() > 1, "{bounded_hosts:?}");
    assert_eq!(rows(&free, hosts).await, bounded_hosts);
    let err = run_set(
        &bounded,
        &[input, ("memory_limit", "lots".into())],
        None,
        None,
    )
    .await
    .expect_err("not a size")
    .to_string();
    assert!(
        err.contains("memory_limit 'lots': expected a number with an optional unit, e.g. 2GB"),
        "{err}"
    );
}

/// A day that is not a date stops the run before any table is written.
#[tokio::test]
async fn a_date_that_is_no_day_is_refused_up_front() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wh = dir.path().join("wh");
    let day = [("input", NJRAT.to_string()), ("date", "2017-02-29".into())];
    let err = run_set(&wh, &day, None, None)
        .await
        .expect_err("not a day")
        .to_string();
    assert!(
        err.contains("partition value '2017-02-29' for beacon_conns") && err.contains("YYYY-MM-DD"),
        "{err}"
    );
    assert!(!wh.join("raw").exists() && !wh.join("clean").exists());
}
