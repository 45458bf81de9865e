//! `tks bench --distributed`: a data-parallel training step over MPI, timed, with the share of
//! it spent in collectives, and the loopback all-reduce time of one step's gradient buffer — the
//! inputs of the scaling model in `docs/SCALING.md`. Run it as `tks bench --distributed` (1
//! rank) and `mpirun -np N tks bench --distributed` and compare the JSON lines.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::collective::Collective;
use crate::config::RunConfig;
use crate::data::digits;
use crate::train::distributed::Distributed;
use crate::train::{StepEvent, TrainHooks, train};

/// A collective that times its calls.
struct Timed {
    inner: &'static dyn Collective,
    nanos: AtomicU64,
    calls: AtomicU64,
    values: AtomicU64,
}

impl Timed {
    fn time<R>(&self, values: usize, f: impl FnOnce() -> R) -> R {
        let started = Instant::now();
        let r = f();
        self.nanos
            .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.values.fetch_add(values as u64, Ordering::Relaxed);
        r
    }

    fn totals(&self) -> (f64, u64, u64) {
        (
            self.nanos.load(Ordering::Relaxed) as f64 * 1e-6,
            self.calls.load(Ordering::Relaxed),
            self.values.load(Ordering::Relaxed),
        )
    }
}

impl Collective for Timed {
    fn rank(&self) -> usize {
        self.inner.rank()
    }
    fn size(&self) -> usize {
        self.inner.size()
    }
    fn all_reduce_sum(&self, values: &mut [f32]) {
        let n = values.len();
        self.time(n, || self.inner.all_reduce_sum(values))
    }
    fn all_reduce_sum_f64(&self, values: &mut [f64]) {
        let n = values.len();
        self.time(n, || self.inner.all_reduce_sum_f64(values))
    }
    fn all_gather_u64(&self, value: u64) -> Vec<u64> {
        self.time(1, || self.inner.all_gather_u64(value))
    }
}

/// Trains the small CNN (channels 32/64, T = 4) on the embedded digits for one epoch with the
/// global batch `batch` over the engine's ranks, and prints one JSON line (rank 0).
pub fn run_distributed(batch: usize, timeout: f64) -> anyhow::Result<()> {
    let engine = crate::distributed::start("mpi", timeout)?;
    let timed: &'static Timed = Box::leak(Box::new(Timed {
        inner: engine.collective,
        nanos: AtomicU64::new(0),
        calls: AtomicU64::new(0),
        values: AtomicU64::new(0),
    }));
    let (rank, ranks) = (timed.rank(), timed.size());
    let mut config = RunConfig::default();
    config.train.epochs = 1;
    config.train.batch_size = batch;
    config.train.timesteps = 4;
    let data = digits::load()?.with_validation(0.1, 0);
    let objective = config.objective()?;
    // Steps 2..=last are timed (the first includes lazy initialisation).
    let mut marks: Vec<(Instant, (f64, u64, u64))> = Vec::new();
    let mut on_step = |_: &StepEvent| marks.push((Instant::now(), timed.totals()));
    let hooks = TrainHooks {
        kernels: config.kernels,
        on_step: Some(&mut on_step),
        on_epoch: None,
        distributed: Some(Distributed {
            collective: timed,
            sync_bn: true,
            check_every: 0,
        }),
    };
    let device = burn::tensor::Device::flex();
    train(
        &config.model,
        &config.train,
        objective.as_ref(),
        &data,
        &device,
        hooks,
    )?;
    let ((t0, c0), (t1, c1)) = (marks[0], *marks.last().expect("steps"));
    let steps = (marks.len() - 1).max(1) as f64;
    let step_ms = (t1 - t0).as_secs_f64() * 1e3 / steps;
    let collective_ms = (c1.0 - c0.0) / steps;
    let calls = (c1.1 - c0.1) as f64 / steps;
    let values = (c1.2 - c0.2) as f64 / steps;
    // The gradient buffer alone, all-reduced 20 times (after a warm-up call).
    let params = crate::params::trainable_params(&config.model.init(&device)?);
    let mut buffer = vec![1.0f32; params + 2 + 32];
    engine.collective.all_reduce_sum(&mut buffer);
    let started = Instant::now();
    for _ in 0..20 {
        engine.collective.all_reduce_sum(&mut buffer);
    }
    let gradient_ms = started.elapsed().as_secs_f64() * 1e3 / 20.0;
    if rank == 0 {
        println!(
            "{}",
            serde_json::json!({
                "bench": "distributed",
                "engine": engine.description,
                "ranks": ranks,
                "model": "small_cnn [32, 64] T=4, digits",
                "global_batch": batch,
                "per_rank_batch": batch as f64 / ranks as f64,
                "timed_steps": steps,
                "step_ms": round(step_ms),
                "collective_ms_per_step": round(collective_ms),
                "collective_share": round(collective_ms / step_ms),
                "collective_calls_per_step": round(calls),
                "collective_bytes_per_step": round(values * 4.0),
                "gradient_bytes": (params + 2) * 4,
                "gradient_all_reduce_ms": round(gradient_ms),
            })
        );
    }
    Ok(())
}

fn round(v: f64) -> f64 {
    (v * 1e4).round() / 1e4
}
