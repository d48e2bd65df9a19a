//! LightGBM datasets built from rows pushed in blocks, through LightGBM's C
//! API where lightgbm3 wraps only whole matrices: the bins are found on a
//! sample, then rows are pushed a block at a time and stored as bins (about
//! a byte per feature per row or less), so that no matrix of every training
//! row's 4-byte values is ever held. The dataset is handed to lightgbm3
//! through LightGBM's binary dataset file, the one way lightgbm3 accepts a
//! dataset it did not build.
//!
//! The only unsafe code of the workspace. It is sound because every call
//! gets pointers to live Rust buffers whose lengths are checked against the
//! counts passed with them, LightGBM does not keep any of them past the call
//! (it copies values into its bins), and the one handle is owned by
//! [`Binned`], used from one thread (it is not `Send`) and freed once.
#![allow(unsafe_code)]

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::path::Path;

use lightgbm3_sys as sys;

/// Dataset parameters: LightGBM's defaults, as lightgbm3 passes them when it
/// builds a dataset from a matrix, so that both find the same bins.
const PARAMETERS: &CStr = c"";

/// LightGBM's threshold below which a sampled value counts as zero.
const ZERO_THRESHOLD: f64 = 1e-35_f32 as f64;

fn check(code: c_int) -> Result<(), String> {
    if code == 0 {
        return Ok(());
    }
    // SAFETY: LightGBM returns a pointer to its thread-local, NUL-terminated
    // message buffer, valid until the next call on this thread.
    let message = unsafe { CStr::from_ptr(sys::LGBM_GetLastError()) };
    Err(message.to_string_lossy().into_owned())
}

fn int(n: usize, what: &str) -> Result<i32, String> {
    i32::try_from(n).map_err(|_| format!("{what} {n} exceeds LightGBM's limit of {}", i32::MAX))
}

/// The rows (of `rows`) LightGBM's own matrix constructor samples to find
/// the bins: the same count and the same seed.
pub(crate) fn sample_rows(rows: usize) -> Result<Vec<usize>, String> {
    let total = int(rows, "rows")?;
    let mut count: c_int = 0;
    // SAFETY: `count` is a live out-parameter; PARAMETERS is NUL-terminated.
    check(unsafe { sys::LGBM_GetSampleCount(total, PARAMETERS.as_ptr(), &mut count) })?;
    let mut out = vec![0i32; usize::try_from(count).unwrap_or(0)];
    let mut len: i32 = 0;
    // SAFETY: `out` holds the `count` indices LightGBM writes.
    check(unsafe {
        sys::LGBM_SampleIndices(
            total,
            PARAMETERS.as_ptr(),
            out.as_mut_ptr().cast::<c_void>(),
            &mut len,
        )
    })?;
    out.truncate(usize::try_from(len).unwrap_or(0));
    Ok(out.into_iter().map(|i| i as usize).collect())
}

/// A LightGBM dataset being filled.
pub(crate) struct Binned {
    handle: sys::DatasetHandle,
    rows: usize,
    cols: usize,
}

impl Binned {
    /// A dataset of `rows` rows whose bins are found on `sample`, the
    /// row-major values of the rows [`sample_rows`] named.
    pub(crate) fn from_sample(sample: &[f32], cols: usize, rows: usize) -> Result<Self, String> {
        let sampled = sample.len() / cols.max(1);
        // Per column, the sampled values that are not zero and their
        // positions in the sample, as LightGBM's matrix constructor keeps them.
        let mut values: Vec<Vec<f64>> = vec![Vec::new(); cols];
        let mut positions: Vec<Vec<c_int>> = vec![Vec::new(); cols];
        for (i, row) in sample.chunks_exact(cols).enumerate() {
            for (k, &v) in row.iter().enumerate() {
                let v = f64::from(v);
                if v.abs() > ZERO_THRESHOLD || v.is_nan() {
                    values[k].push(v);
                    positions[k].push(i as c_int);
                }
            }
        }
        let per_column: Vec<c_int> = values.iter().map(|v| v.len() as c_int).collect();
        let mut value_ptrs: Vec<*mut f64> = values.iter_mut().map(|v| v.as_mut_ptr()).collect();
        let mut position_ptrs: Vec<*mut c_int> =
            positions.iter_mut().map(|v| v.as_mut_ptr()).collect();
        let mut handle: sys::DatasetHandle = std::ptr::null_mut();
        // SAFETY: `cols` columns of `per_column[k]` values and positions each,
        // alive for the call; LightGBM copies what it needs into the bins.
        check(unsafe {
            sys::LGBM_DatasetCreateFromSampledColumn(
                value_ptrs.as_mut_ptr(),
                position_ptrs.as_mut_ptr(),
                int(cols, "features")?,
                per_column.as_ptr(),
                int(sampled, "sampled rows")?,
                int(rows, "rows")?,
                rows as i64,
                PARAMETERS.as_ptr(),
                &mut handle,
            )
        })?;
        Ok(Binned { handle, rows, cols })
    }

    /// A dataset of `rows` rows binned like `reference` (a validation set).
    pub(crate) fn like(reference: &Binned, rows: usize) -> Result<Self, String> {
        let mut handle: sys::DatasetHandle = std::ptr::null_mut();
        // SAFETY: `reference.handle` is a live dataset; LightGBM copies its
        // bin mappers.
        check(unsafe {
            sys::LGBM_DatasetCreateByReference(reference.handle, rows as i64, &mut handle)
        })?;
        Ok(Binned {
            handle,
            rows,
            cols: reference.cols,
        })
    }

    /// Stores rows `start..` from their row-major values. The dataset is
    /// complete once its last row is pushed, so that block comes last.
    pub(crate) fn push(&mut self, values: &[f32], start: usize) -> Result<(), String> {
        let n = values.len() / self.cols;
        if n * self.cols != values.len() || start + n > self.rows {
            return Err(format!(
                "rows {start}..{} of {} pushed with {} values for {} features",
                start + n,
                self.rows,
                values.len(),
                self.cols
            ));
        }
        // SAFETY: `values` holds `n` rows of `cols` values, alive for the call.
        check(unsafe {
            sys::LGBM_DatasetPushRows(
                self.handle,
                values.as_ptr().cast::<c_void>(),
                sys::C_API_DTYPE_FLOAT32 as c_int,
                int(n, "rows")?,
                int(self.cols, "features")?,
                int(start, "rows")?,
            )
        })
    }

    /// Sets a per-row field (`label`, `weight`).
    pub(crate) fn set_field(&mut self, name: &CStr, values: &[f32]) -> Result<(), String> {
        if values.len() != self.rows {
            return Err(format!("{} values for {} rows", values.len(), self.rows));
        }
        // SAFETY: `values` holds one float per row, alive for the call.
        check(unsafe {
            sys::LGBM_DatasetSetField(
                self.handle,
                name.as_ptr(),
                values.as_ptr().cast::<c_void>(),
                int(self.rows, "rows")?,
                sys::C_API_DTYPE_FLOAT32 as c_int,
            )
        })
    }

    /// Writes the dataset as LightGBM's binary dataset file.
    pub(crate) fn save(&self, path: &Path) -> Result<(), String> {
        let path = CString::new(path.to_string_lossy().as_bytes())
            .map_err(|_| format!("path {} holds a NUL byte", path.display()))?;
        let name: *const c_char = path.as_ptr();
        // SAFETY: a live dataset and a NUL-terminated path.
        check(unsafe { sys::LGBM_DatasetSaveBinary(self.handle, name) })
    }
}

impl Drop for Binned {
    fn drop(&mut self) {
        // SAFETY: the handle was created by LightGBM and is freed only here.
        // A failure to free cannot be acted on.
        let _ = unsafe { sys::LGBM_DatasetFree(self.handle) };
    }
}
