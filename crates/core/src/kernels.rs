//! The kernel policy: which implementation each layer and neuron runs, as data.
//!
//! A [`KernelPolicy`] is part of the run configuration (`[kernels]` in the TOML, recorded in
//! every run's `config.toml`) and is handed to the model when it is built
//! ([`crate::model::ModelConfig::init_with`]) or afterwards ([`SetKernels::set_kernels`]);
//! every layer and neuron keeps its own copy and passes it to the kernels it calls. There is no
//! process-wide switch: two models with different policies run side by side in one process.
//! The binary alone reads the `TKS_*` environment variables, once, as overrides.

use serde::{Deserialize, Serialize};

use crate::collective::BnSync;
use crate::error::ConfigError;

/// How the fused convolution computes its forward and weight gradient.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConvMode {
    /// im2col + gemm always.
    Dense,
    /// Spike-aware scatter/gather always (exact for any values, fast when mostly zeros).
    Sparse,
    /// Sparse when the input's fraction of non-zeros is at most the pass's threshold
    /// ([`KernelPolicy::max_density`]), measured at every call.
    #[default]
    Auto,
}

impl ConvMode {
    /// Every mode, in the order `dense`, `sparse`, `auto`.
    pub const ALL: [ConvMode; 3] = [ConvMode::Dense, ConvMode::Sparse, ConvMode::Auto];

    /// `dense`, `sparse` or `auto`.
    pub fn name(self) -> &'static str {
        match self {
            ConvMode::Dense => "dense",
            ConvMode::Sparse => "sparse",
            ConvMode::Auto => "auto",
        }
    }

    /// The mode called `name` ([`ConvMode::name`]), if any.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }
}

/// The computation an [`ConvMode::Auto`] density threshold is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SparsePass {
    /// The forward (and inference) convolution.
    Forward,
    /// The weight gradient of the backward (the input gradient is always dense).
    WeightGradient,
}

impl SparsePass {
    /// The environment variable the binary reads as an override of this pass's threshold.
    pub fn env_var(self) -> &'static str {
        match self {
            SparsePass::Forward => "TKS_SPARSE_MAX_DENSITY",
            SparsePass::WeightGradient => "TKS_SPARSE_MAX_DENSITY_DW",
        }
    }

    /// The default break-even density, measured with `tks bench --conv-micro` and per layer
    /// in whole VGG-SNN training steps: the forward's sparse path (the output-stationary gather
    /// for ≥ 64 binary channels, the scatter otherwise) still beat the dense one on every
    /// layer at the 45–46 % non-zeros of the average-pooled inputs (by 3–25 %, fastest of 8
    /// steps); the weight gradient's dense alternative, an accumulating gemm per sample, is
    /// slower than the forward's.
    pub fn default_max_density(self) -> f32 {
        match self {
            SparsePass::Forward => 0.5,
            SparsePass::WeightGradient => 0.5,
        }
    }
}

/// Which implementation the pooling, BatchNorm and convolution layers use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LayerPath {
    /// burn's `avg_pool2d`, `BatchNorm` and `conv2d` (the reference).
    Reference,
    /// The fused Flex kernels where supported; the reference otherwise.
    #[default]
    Fused,
}

/// Which implementation the LIF/IF neurons use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LifPath {
    /// Plain burn tensor ops, one op chain per timestep (the reference).
    Reference,
    /// The fused kernel on Flex for LIF/IF with f32 inputs; the reference otherwise.
    #[default]
    Fused,
}

macro_rules! path_names {
    ($($t:ty),*) => {$(
        impl $t {
            /// `reference` or `fused`.
            pub fn name(self) -> &'static str {
                match self {
                    Self::Reference => "reference",
                    Self::Fused => "fused",
                }
            }

            /// The path called `name` (`ref` is accepted for `reference`), if any.
            pub fn from_name(name: &str) -> Option<Self> {
                match name {
                    "reference" | "ref" => Some(Self::Reference),
                    "fused" => Some(Self::Fused),
                    _ => None,
                }
            }
        }
    )*};
}
path_names!(LayerPath, LifPath);

/// Every kernel choice of a model, passed down explicitly (`[kernels]` in the run config).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KernelPolicy {
    /// Pooling, BatchNorm and convolution: `fused` (default) or `reference`.
    pub layers: LayerPath,
    /// LIF/IF neurons: `fused` (default) or `reference`.
    pub neurons: LifPath,
    /// The fused convolution's path: `auto` (default), `dense` or `sparse`.
    pub conv_mode: ConvMode,
    /// In `auto`, the largest input density for which the forward takes the sparse path.
    pub sparse_max_density: f32,
    /// In `auto`, the largest input density for which the weight gradient takes the sparse path.
    pub sparse_max_density_dw: f32,
    /// Keep binary conv inputs for backward as one byte per value instead of f32: ≈ 7 % off
    /// peak training memory (VGG-SNN T=8) for a pass over the spikes per conv (≈ 5 % of a step).
    pub pack_spikes: bool,
    /// In training, conv → BatchNorm → LIF/IF blocks keep no conv output for the backward,
    /// which convolves the kept input again ([`crate::layer::fused_conv_bn_lif`]): with
    /// `pack_spikes`, VGG-SNN w0.25 T=16 peak training memory ≈ 457 → 343 MiB for ≈ +40–50 %
    /// time per step (one more forward convolution per block). Gradients are bit-identical.
    pub recompute_conv: bool,
    /// In a data-parallel run, the collective BatchNorm layers take their training statistics
    /// over (every rank's samples, [`crate::layer::sync_bn`]); `None`: this process's batch
    /// alone. Set by the training loop, never serialised.
    #[serde(skip)]
    pub bn_sync: Option<BnSync>,
}

impl Default for KernelPolicy {
    fn default() -> Self {
        Self {
            layers: LayerPath::Fused,
            neurons: LifPath::Fused,
            conv_mode: ConvMode::Auto,
            sparse_max_density: SparsePass::Forward.default_max_density(),
            sparse_max_density_dw: SparsePass::WeightGradient.default_max_density(),
            pack_spikes: false,
            recompute_conv: false,
            bn_sync: None,
        }
    }
}

impl KernelPolicy {
    /// Plain burn ops everywhere (the reference every fused kernel is tested against; also what
    /// runs on devices other than Flex).
    pub fn reference() -> Self {
        Self {
            layers: LayerPath::Reference,
            neurons: LifPath::Reference,
            ..Self::default()
        }
    }

    /// Whether the fused Flex kernels can run on `device`; elsewhere (wgpu, CUDA, …) the
    /// reference path is the only one.
    pub fn fused_kernels_run_on(device: &burn::tensor::Device) -> bool {
        matches!(
            device.clone().inner().as_dispatch(),
            burn::backend::DispatchDevice::Flex(_)
        )
    }

    /// This policy as it runs on `device`: unchanged on Flex; with the reference layers and
    /// neurons on any other device (the fused kernels are Flex's). The second value says whether
    /// anything was changed, for the caller to report once.
    pub fn for_device(self, device: &burn::tensor::Device) -> (Self, bool) {
        let on_flex = Self::fused_kernels_run_on(device);
        let fused = self.layers == LayerPath::Fused || self.neurons == LifPath::Fused;
        if on_flex || !fused {
            return (self, false);
        }
        (
            Self {
                layers: LayerPath::Reference,
                neurons: LifPath::Reference,
                ..self
            },
            true,
        )
    }

    /// This policy with the BatchNorm statistics synchronised over `sync` (`None`: local).
    pub fn with_bn_sync(self, sync: Option<BnSync>) -> Self {
        Self {
            bn_sync: sync,
            ..self
        }
    }

    /// This policy with the convolution mode `mode`.
    pub fn with_conv_mode(self, mode: ConvMode) -> Self {
        Self {
            conv_mode: mode,
            ..self
        }
    }

    /// The [`ConvMode::Auto`] threshold of `pass`.
    pub fn max_density(&self, pass: SparsePass) -> f32 {
        match pass {
            SparsePass::Forward => self.sparse_max_density,
            SparsePass::WeightGradient => self.sparse_max_density_dw,
        }
    }

    /// This policy with the threshold of `pass` set to `density` (clamped to `[0, 1]`).
    pub fn with_max_density(mut self, pass: SparsePass, density: f32) -> Self {
        let d = density.clamp(0.0, 1.0);
        match pass {
            SparsePass::Forward => self.sparse_max_density = d,
            SparsePass::WeightGradient => self.sparse_max_density_dw = d,
        }
        self
    }

    /// Whether the convolution takes the sparse path of `pass` for an input of `density`.
    pub fn choose_sparse_at(&self, density: f32, pass: SparsePass) -> bool {
        match self.conv_mode {
            ConvMode::Dense => false,
            ConvMode::Sparse => true,
            ConvMode::Auto => density <= self.max_density(pass),
        }
    }

    /// Checks the thresholds (names `kernels.<field>` and the value).
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (field, v) in [
            ("kernels.sparse_max_density", self.sparse_max_density),
            ("kernels.sparse_max_density_dw", self.sparse_max_density_dw),
        ] {
            crate::error::check_range(field, v as f64, 0.0, 1.0)?;
        }
        Ok(())
    }

    /// One line for logs and run records: `layers=fused neurons=fused conv=auto(0.5/0.5)`.
    pub fn summary(&self) -> String {
        format!(
            "layers={} neurons={} conv={}({}/{}){}{}{}",
            self.layers.name(),
            self.neurons.name(),
            self.conv_mode.name(),
            self.sparse_max_density,
            self.sparse_max_density_dw,
            if self.pack_spikes { " pack_spikes" } else { "" },
            if self.recompute_conv {
                " recompute_conv"
            } else {
                ""
            },
            match self.bn_sync {
                Some(s) => format!(" sync_bn({} ranks)", s.collective().size()),
                None => String::new(),
            }
        )
    }
}

/// A module that holds kernel choices: layers, neurons, blocks and whole models. Implemented
/// by walking the module's own fields, so setting a policy on a model reaches every kernel.
pub trait SetKernels {
    /// Uses `policy` from now on (parameters are untouched).
    fn set_kernels(&mut self, policy: &KernelPolicy);

    /// `self` with `policy` (builder style).
    fn with_kernels(mut self, policy: &KernelPolicy) -> Self
    where
        Self: Sized,
    {
        self.set_kernels(policy);
        self
    }
}

impl<T: SetKernels> SetKernels for Option<T> {
    fn set_kernels(&mut self, policy: &KernelPolicy) {
        if let Some(m) = self {
            m.set_kernels(policy);
        }
    }
}

impl<T: SetKernels> SetKernels for Vec<T> {
    fn set_kernels(&mut self, policy: &KernelPolicy) {
        for m in self {
            m.set_kernels(policy);
        }
    }
}

/// Implements [`SetKernels`] for a module by setting the policy on each of the named fields
/// (themselves [`SetKernels`]): `set_kernels_fields!(VggStage: conv_a, conv_b, pool);`.
#[macro_export]
macro_rules! set_kernels_fields {
    ($t:ty: $($field:ident),+ $(,)?) => {
        impl $crate::kernels::SetKernels for $t {
            fn set_kernels(&mut self, policy: &$crate::kernels::KernelPolicy) {
                $($crate::kernels::SetKernels::set_kernels(&mut self.$field, policy);)+
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_round_trip_and_field_names() {
        let p = KernelPolicy {
            conv_mode: ConvMode::Sparse,
            layers: LayerPath::Reference,
            pack_spikes: true,
            ..KernelPolicy::default()
        };
        let text = toml::to_string(&p).unwrap();
        assert!(text.contains("conv_mode = \"sparse\""), "{text}");
        assert_eq!(toml::from_str::<KernelPolicy>(&text).unwrap(), p);
        assert!(toml::from_str::<KernelPolicy>("conv = \"dense\"").is_err());
        let bad = KernelPolicy::default().with_max_density(SparsePass::Forward, 0.5);
        assert_eq!(bad.max_density(SparsePass::Forward), 0.5);
        let e = KernelPolicy {
            sparse_max_density_dw: f32::NAN,
            ..KernelPolicy::default()
        }
        .validate()
        .unwrap_err();
        assert_eq!(e.field, "kernels.sparse_max_density_dw");
    }

    #[test]
    fn choice_follows_the_mode() {
        let p = KernelPolicy::default();
        assert!(p.choose_sparse_at(0.5, SparsePass::Forward));
        assert!(!p.choose_sparse_at(0.51, SparsePass::Forward));
        assert!(p.choose_sparse_at(0.5, SparsePass::WeightGradient));
        assert!(
            !p.with_conv_mode(ConvMode::Dense)
                .choose_sparse_at(0.0, SparsePass::Forward)
        );
        assert!(
            p.with_conv_mode(ConvMode::Sparse)
                .choose_sparse_at(1.0, SparsePass::Forward)
        );
    }
}
