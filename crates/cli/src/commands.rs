//! Runs one parsed command through the library crates and prints results.

use anyhow::Context;
use zeekml_pipeline::{InputFormat, OnBadRows, OutputFormat, RunOptions, ScoreOptions};
use zeekml_report::SectionStatus;

use crate::cli::{Command, Format, GenerateFormat, GenerateProfile, InputKind};

pub async fn execute(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Generate {
            rows,
            out,
            seed,
            parts,
            format,
            profile,
        } => {
            let mut cfg = zeekml_generate::GenerateConfig::new(rows, &out);
            cfg.seed = seed;
            cfg.parts = parts;
            cfg.format = match format {
                GenerateFormat::Csv => zeekml_generate::OutputFormat::UwfCsv,
                GenerateFormat::ZeekTsv => zeekml_generate::OutputFormat::ZeekTsv,
            };
            cfg.profile = match profile {
                GenerateProfile::Campus => zeekml_generate::Profile::Campus,
                GenerateProfile::Enterprise => zeekml_generate::Profile::Enterprise,
            };
            let summary = tokio::task::spawn_blocking(move || zeekml_generate::generate(&cfg))
                .await
                .context("generator task")??;
            let labels: Vec<String> = summary
                .rows_by_label
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            // Conn logs carry no labels; say what the rows would have been.
            let (kind, labels_note) = match format {
                GenerateFormat::Csv => ("CSV", ""),
                GenerateFormat::ZeekTsv => ("Zeek TSV", "labels not written: "),
            };
            // The profile goes inside the parentheses: scripts and tests match
            // on the "wrote N rows in K ... files" prefix.
            println!(
                "wrote {} rows in {} {kind} files to {} ({} profile; {labels_note}{}; {} reconnaissance flows x 256) in {:.1}s",
                summary.rows,
                summary.files.len(),
                out.display(),
                summary.profile,
                labels.join(", "),
                summary.recon_flows,
                summary.seconds
            );
        }
        Command::Run {
            pipeline,
            set,
            warehouse,
            only,
            from,
            to,
            wait_for_lock,
        } => {
            let opts = RunOptions {
                overrides: set,
                only,
                from,
                to,
                lock_wait: std::time::Duration::from_secs(wait_for_lock),
                ..RunOptions::new(warehouse)
            };
            let record = zeekml_pipeline::run_pipeline(&pipeline, &opts).await?;
            for s in &record.stages {
                println!(
                    "{:<12} {:<9} rows_in={:<9} rows_out={:<9} rejected={:<6} {:>7.2}s  peak_rss={:.0}MiB",
                    s.stage, s.kind, s.rows_in, s.rows_out, s.rows_rejected, s.seconds, s.peak_rss_mib
                );
            }
            println!("run {} ok", record.run_id);
        }
        Command::Sql {
            query,
            file,
            warehouse,
            format,
            as_of,
        } => {
            let query = match (query, file) {
                (Some(q), _) => q,
                (None, Some(path)) if path.as_os_str() == "-" => {
                    let mut text = String::new();
                    std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
                        .context("cannot read the query from stdin")?;
                    text
                }
                (None, Some(path)) => std::fs::read_to_string(&path)
                    .with_context(|| format!("cannot read query file {}", path.display()))?,
                (None, None) => anyhow::bail!("give a query or --file"),
            };
            let (schema, batches) = zeekml_pipeline::query(&warehouse, &query, &as_of).await?;
            let format = match format {
                Format::Table => OutputFormat::Table,
                Format::Csv => OutputFormat::Csv,
                Format::Json => OutputFormat::Json,
            };
            let text = zeekml_pipeline::render(&schema, &batches, format)?;
            println!("{}", text.trim_end());
        }
        Command::Score {
            model,
            input,
            out,
            threshold,
            input_format,
            reject_bad_rows,
            explain,
        } => {
            let opts = ScoreOptions {
                model,
                input,
                format: match input_format {
                    InputKind::Zeek => InputFormat::Zeek,
                    InputKind::Csv => InputFormat::Csv,
                    InputKind::Parquet => InputFormat::Parquet,
                },
                out: out.clone(),
                threshold,
                on_bad_rows: if reject_bad_rows {
                    OnBadRows::Reject
                } else {
                    OnBadRows::Fail
                },
                explain,
            };
            let s = zeekml_pipeline::score_files(&opts).await?;
            println!(
                "scored {} connections, flagged {} at threshold {} ({} rows rejected) -> {}",
                s.rows,
                s.flagged,
                s.threshold,
                s.rejected,
                out.display()
            );
            for (src, n) in &s.top_sources {
                println!("  top source {src}: {n} flagged");
            }
        }
        Command::Report { warehouse, out } => {
            let report = zeekml_report::write(&warehouse, &out).await?;
            for s in &report.sections {
                match &s.status {
                    SectionStatus::Drawn { charts } => println!("{:<8} {charts} charts", s.id),
                    SectionStatus::Missing { note } => println!("{:<8} left out: {note}", s.id),
                    SectionStatus::Failed { error } => println!("{:<8} failed: {error}", s.id),
                }
            }
            println!("wrote {} ({} bytes)", out.display(), report.html.len());
        }
        Command::Vacuum {
            warehouse,
            retain_hours,
            dry_run,
        } => {
            let retain = std::time::Duration::from_secs(retain_hours * 3600);
            for (table, files) in zeekml_pipeline::vacuum(&warehouse, retain, dry_run).await? {
                let verb = if dry_run { "would delete" } else { "deleted" };
                println!("{table:<24} {verb} {} files", files.len());
            }
        }
    }
    Ok(())
}
