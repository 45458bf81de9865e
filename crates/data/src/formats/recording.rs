//! Any supported event recording, its format sniffed from its first bytes (else its
//! extension): what the generic `events:` source and `tks data` read.
//!
//! | format | recognised by | sensor |
//! |---|---|---|
//! | AEDAT 4.0 | `#!AER-DAT4.0` | `sizeX`/`sizeY` of the info XML, else the data |
//! | AEDAT 3.x | `#!AER-DAT3` | the data |
//! | AEDAT 2.0 (jAER DVS128 address layout) | `#!AER-DAT2.0` | 128 × 128 |
//! | Prophesee DAT | a `%` header line, or `.dat` | `% Width`/`% Height`, else the data |
//! | NumPy `.npy` / `.npz` event arrays | `\x93NUMPY` / `PK\x03\x04` | the data |
//! | ST-MNIST MAT (`spiketrain`) | `MATLAB 5.0 MAT-file` | 10 × 10 |
//! | 40-bit ATIS (N-MNIST, N-Caltech101) | `.bin`, `.bs2` (no header; checked first) | the data |
//!
//! "The data" is the largest coordinate + 1. A sensor side above [`MAX_SENSOR_SIDE`] is an error
//! naming the file (frames are allocated by the sensor size).

use std::path::Path;

use super::mat::{parse_mat, stmnist_events};
use super::{aedat2, aedat3, aedat4, malformed, nmnist, npy, path_name, prophesee_dat, read_file};
use crate::error::DataError;
use crate::events::Events;

/// Largest sensor width or height accepted from a header or from the data (Prophesee's largest
/// sensors are 1280 × 720).
pub const MAX_SENSOR_SIDE: u16 = 2048;

/// A recording format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordingKind {
    /// AEDAT 4.0.
    Aedat4,
    /// AEDAT 3.x.
    Aedat3,
    /// AEDAT 2.0, jAER's DVS128 address layout.
    Aedat2,
    /// Prophesee / Chronocam DAT.
    PropheseeDat,
    /// NumPy `.npy` event array.
    Npy,
    /// NumPy `.npz` archive of event columns.
    Npz,
    /// ST-MNIST MAT-file.
    StMnistMat,
    /// 40-bit ATIS records (N-MNIST, N-Caltech101).
    Bin40,
}

impl RecordingKind {
    /// A short name for messages.
    pub fn name(self) -> &'static str {
        match self {
            RecordingKind::Aedat4 => "AEDAT 4.0",
            RecordingKind::Aedat3 => "AEDAT 3.x",
            RecordingKind::Aedat2 => "AEDAT 2.0 (DVS128 layout)",
            RecordingKind::PropheseeDat => "Prophesee DAT",
            RecordingKind::Npy => "NumPy .npy events",
            RecordingKind::Npz => "NumPy .npz events",
            RecordingKind::StMnistMat => "ST-MNIST MAT-file",
            RecordingKind::Bin40 => "40-bit ATIS (N-MNIST / N-Caltech101)",
        }
    }

    /// Extensions that mark a recording of some kind when the first bytes do not.
    pub const EXTENSIONS: &'static [&'static str] =
        &["aedat4", "aedat", "dat", "npy", "npz", "mat", "bin", "bs2"];
}

/// The kind of the recording whose file starts with `head` (at least its first 32 bytes when
/// the file has them) and is named `path`; `None` when neither the bytes nor the extension
/// say.
pub fn sniff(head: &[u8], path: &Path) -> Option<RecordingKind> {
    let by_magic = [
        (&b"#!AER-DAT4"[..], RecordingKind::Aedat4),
        (b"#!AER-DAT3", RecordingKind::Aedat3),
        (b"#!AER-DAT2", RecordingKind::Aedat2),
        (b"\x93NUMPY", RecordingKind::Npy),
        (b"PK\x03\x04", RecordingKind::Npz),
        (b"PK\x05\x06", RecordingKind::Npz),
        (b"MATLAB 5.0 MAT-file", RecordingKind::StMnistMat),
        (b"% ", RecordingKind::PropheseeDat),
    ];
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase());
    // 40-bit records have no header: their first bytes are an event, whatever they spell
    if matches!(ext.as_deref(), Some("bin" | "bs2")) {
        return Some(RecordingKind::Bin40);
    }
    if let Some((_, k)) = by_magic.iter().find(|(m, _)| head.starts_with(m)) {
        return Some(*k);
    }
    match ext.as_deref() {
        Some("dat") => Some(RecordingKind::PropheseeDat),
        Some("aedat4") => Some(RecordingKind::Aedat4),
        Some("npy") => Some(RecordingKind::Npy),
        Some("npz") => Some(RecordingKind::Npz),
        Some("mat") => Some(RecordingKind::StMnistMat),
        Some("aedat") => Some(RecordingKind::Aedat2),
        _ => None,
    }
}

/// A parsed recording.
#[derive(Debug, Clone)]
pub struct Recording {
    /// Its format.
    pub kind: RecordingKind,
    /// Its events; `width` × `height` is the sensor.
    pub events: Events,
    /// Whether the sensor size came from the header (else from the data or the format).
    pub sensor_from_header: bool,
}

/// Parses the recording `bytes` named `name` (a path; its extension is used when the bytes do
/// not tell the format).
pub fn parse_recording(bytes: &[u8], name: &str) -> Result<Recording, DataError> {
    let kind = sniff(bytes, Path::new(name)).ok_or_else(|| {
        malformed(
            name,
            "byte 0",
            format!(
                "not a recognised event recording (no known magic bytes; extensions: {})",
                RecordingKind::EXTENSIONS.join(", ")
            ),
        )
    })?;
    let mut from_header = false;
    let mut events = match kind {
        RecordingKind::Aedat4 => {
            let a = aedat4::parse_aedat4(bytes, name)?;
            from_header = a.info.contains("sizeX");
            a.events
        }
        RecordingKind::Aedat3 => {
            let mut e = aedat3::parse_aedat3(bytes, name, 1 << 15, 1 << 15)?.events;
            fit_to_data(&mut e);
            e
        }
        RecordingKind::Aedat2 => aedat2::parse_aedat2(bytes, name)?.events(aedat2::Layout::Dvs128),
        RecordingKind::PropheseeDat => {
            let d = prophesee_dat::parse_dat(bytes, name)?;
            from_header = d.header.iter().any(|l| l.starts_with("Width"));
            d.events
        }
        RecordingKind::Npy => npy::parse_npy_events(bytes, name)?,
        RecordingKind::Npz => npy::parse_npz_events(bytes, name)?,
        RecordingKind::StMnistMat => {
            let arrays = parse_mat(bytes, name)?;
            let a = arrays
                .iter()
                .find(|a| a.name == "spiketrain")
                .ok_or_else(|| {
                    let found: Vec<&str> = arrays.iter().map(|a| a.name.as_str()).collect();
                    malformed(
                        name,
                        "variables",
                        format!("no `spiketrain` array (ST-MNIST); found {found:?}"),
                    )
                })?;
            stmnist_events(a).map_err(|e| rename(e, name))?
        }
        RecordingKind::Bin40 => {
            let mut e = nmnist::parse_bin40(bytes, name, 256, 256)?;
            fit_to_data(&mut e);
            e
        }
    };
    if events.width > MAX_SENSOR_SIDE || events.height > MAX_SENSOR_SIDE {
        return Err(malformed(
            name,
            if from_header { "header" } else { "events" },
            format!(
                "sensor {}×{} is larger than {MAX_SENSOR_SIDE}×{MAX_SENSOR_SIDE}",
                events.width, events.height
            ),
        ));
    }
    if events.width == 0 || events.height == 0 {
        // an empty recording without a header size: no sensor to speak of
        events.width = events.width.max(1);
        events.height = events.height.max(1);
    }
    Ok(Recording {
        kind,
        events,
        sensor_from_header: from_header,
    })
}

/// [`parse_recording`] on a file.
pub fn recording_from_path(path: &Path) -> Result<Recording, DataError> {
    parse_recording(&read_file(path)?, &path_name(path))
}

/// The sensor of `e` set to its largest coordinates + 1.
fn fit_to_data(e: &mut Events) {
    e.width = e.x.iter().max().map_or(0, |&x| x.saturating_add(1));
    e.height = e.y.iter().max().map_or(0, |&y| y.saturating_add(1));
}

/// An error of a nested parser (which names the array) with the file's name in front.
fn rename(e: DataError, name: &str) -> DataError {
    match e {
        DataError::Malformed {
            path,
            location,
            what,
        } => DataError::Malformed {
            path: name.into(),
            location: format!("{}, {location}", path.display()),
            what,
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_by_magic_then_extension() {
        let p = Path::new;
        assert_eq!(
            sniff(b"#!AER-DAT4.0\r\n", p("x.aedat")),
            Some(RecordingKind::Aedat4)
        );
        // a headerless .bin may start with any bytes
        assert_eq!(
            sniff(b"% \x80\x00\x01", p("x.bin")),
            Some(RecordingKind::Bin40)
        );
        assert_eq!(
            sniff(b"#!AER-DAT3.1\r\n", p("x")),
            Some(RecordingKind::Aedat3)
        );
        assert_eq!(
            sniff(b"#!AER-DAT2.0\r\n", p("x")),
            Some(RecordingKind::Aedat2)
        );
        assert_eq!(sniff(b"% Date", p("x")), Some(RecordingKind::PropheseeDat));
        assert_eq!(sniff(b"\x93NUMPY\x01", p("x")), Some(RecordingKind::Npy));
        assert_eq!(sniff(b"PK\x03\x04", p("x")), Some(RecordingKind::Npz));
        assert_eq!(
            sniff(b"MATLAB 5.0 MAT-file", p("x")),
            Some(RecordingKind::StMnistMat)
        );
        assert_eq!(sniff(b"", p("1.bs2")), Some(RecordingKind::Bin40));
        assert_eq!(sniff(b"\x00\x01", p("a.BIN")), Some(RecordingKind::Bin40));
        assert_eq!(sniff(b"hello", p("notes.txt")), None);
        let e = parse_recording(b"hello", "notes.txt")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("notes.txt") && e.contains("not a recognised"),
            "{e}"
        );
    }

    #[test]
    fn bin40_sensor_from_the_data() {
        // two events: (3, 5) ON at t=1, (10, 2) OFF at t=2
        let bytes = [3, 5, 0x80, 0, 1, 10, 2, 0, 0, 2];
        let r = parse_recording(&bytes, "a.bin").unwrap();
        assert_eq!((r.events.width, r.events.height), (11, 6));
        assert_eq!(r.events.polarity_counts(), (1, 1));
        assert!(!r.sensor_from_header);
    }
}
