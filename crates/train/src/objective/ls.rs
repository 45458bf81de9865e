//! Label smoothing on the time-averaged logits (Szegedy et al., "Rethinking the Inception
//! Architecture for Computer Vision", CVPR 2016):
//!
//! ```text
//! m = mean_t o_t                         [B, C]
//! target_b = (1 − ε)·onehot(y_b) + ε/C
//! L = −(1/B) Σ_b Σ_c target_bc · log softmax(m_b)_c
//! ```
//!
//! ε = 0 is exactly the [`Baseline`](super::Baseline) objective; ε defaults to 0.1.

use burn::tensor::{Int, Tensor};
use serde::{Deserialize, Serialize};

use super::{Objective, Progress, mean_over_time, soft_cross_entropy};
use crate::error::{ConfigError, check_range};
use tks_core::model::SnnOutput;

/// Label-smoothed cross-entropy of the time-averaged logits (see the module docs). Also the
/// `[objective]` table of `name = "ls"`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LabelSmoothing {
    /// Smoothing ε in `[0, 1)`: the mass spread uniformly over all classes.
    pub epsilon: f64,
}

impl Default for LabelSmoothing {
    fn default() -> Self {
        Self { epsilon: 0.1 }
    }
}

impl LabelSmoothing {
    /// Checks ε, naming the field as `objective.epsilon`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_range("objective.epsilon", self.epsilon, 0.0, 1.0)?;
        if self.epsilon >= 1.0 {
            return Err(ConfigError::invalid(
                "objective.epsilon",
                self.epsilon,
                "must be < 1",
            ));
        }
        Ok(())
    }

    /// The smoothed target `(1 − ε)·onehot + ε/C`, `[B, C]`.
    pub fn target(&self, targets: Tensor<1, Int>, classes: usize) -> Tensor<2> {
        let one_hot: Tensor<2> = targets.one_hot::<2>(classes).float();
        one_hot
            .mul_scalar(1.0 - self.epsilon)
            .add_scalar(self.epsilon / classes as f64)
    }
}

impl Objective for LabelSmoothing {
    fn name(&self) -> &'static str {
        "ls"
    }

    fn loss(&self, output: &SnnOutput, targets: Tensor<1, Int>, _progress: Progress) -> Tensor<1> {
        let mean = mean_over_time(output.logits.clone());
        let classes = mean.dims()[1];
        soft_cross_entropy(mean, self.target(targets, classes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objective::Baseline;
    use burn::tensor::{Device, TensorData};

    fn output(device: &Device) -> SnnOutput {
        // [T=2, B=2, C=3]
        let data = vec![
            1.0f32, -0.5, 0.3, 0.2, 2.0, -1.0, 0.4, 0.1, 0.9, -0.3, 1.1, 0.0,
        ];
        SnnOutput {
            logits: Tensor::from_data(TensorData::new(data, [2, 2, 3]), device),
            stage: None,
        }
    }

    fn targets(device: &Device) -> Tensor<1, Int> {
        Tensor::from_data(TensorData::new(vec![0i64, 2], [2]), device)
    }

    fn scalar(t: Tensor<1>) -> f32 {
        t.to_data().try_to_vec::<f32>().unwrap()[0]
    }

    fn progress() -> Progress {
        Progress {
            epoch: 0,
            epochs: 1,
            step: 0,
            steps_per_epoch: 1,
        }
    }

    #[test]
    fn epsilon_zero_is_baseline() {
        let device = Device::flex();
        let out = output(&device);
        let ls = scalar(LabelSmoothing { epsilon: 0.0 }.loss(&out, targets(&device), progress()));
        let base = scalar(Baseline {}.loss(&out, targets(&device), progress()));
        assert!((ls - base).abs() < 1e-6, "{ls} vs {base}");
    }

    #[test]
    fn matches_hand_computation() {
        let device = Device::flex();
        let eps = 0.1;
        let got = scalar(LabelSmoothing { epsilon: eps }.loss(
            &output(&device),
            targets(&device),
            progress(),
        ));
        // m = mean over T, by hand
        let m = [[0.7f64, -0.2, 0.6], [-0.05, 1.55, -0.5]];
        let y = [0usize, 2];
        let mut want = 0.0;
        for (row, &yb) in m.iter().zip(&y) {
            let lse = row.iter().map(|v| v.exp()).sum::<f64>().ln();
            for (c, &v) in row.iter().enumerate() {
                let p = if c == yb { 1.0 - eps } else { 0.0 } + eps / 3.0;
                want -= p * (v - lse);
            }
        }
        want /= 2.0;
        assert!((got as f64 - want).abs() < 1e-5, "{got} vs {want}");
    }

    #[test]
    fn target_rows_sum_to_one() {
        let device = Device::flex();
        let t = LabelSmoothing { epsilon: 0.3 }.target(targets(&device), 4);
        let v = t.to_data().try_to_vec::<f32>().unwrap();
        assert!(
            (v[0] - (0.7 + 0.075)).abs() < 1e-6 && (v[1] - 0.075).abs() < 1e-6,
            "{v:?}"
        );
        for row in v.chunks(4) {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        }
    }

    #[test]
    fn validate_rejects_bad_epsilon() {
        assert!(LabelSmoothing::default().validate().is_ok());
        for bad in [-0.1, 1.0, f64::NAN] {
            let e = LabelSmoothing { epsilon: bad }
                .validate()
                .unwrap_err()
                .to_string();
            assert!(e.contains("objective.epsilon"), "{e}");
        }
    }
}
