//! What an objective may need beyond the per-timestep logits: trainable auxiliary modules
//! (TSSD's weak classifier, BKD's generation block) and a frozen teacher (BKD's ANN).
//!
//! The training loop asks the objective once per run:
//!
//! 1. [`Objective::load_teacher`](super::Objective::load_teacher) — a frozen [`Teacher`] on the
//!    plain (non-autodiff) device, in inference mode (BN uses its running statistics). The loop
//!    runs it on every training batch (its own frames, `teacher.timesteps` of them) and hands its
//!    output to the loss as constants.
//! 2. [`Objective::init_aux`](super::Objective::init_aux) — given the [`AuxShape`] probed from
//!    the freshly initialised model (one sample, one timestep, inference mode) and from the
//!    teacher, an [`AuxModule`] on the autodiff device. The loop trains it jointly with the
//!    model (a `Trainee { model, aux }` module: one optimizer updates both) and **drops it at
//!    the end**: the trained model has exactly the parameters and the forward cost of a
//!    baseline-trained one.
//!
//! The loss then receives both through [`LossExtras`] in
//! [`Objective::loss_with`](super::Objective::loss_with).
//!
//! [`save_model`] / [`load_model`] store a model's parameters (BN running statistics included)
//! as a tks checkpoint (safetensors, atomic write): how `tks train --ann --save PATH` writes a
//! teacher and BKD reads it (a run's `best.safetensors` works too).

use std::path::Path;

use burn::module::Module;
use burn::tensor::{Device, Tensor};

use super::bkd::BkdGenerator;
use super::tssd::TssdHead;
use crate::error::{ConfigError, TrainError};
use crate::train::checkpoint::{self, Checkpoint, CheckpointMeta};
use tks_core::model::{Model, ModelConfig, SnnOutput};

/// A trainable module owned by an objective, trained with the model and dropped at eval.
#[derive(Module, Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "one auxiliary module per run; burn modules cannot be boxed"
)]
pub enum AuxModule {
    /// TSSD's weak classifier on the intermediate stage.
    TssdHead(TssdHead),
    /// BKD's blurred-feature generation block.
    BkdGenerator(BkdGenerator),
}

/// Shapes an objective needs to build its [`AuxModule`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuxShape {
    /// The student's intermediate stage, one frame `[C, H, W]`.
    pub stage: [usize; 3],
    /// Number of output classes.
    pub classes: usize,
    /// The teacher's intermediate stage `[C, H, W]`, when there is a teacher.
    pub teacher_stage: Option<[usize; 3]>,
}

/// What the loop passes to [`Objective::loss_with`](super::Objective::loss_with) besides the
/// student's output.
#[derive(Debug, Clone, Copy, Default)]
pub struct LossExtras<'a> {
    /// The objective's auxiliary module (on the autodiff device, being trained).
    pub aux: Option<&'a AuxModule>,
    /// The teacher's output on this batch (logits and stage), constants on the autodiff device.
    pub teacher: Option<&'a SnnOutput>,
    /// The model's own output over the longer training window, from a second pass over the
    /// batch's recordings integrated into that many frames (TSSD on event data).
    pub long: Option<&'a SnnOutput>,
}

/// A frozen model whose outputs guide the student (BKD's ANN teacher).
#[derive(Debug)]
pub struct Teacher {
    /// The model, on the plain device, in inference mode.
    pub model: Model,
    /// Timesteps of the frames it is given (1 for an ANN on static images).
    pub timesteps: usize,
}

impl Teacher {
    /// Logits and stage for `frames` (on the teacher's plain device), copied to `device` as
    /// constants (no graph, no gradient).
    pub fn forward_to(&self, frames: Tensor<5>, device: &Device) -> SnnOutput {
        let out = self.model.forward_output(frames, true);
        SnnOutput {
            logits: Tensor::from_data(out.logits.into_data(), device),
            stage: out.stage.map(|s| Tensor::from_data(s.into_data(), device)),
        }
    }

    /// Its stage shape `[C, H, W]`, probed with one zero frame of shape `input`.
    pub fn stage_shape(&self, input: [usize; 3], device: &Device) -> Option<[usize; 3]> {
        stage_shape(&self.model, input, device)
    }
}

/// The stage shape `[C, H, W]` of `model` (any device), probed in inference mode with one zero
/// frame of shape `input` on the plain `device`. `None` if the model exposes no stage.
pub fn stage_shape(model: &Model, input: [usize; 3], device: &Device) -> Option<[usize; 3]> {
    let [c, h, w] = input;
    let probe = model.valid().to_device(device);
    let out = probe.forward_output(Tensor::zeros([1, 1, c, h, w], device), true);
    out.stage.map(|s| {
        let [_, _, c, h, w] = s.dims();
        [c, h, w]
    })
}

/// Writes `model`'s parameters (BN running statistics included) to `path` as a tks checkpoint
/// (safetensors, written atomically: temporary file, then rename; see
/// [`checkpoint`]), with `meta` (epochs, seed, configuration, history).
pub fn save_model(model: &Model, path: &Path, meta: &CheckpointMeta) -> Result<(), TrainError> {
    Ok(checkpoint::save(path, model, None, meta)?)
}

/// Builds `config` on `device` and loads the weights of the checkpoint at `path` (written by
/// [`save_model`] or by a run's checkpointing). Errors name `field` (e.g. `objective.teacher`)
/// and the path: a missing file, or one that does not fit the architecture.
pub fn load_model(
    config: &ModelConfig,
    path: &Path,
    device: &Device,
    field: &str,
) -> Result<Model, TrainError> {
    if !path.is_file() {
        return Err(ConfigError::invalid(field, path.display(), "no such file").into());
    }
    let fail = |e: checkpoint::CheckpointError| -> TrainError {
        ConfigError::invalid(field, path.display(), &format!("cannot load it: {e}")).into()
    };
    let ck = Checkpoint::load(path).map_err(fail)?;
    ck.apply_to(config.init(device)?).map_err(fail)
}
