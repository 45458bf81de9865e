//! The CPU kernels of the fused LIF/IF on `[T, N]` slices: neurons in blocks of [`BLOCK`]
//! columns, blocks in parallel, each block's membrane in L1 while it runs over time (the row
//! loops are in `super::rows`).

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::rows::{backward_row, charge_row, reset_row};
use super::{BLOCK, LifSpec, PARALLEL_MIN};
use crate::layer::fused_ops::{as_uninit, assume_written, simd_dispatch};
use crate::surrogate::Surrogate;
use crate::surrogate::scalar::{Grad, GradFn};

/// The former kernel-side names of the surrogate forms; the formulas live in
/// [`crate::surrogate::scalar`].
pub use crate::surrogate::scalar::{
    Atan, Bireal, Grad as Sg, GradFn as SgFn, Rectangle as Rect, Sigmoid as Sig, Triangle as Tri,
};

/// Calls `f` with the f32 kernel form of `s` ([`Surrogate::with_grad`]).
pub fn with_sg<R>(s: Surrogate, f: impl SgFn<R>) -> R {
    s.with_grad(f)
}

/// `g(v)` of the kernel form of `s` ([`Surrogate::grad_f32`]).
pub fn surrogate_f32(s: Surrogate, v: f32) -> f32 {
    s.grad_f32(v)
}

/// A raw output buffer (`[T, N]` or `[N]`) shared by the blocks, which write disjoint columns
/// of it.
#[derive(Clone, Copy)]
struct Out {
    ptr: *mut f32,
    len: usize,
}
// SAFETY: the pointer is only dereferenced through `Out::slice`, whose callers (the blocks)
// each take their own columns `[n0, n0 + w)` of a row, so the blocks may run on any thread.
unsafe impl Send for Out {}
// SAFETY: as for `Send`: shared use only ever yields disjoint slices.
unsafe impl Sync for Out {}

impl Out {
    /// The buffer `buf`, to be written through [`Out::slice`] while `buf` is not used otherwise.
    fn new(buf: &mut [f32]) -> Self {
        Self {
            ptr: buf.as_mut_ptr(),
            len: buf.len(),
        }
    }

    /// The uninitialised buffer `buf`, to be written through [`Out::uninit`].
    fn new_uninit(buf: &mut [MaybeUninit<f32>]) -> Self {
        Self {
            ptr: buf.as_mut_ptr().cast(),
            len: buf.len(),
        }
    }

    /// The values `[start, start + len)`, possibly uninitialised, as a slice to write.
    ///
    /// # Safety
    /// As [`Out::slice`].
    #[inline(always)]
    unsafe fn uninit<'a>(self, start: usize, len: usize) -> &'a mut [MaybeUninit<f32>] {
        debug_assert!(
            start <= self.len && len <= self.len - start,
            "fused LIF: [{start}, {start} + {len}) outside a buffer of {}",
            self.len
        );
        // SAFETY: the range is inside the live buffer and not aliased (the caller's contract,
        // bounds checked in debug builds).
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(start).cast(), len) }
    }

    /// The values `[start, start + len)` as a mutable slice (a method, so that closures capture
    /// the whole `Send` wrapper rather than its raw-pointer field).
    ///
    /// # Safety
    /// The buffer given to [`Out::new`] outlives `'a` and is not accessed otherwise meanwhile,
    /// `start + len` is at most its length, and no other live slice from this `Out` overlaps
    /// the range.
    #[inline(always)]
    unsafe fn slice<'a>(self, start: usize, len: usize) -> &'a mut [f32] {
        // SAFETY: the caller's contract; the buffer given to `Out::new` is initialised.
        unsafe { assume_written(self.uninit(start, len)) }
    }
}

/// The blocks `(n0, w)` of `n` columns, in parallel.
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

/// Runs `f(n0, w)` for every block of `n` columns, in parallel when `t·n` is large enough.
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
    forward_from(
        &Direct,
        x,
        as_uninit(out),
        h.map(as_uninit),
        mem,
        t,
        n,
        spec,
    )
}

/// [`forward`] with the current computed from the stored input `x` by `cur`, into buffers
/// that may be uninitialised (every value of `out`, and of `h` if given, is written).
#[allow(clippy::too_many_arguments)]
pub fn forward_from<C: Current>(
    cur: &C,
    x: &[f32],
    out: &mut [MaybeUninit<f32>],
    h: Option<&mut [MaybeUninit<f32>]>,
    mem: Option<&mut [f32]>,
    t: usize,
    n: usize,
    spec: &LifSpec,
) {
    assert_eq!(x.len(), t * n);
    assert_eq!(out.len(), t * n);
    let out_p = Out::new_uninit(out);
    let h_p = h.map(|h| {
        assert_eq!(h.len(), t * n);
        Out::new_uninit(h)
    });
    let m_p = mem.map(|m| {
        assert_eq!(m.len(), n);
        Out::new(m)
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
            // SAFETY: `out` is `[T, N]` (asserted in `forward_from`) and columns [n0, n0 + w)
            // of row `step` belong to this block only.
            let or = unsafe { out_p.uninit(row, w) };
            if let Some(hp) = h_p {
                // SAFETY: as for `or`: `h` is `[T, N]` too.
                let hr = unsafe { hp.uninit(row, w) };
                charge_row::<false, false>(xr, m, hr, decay, th);
            }
            if soft {
                charge_row::<true, true>(xr, m, or, decay, th);
            } else {
                charge_row::<false, true>(xr, m, or, decay, th);
            }
        }
        if let Some(mp) = m_p {
            // SAFETY: `mem` is `[N]` (asserted in `forward_from`) and columns [n0, n0 + w)
            // belong to this block only.
            let mr = unsafe { mp.slice(n0, w) };
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
    assert_eq!(gs.len(), t * n);
    backward_run(cur, x, Some(gs), gx, t, n, spec)
}

/// [`backward_from`] in place: `g` holds `dL/dspikes` on entry and `dL/dcurrent` on return
/// (each value is read before its own slot is written), so the backward needs no second
/// `[T, N]` buffer. Bit-identical to [`backward_from`].
pub fn backward_from_in_place<C: Current>(
    cur: &C,
    x: &[f32],
    g: &mut [f32],
    t: usize,
    n: usize,
    spec: &LifSpec,
) {
    backward_run(cur, x, None, g, t, n, spec)
}

/// The backward of [`backward_from`]; `gs = None`: the incoming gradient is in `gx`.
fn backward_run<C: Current>(
    cur: &C,
    x: &[f32],
    gs: Option<&[f32]>,
    gx: &mut [f32],
    t: usize,
    n: usize,
    spec: &LifSpec,
) {
    assert_eq!(x.len(), t * n);
    assert_eq!(gx.len(), t * n);
    struct Run<'a, C> {
        cur: &'a C,
        x: &'a [f32],
        gs: Option<&'a [f32]>,
        gx: Out,
        t: usize,
        n: usize,
        spec: LifSpec,
    }
    impl<C: Current> GradFn<()> for Run<'_, C> {
        fn call<G: Grad>(self, g: G) {
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
                (false, true) => backward_with::<C, G, false, true>(cur, x, gs, gx, t, n, &spec, g),
                (true, false) => backward_with::<C, G, true, false>(cur, x, gs, gx, t, n, &spec, g),
                (true, true) => backward_with::<C, G, true, true>(cur, x, gs, gx, t, n, &spec, g),
            }
        }
    }
    spec.surrogate.with_grad(Run {
        cur,
        x,
        gs,
        gx: Out::new(gx),
        t,
        n,
        spec: *spec,
    });
}

#[allow(clippy::too_many_arguments)]
fn backward_with<C: Current, G: Grad, const SOFT: bool, const DETACH: bool>(
    cur: &C,
    x: &[f32],
    gs: Option<&[f32]>,
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
    fn backward_block[C: Current, G: Grad, const SOFT: bool, const DETACH: bool](
        cur: &C, x: &[f32], gs: Option<&[f32]>, gx: Out, t: usize, n: usize, spec: &LifSpec,
        g: G, n0: usize, w: usize
    ) => backward_block_body[C, G, SOFT, DETACH]
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn backward_block_body<C: Current, G: Grad, const SOFT: bool, const DETACH: bool>(
    cur: &C,
    x: &[f32],
    gs: Option<&[f32]>,
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
            charge_row::<SOFT, false>(xr, m, as_uninit(hr), decay, th);
            // (charge_row with SPIKES = false leaves m as it was: the reset follows.)
            reset_row::<SOFT>(hr, m, th);
        }
        let mut gm = [0.0f32; BLOCK];
        let gm = &mut gm[..w];
        let mut incoming = [0.0f32; BLOCK];
        for step in (0..t).rev() {
            let row = step * n + n0;
            let hr = &hbuf[step * w..(step + 1) * w];
            // SAFETY: `gx` is `[T, N]` (asserted in `backward_run`) and columns [n0, n0 + w)
            // of row `step` belong to this block only.
            let or = unsafe { gx.slice(row, w) };
            let gr = match gs {
                Some(gs) => &gs[row..row + w],
                // In place: the row's incoming gradient, copied out before it is overwritten.
                None => {
                    incoming[..w].copy_from_slice(or);
                    &incoming[..w]
                }
            };
            backward_row::<G, SOFT, DETACH>(or, gr, hr, gm, th, decay, g);
            blk.grad_row(&x[row..row + w], or);
        }
        blk.finish();
    }
}
