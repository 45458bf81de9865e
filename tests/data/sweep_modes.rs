//! `tks sweep --mode truncate|rebin` on real N-MNIST recordings (skipped with `SKIP:` when
//! `../shared/data` is absent), and `tks eval` naming the checkpoint it chose and why.

use std::path::Path;

use crate::data_cli::tks;

use tks::eval::analysis::EvalFile;
use tks::eval::sweep::{SweepMode, SweepReport};

fn read<T: serde::de::DeserializeOwned>(p: &Path) -> T {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

#[test]
fn truncate_keeps_the_first_frames_and_rebin_integrates_again() {
    let Some(dir) = crate::common::shared_data("nmnist/NMNISTsmall") else {
        return;
    };
    let work = crate::common::scratch("sweep-modes");
    let run = work.join("run");
    let config = work.join("nmnist.toml");
    std::fs::write(
        &config,
        "[model]\narch = \"small_cnn\"\nin_channels = 2\ninput_size = 32\nchannels = [8, 16]\n\
         [train]\nbatch_size = 50\nepochs = 2\n[data]\nresize = 32\nlimit = 300\n",
    )
    .unwrap();
    let data = format!("nmnist:{}", dir.display());
    let (c, r) = (config.to_str().unwrap(), run.to_str().unwrap());
    let (ok, text) = tks(
        &[
            "train", "--config", c, "--data", &data, "-T", "4", "--out", r,
        ],
        &work,
    );
    assert!(ok, "{text}");

    let (ok, text) = tks(&["eval", "--run", r], &work);
    assert!(ok, "{text}");
    assert!(text.contains("highest validation accuracy"), "{text}");
    let eval: EvalFile = read(&run.join("eval.json"));

    let (ok, text) = tks(&["sweep", "--run", r, "--mode", "truncate"], &work);
    assert!(ok, "{text}");
    let truncate: SweepReport = read(&run.join("sweep-truncate.json"));
    assert_eq!(truncate.mode, SweepMode::Truncate);
    let acc = |s: &SweepReport| s.test_t.iter().map(|p| p.accuracy).collect::<Vec<_>>();
    // The network is causal: its first t outputs on T frames are its outputs on the first t
    // frames, so truncating to t is the running mean up to t of the full evaluation.
    assert_eq!(acc(&truncate), eval.analysis.report.running_mean);

    let (ok, text) = tks(
        &["sweep", "--run", r, "--mode", "rebin", "--max-t", "4"],
        &work,
    );
    assert!(ok, "{text}");
    let rebin: SweepReport = read(&run.join("sweep.json"));
    assert_eq!(rebin.mode, SweepMode::Rebin);
    // At t = T both read the same frames; below it they differ (re-binned frames are denser).
    assert_eq!(acc(&rebin)[3], acc(&truncate)[3]);
    assert_ne!(acc(&rebin)[..3], acc(&truncate)[..3]);

    let (ok, text) = tks(
        &["sweep", "--run", r, "--mode", "truncate", "--max-t", "6"],
        &work,
    );
    assert!(
        !ok && text.contains("--max-t") && text.contains('4'),
        "{text}"
    );
}

#[test]
fn a_run_without_validation_has_no_best_and_eval_says_so() {
    let work = crate::common::scratch("no-val");
    let run = work.join("run");
    let r = run.to_str().unwrap();
    let (ok, text) = tks(
        &["train", "--epochs", "1", "--val-ratio", "0", "--out", r],
        &work,
    );
    assert!(ok, "{text}");
    assert!(text.contains("no validation set"), "{text}");
    assert!(!run.join("best.safetensors").exists());
    let (ok, text) = tks(&["eval", "--run", r], &work);
    assert!(ok, "{text}");
    assert!(
        text.contains("last.safetensors") && text.contains("no validation set"),
        "{text}"
    );
}
