//! AEDAT 4.0 files (iniVation DV), polarity events only.
//!
//! Layout: `#!AER-DAT4.0\r\n`, i32 LE header length, an `IOHE` FlatBuffer (`IOHeader`:
//! field 0 `compression` i32 — 0 none, 1 LZ4, 2 LZ4 high, 3 Zstd, 4 Zstd high;
//! field 1 `dataTablePosition` i64; field 2 `infoNode` XML string). Then packets until
//! `dataTablePosition` (or the end of the file when it is -1): i32 LE stream id, i32 LE size,
//! that many bytes (an LZ4 or Zstd frame when compressed; Zstd is decoded by `ruzstd`) holding
//! a size-prefixed FlatBuffer with a
//! 4-byte identifier. Only `EVTS` packets are read (`EventPacket`, field 0 a vector of 16-byte
//! structs `{i64 t (µs), i16 x, i16 y, bool on, 3 pad}`); other packets (`IMUS`, `TRIG`,
//! `FRME`) are skipped. The FlatBuffers are read by hand.
//!
//! The sensor size comes from the first `sizeX` / `sizeY` attributes in the info XML, else the
//! largest coordinate + 1. Timestamps are kept absolute (µs since the epoch).

use std::io::Read;
use std::path::Path;

use super::{le_i32, le_i64, le_u16, le_u32, malformed, path_name, read_file};
use crate::error::DataError;
use crate::events::Events;

/// The first line.
pub const MAGIC: &[u8] = b"#!AER-DAT4.0\r\n";
/// Largest decompressed packet accepted (bytes).
pub const MAX_PACKET: u64 = 256 << 20;

/// A parsed AEDAT 4 file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Aedat4 {
    /// Compression of the packets (0 none, 1/2 LZ4, 3/4 Zstd).
    pub compression: i32,
    /// Offset of the packet table, -1 when absent.
    pub data_table_position: i64,
    /// The info XML.
    pub info: String,
    /// Number of packets read, of any kind.
    pub packets: usize,
    /// Polarity events of all `EVTS` packets, in file order.
    pub events: Events,
}

/// Absolute position of field `field` of the table at `table`, `None` when absent or broken.
fn fb_field(buf: &[u8], table: usize, field: usize) -> Option<usize> {
    let soff = le_i32(buf, table)? as i64;
    let vt = usize::try_from(table as i64 - soff).ok()?;
    let vt_size = le_u16(buf, vt)? as usize;
    let entry = 4 + 2 * field;
    if entry + 2 > vt_size {
        return None;
    }
    let off = le_u16(buf, vt + entry)? as usize;
    (off != 0).then_some(table + off)
}

/// Follows the u32 offset stored at `pos`.
fn fb_deref(buf: &[u8], pos: usize) -> Option<usize> {
    pos.checked_add(le_u32(buf, pos)? as usize)
        .filter(|&p| p < buf.len())
}

/// The `sizeX` / `sizeY` values of the info XML.
fn xml_attr(xml: &str, key: &str) -> Option<u16> {
    let i = xml.find(&format!("key=\"{key}\""))?;
    let rest = &xml[i..];
    let rest = &rest[rest.find('>')? + 1..];
    rest[..rest.find('<')?].trim().parse().ok()
}

/// Parses an AEDAT 4 file.
pub fn parse_aedat4(bytes: &[u8], name: &str) -> Result<Aedat4, DataError> {
    if !bytes.starts_with(MAGIC) {
        return Err(malformed(name, "byte 0", "missing `#!AER-DAT4.0` line"));
    }
    let hpos = MAGIC.len();
    let hlen = le_i32(bytes, hpos).ok_or_else(|| {
        malformed(
            name,
            format!("byte {hpos}"),
            "file ends in the header length",
        )
    })?;
    let hstart = hpos + 4;
    let hend = usize::try_from(hlen)
        .ok()
        .and_then(|l| hstart.checked_add(l))
        .filter(|&e| e <= bytes.len())
        .ok_or_else(|| {
            malformed(
                name,
                format!("byte {hpos}"),
                format!(
                    "header length {hlen} does not fit the {}-byte file",
                    bytes.len()
                ),
            )
        })?;
    let h = &bytes[hstart..hend];
    let hdr_err = |what: &str| {
        malformed(
            name,
            format!("header (bytes {hstart}..{hend})"),
            what.to_string(),
        )
    };
    if h.get(4..8) != Some(b"IOHE") {
        return Err(hdr_err("IOHeader identifier `IOHE` missing"));
    }
    let root = fb_deref(h, 0).ok_or_else(|| hdr_err("bad root offset"))?;
    let compression = match fb_field(h, root, 0) {
        Some(p) => le_i32(h, p).ok_or_else(|| hdr_err("compression field out of bounds"))?,
        None => 0,
    };
    let data_table_position = match fb_field(h, root, 1) {
        Some(p) => le_i64(h, p).ok_or_else(|| hdr_err("dataTablePosition field out of bounds"))?,
        None => -1,
    };
    let info = match fb_field(h, root, 2) {
        Some(p) => {
            let s = fb_deref(h, p).ok_or_else(|| hdr_err("infoNode offset out of bounds"))?;
            let n = le_u32(h, s).ok_or_else(|| hdr_err("infoNode length out of bounds"))? as usize;
            let text = h
                .get(s + 4..(s + 4).saturating_add(n))
                .ok_or_else(|| hdr_err("infoNode runs past the header"))?;
            String::from_utf8_lossy(text).into_owned()
        }
        None => String::new(),
    };
    if !(0..=4).contains(&compression) {
        return Err(hdr_err(&format!(
            "compression {compression} not supported (0 none, 1/2 LZ4, 3/4 Zstd)"
        )));
    }
    let end = if data_table_position < 0 {
        bytes.len()
    } else {
        usize::try_from(data_table_position)
            .ok()
            .filter(|&e| e >= hend && e <= bytes.len())
            .ok_or_else(|| {
                hdr_err(&format!(
                    "dataTablePosition {data_table_position} outside the file"
                ))
            })?
    };
    let size_x = xml_attr(&info, "sizeX");
    let size_y = xml_attr(&info, "sizeY");
    let mut events = Events::new(size_x.unwrap_or(0), size_y.unwrap_or(0));
    let (mut mx, mut my) = (0u16, 0u16);
    let mut pos = hend;
    let mut packets = 0usize;
    let mut unpacked = Vec::new();
    while pos < end {
        let at = |what: String| malformed(name, format!("packet {packets} (byte {pos})"), what);
        let size = le_i32(bytes, pos + 4)
            .filter(|_| pos + 8 <= end)
            .ok_or_else(|| at("packet header runs past the data".into()))?;
        let data_start = pos + 8;
        let data_end = usize::try_from(size)
            .ok()
            .and_then(|s| data_start.checked_add(s))
            .filter(|&e| e <= end)
            .ok_or_else(|| at(format!("packet size {size} runs past the data")))?;
        let data = &bytes[data_start..data_end];
        let buf: &[u8] = if compression == 0 {
            data
        } else {
            unpacked.clear();
            if compression <= 2 {
                lz4_flex::frame::FrameDecoder::new(data)
                    .take(MAX_PACKET + 1)
                    .read_to_end(&mut unpacked)
                    .map_err(|e| at(format!("LZ4 frame: {e}")))?;
            } else {
                ruzstd::decoding::StreamingDecoder::new(data)
                    .map_err(|e| at(format!("Zstd frame header: {e}")))?
                    .take(MAX_PACKET + 1)
                    .read_to_end(&mut unpacked)
                    .map_err(|e| at(format!("Zstd frame: {e}")))?;
            }
            if unpacked.len() as u64 > MAX_PACKET {
                return Err(at(format!(
                    "packet decompresses to more than {MAX_PACKET} bytes"
                )));
            }
            &unpacked
        };
        // size-prefixed FlatBuffer: u32 size, u32 root offset, 4-byte identifier
        let fb_len = le_u32(buf, 0)
            .ok_or_else(|| at("packet shorter than its size prefix".into()))?
            as usize;
        let fb = buf
            .get(4..4usize.saturating_add(fb_len))
            .ok_or_else(|| at(format!("FlatBuffer size {fb_len} exceeds the packet")))?;
        if fb.get(4..8) == Some(b"EVTS") {
            let bad = |what: &str| at(format!("EVTS packet: {what}"));
            let root = fb_deref(fb, 0).ok_or_else(|| bad("bad root offset"))?;
            if let Some(f) = fb_field(fb, root, 0) {
                let v = fb_deref(fb, f).ok_or_else(|| bad("elements offset out of bounds"))?;
                let n = le_u32(fb, v).ok_or_else(|| bad("elements length out of bounds"))? as usize;
                let elems = n
                    .checked_mul(16)
                    .and_then(|b| fb.get(v + 4..(v + 4).checked_add(b)?))
                    .ok_or_else(|| bad(&format!("{n} elements run past the packet")))?;
                events.x.reserve(n);
                events.y.reserve(n);
                events.t.reserve(n);
                events.p.reserve(n);
                for (k, e) in elems.chunks_exact(16).enumerate() {
                    let t = le_i64(e, 0).unwrap_or(0);
                    let x = le_u16(e, 8).unwrap_or(0) as i16;
                    let y = le_u16(e, 10).unwrap_or(0) as i16;
                    let outside = x < 0
                        || y < 0
                        || size_x.is_some_and(|s| x as u16 >= s)
                        || size_y.is_some_and(|s| y as u16 >= s);
                    if t < 0 || outside {
                        return Err(bad(&format!("event {k}: t={t}, x={x}, y={y} invalid")));
                    }
                    mx = mx.max(x as u16);
                    my = my.max(y as u16);
                    events.push(x as u16, y as u16, t as u64, u8::from(e[12] != 0));
                }
            }
        }
        packets += 1;
        pos = data_end;
    }
    if !events.is_empty() {
        events.width = size_x.unwrap_or(mx + 1);
        events.height = size_y.unwrap_or(my + 1);
    }
    Ok(Aedat4 {
        compression,
        data_table_position,
        info,
        packets,
        events,
    })
}

/// [`parse_aedat4`] on a file.
pub fn aedat4_from_path(path: &Path) -> Result<Aedat4, DataError> {
    parse_aedat4(&read_file(path)?, &path_name(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_inputs_are_errors() {
        assert!(parse_aedat4(b"#!AER-DAT4.0\r\n", "a").is_err());
        assert!(parse_aedat4(b"#!AER-DAT4.0\r\n\xff\xff\xff\x7f", "a").is_err());
        let mut b = MAGIC.to_vec();
        b.extend_from_slice(&8i32.to_le_bytes());
        b.extend_from_slice(&[8, 0, 0, 0, b'I', b'O', b'H', b'E']);
        let e = parse_aedat4(&b, "a.aedat4").unwrap_err().to_string();
        assert!(e.contains("a.aedat4"), "{e}");
    }
}
