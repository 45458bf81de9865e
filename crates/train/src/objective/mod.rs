//! Training objectives over per-timestep logits `[T, B, classes]`.
//!
//! One trait, [`Objective`], one file per objective: [`Baseline`] (cross-entropy of the
//! time-averaged logits), [`LabelSmoothing`] (`ls`), [`Tet`] (`tet`) and [`Tks`] (`tks`, Temporal
//! Knowledge Sharing), [`Tssd`] (`tssd`, temporal-spatial self-distillation) and [`Bkd`] (`bkd`,
//! blurred knowledge distillation from an ANN teacher). Objectives that train auxiliary modules
//! or need a teacher do so through the hooks of [`Objective`] (see [`aux`]).
//! [`ObjectiveConfig`] is the `[objective]` table of a run configuration:
//!
//! ```toml
//! [objective]
//! name = "tks"            # baseline | ls | tet | tks | tssd | bkd
//! temperature = 3.0       # tks: τ
//! alpha = 0.7             # tks: final weight of the knowledge-sharing term
//! detach_teacher = false  # tks
//! student_temperature = false
//! per_step = false
//! # ls:  epsilon = 0.1
//! # tet: lambda = 0.001, phi = 1.0
//! # tssd: extra_timesteps = 2, alpha = 1.0, beta = 1.0, temperature = 4.0, detach_teacher = true,
//! #       event_teacher = "rebin"   (or "extend": one pass, see objective::tssd)
//! # bkd: teacher = "teacher.safetensors" (required), teacher_timesteps = 1, temperature = 2.0,
//! #      logit_weight = 1.0, feature_weight = 0.002, mask_ratio = 0.15, wsld = true
//! ```
//!
//! Fields left out take their defaults; `objective = "tks"` is shorthand for `[objective]
//! name = "tks"`.

pub mod aux;

pub use aux::{AuxModule, AuxShape, LossExtras, Teacher};

use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Int, Tensor};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::error::{ConfigError, TrainError};
use tks_core::model::{ModelConfig, SnnOutput};

/// The objective registry: one line per objective, `file: Variant(Type) = "name";`. `Type`
/// (defined in `file`) is both the `[objective]` table's parameters (serde, `Default`, an
/// inherent `validate`) and the [`Objective`] itself. The macro declares the module (re-exporting
/// its public items) and generates [`ObjectiveConfig`], [`OBJECTIVE_NAMES`] and their dispatch.
macro_rules! objectives {
    ($($(#[$doc:meta])* $module:ident: $variant:ident($ty:ty) = $name:literal;)+) => {
        $(mod $module; pub use $module::*;)+

        /// Every objective name, in registry order.
        pub const OBJECTIVE_NAMES: &[&str] = &[$($name),+];

        /// The `[objective]` table: `name` plus that objective's parameters.
        #[derive(Debug, Clone, PartialEq, Serialize)]
        #[serde(tag = "name")]
        pub enum ObjectiveConfig {
            $($(#[$doc])* #[serde(rename = $name)] $variant($ty),)+
        }

        impl ObjectiveConfig {
            /// The objective called `name` with default parameters.
            pub fn from_name(name: &str) -> Result<Self, ConfigError> {
                match name {
                    $($name => Ok(Self::$variant(<$ty>::default())),)+
                    other => Err(unknown_name(other)),
                }
            }

            /// The objective's name.
            pub fn name(&self) -> &'static str {
                match self {
                    $(Self::$variant(_) => $name,)+
                }
            }

            /// Checks the parameters (names the first bad field and value).
            pub fn validate(&self) -> Result<(), ConfigError> {
                match self {
                    $(Self::$variant(c) => c.validate(),)+
                }
            }

            /// The objective, validated first.
            pub fn build(&self) -> Result<Box<dyn Objective>, ConfigError> {
                self.validate()?;
                Ok(match self {
                    $(Self::$variant(c) => Box::new(c.clone()),)+
                })
            }

            /// The objective `name` with its parameters from `table` (each field checked alone
            /// first, so an error names the field).
            fn parse_named(name: &str, table: toml::Table) -> Result<Self, ConfigError> {
                match name {
                    $($name => parse_fields($name, table).map(Self::$variant),)+
                    other => Err(unknown_name(other)),
                }
            }
        }
    };
}

objectives! {
    /// Cross-entropy of the time-averaged logits.
    baseline: Baseline(Baseline) = "baseline";
    /// Label smoothing (`epsilon`).
    ls: Ls(LabelSmoothing) = "ls";
    /// TET (`lambda`, `phi`).
    tet: Tet(Tet) = "tet";
    /// Temporal Knowledge Sharing (`temperature`, `alpha`, …).
    tks: Tks(Tks) = "tks";
    /// Temporal-spatial self-distillation.
    tssd: Tssd(Tssd) = "tssd";
    /// Blurred knowledge distillation from an ANN teacher.
    bkd: Bkd(Bkd) = "bkd";
}

fn unknown_name(name: &str) -> ConfigError {
    ConfigError::invalid(
        "objective.name",
        format!("{name:?}"),
        &format!("expected one of: {}", OBJECTIVE_NAMES.join(", ")),
    )
}

impl Default for ObjectiveConfig {
    /// The baseline.
    fn default() -> Self {
        Self::Baseline(Baseline {})
    }
}

impl ObjectiveConfig {
    /// Parses an `[objective]` table (`name` plus that objective's fields).
    pub fn from_table(mut table: toml::Table) -> Result<Self, ConfigError> {
        let expected = format!("expected one of: {}", OBJECTIVE_NAMES.join(", "));
        let name = match table.remove("name") {
            Some(toml::Value::String(name)) => name,
            Some(other) => {
                return Err(ConfigError::invalid(
                    "objective.name",
                    other,
                    &format!("must be a string, {expected}"),
                ));
            }
            None => {
                return Err(ConfigError::invalid(
                    "objective.name",
                    "(missing)",
                    &format!("required, {expected}"),
                ));
            }
        };
        Self::parse_named(&name, table)
    }
}

fn parse_fields<T: serde::de::DeserializeOwned>(
    name: &str,
    table: toml::Table,
) -> Result<T, ConfigError> {
    let parse = |t: toml::Table| {
        toml::Value::Table(t)
            .try_into::<T>()
            .map_err(|e| e.message().trim().to_string())
    };
    for (key, value) in &table {
        let single: toml::Table = [(key.clone(), value.clone())].into_iter().collect();
        if let Err(reason) = parse(single) {
            return Err(ConfigError::invalid(
                &format!("objective.{key}"),
                value,
                &format!("{reason} (objective `{name}`)"),
            ));
        }
    }
    parse(table).map_err(|reason| ConfigError::invalid("objective", name, &reason))
}

/// Either a bare name (`objective = "tks"`, default parameters) or an `[objective]` table.
impl<'de> Deserialize<'de> for ObjectiveConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NameOrTable;
        impl<'de> Visitor<'de> for NameOrTable {
            type Value = ObjectiveConfig;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an objective name or an [objective] table with `name`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                ObjectiveConfig::from_name(v).map_err(|e| E::custom(brief(&e)))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                let table = toml::Table::deserialize(de::value::MapAccessDeserializer::new(map))?;
                ObjectiveConfig::from_table(table).map_err(|e| de::Error::custom(brief(&e)))
            }
        }
        deserializer.deserialize_any(NameOrTable)
    }
}

/// `field = value: reason`, for errors wrapped by the TOML parser.
fn brief(e: &ConfigError) -> String {
    format!("`{}` = {}: {}", e.field, e.value, e.reason)
}

/// Where training stands, for objectives whose weights follow a schedule (TKS's ramp).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// Current epoch, 0-based.
    pub epoch: usize,
    /// Total epochs.
    pub epochs: usize,
    /// Step within the epoch, 0-based.
    pub step: usize,
    /// Steps per epoch.
    pub steps_per_epoch: usize,
}

impl Progress {
    /// Fraction of training done at the start of this epoch: `epoch / epochs`.
    pub fn epoch_fraction(&self) -> f64 {
        self.epoch as f64 / self.epochs.max(1) as f64
    }

    /// Fraction of training done at this step: `(epoch·S + step) / (epochs·S)`.
    pub fn step_fraction(&self) -> f64 {
        let s = self.steps_per_epoch.max(1);
        (self.epoch * s + self.step) as f64 / (self.epochs.max(1) * s) as f64
    }
}

/// A training objective: a scalar loss from a forward pass and integer targets `[B]`.
pub trait Objective: Send + Sync {
    /// Short name used in configs and the CLI (`baseline`, `tks`, ...).
    fn name(&self) -> &'static str;

    /// Whether the loss needs the model's intermediate-stage output.
    fn needs_stage(&self) -> bool {
        false
    }

    /// The loss, a one-element tensor.
    fn loss(&self, output: &SnnOutput, targets: Tensor<1, Int>, progress: Progress) -> Tensor<1>;

    /// Timesteps of the training forward passes when evaluation runs at `timesteps` (TSSD
    /// trains over a longer window). Evaluation always runs at `timesteps`.
    fn train_timesteps(&self, timesteps: usize) -> usize {
        timesteps
    }

    /// On event data with a longer training window (`train_timesteps(T) > T`): whether that
    /// window is a second pass over the recordings integrated into `train_timesteps(T)` frames,
    /// the student training on the `T`-frame binning it is tested on (true), or one pass over
    /// the longer binning whose first `T` frames are the student (false).
    fn rebins_long_window(&self) -> bool {
        false
    }

    /// A frozen teacher for `model`'s architecture on the plain `device`, loaded once per run
    /// (BKD's ANN). None by default.
    fn load_teacher(
        &self,
        _model: &ModelConfig,
        _device: &Device,
    ) -> Result<Option<Teacher>, TrainError> {
        Ok(None)
    }

    /// A trainable auxiliary module on the (autodiff) `device`, built once per run from the
    /// stage shapes; trained with the model, dropped at the end. None by default.
    fn init_aux(&self, _shape: &AuxShape, _device: &Device) -> Option<AuxModule> {
        None
    }

    /// The loss given everything the training loop provides (the auxiliary module, the
    /// teacher's output). Defaults to [`Objective::loss`].
    fn loss_with(
        &self,
        output: &SnnOutput,
        targets: Tensor<1, Int>,
        progress: Progress,
        _extras: &LossExtras<'_>,
    ) -> Tensor<1> {
        self.loss(output, targets, progress)
    }
}

/// Mean-over-batch cross-entropy of `logits [B, C]` against integer `targets [B]`.
pub fn cross_entropy(logits: Tensor<2>, targets: Tensor<1, Int>) -> Tensor<1> {
    let classes = logits.dims()[1];
    let one_hot: Tensor<2> = targets.one_hot::<2>(classes).float();
    soft_cross_entropy(logits, one_hot)
}

/// Mean-over-batch cross-entropy `−(1/B) Σ_b Σ_c p_bc log softmax(logits)_bc` against a soft
/// target `p [B, C]`.
pub fn soft_cross_entropy(logits: Tensor<2>, target: Tensor<2>) -> Tensor<1> {
    let batch = logits.dims()[0];
    (log_softmax(logits, 1) * target)
        .sum()
        .neg()
        .div_scalar(batch as f64)
}

/// Time-averaged logits `[B, C]` from `[T, B, C]`.
pub fn mean_over_time(logits: Tensor<3>) -> Tensor<2> {
    logits.mean_dim(0).squeeze_dim(0)
}
