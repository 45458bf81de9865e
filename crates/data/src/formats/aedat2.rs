//! jAER AEDAT 2.0 files (DVS128, CIFAR10-DVS).
//!
//! ASCII header lines starting with `#` (the first is `#!AER-DAT2.0`), each ending `\n`; the
//! header ends at the first line that does not start with `#` (as SpikingJelly's and tonic's
//! `skip_header`). Then 8-byte records: u32 address, u32 timestamp (µs), both big-endian.
//! Timestamps are kept as read (no wrap-around correction).
//!
//! The address bit layout depends on the chip; [`Layout`] gives the two 128 × 128 ones used for
//! classification data. Raw fields: `xr = (addr >> 1) & 0x7F`, `yr = (addr >> 8) & 0x7F`,
//! `pr = addr & 1`.

use std::path::Path;

use super::{be_u32, malformed, path_name, read_file};
use crate::error::DataError;
use crate::events::Events;

/// The first header line.
pub const MAGIC: &[u8] = b"#!AER-DAT2.0";

/// How addresses map to `(x, y, polarity)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// jAER's DVS128: `x = 127 - xr`, `y = yr`, `p = pr` (1 = ON).
    Dvs128,
    /// CIFAR10-DVS as read by SpikingJelly and tonic (`load_origin_data` with `x_mask=0xFE`,
    /// `x_shift=1`, `y_mask=0x7F00`, `y_shift=8`, `polarity_mask=1`):
    /// `x = 127 - yr`, `y = 127 - xr`, `p = 1 - pr` (see jackd/events-tfds PR 1 on the
    /// transposition).
    Cifar10Dvs,
}

impl Layout {
    /// Decodes one address.
    pub fn decode(self, addr: u32) -> (u16, u16, u8) {
        let xr = ((addr >> 1) & 0x7f) as u16;
        let yr = ((addr >> 8) & 0x7f) as u16;
        let pr = (addr & 1) as u8;
        match self {
            Layout::Dvs128 => (127 - xr, yr, pr),
            Layout::Cifar10Dvs => (127 - yr, 127 - xr, 1 - pr),
        }
    }
}

/// A parsed AEDAT 2.0 file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Aedat2 {
    /// Header lines without the line end (lossy UTF-8).
    pub header: Vec<String>,
    /// `System.currentTimeMillis()` value of the `# Creation time:` line, if any.
    pub creation_time_ms: Option<u64>,
    /// Byte offset of the first record.
    pub data_offset: usize,
    /// Raw addresses.
    pub addresses: Vec<u32>,
    /// Raw timestamps (µs).
    pub timestamps: Vec<u32>,
}

impl Aedat2 {
    /// The events with addresses decoded by `layout`, on a 128 × 128 sensor.
    pub fn events(&self, layout: Layout) -> Events {
        let mut e = Events::with_capacity(128, 128, self.addresses.len());
        for (&a, &t) in self.addresses.iter().zip(&self.timestamps) {
            let (x, y, p) = layout.decode(a);
            e.push(x, y, t as u64, p);
        }
        e
    }
}

/// Parses an AEDAT 2.0 file.
pub fn parse_aedat2(bytes: &[u8], name: &str) -> Result<Aedat2, DataError> {
    if !bytes.starts_with(MAGIC) {
        return Err(malformed(
            name,
            "byte 0",
            "missing `#!AER-DAT2.0` header line",
        ));
    }
    let mut header = Vec::new();
    let mut creation_time_ms = None;
    let mut pos = 0usize;
    while pos < bytes.len() && bytes[pos] == b'#' {
        let end = bytes[pos..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(bytes.len(), |i| pos + i + 1);
        let line = String::from_utf8_lossy(&bytes[pos..end]);
        let line = line.trim_end_matches(['\r', '\n']).to_string();
        if let Some(rest) = line.strip_prefix("# Creation time:") {
            creation_time_ms = rest.split_whitespace().last().and_then(|v| v.parse().ok());
        }
        header.push(line);
        pos = end;
    }
    let body = &bytes[pos..];
    if !body.len().is_multiple_of(8) {
        let whole = body.len() / 8;
        return Err(malformed(
            name,
            format!("record {whole} (byte {})", pos + whole * 8),
            format!("{} data bytes is not a multiple of 8", body.len()),
        ));
    }
    let n = body.len() / 8;
    let mut addresses = Vec::with_capacity(n);
    let mut timestamps = Vec::with_capacity(n);
    for i in 0..n {
        addresses.push(be_u32(body, i * 8).unwrap_or(0));
        timestamps.push(be_u32(body, i * 8 + 4).unwrap_or(0));
    }
    Ok(Aedat2 {
        header,
        creation_time_ms,
        data_offset: pos,
        addresses,
        timestamps,
    })
}

/// [`parse_aedat2`] on a file.
pub fn aedat2_from_path(path: &Path) -> Result<Aedat2, DataError> {
    parse_aedat2(&read_file(path)?, &path_name(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_decode_the_documented_bits() {
        // xr = 5, yr = 9, pr = 1
        let addr = (9 << 8) | (5 << 1) | 1;
        assert_eq!(Layout::Dvs128.decode(addr), (122, 9, 1));
        assert_eq!(Layout::Cifar10Dvs.decode(addr), (118, 122, 0));
    }

    #[test]
    fn odd_body_is_an_error_with_offset() {
        let mut b = b"#!AER-DAT2.0\r\n".to_vec();
        b.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 2, 9]);
        let e = parse_aedat2(&b, "f.aedat").unwrap_err().to_string();
        assert!(
            e.contains("f.aedat") && e.contains("record 1 (byte 22)"),
            "{e}"
        );
        assert!(parse_aedat2(b"nope", "g").is_err());
    }
}
