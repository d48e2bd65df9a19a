//! Native Zeek conn logs (TSV with `#` headers, or JSON lines, optionally
//! gzipped) into Arrow batches in [`zeek_schema`].
//!
//! Both formats parse a row into a [`RowBuf`] (typed slots, one per output
//! column), which [`RowSink`] appends to column builders. A row is only
//! appended once every cell parsed, so a rejected row never leaves a partial
//! row behind.

use std::borrow::Cow;
use std::io::{BufRead, Read};
use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, Int64Builder, RecordBatch, StringBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use flate2::read::MultiGzDecoder;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
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
    /// Zeek field names a TSV log's `#fields` must list; a log without one
    /// of them stops the read naming the file, the line and what is
    /// missing (a log whose rows cannot say who talked to whom must not be
    /// scored as if they could). Empty: any fields.
    pub required_fields: &'static [&'static str],
}

impl Default for ZeekReadOptions {
    fn default() -> Self {
        Self {
            bad_rows: BadRows::Fail,
            batch_size: 65536,
            required_fields: &[],
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
    let name: Arc<str> = Arc::from(file_name);
    let mut chunks = Vec::new();
    split_log(&name, bytes, &mut |chunk| {
        chunks.push(chunk);
        true
    });
    let chunks: Vec<Chunk> = chunks.into_iter().collect::<Result<_>>()?;
    // Chunks are about equal in size, so thread t parses chunks t, t + n,
    // ...; results are put back in chunk order, so rows, rejects and the
    // first error are as if sequential.
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(chunks.len());
    let mut parsed: Vec<(usize, Result<ZeekRead>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let chunks = &chunks;
                scope.spawn(move || {
                    chunks
                        .iter()
                        .enumerate()
                        .skip(t)
                        .step_by(threads)
                        .map(|(i, chunk)| (i, chunk.parse(opts)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().map_err(|_| Error::ParserPanicked {
                    file: file_name.to_string(),
                })
            })
            .collect::<Result<Vec<_>>>()
    })?
    .into_iter()
    .flatten()
    .collect();
    parsed.sort_by_key(|(i, _)| *i);
    let mut read = ZeekRead::default();
    for (_, part) in parsed {
        read.append(part?);
    }
    Ok(read)
}

/// Bytes per chunk: about 60,000 conn log lines, so a chunk is about one
/// batch and little of a large log is held at once.
const CHUNK_BYTES: usize = 8 << 20;

/// A run of whole lines of one log, with what its parse needs: the format,
/// the TSV header state in force at its start, and the physical number of
/// its first line.
#[derive(Debug)]
struct Chunk {
    file: Arc<str>,
    bytes: Vec<u8>,
    format: Format,
    header: zeek_tsv::Header,
    first_line: u64,
    first: bool,
}

impl Chunk {
    fn parse(&self, opts: &ZeekReadOptions) -> Result<ZeekRead> {
        let mut sink = RowSink::new(&self.file, opts, self.bytes.len());
        match self.format {
            Format::Tsv => {
                zeek_tsv::parse(&self.bytes, self.first_line, self.header.clone(), &mut sink)?
            }
            Format::Json => zeek_json::parse(&self.bytes, self.first_line, &mut sink)?,
        }
        let mut read = sink.finish()?;
        read.files = usize::from(self.first);
        Ok(read)
    }
}

/// Cuts a log (gzipped or not) into [`Chunk`]s as it is read, handing each
/// to `emit` in order; an error is handed over last. Stops early when
/// `emit` returns false. Only the chunk being filled is held in memory.
fn split_log(name: &Arc<str>, input: impl Read, emit: &mut dyn FnMut(Result<Chunk>) -> bool) {
    if let Err(e) = split_log_inner(name, input, emit) {
        emit(Err(e));
    }
}

fn split_log_inner(
    name: &Arc<str>,
    input: impl Read,
    emit: &mut dyn FnMut(Result<Chunk>) -> bool,
) -> Result<()> {
    let mut input = std::io::BufReader::with_capacity(1 << 16, input);
    let head = input.fill_buf().map_err(|source| Error::Io {
        path: name.to_string(),
        source,
    })?;
    if head.is_empty() {
        return Err(Error::EmptyFile {
            file: name.to_string(),
        });
    }
    let gzip = name.ends_with(".gz") || head.starts_with(&[0x1f, 0x8b]);
    let mut reader: Box<dyn Read> = if gzip {
        Box::new(MultiGzDecoder::new(input))
    } else {
        Box::new(input)
    };
    let read_error = |source| match gzip {
        true => Error::Gzip {
            file: name.to_string(),
            source,
        },
        false => Error::Io {
            path: name.to_string(),
            source,
        },
    };
    let mut header = zeek_tsv::Header::default();
    let mut format = None;
    let mut first_line = 1u64;
    let mut has_data = false;
    let mut pending: Vec<u8> = Vec::with_capacity(CHUNK_BYTES + (1 << 16));
    let mut target = CHUNK_BYTES;
    loop {
        // Fill up to the target size, or to the end of the log.
        let want = target - pending.len();
        let read = (&mut reader)
            .take(want as u64)
            .read_to_end(&mut pending)
            .map_err(read_error)?;
        let eof = read < want;
        // Cut after the last whole line; a line longer than a chunk waits
        // for more bytes.
        let cut = if eof {
            pending.len()
        } else {
            match memchr::memrchr(b'\n', &pending) {
                Some(i) => i + 1,
                None => {
                    target += CHUNK_BYTES;
                    continue;
                }
            }
        };
        let mut next = Vec::with_capacity(CHUNK_BYTES + (1 << 16));
        next.extend_from_slice(&pending[cut..]);
        pending.truncate(cut);
        let bytes = std::mem::replace(&mut pending, next);
        target = CHUNK_BYTES;
        let format = match format {
            Some(f) => f,
            None => *format.insert(detect(name, &bytes)?),
        };
        has_data = has_data
            || bytes
                .split(|&b| b == b'\n')
                .any(|line| !line.trim_ascii().is_empty() && line[0] != b'#');
        let start_header = header.clone();
        if format == Format::Tsv {
            zeek_tsv::apply_comments(&mut header, &bytes, name);
        }
        let lines = count_newlines(&bytes);
        let chunk = Chunk {
            file: Arc::clone(name),
            bytes,
            format,
            header: start_header,
            first_line,
            first: first_line == 1,
        };
        first_line += lines;
        if !emit(Ok(chunk)) || eof {
            break;
        }
    }
    if !has_data {
        tracing::warn!(file = %name, "Zeek log holds no data rows");
    }
    Ok(())
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
/// batches and rejects of a run of lines. Each log is read and cut into
/// chunks on a blocking thread as its bytes arrive (decompressing gzip on
/// the way), and chunks parse on blocking threads, one more in flight than
/// there are cores, so memory holds a few chunks whatever the size of the
/// logs. The first error (in input order) ends the stream.
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
        .map(move |(path, name)| split_file(Arc::clone(&store), path, Arc::from(name)))
        .flatten()
        .map(move |chunk| {
            let opts = opts.clone();
            async move {
                let chunk = chunk?;
                tokio::task::spawn_blocking(move || chunk.parse(&opts)).await?
            }
        })
        .buffered(in_flight);
    Ok(parsed.boxed())
}

/// The chunks of one log as a stream: a blocking thread fetches and cuts
/// the log, at most two chunks ahead of their parsing.
fn split_file(
    store: Arc<dyn object_store::ObjectStore>,
    path: object_store::path::Path,
    name: Arc<str>,
) -> BoxStream<'static, Result<Chunk>> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Chunk>>(2);
    let started = async move {
        let store_err = |source| Error::ObjectStore {
            location: name.to_string(),
            source,
        };
        let got = match store.get(&path).await {
            Ok(got) => got,
            Err(e) => {
                let _ = tx.send(Err(store_err(e))).await;
                return;
            }
        };
        let runtime = tokio::runtime::Handle::current();
        // Not awaited: the splitter reports its errors through the channel,
        // and it stops when the receiver is dropped.
        drop(tokio::task::spawn_blocking(move || {
            let mut emit = |chunk| tx.blocking_send(chunk).is_ok();
            match got.payload {
                object_store::GetResultPayload::File(file, _) => {
                    split_log(&name, file, &mut emit);
                }
                object_store::GetResultPayload::Stream(stream) => {
                    let reader = StreamReader {
                        runtime,
                        stream,
                        current: bytes::Bytes::new(),
                    };
                    split_log(&name, reader, &mut emit);
                }
            }
        }));
    };
    let chunks = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    });
    // Fetching starts when the stream is first polled.
    futures::stream::once(started)
        .filter_map(|()| futures::future::ready(None))
        .chain(chunks)
        .boxed()
}

/// An object store byte stream read from a blocking thread.
struct StreamReader {
    runtime: tokio::runtime::Handle,
    stream: BoxStream<'static, object_store::Result<bytes::Bytes>>,
    current: bytes::Bytes,
}

impl Read for StreamReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.runtime.block_on(self.stream.next()) {
                Some(Ok(bytes)) => self.current = bytes,
                Some(Err(e)) => return Err(std::io::Error::other(e)),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        bytes::Buf::advance(&mut self.current, n);
        Ok(n)
    }
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    pub(crate) fn has(&self, col: usize) -> bool {
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
    required_fields: &'static [&'static str],
    /// Output columns of `required_fields`, for rows that carry no header.
    required_columns: Vec<(usize, &'static str)>,
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
            required_fields: opts.required_fields,
            required_columns: opts
                .required_fields
                .iter()
                .filter_map(|&name| column_for_name(name).map(|c| (c, name)))
                .collect(),
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

    /// Field names every `#fields` line must list.
    pub(crate) fn required_fields(&self) -> &'static [&'static str] {
        self.required_fields
    }

    /// The required fields a parsed row leaves unset (JSON logs have no
    /// header to check them on).
    pub(crate) fn missing_in(&self, row: &RowBuf<'_>) -> Vec<&'static str> {
        self.required_columns
            .iter()
            .filter(|(col, _)| !row.has(*col))
            .map(|(_, name)| *name)
            .collect()
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

    fn split(name: &str, bytes: &[u8]) -> Result<Vec<Chunk>> {
        let mut chunks = Vec::new();
        split_log(&Arc::from(name), bytes, &mut |chunk| {
            chunks.push(chunk);
            true
        });
        chunks.into_iter().collect()
    }

    #[test]
    fn chunks_split_at_line_starts_and_count_lines() {
        let mut bytes = b"#separator \\x09\n#fields\tts\tuid\n".to_vec();
        let mut n = 0u64;
        while bytes.len() < 3 * CHUNK_BYTES {
            bytes.extend_from_slice(format!("1.0\tC{n}\n").as_bytes());
            n += 1;
        }
        bytes.extend_from_slice(b"#close\t2024\n1.0\tlast");
        let chunks = split("conn.log", &bytes).expect("split");
        assert!(chunks.len() >= 3, "{}", chunks.len());
        let joined: Vec<u8> = chunks.iter().flat_map(|c| c.bytes.clone()).collect();
        assert_eq!(joined, bytes);
        let mut line = 1;
        for (i, c) in chunks.iter().enumerate() {
            assert_eq!(c.first_line, line, "chunk {i}");
            assert_eq!(c.first, i == 0);
            assert!(c.bytes.len() <= CHUNK_BYTES, "chunk {i}");
            if i + 1 < chunks.len() {
                assert_eq!(c.bytes.last(), Some(&b'\n'), "chunk {i}");
            }
            // Every chunk after the first starts with the header in force.
            assert_eq!(c.header.has_fields(), i > 0, "chunk {i}");
            line += count_newlines(&c.bytes);
        }
        // gzip gives the same chunks.
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &bytes).expect("gzip");
        let gz = gz.finish().expect("gzip");
        let from_gz = split("conn.log.gz", &gz).expect("split gz");
        assert_eq!(from_gz.len(), chunks.len());
        assert!(from_gz.iter().zip(&chunks).all(|(a, b)| a.bytes == b.bytes));
        // A line longer than a chunk stays whole.
        let long = format!("#fields\tts\n{}\n2.0\n", "9".repeat(CHUNK_BYTES + 10));
        let chunks = split("long.log", long.as_bytes()).expect("split long");
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[0].bytes, b"#fields\tts\n");
        assert_eq!(chunks[1].bytes.len(), CHUNK_BYTES + 15);
        assert_eq!(chunks[1].first_line, 2);
        assert_eq!(count_newlines(&b"a\nb\n".repeat(300)), 600);
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
