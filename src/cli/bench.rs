//! `tks bench`: training throughput on the configurations of `snn_reference.py bench`, one JSON
//! line per configuration (see [`crate::bench`]).

use clap::Args;

use crate::bench::{BenchConfig, BenchModel, conv_micro, lif_micro, run, run_inference};
use crate::neuron::LifPath;

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// vggsnn or smallcnn (as `snn_reference.py bench --model`); `all` runs the reference grid
    /// (VGG-SNN T=4 and T=8 batch 16, small CNN T=4 batch 64) in this one process.
    #[arg(long, default_value = "vggsnn")]
    model: String,
    /// Channel multiplier (default 0.25 for vggsnn, 1.0 for smallcnn).
    #[arg(long)]
    width: Option<f64>,
    /// Timesteps.
    #[arg(long = "T", short = 'T', default_value_t = 4)]
    timesteps: usize,
    /// Batch size (default 16 for vggsnn, 64 for smallcnn).
    #[arg(long)]
    batch: Option<usize>,
    /// Timed steps after 3 warm-up steps.
    #[arg(long, default_value_t = 10)]
    steps: usize,
    /// tks or baseline (or any objective name without extra inputs).
    #[arg(long, default_value = "tks")]
    loss: String,
    /// LIF implementation of the main measurement.
    #[arg(long, value_enum, default_value = "fused")]
    lif_path: PathArg,
    /// Skip the second measurement with the other LIF path.
    #[arg(long)]
    no_compare_lif: bool,
    /// Skip the measurement with burn's own pooling and BatchNorm instead of the fused layers.
    #[arg(long)]
    no_compare_layers: bool,
    /// Seed of the weights and the random data.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Instead of training: time LIF forward+backward alone on `[T, B, C, H, W]` given as
    /// `T,B,C,H,W` (fused vs reference, median of 10).
    #[arg(long, value_delimiter = ',', num_args = 5)]
    lif_micro: Option<Vec<usize>>,
    /// Instead of training: time inference (forward passes, no autodiff, BatchNorm on running
    /// statistics) after `--train-steps` training steps, with the spike-aware convolution
    /// (auto) and then dense, same weights and data; `--steps` = timed passes.
    #[arg(long)]
    inference: bool,
    /// Instead of training: single-sample latency of `tks predict`'s network call (batch 1,
    /// p50/p99 over `--steps` samples) after `--train-steps` steps, spike-aware vs dense.
    #[arg(long, conflicts_with = "inference")]
    predict: bool,
    /// Training steps before `--inference` / `--predict` timing.
    #[arg(long, default_value_t = 10)]
    train_steps: usize,
    /// Instead of training: time one 3×3 conv layer, forward+backward and inference, burn's conv
    /// vs the fused dense and spike-aware paths, on binary input `N,C_in,H,W,C_out` (one JSON
    /// line per density of `--densities`).
    #[arg(long, value_delimiter = ',', num_args = 5)]
    conv_micro: Option<Vec<usize>>,
    /// Spike densities of `--conv-micro`, comma-separated, each within [0, 1].
    #[arg(
        long,
        value_delimiter = ',',
        value_parser = super::unit_interval,
        default_value = "0.02,0.05,0.1,0.15,0.2,0.3,0.5"
    )]
    densities: Vec<f64>,
    /// Timed repetitions of `--conv-micro` (the fastest is reported).
    #[arg(long, default_value_t = 10)]
    reps: usize,
    /// Instead of the above: one epoch of the small CNN (channels 32/64, T = 4, digits) trained
    /// data-parallel over MPI with global batch `--batch` (default 32): step time, the share in
    /// collectives, the gradient all-reduce alone. Run alone (1 rank) and under `mpirun -np N`
    /// (build with `--features mpi`).
    #[arg(long)]
    distributed: bool,
    /// Train on this device (`wgpu[:N|:cpu]`, …; see `tks train --device`): the weights and
    /// random batches are made on Flex with the seed and moved, so losses compare across devices.
    #[arg(long, value_name = "DEVICE")]
    device: Option<String>,
    /// Passes of `--conv-micro`.
    #[arg(long, value_enum, default_value = "both")]
    pass: PassArg,
}

/// `--lif-path`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum PathArg {
    /// The fused kernel.
    Fused,
    /// Plain burn ops.
    #[value(alias = "ref")]
    Reference,
}

/// `--pass`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum PassArg {
    /// Forward + backward.
    Train,
    /// Forward only, no autodiff.
    Inference,
    /// Both.
    Both,
}

pub fn run_cli(args: BenchArgs, kernels: &super::kernels::KernelOverrides) -> anyhow::Result<()> {
    if args.distributed {
        return crate::bench::distributed::run_distributed(args.batch.unwrap_or(32), 300.0);
    }
    if let Some(shape) = &args.lif_micro {
        let (reference, fused) = lif_micro(shape, 10)?;
        println!(
            "{}",
            serde_json::json!({
                "lif_micro_shape": shape,
                "reference_ms_median": reference,
                "fused_ms_median": fused,
                "reference_over_fused": (reference / fused * 1000.0).round() / 1000.0,
            })
        );
        return Ok(());
    }
    if let Some(dims) = &args.conv_micro {
        let densities = &args.densities;
        let passes: &[bool] = match args.pass {
            PassArg::Both => &[true, false],
            PassArg::Train => &[true],
            PassArg::Inference => &[false],
        };
        let input = [dims[0], dims[1], dims[2], dims[3]];
        for row in conv_micro(input, dims[4], densities, args.reps, passes)? {
            println!("{}", serde_json::to_string(&row)?);
        }
        return Ok(());
    }
    let path = match args.lif_path {
        PathArg::Fused => LifPath::Fused,
        PathArg::Reference => LifPath::Reference,
    };
    let configs = if args.model == "all" {
        BenchConfig::reference_grid()
    } else {
        let mut c = BenchConfig::new(BenchModel::from_name(&args.model)?);
        c.timesteps = args.timesteps;
        if let Some(w) = args.width {
            c.width = w;
        }
        if let Some(b) = args.batch {
            c.batch = b;
        }
        vec![c]
    };
    for mut c in configs {
        c.steps = args.steps;
        c.loss = args.loss.clone();
        c.lif_path = path;
        c.kernels = kernels.apply(crate::kernels::KernelPolicy::default());
        c.compare_lif = !args.no_compare_lif;
        c.compare_layers = !args.no_compare_layers;
        c.seed = args.seed;
        if let Some(d) = &args.device {
            let spec = crate::device::DeviceSpec::parse("--device", d)?;
            c.device = Some((crate::device::device(spec, 0)?, spec));
        }
        if args.predict {
            let result = crate::bench::predict::run_predict(&c, args.train_steps)?;
            println!("{}", serde_json::to_string(&result)?);
            continue;
        }
        if args.inference {
            let result = run_inference(&c, args.train_steps)?;
            println!("{}", serde_json::to_string(&result)?);
            continue;
        }
        let result = run(&c)?;
        println!("{}", serde_json::to_string(&result)?);
    }
    Ok(())
}
