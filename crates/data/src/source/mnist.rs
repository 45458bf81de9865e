//! IDX folders: MNIST, Fashion-MNIST, KMNIST (`train-images-idx3-ubyte[.gz]`, …).

use std::path::{Path, PathBuf};

use super::files::{find_one, require_dir};
use crate::Split;
use crate::error::DataError;
use crate::formats::idx;

pub(super) fn load(dir: &Path, name: &str) -> Result<Split, DataError> {
    require_dir(dir)?;
    let file = |stem: &str, kind: &str| -> Result<PathBuf, DataError> {
        let a = format!("{stem}-{kind}");
        let b = format!("{stem}.{kind}");
        find_one(dir, &[format!("{a}.gz"), a.clone(), format!("{b}.gz"), b])
    };
    let (tri, trl) = (
        file("train-images", "idx3-ubyte")?,
        file("train-labels", "idx1-ubyte")?,
    );
    let (tei, tel) = (
        file("t10k-images", "idx3-ubyte")?,
        file("t10k-labels", "idx1-ubyte")?,
    );
    let (train, test) = rayon::join(
        || idx::load_idx_pair(&tri, &trl, 10),
        || idx::load_idx_pair(&tei, &tel, 10),
    );
    let (mut train, mut test) = (train?, test?);
    train.name = format!("{name}:{}/train", dir.display());
    test.name = format!("{name}:{}/test", dir.display());
    Ok(Split::new(train, test))
}
