//! NumPy `.npy` event arrays.
//!
//! Format (NumPy `format.py`, versions 1.0 to 3.0): magic `\x93NUMPY`, u8 major, u8 minor,
//! header length (u16 LE in 1.x, u32 LE in 2.x/3.x), an ASCII Python dict literal with
//! `descr`, `fortran_order` and `shape`, then the raw array.
//!
//! Two layouts are read:
//! * structured, shape `(N,)`, with fields `x`, `y`, `t` (or `ts`, `timestamp`) and `p` (or
//!   `pol`, `polarity`), other fields (and `V` padding) skipped — tonic's layout;
//! * plain 2-D `(N, 4)`, columns `x, y, t, p`, C or Fortran order.
//!
//! Element types: `b1`, `i1`/`u1`, `i2`/`u2`, `i4`/`u4`, `i8`/`u8`, `f4`, `f8`, either byte
//! order. `x`, `y` must be integers in `0..=65535`; `p` is 0 or -1 (OFF) or 1 (ON) (`true` is
//! ON); `t` (µs) must be finite and ≥ 0, floats are truncated. The sensor size is the largest
//! coordinate + 1.
//!
//! `.npz` archives (zip, members stored or deflated) are read by [`parse_npz_events`] through the
//! `zip` crate ([`zip_members`]).

use std::io::Read;
use std::path::Path;

use super::{le_u16, le_u32, malformed, path_name, read_file};
use crate::error::DataError;
use crate::events::Events;

/// The npy magic.
pub const MAGIC: &[u8] = b"\x93NUMPY";

/// A scalar element type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scalar {
    /// `b`, `i`, `u`, `f` or `V` (padding, skipped).
    pub kind: u8,
    /// Bytes per element.
    pub size: usize,
    /// Big-endian.
    pub big: bool,
}

impl Scalar {
    fn parse(s: &str) -> Option<Self> {
        let b = s.as_bytes();
        let (big, rest) = match b.first()? {
            b'<' | b'|' | b'=' => (false, &b[1..]),
            b'>' => (true, &b[1..]),
            _ => (false, b),
        };
        let kind = *rest.first()?;
        let size: usize = std::str::from_utf8(&rest[1..]).ok()?.parse().ok()?;
        let ok = match kind {
            b'b' => size == 1,
            b'i' | b'u' => matches!(size, 1 | 2 | 4 | 8),
            b'f' => matches!(size, 4 | 8),
            b'V' => (1..=1 << 20).contains(&size),
            _ => false,
        };
        ok.then_some(Self { kind, size, big })
    }

    /// The value at the start of `b` (`b.len() >= size`), as f64.
    fn read(self, b: &[u8]) -> f64 {
        let mut a = [0u8; 8];
        a[..self.size].copy_from_slice(&b[..self.size]);
        if self.big {
            a[..self.size].reverse();
        }
        let u = u64::from_le_bytes(a);
        match (self.kind, self.size) {
            (b'f', 4) => f32::from_bits(u as u32) as f64,
            (b'f', _) => f64::from_bits(u),
            (b'i', s) => {
                let shift = 64 - 8 * s as u32;
                (((u << shift) as i64) >> shift) as f64
            }
            (b'V', _) => 0.0,
            _ => u as f64,
        }
    }
}

/// A tiny Python literal (what npy headers contain).
#[derive(Debug, Clone, PartialEq)]
enum Lit {
    Str(String),
    Int(i64),
    Bool(bool),
    Seq(Vec<Lit>),
    Dict(Vec<(Lit, Lit)>),
}

struct LitParser<'a> {
    s: &'a [u8],
    pos: usize,
}

impl LitParser<'_> {
    fn ws(&mut self) {
        while self.pos < self.s.len() && self.s[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
    }

    fn value(&mut self, depth: usize) -> Result<Lit, String> {
        if depth > 16 {
            return Err("header literal nested too deeply".into());
        }
        self.ws();
        let Some(&c) = self.s.get(self.pos) else {
            return Err("header ends early".into());
        };
        match c {
            b'{' => {
                self.pos += 1;
                let mut items = Vec::new();
                loop {
                    self.ws();
                    if self.s.get(self.pos) == Some(&b'}') {
                        self.pos += 1;
                        return Ok(Lit::Dict(items));
                    }
                    let k = self.value(depth + 1)?;
                    self.ws();
                    if self.s.get(self.pos) != Some(&b':') {
                        return Err(format!("expected `:` at header byte {}", self.pos));
                    }
                    self.pos += 1;
                    let v = self.value(depth + 1)?;
                    items.push((k, v));
                    self.sep(b'}')?;
                }
            }
            b'[' | b'(' => {
                let close = if c == b'[' { b']' } else { b')' };
                self.pos += 1;
                let mut items = Vec::new();
                loop {
                    self.ws();
                    if self.s.get(self.pos) == Some(&close) {
                        self.pos += 1;
                        return Ok(Lit::Seq(items));
                    }
                    items.push(self.value(depth + 1)?);
                    self.sep(close)?;
                }
            }
            b'\'' | b'"' => {
                let start = self.pos + 1;
                let end = self.s[start..]
                    .iter()
                    .position(|&b| b == c)
                    .ok_or("unterminated string in header")?
                    + start;
                self.pos = end + 1;
                Ok(Lit::Str(
                    String::from_utf8_lossy(&self.s[start..end]).into_owned(),
                ))
            }
            b'0'..=b'9' | b'-' => {
                let start = self.pos;
                self.pos += 1;
                while self.pos < self.s.len() && self.s[self.pos].is_ascii_digit() {
                    self.pos += 1;
                }
                // `3L` in Python 2 written files
                if self.s.get(self.pos) == Some(&b'L') {
                    self.pos += 1;
                }
                let txt = std::str::from_utf8(&self.s[start..self.pos])
                    .unwrap_or("")
                    .trim_end_matches('L');
                txt.parse()
                    .map(Lit::Int)
                    .map_err(|_| format!("bad integer `{txt}` in header"))
            }
            _ if self.s[self.pos..].starts_with(b"True") => {
                self.pos += 4;
                Ok(Lit::Bool(true))
            }
            _ if self.s[self.pos..].starts_with(b"False") => {
                self.pos += 5;
                Ok(Lit::Bool(false))
            }
            _ => Err(format!(
                "unexpected `{}` at header byte {}",
                c as char, self.pos
            )),
        }
    }

    /// After an item: `,` (then maybe the closer) or the closer, left for the caller.
    fn sep(&mut self, close: u8) -> Result<(), String> {
        self.ws();
        match self.s.get(self.pos) {
            Some(&b',') => {
                self.pos += 1;
                Ok(())
            }
            Some(&c) if c == close => Ok(()),
            _ => Err(format!(
                "expected `,` or `{}` at header byte {}",
                close as char, self.pos
            )),
        }
    }
}

/// Where each of x, y, t, p sits: byte offset within a record and type.
type Columns = [(usize, Scalar); 4];

/// A parsed `.npy` header: the dict items, `fortran_order`, `shape` and where the data starts.
struct Header {
    items: Vec<(Lit, Lit)>,
    fortran: bool,
    shape: Vec<usize>,
    hstart: usize,
    hend: usize,
}

impl Header {
    fn get(&self, k: &str) -> Option<&Lit> {
        self.items
            .iter()
            .find(|(key, _)| *key == Lit::Str(k.into()))
            .map(|(_, v)| v)
    }
}

fn parse_header(bytes: &[u8], name: &str) -> Result<Header, DataError> {
    if !bytes.starts_with(MAGIC) {
        return Err(malformed(name, "byte 0", "missing the `\\x93NUMPY` magic"));
    }
    let major = *bytes
        .get(6)
        .ok_or_else(|| malformed(name, "byte 6", "file ends in the version"))?;
    let (hlen, hstart) = match major {
        1 => (le_u16(bytes, 8).map(|v| v as usize), 10usize),
        2 | 3 => (le_u32(bytes, 8).map(|v| v as usize), 12),
        v => {
            return Err(malformed(
                name,
                "byte 6",
                format!("npy version {v} not supported"),
            ));
        }
    };
    let hlen = hlen.ok_or_else(|| malformed(name, "byte 8", "file ends in the header length"))?;
    let hend = hstart
        .checked_add(hlen)
        .filter(|&e| e <= bytes.len())
        .ok_or_else(|| {
            malformed(
                name,
                "byte 8",
                format!(
                    "header length {hlen} runs past the end ({} bytes)",
                    bytes.len()
                ),
            )
        })?;
    let hdr_err = |what: String| malformed(name, format!("header (bytes {hstart}..{hend})"), what);
    let lit = LitParser {
        s: &bytes[hstart..hend],
        pos: 0,
    }
    .value(0)
    .map_err(hdr_err)?;
    let Lit::Dict(items) = lit else {
        return Err(hdr_err("header is not a dict".into()));
    };
    let mut h = Header {
        items,
        fortran: false,
        shape: Vec::new(),
        hstart,
        hend,
    };
    h.fortran = match h.get("fortran_order") {
        Some(Lit::Bool(b)) => *b,
        _ => return Err(hdr_err("missing or bad `fortran_order`".into())),
    };
    h.shape = match h.get("shape") {
        Some(Lit::Seq(v)) => v
            .iter()
            .map(|d| match d {
                Lit::Int(i) if *i >= 0 => Ok(*i as usize),
                _ => Err(hdr_err(format!("bad dimension {d:?} in `shape`"))),
            })
            .collect::<Result<_, _>>()?,
        _ => return Err(hdr_err("missing or bad `shape`".into())),
    };
    Ok(h)
}

/// Checks one `(x, y, t, p)` record and appends it; `mx`/`my` track the largest coordinates.
fn push_record(
    ev: &mut Events,
    v: [f64; 4],
    name: &str,
    i: usize,
    mx: &mut u16,
    my: &mut u16,
) -> Result<(), DataError> {
    let bad = |what: String| malformed(name, format!("record {i}"), what);
    let coord = |c: f64, axis: &str| {
        if c.is_finite() && c.fract() == 0.0 && (0.0..=65535.0).contains(&c) {
            Ok(c as u16)
        } else {
            Err(bad(format!("{axis} = {c} is not an integer in 0..=65535")))
        }
    };
    let (x, y) = (coord(v[0], "x")?, coord(v[1], "y")?);
    if !(v[2].is_finite() && v[2] >= 0.0) {
        return Err(bad(format!("t = {} is not a finite time >= 0", v[2])));
    }
    let p = match v[3] {
        1.0 => 1,
        0.0 | -1.0 => 0,
        o => return Err(bad(format!("p = {o}, expected 0, -1 or 1"))),
    };
    *mx = (*mx).max(x);
    *my = (*my).max(y);
    ev.push(x, y, v[2] as u64, p);
    Ok(())
}

/// Parses a plain numeric `.npy` array of any rank (C order, or a Fortran-order array with at
/// most one dimension above 1) as its shape and f64 values.
pub fn parse_npy_array(bytes: &[u8], name: &str) -> Result<(Vec<usize>, Vec<f64>), DataError> {
    let h = parse_header(bytes, name)?;
    let (hstart, hend) = (h.hstart, h.hend);
    let hdr_err = |what: String| malformed(name, format!("header (bytes {hstart}..{hend})"), what);
    let sc = match h.get("descr") {
        Some(Lit::Str(s)) => Scalar::parse(s).filter(|s| s.kind != b'V'),
        _ => None,
    };
    let sc = sc.ok_or_else(|| hdr_err("the array needs a plain numeric `descr`".into()))?;
    if h.fortran && h.shape.iter().filter(|&&d| d > 1).count() > 1 {
        return Err(hdr_err("Fortran order is not supported".into()));
    }
    let n = h.shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    let body = &bytes[hend..];
    if n.and_then(|n| n.checked_mul(sc.size)) != Some(body.len()) {
        let what = format!("shape {:?} of {}-byte values", h.shape, sc.size);
        let what = format!("{what} does not match the {} data bytes", body.len());
        return Err(malformed(name, format!("byte {hend}"), what));
    }
    let values = body.chunks_exact(sc.size).map(|b| sc.read(b)).collect();
    Ok((h.shape, values))
}

/// Parses a 1-D (or single-column) plain numeric `.npy` array as f64 values.
pub fn parse_npy_column(bytes: &[u8], name: &str) -> Result<Vec<f64>, DataError> {
    let (shape, values) = parse_npy_array(bytes, name)?;
    match shape[..] {
        [_] | [_, 1] | [1, _] => Ok(values),
        _ => Err(malformed(name, "header", format!("not 1-D: {shape:?}"))),
    }
}

/// Parses a `.npy` event array.
pub fn parse_npy_events(bytes: &[u8], name: &str) -> Result<Events, DataError> {
    let h = parse_header(bytes, name)?;
    let (hstart, hend, fortran) = (h.hstart, h.hend, h.fortran);
    let shape = h.shape.clone();
    let get = |k: &str| h.get(k);
    let hdr_err = |what: String| malformed(name, format!("header (bytes {hstart}..{hend})"), what);
    let body = &bytes[hend..];
    // (number of records, record size in bytes, column positions, column-major flag)
    let (n, rec, cols, col_major): (usize, usize, Columns, bool) = match get("descr") {
        Some(Lit::Str(s)) => {
            let sc = Scalar::parse(s)
                .filter(|s| s.kind != b'V')
                .ok_or_else(|| hdr_err(format!("element type `{s}` not supported")))?;
            if shape.len() != 2 || shape[1] != 4 {
                return Err(hdr_err(format!(
                    "plain arrays must have shape (N, 4) with columns x, y, t, p, found {shape:?}"
                )));
            }
            let cols = [(0, sc), (sc.size, sc), (2 * sc.size, sc), (3 * sc.size, sc)];
            (shape[0], 4 * sc.size, cols, fortran)
        }
        Some(Lit::Seq(fields)) => {
            if shape.len() != 1 {
                return Err(hdr_err(format!(
                    "structured arrays must be 1-D, found shape {shape:?}"
                )));
            }
            let mut found: [Option<(usize, Scalar)>; 4] = [None; 4];
            let mut off = 0usize;
            for f in fields {
                let (fname, ty) = match f {
                    Lit::Seq(v) if v.len() == 2 => match (&v[0], &v[1]) {
                        (Lit::Str(a), Lit::Str(b)) => (a.as_str(), b.as_str()),
                        _ => return Err(hdr_err(format!("bad field {f:?}"))),
                    },
                    _ => {
                        return Err(hdr_err(format!(
                            "field {f:?} not supported (sub-arrays are not)"
                        )));
                    }
                };
                let sc = Scalar::parse(ty)
                    .ok_or_else(|| hdr_err(format!("field `{fname}` type `{ty}` not supported")))?;
                let slot = match fname {
                    "x" => Some(0),
                    "y" => Some(1),
                    "t" | "ts" | "timestamp" => Some(2),
                    "p" | "pol" | "polarity" => Some(3),
                    _ => None,
                };
                if let Some(k) = slot
                    && sc.kind != b'V'
                {
                    found[k] = Some((off, sc));
                }
                off += sc.size;
            }
            let mut cols = [(
                0,
                Scalar {
                    kind: b'u',
                    size: 1,
                    big: false,
                },
            ); 4];
            for (k, c) in found.iter().enumerate() {
                cols[k] =
                    c.ok_or_else(|| hdr_err(format!("no `{}` field", ["x", "y", "t", "p"][k])))?;
            }
            (shape[0], off, cols, false)
        }
        _ => return Err(hdr_err("missing or bad `descr`".into())),
    };
    let need = n
        .checked_mul(rec)
        .ok_or_else(|| hdr_err(format!("shape {shape:?} overflows")))?;
    if body.len() != need {
        return Err(malformed(
            name,
            format!("byte {hend}"),
            format!(
                "{n} records of {rec} bytes need {need} data bytes, found {}",
                body.len()
            ),
        ));
    }
    let mut ev = Events::with_capacity(0, 0, n);
    let (mut mx, mut my) = (0u16, 0u16);
    for i in 0..n {
        let mut v = [0f64; 4];
        for (k, &(off, sc)) in cols.iter().enumerate() {
            let at = if col_major {
                (k * n + i) * sc.size
            } else {
                i * rec + off
            };
            v[k] = sc.read(&body[at..]);
        }
        push_record(&mut ev, v, name, i, &mut mx, &mut my)?;
    }
    if n > 0 {
        ev.width = mx.saturating_add(1);
        ev.height = my.saturating_add(1);
    }
    Ok(ev)
}

/// [`parse_npy_events`] on a file.
pub fn npy_from_path(path: &Path) -> Result<Events, DataError> {
    parse_npy_events(&read_file(path)?, &path_name(path))
}

/// Largest decompressed `.npz` member accepted (bytes).
pub const MAX_NPZ_MEMBER: u64 = 1 << 30;

/// The members of a zip archive (`.npz`): `(name, decompressed bytes)`, in central-directory
/// order, read with the `zip` crate. Members must be stored or deflated (what `np.savez` and
/// `np.savez_compressed` write); each is read up to [`MAX_NPZ_MEMBER`] bytes and must hold its
/// declared size, with the CRC-32 the crate checks. Encrypted members are refused.
pub fn zip_members(bytes: &[u8], name: &str) -> Result<Vec<(String, Vec<u8>)>, DataError> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(|e| {
        malformed(
            name,
            "zip archive",
            format!("not a readable zip archive: {e}"),
        )
    })?;
    let mut out = Vec::with_capacity(archive.len().min(64));
    for k in 0..archive.len() {
        let mut member = archive
            .by_index(k)
            .map_err(|e| malformed(name, format!("zip entry {k}"), e.to_string()))?;
        let mname = member
            .name()
            .map_err(|e| malformed(name, format!("zip entry {k}"), format!("its name: {e}")))?
            .into_owned();
        let at = |what: String| malformed(name, format!("zip member `{mname}` (entry {k})"), what);
        let declared = member.size();
        if declared > MAX_NPZ_MEMBER {
            return Err(at(format!(
                "declared size {declared} exceeds {MAX_NPZ_MEMBER} bytes"
            )));
        }
        let mut content = Vec::new();
        (&mut member)
            .take(declared + 1)
            .read_to_end(&mut content)
            .map_err(|e| {
                let e = e.to_string();
                if e.contains("checksum") {
                    at(format!("CRC-32 does not match the directory's ({e})"))
                } else {
                    at(format!("cannot decompress: {e}"))
                }
            })?;
        if content.len() as u64 != declared {
            return Err(at(format!(
                "holds {} bytes, the directory says {declared}",
                content.len()
            )));
        }
        drop(member);
        out.push((mname, content));
    }
    Ok(out)
}

/// Parses a NumPy `.npz` archive of events: either one member holding an event array (see
/// [`parse_npy_events`]) or separate 1-D members `x`, `y`, `t` (or `ts`, `timestamp`) and `p`
/// (or `pol`, `polarity`) of equal length (other members ignored).
pub fn parse_npz_events(bytes: &[u8], name: &str) -> Result<Events, DataError> {
    let members = zip_members(bytes, name)?;
    let key = |m: &str| m.strip_suffix(".npy").unwrap_or(m).to_string();
    let find = |names: &[&str]| {
        members
            .iter()
            .find(|(m, _)| names.contains(&key(m).as_str()))
    };
    let cols = [
        find(&["x"]),
        find(&["y"]),
        find(&["t", "ts", "timestamp"]),
        find(&["p", "pol", "polarity"]),
    ];
    if cols.iter().all(Option::is_some) {
        let mut vals: [Vec<f64>; 4] = Default::default();
        for (slot, (m, b)) in vals.iter_mut().zip(cols.into_iter().flatten()) {
            *slot = parse_npy_column(b, &format!("{name}:{m}"))?;
        }
        let n = vals[0].len();
        if vals.iter().any(|v| v.len() != n) {
            return Err(malformed(
                name,
                "members x, y, t, p",
                format!(
                    "lengths differ: {:?}",
                    vals.iter().map(Vec::len).collect::<Vec<_>>()
                ),
            ));
        }
        let mut ev = Events::with_capacity(0, 0, n);
        let (mut mx, mut my) = (0u16, 0u16);
        let [xs, ys, ts, ps] = &vals;
        for (i, (((&x, &y), &t), &p)) in xs.iter().zip(ys).zip(ts).zip(ps).enumerate() {
            let v = [x, y, t, p];
            push_record(&mut ev, v, name, i, &mut mx, &mut my)?;
        }
        if n > 0 {
            ev.width = mx.saturating_add(1);
            ev.height = my.saturating_add(1);
        }
        return Ok(ev);
    }
    match &members[..] {
        [(m, b)] => parse_npy_events(b, &format!("{name}:{m}")),
        _ => Err(malformed(
            name,
            "zip directory",
            format!(
                "expected one event array or members x, y, t, p; found {:?}",
                members.iter().map(|(m, _)| m.as_str()).collect::<Vec<_>>()
            ),
        )),
    }
}

/// [`parse_npz_events`] on a file.
pub fn npz_from_path(path: &Path) -> Result<Events, DataError> {
    parse_npz_events(&read_file(path)?, &path_name(path))
}

/// Writes a zip archive of `(name, data, deflate)` members (local headers, central directory,
/// end record), as `np.savez` / `np.savez_compressed` do. For tests and fixtures.
pub fn write_zip(members: &[(&str, &[u8], bool)]) -> Vec<u8> {
    use std::io::Write;
    let mut out = Vec::new();
    let mut cd = Vec::new();
    for &(mname, data, deflate) in members {
        let mut c = flate2::Crc::new();
        c.update(data);
        let stored = if deflate {
            let mut e =
                flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(data).expect("write to Vec");
            e.finish().expect("write to Vec")
        } else {
            data.to_vec()
        };
        let method: u16 = if deflate { 8 } else { 0 };
        let off = out.len() as u32;
        let common = |v: &mut Vec<u8>| {
            v.extend_from_slice(&20u16.to_le_bytes()); // version needed
            v.extend_from_slice(&0u16.to_le_bytes()); // flags
            v.extend_from_slice(&method.to_le_bytes());
            v.extend_from_slice(&[0, 0, 0x21, 0]); // time, date (1980-01-01)
            v.extend_from_slice(&c.sum().to_le_bytes());
            v.extend_from_slice(&(stored.len() as u32).to_le_bytes());
            v.extend_from_slice(&(data.len() as u32).to_le_bytes());
            v.extend_from_slice(&(mname.len() as u16).to_le_bytes());
            v.extend_from_slice(&0u16.to_le_bytes()); // extra length
        };
        out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        common(&mut out);
        out.extend_from_slice(mname.as_bytes());
        out.extend_from_slice(&stored);
        cd.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        cd.extend_from_slice(&20u16.to_le_bytes()); // version made by
        common(&mut cd);
        cd.extend_from_slice(&[0; 6]); // comment length, disk, internal attrs
        cd.extend_from_slice(&0u32.to_le_bytes()); // external attrs
        cd.extend_from_slice(&off.to_le_bytes());
        cd.extend_from_slice(mname.as_bytes());
    }
    let cd_off = out.len() as u32;
    out.extend_from_slice(&cd);
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&(members.len() as u16).to_le_bytes());
    out.extend_from_slice(&(members.len() as u16).to_le_bytes());
    out.extend_from_slice(&(cd.len() as u32).to_le_bytes());
    out.extend_from_slice(&cd_off.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

/// Writes a version-1.0 `.npy` file around `header_dict` and `data` (header padded with spaces to
/// a multiple of 64 bytes and ended by `\n`, as NumPy does). For tests and fixtures.
pub fn write_npy(header_dict: &str, data: &[u8]) -> Vec<u8> {
    let mut h = header_dict.as_bytes().to_vec();
    let total = 10 + h.len() + 1;
    h.resize(h.len() + (64 - total % 64) % 64, b' ');
    h.push(b'\n');
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(h.len() as u16).to_le_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_c_and_fortran_order() {
        let rows: [[i32; 4]; 2] = [[1, 2, 30, 1], [3, 4, 50, 0]];
        let c: Vec<u8> = rows
            .iter()
            .flatten()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let f = write_npy(
            "{'descr': '<i4', 'fortran_order': False, 'shape': (2, 4), }",
            &c,
        );
        let e = parse_npy_events(&f, "a.npy").unwrap();
        assert_eq!(
            (e.x.clone(), e.y.clone(), e.t.clone(), e.p.clone()),
            (vec![1, 3], vec![2, 4], vec![30, 50], vec![1, 0])
        );
        assert_eq!((e.width, e.height), (4, 5));
        let fo: Vec<u8> = (0..4)
            .flat_map(|j| rows.iter().map(move |r| r[j]))
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let f = write_npy(
            "{'descr': '<i4', 'fortran_order': True, 'shape': (2, 4), }",
            &fo,
        );
        assert_eq!(parse_npy_events(&f, "a.npy").unwrap(), e);
    }

    #[test]
    fn errors_name_the_record() {
        let d: Vec<u8> = [1.0f64, 2.0, 3.0, 7.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let f = write_npy(
            "{'descr': '<f8', 'fortran_order': False, 'shape': (1, 4), }",
            &d,
        );
        let e = parse_npy_events(&f, "b.npy").unwrap_err().to_string();
        assert!(
            e.contains("b.npy") && e.contains("record 0") && e.contains("p = 7"),
            "{e}"
        );
        let f = write_npy(
            "{'descr': '<f8', 'fortran_order': False, 'shape': (9, 4), }",
            &d,
        );
        assert!(
            parse_npy_events(&f, "b.npy")
                .unwrap_err()
                .to_string()
                .contains("need 288")
        );
        let f = write_npy(&format!("{}1{}", "[".repeat(40), "]".repeat(40)), &[]);
        assert!(parse_npy_events(&f, "b.npy").is_err());
    }
}
