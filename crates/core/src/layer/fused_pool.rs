//! Direct k×k / stride k average pooling (no padding, floor mode) for the Flex CPU backend,
//! forward and backward, as a burn backend extension with a hand-written autodiff backward.
//!
//! On the contiguous `[N, C, H, W]` layout each output row reads `k` input rows and writes one
//! row (`H' = ⌊H/k⌋`, `W' = ⌊W/k⌋`); backward writes every input row once from one gradient
//! row (the windows do not overlap, so there is no scatter-add), zeros where the floor mode
//! drops trailing rows/columns. Planes run in parallel with rayon.
//!
//! Same arithmetic as Flex's `avg_pool2d` (sum in row-major window order, then divide by `k²`;
//! the gradient is `g / k²`), so values and gradients are bit-identical to burn's.
//!
//! Memory: burn's autodiff `avg_pool2d` keeps its input alive for backward (it only needs its
//! shape); this op keeps only the shape.

use std::mem::MaybeUninit;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{
    Autodiff, AutodiffBackend, Backend, Dispatch, Flex, TensorMetadata, backend_extension,
};
use burn::tensor::Tensor;
use rayon::prelude::*;

use super::fused_ops::{OutPtr, f32_values, flex_f32, flex_tensor, simd_dispatch, written};

/// Below this many output elements the kernels run on the calling thread.
const PARALLEL_MIN: usize = 1 << 14;

/// Whether the fused op can pool `x` `[N, C, H, W]` with `kernel`/`stride`/`padding`: square
/// kernel equal to the stride, no padding, `H, W ≥ k`, f32 on Flex.
pub fn supports(x: &Tensor<4>, kernel: [usize; 2], stride: [usize; 2], padding: usize) -> bool {
    let [_, _, h, w] = x.dims();
    let k = kernel[0];
    k >= 1 && kernel[1] == k && stride == [k, k] && padding == 0 && h >= k && w >= k && flex_f32(x)
}

/// `[N, C, H, W]` → `[N, C, ⌊H/k⌋, ⌊W/k⌋]` (differentiable on an autodiff device).
///
/// # Panics
/// If [`supports`] is false for `kernel = stride = [k, k]`, no padding.
pub fn avg_pool(x: Tensor<4>, k: usize) -> Tensor<4> {
    assert!(
        supports(&x, [k, k], [k, k], 0),
        "fused avg-pool: unsupported input"
    );
    Tensor::from_dispatch(<Dispatch as AvgPoolOps>::avg_pool_k(x.into_dispatch(), k))
}

/// The direct average pool as a backend extension (Flex + Autodiff).
#[backend_extension(Flex, Autodiff)]
pub trait AvgPoolOps: Backend {
    /// k×k / stride k average pooling of `x` `[N, C, H, W]`.
    fn avg_pool_k(x: FloatTensor<Self>, k: usize) -> FloatTensor<Self>;
    /// `dL/dx` `[N, C, H, W]` (= `input_shape`) for `dL/dout = grad` `[N, C, H/k, W/k]`.
    fn avg_pool_k_backward(
        grad: FloatTensor<Self>,
        k: usize,
        input_shape: [usize; 4],
    ) -> FloatTensor<Self>;
}

fn dims4(x: &FlexTensor) -> [usize; 4] {
    let s = x.shape();
    assert_eq!(s.num_dims(), 4, "fused avg-pool: [N, C, H, W] expected");
    [s[0], s[1], s[2], s[3]]
}

impl AvgPoolOps for Flex {
    fn avg_pool_k(x: FlexTensor, k: usize) -> FlexTensor {
        let [n, c, h, w] = dims4(&x);
        let xs = f32_values(&x);
        let (oh, ow) = (h / k, w / k);
        // SAFETY: the kernel writes every output value.
        let out = unsafe { written(n * c * oh * ow, |o| kernel::forward(&xs, o, n * c, h, w, k)) };
        flex_tensor(out, vec![n, c, oh, ow])
    }

    fn avg_pool_k_backward(grad: FlexTensor, k: usize, input_shape: [usize; 4]) -> FlexTensor {
        let [n, c, h, w] = input_shape;
        assert_eq!(
            dims4(&grad),
            [n, c, h / k, w / k],
            "fused avg-pool: gradient shape"
        );
        let gs = f32_values(&grad);
        // SAFETY: the kernel writes every input-gradient value.
        let out = unsafe { written(n * c * h * w, |o| kernel::backward(&gs, o, n * c, h, w, k)) };
        flex_tensor(out, input_shape.to_vec())
    }
}

/// The backward step: carries the kernel size and the input shape, no tensor state.
#[derive(Debug)]
struct PoolBackward {
    k: usize,
    input_shape: [usize; 4],
}

impl<B: Backend + AvgPoolOps> Backward<B, 1> for PoolBackward {
    type State = ();

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let [parent] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        if let Some(parent) = parent {
            let gx = B::avg_pool_k_backward(grad, self.k, self.input_shape);
            grads.register::<B>(parent.id, gx);
        }
    }
}

impl<B: Backend + AvgPoolOps, C: CheckpointStrategy> AvgPoolOps for Autodiff<B, C> {
    fn avg_pool_k(x: FloatTensor<Self>, k: usize) -> FloatTensor<Self> {
        let s = x.primitive().shape();
        let input_shape = [s[0], s[1], s[2], s[3]];
        let out = B::avg_pool_k(x.primitive().clone(), k);
        match (PoolBackward { k, input_shape })
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish((), out),
            OpsKind::UnTracked(prep) => prep.finish(out),
        }
    }

    fn avg_pool_k_backward(
        grad: FloatTensor<Self>,
        k: usize,
        input_shape: [usize; 4],
    ) -> FloatTensor<Self> {
        // Second-order gradients are not supported: the result is a constant.
        Self::from_inner(B::avg_pool_k_backward(
            grad.into_primitive(),
            k,
            input_shape,
        ))
    }
}

/// The CPU kernels on contiguous `[planes, H, W]` slices.
pub mod kernel {
    use super::*;

    /// Runs `f(first_plane, planes)` over groups of planes, in parallel when `work` is large.
    fn for_planes(planes: usize, work: usize, f: impl Fn(usize, usize) + Send + Sync) {
        let threads = rayon::current_num_threads().max(1);
        if work < PARALLEL_MIN || planes < 2 || threads < 2 {
            f(0, planes);
            return;
        }
        let per = planes.div_ceil(threads * 4).max(1);
        (0..planes.div_ceil(per)).into_par_iter().for_each(|i| {
            let p0 = i * per;
            f(p0, per.min(planes - p0));
        });
    }

    /// Forward: `out` `[planes, H/k, W/k]` from `x` `[planes, H, W]`.
    pub fn forward(
        x: &[f32],
        out: &mut [MaybeUninit<f32>],
        planes: usize,
        h: usize,
        w: usize,
        k: usize,
    ) {
        let (oh, ow) = (h / k, w / k);
        assert_eq!(x.len(), planes * h * w);
        assert_eq!(out.len(), planes * oh * ow);
        let out_p = OutPtr(out.as_mut_ptr().cast());
        for_planes(planes, out.len(), move |p0, np| {
            // SAFETY: planes [p0, p0 + np) of `out` belong to this call only.
            let o = unsafe { out_p.uninit(p0 * oh * ow, np * oh * ow) };
            forward_planes(&x[p0 * h * w..(p0 + np) * h * w], o, np, h, w, k);
        });
    }

    simd_dispatch! {
        /// [`forward_planes_body`].
        fn forward_planes[](x: &[f32], o: &mut [MaybeUninit<f32>], np: usize, h: usize, w: usize, k: usize)
            => forward_planes_body[]
    }

    /// Forward of `np` planes: `o` `[np, H/k, W/k]` from `x` `[np, H, W]`.
    #[inline(always)]
    fn forward_planes_body(
        x: &[f32],
        o: &mut [MaybeUninit<f32>],
        np: usize,
        h: usize,
        w: usize,
        k: usize,
    ) {
        let (oh, ow) = (h / k, w / k);
        let div = (k * k) as f32;
        {
            for p in 0..np {
                let xin = &x[p * h * w..(p + 1) * h * w];
                let op = &mut o[p * oh * ow..(p + 1) * oh * ow];
                for i in 0..oh {
                    let orow = &mut op[i * ow..(i + 1) * ow];
                    if k == 2 {
                        let r0 = &xin[2 * i * w..2 * i * w + 2 * ow];
                        let r1 = &xin[(2 * i + 1) * w..(2 * i + 1) * w + 2 * ow];
                        for (j, o) in orow.iter_mut().enumerate() {
                            // Flex's order: a running sum over the window, row-major.
                            o.write((r0[2 * j] + r0[2 * j + 1] + r1[2 * j] + r1[2 * j + 1]) / div);
                        }
                    } else {
                        for (j, o) in orow.iter_mut().enumerate() {
                            let mut s = 0.0f32;
                            for kh in 0..k {
                                let row = &xin[(i * k + kh) * w + j * k..][..k];
                                for &v in row {
                                    s += v;
                                }
                            }
                            o.write(s / div);
                        }
                    }
                }
            }
        }
    }

    /// Backward: `gx` `[planes, H, W]` from `g` `[planes, H/k, W/k]`.
    pub fn backward(
        g: &[f32],
        gx: &mut [MaybeUninit<f32>],
        planes: usize,
        h: usize,
        w: usize,
        k: usize,
    ) {
        let (oh, ow) = (h / k, w / k);
        assert_eq!(g.len(), planes * oh * ow);
        assert_eq!(gx.len(), planes * h * w);
        let out_p = OutPtr(gx.as_mut_ptr().cast());
        for_planes(planes, gx.len(), move |p0, np| {
            // SAFETY: planes [p0, p0 + np) of `gx` belong to this call only.
            let o = unsafe { out_p.uninit(p0 * h * w, np * h * w) };
            backward_planes(&g[p0 * oh * ow..(p0 + np) * oh * ow], o, np, h, w, k);
        });
    }

    simd_dispatch! {
        /// [`backward_planes_body`].
        fn backward_planes[](g: &[f32], o: &mut [MaybeUninit<f32>], np: usize, h: usize, w: usize, k: usize)
            => backward_planes_body[]
    }

    /// Backward of `np` planes: `o` `[np, H, W]` from `g` `[np, H/k, W/k]`.
    #[inline(always)]
    fn backward_planes_body(
        g: &[f32],
        o: &mut [MaybeUninit<f32>],
        np: usize,
        h: usize,
        w: usize,
        k: usize,
    ) {
        let (oh, ow) = (h / k, w / k);
        let div = (k * k) as f32;
        {
            for p in 0..np {
                let gp = &g[p * oh * ow..(p + 1) * oh * ow];
                let op = &mut o[p * h * w..(p + 1) * h * w];
                let zero = MaybeUninit::new(0.0);
                for i in 0..oh {
                    let grow = &gp[i * ow..(i + 1) * ow];
                    for kh in 0..k {
                        let (orow, rest) =
                            op[(i * k + kh) * w..(i * k + kh + 1) * w].split_at_mut(ow * k);
                        if k == 2 {
                            for (pair, &gv) in orow.chunks_exact_mut(2).zip(grow) {
                                let v = gv / div;
                                pair[0].write(v);
                                pair[1].write(v);
                            }
                        } else {
                            for (win, &gv) in orow.chunks_exact_mut(k).zip(grow) {
                                win.fill(MaybeUninit::new(gv / div));
                            }
                        }
                        // Columns beyond `ow·k` get no gradient (floor mode drops them).
                        rest.fill(zero);
                    }
                }
                // Rows beyond `oh·k` get no gradient either.
                op[oh * k * w..].fill(zero);
            }
        }
    }
}
