//! Spike-Element-Wise ResNets (Fang et al., "Deep Residual Learning in Spiking Neural Networks",
//! NeurIPS 2021, arXiv 2102.04159) with the ADD connect function: a block computes
//! `SN(BN(conv(… SN(BN(conv(x))) …))) + shortcut(x)`, where the shortcut is the identity or,
//! when the shape changes, `SN(BN(conv1×1(x)))`; there is no neuron after the addition.
//!
//! | depth | blocks | block | stages (channels before width) | stem |
//! |---|---|---|---|---|
//! | 18 | 2,2,2,2 | basic | 64,128,256,512 | 7×7 s2 + BN + SN + maxpool 3×3 s2 |
//! | 34 | 3,4,6,3 | basic | 64,128,256,512 | same |
//! | 50 | 3,4,6,3 | bottleneck (×4) | 64,128,256,512 | same |
//! | 19 | 3,3,2 | basic | 128,256,512 | 3×3 s1 128 + BN + SN (ResNet-19's) |
//!
//! The first block of every stage but the first has stride 2 (on the 3×3 conv of a bottleneck,
//! as torchvision's ResNet-50 v1.5 that SEW builds on). `cifar_stem = true` replaces the ImageNet
//! stem of depths 18/34/50 by conv 3×3 s1 (64 channels) + BN + SN, without max pooling; depth 19
//! always has ResNet-19's 3×3 stem. Head: global average pool then `FC(→ classes)` per timestep
//! for 18/34/50, and ResNet-19's `FC(512 → 256)`, SN, `FC(256 → classes)` for depth 19.
//! Convs have no bias. The neurons have no parameters (unless PLIF), so at full width with 1000
//! classes SEW-ResNet-18/34/50 have torchvision ResNet-18/34/50's 11,689,512 / 21,797,672 /
//! 25,557,032 parameters (the paper's 11.69M / 21.79M / 25.56M).
//!
//! `width` scales every channel count to `max(1, round(c·width))`.
//!
//! Intermediate stage ([`SnnOutput::stage`]): the output of **layer2** (the 2nd stage: of 4 for
//! depths 18/34/50, of 3 for depth 19), `[T, B, round(128·width)·e, ·, ·]` for 18/34/50
//! (`e` = 4 for the bottleneck, else 1) and `[T, B, round(256·width), ·, ·]` for 19.

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::resnet19::{MlpHead, RESNET19_HIDDEN, RESNET19_STAGES, check_norm};
use super::{
    Dim, Network, check_classes, check_in_channels, check_width, global_avg_pool, resolved, scaled,
};
use crate::error::ConfigError;
use crate::monitor::linear;
use crate::layer::{ConvBn, ConvBnSpike, Norm, Pool, PoolKind};
use crate::neuron::NeuronConfig;

/// Configuration of [`SewResNet`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SewResNetConfig {
    /// 18, 19, 34 or 50.
    pub depth: usize,
    /// Input channels (`auto`: from the data).
    #[serde(default)]
    pub in_channels: Dim,
    /// Input height = width (at least the total downsampling: 32 with the ImageNet stem; `auto`: from the data).
    #[serde(default)]
    pub input_size: Dim,
    /// Channel multiplier: every channel count `c` becomes `max(1, round(c·width))`.
    pub width: f64,
    /// Output classes (`auto`: from the data).
    #[serde(default)]
    pub num_classes: Dim,
    /// Depths 18/34/50: conv 3×3 s1 stem without max pooling (CIFAR) instead of the ImageNet one.
    pub cifar_stem: bool,
    /// Normalisation after each conv.
    pub norm: Norm,
    /// Spiking neuron of every layer.
    pub neuron: NeuronConfig,
}

impl Default for SewResNetConfig {
    /// SEW-ResNet-18 on ImageNet, as in the paper.
    fn default() -> Self {
        Self {
            depth: 18,
            in_channels: Dim::Fixed(3),
            input_size: Dim::Fixed(224),
            width: 1.0,
            num_classes: Dim::Fixed(1000),
            cifar_stem: false,
            norm: Norm::Bn,
            neuron: NeuronConfig::default(),
        }
    }
}

/// The layout of one depth.
struct Layout {
    /// `(channels, blocks, stride)` per stage.
    stages: Vec<(usize, usize, usize)>,
    bottleneck: bool,
    /// `true`: 3×3 s1 stem without pooling.
    small_stem: bool,
    stem_channels: usize,
    /// Hidden FC width of a two-layer head.
    hidden: Option<usize>,
}

square_input_architecture!(SewResNetConfig => SewResNet);

impl SewResNetConfig {
    fn layout(&self) -> Result<Layout, ConfigError> {
        let imagenet = |blocks: [usize; 4], bottleneck| Layout {
            stages: [64, 128, 256, 512]
                .into_iter()
                .zip(blocks)
                .zip([1, 2, 2, 2])
                .map(|((c, n), s)| (c, n, s))
                .collect(),
            bottleneck,
            small_stem: self.cifar_stem,
            stem_channels: 64,
            hidden: None,
        };
        Ok(match self.depth {
            18 => imagenet([2, 2, 2, 2], false),
            34 => imagenet([3, 4, 6, 3], false),
            50 => imagenet([3, 4, 6, 3], true),
            19 => Layout {
                stages: RESNET19_STAGES.to_vec(),
                bottleneck: false,
                small_stem: true,
                stem_channels: 128,
                hidden: Some(RESNET19_HIDDEN),
            },
            d => {
                return Err(ConfigError::invalid(
                    "model.depth",
                    d,
                    "expected one of 18, 19, 34, 50",
                ));
            }
        })
    }

    /// Sets the channel multiplier.
    pub fn set_width(&mut self, width: f64) {
        self.width = width;
    }

    /// Checks every field, naming the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let layout = self.layout()?;
        check_in_channels(self.in_channels)?;
        check_width(self.width)?;
        check_classes(self.num_classes)?;
        check_norm(self.norm)?;
        let strided = layout.stages.iter().filter(|s| s.2 == 2).count() as u32;
        let min = if layout.small_stem {
            1 << strided
        } else {
            4 << strided
        };
        if let Some(size) = self.input_size.value()
            && size < min
        {
            return Err(ConfigError::invalid(
                "model.input_size",
                size,
                &format!("must be at least {min} for this depth and stem"),
            ));
        }
        self.neuron.validate()
    }

    /// Builds the network (validated first).
    pub fn init(&self, device: &Device) -> Result<SewResNet, ConfigError> {
        self.validate()?;
        let [in_channels, _, num_classes] =
            resolved(self.in_channels, self.input_size, self.num_classes)?;
        let layout = self.layout()?;
        let w = self.width;
        let stem_c = scaled(layout.stem_channels, w);
        let (k, s) = if layout.small_stem { (3, 1) } else { (7, 2) };
        let stem = conv_bn_spike(in_channels, stem_c, k, s, self, device)?;
        let stem_pool = (!layout.small_stem).then(|| Pool::new(PoolKind::Max, 3, 2, 1));
        let mut c_in = stem_c;
        let mut stages = Vec::with_capacity(layout.stages.len());
        for &(c, blocks, stride) in &layout.stages {
            let planes = scaled(c, w);
            let mut stage = Vec::with_capacity(blocks);
            for i in 0..blocks {
                let s = if i == 0 { stride } else { 1 };
                let block = if layout.bottleneck {
                    SewBlock::Bottleneck(SewBottleneck::new(c_in, planes, s, self, device)?)
                } else {
                    SewBlock::Basic(SewBasicBlock::new(c_in, planes, s, self, device)?)
                };
                c_in = if layout.bottleneck {
                    planes * SewBottleneck::EXPANSION
                } else {
                    planes
                };
                stage.push(block);
            }
            stages.push(stage);
        }
        let head = match layout.hidden {
            Some(h) => SewHead::Mlp(MlpHead::new(
                c_in,
                scaled(h, w),
                num_classes,
                &self.neuron,
                device,
            )?),
            None => SewHead::Linear(LinearConfig::new(c_in, num_classes).init(device)),
        };
        Ok(SewResNet {
            stem,
            stem_pool,
            stages,
            head,
        })
    }
}

/// Conv (no bias) + norm + spike.
fn conv_bn_spike(
    c_in: usize,
    c_out: usize,
    kernel: usize,
    stride: usize,
    cfg: &SewResNetConfig,
    device: &Device,
) -> Result<ConvBnSpike, ConfigError> {
    Ok(ConvBnSpike {
        conv_bn: ConvBn::new(
            c_in,
            c_out,
            kernel,
            stride,
            false,
            cfg.norm,
            cfg.neuron.threshold,
            device,
        ),
        neuron: cfg.neuron.init(device)?,
    })
}

/// The shortcut `SN(BN(conv1×1(x)))` when the shape changes.
fn downsample(
    c_in: usize,
    c_out: usize,
    stride: usize,
    cfg: &SewResNetConfig,
    device: &Device,
) -> Result<Option<ConvBnSpike>, ConfigError> {
    if stride != 1 || c_in != c_out {
        Ok(Some(conv_bn_spike(c_in, c_out, 1, stride, cfg, device)?))
    } else {
        Ok(None)
    }
}

/// Adds the shortcut (identity or downsample) of `x` to the branch output.
fn add_shortcut(out: Tensor<5>, x: Tensor<5>, downsample: &Option<ConvBnSpike>) -> Tensor<5> {
    match downsample {
        Some(d) => out + d.forward(x),
        None => out + x,
    }
}

/// SEW basic block: `SN(BN(conv3×3(SN(BN(conv3×3(x)))))) + shortcut(x)`.
#[derive(Module, Debug)]
pub struct SewBasicBlock {
    /// conv 3×3 (stride) + BN + SN.
    pub conv1: ConvBnSpike,
    /// conv 3×3 + BN + SN.
    pub conv2: ConvBnSpike,
    /// conv 1×1 (stride) + BN + SN, when the shape changes.
    pub downsample: Option<ConvBnSpike>,
}

impl SewBasicBlock {
    fn new(
        c_in: usize,
        planes: usize,
        stride: usize,
        cfg: &SewResNetConfig,
        device: &Device,
    ) -> Result<Self, ConfigError> {
        Ok(Self {
            conv1: conv_bn_spike(c_in, planes, 3, stride, cfg, device)?,
            conv2: conv_bn_spike(planes, planes, 3, 1, cfg, device)?,
            downsample: downsample(c_in, planes, stride, cfg, device)?,
        })
    }

    /// `[T, B, C_in, H, W]` → `[T, B, C_out, H', W']` (sums of spikes, not binary).
    pub fn forward(&self, x: Tensor<5>) -> Tensor<5> {
        let out = self.conv2.forward(self.conv1.forward(x.clone()));
        add_shortcut(out, x, &self.downsample)
    }
}

/// SEW bottleneck: conv1×1-BN-SN, conv3×3(stride)-BN-SN, conv1×1(×4)-BN-SN, + shortcut.
#[derive(Module, Debug)]
pub struct SewBottleneck {
    /// conv 1×1 + BN + SN.
    pub conv1: ConvBnSpike,
    /// conv 3×3 (stride) + BN + SN.
    pub conv2: ConvBnSpike,
    /// conv 1×1 to `planes·4` + BN + SN.
    pub conv3: ConvBnSpike,
    /// conv 1×1 (stride) + BN + SN, when the shape changes.
    pub downsample: Option<ConvBnSpike>,
}

impl SewBottleneck {
    /// Output channels per `planes`.
    pub const EXPANSION: usize = 4;

    fn new(
        c_in: usize,
        planes: usize,
        stride: usize,
        cfg: &SewResNetConfig,
        device: &Device,
    ) -> Result<Self, ConfigError> {
        let c_out = planes * Self::EXPANSION;
        Ok(Self {
            conv1: conv_bn_spike(c_in, planes, 1, 1, cfg, device)?,
            conv2: conv_bn_spike(planes, planes, 3, stride, cfg, device)?,
            conv3: conv_bn_spike(planes, c_out, 1, 1, cfg, device)?,
            downsample: downsample(c_in, c_out, stride, cfg, device)?,
        })
    }

    /// `[T, B, C_in, H, W]` → `[T, B, 4·planes, H', W']`.
    pub fn forward(&self, x: Tensor<5>) -> Tensor<5> {
        let out = self
            .conv3
            .forward(self.conv2.forward(self.conv1.forward(x.clone())));
        add_shortcut(out, x, &self.downsample)
    }
}

/// A SEW residual block.
#[derive(Module, Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "built once per model; burn modules cannot be boxed"
)]
pub enum SewBlock {
    /// Two 3×3 convs (depths 18, 19, 34).
    Basic(SewBasicBlock),
    /// 1×1, 3×3, 1×1 convs (depth 50).
    Bottleneck(SewBottleneck),
}

impl SewBlock {
    /// Runs the block.
    pub fn forward(&self, x: Tensor<5>) -> Tensor<5> {
        match self {
            SewBlock::Basic(b) => b.forward(x),
            SewBlock::Bottleneck(b) => b.forward(x),
        }
    }
}

/// Classifier after global average pooling, per timestep.
#[derive(Module, Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "built once per model; burn modules cannot be boxed"
)]
pub enum SewHead {
    /// One FC (depths 18/34/50).
    Linear(Linear),
    /// FC-SN-FC (depth 19).
    Mlp(MlpHead),
}

impl SewHead {
    /// `[T, B, C]` → `[T, B, classes]`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        self.forward_features(x).0
    }

    /// Logits and penultimate features (the last FC's input): the pooled features `[T, B, C]`
    /// for one FC, the hidden spikes `[T, B, hidden]` for FC-SN-FC.
    pub fn forward_features(&self, x: Tensor<3>) -> (Tensor<3>, Tensor<3>) {
        match self {
            SewHead::Linear(fc) => (linear(fc, x.clone()), x),
            SewHead::Mlp(h) => h.forward_features(x),
        }
    }
}

/// See the module docs.
#[derive(Module, Debug)]
pub struct SewResNet {
    /// Stem conv + BN + SN.
    pub stem: ConvBnSpike,
    /// 3×3 s2 max pool of the ImageNet stem.
    pub stem_pool: Option<Pool>,
    /// layer1, layer2, ….
    pub stages: Vec<Vec<SewBlock>>,
    /// Classifier.
    pub head: SewHead,
}

impl SewResNet {
    /// Index of the stage whose output is exposed (layer2).
    pub const STAGE: usize = 1;

}

impl Network for SewResNet {
    /// Frames → the globally pooled output of the last stage `[T, B, C]` (+ layer2's output).
    fn trunk(&self, x: Tensor<5>, with_stage: bool) -> (Tensor<3>, Option<Tensor<5>>) {
        let mut x = self.stem.forward(x);
        if let Some(p) = &self.stem_pool {
            x = p.forward(x);
        }
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

    /// The classifier; see [`SewHead::forward_features`] for the features.
    fn head(&self, x: Tensor<3>) -> (Tensor<3>, Tensor<3>) {
        self.head.forward_features(x)
    }
}

crate::set_kernels_fields!(SewBasicBlock: conv1, conv2, downsample);
crate::set_kernels_fields!(SewBottleneck: conv1, conv2, conv3, downsample);
crate::set_kernels_fields!(SewResNet: stem, stem_pool, stages, head);

impl crate::kernels::SetKernels for SewBlock {
    fn set_kernels(&mut self, policy: &crate::kernels::KernelPolicy) {
        match self {
            SewBlock::Basic(b) => b.set_kernels(policy),
            SewBlock::Bottleneck(b) => b.set_kernels(policy),
        }
    }
}

impl crate::kernels::SetKernels for SewHead {
    fn set_kernels(&mut self, policy: &crate::kernels::KernelPolicy) {
        if let SewHead::Mlp(h) = self {
            h.set_kernels(policy);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SnnOutput;

    fn count(depth: usize) -> usize {
        let m = SewResNetConfig {
            depth,
            ..Default::default()
        }
        .init(&Device::flex())
        .unwrap();
        crate::params::trainable_params(&m)
    }

    fn within_1pct(n: usize, literature: f64) -> bool {
        (n as f64 / literature - 1.0).abs() < 0.01
    }

    #[test]
    fn sew18_parameter_count() {
        let n = count(18);
        assert_eq!(n, 11_689_512, "torchvision ResNet-18");
        assert!(within_1pct(n, 11.69e6));
    }

    #[test]
    fn sew34_parameter_count() {
        let n = count(34);
        assert_eq!(n, 21_797_672, "torchvision ResNet-34");
        assert!(within_1pct(n, 21.79e6));
    }

    #[test]
    fn sew19_parameter_count_equals_resnet19() {
        let cfg = SewResNetConfig {
            depth: 19,
            input_size: 32.into(),
            num_classes: 10.into(),
            ..Default::default()
        };
        let n = crate::params::trainable_params(&cfg.init(&Device::flex()).unwrap());
        assert_eq!(
            n, 12_697_994,
            "ResNet-19 (128-channel stem): SEW moves neurons, not weights"
        );
    }

    #[test]
    fn sew50_parameter_count() {
        let n = count(50);
        assert_eq!(n, 25_557_032, "torchvision ResNet-50");
        assert!(within_1pct(n, 25.56e6));
    }

    fn tiny(depth: usize, cifar_stem: bool, size: usize) -> SnnOutput {
        let device = Device::flex();
        let cfg = SewResNetConfig {
            depth,
            width: 0.125,
            num_classes: 10.into(),
            cifar_stem,
            input_size: size.into(),
            ..Default::default()
        };
        cfg.init(&device)
            .unwrap()
            .forward_output(Tensor::ones([2, 2, 3, size, size], &device), true)
    }

    #[test]
    fn sew18_imagenet_stem_shapes() {
        let out = tiny(18, false, 32);
        assert_eq!(out.logits.dims(), [2, 2, 10]);
        // 32 → stem 16 → pool 8 → layer1 8 → layer2 4.
        assert_eq!(out.stage.unwrap().dims(), [2, 2, 16, 4, 4]);
    }

    #[test]
    fn sew34_cifar_stem_shapes() {
        let out = tiny(34, true, 8);
        assert_eq!(out.logits.dims(), [2, 2, 10]);
        assert_eq!(out.stage.unwrap().dims(), [2, 2, 16, 4, 4]);
    }

    #[test]
    fn sew50_cifar_stem_shapes() {
        let out = tiny(50, true, 8);
        assert_eq!(out.logits.dims(), [2, 2, 10]);
        assert_eq!(out.stage.unwrap().dims(), [2, 2, 64, 4, 4]);
    }

    #[test]
    fn sew19_shapes() {
        let out = tiny(19, false, 8);
        assert_eq!(out.logits.dims(), [2, 2, 10]);
        assert_eq!(out.stage.unwrap().dims(), [2, 2, 32, 4, 4]);
    }

    #[test]
    fn gradients_reach_the_stem() {
        let device = Device::flex().autodiff();
        let cfg = SewResNetConfig {
            depth: 19,
            width: 0.125,
            num_classes: 10.into(),
            input_size: 8.into(),
            ..Default::default()
        };
        let m = cfg.init(&device).unwrap();
        let x = Tensor::<5>::random(
            [2, 2, 3, 8, 8],
            burn::tensor::Distribution::Normal(0.0, 2.0),
            &device,
        );
        let grads = m.forward_output(x, false).logits.sum().backward();
        let g = m.stem.conv_bn.conv.weight.val().grad(&grads).unwrap();
        let g: Vec<f32> = g.to_data().try_to_vec::<f32>().unwrap();
        assert!(g.iter().all(|v| v.is_finite()) && g.iter().any(|&v| v != 0.0));
    }

    #[test]
    fn bad_configs_name_the_field() {
        let device = Device::flex();
        let err = SewResNetConfig {
            depth: 20,
            ..Default::default()
        }
        .init(&device)
        .unwrap_err();
        assert_eq!(
            (err.field.as_str(), err.value.as_str()),
            ("model.depth", "20")
        );
        let err = SewResNetConfig {
            width: f64::NAN,
            ..Default::default()
        }
        .init(&device)
        .unwrap_err();
        assert_eq!(err.field, "model.width");
        let err = SewResNetConfig {
            input_size: 16.into(),
            ..Default::default()
        }
        .init(&device)
        .unwrap_err();
        assert_eq!(
            (err.field.as_str(), err.value.as_str()),
            ("model.input_size", "16")
        );
    }
}
