//! Spiking network models. Each takes frames `[T, B, C, H, W]` and returns per-timestep logits
//! `[T, B, classes]` (the "sub-model" outputs whose mean is the prediction), and can expose the
//! output of an intermediate stage for objectives that need it (TSSD, BKD).

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::ConfigError;
use crate::kernels::{KernelPolicy, SetKernels};
use crate::neuron::NeuronConfig;

mod dim;
mod fit;
pub use dim::{Dim, Dims};

/// A channel count `c` scaled by the width multiplier: `max(1, round(c·width))`.
pub(crate) fn scaled(c: usize, width: f64) -> usize {
    ((c as f64 * width).round() as usize).max(1)
}

/// Checks `model.width` (finite, > 0, at most 64).
pub(crate) fn check_width(width: f64) -> Result<(), ConfigError> {
    if width.is_finite() && width > 0.0 && width <= 64.0 {
        Ok(())
    } else {
        Err(ConfigError::invalid(
            "model.width",
            width,
            "must be finite and within (0, 64]",
        ))
    }
}

/// Checks `model.num_classes` (at least 2; `auto` is checked once resolved).
pub(crate) fn check_classes(num_classes: Dim) -> Result<(), ConfigError> {
    match num_classes.value() {
        Some(n) if n < 2 => Err(ConfigError::invalid(
            "model.num_classes",
            n,
            "must be at least 2",
        )),
        _ => Ok(()),
    }
}

/// Checks `model.in_channels` (at least 1; `auto` is checked once resolved).
pub(crate) fn check_in_channels(in_channels: Dim) -> Result<(), ConfigError> {
    match in_channels.value() {
        Some(0) => Err(ConfigError::invalid(
            "model.in_channels",
            0,
            "must be at least 1",
        )),
        _ => Ok(()),
    }
}

/// `[in_channels, input_size, num_classes]` as numbers, or an error naming the first one still
/// `auto`.
pub(crate) fn resolved(
    in_channels: Dim,
    input_size: Dim,
    num_classes: Dim,
) -> Result<[usize; 3], ConfigError> {
    Ok([
        in_channels.get("model.in_channels")?,
        input_size.get("model.input_size")?,
        num_classes.get("model.num_classes")?,
    ])
}

/// Global average pool per timestep: `[T, B, C, H, W]` → `[T, B, C]`.
pub fn global_avg_pool(x: Tensor<5>) -> Tensor<3> {
    let [t, b, c, _, _] = x.dims();
    x.mean_dims(&[3, 4]).reshape([t, b, c])
}

/// What a forward pass returns.
#[derive(Debug, Clone)]
pub struct SnnOutput {
    /// Per-timestep logits `[T, B, classes]`.
    pub logits: Tensor<3>,
    /// Output of the intermediate stage `[T, B, C, H, W]`, when asked for.
    pub stage: Option<Tensor<5>>,
}

/// The configuration side of an architecture: what the `[model]` table describes.
///
/// Object-safe, so [`ModelConfig`] can hand out `&dyn ArchitectureInfo` for any architecture.
pub trait ArchitectureInfo {
    /// Checks the configuration without building the model (names the first bad field).
    fn validate(&self) -> Result<(), ConfigError>;
    /// Number of output classes (0 while `auto`).
    fn num_classes(&self) -> usize;
    /// Expected input `[C, H, W]` of one frame (0 for a dimension still `auto`).
    fn input_shape(&self) -> [usize; 3];
    /// The data-dependent dimensions, each a number or `auto`.
    fn dims(&self) -> Dims;
    /// Sets the data-dependent dimensions.
    fn set_dims(&mut self, dims: Dims);
    /// Scales the network's channels by `width` (`--width`; 1 = the paper's network).
    fn set_width(&mut self, width: f64);
    /// The spiking neuron of every layer (for flag overrides and the ANN mode).
    fn neuron_mut(&mut self) -> &mut NeuronConfig;
}

/// An architecture's configuration, which builds its network.
///
/// `in_channels`, `input_size` and `num_classes` are [`Dim`]s: `auto` (the default of a `[model]`
/// table that leaves them out) until [`ModelConfig::resolve`] sets them from the data.
pub trait Architecture: ArchitectureInfo {
    /// The network it builds.
    type Net: Network;
    /// Builds the network, validating the configuration first.
    fn build(&self, device: &Device) -> Result<Self::Net, ConfigError>;
}

/// A spiking network as a trunk (frames → the input of the head) and a head (→ logits). The
/// forward passes every objective and analysis uses are written once, here.
pub trait Network: SetKernels {
    /// Frames `[T, B, C, H, W]` → the head's input `[T, B, F]`, plus the output of the
    /// intermediate stage when `with_stage` (for TSSD and BKD).
    fn trunk(&self, x: Tensor<5>, with_stage: bool) -> (Tensor<3>, Option<Tensor<5>>);

    /// The head's input `[T, B, F]` → logits `[T, B, classes]` and the penultimate features
    /// (the last linear layer's input).
    fn head(&self, x: Tensor<3>) -> (Tensor<3>, Tensor<3>);

    /// Logits plus (when `with_stage`) the intermediate stage's output.
    fn forward_output(&self, x: Tensor<5>, with_stage: bool) -> SnnOutput {
        let (features, stage) = self.trunk(x, with_stage);
        SnnOutput {
            logits: self.head(features).0,
            stage,
        }
    }

    /// Per-timestep logits `[T, B, classes]` and penultimate features `[T, B, F]`.
    fn forward_features(&self, x: Tensor<5>) -> (Tensor<3>, Tensor<3>) {
        self.head(self.trunk(x, false).0)
    }
}

/// [`ArchitectureInfo`] and [`Architecture`] for a configuration with the usual fields
/// (`num_classes`, `in_channels`, a square `input_size` — all [`Dim`]s — and `neuron`), an
/// inherent `validate`, an inherent `set_width` and an inherent `init` that builds `Net`: `square_input_architecture!(VggSnnConfig => VggSnn);`.
macro_rules! square_input_architecture {
    ($config:ty => $net:ty) => {
        impl $crate::model::ArchitectureInfo for $config {
            fn validate(&self) -> Result<(), $crate::error::ConfigError> {
                Self::validate(self)
            }

            fn num_classes(&self) -> usize {
                self.num_classes.or_zero()
            }

            fn input_shape(&self) -> [usize; 3] {
                let size = self.input_size.or_zero();
                [self.in_channels.or_zero(), size, size]
            }

            fn dims(&self) -> $crate::model::Dims {
                $crate::model::Dims {
                    in_channels: self.in_channels,
                    input_size: self.input_size,
                    num_classes: self.num_classes,
                }
            }

            fn set_dims(&mut self, dims: $crate::model::Dims) {
                self.in_channels = dims.in_channels;
                self.input_size = dims.input_size;
                self.num_classes = dims.num_classes;
            }

            fn set_width(&mut self, width: f64) {
                Self::set_width(self, width)
            }

            fn neuron_mut(&mut self) -> &mut $crate::neuron::NeuronConfig {
                &mut self.neuron
            }
        }

        impl $crate::model::Architecture for $config {
            type Net = $net;

            fn build(
                &self,
                device: &burn::tensor::Device,
            ) -> Result<$net, $crate::error::ConfigError> {
                self.init(device)
            }
        }
    };
}

/// The model registry: one line per architecture,
/// `file: Variant(Config => Network) = "arch tag";`. It declares the module `file` (re-exporting
/// its public items) and generates [`ModelConfig`] (the `[model]` table, tagged by `arch`),
/// [`Model`] and their dispatch.
macro_rules! models {
    ($($(#[$doc:meta])* $module:ident: $variant:ident($config:ty => $net:ty) = $tag:literal;)+) => {
        $(mod $module; pub use $module::*;)+

        /// Configuration of any model (the `[model]` table of a recipe, tagged by `arch`).
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "arch")]
        pub enum ModelConfig {
            $($(#[$doc])* #[serde(rename = $tag)] $variant($config),)+
        }

        /// Any model built from a [`ModelConfig`].
        #[derive(Module, Debug)]
        #[allow(
            clippy::large_enum_variant,
            reason = "one model per run; burn modules cannot be boxed"
        )]
        pub enum Model {
            $($(#[$doc])* $variant($net),)+
        }

        impl ModelConfig {
            /// Every architecture tag, in registry order.
            pub const ARCHS: &'static [&'static str] = &[$($tag),+];

            /// Builds the model (default kernel policy), validating the configuration first.
            pub fn init(&self, device: &Device) -> Result<Model, ConfigError> {
                Ok(match self {
                    $(ModelConfig::$variant(c) => Model::$variant(c.build(device)?),)+
                })
            }

            /// The architecture's tag (`small_cnn`, `vgg_snn`, …).
            pub fn arch(&self) -> &'static str {
                match self {
                    $(ModelConfig::$variant(_) => $tag,)+
                }
            }

            /// The configuration as its architecture.
            pub fn info(&self) -> &dyn ArchitectureInfo {
                match self {
                    $(ModelConfig::$variant(c) => c,)+
                }
            }

            /// [`Self::info`], mutable.
            pub fn info_mut(&mut self) -> &mut dyn ArchitectureInfo {
                match self {
                    $(ModelConfig::$variant(c) => c,)+
                }
            }
        }

        impl Model {
            /// The network behind the enum.
            pub fn net(&self) -> &dyn Network {
                match self {
                    $(Model::$variant(m) => m,)+
                }
            }

            /// [`Self::net`], mutable.
            pub fn net_mut(&mut self) -> &mut dyn Network {
                match self {
                    $(Model::$variant(m) => m,)+
                }
            }
        }
    };
}

models! {
    /// Small conv net (two conv-BN-spike blocks).
    small_cnn: SmallCnn(SmallCnnConfig => SmallCnn) = "small_cnn";
    /// TET/TKS VGG-SNN.
    vgg_snn: VggSnn(VggSnnConfig => VggSnn) = "vgg_snn";
    /// ResNet-19 with tdBN.
    resnet19: ResNet19(ResNet19Config => ResNet19) = "resnet19";
    /// SEW-ResNet-18/19/34/50 (`depth = …`).
    sew_resnet: SewResNet(SewResNetConfig => SewResNet) = "sew_resnet";
}

impl ModelConfig {
    /// Builds the model with the kernel policy `kernels` on every layer and neuron.
    pub fn init_with(&self, device: &Device, kernels: &KernelPolicy) -> Result<Model, ConfigError> {
        Ok(self.init(device)?.with_kernels(kernels))
    }

    /// Checks the configuration without building the model (names the first bad field).
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.info().validate()
    }

    /// Number of output classes.
    pub fn num_classes(&self) -> usize {
        self.info().num_classes()
    }

    /// Expected input `[C, H, W]` of one frame.
    pub fn input_shape(&self) -> [usize; 3] {
        self.info().input_shape()
    }

    /// The neuron configuration of every layer.
    pub fn neuron_mut(&mut self) -> &mut NeuronConfig {
        self.info_mut().neuron_mut()
    }
}

impl SetKernels for Model {
    fn set_kernels(&mut self, policy: &KernelPolicy) {
        self.net_mut().set_kernels(policy);
    }
}

impl Model {
    /// Per-timestep logits `[T, B, classes]` for frames `[T, B, C, H, W]`.
    pub fn forward(&self, x: Tensor<5>) -> Tensor<3> {
        self.forward_output(x, false).logits
    }

    /// Logits plus (when `with_stage`) the intermediate stage's output.
    pub fn forward_output(&self, x: Tensor<5>, with_stage: bool) -> SnnOutput {
        self.net().forward_output(x, with_stage)
    }

    /// Per-timestep logits `[T, B, classes]` and penultimate features `[T, B, F]`: the input
    /// of the last linear layer (the small CNN's and VGG-SNN's flattened pooled spikes,
    /// SEW-ResNet-18/34/50's globally pooled features, the hidden spikes of ResNet-19's and
    /// SEW-ResNet-19's FC-SN-FC head).
    pub fn forward_features(&self, x: Tensor<5>) -> (Tensor<3>, Tensor<3>) {
        self.net().forward_features(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tiny instances of every architecture with their input size and, when run, the number
    /// of synaptic layers (convs + FCs) and spiking layers the energy recorder sees.
    fn tiny_models() -> Vec<(&'static str, ModelConfig, usize, usize)> {
        let neuron = crate::neuron::NeuronConfig {
            threshold: 0.5,
            ..Default::default()
        };
        let sew = |depth| {
            ModelConfig::SewResNet(SewResNetConfig {
                depth,
                width: 0.125,
                input_size: 8.into(),
                cifar_stem: true,
                num_classes: 10.into(),
                neuron,
                ..Default::default()
            })
        };
        vec![
            // 2 conv blocks + classifier; 2 spiking layers.
            (
                "small_cnn",
                ModelConfig::SmallCnn(SmallCnnConfig {
                    input_size: 8.into(),
                    channels: [4, 8],
                    neuron,
                    ..Default::default()
                }),
                3,
                2,
            ),
            // 8 conv blocks + classifier.
            (
                "vgg_snn",
                ModelConfig::VggSnn(VggSnnConfig {
                    width: 0.125,
                    input_size: 16.into(),
                    neuron,
                    ..Default::default()
                }),
                9,
                8,
            ),
            // Stem, 8 blocks × 2 convs, 2 shortcut convs, FC-SN-FC; neurons: stem, 2 per
            // block, head.
            (
                "resnet19",
                ModelConfig::ResNet19(ResNet19Config {
                    width: 0.125,
                    input_size: 8.into(),
                    neuron,
                    ..Default::default()
                }),
                21,
                18,
            ),
            // SEW: every conv has its SN (stem, 16 block convs, 2 downsamples) + the head's.
            ("sew_resnet19", sew(19), 21, 20),
            // SEW-18: stem, 8 blocks × 2, 3 downsamples, one FC.
            ("sew_resnet18", sew(18), 21, 20),
        ]
    }

    #[test]
    fn every_architecture_has_penultimate_features_and_records_every_layer() {
        let device = Device::flex();
        device.seed(4);
        for (name, cfg, synaptic, spiking) in tiny_models() {
            let model = cfg.init(&device).unwrap();
            let [c, h, w] = cfg.input_shape();
            let x = Tensor::<5>::random(
                [2, 3, c, h, w],
                burn::tensor::Distribution::Uniform(0.0, 2.0),
                &device,
            );
            let want = model.forward(x.clone());
            let rec = crate::monitor::Recording::start();
            let (logits, features) = model.forward_features(x);
            let (layers, neurons) = rec.finish();
            assert_eq!(
                crate::monitor::values(logits),
                crate::monitor::values(want),
                "{name}"
            );
            // The features are the last linear layer's input.
            let fan_in = |l: &burn::nn::Linear| l.weight.val().dims()[0];
            let last_in = match &model {
                Model::SmallCnn(m) => fan_in(&m.classifier),
                Model::VggSnn(m) => fan_in(&m.classifier),
                Model::ResNet19(m) => fan_in(&m.head.fc2),
                Model::SewResNet(m) => match &m.head {
                    SewHead::Linear(fc) => fan_in(fc),
                    SewHead::Mlp(h) => fan_in(&h.fc2),
                },
            };
            assert_eq!(features.dims(), [2, 3, last_in], "{name}");
            assert_eq!(layers.len(), synaptic, "{name}: {layers:?}");
            assert_eq!(neurons.len(), spiking, "{name}: {neurons:?}");
            let last = layers.last().unwrap();
            assert!(
                last.name.starts_with("fc") && last.name.ends_with("→10"),
                "{name}: {}",
                last.name
            );
            // The classifier's input elements are exactly the features'.
            assert_eq!(last.input_elements, (2 * 3 * last_in) as f64, "{name}");
            assert_eq!(last.dense_macs, (2 * 3 * last_in * 10) as f64, "{name}");
        }
    }

    #[test]
    fn arch_tags_parse_and_bad_values_name_the_field() {
        let parse = |s: &str| toml::from_str::<ModelConfig>(s).unwrap();
        // dimensions left out are `auto` (from the data); set ones are kept
        let vgg = parse("arch = \"vgg_snn\"\nwidth = 0.25\n");
        assert_eq!(vgg.dims(), Dims::default());
        let r19 = parse("arch = \"resnet19\"\nnum_classes = 100\ninput_size = \"auto\"\n");
        assert_eq!(r19.dims().num_classes, Dim::Fixed(100));
        assert!(r19.dims().input_size.is_auto() && r19.dims().in_channels.is_auto());
        let sew = parse("arch = \"sew_resnet\"\ndepth = 34\ncifar_stem = true\ninput_size = 32\n");
        assert!(matches!(&sew, ModelConfig::SewResNet(c) if c.depth == 34 && c.cifar_stem));
        for (text, field, value) in [
            ("arch = \"sew_resnet\"\ndepth = 20\n", "model.depth", "20"),
            ("arch = \"resnet19\"\nwidth = 0\n", "model.width", "0"),
            (
                "arch = \"vgg_snn\"\ninput_size = 50\n",
                "model.input_size",
                "50",
            ),
        ] {
            let e = parse(text).validate().unwrap_err().to_string();
            assert!(e.contains(field) && e.contains(value), "{e}");
        }
    }
}
