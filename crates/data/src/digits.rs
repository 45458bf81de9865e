//! The embedded default dataset: UCI optical handwritten digits, 8×8, 1,797 images
//! (Alpaydin & Kaynak 1998; the copy shipped with scikit-learn, BSD-3-Clause — see
//! `embedded/NOTE.md`). Pixel values 0..16 are scaled to `[0, 1]`.
//!
//! Fixed split, no randomness: within each class, every fifth image (class-wise index ≡ 4
//! mod 5) is a test image — 355 test and 1,442 train images, every class in both.

use std::io::Read;

use flate2::read::GzDecoder;

use super::{Dataset, SampleKind, Split};
use crate::error::DataError;

const DIGITS_CSV_GZ: &[u8] = include_bytes!("embedded/digits.csv.gz");
const NAME: &str = "embedded:digits.csv.gz";

/// The embedded gzipped CSV (for datasets derived from the digits).
pub fn embedded_csv_gz() -> &'static [u8] {
    DIGITS_CSV_GZ
}

/// Parses the gzipped CSV (`64 pixel values, label` per line) into images and labels.
pub fn parse_csv_gz(bytes: &[u8], name: &str) -> Result<(Vec<f32>, Vec<u32>), DataError> {
    let mut text = String::new();
    GzDecoder::new(bytes)
        .read_to_string(&mut text)
        .map_err(|source| DataError::Io {
            path: name.into(),
            error: source,
        })?;
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for (line_no, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let bad = |what: String| DataError::Malformed {
            path: name.into(),
            location: format!("line {}", line_no + 1),
            what,
        };
        let fields: Vec<&str> = line.split(',').collect();
        if fields.len() != 65 {
            return Err(bad(format!("expected 65 fields, found {}", fields.len())));
        }
        for f in &fields[..64] {
            let v: f32 = f
                .trim()
                .parse()
                .map_err(|_| bad(format!("pixel `{f}` is not a number")))?;
            if !(0.0..=16.0).contains(&v) {
                return Err(bad(format!("pixel {v} outside 0..16")));
            }
            pixels.push(v / 16.0);
        }
        let label: u32 = fields[64]
            .trim()
            .parse()
            .map_err(|_| bad(format!("label `{}` is not an integer", fields[64])))?;
        if label > 9 {
            return Err(bad(format!("label {label} outside 0..9")));
        }
        labels.push(label);
    }
    Ok((pixels, labels))
}

/// The embedded digits with the fixed train/test split.
pub fn load() -> Result<Split, DataError> {
    let (pixels, labels) = parse_csv_gz(DIGITS_CSV_GZ, NAME)?;
    let mut seen = [0usize; 10];
    let (mut train_x, mut train_y, mut test_x, mut test_y) = (vec![], vec![], vec![], vec![]);
    for (i, &label) in labels.iter().enumerate() {
        let image = &pixels[i * 64..(i + 1) * 64];
        let k = seen[label as usize];
        seen[label as usize] += 1;
        if k % 5 == 4 {
            test_x.extend_from_slice(image);
            test_y.push(label);
        } else {
            train_x.extend_from_slice(image);
            train_y.push(label);
        }
    }
    Ok(Split {
        train: Dataset::new(
            "digits/train",
            SampleKind::Static,
            [1, 8, 8],
            10,
            train_x,
            train_y,
        )?,
        val: None,
        train_long: None,
        test: Dataset::new(
            "digits/test",
            SampleKind::Static,
            [1, 8, 8],
            10,
            test_x,
            test_y,
        )?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_digits_match_the_published_counts() {
        let (pixels, labels) = parse_csv_gz(DIGITS_CSV_GZ, NAME).unwrap();
        assert_eq!(labels.len(), 1797);
        assert_eq!(pixels.len(), 1797 * 64);
        let mut counts = [0usize; 10];
        labels.iter().for_each(|&l| counts[l as usize] += 1);
        assert_eq!(counts, [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]);
        let split = load().unwrap();
        assert_eq!(split.train.len() + split.test.len(), 1797);
        assert_eq!(split.test.len(), 355);
    }

    #[test]
    fn malformed_csv_names_the_line() {
        use flate2::{Compression, write::GzEncoder};
        use std::io::Write;
        let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
        enc.write_all(b"1,2,3\n").unwrap();
        let err = parse_csv_gz(&enc.finish().unwrap(), "x.csv.gz")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("x.csv.gz") && err.contains("line 1") && err.contains("65"),
            "{err}"
        );
        let err = parse_csv_gz(b"not gzip", "y.gz").unwrap_err().to_string();
        assert!(err.contains("y.gz"), "{err}");
    }
}
