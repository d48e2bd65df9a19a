//! Rows of a training matrix put in order on disk. A pass over the input
//! meets the rows in input order, while LightGBM takes them in the matrix's
//! order (by feature-vector hash, so that the model does not depend on the
//! order of the input); each row is appended to the file of its block of
//! positions, and the blocks are then read back one at a time, so memory
//! holds one block of rows instead of the whole matrix.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Prefix of a training run's directory in the temporary directory; the
/// process id follows, so that another run can tell whether it is stale.
const DIR_PREFIX: &str = "zeekml-train-";

/// A directory for one split's spill files and datasets in `TMPDIR`,
/// removed when dropped. Directories of processes that no longer run (a run
/// killed while training) are removed first.
pub(crate) fn spill_dir() -> Result<tempfile::TempDir> {
    let tmp = std::env::temp_dir();
    remove_stale(&tmp);
    tempfile::Builder::new()
        .prefix(&format!("{DIR_PREFIX}{}-", std::process::id()))
        .tempdir_in(&tmp)
        .map_err(|source| Error::Io {
            during: "create a directory for the training matrix in",
            path: tmp,
            source,
        })
}

/// Removes `zeekml-train-<pid>-*` directories whose process is gone. Only
/// where `/proc` tells which processes run; a failure leaves them.
fn remove_stale(tmp: &Path) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(DIR_PREFIX))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new("/proc").join(pid.to_string()).exists() {
            tracing::info!(dir = %entry.path().display(), pid, "removing the spill files of a run that ended without removing them");
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Rows per block: 262,144 rows of 44 features are 46 MB.
pub(crate) const BLOCK_ROWS: usize = 1 << 18;

/// Buffer of each block file's writer.
const WRITE_BUFFER: usize = 1 << 18;

/// A matrix of `rows` x `cols` values being written out of order.
pub(crate) struct Spill {
    paths: Vec<PathBuf>,
    files: Vec<BufWriter<File>>,
    rows: usize,
    cols: usize,
    record: Vec<u8>,
}

fn io<'p>(during: &'static str, path: &'p Path) -> impl FnOnce(std::io::Error) -> Error + 'p {
    move |source| Error::Io {
        during,
        path: path.to_path_buf(),
        source,
    }
}

impl Spill {
    /// Block files `<name>-<block>` in `dir`.
    pub(crate) fn create(dir: &Path, name: &str, rows: usize, cols: usize) -> Result<Self> {
        let blocks = rows.div_ceil(BLOCK_ROWS);
        let mut paths = Vec::with_capacity(blocks);
        let mut files = Vec::with_capacity(blocks);
        for b in 0..blocks {
            let path = dir.join(format!("{name}-{b:05}"));
            let file = File::create(&path).map_err(io("create the spill file", &path))?;
            files.push(BufWriter::with_capacity(WRITE_BUFFER, file));
            paths.push(path);
        }
        Ok(Spill {
            paths,
            files,
            rows,
            cols,
            record: Vec::with_capacity(4 + 4 * cols),
        })
    }

    /// Writes the values of the row at `position`.
    pub(crate) fn write(&mut self, position: usize, values: &[f32]) -> Result<()> {
        let b = position / BLOCK_ROWS;
        self.record.clear();
        self.record
            .extend(((position % BLOCK_ROWS) as u32).to_le_bytes());
        self.record
            .extend(values.iter().flat_map(|v| v.to_le_bytes()));
        self.files[b]
            .write_all(&self.record)
            .map_err(io("write the spill file", &self.paths[b]))
    }

    /// Calls `f(first position, row-major values)` for every block in
    /// order, each file removed once read. Every position must have been
    /// written once.
    pub(crate) fn blocks(self, mut f: impl FnMut(usize, &[f32]) -> Result<()>) -> Result<()> {
        let record = 4 + 4 * self.cols;
        let mut block = Vec::new();
        let mut bytes = Vec::new();
        for (b, (file, path)) in self.files.into_iter().zip(&self.paths).enumerate() {
            drop(
                file.into_inner()
                    .map_err(|e| io("write the spill file", path)(e.into_error()))?,
            );
            let start = b * BLOCK_ROWS;
            let rows = BLOCK_ROWS.min(self.rows - start);
            bytes.clear();
            File::open(path)
                .and_then(|mut f| f.read_to_end(&mut bytes))
                .map_err(io("read the spill file", path))?;
            std::fs::remove_file(path).map_err(io("remove the spill file", path))?;
            let complete = bytes.len() == rows * record
                && bytes
                    .chunks_exact(record)
                    .all(|r| (u32::from_le_bytes([r[0], r[1], r[2], r[3]]) as usize) < rows);
            if !complete {
                return Err(Error::Io {
                    during: "read the spill file",
                    path: path.clone(),
                    source: std::io::Error::other(format!(
                        "{} bytes where {rows} rows of {} values take {}, or a row out of the block",
                        bytes.len(),
                        self.cols,
                        rows * record
                    )),
                });
            }
            block.clear();
            block.resize(rows * self.cols, 0.0);
            for r in bytes.chunks_exact(record) {
                let at = u32::from_le_bytes([r[0], r[1], r[2], r[3]]) as usize;
                let dst = &mut block[at * self.cols..(at + 1) * self.cols];
                for (d, v) in dst.iter_mut().zip(r[4..].chunks_exact(4)) {
                    *d = f32::from_le_bytes([v[0], v[1], v[2], v[3]]);
                }
            }
            f(start, &block)?;
        }
        Ok(())
    }
}
