//! IDX files (MNIST, Fashion-MNIST, KMNIST), raw or gzipped (detected by the gzip magic `1f 8b`).
//!
//! Layout (big-endian): two zero bytes, a type byte (`0x08` = u8, the only type read here), the
//! number of dimensions, one u32 per dimension, then the row-major data. Images have magic
//! `0x00000803` (2051: u8, 3 dims), labels `0x00000801` (2049: u8, 1 dim).

use std::io::Read;
use std::path::Path;

use flate2::read::MultiGzDecoder;

use super::{be_u32, malformed, path_name, read_file};
use crate::error::DataError;
use crate::{Dataset, SampleKind};

/// Magic of an IDX u8 image file (3 dims).
pub const IMAGES_MAGIC: u32 = 2051;
/// Magic of an IDX u8 label file (1 dim).
pub const LABELS_MAGIC: u32 = 2049;

/// A parsed u8 IDX array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxArray {
    /// Size of each dimension, outermost first.
    pub dims: Vec<usize>,
    /// Row-major values, `dims.iter().product()` of them.
    pub data: Vec<u8>,
}

/// Decompresses `bytes` when they start with the gzip magic, else returns them unchanged.
pub fn maybe_gunzip(bytes: &[u8], name: &str) -> Result<Vec<u8>, DataError> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        MultiGzDecoder::new(bytes)
            .read_to_end(&mut out)
            .map_err(|source| DataError::Io {
                path: name.into(),
                error: source,
            })?;
        Ok(out)
    } else {
        Ok(bytes.to_vec())
    }
}

/// Parses a (possibly gzipped) u8 IDX file. `expect_magic` checks the whole magic number
/// (2051 / 2049) when given.
pub fn parse_idx(
    bytes: &[u8],
    name: &str,
    expect_magic: Option<u32>,
) -> Result<IdxArray, DataError> {
    let raw = maybe_gunzip(bytes, name)?;
    let magic = be_u32(&raw, 0).ok_or_else(|| {
        malformed(
            name,
            "byte 0",
            format!("{} bytes, too short for an IDX magic", raw.len()),
        )
    })?;
    if let Some(m) = expect_magic
        && magic != m
    {
        return Err(malformed(
            name,
            "byte 0",
            format!("magic {magic} (0x{magic:08x}), expected {m}"),
        ));
    }
    if magic >> 16 != 0 {
        return Err(malformed(
            name,
            "byte 0",
            format!("magic 0x{magic:08x} does not start with two zero bytes"),
        ));
    }
    let kind = (magic >> 8) & 0xff;
    if kind != 0x08 {
        return Err(malformed(
            name,
            "byte 2",
            format!("data type 0x{kind:02x}, only 0x08 (u8) is supported"),
        ));
    }
    let ndims = (magic & 0xff) as usize;
    if ndims == 0 {
        return Err(malformed(name, "byte 3", "zero dimensions"));
    }
    let header = 4 + 4 * ndims;
    if raw.len() < header {
        return Err(malformed(
            name,
            "byte 4",
            format!(
                "{} dimensions need a {header}-byte header, file has {} bytes",
                ndims,
                raw.len()
            ),
        ));
    }
    let mut dims = Vec::with_capacity(ndims);
    let mut total: usize = 1;
    for i in 0..ndims {
        let d = be_u32(&raw, 4 + 4 * i).unwrap_or(0) as usize;
        dims.push(d);
        total = total.checked_mul(d).ok_or_else(|| {
            malformed(
                name,
                format!("byte {}", 4 + 4 * i),
                "dimension product overflows",
            )
        })?;
    }
    let have = raw.len() - header;
    if have != total {
        return Err(malformed(
            name,
            format!("byte {header}"),
            format!("dimensions {dims:?} need {total} data bytes, found {have}"),
        ));
    }
    let mut data = raw;
    data.drain(..header);
    Ok(IdxArray { dims, data })
}

/// [`parse_idx`] on a file.
pub fn idx_from_path(path: &Path, expect_magic: Option<u32>) -> Result<IdxArray, DataError> {
    parse_idx(&read_file(path)?, &path_name(path), expect_magic)
}

/// Loads an image file (magic 2051) and a label file (magic 2049) into a static dataset:
/// frames `[1, rows, cols]` with pixels scaled by 1/255, labels checked against `num_classes`.
pub fn load_idx_pair(
    images: &Path,
    labels: &Path,
    num_classes: usize,
) -> Result<Dataset, DataError> {
    let img = idx_from_path(images, Some(IMAGES_MAGIC))?;
    let lab = idx_from_path(labels, Some(LABELS_MAGIC))?;
    let (n, rows, cols) = (img.dims[0], img.dims[1], img.dims[2]);
    if lab.dims[0] != n {
        return Err(DataError::Malformed {
            path: images.to_path_buf(),
            location: "header (count at byte 4)".into(),
            what: format!(
                "{n} images in {} but {} labels in {}",
                images.display(),
                lab.dims[0],
                labels.display()
            ),
        });
    }
    if let Some((i, &l)) = lab
        .data
        .iter()
        .enumerate()
        .find(|(_, l)| **l as usize >= num_classes)
    {
        return Err(malformed(
            &path_name(labels),
            format!("label {i} (byte {})", 8 + i),
            format!("label {l} outside 0..{num_classes}"),
        ));
    }
    let values: Vec<f32> = img.data.iter().map(|&v| v as f32 / 255.0).collect();
    let labels_u32: Vec<u32> = lab.data.iter().map(|&l| l as u32).collect();
    Dataset::new(
        path_name(images),
        SampleKind::Static,
        [1, rows, cols],
        num_classes,
        values,
        labels_u32,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idx(magic: u32, dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut v = magic.to_be_bytes().to_vec();
        dims.iter()
            .for_each(|d| v.extend_from_slice(&d.to_be_bytes()));
        v.extend_from_slice(data);
        v
    }

    #[test]
    fn parses_raw_and_gzipped() {
        let raw = idx(2051, &[2, 2, 3], &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 255]);
        let a = parse_idx(&raw, "a", Some(2051)).unwrap();
        assert_eq!(a.dims, vec![2, 2, 3]);
        assert_eq!(a.data[11], 255);
        use flate2::{Compression, write::GzEncoder};
        use std::io::Write;
        let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
        enc.write_all(&raw).unwrap();
        assert_eq!(parse_idx(&enc.finish().unwrap(), "a.gz", None).unwrap(), a);
    }

    #[test]
    fn rejects_bad_headers_with_location() {
        let e = parse_idx(&idx(2049, &[5], &[1, 2]), "l", Some(2049))
            .unwrap_err()
            .to_string();
        assert!(e.contains("need 5") && e.contains("byte 8"), "{e}");
        let e = parse_idx(&idx(2049, &[1], &[1]), "l", Some(2051))
            .unwrap_err()
            .to_string();
        assert!(e.contains("magic 2049"), "{e}");
        let e = parse_idx(&idx(2051, &[u32::MAX, u32::MAX, u32::MAX], &[]), "l", None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("l:"), "{e}");
        assert!(parse_idx(&[0, 0, 8], "s", None).is_err());
        assert!(parse_idx(&[0x1f, 0x8b, 0], "g", None).is_err());
    }
}
