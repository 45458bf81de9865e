//! TSSD and BKD end to end: their auxiliary modules are trained and dropped (the eval-time model
//! has the baseline's parameters and forward cost), a short run on the embedded digits learns,
//! BKD's ANN teacher is trained, saved, reloaded and used, and the CLI selects both objectives.

use std::path::PathBuf;
use std::process::Command;

use burn::tensor::{Device, Tensor};
use tks::config::RunConfig;
use tks::data::{Split, digits};
use tks::eval::evaluate;
use tks::objective::aux::{load_model, save_model};
use tks::objective::{Bkd, ObjectiveConfig, Tssd};
use tks::params::trainable_params;
use tks::train::checkpoint::CheckpointMeta;
use tks::train::{TrainHooks, TrainOutcome, train};

fn run(config: &RunConfig, data: &Split) -> TrainOutcome {
    let objective = config.objective().expect("objective builds");
    let _turn = crate::common::serial();
    train(
        &config.model,
        &config.train,
        objective.as_ref(),
        data,
        &Device::flex(),
        TrainHooks::default(),
    )
    .expect("training runs")
}

/// The first `n` training samples (the test set stays whole).
fn subset(data: &Split, n: usize) -> Split {
    let mut small = data.clone();
    let len = small.train.sample_len();
    small.train.values.truncate(n * len);
    small.train.labels.truncate(n);
    small
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tks-aux-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// Loss falls within the first epoch by at least `1 − ratio`, the accuracy clears 50 %.
fn check_learns(name: &str, outcome: &TrainOutcome, ratio: f64) {
    let first = &outcome.history[0].step_losses;
    let (early, late) = (mean(&first[..5]), mean(&first[first.len() - 5..]));
    let accuracy = outcome.final_test().accuracy;
    println!(
        "{name}: epoch-1 loss {early:.4} → {late:.4}, epoch losses {:?}, test accuracy {:.2}%",
        outcome.history.iter().map(|r| r.loss).collect::<Vec<_>>(),
        100.0 * accuracy
    );
    assert!(
        late < ratio * early,
        "{name}: loss did not fall: {early} → {late}"
    );
    assert!(accuracy > 0.5, "{name}: test accuracy {accuracy}");
}

/// Same parameters as the freshly built (= baseline-trained) architecture, and evaluation at
/// the configured T (TSSD trains over more steps, infers at T).
fn check_no_overhead(name: &str, config: &RunConfig, outcome: &TrainOutcome, baseline: usize) {
    assert_eq!(
        trainable_params(&outcome.model),
        baseline,
        "{name}: eval-time model has extra parameters"
    );
    let t = config.train.timesteps;
    assert_eq!(outcome.final_test().timesteps, t, "{name}: evaluated at T");
    assert_eq!(outcome.final_test().per_timestep.len(), t);
    let logits = outcome
        .model
        .forward(Tensor::zeros([t, 2, 1, 8, 8], &Device::flex()));
    assert_eq!(logits.dims(), [t, 2, 10]);
}

fn baseline_params(data: &Split) -> usize {
    let mut config = RunConfig::default();
    config.train.epochs = 1;
    let outcome = run(&config, &subset(data, 64));
    trainable_params(&outcome.model)
}

#[test]
fn tssd_trains_on_digits_without_inference_overhead() {
    let data = digits::load().unwrap();
    let baseline = baseline_params(&data);
    let config = RunConfig {
        objective: ObjectiveConfig::Tssd(Tssd::default()),
        train: tks::train::TrainConfig {
            epochs: 2,
            ..Default::default()
        },
        ..RunConfig::default()
    };
    let outcome = run(&config, &data);
    // The total includes β·τ²·KL(final ‖ weak head), which grows as the final output sharpens
    // faster than the weak head can follow: only the first epoch's fall is checked.
    check_learns("tssd", &outcome, 0.9);
    check_no_overhead("tssd", &config, &outcome, baseline);
}

/// `tssd` on the embedded DVS digits at T = 4 (`T_t` = 6), `event_teacher` as given.
fn tssd_on_events(event_teacher: &str) -> RunConfig {
    RunConfig::from_toml(
        &format!(
            "[objective]\nname = \"tssd\"\nevent_teacher = \"{event_teacher}\"\n\
             [model]\narch = \"small_cnn\"\nin_channels = 2\ninput_size = 16\n\
             channels = [8, 16]\nnum_classes = 10\n\
             [train]\nepochs = 1\nbatch_size = 32\ntimesteps = 4\n\
             [data]\nsource = \"dvsdigits\"\n"
        ),
        "tssd_events.toml",
    )
    .expect("config parses")
}

#[test]
fn tssd_on_events_trains_the_student_on_the_test_binning() {
    // The default: the student on the 4-frame binning validation and test use, the teacher on
    // the same recordings (same order, same validation split) integrated into 6 frames.
    let config = tssd_on_events("rebin");
    let data = config.load_data().expect("dvsdigits loads");
    let long = data.train_long.as_ref().expect("a 6-frame training set");
    assert_eq!(data.train.kind.frames(), Some(4));
    assert_eq!(data.test.kind.frames(), Some(4));
    assert_eq!(data.val.as_ref().unwrap().kind.frames(), Some(4));
    assert_eq!(long.kind.frames(), Some(6));
    assert_eq!(long.labels, data.train.labels);
    // Both binnings hold the same events: equal totals per sample.
    let per = |set: &tks::data::Dataset, i: usize| -> f64 {
        let n = set.sample_len();
        set.values[i * n..(i + 1) * n]
            .iter()
            .map(|&v| v as f64)
            .sum()
    };
    for i in [0, 7, data.train.len() - 1] {
        let (a, b) = (per(&data.train, i), per(long, i));
        assert!(
            a > 0.0 && (a - b).abs() <= 1e-3 * a,
            "sample {i}: {a} vs {b}"
        );
    }
    let small = subset(&data, 64);
    let mut small = small;
    small.train_long = Some(long.subset(&(0..64).collect::<Vec<_>>(), "long"));
    let outcome = run(&config, &small);
    assert!(outcome.history[0].loss.is_finite());
    // A long set of the wrong length of window is an error naming it, not a silent mix.
    let mut wrong = small.clone();
    wrong.train_long = Some(small.train.clone());
    let objective = config.objective().unwrap();
    let e = train(
        &config.model,
        &config.train,
        objective.as_ref(),
        &wrong,
        &Device::flex(),
        TrainHooks::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("4") && e.contains("6") && e.contains("tssd"),
        "{e}"
    );
}

#[test]
fn tssd_on_events_extend_keeps_the_one_pass_form() {
    let config = tssd_on_events("extend");
    let data = config.load_data().expect("dvsdigits loads");
    assert!(data.train_long.is_none());
    assert_eq!(data.train.kind.frames(), Some(6));
    assert_eq!(data.test.kind.frames(), Some(4));
    let outcome = run(&config, &subset(&data, 64));
    assert!(outcome.history[0].loss.is_finite());
    let e = RunConfig::from_toml(
        "[objective]\nname = \"tssd\"\nevent_teacher = \"twice\"\n",
        "t.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("twice"), "{e}");
}

#[test]
fn bkd_trains_from_a_saved_ann_teacher() {
    let data = digits::load().unwrap();
    let dir = temp_dir("bkd");
    let teacher_path = dir.join("teacher.safetensors");

    // 1. The ANN teacher: ReLU everywhere, T = 1, one epoch; saved and reloaded.
    let mut ann = RunConfig::default();
    ann.set_ann();
    ann.model.resolve([1, 8, 8], 10, "digits").unwrap();
    ann.train.timesteps = 1;
    ann.train.epochs = 1;
    let teacher = run(&ann, &data);
    let teacher_accuracy = teacher.final_test().accuracy;
    println!(
        "ann teacher: test accuracy {:.2}%",
        100.0 * teacher_accuracy
    );
    assert!(teacher_accuracy > 0.5);
    save_model(&teacher.model, &teacher_path, &CheckpointMeta::default()).unwrap();
    let device = Device::flex();
    let reloaded = load_model(&ann.model, &teacher_path, &device, "objective.teacher").unwrap();
    let again = evaluate(&reloaded, &data.test, 1, 256, ann.train.encoder, &device).unwrap();
    assert_eq!(
        again.accuracy, teacher_accuracy,
        "round trip changes the teacher"
    );

    // 2. The SNN student distilled from it.
    let config = RunConfig {
        objective: ObjectiveConfig::Bkd(Bkd {
            teacher: teacher_path.display().to_string(),
            ..Bkd::default()
        }),
        train: tks::train::TrainConfig {
            epochs: 2,
            ..Default::default()
        },
        ..RunConfig::default()
    };
    config.validate().unwrap();
    let outcome = run(&config, &data);
    check_learns("bkd", &outcome, 0.8);
    let mut base = RunConfig::default().model;
    base.resolve([1, 8, 8], 10, "digits").unwrap();
    let baseline = trainable_params(&base.init(&device).unwrap());
    check_no_overhead("bkd", &config, &outcome, baseline);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn config_tables_and_errors() {
    let c = RunConfig::from_toml(
        "[objective]\nname = \"tssd\"\nalpha = 0.5\nextra_timesteps = 4\n",
        "r.toml",
    )
    .unwrap();
    assert_eq!(
        c.objective,
        ObjectiveConfig::Tssd(Tssd {
            alpha: 0.5,
            extra_timesteps: 4,
            ..Tssd::default()
        })
    );
    assert_eq!(c.objective().unwrap().train_timesteps(4), 8);
    let text = toml::to_string(&c).unwrap();
    assert_eq!(RunConfig::from_toml(&text, "x.toml").unwrap(), c);
    for (text, needles) in [
        (
            "[objective]\nname = \"tssd\"\nextra_timesteps = 0\n",
            &["objective.extra_timesteps", "0"][..],
        ),
        (
            "[objective]\nname = \"tssd\"\ntemperature = -1.0\n",
            &["objective.temperature", "-1"][..],
        ),
        (
            "[objective]\nname = \"tssd\"\nlambda = 1.0\n",
            &["lambda"][..],
        ),
        (
            "objective = \"bkd\"\n",
            &["objective.teacher", "missing"][..],
        ),
        (
            "[objective]\nname = \"bkd\"\nteacher = \"x\"\nmask_ratio = \"high\"\n",
            &["objective.mask_ratio", "high"][..],
        ),
    ] {
        let e = RunConfig::from_toml(text, "r.toml")
            .unwrap_err()
            .to_string();
        for n in needles {
            assert!(e.contains(n), "{text:?} → {e}");
        }
    }
    // A file that is not a checkpoint of this architecture: the error names field and path.
    let dir = temp_dir("bad");
    let bad = dir.join("bad.safetensors");
    std::fs::write(&bad, b"not a checkpoint").unwrap();
    let e = load_model(
        &RunConfig::default().model,
        &bad,
        &Device::flex(),
        "objective.teacher",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("objective.teacher") && e.contains("bad.safetensors"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

fn tks(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tks"))
        .args(args)
        .output()
        .expect("runs");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn cli_selects_tssd_and_bkd_and_ann() {
    let (ok, text) = tks(&["train", "--objective", "tssd", "--print-config"]);
    assert!(ok && text.contains("name = \"tssd\""), "{text}");
    let (ok, text) = tks(&["train", "--ann", "--print-config"]);
    assert!(
        ok && text.contains("kind = \"relu\"") && text.contains("timesteps = 1"),
        "{text}"
    );
    let (ok, text) = tks(&["train", "--objective", "bkd", "--print-config"]);
    assert!(!ok && text.contains("objective.teacher"), "{text}");
    let (ok, text) = tks(&[
        "train",
        "--objective",
        "bkd",
        "--teacher",
        "/nonexistent/teacher.safetensors",
    ]);
    assert!(
        !ok && text.contains("objective.teacher")
            && text.contains("/nonexistent/teacher.safetensors")
            && text.contains("no such file")
            && !text.contains("epoch "),
        "{text}"
    );
    let (ok, text) = tks(&["train", "--teacher", "t.safetensors", "--print-config"]);
    assert!(
        !ok && text.contains("--teacher") && text.contains("bkd"),
        "{text}"
    );
}

/// End to end from the command line: an ANN teacher is trained and saved, BKD distils from it,
/// TSSD trains; each prints its final accuracy.
#[test]
fn cli_trains_ann_teacher_then_bkd_and_tssd() {
    let dir = temp_dir("cli");
    let teacher = dir.join("teacher.safetensors");
    let teacher_arg = teacher.display().to_string();
    let (ok, text) = tks(&["train", "--ann", "--epochs", "1", "--save", &teacher_arg]);
    assert!(ok && teacher.is_file(), "{text}");
    assert!(text.contains("mean over T=1"), "{text}");
    let (ok, text) = tks(&[
        "train",
        "--objective",
        "bkd",
        "--teacher",
        &teacher_arg,
        "--epochs",
        "1",
    ]);
    assert!(ok && text.contains("objective `bkd`"), "{text}");
    assert!(
        text.contains("final test accuracy (mean over T=4)"),
        "{text}"
    );
    let (ok, text) = tks(&["train", "--objective", "tssd", "--epochs", "1"]);
    assert!(ok && text.contains("objective `tssd`"), "{text}");
    assert!(
        text.contains("final test accuracy (mean over T=4)"),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(dir);
}
