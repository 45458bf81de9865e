//! Errors of the data crate.

use std::path::PathBuf;
use thiserror::Error;

pub use tks_core::error::{ConfigError, check_nonzero, check_positive, check_range};

/// Errors reading data files.
#[derive(Debug, Error)]
pub enum DataError {
    /// The file could not be opened or read. The OS error is part of the message and is not
    /// also reported as the error's `source()`, so a printed error chain names it once.
    #[error("{path}: {error}")]
    Io {
        /// File that failed.
        path: PathBuf,
        /// Underlying I/O error.
        error: std::io::Error,
    },
    /// The content does not follow the format.
    #[error("{path}: {what} (at {location})")]
    Malformed {
        /// File (or embedded resource name).
        path: PathBuf,
        /// Where: byte offset, line or record index.
        location: String,
        /// What was wrong.
        what: String,
    },
}
