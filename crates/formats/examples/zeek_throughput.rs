//! Measures native Zeek TSV parse throughput on a synthetic large log made by
//! replicating the data rows of a real labelled Stratosphere log.
//!
//! ```text
//! cargo run --release -p zeekml-formats --example zeek_throughput -- [ROWS] [SOURCE_LOG] [single]
//! ```
//! Prints rows/s for one file on one thread (`read_zeek_bytes`), and (unless
//! `single`) for the same rows split over 4 files read in parallel from disk
//! (`read_zeek`). On a shared machine, run `single` under `perf stat` or
//! `/usr/bin/time` to get rows per CPU-second.

use std::time::Instant;

use zeekml_formats::{read_zeek, read_zeek_bytes, ZeekReadOptions};

const DEFAULT_SOURCE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/realdata/stratosphere-labeled-tsv/011-zeek-mixed.conn.log.labeled"
);

/// Header lines plus `rows` data lines cycled from `source`.
fn synthesize(source: &str, rows: usize) -> Vec<u8> {
    let header: Vec<&str> = source.lines().filter(|l| l.starts_with('#')).collect();
    let data: Vec<&str> = source.lines().filter(|l| !l.starts_with('#')).collect();
    let mut out = Vec::with_capacity(source.len() / data.len().max(1) * rows + 4096);
    for h in header {
        out.extend_from_slice(h.as_bytes());
        out.push(b'\n');
    }
    for line in data.iter().cycle().take(rows) {
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }
    out
}

/// CPU seconds used by this process so far (Linux `/proc/self/stat`), so a
/// busy shared machine does not distort the figure; `None` elsewhere.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after_name = stat.rsplit_once(") ")?.1;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the full line, in 1/100 s ticks.
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let rows: usize = args.next().map_or(Ok(2_000_000), |a| a.parse())?;
    let source_path = args.next().unwrap_or_else(|| DEFAULT_SOURCE.to_string());
    let single_only = args.next().as_deref() == Some("single");
    let source = std::fs::read_to_string(&source_path)?;
    let bytes = synthesize(&source, rows);
    let opts = ZeekReadOptions::default();
    println!(
        "synthetic log: {rows} rows, {:.1} MB, from {source_path}",
        bytes.len() as f64 / 1e6
    );

    for round in 1..=3 {
        let start = Instant::now();
        let cpu_start = cpu_seconds();
        let read = read_zeek_bytes("synthetic.conn.log", &bytes, &opts)?;
        let secs = start.elapsed().as_secs_f64();
        let cpu = cpu_start.zip(cpu_seconds()).map(|(a, b)| b - a);
        assert_eq!(read.rows, rows as u64);
        println!(
            "single file, 1 thread, round {round}: {:.3} s wall, {:.2} M rows/s, {:.0} MB/s; {}",
            secs,
            rows as f64 / secs / 1e6,
            bytes.len() as f64 / secs / 1e6,
            cpu.map_or("CPU time unknown".to_string(), |c| format!(
                "{c:.2} CPU s, {:.2} M rows per CPU second",
                rows as f64 / c / 1e6
            ))
        );
    }

    if single_only {
        return Ok(());
    }

    // Four files of rows/4 each, read through the location resolver in parallel.
    let dir = std::env::temp_dir().join(format!("zeek_throughput_{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let part = synthesize(&source, rows / 4);
    for i in 0..4 {
        std::fs::write(dir.join(format!("conn.{i:02}.log")), &part)?;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let location = dir.to_string_lossy().into_owned();
    for round in 1..=3 {
        let start = Instant::now();
        let cpu_start = cpu_seconds();
        let read = runtime.block_on(read_zeek(&location, &opts))?;
        let secs = start.elapsed().as_secs_f64();
        let cpu = cpu_start.zip(cpu_seconds()).map(|(a, b)| b - a);
        println!(
            "4 files via read_zeek, {} cores, round {round}: {:.3} s wall, {:.2} M rows/s; {}",
            std::thread::available_parallelism().map_or(1, |n| n.get()),
            secs,
            read.rows as f64 / secs / 1e6,
            cpu.map_or("CPU time unknown".to_string(), |c| format!("{c:.2} CPU s"))
        );
    }
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
