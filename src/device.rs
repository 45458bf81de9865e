//! The one place that picks a backend device.

use burn::tensor::Device;

/// The default compute device: burn's pure-Rust Flex CPU backend, or CUDA device 0 when
/// `cuda` is true (needs the `cuda` cargo feature).
pub fn default_device(cuda: bool) -> anyhow::Result<Device> {
    if cuda {
        #[cfg(feature = "cuda")]
        {
            return Ok(Device::cuda(0));
        }
        #[cfg(not(feature = "cuda"))]
        anyhow::bail!("`--cuda` needs a build with `--features cuda`");
    }
    Ok(Device::flex())
}
