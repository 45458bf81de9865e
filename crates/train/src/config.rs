//! The run configuration: one TOML file with `[objective]`, `[model]` and `[train]`, every field
//! defaulted so a recipe only states what differs. Unknown fields are errors.
//!
//! ```toml
//! [objective]             # or just: objective = "tks"
//! name = "tks"
//! temperature = 3.0
//! alpha = 0.7
//! [model]
//! arch = "small_cnn"
//! input_size = 8          # in_channels, input_size, num_classes: a number or "auto" (the
//!                         # default: from the data, see `fit`)
//! [model.neuron]
//! threshold = 0.5
//! [train]
//! epochs = 10
//! ```

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;
use crate::objective::{Objective, ObjectiveConfig};
use crate::train::TrainConfig;
use tks_core::kernels::KernelPolicy;
use tks_core::model::{Dim, ModelConfig, SmallCnnConfig};
use tks_core::neuron::NeuronConfig;
use tks_data::source::DataConfig;

/// A whole run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunConfig {
    /// The objective and its parameters (`[objective]`, or a bare name).
    pub objective: ObjectiveConfig,
    /// The network.
    pub model: ModelConfig,
    /// Optimisation.
    pub train: TrainConfig,
    /// The data source, integration and augmentation (`[data]`, default: embedded digits).
    pub data: DataConfig,
    /// Which kernels run (`[kernels]`: fused or reference paths, convolution mode); recorded in
    /// every run's `config.toml`.
    pub kernels: KernelPolicy,
}

impl Default for RunConfig {
    /// The main job: a small spiking CNN on the embedded 8×8 digits, T = 4.
    fn default() -> Self {
        Self {
            objective: ObjectiveConfig::default(),
            // `auto` dimensions: 1 × 8 × 8 and 10 classes on the digits, whatever the data
            // gives on another source ([`crate::fit`])
            model: ModelConfig::SmallCnn(SmallCnnConfig {
                in_channels: Dim::Auto,
                input_size: Dim::Auto,
                channels: [32, 64],
                num_classes: Dim::Auto,
                neuron: NeuronConfig {
                    threshold: 0.5,
                    ..Default::default()
                },
                ..Default::default()
            }),
            train: TrainConfig::default(),
            data: DataConfig::default(),
            kernels: KernelPolicy::default(),
        }
    }
}

impl RunConfig {
    /// Parses TOML text; `origin` names the file in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let config: RunConfig = parse_toml(text, origin)?;
        config.validate()?;
        Ok(config)
    }

    /// Reads and parses a TOML file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Self::from_toml(&read_text(path)?, &path.display().to_string())
    }

    /// Checks every part.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.train.validate()?;
        self.data.validate()?;
        self.kernels.validate()?;
        self.objective()?;
        self.model.validate()
    }

    /// The run's data: every split integrated into `train.timesteps` frames. An objective
    /// training over more timesteps than it is tested at (TSSD's longer implicit teacher) on
    /// event data also gets the training recordings integrated into that many frames (the same
    /// recordings and validation split, re-binned): as `train_long` beside the `T`-frame
    /// training set when it runs a second pass ([`Objective::rebins_long_window`]), else in
    /// place of it.
    ///
    /// [`Objective::rebins_long_window`]: crate::objective::Objective::rebins_long_window
    pub fn load_data(&self) -> Result<tks_data::Split, tks_data::source::LoadError> {
        let t = self.train.timesteps;
        let mut split = tks_data::source::load(&self.data, t)?;
        let objective = self.objective().ok();
        let train_t = objective
            .as_ref()
            .map_or(t, |o| o.train_timesteps(t))
            .max(1);
        if self.data.is_events() && train_t != t {
            let long = tks_data::source::load(&self.data, train_t)?.train;
            if objective.is_some_and(|o| o.rebins_long_window()) {
                split.train_long = Some(long);
            } else {
                split.train = long;
            }
        }
        Ok(split)
    }

    /// The objective configured by `[objective]`.
    pub fn objective(&self) -> Result<Box<dyn Objective>, ConfigError> {
        self.objective.build()
    }

    /// Switches the model to ANN mode: every neuron becomes a ReLU (see [`ann_model`]).
    pub fn set_ann(&mut self) {
        self.model = ann_model(&self.model);
    }

    /// The neuron configuration of the model, for flag overrides.
    pub fn neuron_mut(&mut self) -> &mut NeuronConfig {
        self.model.neuron_mut()
    }
}

/// Deserialises TOML text; a syntax or type error names `origin` (the file) and the field.
pub(crate) fn parse_toml<T: serde::de::DeserializeOwned>(
    text: &str,
    origin: &str,
) -> Result<T, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError {
        field: origin.to_string(),
        value: String::new(),
        reason: e.to_string().trim().to_string(),
    })
}

/// A configuration file's text; an unreadable file is an error naming it.
pub(crate) fn read_text(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| {
        ConfigError::invalid(
            &path.display().to_string(),
            "(unreadable)",
            &format!("cannot read: {e}"),
        )
    })
}

/// The same architecture with every neuron replaced by ReLU (the ANN mode: `tks train --ann`,
/// BKD's teacher).
pub fn ann_model(model: &ModelConfig) -> ModelConfig {
    let mut model = model.clone();
    model.neuron_mut().kind = tks_core::neuron::NeuronKind::Relu;
    model
}

/// Objective by name (`baseline`, `ls`, `tet`, `tks`) with default parameters.
pub fn objective_by_name(name: &str) -> Result<Box<dyn Objective>, ConfigError> {
    ObjectiveConfig::from_name(name)?.build()
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
        let e = RunConfig::from_toml("[train]\nepochs = 0\n", "r.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("train.epochs") && e.contains('0'), "{e}");
        let e = RunConfig::from_toml("[train]\nepoch = 3\n", "r.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("r.toml") && e.contains("epoch"), "{e}");
        let e = RunConfig::from_toml("objective = \"nope\"\n", "r.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("objective") && e.contains("nope"), "{e}");
        let e = RunConfig::from_toml(
            "[model]\narch = \"small_cnn\"\n[model.neuron]\nthreshold = -2\n",
            "r.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("neuron.threshold") && e.contains("-2"), "{e}");
        let e = RunConfig::from_toml("[train]\nlr = \"fast\"\n", "r.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("lr"), "{e}");
    }

    #[test]
    fn objective_table_and_shorthand() {
        use crate::objective::{Baseline, LabelSmoothing, Tet, Tks};
        let c = RunConfig::from_toml(
            "[objective]\nname = \"tks\"\ntemperature = 5.0\nalpha = 0.3\ndetach_teacher = true\n",
            "r.toml",
        )
        .unwrap();
        let want = Tks {
            temperature: 5.0,
            alpha: 0.3,
            detach_teacher: true,
            ..Tks::default()
        };
        assert_eq!(c.objective, ObjectiveConfig::Tks(want));
        assert_eq!(c.objective().unwrap().name(), "tks");
        let c = RunConfig::from_toml("objective = \"tet\"\n", "r.toml").unwrap();
        assert_eq!(c.objective, ObjectiveConfig::Tet(Tet::default()));
        let c =
            RunConfig::from_toml("[objective]\nname = \"ls\"\nepsilon = 0.2\n", "r.toml").unwrap();
        assert_eq!(
            c.objective,
            ObjectiveConfig::Ls(LabelSmoothing { epsilon: 0.2 })
        );
        assert_eq!(
            RunConfig::from_toml("", "r.toml").unwrap().objective,
            ObjectiveConfig::Baseline(Baseline {})
        );
        for name in ["baseline", "ls", "tet", "tks"] {
            assert_eq!(objective_by_name(name).unwrap().name(), name);
            let c = RunConfig {
                objective: ObjectiveConfig::from_name(name).unwrap(),
                ..RunConfig::default()
            };
            let text = toml::to_string(&c).unwrap();
            assert!(
                text.contains("[objective]") && text.contains(&format!("name = \"{name}\"")),
                "{text}"
            );
            assert_eq!(RunConfig::from_toml(&text, "x.toml").unwrap(), c, "{text}");
        }
    }

    #[test]
    fn objective_errors_name_field_and_value() {
        let cases = [
            ("[objective]\nname = \"nope\"\n", &["nope"][..]),
            (
                "[objective]\nname = \"tks\"\ntemprature = 3.0\n",
                &["temprature"][..],
            ),
            (
                "[objective]\nname = \"baseline\"\nalpha = 0.5\n",
                &["alpha"][..],
            ),
            (
                "[objective]\nname = \"tet\"\nepsilon = 0.5\n",
                &["epsilon"][..],
            ),
            (
                "[objective]\nname = \"tks\"\ntemperature = -1.0\n",
                &["objective.temperature", "-1"][..],
            ),
            (
                "[objective]\nname = \"tks\"\nalpha = 1.5\n",
                &["objective.alpha", "1.5"][..],
            ),
            (
                "[objective]\nname = \"ls\"\nepsilon = 1.0\n",
                &["objective.epsilon", "1"][..],
            ),
            (
                "[objective]\nname = \"tet\"\nlambda = -0.1\n",
                &["objective.lambda", "-0.1"][..],
            ),
            (
                "[objective]\nname = \"tks\"\nalpha = \"high\"\n",
                &["objective.alpha", "high"][..],
            ),
            ("[objective]\ntemperature = 3.0\n", &["name"][..]),
        ];
        for (text, needles) in cases {
            let e = RunConfig::from_toml(text, "r.toml")
                .unwrap_err()
                .to_string();
            eprintln!("{text:?} → {e}");
            for n in needles {
                assert!(e.contains(n), "{text:?} → {e}");
            }
        }
        let e = objective_by_name("nope").err().unwrap().to_string();
        assert!(e.contains("objective") && e.contains("nope"), "{e}");
    }
}
