//! Data sources selected by name — `tks train --data NAME:PATH` or `[data] source = "NAME:PATH"` —
//! loaded from the files as their authors distribute them.
//!
//! | name | path holds | split |
//! |---|---|---|
//! | `digits` | (embedded UCI 8×8 digits) | fixed |
//! | `dvsdigits` | (embedded: the digits moving on a simulated 16×16 DVS, [`super::dvs_digits`]) | fixed |
//! | `mnist:`, `fashion:`, `kmnist:` | the 4 IDX files (`train-images-idx3-ubyte[.gz]`, …) | official |
//! | `cifar10:` | `data_batch_{1..5}.bin`, `test_batch.bin` (or their `cifar-10-batches-bin/`) | official |
//! | `cifar100:` | `train.bin`, `test.bin` (or `cifar-100-binary/`), fine labels | official |
//! | `folder:` | `train/<class>/*.{jpg,png}` + `val/` or `test/`; or CUB-200-2011 lists; or Stanford Dogs `train_list.{mat,txt}`/`test_list.{mat,txt}` + `Images/`; or Stanford Cars `devkit/cars_train_annos.mat` + `cars_test_annos_withlabels.mat` (or `cars_annos.mat`, or `anno_train.csv`/`anno_test.csv`) + `cars_train/`, `cars_test/`; or `<class>/*` | official / lists / seeded 9:1 |
//! | `nmnist:` | `train1K.txt` + `test100.txt` + `<id>.bs2` (SLAYER's NMNISTsmall), or `Train/<digit>/*.bin` + `Test/…` | official |
//! | `cifar10dvs:` | `<class>/*.aedat` (AEDAT 2.0) | seeded per-class 9:1 |
//! | `ncaltech101:` | `<class>/*.bin` (40-bit ATIS, shifted to the origin as tonic does, 240×180; events beyond are skipped) | seeded per-class 9:1 |
//! | `dvsgesture:` | `*.aedat` (AEDAT 3.1) + `*_labels.csv`, `trials_to_train.txt` / `trials_to_test.txt` | official (users 1–23 train without the lists) |
//! | `ncars:` | `train/{background,cars}/*.dat` + `test/…` (or `n-cars_train/`, `n-cars_test/`; Prophesee DAT, 120×100) | official |
//! | `stmnist:` | `<digit>/*.mat` (or `data_submission/<digit>/`; `spiketrain` arrays, 10×10 taxels), or `train/` + `test/` | seeded per-class 9:1 / official |
//! | `events:` | `<class>/<recording>` or `train/<class>/…` + `test/<class>/…`, recordings in any supported format (AEDAT 2/3/4, Prophesee DAT, 40-bit `.bin`, `.npy`/`.npz`, ST-MNIST MAT; sniffed per file), sensor from the headers or the largest coordinates | seeded per-class 9:1 / official |
//!
//! Event sources give `[T, 2, H, W]` frames (T = `train.timesteps`), integrated by
//! [`to_frames`](crate::events::to_frames) with `split_by`, optionally resized (`resize = 48` for TET's CIFAR10-DVS),
//! cached on disk by [`FrameCache`]. Files are decoded in parallel with rayon; the order of
//! samples never depends on the thread count.
//!
//! Image folders and event sources too large for memory are streamed ([`super::stream`]):
//! with `stream = true`, or when a split's f32 values would exceed `stream_above_mb` (4 GiB by
//! default), the set keeps file paths and labels only, checks every file at load (image
//! headers; event recordings integrated once into the frame cache), and decodes each batch
//! on demand, `prefetch` batches ahead on a background thread.
//!
//! Layout: this file holds the `[data]` table, [`load`] and the shape checks; [`registry`] the
//! table of sources (name → loader, with what each gives); one file per family holds its
//! loader — `mnist` (IDX), `cifar`, `folder` and `fine_grained` (image folders), `nmnist`,
//! `dvs_folders` (CIFAR10-DVS, N-Caltech101), `gesture` (DVS128 Gesture), `ncars`, `stmnist`,
//! `events_dir` (the generic `events:`), `embedded` — on the
//! shared `event_sets` pipeline and `files` helpers. To add a source, see [`registry`].

mod cifar;
mod dvs_folders;
mod embedded;
mod event_sets;
mod events_dir;
mod files;
mod fine_grained;
mod folder;
mod gesture;
mod mnist;
mod ncars;
mod nmnist;
pub mod registry;
mod stmnist;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use event_sets::{EventFile, EventFormat, Integration, event_dataset, integrate_samples};
pub use events_dir::folder_sensor;
pub use folder::decode_image;
pub use registry::{Loader, REGISTRY, SOURCE_NAMES, Source, SourceEntry};

use crate::augment::AugmentConfig;
use crate::cache::{FrameCache, default_dir};
use crate::error::{ConfigError, DataError, check_range};
use crate::events::{Resize, SplitBy};
use crate::{Dataset, Split, Storage};

/// The `[data]` table of a run configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataConfig {
    /// `NAME` or `NAME:PATH` (see the module docs); `digits` is the embedded default.
    pub source: String,
    /// Event integration: `number` (equal event counts) or `time` (equal windows).
    pub split_by: String,
    /// Event sources: resize frames to `resize × resize` (0 = sensor size).
    pub resize: usize,
    /// Event resize method: `area` (count-averaging) or `nearest`.
    pub resize_mode: String,
    /// `folder:` images: shorter side resized to this, then centre-cropped square.
    pub image_size: usize,
    /// Train share of seeded splits (CIFAR10-DVS, N-Caltech101, class-folder images).
    pub split_ratio: f64,
    /// Seed of those splits (independent of the training seed, so the test set stays fixed).
    pub split_seed: u64,
    /// Static sources: subtract the per-dataset channel mean and divide by the std.
    pub normalize: bool,
    /// Cache integrated event frames on disk.
    pub cache: bool,
    /// Cache directory (the binary fills in `$XDG_CACHE_HOME/tks/frames`, else
    /// `$HOME/.cache/tks/frames`; a library caller that leaves it unset gets a temporary directory).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_dir: Option<PathBuf>,
    /// Decoding threads (0 = rayon's default, one per core).
    pub threads: usize,
    /// Keep at most this many samples per split, first ones in order (0 = all).
    pub limit: usize,
    /// Keep at most this many training samples, first ones in order (0 = all; after `limit`
    /// and the cross-validation fold, before the validation split). The test set stays whole.
    pub train_limit: usize,
    /// Share of the training samples held out as a class-stratified validation set, seeded by
    /// `split_seed` (default 0.1). `best.safetensors` is the epoch with the best validation
    /// accuracy; with 0 there is no validation set and no selection (the test set is never used
    /// to choose a model).
    pub val_ratio: f64,
    /// k-fold cross-validation over the pooled train and test sets (0 = the source's own split):
    /// fold `fold` is the test set, the other `folds − 1` train (stratified, seeded by
    /// `split_seed`).
    pub folds: usize,
    /// Which fold is the test set (`0..folds`).
    pub fold: usize,
    /// Keep samples on disk and decode them batch by batch (bounded memory): `true` always,
    /// `false` never, unset = when a split's f32 values would exceed `stream_above_mb`.
    /// Applies to image folders and event sources (IDX and CIFAR are always in memory); a
    /// streamed event set reads its frames from the cache, so with `cache = false` it re-parses
    /// its recordings every epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// Size in MiB of a split's f32 values above which it is streamed (when `stream` is unset).
    pub stream_above_mb: usize,
    /// Batches a streamed set decodes ahead on a background thread (0 = decode on demand).
    pub prefetch: usize,
    /// Training-set augmentation (`[data.augment]`).
    pub augment: AugmentConfig,
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            source: "digits".into(),
            split_by: "number".into(),
            resize: 0,
            resize_mode: "area".into(),
            image_size: 224,
            split_ratio: 0.9,
            split_seed: 0,
            normalize: false,
            cache: true,
            cache_dir: None,
            threads: 0,
            limit: 0,
            train_limit: 0,
            val_ratio: 0.1,
            folds: 0,
            fold: 0,
            stream: None,
            stream_above_mb: 4096,
            prefetch: 2,
            augment: AugmentConfig::default(),
        }
    }
}

impl DataConfig {
    /// Checks every field, naming the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        Source::parse(&self.source)?;
        self.split_by()?;
        self.frame_resize()?;
        check_range("data.split_ratio", self.split_ratio, 0.0, 1.0)?;
        check_range("data.val_ratio", self.val_ratio, 0.0, 0.9)?;
        if self.folds == 1 {
            return Err(ConfigError::invalid(
                "data.folds",
                1,
                "must be 0 (the source's own split) or at least 2",
            ));
        }
        if self.folds > 0 && self.fold >= self.folds {
            return Err(ConfigError::invalid(
                "data.fold",
                self.fold,
                &format!("must be below data.folds = {}", self.folds),
            ));
        }
        if self.image_size == 0 {
            return Err(ConfigError::invalid(
                "data.image_size",
                0,
                "must be at least 1",
            ));
        }
        self.augment.validate()?;
        if self.is_events() && !self.augment.policy.is_empty() {
            return Err(ConfigError::invalid(
                "data.augment.policy",
                &self.augment.policy,
                "AutoAugment policies apply to static images, not event frames",
            ));
        }
        Ok(())
    }

    /// Whether the configured source gives event frames (false for an unparsable source).
    pub fn is_events(&self) -> bool {
        Source::parse(&self.source).is_ok_and(|s| s.is_events())
    }

    /// The parsed `split_by`.
    pub fn split_by(&self) -> Result<SplitBy, ConfigError> {
        self.split_by
            .parse()
            .map_err(|e: String| ConfigError::invalid("data.split_by", &self.split_by, &e))
    }

    /// The parsed `resize` / `resize_mode` of event frames.
    fn frame_resize(&self) -> Result<Resize, ConfigError> {
        let (height, width) = (self.resize, self.resize);
        match (self.resize, self.resize_mode.as_str()) {
            (0, "area" | "nearest") => Ok(Resize::None),
            (_, "area") => Ok(Resize::Area { height, width }),
            (_, "nearest") => Ok(Resize::Nearest { height, width }),
            _ => Err(ConfigError::invalid(
                "data.resize_mode",
                &self.resize_mode,
                "expected `area` or `nearest`",
            )),
        }
    }

    /// The frame cache this configuration asks for.
    pub fn frame_cache(&self) -> FrameCache {
        if !self.cache {
            return FrameCache::disabled();
        }
        FrameCache::new(self.cache_dir.clone().unwrap_or_else(default_dir))
    }
}

impl DataConfig {
    /// Whether a split of `samples` samples of `per` values is kept on disk (see `stream`).
    pub fn streams(&self, samples: usize, per: usize) -> bool {
        match self.stream {
            Some(s) => s,
            None => {
                (samples as u128) * (per as u128) * 4 > (self.stream_above_mb as u128) * 1024 * 1024
            }
        }
    }
}

/// A data-loading failure: a bad configuration or bad files.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The `[data]` table is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A file is missing, unreadable or malformed.
    #[error(transparent)]
    Data(#[from] DataError),
}

/// Loads the configured source; event sources are integrated into `timesteps` frames. With
/// `folds > 0` the test set is fold `fold` of the pooled data; `train_limit` then shortens the
/// training set, and `val_ratio` carves the validation set out of it. The training set carries
/// the configured augmentation; the validation and test sets none.
pub fn load(config: &DataConfig, timesteps: usize) -> Result<Split, LoadError> {
    config.validate()?;
    let source = Source::parse(&config.source)?;
    let run = || load_source(&source, config, timesteps.max(1));
    let mut split = if config.threads > 0 {
        match rayon::ThreadPoolBuilder::new()
            .num_threads(config.threads)
            .build()
        {
            Ok(pool) => pool.install(run)?,
            Err(_) => run()?,
        }
    } else {
        run()?
    };
    if config.folds > 0 {
        split = split.cross_validation_fold(config.folds, config.fold, config.split_seed)?;
    }
    if config.train_limit > 0 {
        truncate(&mut split.train, config.train_limit);
    }
    split = split.with_validation(config.val_ratio, config.split_seed);
    if config.augment.is_active() {
        let mut augment = config.augment.clone();
        if config.normalize {
            augment.normalization = normalization(&source);
        }
        split.train.augment = Some(augment);
    }
    Ok(split)
}

fn load_source(source: &Source, c: &DataConfig, t: usize) -> Result<Split, DataError> {
    let dir = source.path().unwrap_or(Path::new(""));
    let mut split = (source.entry().load)(dir, c, t)?;
    if c.limit > 0 {
        truncate(&mut split.train, c.limit);
        truncate(&mut split.test, c.limit);
    }
    if c.normalize
        && let Some((mean, std)) = normalization(source)
    {
        normalize(&mut split.train, &mean, &std);
        normalize(&mut split.test, &mean, &std);
    }
    Ok(split)
}

fn truncate(d: &mut Dataset, n: usize) {
    if d.len() > n {
        let per = d.sample_len();
        d.labels.truncate(n);
        d.values.truncate(n * per);
        // a lazy set keeps its item list; samples past `len()` are never asked for
    }
}

/// Per-channel mean and std of a static source (training-set statistics as commonly used).
pub fn normalization(source: &Source) -> Option<(Vec<f32>, Vec<f32>)> {
    let (mean, std) = source.entry().normalization?;
    Some((mean.to_vec(), std.to_vec()))
}

fn normalize(d: &mut Dataset, mean: &[f32], std: &[f32]) {
    let [c, h, w] = d.frame_shape;
    if c != mean.len() {
        return;
    }
    if let Storage::Lazy(lazy) = &mut d.storage {
        std::sync::Arc::make_mut(lazy).set_normalization(mean.to_vec(), std.to_vec());
        return;
    }
    for (i, v) in d.values.iter_mut().enumerate() {
        let ch = (i / (h * w)) % c;
        *v = (*v - mean[ch]) / std[ch];
    }
}

/// A configuration error met while loading, as a data error naming `[data]`.
fn config_as_data(e: ConfigError) -> DataError {
    DataError::Malformed {
        path: PathBuf::from("[data]"),
        location: e.field.clone(),
        what: e.to_string(),
    }
}

impl DataConfig {
    /// The frame shape `[C, H, W]` the source will give, known before loading anything.
    pub fn frame_shape(&self) -> Option<[usize; 3]> {
        let resize = self.frame_resize().ok()?;
        let source = Source::parse(&self.source).ok()?;
        (source.entry().frame_shape)(self, resize)
    }
}

/// Checks, before loading, that the configured source gives frames of the model's input shape;
/// the error names both shapes and what to change.
pub fn check_shape(config: &DataConfig, model_shape: [usize; 3]) -> Result<(), String> {
    match config.frame_shape() {
        Some(shape) if shape != model_shape => Err(shape_error(&config.source, shape, model_shape)),
        _ => Ok(()),
    }
}

fn shape_error(source: &str, data: [usize; 3], model: [usize; 3]) -> String {
    format!(
        "data `{source}` gives frames [C, H, W] = {data:?}, but the model expects {model:?}: set \
         [model] in_channels = {} and input_size = {} (or [data] resize / image_size so the \
         data matches the model); the model is not changed silently",
        data[0], data[1]
    )
}

/// Checks that the data fits a model taking `[C, H, W]` frames and `classes` outputs; the error
/// names both shapes and what to change.
pub fn check_fits(
    split: &Split,
    model_shape: [usize; 3],
    model_classes: usize,
    source: &str,
) -> Result<(), String> {
    let d = &split.train;
    if d.frame_shape != model_shape {
        return Err(shape_error(source, d.frame_shape, model_shape));
    }
    if d.num_classes > model_classes {
        return Err(format!(
            "data `{source}` has {} classes, but the model outputs {model_classes}: set [model] \
             num_classes = {}",
            d.num_classes, d.num_classes
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_parse() {
        let d = Source::parse("digits").unwrap();
        assert_eq!((d.name(), d.path()), ("digits", None));
        assert_eq!(Source::parse("digits:/ignored").unwrap(), d);
        let m = Source::parse(" fashion-mnist : /x/y ").unwrap();
        assert_eq!((m.name(), m.path()), ("fashion", Some(Path::new("/x/y"))));
        assert!(!m.is_events());
        assert!(Source::parse("nmnist:/a").unwrap().is_events());
        let e = Source::parse("imagenet:/a").unwrap_err().to_string();
        assert!(e.contains("imagenet") && e.contains("cifar10dvs"), "{e}");
        let e = Source::parse("mnist").unwrap_err().to_string();
        assert!(e.contains("mnist:PATH"), "{e}");
    }

    #[test]
    fn registry_names_are_unique_and_listed() {
        assert_eq!(SOURCE_NAMES.len(), REGISTRY.len());
        let mut all: Vec<&str> = REGISTRY
            .iter()
            .flat_map(|e| std::iter::once(e.name).chain(e.aliases.iter().copied()))
            .collect();
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n, "a name or alias is registered twice");
        assert_eq!(SOURCE_NAMES[0], "digits");
        assert_eq!(SOURCE_NAMES[11], "dvsgesture");
    }

    #[test]
    fn config_validates() {
        let mut c = DataConfig::default();
        c.validate().unwrap();
        c.split_by = "frames".into();
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("data.split_by")
        );
        c.split_by = "time".into();
        c.resize_mode = "cubic".into();
        c.resize = 48;
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("data.resize_mode")
        );
    }
}
