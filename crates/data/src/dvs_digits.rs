//! A procedural neuromorphic dataset: the embedded 8×8 digits as sprites moving across a
//! 16 × 16 sensor, seen by a simulated DVS pixel array (`--data dvsdigits`).
//!
//! Each sample is one digit image (intensities `[0, 1]`) drawn with bilinear interpolation at a
//! position moving in a straight line — start and velocity drawn from a generator seeded by the
//! sample index, so the set is the same on every machine. At each of [`STEPS`] steps (1 ms apart)
//! every pixel compares its log intensity `ln(ε + I)` with its reference level; while the
//! difference is at least the contrast threshold `C` it emits an ON event (brighter) and moves its
//! reference up by `C`, or an OFF event and moves it down — the DVS pixel model (Lichtsteiner,
//! Posch & Delbruck 2008). Events within a step get timestamps spread over the millisecond in
//! pixel order. The split is the digits' fixed one (every fifth image of a class is a test
//! image), so the sets are 1,442 / 355 samples with labels 0..9.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::events::{Events, Resize, SplitBy, to_frames};
use super::{Dataset, SampleKind, Split, digits};
use crate::error::DataError;

/// Sensor side.
pub const SIZE: usize = 16;
/// Simulation steps per sample.
pub const STEPS: usize = 16;
/// Contrast threshold on log intensity.
pub const CONTRAST: f32 = 0.15;
const EPS: f32 = 0.1;

/// The brightness of `image` (8×8) drawn at the real-valued top-left `(px, py)` on the sensor.
fn render(image: &[f32], px: f32, py: f32) -> Vec<f32> {
    let mut out = vec![0.0f32; SIZE * SIZE];
    for y in 0..SIZE {
        for x in 0..SIZE {
            // sample the sprite at sensor pixel (x, y) → sprite coordinates (x - px, y - py)
            let (u, v) = (x as f32 - px, y as f32 - py);
            let (u0, v0) = (u.floor(), v.floor());
            let (fu, fv) = (u - u0, v - v0);
            let at = |i: f32, j: f32| -> f32 {
                if (0.0..8.0).contains(&i) && (0.0..8.0).contains(&j) {
                    image[j as usize * 8 + i as usize]
                } else {
                    0.0
                }
            };
            out[y * SIZE + x] = at(u0, v0) * (1.0 - fu) * (1.0 - fv)
                + at(u0 + 1.0, v0) * fu * (1.0 - fv)
                + at(u0, v0 + 1.0) * (1.0 - fu) * fv
                + at(u0 + 1.0, v0 + 1.0) * fu * fv;
        }
    }
    out
}

/// The event stream of one sample: `image` (8×8, `[0, 1]`) moving as drawn from `seed`.
pub fn simulate(image: &[f32], seed: u64) -> Events {
    let mut rng = StdRng::seed_from_u64(seed);
    let span = (SIZE - 8) as f32;
    let (x0, y0) = (rng.random_range(0.0..=span), rng.random_range(0.0..=span));
    let (x1, y1) = (rng.random_range(0.0..=span), rng.random_range(0.0..=span));
    let mut ev = Events::new(SIZE as u16, SIZE as u16);
    let log = |v: f32| (EPS + v).ln();
    let mut reference: Vec<f32> = render(image, x0, y0).into_iter().map(log).collect();
    for k in 1..STEPS {
        let a = k as f32 / (STEPS - 1) as f32;
        let frame = render(image, x0 + a * (x1 - x0), y0 + a * (y1 - y0));
        for (i, &v) in frame.iter().enumerate() {
            let l = log(v);
            let t = (k * 1000 + i * 1000 / (SIZE * SIZE)) as u64;
            let (x, y) = ((i % SIZE) as u16, (i / SIZE) as u16);
            while l - reference[i] >= CONTRAST {
                reference[i] += CONTRAST;
                ev.push(x, y, t, 1);
            }
            while reference[i] - l >= CONTRAST {
                reference[i] -= CONTRAST;
                ev.push(x, y, t, 0);
            }
        }
    }
    ev
}

/// The dataset, integrated into `timesteps` frames `[2, 16, 16]`.
pub fn load(timesteps: usize, split_by: SplitBy) -> Result<Split, DataError> {
    let (pixels, labels) = digits::parse_csv_gz(digits::embedded_csv_gz(), "embedded:digits")?;
    let t = timesteps.max(1);
    let (mut tr, mut te) = ((Vec::new(), Vec::new()), (Vec::new(), Vec::new()));
    let mut seen = [0usize; 10];
    for (i, &label) in labels.iter().enumerate() {
        let ev = simulate(&pixels[i * 64..(i + 1) * 64], i as u64);
        let frames = to_frames(&ev, split_by, t, Resize::None);
        let k = seen[label as usize];
        seen[label as usize] += 1;
        let dst = if k % 5 == 4 { &mut te } else { &mut tr };
        dst.0.extend(frames);
        dst.1.push(label);
    }
    let kind = SampleKind::Frames { timesteps: t };
    Ok(Split {
        train: Dataset::new("dvsdigits/train", kind, [2, SIZE, SIZE], 10, tr.0, tr.1)?,
        val: None,
        train_long: None,
        test: Dataset::new("dvsdigits/test", kind, [2, SIZE, SIZE], 10, te.0, te.1)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_moving_sprite_emits_on_and_off_events_deterministically() {
        let mut img = vec![0.0f32; 64];
        img[3 * 8 + 3..3 * 8 + 5].fill(1.0);
        let a = simulate(&img, 3);
        assert_eq!(a, simulate(&img, 3));
        let (off, on) = a.polarity_counts();
        assert!(on > 0 && off > 0, "{on} ON / {off} OFF");
        assert!(a.t.windows(2).all(|w| w[0] <= w[1]));
        // a blank image never changes: no events
        assert!(simulate(&[0.0; 64], 3).is_empty());
        // bilinear render keeps the total intensity when fully inside
        let r = render(&img, 2.5, 4.25);
        assert!((r.iter().sum::<f32>() - 2.0).abs() < 1e-5);
    }

    #[test]
    fn dataset_has_the_digits_split() {
        let s = load(4, SplitBy::Number).unwrap();
        assert_eq!((s.train.len(), s.test.len()), (1442, 355));
        assert_eq!(s.train.frame_shape, [2, 16, 16]);
        assert_eq!(s.train.kind, SampleKind::Frames { timesteps: 4 });
        assert!(s.train.values.iter().sum::<f32>() > 0.0);
    }
}
