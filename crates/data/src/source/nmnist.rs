//! N-MNIST: SLAYER's NMNISTsmall (`train1K.txt`, `test100.txt`, `<id>.bs2`) or the archive's
//! `Train/<digit>/*.bin` and `Test/…`.

use std::path::{Path, PathBuf};

use super::event_sets::{EventFormat, Integration, event_set, single};
use super::files::{class_files, empty_dir, require_dir};
use super::{DataConfig, config_as_data};
use crate::Split;
use crate::error::DataError;
use crate::formats::{nmnist, path_name, read_file};

pub(super) fn load(dir: &Path, c: &DataConfig, t: usize) -> Result<Split, DataError> {
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
        val: None,
        train_long: None,
        test: event_set(name("test"), &single(test, c.limit), f, &integ, c)?,
    })
}

/// Class folders named by their digit (`0`..`9`), as in the N-MNIST archive.
pub(super) fn digit_folders(dir: &Path, f: EventFormat) -> Result<Vec<(PathBuf, u32)>, DataError> {
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
