//! `tks-core`: the spiking-network core of `tks` — surrogate derivatives, neurons, layers with
//! their fused Flex CPU kernels, the models, the kernel policy that chooses between fused and
//! reference paths, and monitors that count spikes and synaptic operations.
//!
//! No command-line, progress, plotting or environment reads here: everything a kernel needs is
//! passed to it ([`kernels::KernelPolicy`]). Layout is time-major, `[T, B, ...]`.

pub mod collective;
pub mod device;
pub mod error;
pub mod kernels;
pub mod layer;
pub mod model;
pub mod monitor;
pub mod neuron;
pub mod params;
pub mod surrogate;
