//! Training throughput benchmark: the exact configurations of `snn_reference.py bench`
//! (`../shared/reference/README.md`), so `bench/compare.sh` can put both side by side.
//!
//! * VGG-SNN width 0.25 on `2×48×48` DVS-like Bernoulli(0.15) frames, `T = 4` or `8`, batch 16;
//! * the small CNN on a random `1×28×28` image repeated over `T = 4`, batch 64;
//!
//! LIF (threshold 1, decay 0.5, hard reset, triangle surrogate), AdamW (lr 1e-3, weight decay
//! 0.01), the TKS loss (τ = 3, α = 0.7, at epoch 10 of 100) or the baseline; four random batches
//! cycled; 3 warm-up steps, then `steps` timed steps of forward + loss + backward + optimizer
//! step. Peak RSS is the kernel's `VmHWM` (reset through `/proc/self/clear_refs` before each
//! measured phase when the kernel allows it); CPU time is the process's user + system time.
//!
//! [`run`] also times the same configuration with the reference LIF path (plain burn ops) so
//! the output carries the fused-vs-reference ratio measured back to back in one process, and
//! with burn's own average pooling and BatchNorm instead of the fused layer ops
//! ([`crate::layer::fused_pool`], [`crate::layer::fused_bn`]) for the layers' ratio.

pub mod distributed;
mod micro;
pub mod predict;
pub use micro::{ConvMicroRow, conv_micro, lif_micro};

use std::time::Instant;

use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Distribution, Int, Tensor};
use serde::Serialize;

use crate::kernels::{ConvMode, KernelPolicy, LayerPath, SetKernels};
use crate::model::{Model, ModelConfig, SmallCnnConfig, VggSnnConfig};
use crate::neuron::LifPath;
use crate::objective::{ObjectiveConfig, Progress, Tks};

/// Which network to benchmark.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BenchModel {
    /// VGG-SNN (TET/TKS) on 2×48×48 frames.
    Vggsnn,
    /// The small CNN on 1×28×28 images.
    Smallcnn,
}

impl BenchModel {
    /// `vggsnn` / `smallcnn`, as `snn_reference.py --model`.
    pub fn from_name(name: &str) -> anyhow::Result<Self> {
        match name {
            "vggsnn" | "vgg_snn" => Ok(Self::Vggsnn),
            "smallcnn" | "small_cnn" => Ok(Self::Smallcnn),
            other => anyhow::bail!("unknown bench model `{other}` (vggsnn, smallcnn)"),
        }
    }
}

/// One benchmark configuration.
#[derive(Clone, Debug, Serialize)]
pub struct BenchConfig {
    /// The network.
    pub model: BenchModel,
    /// Channel multiplier (VGG-SNN; the reference's default 0.25; 1.0 for the small CNN).
    pub width: f64,
    /// Timesteps.
    pub timesteps: usize,
    /// Batch size.
    pub batch: usize,
    /// Timed steps (after 3 warm-up steps).
    pub steps: usize,
    /// `tks` or `baseline`.
    pub loss: String,
    /// Seed of the weights and the random data.
    pub seed: u64,
    /// The LIF path of the main measurement.
    #[serde(skip)]
    pub lif_path: LifPath,
    /// Also time the other LIF path (same process, right after) and report the ratio.
    pub compare_lif: bool,
    /// The layer path (avg-pool, BatchNorm) of the main measurement.
    #[serde(skip)]
    pub layer_path: LayerPath,
    /// Also time the other layer path (same LIF path, same process, right after).
    pub compare_layers: bool,
    /// The rest of the kernel policy (convolution mode and thresholds, spike packing); its
    /// layer and neuron paths are replaced by `layer_path` and `lif_path`.
    #[serde(skip)]
    pub kernels: KernelPolicy,
    /// Where the steps run (`tks bench --device`): `None` = Flex as always. Given, the weights
    /// and the random batches are still made on Flex (same seed, same values on every device)
    /// and then moved, so two devices' losses can be compared.
    #[serde(skip)]
    pub device: Option<(Device, crate::device::DeviceSpec)>,
}

impl BenchConfig {
    /// The reference's defaults for `model` (`T = 4`; batch 16 for VGG-SNN, 64 for the CNN).
    pub fn new(model: BenchModel) -> Self {
        let (width, batch) = match model {
            BenchModel::Vggsnn => (0.25, 16),
            BenchModel::Smallcnn => (1.0, 64),
        };
        Self {
            model,
            width,
            timesteps: 4,
            batch,
            steps: 10,
            loss: "tks".into(),
            seed: 0,
            lif_path: LifPath::Fused,
            compare_lif: true,
            layer_path: LayerPath::Fused,
            compare_layers: true,
            kernels: KernelPolicy::default(),
            device: None,
        }
    }

    /// The three configurations of the reference table.
    pub fn reference_grid() -> Vec<Self> {
        let mut vgg8 = Self::new(BenchModel::Vggsnn);
        vgg8.timesteps = 8;
        vec![
            Self::new(BenchModel::Vggsnn),
            vgg8,
            Self::new(BenchModel::Smallcnn),
        ]
    }

    fn model_config(&self) -> ModelConfig {
        match self.model {
            BenchModel::Vggsnn => ModelConfig::VggSnn(VggSnnConfig {
                width: self.width,
                ..Default::default()
            }),
            BenchModel::Smallcnn => {
                let base = SmallCnnConfig::default();
                let scale = |c: usize| ((c as f64 * self.width).round() as usize).max(1);
                ModelConfig::SmallCnn(SmallCnnConfig {
                    channels: [scale(base.channels[0]), scale(base.channels[1])],
                    ..base
                })
            }
        }
    }
}

impl BenchConfig {
    /// Multiply-add FLOPs (2 per MAC) of every 3×3 conv in one training step: forward, input
    /// gradient and weight gradient (3× the forward), summed over `T·B`.
    pub fn conv_flops_per_step(&self) -> f64 {
        let scale = |c: usize| ((c as f64 * self.width).round() as usize).max(1);
        // (c_in, c_out, side) of every conv.
        let mut convs = Vec::new();
        match self.model {
            BenchModel::Vggsnn => {
                let (mut c, mut side) = (2, 48);
                for [a, b] in [[64, 128], [256, 256], [512, 512], [512, 512]] {
                    convs.push((c, scale(a), side));
                    convs.push((scale(a), scale(b), side));
                    c = scale(b);
                    side /= 2;
                }
            }
            BenchModel::Smallcnn => {
                convs.push((1, scale(32), 28));
                convs.push((scale(32), scale(64), 14));
            }
        }
        let fwd: f64 = convs
            .iter()
            .map(|&(ci, co, s)| 2.0 * (ci * co * 9 * s * s) as f64)
            .sum();
        3.0 * fwd * (self.timesteps * self.batch) as f64
    }
}

/// Timings of one measured phase.
#[derive(Clone, Debug, Serialize)]
pub struct Timing {
    /// `reference` or `fused`.
    pub lif_path: &'static str,
    /// `reference` (burn's avg-pool and BatchNorm) or `fused`.
    pub layer_path: &'static str,
    /// Timed steps.
    pub steps_timed: usize,
    /// Batch · steps / wall time.
    pub samples_per_s: f64,
    /// Mean wall ms per step.
    pub ms_per_step: f64,
    /// Median wall ms per step.
    pub ms_per_step_median: f64,
    /// Fastest step.
    pub ms_per_step_min: f64,
    /// Process CPU ms per step (all threads, user + system).
    pub cpu_ms_per_step: f64,
    /// CPU time / wall time / cores, in `[0, 1]`.
    pub cpu_utilisation: f64,
    /// Peak resident set during this phase (`VmHWM`, MiB); a process-wide maximum if the
    /// kernel refused to reset it.
    pub peak_rss_mib: f64,
    /// Conv FLOPs of one step (forward + both gradients) ÷ median step time, GFLOP/s: a lower
    /// bound on the conv layers' achieved rate (the step also runs BN, LIF, pooling, the loss).
    pub conv_gflops_lower_bound: f64,
    /// Whether `VmHWM` was reset before the phase.
    pub peak_rss_reset: bool,
    /// Loss of the first and last step (sanity: finite, same start for both paths).
    pub loss_first: f32,
    /// Loss of the last step.
    pub loss_last: f32,
    /// Loss of every step (warm-up included).
    pub losses: Vec<f32>,
}

/// The JSON line of one configuration.
#[derive(Clone, Debug, Serialize)]
pub struct BenchResult {
    /// Always `tks`.
    pub implementation: &'static str,
    /// The configuration.
    #[serde(flatten)]
    pub config: BenchConfig,
    /// Trainable parameters.
    pub params: usize,
    /// Conv GFLOP per training step (forward + input and weight gradients).
    pub conv_gflop_per_step: f64,
    /// Logical cores available (`std::thread::available_parallelism`).
    pub cores: usize,
    /// Rayon worker threads.
    pub threads: usize,
    /// Resident set before building the model (MiB).
    pub rss_start_mib: f64,
    /// Whether [`tune_allocator`] applied (glibc keeps freed memory; `TKS_MALLOC_TUNE=0` skips).
    pub malloc_tuned: bool,
    /// 1-minute load average at the start and the end (a busy machine makes timings noisy).
    pub loadavg_1m_start_end: [f64; 2],
    /// The kernel policy of the main measurement ([`KernelPolicy::summary`]).
    pub kernels: String,
    /// The main measurement.
    #[serde(flatten)]
    pub main: Timing,
    /// The other LIF path, measured right after in the same process.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub other_lif_path: Option<Timing>,
    /// Median ms/step of the reference LIF path ÷ the fused path's (> 1: fused is faster).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lif_reference_over_fused: Option<f64>,
    /// The other layer path (with the main LIF path), measured right after in the same process.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub other_layer_path: Option<Timing>,
    /// Median ms/step with burn's avg-pool and BatchNorm ÷ with the fused layer ops.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layers_reference_over_fused: Option<f64>,
}

/// `VmHWM` / `VmRSS` of this process in MiB (0 where `/proc` is missing).
pub fn proc_status_mib(key: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Resets `VmHWM` to the current RSS (`echo 5 > /proc/self/clear_refs`); false if refused.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Process CPU time (user + system) in seconds, from `/proc/self/stat` (clock ticks of 1/100 s).
pub fn process_cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the `(comm)`: state is the 3rd field overall; utime/stime are the 14th/15th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn loadavg() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

pub(crate) fn round(x: f64, digits: i32) -> f64 {
    let p = 10f64.powi(digits);
    (x * p).round() / p
}

/// Four random batches `(x [T, B, C, H, W], y [B])` like the reference's `random_batch`.
fn batches(config: &BenchConfig, device: &Device) -> Vec<(Tensor<5>, Tensor<1, Int>)> {
    let (t, b) = (config.timesteps, config.batch);
    (0..4)
        .map(|_| {
            let x = match config.model {
                BenchModel::Vggsnn => {
                    Tensor::<5>::random([t, b, 2, 48, 48], Distribution::Bernoulli(0.15), device)
                }
                BenchModel::Smallcnn => {
                    Tensor::<5>::random([1, b, 1, 28, 28], Distribution::Uniform(0.0, 1.0), device)
                        .repeat_dim(0, t)
                }
            };
            let y = Tensor::<1, Int>::random([b], Distribution::Uniform(0.0, 10.0), device);
            (x, y)
        })
        .collect()
}

/// Where the benchmark's loss is in its schedule: epoch 10 of 100, as `snn_reference.py bench`.
const BENCH_PROGRESS: Progress = Progress {
    epoch: 10,
    epochs: 100,
    step: 0,
    steps_per_epoch: 1,
};

/// The benchmark's optimizer: AdamW with weight decay 0.01 and ε 1e-8 (the reference's
/// `torch.optim.AdamW` settings).
fn bench_optimizer() -> ModuleOptimizer {
    AdamWConfig::new()
        .with_weight_decay(0.01)
        .with_epsilon(1e-8)
        .init()
}

/// One training step of the benchmark (forward, loss at [`BENCH_PROGRESS`], backward, AdamW at
/// lr 1e-3): the updated model and the loss value.
fn train_step(
    model: Model,
    optimizer: &mut ModuleOptimizer,
    objective: &dyn crate::objective::Objective,
    x: Tensor<5>,
    y: Tensor<1, Int>,
) -> (Model, f32) {
    let output = model.forward_output(x, objective.needs_stage());
    let loss = objective.loss(&output, y, BENCH_PROGRESS);
    let loss_value = crate::eval::values(loss.clone().detach())[0];
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    (optimizer.step(1e-3, model, grads), loss_value)
}

fn objective(name: &str) -> anyhow::Result<Box<dyn crate::objective::Objective>> {
    let config = match name {
        "tks" => ObjectiveConfig::Tks(Tks {
            temperature: 3.0,
            alpha: 0.7,
            ..Tks::default()
        }),
        other => ObjectiveConfig::from_name(other)?,
    };
    Ok(config.build()?)
}

/// Trains `config` for 3 + `steps` steps with the LIF `path` and the layer path `layers`, and
/// times the last `steps`.
fn measure(
    config: &BenchConfig,
    path: LifPath,
    layers: LayerPath,
) -> anyhow::Result<(Timing, usize)> {
    let kernels = KernelPolicy {
        neurons: path,
        layers,
        ..config.kernels
    };
    let plain = Device::flex();
    plain.seed(config.seed);
    let device = plain.autodiff();
    release_free_memory();
    let peak_rss_reset = reset_peak_rss();
    let mut model = config.model_config().init_with(&device, &kernels)?;
    let params = crate::params::trainable_params(&model);
    let mut data = batches(config, &device);
    if let Some((target, spec)) = &config.device {
        // Materialise the lazily initialised weights on Flex, then move weights and batches.
        crate::params::materialise(&model);
        let target = target.clone().autodiff();
        let kernels = crate::device::kernels_for(kernels, &target, *spec);
        model = crate::kernels::SetKernels::with_kernels(model.fork(&target), &kernels);
        data = data
            .into_iter()
            .map(|(x, y)| (x.to_device(&target), y.to_device(&target)))
            .collect();
    }
    let objective = objective(&config.loss)?;
    let mut optimizer = bench_optimizer();
    let warm = 3;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (mut times, mut losses) = (Vec::new(), Vec::new());
    let (mut cpu, mut wall) = (0.0, 0.0);
    for step in 0..warm + config.steps {
        let (x, y) = data[step % data.len()].clone();
        let (t0, c0) = (Instant::now(), process_cpu_seconds());
        let loss_value;
        (model, loss_value) = train_step(model, &mut optimizer, objective.as_ref(), x, y);
        let dt = t0.elapsed().as_secs_f64();
        if step >= warm {
            times.push(dt);
            cpu += process_cpu_seconds() - c0;
            wall += dt;
        }
        losses.push(loss_value);
    }
    anyhow::ensure!(!times.is_empty(), "no timed steps (--steps 0)");
    let n = times.len() as f64;
    let (samples_per_s, ms_per_step, ms_per_step_median, ms_per_step_min) =
        step_stats(&times, config.batch, 2);
    let timing = Timing {
        lif_path: path.name(),
        layer_path: layers.name(),
        steps_timed: times.len(),
        samples_per_s,
        ms_per_step,
        ms_per_step_median,
        ms_per_step_min,
        cpu_ms_per_step: round(1000.0 * cpu / n, 2),
        cpu_utilisation: round(cpu / wall / cores as f64, 3),
        peak_rss_mib: round(proc_status_mib("VmHWM:"), 1),
        conv_gflops_lower_bound: round(
            config.conv_flops_per_step() / (ms_per_step_median / 1000.0) / 1e9,
            2,
        ),
        peak_rss_reset,
        loss_first: losses[0],
        loss_last: *losses.last().unwrap(),
        losses: losses.clone(),
    };
    Ok((timing, params))
}

/// `(samples/s, mean ms, median ms, fastest ms)` of timed steps (seconds) of `batch` samples.
fn step_stats(times: &[f64], batch: usize, digits: i32) -> (f64, f64, f64, f64) {
    let wall: f64 = times.iter().sum();
    let n = times.len() as f64;
    let mut sorted = times.to_vec();
    sorted.sort_by(f64::total_cmp);
    (
        round(batch as f64 * n / wall, 3),
        round(1000.0 * wall / n, digits),
        round(1000.0 * sorted[sorted.len() / 2], digits),
        round(1000.0 * sorted[0], digits),
    )
}

/// Makes glibc keep freed memory in the process instead of handing it back to the kernel after
/// every step (`M_MMAP_THRESHOLD` 32 MiB, `M_TRIM_THRESHOLD` 1 GiB): by default every large
/// tensor buffer is a fresh `mmap` (or a trimmed heap top), so each step page-faults and zeroes
/// its whole working set again (≈ 10 % of a step in the profile). Peak RSS does not change (the
/// memory is reused, not added). `TKS_MALLOC_TUNE=0` skips it; true if applied.
pub fn tune_allocator() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        if std::env::var("TKS_MALLOC_TUNE").as_deref() == Ok("0") {
            return false;
        }
        // SAFETY: glibc's mallopt only sets allocator parameters; 1 means success.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20) == 1
                && libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30) == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

/// Hands the memory that [`tune_allocator`] kept back to the kernel (glibc `malloc_trim`), so
/// the next phase's peak RSS starts from what is live.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim only returns free heap memory to the kernel.
        unsafe {
            libc::malloc_trim(0);
        }
    }
}

/// Runs one configuration (and, with `compare_lif`, the other LIF path right after).
pub fn run(config: &BenchConfig) -> anyhow::Result<BenchResult> {
    let malloc_tuned = tune_allocator();
    let load0 = loadavg();
    let rss_start_mib = round(proc_status_mib("VmRSS:"), 1);
    let (main, params) = measure(config, config.lif_path, config.layer_path)?;
    let other = if config.compare_lif {
        let path = match config.lif_path {
            LifPath::Fused => LifPath::Reference,
            LifPath::Reference => LifPath::Fused,
        };
        Some(measure(config, path, config.layer_path)?.0)
    } else {
        None
    };
    let ratio = other.as_ref().map(|o| {
        let (fused, reference) = match config.lif_path {
            LifPath::Fused => (&main, o),
            LifPath::Reference => (o, &main),
        };
        round(reference.ms_per_step_median / fused.ms_per_step_median, 3)
    });
    let other_layers = if config.compare_layers {
        let layers = match config.layer_path {
            LayerPath::Fused => LayerPath::Reference,
            LayerPath::Reference => LayerPath::Fused,
        };
        Some(measure(config, config.lif_path, layers)?.0)
    } else {
        None
    };
    let layers_ratio = other_layers.as_ref().map(|o| {
        let (fused, reference) = match config.layer_path {
            LayerPath::Fused => (&main, o),
            LayerPath::Reference => (o, &main),
        };
        round(reference.ms_per_step_median / fused.ms_per_step_median, 3)
    });
    Ok(BenchResult {
        implementation: "tks",
        config: config.clone(),
        params,
        conv_gflop_per_step: round(config.conv_flops_per_step() / 1e9, 3),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        threads: rayon::current_num_threads(),
        rss_start_mib,
        malloc_tuned,
        loadavg_1m_start_end: [round(load0, 2), round(loadavg(), 2)],
        kernels: KernelPolicy {
            layers: config.layer_path,
            neurons: config.lif_path,
            ..config.kernels
        }
        .summary(),
        main,
        other_lif_path: other,
        lif_reference_over_fused: ratio,
        other_layer_path: other_layers,
        layers_reference_over_fused: layers_ratio,
    })
}

/// One timed inference phase of [`run_inference`].
#[derive(Clone, Debug, Serialize)]
pub struct InferenceTiming {
    /// `dense` (im2col + gemm everywhere) or `auto` (spike-aware where the input is sparse).
    pub conv_mode: &'static str,
    /// Timed forward passes (after 3 warm-up passes).
    pub steps_timed: usize,
    /// Batch · passes / wall time.
    pub samples_per_s: f64,
    /// Mean wall ms per forward pass of a batch.
    pub ms_per_step: f64,
    /// Median wall ms per pass.
    pub ms_per_step_median: f64,
    /// Fastest pass.
    pub ms_per_step_min: f64,
    /// CPU time / wall time / cores.
    pub cpu_utilisation: f64,
    /// Peak resident set during this phase (MiB).
    pub peak_rss_mib: f64,
    /// What the fused convolution did in the timed passes (calls, spike-aware calls, mean
    /// input density: the measured firing rates the sparse path sees).
    pub conv: crate::layer::fused_conv::ConvStats,
}

/// The JSON line of `tks bench --inference`.
#[derive(Clone, Debug, Serialize)]
pub struct InferenceResult {
    /// Always `tks`.
    pub implementation: &'static str,
    /// Always `inference`.
    pub pass: &'static str,
    /// The configuration (`steps` = timed forward passes).
    #[serde(flatten)]
    pub config: BenchConfig,
    /// Training steps run first (AdamW, as the training benchmark), so BatchNorm's running
    /// statistics and the firing rates are those of a network that has started to learn.
    pub train_steps_before: usize,
    /// Logical cores.
    pub cores: usize,
    /// Rayon worker threads.
    pub threads: usize,
    /// 1-minute load average at the start and the end.
    pub loadavg_1m_start_end: [f64; 2],
    /// The spike-aware measurement (the default mode) — also the flattened main numbers.
    #[serde(flatten)]
    pub main: InferenceTiming,
    /// The dense measurement, right after in the same process.
    pub dense: InferenceTiming,
    /// Median ms of dense ÷ auto (> 1: the spike-aware path is faster).
    pub dense_over_auto: f64,
    /// Largest |logit difference| between the two modes on the first batch (same inputs and
    /// weights: only the summation order differs).
    pub max_logit_difference: f32,
}

/// Times inference (forward only, no autodiff, BatchNorm on running statistics) of `config`'s
/// network, after `train_steps` training steps: `config.steps` passes with the automatic
/// (spike-aware where sparse) convolution and then with the dense one, same weights and data.
pub fn run_inference(config: &BenchConfig, train_steps: usize) -> anyhow::Result<InferenceResult> {
    use crate::layer::fused_conv;
    use burn::module::Module;
    anyhow::ensure!(config.steps >= 1, "no timed passes (--steps 0)");
    tune_allocator();
    let load0 = loadavg();
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
    let inputs: Vec<Tensor<5>> = data.iter().map(|(x, _)| x.clone().inner()).collect();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let time = |mode: ConvMode| -> (InferenceTiming, Vec<f32>) {
        let model = model
            .clone()
            .with_kernels(&config.kernels.with_conv_mode(mode));
        release_free_memory();
        reset_peak_rss();
        let first = crate::eval::values(model.forward_output(inputs[0].clone(), false).logits);
        for x in inputs.iter().take(2) {
            let _ = crate::eval::values(model.forward_output(x.clone(), false).logits);
        }
        fused_conv::take_stats();
        let (mut times, mut cpu) = (Vec::new(), 0.0);
        for i in 0..config.steps {
            let x = inputs[i % inputs.len()].clone();
            let (t0, c0) = (Instant::now(), process_cpu_seconds());
            let _ = crate::eval::values(model.forward_output(x, false).logits);
            times.push(t0.elapsed().as_secs_f64());
            cpu += process_cpu_seconds() - c0;
        }
        let wall: f64 = times.iter().sum();
        let (samples_per_s, ms_per_step, ms_per_step_median, ms_per_step_min) =
            step_stats(&times, config.batch, 3);
        let timing = InferenceTiming {
            conv_mode: mode.name(),
            steps_timed: times.len(),
            samples_per_s,
            ms_per_step,
            ms_per_step_median,
            ms_per_step_min,
            cpu_utilisation: round(cpu / wall / cores as f64, 3),
            peak_rss_mib: round(proc_status_mib("VmHWM:"), 1),
            conv: fused_conv::take_stats(),
        };
        (timing, first)
    };
    let (auto, auto_logits) = time(ConvMode::Auto);
    let (dense, dense_logits) = time(ConvMode::Dense);
    let max_logit_difference = auto_logits
        .iter()
        .zip(&dense_logits)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    Ok(InferenceResult {
        implementation: "tks",
        pass: "inference",
        config: config.clone(),
        train_steps_before: train_steps,
        cores,
        threads: rayon::current_num_threads(),
        loadavg_1m_start_end: [round(load0, 2), round(loadavg(), 2)],
        dense_over_auto: round(dense.ms_per_step_median / auto.ms_per_step_median, 3),
        main: auto,
        dense,
        max_logit_difference,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conv_flops_of_the_small_cnn() {
        let c = BenchConfig::new(BenchModel::Smallcnn);
        // conv1: 1→32 at 28², conv2: 32→64 at 14²; ×2 per MAC, ×3 fwd+bwd, ×T·B = 256.
        let fwd = 2.0 * (32.0 * 9.0 * 784.0 + 32.0 * 64.0 * 9.0 * 196.0);
        assert!((c.conv_flops_per_step() - 3.0 * fwd * 256.0).abs() < 1.0);
        assert_eq!(BenchConfig::reference_grid().len(), 3);
    }

    /// Serialises the tests that train: burn's device generator is process-wide, so two seeded
    /// runs at once would interleave their draws and change each other's numbers.
    static TRAINING: std::sync::Mutex<()> = std::sync::Mutex::new(());

    #[test]
    fn tiny_run_reports_both_paths_with_the_same_first_loss() {
        let _guard = TRAINING.lock().unwrap_or_else(|e| e.into_inner());
        let mut c = BenchConfig::new(BenchModel::Smallcnn);
        (c.width, c.batch, c.timesteps, c.steps) = (0.25, 2, 2, 1);
        let r = run(&c).unwrap();
        let other = r.other_lif_path.as_ref().unwrap();
        assert_eq!((r.main.lif_path, other.lif_path), ("fused", "reference"));
        assert!(r.main.loss_first.is_finite() && r.main.ms_per_step > 0.0);
        assert!((r.main.loss_first - other.loss_first).abs() < 1e-5);
        assert!(r.lif_reference_over_fused.unwrap() > 0.0);
        let layers = r.other_layer_path.as_ref().unwrap();
        assert_eq!(
            (r.main.layer_path, layers.layer_path),
            ("fused", "reference")
        );
        assert!((r.main.loss_first - layers.loss_first).abs() < 1e-4);
        assert!(r.layers_reference_over_fused.unwrap() > 0.0);
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.contains("\"samples_per_s\"") && json.contains("\"peak_rss_mib\""));
    }

    #[test]
    fn tiny_inference_run_times_both_conv_modes_on_the_same_network() {
        let _guard = TRAINING.lock().unwrap_or_else(|e| e.into_inner());
        let mut c = BenchConfig::new(BenchModel::Smallcnn);
        (c.width, c.batch, c.timesteps, c.steps) = (0.25, 2, 2, 2);
        let r = run_inference(&c, 1).unwrap();
        assert_eq!((r.main.conv_mode, r.dense.conv_mode), ("auto", "dense"));
        // Two convolutions per pass, two timed passes, in each mode; none sparse when dense.
        assert_eq!((r.main.conv.calls, r.dense.conv.calls), (4, 4));
        assert_eq!(r.dense.conv.sparse_calls, 0);
        assert!((0.0..=1.0).contains(&r.main.conv.mean_input_density));
        assert!(r.main.ms_per_step > 0.0 && r.dense_over_auto > 0.0);
        // Same weights and inputs: the logits agree up to summation order (or a flipped spike).
        assert!(r.max_logit_difference.is_finite() && r.max_logit_difference < 1.0);
    }

    #[test]
    fn proc_readers_work_on_linux() {
        if std::path::Path::new("/proc/self/status").exists() {
            assert!(proc_status_mib("VmRSS:") > 0.0);
            assert!(proc_status_mib("VmHWM:") >= proc_status_mib("VmRSS:") * 0.5);
        }
    }
}
