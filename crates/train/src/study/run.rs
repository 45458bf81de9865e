//! One run of a study: train with the protocol (best on validation), then measure the
//! selected model on the test set — top-1/top-5, AURC, each timestep's own output and the
//! running mean, per-class accuracy at t = 1, firing rates and energy, anytime accuracy, and
//! accuracy at every shorter T (truncate, and re-bin for event data) — into a [`RunRecord`].

use std::path::Path;
use std::time::Instant;

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use super::RunSpec;
use crate::eval::analysis::{Analysis, evaluate_full};
use crate::eval::anytime::{AnytimePoint, anytime_curve, default_thresholds};
use crate::eval::energy::OpEnergy;
use crate::eval::{EvalReport, evaluate};
use crate::train::TrainHooks;
use crate::train::checkpoint::{CheckpointError, train_in_dir, write_atomic};
use tks_data::SampleKind;

/// Value of [`RunRecord::format`].
pub const FORMAT: &str = "tks-study-run/1";

/// Where and on what a run was computed (filled in by the binary).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// `git rev-parse HEAD` of the source tree, or `unknown`.
    pub commit: String,
    /// Whether tracked files differed from that commit.
    pub dirty: bool,
    /// CPU model.
    pub cpu: String,
    /// Logical cores available to the process.
    pub cores: usize,
    /// `os/arch`.
    pub os: String,
    /// The `tks` version.
    pub version: String,
    /// Start time, seconds since the Unix epoch.
    pub started_unix: u64,
    /// 1-minute load average at the start and at the end of the run (the machine is shared:
    /// read wall times beside it).
    pub load_start: Option<f64>,
    /// See `load_start`.
    pub load_end: Option<f64>,
}

/// One epoch of the learning curve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    /// Epoch (1-based).
    pub epoch: usize,
    /// Mean training loss.
    pub loss: f64,
    /// Training accuracy.
    pub train_accuracy: f64,
    /// Validation accuracy (`None` without a validation set).
    pub val_accuracy: Option<f64>,
    /// Wall seconds of the epoch.
    pub seconds: f64,
}

/// A finished run's summary: small, self-describing, committed under `docs/results/`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// [`FORMAT`].
    pub format: String,
    /// Study name.
    pub study: String,
    /// `experiment/method/T/seed[/fold]`.
    pub key: String,
    /// Experiment.
    pub experiment: String,
    /// Method (objective, or `ann` for BKD's teacher).
    pub method: String,
    /// Training and test T.
    pub timesteps: usize,
    /// Seed.
    pub seed: u64,
    /// Fold and number of folds, if cross-validated.
    pub fold: Option<(usize, usize)>,
    /// SHA-256 of `config` (see [`RunSpec::config_hash`]).
    pub config_sha256: String,
    /// The resolved run configuration without machine-specific fields (TOML, see
    /// [`RunSpec::portable_config`]).
    pub config: String,
    /// Commit, hardware, load.
    pub provenance: Provenance,
    /// Wall seconds of the whole run (training and every measurement).
    pub wall_seconds: f64,
    /// Wall seconds of training alone.
    pub train_seconds: f64,
    /// Training, validation and test samples.
    pub samples: [usize; 3],
    /// The learning curve.
    pub curve: Vec<CurvePoint>,
    /// Epoch selected on the validation set (`None`: no validation set, the last is used).
    pub best_epoch: Option<usize>,
    /// Its validation accuracy.
    pub best_val_accuracy: Option<f64>,
    /// The selected model on the test set (risk–coverage curve left out; AURC kept).
    pub test: Analysis,
    /// The last epoch's model on the test set.
    pub test_last: EvalReport,
    /// Accuracy of the selected model at t = 1..T keeping the first t frames (static images:
    /// running the encoder t steps, the same thing).
    pub truncate: Vec<f64>,
    /// Accuracy at t = 1..T with every event of a recording integrated into t frames (`None`
    /// for static images, where it coincides with `truncate`, or without `sweep`).
    pub rebin: Option<Vec<f64>>,
    /// Early-exit accuracy vs mean timesteps over confidence thresholds.
    pub anytime: Vec<AnytimePoint>,
}

/// A study run that failed: names the run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Loading its data failed.
    #[error("run {key}: {source}")]
    Load {
        /// The run.
        key: String,
        /// Why.
        source: tks_data::source::LoadError,
    },
    /// Training or evaluation failed.
    #[error("run {key}: {source}")]
    Train {
        /// The run.
        key: String,
        /// Why.
        source: crate::error::TrainError,
    },
    /// Its summary could not be written.
    #[error("run {key}: {source}")]
    Write {
        /// The run.
        key: String,
        /// Why.
        source: CheckpointError,
    },
}

/// Trains `spec` into its run directory under `work`, measures it, writes its summary to
/// `summary` atomically and returns it. `hooks` receives the training progress.
pub fn run_one(
    spec: &RunSpec,
    study: &str,
    work: &Path,
    summary: &Path,
    provenance: Provenance,
    device: &Device,
    mut hooks: TrainHooks<'_>,
) -> Result<RunRecord, RunError> {
    let key = || spec.key.clone();
    let train_err = |source: crate::error::TrainError| RunError::Train { key: key(), source };
    let load = |t: usize| {
        tks_data::source::load(&spec.config.data, t)
            .map_err(|source| RunError::Load { key: key(), source })
    };
    let started = Instant::now();
    let c = &spec.config;
    let t = c.train.timesteps;
    let data = c
        .load_data()
        .map_err(|source| RunError::Load { key: key(), source })?;
    let objective = c.objective().map_err(|e| train_err(e.into()))?;
    hooks.kernels = c.kernels;
    let outcome = train_in_dir(
        Some(&spec.run_dir(work)),
        None,
        c,
        objective.as_ref(),
        &data,
        device,
        hooks,
    )
    .map_err(train_err)?;
    let train_seconds = started.elapsed().as_secs_f64();
    let selected = outcome.best.as_ref().map_or(&outcome.model, |b| &b.model);
    let batch = c.train.eval_batch_size;
    let (mut test, logits) = evaluate_full(
        selected,
        &data.test,
        t,
        batch,
        c.train.encoder,
        device,
        OpEnergy::default(),
    )
    .map_err(|e| train_err(e.into()))?;
    test.risk_coverage.coverage.clear();
    test.risk_coverage.risk.clear();
    // The network is causal: its outputs at steps 1..t on T frames are its outputs on the first
    // t frames, so the truncated accuracies are the running means of the full evaluation.
    let truncate = test.report.running_mean.clone();
    let is_static = matches!(data.test.kind, SampleKind::Static);
    let rebin = if spec.sweep && !is_static && t > 1 {
        let mut acc = Vec::with_capacity(t);
        for tt in 1..t {
            let d = load(tt)?;
            let r = evaluate(selected, &d.test, tt, batch, c.train.encoder, device)
                .map_err(|e| train_err(e.into()))?;
            acc.push(r.accuracy);
        }
        acc.push(test.report.accuracy);
        Some(acc)
    } else {
        None
    };
    let anytime = anytime_curve(&logits, &default_thresholds());
    let curve = outcome
        .history
        .iter()
        .map(|r| CurvePoint {
            epoch: r.epoch,
            loss: r.loss,
            train_accuracy: r.train_accuracy,
            val_accuracy: r.val.as_ref().map(|v| v.accuracy),
            seconds: r.seconds,
        })
        .collect();
    let record = RunRecord {
        format: FORMAT.into(),
        study: study.into(),
        key: spec.key.clone(),
        experiment: spec.experiment.clone(),
        method: spec.method.clone(),
        timesteps: t,
        seed: spec.seed,
        fold: spec.fold,
        config_sha256: spec.config_hash(),
        config: toml::to_string(&spec.portable_config()).unwrap_or_default(),
        provenance,
        wall_seconds: started.elapsed().as_secs_f64(),
        train_seconds,
        samples: [
            data.train.len(),
            data.val.as_ref().map_or(0, |v| v.len()),
            data.test.len(),
        ],
        curve,
        best_epoch: outcome.best.as_ref().map(|b| b.epoch),
        best_val_accuracy: outcome.best.as_ref().map(|b| b.val_accuracy),
        test,
        test_last: outcome.test_last.clone(),
        truncate,
        rebin,
        anytime,
    };
    write_record(summary, &record).map_err(|source| RunError::Write { key: key(), source })?;
    Ok(record)
}

/// Writes a summary atomically, creating its folder.
pub fn write_record(path: &Path, record: &RunRecord) -> Result<(), CheckpointError> {
    let io = |source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let text = serde_json::to_string_pretty(record).map_err(|e| CheckpointError::Invalid {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    write_atomic(path, text.as_bytes()).map_err(io)
}

/// Reads a summary; `None` when the file does not exist.
pub fn read_record(path: &Path) -> Result<Option<RunRecord>, CheckpointError> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let r: RunRecord =
                serde_json::from_str(&text).map_err(|e| CheckpointError::Invalid {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                })?;
            if r.format != FORMAT {
                return Err(CheckpointError::Invalid {
                    path: path.to_path_buf(),
                    reason: format!("format `{}`, expected `{FORMAT}`", r.format),
                });
            }
            Ok(Some(r))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(CheckpointError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}
