//! Checkpoints and `--resume`: a run interrupted after epoch 2 and resumed to epoch 3 ends
//! exactly where an uninterrupted 3-epoch run with the same seed ends.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use tks::config::RunConfig;
use tks::data::digits;
use tks::train::checkpoint::{Checkpoint, CheckpointError, RunDir, run_files, train_in_dir};
use tks::train::{EpochRecord, RunHooks, TrainHooks, train_resumable};

fn config() -> RunConfig {
    let mut c = RunConfig::default();
    c.train.epochs = 3;
    c.train.batch_size = 64;
    c.train.seed = 11;
    if let tks::model::ModelConfig::SmallCnn(m) = &mut c.model {
        m.channels = [8, 16];
    }
    c
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tks-resume-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// Epoch, step losses, train accuracy, validation accuracy, per-timestep validation accuracy.
type Curve = Vec<(usize, Vec<f64>, f64, f64, Vec<f64>)>;

/// What must match: everything but wall-clock timings.
fn curve(h: &[EpochRecord]) -> Curve {
    h.iter()
        .map(|r| {
            (
                r.epoch,
                r.step_losses.clone(),
                r.train_accuracy,
                r.val.as_ref().unwrap().accuracy,
                r.val.as_ref().unwrap().per_timestep.clone(),
            )
        })
        .collect()
}

fn weights(path: &Path) -> Vec<(String, Vec<u8>)> {
    Checkpoint::load(path).unwrap().tensor_bytes()
}

#[test]
fn resume_matches_uninterrupted_run() {
    let _turn = crate::common::serial();
    let cfg = config();
    // With a validation set, so that the best-on-validation model must survive the resume too.
    let data = digits::load().unwrap().with_validation(0.1, 0);
    let objective = cfg.objective().unwrap();
    let device = Device::flex();

    // Uninterrupted.
    let straight_dir = tmp("straight");
    let straight = train_in_dir(
        Some(&straight_dir),
        None,
        &cfg,
        objective.as_ref(),
        &data,
        &device,
        TrainHooks::default(),
    )
    .unwrap();
    assert_eq!(straight.history.len(), 3);
    for f in [
        run_files::CONFIG,
        run_files::METRICS,
        run_files::LAST,
        run_files::BEST,
    ] {
        assert!(straight_dir.join(f).is_file(), "{f} missing");
    }
    let dir = RunDir::open(&straight_dir).unwrap();
    // recorded with the model's `auto` dimensions resolved from the digits
    let mut recorded = cfg.clone();
    recorded.model.resolve([1, 8, 8], 10, "digits").unwrap();
    assert_eq!(dir.config().unwrap(), recorded);
    assert_eq!(curve(&dir.metrics().unwrap()), curve(&straight.history));

    // Interrupted after epoch 2: the checkpoint hook fails on epoch 3, as a crash would.
    let resumed_dir = tmp("resumed");
    let run = RunDir::create(&resumed_dir, &toml::to_string(&cfg).unwrap()).unwrap();
    let mut save = |m: &tks::model::Model,
                    o: burn::optim::OptimizerRecord,
                    meta: &tks::train::checkpoint::CheckpointMeta| {
        if meta.epoch == 3 {
            return Err(CheckpointError::Invalid {
                path: "crash".into(),
                reason: "simulated crash".into(),
            });
        }
        run.save_epoch(m, o, meta)
    };
    let e = train_resumable(
        &cfg.model,
        &cfg.train,
        objective.as_ref(),
        &data,
        &device,
        TrainHooks::default(),
        RunHooks {
            resume: None,
            resume_best: None,
            on_checkpoint: Some(&mut save),
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("simulated crash"), "{e}");
    let ck = Checkpoint::load(&resumed_dir.join(run_files::LAST)).unwrap();
    assert_eq!(ck.meta.epoch, 2);
    assert_eq!(run.metrics().unwrap().len(), 2);

    // Resume to the end.
    let resumed = train_in_dir(
        None,
        Some(&resumed_dir),
        &cfg,
        objective.as_ref(),
        &data,
        &device,
        TrainHooks::default(),
    )
    .unwrap();
    assert_eq!(curve(&resumed.history), curve(&straight.history));
    assert_eq!(resumed.final_test(), straight.final_test());
    let best = |o: &tks::train::TrainOutcome| {
        o.best
            .as_ref()
            .map(|b| (b.epoch, b.val_accuracy, b.test.clone()))
    };
    assert!(best(&straight).is_some());
    assert_eq!(best(&resumed), best(&straight));
    assert_eq!(
        weights(&resumed_dir.join(run_files::BEST)),
        weights(&straight_dir.join(run_files::BEST))
    );
    assert_eq!(
        RunDir::open(&resumed_dir).unwrap().result().unwrap(),
        RunDir::open(&straight_dir).unwrap().result().unwrap()
    );
    assert_eq!(
        curve(&RunDir::open(&resumed_dir).unwrap().metrics().unwrap()),
        curve(&straight.history)
    );
    assert_eq!(
        weights(&resumed_dir.join(run_files::LAST)),
        weights(&straight_dir.join(run_files::LAST))
    );

    // A truncated checkpoint is an error naming the file.
    let last = resumed_dir.join(run_files::LAST);
    let bytes = std::fs::read(&last).unwrap();
    std::fs::write(&last, &bytes[..bytes.len() - 100]).unwrap();
    let e = train_in_dir(
        None,
        Some(&resumed_dir),
        &cfg,
        objective.as_ref(),
        &data,
        &device,
        TrainHooks::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("last.safetensors"), "{e}");
    let _ = std::fs::remove_dir_all(&straight_dir);
    let _ = std::fs::remove_dir_all(&resumed_dir);
}
