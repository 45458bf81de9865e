//! The model fits the data unless told otherwise: [`load_fitted`] loads a run's data and
//! resolves the model's `auto` dimensions (`in_channels`, `input_size`, `num_classes`) from it.
//!
//! Event frames whose size the architecture cannot take (N-MNIST's 34 × 34 for the small CNN's
//! two 2×2 pools, N-CARS's 120 × 100 for any square model) are resized to the nearest square
//! size it takes, by setting `[data] resize` — said in one note, and recorded in the run's
//! `config.toml` with the resolved dimensions, so `eval` and `--resume` see the same frames and
//! model. Static images are not resized: a size the architecture cannot take is an error that
//! names the architectures that can. An explicit dimension that disagrees with the data is an
//! error naming both values.

use crate::config::RunConfig;
use crate::error::{ConfigError, TrainError};
use tks_core::model::{Dim, ModelConfig};
use tks_data::Split;
use tks_data::source::{DataConfig, LoadError};

/// The data of a run, and what was changed to fit the model to it.
#[derive(Debug)]
pub struct Fitted {
    /// The loaded train/test split.
    pub split: Split,
    /// One line per change made (a resize), for the start-up output.
    pub notes: Vec<String>,
}

fn load(config: &RunConfig) -> Result<Split, TrainError> {
    config.load_data().map_err(|e| match e {
        LoadError::Config(c) => TrainError::Config(c),
        LoadError::Data(d) => TrainError::Data(d),
    })
}

/// Loads `config.data` and resolves every `auto` dimension of `config.model` from it (see the
/// module docs); `config` is updated in place (model dimensions, and `[data] resize` when event
/// frames had to be resized), so writing it out records the run as it ran.
pub fn load_fitted(config: &mut RunConfig) -> Result<Fitted, TrainError> {
    config.data.validate()?;
    let mut notes = Vec::new();
    let known = config.data.frame_shape();
    if let Some(shape) = known
        && let Some(note) = plan_resize(config, shape)?
    {
        notes.push(note);
    }
    let mut split = load(config)?;
    if known.is_none()
        && let Some(note) = plan_resize(config, split.train.frame_shape)?
    {
        // the sensor size was only known from the recordings: integrate them again, resized
        notes.push(note);
        split = load(config)?;
    }
    resolve(&mut config.model, &config.data, &split)?;
    Ok(Fitted { split, notes })
}

/// Resolves `model` from loaded data (no resizing): the frames and classes of `split.train`.
/// An error names the data source, the field and both values, and for a size the architecture
/// cannot take, the fix.
pub fn resolve(
    model: &mut ModelConfig,
    data: &DataConfig,
    split: &Split,
) -> Result<(), ConfigError> {
    let d = &split.train;
    let shape = d.frame_shape;
    model
        .resolve(shape, d.num_classes, &data.source)
        .map_err(|e| {
            if e.field != "model.input_size" || !model.dims().input_size.is_auto() {
                return e;
            }
            size_fix(e, model, data, shape)
        })
}

/// The `model.input_size` error of an `auto` size taken from data that is not resized, with
/// the exact fix.
fn size_fix(
    e: ConfigError,
    model: &ModelConfig,
    data: &DataConfig,
    shape: [usize; 3],
) -> ConfigError {
    let [_, h, w] = shape;
    let takes: Vec<&str> = ModelConfig::arch_names()
        .into_iter()
        .filter(|n| {
            ModelConfig::from_arch(n).is_ok_and(|m| h == w && m.input_size_error(h).is_none())
        })
        .collect();
    let mut fix = format!(
        "`{}` gives {h}×{w} frames and `{}` cannot take them ({})",
        data.source,
        model.arch(),
        e.reason
    );
    if data.is_events() {
        if let Some(s) = model.nearest_input_size(h.max(w)) {
            fix.push_str(&format!(": set [data] resize = {s}"));
        }
    } else if data.source.starts_with("folder")
        && let Some(s) = model.nearest_input_size(data.image_size)
    {
        fix.push_str(&format!(": set [data] image_size = {s}"));
    } else if !takes.is_empty() {
        fix.push_str(&format!(
            "; these images are not resized: choose an architecture that takes {h}×{w} \
             (`--arch {}`)",
            takes.join("`, `--arch ")
        ));
    }
    ConfigError::invalid("model.input_size", "\"auto\"", &fix)
}

/// When the model's input size is `auto`, the data gives event frames of `[C, H, W]` that the
/// architecture cannot take (or that are not square) and `[data] resize` is unset: sets
/// `resize` to the nearest size the architecture takes and returns the note saying so.
fn plan_resize(config: &mut RunConfig, shape: [usize; 3]) -> Result<Option<String>, ConfigError> {
    let [_, h, w] = shape;
    let model = &config.model;
    if model.dims().input_size != Dim::Auto || !config.data.is_events() || config.data.resize != 0 {
        return Ok(None);
    }
    let side = h.max(w);
    let why = match model.input_size_error(side) {
        Some(e) => format!("its input size {}", e.reason),
        None if h == w => return Ok(None),
        None => "it takes square frames".to_string(),
    };
    let Some(target) = model.nearest_input_size(side) else {
        return Ok(None);
    };
    config.data.resize = target;
    config.data.validate()?;
    Ok(Some(format!(
        "tks: `{}` gives {h}×{w} frames and `{}` cannot take them ({why}): resizing to \
         {target}×{target} ([data] resize = {target}; set [data] resize or [model] input_size \
         to choose)",
        config.data.source,
        config.model.arch(),
    )))
}

/// `model` with its `auto` dimensions taken from `data` (borrowed when already resolved): what
/// the training loop builds when a library caller passes an unresolved configuration.
pub fn resolved_for<'a>(
    model: &'a ModelConfig,
    data: &tks_data::Dataset,
) -> Result<std::borrow::Cow<'a, ModelConfig>, ConfigError> {
    if model.is_resolved() {
        return Ok(std::borrow::Cow::Borrowed(model));
    }
    let mut m = model.clone();
    m.resolve(data.frame_shape, data.num_classes, &data.name)?;
    Ok(std::borrow::Cow::Owned(m))
}
