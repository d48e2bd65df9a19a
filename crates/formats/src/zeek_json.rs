//! Zeek's JSON log format: one object per line with dotted keys
//! (`"id.orig_h"`). Unset fields are absent keys; extra keys are ignored.
//!
//! Each object is deserialized straight into the row (no intermediate
//! `serde_json::Value`), borrowing strings from the input where it can.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::error::Result;
use crate::zeek::{
    column_for_name, kind_of, parse_count, parse_float, parse_ts, Kind, RowBuf, RowSink, Value, TS,
    TUNNEL_PARENTS,
};

/// Parses a run of whole JSON lines into `sink`; `first_line` is the
/// physical line number of its first line.
pub(crate) fn parse(bytes: &[u8], first_line: u64, sink: &mut RowSink<'_>) -> Result<()> {
    let whole = std::str::from_utf8(bytes).ok();
    let mut row = RowBuf::new();
    let mut line_no = first_line - 1;
    let mut pos = 0usize;
    while pos < bytes.len() {
        let start = pos;
        let end = memchr::memchr(b'\n', &bytes[start..]).map_or(bytes.len(), |i| start + i);
        pos = end + 1;
        line_no += 1;
        let raw = &bytes[start..end];
        if raw.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let line = match whole {
            Some(text) => &text[start..end],
            None => match std::str::from_utf8(raw) {
                Ok(line) => line,
                Err(e) => {
                    let reason = format!("invalid UTF-8 at byte {}", e.valid_up_to() + 1);
                    sink.bad_row(line_no, reason, raw)?;
                    continue;
                }
            },
        };
        row.clear();
        match parse_line(line, &mut row) {
            Ok(()) => {
                let missing = sink.missing_in(&row);
                if missing.is_empty() {
                    sink.push(&row, line_no)?;
                } else {
                    let reason = format!("missing {} (a conn log needs them)", missing.join(", "));
                    sink.bad_row(line_no, reason, raw)?;
                }
            }
            Err(e) => {
                // serde_json counts lines within the one-line input; drop that.
                let reason =
                    format!("invalid JSON: {e}").replace(" at line 1 column ", " at column ");
                sink.bad_row(line_no, reason, raw)?;
            }
        }
    }
    Ok(())
}

fn parse_line<'a>(line: &'a str, row: &mut RowBuf<'a>) -> serde_json::Result<()> {
    let mut de = serde_json::Deserializer::from_str(line);
    RowSeed { row }.deserialize(&mut de)?;
    de.end()
}

struct RowSeed<'r, 'a> {
    row: &'r mut RowBuf<'a>,
}

impl<'de, 'r> DeserializeSeed<'de> for RowSeed<'r, 'de> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de, 'r> Visitor<'de> for RowSeed<'r, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a Zeek conn JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key_seed(KeySeed)? {
            match key {
                Some(col) => {
                    let value = map.next_value_seed(CellSeed {
                        col,
                        kind: kind_of(col),
                    })?;
                    self.row.set(col, value);
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// Maps a key to its output column without allocating.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Option<usize>;

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Self::Value, E> {
        Ok(column_for_name(key))
    }
}

/// Parses one value for output column `col`.
struct CellSeed {
    col: usize,
    kind: Kind,
}

impl CellSeed {
    fn name(&self) -> &'static str {
        crate::schema::CONN_COLUMNS
            .get(self.col)
            .map_or("tunnel_parents", |(_, zeek, _)| *zeek)
    }

    fn invalid<E: de::Error>(&self, found: impl fmt::Display) -> E {
        let expected = match self.kind {
            Kind::Int => "a non-negative integer",
            Kind::Float if self.col == TS => "epoch seconds or an ISO 8601 time",
            Kind::Float => "a finite number",
            Kind::Bool => "true or false",
            Kind::Str if self.col == TUNNEL_PARENTS => "an array of strings",
            Kind::Str => "a string",
        };
        E::custom(format_args!(
            "{}: expected {expected}, found {found}",
            self.name()
        ))
    }

    fn on_str<'a, E: de::Error>(&self, s: Cow<'a, str>) -> Result<Value<'a>, E> {
        let parsed = match self.kind {
            Kind::Str => return Ok(Value::Str(s)),
            Kind::Int => parse_count(&s).map(Value::Int),
            Kind::Float if self.col == TS => parse_ts(&s).map(Value::Float),
            Kind::Float => parse_float(&s).map(Value::Float),
            Kind::Bool => match s.as_ref() {
                "T" | "true" => Some(Value::Bool(true)),
                "F" | "false" => Some(Value::Bool(false)),
                _ => None,
            },
        };
        parsed.ok_or_else(|| self.invalid(format_args!("{s:?}")))
    }

    fn on_f64<'a, E: de::Error>(&self, v: f64) -> Result<Value<'a>, E> {
        match self.kind {
            Kind::Float if v.is_finite() => Ok(Value::Float(v)),
            _ => Err(self.invalid(v)),
        }
    }

    fn on_u64<'a, E: de::Error>(&self, v: u64) -> Result<Value<'a>, E> {
        match self.kind {
            Kind::Int => i64::try_from(v)
                .map(Value::Int)
                .map_err(|_| self.invalid(v)),
            Kind::Float => Ok(Value::Float(v as f64)),
            _ => Err(self.invalid(v)),
        }
    }
}

impl<'de> DeserializeSeed<'de> for CellSeed {
    type Value = Value<'de>;

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for CellSeed {
    type Value = Value<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a value for {}", self.name())
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Value::Null)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        match self.kind {
            Kind::Bool => Ok(Value::Bool(v)),
            _ => Err(self.invalid(v)),
        }
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        self.on_u64(v)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        match u64::try_from(v) {
            Ok(v) => self.on_u64(v),
            // Relative times may be negative; counts may not.
            Err(_) if self.kind == Kind::Float => Ok(Value::Float(v as f64)),
            Err(_) => Err(self.invalid(v)),
        }
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        self.on_f64(v)
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        self.on_str(Cow::Borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        self.on_str(Cow::Owned(v.to_string()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        self.on_str(Cow::Owned(v))
    }

    /// Zeek writes sets (`tunnel_parents`) as arrays; joined with `,` as in TSV.
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        if self.kind != Kind::Str {
            return Err(self.invalid("an array"));
        }
        let mut joined = String::new();
        let mut first = true;
        while let Some(item) = seq.next_element::<Cow<'de, str>>()? {
            if !first {
                joined.push(',');
            }
            joined.push_str(&item);
            first = false;
        }
        Ok(Value::Str(Cow::Owned(joined)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_one(line: &str) -> serde_json::Result<Vec<Value<'static>>> {
        let mut row = RowBuf::new();
        parse_line(line, &mut row)?;
        Ok((0..=TUNNEL_PARENTS)
            .map(|c| match row.value(c) {
                Value::Str(s) => Value::Str(s.into_owned().into()),
                Value::Null => Value::Null,
                Value::Int(v) => Value::Int(v),
                Value::Float(v) => Value::Float(v),
                Value::Bool(v) => Value::Bool(v),
            })
            .collect())
    }

    #[test]
    fn dotted_keys_and_absent_fields() -> serde_json::Result<()> {
        let row = parse_one(
            r#"{"ts":1664465503.133652,"id.orig_h":"172.16.1.11","id.resp_p":6001,"local_orig":true,"_path":"conn","x":{"a":[1]}}"#,
        )?;
        assert_eq!(row[0], Value::Float(1_664_465_503.133_652));
        assert_eq!(row[2], Value::Str("172.16.1.11".into()));
        assert_eq!(row[5], Value::Int(6001));
        assert_eq!(row[12], Value::Bool(true));
        assert_eq!(row[8], Value::Null);
        Ok(())
    }

    #[test]
    fn iso_and_string_timestamps() -> serde_json::Result<()> {
        let row = parse_one(r#"{"ts":"2022-02-10T03:58:29.979Z","tunnel_parents":["a","b"]}"#)?;
        match row[0] {
            Value::Float(ts) => assert!((ts - 1_644_465_509.979).abs() < 1e-6),
            ref other => panic!("unexpected {other:?}"),
        }
        assert_eq!(row[TUNNEL_PARENTS], Value::Str("a,b".into()));
        let row = parse_one(r#"{"ts":"1.644465509982958E9"}"#)?;
        assert_eq!(row[0], Value::Float(1_644_465_509.982_958));
        Ok(())
    }

    #[test]
    fn wrong_types_are_errors_naming_the_field() {
        let err = parse_one(r#"{"id.orig_p":"http"}"#)
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("id.orig_p: expected a non-negative integer, found \"http\" at line 1 column 19")
        );
        assert!(parse_one(r#"{"orig_bytes":1.5}"#).is_err());
        assert!(parse_one(r#"{"ts":1} trailing"#).is_err());
        assert!(parse_one(r#"[1,2]"#).is_err());
    }
}
