//! A newcomer's path: `tks train --data NAME:DIR` with no config file fits the model to the data
//! (`auto` in_channels / input_size / num_classes, event frames resized to a size the
//! architecture takes), records the numbers in the run's `config.toml` for `tks eval`, and an
//! explicit dimension that disagrees is an error naming both values. MNIST, Fashion-MNIST and
//! N-MNIST come from `../shared/data` (skipped with `SKIP:` when absent); CIFAR-10 and DVS128
//! Gesture, which the shared folder lacks, from files built to their published layouts.

use std::path::Path;

use crate::common::{self, scratch, shared_data};
use crate::data_cli::tks;
use tks::config::RunConfig;
use tks::data::formats::aedat3::write_aedat3;
use tks::model::{Dim, ModelConfig};

/// `tks train --data SPEC` with no config file (1 epoch, tiny width, `--limit` samples per
/// split) into `out`; returns the output and the run's `config.toml`.
fn train_no_toml(spec: &str, limit: usize, out: &Path, extra: &[&str]) -> (String, RunConfig) {
    let run = out.join("run");
    let limit = limit.to_string();
    let mut args = vec![
        "train",
        "--data",
        spec,
        "--epochs",
        "1",
        "--width",
        "0.125",
        "--batch-size",
        "16",
        "--limit",
        &limit,
        "--out",
        run.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let (ok, text) = tks(&args, out);
    assert!(ok, "tks {args:?}:\n{text}");
    assert!(text.contains("final test accuracy"), "{text}");
    let config = RunConfig::load(&run.join("config.toml")).unwrap();
    (text, config)
}

/// The resolved dimensions of a run's model.
fn dims(c: &RunConfig) -> (Dim, Dim, Dim) {
    let d = c.model.dims();
    (d.in_channels, d.input_size, d.num_classes)
}

#[test]
fn mnist_and_fashion_train_without_a_config_file() {
    let _g = common::serial();
    for (name, rel) in [("mnist", "mnist"), ("fashion", "fashion-mnist")] {
        let Some(dir) = shared_data(rel) else {
            continue;
        };
        let work = scratch(&format!("zero-{name}"));
        let spec = format!("{name}:{}", dir.display());
        let (text, c) = train_no_toml(&spec, 64, &work, &[]);
        assert!(
            text.contains("54 train / 10 validation / 64 test, frames [1, 28, 28]"),
            "{text}"
        );
        assert_eq!(dims(&c), (1.into(), 28.into(), 10.into()), "{name}");
        // the same data with an architecture that cannot take 28 × 28 images: the fix is named
        let (ok, text) = tks(
            &[
                "train", "--data", &spec, "--arch", "vgg_snn", "--limit", "8",
            ],
            &work,
        );
        assert!(!ok, "{text}");
        assert!(
            text.contains("model.input_size")
                && text.contains("28×28")
                && text.contains("--arch small_cnn"),
            "{text}"
        );
    }
}

#[test]
fn nmnist_trains_resized_to_a_size_the_model_takes_and_eval_sees_the_same() {
    let _g = common::serial();
    let Some(dir) = shared_data("nmnist/NMNISTsmall") else {
        return;
    };
    let work = scratch("zero-nmnist");
    let spec = format!("nmnist:{}", dir.display());
    let (text, c) = train_no_toml(&spec, 48, &work, &["-T", "4"]);
    // 34 × 34 is no multiple of 4: one line says so and the frames become 32 × 32
    assert!(
        text.contains("34×34") && text.contains("resizing to 32×32"),
        "{text}"
    );
    assert!(text.contains("frames [2, 32, 32]"), "{text}");
    assert_eq!(dims(&c), (2.into(), 32.into(), 10.into()));
    assert_eq!(c.data.resize, 32);
    // `tks eval` builds the same model from config.toml and integrates the same frames
    let run = work.join("run");
    let (ok, text) = tks(&["eval", "--run", run.to_str().unwrap()], &work);
    assert!(ok, "{text}");
    // an explicit resize that the architecture cannot take: the exact fix
    let cfg = work.join("r.toml");
    std::fs::write(&cfg, "[data]\nresize = 30\n").unwrap();
    let (ok, text) = tks(
        &[
            "train",
            "--config",
            cfg.to_str().unwrap(),
            "--data",
            &spec,
            "--limit",
            "4",
        ],
        &work,
    );
    assert!(!ok, "{text}");
    assert!(
        text.contains("30×30") && text.contains("set [data] resize = 28"),
        "{text}"
    );
    // `--arch vgg_snn` (multiples of 16) also lands on 32
    let (text, c) = train_no_toml(&spec, 16, &work, &["--arch", "vgg_snn", "-T", "2"]);
    assert!(text.contains("resizing to 32×32"), "{text}");
    assert!(matches!(c.model, ModelConfig::VggSnn(_)));
    assert_eq!(c.model.input_shape(), [2, 32, 32]);
}

/// CIFAR-10 binary batches from the published layout: `n` records per file, labels cycling.
fn write_cifar10(dir: &Path, n: usize) {
    for (i, f) in (1..=5)
        .map(|i| format!("data_batch_{i}.bin"))
        .chain(["test_batch.bin".to_string()])
        .enumerate()
    {
        let mut b = Vec::with_capacity(n * 3073);
        for r in 0..n {
            b.push(((r + i) % 10) as u8);
            b.extend((0..3072).map(|p| ((p * 7 + r * 13 + i) % 256) as u8));
        }
        std::fs::write(dir.join(f), b).unwrap();
    }
}

#[test]
fn cifar10_and_dvsgesture_train_without_a_config_file() {
    let _g = common::serial();
    let work = scratch("zero-spec");
    let cifar = work.join("cifar");
    std::fs::create_dir_all(&cifar).unwrap();
    write_cifar10(&cifar, 20);
    let (text, c) = train_no_toml(&format!("cifar10:{}", cifar.display()), 32, &work, &[]);
    assert!(text.contains("frames [3, 32, 32]"), "{text}");
    assert_eq!(dims(&c), (3.into(), 32.into(), 10.into()));
    // `--arch resnet19` and `--arch sew_resnet18` take 32 × 32 as well
    for arch in ["resnet19", "sew_resnet18"] {
        let (_, c) = train_no_toml(
            &format!("cifar10:{}", cifar.display()),
            8,
            &work,
            &["--arch", arch, "-T", "1"],
        );
        assert_eq!(c.model.input_shape(), [3, 32, 32], "{arch}");
    }

    // DVS128 Gesture: AEDAT 3.1 recordings and their label files, users 1..=23 train
    let gesture = work.join("gesture");
    std::fs::create_dir_all(&gesture).unwrap();
    for user in [1, 2, 24] {
        let name = format!("user{user:02}_led");
        let ev: Vec<_> = (0..400u32)
            .map(|i| {
                (
                    (i % 128) as u16,
                    (i * 7 % 128) as u16,
                    (i % 2) as u8,
                    i * 50,
                )
            })
            .collect();
        std::fs::write(
            gesture.join(format!("{name}.aedat")),
            write_aedat3(&[(0, ev)]),
        )
        .unwrap();
        std::fs::write(
            gesture.join(format!("{name}_labels.csv")),
            "class,startTime_usec,endTime_usec\r\n3,0,10000\r\n11,10000,20000\r\n",
        )
        .unwrap();
    }
    let (text, c) = train_no_toml(
        &format!("dvsgesture:{}", gesture.display()),
        8,
        &work,
        &["-T", "2"],
    );
    assert!(
        text.contains("2 train / 2 validation / 2 test, frames [2, 128, 128]"),
        "{text}"
    );
    assert_eq!(dims(&c), (2.into(), 128.into(), 11.into()));
}

#[test]
fn explicit_dimensions_that_disagree_name_both_values() {
    let _g = common::serial();
    let work = scratch("zero-explicit");
    for (table, field, want) in [
        ("in_channels = 3", "model.in_channels", "= 3"),
        ("input_size = 16", "model.input_size", "= 16"),
        ("num_classes = 4", "model.num_classes", "= 4"),
    ] {
        let cfg = work.join("c.toml");
        std::fs::write(&cfg, format!("[model]\narch = \"small_cnn\"\n{table}\n")).unwrap();
        let (ok, text) = tks(
            &["train", "--config", cfg.to_str().unwrap(), "--epochs", "1"],
            &work,
        );
        assert!(!ok, "{table}: {text}");
        assert!(
            text.contains(field) && text.contains(want) && text.contains("digits"),
            "{table}: {text}"
        );
    }
    // the same numbers as the data are accepted, and more outputs than classes too
    let cfg = work.join("ok.toml");
    std::fs::write(
        &cfg,
        "[model]\narch = \"small_cnn\"\nin_channels = 1\ninput_size = 8\nnum_classes = 12\n\
         channels = [4, 8]\n",
    )
    .unwrap();
    let (ok, text) = tks(
        &[
            "train",
            "--config",
            cfg.to_str().unwrap(),
            "--epochs",
            "1",
            "--limit",
            "32",
        ],
        &work,
    );
    assert!(ok, "{text}");
    // unknown architectures list the known ones
    let (ok, text) = tks(&["train", "--arch", "lenet"], &work);
    assert!(!ok && text.contains("sew_resnet34"), "{text}");
}

#[test]
fn print_config_shows_auto_dimensions() {
    let work = scratch("zero-print");
    let (ok, text) = tks(&["train", "--arch", "vgg_snn", "--print-config"], &work);
    assert!(ok, "{text}");
    assert!(
        text.contains("arch = \"vgg_snn\"")
            && text.contains("in_channels = \"auto\"")
            && text.contains("num_classes = \"auto\""),
        "{text}"
    );
    // the printed configuration is a valid one
    let c = RunConfig::from_toml(&text, "printed").unwrap();
    assert!(!c.model.is_resolved());
}
