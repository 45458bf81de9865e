//! Datasets: an in-memory labelled set of frames, the embedded default data, batching.
//!
//! [`source`] loads every supported dataset from its distributed files (`--data NAME:PATH`),
//! [`augment`] holds the training-time augmentation, [`cache`] the on-disk frame cache,
//! [`dvs_digits`] a procedural neuromorphic dataset made from the embedded digits.

pub mod augment;
pub mod cache;
pub mod digits;
pub mod dvs_digits;
pub mod events;
pub mod formats;
pub mod source;

use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use crate::error::DataError;
use crate::layer::Encoder;

/// What a sample is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleKind {
    /// A static image `[C, H, W]`, encoded over T at batch time.
    Static,
    /// Event frames `[T, C, H, W]` already integrated over time.
    Frames {
        /// Number of frames per sample.
        timesteps: usize,
    },
}

/// A labelled set held in memory, samples stored contiguously as f32.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Name for messages (`digits/train`, a path, ...).
    pub name: String,
    /// Static images or event frames.
    pub kind: SampleKind,
    /// Shape of one frame `[C, H, W]`.
    pub frame_shape: [usize; 3],
    /// Number of classes.
    pub num_classes: usize,
    /// All samples, row-major, `len() * sample_len()` values.
    pub values: Vec<f32>,
    /// Labels in `0..num_classes`.
    pub labels: Vec<u32>,
    /// Augmentation applied by [`Dataset::train_batch`] (set on training sets only).
    pub augment: Option<augment::AugmentConfig>,
}

/// A train/test pair.
#[derive(Debug, Clone)]
pub struct Split {
    /// Training set.
    pub train: Dataset,
    /// Held-out test set.
    pub test: Dataset,
}

/// One batch, ready for the model.
#[derive(Debug, Clone)]
pub struct Batch {
    /// Frames `[T, B, C, H, W]`.
    pub frames: Tensor<5>,
    /// Labels `[B]`.
    pub targets: Tensor<1, Int>,
}

impl Dataset {
    /// Builds a dataset, checking sizes and label range.
    pub fn new(
        name: impl Into<String>,
        kind: SampleKind,
        frame_shape: [usize; 3],
        num_classes: usize,
        values: Vec<f32>,
        labels: Vec<u32>,
    ) -> Result<Self, DataError> {
        let name = name.into();
        let d = Self {
            name,
            kind,
            frame_shape,
            num_classes,
            values,
            labels,
            augment: None,
        };
        let malformed = |location: String, what: String| DataError::Malformed {
            path: d.name.clone().into(),
            location,
            what,
        };
        if d.values.len() != d.labels.len() * d.sample_len() {
            return Err(malformed(
                "whole set".into(),
                format!(
                    "{} values for {} labels of {} values each",
                    d.values.len(),
                    d.labels.len(),
                    d.sample_len()
                ),
            ));
        }
        if let Some((i, l)) = d
            .labels
            .iter()
            .enumerate()
            .find(|(_, l)| **l as usize >= num_classes)
        {
            return Err(malformed(
                format!("sample {i}"),
                format!("label {l} out of range 0..{num_classes}"),
            ));
        }
        Ok(d)
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Values per sample.
    pub fn sample_len(&self) -> usize {
        let frame: usize = self.frame_shape.iter().product();
        match self.kind {
            SampleKind::Static => frame,
            SampleKind::Frames { timesteps } => frame * timesteps,
        }
    }

    /// Sample indices in epoch order: shuffled by `seed` and `epoch` when `shuffle`.
    pub fn order(&self, shuffle: bool, seed: u64, epoch: usize) -> Vec<usize> {
        let mut idx: Vec<usize> = (0..self.len()).collect();
        if shuffle {
            let mut rng =
                StdRng::seed_from_u64(seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            idx.shuffle(&mut rng);
        }
        idx
    }

    /// The batch made of samples `indices`, with `timesteps` frames per sample.
    ///
    /// Static samples are encoded by `encoder`; event samples must already have `timesteps`
    /// frames.
    pub fn batch(
        &self,
        indices: &[usize],
        timesteps: usize,
        encoder: Encoder,
        device: &Device,
    ) -> Batch {
        self.batch_with(indices, timesteps, encoder, device, None)
    }

    /// A training batch: as [`Dataset::batch`], then [`Dataset::augment`] (if set) applied to
    /// every sample with a generator seeded by `(seed, epoch, sample index)` — the same batch
    /// for the same arguments whatever the thread count.
    pub fn train_batch(
        &self,
        indices: &[usize],
        timesteps: usize,
        encoder: Encoder,
        device: &Device,
        seed: u64,
        epoch: usize,
    ) -> Batch {
        self.batch_with(indices, timesteps, encoder, device, Some((seed, epoch)))
    }

    fn batch_with(
        &self,
        indices: &[usize],
        timesteps: usize,
        encoder: Encoder,
        device: &Device,
        augment_seed: Option<(u64, usize)>,
    ) -> Batch {
        let n = self.sample_len();
        let mut values = Vec::with_capacity(indices.len() * n);
        for &i in indices {
            values.extend_from_slice(&self.values[i * n..(i + 1) * n]);
        }
        if let (Some(aug), Some((seed, epoch))) = (&self.augment, augment_seed) {
            use rayon::prelude::*;
            let (frames, events) = match self.kind {
                SampleKind::Static => (1, false),
                SampleKind::Frames { timesteps } => (timesteps, true),
            };
            values
                .par_chunks_mut(n.max(1))
                .zip(indices.par_iter())
                .for_each(|(v, &i)| {
                    let mut rng = augment::AugmentConfig::rng(seed, epoch, i);
                    aug.apply(v, frames, self.frame_shape, events, &mut rng);
                });
        }
        let labels: Vec<i64> = indices.iter().map(|&i| self.labels[i] as i64).collect();
        let [c, h, w] = self.frame_shape;
        let b = indices.len();
        let frames = match self.kind {
            SampleKind::Static => {
                let x = Tensor::<4>::from_data(TensorData::new(values, [b, c, h, w]), device);
                encoder.encode::<4, 5>(x, timesteps)
            }
            SampleKind::Frames { timesteps: t } => {
                assert_eq!(
                    t, timesteps,
                    "event samples carry {t} frames, model asked for {timesteps}"
                );
                Tensor::<5>::from_data(TensorData::new(values, [b, t, c, h, w]), device)
                    .swap_dims(0, 1)
            }
        };
        let targets = Tensor::<1, Int>::from_data(TensorData::new(labels, [b]), device);
        Batch { frames, targets }
    }
}
