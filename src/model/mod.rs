//! Spiking network models. Each takes frames `[T, B, C, H, W]` and returns per-timestep logits
//! `[T, B, classes]` (the "sub-model" outputs whose mean is the prediction), and can expose the
//! output of an intermediate stage for objectives that need it (TSSD, BKD).

mod small_cnn;

pub use small_cnn::{SmallCnn, SmallCnnConfig};

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::ConfigError;

/// What a forward pass returns.
#[derive(Debug, Clone)]
pub struct SnnOutput {
    /// Per-timestep logits `[T, B, classes]`.
    pub logits: Tensor<3>,
    /// Output of the intermediate stage `[T, B, C, H, W]`, when asked for.
    pub stage: Option<Tensor<5>>,
}

/// Configuration of any model (the `[model]` table of a recipe, tagged by `arch`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "arch", rename_all = "snake_case")]
pub enum ModelConfig {
    /// Small conv net (two conv-BN-spike blocks).
    SmallCnn(SmallCnnConfig),
}

impl ModelConfig {
    /// Builds the model, validating the configuration first.
    pub fn init(&self, device: &Device) -> Result<Model, ConfigError> {
        Ok(match self {
            ModelConfig::SmallCnn(c) => Model::SmallCnn(c.init(device)?),
        })
    }

    /// Number of output classes.
    pub fn num_classes(&self) -> usize {
        match self {
            ModelConfig::SmallCnn(c) => c.num_classes,
        }
    }

    /// Expected input `[C, H, W]` of one frame.
    pub fn input_shape(&self) -> [usize; 3] {
        match self {
            ModelConfig::SmallCnn(c) => [c.in_channels, c.input_size, c.input_size],
        }
    }
}

/// Any model built from a [`ModelConfig`].
#[derive(Module, Debug)]
pub enum Model {
    /// See [`SmallCnn`].
    SmallCnn(SmallCnn),
}

impl Model {
    /// Per-timestep logits `[T, B, classes]` for frames `[T, B, C, H, W]`.
    pub fn forward(&self, x: Tensor<5>) -> Tensor<3> {
        self.forward_output(x, false).logits
    }

    /// Logits plus (when `with_stage`) the intermediate stage's output.
    pub fn forward_output(&self, x: Tensor<5>, with_stage: bool) -> SnnOutput {
        match self {
            Model::SmallCnn(m) => m.forward_output(x, with_stage),
        }
    }
}
