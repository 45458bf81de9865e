//! `tks export`, `tks import`, `tks predict`: a run's model to and from NIR, and classification
//! of files (the work is in the `tks-deploy` crate).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};

use super::eval::load_run;
use crate::config::RunConfig;
use crate::train::checkpoint::{self, CheckpointMeta, RunDir, run_files};
use burn::tensor::Device;
use tks_deploy::nir::{export::export, hdf5, import::import};
use tks_deploy::predict::{Predictor, Preprocess, expand, percentiles};

/// Export formats.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Format {
    /// Neuromorphic Intermediate Representation (HDF5), read by snnTorch, Norse, SpikingJelly,
    /// Sinabs, Rockpool, Lava, SpiNNaker2, …
    Nir,
}

/// Options of `tks export`.
#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Run directory (written by `tks train --out DIR` or `tks import`).
    #[arg(long)]
    pub run: PathBuf,
    /// Checkpoint: `best`, `last`, or a path to a .safetensors file.
    #[arg(long, default_value = "best")]
    pub checkpoint: String,
    /// Output format.
    #[arg(long, value_enum, default_value = "nir")]
    pub format: Format,
    /// Output file (written atomically).
    #[arg(long)]
    pub out: PathBuf,
}

/// Runs `tks export`.
pub fn run_export(
    args: ExportArgs,
    kernels: &super::kernels::KernelOverrides,
) -> anyhow::Result<()> {
    let Format::Nir = args.format;
    let run = load_run(
        &args.run,
        &args.checkpoint,
        &crate::device::DeviceArgs::default(),
        kernels,
    )?;
    let graph = export(&run.model, &run.config)?;
    hdf5::write(&args.out, &graph)?;
    println!(
        "exported {} ({} nodes, {} edges; BatchNorm folded, dt = {}) from {} to {}",
        run.config.model.arch(),
        graph.nodes.len(),
        graph.edges.len(),
        tks_deploy::nir::DT,
        run.checkpoint.path.display(),
        args.out.display()
    );
    Ok(())
}

/// Options of `tks import`.
#[derive(Args, Debug)]
pub struct ImportArgs {
    /// A NIR file (HDF5).
    pub file: PathBuf,
    /// Run directory to create: config.toml, best.safetensors and last.safetensors (epoch 0, no
    /// optimizer state) for `tks eval`, `tks predict`, and `tks train --resume` (fine-tuning).
    #[arg(long)]
    pub out: PathBuf,
    /// Data source of the run (default: the exporting run's, recorded in the file's metadata,
    /// else `digits`).
    #[arg(long)]
    pub data: Option<String>,
    /// Timesteps of the run (default: the recorded run's, else 4).
    #[arg(long, short = 'T', value_parser = super::positive)]
    pub timesteps: Option<usize>,
    /// Training epochs for fine-tuning with `tks train --resume` (default: the recorded run's).
    #[arg(long, value_parser = super::positive)]
    pub epochs: Option<usize>,
}

/// Runs `tks import`.
pub fn run_import(
    args: ImportArgs,
    kernels: &super::kernels::KernelOverrides,
) -> anyhow::Result<()> {
    let graph = hdf5::read(&args.file)?;
    let origin = args.file.display().to_string();
    let mut config = match graph.meta_text("tks_config") {
        Some(text) => RunConfig::from_toml(text, &format!("{origin} (metadata tks_config)"))?,
        None => RunConfig::default(),
    };
    if let Some(d) = &args.data {
        config.data.source = d.clone();
    }
    if let Some(t) = args.timesteps {
        config.train.timesteps = t;
    }
    if let Some(e) = args.epochs {
        config.train.epochs = e;
    }
    config.kernels = kernels.apply(config.kernels);
    let device = Device::flex();
    let base = *config.model.neuron_mut();
    let imported = import(&graph, &origin, base, &config.kernels, &device)?;
    config.model = imported.config;
    config.validate()?;
    let text = toml::to_string(&config)?;
    let dir = RunDir::create(&args.out, &text)?;
    let meta = CheckpointMeta {
        epoch: 0,
        global_step: 0,
        seed: config.train.seed,
        config: Some(text),
        history: Vec::new(),
    };
    for name in [run_files::BEST, run_files::LAST] {
        checkpoint::save(&dir.file(name), &imported.model, None, &meta)?;
    }
    println!(
        "imported {} as {} ({:?} → {} classes, norm none) into {}",
        args.file.display(),
        config.model.arch(),
        config.model.input_shape(),
        config.model.num_classes(),
        args.out.display()
    );
    Ok(())
}

/// Options of `tks predict`.
#[derive(Args, Debug)]
pub struct PredictArgs {
    /// Run directory.
    #[arg(long)]
    pub run: PathBuf,
    /// Checkpoint: `best`, `last`, or a path to a .safetensors file.
    #[arg(long, default_value = "best")]
    pub checkpoint: String,
    /// Timesteps for images and event recordings (default: the training T; a `.npy` frame
    /// tensor brings its own).
    #[arg(long, short = 'T', value_parser = super::positive)]
    pub timesteps: Option<usize>,
    /// Print the per-timestep logits.
    #[arg(long)]
    pub logits: bool,
    /// Early exit: stop at the first timestep whose running-mean confidence reaches this.
    #[arg(long, value_parser = super::unit_interval)]
    pub anytime: Option<f64>,
    /// Images (PNG/JPEG), event recordings (.bin, .bs2, .aedat, .aedat4, .dat, .npy events),
    /// `.npy` frame tensors [T, C, H, W], or folders of them.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    #[command(flatten)]
    pub device: crate::device::DeviceArgs,
}

/// Runs `tks predict`: one JSON line per input on stdout, errors and timing on stderr.
pub fn run_predict(
    args: PredictArgs,
    kernels: &super::kernels::KernelOverrides,
) -> anyhow::Result<()> {
    let run = load_run(&args.run, &args.checkpoint, &args.device, kernels)?;
    let t = args.timesteps.unwrap_or(run.config.train.timesteps);
    let pre = Preprocess::new(
        &run.config.data,
        run.config.train.encoder,
        run.config.model.input_shape(),
        t,
    )
    .map_err(anyhow::Error::msg)
    .context("the run's [data] table")?;
    let predictor = Predictor::new(&run.model);
    let files = expand(&args.inputs);
    let (mut failed, mut totals, mut forwards) = (0usize, Vec::new(), Vec::new());
    let started = Instant::now();
    for path in &files {
        let t0 = Instant::now();
        let (frames, kind) = match pre.load(path, &run.device) {
            Ok(v) => v,
            Err(e) => {
                eprintln!("error: {e}");
                failed += 1;
                continue;
            }
        };
        let t1 = Instant::now();
        let p = predictor.predict(path, kind, frames, args.anytime, args.logits);
        forwards.push(t1.elapsed().as_secs_f64());
        totals.push(t0.elapsed().as_secs_f64());
        println!("{}", serde_json::to_string(&p)?);
    }
    let n = totals.len();
    let wall = started.elapsed().as_secs_f64();
    let (p50, p99) = percentiles(&totals);
    let (f50, f99) = percentiles(&forwards);
    eprintln!(
        "predict: {n} of {} inputs in {wall:.3} s ({:.1} samples/s); latency per sample p50 {:.2} ms, p99 {:.2} ms (network alone p50 {:.2} ms, p99 {:.2} ms)",
        files.len(),
        n as f64 / wall.max(1e-9),
        1e3 * p50,
        1e3 * p99,
        1e3 * f50,
        1e3 * f99
    );
    if files.is_empty() {
        bail!("no input files found in {:?}", args.inputs);
    }
    if failed > 0 {
        bail!("{failed} of {} inputs failed (named above)", files.len());
    }
    Ok(())
}
