//! The warehouse: Delta Lake tables, one directory per table, in a local
//! directory or under an `s3://bucket/prefix`.
//!
//! Layout: `<root>/<table>/` holds a table's Parquet files (under
//! `<col>=<value>/` for partitioned tables) and its `_delta_log/`;
//! `<root>/runs/` is the run manifest, `<root>/models/<name>/` the saved
//! models. Writers fill a directory under `<root>/.staging/`;
//! [`Warehouse::commit`] moves its files into the table and commits them in
//! one Delta transaction, so readers see the previous version or the new
//! one, never part of a write. A warehouse in object storage stages in a
//! local directory (`$TMPDIR/zeekml/<url>/`) and uploads before committing.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::datasource::MemTable;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::prelude::{DataFrame, SessionContext};
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use url::Url;

use crate::config::valid_table_name;
use crate::delta::{self, DataFile, Replace};
use crate::error::{io, Error, Result};
use crate::parquet_out::ParquetOut;
use crate::remote::Remote;
use zeekml_model::SavedModel;

/// Where tables written by zeekml before its tables were Delta tables are
/// moved when a stage writes them again.
const PRE_DELTA: &str = ".pre-delta";

/// A warehouse: a local directory, or a prefix of an object store.
#[derive(Debug, Clone)]
pub struct Warehouse {
    /// The root directory of a local warehouse; for one in object storage,
    /// the local directory its writes are staged in and its lock held.
    root: PathBuf,
    /// Where the tables are, for a warehouse in object storage.
    remote: Option<Remote>,
}

/// What a table write left: the rows written and the table version that
/// holds them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Written {
    /// Rows written.
    pub rows: u64,
    /// The table's version after the commit (`None`: nothing was committed,
    /// as for a write of no rows and no schema to a table that did not exist).
    pub version: Option<u64>,
}

impl Warehouse {
    /// Opens (and creates if needed) a warehouse for writing by this
    /// process alone; see [`Warehouse::create_locked`] for a run.
    pub fn create(root: impl Into<PathBuf>) -> Result<Self> {
        let wh = Warehouse::at(root.into(), true)?;
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
        let wh = Warehouse::at(root.into(), true)?;
        let lock = crate::lock::WarehouseLock::acquire(&wh.root, run_id, wait)?;
        wh.recover()?;
        Ok((wh, lock))
    }

    /// Opens an existing warehouse for reading.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let wh = Warehouse::at(root.into(), false)?;
        if wh.remote.is_none() && !wh.root.is_dir() {
            return Err(Error::Io {
                path: wh.root,
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "warehouse directory does not exist (run a pipeline first or pass --warehouse)",
                ),
            });
        }
        Ok(wh)
    }

    fn at(root: PathBuf, create: bool) -> Result<Self> {
        let text = root.to_string_lossy().to_string();
        let wh = match text.split_once("://") {
            Some(("s3" | "s3a", _)) => {
                let remote = Remote::open(&text)?;
                Warehouse {
                    root: spool_dir(&remote.url),
                    remote: Some(remote),
                }
            }
            Some((scheme, _)) => {
                return Err(Error::RemoteWarehouse {
                    url: text.clone(),
                    scheme: scheme.to_string(),
                })
            }
            None => Warehouse {
                root: absolute(root),
                remote: None,
            },
        };
        if create || wh.remote.is_some() {
            std::fs::create_dir_all(&wh.root).map_err(io(&wh.root))?;
        }
        Ok(wh)
    }

    /// The root directory of a local warehouse; for one in object storage,
    /// the local directory its writes are staged in.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the warehouse is: its directory, or its `s3://` URL.
    pub fn location(&self) -> String {
        match &self.remote {
            Some(r) => r.url.to_string(),
            None => self.root.display().to_string(),
        }
    }

    /// Directory of a table of a local warehouse.
    pub fn table_dir(&self, table: &str) -> PathBuf {
        self.root.join(table)
    }

    /// Directory of a saved model of a local warehouse.
    pub fn model_dir(&self, name: &str) -> PathBuf {
        self.root.join("models").join(name)
    }

    /// Whether a committed table exists.
    pub async fn has_table(&self, table: &str) -> Result<bool> {
        Ok(match &self.remote {
            Some(r) => !r
                .files(&format!("{table}/{}", delta::LOG_DIR))
                .await?
                .is_empty(),
            None => self.table_dir(table).join(delta::LOG_DIR).is_dir(),
        })
    }

    /// Names of all committed tables, sorted.
    pub async fn tables(&self) -> Result<Vec<String>> {
        let dirs = match &self.remote {
            Some(r) => r.dirs().await?,
            None => {
                let mut dirs = Vec::new();
                for entry in std::fs::read_dir(&self.root).map_err(io(&self.root))? {
                    let entry = entry.map_err(io(&self.root))?;
                    dirs.push(entry.file_name().to_string_lossy().to_string());
                }
                dirs
            }
        };
        let mut names = Vec::new();
        for name in dirs {
            if valid_table_name(&name) && self.has_table(&name).await? {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    fn table_url(&self, table: &str) -> Result<Url> {
        if let Some(r) = &self.remote {
            return r.url.join(&format!("{table}/")).map_err(|e| Error::Remote {
                location: format!("{}{table}", r.url),
                message: e.to_string(),
            });
        }
        let dir = self.table_dir(table);
        Url::from_directory_path(&dir).map_err(|()| Error::Io {
            path: dir,
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "not an absolute path"),
        })
    }

    /// Puts a complete local file at `relative` under table `table`: a
    /// rename on a local warehouse, an upload to object storage.
    async fn place(&self, from: &Path, table: &str, relative: &str) -> Result<()> {
        match &self.remote {
            Some(r) => {
                r.upload(from, &format!("{table}/{relative}")).await?;
                let _ = std::fs::remove_file(from);
                Ok(())
            }
            None => {
                let to = self.table_dir(table).join(relative);
                if let Some(parent) = to.parent() {
                    std::fs::create_dir_all(parent).map_err(io(parent))?;
                }
                std::fs::rename(from, &to).map_err(io(&to))
            }
        }
    }

    /// Removes a file of a table that no version lists.
    async fn unplace(&self, table: &str, relative: &str) {
        let removed = match &self.remote {
            Some(r) => r.delete(&format!("{table}/{relative}")).await,
            None => {
                let path = self.table_dir(table).join(relative);
                std::fs::remove_file(&path).map_err(io(&path))
            }
        };
        if let Err(e) = removed {
            tracing::warn!(table, file = relative, error = %e, "could not remove an uncommitted file");
        }
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

    /// Commits the Parquet files of a fully written staging directory as
    /// `target` (a table, or a partition `table/col=value`), replacing what
    /// was there, in one Delta transaction. Files under `col=value/`
    /// directories of the staging directory go to those partitions of the
    /// table. Returns the table's new version.
    pub async fn commit(&self, staging: &Path, target: &Path) -> Result<Option<u64>> {
        let (table, partition) = split_target(target)?;
        let replace = match &partition {
            Some((column, value)) => Replace::Partition { column, value },
            None => Replace::Table,
        };
        self.commit_files(
            staging,
            &table,
            partition.iter().cloned().collect(),
            replace,
        )
        .await
    }

    /// Commits the Parquet files of a staging directory as new files of
    /// `table`, keeping the ones it has.
    pub async fn append(&self, staging: &Path, table: &str) -> Result<Option<u64>> {
        self.commit_files(staging, table, Vec::new(), Replace::Nothing)
            .await
    }

    async fn commit_files(
        &self,
        staging: &Path,
        table: &str,
        partition: Vec<(String, String)>,
        replace: Replace<'_>,
    ) -> Result<Option<u64>> {
        self.set_aside_pre_delta(table)?;
        let staged = staged_files(staging, &partition)?;
        let url = self.table_url(table)?;
        let current = self.current(table).await?;
        let Some(schema) = staged.first().map(|file| file.schema.clone()) else {
            self.discard(staging);
            if current.is_none() {
                return Ok(None);
            }
            let version =
                delta::commit(&url, table, current.as_ref(), None, Vec::new(), replace).await?;
            return Ok(Some(version));
        };
        // Unique names: a later write never overwrites a file an earlier
        // version still lists.
        let prefix = format!("part-{}", nonce());
        let mut files = Vec::with_capacity(staged.len());
        let mut moved = Ok(());
        for (i, file) in staged.iter().enumerate() {
            let mut relative: String = file
                .partition
                .iter()
                .map(|(c, v)| format!("{c}={v}/"))
                .collect();
            relative.push_str(&format!("{prefix}-{i:05}.parquet"));
            if let Err(e) = self.place(&file.path, table, &relative).await {
                moved = Err(e);
                break;
            }
            files.push(DataFile {
                path: relative,
                partition: file.partition.clone(),
                size: file.size,
                rows: file.rows,
                modified_ms: delta::now_ms(),
            });
        }
        let committed = match moved {
            Ok(()) => {
                delta::commit(
                    &url,
                    table,
                    current.as_ref(),
                    Some(&schema),
                    files.clone(),
                    replace,
                )
                .await
            }
            Err(e) => Err(e),
        };
        if committed.is_err() {
            // The files are in no version of the table: remove them now
            // rather than leave them to `zeekml vacuum`.
            for file in &files {
                self.unplace(table, &file.path).await;
            }
        }
        self.discard(staging);
        committed.map(Some)
    }

    /// Moves a table directory that has Parquet files but no Delta log (as
    /// zeekml wrote before its tables were Delta tables) out of the way.
    fn set_aside_pre_delta(&self, table: &str) -> Result<()> {
        let dir = self.table_dir(table);
        if self.remote.is_some() || !dir.is_dir() || dir.join(delta::LOG_DIR).is_dir() {
            return Ok(());
        }
        let aside = self
            .root
            .join(PRE_DELTA)
            .join(format!("{table}-{}", nonce()));
        std::fs::create_dir_all(self.root.join(PRE_DELTA)).map_err(io(&aside))?;
        std::fs::rename(&dir, &aside).map_err(io(&dir))?;
        tracing::warn!(table, moved_to = %aside.display(), "table written by an older zeekml (not a Delta table) moved aside");
        Ok(())
    }

    /// Removes a committed table: renamed into `.staging/` first, so readers
    /// see the table or nothing, and a removal cut short by a crash is
    /// finished by the next writer's start-up (which clears `.staging/`).
    pub async fn drop_table(&self, table: &str) -> Result<()> {
        if let Some(r) = &self.remote {
            return r.delete_dir(table).await;
        }
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
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(path = %staging.display(), error = %e, "could not remove staging directory");
            }
        }
    }

    /// Clears the staging directories of killed writers.
    fn recover(&self) -> Result<()> {
        let staging = self.root.join(".staging");
        if staging.exists() {
            std::fs::remove_dir_all(&staging).map_err(io(&staging))?;
        }
        Ok(())
    }

    /// The latest version of a table, or `None` when it has no Delta log:
    /// on object storage delta-rs finds that out itself; a local directory
    /// is looked at first.
    async fn current(&self, table: &str) -> Result<Option<deltalake::DeltaTable>> {
        if self.remote.is_none() && !self.table_dir(table).join(delta::LOG_DIR).is_dir() {
            return Ok(None);
        }
        delta::load(&self.table_url(table)?, table).await
    }

    /// The data files of a committed table's latest version, in a stable
    /// order, with the version; `None` when the table is partitioned.
    pub(crate) async fn unpartitioned_files(
        &self,
        table: &str,
    ) -> Result<Option<(u64, Vec<PathBuf>)>> {
        let t = self.load(table).await?;
        let Some(files) = delta::unpartitioned_files(&t, table)? else {
            return Ok(None);
        };
        let version = delta::version(&t).unwrap_or_default();
        let Some(r) = &self.remote else {
            let dir = self.table_dir(table);
            return Ok(Some((version, files.iter().map(|f| dir.join(f)).collect())));
        };
        // Read from local copies, cleared with the staging directories.
        let dir = self.staging(&format!("{table}-read"))?;
        let mut local = Vec::with_capacity(files.len());
        for (i, f) in files.iter().enumerate() {
            let to = dir.join(format!("{i:05}.parquet"));
            r.download(&format!("{table}/{f}"), &to).await?;
            local.push(to);
        }
        Ok(Some((version, local)))
    }

    /// Removes the local copies of an object-store table's files that
    /// [`Self::unpartitioned_files`] fetched.
    pub(crate) fn discard_fetched(&self, table: &str) {
        if self.remote.is_none() {
            return;
        }
        let prefix = format!("{table}-read-");
        if let Ok(entries) = std::fs::read_dir(self.root.join(".staging")) {
            for entry in entries.flatten() {
                if entry.file_name().to_string_lossy().starts_with(&prefix) {
                    self.discard(&entry.path());
                }
            }
        }
    }

    /// Saves a model as `models/<name>`; returns where it is.
    pub(crate) async fn save_model(&self, name: &str, model: SavedModel) -> Result<String> {
        let dir = match &self.remote {
            Some(_) => self.staging(&format!("model-{name}"))?,
            None => self.model_dir(name),
        };
        let to = dir.clone();
        tokio::task::spawn_blocking(move || model.save(&to)).await??;
        let Some(r) = &self.remote else {
            return Ok(dir.display().to_string());
        };
        for file in [zeekml_model::MODEL_FILE, zeekml_model::CARD_FILE] {
            r.upload(&dir.join(file), &format!("models/{name}/{file}"))
                .await?;
        }
        self.discard(&dir);
        Ok(format!("{}models/{name}", r.url))
    }

    /// The model saved at `relative` (`models/<name>`) under the
    /// warehouse, or `None` when there is none.
    pub async fn load_model(&self, relative: &str) -> Result<Option<SavedModel>> {
        let Some(r) = &self.remote else {
            let dir = self.root.join(relative);
            if !dir.join(zeekml_model::MODEL_FILE).is_file() {
                return Ok(None);
            }
            return Ok(Some(
                tokio::task::spawn_blocking(move || SavedModel::load(&dir)).await??,
            ));
        };
        let files = r.files(relative).await?;
        if !files.iter().any(|f| f == zeekml_model::MODEL_FILE) {
            return Ok(None);
        }
        let dir = self.root.join(".cache").join(nonce());
        for file in [zeekml_model::MODEL_FILE, zeekml_model::CARD_FILE] {
            r.download(&format!("{relative}/{file}"), &dir.join(file))
                .await?;
        }
        let from = dir.clone();
        let loaded = tokio::task::spawn_blocking(move || SavedModel::load(&from)).await?;
        self.discard(&dir);
        Ok(Some(loaded?))
    }

    async fn load(&self, table: &str) -> Result<deltalake::DeltaTable> {
        let missing = || {
            if self.remote.is_none() && self.table_dir(table).is_dir() {
                Error::Delta {
                    table: table.to_string(),
                    message: format!(
                        "{} is not a Delta table (an older zeekml wrote it): run the stage \
                         that writes it again",
                        self.table_dir(table).display()
                    ),
                }
            } else {
                Error::MissingTable {
                    table: table.to_string(),
                    warehouse: self.root.clone(),
                }
            }
        };
        self.current(table).await?.ok_or_else(missing)
    }

    /// Registers one committed table (its latest version) in a session
    /// under its own name; returns the version.
    pub async fn register(&self, ctx: &SessionContext, table: &str) -> Result<Option<u64>> {
        let t = self.load(table).await?;
        let provider = delta::provider(ctx, &t, table).await?;
        ctx.deregister_table(table)?;
        ctx.register_table(table, provider)?;
        Ok(delta::version(&t))
    }

    /// Registers a committed table as of an earlier `version`.
    pub async fn register_version(
        &self,
        ctx: &SessionContext,
        table: &str,
        version: u64,
    ) -> Result<()> {
        let latest = delta::version(&self.load(table).await?).unwrap_or_default();
        if version > latest {
            return Err(Error::Delta {
                table: table.to_string(),
                message: format!("there is no version {version}: the latest is {latest}"),
            });
        }
        let t = delta::load_version(&self.table_url(table)?, table, version).await?;
        let provider = delta::provider(ctx, &t, table).await?;
        ctx.deregister_table(table)?;
        ctx.register_table(table, provider)?;
        Ok(())
    }

    /// Registers every committed table.
    pub async fn register_all(&self, ctx: &SessionContext) -> Result<Vec<String>> {
        let tables = self.tables().await?;
        for table in &tables {
            self.register(ctx, table).await?;
        }
        Ok(tables)
    }
}

impl Warehouse {
    /// Writes a query result as the table (or partition) `target`, visible
    /// only once every file is complete. Returns the number of rows written.
    pub async fn write_df(&self, df: DataFrame, target: &Path) -> Result<Written> {
        let staging = self.staging_for(target)?;
        match write_parquet_dir(df, &staging).await {
            Ok(rows) => Ok(Written {
                rows,
                version: self.commit(&staging, target).await?,
            }),
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
    ) -> Result<Written> {
        let (staging, rows) = self.stage_batches(ctx, schema, batches, target).await?;
        Ok(Written {
            rows,
            version: self.commit(&staging, target).await?,
        })
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

/// Vacuums every table of the warehouse at `root` (see `zeekml vacuum`),
/// holding its write lock so that no run's uncommitted files are taken for
/// leftovers; returns each table with the files deleted (or, for a
/// `dry_run`, to delete).
pub async fn vacuum(
    root: &Path,
    retain: std::time::Duration,
    dry_run: bool,
) -> Result<Vec<(String, Vec<String>)>> {
    Warehouse::open(root)?;
    let (wh, _lock) = Warehouse::create_locked(root, "vacuum", std::time::Duration::ZERO)?;
    let mut out = Vec::new();
    for table in wh.tables().await? {
        let t = wh.load(&table).await?;
        let files = delta::vacuum(t, &table, retain, dry_run).await?;
        out.push((table, files));
    }
    Ok(out)
}

/// The model saved under the URL `url` (`s3://bucket/warehouse/models/x`).
pub(crate) async fn load_model_at(url: &str) -> Result<SavedModel> {
    let wh = Warehouse::at(PathBuf::from(url), false)?;
    wh.load_model("").await?.ok_or_else(|| Error::Remote {
        location: url.to_string(),
        message: format!("no {} there", zeekml_model::MODEL_FILE),
    })
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

/// A Parquet file of a staging directory, with what its commit records.
struct StagedFile {
    path: PathBuf,
    partition: Vec<(String, String)>,
    schema: Schema,
    size: i64,
    rows: i64,
}

/// The complete Parquet files under `staging`, each with its partition:
/// `partition` (the target's) and then the `col=value` directories it is in.
fn staged_files(staging: &Path, partition: &[(String, String)]) -> Result<Vec<StagedFile>> {
    let mut found = Vec::new();
    let mut todo = vec![(staging.to_path_buf(), partition.to_vec())];
    while let Some((dir, partition)) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.map_err(io(&dir))?.path();
            let name = path
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .to_string();
            if path.is_dir() {
                if let Some((c, v)) = name.split_once('=') {
                    let mut inner = partition.clone();
                    inner.push((c.to_string(), v.to_string()));
                    todo.push((path, inner));
                }
            } else if name.ends_with(".parquet") {
                found.push((path, partition.clone()));
            }
        }
    }
    found.sort();
    found
        .into_iter()
        .map(|(path, partition)| {
            let file = std::fs::File::open(&path).map_err(io(&path))?;
            let size = file.metadata().map_err(io(&path))?.len() as i64;
            let reader =
                ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| Error::BadFile {
                    file: path.display().to_string(),
                    message: e.to_string(),
                })?;
            Ok(StagedFile {
                rows: reader.metadata().file_metadata().num_rows(),
                schema: reader.schema().as_ref().clone(),
                path,
                partition,
                size,
            })
        })
        .collect()
}

/// A commit target, `table` or `table/col=value`, as its two parts.
fn split_target(target: &Path) -> Result<(String, Option<(String, String)>)> {
    let parts: Vec<String> = target
        .components()
        .map(|c| c.as_os_str().to_string_lossy().to_string())
        .collect();
    let bad = || Error::Io {
        path: target.to_path_buf(),
        source: std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "a table is written whole or as one `column=value` partition",
        ),
    };
    match parts.as_slice() {
        [table] => Ok((table.clone(), None)),
        [table, partition] => {
            let (c, v) = partition.split_once('=').ok_or_else(bad)?;
            Ok((table.clone(), Some((c.to_string(), v.to_string()))))
        }
        _ => Err(bad()),
    }
}

/// The local directory a warehouse in object storage stages its writes in
/// and holds its lock on: one per URL, so that runs on this machine exclude
/// each other.
fn spool_dir(url: &Url) -> PathBuf {
    let name: String = url
        .as_str()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    std::env::temp_dir()
        .join("zeekml")
        .join(name.trim_matches('_'))
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

    /// The warehouses every test body runs on: a local directory and a
    /// prefix of a bucket on the S3-protocol test server.
    fn warehouses(tmp: &Path, name: &str) -> Vec<Warehouse> {
        vec![
            Warehouse::create(tmp.join(name)).expect("local warehouse"),
            Warehouse::create(zeekml_testkit::s3().warehouse(name)).expect("s3 warehouse"),
        ]
    }

    /// The Parquet files under a table's directory, committed or not.
    async fn data_files(wh: &Warehouse, table: &str) -> Vec<String> {
        let mut files: Vec<String> = match &wh.remote {
            Some(r) => r.files(table).await.expect("list"),
            None => {
                let mut found = Vec::new();
                let mut todo = vec![wh.table_dir(table)];
                while let Some(dir) = todo.pop() {
                    let Ok(entries) = std::fs::read_dir(&dir) else {
                        continue;
                    };
                    for entry in entries.flatten() {
                        if entry.path().is_dir() {
                            todo.push(entry.path());
                        } else {
                            found.push(entry.path().display().to_string());
                        }
                    }
                }
                found
            }
        };
        files.retain(|f| f.ends_with(".parquet"));
        files.sort();
        files
    }

    async fn query(ctx: &SessionContext, sql: &str) -> String {
        let batches = ctx
            .sql(sql)
            .await
            .expect("sql")
            .collect()
            .await
            .expect("collect");
        datafusion::arrow::util::pretty::pretty_format_batches(&batches)
            .expect("format")
            .to_string()
    }

    async fn write_numbers(wh: &Warehouse, target: &str, from: u64, to: u64) -> Result<Written> {
        let ctx = crate::session::context_with_partitions(2);
        let df = ctx
            .sql(&format!(
                "SELECT value AS n FROM generate_series({from}, {to})"
            ))
            .await
            .expect("sql");
        wh.write_df(df, Path::new(target)).await
    }

    #[tokio::test]
    async fn a_table_has_one_file_per_partition_and_keeps_every_row() {
        let tmp = tempfile::tempdir().expect("tempdir");
        for wh in warehouses(tmp.path(), "rows") {
            let ctx = crate::session::context_with_partitions(3);
            let df = ctx
                .sql("SELECT value AS n, CAST(value % 7 AS VARCHAR) AS k FROM generate_series(1, 300000)")
                .await
                .expect("sql")
                .repartition(datafusion::logical_expr::Partitioning::RoundRobinBatch(3))
                .expect("repartition");
            let written = wh.write_df(df, Path::new("t")).await.expect("write");
            assert_eq!(
                written,
                Written {
                    rows: 300_000,
                    version: Some(0)
                }
            );
            assert_eq!(data_files(&wh, "t").await.len(), 3, "{}", wh.location());
            assert_eq!(wh.tables().await.expect("tables"), ["t"]);
            assert_eq!(wh.register(&ctx, "t").await.expect("register"), Some(0));
            let sums = query(
                &ctx,
                "SELECT count(*) AS c, sum(n) AS s, count(DISTINCT k) AS k FROM t",
            )
            .await;
            assert!(sums.contains("| 300000 | 45000150000 | 7 |"), "{sums}");
        }
    }

    #[tokio::test]
    async fn an_empty_result_is_one_file_with_the_schema() {
        let tmp = tempfile::tempdir().expect("tempdir");
        for wh in warehouses(tmp.path(), "empty") {
            let ctx = crate::session::context_with_partitions(2);
            let df = ctx
                .sql("SELECT value AS n, 'x' AS k FROM generate_series(1, 1000) WHERE value > 5000")
                .await
                .expect("sql");
            let written = wh.write_df(df, Path::new("t")).await.expect("write");
            assert_eq!(written.rows, 0);
            assert_eq!(data_files(&wh, "t").await.len(), 1);
            wh.register(&ctx, "t").await.expect("register");
            let schema = ctx.table("t").await.expect("table").schema().clone();
            let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
            assert_eq!(names, ["n", "k"]);
        }
    }

    /// A write that stages no file (a stage whose result had no batches)
    /// empties the table and keeps its columns.
    #[tokio::test]
    async fn a_write_of_no_files_empties_the_table_and_keeps_its_schema() {
        let tmp = tempfile::tempdir().expect("tempdir");
        for wh in warehouses(tmp.path(), "nofiles") {
            let staging = wh.staging("t").expect("staging");
            assert_eq!(
                wh.commit(&staging, Path::new("t")).await.expect("nothing"),
                None
            );
            assert!(!wh.has_table("t").await.expect("has"));
            write_numbers(&wh, "t", 1, 10).await.expect("first");
            let staging = wh.staging("t").expect("staging");
            assert_eq!(
                wh.commit(&staging, Path::new("t")).await.expect("empty"),
                Some(1)
            );
            let ctx = crate::session::new_context();
            wh.register(&ctx, "t").await.expect("register");
            let schema = ctx.table("t").await.expect("table").schema().clone();
            let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
            assert_eq!(names, ["n"]);
            assert!(query(&ctx, "SELECT count(*) AS c FROM t")
                .await
                .contains("| 0 |"));
        }
    }

    #[tokio::test]
    async fn an_overwrite_is_a_new_version_and_the_old_one_stays_readable() {
        let tmp = tempfile::tempdir().expect("tempdir");
        for wh in warehouses(tmp.path(), "versions") {
            write_numbers(&wh, "t", 1, 10).await.expect("first");
            let second = write_numbers(&wh, "t", 1, 3).await.expect("second");
            assert_eq!(second.version, Some(1));
            let ctx = crate::session::new_context();
            wh.register(&ctx, "t").await.expect("register");
            assert!(query(&ctx, "SELECT sum(n) AS s FROM t")
                .await
                .contains("| 6 |"));
            wh.register_version(&ctx, "t", 0).await.expect("version 0");
            assert!(query(&ctx, "SELECT sum(n) AS s FROM t")
                .await
                .contains("| 55 |"));
            let err = wh
                .register_version(&ctx, "t", 7)
                .await
                .expect_err("no version 7");
            assert!(
                err.to_string()
                    .contains("table 't': there is no version 7: the latest is 1"),
                "{err}"
            );
        }
    }

    #[tokio::test]
    async fn replacing_a_partition_keeps_the_others() {
        let tmp = tempfile::tempdir().expect("tempdir");
        for wh in warehouses(tmp.path(), "partitions") {
            write_numbers(&wh, "t/date=2026-11-29", 1, 10)
                .await
                .expect("29th");
            write_numbers(&wh, "t/date=2026-11-30", 1, 100)
                .await
                .expect("30th");
            let again = write_numbers(&wh, "t/date=2026-11-29", 1, 2)
                .await
                .expect("29th again");
            assert_eq!(again.version, Some(2));
            let ctx = crate::session::new_context();
            wh.register(&ctx, "t").await.expect("register");
            let by_day = query(
                &ctx,
                "SELECT date, count(*) AS c FROM t GROUP BY date ORDER BY date",
            )
            .await;
            assert!(by_day.contains("| 2026-11-29 | 2   |"), "{by_day}");
            assert!(by_day.contains("| 2026-11-30 | 100 |"), "{by_day}");
            let err = write_numbers(&wh, "t", 1, 2)
                .await
                .expect_err("whole over partitions");
            assert!(err.to_string().contains("it holds partitions"), "{err}");
            write_numbers(&wh, "whole", 1, 2).await.expect("whole");
            let err = write_numbers(&wh, "whole/date=2026-11-30", 1, 2)
                .await
                .expect_err("partition into a whole table");
            assert!(err.to_string().contains("it was written whole"), "{err}");
        }
    }

    /// A writer killed after placing its files in the table and before its
    /// commit leaves files that no version lists: readers see the previous
    /// version, and the next write commits over it.
    #[tokio::test]
    async fn files_without_a_commit_are_not_read() {
        let tmp = tempfile::tempdir().expect("tempdir");
        for wh in warehouses(tmp.path(), "killed") {
            write_numbers(&wh, "t", 1, 10).await.expect("first");
            let ctx = crate::session::context_with_partitions(1);
            let staging = wh.staging("t").expect("staging");
            let df = ctx
                .sql("SELECT value AS n FROM generate_series(1, 1000)")
                .await
                .expect("sql");
            write_parquet_dir(df, &staging).await.expect("staged");
            let before = data_files(&wh, "t").await.len();
            for file in staged_files(&staging, &[]).expect("files") {
                let name = format!("part-killed-{}.parquet", nonce());
                wh.place(&file.path, "t", &name).await.expect("place");
            }
            assert_eq!(data_files(&wh, "t").await.len(), before + 1);
            let ctx = crate::session::new_context();
            assert_eq!(wh.register(&ctx, "t").await.expect("register"), Some(0));
            assert!(query(&ctx, "SELECT count(*) AS c FROM t")
                .await
                .contains("| 10 |"));
            let next = write_numbers(&wh, "t", 1, 5).await.expect("next write");
            assert_eq!(
                next,
                Written {
                    rows: 5,
                    version: Some(1)
                }
            );
        }
    }

    /// Two writers of one table at once: each commit is whole, and the
    /// table ends as one of the two writes, never a mix of both. Commits
    /// need the store's create-if-absent to be atomic, as local disks and
    /// S3 make it; the s3s-fs test server's is not (both of two racing
    /// conditional puts of a key succeeded 26 times in 40), so this runs on
    /// the local store only.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writers_never_mix_their_files() {
        let tmp = tempfile::tempdir().expect("tempdir");
        for wh in warehouses(tmp.path(), "concurrent").into_iter().take(1) {
            write_numbers(&wh, "t", 1, 1)
                .await
                .expect("create the table");
            for _ in 0..5 {
                let (a, b) = tokio::join!(
                    write_numbers(&wh, "t", 1, 100),
                    write_numbers(&wh, "t", 1, 1000)
                );
                let ok = [&a, &b].iter().filter(|r| r.is_ok()).count();
                assert!(ok >= 1, "{a:?} {b:?}");
                for r in [&a, &b] {
                    if let Err(e) = r {
                        assert!(e.to_string().contains("table 't'"), "{e}");
                    }
                }
                let ctx = crate::session::new_context();
                wh.register(&ctx, "t").await.expect("register");
                let counts =
                    query(&ctx, "SELECT count(*) AS c, count(DISTINCT n) AS d FROM t").await;
                assert!(
                    counts.contains("| 100 | 100 |") || counts.contains("| 1000 | 1000 |"),
                    "{counts}"
                );
            }
            // Writers of different partitions of a table both commit.
            write_numbers(&wh, "p/date=2026-11-28", 1, 5)
                .await
                .expect("28th");
            let (a, b) = tokio::join!(
                write_numbers(&wh, "p/date=2026-11-29", 1, 10),
                write_numbers(&wh, "p/date=2026-11-30", 1, 20)
            );
            a.expect("29th");
            b.expect("30th");
            let ctx = crate::session::new_context();
            wh.register(&ctx, "p").await.expect("register");
            let counts = query(
                &ctx,
                "SELECT date, count(*) AS c FROM p GROUP BY date ORDER BY date",
            )
            .await;
            assert!(
                counts.contains("| 2026-11-28 | 5  |")
                    && counts.contains("| 2026-11-29 | 10 |")
                    && counts.contains("| 2026-11-30 | 20 |"),
                "{}: {counts}",
                wh.location()
            );
        }
    }

    #[tokio::test]
    async fn a_dropped_table_is_gone() {
        let tmp = tempfile::tempdir().expect("tempdir");
        for wh in warehouses(tmp.path(), "dropped") {
            write_numbers(&wh, "evaluated", 1, 3).await.expect("write");
            assert!(wh.has_table("evaluated").await.expect("has"));
            wh.drop_table("evaluated").await.expect("drop");
            assert!(!wh.has_table("evaluated").await.expect("has"));
            assert!(data_files(&wh, "evaluated").await.is_empty());
            wh.drop_table("evaluated")
                .await
                .expect("dropping nothing is fine");
        }
    }

    #[tokio::test]
    async fn a_table_from_before_delta_is_set_aside_when_written_again() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let wh = Warehouse::create(tmp.path()).expect("create");
        let old = wh.table_dir("t");
        std::fs::create_dir_all(&old).expect("mkdir");
        std::fs::write(old.join("part-00000.parquet"), b"old").expect("write");
        let ctx = crate::session::new_context();
        let err = wh.register(&ctx, "t").await.expect_err("not a Delta table");
        assert!(err.to_string().contains("is not a Delta table"), "{err}");
        assert!(wh.tables().await.expect("tables").is_empty());
        write_numbers(&wh, "t", 1, 3).await.expect("write");
        wh.register(&ctx, "t").await.expect("register");
        assert!(query(&ctx, "SELECT sum(n) AS s FROM t")
            .await
            .contains("| 6 |"));
        let aside: Vec<_> = std::fs::read_dir(tmp.path().join(PRE_DELTA))
            .expect("aside")
            .collect();
        assert_eq!(aside.len(), 1);
    }

    /// A drop cut short between its rename and its removal is finished,
    /// not undone, by the next start-up.
    #[test]
    fn a_drop_cut_short_is_finished_on_start_up() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let cut = tmp.path().join(".staging").join("evaluated-dropped-abc");
        std::fs::create_dir_all(&cut).expect("mkdir");
        std::fs::write(cut.join("a.parquet"), b"x").expect("write");
        Warehouse::create(tmp.path()).expect("reopen");
        assert!(!tmp.path().join(".staging").exists());
        assert!(!tmp.path().join("evaluated").exists());
    }

    #[test]
    fn other_object_stores_are_refused_by_name() {
        let err = Warehouse::create("gs://bucket/wh").expect_err("gs");
        assert!(
            err.to_string().contains(
                "gs:// warehouses are not supported; give a local directory or an s3:// URL"
            ),
            "{err}"
        );
    }
}
