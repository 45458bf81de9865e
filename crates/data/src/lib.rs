//! Datasets: an in-memory labelled set of frames, the embedded default data, batching.
//!
//! [`source`] loads every supported dataset from its distributed files (`--data NAME:PATH`),
//! [`augment`] holds the training-time augmentation, [`cache`] the on-disk frame cache,
//! [`dvs_digits`] a procedural neuromorphic dataset made from the embedded digits,
//! [`stream`] the lazily decoded storage of sets too large for memory (ImageNet-sized image
//! folders, full-resolution event sets) and the background prefetch of batches.
//!
//! A [`Dataset`] keeps its labels in memory and its samples either in memory
//! ([`Storage::InMemory`], `values`) or on disk ([`Storage::Lazy`]: file paths, decoded batch by
//! batch). The same methods serve both: [`Dataset::batch`], [`Dataset::train_batch`],
//! [`Dataset::batches`] (an iterator that decodes lazy sets on a background thread, a bounded
//! number of batches ahead).

pub mod augment;
pub mod autoaugment;
pub mod cache;
pub mod digits;
pub mod dvs_digits;
pub mod error;
pub mod events;
pub mod formats;
pub mod holdout;
pub mod source;
pub mod stream;

use std::sync::Arc;

use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use crate::error::DataError;
use tks_core::layer::Encoder;

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

impl SampleKind {
    /// Frames per sample of event data; `None` for static images.
    pub fn frames(self) -> Option<usize> {
        match self {
            SampleKind::Frames { timesteps } => Some(timesteps),
            SampleKind::Static => None,
        }
    }
}

/// Where the samples of a [`Dataset`] live.
#[derive(Debug, Clone, Default)]
pub enum Storage {
    /// In [`Dataset::values`].
    #[default]
    InMemory,
    /// On disk, decoded on demand ([`Dataset::values`] is empty).
    Lazy(Arc<stream::LazySamples>),
}

/// A labelled set: labels in memory, samples in memory (contiguous f32) or decoded lazily.
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
    /// All samples, row-major, `len() * sample_len()` values (empty for a lazy set).
    pub values: Vec<f32>,
    /// Where the samples live.
    pub storage: Storage,
    /// Labels in `0..num_classes`.
    pub labels: Vec<u32>,
    /// Augmentation applied by [`Dataset::train_batch`] (set on training sets only).
    pub augment: Option<augment::AugmentConfig>,
}

/// A train/test pair, with the validation set carved from the training data when the run has
/// one (`[data] val_ratio`, see [`holdout`]).
#[derive(Debug, Clone)]
pub struct Split {
    /// Training set.
    pub train: Dataset,
    /// Validation set (model selection), disjoint from `train`; `None` without one.
    pub val: Option<Dataset>,
    /// The training recordings (the same samples, in the same order as `train`) integrated into
    /// a longer window of frames, for an objective whose teacher runs longer than the student
    /// (TSSD on event data); `None` otherwise.
    pub train_long: Option<Dataset>,
    /// Held-out test set.
    pub test: Dataset,
}

impl Split {
    /// A train/test pair without a validation set.
    pub fn new(train: Dataset, test: Dataset) -> Split {
        Split {
            train,
            val: None,
            train_long: None,
            test,
        }
    }
}

/// The samples of one batch as host values (decoded, augmented), before they become tensors.
#[derive(Debug, Clone)]
pub struct HostBatch {
    /// `B * sample_len` values.
    pub values: Vec<f32>,
    /// Labels `[B]`.
    pub labels: Vec<u32>,
    /// Sample kind of the set.
    pub kind: SampleKind,
    /// Frame shape `[C, H, W]`.
    pub frame_shape: [usize; 3],
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
            storage: Storage::InMemory,
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

    /// A lazily decoded set: `samples` decodes sample `i` on demand; sizes and labels are
    /// checked here.
    pub fn lazy(
        name: impl Into<String>,
        kind: SampleKind,
        frame_shape: [usize; 3],
        num_classes: usize,
        samples: stream::LazySamples,
        labels: Vec<u32>,
    ) -> Result<Self, DataError> {
        let name = name.into();
        if samples.len() != labels.len() {
            return Err(DataError::Malformed {
                path: name.into(),
                location: "whole set".into(),
                what: format!("{} samples for {} labels", samples.len(), labels.len()),
            });
        }
        // the label check of `new`, on a set of no values
        let mut d = Self::new(name, kind, frame_shape, num_classes, Vec::new(), Vec::new())?;
        if let Some((i, l)) = labels
            .iter()
            .enumerate()
            .find(|(_, l)| **l as usize >= num_classes)
        {
            return Err(DataError::Malformed {
                path: d.name.into(),
                location: format!("sample {i}"),
                what: format!("label {l} out of range 0..{num_classes}"),
            });
        }
        d.labels = labels;
        d.storage = Storage::Lazy(Arc::new(samples));
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
    /// frames. A lazy (streamed) set whose file changed or vanished since it was loaded gives the
    /// decoding error naming the file.
    pub fn batch(
        &self,
        indices: &[usize],
        timesteps: usize,
        encoder: Encoder,
        device: &Device,
    ) -> Result<Batch, DataError> {
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
    ) -> Result<Batch, DataError> {
        self.batch_with(indices, timesteps, encoder, device, Some((seed, epoch)))
    }

    fn batch_with(
        &self,
        indices: &[usize],
        timesteps: usize,
        encoder: Encoder,
        device: &Device,
        augment_seed: Option<(u64, usize)>,
    ) -> Result<Batch, DataError> {
        Ok(self
            .host_batch(indices, augment_seed)?
            .to_batch(timesteps, encoder, device))
    }

    /// Whether the samples are decoded on demand.
    pub fn is_lazy(&self) -> bool {
        matches!(self.storage, Storage::Lazy(_))
    }

    /// The values of samples `indices`, concatenated (decoded in parallel for a lazy set).
    pub fn sample_values(&self, indices: &[usize]) -> Result<Vec<f32>, DataError> {
        let n = self.sample_len();
        match &self.storage {
            Storage::InMemory => {
                let mut values = Vec::with_capacity(indices.len() * n);
                for &i in indices {
                    values.extend_from_slice(&self.values[i * n..(i + 1) * n]);
                }
                Ok(values)
            }
            Storage::Lazy(lazy) => lazy.decode_many(indices, n),
        }
    }

    /// The samples `indices` as host values, augmented (if set and `augment_seed` is given)
    /// with a generator seeded by `(seed, epoch, sample index)`.
    pub fn host_batch(
        &self,
        indices: &[usize],
        augment_seed: Option<(u64, usize)>,
    ) -> Result<HostBatch, DataError> {
        let n = self.sample_len();
        let mut values = self.sample_values(indices)?;
        if let (Some(aug), Some((seed, epoch))) = (&self.augment, augment_seed) {
            use rayon::prelude::*;
            let (frames, events) = match self.kind {
                SampleKind::Static => (1, false),
                SampleKind::Frames { timesteps } => (timesteps, true),
            };
            let slice: &mut [f32] = &mut values;
            let mut run = move || {
                slice
                    .par_chunks_mut(n.max(1))
                    .zip(indices.par_iter())
                    .for_each(|(v, &i)| {
                        let mut rng = augment::AugmentConfig::rng(seed, epoch, i);
                        aug.apply(v, frames, self.frame_shape, events, &mut rng);
                    })
            };
            match &self.storage {
                Storage::Lazy(lazy) => lazy.install(run),
                Storage::InMemory => run(),
            }
        }
        Ok(HostBatch {
            values,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            kind: self.kind,
            frame_shape: self.frame_shape,
        })
    }

    /// The batches of `order` cut into `batch_size` chunks, in order, as host values (augmented
    /// when `augment_seed` is given). A lazy set is decoded on a background thread that stays
    /// at most its `prefetch` batches ahead, so loading overlaps training; an in-memory set is
    /// gathered on demand. The content never depends on thread count or prefetch depth.
    pub fn batches(
        &self,
        order: &[usize],
        batch_size: usize,
        augment_seed: Option<(u64, usize)>,
    ) -> stream::Batches<'_> {
        stream::Batches::new(self, order, batch_size.max(1), augment_seed)
    }
}

impl HostBatch {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The tensors: static samples are encoded over `timesteps` by `encoder`; event samples must
    /// carry at least `timesteps` frames, of which the first `timesteps` are kept (the *truncate*
    /// reading of a shorter T: lower latency, the same frame statistics).
    pub fn to_batch(&self, timesteps: usize, encoder: Encoder, device: &Device) -> Batch {
        let labels: Vec<i64> = self.labels.iter().map(|&l| l as i64).collect();
        let [c, h, w] = self.frame_shape;
        let b = self.labels.len();
        let values = self.values.clone();
        let frames = match self.kind {
            SampleKind::Static => {
                let x = Tensor::<4>::from_data(TensorData::new(values, [b, c, h, w]), device);
                encoder.encode::<4, 5>(x, timesteps)
            }
            SampleKind::Frames { timesteps: t } => {
                assert!(
                    t >= timesteps,
                    "event samples carry {t} frames, model asked for {timesteps}"
                );
                let x = Tensor::<5>::from_data(TensorData::new(values, [b, t, c, h, w]), device)
                    .swap_dims(0, 1);
                if timesteps < t {
                    x.narrow(0, 0, timesteps)
                } else {
                    x
                }
            }
        };
        let targets = Tensor::<1, Int>::from_data(TensorData::new(labels, [b]), device);
        Batch { frames, targets }
    }
}
