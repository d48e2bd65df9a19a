//! The canonical connection schema every reader maps into.
//!
//! Column names follow the UWF-ZeekData22 CSV export (`src_ip`, `dest_port`,
//! `protocol`, ...) because that is the layout the reference notebook and the
//! SQL stages speak. Native Zeek names (`id.orig_h`, `proto`, ...) and later
//! UWF names (`src_ip_zeek`, `label_tactic`, ...) are renamed into it.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};

/// `(canonical name, Zeek conn.log field name, type)` for every canonical column.
///
/// `label_text` / `label_detail` carry a dataset's own label strings (UWF's
/// `mitre_attack_tactics`, Stratosphere's `label` / `detailedlabel`); turning
/// them into a 0/1 target is the `label` SQL stage's job.
pub const CONN_COLUMNS: &[(&str, &str, DataType)] = &[
    ("ts", "ts", DataType::Float64),
    ("uid", "uid", DataType::Utf8),
    ("src_ip", "id.orig_h", DataType::Utf8),
    ("src_port", "id.orig_p", DataType::Int64),
    ("dest_ip", "id.resp_h", DataType::Utf8),
    ("dest_port", "id.resp_p", DataType::Int64),
    ("protocol", "proto", DataType::Utf8),
    ("service", "service", DataType::Utf8),
    ("duration", "duration", DataType::Float64),
    ("orig_bytes", "orig_bytes", DataType::Int64),
    ("resp_bytes", "resp_bytes", DataType::Int64),
    ("conn_state", "conn_state", DataType::Utf8),
    ("local_orig", "local_orig", DataType::Boolean),
    ("local_resp", "local_resp", DataType::Boolean),
    ("missed_bytes", "missed_bytes", DataType::Int64),
    ("history", "history", DataType::Utf8),
    ("orig_pkts", "orig_pkts", DataType::Int64),
    ("orig_ip_bytes", "orig_ip_bytes", DataType::Int64),
    ("resp_pkts", "resp_pkts", DataType::Int64),
    ("resp_ip_bytes", "resp_ip_bytes", DataType::Int64),
    ("community_id", "community_id", DataType::Utf8),
    ("label_text", "label", DataType::Utf8),
    ("label_detail", "detailedlabel", DataType::Utf8),
];

static CONN_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(
        CONN_COLUMNS
            .iter()
            .map(|(name, _, ty)| Field::new(*name, ty.clone(), true))
            .collect::<Vec<_>>(),
    ))
});

/// The canonical connection schema: every column nullable, because Zeek
/// leaves fields unset (`-`) and unset is information (mostly probes).
pub fn conn_schema() -> SchemaRef {
    Arc::clone(&CONN_SCHEMA)
}

/// Canonical name for a native Zeek field name, if it has one.
pub fn canonical_name(zeek_field: &str) -> Option<&'static str> {
    CONN_COLUMNS
        .iter()
        .find(|(_, zeek, _)| *zeek == zeek_field)
        .map(|(name, _, _)| *name)
        .or(match zeek_field {
            // Stratosphere spells it both ways; IoT-23 uses a dash.
            "detailed-label" | "detailed_label" => Some("label_detail"),
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeek_names_map_to_canonical() {
        assert_eq!(canonical_name("id.orig_h"), Some("src_ip"));
        assert_eq!(canonical_name("proto"), Some("protocol"));
        assert_eq!(canonical_name("detailed-label"), Some("label_detail"));
        assert_eq!(canonical_name("_node_name"), None);
        assert_eq!(conn_schema().fields().len(), CONN_COLUMNS.len());
    }
}
