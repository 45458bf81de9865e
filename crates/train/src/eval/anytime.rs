//! Anytime (early-exit) inference: a sample stops at the first timestep t whose running-mean
//! output `mean_{s ≤ t} o_s` has a softmax confidence (largest probability) of at least the
//! threshold, or at the last timestep; its prediction is that running mean's argmax.

use serde::{Deserialize, Serialize};

use super::analysis::{SampleLogits, softmax};
use super::argmax;

/// One threshold's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnytimePoint {
    /// Confidence threshold.
    pub threshold: f64,
    /// Top-1 accuracy with early exit.
    pub accuracy: f64,
    /// Mean number of timesteps used per sample.
    pub mean_timesteps: f64,
    /// How many samples exited at t = 1, 2, …, T.
    pub exits: Vec<usize>,
}

/// `anytime.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnytimeFile {
    /// Checkpoint file evaluated.
    pub checkpoint: String,
    /// Maximum timesteps T.
    pub timesteps: usize,
    /// Accuracy using all T timesteps.
    pub full_accuracy: f64,
    /// One point per threshold.
    pub points: Vec<AnytimePoint>,
}

/// Exit timestep (1-based) and predicted class of one sample's logits `[T, C]`.
pub fn exit_of(sample: &[f32], classes: usize, threshold: f64) -> (usize, usize) {
    let steps = sample.len() / classes;
    let mut sum = vec![0f32; classes];
    for t in 0..steps {
        sum.iter_mut()
            .zip(&sample[t * classes..(t + 1) * classes])
            .for_each(|(s, v)| *s += v);
        let mean: Vec<f32> = sum.iter().map(|v| v / (t + 1) as f32).collect();
        let p = softmax(&mean);
        let conf = p.iter().cloned().fold(f32::MIN, f32::max) as f64;
        if conf >= threshold || t + 1 == steps {
            return (t + 1, argmax(&mean));
        }
    }
    (steps, argmax(&sum))
}

/// Early-exit accuracy and mean timesteps at one threshold.
pub fn anytime_at(logits: &SampleLogits, threshold: f64) -> AnytimePoint {
    let mut correct = 0usize;
    let mut used = 0usize;
    let mut exits = vec![0usize; logits.timesteps];
    for i in 0..logits.len() {
        let (t, pred) = exit_of(logits.sample(i), logits.classes, threshold);
        used += t;
        exits[t - 1] += 1;
        if pred == logits.labels[i] as usize {
            correct += 1;
        }
    }
    let n = logits.len().max(1) as f64;
    AnytimePoint {
        threshold,
        accuracy: correct as f64 / n,
        mean_timesteps: used as f64 / n,
        exits,
    }
}

/// The default threshold sweep: 0.5, 0.6, …, 0.9, 0.95, 0.99, 0.999, 1.0 (1.0 ≈ never exit early).
pub fn default_thresholds() -> Vec<f64> {
    vec![0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 0.999, 1.0]
}

/// [`anytime_at`] over `thresholds`.
pub fn anytime_curve(logits: &SampleLogits, thresholds: &[f64]) -> Vec<AnytimePoint> {
    thresholds
        .iter()
        .map(|&th| anytime_at(logits, th))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_on_constructed_logits() {
        // T=3, C=2. Sample 0 (label 0): t1 logits [4,0] → p≈0.982 ≥ 0.9, exits at 1, right.
        // Sample 1 (label 1): t1 [0,0] (0.5), t2 [0,6] → mean [0,3] → p≈0.953, exits at 2, right.
        // Sample 2 (label 0): never confident: [0,1],[1,0],[0,0.5] → exits at 3 with mean
        // [1/3, 1/2] → class 1, wrong.
        let l = SampleLogits {
            timesteps: 3,
            classes: 2,
            logits: vec![
                4.0, 0.0, 4.0, 0.0, 4.0, 0.0, //
                0.0, 0.0, 0.0, 6.0, 0.0, 0.0, //
                0.0, 1.0, 1.0, 0.0, 0.0, 0.5,
            ],
            labels: vec![0, 1, 0],
            features: None,
        };
        assert_eq!(exit_of(l.sample(0), 2, 0.9), (1, 0));
        assert_eq!(exit_of(l.sample(1), 2, 0.9), (2, 1));
        assert_eq!(exit_of(l.sample(2), 2, 0.9), (3, 1));
        let p = anytime_at(&l, 0.9);
        assert_eq!(p.exits, vec![1, 1, 1]);
        assert!((p.mean_timesteps - 2.0).abs() < 1e-12);
        assert!((p.accuracy - 2.0 / 3.0).abs() < 1e-12);
        // Threshold 0.5 exits everyone at t=1; sample 1 then predicts class 0 (tie → first).
        let p = anytime_at(&l, 0.5);
        assert_eq!(p.exits, vec![3, 0, 0]);
        assert!((p.accuracy - 1.0 / 3.0).abs() < 1e-12);
    }
}
