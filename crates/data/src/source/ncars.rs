//! N-CARS (Sironi et al., CVPR 2018) as Prophesee distributes it: `train/` and `test/` (or
//! `n-cars_train/`, `n-cars_test/`), each with `background/` (class 0) and `cars/` (class 1)
//! holding one Prophesee DAT recording per sample (`obj_*_td.dat`). Frames are 120 × 100
//! (tonic's sensor size for the set; the recordings are crops within it).

use std::path::{Path, PathBuf};

use super::event_sets::{EventFormat, Integration, event_set, single};
use super::files::{empty_dir, has_ext, list, not_found, require_dir};
use super::{DataConfig, config_as_data};
use crate::Split;
use crate::error::DataError;

/// The classes, in label order.
const CLASSES: [&str; 2] = ["background", "cars"];

pub(super) fn load(dir: &Path, c: &DataConfig, t: usize) -> Result<Split, DataError> {
    require_dir(dir)?;
    let integ = Integration::from_config(c, t).map_err(config_as_data)?;
    let f = EventFormat::NCars;
    let sub = |names: [&str; 2]| names.iter().map(|n| dir.join(n)).find(|p| p.is_dir());
    let (Some(tr), Some(te)) = (sub(["train", "n-cars_train"]), sub(["test", "n-cars_test"]))
    else {
        return Err(empty_dir(
            dir,
            "N-CARS `train/` and `test/` folders (each with `background/` and `cars/`)",
        ));
    };
    let name = |w: &str| format!("ncars:{}/{w}", dir.display());
    Ok(Split::new(
        event_set(name("train"), &single(split(&tr)?, c.limit), f, &integ, c)?,
        event_set(name("test"), &single(split(&te)?, c.limit), f, &integ, c)?,
    ))
}

/// The `.dat` files of `background/` and `cars/` under `dir`, labelled 0 and 1.
fn split(dir: &Path) -> Result<Vec<(PathBuf, u32)>, DataError> {
    let mut out = Vec::new();
    for (label, class) in CLASSES.iter().enumerate() {
        let cdir = dir.join(class);
        if !cdir.is_dir() {
            return Err(not_found(&cdir, "N-CARS class folder missing"));
        }
        for f in list(&cdir, false)? {
            if has_ext(&f, &["dat"]) {
                out.push((f, label as u32));
            }
        }
    }
    if out.is_empty() {
        return Err(empty_dir(
            dir,
            "`.dat` recordings in `background/` or `cars/`",
        ));
    }
    Ok(out)
}
