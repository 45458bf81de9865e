//! Prophesee / Chronocam `.dat` files (N-CARS, ATIS recordings).
//!
//! ASCII header lines starting with `%`, each ending `\n`; then a u8 event type (0 = 2D/CD
//! events; 12 = CD in later Prophesee files, also accepted) and a u8 event size (must be 8).
//! Then 8-byte little-endian records: u32 timestamp (µs), u32 with `x` = bits 0..13,
//! `y` = bits 14..27, polarity = bits 28..31 (any non-zero value is ON).
//!
//! Sensor size: from `% Width W` / `% Height H` header lines when present, else the largest
//! coordinate + 1 (N-CARS files carry no size; tonic uses 120 × 100 for that set).

use std::path::Path;

use super::{le_u32, malformed, path_name, read_file};
use crate::error::DataError;
use crate::events::Events;

/// A parsed `.dat` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatFile {
    /// Header lines without the leading `% ` and the line end.
    pub header: Vec<String>,
    /// Event type byte.
    pub event_type: u8,
    /// The events.
    pub events: Events,
}

/// Parses a Prophesee `.dat` file.
pub fn parse_dat(bytes: &[u8], name: &str) -> Result<DatFile, DataError> {
    let mut header = Vec::new();
    let mut pos = 0usize;
    let (mut width, mut height) = (None, None);
    while pos < bytes.len() && bytes[pos] == b'%' {
        let Some(nl) = bytes[pos..].iter().position(|&b| b == b'\n') else {
            return Err(malformed(
                name,
                format!("byte {pos}"),
                "header line without a line end",
            ));
        };
        let line = String::from_utf8_lossy(&bytes[pos + 1..pos + nl])
            .trim()
            .to_string();
        let mut words = line.split_whitespace();
        match (
            words.next(),
            words.next().and_then(|v| v.parse::<u16>().ok()),
        ) {
            (Some("Width"), Some(v)) => width = Some(v),
            (Some("Height"), Some(v)) => height = Some(v),
            _ => {}
        }
        header.push(line);
        pos += nl + 1;
    }
    let (Some(&event_type), Some(&size)) = (bytes.get(pos), bytes.get(pos + 1)) else {
        return Err(malformed(
            name,
            format!("byte {pos}"),
            "file ends before the event type and size bytes",
        ));
    };
    if event_type != 0 && event_type != 12 {
        return Err(malformed(
            name,
            format!("byte {pos}"),
            format!("event type {event_type}, expected 0 or 12 (CD events)"),
        ));
    }
    if size != 8 {
        return Err(malformed(
            name,
            format!("byte {}", pos + 1),
            format!("event size {size}, expected 8"),
        ));
    }
    let start = pos + 2;
    let body = &bytes[start..];
    if !body.len().is_multiple_of(8) {
        let whole = body.len() / 8;
        return Err(malformed(
            name,
            format!("record {whole} (byte {})", start + whole * 8),
            format!(
                "{} trailing bytes after the last whole record",
                body.len() % 8
            ),
        ));
    }
    let n = body.len() / 8;
    let mut ev = Events::with_capacity(0, 0, n);
    let (mut max_x, mut max_y) = (0u16, 0u16);
    for i in 0..n {
        let t = le_u32(body, i * 8).unwrap_or(0);
        let d = le_u32(body, i * 8 + 4).unwrap_or(0);
        let x = (d & 0x3fff) as u16;
        let y = ((d >> 14) & 0x3fff) as u16;
        let p = u8::from(d >> 28 != 0);
        if let (Some(w), Some(h)) = (width, height)
            && (x >= w || y >= h)
        {
            return Err(malformed(
                name,
                format!("record {i} (byte {})", start + i * 8),
                format!("event at x={x}, y={y} outside the {w}x{h} sensor of the header"),
            ));
        }
        max_x = max_x.max(x);
        max_y = max_y.max(y);
        ev.push(x, y, t as u64, p);
    }
    ev.width = width.unwrap_or(if n == 0 { 0 } else { max_x + 1 });
    ev.height = height.unwrap_or(if n == 0 { 0 } else { max_y + 1 });
    Ok(DatFile {
        header,
        event_type,
        events: ev,
    })
}

/// [`parse_dat`] on a file.
pub fn dat_from_path(path: &Path) -> Result<DatFile, DataError> {
    parse_dat(&read_file(path)?, &path_name(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_bits_and_header_size() {
        let mut b = b"% Width 20\n% Height 10\n".to_vec();
        b.extend_from_slice(&[0, 8]);
        b.extend_from_slice(&7u32.to_le_bytes());
        b.extend_from_slice(&(3u32 | (9 << 14) | (1 << 28)).to_le_bytes());
        let f = parse_dat(&b, "d").unwrap();
        assert_eq!(
            (f.events.x[0], f.events.y[0], f.events.t[0], f.events.p[0]),
            (3, 9, 7, 1)
        );
        assert_eq!((f.events.width, f.events.height), (20, 10));
        b.push(1);
        let e = parse_dat(&b, "d.dat").unwrap_err().to_string();
        assert!(
            e.contains("d.dat") && e.contains("record 1 (byte 33)"),
            "{e}"
        );
        assert!(parse_dat(b"% x", "d").is_err());
        assert!(parse_dat(b"% x\n\x00\x04", "d").is_err());
    }
}
