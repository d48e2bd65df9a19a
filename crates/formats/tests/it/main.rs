//! Integration tests of the native Zeek readers and location resolution,
//! on the real logs under `shared/realdata` and on hand-made edge cases.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod edge_cases;
mod location;
mod realdata;
mod table;

use std::collections::BTreeMap;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{Float64Type, Int64Type};
use zeekml_formats::{read_zeek_bytes, BadRows, ZeekRead, ZeekReadOptions};

/// Root of the shared real files.
pub const REALDATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/realdata");

/// Path of a real file.
pub fn real(rel: &str) -> String {
    format!("{REALDATA}/{rel}")
}

pub fn fail() -> ZeekReadOptions {
    ZeekReadOptions::default()
}

pub fn reject() -> ZeekReadOptions {
    ZeekReadOptions {
        bad_rows: BadRows::Reject,
        ..ZeekReadOptions::default()
    }
}

/// Reads hand-made text under the `Fail` policy.
pub fn read_text(name: &str, text: &str) -> zeekml_formats::Result<ZeekRead> {
    read_zeek_bytes(name, text.as_bytes(), &fail())
}

pub fn strings(read: &ZeekRead, col: &str) -> Vec<Option<String>> {
    read.batches
        .iter()
        .flat_map(|b| {
            let a = b.column_by_name(col).expect("column").as_string::<i32>();
            (0..a.len())
                .map(|i| a.is_valid(i).then(|| a.value(i).to_string()))
                .collect::<Vec<_>>()
        })
        .collect()
}

pub fn ints(read: &ZeekRead, col: &str) -> Vec<Option<i64>> {
    read.batches
        .iter()
        .flat_map(|b| {
            let a = b
                .column_by_name(col)
                .expect("column")
                .as_primitive::<Int64Type>();
            (0..a.len())
                .map(|i| a.is_valid(i).then(|| a.value(i)))
                .collect::<Vec<_>>()
        })
        .collect()
}

pub fn floats(read: &ZeekRead, col: &str) -> Vec<Option<f64>> {
    read.batches
        .iter()
        .flat_map(|b| {
            let a = b
                .column_by_name(col)
                .expect("column")
                .as_primitive::<Float64Type>();
            (0..a.len())
                .map(|i| a.is_valid(i).then(|| a.value(i)))
                .collect::<Vec<_>>()
        })
        .collect()
}

pub fn bools(read: &ZeekRead, col: &str) -> Vec<Option<bool>> {
    read.batches
        .iter()
        .flat_map(|b| {
            let a = b.column_by_name(col).expect("column").as_boolean();
            (0..a.len())
                .map(|i| a.is_valid(i).then(|| a.value(i)))
                .collect::<Vec<_>>()
        })
        .collect()
}

pub fn nulls(read: &ZeekRead, col: &str) -> usize {
    read.batches
        .iter()
        .map(|b| b.column_by_name(col).expect("column").null_count())
        .sum()
}

/// `label|detail` counts, unset shown as `-`, empty as `(empty)` like the manifest.
pub fn label_counts(read: &ZeekRead) -> BTreeMap<String, usize> {
    let show = |v: Option<String>| match v.as_deref() {
        None => "-".to_string(),
        Some("") => "(empty)".to_string(),
        Some(s) => s.to_string(),
    };
    let mut counts = BTreeMap::new();
    for (label, detail) in strings(read, "label_text")
        .into_iter()
        .zip(strings(read, "label_detail"))
    {
        *counts
            .entry(format!("{}|{}", show(label), show(detail)))
            .or_insert(0) += 1;
    }
    counts
}

pub fn counts(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

/// A Zeek TSV header for `fields`, with `types` alongside.
pub fn tsv_header(fields: &[&str]) -> String {
    format!(
        "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tconn\n#open\t2024-01-01-00-00-00\n#fields\t{}\n#types\t{}\n",
        fields.join("\t"),
        fields.iter().map(|_| "string").collect::<Vec<_>>().join("\t")
    )
}

/// The 21 standard conn fields.
pub const CONN_FIELDS: &[&str] = &[
    "ts",
    "uid",
    "id.orig_h",
    "id.orig_p",
    "id.resp_h",
    "id.resp_p",
    "proto",
    "service",
    "duration",
    "orig_bytes",
    "resp_bytes",
    "conn_state",
    "local_orig",
    "local_resp",
    "missed_bytes",
    "history",
    "orig_pkts",
    "orig_ip_bytes",
    "resp_pkts",
    "resp_ip_bytes",
    "tunnel_parents",
];

/// A standard 21-field data row.
pub const ROW: &str = "1655071198.444458\tCHLXQF2OBY4onAR0Ug\t147.32.81.167\t62771\t40.74.108.123\t443\ttcp\tssl\t1.135424\t1596\t4039\tSF\tT\tF\t5138\tShADdaFf\t14\t1016\t16\t1226\t(empty)";
