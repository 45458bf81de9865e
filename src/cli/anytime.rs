//! `tks anytime`: early-exit inference over a sweep of confidence thresholds → `anytime.json`.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use super::eval::{load_data, load_run, write_json};
use crate::eval::analysis::collect_logits;
use crate::eval::anytime::{AnytimeFile, anytime_curve, default_thresholds};
use crate::train::checkpoint::run_files;

/// Options of `tks anytime`.
#[derive(Args, Debug)]
pub struct AnytimeArgs {
    /// Run directory (written by `tks train --out DIR`).
    #[arg(long)]
    pub run: PathBuf,
    /// Checkpoint: `best`, `last`, or a path to a .safetensors file.
    #[arg(long, default_value = "best")]
    pub checkpoint: String,
    /// Maximum timesteps (default: the training T).
    #[arg(long, short = 'T')]
    pub timesteps: Option<usize>,
    /// Confidence thresholds, comma-separated (default 0.5,0.6,0.7,0.8,0.9,0.95,0.99,0.999,1).
    #[arg(long, value_delimiter = ',', value_parser = super::unit_interval)]
    pub thresholds: Option<Vec<f64>>,
    /// Output file (default: RUN/anytime.json).
    #[arg(long)]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub device: crate::device::DeviceArgs,
}

/// Runs `tks anytime`.
pub fn run(args: AnytimeArgs, kernels: &super::kernels::KernelOverrides) -> anyhow::Result<()> {
    let thresholds = match &args.thresholds {
        Some(t) => t.clone(),
        None => default_thresholds(),
    };
    let run = load_run(&args.run, &args.checkpoint, &args.device, kernels)?;
    let t = args.timesteps.unwrap_or(run.config.train.timesteps).max(1);
    let data = load_data(&run.config, t)?;
    let logits = collect_logits(
        &run.model,
        &data.test,
        t,
        run.config.train.eval_batch_size,
        run.config.train.encoder,
        &run.device,
        0,
    )
    .with_context(|| format!("evaluating on {} at T = {t}", data.test.name))?;
    let points = anytime_curve(&logits, &thresholds);
    let full = crate::eval::analysis::analyze(&logits).report.accuracy;
    println!(
        "tks anytime: {} at up to T = {} ({} samples); all T: {:.2}%",
        run.checkpoint.path.display(),
        t,
        logits.len(),
        100.0 * full
    );
    println!("  threshold   accuracy   mean timesteps   exits per t");
    for p in &points {
        println!(
            "  {:<9}   {:>7.2}%   {:>14.3}   {:?}",
            p.threshold,
            100.0 * p.accuracy,
            p.mean_timesteps,
            p.exits
        );
    }
    let file = AnytimeFile {
        checkpoint: run.checkpoint.path.display().to_string(),
        timesteps: t,
        full_accuracy: full,
        points,
    };
    let out = args
        .output
        .unwrap_or_else(|| run.dir.file(run_files::ANYTIME));
    write_json(&out, &file)?;
    println!("wrote {}", out.display());
    Ok(())
}
