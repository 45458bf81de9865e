//! Training-mode BatchNorm followed by a LIF/IF neuron as one op for the Flex CPU backend: the
//! normalised current is never written to memory, in the forward pass or the backward.
//!
//! On the conv output `x` `[T·B, C, H, W]` (viewed as `[T, N]` for the neuron, `N = B·C·H·W`):
//!
//! ```text
//! forward   pass 1 (channels in parallel): μ, σ² per channel   (as fused_bn, same sums)
//!           pass 2 (neuron blocks): y = (x − μ)·γ/√(σ² + ε) + β computed per block row in L1,
//!                                   LIF over T on y → spikes                (as fused LIF)
//! backward  pass 1 (neuron blocks): recompute y and the membrane, run the LIF backward over T
//!                                   → gy = dL/dy, written once; per channel Σ gy and
//!                                   Σ gy·(x − μ) summed on the way (f32 over T, f64 after)
//!           pass 2 (channels):      dx = γ/√(σ² + ε)·(gy − dβ/M − (x − μ)·dγ/(M·√(σ² + ε)))
//!                                   in place of gy                           (as fused_bn)
//! ```
//!
//! Against BatchNorm then LIF as two fused ops this saves writing and reading `y` in the forward,
//! one read of `x` and `gy` in the backward, and the stored `y` itself: the op keeps only `x`
//! (which the conv's output is anyway) and the per-channel statistics. The spikes are
//! bit-identical to the two-op path (same statistics, same normalisation formula, same neuron
//! loop); the gradients agree to rounding (the per-channel sums are taken in another order).

use std::sync::Mutex;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{
    Autodiff, AutodiffBackend, Backend, Dispatch, Flex, TensorMetadata, backend_extension,
};
use burn::nn::BatchNorm;
use burn::tensor::Tensor;

use super::fused_bn::{self, kernel as bn};
use super::fused_ops::{
    constants, f32_values, flex_tensor, register_grads, whole_unique_f32, written, zeroed,
};
use crate::kernels::{KernelPolicy, LayerPath, LifPath};
use crate::neuron::fused::{self as lif, BLOCK, LifSpec};
use crate::neuron::{Neuron, NeuronConfig};

/// Whether [`forward_train`] can run `bn` (under the layer policy `layers`) then `neuron` (under
/// its own policy) on `x` `[T, B, C, ...]`: both fused paths on, `bn` normalising with batch
/// statistics (training), LIF/IF, f32 on Flex.
pub fn supports<const D: usize>(
    bn: &BatchNorm,
    neuron: &Neuron,
    layers: &KernelPolicy,
    x: &Tensor<D>,
) -> bool {
    D >= 3
        && layers.layers == LayerPath::Fused
        && layers.bn_sync.is_none()
        && neuron.kernels.neurons == LifPath::Fused
        && fused_bn::uses_batch_statistics(bn, x)
        && fused_bn::supports(x)
        && lif::supports(&neuron.config, x)
}

/// Spikes of `neuron` for `bn(x)` in training mode, `x` `[T·B, C, H, W]` with `steps` = T,
/// updating `bn`'s running statistics as burn's `BatchNorm::forward_train` does.
/// Differentiable with respect to `x` and `bn`'s γ and β.
///
/// # Panics
/// If the neuron is not LIF/IF, `x` is not f32 on Flex, or `steps` does not divide `x`'s
/// first dimension.
pub fn forward_train(
    bn: &BatchNorm,
    neuron: &NeuronConfig,
    x: Tensor<4>,
    steps: usize,
) -> Tensor<4> {
    assert!(fused_bn::supports(&x), "fused BN-LIF: unsupported input");
    let spec = LifSpec::from_config(neuron).expect("fused BN-LIF: LIF or IF neuron");
    let c = x.dims()[1];
    let device = x.device();
    let (gamma, beta) = (bn.gamma.val(), bn.beta.val());
    assert_eq!(gamma.dims(), [c], "fused BN-LIF: gamma shape");
    let (s, mean, var) = <Dispatch as BnLifOps>::bn_lif_train(
        x.into_dispatch(),
        gamma.into_dispatch(),
        beta.into_dispatch(),
        Params {
            epsilon: bn.epsilon,
            spec,
            steps,
        },
    );
    fused_bn::update_running_statistics(
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
    /// BatchNorm's ε.
    pub epsilon: f64,
    /// The neuron.
    pub spec: LifSpec,
    /// Timesteps T (the first dimension is T·B).
    pub steps: usize,
}

/// BatchNorm (training) → LIF/IF as a backend extension (Flex + Autodiff).
#[backend_extension(Flex, Autodiff)]
pub trait BnLifOps: Backend {
    /// `(spikes, mean [C], biased variance [C])` for `x` `[T·B, C, ...]`.
    fn bn_lif_train(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        params: Params,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
    /// `(dx, dgamma, dbeta)` for `dL/dspikes = grad`, with the forward's statistics.
    #[allow(clippy::too_many_arguments)]
    fn bn_lif_train_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        variance: FloatTensor<Self>,
        params: Params,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
}

/// `([N, C, inner], neurons per step)` of a `[T·B, C, ...]` shape.
fn dims(shape: &[usize], steps: usize) -> ([usize; 3], usize) {
    let (n, c, inner) = fused_bn::ncl(shape);
    assert!(
        steps > 0 && n % steps == 0,
        "fused BN-LIF: {steps} timesteps do not divide {n}"
    );
    ([n, c, inner], n / steps * c * inner)
}

impl BnLifOps for Flex {
    fn bn_lif_train(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        p: Params,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        let shape = x.shape().to_vec();
        let (d, neurons) = dims(&shape, p.steps);
        let c = d[1];
        let xs = f32_values(&x);
        let (gs, bs) = (f32_values(&gamma), f32_values(&beta));
        assert_eq!((gs.len(), bs.len()), (c, c), "fused BN-LIF: gamma/beta");
        let (mut mean, mut var) = (vec![0.0f32; c], vec![0.0f32; c]);
        bn::statistics(&xs, d, &mut mean, &mut var);
        let norm = Normalise::new(d, &mean, &var, &gs, &bs, p.epsilon, None);
        // SAFETY: the kernel writes every output value.
        let out = unsafe {
            written(xs.len(), |o| {
                lif::kernel::forward_from(&norm, &xs, o, None, None, p.steps, neurons, &p.spec)
            })
        };
        (
            flex_tensor(out, shape),
            flex_tensor(mean, vec![c]),
            flex_tensor(var, vec![c]),
        )
    }

    fn bn_lif_train_backward(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        mean: FlexTensor,
        variance: FlexTensor,
        p: Params,
        grad: FlexTensor,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        let shape = x.shape().to_vec();
        assert_eq!(grad.shape().to_vec(), shape, "fused BN-LIF: gradient shape");
        let (d, neurons) = dims(&shape, p.steps);
        let c = d[1];
        let xs = f32_values(&x);
        let (gam, bs) = (f32_values(&gamma), f32_values(&beta));
        let (mu, var) = (f32_values(&mean), f32_values(&variance));
        let blocks = neurons.div_ceil(BLOCK);
        let sums: Vec<BlockSums> = (0..blocks).map(|_| Mutex::new(Vec::new())).collect();
        let norm = Normalise::new(d, &mu, &var, &gam, &bs, p.epsilon, Some(&sums));
        // Pass 1: dx ← dL/dy, with the per-channel sums; in the incoming gradient's own
        // buffer when this op holds the only reference to it (as the autodiff graph hands
        // it over), which saves a `[T·B, C, H, W]` buffer at the backward's peak.
        let mut grad = grad;
        let mut fresh = Vec::new();
        let dx: &mut [f32] = match whole_unique_f32(&mut grad, xs.len()) {
            Some(g) => {
                lif::kernel::backward_from_in_place(&norm, &xs, g, p.steps, neurons, &p.spec);
                g
            }
            None => {
                let gs = f32_values(&grad);
                fresh = zeroed(xs.len());
                lif::kernel::backward_from(&norm, &xs, &gs, &mut fresh, p.steps, neurons, &p.spec);
                &mut fresh
            }
        };
        // Per-channel totals in block order (a fixed order: reproducible).
        let mut totals = vec![(0.0f64, 0.0f64); c];
        for block in sums {
            for (seg, s1, s2) in block.into_inner().expect("fused BN-LIF: sums") {
                let t = &mut totals[seg % c];
                t.0 += s1;
                t.1 += s2;
            }
        }
        // Pass 2: dx ← dL/dx in place.
        let (mut dgamma, mut dbeta) = (vec![0.0f32; c], vec![0.0f32; c]);
        bn::apply_gradient(
            &xs,
            dx,
            &gam,
            &mu,
            &var,
            p.epsilon,
            d,
            &totals,
            &mut dgamma,
            &mut dbeta,
        );
        let dx = if fresh.is_empty() {
            grad
        } else {
            flex_tensor(fresh, shape)
        };
        (
            dx,
            flex_tensor(dgamma, vec![c]),
            flex_tensor(dbeta, vec![c]),
        )
    }
}

/// One block's per-segment `(segment, Σ gy, Σ gy·(x − μ))` (filled once, when the block ends).
type BlockSums = Mutex<Vec<(usize, f64, f64)>>;

/// The normalisation as the neuron kernel's input current: column `j` of `[T, N]` is channel
/// `(j / inner) % C`; in backward it also sums `Σ gy` and `Σ gy·(x − μ)` per `(sample,
/// channel)` segment `j / inner`, one list per block.
struct Normalise<'a> {
    c: usize,
    inner: usize,
    mean: &'a [f32],
    /// `γ/√(σ² + ε)` per channel.
    scale: Vec<f32>,
    beta: &'a [f32],
    sums: Option<&'a [BlockSums]>,
}

impl<'a> Normalise<'a> {
    /// For `[N, C, inner]` = `d` with the batch statistics `mean`, `var` and BN's γ, β, ε
    /// (`sums`: one slot per neuron block, in backward).
    fn new(
        d: [usize; 3],
        mean: &'a [f32],
        var: &[f32],
        gamma: &[f32],
        beta: &'a [f32],
        epsilon: f64,
        sums: Option<&'a [BlockSums]>,
    ) -> Self {
        let scale = (0..d[1])
            .map(|ch| bn::scale_of(gamma[ch], var[ch], epsilon))
            .collect();
        Self {
            c: d[1],
            inner: d[2],
            mean,
            scale,
            beta,
            sums,
        }
    }
}

/// One block's columns: their channel's constants, and in backward the per-column sums.
struct NormaliseBlock<'a> {
    n0: usize,
    inner: usize,
    mean: Vec<f32>,
    scale: Vec<f32>,
    beta: Vec<f32>,
    acc: Option<(Vec<f32>, Vec<f32>, &'a BlockSums)>,
}

impl<'a> lif::kernel::Current for Normalise<'a> {
    type Block = NormaliseBlock<'a>;

    fn block(&self, n0: usize, w: usize) -> NormaliseBlock<'a> {
        let (mut mean, mut scale, mut beta) = (
            Vec::with_capacity(w),
            Vec::with_capacity(w),
            Vec::with_capacity(w),
        );
        // Channel by channel over the block's columns: one division per segment.
        let mut j = n0;
        while j < n0 + w {
            let seg = j / self.inner;
            let end = ((seg + 1) * self.inner).min(n0 + w);
            let ch = seg % self.c;
            mean.resize(end - n0, self.mean[ch]);
            scale.resize(end - n0, self.scale[ch]);
            beta.resize(end - n0, self.beta[ch]);
            j = end;
        }
        NormaliseBlock {
            n0,
            inner: self.inner,
            mean,
            scale,
            beta,
            acc: self
                .sums
                .map(|s| (vec![0.0; w], vec![0.0; w], &s[n0 / BLOCK])),
        }
    }
}

impl lif::kernel::BlockCurrent for NormaliseBlock<'_> {
    #[inline(always)]
    fn current<'b>(&self, x: &'b [f32], buf: &'b mut [f32]) -> &'b [f32] {
        let w = x.len();
        let (mu, sc, be) = (&self.mean[..w], &self.scale[..w], &self.beta[..w]);
        for i in 0..w {
            // The formula of fused_bn's forward, so the spikes are bit-identical.
            buf[i] = (x[i] - mu[i]) * sc[i] + be[i];
        }
        &buf[..w]
    }

    #[inline(always)]
    fn grad_row(&mut self, x: &[f32], g: &[f32]) {
        if let Some((s1, s2, _)) = &mut self.acc {
            let w = x.len();
            let mu = &self.mean[..w];
            let (s1, s2) = (&mut s1[..w], &mut s2[..w]);
            for i in 0..w {
                s1[i] += g[i];
                s2[i] += g[i] * (x[i] - mu[i]);
            }
        }
    }

    fn finish(self) {
        let Some((s1, s2, slot)) = self.acc else {
            return;
        };
        let mut out = Vec::new();
        let mut i = 0;
        while i < s1.len() {
            let seg = (self.n0 + i) / self.inner;
            let end = ((seg + 1) * self.inner - self.n0).min(s1.len());
            let (a, b) = bn::sum2(&s1[i..end], &s2[i..end], |a, b| (a, b));
            out.push((seg, a, b));
            i = end;
        }
        *slot.lock().expect("fused BN-LIF: sums") = out;
    }
}

/// The backward step; its state is `(x, gamma, beta, mean, variance)` of the forward.
#[derive(Debug)]
struct BnLifBackward {
    params: Params,
}

impl<B: Backend + BnLifOps> Backward<B, 3> for BnLifBackward {
    type State = (
        FloatTensor<B>,
        FloatTensor<B>,
        FloatTensor<B>,
        FloatTensor<B>,
        FloatTensor<B>,
    );

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let [px, pg, pb] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (x, gamma, beta, mean, variance) = ops.state;
        let (dx, dgamma, dbeta) =
            B::bn_lif_train_backward(x, gamma, beta, mean, variance, self.params, grad);
        register_grads::<B, 3>(
            grads,
            [px, pg, pb].map(|p| p.map(|p| p.id)),
            [dx, dgamma, dbeta],
        );
    }
}

impl<B: Backend + BnLifOps, C: CheckpointStrategy> BnLifOps for Autodiff<B, C> {
    fn bn_lif_train(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        params: Params,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let (x_in, g_in, b_in) = (
            x.primitive().clone(),
            gamma.primitive().clone(),
            beta.primitive().clone(),
        );
        let (out, mean, var) = B::bn_lif_train(x_in.clone(), g_in.clone(), b_in.clone(), params);
        let out = match (BnLifBackward { params })
            .prepare::<C>([x.node(), gamma.node(), beta.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                prep.finish((x_in, g_in, b_in, mean.clone(), var.clone()), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(out),
        };
        (out, Self::from_inner(mean), Self::from_inner(var))
    }

    fn bn_lif_train_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        variance: FloatTensor<Self>,
        params: Params,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        // Second-order gradients are not supported: the results are constants.
        constants::<B, C>(B::bn_lif_train_backward(
            x.into_primitive(),
            gamma.into_primitive(),
            beta.into_primitive(),
            mean.into_primitive(),
            variance.into_primitive(),
            params,
            grad.into_primitive(),
        ))
    }
}
