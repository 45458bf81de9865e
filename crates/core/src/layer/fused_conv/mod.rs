//! 2-D convolution for the Flex CPU backend with its own backward, and a **spike-aware** path
//! that does work only where the input is non-zero — a burn backend extension with a
//! hand-written autodiff backward.
//!
//! Shapes: input `x` `[N, C_in, H, W]` (in the SNN layers `N = T·B`), weight `w`
//! `[C_out, C_in, k_h, k_w]`, bias `[C_out]`, square stride `s` and symmetric padding `p`,
//! output `[N, C_out, H', W']` with `H' = (H + 2p − k_h)/s + 1`. `K = C_in·k_h·k_w`,
//! `P = H'·W'`.
//!
//! ```text
//! dense   forward   out[n] = W [C_out, K] · im2col(x[n]) [K, P] + b          (gemm per sample)
//!         dW        dW    += g[n] [C_out, P] · im2col(x[n])ᵀ [P, K]           (gemm, accumulated)
//! sparse  forward   for every non-zero x[n, c, i, j] = v and tap (u, t) hitting output o:
//!                       out_t[o, :] += v · Wᵀ[(c, u, t), :]                   (C_out-wide axpy)
//!         dW        dWᵀ[(c, u, t), :] += v · g_t[o, :]
//! both    dx        dx[n] = col2im(Wᵀ [K, C_out] · g[n] [C_out, P])            (gemm; g is dense)
//!         db        Σ_{n, o} g
//! ```
//!
//! After the first layer an SNN's conv input is binary spikes at a firing rate ρ of typically
//! 5–25 %, so the sparse forward and weight gradient do ρ of the dense multiply-adds, with no
//! im2col buffer: each spike adds a weight row into the `C_out`-contiguous rows of a
//! transposed output tile (`out_t` `[rows·W', C_out]`, sized for L1), turned back into
//! `[C_out, P]` tile by tile (8×8 blocks in AVX2 registers). With ≥ 32 input channels the
//! forward instead sums each output pixel's channel block in registers over the non-zeros of
//! the pixels its taps read (output-stationary: one weight load per non-zero and tap, no
//! store), from channel bit masks for spikes or from per-pixel lists for other values
//! (average-pooled spikes: values k/4 at 35–45 % density). The
//! input gradient stays dense. [`ConvMode::Auto`] (the default) measures the input's density
//! at every call and takes the sparse path at or below [`KernelPolicy::max_density`] — 0.5 for the
//! forward and the weight gradient (the break-even measured by `tks bench --conv-micro`
//! and per layer in whole training steps); the inference forward (no autodiff) takes the same choice, so
//! spike-sparse inference needs no flag. At inference BatchNorm is folded into the
//! convolution ([`forward_folded_bn`]).
//!
//! Samples run in parallel with rayon (one single-threaded gemm per sample, the `gemm` crate
//! that Flex itself uses); the weight gradient is summed per worker and then across workers in
//! a fixed order, so a run is reproducible for a given thread count. Only `x` and `w` are kept
//! for backward (burn's autodiff conv keeps the same) — optionally ([`KernelPolicy::pack_spikes`]) packed to
//! one byte per value when it is spikes (0/1: a quarter of the f32 memory), which the backward
//! reads as it is; the im2col columns are recomputed.
//!
//! Files: this one (the public entry points and the statistics), `op` (the backend extension:
//! Flex, Autodiff and the backward step), [`kernel`] (geometry, path choice and the forward and
//! backward drivers over samples), [`dense`] (im2col/col2im and the gemm), [`sparse`] (the
//! spike-aware scatter and gather; also reachable as `kernel::simd`).
//!
//! burn's generic conv backward (which Flex does not override) computes the weight gradient as
//! a convolution whose kernel is the whole output gradient, after `swap_dims` + contiguous
//! copies of input and gradient; this op replaces it and the forward.

use burn::backend::Dispatch;
use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::tensor::Tensor;

use super::fused_ops::flex_f32;
use crate::kernels::KernelPolicy;

pub mod dense;
pub mod kernel;
mod op;
pub mod sparse;

pub use crate::kernels::{ConvMode, SparsePass};
pub use op::ConvOps;

thread_local! {
    /// Forward calls of the fused op on this thread, those that took the spike-aware path, and
    /// the sum of their input densities, since the last [`take_stats`].
    static STATS: std::cell::Cell<(u64, u64, f64)> = const { std::cell::Cell::new((0, 0, 0.0)) };
}

/// What the fused forward did on this thread since the last call to [`take_stats`] (the op
/// is called on the thread that runs the model; its kernels fan out from there).
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct ConvStats {
    /// Forward calls.
    pub calls: u64,
    /// Of which on the spike-aware path.
    pub sparse_calls: u64,
    /// Mean fraction of non-zero input values over the calls.
    pub mean_input_density: f64,
}

/// Counts one forward call of the fused op on this thread, with its input density and whether
/// it took the spike-aware path.
fn record_forward(density: f32, sparse: bool) {
    STATS.with(|s| {
        let (calls, sparse_calls, sum) = s.get();
        s.set((
            calls + 1,
            sparse_calls + u64::from(sparse),
            sum + density as f64,
        ));
    });
}

/// Returns and resets this thread's forward statistics.
pub fn take_stats() -> ConvStats {
    let (calls, sparse_calls, density_sum) = STATS.with(|s| s.replace((0, 0, 0.0)));
    ConvStats {
        calls,
        sparse_calls,
        mean_input_density: if calls == 0 {
            0.0
        } else {
            density_sum / calls as f64
        },
    }
}

/// The symmetric padding of `conv` on every side, if it has one (`Valid` = 0).
pub(crate) fn symmetric_padding(conv: &Conv2d) -> Option<usize> {
    match conv.padding {
        PaddingConfig2d::Valid => Some(0),
        PaddingConfig2d::Explicit(a, b, c, d) if a == b && b == c && c == d => Some(a),
        _ => None,
    }
}

/// Whether the fused op computes exactly what `conv.forward(x)` does: f32 on Flex, one group,
/// no dilation, square stride, symmetric explicit padding, and at least one output pixel.
pub fn supports(conv: &Conv2d, x: &Tensor<4>) -> bool {
    let [_, c, h, w] = x.dims();
    let [_, ci, kh, kw] = conv.weight.val().dims();
    let Some(p) = symmetric_padding(conv) else {
        return false;
    };
    conv.groups == 1
        && conv.dilation == [1, 1]
        && conv.stride[0] == conv.stride[1]
        && conv.stride[0] >= 1
        && c == ci
        && h + 2 * p >= kh
        && w + 2 * p >= kw
        && flex_f32(x)
}

/// `conv.forward(x)` through the fused op.
///
/// # Panics
/// If [`supports`] is false.
pub fn forward(conv: &Conv2d, x: Tensor<4>, policy: &KernelPolicy) -> Tensor<4> {
    assert!(supports(conv, &x), "fused conv: unsupported input");
    let pad = symmetric_padding(conv).unwrap_or(0);
    let bias = bias_or_zeros(conv, &x.device());
    conv2d(x, conv.weight.val(), bias, conv.stride[0], pad, policy)
}

/// `conv`'s bias, or zeros `[C_out]` when it has none.
pub(crate) fn bias_or_zeros(conv: &Conv2d, device: &burn::tensor::Device) -> Tensor<1> {
    match &conv.bias {
        Some(b) => b.val(),
        None => Tensor::zeros([conv.weight.val().dims()[0]], device),
    }
}

/// `bn(conv.forward(x))` for BatchNorm on its running statistics (inference), as one
/// convolution with BatchNorm folded in: `W' = W·s`, `b' = (b − μ)·s + β` per output channel,
/// `s = γ/√(σ² + ε)` — no separate normalisation pass.
///
/// # Panics
/// If [`supports`] is false.
pub fn forward_folded_bn(
    conv: &Conv2d,
    bn: &burn::nn::BatchNorm,
    x: Tensor<4>,
    policy: &KernelPolicy,
) -> Tensor<4> {
    assert!(supports(conv, &x), "fused conv: unsupported input");
    let pad = symmetric_padding(conv).unwrap_or(0);
    let (folded_weight, folded_bias) = fold_bn(conv, bn, &x.device());
    conv2d(x, folded_weight, folded_bias, conv.stride[0], pad, policy)
}

/// The weight `[C_out, C_in, k_h, k_w]` and bias `[C_out]` of `conv` with the BatchNorm `bn`
/// (running statistics) folded in, on `device`: `W' = W·s`, `b' = (b − μ)·s + β`,
/// `s = γ/√(σ² + ε)` — the very values [`forward_folded_bn`] convolves with (NIR export
/// writes them, so an imported model computes bit-identical currents).
pub fn fold_bn(
    conv: &Conv2d,
    bn: &burn::nn::BatchNorm,
    device: &burn::tensor::Device,
) -> (Tensor<4>, Tensor<1>) {
    let weight = conv.weight.val().to_device(device);
    let co = weight.dims()[0];
    let mean = bn.running_mean.value_sync().to_device(device);
    let var = bn.running_var.value_sync().to_device(device);
    let scale = bn
        .gamma
        .val()
        .to_device(device)
        .div(var.add_scalar(bn.epsilon).sqrt());
    let folded_bias = bias_or_zeros(conv, device)
        .to_device(device)
        .sub(mean)
        .mul(scale.clone())
        .add(bn.beta.val().to_device(device));
    (weight.mul(scale.reshape([co, 1, 1, 1])), folded_bias)
}

/// `x` `[N, C_in, H, W]` ⊛ `weight` `[C_out, C_in, k_h, k_w]` + `bias` `[C_out]` with stride
/// `stride` and padding `padding` on every side (differentiable on an autodiff device), the
/// dense or spike-aware path chosen by `policy`.
pub fn conv2d(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Tensor<1>,
    stride: usize,
    padding: usize,
    policy: &KernelPolicy,
) -> Tensor<4> {
    Tensor::from_dispatch(<Dispatch as ConvOps>::conv2d_spk(
        x.into_dispatch(),
        weight.into_dispatch(),
        bias.into_dispatch(),
        stride,
        padding,
        *policy,
    ))
}
