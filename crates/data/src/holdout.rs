//! Held-out data for an honest protocol: a seeded, class-stratified validation split carved
//! from the training set (model selection happens on it, never on the test set), and k-fold
//! cross-validation for sets whose official test split is too small to measure anything.
//!
//! Every function here is a pure function of the labels and a seed: the same configuration
//! always gives the same samples in every split, whatever the machine or thread count, and the
//! samples of each part keep their original order.

use std::sync::Arc;

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use crate::error::DataError;
use crate::{Dataset, Split, Storage};

/// Indices of each class, in order.
fn by_class(labels: &[u32]) -> Vec<Vec<usize>> {
    let classes = labels.iter().map(|&l| l as usize + 1).max().unwrap_or(0);
    let mut per = vec![Vec::new(); classes];
    for (i, &l) in labels.iter().enumerate() {
        per[l as usize].push(i);
    }
    per
}

/// Splits `labels` into `(keep, held)` index lists: from each class with `n` samples,
/// `round(ratio · n)` drawn at random (seeded) are held out — at least one when `ratio > 0` and
/// the class has two or more samples, never the last one. Both lists are sorted.
pub fn stratified_holdout(labels: &[u32], ratio: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5641_4C5F_5350_4C54); // "VAL_SPLT"
    let (mut keep, mut held) = (Vec::new(), Vec::new());
    for mut idx in by_class(labels) {
        let n = idx.len();
        let mut k = (ratio * n as f64).round() as usize;
        if ratio > 0.0 && n >= 2 {
            k = k.clamp(1, n - 1);
        } else {
            k = k.min(n.saturating_sub(1));
        }
        idx.shuffle(&mut rng);
        held.extend_from_slice(&idx[..k]);
        keep.extend_from_slice(&idx[k..]);
    }
    keep.sort_unstable();
    held.sort_unstable();
    (keep, held)
}

/// Deals the indices of `labels` into `k` folds, class by class (each class shuffled by `seed`,
/// then dealt round-robin, continuing where the previous class stopped), so that every sample is
/// in exactly one fold, fold sizes differ by at most one and every fold holds each class in
/// proportion. Each fold is sorted.
pub fn stratified_folds(labels: &[u32], k: usize, seed: u64) -> Vec<Vec<usize>> {
    let k = k.max(1);
    let mut rng = StdRng::seed_from_u64(seed ^ 0x4B46_4F4C_4453_0000); // "KFOLDS"
    let mut folds = vec![Vec::new(); k];
    let mut next = 0;
    for mut idx in by_class(labels) {
        idx.shuffle(&mut rng);
        for i in idx {
            folds[next].push(i);
            next = (next + 1) % k;
        }
    }
    folds.iter_mut().for_each(|f| f.sort_unstable());
    folds
}

impl Dataset {
    /// The samples `indices` (in that order) as a set of their own, named `name`; augmentation
    /// is kept (callers that make an evaluation set clear it).
    pub fn subset(&self, indices: &[usize], name: impl Into<String>) -> Dataset {
        let per = self.sample_len();
        let values = match &self.storage {
            Storage::InMemory => indices
                .iter()
                .flat_map(|&i| self.values[i * per..(i + 1) * per].iter().copied())
                .collect(),
            Storage::Lazy(_) => Vec::new(),
        };
        let storage = match &self.storage {
            Storage::InMemory => Storage::InMemory,
            Storage::Lazy(lazy) => Storage::Lazy(Arc::new(lazy.subset(indices))),
        };
        Dataset {
            name: name.into(),
            values,
            storage,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            ..self.clone_meta()
        }
    }

    /// The fields that describe the set, without its samples.
    fn clone_meta(&self) -> Dataset {
        Dataset {
            name: self.name.clone(),
            kind: self.kind,
            frame_shape: self.frame_shape,
            num_classes: self.num_classes,
            values: Vec::new(),
            storage: Storage::InMemory,
            labels: Vec::new(),
            augment: self.augment.clone(),
        }
    }

    /// This set followed by `other` (same kind, frame shape and classes; both in memory).
    pub fn concat(&self, other: &Dataset, name: impl Into<String>) -> Result<Dataset, DataError> {
        let name = name.into();
        let bad = |what: String| DataError::Malformed {
            path: name.clone().into(),
            location: format!("{} + {}", self.name, other.name),
            what,
        };
        if self.kind != other.kind || self.frame_shape != other.frame_shape {
            return Err(bad(format!(
                "cannot join {:?} {:?} with {:?} {:?}",
                self.kind, self.frame_shape, other.kind, other.frame_shape
            )));
        }
        if self.is_lazy() || other.is_lazy() {
            return Err(bad(
                "cross-validation pools the splits in memory: set [data] stream = false".into(),
            ));
        }
        let mut joined = self.clone_meta();
        joined.name = name;
        joined.num_classes = self.num_classes.max(other.num_classes);
        joined.values = self.values.iter().chain(&other.values).copied().collect();
        joined.labels = self.labels.iter().chain(&other.labels).copied().collect();
        Ok(joined)
    }
}

impl Split {
    /// Carves a class-stratified validation set of `ratio` of the training samples (seeded by
    /// `seed`) out of the training set; the test set is untouched. The validation set has no
    /// augmentation. `ratio = 0` leaves the split as it is (no validation set).
    pub fn with_validation(mut self, ratio: f64, seed: u64) -> Split {
        if ratio <= 0.0 || self.train.len() < 2 {
            return self;
        }
        let (keep, held) = stratified_holdout(&self.train.labels, ratio, seed);
        let mut val = self
            .train
            .subset(&held, format!("{} (validation)", self.train.name));
        val.augment = None;
        self.train = self.train.subset(&keep, self.train.name.clone());
        self.train_long = self.train_long.map(|l| l.subset(&keep, l.name.clone()));
        self.val = Some(val);
        self
    }

    /// Fold `fold` of `folds`-fold cross-validation over the pooled train and test sets: that
    /// fold is the test set, the others train. Stratified and seeded by `seed` (see
    /// [`stratified_folds`]); the training set keeps its augmentation.
    pub fn cross_validation_fold(
        self,
        folds: usize,
        fold: usize,
        seed: u64,
    ) -> Result<Split, DataError> {
        let base = self.train.name.trim_end_matches("/train").to_string();
        let augment = self.train.augment.clone();
        let mut all = self.train.concat(&self.test, format!("{base} (pooled)"))?;
        all.augment = None;
        let parts = stratified_folds(&all.labels, folds, seed);
        let test_idx = parts.get(fold).cloned().unwrap_or_default();
        let train_idx: Vec<usize> = {
            let mut v: Vec<usize> = parts
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != fold)
                .flat_map(|(_, p)| p.iter().copied())
                .collect();
            v.sort_unstable();
            v
        };
        let mut train = all.subset(&train_idx, format!("{base} fold {fold}/{folds} train"));
        train.augment = augment;
        let test = all.subset(&test_idx, format!("{base} fold {fold}/{folds} test"));
        Ok(Split {
            train,
            val: None,
            train_long: None,
            test,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SampleKind;

    fn labels() -> Vec<u32> {
        // 3 classes of 10, 20 and 3 samples, interleaved.
        let mut l = Vec::new();
        for i in 0..33u32 {
            l.push(match i % 11 {
                0..=2 => 0,
                3..=9 => 1,
                _ => 2,
            });
        }
        l
    }

    #[test]
    fn holdout_is_stratified_seeded_and_disjoint() {
        let l = labels();
        let (keep, held) = stratified_holdout(&l, 0.1, 7);
        assert_eq!(keep.len() + held.len(), l.len());
        let mut all: Vec<usize> = keep.iter().chain(&held).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..l.len()).collect::<Vec<_>>());
        let count = |idx: &[usize], c: u32| idx.iter().filter(|&&i| l[i] == c).count();
        // 9, 21 and 3 samples per class: round(0.9)=1, round(2.1)=2, round(0.3)=0 → at least 1.
        assert_eq!(
            (count(&held, 0), count(&held, 1), count(&held, 2)),
            (1, 2, 1)
        );
        assert_eq!(stratified_holdout(&l, 0.1, 7), (keep.clone(), held.clone()));
        assert_ne!(stratified_holdout(&l, 0.1, 8).1, held, "the seed matters");
        assert!(stratified_holdout(&l, 0.0, 7).1.is_empty());
        // A class of one sample is never held out entirely.
        let h = stratified_holdout(&[0, 1, 1], 0.5, 1).1;
        assert_eq!(h.len(), 1);
        assert!(!h.contains(&0), "{h:?}");
    }

    #[test]
    fn folds_cover_every_sample_once_and_balance_classes() {
        let l = labels();
        let folds = stratified_folds(&l, 10, 3);
        assert_eq!(folds.len(), 10);
        let mut all: Vec<usize> = folds.iter().flatten().copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..l.len()).collect::<Vec<_>>());
        let sizes: Vec<usize> = folds.iter().map(Vec::len).collect();
        assert!(
            sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1,
            "{sizes:?}"
        );
        for c in 0..3 {
            let per: Vec<usize> = folds
                .iter()
                .map(|f| f.iter().filter(|&&i| l[i] == c).count())
                .collect();
            assert!(
                per.iter().max().unwrap() - per.iter().min().unwrap() <= 1,
                "{per:?}"
            );
        }
        assert_eq!(stratified_folds(&l, 10, 3), folds);
    }

    fn set(name: &str, labels: Vec<u32>) -> Dataset {
        let values: Vec<f32> = (0..labels.len()).map(|i| i as f32).collect();
        Dataset::new(name, SampleKind::Static, [1, 1, 1], 3, values, labels).unwrap()
    }

    #[test]
    fn validation_and_folds_move_samples_with_their_labels() {
        let l = labels();
        let split = Split {
            train: set("toy/train", l.clone()),
            val: None,
            train_long: None,
            test: set("toy/test", vec![0, 1, 2]),
        };
        let s = split.clone().with_validation(0.2, 1);
        let val = s.val.as_ref().unwrap();
        assert_eq!(s.train.len() + val.len(), l.len());
        assert_eq!(s.test.labels, vec![0, 1, 2]);
        for d in [&s.train, val] {
            for (v, &lab) in d.values.iter().zip(&d.labels) {
                assert_eq!(l[*v as usize], lab, "sample {v} kept its label");
            }
        }
        let f = split.cross_validation_fold(5, 2, 9).unwrap();
        assert_eq!(f.train.len() + f.test.len(), l.len() + 3);
        assert!(f.train.name.contains("fold 2/5") && f.val.is_none());
    }
}
