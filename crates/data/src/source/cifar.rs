//! CIFAR-10 / CIFAR-100 binary batches (`data_batch_{1..5}.bin`, `test_batch.bin`; `train.bin`,
//! `test.bin`), optionally inside their archive folder.

use std::path::Path;

use rayon::prelude::*;

use super::files::require_dir;
use crate::error::DataError;
use crate::formats::cifar;
use crate::{Dataset, SampleKind, Split};

pub(super) fn load(dir: &Path, kind: cifar::CifarKind) -> Result<Split, DataError> {
    require_dir(dir)?;
    let (train_names, test_names) = cifar::file_names(kind);
    let sub = match kind {
        cifar::CifarKind::Cifar10 => "cifar-10-batches-bin",
        cifar::CifarKind::Cifar100 => "cifar-100-binary",
    };
    let base = if !dir.join(train_names[0]).exists() && dir.join(sub).is_dir() {
        dir.join(sub)
    } else {
        dir.to_path_buf()
    };
    let part = |names: &[&str], which: &str| -> Result<Dataset, DataError> {
        let batches = names
            .par_iter()
            .map(|n| cifar::cifar_from_path(&base.join(n), kind))
            .collect::<Result<Vec<_>, _>>()?;
        let mut values = Vec::new();
        let mut labels = Vec::new();
        for b in batches {
            values.extend(b.pixels.iter().map(|&v| v as f32 / 255.0));
            labels.extend(b.labels.iter().map(|&l| l as u32));
        }
        Dataset::new(
            format!("{}/{which}", base.display()),
            SampleKind::Static,
            [3, 32, 32],
            kind.num_classes(),
            values,
            labels,
        )
    };
    Ok(Split {
        train: part(&train_names, "train")?,
        val: None,
        train_long: None,
        test: part(&test_names, "test")?,
    })
}
