//! Synchronised BatchNorm: the batch statistics of a data-parallel step taken over the samples
//! of every rank, so N ranks × batch B/N normalise exactly as one process × batch B
//! (PyTorch's `SyncBatchNorm`; Ioffe & Szegedy, "Batch Normalization", 2015, arXiv:1502.03167).
//!
//! Per channel, over the `M = Σ_ranks N·H·W` values of all ranks:
//!
//! ```text
//! μ  = allreduce(Σ x) / M
//! σ² = allreduce(Σ (x − μ)²) / M            (biased, as burn's BatchNorm)
//! y  = (x − μ)/√(σ² + ε)·γ + β
//! ```
//!
//! Written with plain tensor ops around one differentiable op, the all-reduce `s ↦ Σ_ranks s`
//! of a `[C]` tensor, whose backward is the all-reduce of the incoming gradient: the total
//! loss is the sum of the ranks' losses, and each rank's statistics feed every rank's loss.
//! So the backward exchanges `Σ dL/dμ` and `Σ dL/dσ²` per channel, as `SyncBatchNorm` does.
//! The reduction is the run's [`Collective`](crate::collective::Collective), reached through
//! [`BnSync`] in the kernel policy: the core knows no transport.
//!
//! The all-reduce is a Flex backend extension (the tensors are staged through host memory);
//! [`supports`] says where it runs.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, TensorMetadata, backend_extension};
use burn::nn::BatchNorm;
use burn::tensor::Tensor;

use super::fused_bn;
use super::fused_ops::{f32_values, flex_f32, flex_tensor, register_grads};
use crate::collective::BnSync;

/// Whether the synchronised statistics can be computed for `x` (f32 on Flex).
pub fn supports<const D: usize>(x: &Tensor<D>) -> bool {
    D >= 2 && flex_f32(x)
}

/// `bn`'s training forward with the batch statistics of every rank of `sync`, updating its
/// running statistics with them (as burn's `BatchNorm::forward_train` does, so every rank keeps
/// the same running statistics). `x` is `[N, C, ...]`.
///
/// # Panics
/// If [`supports`] is false.
pub fn forward_train<const D: usize>(bn: &BatchNorm, x: Tensor<D>, sync: BnSync) -> Tensor<D> {
    assert!(supports(&x), "synchronised BatchNorm: f32 on Flex expected");
    let device = x.device();
    let dims = x.dims();
    let channels = dims[1];
    let mut count = [(dims.iter().product::<usize>() / channels) as f64];
    sync.collective().all_reduce_sum_f64(&mut count);
    let total = count[0].max(1.0);
    let per_channel = |t: Tensor<D>| -> Tensor<1> {
        // [N, C, ...] → [C, N·inner] → [C]
        let c = t.dims()[1];
        t.swap_dims(0, 1)
            .reshape([c as i32, -1])
            .sum_dim(1)
            .reshape([c])
    };
    let broadcast = |t: Tensor<1>| -> Tensor<D> {
        let mut shape = [1usize; D];
        shape[1] = channels;
        t.reshape(shape)
    };
    let mean = all_reduce_sum(per_channel(x.clone()), sync).div_scalar(total);
    let centred = x - broadcast(mean.clone());
    let variance =
        all_reduce_sum(per_channel(centred.clone().powi_scalar(2)), sync).div_scalar(total);
    let scale = variance.clone().add_scalar(bn.epsilon).sqrt().recip() * bn.gamma.val();
    let output = centred * broadcast(scale) + broadcast(bn.beta.val());
    fused_bn::update_running_statistics(bn, mean, variance, &device);
    output
}

/// `Σ_ranks s` of a `[C]` tensor, differentiable (backward: the all-reduce of the gradient).
pub fn all_reduce_sum(s: Tensor<1>, sync: BnSync) -> Tensor<1> {
    Tensor::from_dispatch(<Dispatch as SyncOps>::sync_all_reduce(
        s.into_dispatch(),
        sync,
    ))
}

/// The all-reduce as a backend extension (Flex + Autodiff).
#[backend_extension(Flex, Autodiff)]
pub trait SyncOps: Backend {
    /// The element-wise sum of `x` over the ranks of `sync`.
    fn sync_all_reduce(x: FloatTensor<Self>, sync: BnSync) -> FloatTensor<Self>;
}

impl SyncOps for Flex {
    fn sync_all_reduce(x: FlexTensor, sync: BnSync) -> FlexTensor {
        let shape = x.shape().to_vec();
        let mut values = f32_values(&x).into_owned();
        sync.collective().all_reduce_sum(&mut values);
        flex_tensor(values, shape)
    }
}

/// The backward of the all-reduce: the all-reduce of the gradient.
#[derive(Debug)]
struct AllReduceBackward {
    sync: BnSync,
}

impl<B: Backend + SyncOps> Backward<B, 1> for AllReduceBackward {
    type State = ();

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let [parent] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let dx = B::sync_all_reduce(grad, self.sync);
        register_grads::<B, 1>(grads, [parent.map(|p| p.id)], [dx]);
    }
}

impl<B: Backend + SyncOps, C: CheckpointStrategy> SyncOps for Autodiff<B, C> {
    fn sync_all_reduce(x: FloatTensor<Self>, sync: BnSync) -> FloatTensor<Self> {
        let out = B::sync_all_reduce(x.primitive().clone(), sync);
        (AllReduceBackward { sync })
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateless(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collective::Solo;
    use burn::module::Module;
    use burn::nn::BatchNormConfig;
    use burn::tensor::{Device, Distribution};

    static SOLO: Solo = Solo;

    /// With one rank the synchronised statistics are the batch's own: output, gradients and
    /// running statistics equal burn's BatchNorm.
    #[test]
    fn one_rank_equals_burns_batch_norm() {
        let device = Device::flex().autodiff();
        device.seed(7);
        let bn = BatchNormConfig::new(3).init(&device);
        let x = Tensor::<4>::random([4, 3, 5, 5], Distribution::Normal(0.5, 2.0), &device)
            .require_grad();
        let weights = Tensor::<4>::random([4, 3, 5, 5], Distribution::Default, &device);
        let reference_bn = bn.clone();
        let y_ref = reference_bn.forward(x.clone());
        let y = forward_train(&bn, x.clone(), BnSync::new(&SOLO));
        let close = |a: Vec<f32>, b: Vec<f32>, what: &str| {
            assert_eq!(a.len(), b.len());
            for (i, (p, q)) in a.iter().zip(&b).enumerate() {
                assert!(
                    (p - q).abs() <= 1e-4 * (1.0 + q.abs()),
                    "{what}[{i}]: {p} vs {q}"
                );
            }
        };
        let vals = |t: Tensor<4>| t.into_data().iter::<f32>().collect::<Vec<f32>>();
        close(vals(y.clone()), vals(y_ref.clone()), "output");
        let g = (y * weights.clone()).sum().backward();
        let g_ref = (y_ref * weights).sum().backward();
        let gx = x
            .grad(&g)
            .unwrap()
            .into_data()
            .iter::<f32>()
            .collect::<Vec<f32>>();
        let gx_ref = x
            .grad(&g_ref)
            .unwrap()
            .into_data()
            .iter::<f32>()
            .collect::<Vec<f32>>();
        close(gx, gx_ref, "dx");
        let gamma = |b: &BatchNorm, g| {
            b.gamma
                .grad(g)
                .unwrap()
                .into_data()
                .iter::<f32>()
                .collect::<Vec<f32>>()
        };
        close(gamma(&bn, &g), gamma(&reference_bn, &g_ref), "dgamma");
        let stat = |b: &BatchNorm| {
            let m = b.clone().valid();
            let mut v = m
                .running_mean
                .value_sync()
                .into_data()
                .iter::<f32>()
                .collect::<Vec<f32>>();
            v.extend(
                m.running_var
                    .value_sync()
                    .into_data()
                    .iter::<f32>()
                    .collect::<Vec<f32>>(),
            );
            v
        };
        close(stat(&bn), stat(&reference_bn), "running statistics");
    }
}
