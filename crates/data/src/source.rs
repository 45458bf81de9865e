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
//!
//! Event sources give `[T, 2, H, W]` frames (T = `train.timesteps`), integrated by
//! [`to_frames`] with `split_by`, optionally resized (`resize = 48` for TET's CIFAR10-DVS),
//! cached on disk by [`FrameCache`]. Files are decoded in parallel with rayon; the order of
//! samples never depends on the thread count.
//!
//! Image folders and event sources too large for memory are streamed ([`super::stream`]):
//! with `stream = true`, or when a split's f32 values would exceed `stream_above_mb` (4 GiB by
//! default), the set keeps file paths and labels only, checks every file at load (image
//! headers; event recordings integrated once into the frame cache), and decodes each batch
//! on demand, `prefetch` batches ahead on a background thread.

use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::augment::AugmentConfig;
use super::cache::{FrameCache, default_dir};
use super::events::{Events, Resize, SplitBy, stratified_split, to_frames};
use super::formats::{aedat2, aedat3, cifar, idx, mat, nmnist, path_name, read_file};
use super::stream::{Decoder, LazyItem, LazySamples};
use super::{Dataset, SampleKind, Split, Storage, digits};
use crate::error::{ConfigError, DataError, check_range};

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
    /// Cache directory (default `$XDG_CACHE_HOME/tks/frames` or `~/.cache/tks/frames`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_dir: Option<PathBuf>,
    /// Decoding threads (0 = rayon's default, one per core).
    pub threads: usize,
    /// Keep at most this many samples per split, first ones in order (0 = all).
    pub limit: usize,
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
            stream: None,
            stream_above_mb: 4096,
            prefetch: 2,
            augment: AugmentConfig::default(),
        }
    }
}

/// Source names accepted by `--data`.
pub const SOURCE_NAMES: [&str; 12] = [
    "digits",
    "dvsdigits",
    "mnist",
    "fashion",
    "kmnist",
    "cifar10",
    "cifar100",
    "folder",
    "nmnist",
    "cifar10dvs",
    "ncaltech101",
    "dvsgesture",
];

/// A parsed `NAME:PATH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The embedded 8×8 digits.
    Digits,
    /// The embedded digits as simulated DVS events.
    DvsDigits,
    /// IDX folder; the name picks the normalisation constants.
    Idx {
        /// `mnist`, `fashion` or `kmnist`.
        name: &'static str,
        /// Folder.
        dir: PathBuf,
    },
    /// CIFAR binary batches.
    Cifar(cifar::CifarKind, PathBuf),
    /// Image folder.
    Folder(PathBuf),
    /// N-MNIST.
    Nmnist(PathBuf),
    /// CIFAR10-DVS.
    Cifar10Dvs(PathBuf),
    /// N-Caltech101.
    NCaltech101(PathBuf),
    /// DVS128 Gesture.
    DvsGesture(PathBuf),
}

impl Source {
    /// Parses `NAME` or `NAME:PATH`.
    pub fn parse(spec: &str) -> Result<Self, ConfigError> {
        let (name, path) = match spec.split_once(':') {
            Some((n, p)) => (n.trim(), Some(PathBuf::from(p.trim()))),
            None => (spec.trim(), None),
        };
        let need = |p: Option<PathBuf>| -> Result<PathBuf, ConfigError> {
            match p {
                Some(p) if !p.as_os_str().is_empty() => Ok(p),
                _ => Err(ConfigError::invalid(
                    "data.source",
                    spec,
                    &format!("`{name}` needs a path: `{name}:PATH`"),
                )),
            }
        };
        Ok(match name {
            "digits" => Source::Digits,
            "dvsdigits" => Source::DvsDigits,
            "mnist" => Source::Idx {
                name: "mnist",
                dir: need(path)?,
            },
            "fashion" | "fashion-mnist" | "fashion_mnist" => Source::Idx {
                name: "fashion",
                dir: need(path)?,
            },
            "kmnist" => Source::Idx {
                name: "kmnist",
                dir: need(path)?,
            },
            "cifar10" => Source::Cifar(cifar::CifarKind::Cifar10, need(path)?),
            "cifar100" => Source::Cifar(cifar::CifarKind::Cifar100, need(path)?),
            "folder" | "imagefolder" => Source::Folder(need(path)?),
            "nmnist" => Source::Nmnist(need(path)?),
            "cifar10dvs" | "cifar10-dvs" => Source::Cifar10Dvs(need(path)?),
            "ncaltech101" | "n-caltech101" => Source::NCaltech101(need(path)?),
            "dvsgesture" | "dvs128gesture" | "gesture" => Source::DvsGesture(need(path)?),
            _ => {
                return Err(ConfigError::invalid(
                    "data.source",
                    spec,
                    &format!(
                        "unknown source `{name}`; expected one of {}",
                        SOURCE_NAMES.join(", ")
                    ),
                ));
            }
        })
    }

    /// Whether samples are event frames.
    pub fn is_events(&self) -> bool {
        matches!(
            self,
            Source::DvsDigits
                | Source::Nmnist(_)
                | Source::Cifar10Dvs(_)
                | Source::NCaltech101(_)
                | Source::DvsGesture(_)
        )
    }
}

impl DataConfig {
    /// Checks every field, naming the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        Source::parse(&self.source)?;
        self.split_by()?;
        self.resize_with(1)?;
        check_range("data.split_ratio", self.split_ratio, 0.0, 1.0)?;
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

    fn resize_with(&self, _: usize) -> Result<Resize, ConfigError> {
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

/// Loads the configured source; event sources are integrated into `timesteps` frames. The
/// training set carries the configured augmentation.
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
    let mut split = match source {
        Source::Digits => digits::load()?,
        Source::DvsDigits => super::dvs_digits::load(t, c.split_by().map_err(config_as_data)?)?,
        Source::Idx { name, dir } => load_idx(dir, name)?,
        Source::Cifar(kind, dir) => load_cifar(dir, *kind)?,
        Source::Folder(dir) => load_folder(dir, c)?,
        Source::Nmnist(dir) => load_nmnist(dir, c, t)?,
        Source::Cifar10Dvs(dir) => load_class_folders(dir, c, t, EventFormat::Cifar10Dvs)?,
        Source::NCaltech101(dir) => load_class_folders(dir, c, t, EventFormat::NCaltech101)?,
        Source::DvsGesture(dir) => load_gesture(dir, c, t)?,
    };
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
    Some(match source {
        Source::Idx { name: "mnist", .. } => (vec![0.1307], vec![0.3081]),
        Source::Idx {
            name: "fashion", ..
        } => (vec![0.2860], vec![0.3530]),
        Source::Idx { .. } => (vec![0.1918], vec![0.3483]),
        Source::Cifar(cifar::CifarKind::Cifar10, _) => {
            (vec![0.4914, 0.4822, 0.4465], vec![0.2470, 0.2435, 0.2616])
        }
        Source::Cifar(cifar::CifarKind::Cifar100, _) => {
            (vec![0.5071, 0.4865, 0.4409], vec![0.2673, 0.2564, 0.2762])
        }
        Source::Folder(_) => (vec![0.485, 0.456, 0.406], vec![0.229, 0.224, 0.225]),
        _ => return None,
    })
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

fn not_found(path: &Path, what: &str) -> DataError {
    DataError::Io {
        path: path.to_path_buf(),
        error: std::io::Error::new(std::io::ErrorKind::NotFound, what.to_string()),
    }
}

fn require_dir(dir: &Path) -> Result<(), DataError> {
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(not_found(dir, "not a directory")),
        Err(source) => Err(DataError::Io {
            path: dir.to_path_buf(),
            error: source,
        }),
    }
}

/// Sorted entries of `dir`: sub-directories or files.
fn list(dir: &Path, dirs: bool) -> Result<Vec<PathBuf>, DataError> {
    let rd = std::fs::read_dir(dir).map_err(|source| DataError::Io {
        path: dir.to_path_buf(),
        error: source,
    })?;
    let mut out = Vec::new();
    for e in rd {
        let e = e.map_err(|source| DataError::Io {
            path: dir.to_path_buf(),
            error: source,
        })?;
        let p = e.path();
        let hidden = p
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'));
        if !hidden && p.is_dir() == dirs {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

fn has_ext(p: &Path, exts: &[&str]) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| exts.iter().any(|x| e.eq_ignore_ascii_case(x)))
}

fn empty_dir(dir: &Path, what: &str) -> DataError {
    DataError::Malformed {
        path: dir.to_path_buf(),
        location: "directory".into(),
        what: format!("no {what} found"),
    }
}

// ---------------------------------------------------------------------------------------------
// static sources

fn find_one(dir: &Path, names: &[String]) -> Result<PathBuf, DataError> {
    names
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            not_found(
                &dir.join(&names[0]),
                &format!("none of {names:?} in the folder"),
            )
        })
}

fn load_idx(dir: &Path, name: &str) -> Result<Split, DataError> {
    require_dir(dir)?;
    let file = |stem: &str, kind: &str| -> Result<PathBuf, DataError> {
        let a = format!("{stem}-{kind}");
        let b = format!("{stem}.{kind}");
        find_one(dir, &[format!("{a}.gz"), a.clone(), format!("{b}.gz"), b])
    };
    let (tri, trl) = (
        file("train-images", "idx3-ubyte")?,
        file("train-labels", "idx1-ubyte")?,
    );
    let (tei, tel) = (
        file("t10k-images", "idx3-ubyte")?,
        file("t10k-labels", "idx1-ubyte")?,
    );
    let (train, test) = rayon::join(
        || idx::load_idx_pair(&tri, &trl, 10),
        || idx::load_idx_pair(&tei, &tel, 10),
    );
    let (mut train, mut test) = (train?, test?);
    train.name = format!("{name}:{}/train", dir.display());
    test.name = format!("{name}:{}/test", dir.display());
    Ok(Split { train, test })
}

fn load_cifar(dir: &Path, kind: cifar::CifarKind) -> Result<Split, DataError> {
    require_dir(dir)?;
    let (train_names, test_names) = cifar::file_names(kind);
    let sub = match kind {
        cifar::CifarKind::Cifar10 => "cifar-10-batches-bin",
        cifar::CifarKind::Cifar100 => "cifar-100-binary",
    };
    let base = if !dir.join(train_names[0]).exists() && dir.join(sub).is_dir() {
        dir.join(sub)
    } else {
        dir.to_path_buf()
    };
    let part = |names: &[&str], which: &str| -> Result<Dataset, DataError> {
        let batches = names
            .par_iter()
            .map(|n| cifar::cifar_from_path(&base.join(n), kind))
            .collect::<Result<Vec<_>, _>>()?;
        let mut values = Vec::new();
        let mut labels = Vec::new();
        for b in batches {
            values.extend(b.pixels.iter().map(|&v| v as f32 / 255.0));
            labels.extend(b.labels.iter().map(|&l| l as u32));
        }
        Dataset::new(
            format!("{}/{which}", base.display()),
            SampleKind::Static,
            [3, 32, 32],
            kind.num_classes(),
            values,
            labels,
        )
    };
    Ok(Split {
        train: part(&train_names, "train")?,
        test: part(&test_names, "test")?,
    })
}

const IMAGE_EXTS: [&str; 3] = ["jpg", "jpeg", "png"];

/// Files with their class index.
type Labelled = Vec<(PathBuf, u32)>;

fn class_files(dir: &Path, exts: &[&str]) -> Result<(Vec<String>, Labelled), DataError> {
    require_dir(dir)?;
    let classes = list(dir, true)?;
    let mut names = Vec::new();
    let mut items = Vec::new();
    for (k, cdir) in classes.iter().enumerate() {
        names.push(
            cdir.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        );
        for f in list(cdir, false)? {
            if has_ext(&f, exts) {
                items.push((f, k as u32));
            }
        }
    }
    if items.is_empty() {
        return Err(empty_dir(
            dir,
            &format!("class folders holding .{} files", exts.join("/.")),
        ));
    }
    Ok((names, items))
}

/// Decodes an image, resizes its shorter side to `size` (bilinear) and centre-crops
/// `size × size`; values `[3, size, size]` in `[0, 1]`.
pub fn decode_image(path: &Path, size: usize) -> Result<Vec<f32>, DataError> {
    let bytes = read_file(path)?;
    let img = image::load_from_memory(&bytes).map_err(|e| DataError::Malformed {
        path: path.to_path_buf(),
        location: "image".into(),
        what: format!("cannot decode: {e}"),
    })?;
    let img = img.to_rgb8();
    let (w, h) = img.dimensions();
    if w == 0 || h == 0 {
        return Err(DataError::Malformed {
            path: path.to_path_buf(),
            location: "image".into(),
            what: "zero-sized image".into(),
        });
    }
    let s = size as f64 / w.min(h) as f64;
    let (nw, nh) = (
        ((w as f64 * s).round() as u32).max(size as u32),
        ((h as f64 * s).round() as u32).max(size as u32),
    );
    let resized = image::imageops::resize(&img, nw, nh, image::imageops::FilterType::Triangle);
    let (x0, y0) = ((nw - size as u32) / 2, (nh - size as u32) / 2);
    let mut out = vec![0.0f32; 3 * size * size];
    for y in 0..size {
        for x in 0..size {
            let p = resized.get_pixel(x0 + x as u32, y0 + y as u32).0;
            for c in 0..3 {
                out[c * size * size + y * size + x] = p[c] as f32 / 255.0;
            }
        }
    }
    Ok(out)
}

/// Checks that `path` is an image the decoder can open (its header only).
fn check_image(path: &Path) -> Result<(), DataError> {
    let bad = |what: String| DataError::Malformed {
        path: path.to_path_buf(),
        location: "image".into(),
        what,
    };
    let reader = image::ImageReader::open(path)
        .map_err(|error| DataError::Io {
            path: path.to_path_buf(),
            error,
        })?
        .with_guessed_format()
        .map_err(|error| DataError::Io {
            path: path.to_path_buf(),
            error,
        })?;
    match reader.into_dimensions() {
        Ok((w, h)) if w > 0 && h > 0 => Ok(()),
        Ok(_) => Err(bad("zero-sized image".into())),
        Err(e) => Err(bad(format!("cannot decode: {e}"))),
    }
}

fn image_dataset(
    name: String,
    items: &[(PathBuf, u32)],
    num_classes: usize,
    c: &DataConfig,
) -> Result<Dataset, DataError> {
    let size = c.image_size;
    let labels: Vec<u32> = items.iter().map(|(_, l)| *l).collect();
    if c.streams(items.len(), 3 * size * size) {
        // header check now, so a bad file is reported at load time; pixels per batch later
        items.par_iter().try_for_each(|(p, _)| check_image(p))?;
        let lazy = LazySamples::new(
            items
                .iter()
                .map(|(p, _)| LazyItem {
                    path: p.clone(),
                    segment: None,
                })
                .collect(),
            Decoder::Image { size },
            [3, size, size],
            c.threads,
            c.prefetch,
        );
        return Dataset::lazy(
            name,
            SampleKind::Static,
            [3, size, size],
            num_classes,
            lazy,
            labels,
        );
    }
    let decoded = items
        .par_iter()
        .map(|(p, _)| decode_image(p, size))
        .collect::<Result<Vec<_>, _>>()?;
    Dataset::new(
        name,
        SampleKind::Static,
        [3, size, size],
        num_classes,
        decoded.concat(),
        labels,
    )
}

fn load_folder(root: &Path, c: &DataConfig) -> Result<Split, DataError> {
    require_dir(root)?;
    let limit = |mut v: Vec<(PathBuf, u32)>| {
        if c.limit > 0 {
            v.truncate(c.limit);
        }
        v
    };
    let name = |which: &str| format!("folder:{}/{which}", root.display());
    if root.join("train").is_dir() {
        let (classes, train) = class_files(&root.join("train"), &IMAGE_EXTS)?;
        let test_dir = ["val", "test"]
            .iter()
            .map(|d| root.join(d))
            .find(|p| p.is_dir())
            .ok_or_else(|| {
                not_found(&root.join("val"), "no val/ or test/ folder next to train/")
            })?;
        let mut test = Vec::new();
        for cdir in list(&test_dir, true)? {
            let cname = cdir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let Some(k) = classes.iter().position(|n| *n == cname) else {
                return Err(DataError::Malformed {
                    path: cdir,
                    location: "directory".into(),
                    what: format!("class `{cname}` has no folder in train/"),
                });
            };
            for f in list(&cdir, false)? {
                if has_ext(&f, &IMAGE_EXTS) {
                    test.push((f, k as u32));
                }
            }
        }
        if test.is_empty() {
            return Err(empty_dir(&test_dir, "images in class folders"));
        }
        let n = classes.len();
        return Ok(Split {
            train: image_dataset(name("train"), &limit(train), n, c)?,
            test: image_dataset(name("test"), &limit(test), n, c)?,
        });
    }
    if root.join("images.txt").is_file() && root.join("train_test_split.txt").is_file() {
        return load_cub(root, c);
    }
    if root.join("train_list.txt").is_file() && root.join("test_list.txt").is_file() {
        return load_dogs(root, c);
    }
    if root.join("anno_train.csv").is_file() && root.join("anno_test.csv").is_file() {
        return load_cars(root, c);
    }
    if root.join("train_list.mat").is_file() {
        return load_dogs_mat(root, c);
    }
    if root.join("devkit/cars_train_annos.mat").is_file() {
        return load_cars_devkit(root, c);
    }
    if root.join("cars_annos.mat").is_file() {
        return load_cars_annos(root, c);
    }
    let (classes, items) = class_files(root, &IMAGE_EXTS)?;
    let labels: Vec<u32> = items.iter().map(|(_, l)| *l).collect();
    let (tr, te) = stratified_split(&labels, c.split_ratio, c.split_seed);
    let pick = |ix: &[usize]| ix.iter().map(|&i| items[i].clone()).collect::<Vec<_>>();
    Ok(Split {
        train: image_dataset(name("train"), &limit(pick(&tr)), classes.len(), c)?,
        test: image_dataset(name("test"), &limit(pick(&te)), classes.len(), c)?,
    })
}

/// `<id> <value>` lines of a CUB-200-2011 list file.
fn id_list(path: &Path) -> Result<Vec<(u64, String)>, DataError> {
    let text = String::from_utf8_lossy(&read_file(path)?).into_owned();
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let (id, rest) =
            line.split_once(char::is_whitespace)
                .ok_or_else(|| DataError::Malformed {
                    path: path.to_path_buf(),
                    location: format!("line {}", n + 1),
                    what: format!("expected `<id> <value>`, found `{line}`"),
                })?;
        let id = id.parse().map_err(|_| DataError::Malformed {
            path: path.to_path_buf(),
            location: format!("line {}", n + 1),
            what: format!("id `{id}` is not an integer"),
        })?;
        out.push((id, rest.trim().to_string()));
    }
    Ok(out)
}

/// CUB-200-2011: `images.txt` (`id path`), `train_test_split.txt` (`id is_train`),
/// `image_class_labels.txt` (`id class`, 1-based), images under `images/`.
fn load_cub(root: &Path, c: &DataConfig) -> Result<Split, DataError> {
    use std::collections::HashMap;
    let images = id_list(&root.join("images.txt"))?;
    let split: HashMap<u64, String> = id_list(&root.join("train_test_split.txt"))?
        .into_iter()
        .collect();
    let labels_path = root.join("image_class_labels.txt");
    let labels: HashMap<u64, String> = id_list(&labels_path)?.into_iter().collect();
    let (mut train, mut test) = (Vec::new(), Vec::new());
    let mut num_classes = 0usize;
    for (id, rel) in images {
        let bad = |what: String| DataError::Malformed {
            path: labels_path.clone(),
            location: format!("image id {id}"),
            what,
        };
        let label: u32 = labels
            .get(&id)
            .ok_or_else(|| bad("no class label".into()))?
            .parse()
            .map_err(|_| bad("class is not an integer".into()))?;
        if label == 0 {
            return Err(bad("class 0, classes are 1-based".into()));
        }
        num_classes = num_classes.max(label as usize);
        let item = (root.join("images").join(rel), label - 1);
        match split.get(&id).map(String::as_str) {
            Some("1") => train.push(item),
            Some(_) => test.push(item),
            None => {
                return Err(DataError::Malformed {
                    path: root.join("train_test_split.txt"),
                    location: format!("image id {id}"),
                    what: "not listed".into(),
                });
            }
        }
    }
    if c.limit > 0 {
        train.truncate(c.limit);
        test.truncate(c.limit);
    }
    if train.is_empty() {
        return Err(empty_dir(root, "training images in images.txt"));
    }
    let name = |w: &str| format!("folder:{}/{w}", root.display());
    Ok(Split {
        train: image_dataset(name("train"), &train, num_classes, c)?,
        test: image_dataset(name("test"), &test, num_classes, c)?,
    })
}

/// The items of a split list, limited, and the two datasets.
fn listed_split(
    root: &Path,
    c: &DataConfig,
    mut train: Vec<(PathBuf, u32)>,
    mut test: Vec<(PathBuf, u32)>,
    num_classes: Option<usize>,
    list: &str,
) -> Result<Split, DataError> {
    // Without a known class count: the largest label of either list, before any `limit`.
    let num_classes = num_classes.unwrap_or_else(|| {
        train
            .iter()
            .chain(&test)
            .map(|(_, l)| *l as usize + 1)
            .max()
            .unwrap_or(0)
    });
    if c.limit > 0 {
        train.truncate(c.limit);
        test.truncate(c.limit);
    }
    if train.is_empty() {
        return Err(empty_dir(root, &format!("training images in {list}")));
    }
    let name = |w: &str| format!("folder:{}/{w}", root.display());
    Ok(Split {
        train: image_dataset(name("train"), &train, num_classes, c)?,
        test: image_dataset(name("test"), &test, num_classes, c)?,
    })
}

/// Stanford Dogs, text exports of the official lists: `train_list.txt` / `test_list.txt` with
/// lines `n02085620-Chihuahua/n02085620_5927.jpg`, images under `Images/`. Classes are the
/// sorted class folders named in the lists (the official 1-based labels follow that order).
fn load_dogs(root: &Path, c: &DataConfig) -> Result<Split, DataError> {
    let read = |name: &str| -> Result<Vec<(String, String)>, DataError> {
        let path = root.join(name);
        let text = String::from_utf8_lossy(&read_file(&path)?).into_owned();
        let mut out = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let Some((class, _)) = line.split_once('/') else {
                return Err(DataError::Malformed {
                    path: path.clone(),
                    location: format!("line {}", n + 1),
                    what: format!("expected `<class>/<file>`, found `{line}`"),
                });
            };
            out.push((class.to_string(), line.to_string()));
        }
        Ok(out)
    };
    let (train, test) = (read("train_list.txt")?, read("test_list.txt")?);
    let mut classes: Vec<&str> = train.iter().chain(&test).map(|(k, _)| k.as_str()).collect();
    classes.sort_unstable();
    classes.dedup();
    let items = |v: &[(String, String)]| -> Vec<(PathBuf, u32)> {
        v.iter()
            .map(|(k, rel)| {
                let label = classes.binary_search(&k.as_str()).unwrap_or(0) as u32;
                (root.join("Images").join(rel), label)
            })
            .collect()
    };
    let (tr, te) = (items(&train), items(&test));
    listed_split(root, c, tr, te, Some(classes.len()), "train_list.txt")
}

/// Stanford Cars, CSV exports of the devkit annotations: `anno_train.csv` / `anno_test.csv`
/// with lines `filename,x1,y1,x2,y2,class` (class 1-based; an optional header line is
/// skipped; the box is ignored), images under `cars_train/` and `cars_test/`.
fn load_cars(root: &Path, c: &DataConfig) -> Result<Split, DataError> {
    let read = |name: &str, dir: &str| -> Result<Vec<(PathBuf, u32)>, DataError> {
        let path = root.join(name);
        let text = String::from_utf8_lossy(&read_file(&path)?).into_owned();
        let mut out = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let fields: Vec<&str> = line.split(',').map(str::trim).collect();
            let label = fields.last().and_then(|l| l.parse::<u32>().ok());
            let label = match (fields.len(), label) {
                (6, Some(l)) if l > 0 => l - 1,
                (6, None) if n == 0 => continue, // header
                _ => {
                    return Err(DataError::Malformed {
                        path: path.clone(),
                        location: format!("line {}", n + 1),
                        what: format!(
                            "expected `filename,x1,y1,x2,y2,class` (class ≥ 1), found `{line}`"
                        ),
                    });
                }
            };
            out.push((root.join(dir).join(fields[0]), label));
        }
        Ok(out)
    };
    let train = read("anno_train.csv", "cars_train")?;
    let test = read("anno_test.csv", "cars_test")?;
    listed_split(root, c, train, test, None, "anno_train.csv")
}

/// Stanford Dogs, the official MAT lists: `train_list.mat` / `test_list.mat` (`file_list`,
/// `labels` 1-based), images under `Images/`.
fn load_dogs_mat(root: &Path, c: &DataConfig) -> Result<Split, DataError> {
    let read = |name: &str| -> Result<Vec<(PathBuf, u32)>, DataError> {
        let path = root.join(name);
        let vars = mat::mat_variables_from_path(&path)?;
        Ok(mat::stanford_dogs_list(&vars, &path_name(&path))?
            .into_iter()
            .map(|(rel, label)| (root.join("Images").join(rel), label))
            .collect())
    };
    let (train, test) = (read("train_list.mat")?, read("test_list.mat")?);
    listed_split(root, c, train, test, None, "train_list.mat")
}

/// The annotations in the variables `vars` of the Stanford Cars MAT file `path` as (image path
/// under `dir`, label, test flag), checked against `classes` class names when known.
fn cars_items(
    vars: &[mat::MatVariable],
    path: &Path,
    dir: &Path,
    classes: Option<usize>,
) -> Result<Vec<(PathBuf, u32, Option<bool>)>, DataError> {
    let annos = mat::stanford_cars_annotations(vars, &path_name(path))?;
    let mut out = Vec::with_capacity(annos.len());
    for (i, a) in annos.into_iter().enumerate() {
        if let Some(n) = classes.filter(|&n| a.class as usize >= n) {
            return Err(DataError::Malformed {
                path: path.to_path_buf(),
                location: format!("`annotations` entry {}", i + 1),
                what: format!("class {} but `class_names` names {n} classes", a.class + 1),
            });
        }
        out.push((dir.join(&a.fname), a.class, a.test));
    }
    Ok(out)
}

/// Stanford Cars, the devkit's MAT annotations: `devkit/cars_train_annos.mat` with images in
/// `cars_train/`, `cars_test_annos_withlabels.mat` (in the root or in `devkit/`) with images in
/// `cars_test/`, class names from `devkit/cars_meta.mat` when present.
fn load_cars_devkit(root: &Path, c: &DataConfig) -> Result<Split, DataError> {
    let devkit = root.join("devkit");
    let meta = devkit.join("cars_meta.mat");
    let classes = if meta.is_file() {
        let vars = mat::mat_variables_from_path(&meta)?;
        Some(mat::stanford_cars_class_names(&vars, &path_name(&meta))?.len())
    } else {
        None
    };
    let test_list = [root, &devkit]
        .iter()
        .map(|d| d.join("cars_test_annos_withlabels.mat"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            not_found(
                &root.join("cars_test_annos_withlabels.mat"),
                "Stanford Cars test labels not found (here or in devkit/); \
                 devkit/cars_test_annos.mat has no classes",
            )
        })?;
    let read = |path: &Path, dir: &str| -> Result<Vec<(PathBuf, u32)>, DataError> {
        let vars = mat::mat_variables_from_path(path)?;
        let items = cars_items(&vars, path, &root.join(dir), classes)?;
        Ok(items.into_iter().map(|(p, l, _)| (p, l)).collect())
    };
    let train = read(&devkit.join("cars_train_annos.mat"), "cars_train")?;
    let test = read(&test_list, "cars_test")?;
    // `class_names` gives the class count when present, else the largest class.
    listed_split(root, c, train, test, classes, "devkit/cars_train_annos.mat")
}

/// Stanford Cars, the single `cars_annos.mat` (`annotations` with `relative_im_path` and
/// `test`, images under the root, e.g. `car_ims/`; `class_names` in the same file).
fn load_cars_annos(root: &Path, c: &DataConfig) -> Result<Split, DataError> {
    let path = root.join("cars_annos.mat");
    let vars = mat::mat_variables_from_path(&path)?;
    let name = path_name(&path);
    let classes = match vars.iter().any(|v| v.name == "class_names") {
        true => Some(mat::stanford_cars_class_names(&vars, &name)?.len()),
        false => None,
    };
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for (i, (p, l, is_test)) in cars_items(&vars, &path, root, classes)?
        .into_iter()
        .enumerate()
    {
        match is_test {
            Some(true) => test.push((p, l)),
            Some(false) => train.push((p, l)),
            None => {
                return Err(DataError::Malformed {
                    path,
                    location: format!("`annotations` entry {}", i + 1),
                    what: "no `test` field (which split?)".into(),
                });
            }
        }
    }
    listed_split(root, c, train, test, classes, "cars_annos.mat")
}

// ---------------------------------------------------------------------------------------------
// event sources

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
}

impl EventFormat {
    /// Sensor `(width, height)`.
    pub fn sensor(self) -> (u16, u16) {
        match self {
            EventFormat::Nmnist => (34, 34),
            EventFormat::NCaltech101 => (240, 180),
            EventFormat::Cifar10Dvs | EventFormat::DvsGesture => (128, 128),
        }
    }

    fn extensions(self) -> &'static [&'static str] {
        match self {
            EventFormat::Nmnist | EventFormat::NCaltech101 => &["bin", "bs2"],
            EventFormat::Cifar10Dvs | EventFormat::DvsGesture => &["aedat"],
        }
    }

    fn num_classes(self) -> usize {
        match self {
            EventFormat::Nmnist | EventFormat::Cifar10Dvs => 10,
            EventFormat::NCaltech101 => 101,
            EventFormat::DvsGesture => 11,
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
            resize: c.resize_with(0)?,
            cache: c.frame_cache(),
        })
    }

    /// Frame shape `[2, H, W]` for a `format` sensor.
    pub fn frame_shape(&self, format: EventFormat) -> [usize; 3] {
        let (w, h) = format.sensor();
        match self.resize {
            Resize::None => [2, h as usize, w as usize],
            Resize::Area { height, width } | Resize::Nearest { height, width } => {
                [2, height, width]
            }
        }
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
                Ok(to_frames(ev, integ.split_by, integ.timesteps, integ.resize))
            },
        )?;
        out.push(frames);
    }
    Ok(out)
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
fn event_set(
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

fn single(items: Vec<(PathBuf, u32)>, limit: usize) -> Vec<EventFile> {
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

fn load_nmnist(dir: &Path, c: &DataConfig, t: usize) -> Result<Split, DataError> {
    require_dir(dir)?;
    let integ = Integration::from_config(c, t).map_err(config_as_data)?;
    let f = EventFormat::Nmnist;
    let name = |w: &str| format!("nmnist:{}/{w}", dir.display());
    let (train, test) = if dir.join("train1K.txt").is_file() || dir.join("test100.txt").is_file() {
        let list = |file: &str| -> Result<Vec<(PathBuf, u32)>, DataError> {
            let p = dir.join(file);
            let text = String::from_utf8_lossy(&read_file(&p)?).into_owned();
            let entries = nmnist::parse_label_list(&text, &path_name(&p))?;
            let mut out = Vec::with_capacity(entries.len());
            for (i, (id, label)) in entries.into_iter().enumerate() {
                if label >= 10 {
                    return Err(DataError::Malformed {
                        path: p.clone(),
                        location: format!("entry {i}"),
                        what: format!("label {label} outside 0..10"),
                    });
                }
                let bs2 = dir.join(format!("{id}.bs2"));
                let path = if bs2.exists() {
                    bs2
                } else {
                    dir.join(format!("{id}.bin"))
                };
                out.push((path, label));
            }
            Ok(out)
        };
        (list("train1K.txt")?, list("test100.txt")?)
    } else {
        let sub = |a: &str, b: &str| [dir.join(a), dir.join(b)].into_iter().find(|p| p.is_dir());
        let (Some(tr), Some(te)) = (sub("Train", "train"), sub("Test", "test")) else {
            return Err(empty_dir(
                dir,
                "NMNISTsmall lists (train1K.txt, test100.txt) or Train/ and Test/ folders",
            ));
        };
        (digit_folders(&tr, f)?, digit_folders(&te, f)?)
    };
    Ok(Split {
        train: event_set(name("train"), &single(train, c.limit), f, &integ, c)?,
        test: event_set(name("test"), &single(test, c.limit), f, &integ, c)?,
    })
}

/// Class folders named by their digit (`0`..`9`), as in the N-MNIST archive.
fn digit_folders(dir: &Path, f: EventFormat) -> Result<Vec<(PathBuf, u32)>, DataError> {
    let (names, items) = class_files(dir, f.extensions())?;
    let mut digits = Vec::with_capacity(names.len());
    for n in &names {
        match n.parse::<u32>() {
            Ok(d) if d < 10 => digits.push(d),
            _ => {
                return Err(DataError::Malformed {
                    path: dir.join(n),
                    location: "directory".into(),
                    what: format!("class folder `{n}` is not a digit 0..9"),
                });
            }
        }
    }
    Ok(items
        .into_iter()
        .map(|(p, k)| (p, digits[k as usize]))
        .collect())
}

fn load_class_folders(
    dir: &Path,
    c: &DataConfig,
    t: usize,
    f: EventFormat,
) -> Result<Split, DataError> {
    let integ = Integration::from_config(c, t).map_err(config_as_data)?;
    let (classes, items) = class_files(dir, f.extensions())?;
    if classes.len() > f.num_classes() {
        return Err(DataError::Malformed {
            path: dir.to_path_buf(),
            location: "directory".into(),
            what: format!(
                "{} class folders, expected at most {}",
                classes.len(),
                f.num_classes()
            ),
        });
    }
    let labels: Vec<u32> = items.iter().map(|(_, l)| *l).collect();
    let (tr, te) = stratified_split(&labels, c.split_ratio, c.split_seed);
    let pick = |ix: &[usize]| ix.iter().map(|&i| items[i].clone()).collect::<Vec<_>>();
    let tag = match f {
        EventFormat::Cifar10Dvs => "cifar10dvs",
        _ => "ncaltech101",
    };
    let name = |w: &str| format!("{tag}:{}/{w}", dir.display());
    Ok(Split {
        train: event_set(name("train"), &single(pick(&tr), c.limit), f, &integ, c)?,
        test: event_set(name("test"), &single(pick(&te), c.limit), f, &integ, c)?,
    })
}

fn load_gesture(dir: &Path, c: &DataConfig, t: usize) -> Result<Split, DataError> {
    require_dir(dir)?;
    let integ = Integration::from_config(c, t).map_err(config_as_data)?;
    let f = EventFormat::DvsGesture;
    let trial_list = |file: &str| -> Result<Option<Vec<PathBuf>>, DataError> {
        let p = dir.join(file);
        if !p.is_file() {
            return Ok(None);
        }
        let text = String::from_utf8_lossy(&read_file(&p)?).into_owned();
        Ok(Some(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(|l| dir.join(l))
                .collect(),
        ))
    };
    let (train_files, test_files) = match (
        trial_list("trials_to_train.txt")?,
        trial_list("trials_to_test.txt")?,
    ) {
        (Some(a), Some(b)) => (a, b),
        _ => {
            // official split by subject: users 1..=23 train, 24..=29 test
            let all: Vec<PathBuf> = list(dir, false)?
                .into_iter()
                .filter(|p| has_ext(p, &["aedat"]))
                .collect();
            let user = |p: &PathBuf| -> u32 {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| n.strip_prefix("user"))
                    .map(|n| {
                        n.chars()
                            .take_while(char::is_ascii_digit)
                            .collect::<String>()
                    })
                    .and_then(|d| d.parse().ok())
                    .unwrap_or(0)
            };
            all.into_iter().partition(|p| user(p) <= 23)
        }
    };
    if train_files.is_empty() {
        return Err(empty_dir(dir, "DVS128 Gesture .aedat recordings"));
    }
    let files = |paths: Vec<PathBuf>| -> Result<Vec<EventFile>, DataError> {
        let mut out = Vec::new();
        let mut n = 0usize;
        for path in paths {
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let csv = path.with_file_name(format!("{stem}_labels.csv"));
            let text = String::from_utf8_lossy(&read_file(&csv)?).into_owned();
            let segs = aedat3::parse_gesture_labels(&text, &path_name(&csv), 11)?;
            let mut samples: Vec<_> = segs.into_iter().map(|s| (s.label, Some(s))).collect();
            if c.limit > 0 {
                samples.truncate(c.limit.saturating_sub(n));
            }
            n += samples.len();
            if !samples.is_empty() {
                out.push(EventFile { path, samples });
            }
        }
        Ok(out)
    };
    let name = |w: &str| format!("dvsgesture:{}/{w}", dir.display());
    Ok(Split {
        train: event_set(name("train"), &files(train_files)?, f, &integ, c)?,
        test: event_set(name("test"), &files(test_files)?, f, &integ, c)?,
    })
}

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
        let resize = self.resize_with(0).ok()?;
        let events = |f: EventFormat| {
            Integration {
                timesteps: 1,
                split_by: SplitBy::Number,
                resize,
                cache: FrameCache::disabled(),
            }
            .frame_shape(f)
        };
        Some(match Source::parse(&self.source).ok()? {
            Source::Digits => [1, 8, 8],
            Source::DvsDigits => [2, 16, 16],
            Source::Idx { .. } => [1, 28, 28],
            Source::Cifar(..) => [3, 32, 32],
            Source::Folder(_) => [3, self.image_size, self.image_size],
            Source::Nmnist(_) => events(EventFormat::Nmnist),
            Source::Cifar10Dvs(_) => events(EventFormat::Cifar10Dvs),
            Source::NCaltech101(_) => events(EventFormat::NCaltech101),
            Source::DvsGesture(_) => events(EventFormat::DvsGesture),
        })
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
        assert_eq!(Source::parse("digits").unwrap(), Source::Digits);
        assert_eq!(
            Source::parse("mnist:/x/y").unwrap(),
            Source::Idx {
                name: "mnist",
                dir: "/x/y".into()
            }
        );
        assert!(Source::parse("nmnist:/a").unwrap().is_events());
        let e = Source::parse("imagenet:/a").unwrap_err().to_string();
        assert!(e.contains("imagenet") && e.contains("cifar10dvs"), "{e}");
        let e = Source::parse("mnist").unwrap_err().to_string();
        assert!(e.contains("mnist:PATH"), "{e}");
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
