//! Training objectives over per-timestep logits `[T, B, classes]`.
//!
//! One trait, [`Objective`], one file per objective. The foundation ships [`Baseline`]
//! (cross-entropy of the time-averaged logits); TKS, TET, label smoothing, TSSD and BKD implement
//! the same trait.

mod baseline;

pub use baseline::Baseline;

use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor};

use crate::model::SnnOutput;

/// Where training stands, for objectives whose weights follow a schedule (TKS's ramp).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// Current epoch, 0-based.
    pub epoch: usize,
    /// Total epochs.
    pub epochs: usize,
    /// Step within the epoch, 0-based.
    pub step: usize,
    /// Steps per epoch.
    pub steps_per_epoch: usize,
}

impl Progress {
    /// Fraction of training done at the start of this epoch: `epoch / epochs`.
    pub fn epoch_fraction(&self) -> f64 {
        self.epoch as f64 / self.epochs.max(1) as f64
    }

    /// Fraction of training done at this step: `(epoch·S + step) / (epochs·S)`.
    pub fn step_fraction(&self) -> f64 {
        let s = self.steps_per_epoch.max(1);
        (self.epoch * s + self.step) as f64 / (self.epochs.max(1) * s) as f64
    }
}

/// A training objective: a scalar loss from a forward pass and integer targets `[B]`.
pub trait Objective: Send + Sync {
    /// Short name used in configs and the CLI (`baseline`, `tks`, ...).
    fn name(&self) -> &'static str;

    /// Whether the loss needs the model's intermediate-stage output.
    fn needs_stage(&self) -> bool {
        false
    }

    /// The loss, a one-element tensor.
    fn loss(&self, output: &SnnOutput, targets: Tensor<1, Int>, progress: Progress) -> Tensor<1>;
}

/// Mean-over-batch cross-entropy of `logits [B, C]` against integer `targets [B]`.
pub fn cross_entropy(logits: Tensor<2>, targets: Tensor<1, Int>) -> Tensor<1> {
    let classes = logits.dims()[1];
    let one_hot: Tensor<2> = targets.one_hot::<2>(classes).float();
    soft_cross_entropy(logits, one_hot)
}

/// Mean-over-batch cross-entropy `−(1/B) Σ_b Σ_c p_bc log softmax(logits)_bc` against a soft
/// target `p [B, C]`.
pub fn soft_cross_entropy(logits: Tensor<2>, target: Tensor<2>) -> Tensor<1> {
    let batch = logits.dims()[0];
    (log_softmax(logits, 1) * target).sum().neg().div_scalar(batch as f64)
}

/// Time-averaged logits `[B, C]` from `[T, B, C]`.
pub fn mean_over_time(logits: Tensor<3>) -> Tensor<2> {
    logits.mean_dim(0).squeeze_dim(0)
}
