//! The `tks` command line (clap). Each subcommand lives in its own file; this one only
//! dispatches and prints the error chain once. Without a subcommand, `tks` runs `tks train`
//! with the defaults: the main job on the embedded digits.

mod anytime;
mod bench;
pub mod data;
mod deploy;
mod eval;
pub mod kernels;
mod progress;
mod report;
mod study;
mod sweep;
mod train;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use train::TrainArgs;

#[derive(Parser)]
#[command(name = "tks", version, about = "Spiking neural networks with Temporal Knowledge Sharing", long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    /// The subcommand; none means `train` with defaults.
    pub command: Option<Command>,
    /// Convolution path for every command (overrides `[kernels] conv_mode` and `TKS_CONV_MODE`):
    /// `auto` (spike-aware where the input is sparse, measured per call), `dense` (im2col + gemm)
    /// or `sparse` (always spike-aware).
    #[arg(long, global = true, value_enum)]
    pub conv_mode: Option<kernels::ConvModeArg>,
}

#[derive(Subcommand)]
#[allow(clippy::large_enum_variant, reason = "parsed once per process")]
pub enum Command {
    /// Train a spiking network (default data: the embedded 8×8 digits) and evaluate it.
    Train(TrainArgs),
    /// Training throughput on the `snn_reference.py bench` configurations (JSON lines).
    Bench(bench::BenchArgs),
    /// Evaluate a run's checkpoint: top-1/top-5, per-timestep and running-mean accuracy, AURC,
    /// per-class accuracy, confusion matrix, firing rates, synaptic operations and energy
    /// (writes RUN/eval.json).
    Eval(eval::EvalArgs),
    /// Temporal generalisation: accuracy at every test T from 1 to 2·T_train, and optionally
    /// train-and-test at equal T over a list (writes RUN/sweep.json).
    Sweep(sweep::SweepArgs),
    /// Early-exit inference: accuracy vs mean timesteps over a sweep of confidence thresholds
    /// (writes RUN/anytime.json).
    Anytime(anytime::AnytimeArgs),
    /// Markdown + HTML report with figures from one or more run directories.
    Report(report::ReportArgs),
    /// Run a reproduction study (datasets × methods × seeds × T × folds), resumably, one JSON
    /// summary per finished run; `--report` regenerates RESULTS.md and its figures from them.
    Study(study::StudyArgs),
    /// Write a run's model as a NIR graph (HDF5) for neuromorphic hardware and other frameworks.
    Export(deploy::ExportArgs),
    /// Read a NIR graph into a new run directory (eval, predict, fine-tune with --resume).
    Import(deploy::ImportArgs),
    /// Classify files (images, event recordings, .npy frames, folders): one JSON line each.
    Predict(deploy::PredictArgs),
    /// Look into data: `inspect` a recording or dataset folder, or write the `frames` training
    /// makes of a recording (`.npy`, PNG strip).
    Data(data::DataArgs),
}

/// `[data] cache_dir` when the run leaves it unset: `$XDG_CACHE_HOME/tks/frames`, else
/// `$HOME/.cache/tks/frames` (else the data crate's temporary-directory default).
pub(crate) fn default_cache_dir(data: &mut crate::data::source::DataConfig) {
    if data.cache_dir.is_some() {
        return;
    }
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    data.cache_dir = var("XDG_CACHE_HOME")
        .map(|x| std::path::PathBuf::from(x).join("tks/frames"))
        .or_else(|| var("HOME").map(|h| std::path::PathBuf::from(h).join(".cache/tks/frames")));
}

/// clap value parser: a number within [0, 1].
fn unit_interval(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("`{s}` is not a number within [0, 1]")),
    }
}

/// clap value parser: an integer ≥ 1 (a number of timesteps).
fn positive(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(v) if v >= 1 => Ok(v),
        _ => Err(format!("`{s}` is not an integer ≥ 1")),
    }
}

/// Parses the process arguments, runs the command, prints any error as `error: ...` on stderr.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // Keep freed tensor buffers for reuse instead of returning them to the kernel after every
    // step (≈ 12 % per training step; `TKS_MALLOC_TUNE=0` disables it).
    crate::bench::tune_allocator();
    let result = kernels::KernelOverrides::from_env(cli.conv_mode).and_then(|k| {
        match cli.command.unwrap_or(Command::Train(TrainArgs::default())) {
            Command::Train(args) => train::run(args, &k),
            Command::Bench(args) => bench::run_cli(args, &k),
            Command::Eval(args) => eval::run(args, &k),
            Command::Sweep(args) => sweep::run(args, &k),
            Command::Anytime(args) => anytime::run(args, &k),
            Command::Report(args) => report::run(args, &k),
            Command::Study(args) => study::run(args, &k),
            Command::Export(args) => deploy::run_export(args, &k),
            Command::Import(args) => deploy::run_import(args, &k),
            Command::Predict(args) => deploy::run_predict(args, &k),
            Command::Data(args) => data::run(args),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
