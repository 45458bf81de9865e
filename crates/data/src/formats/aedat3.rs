//! AEDAT 3.1 files (cAER / jAER, e.g. DVS128 Gesture), polarity events only.
//!
//! Layout (iniVation "AEDAT file formats", AEDAT 3.1): ASCII header lines starting with `#`, the
//! first `#!AER-DAT3.1`, the last `#!END-HEADER`, each ending `\r\n`. Then packets, each a
//! 28-byte little-endian header — `eventType` u16, `eventSource` u16, `eventSize` u32,
//! `eventTSOffset` u32, `eventTSOverflow` u32, `eventCapacity` u32, `eventNumber` u32,
//! `eventValid` u32 — followed by `eventCapacity * eventSize` bytes of events.
//!
//! Polarity events (type 1, 8 bytes): u32 `data` — bit 0 valid, bit 1 polarity (1 = ON),
//! `y = (data >> 2) & 0x7FFF`, `x = (data >> 17) & 0x7FFF` — and a u32 timestamp (µs) to which
//! `eventTSOverflow << 31` is added. Other packet types are skipped.
//!
//! As SpikingJelly's `DVS128Gesture.load_origin_data` (checked against its source): the packet
//! body is `eventCapacity * eventSize` bytes, every event in it is kept (the valid bit is not
//! consulted) and the timestamp is `ts | overflow << 31`. The `_labels.csv` companion
//! (`class,startTime_usec,endTime_usec`, classes 1..=11) is parsed by [`parse_gesture_labels`];
//! a labelled segment holds the events with `start <= t < end`.

use std::path::Path;

use super::{le_u16, le_u32, malformed, path_name, read_file};
use crate::error::DataError;
use crate::events::Events;

/// The first header line.
pub const MAGIC: &[u8] = b"#!AER-DAT3.1";
/// The last header line.
pub const END_HEADER: &[u8] = b"#!END-HEADER";
/// Bytes of a packet header.
pub const PACKET_HEADER: usize = 28;
/// Event type of polarity events.
pub const POLARITY_EVENT: u16 = 1;

/// A parsed AEDAT 3.1 file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Aedat3 {
    /// Header lines without their line ends.
    pub header: Vec<String>,
    /// Byte offset of the first packet.
    pub data_offset: usize,
    /// Number of packets read (of every type).
    pub packets: usize,
    /// Polarity events. The sensor size is the `width`/`height` given to the parser.
    pub events: Events,
}

/// Parses an AEDAT 3.1 file; events are placed on a `width` × `height` sensor (128 × 128 for
/// the DVS128), events outside it are an error naming the packet and event.
pub fn parse_aedat3(
    bytes: &[u8],
    name: &str,
    width: u16,
    height: u16,
) -> Result<Aedat3, DataError> {
    if !bytes.starts_with(MAGIC) {
        return Err(malformed(
            name,
            "byte 0",
            "missing `#!AER-DAT3.1` header line",
        ));
    }
    let mut header = Vec::new();
    let mut pos = 0usize;
    let mut ended = false;
    while pos < bytes.len() && bytes[pos] == b'#' {
        let end = bytes[pos..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(bytes.len(), |i| pos + i + 1);
        let raw = &bytes[pos..end];
        let line = String::from_utf8_lossy(raw)
            .trim_end_matches(['\r', '\n'])
            .to_string();
        pos = end;
        let is_end = raw.starts_with(END_HEADER);
        header.push(line);
        if is_end {
            ended = true;
            break;
        }
    }
    if !ended {
        return Err(malformed(
            name,
            format!("byte {pos}"),
            "header has no `#!END-HEADER` line",
        ));
    }
    let data_offset = pos;
    let mut events = Events::new(width, height);
    let mut packets = 0usize;
    while pos < bytes.len() {
        if bytes.len() - pos < PACKET_HEADER {
            return Err(malformed(
                name,
                format!("packet {packets} (byte {pos})"),
                format!(
                    "truncated packet header: {} of {PACKET_HEADER} bytes",
                    bytes.len() - pos
                ),
            ));
        }
        let h = |off: usize| le_u32(bytes, pos + off).unwrap_or(0);
        let (ty, size, overflow, capacity) = (le_u16(bytes, pos).unwrap_or(0), h(4), h(12), h(16));
        let body_start = pos + PACKET_HEADER;
        let body_len = (size as u64) * (capacity as u64);
        let remaining = (bytes.len() - body_start) as u64;
        if body_len > remaining {
            return Err(malformed(
                name,
                format!("packet {packets} (byte {pos})"),
                format!(
                    "eventCapacity {capacity} × eventSize {size} = {body_len} bytes, only {remaining} remain"
                ),
            ));
        }
        let body = &bytes[body_start..body_start + body_len as usize];
        if ty == POLARITY_EVENT {
            if size < 8 {
                return Err(malformed(
                    name,
                    format!("packet {packets} (byte {pos})"),
                    format!("polarity eventSize {size}, expected 8"),
                ));
            }
            for (k, ev) in body.chunks_exact(size as usize).enumerate() {
                let data = le_u32(ev, 0).unwrap_or(0);
                let ts = le_u32(ev, 4).unwrap_or(0) as u64 | ((overflow as u64) << 31);
                let x = ((data >> 17) & 0x7fff) as u16;
                let y = ((data >> 2) & 0x7fff) as u16;
                let p = ((data >> 1) & 1) as u8;
                if x >= width || y >= height {
                    return Err(malformed(
                        name,
                        format!(
                            "packet {packets}, event {k} (byte {})",
                            body_start + k * size as usize
                        ),
                        format!("event at x={x}, y={y} outside the {width}x{height} sensor"),
                    ));
                }
                events.push(x, y, ts, p);
            }
        }
        pos = body_start + body.len();
        packets += 1;
    }
    Ok(Aedat3 {
        header,
        data_offset,
        packets,
        events,
    })
}

/// [`parse_aedat3`] on a file.
pub fn aedat3_from_path(path: &Path, width: u16, height: u16) -> Result<Aedat3, DataError> {
    parse_aedat3(&read_file(path)?, &path_name(path), width, height)
}

/// One labelled segment of a DVS128 Gesture recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// Class, 0-based (the file's 1..=11 minus one).
    pub label: u32,
    /// First timestamp (µs, inclusive).
    pub start: u64,
    /// End timestamp (µs, exclusive).
    pub end: u64,
}

/// Parses a DVS128 Gesture `_labels.csv`: a header line `class,startTime_usec,endTime_usec`, then
/// one `class,start,end` line per gesture with class in `1..=num_classes`.
pub fn parse_gesture_labels(
    text: &str,
    name: &str,
    num_classes: u32,
) -> Result<Vec<Segment>, DataError> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || (n == 0 && line.starts_with("class")) {
            continue;
        }
        let bad = |what: String| malformed(name, format!("line {}", n + 1), what);
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        if f.len() != 3 {
            return Err(bad(format!("expected `class,start,end`, found `{line}`")));
        }
        let num = |s: &str| -> Result<u64, DataError> {
            s.parse()
                .map_err(|_| bad(format!("`{s}` is not a non-negative integer")))
        };
        let (class, start, end) = (num(f[0])?, num(f[1])?, num(f[2])?);
        if class < 1 || class > num_classes as u64 {
            return Err(bad(format!("class {class} outside 1..={num_classes}")));
        }
        if end < start {
            return Err(bad(format!("end {end} before start {start}")));
        }
        out.push(Segment {
            label: class as u32 - 1,
            start,
            end,
        });
    }
    Ok(out)
}

/// The events of `events` with `start <= t < end`.
pub fn segment(events: &Events, seg: &Segment) -> Events {
    let mut out = Events::new(events.width, events.height);
    for i in 0..events.len() {
        let t = events.t[i];
        if t >= seg.start && t < seg.end {
            out.push(events.x[i], events.y[i], t, events.p[i]);
        }
    }
    out
}

/// One event for [`write_aedat3`]: `(x, y, polarity, timestamp)`.
pub type PolarityEvent = (u16, u16, u8, u32);

/// One packet for [`write_aedat3`]: `(eventTSOverflow, events)`.
pub type Packet = (u32, Vec<PolarityEvent>);

/// Builds an AEDAT 3.1 file from the published layout (for tests and fixtures): one polarity
/// packet per `(overflow, events)` entry, each event `(x, y, polarity, timestamp)`.
pub fn write_aedat3(packets: &[Packet]) -> Vec<u8> {
    let mut b = b"#!AER-DAT3.1\r\n#Format: RAW\r\n#Source 1: DVS128\r\n#!END-HEADER\r\n".to_vec();
    for (overflow, evs) in packets {
        let n = evs.len() as u32;
        for v in [1u16, 1] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        for v in [8u32, 4, *overflow, n, n, n] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        for &(x, y, p, t) in evs {
            let data = ((x as u32) << 17) | ((y as u32) << 2) | ((p as u32 & 1) << 1) | 1;
            b.extend_from_slice(&data.to_le_bytes());
            b.extend_from_slice(&t.to_le_bytes());
        }
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_polarity_packets_and_overflow() {
        let b = write_aedat3(&[
            (0, vec![(1, 2, 1, 100), (127, 0, 0, 200)]),
            (1, vec![(5, 127, 1, 7)]),
        ]);
        let a = parse_aedat3(&b, "g.aedat", 128, 128).unwrap();
        assert_eq!(a.packets, 2);
        assert_eq!(a.header.last().unwrap(), "#!END-HEADER");
        let e = &a.events;
        assert_eq!(e.len(), 3);
        assert_eq!((e.x[0], e.y[0], e.p[0], e.t[0]), (1, 2, 1, 100));
        assert_eq!((e.x[1], e.y[1], e.p[1], e.t[1]), (127, 0, 0, 200));
        assert_eq!(e.t[2], 7 + (1u64 << 31));
        // a raw word: x=3, y=4, ON, valid → 3<<17 | 4<<2 | 2 | 1
        assert_eq!((3u32 << 17) | (4 << 2) | 3, 0x0006_0013);
    }

    #[test]
    fn errors_name_packet_and_offset() {
        let b = write_aedat3(&[(0, vec![(1, 2, 1, 100), (3, 4, 0, 200)])]);
        let e = parse_aedat3(&b[..b.len() - 3], "g.aedat", 128, 128)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("g.aedat") && e.contains("packet 0") && e.contains("only"),
            "{e}"
        );
        let e = parse_aedat3(&b, "g.aedat", 2, 128).unwrap_err().to_string();
        assert!(e.contains("event 1") && e.contains("x=3"), "{e}");
        assert!(parse_aedat3(b"#!AER-DAT3.1\r\n", "h", 128, 128).is_err());
        assert!(parse_aedat3(b"#!AER-DAT2.0\r\n", "h", 128, 128).is_err());
        let mut t = write_aedat3(&[]);
        t.extend_from_slice(&[1, 0, 0]);
        assert!(parse_aedat3(&t, "h", 128, 128).is_err());
    }

    #[test]
    fn labels_and_segments() {
        let l = parse_gesture_labels(
            "class,startTime_usec,endTime_usec\r\n1,100,200\r\n11,200,300\r\n",
            "l.csv",
            11,
        )
        .unwrap();
        assert_eq!(
            l[0],
            Segment {
                label: 0,
                start: 100,
                end: 200
            }
        );
        assert_eq!(l[1].label, 10);
        let e = parse_gesture_labels("class,a,b\n12,1,2\n", "l.csv", 11)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("l.csv") && e.contains("line 2") && e.contains("12"),
            "{e}"
        );
        let mut ev = Events::new(4, 4);
        for t in [99, 100, 150, 200] {
            ev.push(0, 0, t, 1);
        }
        assert_eq!(segment(&ev, &l[0]).t, vec![100, 150]);
    }
}
