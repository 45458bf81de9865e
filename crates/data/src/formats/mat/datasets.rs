//! Data sets stored in MAT-files: the ST-MNIST `spiketrain` layout and the Stanford Dogs /
//! Stanford Cars split lists, extracted from the variables [`super::parse`] reads.

use super::parse::{MatArray, MatValue, MatVariable};
use crate::error::DataError;
use crate::events::Events;
use crate::formats::malformed;

/// ST-MNIST events from its `spiketrain` array: 101 rows, one column per sample time; rows
/// `0..100` are taxels `a` (x = a % 10, y = a / 10) holding -1 (OFF, polarity 0), 0 or +1 (ON,
/// polarity 1); row 100 is the time in seconds (t in µs = round(seconds · 1e6)). One event per
/// non-zero taxel, in column order then taxel order, on a 10 × 10 sensor.
pub fn stmnist_events(a: &MatArray) -> Result<Events, DataError> {
    let name = format!("MAT array `{}`", a.name);
    if a.dims.len() != 2 || a.dims[0] != 101 {
        return Err(malformed(
            &name,
            "dimensions",
            format!("expected 101 × N, found {:?}", a.dims),
        ));
    }
    let mut ev = Events::with_capacity(10, 10, a.dims[1]);
    for (j, col) in a.values.chunks_exact(101).enumerate() {
        let secs = col[100];
        let us = (secs * 1e6).round();
        if !(us.is_finite() && (0.0..=1e15).contains(&us)) {
            return Err(malformed(
                &name,
                format!("column {j}"),
                format!("time {secs} s is not a finite time >= 0"),
            ));
        }
        for (k, &v) in col[..100].iter().enumerate() {
            let p = match v {
                0.0 => continue,
                1.0 => 1,
                -1.0 => 0,
                o => {
                    return Err(malformed(
                        &name,
                        format!("column {j}, row {k}"),
                        format!("taxel value {o}, expected -1, 0 or 1"),
                    ));
                }
            };
            ev.push((k % 10) as u16, (k / 10) as u16, us as u64, p);
        }
    }
    Ok(ev)
}

/// A 1-based class number stored as a MAT scalar, as a 0-based label.
fn one_based(v: f64) -> Option<u32> {
    (v.is_finite() && v.fract() == 0.0 && (1.0..=u32::MAX as f64).contains(&v))
        .then(|| v as u32 - 1)
}

/// The variable `var` of `vars`, or an error naming the file.
fn variable<'a>(
    vars: &'a [MatVariable],
    var: &str,
    name: &str,
) -> Result<&'a MatVariable, DataError> {
    vars.iter().find(|v| v.name == var).ok_or_else(|| {
        let found: Vec<&str> = vars.iter().map(|v| v.name.as_str()).collect();
        malformed(
            name,
            "variables",
            format!("no variable `{var}` (found {found:?})"),
        )
    })
}

/// Stanford Dogs `train_list.mat` / `test_list.mat`: `file_list` (N × 1 cell of char,
/// `n02085620-Chihuahua/n02085620_5927.jpg`, relative to `Images/`) and `labels` (N × 1,
/// 1-based class). Returns (relative path, 0-based label) in file order. Every file of one
/// class folder must have the same label.
pub fn stanford_dogs_list(
    vars: &[MatVariable],
    name: &str,
) -> Result<Vec<(String, u32)>, DataError> {
    let files = variable(vars, "file_list", name)?;
    let labels = variable(vars, "labels", name)?;
    let at = |v: &MatVariable, i: usize| {
        format!(
            "`{}` (element at byte {}), entry {}",
            v.name,
            v.offset,
            i + 1
        )
    };
    let MatValue::Cell { items, .. } = &files.value else {
        return Err(malformed(
            name,
            at(files, 0),
            "`file_list` is not a cell array",
        ));
    };
    let MatValue::Numeric { values, .. } = &labels.value else {
        return Err(malformed(
            name,
            at(labels, 0),
            "`labels` is not a numeric array",
        ));
    };
    if values.len() != items.len() {
        return Err(malformed(
            name,
            at(labels, 0),
            format!(
                "{} labels for {} files in `file_list`",
                values.len(),
                items.len()
            ),
        ));
    }
    let mut folders: std::collections::HashMap<String, u32> = Default::default();
    let mut out = Vec::with_capacity(items.len());
    for (i, (item, &v)) in items.iter().zip(values).enumerate() {
        let rel = item
            .text()
            .ok_or_else(|| malformed(name, at(files, i), "not a one-row char array"))?;
        let Some((folder, _)) = rel.split_once('/') else {
            return Err(malformed(
                name,
                at(files, i),
                format!("expected `<class>/<file>`, found `{rel}`"),
            ));
        };
        let label = one_based(v).ok_or_else(|| {
            malformed(
                name,
                at(labels, i),
                format!("label {v} is not a class number ≥ 1"),
            )
        })?;
        if let Some(&other) = folders.get(folder)
            && other != label
        {
            return Err(malformed(
                name,
                at(labels, i),
                format!(
                    "class folder `{folder}` has labels {} and {}",
                    other + 1,
                    label + 1
                ),
            ));
        }
        folders.insert(folder.to_string(), label);
        out.push((rel, label));
    }
    Ok(out)
}

/// One Stanford Cars annotation.
#[derive(Debug, Clone, PartialEq)]
pub struct CarsAnnotation {
    /// Image path: `fname` (relative to `cars_train/` or `cars_test/`) or, in `cars_annos.mat`,
    /// `relative_im_path` (relative to the data set root, `car_ims/000001.jpg`).
    pub fname: String,
    /// 0-based class (the file's `class` minus 1).
    pub class: u32,
    /// `[bbox_x1, bbox_y1, bbox_x2, bbox_y2]` when all four fields are present.
    pub bbox: Option<[f64; 4]>,
    /// `cars_annos.mat` only: whether the image belongs to the test split (`test` = 1).
    pub test: Option<bool>,
}

/// The `annotations` struct array of the Stanford Cars devkit (`cars_train_annos.mat`,
/// `cars_test_annos_withlabels.mat`: fields `bbox_x1..bbox_y2`, `class`, `fname`) or of
/// `cars_annos.mat` (`relative_im_path`, `bbox_*`, `class`, `test`), in file order.
pub fn stanford_cars_annotations(
    vars: &[MatVariable],
    name: &str,
) -> Result<Vec<CarsAnnotation>, DataError> {
    let v = variable(vars, "annotations", name)?;
    let at = |i: usize| {
        format!(
            "`annotations` (element at byte {}), entry {}",
            v.offset,
            i + 1
        )
    };
    let a = &v.value;
    if !matches!(a, MatValue::Struct { .. }) {
        return Err(malformed(
            name,
            at(0),
            "`annotations` is not a struct array",
        ));
    }
    let path_field = ["fname", "relative_im_path"]
        .into_iter()
        .find(|f| a.has_field(f))
        .ok_or_else(|| {
            malformed(
                name,
                at(0),
                "`annotations` has no `fname` or `relative_im_path` field",
            )
        })?;
    if !a.has_field("class") {
        return Err(malformed(
            name,
            at(0),
            "`annotations` has no `class` field (unlabelled test annotations?)",
        ));
    }
    let mut out = Vec::with_capacity(a.len());
    for i in 0..a.len() {
        let fname = a
            .field(i, path_field)
            .and_then(MatValue::text)
            .ok_or_else(|| {
                malformed(
                    name,
                    at(i),
                    format!("`{path_field}` is not a one-row char array"),
                )
            })?;
        let class = a.field(i, "class").and_then(MatValue::scalar);
        let class = class.and_then(one_based).ok_or_else(|| {
            malformed(
                name,
                at(i),
                format!("`class` {class:?} is not a class number ≥ 1"),
            )
        })?;
        let mut bbox = [0.0; 4];
        let mut have = 0;
        for (k, f) in ["bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2"]
            .iter()
            .enumerate()
        {
            if let Some(x) = a.field(i, f).and_then(MatValue::scalar) {
                bbox[k] = x;
                have += 1;
            }
        }
        let test = match a.field(i, "test") {
            None => None,
            Some(t) => match t.scalar() {
                Some(0.0) => Some(false),
                Some(1.0) => Some(true),
                o => {
                    return Err(malformed(
                        name,
                        at(i),
                        format!("`test` {o:?} is neither 0 nor 1"),
                    ));
                }
            },
        };
        out.push(CarsAnnotation {
            fname,
            class,
            bbox: (have == 4).then_some(bbox),
            test,
        });
    }
    Ok(out)
}

/// The `class_names` cell array of `cars_meta.mat` (or `cars_annos.mat`).
pub fn stanford_cars_class_names(
    vars: &[MatVariable],
    name: &str,
) -> Result<Vec<String>, DataError> {
    let v = variable(vars, "class_names", name)?;
    let MatValue::Cell { items, .. } = &v.value else {
        return Err(malformed(
            name,
            format!("`class_names` (element at byte {})", v.offset),
            "not a cell array",
        ));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            item.text().ok_or_else(|| {
                malformed(
                    name,
                    format!(
                        "`class_names` (element at byte {}), entry {}",
                        v.offset,
                        i + 1
                    ),
                    "not a one-row char array",
                )
            })
        })
        .collect()
}
