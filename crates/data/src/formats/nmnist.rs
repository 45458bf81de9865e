//! N-MNIST `.bin` files (Orchard et al. 2015), also SLAYER's `.bs2` copies.
//!
//! No header; 5-byte big-endian records: byte 0 = x, byte 1 = y, byte 2 bit 7 = polarity
//! (1 = ON), byte 2 bits 6..0 : byte 3 : byte 4 = 23-bit timestamp (µs). A record with
//! `y == 240` marks a timestamp overflow: it is dropped and 2^13 is added to every later
//! timestamp (as tonic's `read_mnist_file`). The sensor crop is 34 × 34.

use std::path::Path;

use super::{malformed, path_name, read_file};
use crate::error::DataError;
use crate::events::{Events, Resize, SplitBy, to_frames};
use crate::{Dataset, SampleKind, Split};

/// Sensor width and height of N-MNIST.
pub const SIZE: u16 = 34;
/// The `y` value of an overflow record.
pub const OVERFLOW_Y: u8 = 240;
/// Added to later timestamps at each overflow record.
pub const OVERFLOW_INCREMENT: u64 = 1 << 13;

/// Parses one N-MNIST recording.
pub fn parse_nmnist(bytes: &[u8], name: &str) -> Result<Events, DataError> {
    parse_bin40(bytes, name, SIZE, SIZE)
}

/// Parses a 40-bit ATIS `.bin` recording (N-MNIST, N-Caltech101) onto a `width` × `height`
/// sensor; an event outside it is an error naming the record.
pub fn parse_bin40(bytes: &[u8], name: &str, width: u16, height: u16) -> Result<Events, DataError> {
    if !bytes.len().is_multiple_of(5) {
        let whole = bytes.len() / 5;
        return Err(malformed(
            name,
            format!("record {whole} (byte {})", whole * 5),
            format!(
                "{} bytes is not a multiple of 5 ({} trailing bytes)",
                bytes.len(),
                bytes.len() % 5
            ),
        ));
    }
    let mut ev = Events::with_capacity(width, height, bytes.len() / 5);
    let mut offset = 0u64;
    for (i, r) in bytes.chunks_exact(5).enumerate() {
        if r[1] == OVERFLOW_Y {
            offset += OVERFLOW_INCREMENT;
            continue;
        }
        if r[0] as u16 >= width || r[1] as u16 >= height {
            return Err(malformed(
                name,
                format!("record {i} (byte {})", i * 5),
                format!(
                    "event at x={}, y={} outside the {width}x{height} sensor",
                    r[0], r[1]
                ),
            ));
        }
        let t = (((r[2] & 0x7f) as u64) << 16) | ((r[3] as u64) << 8) | r[4] as u64;
        ev.push(r[0] as u16, r[1] as u16, t + offset, r[2] >> 7);
    }
    Ok(ev)
}

/// Parses an N-Caltech101 recording (the 40-bit ATIS format of [`parse_bin40`]) the way
/// tonic's `NCALTECH101` does: coordinates are shifted so that the smallest x and the smallest
/// y of the recording become 0 (`events["x"] -= events["x"].min()`; the saccades sweep a
/// region that does not start at the sensor corner). tonic then keeps every event and lets the
/// sensor size vary per recording; here frames have a fixed `width` × `height` (240 × 180),
/// so an event that still falls outside after the shift is skipped (counted in the second
/// value) rather than rejected. Only a record structure error (length not a multiple of 5)
/// is an error.
pub fn parse_ncaltech101(
    bytes: &[u8],
    name: &str,
    width: u16,
    height: u16,
) -> Result<(Events, usize), DataError> {
    let all = parse_bin40(bytes, name, 256, 256)?;
    let (min_x, min_y) = (
        all.x.iter().copied().min().unwrap_or(0),
        all.y.iter().copied().min().unwrap_or(0),
    );
    let mut ev = Events::with_capacity(width, height, all.len());
    let mut skipped = 0usize;
    for i in 0..all.len() {
        let (x, y) = (all.x[i] - min_x, all.y[i] - min_y);
        if x < width && y < height {
            ev.push(x, y, all.t[i], all.p[i]);
        } else {
            skipped += 1;
        }
    }
    Ok((ev, skipped))
}

/// [`parse_nmnist`] on a file.
pub fn nmnist_from_path(path: &Path) -> Result<Events, DataError> {
    parse_nmnist(&read_file(path)?, &path_name(path))
}

/// Parses a SLAYER label list: lines starting with `#` are comments, others are
/// `<id> <label>` separated by white space (tab in the originals, `\r\n` line ends accepted).
pub fn parse_label_list(text: &str, name: &str) -> Result<Vec<(u64, u32)>, DataError> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |what: String| malformed(name, format!("line {}", n + 1), what);
        let mut f = line.split_whitespace();
        let (Some(id), Some(label), None) = (f.next(), f.next(), f.next()) else {
            return Err(bad(format!("expected `<id> <label>`, found `{line}`")));
        };
        let id: u64 = id
            .parse()
            .map_err(|_| bad(format!("id `{id}` is not an integer")))?;
        let label: u32 = label
            .parse()
            .map_err(|_| bad(format!("label `{label}` is not an integer")))?;
        out.push((id, label));
    }
    Ok(out)
}

/// Loads one split of a SLAYER-style folder: the ids and labels of `list`, events from
/// `<dir>/<id>.bs2` (or `<id>.bin`), integrated into `timesteps` frames `[2, 34, 34]`.
pub fn load_nmnist_list(
    dir: &Path,
    list: &str,
    timesteps: usize,
    split_by: SplitBy,
) -> Result<Dataset, DataError> {
    let list_path = dir.join(list);
    let text = String::from_utf8_lossy(&read_file(&list_path)?).into_owned();
    let entries = parse_label_list(&text, &path_name(&list_path))?;
    let sample = timesteps * 2 * (SIZE as usize) * (SIZE as usize);
    let mut values = Vec::with_capacity(entries.len().saturating_mul(sample));
    let mut labels = Vec::with_capacity(entries.len());
    for (id, label) in entries {
        let mut path = dir.join(format!("{id}.bs2"));
        if !path.exists() {
            path = dir.join(format!("{id}.bin"));
        }
        let ev = nmnist_from_path(&path)?;
        values.extend(to_frames(&ev, split_by, timesteps, Resize::None));
        labels.push(label);
    }
    Dataset::new(
        path_name(&list_path),
        SampleKind::Frames { timesteps },
        [2, SIZE as usize, SIZE as usize],
        10,
        values,
        labels,
    )
}

/// Loads SLAYER's `NMNISTsmall` folder: `train1K.txt` (1,000 samples) and `test100.txt`
/// (100 samples), each sample as `timesteps` frames `[2, 34, 34]` (channel 0 = OFF, 1 = ON).
pub fn load_nmnist_small(
    dir: &Path,
    timesteps: usize,
    split_by: SplitBy,
) -> Result<Split, DataError> {
    Ok(Split {
        train: load_nmnist_list(dir, "train1K.txt", timesteps, split_by)?,
        val: None,
        train_long: None,
        test: load_nmnist_list(dir, "test100.txt", timesteps, split_by)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_records_and_overflow() {
        // x=3, y=4, ON, t = 0x01_0203; then an overflow marker; then x=0,y=33,OFF,t=5
        let bytes = [
            3, 4, 0x81, 0x02, 0x03, 0, 240, 0, 0, 0, 0, 33, 0x00, 0x00, 0x05,
        ];
        let e = parse_nmnist(&bytes, "n").unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!((e.x[0], e.y[0], e.p[0], e.t[0]), (3, 4, 1, 0x010203));
        assert_eq!((e.x[1], e.y[1], e.p[1], e.t[1]), (0, 33, 0, 5 + 8192));
        let err = parse_nmnist(&bytes[..7], "n.bin").unwrap_err().to_string();
        assert!(err.contains("n.bin") && err.contains("record 1"), "{err}");
        let err = parse_nmnist(&[40, 0, 0, 0, 0], "n.bin")
            .unwrap_err()
            .to_string();
        assert!(err.contains("record 0") && err.contains("x=40"), "{err}");
    }

    #[test]
    fn ncaltech101_shifts_to_the_origin_and_skips_outside() {
        // (10, 5) ON t=1; (250, 5) OFF t=2 → x 240 after the shift: outside 240 wide;
        // overflow marker; (12, 200) ON t=3 → y 195: outside 180 high; (249, 184) → (239, 179)
        let bytes = [
            10, 5, 0x80, 0, 1, 250, 5, 0, 0, 2, 0, 240, 0, 0, 0, 12, 200, 0x80, 0, 3, 249, 184, 0,
            0, 4,
        ];
        let (e, skipped) = parse_ncaltech101(&bytes, "n.bin", 240, 180).unwrap();
        assert_eq!(skipped, 2);
        assert_eq!((e.width, e.height), (240, 180));
        assert_eq!(e.x, [0, 239]);
        assert_eq!(e.y, [0, 179]);
        assert_eq!(e.t, [1, 4 + 8192]);
        assert_eq!(e.p, [1, 0]);
        // a bad length is still an error naming the record
        let err = parse_ncaltech101(&bytes[..7], "n.bin", 240, 180)
            .unwrap_err()
            .to_string();
        assert!(err.contains("n.bin") && err.contains("record 1"), "{err}");
        let (e, s) = parse_ncaltech101(&[], "n.bin", 240, 180).unwrap();
        assert_eq!((e.len(), s), (0, 0));
    }

    #[test]
    fn label_lists_parse() {
        let l = parse_label_list("#sample #class\r\n1\t5\r\n2\t0\r\n", "l").unwrap();
        assert_eq!(l, vec![(1, 5), (2, 0)]);
        assert!(
            parse_label_list("1\tx\n", "l")
                .unwrap_err()
                .to_string()
                .contains("line 1")
        );
    }
}
