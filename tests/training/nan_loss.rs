//! A NaN or infinite loss stops training with an error naming the epoch and the step, and the
//! run directory keeps its last good checkpoint: nothing is overwritten, nothing half-written is
//! left behind, and the run can still be resumed to the result of an uninterrupted run.

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Int, Tensor};
use tks::config::RunConfig;
use tks::data::digits;
use tks::error::TrainError;
use tks::model::SnnOutput;
use tks::objective::{Baseline, Objective, Progress};
use tks::train::TrainHooks;
use tks::train::checkpoint::{Checkpoint, RunDir, run_files, train_in_dir};

/// The baseline loss, except at one (0-based) epoch and step, where it is `value`.
struct PoisonAt {
    epoch: usize,
    step: usize,
    value: f64,
}

impl Objective for PoisonAt {
    fn name(&self) -> &'static str {
        "poison"
    }

    fn loss(&self, output: &SnnOutput, targets: Tensor<1, Int>, progress: Progress) -> Tensor<1> {
        let loss = Baseline {}.loss(output, targets, progress);
        if (progress.epoch, progress.step) == (self.epoch, self.step) {
            // Through the graph, as a diverging model would produce it.
            loss.mul_scalar(0.0).add_scalar(self.value)
        } else {
            loss
        }
    }
}

fn config(epochs: usize) -> RunConfig {
    let mut c = RunConfig::default();
    c.train.epochs = epochs;
    c.train.batch_size = 64;
    c.train.seed = 3;
    if let tks::model::ModelConfig::SmallCnn(m) = &mut c.model {
        m.channels = [4, 8];
    }
    c
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tks-nan-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// Every file of the run directory with its bytes, sorted by name.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect();
    files.sort();
    files
}

fn names(files: &[(String, Vec<u8>)]) -> Vec<&str> {
    files.iter().map(|(n, _)| n.as_str()).collect()
}

fn expect_non_finite(e: TrainError, epoch: usize, step: usize, value: &str) {
    let msg = e.to_string();
    assert!(
        matches!(e, TrainError::NonFiniteLoss { epoch: a, step: b, .. } if (a, b) == (epoch, step)),
        "{msg}"
    );
    assert!(
        msg.contains(&format!("epoch {epoch}, step {step}")) && msg.contains(value),
        "{msg}"
    );
}

#[test]
fn nan_mid_run_keeps_the_last_checkpoint_and_the_run_resumes() {
    let _turn = crate::common::serial();
    let cfg = config(2);
    let data = digits::load().unwrap().with_validation(0.1, 0);
    let device = Device::flex();
    let dir = tmp("mid");

    // NaN at the 3rd step of the 2nd epoch (1-based in the message).
    let nan = PoisonAt {
        epoch: 1,
        step: 2,
        value: f64::NAN,
    };
    let e = train_in_dir(
        Some(&dir),
        None,
        &cfg,
        &nan,
        &data,
        &device,
        TrainHooks::default(),
    )
    .unwrap_err();
    let steps = data.train.len().div_ceil(cfg.train.batch_size);
    assert!(
        matches!(e, TrainError::NonFiniteLoss { global_step, .. } if global_step == steps + 3),
        "{e}"
    );
    expect_non_finite(e, 2, 3, "NaN");

    // The epoch-1 state is intact and complete; no temporary file is left.
    let files = snapshot(&dir);
    assert_eq!(
        names(&files),
        [
            run_files::BEST,
            run_files::CONFIG,
            run_files::LAST,
            run_files::METRICS
        ]
    );
    let ck = Checkpoint::load(&dir.join(run_files::LAST)).unwrap();
    assert_eq!((ck.meta.epoch, ck.meta.global_step), (1, steps));
    assert!(ck.optimizer_record().unwrap().is_some());
    let run = RunDir::open(&dir).unwrap();
    assert_eq!(run.metrics().unwrap(), ck.meta.history);
    // the recorded configuration is the one given, with the model's `auto` dimensions resolved
    let mut recorded = cfg.clone();
    recorded.model.resolve([1, 8, 8], 10, "digits").unwrap();
    assert_eq!(run.config().unwrap(), recorded);

    // Resuming from it with a sound objective ends where an uninterrupted run ends.
    let resumed = train_in_dir(
        None,
        Some(&dir),
        &cfg,
        &Baseline {},
        &data,
        &device,
        TrainHooks::default(),
    )
    .unwrap();
    let straight_dir = tmp("mid-straight");
    let straight = train_in_dir(
        Some(&straight_dir),
        None,
        &cfg,
        &Baseline {},
        &data,
        &device,
        TrainHooks::default(),
    )
    .unwrap();
    let losses = |h: &[tks::train::EpochRecord]| -> Vec<Vec<f64>> {
        h.iter().map(|r| r.step_losses.clone()).collect()
    };
    assert_eq!(losses(&resumed.history), losses(&straight.history));
    assert_eq!(
        resumed.final_test().per_timestep,
        straight.final_test().per_timestep
    );
    assert_eq!(
        Checkpoint::load(&dir.join(run_files::LAST))
            .unwrap()
            .tensor_bytes(),
        Checkpoint::load(&straight_dir.join(run_files::LAST))
            .unwrap()
            .tensor_bytes()
    );
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&straight_dir);
}

#[test]
fn infinite_loss_on_resume_leaves_the_run_directory_untouched() {
    let _turn = crate::common::serial();
    let data = digits::load().unwrap();
    let device = Device::flex();
    let dir = tmp("resume");
    // One good epoch of a two-epoch run, interrupted by a NaN at the first step of epoch 2.
    let cfg = config(2);
    let first = PoisonAt {
        epoch: 1,
        step: 0,
        value: f64::NAN,
    };
    let e = train_in_dir(
        Some(&dir),
        None,
        &cfg,
        &first,
        &data,
        &device,
        TrainHooks::default(),
    )
    .unwrap_err();
    expect_non_finite(e, 2, 1, "NaN");
    let before = snapshot(&dir);

    // Continue it; the loss becomes +inf at the 2nd step of epoch 2.
    let inf = PoisonAt {
        epoch: 1,
        step: 1,
        value: f64::INFINITY,
    };
    let e = train_in_dir(
        None,
        Some(&dir),
        &cfg,
        &inf,
        &data,
        &device,
        TrainHooks::default(),
    )
    .unwrap_err();
    expect_non_finite(e, 2, 2, "inf");
    assert_eq!(snapshot(&dir), before, "the run directory changed");
    assert_eq!(
        Checkpoint::load(&dir.join(run_files::LAST))
            .unwrap()
            .meta
            .epoch,
        1
    );

    // A NaN at the very first step of a fresh run: a clear error, and no checkpoint at all
    // (nothing to resume from is better than a checkpoint of a broken model).
    let fresh = tmp("fresh");
    let e = train_in_dir(
        Some(&fresh),
        None,
        &cfg,
        &PoisonAt {
            epoch: 0,
            step: 0,
            value: f64::NAN,
        },
        &data,
        &device,
        TrainHooks::default(),
    )
    .unwrap_err();
    expect_non_finite(e, 1, 1, "NaN");
    assert!(!fresh.join(run_files::LAST).exists());
    assert!(!fresh.join(run_files::BEST).exists());
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&fresh);
}
