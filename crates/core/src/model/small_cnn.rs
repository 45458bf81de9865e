//! A small spiking CNN: `ConvBNLIF(c_in→c1), AP2, ConvBNLIF(c1→c2), AP2, Linear` per timestep —
//! the reference's `SmallCNN` (50,378 parameters for 1×28×28 inputs, 32/64 channels).
//! With `input_size = 8` it is the default model for the embedded 8×8 digits.

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::{Dim, Network, check_classes, check_in_channels, resolved};
use crate::error::{ConfigError, check_nonzero};
use crate::monitor::linear;
use crate::layer::{ConvBnSpike, Norm, Pool, PoolKind};
use crate::neuron::NeuronConfig;

/// Configuration of [`SmallCnn`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmallCnnConfig {
    /// Input channels (`auto` in a `[model]` table that leaves it out: from the data).
    #[serde(default)]
    pub in_channels: Dim,
    /// Input height = width (divisible by 4; `auto`: from the data).
    #[serde(default)]
    pub input_size: Dim,
    /// Channels of the two conv blocks.
    pub channels: [usize; 2],
    /// Output classes (`auto`: from the data).
    #[serde(default)]
    pub num_classes: Dim,
    /// Normalisation after each conv.
    pub norm: Norm,
    /// Spiking neuron of every block.
    pub neuron: NeuronConfig,
}

impl Default for SmallCnnConfig {
    fn default() -> Self {
        Self {
            in_channels: Dim::Fixed(1),
            input_size: Dim::Fixed(28),
            channels: [32, 64],
            num_classes: Dim::Fixed(10),
            norm: Norm::Bn,
            neuron: NeuronConfig::default(),
        }
    }
}

square_input_architecture!(SmallCnnConfig => SmallCnn);

impl SmallCnnConfig {
    /// Scales both conv blocks' channels by `width` (`max(1, round(c·width))`).
    pub fn set_width(&mut self, width: f64) {
        self.channels = self.channels.map(|c| super::scaled(c, width));
    }

    /// Checks every field, naming the first bad one (`auto` dimensions are checked once
    /// resolved).
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_in_channels(self.in_channels)?;
        check_nonzero("model.channels[0]", self.channels[0])?;
        check_nonzero("model.channels[1]", self.channels[1])?;
        check_classes(self.num_classes)?;
        if let Some(s) = self.input_size.value()
            && (s < 4 || !s.is_multiple_of(4))
        {
            return Err(ConfigError::invalid(
                "model.input_size",
                s,
                "must be a positive multiple of 4 (two 2×2 pools)",
            ));
        }
        self.neuron.validate()
    }

    /// Builds the network (validated first; every dimension must be resolved).
    pub fn init(&self, device: &Device) -> Result<SmallCnn, ConfigError> {
        self.validate()?;
        let [in_channels, input_size, num_classes] =
            resolved(self.in_channels, self.input_size, self.num_classes)?;
        let [c1, c2] = self.channels;
        let side = input_size / 4;
        Ok(SmallCnn {
            block1: ConvBnSpike::new(in_channels, c1, 3, 1, self.norm, &self.neuron, device)?,
            pool1: Pool::new(PoolKind::Avg, 2, 2, 0),
            block2: ConvBnSpike::new(c1, c2, 3, 1, self.norm, &self.neuron, device)?,
            pool2: Pool::new(PoolKind::Avg, 2, 2, 0),
            classifier: LinearConfig::new(c2 * side * side, num_classes).init(device),
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
            input_size: 10.into(),
            ..Default::default()
        }
        .init(&Device::flex())
        .unwrap_err();
        assert_eq!(err.field, "model.input_size");
    }
}
