//! The run configuration: one TOML file with `[model]`, `[train]` and `objective`, every field
//! defaulted so a recipe only states what differs. Unknown fields are errors.
//!
//! ```toml
//! objective = "baseline"
//! [model]
//! arch = "small_cnn"
//! input_size = 8
//! [model.neuron]
//! threshold = 0.5
//! [train]
//! epochs = 10
//! ```

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;
use crate::model::{ModelConfig, SmallCnnConfig};
use crate::neuron::NeuronConfig;
use crate::objective::{Baseline, Objective};
use crate::train::TrainConfig;

/// A whole run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunConfig {
    /// Objective name (`baseline`).
    pub objective: String,
    /// The network.
    pub model: ModelConfig,
    /// Optimisation.
    pub train: TrainConfig,
}

impl Default for RunConfig {
    /// The main job: a small spiking CNN on the embedded 8×8 digits, T = 4.
    fn default() -> Self {
        Self {
            objective: "baseline".into(),
            model: ModelConfig::SmallCnn(SmallCnnConfig {
                in_channels: 1,
                input_size: 8,
                channels: [32, 64],
                num_classes: 10,
                neuron: NeuronConfig { threshold: 0.5, ..Default::default() },
                ..Default::default()
            }),
            train: TrainConfig::default(),
        }
    }
}

impl RunConfig {
    /// Parses TOML text; `origin` names the file in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let config: RunConfig = toml::from_str(text).map_err(|e| ConfigError {
            field: origin.to_string(),
            value: String::new(),
            reason: e.to_string().trim().to_string(),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Reads and parses a TOML file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::invalid("--config", path.display(), &format!("cannot read: {e}"))
        })?;
        Self::from_toml(&text, &path.display().to_string())
    }

    /// Checks every part.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.train.validate()?;
        self.objective()?;
        match &self.model {
            ModelConfig::SmallCnn(c) => c.neuron.validate(),
        }
    }

    /// The objective named by `objective`.
    pub fn objective(&self) -> Result<Box<dyn Objective>, ConfigError> {
        objective_by_name(&self.objective)
    }

    /// The neuron configuration of the model, for flag overrides.
    pub fn neuron_mut(&mut self) -> &mut NeuronConfig {
        match &mut self.model {
            ModelConfig::SmallCnn(c) => &mut c.neuron,
        }
    }
}

/// Objective by name.
pub fn objective_by_name(name: &str) -> Result<Box<dyn Objective>, ConfigError> {
    match name {
        "baseline" => Ok(Box::new(Baseline)),
        other => Err(ConfigError::invalid("objective", other, "expected one of: baseline")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_round_trips_through_toml() {
        let c = RunConfig::default();
        let text = toml::to_string(&c).unwrap();
        assert_eq!(RunConfig::from_toml(&text, "x.toml").unwrap(), c);
    }

    #[test]
    fn errors_name_field_and_value() {
        let e = RunConfig::from_toml("[train]\nepochs = 0\n", "r.toml").unwrap_err().to_string();
        assert!(e.contains("train.epochs") && e.contains('0'), "{e}");
        let e = RunConfig::from_toml("[train]\nepoch = 3\n", "r.toml").unwrap_err().to_string();
        assert!(e.contains("r.toml") && e.contains("epoch"), "{e}");
        let e = RunConfig::from_toml("objective = \"nope\"\n", "r.toml").unwrap_err().to_string();
        assert!(e.contains("objective") && e.contains("nope"), "{e}");
        let e = RunConfig::from_toml("[model]\narch = \"small_cnn\"\n[model.neuron]\nthreshold = -2\n", "r.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("neuron.threshold") && e.contains("-2"), "{e}");
        let e = RunConfig::from_toml("[train]\nlr = \"fast\"\n", "r.toml").unwrap_err().to_string();
        assert!(e.contains("lr"), "{e}");
    }
}
