//! Training-mode BatchNorm over `[N, C, ...]` (in the SNN layers `N = T·B`) for the Flex CPU
//! backend with the statistics and the backward in one sweep each, as a burn backend extension
//! with a hand-written autodiff backward.
//!
//! Per channel `c` (`M = N·H·W` values, channels in parallel):
//!
//! ```text
//! forward   pass 1: Σ(x − K), Σ(x − K)²  (K = the channel's first value, f64 totals)
//!                   → mean μ, biased variance σ² (what burn returns and feeds its running stats)
//!           pass 2: y = (x − μ)·γ/√(σ² + ε) + β
//! backward  pass 1: dβ = Σ g,  dγ = Σ g·(x − μ)/√(σ² + ε)
//!           pass 2: dx = γ/√(σ² + ε) · (g − dβ/M − x̂·dγ/M),  x̂ = (x − μ)/√(σ² + ε)
//! ```
//!
//! burn's generic `batch_norm_train` (which Flex does not override) runs the same maths as about
//! ten tensor ops, each a full pass, with `swap_dims` + reshape copies of the whole activation
//! (Flex's `copy_2d_tiled`) for the per-channel reductions; its backward likewise.
//!
//! The running statistics are updated by [`forward_train`] exactly as `burn::nn::BatchNorm`
//! does (momentum `m`: `r ← (1 − m)·r + m·stat`, with the *biased* batch variance).

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
use rayon::prelude::*;

use super::fused_ops::{
    OutPtr, constants, f32_values, flex_f32, flex_tensor, register_grads, simd_dispatch, zeroed,
};

/// Below this many elements the kernels run on the calling thread.
const PARALLEL_MIN: usize = 1 << 15;

/// Whether the fused op can normalise `x` `[N, C, ...]` (f32 on Flex, rank ≥ 2).
pub fn supports<const D: usize>(x: &Tensor<D>) -> bool {
    D >= 2 && flex_f32(x)
}

/// `burn::nn::BatchNorm::forward` in training mode (an autodiff device and the layer's training
/// flag on) through the fused op; burn's own forward otherwise (inference with the running
/// statistics) or when [`supports`] is false.
pub fn forward<const D: usize>(bn: &BatchNorm, x: Tensor<D>) -> Tensor<D> {
    if uses_batch_statistics(bn, &x) && supports(&x) {
        forward_train(bn, x)
    } else {
        bn.forward(x)
    }
}

/// Whether `bn` normalises `x` with the batch's statistics (training: an autodiff device and
/// the layer's training flag on) rather than its running statistics (inference).
pub fn uses_batch_statistics<const D: usize>(bn: &BatchNorm, x: &Tensor<D>) -> bool {
    x.device().is_autodiff() && bn.training.is_enabled()
}

/// Output and batch statistics: `(output, mean [C], biased variance [C])`; the statistics are
/// constants (detached). Differentiable with respect to `x`, `gamma` and `beta`.
///
/// # Panics
/// If [`supports`] is false or `gamma`/`beta` are not `[C]`.
pub fn batch_norm_train<const D: usize>(
    x: Tensor<D>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    epsilon: f64,
) -> (Tensor<D>, Tensor<1>, Tensor<1>) {
    assert!(supports(&x), "fused BatchNorm: unsupported input");
    let channels = x.dims()[1];
    assert_eq!(gamma.dims(), [channels], "fused BatchNorm: gamma shape");
    assert_eq!(beta.dims(), [channels], "fused BatchNorm: beta shape");
    let (y, mean, var) = <Dispatch as BatchNormOps>::bn_train(
        x.into_dispatch(),
        gamma.into_dispatch(),
        beta.into_dispatch(),
        epsilon,
    );
    (
        Tensor::from_dispatch(y),
        Tensor::from_dispatch(mean),
        Tensor::from_dispatch(var),
    )
}

/// The training forward of `bn` with the fused op, updating its running statistics as burn's
/// `BatchNorm::forward_train` does.
pub fn forward_train<const D: usize>(bn: &BatchNorm, x: Tensor<D>) -> Tensor<D> {
    let device = x.device();
    let (output, mean, variance) = batch_norm_train(x, bn.gamma.val(), bn.beta.val(), bn.epsilon);
    update_running_statistics(bn, mean, variance, &device);
    output
}

/// `bn`'s running statistics moved towards the batch's `mean` and biased `variance` as burn's
/// `BatchNorm::forward_train` does (`r ← (1 − m)·r + m·stat`).
pub fn update_running_statistics(
    bn: &BatchNorm,
    mean: Tensor<1>,
    variance: Tensor<1>,
    device: &burn::tensor::Device,
) {
    let running_mean = bn.running_mean.value_sync().to_device(device);
    let running_var = bn.running_var.value_sync().to_device(device);
    let running_mean = running_mean
        .mul_scalar(1.0 - bn.momentum)
        .add(mean.detach().mul_scalar(bn.momentum));
    let running_var = running_var
        .mul_scalar(1.0 - bn.momentum)
        .add(variance.detach().mul_scalar(bn.momentum));
    bn.running_mean.update(running_mean.detach());
    bn.running_var.update(running_var.detach());
}

/// The fused training-mode BatchNorm as a backend extension (Flex + Autodiff).
#[backend_extension(Flex, Autodiff)]
pub trait BatchNormOps: Backend {
    /// `(output, mean [C], biased variance [C])` of `x` `[N, C, ...]`.
    fn bn_train(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
    /// `(dx, dgamma, dbeta)` for `dL/doutput = grad`, with the statistics of the forward.
    fn bn_train_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        variance: FloatTensor<Self>,
        epsilon: f64,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
}

/// `(N, C, inner)` of a `[N, C, ...]` shape.
pub(crate) fn ncl(shape: &[usize]) -> (usize, usize, usize) {
    assert!(shape.len() >= 2, "fused BatchNorm: rank ≥ 2 expected");
    (shape[0], shape[1], shape[2..].iter().product())
}

impl BatchNormOps for Flex {
    fn bn_train(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        epsilon: f64,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        let shape = x.shape().to_vec();
        let (n, c, inner) = ncl(&shape);
        let xs = f32_values(&x);
        let (gs, bs) = (f32_values(&gamma), f32_values(&beta));
        assert_eq!(
            (gs.len(), bs.len()),
            (c, c),
            "fused BatchNorm: gamma/beta shape"
        );
        let mut out = zeroed(xs.len());
        let (mut mean, mut var) = (vec![0.0f32; c], vec![0.0f32; c]);
        kernel::forward(
            &xs,
            &gs,
            &bs,
            epsilon,
            [n, c, inner],
            &mut out,
            &mut mean,
            &mut var,
        );
        (
            flex_tensor(out, shape),
            flex_tensor(mean, vec![c]),
            flex_tensor(var, vec![c]),
        )
    }

    fn bn_train_backward(
        x: FlexTensor,
        gamma: FlexTensor,
        mean: FlexTensor,
        variance: FlexTensor,
        epsilon: f64,
        grad: FlexTensor,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        let shape = x.shape().to_vec();
        assert_eq!(
            grad.shape().to_vec(),
            shape,
            "fused BatchNorm: gradient shape"
        );
        let (n, c, inner) = ncl(&shape);
        let xs = f32_values(&x);
        let g = f32_values(&grad);
        let (gam, mu, var) = (f32_values(&gamma), f32_values(&mean), f32_values(&variance));
        let mut dx = zeroed(xs.len());
        let (mut dgamma, mut dbeta) = (vec![0.0f32; c], vec![0.0f32; c]);
        kernel::backward(
            &xs,
            &g,
            &gam,
            &mu,
            &var,
            epsilon,
            [n, c, inner],
            &mut dx,
            &mut dgamma,
            &mut dbeta,
        );
        (
            flex_tensor(dx, shape),
            flex_tensor(dgamma, vec![c]),
            flex_tensor(dbeta, vec![c]),
        )
    }
}

/// The backward step; its state is `(x, gamma, mean, variance)` of the forward.
#[derive(Debug)]
struct BnBackward {
    epsilon: f64,
}

impl<B: Backend + BatchNormOps> Backward<B, 3> for BnBackward {
    type State = (
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
        let (x, gamma, mean, variance) = ops.state;
        let (dx, dgamma, dbeta) =
            B::bn_train_backward(x, gamma, mean, variance, self.epsilon, grad);
        register_grads::<B, 3>(
            grads,
            [px, pg, pb].map(|p| p.map(|p| p.id)),
            [dx, dgamma, dbeta],
        );
    }
}

impl<B: Backend + BatchNormOps, C: CheckpointStrategy> BatchNormOps for Autodiff<B, C> {
    fn bn_train(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let (x_in, g_in) = (x.primitive().clone(), gamma.primitive().clone());
        let (out, mean, var) = B::bn_train(
            x_in.clone(),
            g_in.clone(),
            beta.primitive().clone(),
            epsilon,
        );
        let out = match (BnBackward { epsilon })
            .prepare::<C>([x.node(), gamma.node(), beta.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish((x_in, g_in, mean.clone(), var.clone()), out),
            OpsKind::UnTracked(prep) => prep.finish(out),
        };
        (out, Self::from_inner(mean), Self::from_inner(var))
    }

    fn bn_train_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        variance: FloatTensor<Self>,
        epsilon: f64,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        // Second-order gradients are not supported: the results are constants.
        constants::<B, C>(B::bn_train_backward(
            x.into_primitive(),
            gamma.into_primitive(),
            mean.into_primitive(),
            variance.into_primitive(),
            epsilon,
            grad.into_primitive(),
        ))
    }
}

/// The CPU kernels on contiguous `[N, C, inner]` slices.
pub mod kernel {
    use super::*;

    /// Values summed in f32 lanes before each flush into the f64 totals.
    const FLUSH: usize = 512;

    /// `(Σ a(v), Σ b(v))` over `xs` with 8 f32 lanes per block of [`FLUSH`] values, f64 totals.
    #[inline(always)]
    pub fn sum2<F: Fn(f32, f32) -> (f32, f32) + Copy>(xs: &[f32], ys: &[f32], f: F) -> (f64, f64) {
        let (mut t1, mut t2) = (0.0f64, 0.0f64);
        for (xb, yb) in xs.chunks(FLUSH).zip(ys.chunks(FLUSH)) {
            let (mut l1, mut l2) = ([0.0f32; 8], [0.0f32; 8]);
            let (xc, yc) = (xb.chunks_exact(8), yb.chunks_exact(8));
            let (xr, yr) = (xc.remainder(), yc.remainder());
            for (x8, y8) in xc.zip(yc) {
                for i in 0..8 {
                    let (a, b) = f(x8[i], y8[i]);
                    l1[i] += a;
                    l2[i] += b;
                }
            }
            for (&x, &y) in xr.iter().zip(yr) {
                let (a, b) = f(x, y);
                l1[0] += a;
                l2[0] += b;
            }
            t1 += l1.iter().map(|&v| v as f64).sum::<f64>();
            t2 += l2.iter().map(|&v| v as f64).sum::<f64>();
        }
        (t1, t2)
    }

    /// Runs `f(channel)` for every channel, in parallel when `total` is large.
    fn for_channels(c: usize, total: usize, f: impl Fn(usize) + Send + Sync) {
        if total < PARALLEL_MIN || c < 2 || rayon::current_num_threads() < 2 {
            (0..c).for_each(f);
        } else {
            (0..c).into_par_iter().for_each(f);
        }
    }

    simd_dispatch! {
        /// `o = (x − μ)·scale + bias`.
        fn normalise[](o: &mut [f32], x: &[f32], mu: f32, scale: f32, bias: f32)
            => normalise_body[]
    }
    #[inline(always)]
    fn normalise_body(o: &mut [f32], x: &[f32], mu: f32, scale: f32, bias: f32) {
        for (o, &v) in o.iter_mut().zip(x) {
            *o = (v - mu) * scale + bias;
        }
    }

    simd_dispatch! {
        /// `o ← dx(o, x)` ([`Grad::dx`]).
        fn grad_in_place[](o: &mut [f32], x: &[f32], gr: Grad) => grad_in_place_body[]
    }
    #[inline(always)]
    fn grad_in_place_body(o: &mut [f32], x: &[f32], gr: Grad) {
        for (o, &xv) in o.iter_mut().zip(x) {
            *o = gr.dx(*o, xv);
        }
    }

    simd_dispatch! {
        /// `o = dx(g, x)` ([`Grad::dx`]).
        fn grad_from[](o: &mut [f32], g: &[f32], x: &[f32], gr: Grad) => grad_from_body[]
    }
    #[inline(always)]
    fn grad_from_body(o: &mut [f32], g: &[f32], x: &[f32], gr: Grad) {
        for ((o, &gv), &xv) in o.iter_mut().zip(g).zip(x) {
            *o = gr.dx(gv, xv);
        }
    }

    simd_dispatch! {
        /// [`sum2`] compiled for AVX2 where available, `(Σ a, Σ b)` of `(a, b) = f(x, y)`.
        pub fn sum2_fast[F: Fn(f32, f32) -> (f32, f32) + Copy](xs: &[f32], ys: &[f32], f: F)
            -> (f64, f64) => sum2[F]
    }

    /// The mean and biased variance of channel `ch` of `x` `[N, C, inner]`: shifted sums
    /// `Σ(x − K)`, `Σ(x − K)²` (`K` = the channel's first value) in f32 lanes, f64 totals.
    pub fn channel_statistics(x: &[f32], [n, c, inner]: [usize; 3], ch: usize) -> (f32, f32) {
        let m = (n * inner) as f64;
        let shift = x[ch * inner];
        let (mut s1, mut s2) = (0.0f64, 0.0f64);
        for b in 0..n {
            let s = &x[(b * c + ch) * inner..(b * c + ch + 1) * inner];
            let (a, q) = sum2_fast(s, s, |v, _| {
                let d = v - shift;
                (d, d * d)
            });
            s1 += a;
            s2 += q;
        }
        let d_mean = s1 / m;
        let mu = shift as f64 + d_mean;
        let sigma2 = (s2 / m - d_mean * d_mean).max(0.0);
        (mu as f32, sigma2 as f32)
    }

    /// `γ/√(σ² + ε)` in f32, computed in f64 (the normalisation's scale).
    pub fn scale_of(gamma: f32, var: f32, epsilon: f64) -> f32 {
        let inv_std = 1.0 / ((var as f64) + epsilon).sqrt();
        (gamma as f64 * inv_std) as f32
    }

    /// Mean and biased variance of every channel of `x` `[N, C, inner]`, in parallel.
    pub fn statistics(x: &[f32], dims: [usize; 3], mean: &mut [f32], var: &mut [f32]) {
        let c = dims[1];
        assert_eq!((mean.len(), var.len()), (c, c));
        let (mean_p, var_p) = (OutPtr(mean.as_mut_ptr()), OutPtr(var.as_mut_ptr()));
        for_channels(c, x.len(), move |ch| {
            let (mu, v) = channel_statistics(x, dims, ch);
            // SAFETY: mean/var[ch] belong to this channel only.
            unsafe {
                mean_p.slice(ch, 1)[0] = mu;
                var_p.slice(ch, 1)[0] = v;
            }
        });
    }

    /// The per-channel constants of the input gradient and the parameter gradients.
    #[derive(Clone, Copy)]
    pub struct Grad {
        /// The channel's mean.
        pub mu: f32,
        /// `γ/√(σ² + ε)`.
        pub a: f32,
        /// `dβ/M`.
        pub mg: f32,
        /// `dγ/(M·√(σ² + ε))`.
        pub k: f32,
        /// `dγ = Σ g·(x − μ)/√(σ² + ε)`.
        pub dgamma: f64,
        /// `dβ = Σ g`.
        pub dbeta: f64,
    }

    impl Grad {
        /// From `(Σ g, Σ g·(x − μ))` of a channel of `M` values.
        pub fn new(
            (sg, sgx): (f64, f64),
            gamma: f32,
            mu: f32,
            var: f32,
            epsilon: f64,
            m: f64,
        ) -> Self {
            let inv_std = 1.0 / ((var as f64) + epsilon).sqrt();
            let dgamma = sgx * inv_std;
            Self {
                mu,
                a: (gamma as f64 * inv_std) as f32,
                mg: (sg / m) as f32,
                k: (inv_std * dgamma / m) as f32,
                dgamma,
                dbeta: sg,
            }
        }

        /// `dx = a·(g − mg − (x − μ)·k)`.
        #[inline(always)]
        pub fn dx(&self, g: f32, x: f32) -> f32 {
            self.a * (g - self.mg - (x - self.mu) * self.k)
        }
    }

    /// The gradient step of every channel, in parallel, with `(Σ g, Σ g·(x − μ))` given per
    /// channel in `sums` and `dx` holding `g` on entry (overwritten in place): see [`Grad`].
    #[allow(clippy::too_many_arguments)]
    pub fn apply_gradient(
        x: &[f32],
        dx: &mut [f32],
        gamma: &[f32],
        mean: &[f32],
        var: &[f32],
        epsilon: f64,
        [n, c, inner]: [usize; 3],
        sums: &[(f64, f64)],
        dgamma: &mut [f32],
        dbeta: &mut [f32],
    ) {
        assert_eq!(dx.len(), x.len());
        assert_eq!(sums.len(), c);
        let m = (n * inner) as f64;
        let (dx_p, dg_p, db_p) = (
            OutPtr(dx.as_mut_ptr()),
            OutPtr(dgamma.as_mut_ptr()),
            OutPtr(dbeta.as_mut_ptr()),
        );
        for_channels(c, x.len(), move |ch| {
            let gr = Grad::new(sums[ch], gamma[ch], mean[ch], var[ch], epsilon, m);
            for b in 0..n {
                let r = (b * c + ch) * inner..(b * c + ch + 1) * inner;
                // SAFETY: segment (b, ch) and dgamma/dbeta[ch] belong to this channel only.
                let o = unsafe { dx_p.slice(r.start, inner) };
                grad_in_place(o, &x[r], gr);
            }
            unsafe {
                dg_p.slice(ch, 1)[0] = gr.dgamma as f32;
                db_p.slice(ch, 1)[0] = gr.dbeta as f32;
            }
        });
    }

    /// Forward: `out`, `mean`, `var` (biased) for `x` `[N, C, inner]`.
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        x: &[f32],
        gamma: &[f32],
        beta: &[f32],
        epsilon: f64,
        [n, c, inner]: [usize; 3],
        out: &mut [f32],
        mean: &mut [f32],
        var: &mut [f32],
    ) {
        assert_eq!(x.len(), n * c * inner);
        assert_eq!(out.len(), x.len());
        let (out_p, mean_p, var_p) = (
            OutPtr(out.as_mut_ptr()),
            OutPtr(mean.as_mut_ptr()),
            OutPtr(var.as_mut_ptr()),
        );
        for_channels(c, x.len(), move |ch| {
            let seg = |b: usize| &x[(b * c + ch) * inner..(b * c + ch + 1) * inner];
            let (mu32, var32) = channel_statistics(x, [n, c, inner], ch);
            let scale = scale_of(gamma[ch], var32, epsilon);
            let bias = beta[ch];
            for b in 0..n {
                let s = seg(b);
                // SAFETY: segment (b, ch) and mean/var[ch] belong to this channel only.
                let o = unsafe { out_p.slice((b * c + ch) * inner, inner) };
                normalise(o, s, mu32, scale, bias);
            }
            unsafe {
                mean_p.slice(ch, 1)[0] = mu32;
                var_p.slice(ch, 1)[0] = var32;
            }
        });
    }

    /// Backward: `dx`, `dgamma`, `dbeta` for `g = dL/dout`, with the forward's statistics.
    #[allow(clippy::too_many_arguments)]
    pub fn backward(
        x: &[f32],
        g: &[f32],
        gamma: &[f32],
        mean: &[f32],
        var: &[f32],
        epsilon: f64,
        [n, c, inner]: [usize; 3],
        dx: &mut [f32],
        dgamma: &mut [f32],
        dbeta: &mut [f32],
    ) {
        assert_eq!(x.len(), n * c * inner);
        assert_eq!(g.len(), x.len());
        assert_eq!(dx.len(), x.len());
        let m = (n * inner) as f64;
        let (dx_p, dg_p, db_p) = (
            OutPtr(dx.as_mut_ptr()),
            OutPtr(dgamma.as_mut_ptr()),
            OutPtr(dbeta.as_mut_ptr()),
        );
        for_channels(c, x.len(), move |ch| {
            let range = |b: usize| (b * c + ch) * inner..(b * c + ch + 1) * inner;
            let mu = mean[ch];
            let (mut sg, mut sgx) = (0.0f64, 0.0f64);
            for b in 0..n {
                let r = range(b);
                let (a, q) = sum2_fast(&g[r.clone()], &x[r], |gv, xv| (gv, gv * (xv - mu)));
                sg += a;
                sgx += q;
            }
            let gr = Grad::new((sg, sgx), gamma[ch], mu, var[ch], epsilon, m);
            for b in 0..n {
                let r = range(b);
                // SAFETY: segment (b, ch) and dgamma/dbeta[ch] belong to this channel only.
                let o = unsafe { dx_p.slice(r.start, inner) };
                grad_from(o, &g[r.clone()], &x[r], gr);
            }
            unsafe {
                dg_p.slice(ch, 1)[0] = gr.dgamma as f32;
                db_p.slice(ch, 1)[0] = gr.dbeta as f32;
            }
        });
    }
}
