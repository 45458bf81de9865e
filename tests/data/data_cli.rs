//! `tks train --data NAME:PATH` through the binary: a real N-MNIST run (skipped with `SKIP:` when
//! `../shared/data` is absent), and the errors for a model set to other dimensions than the
//! data's and a bad path.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs the binary with `$XDG_CACHE_HOME` = `cache`: (success, stdout + stderr).
pub(crate) fn tks(args: &[&str], cache: &Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tks"))
        .args(args)
        .env("XDG_CACHE_HOME", cache)
        .output()
        .expect("run tks");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tks-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn train_on_nmnist_small_from_the_command_line() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/nmnist/NMNISTsmall");
    if !dir.exists() {
        eprintln!(
            "SKIP: {} not found (shared data folder absent)",
            dir.display()
        );
        return;
    }
    let work = scratch("nmnist");
    let data = format!("nmnist:{}", dir.display());
    // a model set to other dimensions than the data's: both are named, nothing is trained
    let wrong = work.join("wrong.toml");
    std::fs::write(&wrong, "[model]\narch = \"small_cnn\"\nin_channels = 1\n").unwrap();
    let w = wrong.to_str().unwrap();
    let (ok, text) = tks(
        &["train", "--config", w, "--data", &data, "--epochs", "1"],
        &work,
    );
    assert!(!ok, "{text}");
    assert!(
        text.contains("model.in_channels") && text.contains("= 1") && text.contains("2"),
        "{text}"
    );
    let config = work.join("nmnist.toml");
    std::fs::write(
        &config,
        "[model]\narch = \"small_cnn\"\nin_channels = 2\ninput_size = 32\nchannels = [8, 16]\n\
         [train]\nbatch_size = 50\n[data]\nresize = 32\n",
    )
    .unwrap();
    let c = config.to_str().unwrap();
    let (ok, text) = tks(
        &[
            "train", "--config", c, "--data", &data, "--epochs", "1", "-T", "4",
        ],
        &work,
    );
    assert!(ok, "{text}");
    assert!(
        text.contains("899 train / 101 validation / 100 test")
            && text.contains("final test accuracy"),
        "{text}"
    );
    // frames were cached under $XDG_CACHE_HOME/tks/frames
    let cached = std::fs::read_dir(work.join("tks/frames")).unwrap().count();
    assert_eq!(cached, 1100);
    let _ = std::fs::remove_dir_all(&work);
}

#[test]
fn bad_data_arguments_are_named() {
    let work = scratch("bad");
    let (ok, text) = tks(&["train", "--data", "cifar10:/no/such/cifar"], &work);
    assert!(!ok && text.contains("/no/such/cifar"), "{text}");
    let (ok, text) = tks(&["train", "--data", "imagenet:/x"], &work);
    assert!(
        !ok && text.contains("imagenet") && text.contains("dvsgesture"),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&work);
}
