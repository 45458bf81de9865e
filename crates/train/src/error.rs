//! Errors raised while training or evaluating.

use thiserror::Error;

pub use tks_core::error::{
    ConfigError, check_nonzero, check_positive, check_range, check_range_above,
};
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
    /// The ranks of a data-parallel run hold different parameters (they should be identical
    /// after every step).
    #[error(
        "ranks diverged at global step {global_step}: parameter checksums {}",
        checksums.iter().enumerate().map(|(r, c)| format!("rank {r}: {c:016x}")).collect::<Vec<_>>().join(", ")
    )]
    RanksDiverged {
        /// Step counted from the start of training (0: before the first step).
        global_step: usize,
        /// Every rank's checksum, in rank order.
        checksums: Vec<u64>,
    },
    /// A data-parallel run that cannot be split as asked.
    #[error("distributed training over {ranks} ranks: {reason}")]
    Distributed {
        /// The number of ranks.
        ranks: usize,
        /// What is wrong.
        reason: String,
    },
    /// The training set has no samples.
    #[error("{name} is empty: nothing to train on")]
    EmptyData {
        /// The set's name.
        name: String,
    },
    /// A checkpoint to resume from was not made by this run's configuration.
    #[error(
        "{}: checkpoint is at epoch {checkpoint_epoch} with seed {checkpoint_seed}, the run has {epochs} epochs and seed {seed}",
        path.display()
    )]
    ResumeMismatch {
        /// The checkpoint file.
        path: std::path::PathBuf,
        /// Epoch the checkpoint was written after.
        checkpoint_epoch: usize,
        /// Seed of the run that wrote it.
        checkpoint_seed: u64,
        /// Epochs of this run.
        epochs: usize,
        /// Seed of this run.
        seed: u64,
    },
    /// A resumed run's best-on-validation epoch has no matching `best.safetensors`.
    #[error(
        "cannot resume: metrics say epoch {epoch} has the best validation accuracy, but {}",
        match found {
            Some((path, e)) => format!("{} holds epoch {e}", path.display()),
            None => "the run has no best.safetensors".to_string(),
        }
    )]
    ResumeBest {
        /// The best epoch by the history.
        epoch: usize,
        /// The best checkpoint found, and its epoch.
        found: Option<(std::path::PathBuf, usize)>,
    },
    /// The data's frames are not the model's input shape.
    #[error("{data} has frames {frames:?} but the model expects {model:?}")]
    FrameShape {
        /// The data set.
        data: String,
        /// Its frame shape `[C, H, W]`.
        frames: [usize; 3],
        /// The model's input shape.
        model: [usize; 3],
    },
    /// The data has more classes than the model outputs.
    #[error("{data} has {classes} classes but the model outputs {model}")]
    Classes {
        /// The data set.
        data: String,
        /// Its classes.
        classes: usize,
        /// The model's outputs.
        model: usize,
    },
    /// Event data integrated into a fixed number of frames that the objective does not train over.
    #[error(
        "{data} carries {frames} frames per sample, but objective `{objective}` trains over {timesteps}"
    )]
    FramesMismatch {
        /// The data set.
        data: String,
        /// Frames per sample.
        frames: usize,
        /// The objective.
        objective: &'static str,
        /// Timesteps it trains over.
        timesteps: usize,
    },
    /// A checkpoint could not be written or read.
    #[error(transparent)]
    Checkpoint(#[from] crate::train::checkpoint::CheckpointError),
}
