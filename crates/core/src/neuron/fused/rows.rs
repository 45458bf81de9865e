//! The per-timestep loops over one block row of `[T, N]` that [`super::kernel`] runs: charge
//! (and fire and reset), reset, and one step of the backward. Each is compiled for the best
//! vector unit found at run time ([`simd_dispatch`]).

use std::mem::MaybeUninit;

use crate::layer::fused_ops::simd_dispatch;
use crate::surrogate::scalar::Grad;

/// One timestep over a block row, `h = decay·m + x`: with `SPIKES`, `out = [h − θ > 0]`
/// and the membrane is reset (`m ← h − θ·s` soft, `h − h·s` hard); without, `out = h` and
/// `m` is left alone. (Functions of their own so that their slices are known not to
/// alias, which lets the loops vectorize.)
#[inline(always)]
fn charge_row_body<const SOFT: bool, const SPIKES: bool>(
    x: &[f32],
    m: &mut [f32],
    out: &mut [MaybeUninit<f32>],
    decay: f32,
    th: f32,
) {
    for ((o, m), &x) in out.iter_mut().zip(m.iter_mut()).zip(x) {
        let hv = decay * *m + x;
        if SPIKES {
            let s = if hv - th > 0.0 { 1.0 } else { 0.0 };
            o.write(s);
            *m = if SOFT { hv - th * s } else { hv - hv * s };
        } else {
            o.write(hv);
        }
    }
}

simd_dispatch! {
    /// [`charge_row_body`].
    pub(super) fn charge_row[const SOFT: bool, const SPIKES: bool](
        x: &[f32], m: &mut [f32], out: &mut [MaybeUninit<f32>], decay: f32, th: f32
    ) => charge_row_body[SOFT, SPIKES]
}

simd_dispatch! {
    /// [`reset_row_body`].
    pub(super) fn reset_row[const SOFT: bool](h: &[f32], m: &mut [f32], th: f32) => reset_row_body[SOFT]
}

simd_dispatch! {
    /// [`backward_row_body`].
    pub(super) fn backward_row[G: Grad, const SOFT: bool, const DETACH: bool](
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
fn backward_row_body<G: Grad, const SOFT: bool, const DETACH: bool>(
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
