//! Event streams and their integration into frames.
//!
//! [`Events`] is the common output of every event-camera parser in [`super::formats`].
//! [`to_frames`] integrates a stream into `[T, 2, H, W]` frames the way SpikingJelly's
//! `integrate_events_by_fixed_frames_number` does (`split_by = 'number'` or `'time'`), with
//! channel 0 = OFF (polarity 0) and channel 1 = ON (polarity 1), each pixel counting its
//! events. [`stratified_split`] makes a seeded per-class train/test split.

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

/// An event stream, one entry per event in each vector (all four vectors have equal length).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Events {
    /// Column, `0..width`.
    pub x: Vec<u16>,
    /// Row, `0..height`.
    pub y: Vec<u16>,
    /// Timestamp in microseconds.
    pub t: Vec<u64>,
    /// Polarity: 0 = OFF (darker), 1 = ON (brighter).
    pub p: Vec<u8>,
    /// Sensor width (x range).
    pub width: u16,
    /// Sensor height (y range).
    pub height: u16,
}

impl Events {
    /// An empty stream for a `width` × `height` sensor.
    pub fn new(width: u16, height: u16) -> Self {
        Self {
            width,
            height,
            ..Self::default()
        }
    }

    /// An empty stream with room for `n` events.
    pub fn with_capacity(width: u16, height: u16, n: usize) -> Self {
        Self {
            x: Vec::with_capacity(n),
            y: Vec::with_capacity(n),
            t: Vec::with_capacity(n),
            p: Vec::with_capacity(n),
            width,
            height,
        }
    }

    /// Appends one event.
    pub fn push(&mut self, x: u16, y: u16, t: u64, p: u8) {
        self.x.push(x);
        self.y.push(y);
        self.t.push(t);
        self.p.push(p);
    }

    /// Number of events.
    pub fn len(&self) -> usize {
        self.t.len()
    }

    /// Whether there are no events.
    pub fn is_empty(&self) -> bool {
        self.t.is_empty()
    }

    /// `(OFF, ON)` event counts.
    pub fn polarity_counts(&self) -> (usize, usize) {
        let on = self.p.iter().filter(|&&p| p != 0).count();
        (self.len() - on, on)
    }
}

/// How the stream is cut into frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SplitBy {
    /// Equal event counts: frame `i` holds events `i*N/T .. (i+1)*N/T` (integer `N/T`), the last
    /// frame also takes the remainder (SpikingJelly `split_by='number'`).
    Number,
    /// Equal time windows of `dt = (t_last - t_first) / T` µs (integer division) from the first
    /// event; the last frame also takes everything after its window start
    /// (SpikingJelly `split_by='time'`).
    Time,
}

impl std::str::FromStr for SplitBy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "number" => Ok(Self::Number),
            "time" => Ok(Self::Time),
            _ => Err(format!("split_by `{s}`: expected `number` or `time`")),
        }
    }
}

/// Optional spatial resize applied after integration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resize {
    /// Keep the sensor resolution.
    None,
    /// Nearest neighbour: output pixel `(i, j)` takes source pixel
    /// `(floor(i*H/H'), floor(j*W/W'))` (PyTorch `interpolate(mode='nearest')`).
    Nearest {
        /// Target height.
        height: usize,
        /// Target width.
        width: usize,
    },
    /// Area averaging: each output pixel is the mean of the source pixels it covers, weighted by
    /// the overlapping area (OpenCV `INTER_AREA`; equals average pooling for integer factors).
    /// The frame total therefore scales by `H'W' / (HW)`.
    ///
    /// TET (Deng et al. 2022) shrinks CIFAR10-DVS 128×128 frames to 48×48 with torchvision
    /// `Resize` through PIL (bilinear on images cast to u8); that exact pipeline is not
    /// reproduced — area averaging is the closest count-preserving (up to the scale) choice.
    Area {
        /// Target height.
        height: usize,
        /// Target width.
        width: usize,
    },
}

/// The frame of an event, as SpikingJelly assigns them: the one place that computes it, for
/// [`frame_indices`] and (one event at a time, without a per-event vector) [`to_frames`].
#[derive(Debug, Clone, Copy)]
struct FrameOf {
    split_by: SplitBy,
    last: usize,
    /// `Number`: events per frame (`N / T`).
    per_frame: usize,
    /// `Time`: first timestamp and window length.
    t0: u64,
    dt: u64,
}

impl FrameOf {
    fn new(events: &Events, split_by: SplitBy, timesteps: usize) -> Self {
        let t0 = events.t.first().copied().unwrap_or(0);
        let t_end = events.t.last().copied().unwrap_or(t0);
        Self {
            split_by,
            last: timesteps.max(1) - 1,
            per_frame: events.len() / timesteps.max(1),
            t0,
            dt: t_end.saturating_sub(t0) / timesteps.max(1) as u64,
        }
    }

    /// Frame of event `i` at time `t`.
    fn frame(&self, i: usize, t: u64) -> usize {
        match self.split_by {
            SplitBy::Number => i
                .checked_div(self.per_frame)
                .map_or(self.last, |f| f.min(self.last)),
            SplitBy::Time => t
                .saturating_sub(self.t0)
                .checked_div(self.dt)
                .map_or(self.last, |f| f.min(self.last as u64) as usize),
        }
    }
}

/// The frame index of every event (`0..timesteps`), as SpikingJelly assigns them.
///
/// `timesteps` must be at least 1. With fewer events than frames (`Number`) or a time span
/// shorter than `timesteps` µs (`Time`), everything lands in the last frame, where SpikingJelly
/// would give empty frames (`Number`) or fail (`Time`); empty time windows stay empty.
/// Events earlier than the first one (unsorted input) go to frame 0.
pub fn frame_indices(events: &Events, split_by: SplitBy, timesteps: usize) -> Vec<usize> {
    let f = FrameOf::new(events, split_by, timesteps);
    events
        .t
        .iter()
        .enumerate()
        .map(|(i, &t)| f.frame(i, t))
        .collect()
}

/// Integrates `events` into frames `[timesteps, 2, H, W]`, row-major, where `(H, W)` is the sensor
/// size or the `resize` target. Each value counts the events of that polarity at that pixel in
/// that frame (before resizing). Events outside the sensor are skipped. Frames are assigned one
/// event at a time (as [`frame_indices`]), so the only allocation is the frames themselves.
pub fn to_frames(events: &Events, split_by: SplitBy, timesteps: usize, resize: Resize) -> Vec<f32> {
    let (h, w) = (events.height as usize, events.width as usize);
    let timesteps = timesteps.max(1);
    let plane = h * w;
    let mut frames = vec![0.0f32; timesteps * 2 * plane];
    let frame_of = FrameOf::new(events, split_by, timesteps);
    let xy = events.x.iter().zip(&events.y);
    for (i, ((&t, &p), (&x, &y))) in events.t.iter().zip(&events.p).zip(xy).enumerate() {
        let (x, y) = (x as usize, y as usize);
        if x >= w || y >= h {
            continue;
        }
        let c = usize::from(p != 0);
        frames[(frame_of.frame(i, t) * 2 + c) * plane + y * w + x] += 1.0;
    }
    match resize {
        Resize::None => frames,
        Resize::Nearest { height, width } => frames
            .chunks(plane.max(1))
            .take(timesteps * 2)
            .flat_map(|p| resize_nearest(p, h, w, height, width))
            .collect(),
        Resize::Area { height, width } => frames
            .chunks(plane.max(1))
            .take(timesteps * 2)
            .flat_map(|p| resize_area(p, h, w, height, width))
            .collect(),
    }
}

/// Nearest-neighbour resize of one `h × w` plane to `oh × ow`.
pub fn resize_nearest(src: &[f32], h: usize, w: usize, oh: usize, ow: usize) -> Vec<f32> {
    let mut out = vec![0.0; oh * ow];
    if h == 0 || w == 0 {
        return out;
    }
    for i in 0..oh {
        let si = (i * h / oh).min(h - 1);
        for j in 0..ow {
            let sj = (j * w / ow).min(w - 1);
            out[i * ow + j] = src[si * w + sj];
        }
    }
    out
}

/// Area-averaging resize of one `h × w` plane to `oh × ow` (see [`Resize::Area`]).
pub fn resize_area(src: &[f32], h: usize, w: usize, oh: usize, ow: usize) -> Vec<f32> {
    let mut out = vec![0.0; oh * ow];
    if h == 0 || w == 0 || oh == 0 || ow == 0 {
        return out;
    }
    // Per output index, the (source index, weight) pairs along one axis, in source units.
    let weights = |n: usize, on: usize| -> Vec<Vec<(usize, f64)>> {
        let scale = n as f64 / on as f64;
        (0..on)
            .map(|o| {
                let (lo, hi) = (o as f64 * scale, (o + 1) as f64 * scale);
                let mut v = Vec::new();
                let mut s = lo.floor() as usize;
                while (s as f64) < hi && s < n {
                    let overlap = (hi.min((s + 1) as f64) - lo.max(s as f64)).max(0.0);
                    if overlap > 0.0 {
                        v.push((s, overlap / scale));
                    }
                    s += 1;
                }
                v
            })
            .collect()
    };
    let (wy, wx) = (weights(h, oh), weights(w, ow));
    for (i, ry) in wy.iter().enumerate() {
        for (j, rx) in wx.iter().enumerate() {
            let mut acc = 0.0f64;
            for &(sy, ay) in ry {
                for &(sx, ax) in rx {
                    acc += src[sy * w + sx] as f64 * ay * ax;
                }
            }
            out[i * ow + j] = acc as f32;
        }
    }
    out
}

/// A seeded per-class split: within each class, a shuffled `ratio` share (rounded, at least one
/// when the class has two or more samples) goes to train, the rest to test. Returns
/// `(train indices, test indices)`, each sorted ascending. The same labels and seed always give
/// the same split. `ratio = 0.9` is the usual 9:1 split.
pub fn stratified_split(labels: &[u32], ratio: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let ratio = if ratio.is_finite() {
        ratio.clamp(0.0, 1.0)
    } else {
        0.9
    };
    let mut classes: Vec<u32> = labels.to_vec();
    classes.sort_unstable();
    classes.dedup();
    let mut rng = StdRng::seed_from_u64(seed);
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for c in classes {
        let mut idx: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == c).collect();
        idx.shuffle(&mut rng);
        let mut k = (idx.len() as f64 * ratio).round() as usize;
        if idx.len() >= 2 && ratio > 0.0 {
            k = k.max(1);
        }
        let k = k.min(idx.len());
        train.extend_from_slice(&idx[..k]);
        test.extend_from_slice(&idx[k..]);
    }
    train.sort_unstable();
    test.sort_unstable();
    (train, test)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(ts: &[u64]) -> Events {
        let mut e = Events::new(4, 3);
        for (i, &t) in ts.iter().enumerate() {
            e.push((i % 4) as u16, (i % 3) as u16, t, (i % 2) as u8);
        }
        e
    }

    fn frame_sums(f: &[f32], t: usize) -> Vec<f32> {
        let per = f.len() / t;
        f.chunks(per).map(|c| c.iter().sum()).collect()
    }

    #[test]
    fn number_split_gives_equal_counts_and_remainder_to_last() {
        let e = stream(&(0..10).map(|i| i * 7).collect::<Vec<_>>());
        let f = to_frames(&e, SplitBy::Number, 3, Resize::None);
        assert_eq!(f.len(), 3 * 2 * 3 * 4);
        assert_eq!(frame_sums(&f, 3), vec![3.0, 3.0, 4.0]);
        // fewer events than frames: all in the last frame
        let f = to_frames(&stream(&[1, 2]), SplitBy::Number, 4, Resize::None);
        assert_eq!(frame_sums(&f, 4), vec![0.0, 0.0, 0.0, 2.0]);
    }

    #[test]
    fn time_split_uses_equal_windows() {
        // t0 = 100, t_last = 200, T = 4 → dt = 25: windows [100,125) [125,150) [150,175) [175,..]
        let e = stream(&[100, 110, 124, 125, 149, 150, 151, 160, 175, 200]);
        assert_eq!(
            frame_indices(&e, SplitBy::Time, 4),
            vec![0, 0, 0, 1, 1, 2, 2, 2, 3, 3]
        );
        let f = to_frames(&e, SplitBy::Time, 4, Resize::None);
        assert_eq!(frame_sums(&f, 4), vec![3.0, 2.0, 3.0, 2.0]);
        // an empty window stays empty
        let e = stream(&[0, 1, 2, 90, 99]);
        assert_eq!(frame_indices(&e, SplitBy::Time, 3), vec![0, 0, 0, 2, 2]);
        assert!(frame_indices(&Events::new(1, 1), SplitBy::Time, 3).is_empty());
    }

    /// The frames equal an integration by the per-event [`frame_indices`], for random streams
    /// (sorted and unsorted times, events outside the sensor, fewer events than frames).
    #[test]
    fn frames_equal_integration_by_frame_indices() {
        use rand::Rng;
        let mut rng = StdRng::seed_from_u64(3);
        for case in 0..200 {
            let n = rng.random_range(0..300);
            let mut e = Events::new(rng.random_range(1..9), rng.random_range(1..7));
            let mut t = rng.random_range(0..1000u64);
            for _ in 0..n {
                t = if case % 3 == 0 {
                    rng.random_range(0..5000)
                } else {
                    t + rng.random_range(0..40)
                };
                e.push(
                    rng.random_range(0..10),
                    rng.random_range(0..8),
                    t,
                    rng.random_range(0..2),
                );
            }
            for split in [SplitBy::Number, SplitBy::Time] {
                let steps = rng.random_range(1..12);
                let (h, w) = (e.height as usize, e.width as usize);
                let mut want = vec![0.0f32; steps * 2 * h * w];
                for (i, f) in frame_indices(&e, split, steps).into_iter().enumerate() {
                    let (x, y) = (e.x[i] as usize, e.y[i] as usize);
                    if x < w && y < h {
                        want[(f * 2 + usize::from(e.p[i] != 0)) * h * w + y * w + x] += 1.0;
                    }
                }
                assert_eq!(
                    to_frames(&e, split, steps, Resize::None),
                    want,
                    "{case} {split:?}"
                );
            }
        }
    }

    #[test]
    fn polarity_goes_to_its_channel_and_pixel() {
        let mut e = Events::new(3, 2);
        e.push(2, 1, 0, 0); // OFF at (y=1, x=2)
        e.push(0, 0, 1, 1); // ON at (0, 0)
        e.push(0, 0, 2, 1);
        e.push(5, 0, 3, 1); // outside the sensor: skipped
        let f = to_frames(&e, SplitBy::Number, 1, Resize::None);
        assert_eq!(f.len(), 2 * 6);
        assert_eq!(f[5], 1.0); // channel 0, index 1*3+2
        assert_eq!(f[6], 2.0); // channel 1, index 0
        assert_eq!(f.iter().sum::<f32>(), 3.0);
        assert_eq!(e.polarity_counts(), (1, 3));
    }

    #[test]
    fn resizes_keep_known_values() {
        let src: Vec<f32> = (0..16).map(|v| v as f32).collect();
        let a = resize_area(&src, 4, 4, 2, 2);
        assert_eq!(a, vec![2.5, 4.5, 10.5, 12.5]);
        let n = resize_nearest(&src, 4, 4, 2, 2);
        assert_eq!(n, vec![0.0, 2.0, 8.0, 10.0]);
        // 128 → 48 area: a constant plane stays constant, the mean is kept
        let ones = vec![1.0f32; 128 * 128];
        let r = resize_area(&ones, 128, 128, 48, 48);
        assert!(r.iter().all(|v| (v - 1.0).abs() < 1e-5));
        let ramp: Vec<f32> = (0..128 * 128).map(|i| (i % 7) as f32).collect();
        let r = resize_area(&ramp, 128, 128, 48, 48);
        let (m0, m1) = (
            ramp.iter().sum::<f32>() / ramp.len() as f32,
            r.iter().sum::<f32>() / r.len() as f32,
        );
        assert!((m0 - m1).abs() < 1e-3, "{m0} vs {m1}");
        let mut e = Events::new(4, 4);
        e.push(3, 3, 0, 1);
        let f = to_frames(
            &e,
            SplitBy::Number,
            1,
            Resize::Nearest {
                height: 2,
                width: 2,
            },
        );
        assert_eq!(f.len(), 8);
        let f = to_frames(
            &e,
            SplitBy::Number,
            1,
            Resize::Area {
                height: 2,
                width: 2,
            },
        );
        assert_eq!(f[7], 0.25);
    }

    #[test]
    fn stratified_split_is_per_class_and_seeded() {
        let labels: Vec<u32> = (0..200).map(|i| (i % 4) as u32).collect();
        let (tr, te) = stratified_split(&labels, 0.9, 7);
        assert_eq!((tr.len(), te.len()), (180, 20));
        for c in 0..4 {
            assert_eq!(te.iter().filter(|&&i| labels[i] == c).count(), 5);
        }
        let mut all: Vec<usize> = tr.iter().chain(&te).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..200).collect::<Vec<_>>());
        assert_eq!(stratified_split(&labels, 0.9, 7), (tr.clone(), te.clone()));
        assert_ne!(stratified_split(&labels, 0.9, 8).1, te);
    }
}
