//! Errors of the readers. Every variant names the location, file or line it
//! is about, so a message alone tells the user where to look.

use datafusion::arrow::error::ArrowError;
use datafusion::error::DataFusionError;

/// Result alias used across the formats crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong while resolving a location or reading a log file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A local path that does not exist.
    #[error("{location}: no such file or directory")]
    NotFound {
        /// The location as the user gave it.
        location: String,
    },
    /// A directory, glob or prefix that holds no (visible) files.
    #[error("{location}: matches no files")]
    NoFiles {
        /// The location as the user gave it.
        location: String,
    },
    /// A location that cannot be understood (bad URL, bad glob pattern, ...).
    #[error("{location}: invalid location: {message}")]
    InvalidLocation {
        /// The location as the user gave it.
        location: String,
        /// What is wrong with it.
        message: String,
    },
    /// An object store refused a request (listing, head, get).
    #[error("{location}: {source}")]
    ObjectStore {
        /// The location or file the request was about.
        location: String,
        /// The object store error.
        #[source]
        source: object_store::Error,
    },
    /// A local file or directory could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A gzip file that is truncated or corrupt.
    #[error("{file}: cannot decompress gzip (truncated or corrupt): {source}")]
    Gzip {
        /// The compressed file.
        file: String,
        /// The decoder error.
        #[source]
        source: std::io::Error,
    },
    /// A file with no bytes at all (or only whitespace).
    #[error("{file}: empty file")]
    EmptyFile {
        /// The file.
        file: String,
    },
    /// A file that is neither Zeek TSV (`#` header) nor Zeek JSON (`{`).
    #[error("{file}: not a Zeek log: expected a '#' header line (TSV) or a '{{' object (JSON), found {found:?}")]
    UnknownFormat {
        /// The file.
        file: String,
        /// The first non-blank characters of the file.
        found: String,
    },
    /// A row that cannot be read, under the `Fail` bad-row policy.
    #[error("{file}:{line}: {reason}")]
    BadRow {
        /// The file.
        file: String,
        /// The 1-based physical line.
        line: u64,
        /// What is wrong with the row (names the column where one is at fault).
        reason: String,
    },
    /// A header line (`#separator`, `#fields`, ...) that cannot be used.
    #[error("{file}:{line}: bad header: {reason}")]
    BadHeader {
        /// The file.
        file: String,
        /// The 1-based physical line.
        line: u64,
        /// What is wrong with the header.
        reason: String,
    },
    /// A parser thread panicked (a bug, reported instead of propagated).
    #[error("{file}: parser thread panicked")]
    ParserPanicked {
        /// The file being parsed.
        file: String,
    },
    /// Arrow failed while building a batch.
    #[error(transparent)]
    Arrow(#[from] ArrowError),
    /// DataFusion failed.
    #[error(transparent)]
    DataFusion(#[from] DataFusionError),
    /// A background parsing task panicked or was cancelled.
    #[error("background read task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

impl From<Error> for DataFusionError {
    fn from(err: Error) -> Self {
        match err {
            Error::DataFusion(inner) => inner,
            Error::Arrow(inner) => DataFusionError::ArrowError(Box::new(inner), None),
            other => DataFusionError::External(Box::new(other)),
        }
    }
}
