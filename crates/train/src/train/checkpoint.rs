//! Training checkpoints in the safetensors format, and the run directory layout.
//!
//! A checkpoint is one `.safetensors` file holding
//! * every model tensor under its module path (plain `F32` tensors any safetensors reader can
//!   open; BatchNorm running statistics included), with the burn parameter ids in the metadata
//!   (`param_ids`) so the optimizer state can be matched back to its parameters;
//! * the optimizer state (AdamW moments and step counts) as one `U8` tensor `__optimizer__`
//!   holding burn's own burnpack serialisation of the record;
//! * metadata: format tag, epochs completed, global step, seed, the resolved run configuration
//!   (TOML) and the epoch history (JSON). The shuffling order and the device generator are
//!   functions of `(seed, epoch)` in the training loop, so the epoch is the whole RNG state.
//!
//! Files are written atomically: to `NAME.tmp` in the same directory, flushed, then renamed.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use burn::optim::OptimizerRecord;
use burn::store::{ModuleSnapshot, burn_pack};
use burn::tensor::{Bytes, DType};
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use thiserror::Error;

use super::EpochRecord;
use tks_core::model::Model;

/// Value of the `format` metadata entry.
pub const FORMAT: &str = "tks-checkpoint/1";
const OPTIMIZER_KEY: &str = "__optimizer__";

/// File names inside a run directory.
pub mod run_files {
    /// The resolved configuration.
    pub const CONFIG: &str = "config.toml";
    /// One JSON object per epoch.
    pub const METRICS: &str = "metrics.jsonl";
    /// Checkpoint after the latest epoch.
    pub const LAST: &str = "last.safetensors";
    /// Checkpoint of the epoch with the best validation accuracy so far (not written by runs
    /// without a validation set: nothing is selected on the test set).
    pub const BEST: &str = "best.safetensors";
    /// Test-set evaluation of the best and of the last checkpoint, written when training ends.
    pub const RESULT: &str = "result.json";
    /// Output of `tks eval`.
    pub const EVAL: &str = "eval.json";
    /// Output of `tks sweep` (`--mode rebin`).
    pub const SWEEP: &str = "sweep.json";
    /// Output of `tks sweep --mode truncate`.
    pub const SWEEP_TRUNCATE: &str = "sweep-truncate.json";
    /// Output of `tks anytime`.
    pub const ANYTIME: &str = "anytime.json";
}

/// A checkpoint that cannot be written or read; always names the file.
#[derive(Debug, Error)]
pub enum CheckpointError {
    /// Reading or writing failed.
    #[error("checkpoint {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a valid tks checkpoint (truncated, wrong format, wrong model).
    #[error("checkpoint {path}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

fn invalid(path: &Path, reason: impl Into<String>) -> CheckpointError {
    CheckpointError::Invalid {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Training progress stored beside the weights.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CheckpointMeta {
    /// Epochs completed.
    pub epoch: usize,
    /// Optimizer steps taken.
    pub global_step: usize,
    /// The run's seed.
    pub seed: u64,
    /// The resolved configuration (TOML), if known.
    pub config: Option<String>,
    /// One record per completed epoch.
    pub history: Vec<EpochRecord>,
}

/// A loaded checkpoint.
pub struct Checkpoint {
    /// The file it came from.
    pub path: PathBuf,
    /// Progress.
    pub meta: CheckpointMeta,
    tensors: Vec<burn_pack::Tensor>,
    optimizer: Option<Vec<u8>>,
}

impl std::fmt::Debug for Checkpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpoint")
            .field("path", &self.path)
            .field("epoch", &self.meta.epoch)
            .field("tensors", &self.tensors.len())
            .field("optimizer", &self.optimizer.as_ref().map(Vec::len))
            .finish()
    }
}

fn to_st(dtype: DType) -> Option<Dtype> {
    Some(match dtype {
        DType::F64 => Dtype::F64,
        DType::F32 | DType::Flex32 => Dtype::F32,
        DType::F16 => Dtype::F16,
        DType::BF16 => Dtype::BF16,
        DType::I64 => Dtype::I64,
        DType::I32 => Dtype::I32,
        DType::I16 => Dtype::I16,
        DType::I8 => Dtype::I8,
        DType::U64 => Dtype::U64,
        DType::U32 => Dtype::U32,
        DType::U16 => Dtype::U16,
        DType::U8 => Dtype::U8,
        _ => return None,
    })
}

fn from_st(dtype: Dtype) -> Option<DType> {
    Some(match dtype {
        Dtype::F64 => DType::F64,
        Dtype::F32 => DType::F32,
        Dtype::F16 => DType::F16,
        Dtype::BF16 => DType::BF16,
        Dtype::I64 => DType::I64,
        Dtype::I32 => DType::I32,
        Dtype::I16 => DType::I16,
        Dtype::I8 => DType::I8,
        Dtype::U64 => DType::U64,
        Dtype::U32 => DType::U32,
        Dtype::U16 => DType::U16,
        Dtype::U8 => DType::U8,
        _ => return None,
    })
}

/// Writes `bytes` to `path` atomically (temporary file in the same directory, then rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

/// Serialises `model`, the optimizer state and `meta` to safetensors bytes.
pub fn to_bytes(
    model: &Model,
    optimizer: Option<OptimizerRecord>,
    meta: &CheckpointMeta,
) -> Result<Vec<u8>, String> {
    let tensors = model.collect(None, None, false);
    let mut owned: Vec<(String, Dtype, Vec<usize>, Bytes)> = Vec::with_capacity(tensors.len());
    let mut ids = serde_json::Map::new();
    for t in tensors {
        let dtype = to_st(t.dtype).ok_or_else(|| format!("{}: unsupported dtype", t.name))?;
        if let Some(id) = t.param_id {
            ids.insert(t.name.clone(), serde_json::Value::from(id.to_string()));
        }
        let shape = t.shape.to_vec();
        let name = t.name.clone();
        let bytes = t.into_bytes().map_err(|e| format!("{name}: {e}"))?;
        owned.push((name, dtype, shape, bytes));
    }
    let optimizer_bytes = match optimizer {
        Some(r) => Some(
            r.into_bytes()
                .map_err(|e| format!("optimizer state: {e}"))?,
        ),
        None => None,
    };
    let mut views = Vec::with_capacity(owned.len() + 1);
    for (name, dtype, shape, bytes) in &owned {
        let view = TensorView::new(*dtype, shape.clone(), bytes.as_ref())
            .map_err(|e| format!("{name}: {e}"))?;
        views.push((name.clone(), view));
    }
    if let Some(b) = &optimizer_bytes {
        let view = TensorView::new(Dtype::U8, vec![b.len()], b.as_ref())
            .map_err(|e| format!("{OPTIMIZER_KEY}: {e}"))?;
        views.push((OPTIMIZER_KEY.to_string(), view));
    }
    let mut info = HashMap::new();
    info.insert("format".to_string(), FORMAT.to_string());
    info.insert("epoch".to_string(), meta.epoch.to_string());
    info.insert("global_step".to_string(), meta.global_step.to_string());
    info.insert("seed".to_string(), meta.seed.to_string());
    info.insert(
        "param_ids".to_string(),
        serde_json::Value::Object(ids).to_string(),
    );
    info.insert(
        "history".to_string(),
        serde_json::to_string(&meta.history).map_err(|e| e.to_string())?,
    );
    if let Some(c) = &meta.config {
        info.insert("config".to_string(), c.clone());
    }
    safetensors::serialize(views, Some(info)).map_err(|e| e.to_string())
}

/// Saves a checkpoint atomically to `path`.
pub fn save(
    path: &Path,
    model: &Model,
    optimizer: Option<OptimizerRecord>,
    meta: &CheckpointMeta,
) -> Result<(), CheckpointError> {
    let bytes = to_bytes(model, optimizer, meta).map_err(|r| invalid(path, r))?;
    write_atomic(path, &bytes).map_err(|source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    })
}

impl Checkpoint {
    /// Reads and checks a checkpoint file.
    pub fn load(path: &Path) -> Result<Self, CheckpointError> {
        let bytes = std::fs::read(path).map_err(|source| CheckpointError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_bytes(path, &bytes)
    }

    /// Parses checkpoint bytes; `path` names the source in errors.
    pub fn from_bytes(path: &Path, bytes: &[u8]) -> Result<Self, CheckpointError> {
        let st = SafeTensors::deserialize(bytes).map_err(|e| {
            invalid(
                path,
                format!("not a readable safetensors file (truncated or corrupt?): {e}"),
            )
        })?;
        let (_, header) = SafeTensors::read_metadata(bytes)
            .map_err(|e| invalid(path, format!("bad safetensors header: {e}")))?;
        let info = header.metadata().clone().unwrap_or_default();
        let get = |key: &str| {
            info.get(key)
                .ok_or_else(|| invalid(path, format!("metadata `{key}` is missing")))
        };
        let format = get("format")?;
        if format != FORMAT {
            return Err(invalid(
                path,
                format!("metadata `format` is `{format}`, expected `{FORMAT}`"),
            ));
        }
        let num = |key: &str| -> Result<u64, CheckpointError> {
            let v = get(key)?;
            v.parse()
                .map_err(|_| invalid(path, format!("metadata `{key}` = {v:?} is not a number")))
        };
        let ids: HashMap<String, String> = serde_json::from_str(get("param_ids")?)
            .map_err(|e| invalid(path, format!("metadata `param_ids`: {e}")))?;
        let history: Vec<EpochRecord> = serde_json::from_str(get("history")?)
            .map_err(|e| invalid(path, format!("metadata `history`: {e}")))?;
        let meta = CheckpointMeta {
            epoch: num("epoch")? as usize,
            global_step: num("global_step")? as usize,
            seed: num("seed")?,
            config: info.get("config").cloned(),
            history,
        };
        let mut tensors = Vec::new();
        let mut optimizer = None;
        let mut entries = st.tensors();
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, view) in entries {
            if name == OPTIMIZER_KEY {
                optimizer = Some(view.data().to_vec());
                continue;
            }
            let dtype = from_st(view.dtype()).ok_or_else(|| {
                invalid(
                    path,
                    format!("tensor `{name}` has unsupported dtype {:?}", view.dtype()),
                )
            })?;
            let id = match ids.get(&name) {
                Some(s) => Some(s.parse::<u64>().map_err(|_| {
                    invalid(path, format!("metadata `param_ids`: bad id for `{name}`"))
                })?),
                None => None,
            };
            tensors.push(burn_pack::Tensor::new(
                name,
                dtype,
                view.shape().to_vec(),
                id,
                Bytes::from_bytes_vec(view.data().to_vec()),
            ));
        }
        Ok(Self {
            path: path.to_path_buf(),
            meta,
            tensors,
            optimizer,
        })
    }

    /// Loads the weights into `model` (built from the same configuration), keeping the stored
    /// parameter ids. Every tensor of the model must be present with its shape.
    pub fn apply_to(&self, mut model: Model) -> Result<Model, CheckpointError> {
        let result = model.apply(self.tensors.clone(), None, None, false);
        if !result.errors.is_empty() {
            let errs: Vec<String> = result.errors.iter().map(|e| format!("{e:?}")).collect();
            return Err(invalid(
                &self.path,
                format!(
                    "does not fit the model (another configuration?): {}",
                    errs.join("; ")
                ),
            ));
        }
        if !result.missing.is_empty() || !result.unused.is_empty() {
            let missing: Vec<&str> = result.missing.iter().map(|(p, _)| p.as_str()).collect();
            return Err(invalid(
                &self.path,
                format!(
                    "does not fit the model (another configuration?): missing {:?}, unexpected {:?}",
                    missing, result.unused
                ),
            ));
        }
        Ok(model)
    }

    /// Names and raw little-endian bytes of the model tensors, sorted by name.
    pub fn tensor_bytes(&self) -> Vec<(String, Vec<u8>)> {
        self.tensors
            .iter()
            .map(|t| {
                let b = t.to_bytes().map(|b| b.to_vec()).unwrap_or_default();
                (t.name.clone(), b)
            })
            .collect()
    }

    /// The optimizer state, if the checkpoint has one.
    pub fn optimizer_record(&self) -> Result<Option<OptimizerRecord>, CheckpointError> {
        match &self.optimizer {
            None => Ok(None),
            Some(b) => OptimizerRecord::from_bytes(Bytes::from_bytes_vec(b.clone()))
                .map(Some)
                .map_err(|e| invalid(&self.path, format!("optimizer state: {e}"))),
        }
    }
}

/// A run directory: `config.toml`, `metrics.jsonl`, `last.safetensors`, `best.safetensors`, and
/// the analysis outputs (`eval.json`, `sweep.json`, `anytime.json`).
#[derive(Debug, Clone)]
pub struct RunDir {
    /// The directory.
    pub path: PathBuf,
}

impl RunDir {
    /// Creates (or reuses) the directory for a new run and writes the resolved configuration.
    /// A previous `metrics.jsonl` is truncated.
    pub fn create(path: &Path, config_toml: &str) -> Result<Self, CheckpointError> {
        let io = |source, p: &Path| CheckpointError::Io {
            path: p.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(path).map_err(|e| io(e, path))?;
        let dir = Self {
            path: path.to_path_buf(),
        };
        let cfg = dir.file(run_files::CONFIG);
        write_atomic(&cfg, config_toml.as_bytes()).map_err(|e| io(e, &cfg))?;
        let metrics = dir.file(run_files::METRICS);
        write_atomic(&metrics, b"").map_err(|e| io(e, &metrics))?;
        // Files of an earlier run in the same directory would be mistaken for this one's.
        for stale in [run_files::BEST, run_files::RESULT] {
            let f = dir.file(stale);
            if f.exists() {
                std::fs::remove_file(&f).map_err(|e| io(e, &f))?;
            }
        }
        Ok(dir)
    }

    /// An existing run directory (it must hold `config.toml`).
    pub fn open(path: &Path) -> Result<Self, CheckpointError> {
        let dir = Self {
            path: path.to_path_buf(),
        };
        let cfg = dir.file(run_files::CONFIG);
        if !cfg.is_file() {
            return Err(invalid(
                path,
                format!("not a run directory: {} is missing", cfg.display()),
            ));
        }
        Ok(dir)
    }

    /// `path/name`.
    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// The run's configuration (`config.toml`).
    pub fn config(&self) -> Result<crate::config::RunConfig, crate::error::ConfigError> {
        crate::config::RunConfig::load(&self.file(run_files::CONFIG))
    }

    /// The checkpoint file for `which`: `best`, `last`, or a path.
    pub fn checkpoint_path(&self, which: &str) -> PathBuf {
        match which {
            "best" => self.file(run_files::BEST),
            "last" => self.file(run_files::LAST),
            other => PathBuf::from(other),
        }
    }

    /// Resolves `which` (`best`, `last` or a path) to a file and says why it is that one: `best`
    /// is the epoch with the best validation accuracy; a run without a validation set has no
    /// `best`, so `best` falls back to `last` (said in the reason).
    pub fn choose_checkpoint(&self, which: &str) -> Result<(PathBuf, String), CheckpointError> {
        let history = self.metrics().unwrap_or_default();
        let epochs = history.len();
        match which {
            "best" => {
                let best = self.file(run_files::BEST);
                match super::best_epoch(&history) {
                    Some(e) if best.is_file() => {
                        let acc = history[e - 1].val.as_ref().map_or(0.0, |v| v.accuracy);
                        Ok((
                            best,
                            format!(
                                "best: epoch {e} of {epochs}, the highest validation accuracy ({:.2}%)",
                                100.0 * acc
                            ),
                        ))
                    }
                    Some(e) => Err(invalid(
                        &best,
                        format!("missing, though epoch {e} has the best validation accuracy"),
                    )),
                    None => Ok((
                        self.file(run_files::LAST),
                        format!(
                            "last: epoch {epochs} (the run has no validation set, [data] val_ratio = 0, so no checkpoint was selected)"
                        ),
                    )),
                }
            }
            "last" => Ok((
                self.file(run_files::LAST),
                format!("last: epoch {epochs}, as asked"),
            )),
            other => Ok((PathBuf::from(other), "the file given".to_string())),
        }
    }

    /// The epoch history recorded in `metrics.jsonl` (lines that do not parse are an error
    /// naming the line).
    pub fn metrics(&self) -> Result<Vec<EpochRecord>, CheckpointError> {
        let path = self.file(run_files::METRICS);
        let text = std::fs::read_to_string(&path).map_err(|source| CheckpointError::Io {
            path: path.clone(),
            source,
        })?;
        text.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| {
                serde_json::from_str(l).map_err(|e| invalid(&path, format!("line {}: {e}", i + 1)))
            })
            .collect()
    }

    /// Rewrites `metrics.jsonl` from `history` (used on resume, so that it matches the
    /// checkpoint even if the run stopped between the two writes).
    pub fn write_metrics(&self, history: &[EpochRecord]) -> Result<(), CheckpointError> {
        let path = self.file(run_files::METRICS);
        let mut text = String::new();
        for r in history {
            text.push_str(&serde_json::to_string(r).map_err(|e| invalid(&path, e.to_string()))?);
            text.push('\n');
        }
        write_atomic(&path, text.as_bytes()).map_err(|source| CheckpointError::Io { path, source })
    }

    /// Saves the end-of-epoch state: `last.safetensors` always, `best.safetensors` when the
    /// latest epoch has the best validation accuracy so far (latest of equals; never in a run
    /// without a validation set), then `metrics.jsonl`.
    pub fn save_epoch(
        &self,
        model: &Model,
        optimizer: OptimizerRecord,
        meta: &CheckpointMeta,
    ) -> Result<(), CheckpointError> {
        let mut meta = meta.clone();
        if meta.config.is_none() {
            meta.config = std::fs::read_to_string(self.file(run_files::CONFIG)).ok();
        }
        let last = self.file(run_files::LAST);
        let bytes = to_bytes(model, Some(optimizer), &meta).map_err(|r| invalid(&last, r))?;
        let io = |source, p: &Path| CheckpointError::Io {
            path: p.to_path_buf(),
            source,
        };
        write_atomic(&last, &bytes).map_err(|e| io(e, &last))?;
        if let Some(latest) = meta.history.last()
            && latest.val.is_some()
            && super::best_epoch(&meta.history) == Some(latest.epoch)
        {
            let best = self.file(run_files::BEST);
            write_atomic(&best, &bytes).map_err(|e| io(e, &best))?;
        }
        self.write_metrics(&meta.history)
    }
}

/// Trains `config`, writing a run directory when `out` is given, or continuing the run in
/// `resume` from its `last.safetensors` (then `config` should be that run's `config.toml`).
#[allow(clippy::too_many_arguments)]
pub fn train_in_dir(
    out: Option<&Path>,
    resume: Option<&Path>,
    config: &crate::config::RunConfig,
    objective: &dyn crate::objective::Objective,
    data: &tks_data::Split,
    device: &burn::tensor::Device,
    mut hooks: super::TrainHooks<'_>,
) -> Result<super::TrainOutcome, crate::error::TrainError> {
    // The run's own policy (recorded in its config.toml) wins over the hooks'.
    hooks.kernels = config.kernels;
    // In a data-parallel run rank 0 alone writes; the others read the checkpoint to resume.
    let writer = hooks.distributed.is_none_or(|d| d.rank() == 0);
    let (dir, checkpoint) = match (resume, out) {
        (Some(r), _) => {
            let dir = RunDir::open(r)?;
            let ck = Checkpoint::load(&dir.file(run_files::LAST))?;
            if writer {
                dir.write_metrics(&ck.meta.history)?;
            }
            (Some(dir), Some(ck))
        }
        (None, Some(_)) if !writer => (None, None),
        (None, Some(o)) => {
            // the model as it will be built: `auto` dimensions recorded as numbers
            let mut config = config.clone();
            config.model = crate::fit::resolved_for(&config.model, &data.train)?.into_owned();
            let text = toml::to_string(&config)
                .map_err(|e| invalid(&o.join(run_files::CONFIG), e.to_string()))?;
            (Some(RunDir::create(o, &text)?), None)
        }
        (None, None) => (None, None),
    };
    let mut save = |m: &Model, o: OptimizerRecord, meta: &CheckpointMeta| match &dir {
        Some(d) if writer => d.save_epoch(m, o, meta),
        _ => Ok(()),
    };
    let best_file = dir.as_ref().map(|d| d.file(run_files::BEST));
    let resume_best = match (&checkpoint, &best_file) {
        (Some(_), Some(f)) if f.is_file() => Some(Checkpoint::load(f)?),
        _ => None,
    };
    let run = super::RunHooks {
        resume: checkpoint.as_ref(),
        resume_best: resume_best.as_ref(),
        on_checkpoint: if dir.is_some() { Some(&mut save) } else { None },
    };
    let outcome = super::train_resumable(
        &config.model,
        &config.train,
        objective,
        data,
        device,
        hooks,
        run,
    )?;
    if let Some(d) = &dir
        && writer
    {
        d.write_result(&RunResult::of(&outcome))?;
    }
    Ok(outcome)
}

/// `result.json`: the test-set evaluation of the checkpoint chosen on the validation set and of
/// the last one.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RunResult {
    /// Epochs trained.
    pub epochs: usize,
    /// The epoch of `best.safetensors` (`None`: the run has no validation set).
    pub best_epoch: Option<usize>,
    /// Its validation accuracy.
    pub best_val_accuracy: Option<f64>,
    /// Test-set evaluation of `best.safetensors` (`None` without one).
    pub test_best: Option<crate::eval::EvalReport>,
    /// Test-set evaluation of `last.safetensors`.
    pub test_last: crate::eval::EvalReport,
}

impl RunResult {
    /// The result of a finished run.
    pub fn of(outcome: &super::TrainOutcome) -> Self {
        Self {
            epochs: outcome.history.len(),
            best_epoch: outcome.best.as_ref().map(|b| b.epoch),
            best_val_accuracy: outcome.best.as_ref().map(|b| b.val_accuracy),
            test_best: outcome.best.as_ref().map(|b| b.test.clone()),
            test_last: outcome.test_last.clone(),
        }
    }
}

impl RunDir {
    /// Writes `result.json` atomically.
    pub fn write_result(&self, result: &RunResult) -> Result<(), CheckpointError> {
        let path = self.file(run_files::RESULT);
        let text =
            serde_json::to_string_pretty(result).map_err(|e| invalid(&path, e.to_string()))?;
        write_atomic(&path, text.as_bytes()).map_err(|source| CheckpointError::Io { path, source })
    }

    /// Reads `result.json` (`None` when the run has not finished).
    pub fn result(&self) -> Result<Option<RunResult>, CheckpointError> {
        let path = self.file(run_files::RESULT);
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| invalid(&path, e.to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(CheckpointError::Io { path, source }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RunConfig;
    use burn::tensor::Device;

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("tks-ckpt-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn round_trip_and_errors_name_the_file() {
        let device = Device::flex();
        device.seed(1);
        let mut cfg = RunConfig::default();
        cfg.model.resolve([1, 8, 8], 10, "digits").unwrap();
        let model = cfg.model.init(&device).unwrap();
        let dir = tmpdir("rt");
        let path = dir.join("last.safetensors");
        let meta = CheckpointMeta {
            epoch: 3,
            global_step: 42,
            seed: 7,
            config: Some("x = 1".into()),
            history: vec![],
        };
        save(&path, &model, None, &meta).unwrap();
        let ck = Checkpoint::load(&path).unwrap();
        assert_eq!(ck.meta, meta);

        device.seed(2);
        let other = cfg.model.init(&device).unwrap();
        let loaded = ck.apply_to(other).unwrap();
        let a = model.collect(None, None, false);
        let b = loaded.collect(None, None, false);
        assert_eq!(a.len(), b.len());
        for (x, y) in a.into_iter().zip(b) {
            assert_eq!(x.name, y.name);
            // Trainable parameters keep their ids (the optimizer state is keyed by them);
            // BatchNorm running statistics are buffers and get fresh ones.
            if !x.name.contains("running_") {
                assert_eq!(x.param_id, y.param_id, "{}", x.name);
            }
            assert_eq!(
                x.to_bytes().unwrap().to_vec(),
                y.to_bytes().unwrap().to_vec()
            );
        }
        // Truncated file.
        let bytes = std::fs::read(&path).unwrap();
        let bad = dir.join("trunc.safetensors");
        std::fs::write(&bad, &bytes[..bytes.len() / 2]).unwrap();
        let e = Checkpoint::load(&bad).unwrap_err().to_string();
        assert!(e.contains("trunc.safetensors"), "{e}");
        // Not a checkpoint at all.
        std::fs::write(&bad, b"hello").unwrap();
        let e = Checkpoint::load(&bad).unwrap_err().to_string();
        assert!(e.contains("trunc.safetensors"), "{e}");
        // Missing file.
        let e = Checkpoint::load(&dir.join("nope.safetensors"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("nope.safetensors"), "{e}");
        // A model of another shape.
        let mut small = RunConfig::default();
        small.model.resolve([1, 8, 8], 10, "digits").unwrap();
        if let tks_core::model::ModelConfig::SmallCnn(c) = &mut small.model {
            c.channels = [4, 8];
        }
        let e = ck
            .apply_to(small.model.init(&device).unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("last.safetensors"), "{e}");
        assert!(!dir.join("last.safetensors.tmp").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
