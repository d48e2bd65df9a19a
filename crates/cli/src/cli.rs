//! Command-line arguments and logging set-up.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Train a detector of reconnaissance and C2 traffic from Zeek conn logs,
/// then score new logs with it.
#[derive(Debug, Parser)]
#[command(name = "zeekml", version, about)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Log format on stderr: human-readable text, or JSON lines for schedulers.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "ZEEKML_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// Log filter (tracing EnvFilter syntax), e.g. `info` or `zeekml_pipeline=debug`.
    #[arg(long, global = true, env = "ZEEKML_LOG", default_value = "info")]
    pub log: String,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write UWF-ZeekData22-shaped CSV part files, or the same connections as
    /// native Zeek conn logs (synthetic, seeded).
    Generate {
        /// Total rows to write.
        #[arg(long, default_value_t = 2_000_000)]
        rows: u64,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// Random seed; the same seed writes the same bytes.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Number of part files.
        #[arg(long, default_value_t = 5)]
        parts: usize,
        /// File layout: UWF CSV parts (labelled, for training) or Zeek TSV
        /// conn logs (unlabelled, for scoring).
        #[arg(long, value_enum, default_value_t = GenerateFormat::Csv)]
        format: GenerateFormat,
        /// Simulated network: a campus like UWF-ZeekData22's, or a Windows
        /// enterprise with other services, ports and recon tools (to test a
        /// model on traffic it was not trained on).
        #[arg(long, value_enum, default_value_t = GenerateProfile::Campus)]
        profile: GenerateProfile,
    },
    /// Run a pipeline file's stages into the warehouse.
    Run {
        /// Pipeline file, e.g. pipelines/uwf_recon.toml.
        pipeline: PathBuf,
        /// Override a pipeline parameter: --set input=data/uwf (repeatable).
        #[arg(long = "set", value_parser = parse_key_value)]
        set: Vec<(String, String)>,
        /// Warehouse directory.
        #[arg(long, default_value = "warehouse", env = "ZEEKML_WAREHOUSE")]
        warehouse: PathBuf,
        /// Run only this stage.
        #[arg(long, conflicts_with_all = ["from", "to"])]
        only: Option<String>,
        /// Start at this stage (earlier tables must exist).
        #[arg(long)]
        from: Option<String>,
        /// Stop after this stage.
        #[arg(long)]
        to: Option<String>,
        /// When another run is writing the warehouse, wait up to this many
        /// seconds for it to end (default: stop at once, naming it).
        #[arg(
            long,
            value_name = "SECONDS",
            default_value_t = 0,
            env = "ZEEKML_WAIT_FOR_LOCK"
        )]
        wait_for_lock: u64,
    },
    /// Query warehouse tables with SQL (read-only).
    Sql {
        /// The query, e.g. "SELECT * FROM metrics".
        #[arg(required_unless_present = "file", conflicts_with = "file")]
        query: Option<String>,
        /// Read the query from this file instead (`-` for stdin); files may
        /// start with `--` comments.
        #[arg(long, short = 'f')]
        file: Option<PathBuf>,
        /// Warehouse directory.
        #[arg(long, default_value = "warehouse", env = "ZEEKML_WAREHOUSE")]
        warehouse: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// Read TABLE as of an earlier Delta version (the `runs` table's
        /// `table_version`, or a model card's `training_table`), e.g.
        /// `--as-of features=3`; repeatable.
        #[arg(long = "as-of", value_name = "TABLE=VERSION", value_parser = parse_as_of)]
        as_of: Vec<(String, u64)>,
    },
    /// Score connections with a saved model.
    Score {
        /// Model directory, e.g. warehouse/models/uwf_recon.
        #[arg(long)]
        model: PathBuf,
        /// Files, directory, glob or URL of conn logs.
        #[arg(long)]
        input: String,
        /// Output Parquet file.
        #[arg(long)]
        out: PathBuf,
        /// Score at or above which a connection is flagged (default: the model card's).
        #[arg(long)]
        threshold: Option<f64>,
        /// Input layout.
        #[arg(long = "input-format", value_enum, default_value_t = InputKind::Zeek)]
        input_format: InputKind,
        /// Set unreadable rows aside instead of failing.
        #[arg(long)]
        reject_bad_rows: bool,
        /// Add each score's K largest feature contributions (TreeSHAP, in
        /// log-odds): columns `reasons`, `contribution_rest`, `base_value`.
        #[arg(long, value_name = "K", default_value_t = 0)]
        explain: usize,
    },
    /// Write one self-contained HTML report (inline SVG charts) of what the
    /// warehouse holds: model, data, runs, beacons, hosts, alerts.
    Report {
        /// Warehouse directory.
        #[arg(long, default_value = "warehouse", env = "ZEEKML_WAREHOUSE")]
        warehouse: PathBuf,
        /// Output HTML file.
        #[arg(long)]
        out: PathBuf,
    },
    /// Delete the data files no recent table version reads: files replaced
    /// by later writes, and files of runs killed before their commit. Takes
    /// the warehouse's write lock.
    Vacuum {
        /// Warehouse directory.
        #[arg(long, default_value = "warehouse", env = "ZEEKML_WAREHOUSE")]
        warehouse: PathBuf,
        /// Keep what the versions of the last HOURS hours read, so that
        /// `sql --as-of` and model cards can go back that far.
        #[arg(long, value_name = "HOURS", default_value_t = 168)]
        retain_hours: u64,
        /// List the files without deleting them.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum GenerateFormat {
    /// `part-00000-<uuid>-c000.csv` like the UWF-ZeekData22 export.
    Csv,
    /// `conn-00000.log` like a Zeek sensor (TSV with `#` headers).
    ZeekTsv,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum GenerateProfile {
    /// University campus, 143.88.0.0/16, ~21% recon rows (UWF-like).
    Campus,
    /// Windows enterprise, 10.20.0.0/16 clients and 10.10.0.0/16 servers,
    /// ~15% recon rows.
    Enterprise,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum InputKind {
    /// Native Zeek conn logs (TSV or JSON lines, optionally gzipped).
    Zeek,
    /// CSV with a header (UWF exports).
    Csv,
    /// Parquet (UWF releases).
    Parquet,
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.to_string()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("expected KEY=VALUE, got '{s}'"))
}

/// Installs the stderr logger; stdout stays for results. Colour only on a
/// terminal: a scheduler's captured log (cron's file, Airflow's task log)
/// would show the escape codes as text.
pub fn init_logging(args: &GlobalArgs) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let mut filter = EnvFilter::try_new(&args.log).unwrap_or_else(|_| EnvFilter::new("info"));
    // delta-rs logs each table scan and commit at `info`; only its warnings
    // are the user's business, unless the filter names it.
    for quiet in ["buoyant_kernel", "buoyant_kernel_engine", "deltalake_core"] {
        if !args.log.contains(quiet) {
            if let Ok(directive) = format!("{quiet}=warn").parse() {
                filter = filter.add_directive(directive);
            }
        }
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match args.log_format {
        LogFormat::Text => builder.with_target(false).compact().init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

/// `TABLE=VERSION` of `zeekml sql --as-of`.
fn parse_as_of(s: &str) -> Result<(String, u64), String> {
    let (table, version) = s
        .split_once('=')
        .ok_or_else(|| format!("'{s}': expected TABLE=VERSION, e.g. features=3"))?;
    let version = version
        .parse()
        .map_err(|_| format!("'{s}': the version must be a whole number, e.g. features=3"))?;
    Ok((table.to_string(), version))
}
