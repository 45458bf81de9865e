//! Temporal-Spatial Self-Distillation (Zuo, Ding, Jing, Yang & Yu, "Self-Distillation Learning
//! Based on Temporal-Spatial Consistency for Spiking Neural Networks", arXiv 2406.07862, 2024):
//!
//! ```text
//! L = L_task + α·L_tsd + β·L_ssd
//! ```
//!
//! **Temporal** (`L_tsd`): during training the network runs for `T_t > T_s` timesteps; its
//! output over the longer window is the teacher of the `T_s`-step student output. An SNN is
//! causal (the output at step `t` depends on frames `0..=t` only), so **one** forward pass over
//! `T_t` frames yields both:
//!
//! ```text
//! z_s = (1/T_s) Σ_{t<T_s} o_t        the student: what inference at T_s computes
//! z_t = (1/T_t) Σ_{t<T_t} o_t        the teacher: the extended run
//! L_task = CE(z_s, y)
//! L_tsd  = τ² · (1/B) Σ_b KL( softmax(z_t,b/τ) ‖ softmax(z_s,b/τ) )
//! ```
//!
//! **Spatial** (`L_ssd`): a weak classifier on the intermediate stage (`SnnOutput.stage`,
//! `[T, B, C, H, W]`): global average pool + linear per timestep, [`TssdHead`], averaged over
//! the student window `h = (1/T_s) Σ_{t<T_s} head(GAP(stage_t))`, guided by the final output:
//!
//! ```text
//! L_ssd = τ² · (1/B) Σ_b KL( softmax(z_s,b/τ) ‖ softmax(h_b/τ) )
//! ```
//!
//! The head is an [`AuxModule`] trained with the model and dropped at the end: inference runs
//! the plain model at `T_s` — no extra parameters, no extra cost.
//!
//! # Choices the paper leaves open (or that could not be checked against its text here)
//!
//! * **One pass, not two.** The teacher is the same forward pass extended to `T_t` frames
//!   (causality makes the first `T_s` steps identical to a `T_s`-step run), which saves a separate
//!   `T_s`-step pass. Caveat: BatchNorm statistics (training mode, over `T·B·H·W`) are taken over the
//!   `T_t` run, so the student's first `T_s` steps are normalised with statistics that also
//!   include the extra steps, and the running statistics used at evaluation come from `T_t`
//!   runs. With direct (repeated) encoding the BN inputs of later steps differ only through the
//!   membrane state, so the effect is small.
//! * **`T_t = T_s + extra_timesteps`, `extra_timesteps = 2`** by default (the loop asks
//!   [`Objective::train_timesteps`]); evaluation stays at `T_s`.
//! * **Event data** (`event_teacher`): a recording integrated into `T_t` frames is not a
//!   `T_s`-frame recording followed by extra frames — each frame holds `T_s/T_t` of the events.
//!   With `event_teacher = "rebin"` (the default) the loop runs **two** passes per batch: the
//!   student over the `T_s`-frame binning that validation and test use, the teacher over the
//!   same recordings integrated into `T_t` frames ([`tks_data::Split::train_long`]); the
//!   teacher's pass (detached by default) also updates BatchNorm's running statistics.
//!   `event_teacher = "extend"` keeps the one-pass form on the `T_t`-frame binning: the student
//!   then trains on the first `T_s` of `T_t` frames (`T_s/T_t` of each recording, in sparser
//!   frames) and is tested on a binning it never saw — measured on NMNISTsmall as a truncate
//!   curve peaking below `T_s`; kept to reproduce those runs.
//! * **Detach**: both teachers are detached (`detach_teacher = true`): the extended output does
//!   not get pulled toward the student, nor the final output toward the weak head; gradients of
//!   `L_tsd` reach the network through the student window, those of `L_ssd` reach the head and
//!   the layers before the stage. With `detach_teacher = false`, gradients flow through both
//!   teachers as well.
//! * The spatial teacher is the **student** output `z_s` (the final output of the deployed
//!   `T_s`-step network), and the head is averaged over the same `T_s` steps.
//! * KL (not cross-entropy) with the τ² factor of Hinton et al., mean over the batch; the weak
//!   head gets no label loss of its own.
//! * Defaults α = 1, β = 1 (unit weights) and τ = 4 (the usual KD temperature on CIFAR, e.g.
//!   Tian et al.'s CRD benchmark, `hobbitlong/repdistiller`): the paper's own values could not be
//!   read in this environment (only its abstract was reachable); set them per run (`alpha`,
//!   `beta`, `temperature`).
//! * With a weak head (GAP + linear on an early stage) the spatial term `τ²·KL` grows while the
//!   final output sharpens faster than the head can follow, so the *total* loss can rise after
//!   the first epoch even as accuracy improves; `beta = 0` gives a monotone curve.
//! * [`Objective::loss`] without the loop's extras has no head: it returns
//!   `L_task + α·L_tsd`. If the output has at most `extra_timesteps` steps (a caller that did
//!   not extend the run), the whole output is the student and `L_tsd = 0`.

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Int, Tensor};
use serde::{Deserialize, Serialize};

use super::aux::{AuxModule, AuxShape, LossExtras};
use super::{Objective, Progress, cross_entropy, mean_over_time};
use crate::error::{ConfigError, check_positive, check_range};
use tks_core::model::{SnnOutput, global_avg_pool};

/// The TSSD loss (see the module docs). Also the `[objective]` table of `name = "tssd"`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Tssd {
    /// Extra training timesteps of the temporal teacher: `T_t = T_s + extra_timesteps`, ≥ 1.
    pub extra_timesteps: usize,
    /// Weight α of the temporal term, ≥ 0.
    pub alpha: f64,
    /// Weight β of the spatial term, ≥ 0.
    pub beta: f64,
    /// Temperature τ of both KL terms, > 0.
    pub temperature: f64,
    /// Stop gradients through both teachers.
    pub detach_teacher: bool,
    /// How the temporal teacher sees event data (see the module docs).
    pub event_teacher: EventTeacher,
}

/// How TSSD's longer-window teacher sees event recordings (static images are repeated, so one
/// pass over `T_t` frames serves both windows there).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventTeacher {
    /// Two passes: the student on the `T_s`-frame binning, the teacher on the `T_t`-frame one.
    #[default]
    Rebin,
    /// One pass over the `T_t`-frame binning; the student is its first `T_s` frames.
    Extend,
}

impl Default for Tssd {
    fn default() -> Self {
        Self {
            extra_timesteps: 2,
            alpha: 1.0,
            beta: 1.0,
            temperature: 4.0,
            detach_teacher: true,
            event_teacher: EventTeacher::Rebin,
        }
    }
}

/// The terms of the TSSD loss, unweighted.
#[derive(Debug, Clone)]
pub struct TssdParts {
    /// `CE(z_s, y)`.
    pub task: Tensor<1>,
    /// `τ²·KL(z_t ‖ z_s)`.
    pub tsd: Tensor<1>,
    /// `τ²·KL(z_s ‖ h)`, `None` without a head or stage.
    pub ssd: Option<Tensor<1>>,
}

/// TSSD's weak classifier: global average pool + linear, per timestep.
#[derive(Module, Debug)]
pub struct TssdHead {
    /// `C_stage → classes`.
    pub linear: Linear,
}

impl TssdHead {
    /// A head for a stage of `channels` channels.
    pub fn new(channels: usize, classes: usize, device: &Device) -> Self {
        Self {
            linear: LinearConfig::new(channels, classes).init(device),
        }
    }

    /// Stage `[T, B, C, H, W]` → per-timestep logits `[T, B, classes]`.
    pub fn forward(&self, stage: Tensor<5>) -> Tensor<3> {
        self.linear.forward(global_avg_pool(stage))
    }
}

/// `τ² · (1/B) Σ_b KL(softmax(teacher_b/τ) ‖ softmax(student_b/τ))` for logits `[B, C]`.
pub fn kl_divergence(teacher: Tensor<2>, student: Tensor<2>, temperature: f64) -> Tensor<1> {
    let batch = teacher.dims()[0];
    let log_p = log_softmax(teacher.div_scalar(temperature), 1);
    let log_q = log_softmax(student.div_scalar(temperature), 1);
    (log_p.clone().exp() * (log_p - log_q))
        .sum()
        .mul_scalar(temperature * temperature / batch as f64)
}

impl Tssd {
    /// Checks every field, naming it as `objective.<field>`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.extra_timesteps == 0 || self.extra_timesteps > 1024 {
            return Err(ConfigError::invalid(
                "objective.extra_timesteps",
                self.extra_timesteps,
                "must be within [1, 1024] (T_t = T_s + extra_timesteps > T_s)",
            ));
        }
        check_range("objective.alpha", self.alpha, 0.0, 1e6)?;
        check_range("objective.beta", self.beta, 0.0, 1e6)?;
        check_positive("objective.temperature", self.temperature)
    }

    fn teacher(&self, t: Tensor<2>) -> Tensor<2> {
        if self.detach_teacher { t.detach() } else { t }
    }

    /// The three terms for `output` (the stage when `head` is given). Without `long`, `output`
    /// covers `T_t` steps and the student is its first `T_s`; with `long` (a second pass over
    /// `T_t` frames, event data), `output` is the whole `T_s`-step student and `long` the teacher.
    pub fn parts(
        &self,
        output: &SnnOutput,
        targets: Tensor<1, Int>,
        head: Option<&TssdHead>,
        long: Option<&SnnOutput>,
    ) -> TssdParts {
        let logits = output.logits.clone();
        let total = logits.dims()[0];
        let t_s = if long.is_none() && total > self.extra_timesteps {
            total - self.extra_timesteps
        } else {
            total
        };
        let z_s = mean_over_time(logits.clone().narrow(0, 0, t_s));
        let task = cross_entropy(z_s.clone(), targets);
        let teacher_logits = match long {
            Some(l) => Some(l.logits.clone()),
            None => (t_s < total).then_some(logits),
        };
        let tsd = match teacher_logits {
            Some(t) => {
                let z_t = self.teacher(mean_over_time(t));
                kl_divergence(z_t, z_s.clone(), self.temperature)
            }
            None => task.zeros_like(),
        };
        let ssd = match (head, &output.stage) {
            (Some(head), Some(stage)) => {
                let h = mean_over_time(head.forward(stage.clone().narrow(0, 0, t_s)));
                Some(kl_divergence(self.teacher(z_s), h, self.temperature))
            }
            _ => None,
        };
        TssdParts { task, tsd, ssd }
    }

    fn combine(&self, parts: TssdParts) -> Tensor<1> {
        let mut loss = parts.task + parts.tsd.mul_scalar(self.alpha);
        if let Some(ssd) = parts.ssd {
            loss = loss + ssd.mul_scalar(self.beta);
        }
        loss
    }
}

impl Objective for Tssd {
    fn name(&self) -> &'static str {
        "tssd"
    }

    fn needs_stage(&self) -> bool {
        true
    }

    fn train_timesteps(&self, timesteps: usize) -> usize {
        timesteps + self.extra_timesteps
    }

    fn rebins_long_window(&self) -> bool {
        self.event_teacher == EventTeacher::Rebin
    }

    fn init_aux(&self, shape: &AuxShape, device: &Device) -> Option<AuxModule> {
        Some(AuxModule::TssdHead(TssdHead::new(
            shape.stage[0],
            shape.classes,
            device,
        )))
    }

    /// `L_task + α·L_tsd` (no head outside the loop; see the module docs).
    fn loss(&self, output: &SnnOutput, targets: Tensor<1, Int>, _progress: Progress) -> Tensor<1> {
        self.combine(self.parts(output, targets, None, None))
    }

    fn loss_with(
        &self,
        output: &SnnOutput,
        targets: Tensor<1, Int>,
        _progress: Progress,
        extras: &LossExtras<'_>,
    ) -> Tensor<1> {
        let head = match extras.aux {
            Some(AuxModule::TssdHead(h)) => Some(h),
            _ => None,
        };
        self.combine(self.parts(output, targets, head, extras.long))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    fn vals<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.to_data().try_to_vec::<f32>().unwrap()
    }

    fn kl_by_hand(p_logits: &[f64], q_logits: &[f64], tau: f64) -> f64 {
        let soft = |z: &[f64]| {
            let m: Vec<f64> = z.iter().map(|v| (v / tau).exp()).collect();
            let s: f64 = m.iter().sum();
            m.into_iter().map(|v| v / s).collect::<Vec<_>>()
        };
        let (p, q) = (soft(p_logits), soft(q_logits));
        tau * tau * p.iter().zip(&q).map(|(p, q)| p * (p / q).ln()).sum::<f64>()
    }

    #[test]
    fn kl_matches_hand_computation_and_is_zero_on_equal_inputs() {
        let device = Device::flex();
        let a = [1.0, -0.5, 2.0];
        let b = [0.3, 0.3, -1.0];
        let t = Tensor::<2>::from_data(
            TensorData::new(a.iter().chain(&b).map(|&v| v as f32).collect(), [2, 3]),
            &device,
        );
        let s = Tensor::<2>::from_data(
            TensorData::new(b.iter().chain(&a).map(|&v| v as f32).collect(), [2, 3]),
            &device,
        );
        let got = vals(kl_divergence(t.clone(), s, 2.0))[0] as f64;
        let want = (kl_by_hand(&a, &b, 2.0) + kl_by_hand(&b, &a, 2.0)) / 2.0;
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
        assert!(vals(kl_divergence(t.clone(), t, 3.0))[0].abs() < 1e-6);
    }

    #[test]
    fn student_window_teacher_window_and_head_by_hand() {
        let device = Device::flex();
        // T_t = 3 (T_s = 1, extra = 2), B = 1, C = 2.
        let logits = Tensor::<3>::from_data(
            TensorData::new(vec![1.0f32, 0.0, 0.0, 2.0, 2.0, 1.0], [3, 1, 2]),
            &device,
        );
        // Stage [T=3, B=1, C=2, H=1, W=2]: GAP at t=0 gives [0.5, 2.0].
        let stage = Tensor::<5>::from_data(
            TensorData::new(
                vec![
                    0.0f32, 1.0, 2.0, 2.0, 9.0, 9.0, 9.0, 9.0, 9.0, 9.0, 9.0, 9.0,
                ],
                [3, 1, 2, 1, 2],
            ),
            &device,
        );
        let mut head = TssdHead::new(2, 2, &device);
        // weight [in=2, out=2] = [[1, 0], [0, -1]], bias [0.5, 0]: h = [1.0, -2.0].
        head.linear.weight = burn::module::Param::from_tensor(Tensor::from_data(
            TensorData::new(vec![1.0f32, 0.0, 0.0, -1.0], [2, 2]),
            &device,
        ));
        head.linear.bias = Some(burn::module::Param::from_tensor(Tensor::from_data(
            TensorData::new(vec![0.5f32, 0.0], [2]),
            &device,
        )));
        let out = SnnOutput {
            logits,
            stage: Some(stage),
        };
        let tssd = Tssd {
            extra_timesteps: 2,
            alpha: 0.5,
            beta: 0.25,
            temperature: 2.0,
            detach_teacher: true,
            event_teacher: EventTeacher::Rebin,
        };
        let targets = Tensor::<1, Int>::from_data(TensorData::new(vec![1i64], [1]), &device);
        let parts = tssd.parts(&out, targets.clone(), Some(&head), None);
        let z_s = [1.0, 0.0];
        let z_t = [1.0, 1.0];
        let h = [1.0, -2.0];
        let task = (1.0f64.exp() + 1.0).ln() - 0.0; // −log softmax(z_s)_1
        let tsd = kl_by_hand(&z_t, &z_s, 2.0);
        let ssd = kl_by_hand(&z_s, &h, 2.0);
        let got = |t: Tensor<1>| vals(t)[0] as f64;
        assert!((got(parts.task.clone()) - task).abs() < 1e-5);
        assert!((got(parts.tsd.clone()) - tsd).abs() < 1e-5);
        assert!((got(parts.ssd.clone().unwrap()) - ssd).abs() < 1e-5);
        let aux = AuxModule::TssdHead(head);
        let total = tssd.loss_with(
            &out,
            targets.clone(),
            progress(),
            &LossExtras {
                aux: Some(&aux),
                teacher: None,
                long: None,
            },
        );
        let want = task + 0.5 * tsd + 0.25 * ssd;
        assert!((got(total) - want).abs() < 1e-5);
        // Without the head: task + α·tsd.
        let plain = tssd.loss(&out, targets, progress());
        assert!((got(plain) - (task + 0.5 * tsd)).abs() < 1e-5);
    }

    #[test]
    fn detached_teachers_send_gradient_only_through_the_student_window() {
        let device = Device::flex().autodiff();
        let logits = Tensor::<3>::from_data(
            TensorData::new(vec![1.0f32, 0.0, 0.0, 2.0, 2.0, 1.0], [3, 1, 2]),
            &device,
        )
        .require_grad();
        let out = SnnOutput {
            logits: logits.clone(),
            stage: None,
        };
        let targets = Tensor::<1, Int>::from_data(TensorData::new(vec![1i64], [1]), &device);
        let grads = Tssd::default()
            .loss(&out, targets.clone(), progress())
            .backward();
        let g = vals(logits.grad(&grads).unwrap());
        assert!(
            g[0].abs() > 1e-4 && g[2..].iter().all(|v| v.abs() < 1e-9),
            "{g:?}"
        );
        let attached = Tssd {
            detach_teacher: false,
            ..Tssd::default()
        };
        let grads = attached.loss(&out, targets, progress()).backward();
        let g = vals(logits.grad(&grads).unwrap());
        assert!(g[2..].iter().any(|v| v.abs() > 1e-6), "{g:?}");
    }

    #[test]
    fn the_head_receives_gradient_through_the_spatial_term() {
        let device = Device::flex().autodiff();
        let head = TssdHead::new(2, 3, &device);
        let out = SnnOutput {
            logits: Tensor::<3>::random(
                [3, 2, 3],
                burn::tensor::Distribution::Normal(0.0, 1.0),
                &device,
            ),
            stage: Some(Tensor::<5>::ones([3, 2, 2, 2, 2], &device)),
        };
        let targets = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 2], [2]), &device);
        let aux = AuxModule::TssdHead(head);
        let extras = LossExtras {
            aux: Some(&aux),
            teacher: None,
            long: None,
        };
        let grads = Tssd::default()
            .loss_with(&out, targets, progress(), &extras)
            .backward();
        let AuxModule::TssdHead(head) = &aux else {
            unreachable!()
        };
        let g = head
            .linear
            .weight
            .val()
            .grad(&grads)
            .expect("head weight gradient");
        assert!(vals(g).iter().any(|v| v.abs() > 1e-6));
    }

    #[test]
    fn short_output_has_no_temporal_term() {
        let device = Device::flex();
        let out = SnnOutput {
            logits: Tensor::<3>::ones([2, 1, 3], &device),
            stage: None,
        };
        let targets = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64], [1]), &device);
        let parts = Tssd::default().parts(&out, targets, None, None);
        assert_eq!(vals(parts.tsd)[0], 0.0);
        assert!((vals(parts.task)[0] - 3f32.ln()).abs() < 1e-6);
    }

    #[test]
    fn a_second_pass_is_the_teacher_and_the_whole_output_the_student() {
        let device = Device::flex().autodiff();
        // Student over T_s = 2 steps (the test binning), teacher over T_t = 3 (a second pass).
        let student = Tensor::<3>::from_data(
            TensorData::new(vec![1.0f32, 0.0, 3.0, 0.0], [2, 1, 2]),
            &device,
        )
        .require_grad();
        let teacher = Tensor::<3>::from_data(
            TensorData::new(vec![0.0f32, 3.0, 0.0, 0.0, 3.0, 0.0], [3, 1, 2]),
            &device,
        )
        .require_grad();
        let out = SnnOutput {
            logits: student.clone(),
            stage: None,
        };
        let long = SnnOutput {
            logits: teacher.clone(),
            stage: None,
        };
        let targets = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64], [1]), &device);
        let tssd = Tssd::default();
        let parts = tssd.parts(&out, targets.clone(), None, Some(&long));
        // z_s = mean of both student steps = [2, 0]; z_t = [1, 1].
        let task = -(2.0f64 - (2.0f64.exp() + 1.0).ln());
        let tsd = kl_by_hand(&[1.0, 1.0], &[2.0, 0.0], tssd.temperature);
        assert!((vals(parts.task.clone())[0] as f64 - task).abs() < 1e-5);
        assert!((vals(parts.tsd.clone())[0] as f64 - tsd).abs() < 1e-5);
        // The detached teacher gets no gradient; both student steps do.
        let extras = LossExtras {
            aux: None,
            teacher: None,
            long: Some(&long),
        };
        let grads = tssd
            .loss_with(&out, targets, progress(), &extras)
            .backward();
        let g = vals(student.grad(&grads).unwrap());
        assert!(g.iter().all(|v| v.abs() > 1e-6), "{g:?}");
        assert!(teacher.grad(&grads).is_none());
        assert!(tssd.rebins_long_window());
        let extend = Tssd {
            event_teacher: EventTeacher::Extend,
            ..tssd
        };
        assert!(!extend.rebins_long_window());
    }

    #[test]
    fn validate_names_fields() {
        assert!(Tssd::default().validate().is_ok());
        for (bad, field) in [
            (
                Tssd {
                    extra_timesteps: 0,
                    ..Tssd::default()
                },
                "objective.extra_timesteps",
            ),
            (
                Tssd {
                    alpha: -1.0,
                    ..Tssd::default()
                },
                "objective.alpha",
            ),
            (
                Tssd {
                    beta: f64::NAN,
                    ..Tssd::default()
                },
                "objective.beta",
            ),
            (
                Tssd {
                    temperature: 0.0,
                    ..Tssd::default()
                },
                "objective.temperature",
            ),
        ] {
            let e = bad.validate().unwrap_err();
            assert_eq!(e.field, field);
        }
    }

    fn progress() -> Progress {
        Progress {
            epoch: 0,
            epochs: 1,
            step: 0,
            steps_per_epoch: 1,
        }
    }
}
