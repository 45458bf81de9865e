//! Data-parallel training's transport: the [`Collective`] over MPI (rsmpi, the system's OpenMPI
//! or MPICH; cargo feature `mpi`), with a watchdog that turns a collective that never completes
//! (a dead or stalled peer) into an error naming this rank and the operation, within
//! `--collective-timeout` seconds. MPI itself ends the job when a rank exits; the watchdog covers
//! the cases it does not (a stalled rank, a lost node on some fabrics).

use crate::collective::Collective;

/// A started data-parallel engine: its collective (for the rest of the process) and what each
/// rank needs to know at start-up.
pub struct Engine {
    /// The collectives between the ranks.
    pub collective: &'static dyn Collective,
    /// This rank's index among the ranks on its node (picks its GPU).
    pub local_rank: usize,
    /// The engine's name and version, for the start-up line.
    pub description: String,
    /// Keeps the engine up; dropping it shuts the engine down (`MPI_Finalize`).
    _guard: Box<dyn std::any::Any>,
}

/// Starts the engine `name` (`mpi`), with collectives that stop the process after `timeout`
/// seconds without completing.
pub fn start(name: &str, timeout: f64) -> anyhow::Result<Engine> {
    match name {
        "mpi" => start_mpi(timeout),
        other => anyhow::bail!("--distributed {other}: the only engine is `mpi`"),
    }
}

#[cfg(not(feature = "mpi"))]
fn start_mpi(_timeout: f64) -> anyhow::Result<Engine> {
    anyhow::bail!(
        "--distributed mpi needs a build with `--features mpi` (and an MPI library: apt-get install openmpi-bin libopenmpi-dev libclang-dev)"
    )
}

#[cfg(feature = "mpi")]
fn start_mpi(timeout: f64) -> anyhow::Result<Engine> {
    mpi_engine::start(timeout)
}

#[cfg(feature = "mpi")]
mod mpi_engine {
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use mpi::collective::{CommunicatorCollectives, SystemOperation};
    use mpi::topology::{Communicator, SimpleCommunicator};

    use super::Engine;
    use crate::collective::Collective;

    /// The world communicator, used under a mutex (MPI_THREAD_SERIALIZED).
    struct World(SimpleCommunicator);
    // SAFETY: MPI was initialised with MPI_THREAD_SERIALIZED (checked in `start`) and every
    // call goes through the mutex in `Mpi`, so no two threads call MPI at the same time.
    unsafe impl Send for World {}

    /// The collective in flight: (started, operation, sequence number).
    type InFlight = Mutex<Option<(Instant, &'static str, u64)>>;

    struct Mpi {
        world: Mutex<World>,
        rank: usize,
        size: usize,
        in_flight: Arc<InFlight>,
        calls: std::sync::atomic::AtomicU64,
    }

    impl Mpi {
        fn call<R>(&self, op: &'static str, f: impl FnOnce(&SimpleCommunicator) -> R) -> R {
            let world = self.world.lock().unwrap_or_else(|p| p.into_inner());
            let n = self
                .calls
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            *self.in_flight.lock().unwrap_or_else(|p| p.into_inner()) =
                Some((Instant::now(), op, n));
            let result = f(&world.0);
            *self.in_flight.lock().unwrap_or_else(|p| p.into_inner()) = None;
            result
        }
    }

    impl Collective for Mpi {
        fn rank(&self) -> usize {
            self.rank
        }
        fn size(&self) -> usize {
            self.size
        }
        fn all_reduce_sum(&self, values: &mut [f32]) {
            let send = values.to_vec();
            self.call("all-reduce (f32)", |w| {
                w.all_reduce_into(&send[..], values, SystemOperation::sum())
            });
        }
        fn all_reduce_sum_f64(&self, values: &mut [f64]) {
            let send = values.to_vec();
            self.call("all-reduce (f64)", |w| {
                w.all_reduce_into(&send[..], values, SystemOperation::sum())
            });
        }
        fn all_gather_u64(&self, value: u64) -> Vec<u64> {
            let mut all = vec![0u64; self.size];
            self.call("all-gather", |w| w.all_gather_into(&value, &mut all[..]));
            all
        }
    }

    pub(super) fn start(timeout: f64) -> anyhow::Result<Engine> {
        let (universe, threading) = mpi::initialize_with_threading(mpi::Threading::Serialized)
            .ok_or_else(|| anyhow::anyhow!("MPI was already initialised in this process"))?;
        if threading < mpi::Threading::Serialized {
            anyhow::bail!(
                "the MPI library offers thread level {threading:?}; tks needs MPI_THREAD_SERIALIZED"
            );
        }
        let world = universe.world();
        let (rank, size) = (world.rank() as usize, world.size() as usize);
        let local_rank = world.split_shared(world.rank()).rank() as usize;
        let description = mpi::environment::library_version()
            .unwrap_or_else(|_| "MPI".to_string())
            .lines()
            .next()
            .unwrap_or("MPI")
            .trim_matches(|c: char| c.is_whitespace() || c == '\0')
            .to_string();
        let in_flight: Arc<InFlight> = Arc::new(Mutex::new(None));
        let watched = Arc::clone(&in_flight);
        let limit = Duration::from_secs_f64(timeout.max(0.1));
        std::thread::Builder::new()
            .name("tks-mpi-watchdog".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(Duration::from_millis(200));
                    let stuck = *watched.lock().unwrap_or_else(|p| p.into_inner());
                    if let Some((since, op, n)) = stuck
                        && since.elapsed() > limit
                    {
                        eprintln!(
                            "tks: error: rank {rank} of {size}: {op} #{n} waited {:.0} s for the other ranks (--collective-timeout {:.0}): a rank has died or stalled; stopping this rank",
                            since.elapsed().as_secs_f64(),
                            limit.as_secs_f64()
                        );
                        std::process::exit(75);
                    }
                }
            })?;
        let collective: &'static Mpi = Box::leak(Box::new(Mpi {
            world: Mutex::new(World(world)),
            rank,
            size,
            in_flight,
            calls: std::sync::atomic::AtomicU64::new(0),
        }));
        Ok(Engine {
            collective,
            local_rank,
            description,
            _guard: Box::new(universe),
        })
    }
}
