//! The spike-aware path: the index of one sample's non-zeros row by row ([`Spikes`]), pixel by
//! pixel ([`Pixels`]) or as channel bit masks ([`Bits`]); the tap-stationary [`scatter`]
//! (weight gradient, and the forward of layers with < 32 input channels) and the
//! output-stationary gathers ([`gather`]: forward on binary input with ≥ 64 channels;
//! [`gather_values`]: forward on any other input with ≥ 32 channels, e.g. average-pooled
//! spikes), compiled for the best vector unit found at run time, and the weight layouts they
//! read.

use super::dense::transpose;
use super::kernel::{Geom, Value};
use crate::layer::fused_ops::{simd_dispatch, written};

/// The weight as `[k_h, k_w, C_in, C_out]` from `wt` `[K, C_out]` (rows `(c, u, t)`).
pub(super) fn hwio_weight(g: &Geom, wt: &[f32]) -> Vec<f32> {
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
pub(super) fn transpose_weight(g: &Geom, w: &[f32]) -> Vec<f32> {
    let (k, co) = (g.k(), g.cout);
    // SAFETY: the transpose writes all `K·C_out` values.
    unsafe { written(k * co, |wt| transpose(w, k, co, k, wt, co, &[])) }
}

/// The output row tiles of the spike-aware path: `(oy0, oy1, q0, pixels)` for rows
/// `oy0..oy1` of `rows` rows each (the last one shorter), starting at output pixel `q0`.
pub(super) fn row_tiles(
    g: &Geom,
    rows: usize,
) -> impl Iterator<Item = (usize, usize, usize, usize)> {
    let (oh, ow) = (g.oh, g.ow);
    (0..oh).step_by(rows).map(move |oy0| {
        let oy1 = (oy0 + rows).min(oh);
        (oy0, oy1, oy0 * ow, (oy1 - oy0) * ow)
    })
}

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
    pub fn index<V: Value>(&mut self, g: &Geom, x: &[V]) {
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
    /// Builds the masks of `x`; `false` (masks unusable) when a value is not 0 or 1. That
    /// is found at the end of the first channel plane holding such a value, so a
    /// non-binary input (average-pooled spikes) costs about one plane, not a full pass.
    pub fn index<V: Value>(&mut self, g: &Geom, x: &[V]) -> bool {
        assert_eq!(x.len(), g.cin * g.h * g.w, "fused conv: sample length");
        let (hw, words) = (g.h * g.w, g.cin.div_ceil(64));
        self.words = words;
        self.bits.clear();
        self.bits.resize(hw * words, 0);
        for (ci, plane) in x.chunks_exact(hw).enumerate() {
            let (wd, shift) = (ci / 64, ci % 64);
            let bits = &mut self.bits[wd..];
            let mut binary = true;
            for (p, v) in plane.iter().enumerate() {
                let v = v.get();
                binary &= v == 0.0 || v == 1.0;
                bits[p * words] |= u64::from(v != 0.0) << shift;
            }
            if !binary {
                return false;
            }
        }
        true
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
pub fn gather(g: &Geom, bits: &Bits, tile: (usize, usize), w_hwio: &[f32], out: &mut [f32]) {
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
fn gather_generic(g: &Geom, bits: &Bits, tile: (usize, usize), w_hwio: &[f32], out: &mut [f32]) {
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
    tile: (usize, usize),
    w_hwio: &[f32],
    out: &mut [f32],
) {
    let (co, words) = (g.cout, bits.words);
    let (mp, wp) = (bits.bits.as_ptr(), w_hwio.as_ptr());
    gather_taps::<CB>(g, tile, out, |acc, p, row0, c0| {
        let base = p * words;
        for wd in 0..words {
            debug_assert!(base + wd < bits.bits.len());
            // SAFETY: p < H·W and wd < words index the masks.
            let mut m = unsafe { *mp.add(base + wd) };
            while m != 0 {
                let ci = wd * 64 + m.trailing_zeros() as usize;
                m &= m - 1;
                debug_assert!(ci < g.cin);
                debug_assert!((row0 + ci) * co + c0 + CB <= w_hwio.len());
                // SAFETY: row0 + ci < K and c0 + CB ≤ C_out.
                let wr = unsafe { wp.add((row0 + ci) * co + c0) };
                for (i, a) in acc.iter_mut().enumerate() {
                    // SAFETY: i < CB (see above).
                    *a += unsafe { *wr.add(i) };
                }
            }
        }
    });
}

/// The loops both gathers share: for every block of `CB` output channels (from `c0`) and
/// output pixel `q` of rows `oy0..oy1`, `acc` = 0, then `body(acc, p, row0, c0)` for every
/// kernel tap `(u, t)` that reads input pixel `p = iy·W + ix` (`row0 = (u·k_w + t)·C_in`,
/// the tap's first row of `w_hwio`), then `out[q, c0..c0 + CB] = acc`.
#[inline(always)]
fn gather_taps<const CB: usize>(
    g: &Geom,
    (oy0, oy1): (usize, usize),
    out: &mut [f32],
    mut body: impl FnMut(&mut [f32; CB], usize, usize, usize),
) {
    let (co, cin) = (g.cout, g.cin);
    let (s, pad, ow) = (g.stride, g.pad, g.ow);
    debug_assert!(co % CB == 0);
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
                        body(&mut acc, iy * g.w + ix, (u * g.kw + t) * cin, c0);
                    }
                }
                let q = (oy - oy0) * ow + ox;
                out[q * co + c0..q * co + c0 + CB].copy_from_slice(&acc);
            }
        }
    }
}

/// The non-zeros of one sample `[C_in, H, W]` pixel by pixel (the input of
/// [`gather_values`], for any values: average-pooled spikes are the common case).
#[derive(Default)]
pub struct Pixels {
    /// `entries[begin[p]..end[p]]` are pixel `p`'s non-zeros, ascending by channel.
    begin: Vec<u32>,
    /// See `begin`.
    end: Vec<u32>,
    /// `(input channel, value)` of each non-zero (one spare slot per pixel).
    entries: Vec<(u32, f32)>,
    /// The geometry the index was built for (`C_in`, `H·W`).
    shape: (usize, usize),
}

impl Pixels {
    /// Indexes the non-zeros of `x` (buffers are reused between calls).
    pub fn index<V: Value>(&mut self, g: &Geom, x: &[V]) {
        assert_eq!(x.len(), g.cin * g.h * g.w, "fused conv: sample length");
        let hw = g.h * g.w;
        self.shape = (g.cin, hw);
        // Per pixel, its non-zero count plus one spare slot: the fill below writes every
        // value at the pixel's cursor and only moves it on for a non-zero (branch-free).
        let counts = &mut self.end;
        counts.clear();
        counts.resize(hw, 1);
        for plane in x.chunks_exact(hw) {
            for (c, v) in counts.iter_mut().zip(plane) {
                *c += u32::from(v.get() != 0.0);
            }
        }
        self.begin.clear();
        let mut total = 0u32;
        self.begin.extend(counts.iter().map(|&c| {
            let b = total;
            total += c;
            b
        }));
        self.end.copy_from_slice(&self.begin);
        self.entries.resize(total as usize, (0, 0.0));
        let (end, entries) = (&mut self.end[..], &mut self.entries[..]);
        for (ci, plane) in x.chunks_exact(hw).enumerate() {
            for (e, v) in end.iter_mut().zip(plane) {
                let v = v.get();
                entries[*e as usize] = (ci as u32, v);
                *e += u32::from(v != 0.0);
            }
        }
    }
}

/// Whether [`gather_values`] handles `g`: 16, 32 or a multiple of 64 output channels, and
/// at least 32 input channels (with fewer, a pixel holds too few non-zeros to pay for its
/// bookkeeping and the scatter wins; measured on the 16 → 32 layer of VGG-SNN at 48×48,
/// 11–15 % spikes).
pub fn gather_values_supports(g: &Geom) -> bool {
    g.cin >= 32 && (matches!(g.cout, 16 | 32) || g.cout.is_multiple_of(64))
}

/// Output-stationary forward for any input: like [`gather`], the output block of each
/// pixel is summed in registers, over the non-zeros `(c, v)` of the pixels its taps read:
/// `tile[q, :] = Σ v · w_hwio[(u·k_w + t)·C_in + c, :]` (`w_hwio` `[k_h, k_w, C_in, C_out]`,
/// `tile` `[(oy1 − oy0)·W', C_out]`). One weight load per non-zero and tap and no store per
/// non-zero: on average-pooled spikes (values k/4, density 35–45 % in VGG-SNN) it replaces
/// the scatter, which loads and stores the output tile for every non-zero and tap.
pub fn gather_values(g: &Geom, px: &Pixels, tile: (usize, usize), w_hwio: &[f32], out: &mut [f32]) {
    let (oy0, oy1) = tile;
    assert!(oy0 < oy1 && oy1 <= g.oh, "fused conv: tile rows");
    assert!(
        gather_values_supports(g),
        "fused conv: gather channel count"
    );
    assert!(
        px.shape == (g.cin, g.h * g.w),
        "fused conv: pixel index built for another geometry"
    );
    // `begin[p] ≤ end[p]` ascend pixel after pixel (only `Pixels::index` writes them), so
    // every entry read lies below the last `end`.
    assert!(
        px.end
            .last()
            .is_none_or(|&e| e as usize <= px.entries.len()),
        "fused conv: pixel index"
    );
    assert_eq!(w_hwio.len(), g.k() * g.cout, "fused conv: gather weight");
    assert_eq!(
        out.len(),
        (oy1 - oy0) * g.ow * g.cout,
        "fused conv: gather tile"
    );
    gather_values_compiled(g, px, tile, w_hwio, out)
}

simd_dispatch! { avx512;
    /// `gather_values_generic` compiled for the best vector unit found at run time.
    fn gather_values_compiled[](
        g: &Geom, px: &Pixels, tile: (usize, usize), w_hwio: &[f32], out: &mut [f32]
    ) => gather_values_generic[]
}

#[inline(always)]
fn gather_values_generic(
    g: &Geom,
    px: &Pixels,
    tile: (usize, usize),
    w_hwio: &[f32],
    out: &mut [f32],
) {
    match g.cout {
        16 => gather_values_impl::<16>(g, px, tile, w_hwio, out),
        32 => gather_values_impl::<32>(g, px, tile, w_hwio, out),
        _ => gather_values_impl::<64>(g, px, tile, w_hwio, out),
    }
}

/// [`gather_values`] with `CB` output channels per register block (`C_out` a multiple of
/// it; 64 at most, so that the block, a weight vector and the value fit in the 16 AVX2
/// registers).
#[inline(always)]
fn gather_values_impl<const CB: usize>(
    g: &Geom,
    px: &Pixels,
    tile: (usize, usize),
    w_hwio: &[f32],
    out: &mut [f32],
) {
    let co = g.cout;
    let (ep, wp) = (px.entries.as_ptr(), w_hwio.as_ptr());
    gather_taps::<CB>(g, tile, out, |acc, p, row0, c0| {
        for e in px.begin[p] as usize..px.end[p] as usize {
            debug_assert!(e < px.entries.len());
            // SAFETY: e < end[p] ≤ entries.len() (see `gather_values`).
            let (ci, v) = unsafe { *ep.add(e) };
            let ci = ci as usize;
            debug_assert!((row0 + ci) * co + c0 + CB <= w_hwio.len());
            // SAFETY: ci < C_in (the index holds this geometry's channels), so
            // row0 + ci < K, and c0 + CB ≤ C_out.
            let wr = unsafe { wp.add((row0 + ci) * co + c0) };
            for (i, a) in acc.iter_mut().enumerate() {
                // SAFETY: i < CB (see above).
                *a += v * unsafe { *wr.add(i) };
            }
        }
    });
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
        c if c % BLOCK == 0 => scatter_impl::<BINARY, FORWARD, BLOCK>(g, sp, tile, rows, acc),
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
    let (acc_len, rows_len) = (acc.len(), rows.len());
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
                            debug_assert!((q + 1) * CO <= acc_len);
                            // SAFETY: q < pixels = acc_rows (the checks above).
                            let dst = unsafe { accp.add(q * CO) };
                            for (i, w) in wr.iter().enumerate() {
                                // SAFETY: i < CO.
                                unsafe {
                                    *dst.add(i) += if BINARY { *w } else { v * w };
                                }
                            }
                        } else {
                            debug_assert!((q + 1) * CO <= rows_len);
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
    let (acc_len, rows_len) = (acc.len(), rows.len());
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
                        reg[..width].copy_from_slice(&rows[tap * co + c0..tap * co + c0 + width]);
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
                                debug_assert!(q * co + c0 + width <= acc_len);
                                // SAFETY: q < pixels = acc_rows and c0 + width ≤ co.
                                let dst = unsafe { accp.add(q * co + c0) };
                                for (i, r) in reg[..width].iter().enumerate() {
                                    // SAFETY: i < width (see above).
                                    unsafe {
                                        *dst.add(i) += if BINARY { *r } else { v * r };
                                    }
                                }
                            } else {
                                debug_assert!(q * co + c0 + width <= rows_len);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pixels_index_lists_each_pixels_non_zeros_in_channel_order() {
        // 3 channels, 2×2 pixels; pixel 3 empty, pixel 0 in every channel.
        let g = Geom::new([1, 3, 2, 2], [32, 3, 3, 3], 1, 1);
        #[rustfmt::skip]
        let x = [
            0.5, 0.0, 0.25, 0.0,
            1.0, 0.75, 0.0, 0.0,
            -2.0, 0.0, 0.0, 0.0,
        ];
        let mut px = Pixels::default();
        px.index(&g, &x);
        let list =
            |px: &Pixels, p: usize| px.entries[px.begin[p] as usize..px.end[p] as usize].to_vec();
        assert_eq!(list(&px, 0), [(0, 0.5), (1, 1.0), (2, -2.0)]);
        assert_eq!(list(&px, 1), [(1, 0.75)]);
        assert_eq!(list(&px, 2), [(0, 0.25)]);
        assert_eq!(list(&px, 3), []);
        // Reused for another sample: nothing of the first is left.
        px.index(&g, &[0.0; 12]);
        assert!((0..4).all(|p| list(&px, p).is_empty()));
    }

    #[test]
    fn bits_index_sets_each_channel_bit_and_rejects_a_non_binary_last_plane() {
        // 70 channels (two mask words), 2×3 pixels: channel c fires at pixel c % 6.
        let g = Geom::new([1, 70, 2, 3], [64, 70, 3, 3], 1, 1);
        let mut x = vec![0.0f32; 70 * 6];
        for c in 0..70 {
            x[c * 6 + c % 6] = 1.0;
        }
        let mut bits = Bits::default();
        assert!(bits.index(&g, &x));
        for p in 0..6 {
            for c in 0..70 {
                let set = bits.bits[p * 2 + c / 64] >> (c % 64) & 1 == 1;
                assert_eq!(set, c % 6 == p, "channel {c}, pixel {p}");
            }
        }
        // One average-pooled value in the last channel plane: masks unusable.
        x[69 * 6 + 1] = 0.25;
        assert!(!bits.index(&g, &x));
        // And in the first plane.
        x[69 * 6 + 1] = 0.0;
        x[2] = 0.75;
        assert!(!bits.index(&g, &x));
    }
}
