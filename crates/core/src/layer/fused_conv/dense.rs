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

/// `dst[j·dst_rs + i] = src[i·src_rs + j] + add[j]` for `i < rows`, `j < cols` (`add`
/// empty: nothing added), in 8×8 blocks so that both sides move whole cache lines — with
/// AVX2 each block is turned around in registers (eight loads, 24 shuffles, eight stores;
/// the compiler makes scalar loads and inserts of the portable loop). Bit-identical on
/// either path (the same one add per value).
/// `dst` may be uninitialised: these values are written, no other is touched.
pub(super) fn transpose(
    src: &[f32],
    src_rs: usize,
    rows: usize,
    cols: usize,
    dst: &mut [MaybeUninit<f32>],
    dst_rs: usize,
    add: &[f32],
) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (checked just above).
        return unsafe { transpose_avx2(src, src_rs, rows, cols, dst, dst_rs, add) };
    }
    transpose_body(src, src_rs, rows, cols, dst, dst_rs, add)
}

/// [`transpose`] with its full 8×8 blocks transposed in AVX2 registers.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn transpose_avx2(
    src: &[f32],
    src_rs: usize,
    rows: usize,
    cols: usize,
    dst: &mut [MaybeUninit<f32>],
    dst_rs: usize,
    add: &[f32],
) {
    use std::arch::x86_64::*;
    const B: usize = 8;
    check_transpose(src.len(), src_rs, rows, cols, dst.len(), dst_rs, add.len());
    if rows == 0 || cols == 0 {
        return;
    }
    let (full_rows, full_cols) = (rows / B * B, cols / B * B);
    if full_rows > 0 && full_cols > 0 {
        let (sp, dp) = (src.as_ptr(), dst.as_mut_ptr().cast::<f32>());
        for i0 in (0..full_rows).step_by(B) {
            for j0 in (0..full_cols).step_by(B) {
                // SAFETY: rows i0..i0 + 8 < rows and columns j0..j0 + 8 ≤ cols lie in
                // `src` (asserted above); likewise the destination rows j0..j0 + 8 at
                // columns i0..i0 + 8 in `dst`.
                unsafe {
                    let r = |i: usize| _mm256_loadu_ps(sp.add((i0 + i) * src_rs + j0));
                    let (r0, r1, r2, r3) = (r(0), r(1), r(2), r(3));
                    let (r4, r5, r6, r7) = (r(4), r(5), r(6), r(7));
                    let (t0, t1) = (_mm256_unpacklo_ps(r0, r1), _mm256_unpackhi_ps(r0, r1));
                    let (t2, t3) = (_mm256_unpacklo_ps(r2, r3), _mm256_unpackhi_ps(r2, r3));
                    let (t4, t5) = (_mm256_unpacklo_ps(r4, r5), _mm256_unpackhi_ps(r4, r5));
                    let (t6, t7) = (_mm256_unpacklo_ps(r6, r7), _mm256_unpackhi_ps(r6, r7));
                    let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
                    let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
                    let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
                    let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
                    let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
                    let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
                    let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
                    let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
                    let c = [
                        _mm256_permute2f128_ps::<0x20>(u0, u4),
                        _mm256_permute2f128_ps::<0x20>(u1, u5),
                        _mm256_permute2f128_ps::<0x20>(u2, u6),
                        _mm256_permute2f128_ps::<0x20>(u3, u7),
                        _mm256_permute2f128_ps::<0x31>(u0, u4),
                        _mm256_permute2f128_ps::<0x31>(u1, u5),
                        _mm256_permute2f128_ps::<0x31>(u2, u6),
                        _mm256_permute2f128_ps::<0x31>(u3, u7),
                    ];
                    for (j, cj) in c.into_iter().enumerate() {
                        let a = if add.is_empty() { 0.0 } else { add[j0 + j] };
                        let v = _mm256_add_ps(cj, _mm256_set1_ps(a));
                        _mm256_storeu_ps(dp.add((j0 + j) * dst_rs + i0), v);
                    }
                }
            }
        }
    }
    // The partial blocks (the last rows, then the last columns of the full rows).
    if full_rows < rows {
        transpose_body(
            &src[full_rows * src_rs..],
            src_rs,
            rows - full_rows,
            cols,
            &mut dst[full_rows..],
            dst_rs,
            add,
        );
    }
    if full_cols < cols && full_rows > 0 {
        transpose_body(
            &src[full_cols..],
            src_rs,
            full_rows,
            cols - full_cols,
            &mut dst[full_cols * dst_rs..],
            dst_rs,
            &add[full_cols.min(add.len())..],
        );
    }
}

/// The bounds of [`transpose`]: `add` empty or one value per column, and (for a non-empty
/// block) every source and destination value inside its slice.
#[inline(always)]
fn check_transpose(
    src_len: usize,
    src_rs: usize,
    rows: usize,
    cols: usize,
    dst_len: usize,
    dst_rs: usize,
    add_len: usize,
) {
    assert!(
        add_len == 0 || add_len >= cols,
        "fused conv: transpose bias"
    );
    if rows > 0 && cols > 0 {
        assert!(
            src_len >= (rows - 1) * src_rs + cols,
            "fused conv: transpose source"
        );
        assert!(
            dst_len >= (cols - 1) * dst_rs + rows,
            "fused conv: transpose target"
        );
    }
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
    check_transpose(src.len(), src_rs, rows, cols, dst.len(), dst_rs, add.len());
    if rows == 0 || cols == 0 {
        return;
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose_matches_the_definition_on_full_and_partial_blocks() {
        for (rows, cols) in [(8, 8), (16, 24), (13, 19), (3, 5), (9, 8), (8, 11), (1, 1)] {
            let (src_rs, dst_rs) = (cols + 3, rows + 2);
            let src: Vec<f32> = (0..rows * src_rs).map(|v| v as f32 * 0.5 - 7.0).collect();
            let add: Vec<f32> = (0..cols).map(|j| j as f32 * 0.25).collect();
            for bias in [&add[..], &[]] {
                let mut dst = vec![MaybeUninit::new(f32::NAN); cols * dst_rs];
                transpose(&src, src_rs, rows, cols, &mut dst, dst_rs, bias);
                for j in 0..cols {
                    for i in 0..dst_rs {
                        // SAFETY: every value was initialised (NaN where not written).
                        let got = unsafe { dst[j * dst_rs + i].assume_init() };
                        if i < rows {
                            let want = src[i * src_rs + j] + bias.get(j).copied().unwrap_or(0.0);
                            assert_eq!(got, want, "{rows}x{cols} at ({i}, {j})");
                        } else {
                            assert!(got.is_nan(), "{rows}x{cols}: wrote padding ({i}, {j})");
                        }
                    }
                }
            }
        }
    }
}
