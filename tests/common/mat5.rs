//! Level-5 MAT-files written byte by byte from MathWorks' published "MAT-File Format"
//! document (Level 5 MAT-files: "MAT-File Header Format", "Data Element Format", "Small Data
//! Element Format", "miMATRIX Format" with its cell, structure and character array
//! subelements, and "Compressed Data Elements"). No real `.mat` split list is on this machine,
//! so the tests build them here, little-endian (`IM`), the way MATLAB lays them out: 8-byte
//! array flags, `miINT32` dimensions, `miINT8` name (small format when ≤ 4 bytes), character
//! data as `miUINT16`, a struct's field name length 32, and each variable as its own
//! `miCOMPRESSED` zlib element when compressed.

use std::io::Write;

pub const MI_INT8: u32 = 1;
pub const MI_UINT8: u32 = 2;
pub const MI_UINT16: u32 = 4;
pub const MI_INT32: u32 = 5;
pub const MI_UINT32: u32 = 6;
pub const MI_DOUBLE: u32 = 9;
pub const MI_MATRIX: u32 = 14;
pub const MI_COMPRESSED: u32 = 15;
pub const MI_UTF8: u32 = 16;

pub const MX_CELL: u8 = 1;
pub const MX_STRUCT: u8 = 2;
pub const MX_CHAR: u8 = 4;
pub const MX_SPARSE: u8 = 5;
pub const MX_DOUBLE: u8 = 6;
pub const MX_UINT8: u8 = 9;
pub const MX_UINT16: u8 = 11;

/// A data element in the 8-byte-tag format: u32 type, u32 byte count, data, zero padding to a
/// multiple of 8.
pub fn element_long(ty: u32, data: &[u8]) -> Vec<u8> {
    let mut v = ty.to_le_bytes().to_vec();
    v.extend_from_slice(&(data.len() as u32).to_le_bytes());
    v.extend_from_slice(data);
    v.resize(v.len() + (8 - data.len() % 8) % 8, 0);
    v
}

/// A data element as MATLAB writes it: the small format (u16 type, u16 byte count, 4 data
/// bytes) when the data takes 1 to 4 bytes, else [`element_long`].
pub fn element(ty: u32, data: &[u8]) -> Vec<u8> {
    if data.is_empty() || data.len() > 4 {
        return element_long(ty, data);
    }
    let mut v = (ty as u16).to_le_bytes().to_vec();
    v.extend_from_slice(&(data.len() as u16).to_le_bytes());
    v.extend_from_slice(data);
    v.resize(8, 0);
    v
}

/// An `miMATRIX` element: array flags (`miUINT32`, class in byte 0, flags in byte 1, then 4
/// reserved bytes), dimensions, name, then the class-specific subelements `body`.
pub fn matrix(class: u8, dims: &[u32], name: &str, body: &[Vec<u8>]) -> Vec<u8> {
    let mut m = element(MI_UINT32, &[class, 0, 0, 0, 0, 0, 0, 0]);
    let d: Vec<u8> = dims
        .iter()
        .flat_map(|d| (*d as i32).to_le_bytes())
        .collect();
    m.extend(element(MI_INT32, &d));
    m.extend(element(MI_INT8, name.as_bytes()));
    for b in body {
        m.extend_from_slice(b);
    }
    element_long(MI_MATRIX, &m)
}

/// A double array stored as `miDOUBLE`.
pub fn double(name: &str, dims: &[u32], values: &[f64]) -> Vec<u8> {
    let data: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    matrix(MX_DOUBLE, dims, name, &[element(MI_DOUBLE, &data)])
}

/// A double array whose values fit in a byte, stored as `miUINT8` (MATLAB stores numeric data
/// in the smallest type that holds it; the class stays double).
pub fn double_as_u8(name: &str, dims: &[u32], values: &[u8]) -> Vec<u8> {
    matrix(MX_DOUBLE, dims, name, &[element(MI_UINT8, values)])
}

/// An integer scalar of class uint8 (`class` = [`MX_UINT8`]) or uint16 ([`MX_UINT16`]).
pub fn uint_scalar(name: &str, class: u8, value: u16) -> Vec<u8> {
    let data = if class == MX_UINT8 {
        vec![value as u8]
    } else {
        value.to_le_bytes().to_vec()
    };
    let ty = if class == MX_UINT8 {
        MI_UINT8
    } else {
        MI_UINT16
    };
    matrix(class, &[1, 1], name, &[element(ty, &data)])
}

/// A `1 × N` char array, UTF-16 code units as `miUINT16`.
pub fn chars(name: &str, text: &str) -> Vec<u8> {
    let units: Vec<u16> = text.encode_utf16().collect();
    let data: Vec<u8> = units.iter().flat_map(|u| u.to_le_bytes()).collect();
    matrix(
        MX_CHAR,
        &[1, units.len() as u32],
        name,
        &[element(MI_UINT16, &data)],
    )
}

/// A `1 × N` char array of ASCII text stored as `miUTF8`.
pub fn chars_utf8(name: &str, text: &str) -> Vec<u8> {
    matrix(
        MX_CHAR,
        &[1, text.chars().count() as u32],
        name,
        &[element(MI_UTF8, text.as_bytes())],
    )
}

/// A cell array: one `miMATRIX` (with an empty name) per element, column-major.
pub fn cell(name: &str, dims: &[u32], items: &[Vec<u8>]) -> Vec<u8> {
    matrix(MX_CELL, dims, name, items)
}

/// A struct array: field name length 32 (`miINT32`, small format), the field names as `miINT8`
/// (32 bytes each, NUL-padded), then per element one `miMATRIX` per field.
pub fn structure(name: &str, dims: &[u32], fields: &[&str], values: &[Vec<u8>]) -> Vec<u8> {
    let mut names = Vec::new();
    for f in fields {
        let mut n = f.as_bytes().to_vec();
        n.resize(32, 0);
        names.extend(n);
    }
    let mut body = vec![
        element(MI_INT32, &32i32.to_le_bytes()),
        element(MI_INT8, &names),
    ];
    body.extend_from_slice(values);
    matrix(MX_STRUCT, dims, name, &body)
}

/// The 128-byte header: descriptive text padded with spaces to 116 bytes, 8 bytes of subsystem
/// data offset (zero: none), version 0x0100, endian indicator `IM`.
pub fn header() -> Vec<u8> {
    let mut h =
        b"MATLAB 5.0 MAT-file, Platform: GLNXA64, Created on: Wed Dec  2 02:19:26 2026".to_vec();
    h.resize(116, b' ');
    h.extend_from_slice(&[0; 8]);
    h.extend_from_slice(&0x0100u16.to_le_bytes());
    h.extend_from_slice(b"IM");
    h
}

/// One variable as an `miCOMPRESSED` element: the zlib stream of the whole `miMATRIX`
/// element, not padded.
pub fn compressed(var: &[u8]) -> Vec<u8> {
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(var).unwrap();
    let z = z.finish().unwrap();
    let mut v = MI_COMPRESSED.to_le_bytes().to_vec();
    v.extend_from_slice(&(z.len() as u32).to_le_bytes());
    v.extend_from_slice(&z);
    v
}

/// A whole file: the header, then each variable plain or compressed.
pub fn file(vars: &[Vec<u8>], compress: bool) -> Vec<u8> {
    let mut f = header();
    for v in vars {
        if compress {
            f.extend(compressed(v));
        } else {
            f.extend_from_slice(v);
        }
    }
    f
}
