//! Micro-benchmarks of single kernels: the LIF neuron and one 3×3 convolution.

use std::time::Instant;

use burn::tensor::{Device, Distribution, Tensor};
use serde::Serialize;

use super::{round, tune_allocator};

/// LIF forward + backward alone on `[T, ...shape]` (autodiff), median ms of `reps` runs per
/// path: `(reference, fused)`.
pub fn lif_micro(shape: &[usize], reps: usize) -> anyhow::Result<(f64, f64)> {
    anyhow::ensure!(shape.len() == 5, "lif_micro expects [T, B, C, H, W]");
    let dims = [shape[0], shape[1], shape[2], shape[3], shape[4]];
    tune_allocator();
    let device = Device::flex().autodiff();
    device.seed(0);
    let neuron = crate::neuron::NeuronConfig::default().init(&device)?;
    let x = Tensor::<5>::random(dims, Distribution::Uniform(-0.5, 1.6), &device);
    let g = Tensor::<5>::random(dims, Distribution::Uniform(-1.0, 1.0), &device);
    let time = |fused: bool| {
        let mut ts = Vec::with_capacity(reps);
        for _ in 0..reps + 1 {
            let xi = x.clone().require_grad();
            let t0 = Instant::now();
            let s = if fused {
                neuron.forward_fused(xi.clone())
            } else {
                neuron.forward_reference(xi.clone())
            };
            let grads = (s * g.clone()).sum().backward();
            let gx = xi.grad(&grads).expect("gradient");
            let _ = crate::eval::values(gx.slice([0..1, 0..1, 0..1, 0..1, 0..1]));
            ts.push(t0.elapsed().as_secs_f64() * 1000.0);
        }
        ts.remove(0);
        ts.sort_by(f64::total_cmp);
        ts[ts.len() / 2]
    };
    let reference = time(false);
    let fused = time(true);
    Ok((round(reference, 3), round(fused, 3)))
}

/// One row of [`conv_micro`]: forward + backward of one conv layer on binary spikes at
/// `density`: the fastest of the timed repetitions (robust on a busy machine), in ms, of burn's
/// conv and of the fused op on each path.
#[derive(Clone, Debug, Serialize)]
pub struct ConvMicroRow {
    /// Input `[N, C_in, H, W]`.
    pub input: [usize; 4],
    /// Output channels.
    pub out_channels: usize,
    /// Fraction of input spikes.
    pub density: f64,
    /// Whether the timing is of the inference forward only (no autodiff) or forward+backward.
    pub pass: &'static str,
    /// burn's `Conv2d` (Flex).
    pub burn_ms: f64,
    /// The fused op, im2col + gemm.
    pub dense_ms: f64,
    /// The fused op, spike-aware.
    pub sparse_ms: f64,
    /// burn ÷ the faster fused path.
    pub burn_over_best: f64,
    /// dense ÷ sparse (> 1: the spike-aware path wins at this density).
    pub dense_over_sparse: f64,
}

/// Times one 3×3 "same" conv (`input` `[N, C_in, H, W]` → `out_channels`) at each spike
/// `density`: training (forward + backward) and inference (forward only), burn's conv vs the
/// fused dense and spike-aware paths, fastest of `reps` after one warm-up; `passes` lists the
/// passes to time (`true` = training, `false` = inference). Shows where the
/// spike-aware path breaks even ([`crate::kernels::KernelPolicy::max_density`]).
pub fn conv_micro(
    input: [usize; 4],
    out_channels: usize,
    densities: &[f64],
    reps: usize,
    passes: &[bool],
) -> anyhow::Result<Vec<ConvMicroRow>> {
    use crate::kernels::{ConvMode, KernelPolicy};
    use crate::layer::fused_conv;
    use burn::nn::PaddingConfig2d;
    use burn::nn::conv::Conv2dConfig;
    anyhow::ensure!(reps >= 1, "conv_micro: reps must be at least 1");
    tune_allocator();
    let dense = KernelPolicy::default().with_conv_mode(ConvMode::Dense);
    let sparse = KernelPolicy::default().with_conv_mode(ConvMode::Sparse);
    let mut rows = Vec::new();
    for &density in densities {
        anyhow::ensure!(
            (0.0..=1.0).contains(&density),
            "conv_micro: density {density} outside [0, 1]"
        );
        for &train in passes {
            let device = if train {
                Device::flex().autodiff()
            } else {
                Device::flex()
            };
            device.seed(0);
            let conv = Conv2dConfig::new([input[1], out_channels], [3, 3])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(&device);
            let x = Tensor::<4>::random(input, Distribution::Bernoulli(density), &device);
            let time = |which: u8| {
                let mut ts = Vec::with_capacity(reps + 1);
                for _ in 0..reps + 1 {
                    let xi = if train {
                        x.clone().require_grad()
                    } else {
                        x.clone()
                    };
                    let t0 = Instant::now();
                    let y = match which {
                        0 => conv.forward(xi.clone()),
                        1 => fused_conv::forward(&conv, xi.clone(), &dense),
                        _ => fused_conv::forward(&conv, xi.clone(), &sparse),
                    };
                    if train {
                        let grads = y.sum().backward();
                        let gw = conv.weight.val().grad(&grads).expect("weight gradient");
                        let _ = crate::eval::values(gw.slice([0..1, 0..1, 0..1, 0..1]));
                    } else {
                        let _ = crate::eval::values(y.slice([0..1, 0..1, 0..1, 0..1]));
                    }
                    ts.push(t0.elapsed().as_secs_f64() * 1000.0);
                }
                ts.remove(0);
                ts.into_iter().fold(f64::INFINITY, f64::min)
            };
            let (burn_ms, dense_ms, sparse_ms) = (time(0), time(1), time(2));
            rows.push(ConvMicroRow {
                input,
                out_channels,
                density,
                pass: if train { "train" } else { "inference" },
                burn_ms: round(burn_ms, 3),
                dense_ms: round(dense_ms, 3),
                sparse_ms: round(sparse_ms, 3),
                burn_over_best: round(burn_ms / dense_ms.min(sparse_ms), 3),
                dense_over_sparse: round(dense_ms / sparse_ms, 3),
            });
        }
    }
    Ok(rows)
}
