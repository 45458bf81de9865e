//! Convolution → training-mode BatchNorm → LIF/IF as one op that keeps **no conv output** for
//! the backward ([`KernelPolicy::recompute_conv`]): the backward convolves the kept input again.
//!
//! The two-op path ([`super::fused_conv`] then [`super::fused_bn_lif`]) keeps the conv output
//! `x` `[T·B, C_out, H, W]` (f32) of every block until its backward: the largest share of a
//! training step's peak memory (52 % at VGG-SNN T=8, heaptrack), and one that grows with T.
//! This op keeps what the conv keeps anyway — its input, packed to one byte per value when it
//! is spikes ([`KernelPolicy::pack_spikes`]) — plus the per-channel statistics:
//!
//! ```text
//! forward   y = conv(x)            (the fused conv's kernels)
//!           spikes, μ, σ² = BN-LIF(y)   (fused_bn_lif's kernels); y is dropped
//! backward  y = conv(x) again      (same input, weights and path choice → the same f32 values)
//!           dy, dγ, dβ = BN-LIF backward(y, μ, σ², dL/dspikes)
//!           dx, dW, db = conv backward(x, W, dy)
//! ```
//!
//! The backward runs exactly the two-op path's backward on bit-identical `y`, so spikes and
//! every gradient are bit-identical to it (`tests/kernels/fused_conv_bn_lif.rs` checks `==`);
//! the price is one more forward convolution per block in each step.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, AutodiffBackend, Backend, Dispatch, Flex, backend_extension};
use burn::nn::BatchNorm;
use burn::nn::conv::Conv2d;
use burn::tensor::Tensor;

use super::fused_bn_lif::{self, BnLifOps};
use super::fused_conv::{self, ConvOps};
use super::fused_ops::register_grads;
use crate::kernels::KernelPolicy;
use crate::neuron::NeuronConfig;
use crate::neuron::fused::LifSpec;

/// Whether [`forward_train`] runs `conv` on `x` `[T·B, C_in, H, W]` in a block whose
/// BatchNorm and neuron already take the fused BN-LIF op ([`fused_bn_lif::supports`]): the
/// policy asks for it ([`KernelPolicy::recompute_conv`]), the fused conv supports `conv` on
/// `x`, and no [`crate::monitor`] recording wants the conv output.
pub fn supports(conv: &Conv2d, policy: &KernelPolicy, x: &Tensor<4>) -> bool {
    policy.recompute_conv && fused_conv::supports(conv, x) && !crate::monitor::recording()
}

/// Spikes of `neuron` for `bn(conv(x))` in training mode, `x` `[T·B, C_in, H, W]` with
/// `steps` = T, updating `bn`'s running statistics as burn's `BatchNorm::forward_train` does.
/// Differentiable with respect to `x`, the conv's weight and bias, and `bn`'s γ and β.
///
/// # Panics
/// If [`supports`] is false for these arguments.
pub fn forward_train(
    conv: &Conv2d,
    bn: &BatchNorm,
    neuron: &NeuronConfig,
    x: Tensor<4>,
    steps: usize,
    policy: &KernelPolicy,
) -> Tensor<4> {
    assert!(
        fused_conv::supports(conv, &x),
        "fused conv-BN-LIF: unsupported input"
    );
    let spec = LifSpec::from_config(neuron).expect("fused conv-BN-LIF: LIF or IF neuron");
    let device = x.device();
    let (weight, bias) = (conv.weight.val(), fused_conv::bias_or_zeros(conv, &device));
    let c = weight.dims()[0];
    let (gamma, beta) = (bn.gamma.val(), bn.beta.val());
    assert_eq!(gamma.dims(), [c], "fused conv-BN-LIF: gamma shape");
    let (s, mean, var) = <Dispatch as ConvBnLifOps>::conv_bn_lif_train(
        x.into_dispatch(),
        weight.into_dispatch(),
        bias.into_dispatch(),
        gamma.into_dispatch(),
        beta.into_dispatch(),
        Params {
            stride: conv.stride[0],
            padding: fused_conv::symmetric_padding(conv).unwrap_or(0),
            policy: *policy,
            bn_lif: fused_bn_lif::Params {
                epsilon: bn.epsilon,
                spec,
                steps,
            },
        },
    );
    super::fused_bn::update_running_statistics(
        bn,
        Tensor::from_dispatch(mean),
        Tensor::from_dispatch(var),
        &device,
    );
    Tensor::from_dispatch(s)
}

/// Everything of the op but its tensors.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Params {
    /// The conv's stride.
    pub stride: usize,
    /// The conv's padding on every side.
    pub padding: usize,
    /// The conv's kernel choices (path, thresholds, spike packing).
    pub policy: KernelPolicy,
    /// BatchNorm's ε, the neuron and T.
    pub bn_lif: fused_bn_lif::Params,
}

/// Conv → BatchNorm (training) → LIF/IF as a backend extension (Flex + Autodiff).
#[backend_extension(Flex, Autodiff)]
pub trait ConvBnLifOps: Backend {
    /// `(spikes, mean [C_out], biased variance [C_out])` for `x`.
    fn conv_bn_lif_train(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        params: Params,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
    /// `(dx, dweight, dbias, dgamma, dbeta)` for `dL/dspikes = grad`, from the kept input `x`
    /// (f32, or spikes packed to u8), the weight, bias, γ, β and the forward's statistics;
    /// `dx` is an empty `[0]` tensor when `input_grad` is false.
    // The extension macro reads the return type as written, so no `Five<_>` alias here.
    #[allow(clippy::too_many_arguments, clippy::type_complexity)]
    fn conv_bn_lif_train_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        variance: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        params: Params,
        input_grad: bool,
    ) -> (
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
    );
}

/// Five values of one type (the op's gradients).
pub type Five<T> = (T, T, T, T, T);

impl ConvBnLifOps for Flex {
    fn conv_bn_lif_train(
        x: FlexTensor,
        w: FlexTensor,
        b: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        p: Params,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        let y = <Flex as ConvOps>::conv2d_spk(x, w, b, p.stride, p.padding, p.policy);
        <Flex as BnLifOps>::bn_lif_train(y, gamma, beta, p.bn_lif)
    }

    fn conv_bn_lif_train_backward(
        x: FlexTensor,
        w: FlexTensor,
        b: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        mean: FlexTensor,
        var: FlexTensor,
        grad: FlexTensor,
        p: Params,
        input_grad: bool,
    ) -> Five<FlexTensor> {
        // The forward convolution again, on the input as it was kept (bytes when packed).
        let y =
            <Flex as ConvOps>::conv2d_spk(x.clone(), w.clone(), b, p.stride, p.padding, p.policy);
        let (dy, dgamma, dbeta) =
            <Flex as BnLifOps>::bn_lif_train_backward(y, gamma, beta, mean, var, p.bn_lif, grad);
        let (dx, dw, db) = <Flex as ConvOps>::conv2d_spk_backward(
            x, w, dy, p.stride, p.padding, input_grad, p.policy,
        );
        (dx, dw, db, dgamma, dbeta)
    }
}

/// The backward step; its state is the kept input (packed when spikes), weight, bias, γ, β,
/// mean and variance.
#[derive(Debug)]
struct ConvBnLifBackward {
    params: Params,
}

impl<B: Backend + ConvBnLifOps> Backward<B, 5> for ConvBnLifBackward {
    type State = [FloatTensor<B>; 7];

    fn backward(
        self,
        ops: Ops<Self::State, 5>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let grad = grads.consume::<B>(&ops.node);
        let input_grad = ops.parents[0].is_some();
        let [x, w, b, gamma, beta, mean, var] = ops.state;
        let (dx, dw, db, dg, dbe) = B::conv_bn_lif_train_backward(
            x,
            w,
            b,
            gamma,
            beta,
            mean,
            var,
            grad,
            self.params,
            input_grad,
        );
        register_grads::<B, 5>(
            grads,
            ops.parents.map(|p| p.map(|p| p.id)),
            [dx, dw, db, dg, dbe],
        );
    }
}

impl<B: Backend + ConvBnLifOps + ConvOps, C: CheckpointStrategy> ConvBnLifOps for Autodiff<B, C> {
    fn conv_bn_lif_train(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        params: Params,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let inputs = [x, weight, bias, gamma, beta];
        let nodes = inputs.each_ref().map(|t| t.node());
        let [x, w, b, gamma, beta] = inputs.map(|t| t.primitive().clone());
        let (out, mean, var) = B::conv_bn_lif_train(
            x.clone(),
            w.clone(),
            b.clone(),
            gamma.clone(),
            beta.clone(),
            params,
        );
        let out = match (ConvBnLifBackward { params })
            .prepare::<C>(nodes)
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let x = B::conv2d_spk_pack(x, params.policy.pack_spikes);
                prep.finish([x, w, b, gamma, beta, mean.clone(), var.clone()], out)
            }
            OpsKind::UnTracked(prep) => prep.finish(out),
        };
        (out, Self::from_inner(mean), Self::from_inner(var))
    }

    fn conv_bn_lif_train_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        variance: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        params: Params,
        input_grad: bool,
    ) -> Five<FloatTensor<Self>> {
        // Second-order gradients are not supported: the results are constants.
        let (a, b, c, d, e) = B::conv_bn_lif_train_backward(
            x.into_primitive(),
            weight.into_primitive(),
            bias.into_primitive(),
            gamma.into_primitive(),
            beta.into_primitive(),
            mean.into_primitive(),
            variance.into_primitive(),
            grad.into_primitive(),
            params,
            input_grad,
        );
        (
            Self::from_inner(a),
            Self::from_inner(b),
            Self::from_inner(c),
            Self::from_inner(d),
            Self::from_inner(e),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_when_the_policy_asks() {
        let device = Default::default();
        let conv = burn::nn::conv::Conv2dConfig::new([2, 4], [3, 3])
            .with_padding(burn::nn::PaddingConfig2d::Explicit(1, 1, 1, 1))
            .init(&device);
        let x = Tensor::<4>::zeros([6, 2, 6, 6], &device);
        let on = KernelPolicy {
            recompute_conv: true,
            ..KernelPolicy::default()
        };
        assert!(supports(&conv, &on, &x));
        assert!(!supports(&conv, &KernelPolicy::default(), &x));
    }
}
