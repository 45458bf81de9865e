//! Temporal Efficient Training (Deng, Chen, Yu, Gu & Zhang, "Temporal Efficient Training of
//! Spiking Neural Network via Gradient Re-weighting", ICLR 2022; official `TET_loss`):
//!
//! ```text
//! L = (1 − λ) · (1/T) Σ_t CE(o_t, y) + λ · MSE(o, φ)
//! ```
//!
//! CE is the mean-over-batch cross-entropy of each timestep's own logits, and the MSE regulariser
//! (pulling every logit towards the constant φ) is averaged over all `T·B·C` elements.
//! Defaults: λ = 1e-3, φ = 1.0 (`means` in the official code). Gradient:
//! `∂L/∂o[t,b,c] = (1−λ)(softmax(o_tb)_c − onehot_c)/(T·B) + 2λ(o_tbc − φ)/(T·B·C)`.

use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor};
use serde::{Deserialize, Serialize};

use super::{Objective, Progress};
use crate::error::{ConfigError, check_range};
use tks_core::model::SnnOutput;

/// The TET loss (see the module docs). Also the `[objective]` table of `name = "tet"`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Tet {
    /// Weight λ of the MSE regulariser, in `[0, 1]`.
    pub lambda: f64,
    /// Target φ of the MSE regulariser (`means` in the official code).
    pub phi: f64,
}

impl Default for Tet {
    fn default() -> Self {
        Self {
            lambda: 1e-3,
            phi: 1.0,
        }
    }
}

impl Tet {
    /// Checks λ and φ, naming the fields as `objective.lambda` / `objective.phi`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_range("objective.lambda", self.lambda, 0.0, 1.0)?;
        if !self.phi.is_finite() {
            return Err(ConfigError::invalid(
                "objective.phi",
                self.phi,
                "must be finite",
            ));
        }
        Ok(())
    }
}

/// `(1/T) Σ_t CE(o_t, y)`: mean over time and batch of the per-timestep cross-entropy of
/// `logits [T, B, C]` against `targets [B]`.
pub fn per_timestep_cross_entropy(logits: Tensor<3>, targets: Tensor<1, Int>) -> Tensor<1> {
    let [t, b, c] = logits.dims();
    let one_hot: Tensor<3> = targets
        .one_hot::<2>(c)
        .float()
        .unsqueeze_dim::<3>(0)
        .expand([t, b, c]);
    (log_softmax(logits, 2) * one_hot)
        .sum()
        .neg()
        .div_scalar((t * b) as f64)
}

impl Objective for Tet {
    fn name(&self) -> &'static str {
        "tet"
    }

    fn loss(&self, output: &SnnOutput, targets: Tensor<1, Int>, _progress: Progress) -> Tensor<1> {
        let logits = output.logits.clone();
        let ce = per_timestep_cross_entropy(logits.clone(), targets);
        let mse = logits.sub_scalar(self.phi).powi_scalar(2).mean();
        ce.mul_scalar(1.0 - self.lambda) + mse.mul_scalar(self.lambda)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objective::{Baseline, cross_entropy};
    use burn::tensor::{Device, TensorData};

    const T: usize = 2;
    const B: usize = 2;
    const C: usize = 3;
    const LOGITS: [f32; 12] = [
        1.0, -0.5, 0.3, 0.2, 2.0, -1.0, 0.4, 0.1, 0.9, -0.3, 1.1, 0.0,
    ];

    fn logits(device: &Device) -> Tensor<3> {
        Tensor::from_data(TensorData::new(LOGITS.to_vec(), [T, B, C]), device)
    }

    fn targets(device: &Device) -> Tensor<1, Int> {
        Tensor::from_data(TensorData::new(vec![0i64, 2], [B]), device)
    }

    fn vals<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.to_data().try_to_vec::<f32>().unwrap()
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
    fn lambda_zero_is_mean_of_per_step_ce() {
        let device = Device::flex();
        let l = logits(&device);
        let out = SnnOutput {
            logits: l.clone(),
            stage: None,
        };
        let tet = vals(
            Tet {
                lambda: 0.0,
                phi: 1.0,
            }
            .loss(&out, targets(&device), progress()),
        )[0];
        let per_step: f32 = (0..T)
            .map(|t| {
                let lt = l.clone().narrow(0, t, 1).squeeze_dim::<2>(0);
                vals(cross_entropy(lt, targets(&device)))[0]
            })
            .sum::<f32>()
            / T as f32;
        assert!((tet - per_step).abs() < 1e-6, "{tet} vs {per_step}");
        // With T = 1 (single step) it also equals the baseline.
        let one = SnnOutput {
            logits: l.narrow(0, 0, 1),
            stage: None,
        };
        let a = vals(
            Tet {
                lambda: 0.0,
                phi: 1.0,
            }
            .loss(&one, targets(&device), progress()),
        )[0];
        let b = vals(Baseline {}.loss(&one, targets(&device), progress()))[0];
        assert!((a - b).abs() < 1e-6);
    }

    #[test]
    fn lambda_one_is_mse_and_gradient_matches_closed_form() {
        let device = Device::flex().autodiff();
        let l = logits(&device).require_grad();
        let out = SnnOutput {
            logits: l.clone(),
            stage: None,
        };
        let lambda = 0.25;
        let phi = 0.5;
        let loss = Tet { lambda, phi }.loss(&out, targets(&device), progress());
        let grads = loss.backward();
        let g = vals(l.grad(&grads).unwrap());
        let y = [0usize, 2];
        for t in 0..T {
            for b in 0..B {
                let row = &LOGITS[(t * B + b) * C..(t * B + b + 1) * C];
                let z: f64 = row.iter().map(|&v| (v as f64).exp()).sum();
                for c in 0..C {
                    let sm = (row[c] as f64).exp() / z;
                    let oh = if c == y[b] { 1.0 } else { 0.0 };
                    let want = (1.0 - lambda) * (sm - oh) / (T * B) as f64
                        + 2.0 * lambda * (row[c] as f64 - phi) / (T * B * C) as f64;
                    let got = g[(t * B + b) * C + c] as f64;
                    assert!((got - want).abs() < 1e-6, "[{t},{b},{c}] {got} vs {want}");
                }
            }
        }
    }

    #[test]
    fn validate_names_field() {
        assert!(Tet::default().validate().is_ok());
        let e = Tet {
            lambda: 2.0,
            phi: 1.0,
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(e.contains("objective.lambda") && e.contains('2'), "{e}");
        let e = Tet {
            lambda: 0.1,
            phi: f64::INFINITY,
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(e.contains("objective.phi"), "{e}");
    }
}
