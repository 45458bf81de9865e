//! MATLAB 5.0 MAT-files (numeric arrays only) and the ST-MNIST `spiketrain` layout.
//!
//! Layout (MathWorks "MAT-File Format", level 5): a 128-byte header (116 bytes of text, 8 bytes
//! of subsystem offset, u16 version, 2-byte endian indicator `IM` for little-endian or `MI` for
//! big-endian files), then data elements. Each element has an 8-byte tag (u32 type, u32 size)
//! followed by its data padded to 8 bytes, or the small format: a 4-byte tag (u16 size in the
//! upper half, u16 type in the lower half, in file byte order) and up to 4 data bytes.
//! `miCOMPRESSED` (15) holds a zlib stream of further elements (not padded). `miMATRIX` (14)
//! holds sub-elements: array flags (class in the low byte), dimensions (`miINT32`), name
//! (`miINT8`), real part (any numeric type), then an optional imaginary part (ignored).
//!
//! Numeric classes (double, single, int8..uint64) are read as f64; other classes (cell, struct,
//! char, sparse, logical-as-object...) are skipped.

use std::io::Read;
use std::path::Path;

use super::{malformed, path_name, read_file};
use crate::data::events::Events;
use crate::error::DataError;

/// Largest decompressed `miCOMPRESSED` element accepted (bytes).
pub const MAX_DECOMPRESSED: u64 = 256 << 20;

/// `miMATRIX`.
const MI_MATRIX: u32 = 14;
/// `miCOMPRESSED`.
const MI_COMPRESSED: u32 = 15;

/// A numeric MAT array (real part).
#[derive(Debug, Clone, PartialEq)]
pub struct MatArray {
    /// Variable name.
    pub name: String,
    /// Dimensions (MATLAB order, at least two).
    pub dims: Vec<usize>,
    /// Values in column-major order, `dims.iter().product()` of them.
    pub values: Vec<f64>,
}

/// An element tag: type, data range.
struct Tag {
    ty: u32,
    data: std::ops::Range<usize>,
    /// Offset of the next element.
    next: usize,
}

fn u32_at(b: &[u8], off: usize, big: bool) -> Option<u32> {
    let s = b.get(off..off.checked_add(4)?)?;
    let a = [s[0], s[1], s[2], s[3]];
    Some(if big {
        u32::from_be_bytes(a)
    } else {
        u32::from_le_bytes(a)
    })
}

/// Reads the tag at `off`; `Err` text when it runs past `b`.
fn read_tag(b: &[u8], off: usize, big: bool) -> Result<Tag, String> {
    let w = u32_at(b, off, big).ok_or("element tag runs past the end")?;
    if w >> 16 != 0 {
        // small data element format
        let (ty, size) = (w & 0xffff, (w >> 16) as usize);
        if size > 4 {
            return Err(format!("small element claims {size} bytes (at most 4)"));
        }
        let start = off + 4;
        if start + 4 > b.len() {
            return Err("small element runs past the end".into());
        }
        return Ok(Tag {
            ty,
            data: start..start + size,
            next: start + 4,
        });
    }
    let size = u32_at(b, off + 4, big).ok_or("element tag runs past the end")? as usize;
    let start = off + 8;
    let end = start
        .checked_add(size)
        .filter(|&e| e <= b.len())
        .ok_or_else(|| {
            format!(
                "element of type {w} and {size} bytes runs past the end ({} bytes)",
                b.len()
            )
        })?;
    // compressed elements are not padded; others are padded to 8 bytes (the last may not be)
    let next = if w == MI_COMPRESSED {
        end
    } else {
        end.checked_add((8 - size % 8) % 8)
            .map_or(b.len(), |n| n.min(b.len()))
    };
    Ok(Tag {
        ty: w,
        data: start..end,
        next,
    })
}

/// Bytes per value of a numeric data type, and whether it is accepted.
fn type_size(ty: u32) -> Option<usize> {
    match ty {
        1 | 2 => Some(1),       // miINT8, miUINT8
        3 | 4 => Some(2),       // miINT16, miUINT16
        5..=7 => Some(4),       // miINT32, miUINT32, miSINGLE
        9 | 12 | 13 => Some(8), // miDOUBLE, miINT64, miUINT64
        _ => None,
    }
}

/// Value of type `ty` in `s` (`s.len() == type_size(ty)`), as f64.
fn read_value(ty: u32, s: &[u8], big: bool) -> f64 {
    let mut a = [0u8; 8];
    a[..s.len()].copy_from_slice(s);
    if big {
        a[..s.len()].reverse();
    }
    let u = u64::from_le_bytes(a);
    match ty {
        1 => u as u8 as i8 as f64,
        3 => u as u16 as i16 as f64,
        5 => u as u32 as i32 as f64,
        7 => f32::from_bits(u as u32) as f64,
        9 => f64::from_bits(u),
        12 => u as i64 as f64,
        _ => u as f64,
    }
}

/// Parses an `miMATRIX` body; `Ok(None)` for non-numeric classes. Errors are texts with the
/// offset inside `b`.
fn parse_matrix(b: &[u8], big: bool) -> Result<Option<MatArray>, String> {
    let mut off = 0usize;
    let mut sub = |what: &str| -> Result<Tag, String> {
        let t = read_tag(b, off, big).map_err(|e| format!("{what} at byte {off}: {e}"))?;
        off = t.next;
        Ok(t)
    };
    let flags = sub("array flags")?;
    if flags.data.len() < 8 {
        return Err(format!(
            "array flags hold {} bytes, need 8",
            flags.data.len()
        ));
    }
    let class = u32_at(b, flags.data.start, big).unwrap_or(0) & 0xff;
    if !(6..=15).contains(&class) {
        return Ok(None);
    }
    let dims_t = sub("dimensions")?;
    if dims_t.ty != 5 || dims_t.data.len() % 4 != 0 || dims_t.data.len() < 8 {
        return Err(format!(
            "dimensions element of type {} and {} bytes (need miINT32, at least 2)",
            dims_t.ty,
            dims_t.data.len()
        ));
    }
    let mut dims = Vec::with_capacity(dims_t.data.len() / 4);
    let mut count = 1usize;
    for o in dims_t.data.clone().step_by(4) {
        let d = u32_at(b, o, big).unwrap_or(0) as i32;
        let d = usize::try_from(d).map_err(|_| format!("negative dimension {d}"))?;
        count = count
            .checked_mul(d)
            .ok_or_else(|| "dimensions overflow".to_string())?;
        dims.push(d);
    }
    let name_t = sub("array name")?;
    let name = String::from_utf8_lossy(&b[name_t.data]).into_owned();
    let real = sub("real part")?;
    let size = type_size(real.ty)
        .ok_or_else(|| format!("real part of `{name}` has unsupported type {}", real.ty))?;
    let have = real.data.len() / size;
    if real.data.len() % size != 0 || have != count {
        return Err(format!(
            "`{name}` has dimensions {dims:?} ({count} values) but its real part holds {} bytes of type {}",
            real.data.len(),
            real.ty
        ));
    }
    let values = b[real.data]
        .chunks_exact(size)
        .map(|s| read_value(real.ty, s, big))
        .collect();
    Ok(Some(MatArray { name, dims, values }))
}

/// Parses a level-5 MAT-file: its numeric arrays, in file order.
pub fn parse_mat(bytes: &[u8], name: &str) -> Result<Vec<MatArray>, DataError> {
    if bytes.len() < 128 {
        return Err(malformed(
            name,
            "byte 0",
            format!("{} bytes, shorter than the 128-byte header", bytes.len()),
        ));
    }
    let big = match &bytes[126..128] {
        b"IM" => false,
        b"MI" => true,
        e => {
            return Err(malformed(
                name,
                "byte 126",
                format!("endian indicator {e:?} is neither `IM` nor `MI`"),
            ));
        }
    };
    let mut out = Vec::new();
    let mut off = 128usize;
    let mut inflated = Vec::new();
    while off < bytes.len() {
        let at = |what: String| malformed(name, format!("element at byte {off}"), what);
        let tag = read_tag(bytes, off, big).map_err(at)?;
        match tag.ty {
            MI_MATRIX => {
                if let Some(a) = parse_matrix(&bytes[tag.data.clone()], big)
                    .map_err(|e| at(format!("matrix: {e} (from byte {})", tag.data.start)))?
                {
                    out.push(a);
                }
            }
            MI_COMPRESSED => {
                inflated.clear();
                flate2::read::ZlibDecoder::new(&bytes[tag.data.clone()])
                    .take(MAX_DECOMPRESSED + 1)
                    .read_to_end(&mut inflated)
                    .map_err(|e| at(format!("zlib stream: {e}")))?;
                if inflated.len() as u64 > MAX_DECOMPRESSED {
                    return Err(at(format!(
                        "decompresses to more than {MAX_DECOMPRESSED} bytes"
                    )));
                }
                let mut inner = 0usize;
                while inner < inflated.len() {
                    let t = read_tag(&inflated, inner, big)
                        .map_err(|e| at(format!("decompressed byte {inner}: {e}")))?;
                    if t.ty == MI_MATRIX
                        && let Some(a) =
                            parse_matrix(&inflated[t.data.clone()], big).map_err(|e| {
                                at(format!(
                                    "matrix at decompressed byte {inner}: {e} (from byte {})",
                                    t.data.start
                                ))
                            })?
                    {
                        out.push(a);
                    }
                    inner = t.next;
                }
            }
            _ => {}
        }
        off = tag.next;
    }
    Ok(out)
}

/// [`parse_mat`] on a file.
pub fn mat_from_path(path: &Path) -> Result<Vec<MatArray>, DataError> {
    parse_mat(&read_file(path)?, &path_name(path))
}

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

#[cfg(test)]
mod tests {
    use super::*;

    /// An element with an 8-byte tag, padded.
    fn elem(ty: u32, data: &[u8]) -> Vec<u8> {
        let mut v = ty.to_le_bytes().to_vec();
        v.extend_from_slice(&(data.len() as u32).to_le_bytes());
        v.extend_from_slice(data);
        v.resize(v.len() + (8 - data.len() % 8) % 8, 0);
        v
    }

    fn header() -> Vec<u8> {
        let mut h = vec![b' '; 116];
        h.extend_from_slice(&[0; 8]);
        h.extend_from_slice(&0x0100u16.to_le_bytes());
        h.extend_from_slice(b"IM");
        h
    }

    #[test]
    fn small_elements_and_int_classes() {
        // int16 class 2 × 1, name "ab" in the small format, real part as miINT16
        let mut m = elem(6, &[10, 0, 0, 0, 0, 0, 0, 0]);
        m.extend(elem(5, &[2, 0, 0, 0, 1, 0, 0, 0]));
        m.extend_from_slice(&[1, 0, 2, 0, b'a', b'b', 0, 0]);
        m.extend_from_slice(&[3, 0, 4, 0, 0xfe, 0xff, 7, 0]);
        let mut f = header();
        f.extend(elem(MI_MATRIX, &m));
        let a = parse_mat(&f, "s.mat").unwrap();
        assert_eq!(
            a,
            vec![MatArray {
                name: "ab".into(),
                dims: vec![2, 1],
                values: vec![-2.0, 7.0]
            }]
        );
        // wrong count is named
        f.truncate(f.len() - 8);
        let e = parse_mat(&f, "s.mat").unwrap_err().to_string();
        assert!(e.contains("s.mat") && e.contains("byte 128"), "{e}");
    }
}
