//! The generic level-5 MAT-file parser: numeric, char, cell and struct arrays.
//!
//! Layout (MathWorks "MAT-File Format", level 5): a 128-byte header (116 bytes of text, 8 bytes
//! of subsystem offset, u16 version, 2-byte endian indicator `IM` for little-endian or `MI` for
//! big-endian files), then data elements. Each element has an 8-byte tag (u32 type, u32 size)
//! followed by its data padded to 8 bytes, or the small format: a 4-byte tag (u16 size in the
//! upper half, u16 type in the lower half, in file byte order) and up to 4 data bytes.
//! `miCOMPRESSED` (15) holds a zlib stream of further elements (not padded). `miMATRIX` (14)
//! holds sub-elements: array flags (class in the low byte), dimensions (`miINT32`), name
//! (`miINT8`), then by class:
//!
//! * numeric (double, single, int8..uint64; logical is uint8 with a flag): the real part in any
//!   numeric data type, then an optional imaginary part (ignored). Read as f64.
//! * char (`mxCHAR_CLASS`, 4): the characters as `miUINT16` (UTF-16 code units, MATLAB's own
//!   choice), `miUTF8`, `miUTF16`, `miUTF32` or `miUINT8`/`miINT8`, column-major.
//! * cell (`mxCELL_CLASS`, 1): one `miMATRIX` per element, column-major.
//! * struct (`mxSTRUCT_CLASS`, 2): the field name length (`miINT32`, one value), the field names
//!   (`miINT8`, that many bytes each, NUL-padded), then per element (column-major) one `miMATRIX`
//!   per field, in field order.
//!
//! An `miMATRIX` of size 0 is an empty array. Other classes (object, sparse, function handles,
//! opaque) are kept as [`MatValue::Other`] without their contents. MATLAB 7.3 files are HDF5
//! and are refused with a message. Every length is checked against the bytes that remain
//! before anything is allocated, nesting is limited to [`MAX_DEPTH`] levels, and errors name
//! the file and the byte offset (in the file, or in the decompressed stream of the

use std::io::Read;
use std::ops::Range;
use std::path::Path;

use crate::error::DataError;
use crate::formats::{malformed, path_name, read_file};

/// Largest decompressed `miCOMPRESSED` element accepted (bytes).
pub const MAX_DECOMPRESSED: u64 = 256 << 20;

/// Deepest nesting of cells and structs accepted.
pub const MAX_DEPTH: usize = 32;

/// `miINT8`.
const MI_INT8: u32 = 1;
/// `miINT32`.
const MI_INT32: u32 = 5;
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

/// A top-level variable of a MAT-file.
#[derive(Debug, Clone, PartialEq)]
pub struct MatVariable {
    /// Variable name.
    pub name: String,
    /// Byte offset of its element in the file (the `miCOMPRESSED` element when compressed).
    pub offset: usize,
    /// Its value.
    pub value: MatValue,
}

/// The value of a variable, or of one element of a cell or one field of a struct element.
/// Every array holds `dims.iter().product()` elements in column-major order.
#[derive(Debug, Clone, PartialEq)]
pub enum MatValue {
    /// A numeric or logical array, real part as f64.
    Numeric {
        /// Dimensions (MATLAB order, at least two).
        dims: Vec<usize>,
        /// Values.
        values: Vec<f64>,
    },
    /// A character array: one `char` per stored code unit (a UTF-16 surrogate becomes U+FFFD).
    Char {
        /// Dimensions.
        dims: Vec<usize>,
        /// Characters.
        chars: Vec<char>,
    },
    /// A cell array.
    Cell {
        /// Dimensions.
        dims: Vec<usize>,
        /// One value per element.
        items: Vec<MatValue>,
    },
    /// A struct array.
    Struct {
        /// Dimensions.
        dims: Vec<usize>,
        /// Field names, in file order.
        fields: Vec<String>,
        /// Element-major: element `e`, field `f` at `e * fields.len() + f`.
        values: Vec<MatValue>,
    },
    /// A class that is not read (3 object, 5 sparse, 16 function handle, 17 opaque, ...).
    Other {
        /// The `mxCLASS` number.
        class: u8,
    },
}

impl MatValue {
    /// Dimensions (empty for [`MatValue::Other`]).
    pub fn dims(&self) -> &[usize] {
        match self {
            MatValue::Numeric { dims, .. }
            | MatValue::Char { dims, .. }
            | MatValue::Cell { dims, .. }
            | MatValue::Struct { dims, .. } => dims,
            MatValue::Other { .. } => &[],
        }
    }

    /// Number of elements (the product of the dimensions; 0 for [`MatValue::Other`]).
    pub fn len(&self) -> usize {
        match self {
            MatValue::Numeric { values, .. } => values.len(),
            MatValue::Char { chars, .. } => chars.len(),
            MatValue::Cell { items, .. } => items.len(),
            MatValue::Struct { dims, .. } => dims.iter().product(),
            MatValue::Other { .. } => 0,
        }
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A char array of one row (`1 × N`, `N × 1` or empty) as a string.
    pub fn text(&self) -> Option<String> {
        match self {
            MatValue::Char { dims, chars } if dims.iter().filter(|&&d| d != 1).count() <= 1 => {
                Some(chars.iter().collect())
            }
            _ => None,
        }
    }

    /// A numeric array of exactly one element.
    pub fn scalar(&self) -> Option<f64> {
        match self {
            MatValue::Numeric { values, .. } if values.len() == 1 => Some(values[0]),
            _ => None,
        }
    }

    /// Field `name` of struct element `element`.
    pub fn field(&self, element: usize, name: &str) -> Option<&MatValue> {
        match self {
            MatValue::Struct { fields, values, .. } => {
                let f = fields.iter().position(|n| n == name)?;
                values.get(element.checked_mul(fields.len())?.checked_add(f)?)
            }
            _ => None,
        }
    }

    /// Whether a struct has field `name`.
    pub fn has_field(&self, name: &str) -> bool {
        matches!(self, MatValue::Struct { fields, .. } if fields.iter().any(|n| n == name))
    }
}

/// An element tag: type, data range.
struct Tag {
    ty: u32,
    data: Range<usize>,
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

/// The characters of char data of type `ty`; `None` for a type that cannot hold characters or
/// a length that is not a whole number of code units.
fn read_chars(ty: u32, s: &[u8], big: bool) -> Option<Vec<char>> {
    let unit = |c: u32| char::from_u32(c).unwrap_or(char::REPLACEMENT_CHARACTER);
    let whole = |n: usize| s.len().is_multiple_of(n);
    match ty {
        // miINT8, miUINT8, miUTF8
        1 | 2 | 16 => Some(String::from_utf8_lossy(s).chars().collect()),
        // miINT16, miUINT16, miUTF16: one char per code unit, as MATLAB counts them
        3 | 4 | 17 if whole(2) => Some(
            s.chunks_exact(2)
                .map(|c| {
                    let a = [c[0], c[1]];
                    unit(if big {
                        u16::from_be_bytes(a)
                    } else {
                        u16::from_le_bytes(a)
                    } as u32)
                })
                .collect(),
        ),
        // miINT32, miUINT32, miUTF32
        5 | 6 | 18 if whole(4) => Some(
            s.chunks_exact(4)
                .map(|c| unit(u32_at(c, 0, big).unwrap_or(0)))
                .collect(),
        ),
        _ => None,
    }
}

/// The subelements of an `miMATRIX` body, read in order.
struct Subelements<'a> {
    b: &'a [u8],
    off: usize,
    big: bool,
}

impl Subelements<'_> {
    /// The next subelement (`what` names it in errors).
    fn sub(&mut self, what: &str) -> Result<Tag, String> {
        let off = self.off;
        let t =
            read_tag(self.b, off, self.big).map_err(|e| format!("{what} at byte {off}: {e}"))?;
        self.off = t.next;
        Ok(t)
    }
}

/// Parses the `miMATRIX` body `body` of `b` (offsets in errors are offsets in `b`); returns
/// the array name and value.
fn parse_matrix(
    b: &[u8],
    body: Range<usize>,
    big: bool,
    depth: usize,
) -> Result<(String, MatValue), String> {
    if body.is_empty() {
        let empty = MatValue::Numeric {
            dims: vec![0, 0],
            values: Vec::new(),
        };
        return Ok((String::new(), empty));
    }
    if depth >= MAX_DEPTH {
        return Err(format!(
            "byte {}: cells and structs nested deeper than {MAX_DEPTH} levels",
            body.start
        ));
    }
    let b = &b[..body.end];
    let mut r = Subelements {
        b,
        off: body.start,
        big,
    };
    let flags = r.sub("array flags")?;
    if flags.data.len() < 8 {
        return Err(format!(
            "array flags at byte {} hold {} bytes, need 8",
            flags.data.start,
            flags.data.len()
        ));
    }
    let class = (u32_at(b, flags.data.start, big).unwrap_or(0) & 0xff) as u8;
    let dims_t = r.sub("dimensions")?;
    if dims_t.ty != MI_INT32 || dims_t.data.len() % 4 != 0 || dims_t.data.len() < 8 {
        return Err(format!(
            "dimensions at byte {}: element of type {} and {} bytes (need miINT32, at least 2)",
            dims_t.data.start,
            dims_t.ty,
            dims_t.data.len()
        ));
    }
    let mut dims = Vec::with_capacity(dims_t.data.len() / 4);
    let mut count = 1usize;
    for o in dims_t.data.clone().step_by(4) {
        let d = u32_at(b, o, big).unwrap_or(0) as i32;
        let d = usize::try_from(d).map_err(|_| format!("byte {o}: negative dimension {d}"))?;
        count = count
            .checked_mul(d)
            .ok_or_else(|| format!("byte {o}: dimensions overflow"))?;
        dims.push(d);
    }
    let name_t = r.sub("array name")?;
    let name = String::from_utf8_lossy(&b[name_t.data]).into_owned();
    if !matches!(class, 1 | 2 | 4 | 6..=15) {
        return Ok((name, MatValue::Other { class }));
    }
    let value = match class {
        1 => {
            // one miMATRIX (8-byte tag at least) per element
            check_room(count, 1, body.end - r.off, r.off, "cell")?;
            let mut items = Vec::with_capacity(count);
            for k in 0..count {
                let at = r.off;
                let t = r.sub("cell element")?;
                if t.ty != MI_MATRIX {
                    return Err(format!(
                        "cell element {k} at byte {at} has type {} (need miMATRIX)",
                        t.ty
                    ));
                }
                items.push(parse_matrix(b, t.data, big, depth + 1)?.1);
            }
            MatValue::Cell { dims, items }
        }
        2 => {
            let len_t = r.sub("field name length")?;
            let len = (len_t.data.len() == 4)
                .then(|| u32_at(b, len_t.data.start, big))
                .flatten()
                .filter(|_| len_t.ty == MI_INT32)
                .ok_or_else(|| {
                    format!(
                        "field name length at byte {}: type {} and {} bytes (need one miINT32)",
                        len_t.data.start,
                        len_t.ty,
                        len_t.data.len()
                    )
                })? as usize;
            let names_t = r.sub("field names")?;
            let n = names_t.data.len();
            if names_t.ty != MI_INT8 || (len == 0 && n != 0) || (len != 0 && n % len != 0) {
                return Err(format!(
                    "field names at byte {}: type {} and {n} bytes, not a multiple of the \
                     field name length {len}",
                    names_t.data.start, names_t.ty
                ));
            }
            let fields: Vec<String> = if len == 0 {
                Vec::new()
            } else {
                b[names_t.data]
                    .chunks_exact(len)
                    .map(|c| {
                        let end = c.iter().position(|&x| x == 0).unwrap_or(c.len());
                        String::from_utf8_lossy(&c[..end]).into_owned()
                    })
                    .collect()
            };
            check_room(count, fields.len(), body.end - r.off, r.off, "struct")?;
            let mut values = Vec::with_capacity(count * fields.len());
            // (without fields there is nothing per element, however many elements)
            for e in (0..count).take_while(|_| !fields.is_empty()) {
                for f in &fields {
                    let at = r.off;
                    let t = r.sub("struct field")?;
                    if t.ty != MI_MATRIX {
                        return Err(format!(
                            "field `{f}` of element {e} at byte {at} has type {} (need miMATRIX)",
                            t.ty
                        ));
                    }
                    values.push(parse_matrix(b, t.data, big, depth + 1)?.1);
                }
            }
            MatValue::Struct {
                dims,
                fields,
                values,
            }
        }
        4 => {
            let data = r.sub("characters")?;
            let chars = read_chars(data.ty, &b[data.data.clone()], big)
                .filter(|c| c.len() == count)
                .ok_or_else(|| {
                    format!(
                        "char array `{name}` has dimensions {dims:?} ({count} characters) but \
                         its data at byte {} holds {} bytes of type {}",
                        data.data.start,
                        data.data.len(),
                        data.ty
                    )
                })?;
            MatValue::Char { dims, chars }
        }
        _ => {
            let real = r.sub("real part")?;
            let size = type_size(real.ty).ok_or_else(|| {
                format!(
                    "real part of `{name}` at byte {} has unsupported type {}",
                    real.data.start, real.ty
                )
            })?;
            if real.data.len() % size != 0 || real.data.len() / size != count {
                return Err(format!(
                    "`{name}` has dimensions {dims:?} ({count} values) but its real part at \
                     byte {} holds {} bytes of type {}",
                    real.data.start,
                    real.data.len(),
                    real.ty
                ));
            }
            let values = b[real.data]
                .chunks_exact(size)
                .map(|s| read_value(real.ty, s, big))
                .collect();
            MatValue::Numeric { dims, values }
        }
    };
    Ok((name, value))
}

/// Checks that `count × per` sub-elements (8 bytes each at least) fit in `room` bytes.
fn check_room(count: usize, per: usize, room: usize, off: usize, what: &str) -> Result<(), String> {
    match count.checked_mul(per).and_then(|n| n.checked_mul(8)) {
        Some(need) if need <= room => Ok(()),
        _ => Err(format!(
            "byte {off}: {what} of {count} elements × {per} cannot fit in the {room} bytes left"
        )),
    }
}

/// Parses a level-5 MAT-file: every variable, in file order.
pub fn parse_mat_variables(bytes: &[u8], name: &str) -> Result<Vec<MatVariable>, DataError> {
    if bytes.len() < 128 {
        return Err(malformed(
            name,
            "byte 0",
            format!("{} bytes, shorter than the 128-byte header", bytes.len()),
        ));
    }
    if bytes.starts_with(b"MATLAB 7.3") {
        return Err(malformed(
            name,
            "byte 0",
            "a MATLAB 7.3 MAT-file (HDF5) is not read; save it with `save -v7`",
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
                let (n, value) = parse_matrix(bytes, tag.data.clone(), big, 0)
                    .map_err(|e| at(format!("matrix: {e}")))?;
                out.push(MatVariable {
                    name: n,
                    offset: off,
                    value,
                });
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
                    if t.ty == MI_MATRIX {
                        let (n, value) =
                            parse_matrix(&inflated, t.data.clone(), big, 0).map_err(|e| {
                                at(format!(
                                    "matrix at decompressed byte {inner}: {e} (decompressed \
                                     offsets)"
                                ))
                            })?;
                        out.push(MatVariable {
                            name: n,
                            offset: off,
                            value,
                        });
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

/// [`parse_mat_variables`] on a file.
pub fn mat_variables_from_path(path: &Path) -> Result<Vec<MatVariable>, DataError> {
    parse_mat_variables(&read_file(path)?, &path_name(path))
}

/// Parses a level-5 MAT-file: its numeric arrays (top-level variables only), in file order.
pub fn parse_mat(bytes: &[u8], name: &str) -> Result<Vec<MatArray>, DataError> {
    Ok(parse_mat_variables(bytes, name)?
        .into_iter()
        .filter_map(|v| match v.value {
            MatValue::Numeric { dims, values } => Some(MatArray {
                name: v.name,
                dims,
                values,
            }),
            _ => None,
        })
        .collect())
}

/// [`parse_mat`] on a file.
pub fn mat_from_path(path: &Path) -> Result<Vec<MatArray>, DataError> {
    parse_mat(&read_file(path)?, &path_name(path))
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

    /// A big-endian (`MI`) file: tags, small elements and UTF-16 data in big-endian order.
    #[test]
    fn big_endian_cell_of_char() {
        let be = |ty: u32, data: &[u8]| -> Vec<u8> {
            if !data.is_empty() && data.len() <= 4 {
                let mut v = (((data.len() as u32) << 16) | ty).to_be_bytes().to_vec();
                v.extend_from_slice(data);
                v.resize(8, 0);
                return v;
            }
            let mut v = ty.to_be_bytes().to_vec();
            v.extend_from_slice(&(data.len() as u32).to_be_bytes());
            v.extend_from_slice(data);
            v.resize(v.len() + (8 - data.len() % 8) % 8, 0);
            v
        };
        let matrix = |class: u8, name: &[u8], rest: Vec<u8>| {
            let mut m = be(6, &[0, 0, 0, class, 0, 0, 0, 0]);
            m.extend(be(5, &[0, 0, 0, 1, 0, 0, 0, 2]));
            m.extend(be(1, name));
            m.extend(rest);
            be(MI_MATRIX, &m)
        };
        let hi = matrix(4, b"", be(4, &[0, b'h', 0, b'i']));
        let mut f = vec![b' '; 116];
        f.extend_from_slice(&[0; 8]);
        f.extend_from_slice(&0x0100u16.to_be_bytes());
        f.extend_from_slice(b"MI");
        // a 1 × 2 cell: "hi" twice
        let mut items = hi.clone();
        items.extend(hi);
        f.extend(matrix(1, b"c", items));
        let v = parse_mat_variables(&f, "be.mat").unwrap();
        assert_eq!(v[0].name, "c");
        let MatValue::Cell { dims, items } = &v[0].value else {
            panic!("{:?}", v[0].value)
        };
        assert_eq!(dims, &[1, 2]);
        assert_eq!(items[1].text().as_deref(), Some("hi"));
    }
}
