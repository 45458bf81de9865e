//! The dense path: im2col/col2im of one sample, the single-threaded gemm, and the blocked
//! transpose that the spike-aware path also uses to turn its `[pixels, C_out]` tiles around.

use std::mem::MaybeUninit;

use super::kernel::{Geom, Value};
use crate::layer::fused_ops::simd_dispatch;

/// `dst = src` for the short rows of im2col (a few to a few dozen values), inline: a
/// libc `memcpy` call per row costs more than the copy there.
#[inline(always)]
pub(super) fn copy_short(dst: &mut [f32], src: &[f32]) {
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
pub(super) fn matmul(
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
    /// `dst` may be uninitialised: these values are written, no other is touched.
    pub(super) fn transpose[](
        src: &[f32], src_rs: usize, rows: usize, cols: usize, dst: &mut [MaybeUninit<f32>],
        dst_rs: usize, add: &[f32]
    ) => transpose_body[]
}

#[inline(always)]
fn transpose_body(
    src: &[f32],
    src_rs: usize,
    rows: usize,
    cols: usize,
    dst: &mut [MaybeUninit<f32>],
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
                        v.write(blk[i][j] + a);
                    }
                }
            } else {
                for i in i0..(i0 + B).min(rows) {
                    for j in j0..(j0 + B).min(cols) {
                        dst[j * dst_rs + i].write(src[i * src_rs + j] + plus(j));
                    }
                }
            }
        }
    }
}
