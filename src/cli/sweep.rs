//! `tks sweep`: accuracy of one checkpoint at every test T (Fig. 3a), and train-and-test at
//! equal T over a list (Fig. 3b) → `sweep.json`.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use super::eval::{load_data, load_run, write_json};
use crate::eval::sweep::{SweepMode, SweepPoint, SweepReport, sweep_test_t};
use crate::train::TrainHooks;
use crate::train::checkpoint::{run_files, train_in_dir};

/// Options of `tks sweep`.
#[derive(Args, Debug)]
pub struct SweepArgs {
    /// Run directory (written by `tks train --out DIR`).
    #[arg(long)]
    pub run: PathBuf,
    /// Checkpoint: `best`, `last`, or a path to a .safetensors file.
    #[arg(long, default_value = "best")]
    pub checkpoint: String,
    /// Largest test T (default: twice the training T for `rebin`, the training T for
    /// `truncate`).
    #[arg(long)]
    pub max_t: Option<usize>,
    /// Event data at a shorter test T: `rebin` integrates every event of a recording into t
    /// frames (the official TKS code's reading), `truncate` keeps the first t of the training T
    /// frames (lower latency, same frame statistics). Static images: the two coincide.
    #[arg(long, value_enum, default_value = "rebin")]
    pub mode: ModeArg,
    /// Also train a model at each of these T (comma-separated, e.g. 1,2,4,8) with the run's
    /// configuration and test it at the same T; runs go to RUN/equal-T<T>.
    #[arg(long, value_delimiter = ',', value_parser = super::positive)]
    pub train_equal: Vec<usize>,
    /// Epochs for the `--train-equal` runs (default: the run's).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Output file (default: RUN/sweep.json, RUN/sweep-truncate.json with `--mode truncate`).
    #[arg(long)]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub device: crate::device::DeviceArgs,
}

/// `--mode` values.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum ModeArg {
    /// Integrate all events into t frames.
    Rebin,
    /// Keep the first t of the trained-on frames.
    Truncate,
}

impl From<ModeArg> for SweepMode {
    fn from(m: ModeArg) -> Self {
        match m {
            ModeArg::Rebin => SweepMode::Rebin,
            ModeArg::Truncate => SweepMode::Truncate,
        }
    }
}

/// Runs `tks sweep`.
pub fn run(args: SweepArgs, kernels: &super::kernels::KernelOverrides) -> anyhow::Result<()> {
    let equal_ts = &args.train_equal;
    let run = load_run(&args.run, &args.checkpoint, &args.device, kernels)?;
    let c = &run.config;
    let mode = SweepMode::from(args.mode);
    let train_t = c.train.timesteps;
    let first = load_data(c, train_t)?;
    let is_static = matches!(first.test.kind, crate::data::SampleKind::Static);
    let max_t = match (mode, is_static) {
        (SweepMode::Truncate, false) => {
            let max_t = args.max_t.unwrap_or(train_t);
            if max_t > train_t {
                anyhow::bail!(
                    "`--max-t` = {max_t}: truncating keeps at most the {train_t} frames the model was trained on (use `--mode rebin` for longer T)"
                );
            }
            max_t
        }
        _ => args.max_t.unwrap_or(2 * train_t),
    }
    .max(1);
    println!(
        "tks sweep: {} ({}), trained at T = {train_t}, test T = 1..{max_t}, mode {}{}",
        run.checkpoint.path.display(),
        run.reason,
        mode.name(),
        if is_static {
            " (static images: truncate and re-bin coincide)"
        } else {
            ""
        }
    );
    let mut test_t = Vec::new();
    // Static images are encoded over any T, and truncation keeps the T-frame event samples
    // (each evaluation keeps the first t frames); re-binned event samples are integrated into
    // t frames, so they are loaded again for every t.
    let shared = (is_static || mode == SweepMode::Truncate).then_some(first);
    for t in 1..=max_t {
        let data = match &shared {
            Some(d) => d.clone(),
            None => load_data(c, t)?,
        };
        let p = sweep_test_t(
            &run.model,
            &data.test,
            &[t],
            c.train.eval_batch_size,
            c.train.encoder,
            &run.device,
        )
        .with_context(|| format!("evaluating on {} at T = {t}", data.test.name))?;
        println!("  T = {:<3} accuracy {:6.2}%", t, 100.0 * p[0].accuracy);
        test_t.extend(p);
    }
    let mut train_equal = Vec::new();
    for &t in equal_ts {
        let mut cfg = c.clone();
        cfg.train.timesteps = t;
        if let Some(e) = args.epochs {
            cfg.train.epochs = e;
        }
        cfg.validate()?;
        let data = load_data(&cfg, t)?;
        let objective = cfg.objective()?;
        let dir = run.dir.path.join(format!("equal-T{t}"));
        println!(
            "  training at T = {t} for {} epochs into {}",
            cfg.train.epochs,
            dir.display()
        );
        let outcome = train_in_dir(
            Some(&dir),
            None,
            &cfg,
            objective.as_ref(),
            &data,
            &run.device,
            TrainHooks::default(),
        )?;
        let report = outcome.final_test().clone();
        println!(
            "  trained and tested at T = {:<3} accuracy {:6.2}%",
            t,
            100.0 * report.accuracy
        );
        train_equal.push(SweepPoint {
            timesteps: t,
            accuracy: report.accuracy,
            report,
        });
    }
    let file = SweepReport {
        train_timesteps: c.train.timesteps,
        mode,
        test_t,
        train_equal,
    };
    let out = args.output.unwrap_or_else(|| {
        run.dir.file(match mode {
            SweepMode::Rebin => run_files::SWEEP,
            SweepMode::Truncate => run_files::SWEEP_TRUNCATE,
        })
    });
    write_json(&out, &file)?;
    println!("wrote {}", out.display());
    Ok(())
}
