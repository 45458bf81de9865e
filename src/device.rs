//! The one place that picks a backend device: `--device` (or `[train] device`) to a burn
//! device, where the backend was compiled in, and the kernel policy it can run.

use burn::tensor::Device;
use clap::Args;

use crate::kernels::KernelPolicy;
pub use tks_core::device::{Adapter, DeviceSpec};

/// `--device`, shared by every subcommand that computes.
#[derive(Args, Clone, Debug, Default)]
pub struct DeviceArgs {
    /// Compute device: `flex` (CPU, default), `wgpu[:N|:cpu]` (a GPU through wgpu; `:cpu` =
    /// a software adapter such as lavapipe), `vulkan[:N|:cpu]` (wgpu pinned to Vulkan),
    /// `cuda[:N]`. The GPU ones need a build with `--features wgpu`, `vulkan` or `cuda`.
    #[arg(long, value_name = "DEVICE")]
    pub device: Option<String>,
    /// Old spelling of `--device cuda:0`.
    #[arg(long, hide = true, conflicts_with = "device")]
    pub cuda: bool,
}

impl DeviceArgs {
    /// The device asked for: `--device`, else `--cuda`, else `configured` (`[train] device`),
    /// else Flex.
    pub fn spec(&self, configured: Option<&str>) -> anyhow::Result<DeviceSpec> {
        Ok(match (&self.device, self.cuda, configured) {
            (Some(d), _, _) => DeviceSpec::parse("--device", d)?,
            (None, true, _) => DeviceSpec::Cuda(0),
            (None, false, Some(d)) => DeviceSpec::parse("train.device", d)?,
            (None, false, None) => DeviceSpec::Flex,
        })
    }

    /// [`DeviceArgs::spec`] as a burn device ([`device`]).
    pub fn resolve(&self, configured: Option<&str>) -> anyhow::Result<Device> {
        device(self.spec(configured)?, 0)
    }
}

/// The burn device of `spec`; `local_rank` picks the GPU of a data-parallel rank when `spec`
/// leaves the adapter to the default. An error names the flag value and the cargo feature when
/// the backend is not in this build.
pub fn device(spec: DeviceSpec, local_rank: usize) -> anyhow::Result<Device> {
    let missing = |feature: &str| {
        anyhow::anyhow!(
            "device `{spec}` needs a build with `--features {feature}` (this binary has {})",
            compiled_devices()
        )
    };
    match spec {
        DeviceSpec::Flex => Ok(Device::flex()),
        DeviceSpec::Wgpu(adapter) => {
            #[cfg(feature = "wgpu")]
            {
                Ok(Device::wgpu(wgpu_kind(adapter, local_rank)))
            }
            #[cfg(not(feature = "wgpu"))]
            {
                let _ = (adapter, local_rank);
                Err(missing("wgpu"))
            }
        }
        DeviceSpec::Vulkan(adapter) => {
            #[cfg(feature = "vulkan")]
            {
                Ok(Device::vulkan(wgpu_kind(adapter, local_rank)))
            }
            #[cfg(not(feature = "vulkan"))]
            {
                let _ = (adapter, local_rank);
                Err(missing("vulkan"))
            }
        }
        DeviceSpec::Cuda(index) => {
            #[cfg(feature = "cuda")]
            {
                Ok(Device::cuda(index))
            }
            #[cfg(not(feature = "cuda"))]
            {
                let _ = index;
                Err(missing("cuda"))
            }
        }
    }
}

#[cfg(feature = "wgpu")]
fn wgpu_kind(adapter: Adapter, local_rank: usize) -> burn::tensor::DeviceKind {
    use burn::tensor::DeviceKind;
    match adapter {
        Adapter::Default if local_rank == 0 => DeviceKind::DefaultDevice,
        Adapter::Default => DeviceKind::DiscreteGpu(local_rank),
        Adapter::Discrete(i) => DeviceKind::DiscreteGpu(i),
        Adapter::Cpu => DeviceKind::Cpu,
    }
}

/// The devices this binary can run on, for error messages: `flex, wgpu`.
pub fn compiled_devices() -> String {
    let mut names = vec!["flex"];
    if cfg!(feature = "wgpu") {
        names.push("wgpu");
    }
    if cfg!(feature = "vulkan") {
        names.push("vulkan");
    }
    if cfg!(feature = "cuda") {
        names.push("cuda");
    }
    names.join(", ")
}

/// `policy` as it runs on `device` (the fused kernels are Flex's: elsewhere the reference
/// path), saying so once on stderr when that changes it.
pub fn kernels_for(policy: KernelPolicy, device: &Device, spec: DeviceSpec) -> KernelPolicy {
    let (policy, changed) = policy.for_device(device);
    if changed {
        eprintln!(
            "tks: device `{spec}`: the fused kernels are Flex's; running the reference layers and neurons ({})",
            policy.summary()
        );
    }
    policy
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backend_left_out_of_the_build_is_a_clear_error() {
        let args = DeviceArgs {
            device: Some("cuda:1".into()),
            cuda: false,
        };
        if !cfg!(feature = "cuda") {
            let e = args.resolve(None).unwrap_err().to_string();
            assert!(e.contains("cuda:1") && e.contains("--features cuda"), "{e}");
        }
        let args = DeviceArgs::default();
        assert_eq!(
            args.spec(Some("wgpu:cpu")).unwrap(),
            DeviceSpec::Wgpu(Adapter::Cpu)
        );
        assert_eq!(args.spec(None).unwrap(), DeviceSpec::Flex);
        let e = args.spec(Some("tpu")).unwrap_err().to_string();
        assert!(e.contains("train.device"), "{e}");
    }
}
