//! The warehouse: a directory of Parquet tables, one directory per table.
//!
//! Layout: `<root>/<table>/*.parquet` (or `<root>/<table>/<col>=<value>/*.parquet`
//! for partitioned tables), `<root>/runs/` (the run manifest, one file per
//! run), `<root>/models/<name>/` (saved models). Writers fill a directory
//! under `<root>/.staging/` and [`Warehouse::commit`] swaps it in, so readers
//! never see a half-written table.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::datasource::MemTable;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::prelude::{DataFrame, SessionContext};
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::config::valid_table_name;
use crate::error::{io, Error, Result};
use crate::parquet_out::ParquetOut;

/// Directory names under the root that are not tables.
const RESERVED: &[&str] = &["models"];

/// A warehouse rooted at a directory.
#[derive(Debug, Clone)]
pub struct Warehouse {
    root: PathBuf,
}

impl Warehouse {
    /// Opens (and creates if needed) a warehouse for writing by this
    /// process alone; see [`Warehouse::create_locked`] for a run.
    pub fn create(root: impl Into<PathBuf>) -> Result<Self> {
        let wh = Warehouse {
            root: created_root(root.into())?,
        };
        wh.recover()?;
        Ok(wh)
    }

    /// Opens (and creates if needed) a warehouse for writing by run
    /// `run_id`, holding its lock (waiting up to `wait` for another run):
    /// the leftovers of killed writers are cleared only under the lock, so
    /// a second run never removes the first one's staged tables.
    pub fn create_locked(
        root: impl Into<PathBuf>,
        run_id: &str,
        wait: std::time::Duration,
    ) -> Result<(Self, crate::lock::WarehouseLock)> {
        let root = created_root(root.into())?;
        let lock = crate::lock::WarehouseLock::acquire(&root, run_id, wait)?;
        let wh = Warehouse { root };
        wh.recover()?;
        Ok((wh, lock))
    }

    /// Opens an existing warehouse for reading.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = local_root(root.into())?;
        if !root.is_dir() {
            return Err(Error::Io {
                path: root,
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "warehouse directory does not exist (run a pipeline first or pass --warehouse)",
                ),
            });
        }
        Ok(Warehouse { root })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Directory of a table.
    pub fn table_dir(&self, table: &str) -> PathBuf {
        self.root.join(table)
    }

    /// Directory of a saved model.
    pub fn model_dir(&self, name: &str) -> PathBuf {
        self.root.join("models").join(name)
    }

    /// Whether a committed table exists.
    pub fn has_table(&self, table: &str) -> bool {
        self.table_dir(table).is_dir()
    }

    /// Names of all committed tables, sorted.
    pub fn tables(&self) -> Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&self.root).map_err(io(&self.root))? {
            let entry = entry.map_err(io(&self.root))?;
            let name = entry.file_name().to_string_lossy().to_string();
            if entry.path().is_dir()
                && valid_table_name(&name)
                && !RESERVED.contains(&name.as_str())
            {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    /// A fresh, empty staging directory for a table about to be written.
    pub fn staging(&self, table: &str) -> Result<PathBuf> {
        let dir = self
            .root
            .join(".staging")
            .join(format!("{table}-{}", nonce()));
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        Ok(dir)
    }

    /// Makes a fully written staging directory visible as `target`
    /// (a table, a partition `table/col=value`, or `models/name`),
    /// replacing what was there.
    pub fn commit(&self, staging: &Path, target: &Path) -> Result<()> {
        let target = self.root.join(target);
        check_layout(staging, &target)?;
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        let trash_root = self.root.join(".trash");
        let trash = trash_root.join(format!(
            "{}-{}",
            target
                .strip_prefix(&self.root)
                .unwrap_or(&target)
                .to_string_lossy()
                .replace(['/', '\\'], "%"),
            nonce()
        ));
        if target.exists() {
            std::fs::create_dir_all(&trash_root).map_err(io(&trash_root))?;
            std::fs::rename(&target, &trash).map_err(io(&target))?;
        }
        std::fs::rename(staging, &target).map_err(io(&target))?;
        if trash.exists() {
            std::fs::remove_dir_all(&trash).map_err(io(&trash))?;
        }
        Ok(())
    }

    /// Removes a committed table: renamed into `.staging/` first, so readers
    /// see the table or nothing, and a removal cut short by a crash is
    /// finished by the next writer's start-up (which clears `.staging/`;
    /// `.trash/` would restore the table).
    pub fn drop_table(&self, table: &str) -> Result<()> {
        let dir = self.table_dir(table);
        if !dir.is_dir() {
            return Ok(());
        }
        let dropped = self.staging(&format!("{table}-dropped"))?;
        std::fs::rename(&dir, &dropped).map_err(io(&dir))?;
        std::fs::remove_dir_all(&dropped).map_err(io(&dropped))
    }

    /// Drops a staging directory after a failed write.
    pub fn discard(&self, staging: &Path) {
        if let Err(e) = std::fs::remove_dir_all(staging) {
            tracing::warn!(path = %staging.display(), error = %e, "could not remove staging directory");
        }
    }

    /// Restores tables whose swap was interrupted between its two renames,
    /// and clears leftovers of killed writers.
    fn recover(&self) -> Result<()> {
        let trash_root = self.root.join(".trash");
        if let Ok(entries) = std::fs::read_dir(&trash_root) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().to_string();
                let Some((target, _nonce)) = name.rsplit_once('-') else {
                    continue;
                };
                let target = self.root.join(target.replace('%', "/"));
                if !target.exists() {
                    tracing::warn!(table = %target.display(), "restoring table from an interrupted commit");
                    std::fs::rename(entry.path(), &target).map_err(io(&target))?;
                } else {
                    std::fs::remove_dir_all(entry.path()).map_err(io(entry.path()))?;
                }
            }
        }
        let staging = self.root.join(".staging");
        if staging.exists() {
            std::fs::remove_dir_all(&staging).map_err(io(&staging))?;
        }
        Ok(())
    }

    /// Registers one committed table in a session under its own name.
    pub async fn register(&self, ctx: &SessionContext, table: &str) -> Result<()> {
        let dir = self.table_dir(table);
        if !dir.is_dir() {
            return Err(Error::MissingTable {
                table: table.to_string(),
                warehouse: self.root.clone(),
            });
        }
        let url = ListingTableUrl::parse(format!("{}/", dir.display()))?;
        let mut options =
            ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
        let partitions = partition_columns(&dir)?;
        if !partitions.is_empty() {
            options = options.with_table_partition_cols(
                partitions
                    .into_iter()
                    .map(|c| (c, DataType::Utf8))
                    .collect(),
            );
        }
        let state = ctx.state();
        let config = ListingTableConfig::new(url)
            .with_listing_options(options)
            .infer_schema(&state)
            .await?;
        let provider = ListingTable::try_new(config)?;
        ctx.deregister_table(table)?;
        ctx.register_table(table, Arc::new(provider))?;
        Ok(())
    }

    /// Registers every committed table.
    pub async fn register_all(&self, ctx: &SessionContext) -> Result<Vec<String>> {
        let tables = self.tables()?;
        for table in &tables {
            self.register(ctx, table).await?;
        }
        Ok(tables)
    }
}

impl Warehouse {
    /// Writes a query result as the table (or partition) `target`, visible
    /// only once every file is complete. Returns the number of rows written.
    pub async fn write_df(&self, df: DataFrame, target: &Path) -> Result<u64> {
        let staging = self.staging_for(target)?;
        match write_parquet_dir(df, &staging).await {
            Ok(rows) => {
                self.commit(&staging, target)?;
                Ok(rows)
            }
            Err(e) => {
                self.discard(&staging);
                Err(e)
            }
        }
    }

    /// A fresh staging directory for the table (or partition) `target`.
    pub fn staging_for(&self, target: &Path) -> Result<PathBuf> {
        self.staging(&target.to_string_lossy().replace(['/', '\\', '='], "_"))
    }

    /// Writes in-memory batches as the table `target` (see [`Self::write_df`]).
    pub async fn write_batches(
        &self,
        ctx: &SessionContext,
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
        target: &Path,
    ) -> Result<u64> {
        let (staging, rows) = self.stage_batches(ctx, schema, batches, target).await?;
        self.commit(&staging, target)?;
        Ok(rows)
    }

    /// Writes in-memory batches into a staging directory for `target` and
    /// returns it with the rows written, for a stage that commits several tables only once all
    /// of them are written ([`Self::commit`], or [`Self::discard`]).
    pub async fn stage_batches(
        &self,
        ctx: &SessionContext,
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
        target: &Path,
    ) -> Result<(PathBuf, u64)> {
        // One partition per core, so the partitions are encoded in parallel.
        let table = MemTable::try_new(schema, partitioned(ctx, batches))?;
        let df = ctx.read_table(Arc::new(table))?;
        let staging = self.staging_for(target)?;
        match write_parquet_dir(df, &staging).await {
            Ok(rows) => Ok((staging, rows)),
            Err(e) => {
                self.discard(&staging);
                Err(e)
            }
        }
    }

    /// Writes batches as they arrive on `rx` into one file of a staging
    /// directory for `target`, and returns it with the rows written once
    /// every sender is gone (see [`Self::stage_batches`]). On an error the
    /// directory is discarded and `rx` dropped, which the senders see.
    pub async fn stage_received(
        &self,
        target: &Path,
        mut rx: mpsc::Receiver<RecordBatch>,
    ) -> Result<(PathBuf, u64)> {
        let staging = self.staging_for(target)?;
        let path = staging.join("part-00000.parquet");
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut out: Option<ParquetOut> = None;
        let mut rows = 0;
        let written = async {
            while let Some(batch) = rx.recv().await {
                rows += batch.num_rows() as u64;
                let file = match &mut out {
                    Some(file) => file,
                    None => out.insert(ParquetOut::create(&path, batch.schema(), threads)?),
                };
                file.push(batch).await?;
            }
            Ok::<_, Error>(())
        }
        .await;
        match (written, out) {
            (Ok(()), Some(file)) => match file.finish().await {
                Ok(()) => Ok((staging, rows)),
                Err(e) => {
                    self.discard(&staging);
                    Err(e)
                }
            },
            (Ok(()), None) => Ok((staging, 0)),
            (Err(e), file) => {
                if let Some(file) = file {
                    file.discard().await;
                }
                self.discard(&staging);
                Err(e)
            }
        }
    }
}

/// `batches` as contiguous runs, one partition per core of `ctx`: work on
/// the partitions runs in parallel, and reading them in order gives the
/// batches in their original order.
fn partitioned(ctx: &SessionContext, batches: Vec<RecordBatch>) -> Vec<Vec<RecordBatch>> {
    let parts = ctx.state().config().target_partitions().max(1);
    let per_part = batches.len().div_ceil(parts).max(1);
    let mut partitions: Vec<Vec<RecordBatch>> = Vec::with_capacity(parts);
    let mut batches = batches.into_iter().peekable();
    while batches.peek().is_some() {
        partitions.push(batches.by_ref().take(per_part).collect());
    }
    if partitions.is_empty() {
        partitions.push(Vec::new());
    }
    partitions
}

/// Writes `df` as Parquet files in `dir`, one per output partition, each
/// streamed through [`ParquetOut`] as the partition's batches arrive.
/// Partitions that come out empty leave no file, unless all do: the table
/// still needs one file for its schema. Returns the number of rows written.
async fn write_parquet_dir(df: DataFrame, dir: &Path) -> Result<u64> {
    let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
    let streams = df.execute_stream_partitioned().await?;
    // The files share the cores: with one partition per core, each file's
    // row groups are encoded on one thread, not on every core per file.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = cores.div_ceil(streams.len().max(1));
    let mut files = JoinSet::new();
    for (i, stream) in streams.into_iter().enumerate() {
        let path = dir.join(format!("part-{i:05}.parquet"));
        let schema = Arc::clone(&schema);
        files.spawn(async move {
            let rows = write_parquet_file(stream, &path, schema, threads).await?;
            if rows == 0 {
                std::fs::remove_file(&path).map_err(io(&path))?;
            }
            Ok::<u64, Error>(rows)
        });
    }
    let mut rows = 0;
    while let Some(written) = files.join_next().await {
        // On an error the set is dropped, which stops the other files, and
        // the caller discards the directory.
        rows += written??;
    }
    // Only files with rows were kept, so no rows means no file.
    if rows == 0 {
        ParquetOut::create(&dir.join("part-00000.parquet"), schema, 1)?
            .finish()
            .await?;
    }
    Ok(rows)
}

async fn write_parquet_file(
    mut stream: SendableRecordBatchStream,
    path: &Path,
    schema: SchemaRef,
    threads: usize,
) -> Result<u64> {
    let mut out = ParquetOut::create(path, schema, threads)?;
    let mut rows = 0;
    while let Some(batch) = stream.next().await {
        let pushed = match batch {
            Ok(batch) => {
                rows += batch.num_rows() as u64;
                out.push(batch).await
            }
            Err(e) => Err(e.into()),
        };
        if let Err(e) = pushed {
            out.discard().await;
            return Err(e);
        }
    }
    out.finish().await?;
    Ok(rows)
}

/// Refuses a partition written into a table written whole, and a whole
/// table written over partitions: a table is one or the other.
fn check_layout(staging: &Path, target: &Path) -> Result<()> {
    let is_partition = |p: &Path| {
        p.file_name()
            .is_some_and(|n| n.to_string_lossy().contains('='))
    };
    let has_files = |dir: &Path| {
        std::fs::read_dir(dir).is_ok_and(|entries| {
            entries
                .flatten()
                .any(|e| e.path().extension().is_some_and(|x| x == "parquet"))
        })
    };
    if is_partition(target) {
        if let Some(table) = target.parent().filter(|t| has_files(t)) {
            return Err(Error::MixedLayout {
                table: table.to_path_buf(),
                message: format!(
                    "it was written whole, so a partition {} cannot be added; \
                     remove the table directory or run without the partition value",
                    target.file_name().unwrap_or_default().to_string_lossy()
                ),
            });
        }
    } else if has_files(staging) && target.is_dir() && !partition_columns(target)?.is_empty() {
        return Err(Error::MixedLayout {
            table: target.to_path_buf(),
            message: "it holds partitions, which a whole-table write would replace; \
                      set the partition value (e.g. --set date=YYYY-MM-DD) or remove the \
                      table directory first"
                .into(),
        });
    }
    Ok(())
}

/// Hive-style partition columns of a table directory (`date=2024-01-01/`).
fn partition_columns(dir: &Path) -> Result<Vec<String>> {
    let mut columns = Vec::new();
    let mut current = dir.to_path_buf();
    loop {
        let mut next = None;
        for entry in std::fs::read_dir(&current).map_err(io(&current))? {
            let entry = entry.map_err(io(&current))?;
            let name = entry.file_name().to_string_lossy().to_string();
            if entry.path().is_dir() {
                if let Some((col, _)) = name.split_once('=') {
                    next = Some((col.to_string(), entry.path()));
                    break;
                }
            }
        }
        match next {
            Some((col, path)) => {
                columns.push(col);
                current = path;
            }
            None => return Ok(columns),
        }
    }
}

/// The warehouse root as an absolute local path. An object store URL is
/// refused rather than taken as a relative directory named `s3:`.
fn local_root(path: PathBuf) -> Result<PathBuf> {
    let text = path.to_string_lossy();
    if let Some((scheme, _)) = text.split_once("://") {
        return Err(Error::RemoteWarehouse {
            url: text.to_string(),
            scheme: scheme.to_string(),
        });
    }
    Ok(absolute(path))
}

/// [`local_root`], created if missing.
fn created_root(path: PathBuf) -> Result<PathBuf> {
    let root = local_root(path)?;
    std::fs::create_dir_all(&root).map_err(io(&root))?;
    Ok(root)
}

fn absolute(path: PathBuf) -> PathBuf {
    std::path::absolute(&path).unwrap_or(path)
}

/// A short unique suffix for staging and trash names.
fn nonce() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{:x}{:x}", nanos, std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_swaps_and_lists_tables() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let wh = Warehouse::create(tmp.path()).expect("create");
        let s = wh.staging("clean").expect("staging");
        std::fs::write(s.join("a.parquet"), b"x").expect("write");
        wh.commit(&s, Path::new("clean")).expect("commit");
        assert!(wh.table_dir("clean").join("a.parquet").exists());
        let s = wh.staging("clean").expect("staging");
        std::fs::write(s.join("b.parquet"), b"y").expect("write");
        wh.commit(&s, Path::new("clean")).expect("commit");
        assert!(!wh.table_dir("clean").join("a.parquet").exists());
        assert!(wh.table_dir("clean").join("b.parquet").exists());
        std::fs::create_dir_all(wh.model_dir("m")).expect("mkdir");
        assert_eq!(wh.tables().expect("tables"), vec!["clean".to_string()]);
    }

    #[test]
    fn interrupted_commit_is_restored() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let trash = tmp.path().join(".trash").join("features-abc");
        std::fs::create_dir_all(&trash).expect("mkdir");
        std::fs::write(trash.join("p.parquet"), b"x").expect("write");
        std::fs::create_dir_all(tmp.path().join(".staging/features-def")).expect("mkdir");
        let wh = Warehouse::create(tmp.path()).expect("create");
        assert!(wh.table_dir("features").join("p.parquet").exists());
        assert!(!tmp.path().join(".staging").exists());
    }

    #[test]
    fn a_dropped_table_stays_dropped() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let wh = Warehouse::create(tmp.path()).expect("create");
        let s = wh.staging("evaluated").expect("staging");
        std::fs::write(s.join("a.parquet"), b"x").expect("write");
        wh.commit(&s, Path::new("evaluated")).expect("commit");
        wh.drop_table("evaluated").expect("drop");
        assert!(!wh.has_table("evaluated"));
        wh.drop_table("evaluated")
            .expect("dropping nothing is fine");
        // A drop cut short between its rename and its removal is finished,
        // not undone, by the next start-up.
        let cut = tmp.path().join(".staging").join("evaluated-dropped-abc");
        std::fs::create_dir_all(&cut).expect("mkdir");
        std::fs::write(cut.join("a.parquet"), b"x").expect("write");
        let wh = Warehouse::create(tmp.path()).expect("reopen");
        assert!(!wh.has_table("evaluated"));
        assert!(!tmp.path().join(".staging").exists());
    }

    fn parquet_files(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .expect("read_dir")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".parquet"))
            .collect();
        names.sort();
        names
    }

    #[tokio::test]
    async fn a_table_has_one_file_per_partition_and_keeps_every_row() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let wh = Warehouse::create(tmp.path()).expect("create");
        let ctx = crate::session::context_with_partitions(3);
        let df = ctx
            .sql("SELECT value AS n, CAST(value % 7 AS VARCHAR) AS k FROM generate_series(1, 300000)")
            .await
            .expect("sql")
            .repartition(datafusion::logical_expr::Partitioning::RoundRobinBatch(3))
            .expect("repartition");
        let rows = wh.write_df(df, Path::new("t")).await.expect("write");
        assert_eq!(rows, 300_000);
        assert_eq!(
            parquet_files(&wh.table_dir("t")),
            [
                "part-00000.parquet",
                "part-00001.parquet",
                "part-00002.parquet"
            ]
        );
        wh.register(&ctx, "t").await.expect("register");
        let sums = ctx
            .sql("SELECT count(*) AS c, sum(n) AS s, count(DISTINCT k) AS k FROM t")
            .await
            .expect("sql")
            .collect()
            .await
            .expect("collect");
        let formatted = datafusion::arrow::util::pretty::pretty_format_batches(&sums)
            .expect("format")
            .to_string();
        assert!(
            formatted.contains("| 300000 | 45000150000 | 7 |"),
            "{formatted}"
        );
    }

    #[tokio::test]
    async fn an_empty_result_is_one_file_with_the_schema() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let wh = Warehouse::create(tmp.path()).expect("create");
        let ctx = crate::session::context_with_partitions(2);
        let df = ctx
            .sql("SELECT value AS n, 'x' AS k FROM generate_series(1, 1000) WHERE value > 5000")
            .await
            .expect("sql");
        let rows = wh.write_df(df, Path::new("t")).await.expect("write");
        assert_eq!(rows, 0);
        assert_eq!(parquet_files(&wh.table_dir("t")), ["part-00000.parquet"]);
        wh.register(&ctx, "t").await.expect("register");
        let schema = ctx.table("t").await.expect("table").schema().clone();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["n", "k"]);
    }
}
