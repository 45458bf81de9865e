//! Everything `tks eval` reports, computed from the per-sample, per-timestep logits of one pass:
//! top-1/top-5, per-timestep and running-mean accuracy, AURC, per-class accuracy, confusion.

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::aurc::{RiskCoverage, risk_coverage};
use super::energy::{EnergyReport, OpEnergy};
use super::{AccuracyCounter, EvalReport, argmax, values};
use crate::error::DataError;
use tks_core::layer::Encoder;
use tks_core::model::Model;
use tks_data::Dataset;

/// Logits of every sample at every timestep, sample-major `[N, T, C]`, with labels.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleLogits {
    /// Timesteps T.
    pub timesteps: usize,
    /// Classes C.
    pub classes: usize,
    /// `N·T·C` values, sample-major.
    pub logits: Vec<f32>,
    /// `N` labels.
    pub labels: Vec<u32>,
    /// Penultimate features (time-mean of the classifier input), `N` rows, when collected.
    pub features: Option<Vec<Vec<f32>>>,
}

impl SampleLogits {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Logits `[T, C]` of sample `i`.
    pub fn sample(&self, i: usize) -> &[f32] {
        let n = self.timesteps * self.classes;
        &self.logits[i * n..(i + 1) * n]
    }

    /// Mean over the first `t` timesteps of sample `i`.
    pub fn running_mean(&self, i: usize, t: usize) -> Vec<f32> {
        let s = self.sample(i);
        let mut m = vec![0f32; self.classes];
        for step in 0..t {
            m.iter_mut()
                .zip(&s[step * self.classes..(step + 1) * self.classes])
                .for_each(|(a, v)| *a += v);
        }
        m.iter_mut().for_each(|v| *v /= t as f32);
        m
    }

    /// Only the first `t` timesteps of every sample (the running means then match a model run
    /// for `t` steps, since neurons are causal).
    pub fn truncated(&self, t: usize) -> SampleLogits {
        let t = t.min(self.timesteps);
        let mut logits = Vec::with_capacity(self.len() * t * self.classes);
        for i in 0..self.len() {
            logits.extend_from_slice(&self.sample(i)[..t * self.classes]);
        }
        SampleLogits {
            timesteps: t,
            classes: self.classes,
            logits,
            labels: self.labels.clone(),
            features: self.features.clone(),
        }
    }
}

/// Numerically stable softmax.
pub fn softmax(row: &[f32]) -> Vec<f32> {
    let m = row.iter().cloned().fold(f32::MIN, f32::max);
    let e: Vec<f32> = row.iter().map(|v| (v - m).exp()).collect();
    let s: f32 = e.iter().sum();
    e.iter().map(|v| v / s).collect()
}

/// Whether `label` is among the `k` largest entries of `row` (ties count against the label).
pub fn in_top_k(row: &[f32], label: usize, k: usize) -> bool {
    let v = row[label];
    let above = row
        .iter()
        .enumerate()
        .filter(|(i, x)| **x > v || (**x == v && *i < label))
        .count();
    above < k
}

/// Logits `[T, B, C]` and penultimate features `[T, B, F]` (the input of the last linear
/// layer, see [`Model::forward_features`]) of a forward pass; every architecture has them.
pub fn forward_with_features(model: &Model, x: Tensor<5>) -> (Tensor<3>, Option<Tensor<3>>) {
    let (logits, features) = model.forward_features(x);
    (logits, Some(features))
}

/// Runs `model` (inference mode) over `data` at `timesteps` and keeps every logit; with
/// `features`, also the penultimate features of the first `max_features` samples.
///
/// Fails only for a streamed set whose file vanished or changed since it was loaded; the error
/// names the file.
pub fn collect_logits(
    model: &Model,
    data: &Dataset,
    timesteps: usize,
    batch_size: usize,
    encoder: Encoder,
    device: &Device,
    max_features: usize,
) -> Result<SampleLogits, DataError> {
    let model = model.valid();
    let order = data.order(false, 0, 0);
    let mut out = SampleLogits {
        timesteps,
        classes: 0,
        logits: Vec::with_capacity(data.len() * timesteps * 10),
        labels: Vec::with_capacity(data.len()),
        features: (max_features > 0).then(Vec::new),
    };
    let batches = data.batches(&order, batch_size.max(1), None);
    for (chunk, host) in order.chunks(batch_size.max(1)).zip(batches) {
        let batch = host?.to_batch(timesteps, encoder, device);
        let want_features = out
            .features
            .as_ref()
            .is_some_and(|f| f.len() < max_features);
        super::energy::next_pass();
        let (logits, feats) = if want_features {
            forward_with_features(&model, batch.frames)
        } else {
            (model.forward(batch.frames), None)
        };
        let [t, b, c] = logits.dims();
        out.classes = c;
        let v = values(logits);
        for bi in 0..b {
            for ti in 0..t {
                let at = (ti * b + bi) * c;
                out.logits.extend_from_slice(&v[at..at + c]);
            }
        }
        out.labels.extend(chunk.iter().map(|&i| data.labels[i]));
        if let (Some(f), Some(store)) = (feats, out.features.as_mut()) {
            let [t, b, d] = f.dims();
            let fv = values(f.mean_dim(0).reshape([b, d]));
            let _ = t;
            for bi in 0..b {
                if store.len() < max_features {
                    store.push(fv[bi * d..(bi + 1) * d].to_vec());
                }
            }
        }
    }
    Ok(out)
}

/// Everything `tks eval` reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Analysis {
    /// Per-timestep and running-mean accuracy (top-1).
    pub report: EvalReport,
    /// Top-5 accuracy of the time-averaged output.
    pub top5: f64,
    /// Risk–coverage with confidence = max softmax of the time-averaged output.
    pub risk_coverage: RiskCoverage,
    /// AURC ×1000, as the paper reports it.
    pub aurc_x1000: f64,
    /// E-AURC ×1000.
    pub eaurc_x1000: f64,
    /// Per-class top-1 accuracy of the first timestep's output.
    pub per_class_t1: Vec<f64>,
    /// Per-class top-1 accuracy of the output averaged over all T.
    pub per_class_full: Vec<f64>,
    /// Confusion matrix at full T: `confusion[true][predicted]` counts.
    pub confusion: Vec<Vec<usize>>,
    /// Firing rates, synaptic operations and energy, when measured.
    pub energy: Option<EnergyReport>,
}

/// `eval.json`: which checkpoint, at which T, and the analysis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalFile {
    /// Checkpoint file evaluated.
    pub checkpoint: String,
    /// Epochs the checkpoint had completed.
    pub epoch: usize,
    /// Timesteps at test time.
    pub timesteps: usize,
    /// Timesteps the model was trained with.
    pub train_timesteps: usize,
    /// The numbers.
    pub analysis: Analysis,
}

/// Computes the [`Analysis`] of collected logits (without energy).
pub fn analyze(l: &SampleLogits) -> Analysis {
    let (t_steps, c) = (l.timesteps, l.classes);
    let mut counter = AccuracyCounter::default();
    let mut per_t = vec![0f32; 0];
    for i in 0..l.len() {
        // AccuracyCounter takes [T, B, C]; one sample at a time is B = 1.
        per_t.clear();
        per_t.extend_from_slice(l.sample(i));
        counter.add(&per_t, [t_steps, 1, c], &[l.labels[i]]);
    }
    let report = counter.report();
    let mut top5 = 0usize;
    let mut conf = Vec::with_capacity(l.len());
    let mut correct = Vec::with_capacity(l.len());
    let mut confusion = vec![vec![0usize; c]; c];
    let mut class_n = vec![0usize; c];
    let mut class_t1 = vec![0usize; c];
    let mut class_full = vec![0usize; c];
    for i in 0..l.len() {
        let label = l.labels[i] as usize;
        let mean = l.running_mean(i, t_steps);
        let pred = argmax(&mean);
        let p = softmax(&mean);
        conf.push(p[pred] as f64);
        correct.push(pred == label);
        if in_top_k(&mean, label, 5) {
            top5 += 1;
        }
        confusion[label][pred] += 1;
        class_n[label] += 1;
        if pred == label {
            class_full[label] += 1;
        }
        if argmax(&l.sample(i)[..c]) == label {
            class_t1[label] += 1;
        }
    }
    let rc = risk_coverage(&conf, &correct);
    let per = |hits: &[usize]| -> Vec<f64> {
        hits.iter()
            .zip(&class_n)
            .map(|(h, n)| if *n == 0 { 0.0 } else { *h as f64 / *n as f64 })
            .collect()
    };
    Analysis {
        report,
        top5: top5 as f64 / l.len().max(1) as f64,
        aurc_x1000: rc.aurc * 1000.0,
        eaurc_x1000: rc.eaurc * 1000.0,
        risk_coverage: rc,
        per_class_t1: per(&class_t1),
        per_class_full: per(&class_full),
        confusion,
        energy: None,
    }
}

/// Collects logits (and measures firing rates and operations) and analyses them; errors as
/// [`collect_logits`].
#[allow(clippy::too_many_arguments)]
pub fn evaluate_full(
    model: &Model,
    data: &Dataset,
    timesteps: usize,
    batch_size: usize,
    encoder: Encoder,
    device: &Device,
    energy: OpEnergy,
) -> Result<(Analysis, SampleLogits), DataError> {
    let guard = super::energy::Recording::start();
    let logits = collect_logits(model, data, timesteps, batch_size, encoder, device, 0);
    let recorded = guard.finish();
    let logits = logits?;
    let mut a = analyze(&logits);
    a.energy = Some(EnergyReport::new(recorded, energy, logits.len(), timesteps));
    Ok((a, logits))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn analysis_by_hand() {
        // T=2, C=6; sample 0 (label 2): t1 → 2, mean → 2. Sample 1 (label 5): t1 → 0; mean
        // [2,0,0,0,0,1] → 0 wrong; label 5 is 2nd → in top-5.
        let l = SampleLogits {
            timesteps: 2,
            classes: 6,
            logits: vec![
                0., 0., 3., 0., 0., 0., /* t2 */ 0., 0., 1., 0., 0., 0., //
                4., 0., 0., 0., 0., 0., /* t2 */ 0., 0., 0., 0., 0., 2.,
            ],
            labels: vec![2, 5],
            features: None,
        };
        let a = analyze(&l);
        assert_eq!(a.report.accuracy, 0.5);
        assert_eq!(a.report.per_timestep, vec![0.5, 1.0]);
        assert_eq!(a.report.running_mean, vec![0.5, 0.5]);
        assert_eq!(a.top5, 1.0);
        assert_eq!(a.per_class_t1[2], 1.0);
        assert_eq!(a.per_class_t1[5], 0.0);
        assert_eq!(a.confusion[5][0], 1);
        assert_eq!(a.confusion[2][2], 1);
        // Confidences: sample 0 (right) p = e^2/(e^2+5) ≈ .596; sample 1 (wrong) p =
        // e^2/(e^2+e+4) ≈ .517 → ranking ✓ ✗ → AURC = (0 + 1/2)/2 = 250 ×1000.
        assert!((a.aurc_x1000 - 250.0).abs() < 1e-9);
        assert!(in_top_k(&[1., 2., 3.], 0, 3) && !in_top_k(&[1., 2., 3.], 0, 2));
        assert_eq!(
            l.truncated(1).running_mean(1, 1),
            vec![4., 0., 0., 0., 0., 0.]
        );
    }

    #[test]
    fn features_for_every_architecture() {
        use tks_core::model::{ModelConfig, ResNet19Config, SewResNetConfig};
        let device = Device::flex();
        device.seed(9);
        let digits = tks_data::digits::load().unwrap();
        // Digits are 1×8×8; the features are the last linear layer's input.
        for (cfg, dim) in [
            (
                ModelConfig::ResNet19(ResNet19Config {
                    in_channels: 1.into(),
                    input_size: 8.into(),
                    width: 0.125,
                    ..Default::default()
                }),
                32,
            ),
            (
                ModelConfig::SewResNet(SewResNetConfig {
                    depth: 18,
                    in_channels: 1.into(),
                    input_size: 8.into(),
                    width: 0.125,
                    cifar_stem: true,
                    num_classes: 10.into(),
                    ..Default::default()
                }),
                64,
            ),
        ] {
            let model = cfg.init(&device).unwrap();
            let l =
                collect_logits(&model, &digits.test, 2, 64, Encoder::Direct, &device, 10).unwrap();
            let f = l.features.clone().unwrap();
            assert_eq!(f.len(), 10);
            assert!(f.iter().all(|r| r.len() == dim), "{cfg:?}");
            assert_eq!(
                (l.len(), l.timesteps, l.classes),
                (digits.test.len(), 2, 10)
            );
        }
    }
}
