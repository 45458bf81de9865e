//! The table of data sources: every name `--data NAME:PATH` accepts, what it gives and how it
//! loads.
//!
//! Adding a source: write its loader in a new file of `source/` (a [`Loader`]: the `PATH`, the
//! `[data]` table, the timesteps → a [`Split`]), declare the file in `source/mod.rs`, and add
//! one [`SourceEntry`] to [`REGISTRY`]. Parsing, the list of names in messages
//! ([`SOURCE_NAMES`]), the event/static distinction, the frame shape known before loading and
//! the normalisation constants all come from that entry.

use std::fmt;
use std::path::{Path, PathBuf};

use super::event_sets::EventFormat;
use super::{
    DataConfig, cifar, dvs_folders, embedded, events_dir, folder, gesture, mnist, ncars, nmnist,
    stmnist,
};
use crate::Split;
use crate::error::{ConfigError, DataError};
use crate::events::Resize;
use crate::formats::cifar::CifarKind;

/// Loads a source from its `PATH` (empty for sources without one), the `[data]` table and the
/// number of timesteps (at least 1) event frames are integrated into.
pub type Loader = fn(&Path, &DataConfig, usize) -> Result<Split, DataError>;

/// Per-channel `(mean, std)` of a static source.
pub type Normalization = (&'static [f32], &'static [f32]);

/// One data source.
#[derive(Debug)]
pub struct SourceEntry {
    /// The name listed in [`SOURCE_NAMES`] and used in dataset names (`mnist:PATH/train`).
    pub name: &'static str,
    /// Other spellings accepted for it.
    pub aliases: &'static [&'static str],
    /// Whether it needs `NAME:PATH` (false for the embedded sets).
    pub needs_path: bool,
    /// What `PATH` holds.
    pub description: &'static str,
    /// Whether samples are event frames `[T, 2, H, W]` (else static images).
    pub events: bool,
    /// The frame shape `[C, H, W]` it gives under this configuration and event resize, known
    /// before anything is read (`None`: known only from the files, as for `events:`).
    pub frame_shape: fn(&DataConfig, Resize) -> Option<[usize; 3]>,
    /// `normalize = true`: training-set channel statistics (as commonly used); `None` = none.
    pub normalization: Option<Normalization>,
    /// Reads the train and test sets.
    pub load: Loader,
}

const MNIST_NORM: Normalization = (&[0.1307], &[0.3081]);
const FASHION_NORM: Normalization = (&[0.2860], &[0.3530]);
const KMNIST_NORM: Normalization = (&[0.1918], &[0.3483]);
const CIFAR10_NORM: Normalization = (&[0.4914, 0.4822, 0.4465], &[0.2470, 0.2435, 0.2616]);
const CIFAR100_NORM: Normalization = (&[0.5071, 0.4865, 0.4409], &[0.2673, 0.2564, 0.2762]);
const IMAGENET_NORM: Normalization = (&[0.485, 0.456, 0.406], &[0.229, 0.224, 0.225]);

/// Every source, in the order [`SOURCE_NAMES`] lists them.
#[rustfmt::skip]
pub const REGISTRY: &[SourceEntry] = &[
    SourceEntry {
        name: "digits", aliases: &[], needs_path: false,
        description: "embedded UCI 8×8 digits",
        events: false, frame_shape: |_, _| Some([1, 8, 8]), normalization: None,
        load: embedded::load_digits,
    },
    SourceEntry {
        name: "dvsdigits", aliases: &[], needs_path: false,
        description: "embedded: the digits moving on a simulated 16×16 DVS",
        events: true, frame_shape: |_, _| Some([2, 16, 16]), normalization: None,
        load: embedded::load_dvs_digits,
    },
    SourceEntry {
        name: "mnist", aliases: &[], needs_path: true,
        description: "the 4 IDX files (`train-images-idx3-ubyte[.gz]`, …)",
        events: false, frame_shape: |_, _| Some([1, 28, 28]), normalization: Some(MNIST_NORM),
        load: |dir, _, _| mnist::load(dir, "mnist"),
    },
    SourceEntry {
        name: "fashion", aliases: &["fashion-mnist", "fashion_mnist"], needs_path: true,
        description: "the 4 IDX files of Fashion-MNIST",
        events: false, frame_shape: |_, _| Some([1, 28, 28]), normalization: Some(FASHION_NORM),
        load: |dir, _, _| mnist::load(dir, "fashion"),
    },
    SourceEntry {
        name: "kmnist", aliases: &[], needs_path: true,
        description: "the 4 IDX files of KMNIST",
        events: false, frame_shape: |_, _| Some([1, 28, 28]), normalization: Some(KMNIST_NORM),
        load: |dir, _, _| mnist::load(dir, "kmnist"),
    },
    SourceEntry {
        name: "cifar10", aliases: &[], needs_path: true,
        description: "`data_batch_{1..5}.bin`, `test_batch.bin` (or their `cifar-10-batches-bin/`)",
        events: false, frame_shape: |_, _| Some([3, 32, 32]), normalization: Some(CIFAR10_NORM),
        load: |dir, _, _| cifar::load(dir, CifarKind::Cifar10),
    },
    SourceEntry {
        name: "cifar100", aliases: &[], needs_path: true,
        description: "`train.bin`, `test.bin` (or `cifar-100-binary/`), fine labels",
        events: false, frame_shape: |_, _| Some([3, 32, 32]), normalization: Some(CIFAR100_NORM),
        load: |dir, _, _| cifar::load(dir, CifarKind::Cifar100),
    },
    SourceEntry {
        name: "folder", aliases: &["imagefolder"], needs_path: true,
        description: "`train/<class>/*` + `val/` or `test/`; CUB-200-2011, Stanford Dogs or \
                      Stanford Cars lists; or `<class>/*`",
        events: false, frame_shape: |c, _| Some([3, c.image_size, c.image_size]),
        normalization: Some(IMAGENET_NORM),
        load: |dir, c, _| folder::load(dir, c),
    },
    SourceEntry {
        name: "nmnist", aliases: &[], needs_path: true,
        description: "`train1K.txt` + `test100.txt` + `<id>.bs2`, or `Train/<digit>/*.bin` + \
                      `Test/…`",
        events: true, frame_shape: |_, r| Some(EventFormat::Nmnist.frame_shape(r)), normalization: None,
        load: nmnist::load,
    },
    SourceEntry {
        name: "cifar10dvs", aliases: &["cifar10-dvs"], needs_path: true,
        description: "`<class>/*.aedat` (AEDAT 2.0)",
        events: true, frame_shape: |_, r| Some(EventFormat::Cifar10Dvs.frame_shape(r)),
        normalization: None,
        load: |dir, c, t| dvs_folders::load(dir, c, t, EventFormat::Cifar10Dvs),
    },
    SourceEntry {
        name: "ncaltech101", aliases: &["n-caltech101"], needs_path: true,
        description: "`<class>/*.bin` (40-bit ATIS, 240×180)",
        events: true, frame_shape: |_, r| Some(EventFormat::NCaltech101.frame_shape(r)),
        normalization: None,
        load: |dir, c, t| dvs_folders::load(dir, c, t, EventFormat::NCaltech101),
    },
    SourceEntry {
        name: "dvsgesture", aliases: &["dvs128gesture", "gesture"], needs_path: true,
        description: "`*.aedat` (AEDAT 3.1) + `*_labels.csv`, `trials_to_train.txt` / \
                      `trials_to_test.txt`",
        events: true, frame_shape: |_, r| Some(EventFormat::DvsGesture.frame_shape(r)),
        normalization: None,
        load: gesture::load,
    },
    SourceEntry {
        name: "ncars", aliases: &["n-cars"], needs_path: true,
        description: "`train/{cars,background}/*.dat` + `test/…` (Prophesee DAT, 120×100)",
        events: true, frame_shape: |_, r| Some(EventFormat::NCars.frame_shape(r)),
        normalization: None,
        load: ncars::load,
    },
    SourceEntry {
        name: "stmnist", aliases: &["st-mnist"], needs_path: true,
        description: "`<digit>/*.mat` (or under `data_submission/`; ST-MNIST `spiketrain`, 10×10)",
        events: true, frame_shape: |_, r| Some(EventFormat::StMnist.frame_shape(r)),
        normalization: None,
        load: stmnist::load,
    },
    SourceEntry {
        name: "events", aliases: &[], needs_path: true,
        description: "`<class>/<recording>` or `train/<class>/…` + `test/…`, any supported event \
                      format (sniffed per file), sensor from the headers or the data",
        events: true,
        frame_shape: |_, r| match r {
            Resize::None => None,
            Resize::Area { height, width } | Resize::Nearest { height, width } => {
                Some([2, height, width])
            }
        },
        normalization: None,
        load: events_dir::load,
    },
];

/// Source names accepted by `--data`.
pub const SOURCE_NAMES: [&str; REGISTRY.len()] = {
    let mut names = [""; REGISTRY.len()];
    let mut i = 0;
    while i < names.len() {
        names[i] = REGISTRY[i].name;
        i += 1;
    }
    names
};

/// The entry named `name` (or one of its aliases).
pub fn find(name: &str) -> Option<&'static SourceEntry> {
    REGISTRY
        .iter()
        .find(|e| e.name == name || e.aliases.contains(&name))
}

/// A parsed `NAME:PATH`: its registry entry and its path.
#[derive(Clone)]
pub struct Source {
    entry: &'static SourceEntry,
    path: Option<PathBuf>,
}

impl Source {
    /// Parses `NAME` or `NAME:PATH`.
    pub fn parse(spec: &str) -> Result<Self, ConfigError> {
        let (name, path) = match spec.split_once(':') {
            Some((n, p)) => (n.trim(), Some(PathBuf::from(p.trim()))),
            None => (spec.trim(), None),
        };
        let Some(entry) = find(name) else {
            return Err(ConfigError::invalid(
                "data.source",
                spec,
                &format!(
                    "unknown source `{name}`; expected one of {}",
                    SOURCE_NAMES.join(", ")
                ),
            ));
        };
        let path = match path {
            _ if !entry.needs_path => None,
            Some(p) if !p.as_os_str().is_empty() => Some(p),
            _ => {
                return Err(ConfigError::invalid(
                    "data.source",
                    spec,
                    &format!("`{name}` needs a path: `{name}:PATH`"),
                ));
            }
        };
        Ok(Self { entry, path })
    }

    /// Its registry entry.
    pub fn entry(&self) -> &'static SourceEntry {
        self.entry
    }

    /// Its name as listed in [`SOURCE_NAMES`] (an alias resolved).
    pub fn name(&self) -> &'static str {
        self.entry.name
    }

    /// Its `PATH` (`None` for the embedded sources, which take none).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Whether samples are event frames.
    pub fn is_events(&self) -> bool {
        self.entry.events
    }
}

impl PartialEq for Source {
    fn eq(&self, other: &Self) -> bool {
        self.entry.name == other.entry.name && self.path == other.path
    }
}

impl Eq for Source {}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Source")
            .field("name", &self.entry.name)
            .field("path", &self.path)
            .finish()
    }
}
