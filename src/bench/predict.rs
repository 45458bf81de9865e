//! `tks bench --predict`: single-sample latency of `tks predict`'s network call
//! ([`tks_deploy::predict::Predictor`], batch 1, inference mode, BatchNorm folded) after a few
//! training steps on the bench's random data, with the spike-aware convolution (`auto`) and
//! dense, same weights and inputs: per-sample p50 / p99 / mean in ms and samples per second.

use std::time::Instant;

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use serde::Serialize;

use super::{BenchConfig, batches, bench_optimizer, objective, round, train_step, tune_allocator};
use crate::kernels::{ConvMode, SetKernels};
use tks_deploy::predict::{Predictor, percentiles};

/// One conv mode's latencies.
#[derive(Debug, Clone, Serialize)]
pub struct PredictTiming {
    /// `auto` (spike-aware where sparse) or `dense`.
    pub conv_mode: &'static str,
    /// Timed samples.
    pub samples: usize,
    /// Median latency per sample, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Mean, ms.
    pub mean_ms: f64,
    /// 1000 / mean.
    pub samples_per_s: f64,
}

/// The JSON line of `tks bench --predict`.
#[derive(Debug, Clone, Serialize)]
pub struct PredictResult {
    /// `tks`.
    pub implementation: &'static str,
    /// `predict`.
    pub pass: &'static str,
    /// The network and T (batch is 1).
    pub config: BenchConfig,
    /// Training steps before timing (firing rates move away from initialisation).
    pub train_steps_before: usize,
    /// Spike-aware convolution.
    pub main: PredictTiming,
    /// Dense convolution.
    pub dense: PredictTiming,
    /// p50 dense / p50 auto.
    pub dense_over_auto: f64,
}

/// Times `config.steps` single-sample predictions per conv mode.
pub fn run_predict(config: &BenchConfig, train_steps: usize) -> anyhow::Result<PredictResult> {
    anyhow::ensure!(config.steps >= 1, "no timed samples (--steps 0)");
    tune_allocator();
    let plain = Device::flex();
    plain.seed(config.seed);
    let device = plain.autodiff();
    let mut model = config.model_config().init_with(&device, &config.kernels)?;
    let data = batches(config, &device);
    let objective = objective(&config.loss)?;
    let mut optimizer = bench_optimizer();
    for step in 0..train_steps {
        let (x, y) = data[step % data.len()].clone();
        (model, _) = train_step(model, &mut optimizer, objective.as_ref(), x, y);
    }
    let model = model.valid();
    // Single samples [T, 1, C, H, W] from the bench batches.
    let samples: Vec<Tensor<5>> = data
        .iter()
        .flat_map(|(x, _)| {
            let x = x.clone().inner();
            let b = x.dims()[1];
            (0..b).map(move |i| x.clone().narrow(1, i, 1))
        })
        .collect();
    let time = |mode: ConvMode| {
        let mut m = model.clone();
        m.set_kernels(&config.kernels.with_conv_mode(mode));
        let predictor = Predictor::new(&m);
        for x in samples.iter().take(3) {
            let _ = predictor.logits(x.clone());
        }
        let times: Vec<f64> = (0..config.steps)
            .map(|i| {
                let x = samples[i % samples.len()].clone();
                let t0 = Instant::now();
                let _ = predictor.logits(x);
                t0.elapsed().as_secs_f64()
            })
            .collect();
        let (p50, p99) = percentiles(&times);
        let mean = times.iter().sum::<f64>() / times.len() as f64;
        PredictTiming {
            conv_mode: mode.name(),
            samples: times.len(),
            p50_ms: round(1e3 * p50, 3),
            p99_ms: round(1e3 * p99, 3),
            mean_ms: round(1e3 * mean, 3),
            samples_per_s: round(1.0 / mean, 1),
        }
    };
    let main = time(ConvMode::Auto);
    let dense = time(ConvMode::Dense);
    Ok(PredictResult {
        implementation: "tks",
        pass: "predict",
        config: config.clone(),
        train_steps_before: train_steps,
        dense_over_auto: round(dense.p50_ms / main.p50_ms, 3),
        main,
        dense,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::BenchModel;

    #[test]
    fn tiny_predict_bench_times_both_modes() {
        let mut c = BenchConfig::new(BenchModel::Smallcnn);
        (c.width, c.batch, c.timesteps, c.steps) = (0.25, 2, 2, 3);
        let r = run_predict(&c, 0).unwrap();
        assert_eq!((r.main.conv_mode, r.dense.conv_mode), ("auto", "dense"));
        assert_eq!(r.main.samples, 3);
        assert!(r.main.p50_ms > 0.0 && r.main.p99_ms >= r.main.p50_ms);
    }
}
