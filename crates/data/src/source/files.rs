//! File-system helpers shared by the sources: directory checks and listings, class folders.

use std::path::{Path, PathBuf};

use crate::error::DataError;

pub(super) fn not_found(path: &Path, what: &str) -> DataError {
    DataError::Io {
        path: path.to_path_buf(),
        error: std::io::Error::new(std::io::ErrorKind::NotFound, what.to_string()),
    }
}

pub(super) fn require_dir(dir: &Path) -> Result<(), DataError> {
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(not_found(dir, "not a directory")),
        Err(source) => Err(DataError::Io {
            path: dir.to_path_buf(),
            error: source,
        }),
    }
}

/// Sorted entries of `dir`: sub-directories or files.
pub(super) fn list(dir: &Path, dirs: bool) -> Result<Vec<PathBuf>, DataError> {
    let rd = std::fs::read_dir(dir).map_err(|source| DataError::Io {
        path: dir.to_path_buf(),
        error: source,
    })?;
    let mut out = Vec::new();
    for e in rd {
        let e = e.map_err(|source| DataError::Io {
            path: dir.to_path_buf(),
            error: source,
        })?;
        let p = e.path();
        let hidden = p
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'));
        if !hidden && p.is_dir() == dirs {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

pub(super) fn has_ext(p: &Path, exts: &[&str]) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| exts.iter().any(|x| e.eq_ignore_ascii_case(x)))
}

pub(super) fn empty_dir(dir: &Path, what: &str) -> DataError {
    DataError::Malformed {
        path: dir.to_path_buf(),
        location: "directory".into(),
        what: format!("no {what} found"),
    }
}

pub(super) fn find_one(dir: &Path, names: &[String]) -> Result<PathBuf, DataError> {
    names
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            not_found(
                &dir.join(&names[0]),
                &format!("none of {names:?} in the folder"),
            )
        })
}

/// Files with their class index.
pub(super) type Labelled = Vec<(PathBuf, u32)>;

pub(super) fn class_files(dir: &Path, exts: &[&str]) -> Result<(Vec<String>, Labelled), DataError> {
    require_dir(dir)?;
    let classes = list(dir, true)?;
    let mut names = Vec::new();
    let mut items = Vec::new();
    for (k, cdir) in classes.iter().enumerate() {
        names.push(
            cdir.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        );
        for f in list(cdir, false)? {
            if has_ext(&f, exts) {
                items.push((f, k as u32));
            }
        }
    }
    if items.is_empty() {
        return Err(empty_dir(
            dir,
            &format!("class folders holding .{} files", exts.join("/.")),
        ));
    }
    Ok((names, items))
}
