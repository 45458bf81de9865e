//! `tks eval`: every analysis of one checkpoint of a run directory → table + `eval.json`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use burn::tensor::Device;
use clap::Args;

use super::kernels::KernelOverrides;
use crate::config::RunConfig;
use crate::data::Split;
use crate::eval::analysis::{Analysis, EvalFile, evaluate_full};
use crate::eval::energy::OpEnergy;
use crate::model::Model;
use crate::train::checkpoint::{Checkpoint, RunDir, run_files};

/// Options of `tks eval`.
#[derive(Args, Debug)]
pub struct EvalArgs {
    /// Run directory (written by `tks train --out DIR`).
    #[arg(long)]
    pub run: PathBuf,
    /// Checkpoint: `best` (the epoch with the highest validation accuracy; `last` for a run
    /// without a validation set), `last`, or a path to a .safetensors file.
    #[arg(long, default_value = "best")]
    pub checkpoint: String,
    /// Timesteps at test time (default: the training T).
    #[arg(long, short = 'T')]
    pub timesteps: Option<usize>,
    /// Energy of one accumulate (AC), in pJ (default: 0.9, 32-bit float at 45 nm).
    #[arg(long, default_value_t = 0.9)]
    pub ac_pj: f64,
    /// Energy of one multiply–accumulate (MAC), in pJ (default: 4.6, 32-bit float at 45 nm).
    #[arg(long, default_value_t = 4.6)]
    pub mac_pj: f64,
    /// Output file (default: RUN/eval.json).
    #[arg(long)]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub device: crate::device::DeviceArgs,
}

/// A run's configuration and the model of one of its checkpoints.
pub(crate) struct LoadedRun {
    pub dir: RunDir,
    pub config: RunConfig,
    pub model: Model,
    pub checkpoint: Checkpoint,
    /// Why this checkpoint (`best` = highest validation accuracy, …).
    pub reason: String,
    pub device: Device,
}

/// Opens `run`, reads its configuration and loads checkpoint `which` into a fresh model.
pub(crate) fn load_run(
    run: &Path,
    which: &str,
    device_args: &crate::device::DeviceArgs,
    kernels: &KernelOverrides,
) -> anyhow::Result<LoadedRun> {
    let dir = RunDir::open(run)?;
    let mut config = dir.config()?;
    config.kernels = kernels.apply(config.kernels);
    super::default_cache_dir(&mut config.data);
    let (path, reason) = dir.choose_checkpoint(which)?;
    let checkpoint = Checkpoint::load(&path)?;
    let spec = device_args.spec(config.train.device.as_deref())?;
    let device = crate::device::device(spec, 0)?;
    config.kernels = crate::device::kernels_for(config.kernels, &device, spec);
    device.seed(config.train.seed);
    let model = checkpoint.apply_to(config.model.init_with(&device, &config.kernels)?)?;
    Ok(LoadedRun {
        dir,
        config,
        model,
        checkpoint,
        reason,
        device,
    })
}

/// The run's data prepared for `timesteps` (event data is integrated into that many frames).
pub(crate) fn load_data(config: &RunConfig, timesteps: usize) -> anyhow::Result<Split> {
    crate::data::source::load(&config.data, timesteps)
        .with_context(|| format!("loading data `{}`", config.data.source))
}

pub(crate) fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    crate::train::checkpoint::write_atomic(path, text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Prints the tables of an [`Analysis`].
pub fn print_analysis(a: &Analysis) {
    let r = &a.report;
    println!("samples {}, T = {}", r.samples, r.timesteps);
    println!(
        "top-1 {:.2}%   top-5 {:.2}%   AURC ×1000 {:.2}   E-AURC ×1000 {:.2}",
        100.0 * r.accuracy,
        100.0 * a.top5,
        a.aurc_x1000,
        a.eaurc_x1000
    );
    println!("\n  t   own output   running mean");
    for (t, (own, run)) in r.per_timestep.iter().zip(&r.running_mean).enumerate() {
        println!(
            "  {:<3} {:>9.2}%   {:>10.2}%",
            t + 1,
            100.0 * own,
            100.0 * run
        );
    }
    println!("\n  class   acc t=1   acc T");
    for (c, (a1, af)) in a.per_class_t1.iter().zip(&a.per_class_full).enumerate() {
        println!("  {:<5} {:>8.2}% {:>7.2}%", c, 100.0 * a1, 100.0 * af);
    }
    println!("\nconfusion matrix at T (rows: true class, columns: predicted):");
    for (c, row) in a.confusion.iter().enumerate() {
        let cells: Vec<String> = row.iter().map(|v| format!("{v:>4}")).collect();
        println!("  {c:<3}{}", cells.join(""));
    }
    if let Some(e) = &a.energy {
        println!(
            "\nsynaptic layers (energy per op: {} pJ AC, {} pJ MAC):",
            e.op_energy.ac_pj, e.op_energy.mac_pj
        );
        println!("  layer                      input rate        ACs/sample       MACs/sample");
        for l in &e.layers {
            let rate = l
                .input_firing_rate
                .map_or("analog".to_string(), |v| format!("{v:.4}"));
            println!(
                "  {:<26} {:>10} {:>17.0} {:>17.0}",
                l.name, rate, l.acs_per_sample, l.macs_per_sample
            );
        }
        if !e.firing_rates.is_empty() {
            println!("  spiking layer              firing rate (spikes/neuron/step)");
            for (name, rate) in &e.firing_rates {
                println!("  {name:<26} {rate:>10.4}");
            }
        }
        println!(
            "  total: {:.0} ACs + {:.0} MACs per sample ⇒ {:.4} µJ per sample (ANN of the same shape at one step: {:.4} µJ)",
            e.sops_per_sample,
            e.macs_per_sample,
            e.energy_uj_per_sample,
            e.ann_energy_uj_per_sample
        );
    }
}

/// Runs `tks eval`.
pub fn run(args: EvalArgs, kernels: &KernelOverrides) -> anyhow::Result<()> {
    let run = load_run(&args.run, &args.checkpoint, &args.device, kernels)?;
    let t = args.timesteps.unwrap_or(run.config.train.timesteps);
    if t == 0 {
        anyhow::bail!("invalid `--timesteps` = 0: must be at least 1");
    }
    for (name, v) in [("--ac-pj", args.ac_pj), ("--mac-pj", args.mac_pj)] {
        crate::error::check_range(name, v, 0.0, 1e6)?;
    }
    let data = load_data(&run.config, t)?;
    let (analysis, _) = evaluate_full(
        &run.model,
        &data.test,
        t,
        run.config.train.eval_batch_size,
        run.config.train.encoder,
        &run.device,
        OpEnergy {
            ac_pj: args.ac_pj,
            mac_pj: args.mac_pj,
        },
    )
    .with_context(|| format!("evaluating on {} at T = {t}", data.test.name))?;
    println!(
        "tks eval: {} ({}) on {} at T = {}",
        run.checkpoint.path.display(),
        run.reason,
        data.test.name,
        t
    );
    print_analysis(&analysis);
    let file = EvalFile {
        checkpoint: run.checkpoint.path.display().to_string(),
        epoch: run.checkpoint.meta.epoch,
        timesteps: t,
        train_timesteps: run.config.train.timesteps,
        analysis,
    };
    let out = args.output.unwrap_or_else(|| run.dir.file(run_files::EVAL));
    write_json(&out, &file)?;
    println!("wrote {}", out.display());
    Ok(())
}
