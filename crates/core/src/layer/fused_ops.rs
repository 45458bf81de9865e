//! The switch between burn's layer ops (the reference) and the fused Flex kernels of
//! [`super::fused_pool`] (k×k / stride k average pooling) and [`super::fused_bn`] (training-mode
//! BatchNorm with statistics and backward in one sweep each), plus the small helpers they share.
//!
//! [`crate::kernels::KernelPolicy::layers`] chooses; the fused ops run only where [`flex_f32`]
//! holds and fall back to burn elsewhere.

use std::borrow::Cow;
use std::mem::MaybeUninit;

use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, AutodiffBackend, Backend, DType, DispatchDevice};
use burn::tensor::{Tensor, TensorData};
use rayon::prelude::*;

pub use crate::kernels::LayerPath;

/// Whether `x` is a non-empty f32 tensor on a Flex device (with or without autodiff).
pub fn flex_f32<const D: usize>(x: &Tensor<D>) -> bool {
    x.dtype() == DType::F32
        && x.shape().num_elements() > 0
        && matches!(x.device().inner().as_dispatch(), DispatchDevice::Flex(_))
}

/// The f32 values of a Flex tensor in contiguous row-major order (borrowed when already so).
pub(crate) fn f32_values(x: &FlexTensor) -> Cow<'_, [f32]> {
    assert_eq!(x.dtype(), DType::F32, "fused layer op: f32 only");
    match x.as_slice::<f32>() {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(x.to_contiguous().as_slice::<f32>().unwrap().to_vec()),
    }
}

/// The whole buffer of `x` for writing in place, when `x` is an f32 tensor of `len` values
/// that owns its buffer alone, row-major from its start (as a backward step's incoming
/// gradient usually is); `None` otherwise (the caller then writes a fresh buffer).
pub(crate) fn whole_unique_f32(x: &mut FlexTensor, len: usize) -> Option<&mut [f32]> {
    let whole = x.dtype() == DType::F32
        && x.layout().contiguous_offsets() == Some((0, len))
        && x.storage::<f32>().len() == len;
    if !whole {
        return None;
    }
    x.try_storage_mut::<f32>()
}

/// A Flex tensor owning `values` with `shape`.
pub(crate) fn flex_tensor(values: Vec<f32>, shape: Vec<usize>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

/// Defines `fn $name<generics>(args) -> ret` that runs the `#[inline(always)]` function `$body`
/// compiled for AVX2 + FMA when the CPU has them (checked at run time), and for the baseline
/// target otherwise; with a leading `avx512;`, first for AVX-512F where the CPU has it. The crate
/// is built for baseline x86-64 (SSE2) so the binary runs anywhere; this gives the memory-bound
/// element-wise kernels (neuron, BatchNorm, pooling, im2col) 256-bit vectors and the spike-aware
/// conv loops 512-bit ones. No result changes: Rust never contracts `a * b + c` into an FMA on its
/// own.
///
/// ```text
/// simd_dispatch! {
///     /// Docs.
///     pub fn name[T: Bound, const K: bool](a: &[f32], b: T) -> f32 => body_fn[T, K]
/// }
/// simd_dispatch! { avx512;
///     fn other[](a: &mut [f32]) => other_body[]
/// }
/// ```
macro_rules! simd_dispatch {
    (@tiers [$($tier:tt)*]
        $(#[$meta:meta])*
        $vis:vis fn $name:ident [$($gen:tt)*] ($($arg:ident : $ty:ty),* $(,)?) $(-> $ret:ty)?
            => $body:ident [$($targ:tt)*]
    ) => {
        $(#[$meta])*
        #[allow(clippy::too_many_arguments)]
        $vis fn $name<$($gen)*>($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                simd_dispatch!(@each [$($tier)*] [$($gen)*] ($($arg: $ty),*) [$($ret)?]
                    $body [$($targ)*]);
            }
            $body::<$($targ)*>($($arg),*)
        }
    };
    // One `#[target_feature]` copy per tier, the first the CPU supports is called.
    (@each [] $($rest:tt)*) => {};
    (@each [($features:literal [$($detect:tt),+]) $($more:tt)*] [$($gen:tt)*]
        ($($arg:ident : $ty:ty),*) [$($ret:ty)?] $body:ident [$($targ:tt)*]
    ) => {
        {
            #[target_feature(enable = $features)]
            #[allow(clippy::too_many_arguments)]
            unsafe fn fast<$($gen)*>($($arg: $ty),*) $(-> $ret)? {
                $body::<$($targ)*>($($arg),*)
            }
            if $(std::arch::is_x86_feature_detected!($detect))&&+ {
                // SAFETY: the CPU supports these features (checked just above).
                return unsafe { fast::<$($targ)*>($($arg),*) };
            }
        }
        simd_dispatch!(@each [$($more)*] [$($gen)*] ($($arg: $ty),*) [$($ret)?]
            $body [$($targ)*]);
    };
    (avx512; $($rest:tt)*) => {
        simd_dispatch!(@tiers [
            ("avx512f,avx2,fma" ["avx512f", "avx2", "fma"])
            ("avx2,fma" ["avx2", "fma"])
        ] $($rest)*);
    };
    ($($rest:tt)*) => {
        simd_dispatch!(@tiers [("avx2,fma" ["avx2", "fma"])] $($rest)*);
    };
}
pub(crate) use simd_dispatch;

/// `n` zeros, written by the rayon workers in parallel chunks. The output buffers of the fused
/// kernels are large and reused by the allocator, so `vec![0.0; n]` would `memset` them on the
/// calling thread alone while the other cores wait.
pub(crate) fn zeroed(n: usize) -> Vec<f32> {
    const CHUNK: usize = 1 << 15;
    if n < 2 * CHUNK {
        return vec![0.0; n];
    }
    let mut v: Vec<f32> = Vec::with_capacity(n);
    v.spare_capacity_mut()[..n]
        .par_chunks_mut(CHUNK)
        .for_each(|c| c.fill(std::mem::MaybeUninit::new(0.0)));
    // SAFETY: the first `n` elements were all initialised just above.
    unsafe { v.set_len(n) };
    v
}

/// `n` values, every one written by `fill` (handed the buffer uninitialised): an output
/// buffer with no zeroing pass of its own.
///
/// # Safety
/// `fill` writes every element of the slice it is given.
pub(crate) unsafe fn written(n: usize, fill: impl FnOnce(&mut [MaybeUninit<f32>])) -> Vec<f32> {
    let mut v: Vec<f32> = Vec::with_capacity(n);
    fill(&mut v.spare_capacity_mut()[..n]);
    // SAFETY: the first `n` elements were all written (the caller's contract).
    unsafe { v.set_len(n) };
    v
}

/// `s` as a buffer to write into. Sound: only initialised values are written through it
/// (the kernels' stores), so `s` stays initialised.
pub(crate) fn as_uninit(s: &mut [f32]) -> &mut [MaybeUninit<f32>] {
    // SAFETY: `MaybeUninit<f32>` has the layout of `f32`, and nothing uninitialised is ever
    // stored through the result.
    unsafe { &mut *(s as *mut [f32] as *mut [MaybeUninit<f32>]) }
}

/// `s`, every element of which has been written, as initialised values.
///
/// # Safety
/// Every element of `s` is initialised.
pub(crate) unsafe fn assume_written(s: &mut [MaybeUninit<f32>]) -> &mut [f32] {
    // SAFETY: same layout; initialised (the caller's contract).
    unsafe { &mut *(s as *mut [MaybeUninit<f32>] as *mut [f32]) }
}

/// Registers the gradient `values[i]` of each tracked parent `parents[i]` (the ids of an op's
/// `ops.parents`): the end of every fused op's `Backward::backward`.
pub(crate) fn register_grads<B: Backend, const N: usize>(
    grads: &mut Gradients,
    parents: [Option<NodeId>; N],
    values: [FloatTensor<B>; N],
) {
    for (parent, value) in parents.into_iter().zip(values) {
        if let Some(id) = parent {
            grads.register::<B>(id, value);
        }
    }
}

/// Three values of one type (the fused ops' gradient triples).
pub(crate) type Three<T> = (T, T, T);

/// The inner backend's gradients as untracked autodiff tensors: the fused ops' answer to a
/// backward called on autodiff tensors (second-order gradients are not supported).
pub(crate) fn constants<B: Backend, C: CheckpointStrategy>(
    (a, b, c): Three<FloatTensor<B>>,
) -> Three<FloatTensor<Autodiff<B, C>>> {
    (
        Autodiff::<B, C>::from_inner(a),
        Autodiff::<B, C>::from_inner(b),
        Autodiff::<B, C>::from_inner(c),
    )
}

/// A raw output pointer shared by parallel workers that write disjoint ranges.
#[derive(Clone, Copy)]
pub(crate) struct OutPtr(pub *mut f32);
// SAFETY: every user writes disjoint index ranges from different threads.
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

/// An output buffer of `len` values handed to a kernel as a raw pointer: each worker writes
/// its part uninitialised ([`OutPtr::uninit`]) or, where it accumulates, zeroes the part it
/// then fills ([`OutPtr::zeroed`]: in its cache, in parallel) instead of the whole buffer
/// being zeroed up front in a pass of its own.
pub(crate) struct Filled {
    values: Vec<f32>,
    len: usize,
}

impl Filled {
    /// Room for `len` values, not yet initialised.
    pub(crate) fn new(len: usize) -> Self {
        Self {
            values: Vec::with_capacity(len),
            len,
        }
    }

    /// The pointer the kernel writes through (valid for `len` values).
    pub(crate) fn ptr(&mut self) -> OutPtr {
        OutPtr(self.values.as_mut_ptr())
    }

    /// The values.
    ///
    /// # Safety
    /// Every value in `0..len` was written (through [`OutPtr::zeroed`] or [`OutPtr::uninit`]
    /// slices).
    pub(crate) unsafe fn into_vec(mut self) -> Vec<f32> {
        // SAFETY: the capacity is `len` and the caller guarantees every value is initialised.
        unsafe { self.values.set_len(self.len) };
        self.values
    }
}

impl OutPtr {
    /// The range `[start, start + len)` set to zero, as a mutable slice.
    ///
    /// # Safety
    /// As [`OutPtr::slice`]; the memory may be uninitialised (it is written before the slice
    /// is made).
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn zeroed(&self, start: usize, len: usize) -> &mut [f32] {
        unsafe {
            std::ptr::write_bytes(self.0.add(start), 0, len);
            std::slice::from_raw_parts_mut(self.0.add(start), len)
        }
    }

    /// The range `[start, start + len)`, possibly uninitialised, as a slice to write.
    ///
    /// # Safety
    /// As [`OutPtr::slice`].
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn uninit(&self, start: usize, len: usize) -> &mut [MaybeUninit<f32>] {
        unsafe { std::slice::from_raw_parts_mut(self.0.add(start).cast(), len) }
    }

    /// The mutable slice `[start, start + len)`.
    ///
    /// # Safety
    /// The range is in bounds and no other thread touches it while the slice lives.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn slice(&self, start: usize, len: usize) -> &mut [f32] {
        unsafe { std::slice::from_raw_parts_mut(self.0.add(start), len) }
    }
}
