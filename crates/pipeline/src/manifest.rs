//! The run manifest: one row per (run, stage), stored as the `runs` table.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, UInt64Array,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use crate::error::Result;
use crate::parquet_out::ParquetOut;
use crate::warehouse::Warehouse;

/// How a stage ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Completed and committed its outputs.
    Ok,
    /// Failed; its outputs were not committed.
    Failed,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Failed => "failed",
        }
    }
}

/// What one stage of one run did.
#[derive(Debug, Clone)]
pub struct StageRecord {
    /// Stage name.
    pub stage: String,
    /// Runner kind (`ingest`, `sql`, `lightgbm`, `score`).
    pub kind: String,
    /// Inputs: tables or the input location.
    pub inputs: String,
    /// Tables written, comma separated.
    pub outputs: String,
    /// Rows read.
    pub rows_in: u64,
    /// Rows written to the stage's main table.
    pub rows_out: u64,
    /// Rows set aside as rejects.
    pub rows_rejected: u64,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Peak resident memory of the process during the stage, in MiB.
    pub peak_rss_mib: f64,
    /// Outcome.
    pub status: Status,
    /// The error message when failed.
    pub error: Option<String>,
    /// The Delta version of each table the stage committed.
    pub versions: Vec<(String, u64)>,
}

/// A whole run, written to `runs/` when it ends (successfully or not).
#[derive(Debug, Clone)]
pub struct RunRecord {
    /// Unique run id (start time and process id).
    pub run_id: String,
    /// Pipeline name.
    pub pipeline: String,
    /// Pipeline file path.
    pub pipeline_file: String,
    /// Parameters after overrides, as JSON.
    pub params: String,
    /// Start time, RFC 3339 UTC.
    pub started_at: String,
    /// The stages that ran, in order.
    pub stages: Vec<StageRecord>,
}

/// Schema of the `runs` table.
pub fn runs_schema() -> SchemaRef {
    let s = |n: &str| Field::new(n, DataType::Utf8, true);
    let u = |n: &str| Field::new(n, DataType::UInt64, false);
    let f = |n: &str| Field::new(n, DataType::Float64, false);
    Arc::new(Schema::new(vec![
        s("run_id"),
        s("pipeline"),
        s("pipeline_file"),
        s("params"),
        s("started_at"),
        Field::new("stage_index", DataType::UInt64, false),
        s("stage"),
        s("kind"),
        s("inputs"),
        s("outputs"),
        u("rows_in"),
        u("rows_out"),
        u("rows_rejected"),
        f("seconds"),
        f("peak_rss_mib"),
        s("status"),
        s("error"),
        Field::new("table_version", DataType::Int64, true),
        s("table_versions"),
    ]))
}

impl RunRecord {
    /// The run as rows of the `runs` table.
    pub fn to_batch(&self) -> Result<RecordBatch> {
        let n = self.stages.len();
        let rep = |v: &str| -> ArrayRef { Arc::new(StringArray::from(vec![v; n])) };
        let strs = |f: &dyn Fn(&StageRecord) -> Option<String>| -> ArrayRef {
            Arc::new(StringArray::from(
                self.stages.iter().map(f).collect::<Vec<_>>(),
            ))
        };
        let uints = |f: &dyn Fn(&StageRecord) -> u64| -> ArrayRef {
            Arc::new(UInt64Array::from(
                self.stages.iter().map(f).collect::<Vec<_>>(),
            ))
        };
        let floats = |f: &dyn Fn(&StageRecord) -> f64| -> ArrayRef {
            Arc::new(Float64Array::from(
                self.stages.iter().map(f).collect::<Vec<_>>(),
            ))
        };
        Ok(RecordBatch::try_new(
            runs_schema(),
            vec![
                rep(&self.run_id),
                rep(&self.pipeline),
                rep(&self.pipeline_file),
                rep(&self.params),
                rep(&self.started_at),
                Arc::new(UInt64Array::from((0..n as u64).collect::<Vec<_>>())),
                strs(&|s| Some(s.stage.clone())),
                strs(&|s| Some(s.kind.clone())),
                strs(&|s| Some(s.inputs.clone())),
                strs(&|s| Some(s.outputs.clone())),
                uints(&|s| s.rows_in),
                uints(&|s| s.rows_out),
                uints(&|s| s.rows_rejected),
                floats(&|s| s.seconds),
                floats(&|s| s.peak_rss_mib),
                strs(&|s| Some(s.status.as_str().to_string())),
                strs(&|s| s.error.clone()),
                Arc::new(Int64Array::from(
                    self.stages
                        .iter()
                        .map(|s| s.versions.first().and_then(|(_, v)| i64::try_from(*v).ok()))
                        .collect::<Vec<_>>(),
                )),
                strs(&|s| {
                    (!s.versions.is_empty()).then(|| {
                        s.versions
                            .iter()
                            .map(|(t, v)| format!("{t}={v}"))
                            .collect::<Vec<_>>()
                            .join(",")
                    })
                }),
            ],
        )?)
    }

    /// Appends this run to the `runs` table, in one Delta commit of its own.
    pub async fn append_to(&self, wh: &Warehouse) -> Result<()> {
        let batch = self.to_batch()?;
        let staging = wh.staging("runs")?;
        let written = async {
            let mut out =
                ParquetOut::create(&staging.join("part-00000.parquet"), batch.schema(), 1)?;
            out.push(batch).await?;
            out.finish().await?;
            wh.append(&staging, "runs").await
        }
        .await;
        if written.is_err() {
            wh.discard(&staging);
        }
        written.map(|_| ())
    }
}

/// Peak resident memory since the last [`reset_peak_rss`], in MiB (Linux;
/// 0 where `/proc` is unavailable).
pub fn peak_rss_mib() -> f64 {
    proc_status_kib("VmHWM:") / 1024.0
}

/// Current resident memory in MiB.
pub fn current_rss_mib() -> f64 {
    proc_status_kib("VmRSS:") / 1024.0
}

/// Resets the kernel's peak-RSS mark so the next stage measures its own peak.
pub fn reset_peak_rss() {
    // Writing 5 to clear_refs resets VmHWM (Linux >= 4.0); harmless elsewhere.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn proc_status_kib(key: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0.0)
}

/// Current time as RFC 3339 UTC, without a date library.
pub fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    rfc3339(secs)
}

/// Formats epoch seconds as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_matches_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_644_465_509), "2022-02-10T03:58:29Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn peak_rss_is_measured_on_linux() {
        reset_peak_rss();
        assert!(peak_rss_mib() > 0.0);
        assert!(peak_rss_mib() >= current_rss_mib() * 0.5);
    }
}
