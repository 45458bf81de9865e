//! Blurred Knowledge Distillation (Xu, You, Guo, Wang & He, "BKDSNN: Enhancing the Performance
//! of Learning-based Spiking Neural Networks Training with Blurred Knowledge Distillation",
//! ECCV 2024), following the official code (`Intelligent-Computing-Research-Group/BKDSNN`:
//! `BRDLoss` and `get_logits_loss` in `loss.py` / `train_distillation.py`, `distill_type =
//! "mixed"`).
//!
//! The teacher is an ANN: the same architecture with ReLU in place of the spiking neurons
//! (`tks train --ann --save teacher.safetensors`, or a `--ann --out DIR` run's
//! `best.safetensors`), loaded from `teacher`, frozen, in inference mode, run by the loop on the
//! same batch (`teacher_timesteps` frames, 1 by default). With the student's
//! stage `S [T, B, C_s, H, W]`, the teacher's stage `F [B, C_t, H, W]` (time-averaged), the
//! student logits `z_s = (1/T) Σ_t o_t` and the teacher logits `z_t`:
//!
//! ```text
//! S̄      = align( (1/T) Σ_t S_t )              align: 1×1 conv C_s → C_t, only if C_s ≠ C_t
//! M[b,c] = [u_bc ≥ λ],  u ~ U(0,1)              random channel mask, ratio λ = 0.15
//! G      = conv3×3( ReLU( conv3×3( S̄ ⊙ M ) ) )  the generation block (C_t → C_t, bias)
//! L_feat = α_f · (1/B) Σ (G − F)²               α_f = 2e-3 (official `--alpha_mgd` default)
//! w_b    = 1 − exp(−max(CE(z_s,b, y_b) / (CE(z_t,b, y_b) + 1e-7), 0))   (detached)
//! L_kd   = γ · τ² · (1/B) Σ_b w_b · Σ_c −softmax(z_t,b/τ)_c · log softmax(z_s,b/τ)_c
//! L      = CE(z_s, y) + L_feat + L_kd          τ = 2, γ = 1 (official `--temp`, `--distill_weight`)
//! ```
//!
//! `w_b` is the official code's weighted-soft-label factor (WSLD, Zhou et al., ICLR 2021);
//! `wsld = false` drops it (`w_b = 1`: plain Hinton KD in cross-entropy form).
//!
//! The align conv and the generation block form an [`AuxModule`] trained with the student and
//! dropped at the end: the trained SNN has no extra parameters or cost.
//!
//! Choices: the official code applies `align` *before* the mask (kept); its optional `use_clip`
//! rescaling is off by default there and not implemented; the mask is drawn from burn's seeded
//! device generator; without a teacher ([`Objective::loss`] called outside the loop) the loss is
//! just `CE(z_s, y)`. The cifar10dvs script of the official code passes teacher and student in
//! swapped order to `BRDLoss`; the ImageNet script and the paper mask the *student*, as here.

use burn::module::Module;
use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::tensor::activation::{log_softmax, relu};
use burn::tensor::{Device, Distribution, Int, Tensor};
use serde::{Deserialize, Serialize};

use super::aux::{AuxModule, AuxShape, LossExtras, Teacher, load_model};
use super::{Objective, Progress, cross_entropy, mean_over_time};
use crate::error::{ConfigError, TrainError, check_positive, check_range};
use tks_core::model::{ModelConfig, SnnOutput};

/// The BKD loss (see the module docs). Also the `[objective]` table of `name = "bkd"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Bkd {
    /// Path of the ANN teacher saved by `tks train --ann --save PATH` (required).
    pub teacher: String,
    /// Timesteps the teacher is run for (1 for an ANN on static images).
    pub teacher_timesteps: usize,
    /// Temperature τ of the logit distillation, > 0.
    pub temperature: f64,
    /// Weight γ of the logit distillation, ≥ 0.
    pub logit_weight: f64,
    /// Weight α_f of the feature (blurred generation) term, ≥ 0.
    pub feature_weight: f64,
    /// Fraction λ of channels masked, in `[0, 1)`.
    pub mask_ratio: f64,
    /// Weight each sample's KD term by the official WSLD factor.
    pub wsld: bool,
}

impl Default for Bkd {
    fn default() -> Self {
        Self {
            teacher: String::new(),
            teacher_timesteps: 1,
            temperature: 2.0,
            logit_weight: 1.0,
            feature_weight: 2e-3,
            mask_ratio: 0.15,
            wsld: true,
        }
    }
}

/// BKD's generation block (plus the 1×1 align conv when the widths differ).
#[derive(Module, Debug)]
pub struct BkdGenerator {
    /// 1×1 conv `C_s → C_t`, present only if `C_s ≠ C_t`.
    pub align: Option<Conv2d>,
    /// First 3×3 conv `C_t → C_t`.
    pub conv1: Conv2d,
    /// Second 3×3 conv `C_t → C_t`.
    pub conv2: Conv2d,
}

impl BkdGenerator {
    /// A generator from `student_channels` to `teacher_channels`.
    pub fn new(student_channels: usize, teacher_channels: usize, device: &Device) -> Self {
        let conv3 = || {
            Conv2dConfig::new([teacher_channels, teacher_channels], [3, 3])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(device)
        };
        Self {
            align: (student_channels != teacher_channels).then(|| {
                Conv2dConfig::new([student_channels, teacher_channels], [1, 1]).init(device)
            }),
            conv1: conv3(),
            conv2: conv3(),
        }
    }

    /// `align` (if any), then the channel `mask [B, C_t]` (1 keep, 0 drop), then the block.
    pub fn forward(&self, features: Tensor<4>, mask: Tensor<2>) -> Tensor<4> {
        let x = match &self.align {
            Some(align) => align.forward(features),
            None => features,
        };
        let [b, c, _, _] = x.dims();
        let x = x * mask.reshape([b, c, 1, 1]);
        self.conv2.forward(relu(self.conv1.forward(x)))
    }
}

/// The terms of the BKD loss, unweighted except where noted.
#[derive(Debug, Clone)]
pub struct BkdParts {
    /// `CE(z_s, y)`.
    pub task: Tensor<1>,
    /// `(1/B) Σ (G − F)²`, without α_f; `None` without a generator or stages.
    pub feature: Option<Tensor<1>>,
    /// `τ²·(1/B) Σ_b w_b·CE_τ(z_t,b, z_s,b)`, without γ.
    pub logit: Tensor<1>,
}

/// `(1/B) Σ (generated − target)²` over `[B, C, H, W]` (the official `MSELoss(sum) / N`).
pub fn feature_mse(generated: Tensor<4>, target: Tensor<4>) -> Tensor<1> {
    let batch = generated.dims()[0];
    (generated - target)
        .powi_scalar(2)
        .sum()
        .div_scalar(batch as f64)
}

/// The official `get_logits_loss`: `τ²·(1/B) Σ_b w_b · Σ_c −p_t log q_s` with `p_t =
/// softmax(z_t/τ)`, `q_s = softmax(z_s/τ)`, and (when `wsld`) the detached WSLD weight
/// `w_b = 1 − exp(−max(CE(z_s,b)/(CE(z_t,b) + 1e-7), 0))`, else `w_b = 1`.
pub fn logit_distillation(
    teacher: Tensor<2>,
    student: Tensor<2>,
    targets: Tensor<1, Int>,
    temperature: f64,
    wsld: bool,
) -> Tensor<1> {
    let [batch, classes] = student.dims();
    let teacher = teacher.detach();
    let p_t = log_softmax(teacher.clone().div_scalar(temperature), 1).exp();
    let soft = (p_t * log_softmax(student.clone().div_scalar(temperature), 1))
        .sum_dim(1)
        .neg(); // [B, 1]
    let weighted = if wsld {
        let one_hot: Tensor<2> = targets.one_hot::<2>(classes).float();
        let ce = |z: Tensor<2>| (log_softmax(z, 1) * one_hot.clone()).sum_dim(1).neg();
        let ratio = ce(student.detach()) / ce(teacher).add_scalar(1e-7);
        let weight = ratio.clamp_min(0.0).neg().exp().neg().add_scalar(1.0);
        soft * weight
    } else {
        soft
    };
    weighted
        .sum()
        .mul_scalar(temperature * temperature / batch as f64)
}

impl Bkd {
    /// Checks every field, naming it as `objective.<field>`; `teacher` must be given. Whether
    /// the file exists and fits is checked when training loads it ([`Objective::load_teacher`]),
    /// so a saved configuration stays readable (e.g. to evaluate the student) without it.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.teacher.is_empty() {
            return Err(ConfigError::invalid(
                "objective.teacher",
                "(missing)",
                "required: the ANN teacher saved by `tks train --ann --save PATH` (CLI `--teacher PATH`)",
            ));
        }
        if self.teacher_timesteps == 0 {
            return Err(ConfigError::invalid(
                "objective.teacher_timesteps",
                self.teacher_timesteps,
                "must be at least 1",
            ));
        }
        check_positive("objective.temperature", self.temperature)?;
        check_range("objective.logit_weight", self.logit_weight, 0.0, 1e6)?;
        check_range("objective.feature_weight", self.feature_weight, 0.0, 1e6)?;
        check_range("objective.mask_ratio", self.mask_ratio, 0.0, 1.0)?;
        if self.mask_ratio >= 1.0 {
            return Err(ConfigError::invalid(
                "objective.mask_ratio",
                self.mask_ratio,
                "must be < 1",
            ));
        }
        Ok(())
    }

    /// The channel mask `[B, C]`: 0 with probability `mask_ratio`, else 1 (constant).
    pub fn mask(&self, batch: usize, channels: usize, device: &Device) -> Tensor<2> {
        Tensor::<2>::random([batch, channels], Distribution::Uniform(0.0, 1.0), device)
            .greater_equal_elem(self.mask_ratio)
            .float()
            .detach()
    }

    /// The terms for the student `output`, the `teacher` output (stage time-averaged) and the
    /// generator, with an explicit channel `mask [B, C_t]`.
    pub fn parts_with_mask(
        &self,
        output: &SnnOutput,
        targets: Tensor<1, Int>,
        teacher: &SnnOutput,
        generator: Option<&BkdGenerator>,
        mask: Option<Tensor<2>>,
    ) -> BkdParts {
        let z_s = mean_over_time(output.logits.clone());
        let z_t = mean_over_time(teacher.logits.clone());
        let task = cross_entropy(z_s.clone(), targets.clone());
        let logit = logit_distillation(z_t, z_s, targets, self.temperature, self.wsld);
        let feature = match (generator, &output.stage, &teacher.stage) {
            (Some(generator), Some(s), Some(f)) => {
                let s: Tensor<4> = s.clone().mean_dim(0).squeeze_dim(0);
                let f: Tensor<4> = f.clone().mean_dim(0).squeeze_dim(0).detach();
                let [b, c_t, _, _] = f.dims();
                let mask = mask.unwrap_or_else(|| self.mask(b, c_t, &s.device()));
                Some(feature_mse(generator.forward(s, mask), f))
            }
            _ => None,
        };
        BkdParts {
            task,
            feature,
            logit,
        }
    }

    fn combine(&self, parts: BkdParts) -> Tensor<1> {
        let mut loss = parts.task + parts.logit.mul_scalar(self.logit_weight);
        if let Some(feature) = parts.feature {
            loss = loss + feature.mul_scalar(self.feature_weight);
        }
        loss
    }
}

impl Objective for Bkd {
    fn name(&self) -> &'static str {
        "bkd"
    }

    fn needs_stage(&self) -> bool {
        true
    }

    fn load_teacher(
        &self,
        model: &ModelConfig,
        device: &Device,
    ) -> Result<Option<Teacher>, TrainError> {
        let ann = crate::config::ann_model(model);
        let path = std::path::Path::new(&self.teacher);
        let model = load_model(&ann, path, device, "objective.teacher")?;
        Ok(Some(Teacher {
            model: model.valid(),
            timesteps: self.teacher_timesteps,
        }))
    }

    fn init_aux(&self, shape: &AuxShape, device: &Device) -> Option<AuxModule> {
        let teacher_channels = shape.teacher_stage.map_or(shape.stage[0], |s| s[0]);
        Some(AuxModule::BkdGenerator(BkdGenerator::new(
            shape.stage[0],
            teacher_channels,
            device,
        )))
    }

    /// `CE(z_s, y)` only: the teacher comes from the loop ([`Objective::loss_with`]).
    fn loss(&self, output: &SnnOutput, targets: Tensor<1, Int>, _progress: Progress) -> Tensor<1> {
        cross_entropy(mean_over_time(output.logits.clone()), targets)
    }

    fn loss_with(
        &self,
        output: &SnnOutput,
        targets: Tensor<1, Int>,
        progress: Progress,
        extras: &LossExtras<'_>,
    ) -> Tensor<1> {
        let Some(teacher) = extras.teacher else {
            return self.loss(output, targets, progress);
        };
        let generator = match extras.aux {
            Some(AuxModule::BkdGenerator(g)) => Some(g),
            _ => None,
        };
        self.combine(self.parts_with_mask(output, targets, teacher, generator, None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::Param;
    use burn::tensor::TensorData;

    fn vals<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.to_data().try_to_vec::<f32>().unwrap()
    }

    fn softmax(z: &[f64], tau: f64) -> Vec<f64> {
        let e: Vec<f64> = z.iter().map(|v| (v / tau).exp()).collect();
        let s: f64 = e.iter().sum();
        e.into_iter().map(|v| v / s).collect()
    }

    #[test]
    fn logit_distillation_by_hand_with_and_without_wsld() {
        let device = Device::flex();
        let zt = [[2.0, 0.0, -1.0], [0.5, 0.5, 1.0]];
        let zs = [[1.0, 1.0, 0.0], [-1.0, 0.0, 2.0]];
        let y = [0usize, 2];
        let t2 = |z: &[[f64; 3]; 2]| {
            Tensor::<2>::from_data(
                TensorData::new(z.iter().flatten().map(|&v| v as f32).collect(), [2, 3]),
                &device,
            )
        };
        let targets = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 2], [2]), &device);
        let tau = 2.0;
        let mut plain = 0.0;
        let mut weighted = 0.0;
        for b in 0..2 {
            let p = softmax(&zt[b], tau);
            let q = softmax(&zs[b], tau);
            let soft: f64 = -p.iter().zip(&q).map(|(p, q)| p * q.ln()).sum::<f64>();
            let ce_s = -softmax(&zs[b], 1.0)[y[b]].ln();
            let ce_t = -softmax(&zt[b], 1.0)[y[b]].ln();
            let w = 1.0 - (-(ce_s / (ce_t + 1e-7)).max(0.0)).exp();
            plain += soft;
            weighted += w * soft;
        }
        let (plain, weighted) = (plain * tau * tau / 2.0, weighted * tau * tau / 2.0);
        let got = vals(logit_distillation(
            t2(&zt),
            t2(&zs),
            targets.clone(),
            tau,
            false,
        ))[0] as f64;
        assert!((got - plain).abs() < 1e-5, "{got} vs {plain}");
        let got = vals(logit_distillation(t2(&zt), t2(&zs), targets, tau, true))[0] as f64;
        assert!((got - weighted).abs() < 1e-5, "{got} vs {weighted}");
    }

    /// A generator whose convs are identities (1 at the kernel centre, zero bias), so
    /// `G = relu(masked)` and the feature term is computable by hand.
    fn identity_generator(channels: usize, device: &Device) -> BkdGenerator {
        let mut g = BkdGenerator::new(channels, channels, device);
        let mut w = vec![0.0f32; channels * channels * 9];
        for c in 0..channels {
            w[(c * channels + c) * 9 + 4] = 1.0;
        }
        for conv in [&mut g.conv1, &mut g.conv2] {
            conv.weight = Param::from_tensor(Tensor::from_data(
                TensorData::new(w.clone(), [channels, channels, 3, 3]),
                device,
            ));
            conv.bias = Some(Param::from_tensor(Tensor::zeros([channels], device)));
        }
        g
    }

    #[test]
    fn feature_term_by_hand_with_time_average_mask_and_generator() {
        let device = Device::flex();
        // Student stage [T=2, B=1, C=2, H=1, W=2]; time mean: c0 = [1, -1], c1 = [2, 4].
        let s = Tensor::<5>::from_data(
            TensorData::new(
                vec![2.0f32, -2.0, 4.0, 4.0, 0.0, 0.0, 0.0, 4.0],
                [2, 1, 2, 1, 2],
            ),
            &device,
        );
        // Teacher stage [T=1, B=1, C=2, H=1, W=2].
        let f = Tensor::<5>::from_data(
            TensorData::new(vec![0.5f32, 0.0, 1.0, 1.0], [1, 1, 2, 1, 2]),
            &device,
        );
        let logits = Tensor::<3>::zeros([2, 1, 3], &device);
        let student = SnnOutput {
            logits: logits.clone(),
            stage: Some(s),
        };
        let teacher = SnnOutput {
            logits: logits.narrow(0, 0, 1),
            stage: Some(f),
        };
        let g = identity_generator(2, &device);
        let bkd = Bkd::default();
        let targets = Tensor::<1, Int>::from_data(TensorData::new(vec![1i64], [1]), &device);
        // Mask channel 1: G = [relu([1, -1]), 0] = [[1, 0], [0, 0]].
        let mask = Tensor::<2>::from_data(TensorData::new(vec![1.0f32, 0.0], [1, 2]), &device);
        let parts = bkd.parts_with_mask(&student, targets.clone(), &teacher, Some(&g), Some(mask));
        // (1−0.5)² + 0² + (0−1)² + (0−1)² = 2.25, / B = 1.
        assert!((vals(parts.feature.unwrap())[0] - 2.25).abs() < 1e-5);
        // Equal logits: task = ln 3, KD = τ²·w·ln 3 with w = 1 − e^{−1}.
        let ln3 = 3f64.ln();
        assert!((vals(parts.task)[0] as f64 - ln3).abs() < 1e-5);
        let want = 4.0 * (1.0 - (-1.0f64).exp()) * ln3;
        assert!((vals(parts.logit)[0] as f64 - want).abs() < 1e-4);
        // No mask: G = [[1, 0], [2, 4]] → 0.25 + 0 + 1 + 9 = 10.25.
        let ones = Tensor::<2>::ones([1, 2], &device);
        let parts = bkd.parts_with_mask(&student, targets, &teacher, Some(&g), Some(ones));
        assert!((vals(parts.feature.unwrap())[0] - 10.25).abs() < 1e-5);
    }

    #[test]
    fn align_conv_only_when_widths_differ_and_mask_ratio() {
        let device = Device::flex();
        assert!(BkdGenerator::new(4, 4, &device).align.is_none());
        let g = BkdGenerator::new(4, 6, &device);
        assert!(g.align.is_some());
        let y = g.forward(
            Tensor::<4>::ones([2, 4, 3, 3], &device),
            Tensor::ones([2, 6], &device),
        );
        assert_eq!(y.dims(), [2, 6, 3, 3]);
        let m = vals(Bkd::default().mask(100, 100, &device));
        let dropped = m.iter().filter(|&&v| v == 0.0).count() as f64 / m.len() as f64;
        assert!((dropped - 0.15).abs() < 0.03, "{dropped}");
        assert!(m.iter().all(|&v| v == 0.0 || v == 1.0));
    }

    #[test]
    fn validate_names_fields_and_paths() {
        let e = Bkd::default().validate().unwrap_err();
        assert_eq!(e.field, "objective.teacher");
        let missing = Bkd {
            teacher: "/nonexistent/teacher.safetensors".into(),
            ..Bkd::default()
        };
        let e = missing
            .load_teacher(&crate::config::RunConfig::default().model, &Device::flex())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("objective.teacher")
                && e.contains("/nonexistent/teacher.safetensors")
                && e.contains("no such file"),
            "{e}"
        );
        let ok = Bkd {
            teacher: "teacher.safetensors".into(),
            ..Bkd::default()
        };
        assert!(ok.validate().is_ok());
        for (bad, field) in [
            (
                Bkd {
                    mask_ratio: 1.0,
                    ..ok.clone()
                },
                "objective.mask_ratio",
            ),
            (
                Bkd {
                    temperature: -2.0,
                    ..ok.clone()
                },
                "objective.temperature",
            ),
            (
                Bkd {
                    feature_weight: -1.0,
                    ..ok.clone()
                },
                "objective.feature_weight",
            ),
            (
                Bkd {
                    teacher_timesteps: 0,
                    ..ok.clone()
                },
                "objective.teacher_timesteps",
            ),
        ] {
            assert_eq!(bad.validate().unwrap_err().field, field);
        }
    }
}
