//! Data-parallel training over MPI, end to end through `mpirun -np 2 tks train --distributed
//! mpi` (build with `--features mpi`; `.ci/run` installs OpenMPI). Each test SKIPs, saying why,
//! when `mpirun` is missing — unless `TKS_REQUIRE_MPI` is set (CI), where that is a failure.
//!
//! * 2 ranks × batch 16 end where 1 process × batch 32 ends (float tolerance, synchronised BN);
//!   with local BN statistics they do not (the comparison can fail).
//! * A killed rank ends the job with an error naming it, within a bound.
//! * A 2-rank run killed after its first epoch and resumed with 2 ranks ends bit-identical to
//!   an uninterrupted 2-rank run.

#[path = "../common/mod.rs"]
mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tks::train::checkpoint::Checkpoint;

/// The small CNN (with BatchNorm) on the embedded digits: 1297 training samples, 41 steps of
/// 32 per epoch.
const CONFIG: &str = r#"
[model]
arch = "small_cnn"
in_channels = 1
input_size = 8
channels = [8, 16]
num_classes = 10

[train]
epochs = 1
batch_size = 32
timesteps = 2
seed = 5

[data]
source = "digits"
"#;

/// Steps per epoch of [`CONFIG`].
const STEPS_PER_EPOCH: usize = 41;

/// Whether `mpirun` can be used; prints why a test skips when not.
fn mpirun_available(test: &str) -> bool {
    let found = Command::new("mpirun")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var_os("TKS_REQUIRE_MPI").is_none(),
            "{test}: TKS_REQUIRE_MPI is set but `mpirun` is not on PATH"
        );
        eprintln!(
            "SKIP {test}: `mpirun` not found (apt-get install openmpi-bin libopenmpi-dev libclang-dev)"
        );
    }
    found
}

/// Output of a finished command: (success, stdout + stderr, seconds).
fn run(mut cmd: Command, limit: Duration) -> (bool, String, f64) {
    let started = Instant::now();
    let out_file = tempfile_path("out");
    let out = std::fs::File::create(&out_file).unwrap();
    let mut child = cmd
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .expect("start mpirun");
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let text = std::fs::read_to_string(&out_file).unwrap_or_default();
    let _ = std::fs::remove_file(&out_file);
    let seconds = started.elapsed().as_secs_f64();
    let status = status.unwrap_or_else(|| panic!("still running after {limit:?}:\n{text}"));
    (status.success(), text, seconds)
}

fn tempfile_path(what: &str) -> std::path::PathBuf {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    std::env::temp_dir().join(format!("tks-dist-{what}-{}-{n}.txt", std::process::id()))
}

/// `mpirun -np ranks tks train --distributed mpi ARGS` (one thread per rank).
fn mpirun(ranks: usize, args: &[&str]) -> Command {
    let mut cmd = Command::new("mpirun");
    cmd.args(["--allow-run-as-root", "--oversubscribe", "-np"])
        .arg(ranks.to_string())
        .arg(env!("CARGO_BIN_EXE_tks"))
        .args(["train", "--distributed", "mpi"])
        .args(args)
        .env("RAYON_NUM_THREADS", "1");
    cmd
}

/// `tks train ARGS` in one process.
fn single(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tks"));
    cmd.arg("train").args(args);
    cmd
}

/// The f32 tensors of a checkpoint by name.
fn weights(path: &Path) -> Vec<(String, Vec<f32>)> {
    Checkpoint::load(path)
        .unwrap()
        .tensor_bytes()
        .into_iter()
        .map(|(name, bytes)| {
            let values = bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            (name, values)
        })
        .collect()
}

/// The largest |a − b| / (1 + |b|) over all tensors (same names in the same order).
fn max_difference(a: &[(String, Vec<f32>)], b: &[(String, Vec<f32>)]) -> f64 {
    assert_eq!(
        a.iter().map(|t| &t.0).collect::<Vec<_>>(),
        b.iter().map(|t| &t.0).collect::<Vec<_>>()
    );
    let mut worst = (0.0, "");
    for ((name, x), (_, y)) in a.iter().zip(b) {
        for (&p, &q) in x.iter().zip(y) {
            let d = ((p - q).abs() as f64) / (1.0 + q.abs() as f64);
            if d > worst.0 {
                worst = (d, name);
            }
        }
    }
    eprintln!("largest difference {:.2e} in {}", worst.0, worst.1);
    worst.0
}

fn step_losses(dir: &Path) -> Vec<f64> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .flat_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["step_losses"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn two_ranks_of_16_equal_one_process_of_32() {
    if !mpirun_available("two_ranks_of_16_equal_one_process_of_32") {
        return;
    }
    let scratch = common::scratch("dist-equal");
    let config = scratch.0.join("small.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let config = config.to_str().unwrap();
    let (one, two, local) = (
        scratch.0.join("one"),
        scratch.0.join("two"),
        scratch.0.join("local"),
    );
    let limit = Duration::from_secs(300);
    let (ok, text, _) = run(
        single(&["--config", config, "--out", one.to_str().unwrap()]),
        limit,
    );
    assert!(ok, "{text}");
    let (ok, text, _) = run(
        mpirun(
            2,
            &[
                "--config",
                config,
                "--out",
                two.to_str().unwrap(),
                "--check-every",
                "10",
            ],
        ),
        limit,
    );
    assert!(ok, "{text}");
    assert!(
        text.contains("global batch 32, per-rank batch 16"),
        "start-up line: {text}"
    );
    let (ok, text, _) = run(
        mpirun(
            2,
            &[
                "--config",
                config,
                "--out",
                local.to_str().unwrap(),
                "--sync-bn",
                "false",
            ],
        ),
        limit,
    );
    assert!(ok, "{text}");
    // The conv bias in front of a BatchNorm has no effect (BN subtracts the channel mean) and a
    // true gradient of 0: its computed gradient is rounding noise, which AdamW's normalisation
    // turns into ±lr steps, different in every summation order; the BN's running mean follows
    // it (the mean of the conv's output includes the bias). Everything else is compared.
    let last = |d: &Path| {
        let mut w = weights(&d.join("last.safetensors"));
        w.retain(|(name, _)| {
            !name.ends_with("conv_bn.conv.bias") && !name.ends_with("conv_bn.bn.running_mean")
        });
        w
    };
    let synced = max_difference(&last(&two), &last(&one));
    let unsynced = max_difference(&last(&local), &last(&one));
    eprintln!(
        "after {STEPS_PER_EPOCH} steps: 2×16 (sync BN) vs 1×32: {synced:.2e}; 2×16 (local BN): {unsynced:.2e}"
    );
    assert!(synced < 1e-4, "2 ranks × 16 differ from 1 × 32 by {synced}");
    assert!(
        unsynced > 10.0 * synced.max(1e-6),
        "local BN statistics should change the result ({unsynced} vs {synced})"
    );
    let (l1, l2) = (step_losses(&one), step_losses(&two));
    assert_eq!(l1.len(), l2.len());
    for (s, (a, b)) in l1.iter().zip(&l2).enumerate() {
        assert!((a - b).abs() < 1e-4, "step {s}: loss {a} vs {b}");
    }
}

#[test]
fn a_killed_rank_ends_the_job_with_an_error_naming_it() {
    if !mpirun_available("a_killed_rank_ends_the_job_with_an_error_naming_it") {
        return;
    }
    let scratch = common::scratch("dist-kill");
    let config = scratch.0.join("small.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let mut cmd = mpirun(
        2,
        &[
            "--config",
            config.to_str().unwrap(),
            "--epochs",
            "3",
            "--collective-timeout",
            "20",
        ],
    );
    cmd.env("TKS_TEST_KILL_RANK", "1:5");
    let (ok, text, seconds) = run(cmd, Duration::from_secs(120));
    assert!(!ok, "the job should fail:\n{text}");
    assert!(seconds < 60.0, "took {seconds:.0} s to stop:\n{text}");
    assert!(
        text.contains("rank 1"),
        "the error should name rank 1:\n{text}"
    );
}

#[test]
fn a_stalled_rank_ends_the_job_after_the_collective_timeout() {
    if !mpirun_available("a_stalled_rank_ends_the_job_after_the_collective_timeout") {
        return;
    }
    let scratch = common::scratch("dist-stall");
    let config = scratch.0.join("small.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let mut cmd = mpirun(
        2,
        &[
            "--config",
            config.to_str().unwrap(),
            "--epochs",
            "3",
            "--collective-timeout",
            "5",
        ],
    );
    // Rank 1 stops (SIGSTOP) and never answers: MPI waits forever, the watchdog of rank 0 not.
    cmd.env("TKS_TEST_KILL_RANK", "1:5:stop");
    let (ok, text, seconds) = run(cmd, Duration::from_secs(120));
    assert!(!ok, "the job should fail:\n{text}");
    assert!(seconds < 60.0, "took {seconds:.0} s to stop:\n{text}");
    assert!(
        text.contains("rank 0 of 2")
            && text.contains("waited")
            && text.contains("--collective-timeout 5"),
        "rank 0 should say it waited past the timeout:\n{text}"
    );
}

#[test]
fn resume_with_two_ranks_equals_an_uninterrupted_two_rank_run() {
    if !mpirun_available("resume_with_two_ranks_equals_an_uninterrupted_two_rank_run") {
        return;
    }
    let scratch = common::scratch("dist-resume");
    let config = scratch.0.join("small.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let config = config.to_str().unwrap();
    let (whole, broken) = (scratch.0.join("whole"), scratch.0.join("broken"));
    let limit = Duration::from_secs(300);
    let (ok, text, _) = run(
        mpirun(
            2,
            &[
                "--config",
                config,
                "--epochs",
                "2",
                "--out",
                whole.to_str().unwrap(),
            ],
        ),
        limit,
    );
    assert!(ok, "{text}");
    // Rank 0 dies in epoch 2, after the epoch-1 checkpoint.
    let mut cmd = mpirun(
        2,
        &[
            "--config",
            config,
            "--epochs",
            "2",
            "--out",
            broken.to_str().unwrap(),
        ],
    );
    cmd.env("TKS_TEST_KILL_RANK", format!("0:{}", STEPS_PER_EPOCH + 3));
    let (ok, text, _) = run(cmd, limit);
    assert!(!ok, "the interrupted run should fail:\n{text}");
    let ck = Checkpoint::load(&broken.join("last.safetensors")).unwrap();
    assert_eq!(ck.meta.epoch, 1, "the interrupted run's checkpoint");
    let (ok, text, _) = run(mpirun(2, &["--resume", broken.to_str().unwrap()]), limit);
    assert!(ok, "{text}");
    let (a, b) = (
        weights(&whole.join("last.safetensors")),
        weights(&broken.join("last.safetensors")),
    );
    assert_eq!(max_difference(&a, &b), 0.0, "resumed vs uninterrupted");
    assert_eq!(step_losses(&whole), step_losses(&broken));
}
