//! `events:DIR` — recordings in class folders, in any format [`recording`] reads (sniffed per
//! file): `<class>/<recording>` split per class by seed (`split_ratio`, `split_seed`), or
//! `train/<class>/…` + `test/<class>/…` (`val/` is taken when there is no `test/`). The sensor
//! is the largest over the recordings (from their headers, else their largest coordinates), so
//! every recording is read once at load to find it; frames are cached as for every event source.

use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::event_sets::{EventFormat, Integration, event_set, single};
use super::files::{Labelled, empty_dir, list, require_dir};
use super::{DataConfig, config_as_data};
use crate::Split;
use crate::error::DataError;
use crate::events::stratified_split;
use crate::formats::recording::{self, sniff};

pub(super) fn load(dir: &Path, c: &DataConfig, t: usize) -> Result<Split, DataError> {
    require_dir(dir)?;
    let integ = Integration::from_config(c, t).map_err(config_as_data)?;
    let sub = |names: &[&str]| names.iter().map(|n| dir.join(n)).find(|p| p.is_dir());
    let (classes, train, test) = match (sub(&["train", "Train"]), sub(&["test", "Test", "val"])) {
        (Some(tr), Some(te)) => {
            let mut names = class_names(&tr)?;
            names.extend(class_names(&te)?);
            names.sort();
            names.dedup();
            let train = recordings(&tr, &names)?;
            let test = recordings(&te, &names)?;
            (names, train, test)
        }
        _ => {
            let names = class_names(dir)?;
            let items = recordings(dir, &names)?;
            let labels: Vec<u32> = items.iter().map(|(_, l)| *l).collect();
            let (tr, te) = stratified_split(&labels, c.split_ratio, c.split_seed);
            let pick = |ix: &[usize]| ix.iter().map(|&i| items[i].clone()).collect::<Vec<_>>();
            (names, pick(&tr), pick(&te))
        }
    };
    if train.is_empty() {
        return Err(empty_dir(
            dir,
            "class folders holding event recordings (AEDAT, Prophesee .dat, .bin/.bs2, \
             .npy/.npz, ST-MNIST .mat)",
        ));
    }
    let (train, test) = (single(train, c.limit), single(test, c.limit));
    let (width, height) = sensor(train.iter().chain(&test).map(|f| f.path.as_path()))?;
    let f = EventFormat::Any {
        width,
        height,
        classes: classes.len() as u32,
    };
    let name = |w: &str| format!("events:{}/{w}", dir.display());
    Ok(Split::new(
        event_set(name("train"), &train, f, &integ, c)?,
        event_set(name("test"), &test, f, &integ, c)?,
    ))
}

/// The sensor `(width, height)` an `events:DIR` set integrates its frames on (every recording
/// is read).
pub fn folder_sensor(dir: &Path) -> Result<(u16, u16), DataError> {
    require_dir(dir)?;
    let mut paths = Vec::new();
    for root in [dir.join("train"), dir.join("test"), dir.to_path_buf()] {
        if root.is_dir() {
            let names = class_names(&root)?;
            paths.extend(recordings(&root, &names)?.into_iter().map(|(p, _)| p));
        }
    }
    paths.sort();
    paths.dedup();
    sensor(paths.iter().map(PathBuf::as_path))
}

/// The class folders of `dir`, by name.
fn class_names(dir: &Path) -> Result<Vec<String>, DataError> {
    Ok(list(dir, true)?
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect())
}

/// The recordings of the class folders `names` under `dir` (a folder may be missing), labelled
/// by their index in `names`: every file whose first bytes or extension name a recording
/// format.
fn recordings(dir: &Path, names: &[String]) -> Result<Labelled, DataError> {
    let mut out = Vec::new();
    for (k, n) in names.iter().enumerate() {
        let cdir = dir.join(n);
        if !cdir.is_dir() {
            continue;
        }
        for f in list(&cdir, false)? {
            if sniff(&head(&f)?, &f).is_some() {
                out.push((f, k as u32));
            }
        }
    }
    Ok(out)
}

/// The first 32 bytes of a file (fewer when it is shorter).
fn head(path: &Path) -> Result<Vec<u8>, DataError> {
    use std::io::Read;
    let io = |error| DataError::Io {
        path: path.to_path_buf(),
        error,
    };
    let mut buf = Vec::with_capacity(32);
    std::fs::File::open(path)
        .map_err(io)?
        .take(32)
        .read_to_end(&mut buf)
        .map_err(io)?;
    Ok(buf)
}

/// The sensor `(width, height)` that holds every recording: the largest of their sensors.
fn sensor<'a>(paths: impl Iterator<Item = &'a Path>) -> Result<(u16, u16), DataError> {
    let paths: Vec<PathBuf> = paths.map(Path::to_path_buf).collect();
    let sizes = paths
        .par_iter()
        .map(|p| recording::recording_from_path(p).map(|r| (r.events.width, r.events.height)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(sizes
        .into_iter()
        .fold((1, 1), |(w, h), (a, b)| (w.max(a), h.max(b))))
}
