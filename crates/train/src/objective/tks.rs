//! Temporal Knowledge Sharing (Dong, Zhao & Zeng, "Temporal Knowledge Sharing enable Spiking
//! Neural Network Learning from Past and Future", IEEE TAI 2024, arXiv 2304.06540), following the
//! official code (`Brain-Cog-Lab/TKS`: `metarightsltet`, `Custom_CrossEntropy_PSKD`,
//! `current_alpha`). With per-timestep logits `o [T, B, C]` and labels `y [B]`:
//!
//! ```text
//! mask[t,b]   = [argmax_c o[t,b,c] == y_b]                 (non-differentiable)
//! teacher_b   = Σ_t mask[t,b] · o_tb                       a SUM; all-zero row if no t is correct
//! p_b         = softmax(teacher_b / τ)                     (uniform for an all-zero teacher)
//! soft_t      = τ² · (1/B) Σ_b Σ_c −p_bc · log softmax(o_tb)_c
//! L1 = CE(mean_t o_t, y),   L2 = (1/T) Σ_t soft_t
//! L  = a·L1 + (1 − a)·L2,   a = 1 − min(progress, 1)·α,   progress = epoch / epochs
//! ```
//!
//! Quirks kept from the official code (defaults): the student logits are **not** divided by τ
//! (`student_temperature = true` gives the paper's equation form `softmax(o_tb / τ)`), and the
//! teacher is **not** detached, so gradients also flow through the teacher
//! (`detach_teacher = true` stops them). Everything is plain tensor ops, so autodiff yields the
//! gradients; only the mask is computed on detached values.
//!
//! Paper settings: τ = 3 and α = 0.7 on static images (the defaults, [`Tks::static_images`]),
//! τ = 1 on ImageNet ([`Tks::imagenet`]), τ = 5 and α = 0.3 on event data ([`Tks::event_data`]).

use burn::tensor::activation::{log_softmax, softmax};
use burn::tensor::{Int, Tensor};
use serde::{Deserialize, Serialize};

use super::{Objective, Progress, cross_entropy, mean_over_time};
use crate::error::{ConfigError, check_positive, check_range};
use tks_core::model::SnnOutput;

/// The TKS loss (see the module docs). Also the `[objective]` table of `name = "tks"`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Tks {
    /// Temperature τ of the teacher softmax (and the τ² factor), > 0.
    pub temperature: f64,
    /// Final weight of the knowledge-sharing term, α in `[0, 1]`: the CE weight ramps from 1
    /// down to `1 − α`.
    pub alpha: f64,
    /// Stop gradients through the teacher (the official code does not).
    pub detach_teacher: bool,
    /// Divide the student logits by τ as well (the paper's equation; the official code does not).
    pub student_temperature: bool,
    /// Advance the schedule every step (`step_fraction`) instead of once per epoch.
    pub per_step: bool,
}

impl Default for Tks {
    fn default() -> Self {
        Self::static_images()
    }
}

/// The pieces of the TKS loss for one batch, for inspection and tests.
#[derive(Debug, Clone)]
pub struct TksParts {
    /// `[T, B]`, 1.0 where timestep `t` predicts sample `b`'s label, else 0.0.
    pub mask: Tensor<2>,
    /// `[B, C]`, the sum of the correct timesteps' logits (zero row if none).
    pub teacher: Tensor<2>,
    /// `CE(mean_t o_t, y)`.
    pub loss1: Tensor<1>,
    /// `(1/T) Σ_t soft_t`, the knowledge-sharing term.
    pub loss2: Tensor<1>,
}

impl Tks {
    /// Static images (CIFAR, digits): τ = 3, α = 0.7.
    pub fn static_images() -> Self {
        Self {
            temperature: 3.0,
            alpha: 0.7,
            detach_teacher: false,
            student_temperature: false,
            per_step: false,
        }
    }

    /// ImageNet: τ = 1, α = 0.7.
    pub fn imagenet() -> Self {
        Self {
            temperature: 1.0,
            ..Self::static_images()
        }
    }

    /// Event data (DVS): τ = 5, α = 0.3.
    pub fn event_data() -> Self {
        Self {
            temperature: 5.0,
            alpha: 0.3,
            ..Self::static_images()
        }
    }

    /// Checks τ and α, naming the fields as `objective.temperature` / `objective.alpha`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_positive("objective.temperature", self.temperature)?;
        check_range("objective.alpha", self.alpha, 0.0, 1.0)
    }

    /// The CE weight `a` at `progress` (epoch- or step-based, per `per_step`).
    pub fn ce_weight(&self, progress: Progress) -> f64 {
        let fraction = if self.per_step {
            progress.step_fraction()
        } else {
            progress.epoch_fraction()
        };
        ce_weight(fraction, self.alpha)
    }

    /// Mask, teacher and both loss terms of `logits [T, B, C]` against `targets [B]`.
    pub fn parts(&self, logits: Tensor<3>, targets: Tensor<1, Int>) -> TksParts {
        let [t, b, c] = logits.dims();
        let tau = self.temperature;
        // mask[t, b] = argmax == y (ties: first index), computed without the graph.
        let predicted = logits.clone().detach().argmax(2); // [T, B, 1]
        let labels = targets.clone().reshape([1, b, 1]).expand([t, b, 1]);
        let mask3: Tensor<3> = predicted.equal(labels).float(); // [T, B, 1]
        let source = if self.detach_teacher {
            logits.clone().detach()
        } else {
            logits.clone()
        };
        let teacher: Tensor<2> = (source * mask3.clone().expand([t, b, c]))
            .sum_dim(0)
            .squeeze_dim(0);
        let p = softmax(teacher.clone().div_scalar(tau), 1); // [B, C]
        let student = if self.student_temperature {
            logits.clone().div_scalar(tau)
        } else {
            logits.clone()
        };
        let log_q = log_softmax(student, 2); // [T, B, C]
        let loss2 = (log_q * p.unsqueeze_dim::<3>(0).expand([t, b, c]))
            .sum()
            .neg()
            .mul_scalar(tau * tau / (t * b) as f64);
        let loss1 = cross_entropy(mean_over_time(logits), targets);
        TksParts {
            mask: mask3.squeeze_dim(2),
            teacher,
            loss1,
            loss2,
        }
    }
}

/// The CE weight of the TKS schedule: `a = 1 − min(fraction, 1)·α`, so `a` ramps from 1 down to
/// `1 − α` and stays there (official `current_alpha`; epoch 10/100, α 0.7 → 0.93).
pub fn ce_weight(fraction: f64, alpha: f64) -> f64 {
    1.0 - fraction.clamp(0.0, 1.0) * alpha
}

impl Objective for Tks {
    fn name(&self) -> &'static str {
        "tks"
    }

    fn loss(&self, output: &SnnOutput, targets: Tensor<1, Int>, progress: Progress) -> Tensor<1> {
        let a = self.ce_weight(progress);
        let parts = self.parts(output.logits.clone(), targets);
        parts.loss1.mul_scalar(a) + parts.loss2.mul_scalar(1.0 - a)
    }
}

#[cfg(test)]
#[allow(clippy::needless_range_loop)] // the reference maths reads best as [t, b, c] loops
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    const T: usize = 3;
    const B: usize = 2;
    const C: usize = 3;
    // sample 0 (label 0): argmax 1, 2, 1 → never correct
    // sample 1 (label 2): argmax 2, 0, 2 → correct at t = 0 and t = 2
    #[rustfmt::skip]
    const LOGITS: [f32; 18] = [
        0.1, 1.0, -0.2,   0.3, -0.4, 1.2,
        -0.5, 0.2, 0.9,   1.5, 0.2, 0.1,
        0.0, 0.8, 0.4,    -0.1, 0.3, 0.7,
    ];
    const Y: [usize; B] = [0, 2];

    fn logits(device: &Device) -> Tensor<3> {
        Tensor::from_data(TensorData::new(LOGITS.to_vec(), [T, B, C]), device)
    }

    fn targets(device: &Device) -> Tensor<1, Int> {
        Tensor::from_data(
            TensorData::new(Y.iter().map(|&y| y as i64).collect::<Vec<_>>(), [B]),
            device,
        )
    }

    fn vals<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.to_data().try_to_vec::<f32>().unwrap()
    }

    fn o(t: usize, b: usize, c: usize) -> f64 {
        LOGITS[(t * B + b) * C + c] as f64
    }

    fn log_softmax_row(row: &[f64]) -> Vec<f64> {
        let lse = row.iter().map(|v| v.exp()).sum::<f64>().ln();
        row.iter().map(|v| v - lse).collect()
    }

    /// The loss by hand in f64, the official form.
    fn reference(tau: f64, a: f64, student_tau: bool) -> (f64, f64) {
        let mut loss1 = 0.0;
        let mut loss2 = 0.0;
        for b in 0..B {
            let mean: Vec<f64> = (0..C)
                .map(|c| (0..T).map(|t| o(t, b, c)).sum::<f64>() / T as f64)
                .collect();
            loss1 -= log_softmax_row(&mean)[Y[b]] / B as f64;
            let mut teacher = [0.0; C];
            for t in 0..T {
                let row: Vec<f64> = (0..C).map(|c| o(t, b, c)).collect();
                let arg = (0..C).fold(0, |m, c| if row[c] > row[m] { c } else { m });
                if arg == Y[b] {
                    for c in 0..C {
                        teacher[c] += row[c];
                    }
                }
            }
            let p: Vec<f64> = log_softmax_row(&teacher.map(|v| v / tau))
                .iter()
                .map(|v| v.exp())
                .collect();
            for t in 0..T {
                let row: Vec<f64> = (0..C)
                    .map(|c| o(t, b, c) / if student_tau { tau } else { 1.0 })
                    .collect();
                let lq = log_softmax_row(&row);
                for c in 0..C {
                    loss2 -= tau * tau * p[c] * lq[c] / (T * B) as f64;
                }
            }
        }
        (a * loss1 + (1.0 - a) * loss2, loss2)
    }

    fn progress(epoch: usize, epochs: usize) -> Progress {
        Progress {
            epoch,
            epochs,
            step: 0,
            steps_per_epoch: 1,
        }
    }

    #[test]
    fn schedule_ramps_and_caps() {
        let tks = Tks::default();
        assert!((tks.ce_weight(progress(10, 100)) - 0.93).abs() < 1e-12);
        assert_eq!(tks.ce_weight(progress(0, 100)), 1.0);
        assert!((tks.ce_weight(progress(100, 100)) - 0.3).abs() < 1e-12);
        assert!((tks.ce_weight(progress(250, 100)) - 0.3).abs() < 1e-12);
        let per_step = Tks {
            per_step: true,
            ..Tks::default()
        };
        let p = Progress {
            epoch: 1,
            epochs: 2,
            step: 5,
            steps_per_epoch: 10,
        };
        assert!((per_step.ce_weight(p) - (1.0 - 0.75 * 0.7)).abs() < 1e-12);
        assert!((tks.ce_weight(p) - (1.0 - 0.5 * 0.7)).abs() < 1e-12);
    }

    #[test]
    fn mask_teacher_and_uniform_target_for_never_correct_sample() {
        let device = Device::flex();
        let parts = Tks::default().parts(logits(&device), targets(&device));
        assert_eq!(vals(parts.mask), vec![0.0, 1.0, 0.0, 0.0, 0.0, 1.0]);
        let teacher = vals(parts.teacher.clone());
        assert_eq!(
            &teacher[..C],
            &[0.0, 0.0, 0.0],
            "sample 0 has no correct timestep"
        );
        let want1 = [0.3 - 0.1, -0.4 + 0.3, 1.2 + 0.7];
        for c in 0..C {
            assert!((teacher[C + c] - want1[c]).abs() < 1e-6, "{teacher:?}");
        }
        let p = vals(softmax(parts.teacher.div_scalar(3.0), 1));
        for v in &p[..C] {
            assert!((v - 1.0 / 3.0).abs() < 1e-6, "uniform soft target: {p:?}");
        }
    }

    #[test]
    fn loss_matches_hand_computation() {
        let device = Device::flex();
        let out = SnnOutput {
            logits: logits(&device),
            stage: None,
        };
        for (tks, epoch) in [
            (Tks::default(), 10),
            (Tks::event_data(), 40),
            (
                Tks {
                    student_temperature: true,
                    ..Tks::default()
                },
                70,
            ),
            (Tks::imagenet(), 0),
        ] {
            let a = tks.ce_weight(progress(epoch, 100));
            let got = vals(tks.loss(&out, targets(&device), progress(epoch, 100)))[0] as f64;
            let (want, _) = reference(tks.temperature, a, tks.student_temperature);
            assert!(
                (got - want).abs() < 1e-5 * (1.0 + want.abs()),
                "{tks:?}: {got} vs {want}"
            );
        }
    }

    #[test]
    fn detaching_the_teacher_changes_only_gradients() {
        let device = Device::flex().autodiff();
        let run = |detach: bool| {
            let l = logits(&device).require_grad();
            let out = SnnOutput {
                logits: l.clone(),
                stage: None,
            };
            let tks = Tks {
                detach_teacher: detach,
                ..Tks::default()
            };
            let loss = tks.loss(&out, targets(&device), progress(100, 100));
            let value = vals(loss.clone())[0];
            let grads = loss.backward();
            (value, vals(l.grad(&grads).unwrap()))
        };
        let (v_attached, g_attached) = run(false);
        let (v_detached, g_detached) = run(true);
        assert!((v_attached - v_detached).abs() < 1e-6);
        // Sample 0 is never correct: its teacher row is the constant zero ⇒ identical gradients.
        for t in 0..T {
            for c in 0..C {
                let i = (t * B) * C + c;
                assert!(
                    (g_attached[i] - g_detached[i]).abs() < 1e-6,
                    "sample 0 [{t},{c}]"
                );
            }
        }
        // Sample 1 is correct at t = 0, 2: the teacher path adds gradient there, not at t = 1.
        let diff = |t: usize| {
            (0..C)
                .map(|c| (g_attached[(t * B + 1) * C + c] - g_detached[(t * B + 1) * C + c]).abs())
                .sum::<f32>()
        };
        assert!(diff(0) > 1e-4 && diff(2) > 1e-4, "{} {}", diff(0), diff(2));
        assert!(diff(1) < 1e-7, "{}", diff(1));
    }

    #[test]
    fn validate_names_fields() {
        assert!(Tks::default().validate().is_ok());
        let e = Tks {
            temperature: 0.0,
            ..Tks::default()
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("objective.temperature") && e.contains('0'),
            "{e}"
        );
        let e = Tks {
            alpha: 1.5,
            ..Tks::default()
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(e.contains("objective.alpha") && e.contains("1.5"), "{e}");
    }
}
