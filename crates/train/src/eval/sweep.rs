//! Temporal generalisation (the paper's Fig. 3): accuracy of one trained model evaluated at every
//! test T from 1 to 2·T_train, and of models trained and tested at equal T.

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use super::{EvalReport, evaluate};
use tks_core::layer::Encoder;
use tks_core::model::Model;
use tks_data::Dataset;

/// One test T.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepPoint {
    /// Timesteps at test time.
    pub timesteps: usize,
    /// Accuracy of the output averaged over those timesteps.
    pub accuracy: f64,
    /// The whole evaluation.
    pub report: EvalReport,
}

/// What a shorter test T means for event data (for static images the two coincide: the
/// encoder simply runs fewer steps).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SweepMode {
    /// Integrate all events of a recording into t frames (each frame T/t times denser) — what
    /// the official TKS code does (BrainCog's loaders bin into `--step` frames).
    #[default]
    Rebin,
    /// Keep the first t of the T frames the model was trained on (lower latency, the same frame
    /// statistics; sees only the first t/T of the recording).
    Truncate,
}

impl SweepMode {
    /// Its name in files and flags.
    pub fn name(self) -> &'static str {
        match self {
            SweepMode::Rebin => "rebin",
            SweepMode::Truncate => "truncate",
        }
    }
}

/// `sweep.json`: accuracy vs test T, and (optionally) train-and-test at equal T.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepReport {
    /// T the model was trained with.
    pub train_timesteps: usize,
    /// How event data were shortened (`rebin` in files written before the mode existed).
    #[serde(default)]
    pub mode: SweepMode,
    /// One point per test T.
    pub test_t: Vec<SweepPoint>,
    /// Models trained and tested at equal T (`--train-equal`), one point per T.
    #[serde(default)]
    pub train_equal: Vec<SweepPoint>,
}

/// Evaluates `model` at every T in `ts` (each a separate run of the network for T steps); errors
/// as [`evaluate`].
pub fn sweep_test_t(
    model: &Model,
    data: &Dataset,
    ts: &[usize],
    batch_size: usize,
    encoder: Encoder,
    device: &Device,
) -> Result<Vec<SweepPoint>, crate::error::DataError> {
    ts.iter()
        .map(|&t| {
            let report = evaluate(model, data, t, batch_size, encoder, device)?;
            Ok(SweepPoint {
                timesteps: t,
                accuracy: report.accuracy,
                report,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RunConfig;
    use burn::module::{Module, ModuleMapper, Param};
    use burn::tensor::Tensor;
    use tks_data::SampleKind;

    struct Zero;
    impl ModuleMapper for Zero {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            param.map(|t| t.zeros_like())
        }
    }

    #[test]
    fn zero_model_predicts_class_zero_at_every_t() {
        // All weights zero ⇒ every logit is 0 ⇒ argmax = class 0 at every t; accuracy equals
        // the share of label-0 samples (3 of 4), whatever T.
        let device = Device::flex();
        let mut cfg = RunConfig::default();
        cfg.model.resolve([1, 8, 8], 10, "digits").unwrap();
        let model = cfg.model.init(&device).unwrap().map(&mut Zero);
        let data = Dataset::new(
            "hand",
            SampleKind::Static,
            [1, 8, 8],
            10,
            vec![0.5; 4 * 64],
            vec![0, 0, 3, 0],
        )
        .unwrap();
        let pts = sweep_test_t(&model, &data, &[1, 2, 5], 3, Encoder::Direct, &device).unwrap();
        assert_eq!(pts.len(), 3);
        for (p, t) in pts.iter().zip([1, 2, 5]) {
            assert_eq!(p.timesteps, t);
            assert_eq!(p.accuracy, 0.75);
            assert_eq!(p.report.per_timestep, vec![0.75; t]);
        }
    }
}
