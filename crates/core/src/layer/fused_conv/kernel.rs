//! The CPU kernels on contiguous NCHW slices: the convolution's geometry, the input value types
//! (f32, or spikes packed to u8), the choice between the dense and the spike-aware path, and the
//! forward and backward drivers that run one of them per sample, in parallel.

use rayon::prelude::*;

use super::dense::{copy_short, matmul, transpose};
use super::sparse::{self, hwio_weight, row_tiles, transpose_weight};
use super::{ConvMode, SparsePass};
use crate::kernels::KernelPolicy;
use crate::layer::fused_ops::{OutPtr, as_uninit, assume_written};

pub use super::dense::{col2im, im2col};
/// The spike-aware kernels ([`super::sparse`]), by their former path.
pub use super::sparse as simd;

/// An input value of the kernels: f32, or u8 for spikes packed by
/// [`super::ConvOps::conv2d_spk_pack`] (read without widening them first).
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
    spikes: sparse::Spikes,
    bits: sparse::Bits,
    pixels: sparse::Pixels,
}

impl Scratch {
    /// `col` and `tile` with at least the given lengths (contents unspecified: every user
    /// overwrites or clears what it reads).
    fn sized(
        &mut self,
        col: usize,
        tile: usize,
    ) -> (
        &mut [f32],
        &mut [f32],
        &mut sparse::Spikes,
        &mut sparse::Bits,
        &mut sparse::Pixels,
    ) {
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
            &mut self.pixels,
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

/// Runs `body(sample)` for every sample, in parallel.
fn for_samples(n: usize, body: impl Fn(usize, usize) + Send + Sync) {
    let rs = ranges(n);
    if rs.len() <= 1 || rayon::current_num_threads() < 2 {
        body(0, n);
    } else {
        rs.into_par_iter().for_each(|(a, b)| body(a, b));
    }
}

/// The spike-aware forward kernel of one sample (its index and, for the gathers, the weight
/// as `[k_h, k_w, C_in, C_out]`).
#[derive(Clone, Copy)]
enum Path<'a> {
    Bits(&'a [f32]),
    Values(&'a [f32]),
    Scatter,
}

/// `out` `[N, C_out, P]` = `x ⊛ w + b`, dense or sparse. `out` points to `N·C_out·P`
/// writable values (their contents are ignored: every one is written).
///
/// # Safety
/// `out_p` is valid for `N·C_out·P` writes and nothing else accesses them meanwhile.
pub(crate) unsafe fn forward<V: Value>(
    g: &Geom,
    x: &[V],
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
        let bit_gather = sparse::gather_supports(g);
        let value_gather = sparse::gather_values_supports(g);
        let w_hwio = (bit_gather || value_gather).then(|| hwio_weight(g, &wt));
        let th = sparse::tile_rows(g);
        for_samples(g.n, |a, z| {
            with_scratch(|scratch| {
                let (_, acc, spikes, bits, pixels) = scratch.sized(0, th * g.ow * co);
                for s in a..z {
                    // SAFETY: sample `s`'s output belongs to this worker only; the row
                    // tiles' transposes below write every value of it.
                    let o = unsafe { out_p.uninit(s * co * p, co * p) };
                    let xs = &x[s * in_len..(s + 1) * in_len];
                    // Output-stationary gathers: from channel masks for binary input with
                    // ≥ 64 channels, from per-pixel non-zero lists otherwise; the scatter
                    // where neither handles the channel counts.
                    let path = match &w_hwio {
                        Some(wh) if bit_gather && bits.index(g, xs) => Path::Bits(wh),
                        Some(wh) if value_gather => {
                            pixels.index(g, xs);
                            Path::Values(wh)
                        }
                        _ => {
                            spikes.index(g, xs);
                            Path::Scatter
                        }
                    };
                    for (oy0, oy1, q0, tile) in row_tiles(g, th) {
                        let acc = &mut acc[..tile * co];
                        match path {
                            Path::Bits(wh) => sparse::gather(g, bits, (oy0, oy1), wh, acc),
                            Path::Values(wh) => {
                                sparse::gather_values(g, pixels, (oy0, oy1), wh, acc)
                            }
                            Path::Scatter => {
                                acc.fill(0.0);
                                sparse::scatter(g, spikes, (oy0, oy1), &wt, acc, true);
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
                let direct = g.pointwise() && V::as_f32(x).is_some();
                let (col, _, _, _, _) = scratch.sized(if direct { 0 } else { k * p }, 0);
                for s in a..z {
                    // SAFETY: sample `s`'s output belongs to this worker only.
                    let o = unsafe { out_p.uninit(s * co * p, co * p) };
                    for (c, orow) in o.chunks_exact_mut(p).enumerate() {
                        orow.fill(std::mem::MaybeUninit::new(b[c]));
                    }
                    // SAFETY: every value was just set to its channel's bias.
                    let o = unsafe { assume_written(o) };
                    let xs = &x[s * in_len..(s + 1) * in_len];
                    let cols: &[f32] = match V::as_f32(xs) {
                        Some(xs) if g.pointwise() => xs,
                        _ => {
                            im2col(g, xs, col);
                            col
                        }
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
    let th = sparse::tile_rows(g);
    let work = |&(a, z): &(usize, usize)| -> (Vec<f32>, Vec<f64>) {
        with_scratch(|scratch| {
            let mut dwp = vec![0.0f32; co * k];
            let mut dbp = vec![0.0f64; co];
            let direct = g.pointwise() && V::as_f32(x).is_some();
            let (col, gt, spikes, _, _) = scratch.sized(
                if direct { 0 } else { k * p },
                if sparse { th * g.ow * co } else { 0 },
            );
            for s in a..z {
                let xs = &x[s * in_len..(s + 1) * in_len];
                let gs = &gr[s * co * p..(s + 1) * co * p];
                for (c, grow) in gs.chunks_exact(p).enumerate() {
                    dbp[c] +=
                        crate::layer::fused_bn::kernel::sum2_fast(grow, grow, |v, _| (v, 0.0)).0;
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
                        transpose(&gs[q0..], p, co, tile, as_uninit(gt), co, &[]);
                        sparse::scatter(g, spikes, (oy0, oy1), gt, &mut dwp, false);
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
