//! ResNet-19 with tdBN (Zheng et al., "Going Deeper With Directly-Trained Larger Spiking Neural
//! Networks", AAAI 2021, arXiv 2011.05280), the CIFAR network of TET and TKS:
//!
//! * stem: conv 3×3 s1 (`stem_channels`, 128 in the paper's table) + tdBN + spike;
//! * layer1: 3 [`BasicBlock`]s of 128 channels; layer2: 3 blocks of 256, the first with stride 2;
//!   layer3: 2 blocks of 512, the first with stride 2;
//! * global average pool, then per timestep `FC(512 → 256)`, spike, `FC(256 → classes)`
//!   (the head of TET's `models/resnet_models.py`).
//!
//! Convs have no bias (BN follows). tdBN: every BN's scale starts at `α·V_th` with α = 1, except
//! the two BNs feeding the residual addition (the branch's last BN and the shortcut's BN), which
//! use α/√2, as tdBN prescribes. With `norm = bn` (or `none`) plain BN (or no BN) is used.
//!
//! Parameter count with 10 classes: 12,697,994 with the paper's 128-channel stem; TET's code
//! (`self.inplanes = 64`, so layer1's first block gets a 1×1 projection shortcut) has
//! **12,630,858**, the "12.63M" cited for ResNet-19 in later tables (e.g. Spikformer's);
//! `stem_channels = 64` reproduces it exactly.
//!
//! `width` scales every channel count (stem, stages, hidden FC) to `max(1, round(c·width))`.
//!
//! Intermediate stage ([`SnnOutput::stage`]): the output of **layer2** (2nd of 3 stages),
//! `[T, B, round(256·width), ⌈S/2⌉, ⌈S/2⌉]`.

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::{
    Dim, Network, check_classes, check_in_channels, check_width, global_avg_pool, resolved, scaled,
};
use crate::error::{ConfigError, check_nonzero};
use crate::monitor::{linear, spike};
use crate::layer::{ConvBn, Norm};
use crate::neuron::{Neuron, NeuronConfig};

/// `(channels, blocks, stride)` of the three stages.
pub(crate) const RESNET19_STAGES: [(usize, usize, usize); 3] =
    [(128, 3, 1), (256, 3, 2), (512, 2, 2)];
/// Hidden width of the two-layer head.
pub(crate) const RESNET19_HIDDEN: usize = 256;

/// Configuration of [`ResNet19`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResNet19Config {
    /// Input channels (`auto`: from the data).
    #[serde(default)]
    pub in_channels: Dim,
    /// Input height = width (at least 4; `auto`: from the data).
    #[serde(default)]
    pub input_size: Dim,
    /// Channel multiplier: every channel count `c` becomes `max(1, round(c·width))`.
    pub width: f64,
    /// Stem channels before the width multiplier (128 in the paper, 64 in TET's code).
    pub stem_channels: usize,
    /// Output classes (`auto`: from the data).
    #[serde(default)]
    pub num_classes: Dim,
    /// Normalisation; `td_bn` scales the pre-addition BNs' α by 1/√2.
    pub norm: Norm,
    /// Spiking neuron of every layer.
    pub neuron: NeuronConfig,
}

impl Default for ResNet19Config {
    fn default() -> Self {
        Self {
            in_channels: Dim::Fixed(3),
            input_size: Dim::Fixed(32),
            width: 1.0,
            stem_channels: 128,
            num_classes: Dim::Fixed(10),
            norm: Norm::TdBn { alpha: 1.0 },
            neuron: NeuronConfig::default(),
        }
    }
}

/// The norm of a BN that feeds a residual addition: tdBN's α becomes α/√2.
pub(crate) fn pre_addition_norm(norm: Norm) -> Norm {
    match norm {
        Norm::TdBn { alpha } => Norm::TdBn {
            alpha: alpha * std::f64::consts::FRAC_1_SQRT_2,
        },
        other => other,
    }
}

/// Checks a `norm` field (tdBN's α must be finite and > 0).
pub(crate) fn check_norm(norm: Norm) -> Result<(), ConfigError> {
    if let Norm::TdBn { alpha } = norm {
        crate::error::check_positive("model.norm.alpha", alpha)?;
    }
    Ok(())
}

square_input_architecture!(ResNet19Config => ResNet19);

impl ResNet19Config {
    /// Sets the channel multiplier.
    pub fn set_width(&mut self, width: f64) {
        self.width = width;
    }

    /// Checks every field, naming the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_in_channels(self.in_channels)?;
        check_nonzero("model.stem_channels", self.stem_channels)?;
        check_width(self.width)?;
        check_classes(self.num_classes)?;
        check_norm(self.norm)?;
        if let Some(s) = self.input_size.value()
            && s < 4
        {
            return Err(ConfigError::invalid(
                "model.input_size",
                s,
                "must be at least 4",
            ));
        }
        self.neuron.validate()
    }

    /// Builds the network (validated first).
    pub fn init(&self, device: &Device) -> Result<ResNet19, ConfigError> {
        self.validate()?;
        let [in_channels, _, num_classes] =
            resolved(self.in_channels, self.input_size, self.num_classes)?;
        let stem_c = scaled(self.stem_channels, self.width);
        let stem = ConvBn::new(
            in_channels,
            stem_c,
            3,
            1,
            false,
            self.norm,
            self.neuron.threshold,
            device,
        );
        let mut c_in = stem_c;
        let mut stages = Vec::with_capacity(RESNET19_STAGES.len());
        for (c, blocks, stride) in RESNET19_STAGES {
            let c = scaled(c, self.width);
            let mut stage = Vec::with_capacity(blocks);
            for i in 0..blocks {
                let s = if i == 0 { stride } else { 1 };
                stage.push(BasicBlock::new(
                    c_in,
                    c,
                    s,
                    self.norm,
                    &self.neuron,
                    device,
                )?);
                c_in = c;
            }
            stages.push(stage);
        }
        Ok(ResNet19 {
            stem,
            stem_neuron: self.neuron.init(device)?,
            stages,
            head: MlpHead::new(
                c_in,
                scaled(RESNET19_HIDDEN, self.width),
                num_classes,
                &self.neuron,
                device,
            )?,
        })
    }
}

/// ResNet-19's BasicBlock: `spike(BN(conv(spike(BN(conv(x))))) + shortcut(x))`, where the
/// shortcut is the identity or conv1×1-BN when the shape changes.
#[derive(Module, Debug)]
pub struct BasicBlock {
    /// conv 3×3 (stride) + BN.
    pub conv1: ConvBn,
    /// Spike after the first conv.
    pub neuron1: Neuron,
    /// conv 3×3 + BN (α/√2 under tdBN).
    pub conv2: ConvBn,
    /// 1×1 conv (stride) + BN (α/√2 under tdBN), when the shape changes.
    pub shortcut: Option<ConvBn>,
    /// Spike after the addition.
    pub neuron2: Neuron,
}

impl BasicBlock {
    /// A block from `c_in` to `c_out` channels with the given stride.
    pub fn new(
        c_in: usize,
        c_out: usize,
        stride: usize,
        norm: Norm,
        neuron: &NeuronConfig,
        device: &Device,
    ) -> Result<Self, ConfigError> {
        let th = neuron.threshold;
        let add_norm = pre_addition_norm(norm);
        Ok(Self {
            conv1: ConvBn::new(c_in, c_out, 3, stride, false, norm, th, device),
            neuron1: neuron.init(device)?,
            conv2: ConvBn::new(c_out, c_out, 3, 1, false, add_norm, th, device),
            shortcut: (stride != 1 || c_in != c_out)
                .then(|| ConvBn::new(c_in, c_out, 1, stride, false, add_norm, th, device)),
            neuron2: neuron.init(device)?,
        })
    }

    /// `[T, B, C_in, H, W]` → spikes `[T, B, C_out, H', W']`.
    pub fn forward(&self, x: Tensor<5>) -> Tensor<5> {
        let identity = match &self.shortcut {
            Some(s) => s.forward(x.clone()),
            None => x.clone(),
        };
        let out = self
            .conv2
            .forward(spike(&self.neuron1, self.conv1.forward(x)));
        spike(&self.neuron2, out + identity)
    }
}

/// Two-layer spiking head `FC(c → hidden)`, spike, `FC(hidden → classes)`, per timestep.
#[derive(Module, Debug)]
pub struct MlpHead {
    /// First FC.
    pub fc1: Linear,
    /// Spike between the FCs.
    pub neuron: Neuron,
    /// Output FC.
    pub fc2: Linear,
}

impl MlpHead {
    /// A head `c → hidden → classes`.
    pub fn new(
        c: usize,
        hidden: usize,
        classes: usize,
        neuron: &NeuronConfig,
        device: &Device,
    ) -> Result<Self, ConfigError> {
        Ok(Self {
            fc1: LinearConfig::new(c, hidden).init(device),
            neuron: neuron.init(device)?,
            fc2: LinearConfig::new(hidden, classes).init(device),
        })
    }

    /// `[T, B, C]` → `[T, B, classes]`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        self.forward_features(x).0
    }

    /// Logits `[T, B, classes]` and the penultimate features: the hidden spikes `[T, B,
    /// hidden]` that `fc2` classifies.
    pub fn forward_features(&self, x: Tensor<3>) -> (Tensor<3>, Tensor<3>) {
        let hidden = spike(&self.neuron, linear(&self.fc1, x));
        (linear(&self.fc2, hidden.clone()), hidden)
    }
}

/// See the module docs.
#[derive(Module, Debug)]
pub struct ResNet19 {
    /// conv 3×3 + BN.
    pub stem: ConvBn,
    /// Spike after the stem.
    pub stem_neuron: Neuron,
    /// layer1..layer3.
    pub stages: Vec<Vec<BasicBlock>>,
    /// FC-spike-FC head.
    pub head: MlpHead,
}

impl ResNet19 {
    /// Index of the stage whose output is exposed (layer2).
    pub const STAGE: usize = 1;

}

impl Network for ResNet19 {
    /// Frames → the globally pooled output of the last stage `[T, B, C]` (+ layer2's output).
    fn trunk(&self, x: Tensor<5>, with_stage: bool) -> (Tensor<3>, Option<Tensor<5>>) {
        let mut x = spike(&self.stem_neuron, self.stem.forward(x));
        let mut stage = None;
        for (i, blocks) in self.stages.iter().enumerate() {
            for b in blocks {
                x = b.forward(x);
            }
            if with_stage && i == Self::STAGE {
                stage = Some(x.clone());
            }
        }
        (global_avg_pool(x), stage)
    }

    /// The FC-SN-FC head; the features are its hidden spikes (see [`MlpHead::forward_features`]).
    fn head(&self, x: Tensor<3>) -> (Tensor<3>, Tensor<3>) {
        self.head.forward_features(x)
    }
}

crate::set_kernels_fields!(BasicBlock: conv1, neuron1, conv2, shortcut, neuron2);
crate::set_kernels_fields!(MlpHead: neuron);
crate::set_kernels_fields!(ResNet19: stem, stem_neuron, stages, head);

#[cfg(test)]
mod tests {
    use super::*;

    fn count(c: ResNet19Config) -> usize {
        crate::params::trainable_params(&c.init(&Device::flex()).unwrap())
    }

    #[test]
    fn parameter_counts_match_the_literature() {
        // TET's code (64-channel stem): exactly the 12.63M of the literature.
        assert_eq!(
            count(ResNet19Config {
                stem_channels: 64,
                ..Default::default()
            }),
            12_630_858
        );
        // The paper's table (128-channel stem): within 1% of it.
        let n = count(ResNet19Config::default());
        assert_eq!(n, 12_697_994);
        assert!((n as f64 / 12.63e6 - 1.0).abs() < 0.01, "{n}");
    }

    #[test]
    fn shapes_on_a_tiny_input() {
        let device = Device::flex();
        let m = ResNet19Config {
            width: 0.125,
            input_size: 8.into(),
            ..Default::default()
        }
        .init(&device)
        .unwrap();
        let out = m.forward_output(Tensor::ones([2, 2, 3, 8, 8], &device), true);
        assert_eq!(out.logits.dims(), [2, 2, 10]);
        assert_eq!(out.stage.unwrap().dims(), [2, 2, 32, 4, 4]);
    }

    #[test]
    fn tdbn_scales_the_pre_addition_bns() {
        let device = Device::flex();
        let neuron = NeuronConfig {
            threshold: 0.5,
            ..Default::default()
        };
        let b = BasicBlock::new(4, 8, 2, Norm::TdBn { alpha: 1.0 }, &neuron, &device).unwrap();
        let gamma = |cb: &ConvBn| {
            cb.bn
                .as_ref()
                .unwrap()
                .gamma
                .val()
                .to_data()
                .try_to_vec::<f32>()
                .unwrap()[0]
        };
        assert_eq!(gamma(&b.conv1), 0.5);
        let scaled = 0.5 * std::f32::consts::FRAC_1_SQRT_2;
        assert!((gamma(&b.conv2) - scaled).abs() < 1e-6);
        assert!((gamma(b.shortcut.as_ref().unwrap()) - scaled).abs() < 1e-6);
    }

    #[test]
    fn bad_configs_name_the_field() {
        let device = Device::flex();
        let err = ResNet19Config {
            width: -1.0,
            ..Default::default()
        }
        .init(&device)
        .unwrap_err();
        assert_eq!(
            (err.field.as_str(), err.value.as_str()),
            ("model.width", "-1")
        );
        let err = ResNet19Config {
            input_size: 2.into(),
            ..Default::default()
        }
        .init(&device)
        .unwrap_err();
        assert_eq!(err.field, "model.input_size");
        let err = ResNet19Config {
            norm: Norm::TdBn { alpha: 0.0 },
            ..Default::default()
        }
        .init(&device)
        .unwrap_err();
        assert_eq!(err.field, "model.norm.alpha");
    }
}
