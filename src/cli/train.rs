//! `tks train`: resolve the run configuration (TOML + flag overrides), train, report.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use crate::config::RunConfig;
use crate::device::DeviceArgs;
use crate::eval::EvalReport;
use crate::model::ModelConfig;
use crate::objective::ObjectiveConfig;
use crate::surrogate::Surrogate;
use crate::train::TrainHooks;

/// Arguments that change what a run computes, so cannot be combined with `--resume` (the
/// resumed run uses its `config.toml`).
const RUN_CHANGING_FLAGS: [&str; 21] = [
    "config",
    "data",
    "arch",
    "width",
    "limit",
    "objective",
    "tks_temperature",
    "tks_alpha",
    "ls_epsilon",
    "tet_lambda",
    "teacher",
    "ann",
    "epochs",
    "timesteps",
    "batch_size",
    "lr",
    "weight_decay",
    "seed",
    "threshold",
    "surrogate",
    "val_ratio",
];

#[derive(Args, Default)]
pub struct TrainArgs {
    /// TOML run configuration; flags below override its fields.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Data source `NAME[:PATH]`: digits, dvsdigits, mnist, fashion, kmnist, cifar10, cifar100,
    /// folder, nmnist, cifar10dvs, ncaltech101, dvsgesture, ncars, stmnist, events (overrides
    /// `[data] source`). The model takes its input shape and classes from it.
    #[arg(long)]
    data: Option<String>,
    /// Architecture: small_cnn, vgg_snn, resnet19, sew_resnet18, sew_resnet19, sew_resnet34,
    /// sew_resnet50 (overrides `[model] arch` unless it names the same one). Its input channels,
    /// size and classes come from the data unless the `[model]` table sets them.
    #[arg(long)]
    arch: Option<String>,
    /// Channel multiplier of the model (VGG-SNN and ResNets: `width`; small CNN: both blocks'
    /// channels).
    #[arg(long)]
    width: Option<f64>,
    /// Keep at most this many samples per split (`[data] limit`; 0 = all).
    #[arg(long)]
    limit: Option<usize>,
    /// Objective: baseline, ls, tet, tks, tssd, bkd (default parameters unless the config names the same one).
    #[arg(long)]
    objective: Option<String>,
    /// TKS temperature τ (objective tks).
    #[arg(long)]
    tks_temperature: Option<f64>,
    /// TKS α, final weight of the knowledge-sharing term (objective tks).
    #[arg(long)]
    tks_alpha: Option<f64>,
    /// Label-smoothing ε (objective ls).
    #[arg(long)]
    ls_epsilon: Option<f64>,
    /// TET λ, weight of the MSE regulariser (objective tet).
    #[arg(long)]
    tet_lambda: Option<f64>,
    /// ANN teacher checkpoint for objective bkd (`tks train --ann --save PATH`, or the
    /// `best.safetensors` of a `tks train --ann --out DIR` run).
    #[arg(long)]
    teacher: Option<PathBuf>,
    /// ANN mode: the same architecture with ReLU in place of every spiking neuron; T = 1 unless
    /// `-T` is given (e.g. to train BKD's teacher).
    #[arg(long)]
    ann: bool,
    /// Save the trained model (weights and BN statistics) to this checkpoint file.
    #[arg(long)]
    save: Option<PathBuf>,
    /// Epochs.
    #[arg(long)]
    epochs: Option<usize>,
    /// Timesteps T.
    #[arg(long, short = 'T')]
    timesteps: Option<usize>,
    /// Batch size.
    #[arg(long)]
    batch_size: Option<usize>,
    /// Peak learning rate.
    #[arg(long)]
    lr: Option<f64>,
    /// AdamW weight decay.
    #[arg(long)]
    weight_decay: Option<f64>,
    /// Random seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Firing threshold of every neuron.
    #[arg(long)]
    threshold: Option<f64>,
    /// Surrogate gradient: triangle, sigmoid, atan, rectangle, bireal (default parameters).
    #[arg(long)]
    surrogate: Option<String>,
    /// Share of the training data held out as the validation set that `best` is chosen on
    /// (`[data] val_ratio`, default 0.1; 0 = none, no selection).
    #[arg(long, value_parser = super::unit_interval)]
    val_ratio: Option<f64>,
    /// Write the epoch history as JSON lines to this file.
    #[arg(long)]
    metrics: Option<PathBuf>,
    /// Run directory: writes config.toml, metrics.jsonl, last.safetensors and best.safetensors
    /// (model, optimizer, epoch; written atomically) for `tks eval`, `sweep`, `anytime`, `report`.
    #[arg(long, conflicts_with = "resume")]
    out: Option<PathBuf>,
    /// Continue the run in this directory from its last.safetensors, with its config.toml; the
    /// result equals an uninterrupted run. Flags that would change the run (`--config`,
    /// `--data`, `--objective` and its parameters, `--ann`, `--epochs`, `-T`, `--batch-size`,
    /// `--lr`, `--weight-decay`, `--seed`, `--threshold`, `--surrogate`) are an error with it
    /// — to train longer, start a new run with `--out`. `--save`, `--metrics`,
    /// `--print-config`, `--device` and the `--distributed` flags may be combined with it (a
    /// data-parallel run resumes with any number of ranks: the global batch is the run's).
    #[arg(long, conflicts_with_all = RUN_CHANGING_FLAGS)]
    resume: Option<PathBuf>,
    /// Print the resolved configuration as TOML and exit.
    #[arg(long)]
    print_config: bool,
    #[command(flatten)]
    device: DeviceArgs,
    /// Data-parallel training over ranks started by `mpirun -np N` (or `srun`): `mpi` (build
    /// with `--features mpi`). `--batch-size` is the global batch, split over the ranks.
    #[arg(long, value_name = "ENGINE")]
    distributed: Option<String>,
    /// With `--distributed`: BatchNorm statistics over every rank's samples (`true`, default: N
    /// ranks × B/N compute what one process × B does) or each rank's own (`false`, PyTorch DDP's
    /// default).
    #[arg(long, value_name = "BOOL", requires = "distributed")]
    sync_bn: Option<bool>,
    /// With `--distributed`: compare parameter checksums across the ranks every K steps (and
    /// after the first); a mismatch stops the run. 0 = never.
    #[arg(long, value_name = "K", default_value_t = 50)]
    check_every: usize,
    /// With `--distributed`: seconds a collective may wait for the other ranks before this rank
    /// stops with an error (a dead or stalled rank).
    #[arg(long, value_name = "SECONDS", default_value_t = 300.0)]
    collective_timeout: f64,
}

fn resolve(args: &TrainArgs) -> anyhow::Result<RunConfig> {
    let mut config = match &args.config {
        Some(path) => RunConfig::load(path)?,
        None => RunConfig::default(),
    };
    if let Some(arch) = &args.arch {
        let wanted = ModelConfig::from_arch(arch)?;
        match (&mut config.model, &wanted) {
            // the configured SEW-ResNet keeps its fields; `sew_resnetNN` sets its depth
            (ModelConfig::SewResNet(c), ModelConfig::SewResNet(w)) => {
                if arch.trim() != "sew_resnet" {
                    c.depth = w.depth;
                }
            }
            (m, w) if m.arch() == w.arch() => {}
            (m, _) => *m = wanted,
        }
    }
    if let Some(w) = args.width {
        config.model.set_width(w);
    }
    if let Some(v) = args.limit {
        config.data.limit = v;
    }
    if let Some(v) = &args.objective
        && v != config.objective.name()
    {
        config.objective = ObjectiveConfig::from_name(v)?;
    }
    apply_objective_overrides(args, &mut config.objective)?;
    if args.ann {
        config.set_ann();
        config.train.timesteps = 1;
    }
    let t = &mut config.train;
    if let Some(v) = args.epochs {
        t.epochs = v;
    }
    if let Some(v) = args.timesteps {
        t.timesteps = v;
    }
    if let Some(v) = args.batch_size {
        t.batch_size = v;
    }
    if let Some(v) = args.lr {
        t.lr = v;
    }
    if let Some(v) = args.weight_decay {
        t.weight_decay = v;
    }
    if let Some(v) = args.seed {
        t.seed = v;
    }
    if let Some(v) = args.threshold {
        config.neuron_mut().threshold = v;
    }
    if let Some(v) = &args.surrogate {
        config.neuron_mut().surrogate = Surrogate::from_name(v)?;
    }
    if let Some(v) = &args.data {
        config.data.source = v.clone();
    }
    if let Some(v) = args.val_ratio {
        config.data.val_ratio = v;
    }
    config.validate()?;
    Ok(config)
}

/// `--tks-*`, `--ls-*`, `--tet-*` overrides; each needs its objective to be selected.
fn apply_objective_overrides(
    args: &TrainArgs,
    objective: &mut ObjectiveConfig,
) -> anyhow::Result<()> {
    let name = objective.name();
    let wrong = |flag: &str, needs: &str| {
        anyhow::anyhow!(
            "`{flag}` applies to objective `{needs}`, but the objective is `{name}` (add `--objective {needs}`)"
        )
    };
    if let Some(v) = args.tks_temperature {
        match objective {
            ObjectiveConfig::Tks(c) => c.temperature = v,
            _ => return Err(wrong("--tks-temperature", "tks")),
        }
    }
    if let Some(v) = args.tks_alpha {
        match objective {
            ObjectiveConfig::Tks(c) => c.alpha = v,
            _ => return Err(wrong("--tks-alpha", "tks")),
        }
    }
    if let Some(v) = args.ls_epsilon {
        match objective {
            ObjectiveConfig::Ls(c) => c.epsilon = v,
            _ => return Err(wrong("--ls-epsilon", "ls")),
        }
    }
    if let Some(v) = args.tet_lambda {
        match objective {
            ObjectiveConfig::Tet(c) => c.lambda = v,
            _ => return Err(wrong("--tet-lambda", "tet")),
        }
    }
    if let Some(v) = &args.teacher {
        match objective {
            ObjectiveConfig::Bkd(c) => c.teacher = v.display().to_string(),
            _ => return Err(wrong("--teacher", "bkd")),
        }
    }
    Ok(())
}

/// Runs `tks train`.
pub fn run(args: TrainArgs, kernels: &super::kernels::KernelOverrides) -> anyhow::Result<()> {
    let mut config = match &args.resume {
        Some(dir) => crate::train::checkpoint::RunDir::open(dir)?.config()?,
        None => resolve(&args)?,
    };
    config.kernels = kernels.apply(config.kernels);
    if args.print_config {
        print!("{}", toml::to_string(&config)?);
        return Ok(());
    }
    super::default_cache_dir(&mut config.data);
    let engine = match &args.distributed {
        Some(name) => Some(crate::distributed::start(name, args.collective_timeout)?),
        None => None,
    };
    let (rank, local_rank) = engine
        .as_ref()
        .map_or((0, 0), |e| (e.collective.rank(), e.local_rank));
    let lead = rank == 0;
    let spec = args.device.spec(config.train.device.as_deref())?;
    let device = crate::device::device(spec, local_rank)?;
    let shown = crate::device::kernels_for(config.kernels, &device, spec);
    let distributed = match &engine {
        Some(e) => Some(distributed_setup(e, &args, &config, spec, shown)?),
        None => None,
    };
    let fitted = crate::fit::load_fitted(&mut config)?;
    if lead {
        for note in &fitted.notes {
            println!("{note}");
        }
    }
    let data = fitted.split;
    let objective = config.objective()?;
    let t = &config.train;
    if lead {
        println!(
            "tks: training {:?} with objective `{}` on {} ({} train / {} validation / {} test, frames {:?}), T={}, {} epochs, batch {}, lr {}, seed {}",
            arch_name(&config),
            objective.name(),
            config.data.source,
            data.train.len(),
            data.val.as_ref().map_or(0, |v| v.len()),
            data.test.len(),
            data.train.frame_shape,
            t.timesteps,
            t.epochs,
            t.batch_size,
            t.lr,
            t.seed
        );
    }
    let mut metrics_file = match &args.metrics {
        Some(p) if lead => Some(
            std::fs::File::create(p)
                .with_context(|| format!("cannot create metrics file {}", p.display()))?,
        ),
        _ => None,
    };
    let held_out = if data.val.is_some() { "val" } else { "test" };
    let mut on_epoch = |r: &crate::train::EpochRecord| {
        if !lead {
            return;
        }
        println!(
            "epoch {:>3}/{}  loss {:.4}  train acc {:6.2}%  {held_out} acc {:6.2}%  lr {:.2e}  {:.1}s ({:.0} samples/s)",
            r.epoch,
            t.epochs,
            r.loss,
            100.0 * r.train_accuracy,
            100.0 * r.held_out().map_or(0.0, |e| e.accuracy),
            r.lr,
            r.seconds,
            r.samples_per_second
        );
        if let Some(f) = metrics_file.as_mut() {
            use std::io::Write;
            let _ = writeln!(f, "{}", serde_json::to_string(r).unwrap_or_default());
        }
    };
    let mut bar = super::progress::EpochBar::default();
    let fault = fault_injection(rank)?;
    let mut on_step = |e: &crate::train::StepEvent| {
        let global = e.epoch * e.steps_per_epoch + e.step;
        if let Some((step, signal)) = fault
            && global == step
        {
            eprintln!(
                "tks: fault injection (TKS_TEST_KILL_RANK): signal {signal} after global step {global}"
            );
            // SAFETY: kill(2) on our own pid.
            unsafe { libc::kill(libc::getpid(), signal) };
        }
        if lead {
            bar.step(e)
        }
    };
    let hooks = TrainHooks {
        kernels: config.kernels,
        on_step: Some(&mut on_step),
        on_epoch: Some(&mut on_epoch),
        distributed,
    };
    let outcome = crate::train::checkpoint::train_in_dir(
        args.out.as_deref(),
        args.resume.as_deref(),
        &config,
        objective.as_ref(),
        &data,
        &device,
        hooks,
    );
    let outcome = match outcome {
        Ok(o) => o,
        // The other ranks may be inside a collective: shutting the engine down cleanly could
        // wait for them forever. Exit now; the launcher then stops the job.
        Err(e) if engine.is_some() => {
            eprintln!("tks: error: rank {rank}: {e}");
            std::process::exit(1);
        }
        Err(e) => return Err(e.into()),
    };
    if !lead {
        return Ok(());
    }
    match &outcome.best {
        Some(b) => {
            println!(
                "\nselected on the validation set: epoch {} of {} (validation accuracy {:.2}%)",
                b.epoch,
                outcome.history.len(),
                100.0 * b.val_accuracy
            );
            print_eval(&b.test);
            println!(
                "last epoch's model: test accuracy {:.2}%",
                100.0 * outcome.test_last.accuracy
            );
        }
        None => {
            println!("\nno validation set ([data] val_ratio = 0): the last epoch's model");
            print_eval(outcome.final_test());
        }
    }
    if let Some(path) = &args.save {
        let meta = crate::train::checkpoint::CheckpointMeta {
            epoch: t.epochs,
            global_step: t.epochs * data.train.len().div_ceil(t.batch_size),
            seed: t.seed,
            config: toml::to_string(&config).ok(),
            history: outcome.history.clone(),
        };
        crate::objective::aux::save_model(&outcome.model, path, &meta)?;
        println!("saved the trained model to {}", path.display());
    }
    Ok(())
}

/// The data-parallel settings of `engine`'s ranks, printed once (rank 0): ranks, global and
/// per-rank batch, the learning-rate rule, BatchNorm.
fn distributed_setup(
    engine: &crate::distributed::Engine,
    args: &TrainArgs,
    config: &RunConfig,
    spec: crate::device::DeviceSpec,
    kernels: crate::kernels::KernelPolicy,
) -> anyhow::Result<crate::train::distributed::Distributed> {
    let c = engine.collective;
    let sync_bn = args.sync_bn.unwrap_or(true);
    if sync_bn && !spec.is_flex() {
        anyhow::bail!(
            "--distributed with --device {spec}: synchronised BatchNorm runs on Flex only so far; add `--sync-bn false` (local statistics per rank)"
        );
    }
    let batch = config.train.batch_size;
    if c.rank() == 0 {
        let per_rank = batch / c.size();
        let uneven = if batch.is_multiple_of(c.size()) {
            String::new()
        } else {
            format!("–{}", per_rank + 1)
        };
        println!(
            "tks: data-parallel over {} ranks ({}): global batch {batch}, per-rank batch {per_rank}{uneven}; lr {} for the global batch (not rescaled: to change the global batch by k, scale lr by k yourself — the linear scaling rule); BatchNorm statistics {}; checksums every {} steps; kernels {}",
            c.size(),
            engine.description,
            config.train.lr,
            if sync_bn {
                "synchronised over all ranks"
            } else {
                "local to each rank"
            },
            args.check_every,
            kernels.summary()
        );
    }
    Ok(crate::train::distributed::Distributed {
        collective: c,
        sync_bn,
        check_every: args.check_every,
    })
}

/// `TKS_TEST_KILL_RANK=R:STEP[:stop]`: rank R kills itself (SIGKILL; with `:stop`, stops
/// itself with SIGSTOP, a hung rank) after global step STEP — for the tests that a dead or
/// stalled rank ends the job with an error.
fn fault_injection(rank: usize) -> anyhow::Result<Option<(usize, libc::c_int)>> {
    let Ok(text) = std::env::var("TKS_TEST_KILL_RANK") else {
        return Ok(None);
    };
    let mut parts = text.split(':');
    let r = parts.next().and_then(|r| r.parse::<usize>().ok());
    let step = parts.next().and_then(|s| s.parse::<usize>().ok());
    let signal = match parts.next() {
        None => Some(libc::SIGKILL),
        Some("stop") => Some(libc::SIGSTOP),
        Some(_) => None,
    };
    match (r, step, signal, parts.next()) {
        (Some(r), Some(step), Some(signal), None) => Ok((r == rank).then_some((step, signal))),
        _ => anyhow::bail!("TKS_TEST_KILL_RANK={text}: expected RANK:STEP or RANK:STEP:stop"),
    }
}

fn arch_name(config: &RunConfig) -> &'static str {
    config.model.arch()
}

fn print_eval(r: &EvalReport) {
    println!("\ntest accuracy per timestep ({} samples):", r.samples);
    println!("  t   own output   running mean");
    for (t, (own, run)) in r.per_timestep.iter().zip(&r.running_mean).enumerate() {
        println!(
            "  {:<3} {:>9.2}%   {:>10.2}%",
            t + 1,
            100.0 * own,
            100.0 * run
        );
    }
    println!(
        "final test accuracy (mean over T={}): {:.2}%",
        r.timesteps,
        100.0 * r.accuracy
    );
}
