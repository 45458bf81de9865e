//! ST-MNIST (See et al. 2020, the spiking tactile MNIST): one MAT-file per sample holding a
//! `spiketrain` array, in digit folders `0/` … `9/` — directly under `DIR`, under
//! `DIR/data_submission/` (the archive's layout), or under `DIR/train/` and `DIR/test/`. Without
//! `train/`+`test/` the set is split per class by seed (`split_ratio`, `split_seed`; the archive
//! has no official split). Frames are 10 × 10 taxels.

use std::path::Path;

use super::event_sets::{EventFormat, Integration, event_set, single};
use super::files::require_dir;
use super::nmnist::digit_folders;
use super::{DataConfig, config_as_data};
use crate::Split;
use crate::error::DataError;
use crate::events::stratified_split;

pub(super) fn load(dir: &Path, c: &DataConfig, t: usize) -> Result<Split, DataError> {
    require_dir(dir)?;
    let integ = Integration::from_config(c, t).map_err(config_as_data)?;
    let f = EventFormat::StMnist;
    let name = |w: &str| format!("stmnist:{}/{w}", dir.display());
    let (train, test) = if dir.join("train").is_dir() && dir.join("test").is_dir() {
        (
            digit_folders(&dir.join("train"), f)?,
            digit_folders(&dir.join("test"), f)?,
        )
    } else {
        let root = dir.join("data_submission");
        let root = if root.is_dir() {
            root
        } else {
            dir.to_path_buf()
        };
        let items = digit_folders(&root, f)?;
        let labels: Vec<u32> = items.iter().map(|(_, l)| *l).collect();
        let (tr, te) = stratified_split(&labels, c.split_ratio, c.split_seed);
        let pick = |ix: &[usize]| ix.iter().map(|&i| items[i].clone()).collect::<Vec<_>>();
        (pick(&tr), pick(&te))
    };
    Ok(Split::new(
        event_set(name("train"), &single(train, c.limit), f, &integ, c)?,
        event_set(name("test"), &single(test, c.limit), f, &integ, c)?,
    ))
}
