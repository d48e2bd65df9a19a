//! Zeek's ASCII (TSV) log format.
//!
//! The header block (`#separator`, `#set_separator`, `#empty_field`,
//! `#unset_field`, `#path`, `#fields`, ...) drives parsing, and a new block
//! may start mid-file where logs were concatenated. Columns are mapped by
//! their `#fields` name, so any order and extra columns work; a column's
//! canonical type decides how it parses (`#types` is informative only).

use crate::error::{Error, Result};
#[cfg(test)]
use crate::zeek::Value;
use crate::zeek::{
    column_for_name, kind_of, parse_count, parse_float, parse_ts, Kind, RowBuf, RowSink, TS,
    TUNNEL_PARENTS,
};

/// Where one `#fields` entry goes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    /// A column the canonical schema does not hold (`_node_name`, `ip_proto`).
    Ignore,
    /// An output column and how its cells parse.
    Column(usize, Kind),
    /// IoT-23's `tunnel_parents   label   detailed-label`: one field whose
    /// cells hold several values split by the same run of spaces as the name.
    Combined {
        separator: String,
        parts: Vec<Option<(usize, Kind)>>,
    },
}

/// The header state in force for the data lines that follow it.
#[derive(Debug, Clone)]
pub(crate) struct Header {
    separator: String,
    set_separator: String,
    empty_field: String,
    unset_field: String,
    /// `#fields` names and where each goes; `None` until `#fields` is seen.
    fields: Option<(Vec<String>, Vec<Target>)>,
}

impl Header {
    /// Fails naming every field of `required` the `#fields` line lacks.
    fn check_required(&self, required: &[&str], file: &str, line: u64) -> Result<()> {
        let Some((names, _)) = &self.fields else {
            return Ok(());
        };
        let missing: Vec<&str> = required
            .iter()
            .copied()
            .filter(|r| !names.iter().any(|n| n == r))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        Err(Error::BadHeader {
            file: file.to_string(),
            line,
            reason: format!(
                "#fields lacks {} (a conn log needs them to be scored)",
                missing.join(", ")
            ),
        })
    }

    /// Whether a `#fields` line has been applied.
    #[cfg(test)]
    pub(crate) fn has_fields(&self) -> bool {
        self.fields.is_some()
    }
}

impl Default for Header {
    fn default() -> Self {
        Self {
            separator: "\t".to_string(),
            set_separator: ",".to_string(),
            empty_field: "(empty)".to_string(),
            unset_field: "-".to_string(),
            fields: None,
        }
    }
}

/// Decodes Zeek's `\xNN` escapes (as in `#separator \x09`).
fn unescape(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && b.get(i + 1) == Some(&b'x') {
            let hex = s.get(i + 2..i + 4)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn target_for(name: &str) -> Target {
    let trimmed = name.trim();
    let mut words = trimmed.split_whitespace();
    let first = words.next().unwrap_or_default();
    if words.next().is_none() {
        return column_for_name(first).map_or(Target::Ignore, |c| Target::Column(c, kind_of(c)));
    }
    // The run of whitespace between the first two names is the cell separator.
    let rest = &trimmed[first.len()..];
    let separator_len = rest.len() - rest.trim_start().len();
    let separator = rest[..separator_len].to_string();
    let parts = trimmed
        .split_whitespace()
        .map(|w| column_for_name(w).map(|c| (c, kind_of(c))))
        .collect();
    Target::Combined { separator, parts }
}

impl Header {
    fn apply(&mut self, line: &str, file: &str, line_no: u64) -> Result<()> {
        let bad = |reason: String| Error::BadHeader {
            file: file.to_string(),
            line: line_no,
            reason,
        };
        if let Some(value) = line.strip_prefix("#separator") {
            let value = value.trim_start_matches([' ', '\t']);
            let separator = unescape(value)
                .filter(|s| !s.is_empty())
                .ok_or_else(|| bad(format!("#separator {value:?} is not a usable separator")))?;
            self.separator = separator;
            return Ok(());
        }
        let (directive, rest) = line
            .split_once(self.separator.as_str())
            .unwrap_or((line, ""));
        match directive {
            "#set_separator" => {
                self.set_separator = unescape(rest)
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| bad(format!("#set_separator {rest:?} is not usable")))?;
            }
            "#empty_field" => self.empty_field = rest.to_string(),
            "#unset_field" => self.unset_field = rest.to_string(),
            "#path" if rest != "conn" => {
                return Err(bad(format!("#path is {rest:?}, not a conn log")));
            }
            "#fields" => {
                if rest.is_empty() {
                    return Err(bad("#fields lists no fields".to_string()));
                }
                let names: Vec<String> = rest
                    .split(self.separator.as_str())
                    .map(str::to_string)
                    .collect();
                let targets = names.iter().map(|n| target_for(n)).collect();
                self.fields = Some((names, targets));
            }
            // #open, #close, #types and comments carry nothing the rows need.
            _ => {}
        }
        Ok(())
    }

    #[inline]
    fn is_unset(&self, cell: &str) -> bool {
        // The usual `-` without a memcmp call.
        match (self.unset_field.as_bytes(), cell.as_bytes()) {
            ([u], [c]) => u == c,
            ([_], _) => false,
            _ => cell == self.unset_field,
        }
    }

    /// Parses one cell of a column of `kind` into `row`; `false` when it
    /// does not parse.
    #[inline]
    fn cell_into<'a>(&self, row: &mut RowBuf<'a>, cell: &'a str, col: usize, kind: Kind) -> bool {
        if self.is_unset(cell) {
            row.set_null(col);
            return true;
        }
        match kind {
            Kind::Str => {
                if cell == self.empty_field {
                    row.set_str(col, "");
                } else if col == TUNNEL_PARENTS && self.set_separator != "," {
                    row.set_owned(col, cell.replace(self.set_separator.as_str(), ","));
                } else {
                    row.set_str(col, cell);
                }
            }
            _ if cell == self.empty_field => row.set_null(col),
            Kind::Int => match parse_count(cell) {
                Some(v) => row.set_int(col, v),
                None => return false,
            },
            Kind::Float => match if col == TS {
                parse_ts(cell)
            } else {
                parse_float(cell)
            } {
                Some(v) => row.set_float(col, v),
                None => return false,
            },
            Kind::Bool => match cell {
                "T" | "true" => row.set_bool(col, true),
                "F" | "false" => row.set_bool(col, false),
                _ => return false,
            },
        }
        true
    }

    /// One cell as a [`Value`], for tests.
    #[cfg(test)]
    fn cell<'a>(&self, cell: &'a str, col: usize, kind: Kind) -> Option<Value<'a>> {
        let mut row = RowBuf::new();
        if !self.cell_into(&mut row, cell, col, kind) {
            return None;
        }
        Some(match row.value(col) {
            Value::Str(s) => Value::Str(s.into_owned().into()),
            Value::Null => Value::Null,
            Value::Int(v) => Value::Int(v),
            Value::Float(v) => Value::Float(v),
            Value::Bool(v) => Value::Bool(v),
        })
    }
}

/// Splits `line` on a one-byte separator into `cells`. Finds separators
/// eight bytes at a time (SWAR) instead of one search call per cell: conn
/// log cells are only a few bytes long.
#[inline]
fn split_line<'a>(line: &'a str, sep: u8, cells: &mut Vec<&'a str>) {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    let pattern = LO * u64::from(sep);
    let bytes = line.as_bytes();
    let mut from = 0;
    let mut base = 0;
    let mut words = bytes.chunks_exact(8);
    for word in &mut words {
        let Ok(word) = <[u8; 8]>::try_from(word) else {
            break;
        };
        let x = u64::from_le_bytes(word) ^ pattern;
        // High bit of each byte set where that byte equals `sep` (x byte is 0).
        let mut mask = !(((x & HI7).wrapping_add(HI7)) | x | HI7);
        while mask != 0 {
            let at = base + (mask.trailing_zeros() / 8) as usize;
            cells.push(&line[from..at]);
            from = at + 1;
            mask &= mask - 1;
        }
        base += 8;
    }
    for (i, &b) in words.remainder().iter().enumerate() {
        if b == sep {
            let at = base + i;
            cells.push(&line[from..at]);
            from = at + 1;
        }
    }
    cells.push(&line[from..]);
}

fn expected(kind: Kind, col: usize) -> &'static str {
    match kind {
        Kind::Int => "a non-negative integer",
        Kind::Float if col == TS => "a number or an ISO 8601 time",
        Kind::Float => "a finite number",
        Kind::Bool => "T or F",
        Kind::Str => "a string",
    }
}

fn cell_error(name: &str, cell: &str, kind: Kind, col: usize) -> String {
    format!("{name}: expected {}, found {cell:?}", expected(kind, col))
}

/// The header state in force at byte `offset` (a line start) of a log:
/// every `#` line before it applied in order.
#[cfg(test)]
pub(crate) fn header_before(bytes: &[u8], offset: usize, file: &str) -> Header {
    let mut header = Header::default();
    apply_comments(&mut header, &bytes[..offset], file);
    header
}

/// Applies every `#` line of `bytes` (whole lines) to `header`, in order.
/// Header errors are left to the parse of the chunk holding the faulty
/// line, which reports them in file order.
pub(crate) fn apply_comments(header: &mut Header, bytes: &[u8], file: &str) {
    let starts = (bytes.first() == Some(&b'#'))
        .then_some(0)
        .into_iter()
        .chain(memchr::memmem::find_iter(bytes, b"\n#").map(|i| i + 1));
    for start in starts {
        let end = memchr::memchr(b'\n', &bytes[start..]).map_or(bytes.len(), |i| start + i);
        let line = bytes[start..end]
            .strip_suffix(b"\r")
            .unwrap_or(&bytes[start..end]);
        if let Ok(line) = std::str::from_utf8(line) {
            let _ignored = header.apply(line, file, 0);
        }
    }
}

/// Parses a run of whole TSV lines into `sink`; `first_line` is the physical
/// line number of its first line and `header` the header state in force there.
pub(crate) fn parse(
    bytes: &[u8],
    first_line: u64,
    mut header: Header,
    sink: &mut RowSink<'_>,
) -> Result<()> {
    // One validation for the whole chunk; per-line only when it fails.
    let whole = std::str::from_utf8(bytes).ok();
    let mut cells: Vec<&str> = Vec::with_capacity(32);
    let mut row = RowBuf::new();
    let mut line_no = first_line - 1;
    let mut pos = 0usize;

    while pos < bytes.len() {
        let start = pos;
        let end = memchr::memchr(b'\n', &bytes[start..]).map_or(bytes.len(), |i| start + i);
        pos = end + 1;
        line_no += 1;
        let stop = if end > start && bytes[end - 1] == b'\r' {
            end - 1
        } else {
            end
        };
        let raw = &bytes[start..stop];
        if raw.is_empty() {
            continue;
        }
        let line = match whole {
            Some(text) => &text[start..stop],
            None => match std::str::from_utf8(raw) {
                Ok(line) => line,
                Err(e) => {
                    let reason = format!("invalid UTF-8 at byte {}", e.valid_up_to() + 1);
                    sink.bad_row(line_no, reason, raw)?;
                    continue;
                }
            },
        };
        if raw[0] == b'#' {
            header.apply(line, sink.file(), line_no)?;
            if line.starts_with("#fields") {
                header.check_required(sink.required_fields(), sink.file(), line_no)?;
            }
            continue;
        }
        let Some((names, targets)) = &header.fields else {
            sink.bad_row(
                line_no,
                "data row before any #fields header".to_string(),
                raw,
            )?;
            continue;
        };

        cells.clear();
        if let [sep] = header.separator.as_bytes() {
            split_line(line, *sep, &mut cells);
        } else {
            cells.extend(line.split(header.separator.as_str()));
        }
        if cells.len() != targets.len() {
            let reason = format!("expected {} fields, found {}", targets.len(), cells.len());
            sink.bad_row(line_no, reason, raw)?;
            continue;
        }

        row.clear();
        let mut error = None;
        for (i, (cell, target)) in cells.iter().zip(targets).enumerate() {
            match target {
                Target::Ignore => {}
                Target::Column(col, kind) => {
                    if !header.cell_into(&mut row, cell, *col, *kind) {
                        error = Some(cell_error(&names[i], cell, *kind, *col));
                        break;
                    }
                }
                Target::Combined { separator, parts } => {
                    let found = cell.matches(separator.as_str()).count() + 1;
                    if found != parts.len() {
                        error = Some(format!(
                            "{}: expected {} values separated by {separator:?}, found {found}",
                            names[i].trim(),
                            parts.len()
                        ));
                        break;
                    }
                    for (value, part) in cell.split(separator.as_str()).zip(parts) {
                        let Some((col, kind)) = part else { continue };
                        if !header.cell_into(&mut row, value, *col, *kind) {
                            error = Some(cell_error(zeek_name(*col), value, *kind, *col));
                            break;
                        }
                    }
                    if error.is_some() {
                        break;
                    }
                }
            }
        }
        match error {
            None => sink.push(&row, line_no)?,
            Some(reason) => sink.bad_row(line_no, reason, raw)?,
        }
    }
    Ok(())
}

/// The Zeek field name of output column `col`, for messages.
fn zeek_name(col: usize) -> &'static str {
    crate::schema::CONN_COLUMNS
        .get(col)
        .map_or("tunnel_parents", |(_, zeek, _)| *zeek)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_lines_longer_and_shorter_than_a_chunk() {
        let mut cells = Vec::new();
        let long: Vec<String> = (0..40).map(|i| format!("c{i}")).collect();
        let line = long.join("\t");
        split_line(&line, b'\t', &mut cells);
        assert_eq!(cells, long.iter().map(String::as_str).collect::<Vec<_>>());
        cells.clear();
        split_line("a\t\tb\t", b'\t', &mut cells);
        assert_eq!(cells, vec!["a", "", "b", ""]);
        cells.clear();
        split_line("", b'\t', &mut cells);
        assert_eq!(cells, vec![""]);
        // Bytes around the separator value (0x08, 0x0a, 0x89) must not match.
        cells.clear();
        split_line("\u{8}\n\u{89}é\tü\t\t1234567\tx", b'\t', &mut cells);
        assert_eq!(cells, vec!["\u{8}\n\u{89}é", "ü", "", "1234567", "x"]);
    }

    #[test]
    fn header_state_is_rebuilt_for_a_chunk() {
        let log =
            b"#separator \\x2c\n#set_separator\t|\n#fields,ts,uid\n1,a\n#fields,uid,ts\nb,2\n";
        let second_block = log.len() - b"b,2\n".len();
        let header = header_before(log, second_block, "f");
        assert_eq!(header.separator, ",");
        assert_eq!(
            header.fields.map(|(names, _)| names),
            Some(vec!["uid".to_string(), "ts".to_string()])
        );
        assert!(header_before(log, 0, "f").fields.is_none());
    }

    #[test]
    fn unescapes_separators() {
        assert_eq!(unescape("\\x09").as_deref(), Some("\t"));
        assert_eq!(unescape("\\x2c").as_deref(), Some(","));
        assert_eq!(unescape(",").as_deref(), Some(","));
        assert_eq!(unescape("\\xZZ"), None);
    }

    #[test]
    fn combined_iot23_column_is_split() {
        let target = target_for("tunnel_parents   label   detailed-label");
        assert_eq!(
            target,
            Target::Combined {
                separator: "   ".to_string(),
                parts: vec![
                    Some((TUNNEL_PARENTS, Kind::Str)),
                    Some((21, Kind::Str)),
                    Some((22, Kind::Str)),
                ],
            }
        );
        assert_eq!(target_for("id.resp_p"), Target::Column(5, Kind::Int));
        assert_eq!(target_for("_node_name"), Target::Ignore);
    }

    #[test]
    fn cells_follow_header_conventions() {
        let h = Header::default();
        assert_eq!(h.cell("-", 3, Kind::Int), Some(Value::Null));
        assert_eq!(
            h.cell("(empty)", TUNNEL_PARENTS, Kind::Str),
            Some(Value::Str("".into()))
        );
        assert_eq!(h.cell("T", 12, Kind::Bool), Some(Value::Bool(true)));
        assert_eq!(h.cell("x", 12, Kind::Bool), None);
        assert_eq!(h.cell("80", 5, Kind::Int), Some(Value::Int(80)));
        assert_eq!(h.cell("http", 5, Kind::Int), None);
        assert_eq!(h.cell("19.5", TS, Kind::Float), Some(Value::Float(19.5)));
    }
}
