//! The fused LIF/IF op as a burn backend extension: the Flex implementation (the CPU kernels of
//! [`super::kernel`]), the autodiff wrapper and its backward step.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{
    Autodiff, AutodiffBackend, Backend, DType, Flex, TensorMetadata, backend_extension,
};

use super::kernel::Direct;
use super::{LifSpec, kernel};
use crate::layer::fused_ops::{f32_values, flex_tensor, written, zeroed};

/// The fused multi-step LIF as a backend extension (Flex + Autodiff).
#[backend_extension(Flex, Autodiff)]
pub trait LifOps: Backend {
    /// Spikes `[T, ...]` of the LIF/IF layer `spec` for the input current `x` `[T, ...]`.
    fn lif_forward(x: FloatTensor<Self>, spec: LifSpec) -> FloatTensor<Self>;
    /// `dL/dx` for `dL/dspikes = grad`, recomputing the membrane from `x`.
    fn lif_backward(
        x: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        spec: LifSpec,
    ) -> FloatTensor<Self>;
    /// `(spikes, h_pre_reset, mem_final [1, ...])`.
    fn lif_trace(
        x: FloatTensor<Self>,
        spec: LifSpec,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
}

/// `[T, N]` view of a Flex tensor's dims.
fn steps_and_neurons(shape: &[usize]) -> (usize, usize) {
    let t = shape[0];
    let n = shape[1..].iter().product();
    (t, n)
}

impl LifOps for Flex {
    fn lif_forward(x: FlexTensor, spec: LifSpec) -> FlexTensor {
        assert_eq!(x.dtype(), DType::F32, "fused LIF: f32 only");
        let shape = x.shape().to_vec();
        let (t, n) = steps_and_neurons(&shape);
        let xs = f32_values(&x);
        // SAFETY: the kernel writes every output value.
        let out = unsafe {
            written(t * n, |o| {
                kernel::forward_from(&Direct, &xs, o, None, None, t, n, &spec)
            })
        };
        flex_tensor(out, shape)
    }

    fn lif_backward(x: FlexTensor, grad: FlexTensor, spec: LifSpec) -> FlexTensor {
        assert_eq!(x.dtype(), DType::F32, "fused LIF: f32 only");
        let shape = x.shape().to_vec();
        assert_eq!(grad.shape().to_vec(), shape, "fused LIF: gradient shape");
        let (t, n) = steps_and_neurons(&shape);
        let xs = f32_values(&x);
        let gs = f32_values(&grad);
        let mut out = zeroed(t * n);
        kernel::backward(&xs, &gs, &mut out, t, n, &spec);
        flex_tensor(out, shape)
    }

    fn lif_trace(x: FlexTensor, spec: LifSpec) -> (FlexTensor, FlexTensor, FlexTensor) {
        assert_eq!(x.dtype(), DType::F32, "fused LIF: f32 only");
        let shape = x.shape().to_vec();
        let (t, n) = steps_and_neurons(&shape);
        let xs = f32_values(&x);
        let mut m = vec![0.0f32; n];
        let mut h = Vec::new();
        // SAFETY: the kernel writes every value of `out` and of `h`.
        let out = unsafe {
            written(t * n, |o| {
                h = written(t * n, |hs| {
                    kernel::forward_from(&Direct, &xs, o, Some(hs), Some(&mut m), t, n, &spec)
                });
            })
        };
        let mut m_shape = shape.clone();
        m_shape[0] = 1;
        (
            flex_tensor(out, shape.clone()),
            flex_tensor(h, shape),
            flex_tensor(m, m_shape),
        )
    }
}

/// The backward step of the fused op; its state is the op's input `x`.
#[derive(Debug)]
struct LifBackward {
    spec: LifSpec,
}

impl<B: Backend + LifOps> Backward<B, 1> for LifBackward {
    type State = FloatTensor<B>;

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let [parent] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        if let Some(parent) = parent {
            let gx = B::lif_backward(ops.state, grad, self.spec);
            grads.register::<B>(parent.id, gx);
        }
    }
}

fn track<B: Backend + LifOps, C: CheckpointStrategy>(
    x: FloatTensor<Autodiff<B, C>>,
    spec: LifSpec,
    spikes: FloatTensor<B>,
    x_inner: FloatTensor<B>,
) -> FloatTensor<Autodiff<B, C>> {
    let prep = LifBackward { spec }
        .prepare::<C>([x.node()])
        .compute_bound()
        .stateful();
    match prep {
        OpsKind::Tracked(prep) => prep.finish(x_inner, spikes),
        OpsKind::UnTracked(prep) => prep.finish(spikes),
    }
}

impl<B: Backend + LifOps, C: CheckpointStrategy> LifOps for Autodiff<B, C> {
    fn lif_forward(x: FloatTensor<Self>, spec: LifSpec) -> FloatTensor<Self> {
        let x_inner = x.primitive().clone();
        let spikes = B::lif_forward(x_inner.clone(), spec);
        track::<B, C>(x, spec, spikes, x_inner)
    }

    fn lif_backward(
        x: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        spec: LifSpec,
    ) -> FloatTensor<Self> {
        // Second-order gradients are not supported: the result is a constant.
        let gx = B::lif_backward(x.into_primitive(), grad.into_primitive(), spec);
        Self::from_inner(gx)
    }

    fn lif_trace(
        x: FloatTensor<Self>,
        spec: LifSpec,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let x_inner = x.primitive().clone();
        let (spikes, h, m) = B::lif_trace(x_inner.clone(), spec);
        let spikes = track::<B, C>(x, spec, spikes, x_inner);
        (spikes, Self::from_inner(h), Self::from_inner(m))
    }
}
