//! The evaluation protocol through `source::load`: the validation split carved from the
//! training data (`[data] val_ratio`), k-fold cross-validation (`folds`, `fold`) and the
//! training subset (`train_limit`); the test set is never touched by any of them.

use tks::data::source::{DataConfig, load};

fn digits(f: impl FnOnce(&mut DataConfig)) -> tks::data::Split {
    let mut c = DataConfig::default();
    f(&mut c);
    load(&c, 4).unwrap()
}

fn counts(labels: &[u32]) -> Vec<usize> {
    let mut c = vec![0; 10];
    labels.iter().for_each(|&l| c[l as usize] += 1);
    c
}

#[test]
fn default_carves_a_stratified_tenth_for_validation_and_keeps_the_test_set() {
    let own = digits(|c| c.val_ratio = 0.0);
    assert!(own.val.is_none());
    let s = digits(|_| {});
    let val = s.val.as_ref().expect("validation set by default");
    assert_eq!(s.train.len() + val.len(), own.train.len());
    assert_eq!(s.test.labels, own.test.labels, "the test set is untouched");
    assert_eq!(s.test.values, own.test.values);
    let (all, v) = (counts(&own.train.labels), counts(&val.labels));
    for c in 0..10 {
        let want = (all[c] as f64 * 0.1).round() as usize;
        assert_eq!(v[c], want, "class {c}: {v:?} of {all:?}");
    }
    assert!(val.augment.is_none());
    // The same seed gives the same split; another seed another one.
    assert_eq!(digits(|_| {}).val.unwrap().values, val.values);
    let other = digits(|c| c.split_seed = 5).val.unwrap();
    assert_ne!(other.values, val.values);
    // Every validation sample is a training sample of the source, none is kept for training.
    let per = own.train.sample_len();
    let rows = |d: &tks::data::Dataset| -> Vec<Vec<u32>> {
        d.values
            .chunks(per)
            .map(|r| r.iter().map(|v| v.to_bits()).collect())
            .collect()
    };
    let (train_rows, val_rows) = (rows(&s.train), rows(val));
    let source_rows = rows(&own.train);
    let mut joined: Vec<_> = train_rows.iter().chain(&val_rows).cloned().collect();
    let mut expected = source_rows.clone();
    joined.sort();
    expected.sort();
    assert_eq!(
        joined, expected,
        "train + validation = the source's training set"
    );
}

#[test]
fn folds_partition_the_pooled_data_and_each_is_tested_once() {
    let own = digits(|c| c.val_ratio = 0.0);
    let total = own.train.len() + own.test.len();
    let mut tested = 0;
    let mut first_labels = Vec::new();
    for fold in 0..5 {
        let s = digits(|c| {
            c.folds = 5;
            c.fold = fold;
            c.val_ratio = 0.0;
        });
        assert_eq!(s.train.len() + s.test.len(), total, "fold {fold}");
        assert!(
            s.test.name.contains(&format!("fold {fold}/5")),
            "{}",
            s.test.name
        );
        tested += s.test.len();
        first_labels.push(s.test.labels.clone());
    }
    assert_eq!(
        tested, total,
        "every sample is tested exactly once over the folds"
    );
    assert_ne!(first_labels[0], first_labels[1]);
    // With a validation split inside the training folds.
    let s = digits(|c| {
        c.folds = 5;
        c.fold = 1;
    });
    let v = s.val.as_ref().unwrap().len();
    assert_eq!(s.train.len() + v + s.test.len(), total);
}

#[test]
fn train_limit_shortens_only_the_training_set() {
    let own = digits(|c| c.val_ratio = 0.0);
    let s = digits(|c| {
        c.train_limit = 300;
        c.val_ratio = 0.1;
    });
    assert_eq!(s.train.len() + s.val.as_ref().unwrap().len(), 300);
    assert_eq!(s.test.len(), own.test.len());
}

#[test]
fn bad_protocol_fields_are_named() {
    for (f, needle) in [
        (
            Box::new(|c: &mut DataConfig| c.val_ratio = 0.95) as Box<dyn Fn(&mut DataConfig)>,
            "data.val_ratio",
        ),
        (
            Box::new(|c: &mut DataConfig| c.val_ratio = f64::NAN),
            "data.val_ratio",
        ),
        (Box::new(|c: &mut DataConfig| c.folds = 1), "data.folds"),
        (
            Box::new(|c: &mut DataConfig| {
                c.folds = 10;
                c.fold = 10;
            }),
            "data.fold",
        ),
    ] {
        let mut c = DataConfig::default();
        f(&mut c);
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains(needle), "{e}");
    }
}
