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
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn img(c: usize, h: usize, w: usize, data: Vec<u8>) -> Image8 {
        assert_eq!(data.len(), c * h * w);
        Image8 { c, h, w, data }
    }

    fn dot(h: usize, w: usize, y: usize, x: usize) -> Image8 {
        let mut d = vec![0u8; h * w];
        d[y * w + x] = 200;
        img(1, h, w, d)
    }

    fn where_is(i: &Image8, v: u8) -> Vec<(usize, usize)> {
        (0..i.h * i.w)
            .filter(|&k| i.data[k] == v)
            .map(|k| (k / i.w, k % i.w))
            .collect()
    }

    #[test]
    fn invert_twice_is_identity_and_solarize_posterize_by_hand() {
        let data: Vec<u8> = (0..=255).collect();
        let mut a = img(1, 16, 16, data.clone());
        a.invert();
        assert_eq!(a.data[0], 255);
        assert_eq!(a.data[200], 55);
        a.invert();
        assert_eq!(a.data, data);
        let mut s = img(1, 1, 4, vec![0, 127, 128, 255]);
        s.solarize(128.0);
        assert_eq!(s.data, [0, 127, 127, 0]);
        let mut s = img(1, 1, 2, vec![0, 255]);
        s.solarize(256.0); // level 0: nothing at or above 256
        assert_eq!(s.data, [0, 255]);
        let mut p = img(1, 1, 4, vec![0b1111_1111, 0b1010_1010, 0b0001_0111, 7]);
        p.posterize(4);
        assert_eq!(p.data, [0b1111_0000, 0b1010_0000, 0b0001_0000, 0]);
        p.posterize(8);
        assert_eq!(p.data, [0b1111_0000, 0b1010_0000, 0b0001_0000, 0]);
        p.posterize(1);
        assert_eq!(p.data, [128, 128, 0, 0]);
        // the reference magnitude tables
        assert_eq!(
            (0..10)
                .map(|i| linspace(8.0, 4.0, i).round() as u32)
                .collect::<Vec<_>>(),
            [8, 8, 7, 7, 6, 6, 5, 5, 4, 4]
        );
        assert_eq!(linspace(256.0, 0.0, 9), 0.0);
    }

    #[test]
    fn shear_translate_and_rotate_move_a_single_pixel() {
        // shear x by 0.5: row y takes input x + ½ + 0.5 (y + ½); (y=2, x=2) → x = 1
        let mut s = dot(5, 5, 2, 2);
        s.affine([1.0, 0.5, 0.0, 0.0, 1.0, 0.0], 0);
        assert_eq!(where_is(&s, 200), [(2, 1)]);
        // shear y by -0.5 on (y=1, x=4): column x takes input y + ½ − 0.5 (x + ½) → y = 3
        let mut s = dot(5, 5, 1, 4);
        s.affine([1.0, 0.0, 0.0, -0.5, 1.0, 0.0], 0);
        assert_eq!(where_is(&s, 200), [(3, 4)]);
        // translate x by +2 moves content left by 2, with grey fill entering on the right
        let mut t = dot(3, 5, 1, 3);
        t.affine([1.0, 0.0, 2.0, 0.0, 1.0, 0.0], FILL);
        assert_eq!(where_is(&t, 200), [(1, 1)]);
        assert_eq!(where_is(&t, FILL).len(), 6);
        // rotate 90° counter-clockwise: right middle → top middle; 0° is identity
        let mut r = dot(3, 3, 1, 2);
        r.rotate(90.0, 0);
        assert_eq!(where_is(&r, 200), [(0, 1)]);
        let mut r = dot(3, 3, 0, 0);
        r.rotate(90.0, 7);
        assert_eq!(where_is(&r, 200), [(2, 0)]);
        let d = dot(4, 6, 3, 1);
        let mut r = d.clone();
        r.rotate(0.0, 9);
        assert_eq!(r, d);
        // four quarter turns of a square image come back
        let data: Vec<u8> = (0..16).collect();
        let mut q = img(1, 4, 4, data.clone());
        for _ in 0..4 {
            q.rotate(90.0, 0);
        }
        assert_eq!(q.data, data);
    }

    #[test]
    fn enhance_ops_by_hand() {
        // brightness: factor 0 = black, 1 = identity, 2 doubles (clamped)
        let mut b = img(1, 1, 3, vec![10, 100, 200]);
        b.brightness(2.0);
        assert_eq!(b.data, [20, 200, 255]);
        b.brightness(0.0);
        assert_eq!(b.data, [0, 0, 0]);
        // colour 0 = grey (luma), 1 = identity; a grey image does not change
        let mut c = img(3, 1, 1, vec![255, 0, 0]);
        let orig = c.clone();
        c.color(1.0);
        assert_eq!(c, orig);
        c.color(0.0);
        assert_eq!(c.data, [76, 76, 76]);
        // contrast 0 = uniform mean grey
        let mut k = img(1, 1, 4, vec![0, 0, 100, 100]);
        k.contrast(0.0);
        assert_eq!(k.data, [50, 50, 50, 50]);
        let mut k = img(1, 1, 4, vec![0, 0, 100, 100]);
        k.contrast(2.0);
        assert_eq!(k.data, [0, 0, 150, 150]);
        // sharpness 0 = SMOOTH (border kept): centre of a 3×3 dot = 5·200/13
        let mut s = dot(3, 3, 1, 1);
        s.sharpness(0.0);
        assert_eq!(s.data[4], 77);
        assert_eq!(s.data[0], 0);
        let mut s = dot(3, 3, 1, 1);
        s.sharpness(1.0);
        assert_eq!(s, dot(3, 3, 1, 1));
        // autocontrast stretches to 0..255 per channel; flat channels stay
        let mut a = img(2, 1, 3, vec![50, 100, 150, 7, 7, 7]);
        a.autocontrast();
        assert_eq!(a.data, [0, 127, 255, 7, 7, 7]);
        // equalize: two equally common values spread to the ends (PIL's lut); too few
        // pixels for a step (PIL: `(total - last) // 255 == 0`) leave the image as it is
        let mut e = img(1, 2, 255, [[10u8; 255], [20u8; 255]].concat());
        e.equalize();
        assert_eq!(e.data, [[0u8; 255], [255u8; 255]].concat());
        let mut e = img(1, 2, 2, vec![10, 10, 20, 20]);
        e.equalize();
        assert_eq!(e.data, [10, 10, 20, 20]);
        let mut flat = img(1, 1, 3, vec![9, 9, 9]);
        flat.equalize();
        assert_eq!(flat.data, [9, 9, 9]);
    }

    #[test]
    fn randaugment_parses_timm_strings_and_levels_by_hand() {
        let r = RandAugment::parse("rand-m9-mstd0.5-inc1").unwrap();
        assert_eq!(
            r,
            RandAugment {
                magnitude: 9.0,
                magnitude_std: 0.5,
                layers: 2,
                increasing: true,
                prob: 0.5
            }
        );
        assert_eq!(RandAugment::parse("rand-n3-m5").unwrap().layers, 3);
        assert!(!RandAugment::parse("rand").unwrap().increasing);
        for bad in ["", "randx", "rand-m11", "rand-q1", "rand-inc2", "auto-m9"] {
            assert!(RandAugment::parse(bad).is_none(), "{bad}");
        }
        let mut rng = StdRng::seed_from_u64(0);
        let inc = RandAugment::parse("rand-inc1").unwrap();
        let flat = RandAugment::parse("rand-inc0").unwrap();
        // posterize: increasing keeps 4 − ⌊4·l⌋ bits, the other ⌊4·l⌋
        let mut p = img(1, 1, 1, vec![0b1011_0111]);
        inc.apply_op(&mut p, RandOp::Posterize, 5.0, &mut rng);
        assert_eq!(p.data, [0b1000_0000]);
        let mut p = img(1, 1, 1, vec![0b1011_0111]);
        flat.apply_op(&mut p, RandOp::Posterize, 10.0, &mut rng);
        assert_eq!(p.data, [0b1011_0000]);
        // solarize at level 5: threshold 128 either way; solarize_add +55 below 128
        let mut s = img(1, 1, 3, vec![100, 128, 250]);
        inc.apply_op(&mut s, RandOp::Solarize, 5.0, &mut rng);
        assert_eq!(s.data, [100, 127, 5]);
        let mut s = img(1, 1, 3, vec![100, 127, 200]);
        inc.apply_op(&mut s, RandOp::SolarizeAdd, 5.0, &mut rng);
        assert_eq!(s.data, [155, 182, 200]);
        // non-increasing enhance at level 5: factor 1.0 = identity
        let mut b = img(1, 1, 2, vec![10, 200]);
        flat.apply_op(&mut b, RandOp::Brightness, 5.0, &mut rng);
        assert_eq!(b.data, [10, 200]);
        // level 0 geometric ops are the identity
        let d = dot(5, 5, 1, 3);
        for op in [
            RandOp::Rotate,
            RandOp::ShearX,
            RandOp::ShearY,
            RandOp::TranslateX,
        ] {
            let mut g = d.clone();
            inc.apply_op(&mut g, op, 0.0, &mut rng);
            assert_eq!(g, d, "{op:?}");
        }
        // the whole policy: seeded, in range, on the 8-bit grid
        let base: Vec<f32> = (0..3 * 36).map(|i| (i * 5 % 256) as f32 / 255.0).collect();
        let run = |seed: u64| {
            let mut v = base.clone();
            r.apply(&mut v, [3, 6, 6], &mut StdRng::seed_from_u64(seed));
            v
        };
        assert_eq!(run(11), run(11));
        let outs: Vec<_> = (0..30).map(run).collect();
        assert!(outs.iter().any(|o| *o != base));
        assert!(outs.iter().flatten().all(|v| (0.0..=1.0).contains(v)));
    }

    #[test]
    fn policy_is_seeded_and_keeps_the_range() {
        let shape = [3, 8, 8];
        let base: Vec<f32> = (0..192).map(|i| (i % 256) as f32 / 255.0).collect();
        let run = |seed: u64| {
            let mut v = base.clone();
            cifar10_policy(&mut v, shape, &mut StdRng::seed_from_u64(seed));
            v
        };
        assert_eq!(run(4), run(4));
        let outs: Vec<Vec<f32>> = (0..40).map(run).collect();
        assert!(outs.iter().any(|o| *o != base));
        assert!(outs.contains(&base)); // some draws apply nothing
        for o in &outs {
            assert!(o.iter().all(|v| (0.0..=1.0).contains(v)));
            // values stay on the 8-bit grid
            assert!(
                o.iter()
                    .all(|v| ((v * 255.0).round() - v * 255.0).abs() < 1e-3)
            );
        }
        // every operation runs at every level without panicking, on odd sizes too
        let mut rng = StdRng::seed_from_u64(1);
        for &(_, a, _, _, b, _) in &CIFAR10_POLICY {
            for level in 0..10 {
                for (c, h, w) in [(3, 5, 7), (1, 1, 1), (1, 2, 9)] {
                    let mut i = img(c, h, w, (0..c * h * w).map(|k| (k * 37) as u8).collect());
                    i.apply(a, level, &mut rng);
                    i.apply(b, level, &mut rng);
                }
            }
        }
    }
}
