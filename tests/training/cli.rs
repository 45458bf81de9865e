//! The `tks` binary: bad input gives a clear error naming the field or file, never a panic.

use crate::common::run_tks as tks;

fn temp_file(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("tks-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn assert_clean_error(stderr: &str, needles: &[&str]) {
    assert!(stderr.starts_with("error:"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    for n in needles {
        assert!(stderr.contains(n), "`{n}` missing from: {stderr}");
    }
}

#[test]
fn bad_flags_and_configs_name_field_and_value() {
    let (ok, _, err) = tks(&["train", "--epochs", "0"]);
    assert!(!ok);
    assert_clean_error(&err, &["train.epochs", "0"]);

    let (ok, _, err) = tks(&["train", "--threshold=-1"]);
    assert!(!ok);
    assert_clean_error(&err, &["neuron.threshold", "-1"]);

    let (ok, _, err) = tks(&["train", "--surrogate", "relu"]);
    assert!(!ok);
    assert_clean_error(&err, &["surrogate", "relu"]);

    let (ok, _, err) = tks(&["train", "--config", "/nonexistent/run.toml"]);
    assert!(!ok);
    assert_clean_error(&err, &["/nonexistent/run.toml"]);

    let path = temp_file("bad.toml", "[train]\nlr = 5.0\n");
    let (ok, _, err) = tks(&["train", "--config", path.to_str().unwrap()]);
    assert!(!ok);
    assert_clean_error(&err, &["train.lr", "5"]);

    let path = temp_file("typo.toml", "[train]\nepochz = 2\n");
    let (ok, _, err) = tks(&["train", "--config", path.to_str().unwrap()]);
    assert!(!ok);
    assert_clean_error(&err, &["typo.toml", "epochz"]);
}

#[test]
fn print_config_round_trips() {
    let (ok, out, err) = tks(&["train", "--print-config", "--epochs", "3", "-T", "6"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("epochs = 3") && out.contains("timesteps = 6"),
        "{out}"
    );
    let path = temp_file("printed.toml", &out);
    let (ok, again, err) = tks(&[
        "train",
        "--print-config",
        "--config",
        path.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert_eq!(out, again);
}

#[test]
fn short_training_run_prints_per_timestep_accuracy() {
    let (ok, out, err) = tks(&["train", "--epochs", "1", "-T", "2"]);
    assert!(ok, "{err}");
    assert!(out.contains("epoch   1/1"), "{out}");
    assert!(out.contains("test accuracy per timestep"), "{out}");
    assert!(out.contains("final test accuracy"), "{out}");
}

#[test]
fn conv_mode_flag_is_checked_and_every_mode_trains() {
    let (ok, _, err) = tks(&["train", "--conv-mode", "fast"]);
    assert!(!ok);
    assert!(err.contains("fast") && err.contains("dense"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    // The same one-epoch training on the embedded digits under each mode: all finish and
    // report an accuracy.
    for mode in ["dense", "sparse", "auto"] {
        let (ok, out, err) = tks(&["--conv-mode", mode, "train", "--epochs", "1", "-T", "2"]);
        assert!(ok, "{mode}: {err}");
        assert!(out.contains("final test accuracy"), "{mode}: {out}");
    }
}
