//! DVS128 Gesture: `*.aedat` (AEDAT 3.1) with `*_labels.csv`, split by `trials_to_train.txt` /
//! `trials_to_test.txt` or by user (1–23 train).

use std::path::{Path, PathBuf};

use super::event_sets::{EventFile, EventFormat, Integration, event_set};
use super::files::{empty_dir, has_ext, list, require_dir};
use super::{DataConfig, config_as_data};
use crate::Split;
use crate::error::DataError;
use crate::formats::{aedat3, path_name, read_file};

pub(super) fn load(dir: &Path, c: &DataConfig, t: usize) -> Result<Split, DataError> {
    require_dir(dir)?;
    let integ = Integration::from_config(c, t).map_err(config_as_data)?;
    let f = EventFormat::DvsGesture;
    let trial_list = |file: &str| -> Result<Option<Vec<PathBuf>>, DataError> {
        let p = dir.join(file);
        if !p.is_file() {
            return Ok(None);
        }
        let text = String::from_utf8_lossy(&read_file(&p)?).into_owned();
        Ok(Some(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(|l| dir.join(l))
                .collect(),
        ))
    };
    let (train_files, test_files) = match (
        trial_list("trials_to_train.txt")?,
        trial_list("trials_to_test.txt")?,
    ) {
        (Some(a), Some(b)) => (a, b),
        _ => {
            // official split by subject: users 1..=23 train, 24..=29 test
            let all: Vec<PathBuf> = list(dir, false)?
                .into_iter()
                .filter(|p| has_ext(p, &["aedat"]))
                .collect();
            let user = |p: &PathBuf| -> u32 {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| n.strip_prefix("user"))
                    .map(|n| {
                        n.chars()
                            .take_while(char::is_ascii_digit)
                            .collect::<String>()
                    })
                    .and_then(|d| d.parse().ok())
                    .unwrap_or(0)
            };
            all.into_iter().partition(|p| user(p) <= 23)
        }
    };
    if train_files.is_empty() {
        return Err(empty_dir(dir, "DVS128 Gesture .aedat recordings"));
    }
    let files = |paths: Vec<PathBuf>| -> Result<Vec<EventFile>, DataError> {
        let mut out = Vec::new();
        let mut n = 0usize;
        for path in paths {
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let csv = path.with_file_name(format!("{stem}_labels.csv"));
            let text = String::from_utf8_lossy(&read_file(&csv)?).into_owned();
            let segs = aedat3::parse_gesture_labels(&text, &path_name(&csv), 11)?;
            let mut samples: Vec<_> = segs.into_iter().map(|s| (s.label, Some(s))).collect();
            if c.limit > 0 {
                samples.truncate(c.limit.saturating_sub(n));
            }
            n += samples.len();
            if !samples.is_empty() {
                out.push(EventFile { path, samples });
            }
        }
        Ok(out)
    };
    let name = |w: &str| format!("dvsgesture:{}/{w}", dir.display());
    Ok(Split {
        train: event_set(name("train"), &files(train_files)?, f, &integ, c)?,
        val: None,
        train_long: None,
        test: event_set(name("test"), &files(test_files)?, f, &integ, c)?,
    })
}
