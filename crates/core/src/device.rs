//! Which compute device a run asks for, as data (`--device`, `[train] device`): the name only;
//! the binary turns it into a burn device, where the backend was compiled in.

use std::fmt;

use crate::error::ConfigError;

/// A compute device by name: `flex`, `wgpu[:N|:cpu]`, `vulkan[:N|:cpu]`, `cuda[:N]`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeviceSpec {
    /// burn's pure-Rust CPU backend (the default; the fused kernels run here).
    #[default]
    Flex,
    /// A GPU through wgpu (WGSL shaders; Vulkan, Metal or DX12 underneath).
    Wgpu(Adapter),
    /// A GPU through wgpu pinned to Vulkan (SPIR-V shaders).
    Vulkan(Adapter),
    /// An NVIDIA GPU through CUDA, by index.
    Cuda(usize),
}

/// Which wgpu adapter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Adapter {
    /// wgpu's choice (a high-power GPU first); in a data-parallel run, the GPU of this rank's
    /// index on its node.
    #[default]
    Default,
    /// The `N`-th discrete GPU.
    Discrete(usize),
    /// A software adapter (Mesa lavapipe, …).
    Cpu,
}

impl DeviceSpec {
    /// Parses `flex`, `wgpu`, `wgpu:N`, `wgpu:cpu`, `vulkan[:N|:cpu]`, `cuda`, `cuda:N`; `field`
    /// names the flag or config field in the error.
    pub fn parse(field: &str, text: &str) -> Result<Self, ConfigError> {
        let bad = |reason: &str| ConfigError::invalid(field, text, reason);
        let (kind, index) = match text.split_once(':') {
            Some((k, i)) => (k, Some(i)),
            None => (text, None),
        };
        let adapter = |index: Option<&str>| -> Result<Adapter, ConfigError> {
            match index {
                None => Ok(Adapter::Default),
                Some("cpu") => Ok(Adapter::Cpu),
                Some(i) => i
                    .parse()
                    .map(Adapter::Discrete)
                    .map_err(|_| bad("the adapter must be a GPU index or `cpu`")),
            }
        };
        match kind {
            "flex" if index.is_none() => Ok(Self::Flex),
            "wgpu" => Ok(Self::Wgpu(adapter(index)?)),
            "vulkan" => Ok(Self::Vulkan(adapter(index)?)),
            "cuda" => match index {
                None => Ok(Self::Cuda(0)),
                Some(i) => i
                    .parse()
                    .map(Self::Cuda)
                    .map_err(|_| bad("the CUDA device must be an index")),
            },
            _ => Err(bad(
                "expected flex, wgpu[:N|:cpu], vulkan[:N|:cpu] or cuda[:N]",
            )),
        }
    }

    /// Whether this is burn's Flex CPU backend.
    pub fn is_flex(&self) -> bool {
        matches!(self, Self::Flex)
    }

    /// The cargo feature that compiles this device's backend in (`None` for Flex, always built).
    pub fn feature(&self) -> Option<&'static str> {
        match self {
            Self::Flex => None,
            Self::Wgpu(_) => Some("wgpu"),
            Self::Vulkan(_) => Some("vulkan"),
            Self::Cuda(_) => Some("cuda"),
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let adapter = |a: &Adapter| match a {
            Adapter::Default => String::new(),
            Adapter::Discrete(i) => format!(":{i}"),
            Adapter::Cpu => ":cpu".to_string(),
        };
        match self {
            Self::Flex => write!(f, "flex"),
            Self::Wgpu(a) => write!(f, "wgpu{}", adapter(a)),
            Self::Vulkan(a) => write!(f, "vulkan{}", adapter(a)),
            Self::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_bad_ones_are_named() {
        for text in ["flex", "wgpu", "wgpu:1", "wgpu:cpu", "vulkan:0", "cuda:2"] {
            let spec = DeviceSpec::parse("--device", text).unwrap();
            assert_eq!(spec.to_string(), text);
        }
        assert_eq!(
            DeviceSpec::parse("--device", "cuda").unwrap(),
            DeviceSpec::Cuda(0)
        );
        for text in ["gpu", "wgpu:x", "flex:0", "cuda:cpu", ""] {
            let e = DeviceSpec::parse("train.device", text).unwrap_err();
            assert_eq!(e.field, "train.device", "{text}");
        }
        assert_eq!(DeviceSpec::Wgpu(Adapter::Cpu).feature(), Some("wgpu"));
        assert!(DeviceSpec::Flex.is_flex());
    }
}
