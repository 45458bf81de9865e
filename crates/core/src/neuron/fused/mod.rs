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


use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{
    Autodiff, AutodiffBackend, Backend, DType, Dispatch, DispatchDevice, Flex, TensorMetadata,
    backend_extension,
};
use burn::tensor::Tensor;
use rayon::prelude::*;

use super::{NeuronConfig, NeuronKind, NeuronTrace, ResetMode};
use crate::layer::fused_ops::{f32_values, flex_tensor, simd_dispatch, zeroed};
use crate::surrogate::Surrogate;

/// Neurons per block (columns of `[T, N]` processed together).
pub const BLOCK: usize = 1024;
/// Below this many elements (`T·N`) the kernel runs on the calling thread.
const PARALLEL_MIN: usize = 1 << 15;

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
        let mut out = zeroed(t * n);
        kernel::forward(&xs, &mut out, None, None, t, n, &spec);
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
        let mut out = zeroed(t * n);
        let mut h = zeroed(t * n);
        let mut m = vec![0.0f32; n];
        kernel::forward(&xs, &mut out, Some(&mut h), Some(&mut m), t, n, &spec);
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

/// The CPU kernels on `[T, N]` slices.
pub mod kernel {
    use super::*;

    /// A surrogate derivative evaluated in f32 inside the kernel loop. Each implementation is
    /// the same formula as [`Surrogate::derivative`] (tested equal).
    pub trait Sg: Copy + Send + Sync {
        /// `g(v)`.
        fn g(self, v: f32) -> f32;
    }

    /// Triangle: `max(0, γ − |v|)/γ²`.
    #[derive(Clone, Copy)]
    pub struct Tri {
        gamma: f32,
        inv_g2: f32,
    }
    impl Sg for Tri {
        #[inline(always)]
        fn g(self, v: f32) -> f32 {
            (self.gamma - v.abs()).max(0.0) * self.inv_g2
        }
    }
    /// Sigmoid: `α·σ(αv)·(1 − σ(αv))`.
    #[derive(Clone, Copy)]
    pub struct Sig {
        alpha: f32,
    }
    impl Sg for Sig {
        #[inline(always)]
        fn g(self, v: f32) -> f32 {
            let s = 1.0 / (1.0 + (-self.alpha * v).exp());
            self.alpha * s * (1.0 - s)
        }
    }
    /// ATan: `α/2 / (1 + (π/2·α·v)²)`.
    #[derive(Clone, Copy)]
    pub struct Atan {
        half_alpha: f32,
        k: f32,
    }
    impl Sg for Atan {
        #[inline(always)]
        fn g(self, v: f32) -> f32 {
            let z = self.k * v;
            self.half_alpha / (1.0 + z * z)
        }
    }
    /// Rectangle: `1/a` where `|v| < a/2`.
    #[derive(Clone, Copy)]
    pub struct Rect {
        half: f32,
        height: f32,
    }
    impl Sg for Rect {
        #[inline(always)]
        fn g(self, v: f32) -> f32 {
            if v.abs() < self.half {
                self.height
            } else {
                0.0
            }
        }
    }
    /// Bi-Real: `2 − 2|v|` where `|v| < 1`.
    #[derive(Clone, Copy)]
    pub struct Bireal;
    impl Sg for Bireal {
        #[inline(always)]
        fn g(self, v: f32) -> f32 {
            let a = v.abs();
            if a < 1.0 { 2.0 - 2.0 * a } else { 0.0 }
        }
    }

    /// Calls `f` with the f32 kernel form of `s`.
    pub fn with_sg<R>(s: Surrogate, f: impl SgFn<R>) -> R {
        match s {
            Surrogate::Triangle { gamma } => f.call(Tri {
                gamma: gamma as f32,
                inv_g2: (1.0 / (gamma * gamma)) as f32,
            }),
            Surrogate::Sigmoid { alpha } => f.call(Sig {
                alpha: alpha as f32,
            }),
            Surrogate::Atan { alpha } => f.call(Atan {
                half_alpha: (alpha / 2.0) as f32,
                k: (std::f64::consts::PI / 2.0 * alpha) as f32,
            }),
            Surrogate::Rectangle { width } => f.call(Rect {
                half: (width / 2.0) as f32,
                height: (1.0 / width) as f32,
            }),
            Surrogate::Bireal => f.call(Bireal),
        }
    }

    /// A generic callback over the surrogate type (closures cannot be generic).
    pub trait SgFn<R> {
        /// Runs with the concrete surrogate.
        fn call<G: Sg>(self, g: G) -> R;
    }

    /// `g(v)` of the kernel form of `s` (for tests against [`Surrogate::derivative`]).
    pub fn surrogate_f32(s: Surrogate, v: f32) -> f32 {
        struct One(f32);
        impl SgFn<f32> for One {
            fn call<G: Sg>(self, g: G) -> f32 {
                g.g(self.0)
            }
        }
        with_sg(s, One(v))
    }

    /// Raw output pointer shared by blocks that write disjoint columns.
    #[derive(Clone, Copy)]
    struct Out(*mut f32);
    // SAFETY: every block writes only its own columns `[n0, n0 + w)` of each row.
    unsafe impl Send for Out {}
    unsafe impl Sync for Out {}

    impl Out {
        /// The pointer `i` elements in (a method, so closures capture the whole `Send` wrapper
        /// rather than its raw-pointer field).
        #[inline(always)]
        fn at(self, i: usize) -> *mut f32 {
            // SAFETY: callers stay inside the buffer the pointer came from.
            unsafe { self.0.add(i) }
        }
    }

    fn blocks(n: usize) -> impl IndexedParallelIterator<Item = (usize, usize)> {
        (0..n.div_ceil(BLOCK))
            .into_par_iter()
            .map(move |b| (b * BLOCK, BLOCK.min(n - b * BLOCK)))
    }

    /// Where the kernels' input current comes from, block of columns by block: the stored
    /// input itself ([`Direct`], the LIF op) or a function of it (the BatchNorm → LIF op of
    /// [`crate::layer::fused_bn_lif`] normalises on the fly and sums its gradient statistics).
    pub trait Current: Sync {
        /// The state of one block of columns.
        type Block: BlockCurrent;
        /// The state for columns `n0..n0 + w`.
        fn block(&self, n0: usize, w: usize) -> Self::Block;
    }

    /// One block's view of a [`Current`].
    pub trait BlockCurrent {
        /// The current of one row of the block from the stored input row `x` (`buf`: scratch
        /// of the same length).
        fn current<'b>(&self, x: &'b [f32], buf: &'b mut [f32]) -> &'b [f32];
        /// Backward: called with every row's stored input and `dL/dcurrent`, last step first.
        #[inline(always)]
        fn grad_row(&mut self, _x: &[f32], _g: &[f32]) {}
        /// Backward: the block is done.
        #[inline(always)]
        fn finish(self)
        where
            Self: Sized,
        {
        }
    }

    /// The stored input is the current.
    #[derive(Clone, Copy)]
    pub struct Direct;
    impl Current for Direct {
        type Block = Direct;
        #[inline(always)]
        fn block(&self, _n0: usize, _w: usize) -> Direct {
            Direct
        }
    }
    impl BlockCurrent for Direct {
        #[inline(always)]
        fn current<'b>(&self, x: &'b [f32], _buf: &'b mut [f32]) -> &'b [f32] {
            x
        }
    }

    fn for_blocks(t: usize, n: usize, f: impl Fn(usize, usize) + Send + Sync) {
        if t * n < PARALLEL_MIN || rayon::current_num_threads() < 2 {
            let mut n0 = 0;
            while n0 < n {
                let w = BLOCK.min(n - n0);
                f(n0, w);
                n0 += w;
            }
        } else {
            blocks(n).for_each(|(n0, w)| f(n0, w));
        }
    }

    /// Forward: spikes into `out` (`[T, N]`), optionally `h` (`[T, N]`) and the final membrane
    /// `mem` (`[N]`).
    pub fn forward(
        x: &[f32],
        out: &mut [f32],
        h: Option<&mut [f32]>,
        mem: Option<&mut [f32]>,
        t: usize,
        n: usize,
        spec: &LifSpec,
    ) {
        forward_from(&Direct, x, out, h, mem, t, n, spec)
    }

    /// [`forward`] with the current computed from the stored input `x` by `cur`.
    #[allow(clippy::too_many_arguments)]
    pub fn forward_from<C: Current>(
        cur: &C,
        x: &[f32],
        out: &mut [f32],
        h: Option<&mut [f32]>,
        mem: Option<&mut [f32]>,
        t: usize,
        n: usize,
        spec: &LifSpec,
    ) {
        assert_eq!(x.len(), t * n);
        assert_eq!(out.len(), t * n);
        let out_p = Out(out.as_mut_ptr());
        let h_p = h.map(|h| {
            assert_eq!(h.len(), t * n);
            Out(h.as_mut_ptr())
        });
        let m_p = mem.map(|m| {
            assert_eq!(m.len(), n);
            Out(m.as_mut_ptr())
        });
        for_blocks(t, n, |n0, w| {
            forward_block(cur, x, out_p, h_p, m_p, t, n, spec, n0, w)
        });
    }

    simd_dispatch! {
        /// The forward of columns `n0..n0 + w`.
        fn forward_block[C: Current](
            cur: &C, x: &[f32], out_p: Out, h_p: Option<Out>, m_p: Option<Out>, t: usize,
            n: usize, spec: &LifSpec, n0: usize, w: usize
        ) => forward_block_body[C]
    }

    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn forward_block_body<C: Current>(
        cur: &C,
        x: &[f32],
        out_p: Out,
        h_p: Option<Out>,
        m_p: Option<Out>,
        t: usize,
        n: usize,
        spec: &LifSpec,
        n0: usize,
        w: usize,
    ) {
        let (decay, th, soft) = (spec.decay, spec.threshold, spec.soft_reset);
        {
            let blk = cur.block(n0, w);
            let mut m = [0.0f32; BLOCK];
            let mut buf = [0.0f32; BLOCK];
            let m = &mut m[..w];
            for step in 0..t {
                let row = step * n + n0;
                let xr = blk.current(&x[row..row + w], &mut buf[..w]);
                // SAFETY: columns [n0, n0 + w) of row `step` belong to this block only.
                let or = unsafe { std::slice::from_raw_parts_mut(out_p.at(row), w) };
                if let Some(hp) = h_p {
                    let hr = unsafe { std::slice::from_raw_parts_mut(hp.at(row), w) };
                    charge_row::<false, false>(xr, m, hr, decay, th);
                }
                if soft {
                    charge_row::<true, true>(xr, m, or, decay, th);
                } else {
                    charge_row::<false, true>(xr, m, or, decay, th);
                }
            }
            if let Some(mp) = m_p {
                let mr = unsafe { std::slice::from_raw_parts_mut(mp.at(n0), w) };
                mr.copy_from_slice(m);
            }
        }
    }

    /// Backward: `gx` (`[T, N]`) for `gs = dL/dspikes` (`[T, N]`), recomputing `h` from `x`.
    pub fn backward(x: &[f32], gs: &[f32], gx: &mut [f32], t: usize, n: usize, spec: &LifSpec) {
        backward_from(&Direct, x, gs, gx, t, n, spec)
    }

    /// [`backward`] with the current computed from the stored input `x` by `cur` (`gx` is
    /// then `dL/dcurrent`, which `cur` also sees row by row).
    pub fn backward_from<C: Current>(
        cur: &C,
        x: &[f32],
        gs: &[f32],
        gx: &mut [f32],
        t: usize,
        n: usize,
        spec: &LifSpec,
    ) {
        assert_eq!(x.len(), t * n);
        assert_eq!(gs.len(), t * n);
        assert_eq!(gx.len(), t * n);
        struct Run<'a, C> {
            cur: &'a C,
            x: &'a [f32],
            gs: &'a [f32],
            gx: Out,
            t: usize,
            n: usize,
            spec: LifSpec,
        }
        impl<C: Current> SgFn<()> for Run<'_, C> {
            fn call<G: Sg>(self, g: G) {
                let Run {
                    cur,
                    x,
                    gs,
                    gx,
                    t,
                    n,
                    spec,
                } = self;
                match (spec.soft_reset, spec.detach_reset) {
                    (false, false) => {
                        backward_with::<C, G, false, false>(cur, x, gs, gx, t, n, &spec, g)
                    }
                    (false, true) => {
                        backward_with::<C, G, false, true>(cur, x, gs, gx, t, n, &spec, g)
                    }
                    (true, false) => {
                        backward_with::<C, G, true, false>(cur, x, gs, gx, t, n, &spec, g)
                    }
                    (true, true) => {
                        backward_with::<C, G, true, true>(cur, x, gs, gx, t, n, &spec, g)
                    }
                }
            }
        }
        with_sg(
            spec.surrogate,
            Run {
                cur,
                x,
                gs,
                gx: Out(gx.as_mut_ptr()),
                t,
                n,
                spec: *spec,
            },
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn backward_with<C: Current, G: Sg, const SOFT: bool, const DETACH: bool>(
        cur: &C,
        x: &[f32],
        gs: &[f32],
        gx: Out,
        t: usize,
        n: usize,
        spec: &LifSpec,
        g: G,
    ) {
        for_blocks(t, n, |n0, w| {
            backward_block::<C, G, SOFT, DETACH>(cur, x, gs, gx, t, n, spec, g, n0, w)
        });
    }

    simd_dispatch! {
        /// The backward of columns `n0..n0 + w`.
        fn backward_block[C: Current, G: Sg, const SOFT: bool, const DETACH: bool](
            cur: &C, x: &[f32], gs: &[f32], gx: Out, t: usize, n: usize, spec: &LifSpec, g: G,
            n0: usize, w: usize
        ) => backward_block_body[C, G, SOFT, DETACH]
    }

    /// One timestep over a block row, `h = decay·m + x`: with `SPIKES`, `out = [h − θ > 0]`
    /// and the membrane is reset (`m ← h − θ·s` soft, `h − h·s` hard); without, `out = h` and
    /// `m` is left alone. (Functions of their own so that their slices are known not to
    /// alias, which lets the loops vectorize.)
    #[inline(always)]
    fn charge_row_body<const SOFT: bool, const SPIKES: bool>(
        x: &[f32],
        m: &mut [f32],
        out: &mut [f32],
        decay: f32,
        th: f32,
    ) {
        for ((o, m), &x) in out.iter_mut().zip(m.iter_mut()).zip(x) {
            let hv = decay * *m + x;
            if SPIKES {
                let s = if hv - th > 0.0 { 1.0 } else { 0.0 };
                *o = s;
                *m = if SOFT { hv - th * s } else { hv - hv * s };
            } else {
                *o = hv;
            }
        }
    }

    simd_dispatch! {
        /// [`charge_row_body`].
        fn charge_row[const SOFT: bool, const SPIKES: bool](
            x: &[f32], m: &mut [f32], out: &mut [f32], decay: f32, th: f32
        ) => charge_row_body[SOFT, SPIKES]
    }

    simd_dispatch! {
        /// [`reset_row_body`].
        fn reset_row[const SOFT: bool](h: &[f32], m: &mut [f32], th: f32) => reset_row_body[SOFT]
    }

    simd_dispatch! {
        /// [`backward_row_body`].
        fn backward_row[G: Sg, const SOFT: bool, const DETACH: bool](
            gx: &mut [f32], gs: &[f32], h: &[f32], gm: &mut [f32], th: f32, decay: f32, g: G
        ) => backward_row_body[G, SOFT, DETACH]
    }

    /// `m ← reset(h)` after [`charge_row`] stored `h`.
    #[inline(always)]
    fn reset_row_body<const SOFT: bool>(h: &[f32], m: &mut [f32], th: f32) {
        for (m, &hv) in m.iter_mut().zip(h) {
            let s = if hv - th > 0.0 { 1.0 } else { 0.0 };
            *m = if SOFT { hv - th * s } else { hv - hv * s };
        }
    }

    /// One timestep of the backward over a block row: `gx = gs·g(v) + gm·∂m/∂h`, then
    /// `gm ← decay·gx` (a function of its own so that its slices are known not to alias,
    /// which lets the loop vectorize).
    #[inline(always)]
    fn backward_row_body<G: Sg, const SOFT: bool, const DETACH: bool>(
        gx: &mut [f32],
        gs: &[f32],
        h: &[f32],
        gm: &mut [f32],
        th: f32,
        decay: f32,
        g: G,
    ) {
        let lanes = gx.iter_mut().zip(gs).zip(h).zip(gm.iter_mut());
        for (((o, &gs), &hv), gm) in lanes {
            let v = hv - th;
            let s = if v > 0.0 { 1.0 } else { 0.0 };
            let gv = g.g(v);
            let dm_dh = match (SOFT, DETACH) {
                (false, false) => (1.0 - s) - hv * gv,
                (false, true) => 1.0 - s,
                (true, false) => 1.0 - th * gv,
                (true, true) => 1.0,
            };
            let gh = gs * gv + *gm * dm_dh;
            *o = gh;
            *gm = decay * gh;
        }
    }

    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn backward_block_body<C: Current, G: Sg, const SOFT: bool, const DETACH: bool>(
        cur: &C,
        x: &[f32],
        gs: &[f32],
        gx: Out,
        t: usize,
        n: usize,
        spec: &LifSpec,
        g: G,
        n0: usize,
        w: usize,
    ) {
        let (decay, th) = (spec.decay, spec.threshold);
        {
            // Recompute h for the block (bit-identical to forward), then run time backwards.
            let mut blk = cur.block(n0, w);
            let mut hbuf = vec![0.0f32; t * w];
            let mut m = [0.0f32; BLOCK];
            let mut buf = [0.0f32; BLOCK];
            let m = &mut m[..w];
            for step in 0..t {
                let xr = blk.current(&x[step * n + n0..step * n + n0 + w], &mut buf[..w]);
                let hr = &mut hbuf[step * w..(step + 1) * w];
                charge_row::<SOFT, false>(xr, m, hr, decay, th);
                // (charge_row with SPIKES = false leaves m as it was: the reset follows.)
                reset_row::<SOFT>(hr, m, th);
            }
            let mut gm = [0.0f32; BLOCK];
            let gm = &mut gm[..w];
            for step in (0..t).rev() {
                let row = step * n + n0;
                let gr = &gs[row..row + w];
                let hr = &hbuf[step * w..(step + 1) * w];
                // SAFETY: columns [n0, n0 + w) of row `step` belong to this block only.
                let or = unsafe { std::slice::from_raw_parts_mut(gx.at(row), w) };
                backward_row::<G, SOFT, DETACH>(or, gr, hr, gm, th, decay, g);
                blk.grad_row(&x[row..row + w], or);
            }
            blk.finish();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    #[test]
    fn kernel_surrogates_equal_scalar_derivative() {
        let params = [
            Surrogate::Triangle { gamma: 0.7 },
            Surrogate::Sigmoid { alpha: 3.0 },
            Surrogate::Atan { alpha: 2.5 },
            Surrogate::Rectangle { width: 0.8 },
        ];
        for s in Surrogate::all_defaults().into_iter().chain(params) {
            for i in -400..=400 {
                let v = i as f32 * 0.0071 + 0.0003;
                let want = s.derivative(v as f64);
                let got = kernel::surrogate_f32(s, v) as f64;
                assert!(
                    (got - want).abs() <= 1e-6 * (1.0 + want.abs()),
                    "{} at {v}: {got} vs {want}",
                    s.name()
                );
            }
        }
    }

    fn vals<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .unwrap()
    }

    /// `|a − b| ≤ 1e-5·|b| + 1e-6·scale`, `scale` = the largest magnitude of `want`.
    fn assert_rel(got: &[f32], want: &[f32], what: &str) {
        assert_eq!(got.len(), want.len(), "{what}: length");
        let scale = want.iter().fold(0.0f32, |a, b| a.max(b.abs())).max(1.0);
        for (i, (a, b)) in got.iter().zip(want).enumerate() {
            assert!(
                (a - b).abs() <= 1e-5 * b.abs() + 1e-6 * scale,
                "{what}[{i}]: fused {a} vs reference {b}"
            );
        }
    }

    fn random(len: usize, lo: f32, hi: f32, rng: &mut impl rand::Rng) -> Vec<f32> {
        (0..len).map(|_| rng.random_range(lo..hi)).collect()
    }

    /// Fused vs reference on one shape and config: spikes exactly, membrane and `dL/dx` for
    /// `L = Σ spikes ⊙ G` to 1e-5 relative.
    fn compare<const D: usize>(config: NeuronConfig, shape: [usize; D], seed: u64, what: &str) {
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let len: usize = shape.iter().product();
        let th = config.threshold as f32;
        let x = random(len, -0.5 * th, 1.6 * th, &mut rng);
        let g = random(len, -1.0, 1.0, &mut rng);
        let device = Device::flex().autodiff();
        let neuron = config.init(&device).unwrap();
        let input = || Tensor::<D>::from_data(TensorData::new(x.clone(), shape), &device);
        let weights = Tensor::<D>::from_data(TensorData::new(g.clone(), shape), &device);

        let reference = neuron.forward_trace(input());
        let fused = neuron.forward_trace_fused(input());
        assert_eq!(
            vals(fused.spikes.clone()),
            vals(reference.spikes.clone()),
            "{what}: spikes"
        );
        assert_eq!(fused.mem_final.dims(), reference.mem_final.dims());
        assert_rel(
            &vals(fused.h_pre_reset),
            &vals(reference.h_pre_reset),
            &format!("{what}: h"),
        );
        assert_rel(
            &vals(fused.mem_final),
            &vals(reference.mem_final),
            &format!("{what}: mem_final"),
        );

        let xr = input().require_grad();
        let gr = (neuron.forward_reference(xr.clone()) * weights.clone())
            .sum()
            .backward();
        let xf = input().require_grad();
        let sf = neuron.forward_fused(xf.clone());
        let gf = (sf.clone() * weights).sum().backward();
        assert_rel(
            &vals(xf.grad(&gf).unwrap()),
            &vals(xr.grad(&gr).unwrap()),
            &format!("{what}: dL/dx"),
        );
        // Without autodiff: same spikes.
        let plain = config.init(&Device::flex()).unwrap();
        let xp = Tensor::<D>::from_data(TensorData::new(x.clone(), shape), &Device::flex());
        assert_eq!(
            vals(plain.forward_fused(xp)),
            vals(sf),
            "{what}: plain device"
        );
    }

    fn all_configs() -> Vec<NeuronConfig> {
        let mut out = Vec::new();
        let surrogates = Surrogate::all_defaults().into_iter().chain([
            Surrogate::Atan { alpha: 3.0 },
            Surrogate::Triangle { gamma: 0.5 },
        ]);
        for surrogate in surrogates {
            for kind in [NeuronKind::Lif, NeuronKind::If] {
                for reset in [ResetMode::Hard, ResetMode::Soft] {
                    for detach_reset in [false, true] {
                        for (threshold, decay) in [(1.0, 0.5), (0.5, 0.25)] {
                            out.push(NeuronConfig {
                                kind,
                                threshold,
                                decay,
                                reset,
                                detach_reset,
                                surrogate,
                                ..Default::default()
                            });
                        }
                    }
                }
            }
        }
        out
    }

    #[test]
    fn fused_equals_reference_on_random_inputs() {
        for (i, c) in all_configs().into_iter().enumerate() {
            let what = format!("{c:?}");
            let seed = i as u64;
            compare(c, [1, 3], seed, &what);
            compare(c, [4, 2, 5], seed, &what);
            compare(c, [8, 3, 37], seed, &what);
            compare(c, [4, 2, 3, 5, 5], seed, &what);
        }
    }

    #[test]
    fn fused_equals_reference_on_large_parallel_inputs() {
        // Several blocks, a ragged last block, and the rayon path (T·N ≥ PARALLEL_MIN).
        for (i, c) in all_configs().into_iter().enumerate().step_by(7) {
            compare(c, [4, 2, 4, BLOCK + 77], 100 + i as u64, &format!("{c:?}"));
        }
        compare(NeuronConfig::default(), [8, 16, 32, 12, 12], 7, "vgg-like");
    }

    #[test]
    fn non_contiguous_input_and_gradient() {
        // A transposed input (strided) and the broadcast gradient of `sum()`.
        let device = Device::flex().autodiff();
        let neuron = NeuronConfig::default().init(&device).unwrap();
        let data: Vec<f32> = (0..60).map(|i| ((i * 37) % 23) as f32 * 0.13).collect();
        let x = Tensor::<3>::from_data(TensorData::new(data, [5, 3, 4]), &device).swap_dims(0, 2);
        let xr = x.clone().require_grad();
        let gr = neuron.forward_reference(xr.clone()).sum().backward();
        let xf = x.require_grad();
        let sf = neuron.forward_fused(xf.clone());
        assert_eq!(vals(sf.clone()), vals(neuron.forward_reference(xf.clone())));
        let gf = sf.sum().backward();
        assert_rel(
            &vals(xf.grad(&gf).unwrap()),
            &vals(xr.grad(&gr).unwrap()),
            "strided",
        );
    }

    #[test]
    fn works_with_gradient_checkpointing() {
        let device = Device::flex().autodiff().gradient_checkpointing();
        let neuron = NeuronConfig::default().init(&device).unwrap();
        let data: Vec<f32> = (0..48).map(|i| ((i * 29) % 17) as f32 * 0.11).collect();
        let x = || Tensor::<3>::from_data(TensorData::new(data.clone(), [4, 3, 4]), &device);
        // A memory-bound op after the spikes, so the checkpointer has something to recompute.
        let loss = |s: Tensor<3>| s.exp().sum();
        let xr = x().require_grad();
        let gr = loss(neuron.forward_reference(xr.clone() * 1.5)).backward();
        let xf = x().require_grad();
        let gf = loss(neuron.forward_fused(xf.clone() * 1.5)).backward();
        assert_rel(
            &vals(xf.grad(&gf).unwrap()),
            &vals(xr.grad(&gr).unwrap()),
            "checkpointing",
        );
    }

    #[test]
    fn default_forward_uses_fused_unless_switched() {
        let device = Device::flex();
        let n = NeuronConfig::default().init(&device).unwrap();
        let x = Tensor::<2>::from_floats([[0.6, 1.5], [0.6, 0.2], [0.6, 0.2]], &device);
        assert_eq!(vals(n.forward(x.clone())), vals(n.forward_reference(x)));
    }

    #[test]
    fn plif_and_non_flex_are_not_supported() {
        let device = Device::flex();
        let x = Tensor::<2>::zeros([2, 3], &device);
        let plif = NeuronConfig {
            kind: NeuronKind::Plif,
            ..Default::default()
        };
        assert!(!supports(&plif, &x));
        assert!(supports(&NeuronConfig::default(), &x));
        assert!(supports(
            &NeuronConfig::default(),
            &Tensor::<2>::zeros([2, 3], &device.autodiff())
        ));
    }
}
