//! The event pipeline shared by the event sources: how each recording format is read, the
//! integration settings, and the (cached, parallel, optionally streamed) integration of
//! recordings into `[T, 2, H, W]` frame sets.

use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::DataConfig;
use crate::cache::FrameCache;
use crate::error::{ConfigError, DataError};
use crate::events::{Events, Resize, SplitBy, to_frames};
use crate::formats::{aedat2, aedat3, nmnist, path_name, prophesee_dat, read_file, recording};
use crate::stream::{Decoder, LazyItem, LazySamples};
use crate::{Dataset, SampleKind};

/// How a recording is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventFormat {
    /// N-MNIST 40-bit `.bin` / `.bs2`, 34 × 34.
    Nmnist,
    /// N-Caltech101 40-bit `.bin`, 240 × 180.
    NCaltech101,
    /// CIFAR10-DVS AEDAT 2.0, 128 × 128.
    Cifar10Dvs,
    /// DVS128 Gesture AEDAT 3.1, 128 × 128.
    DvsGesture,
    /// N-CARS Prophesee DAT, 120 × 100 (tonic's sensor size; events beyond are skipped).
    NCars,
    /// ST-MNIST MAT-files (`spiketrain`), 10 × 10 taxels.
    StMnist,
    /// Any recording format, sniffed per file ([`crate::formats::recording`]), on a
    /// `width` × `height` sensor (events beyond are skipped), `classes` classes: `events:`.
    Any {
        /// Sensor width.
        width: u16,
        /// Sensor height.
        height: u16,
        /// Number of classes.
        classes: u32,
    },
}

impl EventFormat {
    /// Sensor `(width, height)`.
    pub fn sensor(self) -> (u16, u16) {
        match self {
            EventFormat::Nmnist => (34, 34),
            EventFormat::NCaltech101 => (240, 180),
            EventFormat::Cifar10Dvs | EventFormat::DvsGesture => (128, 128),
            EventFormat::NCars => (120, 100),
            EventFormat::StMnist => (10, 10),
            EventFormat::Any { width, height, .. } => (width, height),
        }
    }

    pub(super) fn extensions(self) -> &'static [&'static str] {
        match self {
            EventFormat::Nmnist | EventFormat::NCaltech101 => &["bin", "bs2"],
            EventFormat::Cifar10Dvs | EventFormat::DvsGesture => &["aedat"],
            EventFormat::NCars => &["dat"],
            EventFormat::StMnist => &["mat"],
            EventFormat::Any { .. } => crate::formats::recording::RecordingKind::EXTENSIONS,
        }
    }

    pub(super) fn num_classes(self) -> usize {
        match self {
            EventFormat::Nmnist | EventFormat::Cifar10Dvs => 10,
            EventFormat::NCaltech101 => 101,
            EventFormat::DvsGesture => 11,
            EventFormat::NCars => 2,
            EventFormat::StMnist => 10,
            EventFormat::Any { classes, .. } => classes as usize,
        }
    }

    /// Frame shape `[2, H, W]` of this sensor's frames after `resize`.
    pub fn frame_shape(self, resize: Resize) -> [usize; 3] {
        let (w, h) = self.sensor();
        match resize {
            Resize::None => [2, h as usize, w as usize],
            Resize::Area { height, width } | Resize::Nearest { height, width } => {
                [2, height, width]
            }
        }
    }

    /// Parses one recording.
    pub fn read(self, path: &Path) -> Result<Events, DataError> {
        let (w, h) = self.sensor();
        let bytes = read_file(path)?;
        let name = path_name(path);
        match self {
            EventFormat::Nmnist => nmnist::parse_bin40(&bytes, &name, w, h),
            EventFormat::NCaltech101 => Ok(nmnist::parse_ncaltech101(&bytes, &name, w, h)?.0),
            EventFormat::Cifar10Dvs => {
                Ok(aedat2::parse_aedat2(&bytes, &name)?.events(aedat2::Layout::Cifar10Dvs))
            }
            EventFormat::DvsGesture => Ok(aedat3::parse_aedat3(&bytes, &name, w, h)?.events),
            EventFormat::NCars => {
                let mut e = prophesee_dat::parse_dat(&bytes, &name)?.events;
                (e.width, e.height) = (w, h);
                Ok(e)
            }
            EventFormat::StMnist | EventFormat::Any { .. } => {
                let mut e = recording::parse_recording(&bytes, &name)?.events;
                (e.width, e.height) = (w, h);
                Ok(e)
            }
        }
    }
}

/// Integration settings shared by every sample of a load.
#[derive(Debug, Clone)]
pub struct Integration {
    /// Frames per sample.
    pub timesteps: usize,
    /// How events are cut into frames.
    pub split_by: SplitBy,
    /// Optional resize.
    pub resize: Resize,
    /// Where frames are cached.
    pub cache: FrameCache,
}

impl Integration {
    /// From a data configuration.
    pub fn from_config(c: &DataConfig, timesteps: usize) -> Result<Self, ConfigError> {
        Ok(Self {
            timesteps,
            split_by: c.split_by()?,
            resize: c.frame_resize()?,
            cache: c.frame_cache(),
        })
    }

    /// Frame shape `[2, H, W]` for a `format` sensor.
    pub fn frame_shape(&self, format: EventFormat) -> [usize; 3] {
        format.frame_shape(self.resize)
    }

    fn params(&self, format: EventFormat, seg: Option<&aedat3::Segment>) -> String {
        format!(
            "{format:?}|T={}|{:?}|{:?}|seg={:?}",
            self.timesteps, self.split_by, self.resize, seg
        )
    }
}

/// One recording to load: its path and its samples (a label, and for DVS128 Gesture the
/// labelled time segment).
#[derive(Debug, Clone)]
pub struct EventFile {
    /// The recording.
    pub path: PathBuf,
    /// `(label, segment)` per sample taken from it, in order.
    pub samples: Vec<(u32, Option<aedat3::Segment>)>,
}

/// The frames of the samples `segments` of one recording (a `None` segment = the whole
/// recording), each through the cache; the file is parsed at most once, and only on a miss.
pub fn integrate_samples(
    path: &Path,
    segments: &[Option<aedat3::Segment>],
    format: EventFormat,
    integ: &Integration,
) -> Result<Vec<Vec<f32>>, DataError> {
    let shape = integ.frame_shape(format);
    let per = integ.timesteps * shape.iter().product::<usize>();
    let mut parsed: Option<Events> = None;
    let mut out = Vec::with_capacity(segments.len());
    for seg in segments {
        let frames = integ.cache.get_or_build(
            path,
            &integ.params(format, seg.as_ref()),
            per,
            || -> Result<Vec<f32>, DataError> {
                if parsed.is_none() {
                    parsed = Some(format.read(path)?);
                }
                let all = parsed.as_ref().expect("parsed above");
                let ev = match seg {
                    Some(s) => &aedat3::segment(all, s),
                    None => all,
                };
                if ev.is_empty() {
                    return Err(empty_recording(path, seg.as_ref()));
                }
                Ok(to_frames(ev, integ.split_by, integ.timesteps, integ.resize))
            },
        )?;
        out.push(frames);
    }
    Ok(out)
}

/// A recording (or a labelled segment of one) without events: an error naming it, never a
/// blank sample trained on silently.
fn empty_recording(path: &Path, seg: Option<&aedat3::Segment>) -> DataError {
    let (location, what) = match seg {
        Some(s) => (
            format!("segment {}..{} µs", s.start, s.end),
            "the labelled segment holds no events",
        ),
        None => (
            "whole file".to_string(),
            "empty recording: no events (remove the file or restore it from the original data)",
        ),
    };
    DataError::Malformed {
        path: path.to_path_buf(),
        location,
        what: what.into(),
    }
}

/// Integrates every sample of `files` (in parallel, through the cache) into a dataset.
pub fn event_dataset(
    name: String,
    files: &[EventFile],
    format: EventFormat,
    integ: &Integration,
) -> Result<Dataset, DataError> {
    let shape = integ.frame_shape(format);
    let per_file = files
        .par_iter()
        .map(|f| -> Result<Vec<f32>, DataError> {
            let segs: Vec<_> = f.samples.iter().map(|(_, s)| *s).collect();
            Ok(integrate_samples(&f.path, &segs, format, integ)?.concat())
        })
        .collect::<Result<Vec<_>, _>>()?;
    let labels = files
        .iter()
        .flat_map(|f| f.samples.iter().map(|(l, _)| *l))
        .collect();
    Dataset::new(
        name,
        SampleKind::Frames {
            timesteps: integ.timesteps,
        },
        shape,
        format.num_classes(),
        per_file.concat(),
        labels,
    )
}

/// [`event_dataset`], or when the configuration streams a set of this size, a lazy set: every
/// sample is integrated once now (in parallel, one recording in memory per thread) into the
/// frame cache — which also reports a bad file at load time — and read back batch by batch.
pub(super) fn event_set(
    name: String,
    files: &[EventFile],
    format: EventFormat,
    integ: &Integration,
    c: &DataConfig,
) -> Result<Dataset, DataError> {
    let shape = integ.frame_shape(format);
    let per = integ.timesteps * shape.iter().product::<usize>();
    let n: usize = files.iter().map(|f| f.samples.len()).sum();
    if !c.streams(n, per) {
        return event_dataset(name, files, format, integ);
    }
    files
        .par_iter()
        .try_for_each(|f| -> Result<(), DataError> {
            let segs: Vec<_> = f.samples.iter().map(|(_, s)| *s).collect();
            integrate_samples(&f.path, &segs, format, integ).map(drop)
        })?;
    let items = files
        .iter()
        .flat_map(|f| {
            f.samples.iter().map(|(_, seg)| LazyItem {
                path: f.path.clone(),
                segment: *seg,
            })
        })
        .collect();
    let labels = files
        .iter()
        .flat_map(|f| f.samples.iter().map(|(l, _)| *l))
        .collect();
    let lazy = LazySamples::new(
        items,
        Decoder::Events {
            format,
            integration: integ.clone(),
        },
        shape,
        c.threads,
        c.prefetch,
    );
    Dataset::lazy(
        name,
        SampleKind::Frames {
            timesteps: integ.timesteps,
        },
        shape,
        format.num_classes(),
        lazy,
        labels,
    )
}

pub(super) fn single(items: Vec<(PathBuf, u32)>, limit: usize) -> Vec<EventFile> {
    let n = if limit > 0 { limit } else { usize::MAX };
    items
        .into_iter()
        .take(n)
        .map(|(path, l)| EventFile {
            path,
            samples: vec![(l, None)],
        })
        .collect()
}
