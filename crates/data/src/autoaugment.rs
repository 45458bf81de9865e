//! AutoAugment's CIFAR-10 policy (Cubuk et al., CVPR 2019) on `[C, H, W]` images, as the
//! widely copied `CIFAR10Policy` (DeepVoltaire/AutoAugment) used by SNN CIFAR recipes
//! (`RandomCrop(32, 4)`, `RandomHorizontalFlip`, `CIFAR10Policy`, `ToTensor`, `Cutout`,
//! `Normalize`).
//!
//! The policy picks one of 25 sub-policies uniformly; a sub-policy applies its first operation
//! with probability `p1` and its second with `p2`, each at a magnitude index `0..=9` into the
//! reference ranges. Operations follow PIL's definitions on 8-bit pixels (the image is
//! quantised to `u8` for the policy and back, which is exact for 8-bit sources):
//!
//! * geometric (`ShearX/Y` 0..0.3, `TranslateX/Y` 0..150/331 of the side, `Rotate` 0..30°):
//!   PIL's affine mapping of output pixel centres, nearest neighbour (PIL uses bicubic for
//!   shear), fill grey 128; shear and translate take a random sign, rotate does not (as the
//!   reference `rotate_with_fill`);
//! * `Color`, `Contrast`, `Sharpness`, `Brightness` (factor `1 ± m`, m in 0..0.9, random sign):
//!   PIL's `ImageEnhance` blend with the degenerate image (grey, uniform mean grey, 3×3 SMOOTH,
//!   black);
//! * `Posterize` (bits round(linspace(8, 4))), `Solarize` (threshold linspace(256, 0)),
//!   `AutoContrast`, `Equalize`, `Invert`: PIL's `ImageOps`.
//!
//! [`RandAugment`] is timm's RandAugment, given by timm's policy string: `rand-m9-mstd0.5-inc1`
//! is what TKS's recipes use for CIFAR (through BrainCog's `build_transform`, timm's
//! `create_transform(auto_augment='rand-m9-mstd0.5-inc1')`): `n` (default 2) operations drawn
//! with replacement from timm's 15, each applied with probability ½ at a magnitude drawn from
//! `N(m, mstd)` clipped to `0..=10`; `inc1` selects the "increasing" variants (stronger with the
//! magnitude). timm fills with the dataset mean colour and resamples bilinear/bicubic at random;
//! here fill is grey 128 and resampling nearest.
//!
//! Every draw comes from the sample's generator, so the result is a function of
//! `(seed, epoch, sample index)`.

use rand::Rng;
use rand::rngs::StdRng;

/// An operation of the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Horizontal shear.
    ShearX,
    /// Vertical shear.
    ShearY,
    /// Horizontal translation.
    TranslateX,
    /// Vertical translation.
    TranslateY,
    /// Counter-clockwise rotation.
    Rotate,
    /// Saturation.
    Color,
    /// Keep the top bits.
    Posterize,
    /// Invert above a threshold.
    Solarize,
    /// Contrast.
    Contrast,
    /// Sharpness.
    Sharpness,
    /// Brightness.
    Brightness,
    /// Stretch each channel to 0..255.
    AutoContrast,
    /// Histogram equalisation per channel.
    Equalize,
    /// `255 - v`.
    Invert,
}

use Op::*;

/// The 25 sub-policies `(p1, op1, magnitude1, p2, op2, magnitude2)` of `CIFAR10Policy`.
pub const CIFAR10_POLICY: [(f64, Op, usize, f64, Op, usize); 25] = [
    (0.1, Invert, 7, 0.2, Contrast, 6),
    (0.7, Rotate, 2, 0.3, TranslateX, 9),
    (0.8, Sharpness, 1, 0.9, Sharpness, 3),
    (0.5, ShearY, 8, 0.7, TranslateY, 9),
    (0.5, AutoContrast, 8, 0.9, Equalize, 2),
    (0.2, ShearY, 7, 0.3, Posterize, 7),
    (0.4, Color, 3, 0.6, Brightness, 7),
    (0.3, Sharpness, 9, 0.7, Brightness, 9),
    (0.6, Equalize, 5, 0.5, Equalize, 1),
    (0.6, Contrast, 7, 0.6, Sharpness, 5),
    (0.7, Color, 7, 0.5, TranslateX, 8),
    (0.3, Equalize, 7, 0.4, AutoContrast, 8),
    (0.4, TranslateY, 3, 0.2, Sharpness, 6),
    (0.9, Brightness, 6, 0.2, Color, 8),
    (0.5, Solarize, 2, 0.0, Invert, 3),
    (0.2, Equalize, 0, 0.6, AutoContrast, 0),
    (0.2, Equalize, 8, 0.8, Equalize, 4),
    (0.9, Color, 9, 0.6, Equalize, 6),
    (0.8, AutoContrast, 4, 0.2, Solarize, 8),
    (0.1, Brightness, 3, 0.7, Color, 0),
    (0.4, Solarize, 5, 0.9, AutoContrast, 3),
    (0.9, TranslateY, 9, 0.7, TranslateY, 9),
    (0.9, AutoContrast, 2, 0.8, Solarize, 3),
    (0.8, Equalize, 8, 0.1, Invert, 3),
    (0.7, TranslateY, 9, 0.9, AutoContrast, 1),
];

/// Grey fill of the geometric operations.
pub const FILL: u8 = 128;

/// `np.linspace(a, b, 10)[i]`.
fn linspace(a: f64, b: f64, i: usize) -> f64 {
    a + (b - a) * (i.min(9) as f64) / 9.0
}

/// An 8-bit image `[C, H, W]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image8 {
    /// Channels.
    pub c: usize,
    /// Rows.
    pub h: usize,
    /// Columns.
    pub w: usize,
    /// `c * h * w` pixels, channel-major.
    pub data: Vec<u8>,
}

impl Image8 {
    /// From `[0, 1]` values (rounded, clamped).
    pub fn from_unit(values: &[f32], c: usize, h: usize, w: usize) -> Self {
        let data = values
            .iter()
            .map(|v| (v * 255.0).round().clamp(0.0, 255.0) as u8)
            .collect();
        Self { c, h, w, data }
    }

    /// Writes the pixels back as `[0, 1]` values.
    pub fn to_unit(&self, out: &mut [f32]) {
        for (o, &p) in out.iter_mut().zip(&self.data) {
            *o = p as f32 / 255.0;
        }
    }

    fn plane(&self) -> usize {
        self.h * self.w
    }

    /// PIL's `L` conversion of a pixel (ITU-R 601-2 luma); the pixel itself for one channel.
    fn luma(&self, k: usize) -> u8 {
        let n = self.plane();
        if self.c == 3 {
            let (r, g, b) = (
                self.data[k] as u32,
                self.data[n + k] as u32,
                self.data[2 * n + k] as u32,
            );
            ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16) as u8
        } else {
            self.data[k]
        }
    }

    /// `degenerate + factor * (self - degenerate)`, clamped and truncated like PIL's blend.
    fn blend_with(&mut self, degenerate: &[u8], factor: f64) {
        for (p, &d) in self.data.iter_mut().zip(degenerate) {
            let v = d as f64 + factor * (*p as f64 - d as f64);
            *p = v.clamp(0.0, 255.0) as u8;
        }
    }

    /// PIL `Image.transform(AFFINE, (a, b, c, d, e, f))`: the output pixel `(x, y)` takes the
    /// input at `(a x' + b y' + c, d x' + e y' + f)`, `x' = x + ½`, nearest, `fill` outside.
    pub fn affine(&mut self, m: [f64; 6], fill: u8) {
        let (h, w) = (self.h, self.w);
        let src = self.data.clone();
        for ch in 0..self.c {
            let base = ch * h * w;
            for y in 0..h {
                for x in 0..w {
                    let (xc, yc) = (x as f64 + 0.5, y as f64 + 0.5);
                    let xi = (m[0] * xc + m[1] * yc + m[2]).floor();
                    let yi = (m[3] * xc + m[4] * yc + m[5]).floor();
                    self.data[base + y * w + x] =
                        if xi >= 0.0 && yi >= 0.0 && (xi as usize) < w && (yi as usize) < h {
                            src[base + yi as usize * w + xi as usize]
                        } else {
                            fill
                        };
                }
            }
        }
    }

    /// Counter-clockwise rotation by `degrees` about the centre (PIL `rotate`).
    pub fn rotate(&mut self, degrees: f64, fill: u8) {
        let a = -degrees.to_radians();
        let (cx, cy) = (self.w as f64 / 2.0, self.h as f64 / 2.0);
        let (c, s) = (a.cos(), a.sin());
        let m = [c, s, c * -cx + s * -cy + cx, -s, c, -s * -cx + c * -cy + cy];
        self.affine(m, fill);
    }

    /// `255 - v`.
    pub fn invert(&mut self) {
        self.data.iter_mut().for_each(|p| *p = 255 - *p);
    }

    /// Keeps the top `bits` bits (0 = black).
    pub fn posterize(&mut self, bits: u32) {
        let mask = !((1u32 << (8 - bits.min(8))) - 1) as u8;
        self.data.iter_mut().for_each(|p| *p &= mask);
    }

    /// Inverts every value at or above `threshold`.
    pub fn solarize(&mut self, threshold: f64) {
        self.data.iter_mut().for_each(|p| {
            if (*p as f64) >= threshold {
                *p = 255 - *p;
            }
        });
    }

    /// Adds `add` to every value below `threshold` (timm `solarize_add`), clamped to 255.
    pub fn solarize_add(&mut self, add: u32, threshold: u32) {
        self.data.iter_mut().for_each(|p| {
            if (*p as u32) < threshold {
                *p = (*p as u32 + add).min(255) as u8;
            }
        });
    }

    /// Stretches each channel linearly so its range becomes 0..255 (PIL `autocontrast`).
    pub fn autocontrast(&mut self) {
        let n = self.plane();
        for ch in self.data.chunks_exact_mut(n.max(1)) {
            let (lo, hi) = (
                *ch.iter().min().unwrap_or(&0),
                *ch.iter().max().unwrap_or(&255),
            );
            if hi <= lo {
                continue;
            }
            let scale = 255.0 / (hi - lo) as f64;
            let offset = -(lo as f64) * scale;
            for p in ch.iter_mut() {
                *p = (*p as f64 * scale + offset).clamp(0.0, 255.0) as u8;
            }
        }
    }

    /// Histogram equalisation of each channel (PIL `equalize`).
    pub fn equalize(&mut self) {
        let n = self.plane();
        for ch in self.data.chunks_exact_mut(n.max(1)) {
            let mut hist = [0usize; 256];
            ch.iter().for_each(|&p| hist[p as usize] += 1);
            let used: Vec<usize> = hist.iter().copied().filter(|&c| c > 0).collect();
            if used.len() <= 1 {
                continue;
            }
            let step = (used.iter().sum::<usize>() - used[used.len() - 1]) / 255;
            if step == 0 {
                continue;
            }
            let mut lut = [0u8; 256];
            let mut acc = step / 2;
            for (i, l) in lut.iter_mut().enumerate() {
                *l = (acc / step).min(255) as u8;
                acc += hist[i];
            }
            ch.iter_mut().for_each(|p| *p = lut[*p as usize]);
        }
    }

    /// Brightness: blend with black.
    pub fn brightness(&mut self, factor: f64) {
        let black = vec![0u8; self.data.len()];
        self.blend_with(&black, factor);
    }

    /// Colour (saturation): blend with the grey (luma) image; no effect without 3 channels.
    pub fn color(&mut self, factor: f64) {
        if self.c != 3 {
            return;
        }
        let n = self.plane();
        let grey: Vec<u8> = (0..n).map(|k| self.luma(k)).collect();
        let degenerate: Vec<u8> = grey.iter().cycle().take(3 * n).copied().collect();
        self.blend_with(&degenerate, factor);
    }

    /// Contrast: blend with a uniform image of the mean luma.
    pub fn contrast(&mut self, factor: f64) {
        let n = self.plane();
        if n == 0 {
            return;
        }
        let sum: f64 = (0..n).map(|k| self.luma(k) as f64).sum();
        let mean = (sum / n as f64 + 0.5).floor().clamp(0.0, 255.0) as u8;
        let degenerate = vec![mean; self.data.len()];
        self.blend_with(&degenerate, factor);
    }

    /// Sharpness: blend with the 3×3 SMOOTH filter (`[[1,1,1],[1,5,1],[1,1,1]] / 13`, border
    /// pixels kept, as PIL).
    pub fn sharpness(&mut self, factor: f64) {
        let (h, w) = (self.h, self.w);
        let mut degenerate = self.data.clone();
        if h >= 3 && w >= 3 {
            for ch in 0..self.c {
                let b = ch * h * w;
                for y in 1..h - 1 {
                    for x in 1..w - 1 {
                        let mut s = 0u32;
                        for dy in 0..3 {
                            for dx in 0..3 {
                                let k = if dy == 1 && dx == 1 { 5 } else { 1 };
                                s += k * self.data[b + (y + dy - 1) * w + x + dx - 1] as u32;
                            }
                        }
                        degenerate[b + y * w + x] = ((s as f64 / 13.0) + 0.5).min(255.0) as u8;
                    }
                }
            }
        }
        self.blend_with(&degenerate, factor);
    }

    /// Applies `op` at magnitude index `level` (0..=9), drawing its sign from `rng`.
    pub fn apply(&mut self, op: Op, level: usize, rng: &mut StdRng) {
        let mut signed = |m: f64| if rng.random_bool(0.5) { m } else { -m };
        match op {
            ShearX => {
                let m = signed(linspace(0.0, 0.3, level));
                self.affine([1.0, m, 0.0, 0.0, 1.0, 0.0], FILL);
            }
            ShearY => {
                let m = signed(linspace(0.0, 0.3, level));
                self.affine([1.0, 0.0, 0.0, m, 1.0, 0.0], FILL);
            }
            TranslateX => {
                let t = signed(linspace(0.0, 150.0 / 331.0, level) * self.w as f64);
                self.affine([1.0, 0.0, t, 0.0, 1.0, 0.0], FILL);
            }
            TranslateY => {
                let t = signed(linspace(0.0, 150.0 / 331.0, level) * self.h as f64);
                self.affine([1.0, 0.0, 0.0, 0.0, 1.0, t], FILL);
            }
            Rotate => self.rotate(linspace(0.0, 30.0, level), FILL),
            Color => {
                let f = 1.0 + signed(linspace(0.0, 0.9, level));
                self.color(f);
            }
            Posterize => self.posterize(linspace(8.0, 4.0, level).round() as u32),
            Solarize => self.solarize(linspace(256.0, 0.0, level)),
            Contrast => {
                let f = 1.0 + signed(linspace(0.0, 0.9, level));
                self.contrast(f);
            }
            Sharpness => {
                let f = 1.0 + signed(linspace(0.0, 0.9, level));
                self.sharpness(f);
            }
            Brightness => {
                let f = 1.0 + signed(linspace(0.0, 0.9, level));
                self.brightness(f);
            }
            AutoContrast => self.autocontrast(),
            Equalize => self.equalize(),
            Invert => self.invert(),
        }
    }
}

/// timm's RandAugment operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RandOp {
    /// `AutoContrast`.
    AutoContrast,
    /// `Equalize`.
    Equalize,
    /// `Invert`.
    Invert,
    /// `Rotate`, ±30° at level 10.
    Rotate,
    /// `Posterize` / `PosterizeIncreasing`.
    Posterize,
    /// `Solarize` / `SolarizeIncreasing`.
    Solarize,
    /// `SolarizeAdd`: +110 at level 10 below 128.
    SolarizeAdd,
    /// `Color` / `ColorIncreasing`.
    Color,
    /// `Contrast` / `ContrastIncreasing`.
    Contrast,
    /// `Brightness` / `BrightnessIncreasing`.
    Brightness,
    /// `Sharpness` / `SharpnessIncreasing`.
    Sharpness,
    /// `ShearX`, ±0.3 at level 10.
    ShearX,
    /// `ShearY`.
    ShearY,
    /// `TranslateXRel`, ±45 % of the width at level 10.
    TranslateX,
    /// `TranslateYRel`.
    TranslateY,
}

/// timm's `_RAND_TRANSFORMS` / `_RAND_INCREASING_TRANSFORMS`, in its order.
pub const RAND_OPS: [RandOp; 15] = [
    RandOp::AutoContrast,
    RandOp::Equalize,
    RandOp::Invert,
    RandOp::Rotate,
    RandOp::Posterize,
    RandOp::Solarize,
    RandOp::SolarizeAdd,
    RandOp::Color,
    RandOp::Contrast,
    RandOp::Brightness,
    RandOp::Sharpness,
    RandOp::ShearX,
    RandOp::ShearY,
    RandOp::TranslateX,
    RandOp::TranslateY,
];

/// timm RandAugment settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RandAugment {
    /// Magnitude `m` (0..=10).
    pub magnitude: f64,
    /// Standard deviation of the magnitude (`mstd`; 0 = fixed).
    pub magnitude_std: f64,
    /// Operations per image (`n`).
    pub layers: usize,
    /// The increasing variants (`inc1`).
    pub increasing: bool,
    /// Probability of each drawn operation (timm: ½).
    pub prob: f64,
}

impl RandAugment {
    /// Parses timm's `rand-m9-mstd0.5-inc1` form: sections `m` (0..=10), `n`, `mstd`, `inc0|1`,
    /// `p`, in any order, with timm's defaults m = 10, n = 2, mstd = 0, inc0, p = 0.5.
    pub fn parse(spec: &str) -> Option<Self> {
        let mut parts = spec.split('-');
        if parts.next()? != "rand" {
            return None;
        }
        let mut r = Self {
            magnitude: 10.0,
            magnitude_std: 0.0,
            layers: 2,
            increasing: false,
            prob: 0.5,
        };
        for p in parts {
            if let Some(v) = p.strip_prefix("mstd") {
                r.magnitude_std = v
                    .parse()
                    .ok()
                    .filter(|x: &f64| x.is_finite() && *x >= 0.0)?;
            } else if let Some(v) = p.strip_prefix("inc") {
                r.increasing = match v {
                    "0" => false,
                    "1" => true,
                    _ => return None,
                };
            } else if let Some(v) = p.strip_prefix('m') {
                r.magnitude = v.parse().ok().filter(|x: &f64| (0.0..=10.0).contains(x))?;
            } else if let Some(v) = p.strip_prefix('n') {
                r.layers = v.parse().ok().filter(|n: &usize| *n <= 16)?;
            } else if let Some(v) = p.strip_prefix('p') {
                r.prob = v.parse().ok().filter(|x: &f64| (0.0..=1.0).contains(x))?;
            } else {
                return None;
            }
        }
        Some(r)
    }

    /// Applies `op` at `level` (0..=10) like timm's level functions.
    pub fn apply_op(&self, img: &mut Image8, op: RandOp, level: f64, rng: &mut StdRng) {
        let l = (level / 10.0).clamp(0.0, 1.0);
        let mut signed = |m: f64| if rng.random_bool(0.5) { -m } else { m };
        match op {
            RandOp::AutoContrast => img.autocontrast(),
            RandOp::Equalize => img.equalize(),
            RandOp::Invert => img.invert(),
            RandOp::Rotate => img.rotate(signed(l * 30.0), FILL),
            RandOp::Posterize => {
                let bits = (l * 4.0) as u32;
                let bits = if self.increasing { 4 - bits } else { bits };
                img.posterize(bits);
            }
            RandOp::Solarize => {
                let t = (l * 256.0) as u32;
                img.solarize(if self.increasing { 256 - t } else { t } as f64);
            }
            RandOp::SolarizeAdd => img.solarize_add((l * 110.0) as u32, 128),
            RandOp::Color | RandOp::Contrast | RandOp::Brightness | RandOp::Sharpness => {
                let f = if self.increasing {
                    1.0 + signed(l * 0.9)
                } else {
                    l * 1.8 + 0.1
                };
                match op {
                    RandOp::Color => img.color(f),
                    RandOp::Contrast => img.contrast(f),
                    RandOp::Brightness => img.brightness(f),
                    _ => img.sharpness(f),
                }
            }
            RandOp::ShearX => img.affine([1.0, signed(l * 0.3), 0.0, 0.0, 1.0, 0.0], FILL),
            RandOp::ShearY => img.affine([1.0, 0.0, 0.0, signed(l * 0.3), 1.0, 0.0], FILL),
            RandOp::TranslateX => {
                let t = signed(l * 0.45) * img.w as f64;
                img.affine([1.0, 0.0, t, 0.0, 1.0, 0.0], FILL);
            }
            RandOp::TranslateY => {
                let t = signed(l * 0.45) * img.h as f64;
                img.affine([1.0, 0.0, 0.0, 0.0, 1.0, t], FILL);
            }
        }
    }

    /// Applies the policy to one image of `[0, 1]` values `[C, H, W]` in place.
    pub fn apply(&self, values: &mut [f32], shape: [usize; 3], rng: &mut StdRng) {
        let [c, h, w] = shape;
        if values.len() != c * h * w || values.is_empty() {
            return;
        }
        let mut img: Option<Image8> = None;
        for _ in 0..self.layers {
            let op = RAND_OPS[rng.random_range(0..RAND_OPS.len())];
            if self.prob < 1.0 && rng.random::<f64>() > self.prob {
                continue;
            }
            let level = if self.magnitude_std > 0.0 {
                // Box–Muller normal draw, as timm's `random.gauss(m, mstd)`
                let (u1, u2) = (1.0 - rng.random::<f64>(), rng.random::<f64>());
                let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
                self.magnitude + self.magnitude_std * z
            } else {
                self.magnitude
            };
            let im = img.get_or_insert_with(|| Image8::from_unit(values, c, h, w));
            self.apply_op(im, op, level.clamp(0.0, 10.0), rng);
        }
        if let Some(im) = img {
            im.to_unit(values);
        }
    }
}

/// Applies `CIFAR10Policy` to one image of `[0, 1]` values `[C, H, W]` in place.
pub fn cifar10_policy(values: &mut [f32], shape: [usize; 3], rng: &mut StdRng) {
    let [c, h, w] = shape;
    if values.len() != c * h * w || values.is_empty() {
        return;
    }
    let (p1, op1, m1, p2, op2, m2) = CIFAR10_POLICY[rng.random_range(0..CIFAR10_POLICY.len())];
    let (do1, do2) = (rng.random::<f64>() < p1, rng.random::<f64>() < p2);
    if !do1 && !do2 {
        return;
    }
    let mut img = Image8::from_unit(values, c, h, w);
    if do1 {
        img.apply(op1, m1, rng);
    }
    if do2 {
        img.apply(op2, m2, rng);
    }
    img.to_unit(values);
}

#[cfg(test)]
mod tests;
