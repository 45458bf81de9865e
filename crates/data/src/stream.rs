//! Bounded-memory datasets: samples kept as file paths and decoded batch by batch, and the
//! batch iterator that prefetches them on a background thread.
//!
//! A [`LazySamples`] holds, per sample, a file (and for DVS128 Gesture its labelled segment)
//! and how to decode it: an image decoded, resized and centre-cropped, or a recording
//! integrated into frames through the on-disk [`FrameCache`](super::cache::FrameCache) (filled
//! when the set is loaded, so an epoch reads one cache file per sample). The source chooses
//! this storage above `[data] stream_above_mb` of f32 values per split, or always with
//! `[data] stream = true`.
//!
//! [`Batches`] yields the batches of an epoch in order. For a lazy set a producer thread
//! decodes each batch with rayon (on the `[data] threads` pool when set) and sends it through
//! a channel bounded to `prefetch` batches, so at most `prefetch + 2` batches are alive at
//! once and decoding overlaps training. Every sample is decoded by a pure function of its
//! file and augmented by a generator seeded by `(seed, epoch, index)`, so the content and the
//! order do not depend on thread count or prefetch depth.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, sync_channel};
use std::thread::JoinHandle;

use rayon::prelude::*;

use super::formats::aedat3::Segment;
use super::source::{EventFormat, Integration, decode_image, integrate_samples};
use super::{Dataset, HostBatch, Storage};
use crate::error::DataError;

/// How the samples of a lazy set are decoded.
#[derive(Debug, Clone)]
pub enum Decoder {
    /// An image file: shorter side resized to `size`, centre-cropped `size × size`, `[3, size,
    /// size]` in `[0, 1]` (as [`decode_image`]).
    Image {
        /// Output side.
        size: usize,
    },
    /// An event recording integrated into frames (through the frame cache).
    Events {
        /// The recording format.
        format: EventFormat,
        /// Frames, `split_by`, resize, cache.
        integration: Integration,
    },
}

/// One sample of a lazy set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LazyItem {
    /// The file.
    pub path: PathBuf,
    /// The labelled segment of the recording (DVS128 Gesture), else the whole file.
    pub segment: Option<Segment>,
}

/// The samples of a lazily decoded set.
#[derive(Debug, Clone)]
pub struct LazySamples {
    items: Vec<LazyItem>,
    decoder: Decoder,
    frame_shape: [usize; 3],
    normalize: Option<(Vec<f32>, Vec<f32>)>,
    pool: Option<Arc<rayon::ThreadPool>>,
    prefetch: usize,
}

impl LazySamples {
    /// Samples `items`, decoded by `decoder` into frames of `frame_shape`; decoding runs on a
    /// pool of `threads` threads (0 = rayon's global pool), `prefetch` batches ahead.
    pub fn new(
        items: Vec<LazyItem>,
        decoder: Decoder,
        frame_shape: [usize; 3],
        threads: usize,
        prefetch: usize,
    ) -> Self {
        let pool = (threads > 0)
            .then(|| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .ok()
            })
            .flatten()
            .map(Arc::new);
        Self {
            items,
            decoder,
            frame_shape,
            normalize: None,
            pool,
            prefetch,
        }
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The samples' files.
    pub fn items(&self) -> &[LazyItem] {
        &self.items
    }

    /// The samples `indices` (in that order), with the same decoder and settings.
    pub fn subset(&self, indices: &[usize]) -> Self {
        Self {
            items: indices.iter().map(|&i| self.items[i].clone()).collect(),
            ..self.clone()
        }
    }

    /// Batches decoded ahead by [`Batches`] (0 = decode on demand, no thread).
    pub fn prefetch(&self) -> usize {
        self.prefetch
    }

    /// Sets the prefetch depth.
    pub fn set_prefetch(&mut self, prefetch: usize) {
        self.prefetch = prefetch;
    }

    /// Per-channel `(mean, std)` applied to every decoded sample.
    pub fn set_normalization(&mut self, mean: Vec<f32>, std: Vec<f32>) {
        self.normalize = Some((mean, std));
    }

    /// Runs `f` on the decoding pool.
    pub fn install<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        match &self.pool {
            Some(p) => p.install(f),
            None => f(),
        }
    }

    /// Decodes sample `i` (values of one sample, normalised if set).
    pub fn decode(&self, i: usize) -> Result<Vec<f32>, DataError> {
        let item = self.items.get(i).ok_or_else(|| DataError::Malformed {
            path: PathBuf::from("lazy dataset"),
            location: format!("sample {i}"),
            what: format!("index out of range 0..{}", self.items.len()),
        })?;
        let mut v = match &self.decoder {
            Decoder::Image { size } => decode_image(&item.path, *size)?,
            Decoder::Events {
                format,
                integration,
            } => integrate_samples(&item.path, &[item.segment], *format, integration)?
                .pop()
                .unwrap_or_default(),
        };
        if let Some((mean, std)) = &self.normalize {
            let [c, h, w] = self.frame_shape;
            if c == mean.len() && h * w > 0 {
                for (k, x) in v.iter_mut().enumerate() {
                    let ch = (k / (h * w)) % c;
                    *x = (*x - mean[ch]) / std[ch];
                }
            }
        }
        Ok(v)
    }

    /// Decodes `indices` in parallel and concatenates them; `per` values each.
    pub fn decode_many(&self, indices: &[usize], per: usize) -> Result<Vec<f32>, DataError> {
        let parts = self.install(|| {
            indices
                .par_iter()
                .map(|&i| self.decode(i))
                .collect::<Result<Vec<_>, _>>()
        })?;
        let mut out = Vec::with_capacity(indices.len() * per);
        for (p, &i) in parts.into_iter().zip(indices) {
            if p.len() != per {
                return Err(DataError::Malformed {
                    path: self.items[i].path.clone(),
                    location: format!("sample {i}"),
                    what: format!("decoded {} values, expected {per}", p.len()),
                });
            }
            out.extend(p);
        }
        Ok(out)
    }
}

/// The batches of one pass over a dataset, in order (see [`Dataset::batches`]).
pub struct Batches<'a> {
    inner: Inner<'a>,
}

enum Inner<'a> {
    /// Gathered on the caller's thread.
    OnDemand {
        data: &'a Dataset,
        chunks: std::vec::IntoIter<Vec<usize>>,
        augment_seed: Option<(u64, usize)>,
    },
    /// Decoded by a producer thread, a bounded number of batches ahead.
    Prefetch {
        rx: Option<Receiver<Result<HostBatch, DataError>>>,
        handle: Option<JoinHandle<()>>,
    },
}

impl<'a> Batches<'a> {
    pub(super) fn new(
        data: &'a Dataset,
        order: &[usize],
        batch_size: usize,
        augment_seed: Option<(u64, usize)>,
    ) -> Self {
        let chunks: Vec<Vec<usize>> = order.chunks(batch_size).map(<[usize]>::to_vec).collect();
        let depth = match &data.storage {
            Storage::Lazy(l) => l.prefetch(),
            Storage::InMemory => 0,
        };
        if depth == 0 {
            return Self {
                inner: Inner::OnDemand {
                    data,
                    chunks: chunks.into_iter(),
                    augment_seed,
                },
            };
        }
        // A lazy set's clone is its labels and an `Arc`: cheap.
        let owned = data.clone();
        let (tx, rx) = sync_channel(depth);
        let handle = std::thread::Builder::new()
            .name("tks-prefetch".into())
            .spawn(move || {
                for chunk in chunks {
                    let r = owned.host_batch(&chunk, augment_seed);
                    let failed = r.is_err();
                    // a closed channel means the consumer stopped early
                    if tx.send(r).is_err() || failed {
                        break;
                    }
                }
            });
        match handle {
            Ok(h) => Self {
                inner: Inner::Prefetch {
                    rx: Some(rx),
                    handle: Some(h),
                },
            },
            // no thread available: decode on demand instead
            Err(_) => Self {
                inner: Inner::OnDemand {
                    data,
                    chunks: order
                        .chunks(batch_size)
                        .map(<[usize]>::to_vec)
                        .collect::<Vec<_>>()
                        .into_iter(),
                    augment_seed,
                },
            },
        }
    }

    /// Whether batches are decoded on a background thread.
    pub fn is_prefetching(&self) -> bool {
        matches!(self.inner, Inner::Prefetch { .. })
    }
}

impl Iterator for Batches<'_> {
    type Item = Result<HostBatch, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.inner {
            Inner::OnDemand {
                data,
                chunks,
                augment_seed,
            } => chunks.next().map(|c| data.host_batch(&c, *augment_seed)),
            Inner::Prefetch { rx, .. } => rx.as_ref()?.recv().ok(),
        }
    }
}

impl Drop for Batches<'_> {
    fn drop(&mut self) {
        if let Inner::Prefetch { rx, handle } = &mut self.inner {
            // closing the channel wakes a producer blocked on a full channel
            drop(rx.take());
            if let Some(h) = handle.take() {
                let _ = h.join();
            }
        }
    }
}
