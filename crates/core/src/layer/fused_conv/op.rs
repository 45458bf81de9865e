//! The convolution as a burn backend extension: the Flex implementation (the CPU kernels of
//! [`super::kernel`]), the autodiff wrapper and its backward step.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, DType, Flex, TensorMetadata, backend_extension};
use burn::tensor::TensorData;
use rayon::prelude::*;

use super::{SparsePass, kernel};
use crate::kernels::KernelPolicy;
use crate::layer::fused_ops::{Filled, constants, f32_values, flex_tensor, register_grads};

/// The convolution as a backend extension (Flex + Autodiff).
#[backend_extension(Flex, Autodiff)]
pub trait ConvOps: Backend {
    /// `x` ⊛ `weight` + `bias`.
    fn conv2d_spk(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        stride: usize,
        padding: usize,
        policy: KernelPolicy,
    ) -> FloatTensor<Self>;
    /// The input as kept for backward: with `pack` ([`KernelPolicy::pack_spikes`]) on, spikes (every value 0 or 1)
    /// packed one byte each (a u8 tensor of the same shape, 4× smaller than f32); anything else,
    /// or with packing off, unchanged.
    /// [`ConvOps::conv2d_spk_backward`] accepts either form.
    fn conv2d_spk_pack(x: FloatTensor<Self>, pack: bool) -> FloatTensor<Self>;
    /// `(dx, dweight, dbias)` for `dL/dout = grad`; when `input_grad` is false, `dx` is not
    /// computed and is an empty tensor `[0]` (the input is not tracked, e.g. the first layer).
    fn conv2d_spk_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        stride: usize,
        padding: usize,
        input_grad: bool,
        policy: KernelPolicy,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
}

fn dims4(x: &FlexTensor, what: &str) -> [usize; 4] {
    let s = x.shape();
    assert_eq!(s.num_dims(), 4, "fused conv: {what} must be 4-D");
    [s[0], s[1], s[2], s[3]]
}

/// The forward on input values of either type: measures the density, picks the path and
/// writes all N·C_out·P outputs to `out`.
///
/// # Safety
/// As [`kernel::forward`]: `out` is valid for N·C_out·P writes, nothing else accesses them.
unsafe fn forward_into<V: kernel::Value>(
    g: &kernel::Geom,
    xs: &[V],
    ws: &[f32],
    bs: &[f32],
    out: crate::layer::fused_ops::OutPtr,
    policy: &KernelPolicy,
) {
    let density = kernel::density(xs);
    let sparse = policy.choose_sparse_at(density, SparsePass::Forward);
    super::record_forward(density, sparse);
    // SAFETY: the caller's guarantee.
    unsafe { kernel::forward(g, xs, ws, bs, out, sparse) };
}

impl ConvOps for Flex {
    fn conv2d_spk(
        x: FlexTensor,
        weight: FlexTensor,
        bias: FlexTensor,
        stride: usize,
        padding: usize,
        policy: KernelPolicy,
    ) -> FlexTensor {
        let g = kernel::Geom::new(
            dims4(&x, "input"),
            dims4(&weight, "weight"),
            stride,
            padding,
        );
        let (ws, bs) = (f32_values(&weight), f32_values(&bias));
        assert_eq!(bs.len(), g.cout, "fused conv: bias shape");
        let mut out = Filled::new(g.n * g.cout * g.p());
        // Spikes packed to bytes by `conv2d_spk_pack` (the recomputing conv → BN → LIF op
        // convolves its kept input again) are read as they are, like the backward does.
        // SAFETY: `out` has room for exactly the N·C_out·P outputs, owned here.
        match x.dtype() {
            DType::U8 => {
                let bytes = x.to_contiguous();
                let xs = bytes.as_slice::<u8>().expect("u8 spikes");
                unsafe { forward_into(&g, xs, &ws, &bs, out.ptr(), &policy) }
            }
            _ => unsafe { forward_into(&g, &f32_values(&x)[..], &ws, &bs, out.ptr(), &policy) },
        }
        // SAFETY: `forward_into` wrote every output.
        let out = unsafe { out.into_vec() };
        flex_tensor(out, vec![g.n, g.cout, g.oh, g.ow])
    }

    fn conv2d_spk_pack(x: FlexTensor, pack: bool) -> FlexTensor {
        if x.dtype() != DType::F32 || !pack {
            return x;
        }
        let values = f32_values(&x);
        let mut bytes = vec![0u8; values.len()];
        // One parallel pass: convert, and stop at the first value that is not 0 or 1.
        let binary = bytes
            .par_chunks_mut(1 << 15)
            .zip(values.par_chunks(1 << 15))
            .all(|(b, v)| {
                for (d, &x) in b.iter_mut().zip(v) {
                    if x == 1.0 {
                        *d = 1;
                    } else if x != 0.0 {
                        return false;
                    }
                }
                true
            });
        drop(values);
        if !binary {
            return x;
        }
        FlexTensor::from_data(TensorData::new(bytes, x.shape().to_vec()))
    }

    fn conv2d_spk_backward(
        x: FlexTensor,
        weight: FlexTensor,
        grad: FlexTensor,
        stride: usize,
        padding: usize,
        input_grad: bool,
        policy: KernelPolicy,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        let g = kernel::Geom::new(
            dims4(&x, "input"),
            dims4(&weight, "weight"),
            stride,
            padding,
        );
        assert_eq!(
            dims4(&grad, "gradient"),
            [g.n, g.cout, g.oh, g.ow],
            "fused conv: gradient shape"
        );
        let (ws, gs) = (f32_values(&weight), f32_values(&grad));
        let mut dx = Filled::new(if input_grad {
            g.n * g.cin * g.h * g.w
        } else {
            0
        });
        let mut dw = vec![0.0f32; ws.len()];
        let mut db = vec![0.0f32; g.cout];

        let dx_out = input_grad.then(|| dx.ptr());
        match x.dtype() {
            // Spikes packed to bytes by `conv2d_spk_pack`: read as they are.
            DType::U8 => {
                let bytes = x.to_contiguous();
                let xs = bytes.as_slice::<u8>().expect("u8 spikes");
                let sparse = kernel::choose_sparse(xs, SparsePass::WeightGradient, &policy);
                // SAFETY: `dx` has room for the N·C_in·H·W input gradients, owned here.
                unsafe { kernel::backward(&g, xs, &ws, &gs, dx_out, &mut dw, &mut db, sparse) };
            }
            _ => {
                let xs = f32_values(&x);
                let sparse = kernel::choose_sparse(&xs[..], SparsePass::WeightGradient, &policy);
                // SAFETY: as above.
                unsafe {
                    kernel::backward(&g, &xs[..], &ws, &gs, dx_out, &mut dw, &mut db, sparse)
                };
            }
        }
        // SAFETY: `kernel::backward` writes every input-gradient value when asked for them
        // (and there are none otherwise).
        let dx = unsafe { dx.into_vec() };
        let dx_shape = if input_grad {
            vec![g.n, g.cin, g.h, g.w]
        } else {
            vec![0]
        };
        (
            flex_tensor(dx, dx_shape),
            flex_tensor(dw, vec![g.cout, g.cin, g.kh, g.kw]),
            flex_tensor(db, vec![g.cout]),
        )
    }
}

/// The backward step; its state is `(x, weight)` of the forward, `x` packed to one byte per
/// value when it is spikes.
#[derive(Debug)]
struct ConvBackward {
    stride: usize,
    padding: usize,
    policy: KernelPolicy,
}

impl<B: Backend + ConvOps> Backward<B, 3> for ConvBackward {
    type State = (FloatTensor<B>, FloatTensor<B>);

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let [px, pw, pb] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (x, weight) = ops.state;
        let input_grad = px.is_some();
        let (dx, dw, db) = B::conv2d_spk_backward(
            x,
            weight,
            grad,
            self.stride,
            self.padding,
            input_grad,
            self.policy,
        );
        register_grads::<B, 3>(grads, [px, pw, pb].map(|p| p.map(|p| p.id)), [dx, dw, db]);
    }
}

impl<B: Backend + ConvOps, C: CheckpointStrategy> ConvOps for Autodiff<B, C> {
    fn conv2d_spk(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        stride: usize,
        padding: usize,
        policy: KernelPolicy,
    ) -> FloatTensor<Self> {
        let (x_in, w_in) = (x.primitive().clone(), weight.primitive().clone());
        let out = B::conv2d_spk(
            x_in.clone(),
            w_in.clone(),
            bias.primitive().clone(),
            stride,
            padding,
            policy,
        );
        match (ConvBackward {
            stride,
            padding,
            policy,
        })
        .prepare::<C>([x.node(), weight.node(), bias.node()])
        .compute_bound()
        .stateful()
        {
            OpsKind::Tracked(prep) => {
                prep.finish((B::conv2d_spk_pack(x_in, policy.pack_spikes), w_in), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(out),
        }
    }

    fn conv2d_spk_pack(x: FloatTensor<Self>, _pack: bool) -> FloatTensor<Self> {
        // Only the inner backend's tensors are packed (inside `conv2d_spk`); an autodiff
        // tensor passes through.
        x
    }

    fn conv2d_spk_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        stride: usize,
        padding: usize,
        input_grad: bool,
        policy: KernelPolicy,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        // Second-order gradients are not supported: the results are constants.
        constants::<B, C>(B::conv2d_spk_backward(
            x.into_primitive(),
            weight.into_primitive(),
            grad.into_primitive(),
            stride,
            padding,
            input_grad,
            policy,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spikes_are_packed_to_bytes_for_backward_and_read_back_exactly() {
        let spikes = vec![0.0f32, 1.0, 1.0, 0.0, 0.0, 1.0];
        let packed =
            <Flex as ConvOps>::conv2d_spk_pack(flex_tensor(spikes.clone(), vec![1, 1, 2, 3]), true);
        assert_eq!(packed.dtype(), DType::U8);
        assert_eq!(packed.shape().to_vec(), vec![1, 1, 2, 3]);
        let bytes: Vec<f32> = packed
            .as_slice::<u8>()
            .unwrap()
            .iter()
            .map(|&b| f32::from(b))
            .collect();
        assert_eq!(bytes, spikes);
        // Anything that is not 0/1 stays f32.
        let analogue = vec![0.0f32, 0.5, 1.0, 2.0];
        let kept = <Flex as ConvOps>::conv2d_spk_pack(
            flex_tensor(analogue.clone(), vec![1, 1, 2, 2]),
            true,
        );
        assert_eq!(kept.dtype(), DType::F32);
        assert_eq!(f32_values(&kept).to_vec(), analogue);
    }
}
