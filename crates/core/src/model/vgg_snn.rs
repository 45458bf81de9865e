//! VGG-SNN of TET (Deng et al., ICLR 2022) and TKS for DVS-CIFAR10 (input `[T, B, 2, 48, 48]`):
//! `ConvBNLIF` channels `64,128,AP2,256,256,AP2,512,512,AP2,512,512,AP2` (conv 3×3 s1 p1 with
//! bias, BN over T·B·H·W, spiking neuron; AP2 = 2×2 average pool with no neuron after it), then
//! flatten per timestep and `Linear(512·(S/16)² → classes)` per timestep.
//!
//! `width` scales every channel count to `max(1, round(c·width))`; at width 0.25, 10 classes and
//! a 48×48 input the network has the reference's 589,882 parameters.
//!
//! Intermediate stage ([`SnnOutput::stage`]): the pooled output of the **2nd of the 4 pooled
//! stages**, `[T, B, round(256·width), S/4, S/4]`.

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::{Dim, Network, check_classes, check_in_channels, check_width, resolved, scaled};
use crate::error::ConfigError;
use crate::monitor::linear;
use crate::layer::{ConvBnSpike, Norm, Pool, PoolKind};
use crate::neuron::NeuronConfig;

/// Channels of the two conv blocks of each of the four stages (each stage ends with AP2).
const VGG_STAGES: [[usize; 2]; 4] = [[64, 128], [256, 256], [512, 512], [512, 512]];

/// Configuration of [`VggSnn`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VggSnnConfig {
    /// Input channels (2 for DVS polarity frames; `auto`: from the data).
    #[serde(default)]
    pub in_channels: Dim,
    /// Input height = width, a positive multiple of 16 (48 for DVS-CIFAR10; `auto`: from the data).
    #[serde(default)]
    pub input_size: Dim,
    /// Channel multiplier: every channel count `c` becomes `max(1, round(c·width))`.
    pub width: f64,
    /// Output classes (`auto`: from the data).
    #[serde(default)]
    pub num_classes: Dim,
    /// Normalisation after each conv.
    pub norm: Norm,
    /// Pooling between stages (average in TET/TKS).
    pub pool: PoolKind,
    /// Spiking neuron of every block.
    pub neuron: NeuronConfig,
}

impl Default for VggSnnConfig {
    fn default() -> Self {
        Self {
            in_channels: Dim::Fixed(2),
            input_size: Dim::Fixed(48),
            width: 1.0,
            num_classes: Dim::Fixed(10),
            norm: Norm::Bn,
            pool: PoolKind::Avg,
            neuron: NeuronConfig::default(),
        }
    }
}

square_input_architecture!(VggSnnConfig => VggSnn);

impl VggSnnConfig {
    /// Sets the channel multiplier.
    pub fn set_width(&mut self, width: f64) {
        self.width = width;
    }

    /// Checks every field, naming the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_in_channels(self.in_channels)?;
        check_width(self.width)?;
        check_classes(self.num_classes)?;
        if let Some(s) = self.input_size.value()
            && (s < 16 || !s.is_multiple_of(16))
        {
            return Err(ConfigError::invalid(
                "model.input_size",
                s,
                "must be a positive multiple of 16 (four 2×2 pools)",
            ));
        }
        self.neuron.validate()
    }

    /// Builds the network (validated first).
    pub fn init(&self, device: &Device) -> Result<VggSnn, ConfigError> {
        self.validate()?;
        let [in_channels, input_size, num_classes] =
            resolved(self.in_channels, self.input_size, self.num_classes)?;
        let mut stages = Vec::with_capacity(VGG_STAGES.len());
        let mut c_in = in_channels;
        for [a, b] in VGG_STAGES {
            let (a, b) = (scaled(a, self.width), scaled(b, self.width));
            stages.push(VggStage {
                conv_a: ConvBnSpike::new(c_in, a, 3, 1, self.norm, &self.neuron, device)?,
                conv_b: ConvBnSpike::new(a, b, 3, 1, self.norm, &self.neuron, device)?,
                pool: Pool::new(self.pool, 2, 2, 0),
            });
            c_in = b;
        }
        let side = input_size / 16;
        Ok(VggSnn {
            stages,
            classifier: LinearConfig::new(c_in * side * side, num_classes).init(device),
        })
    }
}

/// Two conv-BN-spike blocks and a 2×2 pool.
#[derive(Module, Debug)]
pub struct VggStage {
    /// First conv block.
    pub conv_a: ConvBnSpike,
    /// Second conv block.
    pub conv_b: ConvBnSpike,
    /// 2×2 pool (no neuron after it).
    pub pool: Pool,
}

impl VggStage {
    /// `[T, B, C, H, W]` → `[T, B, C', H/2, W/2]`.
    pub fn forward(&self, x: Tensor<5>) -> Tensor<5> {
        self.pool
            .forward(self.conv_b.forward(self.conv_a.forward(x)))
    }
}

/// See the module docs.
#[derive(Module, Debug)]
pub struct VggSnn {
    /// The four pooled stages.
    pub stages: Vec<VggStage>,
    /// Per-timestep classifier.
    pub classifier: Linear,
}

impl VggSnn {
    /// Index of the stage whose output is exposed (the 2nd).
    pub const STAGE: usize = 1;

}

impl Network for VggSnn {
    /// Frames → the classifier's input `[T, B, F]` (+ the 2nd stage's output).
    fn trunk(&self, x: Tensor<5>, with_stage: bool) -> (Tensor<3>, Option<Tensor<5>>) {
        let mut x = x;
        let mut stage = None;
        for (i, s) in self.stages.iter().enumerate() {
            x = s.forward(x);
            if with_stage && i == Self::STAGE {
                stage = Some(x.clone());
            }
        }
        let [t, b, c, h, w] = x.dims();
        (x.reshape([t, b, c * h * w]), stage)
    }

    /// The classifier; the features are its input (the last stage's pooled spikes, flattened).
    fn head(&self, x: Tensor<3>) -> (Tensor<3>, Tensor<3>) {
        (linear(&self.classifier, x.clone()), x)
    }
}

crate::set_kernels_fields!(VggStage: conv_a, conv_b, pool);
crate::set_kernels_fields!(VggSnn: stages);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_parameter_count_at_quarter_width() {
        let m = VggSnnConfig {
            width: 0.25,
            ..Default::default()
        }
        .init(&Device::flex())
        .unwrap();
        assert_eq!(
            crate::params::trainable_params(&m),
            589_882,
            "the reference VGGSNN(width=0.25)"
        );
    }

    #[test]
    fn shapes_on_a_tiny_input() {
        let device = Device::flex();
        let m = VggSnnConfig {
            width: 0.125,
            input_size: 16.into(),
            ..Default::default()
        }
        .init(&device)
        .unwrap();
        let out = m.forward_output(Tensor::ones([2, 2, 2, 16, 16], &device), true);
        assert_eq!(out.logits.dims(), [2, 2, 10]);
        assert_eq!(out.stage.unwrap().dims(), [2, 2, 32, 4, 4]);
        assert!(
            m.forward_output(Tensor::ones([2, 2, 2, 16, 16], &device), false)
                .stage
                .is_none()
        );
    }

    #[test]
    fn bad_configs_name_the_field() {
        let device = Device::flex();
        let err = VggSnnConfig {
            input_size: 40.into(),
            ..Default::default()
        }
        .init(&device)
        .unwrap_err();
        assert_eq!(
            (err.field.as_str(), err.value.as_str()),
            ("model.input_size", "40")
        );
        let err = VggSnnConfig {
            width: 0.0,
            ..Default::default()
        }
        .init(&device)
        .unwrap_err();
        assert_eq!(err.field, "model.width");
        let err = VggSnnConfig {
            num_classes: 1.into(),
            ..Default::default()
        }
        .init(&device)
        .unwrap_err();
        assert_eq!(err.field, "model.num_classes");
    }
}
