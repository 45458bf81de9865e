//! Errors raised while training or evaluating.

use thiserror::Error;

pub use tks_core::error::{ConfigError, check_nonzero, check_positive, check_range};
pub use tks_data::error::DataError;

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
