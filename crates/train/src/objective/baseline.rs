//! Baseline: cross-entropy of the time-averaged logits, `L = CE(mean_t o_t, y)` — the standard
//! surrogate-gradient SNN objective (e.g. Wu et al., "Spatio-Temporal Backpropagation", 2018;
//! the baseline of TET and TKS).

use burn::tensor::{Int, Tensor};

use super::{Objective, Progress, cross_entropy, mean_over_time};
use tks_core::model::SnnOutput;

/// See the module docs.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Baseline {}

impl Baseline {
    /// Nothing to check: the baseline has no parameters.
    pub fn validate(&self) -> Result<(), crate::error::ConfigError> {
        Ok(())
    }
}

impl Objective for Baseline {
    fn name(&self) -> &'static str {
        "baseline"
    }

    fn loss(&self, output: &SnnOutput, targets: Tensor<1, Int>, _progress: Progress) -> Tensor<1> {
        cross_entropy(mean_over_time(output.logits.clone()), targets)
    }
}
