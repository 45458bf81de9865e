//! Fused multi-step LIF / IF for the Flex CPU backend: one pass over `T` per neuron, forward and
//! backward, as a burn backend extension with a hand-written autodiff backward.
//!
//! Same maths as the reference path in [`super::Neuron`] (charge → fire → reset, strict `>`):
//!
//! ```text
//! h_t = decay · m_{t−1} + x_t          (IF: decay = 1; m_{−1} = 0)
//! v_t = h_t − θ,  s_t = [v_t > 0]
//! hard: m_t = h_t − h_t · s_t          soft: m_t = h_t − θ · s_t
//! ```
//!
//! Backward (`g` = the surrogate derivative at `v_t`, `gm_{T−1} = 0`):
//!
//! ```text
//! gh_t      = gs_t · g(v_t) + gm_t · ∂m_t/∂h_t
//!   hard: ∂m_t/∂h_t = (1 − s_t) − h_t · g(v_t)      soft: 1 − θ · g(v_t)
//!   (the `g` terms are dropped with detach_reset)
//! gx_t      = gh_t,     gm_{t−1} = decay · gh_t
//! ```
//!
//! Memory: the op keeps only its input `x` (an `Arc` to a buffer that usually exists anyway); the
//! membrane and the spikes are *recomputed* in backward (one multiply-add and one compare per
//! element, bit-identical to the forward pass) instead of being stored, so there is nothing per
//! timestep to store at all — neither the f32 intermediates of the reference path (`v`, clamps,
//! masks, the straight-through terms) nor compact spike bits.
//!
//! Files: this one (the public entry points), `op` (the backend extension: Flex, Autodiff and the
//! backward step), `kernel` (the block-parallel forward and backward on `[T, N]` slices), `rows`
//! (the per-timestep row loops they run). The surrogate derivative is
//! [`crate::surrogate::scalar`]'s, evaluated in f32.
//!
//! Layout: `[T, N]` contiguous (`N` = everything after the time axis). Neurons are processed in
//! blocks of [`BLOCK`] consecutive columns: the inner loop runs over contiguous neurons (auto-
//! vectorised), the outer over `t`, the membrane block stays in L1. Blocks run in parallel with
//! rayon when the tensor is large enough.
//!
//! PLIF (learnable `k`) is not fused: it stays on the reference path.
//!
//! Why a backend extension: in burn 0.22 the `#[backend_extension]` macro generates the
//! `Dispatch` routing from a `Tensor` to a concrete backend (`Flex`) and to `Autodiff<B, C>`; the
//! backward is written by hand with `burn::backend::autodiff::ops::Backward` (the pattern of
//! `burn-signal`'s FFT). Needs burn's `extension` feature.

use burn::backend::{DType, Dispatch, DispatchDevice};
use burn::tensor::Tensor;

use super::{NeuronConfig, NeuronKind, NeuronTrace, ResetMode};
use crate::surrogate::Surrogate;

pub mod kernel;
mod op;
mod rows;
#[cfg(test)]
mod tests;

pub use op::LifOps;

/// Neurons per block (columns of `[T, N]` processed together).
pub const BLOCK: usize = 1024;
/// Below this many elements (`T·N`) the kernel runs on the calling thread.
pub(crate) const PARALLEL_MIN: usize = 1 << 15;

/// The static description of a fused LIF/IF layer (everything but the data).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LifSpec {
    /// Membrane decay factor (1 for IF).
    pub decay: f32,
    /// Firing threshold.
    pub threshold: f32,
    /// Soft (subtract) instead of hard (to zero) reset.
    pub soft_reset: bool,
    /// Cut the gradient through the spike in the reset.
    pub detach_reset: bool,
    /// Surrogate derivative used in backward.
    pub surrogate: Surrogate,
}

impl LifSpec {
    /// The spec of a LIF/IF configuration; `None` for PLIF (not fused).
    pub fn from_config(config: &NeuronConfig) -> Option<Self> {
        let decay = match config.kind {
            NeuronKind::Lif => config.decay as f32,
            NeuronKind::If => 1.0,
            NeuronKind::Plif | NeuronKind::Relu => return None,
        };
        Some(Self {
            decay,
            threshold: config.threshold as f32,
            soft_reset: config.reset == ResetMode::Soft,
            detach_reset: config.detach_reset,
            surrogate: config.surrogate,
        })
    }
}

pub use crate::kernels::LifPath;

/// Whether the fused kernel can run `config` on `input` (LIF/IF, f32, Flex device with or
/// without autodiff, non-empty with a time axis).
pub fn supports<const D: usize>(config: &NeuronConfig, input: &Tensor<D>) -> bool {
    D >= 1
        && matches!(config.kind, NeuronKind::Lif | NeuronKind::If)
        && input.dtype() == DType::F32
        && input.shape().num_elements() > 0
        && matches!(
            input.device().inner().as_dispatch(),
            DispatchDevice::Flex(_)
        )
}

/// Fused spikes `[T, ...]` for `input` `[T, ...]` (differentiable on an autodiff device).
///
/// # Panics
/// If [`supports`] is false.
pub fn spikes<const D: usize>(config: &NeuronConfig, input: Tensor<D>) -> Tensor<D> {
    assert!(supports(config, &input), "fused LIF: unsupported input");
    let spec = LifSpec::from_config(config).expect("LIF/IF");
    Tensor::from_dispatch(<Dispatch as LifOps>::lif_forward(
        input.into_dispatch(),
        spec,
    ))
}

/// Fused spikes plus the membrane trace. Only the spikes carry a gradient; `h_pre_reset` and
/// `mem_final` are constants (use the reference `forward_trace` to differentiate them).
///
/// # Panics
/// If [`supports`] is false.
pub fn trace<const D: usize>(config: &NeuronConfig, input: Tensor<D>) -> NeuronTrace<D> {
    assert!(supports(config, &input), "fused LIF: unsupported input");
    let spec = LifSpec::from_config(config).expect("LIF/IF");
    let (s, h, m) = <Dispatch as LifOps>::lif_trace(input.into_dispatch(), spec);
    NeuronTrace {
        spikes: Tensor::from_dispatch(s),
        h_pre_reset: Tensor::from_dispatch(h),
        mem_final: Tensor::from_dispatch(m),
    }
}
