//! Runs a pipeline's stages in order, committing each stage's tables and
//! recording the run in the `runs` table.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use datafusion::prelude::SessionContext;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tracing::Instrument;

use crate::config::{PartitionSpec, Pipeline, SqlSpec, StageSpec};
use crate::error::{Error, Result};
use crate::manifest::{self, RunRecord, StageRecord, Status};
use crate::sql_stage::SqlStage;
use crate::warehouse::Warehouse;
use crate::{ingest, score, session, train};

/// How to run a pipeline.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Warehouse root.
    pub warehouse: PathBuf,
    /// `--set key=value` parameter overrides.
    pub overrides: Vec<(String, String)>,
    /// Run only this stage.
    pub only: Option<String>,
    /// Start at this stage.
    pub from: Option<String>,
    /// Stop after this stage.
    pub to: Option<String>,
    /// Show a spinner per stage (only drawn on a terminal).
    pub progress: bool,
    /// How long to wait for another run writing the same warehouse
    /// (zero: stop at once with who holds it).
    pub lock_wait: Duration,
}

impl RunOptions {
    /// Defaults: `./warehouse`, all stages, progress on terminals.
    pub fn new(warehouse: impl Into<PathBuf>) -> Self {
        RunOptions {
            warehouse: warehouse.into(),
            overrides: Vec::new(),
            only: None,
            from: None,
            to: None,
            progress: true,
            lock_wait: Duration::ZERO,
        }
    }
}

/// What a stage reports back to the runner.
#[derive(Debug, Default)]
pub(crate) struct StageOutcome {
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub rows_in: u64,
    pub rows_out: u64,
    pub rejected: u64,
    /// The Delta version each table written is at after its commit.
    pub versions: Vec<(String, u64)>,
}

/// Loads and runs a pipeline file; returns the run's manifest record.
pub async fn run_pipeline(path: &Path, opts: &RunOptions) -> Result<RunRecord> {
    let pipeline = Pipeline::load(path, &opts.overrides)?;
    let selected = select_stages(&pipeline, opts)?;
    // Partition values are checked before any stage replaces a table.
    for &i in &selected {
        let stage = &pipeline.file.stages[i];
        target_path(&pipeline, stage.name(), stage.partition())?;
    }
    let ctx = session::context_with_memory_limit(pipeline.memory_limit()?)?;
    let id = run_id();
    // Held until the run ends, however it ends.
    let (wh, _lock) = Warehouse::create_locked(&opts.warehouse, &id, opts.lock_wait)?;
    let started_at = manifest::now_rfc3339();
    let mut record = RunRecord {
        run_id: id,
        pipeline: pipeline.file.name.clone(),
        pipeline_file: pipeline.path.display().to_string(),
        params: serde_json::to_string(&pipeline.file.params)?,
        started_at,
        stages: Vec::new(),
    };
    tracing::info!(run_id = %record.run_id, pipeline = %record.pipeline, warehouse = %wh.location(), "run started");
    for index in selected {
        let spec = &pipeline.file.stages[index];
        let bar = spinner(opts.progress, spec.name());
        manifest::reset_peak_rss();
        let start = Instant::now();
        let span = tracing::info_span!("stage", stage = spec.name(), kind = spec.kind());
        let result = run_stage(&ctx, &wh, &pipeline, index)
            .instrument(span)
            .await;
        let seconds = start.elapsed().as_secs_f64();
        let peak = manifest::peak_rss_mib();
        bar.finish_and_clear();
        let mut stage = StageRecord {
            stage: spec.name().to_string(),
            kind: spec.kind().to_string(),
            inputs: String::new(),
            outputs: String::new(),
            rows_in: 0,
            rows_out: 0,
            rows_rejected: 0,
            seconds,
            peak_rss_mib: peak,
            status: Status::Ok,
            error: None,
            versions: Vec::new(),
        };
        match result {
            Ok(out) => {
                tracing::info!(
                    stage = spec.name(),
                    rows_in = out.rows_in,
                    rows_out = out.rows_out,
                    rejected = out.rejected,
                    seconds = format!("{seconds:.2}"),
                    peak_rss_mib = format!("{peak:.0}"),
                    "stage done"
                );
                stage.inputs = out.inputs.join(",");
                stage.outputs = out.outputs.join(",");
                stage.rows_in = out.rows_in;
                stage.rows_out = out.rows_out;
                stage.rows_rejected = out.rejected;
                stage.versions = out.versions;
                record.stages.push(stage);
            }
            Err(e) => {
                let e = e.in_stage(spec.name());
                stage.status = Status::Failed;
                stage.error = Some(e.to_string());
                record.stages.push(stage);
                if let Err(m) = record.append_to(&wh).await {
                    tracing::warn!(error = %m, "could not record the failed run");
                }
                return Err(e);
            }
        }
    }
    record.append_to(&wh).await?;
    Ok(record)
}

fn run_id() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!(
        "{}-{:06x}",
        now.as_secs(),
        (now.subsec_nanos() >> 8) ^ std::process::id()
    )
}

fn spinner(enabled: bool, stage: &str) -> ProgressBar {
    if !enabled || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}") {
        bar.set_style(style);
    }
    bar.set_message(format!("stage {stage}"));
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// Indices of the stages `--only` / `--from` / `--to` select, in order.
fn select_stages(pipeline: &Pipeline, opts: &RunOptions) -> Result<Vec<usize>> {
    if let Some(only) = &opts.only {
        if opts.from.is_some() || opts.to.is_some() {
            return Err(pipeline.invalid("--only cannot be combined with --from/--to".into()));
        }
        return Ok(vec![pipeline.stage_index(only)?]);
    }
    let first = opts
        .from
        .as_deref()
        .map(|s| pipeline.stage_index(s))
        .transpose()?
        .unwrap_or(0);
    let last = opts
        .to
        .as_deref()
        .map(|s| pipeline.stage_index(s))
        .transpose()?
        .unwrap_or(pipeline.file.stages.len() - 1);
    if first > last {
        return Err(pipeline.invalid(format!(
            "--from {} comes after --to {}",
            opts.from.as_deref().unwrap_or_default(),
            opts.to.as_deref().unwrap_or_default()
        )));
    }
    Ok((first..=last).collect())
}

/// Where a stage's table goes: the table, or one partition of it.
pub(crate) fn target_path(
    pipeline: &Pipeline,
    table: &str,
    partition: Option<&PartitionSpec>,
) -> Result<PathBuf> {
    let mut path = PathBuf::from(table);
    if let Some(p) = partition {
        let value = pipeline.substitute(&p.value)?;
        if value.is_empty() && p.optional {
            return Ok(path);
        }
        if value.is_empty() || value.contains(['/', '\\']) || value.starts_with('.') {
            return Err(pipeline.invalid(format!(
                "partition value '{value}' for {table} must be a plain name"
            )));
        }
        if p.column == "date" && !is_calendar_date(&value) {
            return Err(pipeline.invalid(format!(
                "partition value '{value}' for {table}: a `date` partition takes a calendar \
                 date, YYYY-MM-DD (e.g. --set date=2026-11-30)"
            )));
        }
        path.push(format!("{}={value}", p.column));
    }
    Ok(path)
}

/// `YYYY-MM-DD` naming a day of the Gregorian calendar: the SQL stages
/// cast the `date` partition value to a DATE, and the directory name is
/// the day's one spelling.
fn is_calendar_date(v: &str) -> bool {
    use datafusion::arrow::compute::kernels::cast_utils::Parser;
    v.len() == 10
        && v.as_bytes()[..4].iter().all(u8::is_ascii_digit)
        && datafusion::arrow::datatypes::Date32Type::parse_formatted(v, "%Y-%m-%d").is_some()
}

async fn run_stage(
    ctx: &SessionContext,
    wh: &Warehouse,
    pipeline: &Pipeline,
    index: usize,
) -> Result<StageOutcome> {
    match &pipeline.file.stages[index] {
        StageSpec::Ingest(spec) => {
            let input = pipeline.substitute(&spec.input)?;
            let target = target_path(pipeline, &spec.name, spec.partition.as_ref())?;
            let out = ingest::run_ingest(ctx, wh, spec, &input, &target).await?;
            wh.register(ctx, &spec.name).await?;
            let mut outputs = vec![spec.name.clone()];
            if spec.on_bad_rows == crate::config::OnBadRows::Reject {
                outputs.push(spec.rejects_table.clone());
            }
            Ok(StageOutcome {
                inputs: vec![input],
                outputs,
                rows_in: out.rows_in,
                rows_out: out.rows_out,
                rejected: out.rejected,
                versions: out.versions,
            })
        }
        StageSpec::Sql(spec) => run_sql_stage(ctx, wh, pipeline, spec).await,
        StageSpec::Lightgbm(spec) => train::run_train(ctx, wh, pipeline, index, spec).await,
        StageSpec::Score(spec) => score::run_score_stage(ctx, wh, pipeline, spec).await,
    }
}

/// Loads the stage file a SQL stage names and checks the names agree.
pub(crate) fn load_sql_stage(pipeline: &Pipeline, spec: &SqlSpec) -> Result<SqlStage> {
    let stage = SqlStage::load(&pipeline.base_dir().join(&spec.sql))?;
    if stage.name != spec.name {
        return Err(Error::InvalidSql {
            path: stage.path.clone(),
            message: format!(
                "header names stage '{}' but the pipeline calls it '{}'",
                stage.name, spec.name
            ),
        });
    }
    Ok(stage)
}

async fn run_sql_stage(
    ctx: &SessionContext,
    wh: &Warehouse,
    pipeline: &Pipeline,
    spec: &SqlSpec,
) -> Result<StageOutcome> {
    let stage = load_sql_stage(pipeline, spec)?;
    let mut rows_in = 0;
    for input in &stage.inputs {
        register_input(ctx, wh, pipeline, input).await?;
        rows_in += ctx.table(input.as_str()).await?.count().await? as u64;
    }
    let df = stage.plan(ctx, &pipeline.file.params).await?;
    if !spec.materialize {
        // Counting would run the query; the reading stage reports its rows.
        ctx.deregister_table(spec.name.as_str())?;
        ctx.register_table(spec.name.as_str(), df.into_view())?;
        return Ok(StageOutcome {
            inputs: stage.inputs.clone(),
            outputs: vec![format!("{} (view)", spec.name)],
            rows_in,
            ..StageOutcome::default()
        });
    }
    let target = target_path(pipeline, &spec.name, spec.partition.as_ref())?;
    let written = wh.write_df(df, &target).await?;
    wh.register(ctx, &spec.name).await?;
    Ok(StageOutcome {
        inputs: stage.inputs.clone(),
        outputs: vec![spec.name.clone()],
        rows_in,
        rows_out: written.rows,
        rejected: 0,
        versions: written
            .version
            .map(|v| (spec.name.clone(), v))
            .into_iter()
            .collect(),
    })
}

/// Makes `table` queryable in `ctx`: a warehouse table (returning the
/// version registered), or a view stage of the pipeline planned (with its
/// own inputs) from its SQL.
pub(crate) async fn register_input(
    ctx: &SessionContext,
    wh: &Warehouse,
    pipeline: &Pipeline,
    table: &str,
) -> Result<Option<u64>> {
    let Some(spec) = pipeline.view(table) else {
        return wh.register(ctx, table).await;
    };
    let stage = load_sql_stage(pipeline, spec)?;
    for input in &stage.inputs {
        Box::pin(register_input(ctx, wh, pipeline, input)).await?;
    }
    let df = stage.plan(ctx, &pipeline.file.params).await?;
    ctx.deregister_table(table)?;
    ctx.register_table(table, df.into_view())?;
    Ok(None)
}

/// The SQL stages, in pipeline order, that `table` is computed from
/// (transitively), stopping at tables no SQL stage of the pipeline writes.
pub(crate) fn sql_lineage(
    pipeline: &Pipeline,
    before: usize,
    table: &str,
) -> Result<Vec<SqlStage>> {
    let mut by_name = BTreeMap::new();
    for spec in &pipeline.file.stages[..before] {
        if let StageSpec::Sql(s) = spec {
            by_name.insert(s.name.clone(), load_sql_stage(pipeline, s)?);
        }
    }
    let mut needed = std::collections::BTreeSet::new();
    let mut todo = vec![table.to_string()];
    while let Some(t) = todo.pop() {
        if let Some(stage) = by_name.get(&t) {
            if needed.insert(t.clone()) {
                todo.extend(stage.inputs.iter().cloned());
            }
        }
    }
    Ok(pipeline.file.stages[..before]
        .iter()
        .filter(|s| needed.contains(s.name()))
        .filter_map(|s| by_name.get(s.name()).cloned())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::is_calendar_date;

    #[test]
    fn calendar_dates() {
        for ok in ["2026-11-30", "2024-02-29", "2000-02-29", "1970-01-01"] {
            assert!(is_calendar_date(ok), "{ok}");
        }
        for bad in [
            "2017-13-45",
            "2023-02-29",
            "1900-02-29",
            "2026-04-31",
            "2026-1-30",
            "03/08/2017",
            "2026-11-30T00",
            "2026-00-10",
            "+026-11-30",
            "",
        ] {
            assert!(!is_calendar_date(bad), "{bad}");
        }
    }
}
