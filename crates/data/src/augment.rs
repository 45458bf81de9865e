//! Training-time augmentation, applied per sample to the stored values of a training batch.
//!
//! Static images (`[C, H, W]`) and event frames (`[T, C, H, W]`, one transform for all T frames
//! of a sample, as NDA does) share the transforms:
//!
//! * `hflip` — horizontal flip with probability ½;
//! * `crop_padding = p` — static: random crop with `p` pixels of zero padding (a shift by
//!   `dx, dy ∈ [-p, p]` with zero fill, same as torchvision `RandomCrop(size, padding=p)`);
//!   events: random roll by `dx, dy ∈ [-p, p]` with wrap-around (`torch.roll`, NDA's "roll");
//! * `rotate = a` — rotation by an angle uniform in `[-a, a]` degrees about the centre;
//! * `shear = s` — horizontal shear by a factor uniform in `[-s, s]`;
//! * `cutout = L` — one `L × L` square (clipped at the border) set to zero, centre uniform over
//!   the image (DeVries & Taylor 2017).
//!
//! * `random_erasing = p` — static images only, last of all (on the stored, normalised values):
//!   with probability `p` one rectangle of area fraction uniform in `[0.02, 1/3]` and aspect
//!   ratio log-uniform in `[0.3, 3.3]` (up to 10 attempts to fit) is filled with per-pixel
//!   standard normal noise — timm `RandomErasing(p, mode='pixel', max_count=1)`.
//!
//! With `nda = true` each sample gets one of the enabled geometric transforms (roll, rotate,
//! shear, cutout) chosen uniformly — NDA's (Li et al., ECCV 2022) "one of" policy; the flip is
//! still drawn independently. Rotation and shear resample with nearest neighbour, zero fill.
//!
//! `policy = "cifar10_autoaugment"` (static images only) applies AutoAugment's CIFAR-10 policy
//! and `policy = "rand-m9-mstd0.5-inc1"` (any timm RandAugment string) timm's RandAugment
//! ([`super::autoaugment`]), after the flip, crop and affine transforms and before Cutout, the
//! order of the `RandomCrop → Flip → CIFAR10Policy → ToTensor → Cutout` recipes. It works on
//! `[0, 1]` pixels: on a normalised set the values are mapped back with the set's mean and std
//! for the policy and normalised again.
//!
//! Every draw comes from a generator seeded by `(seed, epoch, sample index)`, so the result does
//! not depend on batch composition or thread count.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::error::{ConfigError, check_range};

/// The `[data.augment]` table. Everything off by default.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AugmentConfig {
    /// Random horizontal flip (p = ½).
    pub hflip: bool,
    /// Static: random-crop padding; events: maximum roll in pixels. 0 = off.
    pub crop_padding: usize,
    /// Side of the Cutout square in pixels. 0 = off.
    pub cutout: usize,
    /// Maximum rotation in degrees. 0 = off.
    pub rotate: f64,
    /// Maximum horizontal shear factor. 0 = off.
    pub shear: f64,
    /// Apply one geometric transform per sample (NDA) instead of all enabled ones.
    pub nda: bool,
    /// An augmentation policy for static images: `""` (none), `"cifar10_autoaugment"`, or a
    /// timm RandAugment string such as `"rand-m9-mstd0.5-inc1"` (TKS's CIFAR recipe).
    pub policy: String,
    /// Random-erasing probability (timm `RandomErasing`, mode `pixel`). 0 = off.
    pub random_erasing: f64,
    /// Per-channel `(mean, std)` the stored values were normalised with (set by the loader,
    /// not configurable), so the policy sees `[0, 1]` pixels.
    #[serde(skip)]
    pub normalization: Option<(Vec<f32>, Vec<f32>)>,
}

/// Fixed names accepted by `[data.augment] policy` (besides `rand-…` strings).
pub const POLICIES: [&str; 2] = ["", "cifar10_autoaugment"];

impl AugmentConfig {
    /// Whether any transform is on.
    pub fn is_active(&self) -> bool {
        self.hflip
            || self.crop_padding > 0
            || self.cutout > 0
            || self.rotate > 0.0
            || self.shear > 0.0
            || !self.policy.is_empty()
            || self.random_erasing > 0.0
    }

    /// Checks the ranges.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_range("data.augment.rotate", self.rotate, 0.0, 180.0)?;
        check_range("data.augment.shear", self.shear, 0.0, 10.0)?;
        check_range("data.augment.random_erasing", self.random_erasing, 0.0, 1.0)?;
        if !POLICIES.contains(&self.policy.as_str())
            && super::autoaugment::RandAugment::parse(&self.policy).is_none()
        {
            return Err(ConfigError::invalid(
                "data.augment.policy",
                &self.policy,
                "expected \"\" (none), \"cifar10_autoaugment\" or a timm RandAugment string \
                 like \"rand-m9-mstd0.5-inc1\" (sections m0..10, n, mstd, inc0/1, p)",
            ));
        }
        Ok(())
    }

    /// The generator for one sample.
    pub fn rng(seed: u64, epoch: usize, index: usize) -> StdRng {
        let mut z = seed
            ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ (index as u64).wrapping_mul(0xD1B5_4A32_D192_ED03);
        // splitmix64 finaliser
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        StdRng::seed_from_u64(z ^ (z >> 31))
    }

    /// Augments one sample in place: `values` holds `frames` frames of `shape = [C, H, W]`.
    /// `events` selects roll (wrap-around) instead of zero-filled shifts.
    pub fn apply(
        &self,
        values: &mut [f32],
        frames: usize,
        shape: [usize; 3],
        events: bool,
        rng: &mut StdRng,
    ) {
        let [c, h, w] = shape;
        let planes = frames * c;
        if h == 0 || w == 0 || values.len() != planes * h * w {
            return;
        }
        let flip = self.hflip && rng.random_bool(0.5);
        // geometric choices
        let mut ops: Vec<u8> = Vec::new();
        if self.crop_padding > 0 {
            ops.push(0);
        }
        if self.rotate > 0.0 {
            ops.push(1);
        }
        if self.shear > 0.0 {
            ops.push(2);
        }
        if self.cutout > 0 {
            ops.push(3);
        }
        if self.nda && !ops.is_empty() {
            let k = rng.random_range(0..ops.len());
            ops = vec![ops[k]];
        }
        let p = self.crop_padding as i64;
        let (mut dx, mut dy, mut angle, mut shear) = (0i64, 0i64, 0.0f64, 0.0f64);
        let mut cut = None;
        for op in &ops {
            match op {
                0 => {
                    dx = rng.random_range(-p..=p);
                    dy = rng.random_range(-p..=p);
                }
                1 => angle = rng.random_range(-self.rotate..=self.rotate).to_radians(),
                2 => shear = rng.random_range(-self.shear..=self.shear),
                _ => cut = Some((rng.random_range(0..h), rng.random_range(0..w))),
            }
        }
        let mut tmp = vec![0.0f32; h * w];
        for plane in values.chunks_exact_mut(h * w) {
            if flip {
                for row in plane.chunks_exact_mut(w) {
                    row.reverse();
                }
            }
            if dx != 0 || dy != 0 {
                tmp.copy_from_slice(plane);
                for y in 0..h as i64 {
                    for x in 0..w as i64 {
                        let (sy, sx) = (y - dy, x - dx);
                        let v = if events {
                            tmp[(sy.rem_euclid(h as i64) * w as i64 + sx.rem_euclid(w as i64))
                                as usize]
                        } else if (0..h as i64).contains(&sy) && (0..w as i64).contains(&sx) {
                            tmp[(sy * w as i64 + sx) as usize]
                        } else {
                            0.0
                        };
                        plane[(y * w as i64 + x) as usize] = v;
                    }
                }
            }
            if angle != 0.0 || shear != 0.0 {
                tmp.copy_from_slice(plane);
                affine(&tmp, plane, h, w, angle, shear);
            }
        }
        if !events && frames == 1 && !self.policy.is_empty() {
            self.policy_on(values, shape, rng);
        }
        for plane in values.chunks_exact_mut(h * w) {
            if let Some((cy, cx)) = cut {
                let half = self.cutout / 2;
                let (y0, y1) = (cy.saturating_sub(half), (cy + self.cutout - half).min(h));
                let (x0, x1) = (cx.saturating_sub(half), (cx + self.cutout - half).min(w));
                for y in y0..y1 {
                    plane[y * w + x0..y * w + x1].fill(0.0);
                }
            }
        }
        if !events && frames == 1 && self.random_erasing > 0.0 {
            random_erase(values, shape, self.random_erasing, rng);
        }
    }
}

/// timm `RandomErasing(probability=p, mode='pixel', max_count=1)` on one `[C, H, W]` image:
/// with probability `p`, one rectangle (area fraction in `[0.02, 1/3]`, log-uniform aspect
/// ratio in `[0.3, 3.3]`, up to 10 attempts) filled with per-pixel `N(0, 1)` noise.
fn random_erase(values: &mut [f32], shape: [usize; 3], p: f64, rng: &mut StdRng) {
    let [c, h, w] = shape;
    if rng.random::<f64>() >= p {
        return;
    }
    let area = (h * w) as f64;
    let (lo, hi) = (0.3f64.ln(), 3.3f64.ln());
    for _ in 0..10 {
        let target = rng.random_range(0.02..=1.0 / 3.0) * area;
        let aspect = rng.random_range(lo..=hi).exp();
        let eh = (target * aspect).sqrt().round() as usize;
        let ew = (target / aspect).sqrt().round() as usize;
        if ew < w && eh < h {
            let top = rng.random_range(0..=h - eh);
            let left = rng.random_range(0..=w - ew);
            for ch in 0..c {
                for y in top..top + eh {
                    let row = ch * h * w + y * w;
                    for v in &mut values[row + left..row + left + ew] {
                        *v = normal(rng);
                    }
                }
            }
            return;
        }
    }
}

/// One standard normal draw (Box–Muller).
fn normal(rng: &mut StdRng) -> f32 {
    let u1: f64 = 1.0 - rng.random::<f64>(); // (0, 1]
    let u2: f64 = rng.random();
    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
}

impl AugmentConfig {
    /// The AutoAugment policy on one `[C, H, W]` image, through `[0, 1]` pixels.
    fn policy_on(&self, values: &mut [f32], shape: [usize; 3], rng: &mut StdRng) {
        let [c, h, w] = shape;
        let plane = h * w;
        let norm = self
            .normalization
            .as_ref()
            .filter(|(m, s)| m.len() == c && s.len() == c);
        if let Some((mean, std)) = norm {
            for (k, v) in values.iter_mut().enumerate() {
                let ch = k / plane;
                *v = *v * std[ch] + mean[ch];
            }
        }
        if self.policy == "cifar10_autoaugment" {
            super::autoaugment::cifar10_policy(values, shape, rng);
        } else if let Some(r) = super::autoaugment::RandAugment::parse(&self.policy) {
            r.apply(values, shape, rng);
        }
        if let Some((mean, std)) = norm {
            for (k, v) in values.iter_mut().enumerate() {
                let ch = k / plane;
                *v = (*v - mean[ch]) / std[ch];
            }
        }
    }
}

/// `dst(x) = src(M⁻¹ (x − c) + c)` with `M = R(angle) · Shear(s)`, nearest neighbour, zero fill.
fn affine(src: &[f32], dst: &mut [f32], h: usize, w: usize, angle: f64, shear: f64) {
    let (cy, cx) = ((h as f64 - 1.0) / 2.0, (w as f64 - 1.0) / 2.0);
    let (s, c) = angle.sin_cos();
    // M = [[c, -s], [s, c]] · [[1, k], [0, 1]] = [[c, c k - s], [s, s k + c]]
    let (a, b, d, e) = (c, c * shear - s, s, s * shear + c);
    let det = a * e - b * d;
    if det.abs() < 1e-9 {
        return;
    }
    let (ia, ib, id, ie) = (e / det, -b / det, -d / det, a / det);
    for y in 0..h {
        for x in 0..w {
            let (u, v) = (x as f64 - cx, y as f64 - cy);
            let sx = (ia * u + ib * v + cx).round();
            let sy = (id * u + ie * v + cy).round();
            dst[y * w + x] = if sx >= 0.0 && sy >= 0.0 && (sx as usize) < w && (sy as usize) < h {
                src[sy as usize * w + sx as usize]
            } else {
                0.0
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flip_shift_cutout_are_exact() {
        let img: Vec<f32> = (1..=9).map(|v| v as f32).collect();
        let flip = AugmentConfig {
            hflip: true,
            ..Default::default()
        };
        // find a seed that flips
        let (mut flipped, mut kept) = (false, false);
        for i in 0..20 {
            let mut v = img.clone();
            flip.apply(
                &mut v,
                1,
                [1, 3, 3],
                false,
                &mut AugmentConfig::rng(1, 0, i),
            );
            if v == [3.0, 2.0, 1.0, 6.0, 5.0, 4.0, 9.0, 8.0, 7.0] {
                flipped = true;
            } else {
                assert_eq!(v, img);
                kept = true;
            }
        }
        assert!(flipped && kept);
        let pad = AugmentConfig {
            crop_padding: 1,
            ..Default::default()
        };
        for i in 0..20 {
            let mut s = img.clone();
            pad.apply(
                &mut s,
                1,
                [1, 3, 3],
                false,
                &mut AugmentConfig::rng(1, 0, i),
            );
            // zero fill: the sum never grows, and values stay a subset
            assert!(s.iter().sum::<f32>() <= 45.0);
            let mut r = img.clone();
            pad.apply(&mut r, 1, [1, 3, 3], true, &mut AugmentConfig::rng(1, 0, i));
            // roll keeps every value
            let mut sorted = r.clone();
            sorted.sort_by(f32::total_cmp);
            assert_eq!(sorted, img);
        }
        let cut = AugmentConfig {
            cutout: 2,
            ..Default::default()
        };
        let mut v = vec![1.0f32; 2 * 16];
        cut.apply(&mut v, 2, [1, 4, 4], true, &mut AugmentConfig::rng(3, 1, 2));
        let zeros: Vec<usize> = (0..16).filter(|&i| v[i] == 0.0).collect();
        assert!(!zeros.is_empty() && zeros.len() <= 4, "{zeros:?}");
        // the same square in every frame
        assert_eq!(v[..16], v[16..]);
    }

    #[test]
    fn same_seed_same_result_and_identity_rotation() {
        let cfg = AugmentConfig {
            hflip: true,
            crop_padding: 2,
            rotate: 15.0,
            shear: 0.3,
            cutout: 3,
            nda: true,
            ..Default::default()
        };
        let img: Vec<f32> = (0..2 * 8 * 8).map(|v| v as f32).collect();
        let run = |i| {
            let mut v = img.clone();
            cfg.apply(&mut v, 1, [2, 8, 8], true, &mut AugmentConfig::rng(9, 2, i));
            v
        };
        assert_eq!(run(5), run(5));
        assert!((0..10).any(|i| run(i) != run(i + 1)));
        let mut out = vec![0.0; 64];
        affine(&img[..64], &mut out, 8, 8, 0.0, 0.0);
        assert_eq!(out, img[..64]);
        // 90° rotation maps the 2×2 corners onto each other
        let sq = [1.0, 2.0, 3.0, 4.0];
        let mut r = [0.0; 4];
        affine(&sq, &mut r, 2, 2, std::f64::consts::FRAC_PI_2, 0.0);
        let mut s = r.to_vec();
        s.sort_by(f32::total_cmp);
        assert_eq!(s, sq);
    }

    #[test]
    fn random_erasing_rectangle_and_determinism() {
        let img = vec![100.0f32; 3 * 16 * 16];
        let off = AugmentConfig {
            random_erasing: 0.0,
            ..Default::default()
        };
        assert!(!off.is_active());
        let mut v = img.clone();
        off.apply(
            &mut v,
            1,
            [3, 16, 16],
            false,
            &mut AugmentConfig::rng(1, 0, 0),
        );
        assert_eq!(v, img);
        let on = AugmentConfig {
            random_erasing: 1.0,
            ..Default::default()
        };
        assert!(on.is_active() && on.validate().is_ok());
        let run = |i| {
            let mut v = img.clone();
            on.apply(
                &mut v,
                1,
                [3, 16, 16],
                false,
                &mut AugmentConfig::rng(4, 1, i),
            );
            v
        };
        for i in 0..20 {
            let v = run(i);
            assert_eq!(v, run(i));
            // changed pixels: the same bounding box in each channel, filled completely
            let changed: Vec<usize> = (0..v.len()).filter(|&k| v[k] != 100.0).collect();
            assert!(!changed.is_empty());
            let (mut y0, mut y1, mut x0, mut x1) = (16, 0, 16, 0);
            for &k in &changed {
                let (y, x) = ((k % 256) / 16, k % 16);
                (y0, y1, x0, x1) = (y0.min(y), y1.max(y), x0.min(x), x1.max(x));
            }
            let rect = (y1 - y0 + 1) * (x1 - x0 + 1);
            assert_eq!(changed.len(), 3 * rect, "seed {i}");
            let frac = rect as f64 / 256.0;
            assert!((0.01..=0.4).contains(&frac), "{frac}");
            assert!(
                v.iter()
                    .all(|x| x.is_finite() && (*x == 100.0 || x.abs() < 10.0))
            );
        }
        assert!((0..5).any(|i| run(i) != run(i + 1)));
        let bad = AugmentConfig {
            random_erasing: 1.5,
            ..Default::default()
        };
        assert!(bad.validate().is_err());
    }
}
