//! Fine-grained image sets under `folder:`, recognised by their list files: CUB-200-2011
//! (`images.txt`, `train_test_split.txt`), Stanford Dogs (`train_list.{txt,mat}`), Stanford
//! Cars (`anno_train.csv`, `devkit/cars_train_annos.mat`, `cars_annos.mat`).

use std::path::{Path, PathBuf};

use super::DataConfig;
use super::files::{empty_dir, not_found};
use super::folder::image_dataset;
use crate::Split;
use crate::error::DataError;
use crate::formats::{mat, path_name, read_file};

/// A layout recognised by its files: when every one of `files` (relative to the root) exists,
/// `load` reads the set.
pub(super) struct Layout {
    /// Files that identify the layout.
    pub files: &'static [&'static str],
    /// Its loader.
    pub load: fn(&Path, &DataConfig) -> Result<Split, DataError>,
}

/// The layouts `folder:` tries, in order, when the root has no `train/` folder (the first
/// whose files all exist wins; none = bare class folders). A new layout is a loader here and
/// one line in this table.
pub(super) const LAYOUTS: &[Layout] = &[
    Layout {
        files: &["images.txt", "train_test_split.txt"],
        load: load_cub,
    },
    Layout {
        files: &["train_list.txt", "test_list.txt"],
        load: load_dogs,
    },
    Layout {
        files: &["anno_train.csv", "anno_test.csv"],
        load: load_cars,
    },
    Layout {
        files: &["train_list.mat"],
        load: load_dogs_mat,
    },
    Layout {
        files: &["devkit/cars_train_annos.mat"],
        load: load_cars_devkit,
    },
    Layout {
        files: &["cars_annos.mat"],
        load: load_cars_annos,
    },
];

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
        val: None,
        train_long: None,
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
        val: None,
        train_long: None,
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
