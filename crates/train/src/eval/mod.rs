//! Evaluation: top-1 accuracy of the time-averaged prediction, of each timestep's own output,
//! and of the running mean up to each timestep.

pub mod analysis;
pub mod anytime;
pub mod aurc;
pub mod energy;
pub mod sweep;
pub mod tsne;

use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::DataError;
use tks_core::layer::Encoder;
use tks_core::model::Model;
use tks_data::Dataset;

/// Accuracies of one evaluation pass.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// Samples evaluated.
    pub samples: usize,
    /// Timesteps the model ran.
    pub timesteps: usize,
    /// Top-1 accuracy of `mean_t o_t`.
    pub accuracy: f64,
    /// Top-1 accuracy of each timestep's own output `o_t`.
    pub per_timestep: Vec<f64>,
    /// Top-1 accuracy of the running mean `mean_{s ≤ t} o_s`.
    pub running_mean: Vec<f64>,
}

/// Counts of correct predictions from logits `[T, B, C]` and labels.
#[derive(Debug, Clone, Default)]
pub struct AccuracyCounter {
    samples: usize,
    mean_correct: usize,
    per_timestep: Vec<usize>,
    running: Vec<usize>,
}

impl AccuracyCounter {
    /// The counts of every rank of `collective` added together (a data-parallel epoch's
    /// accuracy over all its samples). Every rank must have counted at least one batch.
    pub fn all_reduce(&mut self, collective: &dyn tks_core::collective::Collective) {
        let mut counts: Vec<f64> = [self.samples, self.mean_correct]
            .into_iter()
            .chain(self.per_timestep.iter().copied())
            .chain(self.running.iter().copied())
            .map(|c| c as f64)
            .collect();
        collective.all_reduce_sum_f64(&mut counts);
        let mut it = counts.into_iter().map(|c| c.round() as usize);
        self.samples = it.next().unwrap_or(0);
        self.mean_correct = it.next().unwrap_or(0);
        for c in self.per_timestep.iter_mut().chain(self.running.iter_mut()) {
            *c = it.next().unwrap_or(0);
        }
    }

    /// Adds one batch of logits `[T, B, C]` (as plain values) with labels `[B]`.
    pub fn add(&mut self, logits: &[f32], dims: [usize; 3], labels: &[u32]) {
        let [t_steps, batch, classes] = dims;
        if self.per_timestep.is_empty() {
            self.per_timestep = vec![0; t_steps];
            self.running = vec![0; t_steps];
        }
        let mut sum = vec![0f32; classes];
        for (b, &label) in labels.iter().enumerate().take(batch) {
            sum.iter_mut().for_each(|v| *v = 0.0);
            for t in 0..t_steps {
                let row = &logits[(t * batch + b) * classes..(t * batch + b + 1) * classes];
                if argmax(row) == label as usize {
                    self.per_timestep[t] += 1;
                }
                sum.iter_mut().zip(row).for_each(|(s, v)| *s += v);
                if argmax(&sum) == label as usize {
                    self.running[t] += 1;
                }
            }
            if argmax(&sum) == label as usize {
                self.mean_correct += 1;
            }
        }
        self.samples += batch;
    }

    /// The report.
    pub fn report(&self) -> EvalReport {
        let n = self.samples.max(1) as f64;
        EvalReport {
            samples: self.samples,
            timesteps: self.per_timestep.len(),
            accuracy: self.mean_correct as f64 / n,
            per_timestep: self.per_timestep.iter().map(|&c| c as f64 / n).collect(),
            running_mean: self.running.iter().map(|&c| c as f64 / n).collect(),
        }
    }
}

/// Index of the largest value; ties go to the first (as PyTorch's `argmax`).
pub fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, v) in row.iter().enumerate() {
        if *v > row[best] {
            best = i;
        }
    }
    best
}

/// Plain `f32` values of a tensor.
pub fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("f32 tensor data")
}

/// Evaluates `model` (switched to inference mode) on `data` at `timesteps`.
///
/// Fails only for a streamed set whose file vanished or changed since it was loaded (its files
/// were checked then); the error names the file.
pub fn evaluate(
    model: &Model,
    data: &Dataset,
    timesteps: usize,
    batch_size: usize,
    encoder: Encoder,
    device: &Device,
) -> Result<EvalReport, DataError> {
    let model = burn::module::Module::valid(model);
    let mut counter = AccuracyCounter::default();
    let order = data.order(false, 0, 0);
    let batches = data.batches(&order, batch_size.max(1), None);
    for (chunk, host) in order.chunks(batch_size.max(1)).zip(batches) {
        let batch = host?.to_batch(timesteps, encoder, device);
        let logits = model.forward(batch.frames);
        let dims = logits.dims();
        let labels: Vec<u32> = chunk.iter().map(|&i| data.labels[i]).collect();
        counter.add(&values(logits), dims, &labels);
    }
    Ok(counter.report())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_by_hand() {
        // T=2, B=2, C=3. Sample 0 (label 2): t0 → 0 wrong, t1 → 2 right; mean [1,0,1.5] → 2 right.
        // Sample 1 (label 1): t0 → 1 right, t1 → 0 wrong; mean [2.5,1.5,0] → 0 wrong.
        let logits = [
            1.0, 0.0, 0.5, /* t0 b1 */ 0.0, 3.0, 0.0, /* t1 b0 */ 1.0, 0.0, 2.5,
            /* t1 b1 */ 5.0, 0.0, 0.0,
        ];
        let mut c = AccuracyCounter::default();
        c.add(&logits, [2, 2, 3], &[2, 1]);
        let r = c.report();
        assert_eq!(r.samples, 2);
        assert_eq!(r.per_timestep, vec![0.5, 0.5]);
        assert_eq!(r.running_mean, vec![0.5, 0.5]);
        assert_eq!(r.accuracy, 0.5);
        assert_eq!(argmax(&[1.0, 3.0, 3.0]), 1);
    }
}
