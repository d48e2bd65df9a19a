//! One writer per warehouse: the `.lock` file a run holds while it writes.
//!
//! The lock is the operating system's advisory lock on `<root>/.lock`
//! (`flock` on Unix), so it is released when the holder exits however it
//! exits: a run killed with `kill -9` leaves no lock behind, only its
//! description in the file, which the next holder reports and replaces.
//! Readers (`zeekml sql`, `zeekml report`) never take it: committed tables
//! are committed whole, as Delta versions.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::{io, Error, Result};

/// File name of the lock under the warehouse root.
const LOCK_FILE: &str = ".lock";

/// How often a waiting run tries the lock again.
const RETRY: Duration = Duration::from_millis(200);

/// Who holds a warehouse, as written into the lock file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Holder {
    /// The run's id (the `runs` table's `run_id`).
    pub run_id: String,
    /// Its process id.
    pub pid: u32,
    /// When it took the lock (RFC 3339, UTC).
    pub started_at: String,
}

/// A held warehouse lock; dropping it releases the lock.
#[derive(Debug)]
pub struct WarehouseLock {
    file: File,
    path: PathBuf,
}

impl WarehouseLock {
    /// Takes the lock of the warehouse at `root` for `run_id`, waiting up to
    /// `wait` for another run to finish (not at all for zero).
    pub fn acquire(root: &Path, run_id: &str, wait: Duration) -> Result<Self> {
        let path = root.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io(&path))?;
        let deadline = Instant::now() + wait;
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(RETRY);
                }
                Err(TryLockError::WouldBlock) => {
                    let holder = read_holder(&mut file);
                    return Err(Error::Locked {
                        warehouse: root.to_path_buf(),
                        holder: holder.map_or_else(
                            || "another run".to_string(),
                            |h| {
                                format!(
                                    "run {} (pid {}, started {})",
                                    h.run_id, h.pid, h.started_at
                                )
                            },
                        ),
                        waited: wait,
                    });
                }
                Err(TryLockError::Error(e)) => return Err(io(&path)(e)),
            }
        }
        // A description left in the file is a run that ended without
        // releasing the lock (killed, or its machine lost power).
        if let Some(gone) = read_holder(&mut file) {
            tracing::warn!(
                run_id = %gone.run_id,
                pid = gone.pid,
                started_at = %gone.started_at,
                "the previous run ended without releasing the warehouse lock; clearing its leftovers"
            );
        }
        let holder = Holder {
            run_id: run_id.to_string(),
            pid: std::process::id(),
            started_at: crate::manifest::now_rfc3339(),
        };
        let text = serde_json::to_string(&holder)?;
        let written = file
            .set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)))
            .and_then(|_| file.write_all(text.as_bytes()))
            .and_then(|()| file.sync_data());
        written.map_err(io(&path))?;
        Ok(WarehouseLock { file, path })
    }

    /// Who holds the lock of the warehouse at `root`, if anyone.
    pub fn holder(root: &Path) -> Option<Holder> {
        let mut file = File::open(root.join(LOCK_FILE)).ok()?;
        match file.try_lock_shared() {
            // Nobody holds it; a description left is a dead run's.
            Ok(()) => None,
            Err(_) => read_holder(&mut file),
        }
    }
}

impl Drop for WarehouseLock {
    fn drop(&mut self) {
        // Emptied first, so the next run knows this one ended cleanly.
        if let Err(e) = self.file.set_len(0) {
            tracing::warn!(path = %self.path.display(), error = %e, "could not clear the warehouse lock");
        }
        // The descriptor's close releases the lock; unlock says so early.
        let _ = self.file.unlock();
    }
}

fn read_holder(file: &mut File) -> Option<Holder> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.read_to_string(&mut text).ok()?;
    serde_json::from_str(text.trim()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_writer_is_told_who_holds_the_warehouse() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let first = WarehouseLock::acquire(tmp.path(), "run-1", Duration::ZERO).expect("lock");
        let holder = WarehouseLock::holder(tmp.path()).expect("held");
        assert_eq!(holder.run_id, "run-1");
        assert_eq!(holder.pid, std::process::id());
        let err = WarehouseLock::acquire(tmp.path(), "run-2", Duration::ZERO)
            .expect_err("held")
            .to_string();
        assert!(
            err.contains(&format!(
                "is being written by run run-1 (pid {}, started ",
                std::process::id()
            )),
            "{err}"
        );
        drop(first);
        assert_eq!(WarehouseLock::holder(tmp.path()), None);
        WarehouseLock::acquire(tmp.path(), "run-2", Duration::ZERO).expect("free again");
    }

    #[test]
    fn a_waiting_writer_gets_the_lock_when_it_is_released() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let first = WarehouseLock::acquire(tmp.path(), "run-1", Duration::ZERO).expect("lock");
        let release = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            drop(first);
        });
        let started = Instant::now();
        let second = WarehouseLock::acquire(tmp.path(), "run-2", Duration::from_secs(10))
            .expect("waits for the first");
        assert!(started.elapsed() >= Duration::from_millis(250));
        release.join().expect("thread");
        assert_eq!(
            WarehouseLock::holder(tmp.path()).map(|h| h.run_id),
            Some("run-2".to_string())
        );
        drop(second);
    }
}
