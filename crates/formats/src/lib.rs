//! Readers that turn UWF exports and native Zeek conn logs into the
//! canonical connection schema ([`schema::conn_schema`]).
//!
//! - [`resolve_location`]: a file, directory, glob or object store URL into
//!   a store and its sorted files.
//! - [`stream_zeek`] / [`read_zeek`] / [`read_zeek_bytes`]: native Zeek conn
//!   logs (TSV or JSON, optionally gzipped) into Arrow batches in
//!   [`zeek_schema`], as a stream of chunks or all at once, with bad rows
//!   failing the read or set aside as [`Rejected`] rows.
//! - [`ZeekLogTable`]: the same as a DataFusion table.
#![warn(missing_docs)]

mod error;
mod location;
pub mod schema;
mod table;
mod zeek;
mod zeek_json;
mod zeek_tsv;

pub use error::{Error, Result};
pub use location::{resolve_location, Resolved};
pub use table::ZeekLogTable;
pub use zeek::{
    read_zeek, read_zeek_bytes, rejects_schema, rejects_to_batch, stream_zeek, zeek_schema,
    BadRows, Rejected, ZeekRead, ZeekReadOptions,
};
