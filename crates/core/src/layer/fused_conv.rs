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
//! `[C_out, P]` tile by tile. The
//! input gradient stays dense. [`ConvMode::Auto`] (the default) measures the input's density
//! at every call and takes the sparse path at or below [`KernelPolicy::max_density`] — 0.25 for the
//! forward, 0.5 for the weight gradient (the break-even measured by `tks bench --conv-micro`
//! and whole training steps); the inference forward (no autodiff) takes the same choice, so
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
//! burn's generic conv backward (which Flex does not override) computes the weight gradient as
//! a convolution whose kernel is the whole output gradient, after `swap_dims` + contiguous
//! copies of input and gradient; this op replaces it and the forward.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, DType, Dispatch, Flex, TensorMetadata, backend_extension};
use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::tensor::{Tensor, TensorData};

use crate::kernels::KernelPolicy;
use rayon::prelude::*;

use super::fused_ops::{
    Filled, OutPtr, constants, f32_values, flex_f32, flex_tensor, register_grads, simd_dispatch,
};

pub use crate::kernels::{ConvMode, SparsePass};

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
fn symmetric_padding(conv: &Conv2d) -> Option<usize> {
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
fn bias_or_zeros(conv: &Conv2d, device: &burn::tensor::Device) -> Tensor<1> {
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
    let device = x.device();
    let pad = symmetric_padding(conv).unwrap_or(0);
    let weight = conv.weight.val();
    let co = weight.dims()[0];
    let mean = bn.running_mean.value_sync().to_device(&device);
    let var = bn.running_var.value_sync().to_device(&device);
    let scale = bn.gamma.val().div(var.add_scalar(bn.epsilon).sqrt());
    let folded_bias = bias_or_zeros(conv, &device)
        .sub(mean)
        .mul(scale.clone())
        .add(bn.beta.val());
    let folded_weight = weight.mul(scale.reshape([co, 1, 1, 1]));
    conv2d(x, folded_weight, folded_bias, conv.stride[0], pad, policy)
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
        let (xs, ws, bs) = (f32_values(&x), f32_values(&weight), f32_values(&bias));
        assert_eq!(bs.len(), g.cout, "fused conv: bias shape");
        let mut out = Filled::new(g.n * g.cout * g.p());
        let density = kernel::density(&xs);
        let sparse = policy.choose_sparse_at(density, SparsePass::Forward);
        STATS.with(|s| {
            let (calls, sparse_calls, sum) = s.get();
            s.set((
                calls + 1,
                sparse_calls + u64::from(sparse),
                sum + density as f64,
            ));
        });
        // SAFETY: `out` has room for exactly the N·C_out·P outputs, owned here; `forward`
        // writes every one of them.
        let out = unsafe {
            kernel::forward(&g, &xs, &ws, &bs, out.ptr(), sparse);
            out.into_vec()
        };
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
        let (dx, dw, db) =
            B::conv2d_spk_backward(
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
            OpsKind::Tracked(prep) => prep.finish((B::conv2d_spk_pack(x_in, policy.pack_spikes), w_in), out),
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

/// The CPU kernels on contiguous NCHW slices.
pub mod kernel {
    use super::*;

    /// An input value of the kernels: f32, or u8 for spikes packed by
    /// [`ConvOps::conv2d_spk_pack`] (read without widening them first).
    pub trait Value: Copy + Send + Sync + 'static {
        /// The value as f32.
        fn get(self) -> f32;
        /// `dst[i] = src[i]` as f32.
        fn copy_row(dst: &mut [f32], src: &[Self]);
        /// The values as an f32 slice, when they are f32.
        fn as_f32(x: &[Self]) -> Option<&[f32]>;
    }

    impl Value for f32 {
        #[inline(always)]
        fn get(self) -> f32 {
            self
        }
        #[inline(always)]
        fn copy_row(dst: &mut [f32], src: &[f32]) {
            copy_short(dst, src);
        }
        fn as_f32(x: &[f32]) -> Option<&[f32]> {
            Some(x)
        }
    }

    impl Value for u8 {
        #[inline(always)]
        fn get(self) -> f32 {
            f32::from(self)
        }
        #[inline(always)]
        fn copy_row(dst: &mut [f32], src: &[u8]) {
            for (d, &s) in dst.iter_mut().zip(src) {
                *d = f32::from(s);
            }
        }
        fn as_f32(_: &[u8]) -> Option<&[f32]> {
            None
        }
    }

    /// The geometry of one convolution.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Geom {
        /// Samples.
        pub n: usize,
        /// Input channels.
        pub cin: usize,
        /// Input height.
        pub h: usize,
        /// Input width.
        pub w: usize,
        /// Output channels.
        pub cout: usize,
        /// Kernel height.
        pub kh: usize,
        /// Kernel width.
        pub kw: usize,
        /// Stride (both axes).
        pub stride: usize,
        /// Padding (every side).
        pub pad: usize,
        /// Output height.
        pub oh: usize,
        /// Output width.
        pub ow: usize,
    }

    impl Geom {
        /// The geometry of `x` `[N, C_in, H, W]` ⊛ `w` `[C_out, C_in, k_h, k_w]`.
        ///
        /// # Panics
        /// On mismatched channels, a zero stride or a kernel larger than the padded input.
        pub fn new(x: [usize; 4], w: [usize; 4], stride: usize, pad: usize) -> Self {
            let [n, cin, h, wd] = x;
            let [cout, ci, kh, kw] = w;
            assert_eq!(
                ci, cin,
                "fused conv: weight expects {ci} input channels, got {cin}"
            );
            assert!(stride >= 1, "fused conv: stride 0");
            assert!(
                h + 2 * pad >= kh && wd + 2 * pad >= kw,
                "fused conv: kernel larger than the padded input"
            );
            Self {
                n,
                cin,
                h,
                w: wd,
                cout,
                kh,
                kw,
                stride,
                pad,
                oh: (h + 2 * pad - kh) / stride + 1,
                ow: (wd + 2 * pad - kw) / stride + 1,
            }
        }

        /// Output pixels per channel.
        pub fn p(&self) -> usize {
            self.oh * self.ow
        }

        /// Rows of the im2col matrix (`C_in·k_h·k_w`).
        pub fn k(&self) -> usize {
            self.cin * self.kh * self.kw
        }

        /// Whether im2col is the identity (1×1, stride 1, no padding).
        fn pointwise(&self) -> bool {
            self.kh == 1 && self.kw == 1 && self.stride == 1 && self.pad == 0
        }
    }

    /// Whether `policy` picks the sparse path of `pass` for input values `x`.
    /// The density is only measured in [`ConvMode::Auto`].
    pub fn choose_sparse<V: Value>(x: &[V], pass: SparsePass, policy: &KernelPolicy) -> bool {
        match policy.conv_mode {
            ConvMode::Auto => policy.choose_sparse_at(density(x), pass),
            mode => mode == ConvMode::Sparse,
        }
    }

    /// The fraction of non-zero values in `x` (0 for an empty slice).
    pub fn density<V: Value>(x: &[V]) -> f32 {
        if x.is_empty() {
            return 0.0;
        }
        let nnz: usize = if x.len() >= 1 << 16 {
            x.par_chunks(1 << 14)
                .map(|c| c.iter().filter(|v| v.get() != 0.0).count())
                .sum()
        } else {
            x.iter().filter(|v| v.get() != 0.0).count()
        };
        nnz as f32 / x.len() as f32
    }

    /// Splits `0..n` into at most `2 × threads` contiguous ranges.
    fn ranges(n: usize) -> Vec<(usize, usize)> {
        let parts = (rayon::current_num_threads().max(1) * 2).min(n.max(1));
        let per = n.div_ceil(parts).max(1);
        (0..n).step_by(per).map(|s| (s, (s + per).min(n))).collect()
    }

    /// Per-thread buffers reused across calls (im2col columns, output/gradient tiles, the spike
    /// index), so a training step does not allocate and zero them again for every layer.
    #[derive(Default)]
    struct Scratch {
        col: Vec<f32>,
        tile: Vec<f32>,
        spikes: simd::Spikes,
        bits: simd::Bits,
    }

    impl Scratch {
        /// `col` and `tile` with at least the given lengths (contents unspecified: every user
        /// overwrites or clears what it reads).
        fn sized(
            &mut self,
            col: usize,
            tile: usize,
        ) -> (&mut [f32], &mut [f32], &mut simd::Spikes, &mut simd::Bits) {
            if self.col.len() < col {
                self.col.resize(col, 0.0);
            }
            if self.tile.len() < tile {
                self.tile.resize(tile, 0.0);
            }
            (
                &mut self.col[..col],
                &mut self.tile[..tile],
                &mut self.spikes,
                &mut self.bits,
            )
        }
    }

    thread_local! {
        static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
    }

    /// Runs `f` with this thread's scratch buffers (a fresh set if they are already in use).
    fn with_scratch<R>(f: impl FnOnce(&mut Scratch) -> R) -> R {
        SCRATCH.with(|cell| match cell.try_borrow_mut() {
            Ok(mut scratch) => f(&mut scratch),
            Err(_) => f(&mut Scratch::default()),
        })
    }

    /// `dst = src` for the short rows of im2col (a few to a few dozen values), inline: a
    /// libc `memcpy` call per row costs more than the copy there.
    #[inline(always)]
    fn copy_short(dst: &mut [f32], src: &[f32]) {
        assert_eq!(dst.len(), src.len());
        let mut d8 = dst.chunks_exact_mut(8);
        let mut s8 = src.chunks_exact(8);
        for (d, s) in (&mut d8).zip(&mut s8) {
            let block: [f32; 8] = s.try_into().expect("8 values");
            d.copy_from_slice(&block);
        }
        for (d, s) in d8.into_remainder().iter_mut().zip(s8.remainder()) {
            // `+ 0.0` keeps the compiler from turning this ≤ 7-value loop back into a
            // `memcpy` call (it only turns a −0.0 into +0.0).
            *d = *s + 0.0;
        }
    }

    /// `dst = 0` for short rows, inline (see [`copy_short`]).
    #[inline(always)]
    fn zero_short(dst: &mut [f32]) {
        let mut d8 = dst.chunks_exact_mut(8);
        for d in &mut d8 {
            d.copy_from_slice(&[0.0; 8]);
        }
        for d in d8.into_remainder() {
            // SAFETY: `d` is a valid, aligned `&mut f32`; the volatile write keeps this short
            // loop from becoming a `memset` call.
            unsafe { std::ptr::write_volatile(d, 0.0) };
        }
    }

    simd_dispatch! {
        /// `im2col` of one sample `x` `[C_in, H, W]` into `col` `[K, P]`.
        pub fn im2col[V: Value](g: &Geom, x: &[V], col: &mut [f32]) => im2col_body[V]
    }

    simd_dispatch! {
        /// Adds `col` `[K, P]` back into one sample's `dx` `[C_in, H, W]` (the adjoint of
        /// [`im2col`]).
        pub fn col2im[](g: &Geom, col: &[f32], dx: &mut [f32]) => col2im_body[]
    }

    #[inline(always)]
    fn im2col_body<V: Value>(g: &Geom, x: &[V], col: &mut [f32]) {
        let (p, ow) = (g.p(), g.ow);
        for ci in 0..g.cin {
            let plane = &x[ci * g.h * g.w..(ci + 1) * g.h * g.w];
            for u in 0..g.kh {
                for t in 0..g.kw {
                    let row = (ci * g.kh + u) * g.kw + t;
                    let dst = &mut col[row * p..(row + 1) * p];
                    for oy in 0..g.oh {
                        let drow = &mut dst[oy * ow..(oy + 1) * ow];
                        let iy = (oy * g.stride + u) as isize - g.pad as isize;
                        if iy < 0 || iy >= g.h as isize {
                            zero_short(drow);
                            continue;
                        }
                        let src = &plane[iy as usize * g.w..(iy as usize + 1) * g.w];
                        if g.stride == 1 {
                            // ix = ox + t − pad, valid for ox in [lo, hi).
                            let lo = g.pad.saturating_sub(t).min(ow);
                            let hi = (g.w + g.pad).saturating_sub(t).clamp(lo, ow);
                            zero_short(&mut drow[..lo]);
                            zero_short(&mut drow[hi..]);
                            let s0 = lo + t - g.pad;
                            V::copy_row(&mut drow[lo..hi], &src[s0..s0 + (hi - lo)]);
                        } else {
                            for (ox, d) in drow.iter_mut().enumerate() {
                                let ix = (ox * g.stride + t) as isize - g.pad as isize;
                                *d = if ix < 0 || ix >= g.w as isize {
                                    0.0
                                } else {
                                    src[ix as usize].get()
                                };
                            }
                        }
                    }
                }
            }
        }
    }

    #[inline(always)]
    fn col2im_body(g: &Geom, col: &[f32], dx: &mut [f32]) {
        let (p, ow) = (g.p(), g.ow);
        for ci in 0..g.cin {
            let plane = &mut dx[ci * g.h * g.w..(ci + 1) * g.h * g.w];
            for u in 0..g.kh {
                for t in 0..g.kw {
                    let row = (ci * g.kh + u) * g.kw + t;
                    let src = &col[row * p..(row + 1) * p];
                    for oy in 0..g.oh {
                        let srow = &src[oy * ow..(oy + 1) * ow];
                        let iy = (oy * g.stride + u) as isize - g.pad as isize;
                        if iy < 0 || iy >= g.h as isize {
                            continue;
                        }
                        let drow = &mut plane[iy as usize * g.w..(iy as usize + 1) * g.w];
                        if g.stride == 1 {
                            let lo = g.pad.saturating_sub(t).min(ow);
                            let hi = (g.w + g.pad).saturating_sub(t).clamp(lo, ow);
                            let d0 = lo + t - g.pad;
                            for (d, s) in drow[d0..d0 + (hi - lo)].iter_mut().zip(&srow[lo..hi]) {
                                *d += s;
                            }
                        } else {
                            for (ox, s) in srow.iter().enumerate() {
                                let ix = (ox * g.stride + t) as isize - g.pad as isize;
                                if ix >= 0 && ix < g.w as isize {
                                    drow[ix as usize] += s;
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// `dst [m, n] (+)= lhs [m, k] · rhs [k, n]` with explicit row/column strides, on the
    /// calling thread (`accumulate` adds to `dst`, otherwise overwrites it).
    #[allow(clippy::too_many_arguments)]
    fn matmul(
        m: usize,
        n: usize,
        k: usize,
        dst: &mut [f32],
        accumulate: bool,
        lhs: &[f32],
        (lhs_rs, lhs_cs): (usize, usize),
        rhs: &[f32],
        (rhs_rs, rhs_cs): (usize, usize),
    ) {
        if m == 0 || n == 0 {
            return;
        }
        assert!(dst.len() >= m * n, "fused conv: gemm output too short");
        if k > 0 {
            let last_l = (m - 1) * lhs_rs + (k - 1) * lhs_cs;
            let last_r = (k - 1) * rhs_rs + (n - 1) * rhs_cs;
            assert!(
                last_l < lhs.len() && last_r < rhs.len(),
                "fused conv: gemm operand"
            );
        }
        // SAFETY: the asserts above keep every index gemm touches inside the slices; `dst`
        // is row-major `[m, n]` and not aliased by `lhs`/`rhs`.
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                dst.as_mut_ptr(),
                1,
                n as isize,
                accumulate,
                lhs.as_ptr(),
                lhs_cs as isize,
                lhs_rs as isize,
                rhs.as_ptr(),
                rhs_cs as isize,
                rhs_rs as isize,
                1.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
    }

    simd_dispatch! {
        /// `dst[j·dst_rs + i] = src[i·src_rs + j] + add[j]` for `i < rows`, `j < cols` (`add`
        /// empty: nothing added), in 8×8 blocks so that both sides move whole cache lines.
        fn transpose[](
            src: &[f32], src_rs: usize, rows: usize, cols: usize, dst: &mut [f32],
            dst_rs: usize, add: &[f32]
        ) => transpose_body[]
    }

    #[inline(always)]
    fn transpose_body(
        src: &[f32],
        src_rs: usize,
        rows: usize,
        cols: usize,
        dst: &mut [f32],
        dst_rs: usize,
        add: &[f32],
    ) {
        const B: usize = 8;
        assert!(
            add.is_empty() || add.len() >= cols,
            "fused conv: transpose bias"
        );
        if rows == 0 || cols == 0 {
            return;
        }
        assert!(
            src.len() >= (rows - 1) * src_rs + cols,
            "fused conv: transpose source"
        );
        assert!(
            dst.len() >= (cols - 1) * dst_rs + rows,
            "fused conv: transpose target"
        );
        let plus = |j: usize| if add.is_empty() { 0.0 } else { add[j] };
        for i0 in (0..rows).step_by(B) {
            for j0 in (0..cols).step_by(B) {
                if i0 + B <= rows && j0 + B <= cols {
                    let mut blk = [[0.0f32; B]; B];
                    for (i, r) in blk.iter_mut().enumerate() {
                        r.copy_from_slice(&src[(i0 + i) * src_rs + j0..][..B]);
                    }
                    for j in 0..B {
                        let a = plus(j0 + j);
                        let d = &mut dst[(j0 + j) * dst_rs + i0..][..B];
                        for (i, v) in d.iter_mut().enumerate() {
                            *v = blk[i][j] + a;
                        }
                    }
                } else {
                    for i in i0..(i0 + B).min(rows) {
                        for j in j0..(j0 + B).min(cols) {
                            dst[j * dst_rs + i] = src[i * src_rs + j] + plus(j);
                        }
                    }
                }
            }
        }
    }

    /// The weight as `[k_h, k_w, C_in, C_out]` from `wt` `[K, C_out]` (rows `(c, u, t)`).
    fn hwio_weight(g: &Geom, wt: &[f32]) -> Vec<f32> {
        let co = g.cout;
        let mut wh = vec![0.0f32; wt.len()];
        for ci in 0..g.cin {
            for u in 0..g.kh {
                for t in 0..g.kw {
                    let src = ((ci * g.kh + u) * g.kw + t) * co;
                    let dst = ((u * g.kw + t) * g.cin + ci) * co;
                    wh[dst..dst + co].copy_from_slice(&wt[src..src + co]);
                }
            }
        }
        wh
    }

    /// `wt` `[K, C_out]`: the weight `[C_out, K]` transposed.
    fn transpose_weight(g: &Geom, w: &[f32]) -> Vec<f32> {
        let (k, co) = (g.k(), g.cout);
        let mut wt = vec![0.0f32; k * co];
        transpose(w, k, co, k, &mut wt, co, &[]);
        wt
    }

    /// The output row tiles of the spike-aware path: `(oy0, oy1, q0, pixels)` for rows
    /// `oy0..oy1` of `rows` rows each (the last one shorter), starting at output pixel `q0`.
    fn row_tiles(g: &Geom, rows: usize) -> impl Iterator<Item = (usize, usize, usize, usize)> {
        let (oh, ow) = (g.oh, g.ow);
        (0..oh).step_by(rows).map(move |oy0| {
            let oy1 = (oy0 + rows).min(oh);
            (oy0, oy1, oy0 * ow, (oy1 - oy0) * ow)
        })
    }

    /// Runs `body(sample)` for every sample, in parallel.
    fn for_samples(n: usize, body: impl Fn(usize, usize) + Send + Sync) {
        let rs = ranges(n);
        if rs.len() <= 1 || rayon::current_num_threads() < 2 {
            body(0, n);
        } else {
            rs.into_par_iter().for_each(|(a, b)| body(a, b));
        }
    }

    /// `out` `[N, C_out, P]` = `x ⊛ w + b`, dense or sparse. `out` points to `N·C_out·P`
    /// writable values (their contents are ignored: every one is written).
    ///
    /// # Safety
    /// `out_p` is valid for `N·C_out·P` writes and nothing else accesses them meanwhile.
    pub(crate) unsafe fn forward(
        g: &Geom,
        x: &[f32],
        w: &[f32],
        b: &[f32],
        out_p: OutPtr,
        sparse: bool,
    ) {
        let (k, p, co) = (g.k(), g.p(), g.cout);
        let in_len = g.cin * g.h * g.w;
        assert_eq!(x.len(), g.n * in_len, "fused conv: input length");
        assert_eq!(w.len(), co * k, "fused conv: weight length");
        if sparse {
            let wt = transpose_weight(g, w);
            let w_hwio = simd::gather_supports(g).then(|| hwio_weight(g, &wt));
            let th = simd::tile_rows(g);
            for_samples(g.n, |a, z| {
                with_scratch(|scratch| {
                    let (_, acc, spikes, bits) = scratch.sized(0, th * g.ow * co);
                    for s in a..z {
                        // SAFETY: sample `s`'s output belongs to this worker only.
                        let o = unsafe { out_p.zeroed(s * co * p, co * p) };
                        let xs = &x[s * in_len..(s + 1) * in_len];
                        // Binary input: output-stationary gather from channel masks;
                        // otherwise (or an unsupported channel count) the scatter.
                        let gather = match &w_hwio {
                            Some(wh) if bits.index(g, xs) => Some(wh),
                            _ => {
                                spikes.index(g, xs);
                                None
                            }
                        };
                        for (oy0, oy1, q0, tile) in row_tiles(g, th) {
                            let acc = &mut acc[..tile * co];
                            match gather {
                                Some(wh) => simd::gather(g, bits, (oy0, oy1), wh, acc),
                                None => {
                                    acc.fill(0.0);
                                    simd::scatter(g, spikes, (oy0, oy1), &wt, acc, true);
                                }
                            }
                            // o[c, q0 + q] = acc[q, c] + b[c]
                            transpose(acc, co, tile, co, &mut o[q0..], p, b);
                        }
                    }
                })
            });
        } else {
            for_samples(g.n, |a, z| {
                with_scratch(|scratch| {
                    let (col, _, _, _) = scratch.sized(if g.pointwise() { 0 } else { k * p }, 0);
                    for s in a..z {
                        // SAFETY: sample `s`'s output belongs to this worker only.
                        let o = unsafe { out_p.zeroed(s * co * p, co * p) };
                        for (c, orow) in o.chunks_exact_mut(p).enumerate() {
                            orow.fill(b[c]);
                        }
                        let xs = &x[s * in_len..(s + 1) * in_len];
                        let cols: &[f32] = if g.pointwise() {
                            xs
                        } else {
                            im2col(g, xs, col);
                            col
                        };
                        matmul(co, p, k, o, true, w, (k, 1), cols, (p, 1));
                    }
                })
            });
        }
    }

    /// `dx` `[N, C_in, H, W]`, `dw` `[C_out, K]`, `db` `[C_out]` for the output gradient
    /// `gr` `[N, C_out, P]`; `dw` and `db` are overwritten; `dx` (skipped when `None`) points
    /// to `N·C_in·H·W` writable values, whose contents are ignored (every one is written).
    ///
    /// # Safety
    /// `dx`, when given, is valid for `N·C_in·H·W` writes and nothing else accesses them
    /// meanwhile.
    #[allow(clippy::too_many_arguments)]
    pub(crate) unsafe fn backward<V: Value>(
        g: &Geom,
        x: &[V],
        w: &[f32],
        gr: &[f32],
        dx: Option<OutPtr>,
        dw: &mut [f32],
        db: &mut [f32],
        sparse: bool,
    ) {
        let (k, p, co) = (g.k(), g.p(), g.cout);
        let in_len = g.cin * g.h * g.w;
        assert_eq!(x.len(), g.n * in_len, "fused conv: input length");
        let input_grad = dx.is_some();
        let dx_p = dx.unwrap_or(OutPtr(std::ptr::null_mut()));
        assert_eq!(w.len(), co * k, "fused conv: weight length");
        assert_eq!(dw.len(), w.len(), "fused conv: weight-gradient length");
        assert_eq!(gr.len(), g.n * co * p, "fused conv: gradient length");
        assert_eq!(db.len(), co, "fused conv: bias-gradient length");
        let rs = ranges(g.n);
        // Per worker: the weight gradient (as [C_out, K], or transposed [K, C_out] when
        // sparse) and the bias gradient over its samples.
        let th = simd::tile_rows(g);
        let work = |&(a, z): &(usize, usize)| -> (Vec<f32>, Vec<f64>) {
            with_scratch(|scratch| {
                let mut dwp = vec![0.0f32; co * k];
                let mut dbp = vec![0.0f64; co];
                let direct = g.pointwise() && V::as_f32(x).is_some();
                let (col, gt, spikes, _) = scratch.sized(
                    if direct { 0 } else { k * p },
                    if sparse { th * g.ow * co } else { 0 },
                );
                for s in a..z {
                    let xs = &x[s * in_len..(s + 1) * in_len];
                    let gs = &gr[s * co * p..(s + 1) * co * p];
                    for (c, grow) in gs.chunks_exact(p).enumerate() {
                        dbp[c] +=
                            crate::layer::fused_bn::kernel::sum2_fast(grow, grow, |v, _| (v, 0.0))
                                .0;
                    }
                    if input_grad {
                        // SAFETY: sample `s`'s input gradient belongs to this worker only (the
                        // pointer is non-null when `input_grad`).
                        let dxs = unsafe { dx_p.zeroed(s * in_len, in_len) };
                        if g.pointwise() {
                            // dx[s] [C_in, P] = Wᵀ · g[s]
                            matmul(k, p, co, dxs, false, w, (1, k), gs, (p, 1));
                        } else {
                            matmul(k, p, co, col, false, w, (1, k), gs, (p, 1));
                            col2im(g, col, dxs);
                        }
                    }
                    if sparse {
                        spikes.index(g, xs);
                        for (oy0, oy1, q0, tile) in row_tiles(g, th) {
                            let gt = &mut gt[..tile * co];
                            // gt[q, c] = g[s][c, q0 + q]
                            transpose(&gs[q0..], p, co, tile, gt, co, &[]);
                            simd::scatter(g, spikes, (oy0, oy1), gt, &mut dwp, false);
                        }
                    } else {
                        let cols: &[f32] = match V::as_f32(xs) {
                            Some(xs) if g.pointwise() => xs,
                            _ => {
                                im2col(g, xs, col);
                                col
                            }
                        };
                        // dW [C_out, K] += g[s] [C_out, P] · colᵀ [P, K]
                        matmul(co, k, p, &mut dwp, true, gs, (p, 1), cols, (1, p));
                    }
                }
                (dwp, dbp)
            })
        };
        let parts: Vec<(Vec<f32>, Vec<f64>)> = if rs.len() <= 1 {
            rs.iter().map(work).collect()
        } else {
            rs.par_iter().map(work).collect()
        };
        dw.fill(0.0);
        let mut dbt = vec![0.0f64; co];
        for (dwp, dbp) in &parts {
            if sparse {
                for r in 0..k {
                    for c in 0..co {
                        dw[c * k + r] += dwp[r * co + c];
                    }
                }
            } else {
                for (d, v) in dw.iter_mut().zip(dwp) {
                    *d += v;
                }
            }
            for (d, v) in dbt.iter_mut().zip(dbp) {
                *d += v;
            }
        }
        for (d, v) in db.iter_mut().zip(&dbt) {
            *d = *v as f32;
        }
    }

    /// The spike-aware inner loop, compiled for the best vector unit found at run time.
    pub mod simd {
        use super::Geom;
        use crate::layer::fused_ops::simd_dispatch;

        /// The non-zeros of one sample `[C_in, H, W]`, input row by input row.
        #[derive(Default)]
        pub struct Spikes {
            /// `starts[r]..starts[r + 1]` index `cols`/`vals` of row `r = c·H + i`.
            starts: Vec<usize>,
            /// Column `j` of each non-zero.
            cols: Vec<u32>,
            /// Its value.
            vals: Vec<f32>,
            /// Whether every non-zero is exactly 1 (spikes): the inner loop then only adds.
            binary: bool,
        }

        impl Spikes {
            /// Indexes the non-zeros of `x` (buffers are reused between calls).
            pub fn index<V: super::Value>(&mut self, g: &Geom, x: &[V]) {
                assert_eq!(x.len(), g.cin * g.h * g.w, "fused conv: sample length");
                let rows = g.cin * g.h;
                self.starts.clear();
                self.starts.reserve(rows + 1);
                self.starts.push(0);
                // Branch-free compaction: every value is written at the cursor, which only
                // moves on for a non-zero (one spare slot at the end).
                self.cols.resize(x.len() + 1, 0);
                self.vals.resize(x.len() + 1, 0.0);
                let (cols, vals) = (&mut self.cols[..], &mut self.vals[..]);
                let mut n = 0usize;
                let mut binary = true;
                for row in x.chunks_exact(g.w) {
                    for (j, &v) in row.iter().enumerate() {
                        let v = v.get();
                        cols[n] = j as u32;
                        vals[n] = v;
                        n += usize::from(v != 0.0);
                        binary &= v == 0.0 || v == 1.0;
                    }
                    self.starts.push(n);
                }
                self.binary = binary;
            }
        }

        /// Output rows per tile: the tile `[rows·W', C_out]` stays within ≈ 16 KiB, so it and
        /// the weight rows of one input channel share the L1 cache.
        pub fn tile_rows(g: &Geom) -> usize {
            (4096 / (g.ow * g.cout).max(1)).clamp(1, g.oh.max(1))
        }

        /// For every non-zero `x[c, i, j] = v` and every kernel tap `(u, t)` that maps it to an
        /// output pixel `o` in rows `oy0..oy1` (tile-local index `q`):
        /// * `forward`: `acc[q, :] += v · rows[(c, u, t), :]` (`rows` = `Wᵀ` `[K, C_out]`,
        ///   `acc` = the output tile `[(oy1 − oy0)·W', C_out]`);
        /// * otherwise (weight gradient): `acc[(c, u, t), :] += v · rows[q, :]` (`rows` = the
        ///   output-gradient tile `[(oy1 − oy0)·W', C_out]`, `acc` = `dWᵀ` `[K, C_out]`).
        pub fn scatter(
            g: &Geom,
            sp: &Spikes,
            (oy0, oy1): (usize, usize),
            rows: &[f32],
            acc: &mut [f32],
            forward: bool,
        ) {
            let tile = (oy1 - oy0) * g.ow * g.cout;
            let taps = g.k() * g.cout;
            assert!(oy0 < oy1 && oy1 <= g.oh, "fused conv: tile rows");
            assert_eq!(sp.starts.len(), g.cin * g.h + 1, "fused conv: spike index");
            assert_eq!(
                rows.len(),
                if forward { taps } else { tile },
                "fused conv: rows"
            );
            assert_eq!(
                acc.len(),
                if forward { tile } else { taps },
                "fused conv: acc"
            );
            scatter_compiled(g, sp, (oy0, oy1), rows, acc, forward)
        }

        simd_dispatch! { avx512;
            /// `scatter_generic` compiled for the best vector unit found at run time (its body
            /// is inlined there, so its loops are vectorized for that unit).
            fn scatter_compiled[](
                g: &Geom, sp: &Spikes, tile: (usize, usize), rows: &[f32], acc: &mut [f32],
                forward: bool
            ) => scatter_generic[]
        }

        /// One binary sample `[C_in, H, W]` as channel bit masks per pixel: `bits[(i·W + j)·words
        /// + c / 64]` has bit `c % 64` set where `x[c, i, j] = 1` (the input of [`gather`]).
        #[derive(Default)]
        pub struct Bits {
            words: usize,
            bits: Vec<u64>,
        }

        impl Bits {
            /// Builds the masks of `x`; `false` (masks unusable) when a value is not 0 or 1.
            pub fn index<V: super::Value>(&mut self, g: &Geom, x: &[V]) -> bool {
                assert_eq!(x.len(), g.cin * g.h * g.w, "fused conv: sample length");
                let (hw, words) = (g.h * g.w, g.cin.div_ceil(64));
                self.words = words;
                self.bits.clear();
                self.bits.resize(hw * words, 0);
                let mut binary = true;
                for (ci, plane) in x.chunks_exact(hw).enumerate() {
                    let (wd, shift) = (ci / 64, ci % 64);
                    let bits = &mut self.bits[wd..];
                    for (p, v) in plane.iter().enumerate() {
                        let v = v.get();
                        binary &= v == 0.0 || v == 1.0;
                        bits[p * words] |= u64::from(v != 0.0) << shift;
                    }
                }
                binary
            }
        }

        /// Whether [`gather`] handles `g` (its output channels are a register-block multiple)
        /// and is the faster forward: with fewer than 64 input channels a pixel's mask holds
        /// too few spikes to pay for its bookkeeping, and the scatter wins (measured with
        /// `tks bench --conv-micro`: 16 → 32 channels at 48×48, 10–20 % spikes, gather ≈ 1.3×
        /// slower; 64 → 64 and 128 → 128, 5–30 %: gather 1.2–2× faster).
        pub fn gather_supports(g: &Geom) -> bool {
            g.cin >= 64 && (matches!(g.cout, 16 | 32 | 64) || g.cout.is_multiple_of(BLOCK))
        }

        /// Output-stationary forward for binary input: for every output pixel of rows
        /// `oy0..oy1` and block of output channels, the sum of the weight rows of the active
        /// `(tap, input channel)` pairs is kept in registers (found from the pixels' channel
        /// masks) and written once: `tile[q, :] = Σ w_hwio[(u·k_w + t)·C_in + c, :]`, with
        /// `w_hwio` the weight as `[k_h, k_w, C_in, C_out]` and `tile` `[(oy1 − oy0)·W', C_out]`.
        /// One load per weight vector and no store per spike (the scatter's forward needs a load
        /// and a store of the output per spike and tap).
        pub fn gather(
            g: &Geom,
            bits: &Bits,
            tile: (usize, usize),
            w_hwio: &[f32],
            out: &mut [f32],
        ) {
            let (oy0, oy1) = tile;
            assert!(oy0 < oy1 && oy1 <= g.oh, "fused conv: tile rows");
            assert!(gather_supports(g), "fused conv: gather channel count");
            assert_eq!(bits.words, g.cin.div_ceil(64), "fused conv: channel masks");
            assert_eq!(
                bits.bits.len(),
                g.h * g.w * bits.words,
                "fused conv: channel masks"
            );
            assert_eq!(w_hwio.len(), g.k() * g.cout, "fused conv: gather weight");
            assert_eq!(
                out.len(),
                (oy1 - oy0) * g.ow * g.cout,
                "fused conv: gather tile"
            );
            gather_compiled(g, bits, tile, w_hwio, out)
        }

        simd_dispatch! { avx512;
            /// `gather_generic` compiled for the best vector unit found at run time.
            fn gather_compiled[](
                g: &Geom, bits: &Bits, tile: (usize, usize), w_hwio: &[f32], out: &mut [f32]
            ) => gather_generic[]
        }

        #[inline(always)]
        fn gather_generic(
            g: &Geom,
            bits: &Bits,
            tile: (usize, usize),
            w_hwio: &[f32],
            out: &mut [f32],
        ) {
            match g.cout {
                16 => gather_impl::<16>(g, bits, tile, w_hwio, out),
                32 => gather_impl::<32>(g, bits, tile, w_hwio, out),
                64 => gather_impl::<64>(g, bits, tile, w_hwio, out),
                _ => gather_impl::<BLOCK>(g, bits, tile, w_hwio, out),
            }
        }

        /// [`gather`] with `CB` output channels per register block (`C_out` a multiple of it).
        #[inline(always)]
        fn gather_impl<const CB: usize>(
            g: &Geom,
            bits: &Bits,
            (oy0, oy1): (usize, usize),
            w_hwio: &[f32],
            out: &mut [f32],
        ) {
            let (co, cin, words) = (g.cout, g.cin, bits.words);
            let (s, pad, ow) = (g.stride, g.pad, g.ow);
            debug_assert!(co % CB == 0);
            let (mp, wp) = (bits.bits.as_ptr(), w_hwio.as_ptr());
            for c0 in (0..co).step_by(CB) {
                for oy in oy0..oy1 {
                    for ox in 0..ow {
                        let mut acc = [0.0f32; CB];
                        for u in 0..g.kh {
                            let Some(iy) = (oy * s + u).checked_sub(pad) else {
                                continue;
                            };
                            if iy >= g.h {
                                break;
                            }
                            for t in 0..g.kw {
                                let Some(ix) = (ox * s + t).checked_sub(pad) else {
                                    continue;
                                };
                                if ix >= g.w {
                                    break;
                                }
                                let base = (iy * g.w + ix) * words;
                                let row0 = (u * g.kw + t) * cin;
                                for wd in 0..words {
                                    // SAFETY: iy < H, ix < W and wd < words index the masks.
                                    let mut m = unsafe { *mp.add(base + wd) };
                                    while m != 0 {
                                        let ci = wd * 64 + m.trailing_zeros() as usize;
                                        m &= m - 1;
                                        debug_assert!(ci < cin);
                                        // SAFETY: row0 + ci < K and c0 + CB ≤ C_out.
                                        let wr = unsafe { wp.add((row0 + ci) * co + c0) };
                                        for (i, a) in acc.iter_mut().enumerate() {
                                            // SAFETY: i < CB (see above).
                                            *a += unsafe { *wr.add(i) };
                                        }
                                    }
                                }
                            }
                        }
                        let q = (oy - oy0) * ow + ox;
                        out[q * co + c0..q * co + c0 + CB].copy_from_slice(&acc);
                    }
                }
            }
        }

        /// The output column fed by input column `ix` through kernel column `t`
        /// (`ox·s = ix + pad − t`, `0 ≤ ox < W'`), if any.
        #[inline(always)]
        fn output_col(ix: usize, t: usize, pad: usize, s: usize, ow: usize) -> Option<usize> {
            let num = (ix + pad).checked_sub(t)?;
            if s > 1 && num % s != 0 {
                return None;
            }
            let ox = num / s;
            (ox < ow).then_some(ox)
        }

        /// Channels handled per pass: one block's row of weights (or of the weight gradient)
        /// lives in vector registers while the spikes stream past.
        const BLOCK: usize = 128;

        #[inline(always)]
        fn scatter_generic(
            g: &Geom,
            sp: &Spikes,
            tile: (usize, usize),
            rows: &[f32],
            acc: &mut [f32],
            forward: bool,
        ) {
            match (sp.binary, forward) {
                (true, true) => scatter_co::<true, true>(g, sp, tile, rows, acc),
                (true, false) => scatter_co::<true, false>(g, sp, tile, rows, acc),
                (false, true) => scatter_co::<false, true>(g, sp, tile, rows, acc),
                (false, false) => scatter_co::<false, false>(g, sp, tile, rows, acc),
            }
        }

        /// [`scatter_impl`] with the channel block width fixed at compile time where the
        /// output channel count is a common one (0 = run-time width).
        #[inline(always)]
        fn scatter_co<const BINARY: bool, const FORWARD: bool>(
            g: &Geom,
            sp: &Spikes,
            tile: (usize, usize),
            rows: &[f32],
            acc: &mut [f32],
        ) {
            let row3 = g.kw == 3;
            match g.cout {
                16 if row3 => scatter_row3::<BINARY, FORWARD, 16>(g, sp, tile, rows, acc),
                32 if row3 => scatter_row3::<BINARY, FORWARD, 32>(g, sp, tile, rows, acc),
                64 if row3 => scatter_row3::<BINARY, FORWARD, 64>(g, sp, tile, rows, acc),
                16 => scatter_impl::<BINARY, FORWARD, 16>(g, sp, tile, rows, acc),
                32 => scatter_impl::<BINARY, FORWARD, 32>(g, sp, tile, rows, acc),
                64 => scatter_impl::<BINARY, FORWARD, 64>(g, sp, tile, rows, acc),
                c if c % BLOCK == 0 => {
                    scatter_impl::<BINARY, FORWARD, BLOCK>(g, sp, tile, rows, acc)
                }
                _ => scatter_impl::<BINARY, FORWARD, 0>(g, sp, tile, rows, acc),
            }
        }

        /// [`scatter_impl`] for kernels 3 wide and at most 64 output channels (`CO`): the three
        /// taps `(c, u, 0..3)` of a kernel row are held in registers together, so each spike is
        /// read once per kernel row instead of once per tap (the per-spike bookkeeping is what
        /// costs most when a tap's row is only one to four vectors).
        #[inline(always)]
        fn scatter_row3<const BINARY: bool, const FORWARD: bool, const CO: usize>(
            g: &Geom,
            sp: &Spikes,
            (oy0, oy1): (usize, usize),
            rows: &[f32],
            acc: &mut [f32],
        ) {
            debug_assert!(g.kw == 3 && g.cout == CO);
            let (s, pad, ow) = (g.stride, g.pad, g.ow);
            let pixels = (oy1 - oy0) * ow;
            let (acc_rows, src_rows) = if FORWARD {
                (pixels, g.k())
            } else {
                (g.k(), pixels)
            };
            assert!(acc.len() >= acc_rows * CO && rows.len() >= src_rows * CO);
            let (accp, rowp) = (acc.as_mut_ptr(), rows.as_ptr());
            let mut reg = [[0.0f32; CO]; 3];
            for ci in 0..g.cin {
                for u in 0..g.kh {
                    let tap0 = (ci * g.kh + u) * 3;
                    for (t, r) in reg.iter_mut().enumerate() {
                        if FORWARD {
                            r.copy_from_slice(&rows[(tap0 + t) * CO..(tap0 + t + 1) * CO]);
                        } else {
                            *r = [0.0; CO];
                        }
                    }
                    for oy in oy0..oy1 {
                        let Some(iy) = (oy * s + u).checked_sub(pad) else {
                            continue;
                        };
                        if iy >= g.h {
                            break;
                        }
                        let r = ci * g.h + iy;
                        let qrow = (oy - oy0) * ow;
                        for e in sp.starts[r]..sp.starts[r + 1] {
                            let ix = sp.cols[e] as usize;
                            let v = sp.vals[e];
                            for (t, wr) in reg.iter_mut().enumerate() {
                                // ox·s = ix + pad − t, 0 ≤ ox < W'.
                                let Some(ox) = output_col(ix, t, pad, s, ow) else {
                                    continue;
                                };
                                let q = qrow + ox;
                                debug_assert!(q < pixels);
                                if FORWARD {
                                    // SAFETY: q < pixels = acc_rows (the checks above).
                                    let dst = unsafe { accp.add(q * CO) };
                                    for (i, w) in wr.iter().enumerate() {
                                        // SAFETY: i < CO.
                                        unsafe {
                                            *dst.add(i) += if BINARY { *w } else { v * w };
                                        }
                                    }
                                } else {
                                    // SAFETY: q < pixels = src_rows (the checks above).
                                    let src = unsafe { rowp.add(q * CO) };
                                    for (i, a) in wr.iter_mut().enumerate() {
                                        // SAFETY: i < CO.
                                        let x = unsafe { *src.add(i) };
                                        *a += if BINARY { x } else { v * x };
                                    }
                                }
                            }
                        }
                    }
                    if !FORWARD {
                        for (t, r) in reg.iter().enumerate() {
                            let dst = &mut acc[(tap0 + t) * CO..(tap0 + t + 1) * CO];
                            for (d, a) in dst.iter_mut().zip(r) {
                                *d += a;
                            }
                        }
                    }
                }
            }
        }

        /// Tap-stationary scatter: for every kernel tap `(c, u, t)` and channel block, the
        /// tap's weight row (forward) or weight-gradient row (backward) is held in registers
        /// while the spikes of input channel `c` that this tap maps into the tile stream past;
        /// the forward then does one load + one store per output vector, the weight gradient
        /// one load.
        #[inline(always)]
        fn scatter_impl<const BINARY: bool, const FORWARD: bool, const CB: usize>(
            g: &Geom,
            sp: &Spikes,
            (oy0, oy1): (usize, usize),
            rows: &[f32],
            acc: &mut [f32],
        ) {
            let (co, s, pad, ow) = (g.cout, g.stride, g.pad, g.ow);
            let pixels = (oy1 - oy0) * ow;
            let (acc_rows, src_rows) = if FORWARD {
                (pixels, g.k())
            } else {
                (g.k(), pixels)
            };
            assert!(acc.len() >= acc_rows * co && rows.len() >= src_rows * co);
            let (accp, rowp) = (acc.as_mut_ptr(), rows.as_ptr());
            let mut reg = [0.0f32; BLOCK];
            for c0 in (0..co).step_by(BLOCK) {
                let width = if CB > 0 { CB } else { (co - c0).min(BLOCK) };
                debug_assert!(c0 + width <= co);
                for ci in 0..g.cin {
                    for u in 0..g.kh {
                        for t in 0..g.kw {
                            let tap = (ci * g.kh + u) * g.kw + t;
                            if FORWARD {
                                reg[..width]
                                    .copy_from_slice(&rows[tap * co + c0..tap * co + c0 + width]);
                            } else {
                                reg[..width].fill(0.0);
                            }
                            for oy in oy0..oy1 {
                                // The input row this tap reads for output row oy.
                                let Some(iy) = (oy * s + u).checked_sub(pad) else {
                                    continue;
                                };
                                if iy >= g.h {
                                    break;
                                }
                                let r = ci * g.h + iy;
                                let qrow = (oy - oy0) * ow;
                                for e in sp.starts[r]..sp.starts[r + 1] {
                                    let ix = sp.cols[e] as usize;
                                    let Some(ox) = output_col(ix, t, pad, s, ow) else {
                                        // Columns ascend: past the right edge, stop.
                                        if ix + pad >= t + ow * s {
                                            break;
                                        }
                                        continue;
                                    };
                                    let q = qrow + ox;
                                    let v = sp.vals[e];
                                    debug_assert!(q < pixels);
                                    if FORWARD {
                                        // SAFETY: q < pixels = acc_rows and c0 + width ≤ co.
                                        let dst = unsafe { accp.add(q * co + c0) };
                                        for (i, r) in reg[..width].iter().enumerate() {
                                            // SAFETY: i < width (see above).
                                            unsafe {
                                                *dst.add(i) += if BINARY { *r } else { v * r };
                                            }
                                        }
                                    } else {
                                        // SAFETY: q < pixels = src_rows and c0 + width ≤ co.
                                        let src = unsafe { rowp.add(q * co + c0) };
                                        for (i, r) in reg[..width].iter_mut().enumerate() {
                                            // SAFETY: i < width (see above).
                                            let x = unsafe { *src.add(i) };
                                            *r += if BINARY { x } else { v * x };
                                        }
                                    }
                                }
                            }
                            if !FORWARD {
                                let dst = &mut acc[tap * co + c0..tap * co + c0 + width];
                                for (d, r) in dst.iter_mut().zip(&reg[..width]) {
                                    *d += r;
                                }
                            }
                        }
                    }
                }
            }
        }
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
        let kept =
            <Flex as ConvOps>::conv2d_spk_pack(flex_tensor(analogue.clone(), vec![1, 1, 2, 2]), true);
        assert_eq!(kept.dtype(), DType::F32);
        assert_eq!(f32_values(&kept).to_vec(), analogue);
    }
}
