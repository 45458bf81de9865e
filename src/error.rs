//! Error types of the library. The binary prints the whole chain once (`anyhow` in `main`).

use std::path::PathBuf;
use thiserror::Error;

/// A configuration value that cannot be used, naming the field and the value.
#[derive(Debug, Error, Clone, PartialEq)]
#[error("invalid configuration: `{field}` = {value}: {reason}")]
pub struct ConfigError {
    /// Dotted name of the field, e.g. `neuron.threshold`.
    pub field: String,
    /// The offending value, as text.
    pub value: String,
    /// What was expected.
    pub reason: String,
}

impl ConfigError {
    /// A new error for `field` holding `value`.
    pub fn invalid(field: &str, value: impl std::fmt::Display, reason: &str) -> Self {
        Self {
            field: field.to_string(),
            value: value.to_string(),
            reason: reason.to_string(),
        }
    }
}

/// Checks that `value` is finite and strictly positive.
pub fn check_positive(field: &str, value: f64) -> Result<(), ConfigError> {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err(ConfigError::invalid(field, value, "must be finite and > 0"))
    }
}

/// Checks that `value` is finite and within `[lo, hi]`.
pub fn check_range(field: &str, value: f64, lo: f64, hi: f64) -> Result<(), ConfigError> {
    if value.is_finite() && (lo..=hi).contains(&value) {
        Ok(())
    } else {
        Err(ConfigError::invalid(
            field,
            value,
            &format!("must be finite and within [{lo}, {hi}]"),
        ))
    }
}

/// Checks that a count is at least 1.
pub fn check_nonzero(field: &str, value: usize) -> Result<(), ConfigError> {
    if value > 0 {
        Ok(())
    } else {
        Err(ConfigError::invalid(field, value, "must be at least 1"))
    }
}

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

/// Errors raised while training or evaluating.
#[derive(Debug, Error)]
pub enum TrainError {
    /// A bad configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Bad data.
    #[error(transparent)]
    Data(#[from] DataError),
    /// The loss became NaN or infinite.
    #[error(
        "loss is {value} at epoch {epoch}, step {step} (global step {global_step}); lower the learning rate or check the data"
    )]
    NonFiniteLoss {
        /// Epoch (1-based).
        epoch: usize,
        /// Step within the epoch (1-based).
        step: usize,
        /// Step counted from the start of training (1-based).
        global_step: usize,
        /// The loss value.
        value: f64,
    },
    /// The model does not fit the data.
    #[error("shape mismatch: {0}")]
    Shape(String),
    /// A checkpoint could not be written or read.
    #[error(transparent)]
    Checkpoint(#[from] crate::train::checkpoint::CheckpointError),
}
