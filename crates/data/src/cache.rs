//! On-disk cache of integrated event frames, so a second epoch or a second run does not parse
//! the recordings again.
//!
//! One file per sample, named by a 64-bit FNV-1a hash of the key: the source file's absolute
//! path, size and modification time, plus whatever changes the frames (T, `split_by`, resize,
//! segment). Layout: magic `TKSFRM01`, u64 LE value count, the f32 LE values, then the u64 LE
//! FNV-1a hash of the value bytes. A file with another magic, length or checksum is treated as
//! absent and rebuilt. Writes go to a unique temporary name first and are renamed into place,
//! so readers never see a half-written file; a failed write only costs the cache.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

const MAGIC: &[u8; 8] = b"TKSFRM01";

/// FNV-1a, 64 bit.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// A frame cache rooted at a directory (`None` = caching off).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameCache {
    dir: Option<PathBuf>,
}

/// The cache directory used when `[data] cache_dir` is unset: `<temp dir>/tks-cache/frames`.
/// The `tks` binary sets `cache_dir` to the user's cache directory (`$XDG_CACHE_HOME/tks/frames`,
/// else `$HOME/.cache/tks/frames`) before loading; the library reads no environment variables.
pub fn default_dir() -> PathBuf {
    std::env::temp_dir().join("tks-cache/frames")
}

impl FrameCache {
    /// A cache in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: Some(dir.into()),
        }
    }

    /// No caching.
    pub fn disabled() -> Self {
        Self { dir: None }
    }

    /// The directory, if caching is on.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// The cache file for `source` (a recording) and `params` (everything else in the key).
    pub fn path_for(&self, source: &Path, params: &str) -> Option<PathBuf> {
        let dir = self.dir.as_ref()?;
        let abs = std::fs::canonicalize(source).unwrap_or_else(|_| source.to_path_buf());
        let meta = std::fs::metadata(source).ok();
        let len = meta.as_ref().map_or(0, |m| m.len());
        let mtime = meta
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        let key = format!("v1|{}|{len}|{mtime}|{params}", abs.display());
        Some(dir.join(format!("{:016x}.frames", fnv1a(key.as_bytes()))))
    }

    /// The cached values, if a valid entry of exactly `expect_len` values exists.
    pub fn load(&self, file: &Path, expect_len: usize) -> Option<Vec<f32>> {
        let bytes = std::fs::read(file).ok()?;
        decode(&bytes, expect_len)
    }

    /// Stores `values` at `file` (temp + rename); errors are ignored.
    pub fn store(&self, file: &Path, values: &[f32]) {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let Some(dir) = file.parent() else { return };
        if std::fs::create_dir_all(dir).is_err() {
            return;
        }
        let tmp = file.with_extension(format!(
            "tmp{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        if std::fs::write(&tmp, encode(values)).is_ok() {
            if std::fs::rename(&tmp, file).is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
        } else {
            let _ = std::fs::remove_file(&tmp);
        }
    }

    /// Cached frames for `(source, params)` or, on a miss or a corrupt entry, `build()`'s result,
    /// stored for next time.
    pub fn get_or_build<E>(
        &self,
        source: &Path,
        params: &str,
        expect_len: usize,
        build: impl FnOnce() -> Result<Vec<f32>, E>,
    ) -> Result<Vec<f32>, E> {
        let file = self.path_for(source, params);
        if let Some(f) = &file
            && let Some(v) = self.load(f, expect_len)
        {
            return Ok(v);
        }
        let v = build()?;
        if let Some(f) = &file {
            self.store(f, &v);
        }
        Ok(v)
    }
}

/// The file bytes of `values`.
pub fn encode(values: &[f32]) -> Vec<u8> {
    let mut b = Vec::with_capacity(24 + values.len() * 4);
    b.extend_from_slice(MAGIC);
    b.extend_from_slice(&(values.len() as u64).to_le_bytes());
    let start = b.len();
    for v in values {
        b.extend_from_slice(&v.to_le_bytes());
    }
    let sum = fnv1a(&b[start..]);
    b.extend_from_slice(&sum.to_le_bytes());
    b
}

/// The values of a cache file, `None` when it is not a valid entry of `expect_len` values.
pub fn decode(bytes: &[u8], expect_len: usize) -> Option<Vec<f32>> {
    let body = bytes.strip_prefix(MAGIC)?;
    let n = u64::from_le_bytes(body.get(..8)?.try_into().ok()?);
    let data_len = expect_len.checked_mul(4)?;
    if n != expect_len as u64 || body.len() != data_len.checked_add(16)? {
        return None;
    }
    let data = &body[8..8 + expect_len * 4];
    let sum = u64::from_le_bytes(body[8 + expect_len * 4..].try_into().ok()?);
    if fnv1a(data) != sum {
        return None;
    }
    Some(
        data.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_corruption() {
        let v = vec![0.0, 1.5, -2.0, 3.25];
        let b = encode(&v);
        assert_eq!(decode(&b, 4), Some(v.clone()));
        assert_eq!(decode(&b, 3), None);
        let mut c = b.clone();
        c[20] ^= 1;
        assert_eq!(decode(&c, 4), None);
        assert_eq!(decode(&b[..b.len() - 1], 4), None);
        assert_eq!(decode(b"garbage", 4), None);
    }
}
