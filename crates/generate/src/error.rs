//! Errors of the generator.

use std::path::PathBuf;

/// Everything that can go wrong while generating a dataset.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration cannot be generated (zero parts, too many rows).
    #[error("invalid generate config: {message}")]
    InvalidConfig {
        /// What is wrong.
        message: String,
    },
    /// The output directory could not be created or listed.
    #[error("cannot prepare output directory {}: {source}", path.display())]
    OutputDir {
        /// The directory.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Writing a part file failed.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The (temporary) file being written.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Moving a finished part into place, or removing a stale one, failed.
    #[error("cannot replace {}: {source}", path.display())]
    Replace {
        /// The final part file path.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A traffic profile name that is not one of [`crate::Profile::ALL`].
    #[error("unknown traffic profile '{name}' (expected campus or enterprise)")]
    UnknownProfile {
        /// The name given.
        name: String,
    },
    /// A writer thread panicked (a bug, not an input problem).
    #[error("writer thread for part {part} panicked")]
    WorkerPanicked {
        /// Index of the part whose writer died.
        part: usize,
    },
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
