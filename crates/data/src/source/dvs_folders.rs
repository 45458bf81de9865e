//! Event recordings in class folders, split per class by seed: CIFAR10-DVS (`<class>/*.aedat`)
//! and N-Caltech101 (`<class>/*.bin`).

use std::path::Path;

use super::event_sets::{EventFormat, Integration, event_set, single};
use super::files::class_files;
use super::{DataConfig, config_as_data};
use crate::Split;
use crate::error::DataError;
use crate::events::stratified_split;

pub(super) fn load(
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
        val: None,
        train_long: None,
        test: event_set(name("test"), &single(pick(&te), c.limit), f, &integ, c)?,
    })
}
