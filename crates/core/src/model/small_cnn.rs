//! A small spiking CNN: `ConvBNLIF(c_in→c1), AP2, ConvBNLIF(c1→c2), AP2, Linear` per timestep —
//! the reference's `SmallCNN` (50,378 parameters for 1×28×28 inputs, 32/64 channels).
//! With `input_size = 8` it is the default model for the embedded 8×8 digits.

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::Network;
use crate::error::{ConfigError, check_nonzero};
use crate::monitor::linear;
use crate::layer::{ConvBnSpike, Norm, Pool, PoolKind};
use crate::neuron::NeuronConfig;

/// Configuration of [`SmallCnn`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmallCnnConfig {
    /// Input channels.
    pub in_channels: usize,
    /// Input height = width (divisible by 4).
    pub input_size: usize,
    /// Channels of the two conv blocks.
    pub channels: [usize; 2],
    /// Output classes.
    pub num_classes: usize,
    /// Normalisation after each conv.
    pub norm: Norm,
    /// Spiking neuron of every block.
    pub neuron: NeuronConfig,
}

impl Default for SmallCnnConfig {
    fn default() -> Self {
        Self {
            in_channels: 1,
            input_size: 28,
            channels: [32, 64],
            num_classes: 10,
            norm: Norm::Bn,
            neuron: NeuronConfig::default(),
        }
    }
}

square_input_architecture!(SmallCnnConfig => SmallCnn);

impl SmallCnnConfig {
    /// Checks what can be checked without building (the neuron; the shape checks run in
    /// [`Self::init`]).
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.neuron.validate()
    }

    /// Builds the network.
    pub fn init(&self, device: &Device) -> Result<SmallCnn, ConfigError> {
        check_nonzero("model.in_channels", self.in_channels)?;
        check_nonzero("model.channels[0]", self.channels[0])?;
        check_nonzero("model.channels[1]", self.channels[1])?;
        if self.num_classes < 2 {
            return Err(ConfigError::invalid(
                "model.num_classes",
                self.num_classes,
                "must be at least 2",
            ));
        }
        if self.input_size < 4 || !self.input_size.is_multiple_of(4) {
            return Err(ConfigError::invalid(
                "model.input_size",
                self.input_size,
                "must be a positive multiple of 4",
            ));
        }
        let [c1, c2] = self.channels;
        let side = self.input_size / 4;
        Ok(SmallCnn {
            block1: ConvBnSpike::new(self.in_channels, c1, 3, 1, self.norm, &self.neuron, device)?,
            pool1: Pool::new(PoolKind::Avg, 2, 2, 0),
            block2: ConvBnSpike::new(c1, c2, 3, 1, self.norm, &self.neuron, device)?,
            pool2: Pool::new(PoolKind::Avg, 2, 2, 0),
            classifier: LinearConfig::new(c2 * side * side, self.num_classes).init(device),
        })
    }
}

/// See the module docs.
#[derive(Module, Debug)]
pub struct SmallCnn {
    /// First conv-BN-spike block (its pooled output is the intermediate stage).
    pub block1: ConvBnSpike,
    /// 2×2 average pool.
    pub pool1: Pool,
    /// Second block.
    pub block2: ConvBnSpike,
    /// 2×2 average pool.
    pub pool2: Pool,
    /// Per-timestep classifier.
    pub classifier: Linear,
}

impl Network for SmallCnn {
    /// Frames → the classifier's input `[T, B, F]` (+ stage after the first block).
    fn trunk(&self, x: Tensor<5>, with_stage: bool) -> (Tensor<3>, Option<Tensor<5>>) {
        let s1 = self.pool1.forward(self.block1.forward(x));
        let stage = with_stage.then(|| s1.clone());
        let s2 = self.pool2.forward(self.block2.forward(s1));
        let [t, b, c, h, w] = s2.dims();
        (s2.reshape([t, b, c * h * w]), stage)
    }

    /// The classifier; the features are its input (the second block's pooled spikes).
    fn head(&self, x: Tensor<3>) -> (Tensor<3>, Tensor<3>) {
        (linear(&self.classifier, x.clone()), x)
    }
}

crate::set_kernels_fields!(SmallCnn: block1, pool1, block2, pool2);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_and_parameter_count() {
        let device = Device::flex();
        let m = SmallCnnConfig::default().init(&device).unwrap();
        assert_eq!(
            crate::params::trainable_params(&m),
            50_378,
            "the reference SmallCNN count"
        );
        let out = m.forward_output(Tensor::zeros([2, 3, 1, 28, 28], &device), true);
        assert_eq!(out.logits.dims(), [2, 3, 10]);
        assert_eq!(out.stage.unwrap().dims(), [2, 3, 32, 14, 14]);
    }

    #[test]
    fn bad_input_size_is_a_config_error() {
        let err = SmallCnnConfig {
            input_size: 10,
            ..Default::default()
        }
        .init(&Device::flex())
        .unwrap_err();
        assert_eq!(err.field, "model.input_size");
    }
}
