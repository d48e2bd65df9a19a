//! Seeded generator of UWF-ZeekData22-shaped CSV part files, or of the same
//! connections as native Zeek conn logs ([`OutputFormat::ZeekTsv`]).
//!
//! The output mimics the Spark CSV export of UWF-ZeekData22: files named
//! `part-00000-<uuid>-c000.csv`, the 23-column header in the export's order,
//! Java-formatted doubles (`1.644465509979958E9`), `false`/`true` booleans,
//! empty cells for unset values, and every `Reconnaissance` flow written 256
//! times (identical rows, same `uid`), scattered over the parts. Traffic is
//! two weeks of February 2022 on one of two networks ([`Profile`]): by
//! default a campus (143.88.0.0/16) like UWF's, or a Windows enterprise with
//! other services, ports, timing and recon tools, so a model trained on one
//! can be tested on traffic it has not seen. In either, recon comes in
//! bursts from a few attacker hosts and overlaps benign traffic (DNS sweeps
//! resemble client DNS), so a model cannot separate the classes perfectly
//! once the duplicates are accounted for.
//!
//! [`OutputFormat::ZeekTsv`] writes what a sensor writes instead, so the
//! native-log path (`zeekml score`) can be exercised at scale:
//! `conn-00000.log`, ... with Zeek's header block, the 21 default conn
//! fields, `-` for unset, `F` booleans, `(empty)` tunnel_parents and no
//! labels (conn.log has none).
//!
//! The same [`GenerateConfig`] always produces byte-identical files: every
//! random draw comes from this crate's own PRNG, keyed by the seed and the
//! row, independent of threads.

#![warn(missing_docs)]

mod benign;
mod cells;
mod error;
mod flow;
mod ids;
mod net;
mod profile;
mod recon;
mod rng;

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

pub use error::{Error, Result};
pub use flow::{HEADER, NULLABLE_COLUMNS, ZEEK_FIELDS, ZEEK_TYPES};
pub use profile::Profile;

use flow::Label;
use profile::Params;
use rng::Rng;

/// How many identical rows each Reconnaissance flow has in UWF-ZeekData22.
pub const RECON_COPIES: u64 = 256;

const STREAM_RECON: u64 = 1;
const STREAM_ROW: u64 = 2;
const STREAM_SHUFFLE: u64 = 3;
const STREAM_FILE: u64 = 4;

/// Layout of the generated files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputFormat {
    /// UWF-ZeekData22's Spark CSV export (`part-00000-<uuid>-c000.csv`),
    /// labels included: what the training pipeline reads.
    #[default]
    UwfCsv,
    /// Native Zeek conn logs in TSV (`conn-00000.log`, ...), no labels: what
    /// a sensor writes and `zeekml score` reads.
    ZeekTsv,
}

/// What to generate and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenerateConfig {
    /// Total data rows over all parts (exact).
    pub rows: u64,
    /// Seed; the same seed gives byte-identical files.
    pub seed: u64,
    /// Number of part files (the real export has 5).
    pub parts: usize,
    /// Output directory, created if missing.
    pub out_dir: PathBuf,
    /// File layout; the rows are the same in either.
    pub format: OutputFormat,
    /// Which network the traffic comes from.
    pub profile: Profile,
}

impl GenerateConfig {
    /// `rows` campus rows into `out_dir` with seed 42 and 5 parts.
    pub fn new(rows: u64, out_dir: impl Into<PathBuf>) -> Self {
        GenerateConfig {
            rows,
            seed: 42,
            parts: 5,
            out_dir: out_dir.into(),
            format: OutputFormat::UwfCsv,
            profile: Profile::Campus,
        }
    }
}

/// What [`generate`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateSummary {
    /// The part files, in part order.
    pub files: Vec<PathBuf>,
    /// Data rows written (equals the configured rows).
    pub rows: u64,
    /// Rows per `mitre_attack_tactics` value (labels with zero rows omitted).
    pub rows_by_label: BTreeMap<String, u64>,
    /// Distinct Reconnaissance flows (each written [`RECON_COPIES`] times).
    pub recon_flows: u64,
    /// The traffic profile the rows were drawn from.
    pub profile: Profile,
    /// Wall-clock seconds spent.
    pub seconds: f64,
}

/// How many rows of each kind a dataset of `rows` rows gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Plan {
    recon_flows: u64,
    discovery: u64,
    benign: u64,
}

impl Plan {
    /// Recon copies take the profile's recon share of the rows (campus 21%,
    /// like the real CSV's ~0.42M of ~2M; at least three flows once 768 rows
    /// allow it, one from 256 rows; none below), Discovery its Discovery
    /// share (campus 0.1%), and the rest is benign.
    fn for_rows(rows: u64, p: &Params) -> Plan {
        let scaled = (rows as f64 * p.recon_share / RECON_COPIES as f64).round() as u64;
        let recon_flows = scaled.max((rows / RECON_COPIES).min(3));
        let left = rows - recon_flows * RECON_COPIES;
        let discovery = ((rows as f64 * p.discovery_share).round() as u64).min(left);
        Plan {
            recon_flows,
            discovery,
            benign: left - discovery,
        }
    }
}

/// Name of part `part` of a dataset in `format`.
fn part_file_name(seed: u64, part: usize, format: OutputFormat) -> String {
    match format {
        OutputFormat::UwfCsv => csv_part_file_name(seed, part),
        OutputFormat::ZeekTsv => format!("conn-{part:05}.log"),
    }
}

/// `part-00000-<uuid>-c000.csv` like Spark (which numbers every file 00000),
/// the uuid derived from the seed.
fn csv_part_file_name(seed: u64, part: usize) -> String {
    let mut rng = Rng::for_item(seed, STREAM_FILE, part as u64);
    let (hi, lo) = (rng.next_u64(), rng.next_u64());
    // Shape of a version-4 UUID.
    let hi = (hi & !0xF000) | 0x4000;
    let lo = (lo & !(0b11 << 62)) | (0b10 << 62);
    format!(
        "part-00000-{:08x}-{:04x}-{:04x}-{:04x}-{:012x}-c000.csv",
        hi >> 32,
        (hi >> 16) & 0xFFFF,
        hi & 0xFFFF,
        lo >> 48,
        lo & 0xFFFF_FFFF_FFFF
    )
}

/// Prefix and suffix of the part files a format writes.
fn part_pattern(format: OutputFormat) -> (&'static str, &'static str) {
    match format {
        OutputFormat::UwfCsv => ("part-", ".csv"),
        OutputFormat::ZeekTsv => ("conn-", ".log"),
    }
}

fn is_part_file(name: &str, format: OutputFormat) -> bool {
    let (prefix, suffix) = part_pattern(format);
    name.starts_with(prefix) && name.ends_with(suffix)
}

fn is_temp_part(name: &str, format: OutputFormat) -> bool {
    name.strip_prefix('.')
        .and_then(|n| n.strip_suffix(".tmp"))
        .is_some_and(|n| is_part_file(n, format))
}

/// Generates the dataset described by `cfg`.
///
/// Existing part files of the same format in `cfg.out_dir` (`part-*.csv`,
/// or `conn-*.log`) are replaced: the new parts are first written under
/// hidden temporary names (`.part-…csv.tmp`, `.conn-…log.tmp`), and only
/// once all of them are complete are the old parts removed and the new ones
/// renamed into place. A failed run thus leaves the previous dataset as it
/// was (and removes its own temporary files); other files in the directory,
/// including parts of the other format, are never touched.
#[tracing::instrument(skip_all, fields(rows = cfg.rows, seed = cfg.seed, parts = cfg.parts, format = ?cfg.format, profile = %cfg.profile))]
pub fn generate(cfg: &GenerateConfig) -> Result<GenerateSummary> {
    let started = Instant::now();
    if cfg.parts == 0 {
        return Err(Error::InvalidConfig {
            message: "parts must be at least 1".into(),
        });
    }
    if cfg.rows > u64::from(u32::MAX) {
        return Err(Error::InvalidConfig {
            message: format!("rows must be at most {}, got {}", u32::MAX, cfg.rows),
        });
    }
    fs::create_dir_all(&cfg.out_dir).map_err(|source| Error::OutputDir {
        path: cfg.out_dir.clone(),
        source,
    })?;

    let params = cfg.profile.params();
    let seed = cfg.profile.stream_seed(cfg.seed);
    let plan = Plan::for_rows(cfg.rows, params);
    tracing::info!(?plan, "planned rows");
    let recon = recon::recon_lines(seed, plan.recon_flows as usize, cfg.format, params);
    let slots = shuffled_slots(seed, &plan);

    let names: Vec<String> = (0..cfg.parts)
        .map(|p| part_file_name(seed, p, cfg.format))
        .collect();
    let temps: Vec<PathBuf> = names
        .iter()
        .map(|n| cfg.out_dir.join(format!(".{n}.tmp")))
        .collect();
    let finals: Vec<PathBuf> = names.iter().map(|n| cfg.out_dir.join(n)).collect();

    let written = write_parts(cfg, seed, &plan, &recon, &slots, &temps);
    if let Err(e) = written {
        for t in &temps {
            let _ = fs::remove_file(t);
        }
        return Err(e);
    }
    replace_parts(&cfg.out_dir, cfg.format, &names, &temps, &finals)?;

    let mut rows_by_label = BTreeMap::new();
    for (label, n) in [
        (Label::None, plan.benign),
        (Label::Reconnaissance, plan.recon_flows * RECON_COPIES),
        (Label::Discovery, plan.discovery),
    ] {
        if n > 0 {
            rows_by_label.insert(label.name().to_string(), n);
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    tracing::info!(rows = cfg.rows, seconds, dir = %cfg.out_dir.display(), "generated");
    Ok(GenerateSummary {
        files: finals,
        rows: cfg.rows,
        rows_by_label,
        recon_flows: plan.recon_flows,
        profile: cfg.profile,
        seconds,
    })
}

/// Row order of the whole dataset: value `v < recon_flows` is a copy of recon
/// flow `v`; otherwise `v - recon_flows` numbers a Discovery (first
/// `discovery` numbers) or benign row. A seeded Fisher-Yates shuffle spreads
/// the 256 copies of each flow over all parts.
fn shuffled_slots(seed: u64, plan: &Plan) -> Vec<u32> {
    let recon_rows = plan.recon_flows * RECON_COPIES;
    let total = recon_rows + plan.discovery + plan.benign;
    let mut slots: Vec<u32> = Vec::with_capacity(total as usize);
    for flow in 0..plan.recon_flows {
        slots.extend(std::iter::repeat_n(flow as u32, RECON_COPIES as usize));
    }
    slots.extend(
        (plan.recon_flows..plan.recon_flows + plan.discovery + plan.benign).map(|v| v as u32),
    );
    let mut rng = Rng::for_item(seed, STREAM_SHUFFLE, 0);
    for i in (1..slots.len()).rev() {
        let j = rng.range(0, i as u64) as usize;
        slots.swap(i, j);
    }
    slots
}

/// Writes every part to its temporary path, on up to one thread per core.
/// `seed` is the profile's stream seed.
fn write_parts(
    cfg: &GenerateConfig,
    seed: u64,
    plan: &Plan,
    recon: &[Vec<u8>],
    slots: &[u32],
    temps: &[PathBuf],
) -> Result<()> {
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(cfg.parts);
    let next = AtomicUsize::new(0);
    let current: Vec<AtomicUsize> = (0..workers).map(|_| AtomicUsize::new(usize::MAX)).collect();
    let total = slots.len();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                let (next, current) = (&next, &current[w]);
                scope.spawn(move || -> Result<()> {
                    loop {
                        let part = next.fetch_add(1, Ordering::Relaxed);
                        if part >= cfg.parts {
                            return Ok(());
                        }
                        current.store(part, Ordering::Relaxed);
                        let range = (part * total / cfg.parts)..((part + 1) * total / cfg.parts);
                        write_part(cfg, seed, plan, recon, &slots[range], &temps[part])?;
                    }
                })
            })
            .collect();
        let mut first_err = None;
        for (w, h) in handles.into_iter().enumerate() {
            let outcome = h.join().unwrap_or_else(|_| {
                Err(Error::WorkerPanicked {
                    part: current[w].load(Ordering::Relaxed),
                })
            });
            if let Err(e) = outcome {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    })
}

fn write_part(
    cfg: &GenerateConfig,
    seed: u64,
    plan: &Plan,
    recon: &[Vec<u8>],
    slots: &[u32],
    path: &Path,
) -> Result<()> {
    const FLUSH_AT: usize = 1 << 20;
    let io_err = |source| Error::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::create(path).map_err(io_err)?;
    let params = cfg.profile.params();
    // Rows are rendered straight into one buffer that is flushed in ~1 MiB writes.
    let mut buf = Vec::with_capacity(FLUSH_AT + 4096);
    match cfg.format {
        OutputFormat::UwfCsv => {
            buf.extend_from_slice(HEADER.as_bytes());
            buf.push(b'\n');
        }
        OutputFormat::ZeekTsv => flow::write_zeek_header(&mut buf),
    }
    for &slot in slots {
        let slot = u64::from(slot);
        if slot < plan.recon_flows {
            buf.extend_from_slice(&recon[slot as usize]);
        } else {
            let id = slot - plan.recon_flows;
            let mut rng = Rng::for_item(seed, STREAM_ROW, id);
            let flow = if id < plan.discovery {
                benign::discovery_flow(&mut rng, params)
            } else {
                benign::benign_flow(&mut rng, params)
            };
            flow.render_as(cfg.format, &mut rng, &mut buf);
        }
        if buf.len() >= FLUSH_AT {
            file.write_all(&buf).map_err(io_err)?;
            buf.clear();
        }
    }
    if cfg.format == OutputFormat::ZeekTsv {
        flow::write_zeek_close(&mut buf);
    }
    file.write_all(&buf).map_err(io_err)?;
    file.sync_all().map_err(io_err)
}

/// Removes earlier parts of `format` and stray temporaries not in the new
/// set, then moves the new parts into place.
fn replace_parts(
    dir: &Path,
    format: OutputFormat,
    names: &[String],
    temps: &[PathBuf],
    finals: &[PathBuf],
) -> Result<()> {
    let entries = fs::read_dir(dir).map_err(|source| Error::OutputDir {
        path: dir.to_path_buf(),
        source,
    })?;
    for entry in entries {
        let entry = entry.map_err(|source| Error::OutputDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let ours = names
            .iter()
            .any(|n| n == name || name.strip_prefix('.') == Some(&format!("{n}.tmp")));
        if !ours && (is_part_file(name, format) || is_temp_part(name, format)) {
            fs::remove_file(entry.path()).map_err(|source| Error::Replace {
                path: entry.path(),
                source,
            })?;
        }
    }
    for (tmp, fin) in temps.iter().zip(finals) {
        fs::rename(tmp, fin).map_err(|source| Error::Replace {
            path: fin.clone(),
            source,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_matches_the_real_shares_and_adds_up() {
        let campus = Profile::Campus.params();
        let p = Plan::for_rows(2_000_000, campus);
        assert_eq!(
            p,
            Plan {
                recon_flows: 1641,
                discovery: 2000,
                benign: 1_577_904
            }
        );
        assert_eq!(
            Plan::for_rows(1000, campus),
            Plan {
                recon_flows: 3,
                discovery: 1,
                benign: 231
            }
        );
        assert_eq!(
            Plan::for_rows(256, campus),
            Plan {
                recon_flows: 1,
                discovery: 0,
                benign: 0
            }
        );
        assert_eq!(
            Plan::for_rows(255, campus),
            Plan {
                recon_flows: 0,
                discovery: 0,
                benign: 255
            }
        );
        assert_eq!(
            Plan::for_rows(0, campus),
            Plan {
                recon_flows: 0,
                discovery: 0,
                benign: 0
            }
        );
        for profile in Profile::ALL {
            for rows in [1, 100, 511, 512, 767, 768, 5000, 123_457] {
                let p = Plan::for_rows(rows, profile.params());
                assert_eq!(p.recon_flows * RECON_COPIES + p.discovery + p.benign, rows);
            }
        }
        // The enterprise has fewer recon rows and more Discovery.
        assert_eq!(
            Plan::for_rows(2_000_000, Profile::Enterprise.params()),
            Plan {
                recon_flows: 1172,
                discovery: 4000,
                benign: 1_695_968
            }
        );
    }

    #[test]
    fn part_names_look_like_spark_and_differ() {
        let a = part_file_name(42, 0, OutputFormat::UwfCsv);
        assert_eq!(
            a.len(),
            "part-00000-0af89d10-0000-4000-8000-000000000000-c000.csv".len()
        );
        assert!(a.starts_with("part-00000-") && a.ends_with("-c000.csv"));
        assert_eq!(&a[25..26], "4");
        assert_ne!(a, part_file_name(42, 1, OutputFormat::UwfCsv));
        assert_ne!(a, part_file_name(43, 0, OutputFormat::UwfCsv));
        assert_eq!(a, part_file_name(42, 0, OutputFormat::UwfCsv));
        assert_eq!(
            part_file_name(42, 3, OutputFormat::ZeekTsv),
            "conn-00003.log"
        );
        assert!(is_part_file(&a, OutputFormat::UwfCsv));
        assert!(!is_part_file(&a, OutputFormat::ZeekTsv));
        assert!(is_part_file("conn-00003.log", OutputFormat::ZeekTsv));
        assert!(is_temp_part(".conn-00003.log.tmp", OutputFormat::ZeekTsv));
        assert!(!is_temp_part(".conn-00003.log.tmp", OutputFormat::UwfCsv));
        assert!(is_temp_part(&format!(".{a}.tmp"), OutputFormat::UwfCsv));
    }

    #[test]
    fn shuffle_keeps_every_slot() {
        let plan = Plan::for_rows(5000, Profile::Campus.params());
        let mut slots = shuffled_slots(7, &plan);
        assert_eq!(slots.len(), 5000);
        // The copies of flow 0 must not sit together.
        let first: Vec<usize> = slots
            .iter()
            .enumerate()
            .filter(|(_, &v)| v == 0)
            .map(|(i, _)| i)
            .collect();
        assert_eq!(first.len(), 256);
        assert!(first[255] - first[0] > 3000);
        slots.sort_unstable();
        let expected_tail: Vec<u32> = (plan.recon_flows as u32
            ..plan.recon_flows as u32 + 5000 - 256 * plan.recon_flows as u32)
            .collect();
        assert_eq!(
            &slots[256 * plan.recon_flows as usize..],
            &expected_tail[..]
        );
    }
}
