//! `tks study STUDY.toml`: run a reproduction grid, resumably (one JSON summary per finished
//! run under `--results`), and `tks study STUDY.toml --report`: regenerate RESULTS.md and its
//! figures from the stored summaries alone.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use crate::study::run::{Provenance, RunRecord, read_record, run_one};
use crate::study::{RunSpec, StudyFile};
use crate::train::{StepEvent, TrainHooks};

/// Options of `tks study`.
#[derive(Args, Debug)]
pub struct StudyArgs {
    /// The study file (`[study]` + `[[experiment]]`, see `configs/study/`).
    pub study: PathBuf,
    /// Folder of the run summaries (committed): `RESULTS/<study name>/<experiment>/*.json`.
    #[arg(long, default_value = "docs/results")]
    pub results: PathBuf,
    /// Folder of the run directories (checkpoints; not committed).
    #[arg(long, default_value = "target/study")]
    pub work_dir: PathBuf,
    /// Only runs whose key (`experiment/method/T4/seed1[/fold0]`) contains this text.
    #[arg(long)]
    pub only: Option<String>,
    /// Start no run after this many minutes (a run that started finishes); run again to go on.
    #[arg(long)]
    pub max_minutes: Option<f64>,
    /// Print the plan and the estimated wall time, then stop.
    #[arg(long)]
    pub estimate: bool,
    /// Regenerate the report from the stored summaries instead of running anything.
    #[arg(long)]
    pub report: bool,
    /// With `--report`: the Markdown file to write (figures go to `figures/` beside it).
    #[arg(long, default_value = "docs/RESULTS.md")]
    pub out: PathBuf,
    #[command(flatten)]
    pub device: crate::device::DeviceArgs,
}

/// What the grid holds, run by run.
struct Plan {
    todo: Vec<RunSpec>,
    done: usize,
    stale: usize,
}

fn plan(args: &StudyArgs, study: &StudyFile, runs: Vec<RunSpec>) -> anyhow::Result<Plan> {
    let mut plan = Plan {
        todo: Vec::new(),
        done: 0,
        stale: 0,
    };
    for spec in runs {
        if let Some(only) = &args.only
            && !spec.key.contains(only.as_str())
        {
            continue;
        }
        match read_record(&spec.summary_path(&args.results, &study.study.name))? {
            Some(r) if spec.matches(&r) => plan.done += 1,
            Some(_) => {
                plan.stale += 1;
                plan.todo.push(spec);
            }
            None => plan.todo.push(spec),
        }
    }
    Ok(plan)
}

/// Commit, hardware and load of this machine.
fn provenance() -> Provenance {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    Provenance {
        commit: git(&["rev-parse", "HEAD"]).unwrap_or_else(|| "unknown".into()),
        dirty: git(&["status", "--porcelain", "--untracked-files=no"])
            .is_some_and(|s| !s.is_empty()),
        cpu,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        os: format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
        version: env!("CARGO_PKG_VERSION").into(),
        started_unix: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        load_start: load_average(),
        load_end: None,
    }
}

/// The 1-minute load average (Linux), if known.
pub(crate) fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// What [`measure`] finds of a run: seconds per training step, seconds to load its data, and
/// the samples of its splits.
#[derive(Clone, Copy)]
struct Timing {
    step: f64,
    load: f64,
    sizes: [usize; 3],
}

/// Seconds of one training step of `spec`, measured on three batches of its data (plus a
/// one-batch evaluation), the time to load its data, and the number of samples of its splits.
fn measure(spec: &RunSpec, device: &burn::tensor::Device) -> anyhow::Result<Timing> {
    let c = &spec.config;
    let loading = Instant::now();
    let data = c
        .load_data()
        .with_context(|| format!("loading data `{}` for {}", c.data.source, spec.key))?;
    let load = loading.elapsed().as_secs_f64();
    let sizes = [
        data.train.len(),
        data.val.as_ref().map_or(0, |v| v.len()),
        data.test.len(),
    ];
    let b = c.train.batch_size;
    let steps = 3.min(data.train.len().div_ceil(b)).max(1);
    let n = (steps * b).min(data.train.len());
    let idx: Vec<usize> = (0..n).collect();
    let mut small = crate::data::Split::new(
        data.train.subset(&idx, "timing"),
        data.test
            .subset(&(0..b.min(data.test.len())).collect::<Vec<_>>(), "timing"),
    );
    small.train_long = data.train_long.as_ref().map(|l| l.subset(&idx, "timing"));
    let mut cfg = c.clone();
    cfg.train.epochs = 1;
    let objective = cfg.objective()?;
    // BKD's teacher may not exist yet: time it as the baseline (its extra teacher forward is a
    // fraction of a step).
    let objective = match objective.name() {
        "bkd" => crate::config::objective_by_name("baseline")?,
        _ => objective,
    };
    let started = Instant::now();
    crate::train::train(
        &cfg.model,
        &cfg.train,
        objective.as_ref(),
        &small,
        device,
        TrainHooks {
            kernels: cfg.kernels,
            ..Default::default()
        },
    )?;
    Ok(Timing {
        step: started.elapsed().as_secs_f64() / (steps as f64 + 0.5),
        load,
        sizes,
    })
}

/// Estimated wall seconds of a run from its measured step and load times: loading its data
/// (again for each re-binned T), training steps, the validation pass each epoch, and the test
/// passes at the end (a forward pass ≈ a third of a training step).
fn estimate(spec: &RunSpec, m: Timing) -> f64 {
    let c = &spec.config;
    let per_sample = m.step / c.train.batch_size as f64;
    let train = c.train.epochs as f64 * m.sizes[0] as f64 * per_sample;
    let rebins = if c.data.is_events() && spec.sweep {
        c.train.timesteps.saturating_sub(1) as f64
    } else {
        0.0
    };
    let eval = (c.train.epochs * m.sizes[1]) as f64 + (3.0 + 0.6 * rebins) * m.sizes[2] as f64;
    (1.0 + rebins) * m.load + train + eval * per_sample / 3.0
}

fn hms(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    format!("{}h{:02}m{:02}s", s / 3600, (s % 3600) / 60, s % 60)
}

/// Runs `tks study`.
pub fn run(args: StudyArgs, kernels: &super::kernels::KernelOverrides) -> anyhow::Result<()> {
    let study = StudyFile::load(&args.study)?;
    let base = args.study.parent().unwrap_or(Path::new("."));
    let mut runs = study.runs(base, &args.work_dir)?;
    for r in &mut runs {
        r.config.kernels = kernels.apply(r.config.kernels);
        super::default_cache_dir(&mut r.config.data);
    }
    if args.report {
        return report(&args, &study, &runs);
    }
    let plan = plan(&args, &study, runs)?;
    let device = args.device.resolve(None)?;
    println!(
        "tks study `{}`: {} runs to do, {} done{}",
        study.study.name,
        plan.todo.len(),
        plan.done,
        if plan.stale > 0 {
            format!(
                ", {} with a summary made from another configuration (to be redone)",
                plan.stale
            )
        } else {
            String::new()
        }
    );
    // One timing per (experiment, T, method) still to run.
    let mut timings: Vec<(String, Timing)> = Vec::new();
    let mut estimates = Vec::with_capacity(plan.todo.len());
    for spec in &plan.todo {
        let id = format!("{}/{}/T{}", spec.experiment, spec.method, spec.timesteps);
        let m = match timings.iter().find(|(k, _)| *k == id) {
            Some((_, m)) => *m,
            None => {
                let m = measure(spec, &device)?;
                let n = m.sizes;
                println!(
                    "  {id}: {:.0} ms per training step (batch {}), data loaded in {:.1} s, {} train / {} validation / {} test",
                    1000.0 * m.step,
                    spec.config.train.batch_size,
                    m.load,
                    n[0],
                    n[1],
                    n[2]
                );
                timings.push((id, m));
                m
            }
        };
        estimates.push(estimate(spec, m));
    }
    let total: f64 = estimates.iter().sum();
    println!(
        "estimated wall time of the runs to do: {} (from the measured step times; load now {})",
        hms(total),
        load_average().map_or("unknown".into(), |l| format!("{l:.2}"))
    );
    if args.estimate || plan.todo.is_empty() {
        return Ok(());
    }
    let started = Instant::now();
    let bar = ProgressBar::new(plan.todo.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("runs [{bar:30}] {pos}/{len} {msg} (elapsed {elapsed})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let mut finished = 0;
    for (spec, est) in plan.todo.iter().zip(&estimates) {
        if let Some(m) = args.max_minutes
            && started.elapsed().as_secs_f64() + est > 60.0 * m
        {
            bar.suspend(|| {
                println!(
                    "stopping: the next run ({}, ≈ {}) would end past --max-minutes {m}; run again to go on",
                    spec.key,
                    hms(*est)
                )
            });
            break;
        }
        let key = spec.key.clone();
        let b = bar.clone();
        let mut on_step = move |e: &StepEvent| {
            b.set_message(format!(
                "{key}: epoch {}/{} step {}/{}",
                e.epoch + 1,
                e.epochs,
                e.step,
                e.steps_per_epoch
            ));
        };
        let summary = spec.summary_path(&args.results, &study.study.name);
        let mut prov = provenance();
        let record = run_one(
            spec,
            &study.study.name,
            &args.work_dir,
            &summary,
            prov.clone(),
            &device,
            TrainHooks {
                kernels: spec.config.kernels,
                on_step: Some(&mut on_step),
                on_epoch: None,
                distributed: None,
            },
        )?;
        // The load at the end is known only now: rewrite the summary with it.
        prov.load_end = load_average();
        let record = RunRecord {
            provenance: Provenance {
                load_end: prov.load_end,
                ..record.provenance
            },
            ..record
        };
        crate::study::run::write_record(&summary, &record)?;
        finished += 1;
        bar.inc(1);
        bar.suspend(|| {
            println!(
                "{}: test top-1 {:.2}% (epoch {} on validation), t=1 {:.2}%, {} (estimated {}) → {}",
                record.key,
                100.0 * record.test.report.accuracy,
                record
                    .best_epoch
                    .map_or("last".into(), |e| e.to_string()),
                100.0 * record.test.report.per_timestep.first().copied().unwrap_or(0.0),
                hms(record.wall_seconds),
                hms(*est),
                summary.display()
            )
        });
    }
    bar.finish_and_clear();
    println!(
        "{finished} runs finished in {}; {} left",
        hms(started.elapsed().as_secs_f64()),
        plan.todo.len() - finished
    );
    Ok(())
}

/// `--report`: every summary of the study's runs (those made from another configuration are
/// listed as stale and left out) → RESULTS.md and figures.
fn report(args: &StudyArgs, study: &StudyFile, runs: &[RunSpec]) -> anyhow::Result<()> {
    let mut records = Vec::new();
    let mut stale = Vec::new();
    let mut missing = 0;
    for spec in runs {
        match read_record(&spec.summary_path(&args.results, &study.study.name))? {
            Some(r) if spec.matches(&r) => records.push(r),
            Some(r) => stale.push(r.key),
            None => missing += 1,
        }
    }
    let files =
        crate::report::study::write(study, &records, &stale, missing, &args.out, &args.results)?;
    println!(
        "wrote {} with {} figures from {} run summaries ({} runs not done yet{})",
        args.out.display(),
        files,
        records.len(),
        missing,
        if stale.is_empty() {
            String::new()
        } else {
            format!(", {} stale", stale.len())
        }
    );
    Ok(())
}
