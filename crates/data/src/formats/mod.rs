//! Readers for dataset file formats, plain Rust on bytes.
//!
//! Every parser takes `(&[u8], name)` and has a `*_from_path` wrapper that reads the file and
//! names it in errors. Parsers never panic and never allocate by a header field before checking
//! it against the bytes that remain; failures are [`DataError`]s naming the file and the byte
//! offset or record index.
//!
//! * [`idx`] — IDX (MNIST, Fashion-MNIST, KMNIST), raw or gzipped.
//! * [`nmnist`] — N-MNIST 40-bit `.bin` events.
//! * [`aedat2`] — jAER AEDAT 2.0 (DVS128 / CIFAR10-DVS address layouts).
//! * [`prophesee_dat`] — Prophesee/Chronocam `.dat` (N-CARS).
//! * [`npy`] — NumPy `.npy` event arrays.
//! * [`aedat4`] — AEDAT 4.0 polarity events (uncompressed, LZ4 or Zstd packets).
//! * [`aedat3`] — AEDAT 3.1 polarity events and DVS128 Gesture label files.
//! * [`cifar`] — CIFAR-10 / CIFAR-100 binary batches.
//! * [`mat`] — MATLAB level-5 MAT-files (numeric, char, cell, struct arrays; ST-MNIST
//!   `spiketrain`, Stanford Dogs / Cars split lists).
//! * [`recording`] — any event recording above, its format sniffed from its first bytes or
//!   its extension (the `events:` source, `tks data`).

pub mod aedat2;
pub mod aedat3;
pub mod aedat4;
pub mod cifar;
pub mod idx;
pub mod mat;
pub mod nmnist;
pub mod npy;
pub mod prophesee_dat;
pub mod recording;

use std::path::Path;

use crate::error::DataError;

/// Reads a whole file, naming it in the error.
pub fn read_file(path: &Path) -> Result<Vec<u8>, DataError> {
    std::fs::read(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        error: source,
    })
}

/// A [`DataError::Malformed`] for `name`.
pub(crate) fn malformed(
    name: &str,
    location: impl Into<String>,
    what: impl Into<String>,
) -> DataError {
    DataError::Malformed {
        path: name.into(),
        location: location.into(),
        what: what.into(),
    }
}

/// `name` as text for error messages.
pub(crate) fn path_name(path: &Path) -> String {
    path.display().to_string()
}

/// Big-endian u32 at `off` (caller checked the length).
pub(crate) fn be_u32(b: &[u8], off: usize) -> Option<u32> {
    b.get(off..off.checked_add(4)?)
        .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

/// Little-endian u32 at `off`.
pub(crate) fn le_u32(b: &[u8], off: usize) -> Option<u32> {
    b.get(off..off.checked_add(4)?)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

/// Little-endian i32 at `off`.
pub(crate) fn le_i32(b: &[u8], off: usize) -> Option<i32> {
    le_u32(b, off).map(|v| v as i32)
}

/// Little-endian u16 at `off`.
pub(crate) fn le_u16(b: &[u8], off: usize) -> Option<u16> {
    b.get(off..off.checked_add(2)?)
        .map(|s| u16::from_le_bytes([s[0], s[1]]))
}

/// Little-endian i64 at `off`.
pub(crate) fn le_i64(b: &[u8], off: usize) -> Option<i64> {
    let s = b.get(off..off.checked_add(8)?)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(s);
    Some(i64::from_le_bytes(a))
}
