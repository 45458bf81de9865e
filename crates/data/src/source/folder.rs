//! Image folders: `train/<class>/*` with `val/` or `test/`, the fine-grained layouts sniffed by
//! their list files ([`super::fine_grained`]), or bare `<class>/*` split 9:1 by seed. Decoded
//! into memory, or streamed when large.

use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::DataConfig;
use super::files::{class_files, empty_dir, has_ext, list, not_found, require_dir};
use super::fine_grained::LAYOUTS;
use crate::error::DataError;
use crate::events::stratified_split;
use crate::formats::read_file;
use crate::stream::{Decoder, LazyItem, LazySamples};
use crate::{Dataset, SampleKind, Split};

const IMAGE_EXTS: [&str; 3] = ["jpg", "jpeg", "png"];

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

pub(super) fn image_dataset(
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

pub(super) fn load(root: &Path, c: &DataConfig) -> Result<Split, DataError> {
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
            val: None,
            train_long: None,
            test: image_dataset(name("test"), &limit(test), n, c)?,
        });
    }
    if let Some(layout) = LAYOUTS
        .iter()
        .find(|l| l.files.iter().all(|f| root.join(f).is_file()))
    {
        return (layout.load)(root, c);
    }
    let (classes, items) = class_files(root, &IMAGE_EXTS)?;
    let labels: Vec<u32> = items.iter().map(|(_, l)| *l).collect();
    let (tr, te) = stratified_split(&labels, c.split_ratio, c.split_seed);
    let pick = |ix: &[usize]| ix.iter().map(|&i| items[i].clone()).collect::<Vec<_>>();
    Ok(Split {
        train: image_dataset(name("train"), &limit(pick(&tr)), classes.len(), c)?,
        val: None,
        train_long: None,
        test: image_dataset(name("test"), &limit(pick(&te)), classes.len(), c)?,
    })
}
