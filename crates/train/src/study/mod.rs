//! Reproduction studies: a grid of runs (experiments × methods × timesteps × seeds × folds),
//! each trained with the same budget and protocol, each leaving a small JSON summary
//! ([`RunRecord`]) that the report is made from. A study is resumable: a run whose summary
//! exists (made from the same configuration) is never recomputed, so a study can be spread over
//! several sittings and machines.
//!
//! ```toml
//! [study]
//! name = "real-data"
//! methods = ["baseline", "ls", "tet", "tks", "tssd", "bkd"]
//! seeds = [1, 2, 3]
//!
//! [[experiment]]
//! name = "fashion-direct"
//! config = "fashion.toml"      # a run configuration, relative to this file
//! timesteps = [4]
//!
//! [[experiment]]
//! name = "nmnist-cv"
//! config = "nmnist.toml"
//! folds = 10                   # 10-fold cross-validation over the pooled recordings
//! ```
//!
//! Every method of an experiment shares the experiment's configuration (model, data,
//! augmentation, epochs, schedule, batch, seeds); only `[objective]` differs. BKD's ANN teacher is
//! trained once per experiment, seed and fold, with the same configuration in ANN mode (ReLU in
//! place of the spiking neuron; T = 1 for static images, the experiment's T for event frames).

pub mod aggregate;
pub mod run;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::RunConfig;
use crate::error::ConfigError;
use crate::objective::ObjectiveConfig;

pub use run::{Provenance, RunRecord, run_one};

/// The methods of the paper's comparison, in table order.
pub const METHODS: [&str; 6] = ["baseline", "ls", "tet", "tks", "tssd", "bkd"];

/// Name of BKD's teacher runs in keys and tables.
pub const TEACHER: &str = "ann";

/// A study file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StudyFile {
    /// Settings shared by every experiment.
    pub study: StudySettings,
    /// The experiments (`[[experiment]]`).
    #[serde(rename = "experiment")]
    pub experiments: Vec<Experiment>,
}

/// The `[study]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StudySettings {
    /// Name; summaries go to `RESULTS/<name>/`.
    pub name: String,
    /// Methods (objective names), unless an experiment lists its own.
    #[serde(default = "default_methods")]
    pub methods: Vec<String>,
    /// Seeds, unless an experiment lists its own.
    #[serde(default = "default_seeds")]
    pub seeds: Vec<u64>,
}

fn default_methods() -> Vec<String> {
    METHODS.iter().map(|m| m.to_string()).collect()
}

fn default_seeds() -> Vec<u64> {
    vec![1, 2, 3]
}

/// One `[[experiment]]`: a dataset and budget, run for every method, seed, T and fold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Experiment {
    /// Name (a path component: letters, digits, `-`, `_`, `.`).
    pub name: String,
    /// One line saying what it measures (shown in the report).
    #[serde(default)]
    pub description: String,
    /// The run configuration every method shares, relative to the study file.
    pub config: PathBuf,
    /// Training (= test) timesteps; each is a run of its own (default: the configuration's T).
    #[serde(default)]
    pub timesteps: Vec<usize>,
    /// k-fold cross-validation over the pooled train and test sets (0 = the source's split).
    #[serde(default)]
    pub folds: usize,
    /// Methods of this experiment (default: the study's).
    #[serde(default)]
    pub methods: Option<Vec<String>>,
    /// Seeds of this experiment (default: the study's).
    #[serde(default)]
    pub seeds: Option<Vec<u64>>,
    /// Also evaluate each model at every shorter T (truncate and, for event data, re-bin).
    #[serde(default = "yes")]
    pub sweep: bool,
}

fn yes() -> bool {
    true
}

/// One run of the grid.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSpec {
    /// `experiment/method/T4/seed1[/fold3]`.
    pub key: String,
    /// Experiment name.
    pub experiment: String,
    /// Method (objective name, or [`TEACHER`]).
    pub method: String,
    /// Timesteps.
    pub timesteps: usize,
    /// Seed.
    pub seed: u64,
    /// Fold of `folds`, if cross-validated.
    pub fold: Option<(usize, usize)>,
    /// Evaluate at every shorter T too.
    pub sweep: bool,
    /// The resolved configuration.
    pub config: RunConfig,
}

impl RunSpec {
    /// The summary file under `results` (`<study>/<experiment>/<method>-T<T>-s<seed>[-f<k>].json`).
    pub fn summary_path(&self, results: &Path, study: &str) -> PathBuf {
        let fold = self.fold.map_or(String::new(), |(k, _)| format!("-f{k}"));
        results.join(study).join(&self.experiment).join(format!(
            "{}-T{}-s{}{fold}.json",
            self.method, self.timesteps, self.seed
        ))
    }

    /// The run directory under `work`.
    pub fn run_dir(&self, work: &Path) -> PathBuf {
        work.join(&self.key)
    }

    /// The configuration without what depends on the machine and not the result: the frame
    /// cache folder, decoding threads, streaming and prefetch, the kernel policy (every kernel
    /// computes the same function, tested equal) and BKD's teacher path (the key names the
    /// teacher run). This is what a summary records and what its hash is taken of.
    pub fn portable_config(&self) -> RunConfig {
        let mut c = self.config.clone();
        let d = tks_data::source::DataConfig::default();
        c.data.cache_dir = None;
        c.data.threads = d.threads;
        c.data.stream = d.stream;
        c.data.stream_above_mb = d.stream_above_mb;
        c.data.prefetch = d.prefetch;
        c.kernels = Default::default();
        if let ObjectiveConfig::Bkd(b) = &mut c.objective {
            b.teacher = format!("(the `{TEACHER}` run of this experiment, seed and fold)");
        }
        c
    }

    /// Whether `record` was made from this run's configuration: its recorded configuration,
    /// read with today's defaults for fields added since, equals the [portable
    /// configuration](Self::portable_config). (A hash of the text would call every summary stale
    /// whenever a new configuration field appears.)
    /// A summary whose configuration lacks a field of [`CHANGED_DEFAULTS`] does not match.
    pub fn matches(&self, record: &RunRecord) -> bool {
        record.key == self.key
            && !lacks_changed_default(&record.config)
            && RunConfig::from_toml(&record.config, &record.key)
                .is_ok_and(|c| c == self.portable_config())
    }

    /// SHA-256 of the [portable configuration](Self::portable_config) (TOML), recorded with a
    /// summary for reference.
    pub fn config_hash(&self) -> String {
        use sha2::Digest;
        let text = toml::to_string(&self.portable_config()).unwrap_or_default();
        let digest = sha2::Sha256::digest(text.as_bytes());
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// `[objective]` fields added with a default that *changed* what a run does: a summary of that
/// objective made before the field existed (its configuration lacks it) was made with the old
/// behaviour, so reading it with today's default would wrongly call it current. TSSD's
/// `event_teacher`: absent means the one-pass event input (`"extend"`), the default is `"rebin"`.
pub const CHANGED_DEFAULTS: &[(&str, &str)] = &[("tssd", "event_teacher")];

/// Whether the configuration text `config` (a summary's) lacks a [`CHANGED_DEFAULTS`] field of
/// its objective; unreadable text counts as lacking.
pub fn lacks_changed_default(config: &str) -> bool {
    let Ok(table) = toml::from_str::<toml::Table>(config) else {
        return true;
    };
    let Some(objective) = table.get("objective").and_then(|o| o.as_table()) else {
        return false;
    };
    let name = objective.get("name").and_then(|n| n.as_str()).unwrap_or("");
    CHANGED_DEFAULTS
        .iter()
        .any(|(o, field)| *o == name && !objective.contains_key(*field))
}

fn invalid(field: &str, value: impl std::fmt::Display, reason: &str) -> ConfigError {
    ConfigError::invalid(field, value, reason)
}

impl StudyFile {
    /// Reads and checks a study file; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let study: StudyFile = crate::config::parse_toml(text, origin)?;
        study.check()?;
        Ok(study)
    }

    /// Reads a study file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Self::from_toml(
            &crate::config::read_text(path)?,
            &path.display().to_string(),
        )
    }

    fn check(&self) -> Result<(), ConfigError> {
        let name_ok = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
                && !s.starts_with('.')
        };
        if !name_ok(&self.study.name) {
            return Err(invalid(
                "study.name",
                &self.study.name,
                "must be letters, digits, `-`, `_` or `.`",
            ));
        }
        if self.experiments.is_empty() {
            return Err(invalid(
                "experiment",
                "[]",
                "the study has no [[experiment]]",
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for e in &self.experiments {
            let field = |f: &str| format!("experiment `{}`.{f}", e.name);
            if !name_ok(&e.name) {
                return Err(invalid(
                    "experiment.name",
                    &e.name,
                    "must be letters, digits, `-`, `_` or `.`",
                ));
            }
            if !seen.insert(e.name.clone()) {
                return Err(invalid("experiment.name", &e.name, "appears twice"));
            }
            if e.folds == 1 {
                return Err(invalid(&field("folds"), 1, "must be 0 or at least 2"));
            }
            if e.timesteps.contains(&0) {
                return Err(invalid(&field("timesteps"), 0, "must be at least 1"));
            }
            let methods = e.methods.as_ref().unwrap_or(&self.study.methods);
            if methods.is_empty() {
                return Err(invalid(&field("methods"), "[]", "no methods"));
            }
            for m in methods {
                ObjectiveConfig::from_name(m)
                    .map_err(|err| invalid(&field("methods"), m, &err.reason))?;
            }
            if e.seeds.as_ref().unwrap_or(&self.study.seeds).is_empty() {
                return Err(invalid(&field("seeds"), "[]", "no seeds"));
            }
        }
        Ok(())
    }

    /// Every run of the study, in order: experiment by experiment, then seed, fold, T and
    /// method (so a partial study holds whole seeds — every fold of them — first). BKD's teacher run comes
    /// right before the BKD run that needs it. `base` is the study file's folder (experiment
    /// configurations are relative to it); `work` is where the run directories go (BKD reads its
    /// teacher from there).
    pub fn runs(&self, base: &Path, work: &Path) -> Result<Vec<RunSpec>, ConfigError> {
        let mut out = Vec::new();
        for e in &self.experiments {
            let path = base.join(&e.config);
            let config = RunConfig::load(&path)?;
            let methods = e.methods.as_ref().unwrap_or(&self.study.methods);
            let seeds = e.seeds.as_ref().unwrap_or(&self.study.seeds);
            let ts = if e.timesteps.is_empty() {
                vec![config.train.timesteps]
            } else {
                e.timesteps.clone()
            };
            let folds: Vec<Option<(usize, usize)>> = if e.folds >= 2 {
                (0..e.folds).map(|k| Some((k, e.folds))).collect()
            } else {
                vec![None]
            };
            for &seed in seeds {
                for fold in &folds {
                    for &t in &ts {
                        let spec = |method: &str, config: RunConfig, timesteps: usize| {
                            let fold_key = fold.map_or(String::new(), |(k, _)| format!("/fold{k}"));
                            RunSpec {
                                key: format!(
                                    "{}/{method}/T{timesteps}/seed{seed}{fold_key}",
                                    e.name
                                ),
                                experiment: e.name.clone(),
                                method: method.to_string(),
                                timesteps,
                                seed,
                                fold: *fold,
                                sweep: e.sweep,
                                config,
                            }
                        };
                        let mut common = config.clone();
                        common.train.timesteps = t;
                        common.train.seed = seed;
                        if let Some((k, n)) = fold {
                            common.data.folds = *n;
                            common.data.fold = *k;
                        }
                        for m in methods {
                            let mut c = common.clone();
                            c.objective = ObjectiveConfig::from_name(m)?;
                            if let ObjectiveConfig::Bkd(bkd) = &mut c.objective {
                                let teacher = self.teacher(&common)?;
                                let teacher = spec(TEACHER, teacher.0, teacher.1);
                                let which = if common.data.val_ratio > 0.0 {
                                    crate::train::checkpoint::run_files::BEST
                                } else {
                                    crate::train::checkpoint::run_files::LAST
                                };
                                bkd.teacher =
                                    teacher.run_dir(work).join(which).display().to_string();
                                bkd.teacher_timesteps = teacher.timesteps;
                                if !out.iter().any(|r: &RunSpec| r.key == teacher.key) {
                                    out.push(teacher);
                                }
                            }
                            c.validate().map_err(|err| ConfigError {
                                field: format!("{} ({})", err.field, path.display()),
                                ..err
                            })?;
                            out.push(spec(m, c, t));
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    /// BKD's teacher: the same configuration in ANN mode, T = 1 for static images (event frames
    /// keep their T: the data are integrated into that many frames).
    fn teacher(&self, common: &RunConfig) -> Result<(RunConfig, usize), ConfigError> {
        let mut c = common.clone();
        c.set_ann();
        c.objective = ObjectiveConfig::from_name("baseline")?;
        if !c.data.is_events() {
            c.train.timesteps = 1;
        }
        let t = c.train.timesteps;
        Ok((c, t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn study(extra: &str) -> String {
        format!(
            "[study]\nname = \"s\"\nmethods = [\"baseline\", \"bkd\"]\nseeds = [1, 2]\n\
             [[experiment]]\nname = \"digits\"\nconfig = \"base.toml\"\ntimesteps = [2, 4]\n{extra}"
        )
    }

    fn base() -> PathBuf {
        let d = std::env::temp_dir().join(format!("tks-study-unit-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("base.toml"), "[train]\nepochs = 1\n").unwrap();
        d
    }

    #[test]
    fn grid_expands_with_one_teacher_per_seed_and_fold() {
        let s = StudyFile::from_toml(&study("folds = 3\n"), "s.toml").unwrap();
        let runs = s.runs(&base(), Path::new("work")).unwrap();
        // 3 folds × 2 T × 2 seeds × (baseline, teacher, bkd); the teacher (T = 1) is shared by
        // the two T of a seed and fold.
        let teachers = runs.iter().filter(|r| r.method == TEACHER).count();
        assert_eq!(teachers, 3 * 2);
        assert_eq!(runs.len() - teachers, 3 * 2 * 2 * 2);
        let bkd = runs.iter().find(|r| r.method == "bkd").unwrap();
        let teacher = runs.iter().position(|r| r.method == TEACHER).unwrap();
        assert!(teacher < runs.iter().position(|r| r.method == "bkd").unwrap());
        assert_eq!(bkd.config.data.folds, 3);
        match &bkd.config.objective {
            ObjectiveConfig::Bkd(b) => {
                assert!(
                    b.teacher.contains("digits/ann/T1/seed1/fold0"),
                    "{}",
                    b.teacher
                );
                assert!(b.teacher.ends_with("best.safetensors"));
            }
            other => panic!("{other:?}"),
        }
        let p = bkd.summary_path(Path::new("res"), "s");
        assert_eq!(p, Path::new("res/s/digits/bkd-T2-s1-f0.json"));
        // Every key is unique, and every configuration differs from every other.
        let mut keys: Vec<&str> = runs.iter().map(|r| r.key.as_str()).collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), runs.len());
        // A configuration read back from its TOML matches; another run's does not.
        let record =
            |spec: &RunSpec| -> String { toml::to_string(&spec.portable_config()).unwrap() };
        let back = RunConfig::from_toml(&record(bkd), "x").unwrap();
        assert_eq!(back, bkd.portable_config());
        let other = RunConfig::from_toml(&record(&runs[0]), "x").unwrap();
        assert_ne!(other, bkd.portable_config());
        let mut hashes: Vec<String> = runs.iter().map(|r| r.config_hash()).collect();
        hashes.sort_unstable();
        hashes.dedup();
        assert_eq!(hashes.len(), runs.len());
    }

    #[test]
    fn summaries_without_a_changed_default_are_stale() {
        let old = "[objective]\nname = \"tssd\"\nalpha = 1.0\n[train]\nepochs = 1\n";
        assert!(lacks_changed_default(old));
        let new = "[objective]\nname = \"tssd\"\nevent_teacher = \"rebin\"\n";
        assert!(!lacks_changed_default(new));
        // Other objectives, and configurations without [objective], are untouched.
        assert!(!lacks_changed_default("[objective]\nname = \"tks\"\n"));
        assert!(!lacks_changed_default("[train]\nepochs = 1\n"));
        assert!(lacks_changed_default("[objective\n"));
        // A configuration written today carries the field.
        let text = toml::to_string(&RunConfig {
            objective: crate::objective::ObjectiveConfig::Tssd(Default::default()),
            ..RunConfig::default()
        })
        .unwrap();
        assert!(!lacks_changed_default(&text), "{text}");
    }

    #[test]
    fn bad_study_files_are_named() {
        for (text, needle) in [
            (study("folds = 1\n"), "folds"),
            (study("methods = [\"nope\"]\n"), "nope"),
            (study("bogus = 1\n"), "bogus"),
            (
                study("timesteps = [0]\n").replace("timesteps = [2, 4]\n", ""),
                "timesteps",
            ),
            (
                "[study]\nname = \"a/b\"\n[[experiment]]\nname = \"x\"\nconfig = \"c\"\n".into(),
                "study.name",
            ),
        ] {
            let e = StudyFile::from_toml(&text, "s.toml")
                .unwrap_err()
                .to_string();
            assert!(e.contains(needle), "{text} → {e}");
        }
        let s = StudyFile::from_toml(&study("").replace("base.toml", "missing.toml"), "s.toml")
            .unwrap();
        let e = s.runs(&base(), Path::new("w")).unwrap_err().to_string();
        assert!(e.contains("missing.toml"), "{e}");
    }
}
