//! Native Zeek conn logs (TSV with `#` headers, or JSON lines, optionally
//! gzipped) into Arrow batches in [`zeek_schema`].
//!
//! Both formats parse a row into a [`RowBuf`] (typed slots, one per output
//! column), which [`RowSink`] appends to column builders. A row is only
//! appended once every cell parsed, so a rejected row never leaves a partial
//! row behind.

use std::borrow::Cow;
use std::io::Read;
use std::sync::{Arc, LazyLock};

use bytes::Bytes;
use datafusion::arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, Int64Builder, RecordBatch, StringBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use flate2::read::MultiGzDecoder;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt, TryStreamExt};
use object_store::ObjectStoreExt;

use crate::error::{Error, Result};
use crate::location::resolve_location;
use crate::schema::{canonical_name, conn_schema, CONN_COLUMNS};
use crate::{zeek_json, zeek_tsv};

/// Index of `tunnel_parents` in [`zeek_schema`], right after the canonical columns.
pub(crate) const TUNNEL_PARENTS: usize = CONN_COLUMNS.len();
/// Number of values a parser fills per row (canonical columns + `tunnel_parents`).
pub(crate) const ROW_VALUES: usize = TUNNEL_PARENTS + 1;

/// Index of `ts` in the canonical schema: the one column that may also be an
/// ISO 8601 string.
pub(crate) const TS: usize = 0;

static ZEEK_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let mut fields: Vec<Field> = conn_schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new("tunnel_parents", DataType::Utf8, true));
    fields.push(Field::new("source_file", DataType::Utf8, false));
    fields.push(Field::new("source_line", DataType::Int64, false));
    Arc::new(Schema::new(fields))
});

static REJECTS_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("file", DataType::Utf8, false),
        Field::new("line", DataType::Int64, false),
        Field::new("reason", DataType::Utf8, false),
        Field::new("text", DataType::Utf8, false),
    ]))
});

/// Output schema of the native Zeek readers: [`conn_schema`] plus
/// `tunnel_parents` (set joined with `,`), `source_file` and `source_line`
/// (1-based physical line), so every row can be traced back to its input.
pub fn zeek_schema() -> SchemaRef {
    Arc::clone(&ZEEK_SCHEMA)
}

/// Schema of the rejects table: `file`, `line`, `reason`, `text`.
pub fn rejects_schema() -> SchemaRef {
    Arc::clone(&REJECTS_SCHEMA)
}

/// What to do with a row that cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BadRows {
    /// Stop with an error naming the file and line.
    #[default]
    Fail,
    /// Set the row aside in [`ZeekRead::rejects`] and keep reading.
    Reject,
}

/// A row set aside under [`BadRows::Reject`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// The file the row came from.
    pub file: String,
    /// The 1-based physical line.
    pub line: u64,
    /// Why it was rejected.
    pub reason: String,
    /// The line as read (invalid UTF-8 replaced).
    pub text: String,
}

/// Options for the native Zeek readers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZeekReadOptions {
    /// What to do with unreadable rows.
    pub bad_rows: BadRows,
    /// Maximum rows per output batch.
    pub batch_size: usize,
}

impl Default for ZeekReadOptions {
    fn default() -> Self {
        Self {
            bad_rows: BadRows::Fail,
            batch_size: 65536,
        }
    }
}

/// The result of reading one or more Zeek log files.
#[derive(Debug, Clone, Default)]
pub struct ZeekRead {
    /// Batches in [`zeek_schema`], in file order then line order.
    pub batches: Vec<RecordBatch>,
    /// Rows set aside under [`BadRows::Reject`].
    pub rejects: Vec<Rejected>,
    /// Number of files read.
    pub files: usize,
    /// Number of rows in `batches`.
    pub rows: u64,
}

impl ZeekRead {
    fn append(&mut self, other: ZeekRead) {
        self.batches.extend(other.batches);
        self.rejects.extend(other.rejects);
        self.files += other.files;
        self.rows += other.rows;
    }
}

/// Builds the rejects table from rejected rows.
pub fn rejects_to_batch(rejects: &[Rejected]) -> Result<RecordBatch> {
    let mut file = StringBuilder::new();
    let mut line = Int64Builder::with_capacity(rejects.len());
    let mut reason = StringBuilder::new();
    let mut text = StringBuilder::new();
    for r in rejects {
        file.append_value(&r.file);
        line.append_value(i64::try_from(r.line).unwrap_or(i64::MAX));
        reason.append_value(&r.reason);
        text.append_value(&r.text);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(file.finish()),
        Arc::new(line.finish()),
        Arc::new(reason.finish()),
        Arc::new(text.finish()),
    ];
    Ok(RecordBatch::try_new(rejects_schema(), columns)?)
}

/// Reads one Zeek conn log held in memory. `file_name` names the file in
/// errors and in the `source_file` column; it also enables gzip when it ends
/// in `.gz` (gzip is detected from the magic bytes too).
pub fn read_zeek_bytes(file_name: &str, bytes: &[u8], opts: &ZeekReadOptions) -> Result<ZeekRead> {
    let file = LogFile::new(file_name, Bytes::copy_from_slice(bytes), parallel_chunks)?;
    let chunks = &file.chunks;
    let read = if let [only] = chunks.as_slice() {
        file.parse(only, opts)?
    } else {
        // Chunks parse on their own threads; results are taken in chunk
        // order, so rows, rejects and the first error are as if sequential.
        std::thread::scope(|scope| {
            let file = &file;
            let handles: Vec<_> = chunks[1..]
                .iter()
                .map(|chunk| scope.spawn(move || file.parse(chunk, opts)))
                .collect();
            let mut read = file.parse(&chunks[0], opts)?;
            for handle in handles {
                let part = handle.join().map_err(|_| Error::ParserPanicked {
                    file: file_name.to_string(),
                })??;
                read.batches.extend(part.batches);
                read.rejects.extend(part.rejects);
                read.rows += part.rows;
            }
            Ok::<_, Error>(read)
        })?
    };
    Ok(read)
}

/// One log in memory, decompressed, with what every chunk of it needs.
struct LogFile {
    name: String,
    bytes: Bytes,
    format: Format,
    /// Start offsets of the `#` lines (TSV).
    comments: Vec<usize>,
    /// The runs of lines parsed as units.
    chunks: Vec<Chunk>,
}

impl LogFile {
    /// `chunk_count` gives the number of chunks for the decompressed length.
    fn new(name: &str, bytes: Bytes, chunk_count: fn(usize) -> usize) -> Result<Self> {
        if bytes.is_empty() {
            return Err(Error::EmptyFile {
                file: name.to_string(),
            });
        }
        let bytes = if name.ends_with(".gz") || bytes.starts_with(&[0x1f, 0x8b]) {
            Bytes::from(gunzip(name, &bytes)?)
        } else {
            bytes
        };
        let format = detect(name, &bytes)?;
        let has_data = bytes
            .split(|&b| b == b'\n')
            .any(|line| !line.trim_ascii().is_empty() && line[0] != b'#');
        if !has_data {
            tracing::warn!(file = name, "Zeek log holds no data rows");
        }
        let comments = match format {
            Format::Tsv => zeek_tsv::comment_lines(&bytes),
            Format::Json => Vec::new(),
        };
        let chunks = plan_chunks(&bytes, chunk_count(bytes.len()));
        Ok(Self {
            name: name.to_string(),
            bytes,
            format,
            comments,
            chunks,
        })
    }

    fn parse(&self, chunk: &Chunk, opts: &ZeekReadOptions) -> Result<ZeekRead> {
        let part = &self.bytes[chunk.start..chunk.end];
        let mut sink = RowSink::new(&self.name, opts, part.len());
        match self.format {
            Format::Tsv => {
                let header =
                    zeek_tsv::header_at(&self.bytes, &self.comments, chunk.start, &self.name);
                zeek_tsv::parse(part, chunk.first_line, header, &mut sink)?;
            }
            Format::Json => zeek_json::parse(part, chunk.first_line, &mut sink)?,
        }
        let mut read = sink.finish()?;
        read.files = usize::from(chunk.start == 0);
        Ok(read)
    }
}

/// Inputs at least this large are split into chunks parsed in parallel.
const PARALLEL_MIN_BYTES: usize = 8 << 20;

/// Chunk size of [`stream_zeek`]: about 60,000 conn log lines, so a chunk
/// is about one batch and little of a large log is held at once.
const STREAM_CHUNK_BYTES: usize = 8 << 20;

/// A run of whole lines of the input and the physical number of its first line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Chunk {
    start: usize,
    end: usize,
    first_line: u64,
}

/// One chunk per core for an input of `len` bytes (one for small inputs).
fn parallel_chunks(len: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if len < PARALLEL_MIN_BYTES {
        1
    } else {
        cores.min(len / (PARALLEL_MIN_BYTES / 2)).max(1)
    }
}

/// Splits the input at line starts into `wanted` chunks of about equal size.
fn plan_chunks(bytes: &[u8], wanted: usize) -> Vec<Chunk> {
    let wanted = wanted.max(1);
    let mut chunks = Vec::with_capacity(wanted);
    let mut start = 0;
    let mut first_line = 1u64;
    for k in 1..=wanted {
        if start >= bytes.len() {
            break;
        }
        let end = if k == wanted {
            bytes.len()
        } else {
            let target = (bytes.len() / wanted * k).max(start);
            memchr::memchr(b'\n', &bytes[target..]).map_or(bytes.len(), |i| target + i + 1)
        };
        chunks.push(Chunk {
            start,
            end,
            first_line,
        });
        first_line += count_newlines(&bytes[start..end]);
        start = end;
    }
    if chunks.is_empty() {
        chunks.push(Chunk {
            start: 0,
            end: bytes.len(),
            first_line: 1,
        });
    }
    chunks
}

/// Newlines in `bytes`, counted in byte-wide lanes over runs of 255 bytes
/// so that the compiler vectorises the loop.
fn count_newlines(bytes: &[u8]) -> u64 {
    bytes
        .chunks(255)
        .map(|run| u64::from(run.iter().fold(0u8, |n, &b| n + u8::from(b == b'\n'))))
        .sum()
}

/// Reads every file of `location` (see [`resolve_location`]) as a stream of
/// parsed chunks, in file order then line order: each item holds the
/// batches and rejects of a run of lines. Chunks parse on blocking threads,
/// one more in flight than there are cores, and the next file is fetched
/// while the last chunks of the current one parse, so memory holds about
/// one file and a few chunks whatever the input's size. The first error
/// (in input order) ends the stream.
pub async fn stream_zeek(
    location: &str,
    opts: &ZeekReadOptions,
) -> Result<BoxStream<'static, Result<ZeekRead>>> {
    let resolved = resolve_location(location).await?;
    let store = Arc::clone(&resolved.store);
    let files: Vec<(object_store::path::Path, String)> = resolved
        .files
        .iter()
        .map(|meta| (meta.location.clone(), resolved.display_path(&meta.location)))
        .collect();
    let in_flight = std::thread::available_parallelism().map_or(2, |n| n.get()) + 1;
    let opts = opts.clone();
    let parsed = futures::stream::iter(files)
        .then(move |(path, name)| load_file(Arc::clone(&store), path, name))
        .flat_map(move |loaded| {
            let parses: Vec<BoxFuture<'static, Result<ZeekRead>>> = match loaded {
                Ok(file) => {
                    let file = Arc::new(file);
                    (0..file.chunks.len())
                        .map(|k| {
                            let (file, opts) = (Arc::clone(&file), opts.clone());
                            async move {
                                tokio::task::spawn_blocking(move || {
                                    file.parse(&file.chunks[k], &opts)
                                })
                                .await?
                            }
                            .boxed()
                        })
                        .collect()
                }
                Err(e) => vec![futures::future::ready(Err(e)).boxed()],
            };
            futures::stream::iter(parses)
        })
        .buffered(in_flight);
    Ok(parsed.boxed())
}

/// Fetches, decompresses and inspects one log file.
async fn load_file(
    store: Arc<dyn object_store::ObjectStore>,
    path: object_store::path::Path,
    name: String,
) -> Result<LogFile> {
    let store_err = |source| Error::ObjectStore {
        location: name.clone(),
        source,
    };
    let bytes = store
        .get(&path)
        .await
        .map_err(store_err)?
        .bytes()
        .await
        .map_err(store_err)?;
    let chunk_count = |len: usize| len.div_ceil(STREAM_CHUNK_BYTES);
    tokio::task::spawn_blocking(move || LogFile::new(&name, bytes, chunk_count)).await?
}

/// Resolves `location` (see [`resolve_location`]) and reads every file,
/// all at once: [`stream_zeek`] collected, in file order then line order.
pub async fn read_zeek(location: &str, opts: &ZeekReadOptions) -> Result<ZeekRead> {
    stream_zeek(location, opts)
        .await?
        .try_fold(ZeekRead::default(), |mut acc, read| async move {
            acc.append(read);
            Ok::<_, Error>(acc)
        })
        .await
}

fn gunzip(file_name: &str, bytes: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(bytes.len().saturating_mul(8));
    MultiGzDecoder::new(bytes)
        .read_to_end(&mut out)
        .map_err(|source| Error::Gzip {
            file: file_name.to_string(),
            source,
        })?;
    Ok(out)
}

#[derive(Debug, Clone, Copy)]
enum Format {
    Tsv,
    Json,
}

fn detect(file_name: &str, bytes: &[u8]) -> Result<Format> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let Some(start) = bytes.iter().position(|b| !b.is_ascii_whitespace()) else {
        return Err(Error::EmptyFile {
            file: file_name.to_string(),
        });
    };
    match bytes[start] {
        b'#' => Ok(Format::Tsv),
        b'{' => Ok(Format::Json),
        _ => {
            let end = (start + 16).min(bytes.len());
            Err(Error::UnknownFormat {
                file: file_name.to_string(),
                found: String::from_utf8_lossy(&bytes[start..end]).into_owned(),
            })
        }
    }
}

/// Output column for a Zeek (or canonical) field name, if it has one.
pub(crate) fn column_for_name(name: &str) -> Option<usize> {
    if name == "tunnel_parents" {
        return Some(TUNNEL_PARENTS);
    }
    let canonical = canonical_name(name).unwrap_or(name);
    CONN_COLUMNS.iter().position(|(c, _, _)| *c == canonical)
}

/// How a column's cells are parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Float,
    Int,
    Str,
    Bool,
}

/// The cell kind of output column `col` (`col < ROW_VALUES`).
pub(crate) fn kind_of(col: usize) -> Kind {
    match CONN_COLUMNS.get(col).map(|(_, _, ty)| ty) {
        Some(DataType::Float64) => Kind::Float,
        Some(DataType::Int64) => Kind::Int,
        Some(DataType::Boolean) => Kind::Bool,
        _ => Kind::Str,
    }
}

/// One parsed cell, as the JSON reader produces it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value<'a> {
    Null,
    Str(Cow<'a, str>),
    Int(i64),
    Float(f64),
    Bool(bool),
}

/// One parsed row: typed slots plus a presence bitmask, so parsers write
/// plain words (no enum per cell) and the sink appends without dispatch.
#[derive(Debug)]
pub(crate) struct RowBuf<'a> {
    present: u32,
    nums: [u64; ROW_VALUES],
    strs: [&'a str; ROW_VALUES],
    /// Strings that cannot borrow the input (rare: JSON escapes, re-joined sets).
    owned: Vec<(usize, String)>,
}

const _: () = assert!(ROW_VALUES <= 32, "presence bitmask is a u32");

impl<'a> RowBuf<'a> {
    pub(crate) fn new() -> Self {
        Self {
            present: 0,
            nums: [0; ROW_VALUES],
            strs: [""; ROW_VALUES],
            owned: Vec::new(),
        }
    }

    #[inline]
    pub(crate) fn clear(&mut self) {
        self.present = 0;
        if !self.owned.is_empty() {
            self.owned.clear();
        }
    }

    #[inline]
    fn drop_owned(&mut self, col: usize) {
        if !self.owned.is_empty() {
            self.owned.retain(|(c, _)| *c != col);
        }
    }

    #[inline]
    pub(crate) fn set_null(&mut self, col: usize) {
        self.present &= !(1 << col);
        self.drop_owned(col);
    }

    #[inline]
    pub(crate) fn set_int(&mut self, col: usize, v: i64) {
        self.nums[col] = v as u64;
        self.present |= 1 << col;
    }

    #[inline]
    pub(crate) fn set_float(&mut self, col: usize, v: f64) {
        self.nums[col] = v.to_bits();
        self.present |= 1 << col;
    }

    #[inline]
    pub(crate) fn set_bool(&mut self, col: usize, v: bool) {
        self.nums[col] = u64::from(v);
        self.present |= 1 << col;
    }

    #[inline]
    pub(crate) fn set_str(&mut self, col: usize, v: &'a str) {
        self.drop_owned(col);
        self.strs[col] = v;
        self.present |= 1 << col;
    }

    pub(crate) fn set_owned(&mut self, col: usize, v: String) {
        self.drop_owned(col);
        self.owned.push((col, v));
        self.present |= 1 << col;
    }

    pub(crate) fn set(&mut self, col: usize, value: Value<'a>) {
        match value {
            Value::Null => self.set_null(col),
            Value::Str(Cow::Borrowed(s)) => self.set_str(col, s),
            Value::Str(Cow::Owned(s)) => self.set_owned(col, s),
            Value::Int(v) => self.set_int(col, v),
            Value::Float(v) => self.set_float(col, v),
            Value::Bool(v) => self.set_bool(col, v),
        }
    }

    #[inline]
    fn has(&self, col: usize) -> bool {
        self.present >> col & 1 == 1
    }

    #[inline]
    fn str_at(&self, col: usize) -> &str {
        if !self.owned.is_empty() {
            if let Some((_, s)) = self.owned.iter().find(|(c, _)| *c == col) {
                return s;
            }
        }
        self.strs[col]
    }

    /// The cell of `col` as a [`Value`], for tests.
    #[cfg(test)]
    pub(crate) fn value(&self, col: usize) -> Value<'_> {
        if !self.has(col) {
            return Value::Null;
        }
        match kind_of(col) {
            Kind::Str => Value::Str(Cow::Borrowed(self.str_at(col))),
            Kind::Int => Value::Int(self.nums[col] as i64),
            Kind::Float => Value::Float(f64::from_bits(self.nums[col])),
            Kind::Bool => Value::Bool(self.nums[col] != 0),
        }
    }
}

/// Parses a non-negative integer (Zeek `count` / `port`).
#[inline]
pub(crate) fn parse_count(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    // Up to 18 digits cannot overflow i64: the common case, without `parse`.
    if !b.is_empty() && b.len() <= 18 {
        let mut acc = 0i64;
        for &d in b {
            if !d.is_ascii_digit() {
                return None;
            }
            acc = acc * 10 + i64::from(d - b'0');
        }
        return Some(acc);
    }
    s.parse::<u64>().ok().and_then(|v| i64::try_from(v).ok())
}

const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// Parses a finite float; NaN and infinities are not measurements.
///
/// Plain decimals whose digits fit in 2^53 (Zeek's `%.6f` times and
/// intervals) take Clinger's fast path: an exact integer divided by an exact
/// power of ten is correctly rounded, so the result equals `str::parse`.
#[inline]
pub(crate) fn parse_float(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    let (negative, digits) = match b.first() {
        Some(b'-') => (true, &b[1..]),
        _ => (false, b),
    };
    if !digits.is_empty() && digits.len() <= 17 {
        let mut mantissa = 0u64;
        let mut frac_digits = 0usize;
        let mut seen_dot = false;
        let mut ok = true;
        for &d in digits {
            if d.is_ascii_digit() {
                mantissa = mantissa * 10 + u64::from(d - b'0');
                frac_digits += usize::from(seen_dot);
            } else if d == b'.' && !seen_dot {
                seen_dot = true;
            } else {
                ok = false;
                break;
            }
        }
        let all_digits = digits.len() - usize::from(seen_dot);
        if ok && all_digits > 0 && mantissa <= (1u64 << 53) {
            let v = mantissa as f64 / POW10[frac_digits];
            return Some(if negative { -v } else { v });
        }
    }
    s.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// Parses an ISO 8601 timestamp (`2022-02-10T03:58:29.979Z`; no zone = UTC)
/// into epoch seconds.
pub(crate) fn parse_iso_ts(s: &str) -> Option<f64> {
    use datafusion::arrow::compute::kernels::cast_utils::string_to_timestamp_nanos;
    if !s.contains('-') {
        return None;
    }
    let nanos = string_to_timestamp_nanos(s).ok()?;
    let secs = nanos.div_euclid(1_000_000_000);
    let frac = nanos.rem_euclid(1_000_000_000);
    Some(secs as f64 + frac as f64 / 1e9)
}

/// Parses a `ts` cell: epoch seconds (or a small relative number, kept as
/// is), else an ISO 8601 timestamp.
#[inline]
pub(crate) fn parse_ts(s: &str) -> Option<f64> {
    parse_float(s).or_else(|| parse_iso_ts(s))
}

/// Column builders grouped by type, so appending a row needs no dispatch.
struct Builders {
    floats: Vec<(usize, Float64Builder)>,
    ints: Vec<(usize, Int64Builder)>,
    strs: Vec<(usize, StringBuilder)>,
    bools: Vec<(usize, BooleanBuilder)>,
    source_file: StringBuilder,
    source_line: Int64Builder,
}

impl Builders {
    fn new(capacity: usize, file_len: usize) -> Self {
        let mut b = Self {
            floats: Vec::new(),
            ints: Vec::new(),
            strs: Vec::new(),
            bools: Vec::new(),
            source_file: StringBuilder::with_capacity(capacity, capacity * file_len),
            source_line: Int64Builder::with_capacity(capacity),
        };
        for col in 0..ROW_VALUES {
            match kind_of(col) {
                Kind::Float => b
                    .floats
                    .push((col, Float64Builder::with_capacity(capacity))),
                Kind::Int => b.ints.push((col, Int64Builder::with_capacity(capacity))),
                Kind::Str => b
                    .strs
                    .push((col, StringBuilder::with_capacity(capacity, capacity * 12))),
                Kind::Bool => b.bools.push((col, BooleanBuilder::with_capacity(capacity))),
            }
        }
        b
    }

    #[inline]
    fn append(&mut self, row: &RowBuf<'_>, file: &str, line: u64) {
        for (col, b) in &mut self.floats {
            if row.has(*col) {
                b.append_value(f64::from_bits(row.nums[*col]));
            } else {
                b.append_null();
            }
        }
        for (col, b) in &mut self.ints {
            if row.has(*col) {
                b.append_value(row.nums[*col] as i64);
            } else {
                b.append_null();
            }
        }
        for (col, b) in &mut self.strs {
            if row.has(*col) {
                b.append_value(row.str_at(*col));
            } else {
                b.append_null();
            }
        }
        for (col, b) in &mut self.bools {
            if row.has(*col) {
                b.append_value(row.nums[*col] != 0);
            } else {
                b.append_null();
            }
        }
        self.source_file.append_value(file);
        self.source_line
            .append_value(i64::try_from(line).unwrap_or(i64::MAX));
    }

    fn finish(&mut self) -> Vec<ArrayRef> {
        let mut columns: Vec<Option<ArrayRef>> = vec![None; ROW_VALUES];
        for (col, b) in &mut self.floats {
            columns[*col] = Some(Arc::new(b.finish()));
        }
        for (col, b) in &mut self.ints {
            columns[*col] = Some(Arc::new(b.finish()));
        }
        for (col, b) in &mut self.strs {
            columns[*col] = Some(Arc::new(b.finish()));
        }
        for (col, b) in &mut self.bools {
            columns[*col] = Some(Arc::new(b.finish()));
        }
        let mut out: Vec<ArrayRef> = columns.into_iter().flatten().collect();
        out.push(Arc::new(self.source_file.finish()));
        out.push(Arc::new(self.source_line.finish()));
        out
    }
}

/// Receives parsed rows and bad rows of one file; builds batches and applies
/// the bad-row policy.
pub(crate) struct RowSink<'f> {
    file: &'f str,
    bad_rows: BadRows,
    batch_size: usize,
    builders: Builders,
    pending: usize,
    batches: Vec<RecordBatch>,
    rejects: Vec<Rejected>,
    rows: u64,
}

impl<'f> RowSink<'f> {
    /// `input_len` sizes the builders: conn log lines are over 64 bytes, so
    /// a small file never allocates a whole batch.
    fn new(file: &'f str, opts: &ZeekReadOptions, input_len: usize) -> Self {
        let batch_size = opts.batch_size.max(1);
        let capacity = batch_size.min(input_len / 64 + 16);
        Self {
            file,
            bad_rows: opts.bad_rows,
            batch_size,
            builders: Builders::new(capacity, file.len()),
            pending: 0,
            batches: Vec::new(),
            rejects: Vec::new(),
            rows: 0,
        }
    }

    /// The file being read, for messages.
    pub(crate) fn file(&self) -> &str {
        self.file
    }

    /// Appends a fully parsed row found at physical line `line`.
    #[inline]
    pub(crate) fn push(&mut self, row: &RowBuf<'_>, line: u64) -> Result<()> {
        self.builders.append(row, self.file, line);
        self.pending += 1;
        self.rows += 1;
        if self.pending >= self.batch_size {
            self.flush()?;
        }
        Ok(())
    }

    /// Handles an unreadable row: an error under `Fail`, a reject under `Reject`.
    #[cold]
    pub(crate) fn bad_row(&mut self, line: u64, reason: String, text: &[u8]) -> Result<()> {
        match self.bad_rows {
            BadRows::Fail => Err(Error::BadRow {
                file: self.file.to_string(),
                line,
                reason,
            }),
            BadRows::Reject => {
                self.rejects.push(Rejected {
                    file: self.file.to_string(),
                    line,
                    reason,
                    text: String::from_utf8_lossy(text).into_owned(),
                });
                Ok(())
            }
        }
    }

    fn flush(&mut self) -> Result<()> {
        if self.pending == 0 {
            return Ok(());
        }
        let columns = self.builders.finish();
        self.batches
            .push(RecordBatch::try_new(zeek_schema(), columns)?);
        self.pending = 0;
        Ok(())
    }

    fn finish(mut self) -> Result<ZeekRead> {
        self.flush()?;
        Ok(ZeekRead {
            batches: self.batches,
            rejects: self.rejects,
            files: 1,
            rows: self.rows,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_split_at_line_starts_and_count_lines() {
        let line = b"1.0\tC1\t10.0.0.1\n";
        let mut bytes = Vec::new();
        while bytes.len() < 3 * PARALLEL_MIN_BYTES {
            bytes.extend_from_slice(line);
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(parallel_chunks(bytes.len()), cores.min(6));
        assert_eq!(parallel_chunks(PARALLEL_MIN_BYTES - 1), 1);
        let chunks = plan_chunks(&bytes, 7);
        assert_eq!(chunks.len(), 7);
        assert_eq!(chunks[0].start, 0);
        assert_eq!(chunks.last().map(|c| c.end), Some(bytes.len()));
        for pair in chunks.windows(2) {
            assert_eq!(pair[0].end, pair[1].start);
            assert_eq!(bytes[pair[1].start - 1], b'\n');
            let lines_before = bytes[..pair[1].start]
                .iter()
                .filter(|&&b| b == b'\n')
                .count();
            assert_eq!(pair[1].first_line, lines_before as u64 + 1);
        }
        assert_eq!(
            plan_chunks(b"#x\n", 4),
            vec![Chunk {
                start: 0,
                end: 3,
                first_line: 1
            }]
        );
    }

    #[test]
    fn counts_parse_fast_and_strictly() {
        assert_eq!(parse_count("0"), Some(0));
        assert_eq!(parse_count("65535"), Some(65535));
        assert_eq!(parse_count("9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_count("9223372036854775808"), None);
        assert_eq!(parse_count("-1"), None);
        assert_eq!(parse_count("8o"), None);
        assert_eq!(parse_count(""), None);
        assert_eq!(parse_count("1.5"), None);
    }

    #[test]
    fn float_fast_path_matches_std_parse() {
        let mut x = 0x2545_f491_4f6c_dd1d_u64;
        let mut cases: Vec<String> = [
            "0",
            "-0",
            "5.",
            ".5",
            "0.000001",
            "1655071198.444458",
            "9007199254740992",
            "9007199254740993",
            "0.012166976928710938",
            "123456789012.34567",
            "-3.25",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = (x >> 11) as f64 / (1u64 << (x % 40)) as f64;
            cases.push(format!("{v:.6}"));
            cases.push(format!("{:.3}", v / 7.0));
            cases.push(format!("{}", (x % 100_000_000_000) as f64 / 1e6));
        }
        for case in &cases {
            assert_eq!(parse_float(case), case.parse::<f64>().ok(), "{case}");
        }
    }

    #[test]
    fn floats_reject_nan_and_inf() {
        assert_eq!(parse_float("19.981745"), Some(19.981745));
        assert_eq!(
            parse_float("1.644465509979958E9"),
            Some(1_644_465_509.979_958)
        );
        assert_eq!(parse_float("NaN"), None);
        assert_eq!(parse_float("inf"), None);
    }

    #[test]
    fn iso_timestamps_become_epoch_seconds() {
        let ts = parse_ts("2022-02-10T03:58:29.979Z").unwrap_or_default();
        assert!((ts - 1_644_465_509.979).abs() < 1e-6, "{ts}");
        assert_eq!(parse_ts("1517422326.539915"), Some(1_517_422_326.539_915));
        assert_eq!(parse_ts("yesterday"), None);
    }

    #[test]
    fn names_map_to_output_columns() {
        assert_eq!(column_for_name("id.orig_h"), Some(2));
        assert_eq!(column_for_name("src_ip"), Some(2));
        assert_eq!(column_for_name("detailed-label"), Some(22));
        assert_eq!(column_for_name("tunnel_parents"), Some(TUNNEL_PARENTS));
        assert_eq!(column_for_name("_node_name"), None);
        assert_eq!(zeek_schema().field(TUNNEL_PARENTS).name(), "tunnel_parents");
        assert_eq!(zeek_schema().fields().len(), ROW_VALUES + 2);
    }

    #[test]
    fn detects_format_from_first_byte() {
        assert!(matches!(detect("f", b"\n  #separator"), Ok(Format::Tsv)));
        assert!(matches!(detect("f", b"{\"ts\":1}"), Ok(Format::Json)));
        let err = detect("f.csv", b"ts,uid\n1,2").err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("f.csv: not a Zeek log: expected a '#' header line (TSV) or a '{' object (JSON), found \"ts,uid\\n1,2\"")
        );
        let err = detect("f", b"  \n").err().map(|e| e.to_string());
        assert_eq!(err.as_deref(), Some("f: empty file"));
    }
}
