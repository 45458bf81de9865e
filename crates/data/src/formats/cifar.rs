//! CIFAR-10 / CIFAR-100 binary batches (`cifar-10-batches-bin/`, `cifar-100-binary/`), as
//! published by Krizhevsky on the CIFAR page ("binary version").
//!
//! No header. CIFAR-10 records are 3,073 bytes: one label byte (0..9) then 3,072 pixel bytes —
//! 1,024 red, 1,024 green, 1,024 blue, each 32 × 32 row-major. CIFAR-100 records are 3,074 bytes:
//! a coarse label byte (0..19), a fine label byte (0..99), then the same 3,072 pixel bytes.
//! `data_batch_1.bin` … `data_batch_5.bin` (10,000 records each) and `test_batch.bin` make
//! CIFAR-10; `train.bin` (50,000) and `test.bin` (10,000) make CIFAR-100.

use std::path::Path;

use super::{malformed, path_name, read_file};
use crate::error::DataError;

/// Pixel bytes per record (3 × 32 × 32).
pub const PIXELS: usize = 3 * 32 * 32;

/// Which of the two layouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CifarKind {
    /// One label byte per record, 10 classes.
    Cifar10,
    /// Coarse and fine label bytes per record, 20 / 100 classes.
    Cifar100,
}

impl CifarKind {
    /// Bytes per record.
    pub fn record_len(self) -> usize {
        match self {
            CifarKind::Cifar10 => 1 + PIXELS,
            CifarKind::Cifar100 => 2 + PIXELS,
        }
    }

    /// Number of (fine) classes.
    pub fn num_classes(self) -> usize {
        match self {
            CifarKind::Cifar10 => 10,
            CifarKind::Cifar100 => 100,
        }
    }
}

/// A parsed batch file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CifarBatch {
    /// Fine labels (CIFAR-10: the only label).
    pub labels: Vec<u8>,
    /// Coarse labels (CIFAR-100 only, else empty).
    pub coarse: Vec<u8>,
    /// Pixels, `labels.len() * 3072` bytes, channel-major per image (`[3, 32, 32]`).
    pub pixels: Vec<u8>,
}

impl CifarBatch {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// Parses one binary batch, checking the record size and every label's range.
pub fn parse_cifar(bytes: &[u8], name: &str, kind: CifarKind) -> Result<CifarBatch, DataError> {
    let rec = kind.record_len();
    if bytes.is_empty() {
        return Err(malformed(name, "byte 0", "empty file, no records"));
    }
    if !bytes.len().is_multiple_of(rec) {
        let whole = bytes.len() / rec;
        return Err(malformed(
            name,
            format!("record {whole} (byte {})", whole * rec),
            format!(
                "{} bytes is not a multiple of the {rec}-byte record ({} trailing bytes)",
                bytes.len(),
                bytes.len() % rec
            ),
        ));
    }
    let n = bytes.len() / rec;
    let mut out = CifarBatch {
        labels: Vec::with_capacity(n),
        coarse: Vec::new(),
        pixels: Vec::with_capacity(n * PIXELS),
    };
    for (i, r) in bytes.chunks_exact(rec).enumerate() {
        let bad = |what: String| malformed(name, format!("record {i} (byte {})", i * rec), what);
        match kind {
            CifarKind::Cifar10 => {
                if r[0] >= 10 {
                    return Err(bad(format!("label {} outside 0..10", r[0])));
                }
                out.labels.push(r[0]);
            }
            CifarKind::Cifar100 => {
                if r[0] >= 20 {
                    return Err(bad(format!("coarse label {} outside 0..20", r[0])));
                }
                if r[1] >= 100 {
                    return Err(bad(format!("fine label {} outside 0..100", r[1])));
                }
                out.coarse.push(r[0]);
                out.labels.push(r[1]);
            }
        }
        out.pixels.extend_from_slice(&r[rec - PIXELS..]);
    }
    Ok(out)
}

/// [`parse_cifar`] on a file.
pub fn cifar_from_path(path: &Path, kind: CifarKind) -> Result<CifarBatch, DataError> {
    parse_cifar(&read_file(path)?, &path_name(path), kind)
}

/// The train and test file names of `kind`.
pub fn file_names(kind: CifarKind) -> (Vec<&'static str>, Vec<&'static str>) {
    match kind {
        CifarKind::Cifar10 => (
            vec![
                "data_batch_1.bin",
                "data_batch_2.bin",
                "data_batch_3.bin",
                "data_batch_4.bin",
                "data_batch_5.bin",
            ],
            vec!["test_batch.bin"],
        ),
        CifarKind::Cifar100 => (vec!["train.bin"], vec!["test.bin"]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records built from the published layout (no real CIFAR file is shipped here).
    fn record(labels: &[u8], fill: u8) -> Vec<u8> {
        let mut r = labels.to_vec();
        r.extend((0..PIXELS).map(|i| fill.wrapping_add((i / 1024) as u8)));
        r
    }

    #[test]
    fn cifar10_records_decode() {
        let mut b = record(&[3], 10);
        b.extend(record(&[9], 200));
        let c = parse_cifar(&b, "data_batch_1.bin", CifarKind::Cifar10).unwrap();
        assert_eq!(c.labels, vec![3, 9]);
        assert_eq!(c.pixels.len(), 2 * PIXELS);
        // red plane, green plane, blue plane of image 1
        assert_eq!(
            (
                c.pixels[PIXELS],
                c.pixels[PIXELS + 1024],
                c.pixels[PIXELS + 2048]
            ),
            (200, 201, 202)
        );
        let e = parse_cifar(&b[..3073 + 5], "t.bin", CifarKind::Cifar10)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("t.bin") && e.contains("record 1 (byte 3073)"),
            "{e}"
        );
        let e = parse_cifar(&record(&[10], 0), "t.bin", CifarKind::Cifar10)
            .unwrap_err()
            .to_string();
        assert!(e.contains("record 0") && e.contains("label 10"), "{e}");
    }

    #[test]
    fn cifar100_has_coarse_and_fine() {
        let mut b = record(&[19, 99], 1);
        b.extend(record(&[0, 42], 2));
        let c = parse_cifar(&b, "train.bin", CifarKind::Cifar100).unwrap();
        assert_eq!(
            (c.coarse.clone(), c.labels.clone()),
            (vec![19, 0], vec![99, 42])
        );
        assert_eq!(c.pixels[0], 1);
        let e = parse_cifar(&record(&[20, 1], 0), "x", CifarKind::Cifar100)
            .unwrap_err()
            .to_string();
        assert!(e.contains("coarse label 20"), "{e}");
        let e = parse_cifar(&record(&[1, 100], 0), "x", CifarKind::Cifar100)
            .unwrap_err()
            .to_string();
        assert!(e.contains("fine label 100"), "{e}");
        assert!(parse_cifar(&[], "x", CifarKind::Cifar100).is_err());
    }
}
