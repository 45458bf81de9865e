//! The analysis commands end to end on the embedded digits: `tks train --out` → `tks eval`,
//! `tks sweep`, `tks anytime`, `tks report`, `tks train --resume`; and every recipe in
//! `configs/` parses.

use crate::common::run_tks as tks;

use std::path::{Path, PathBuf};

use tks::eval::analysis::EvalFile;
use tks::eval::anytime::AnytimeFile;
use tks::eval::sweep::SweepReport;

fn ok(args: &[&str]) -> String {
    let (ok, out, err) = tks(args);
    assert!(ok, "tks {args:?} failed:\n{out}\n{err}");
    out
}

fn read<T: serde::de::DeserializeOwned>(p: &Path) -> T {
    let text = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn tmp() -> PathBuf {
    let d = std::env::temp_dir().join(format!("tks-cli-analysis-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn train_eval_sweep_anytime_report() {
    let dir = tmp();
    let base = dir.join("base");
    let tksr = dir.join("tks");
    let s = |p: &Path| p.display().to_string();
    let small = ["--epochs", "2", "--batch-size", "64", "--seed", "5"];
    let bs = s(&base);
    let mut a = vec!["train", "--out", &bs];
    a.extend(small);
    ok(&a);
    let ts = s(&tksr);
    let mut a = vec!["train", "--out", &ts, "--objective", "tks"];
    a.extend(small);
    ok(&a);
    for f in [
        "config.toml",
        "metrics.jsonl",
        "last.safetensors",
        "best.safetensors",
    ] {
        assert!(base.join(f).is_file(), "{f}");
    }
    let metrics = std::fs::read_to_string(base.join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().count(), 2);
    // `best` is the epoch with the best validation accuracy; result.json has both test results.
    let result: tks::train::checkpoint::RunResult = read(&base.join("result.json"));
    let history = tks::train::checkpoint::RunDir::open(&base)
        .unwrap()
        .metrics()
        .unwrap();
    assert!(history.iter().all(|r| r.val.is_some() && r.test.is_none()));
    assert_eq!(result.best_epoch, tks::train::best_epoch(&history));
    assert!(result.test_best.is_some() && result.test_last.samples == 355);

    // eval
    let out = ok(&["eval", "--run", &bs, "--mac-pj", "3.7"]);
    assert!(out.contains("highest validation accuracy"), "{out}");
    assert!(out.contains("top-5") && out.contains("AURC"), "{out}");
    let e: EvalFile = read(&base.join("eval.json"));
    assert_eq!(e.timesteps, 4);
    assert_eq!(e.analysis.report.per_timestep.len(), 4);
    assert!(e.analysis.report.accuracy > 0.5);
    assert!(e.analysis.top5 >= e.analysis.report.accuracy);
    assert_eq!(e.analysis.confusion.len(), 10);
    let energy = e.analysis.energy.as_ref().unwrap();
    assert_eq!(energy.op_energy.mac_pj, 3.7);
    // Two convs and the classifier; two spiking layers.
    assert_eq!(energy.layers.len(), 3);
    assert!(
        energy.layers[2].name.starts_with("fc3 "),
        "{:?}",
        energy.layers
    );
    assert!(energy.layers[2].acs_per_sample > 0.0);
    assert_eq!(energy.firing_rates.len(), 2);
    assert!(energy.sops_per_sample > 0.0 && energy.energy_uj_per_sample > 0.0);
    ok(&["eval", "--run", &ts, "--checkpoint", "last", "-T", "2"]);
    let e: EvalFile = read(&tksr.join("eval.json"));
    assert_eq!(e.timesteps, 2);
    ok(&["eval", "--run", &ts]);

    // sweep: test T 1..8, and train-equal at T=1,2 for one epoch.
    ok(&[
        "sweep",
        "--run",
        &bs,
        "--train-equal",
        "1,2",
        "--epochs",
        "1",
    ]);
    let sw: SweepReport = read(&base.join("sweep.json"));
    assert_eq!(sw.train_timesteps, 4);
    assert_eq!(
        sw.test_t.iter().map(|p| p.timesteps).collect::<Vec<_>>(),
        (1..=8).collect::<Vec<_>>()
    );
    assert_eq!(sw.train_equal.len(), 2);
    assert!(base.join("equal-T1").join("last.safetensors").is_file());
    ok(&["sweep", "--run", &ts, "--max-t", "6"]);

    // anytime
    ok(&["anytime", "--run", &bs, "--thresholds", "0.5,0.9,1"]);
    let at: AnytimeFile = read(&base.join("anytime.json"));
    assert_eq!(at.points.len(), 3);
    assert_eq!(at.points[2].mean_timesteps, 4.0);
    assert!(at.points[0].mean_timesteps <= at.points[1].mean_timesteps);
    ok(&["anytime", "--run", &ts]);

    // report
    let rep = dir.join("report");
    let rs = s(&rep);
    ok(&["report", &bs, &ts, "--out", &rs, "--tsne-points", "120"]);
    let md = std::fs::read_to_string(rep.join("report.md")).unwrap();
    assert!(
        md.contains("| base | baseline |") && md.contains("| tks | tks |"),
        "{md}"
    );
    assert!(rep.join("report.html").is_file());
    for stem in [
        "training_loss",
        "training_accuracy",
        "per_timestep",
        "running_mean",
        "accuracy_vs_test_t",
        "train_equal_t",
        "risk_coverage",
        "per_class_t1",
        "anytime",
        "tsne_base",
        "tsne_tks",
    ] {
        let svg = rep.join(format!("{stem}.svg"));
        let len = std::fs::metadata(&svg).map(|m| m.len()).unwrap_or(0);
        assert!(len > 1000, "{} has {len} bytes", svg.display());
        assert!(md.contains(stem), "{stem} not in report.md");
        let png = rep.join(format!("{stem}.png"));
        if png.exists() {
            let bytes = std::fs::read(&png).unwrap();
            assert!(
                bytes.len() > 5000 && bytes.starts_with(b"\x89PNG"),
                "{stem}.png"
            );
        }
    }

    // resume a finished run: nothing to do, same result; flags that leave the run as it is
    // are accepted.
    let resumed_metrics = s(&dir.join("resumed.jsonl"));
    let out = ok(&["train", "--resume", &bs, "--metrics", &resumed_metrics]);
    assert!(out.contains("final test accuracy"), "{out}");
    // Flags that would change the run are an error naming the flag, not silently ignored.
    for (flag, value) in [
        ("--epochs", "3"),
        ("--lr", "0.1"),
        ("--seed", "6"),
        ("--objective", "tks"),
        ("--timesteps", "2"),
    ] {
        let (good, _, err) = tks(&["train", "--resume", &bs, flag, value]);
        assert!(
            !good && err.contains(flag) && err.contains("--resume"),
            "{flag}: {err}"
        );
    }
    let (good, _, err) = tks(&["train", "--resume", &bs, "--ann"]);
    assert!(!good && err.contains("--ann"), "{err}");
    let (_, help, _) = tks(&["train", "--help"]);
    assert!(help.contains("start a new run with `--out`"), "{help}");

    // Errors name the file.
    let (good, _, err) = tks(&["eval", "--run", &s(&dir.join("nope"))]);
    assert!(!good && err.contains("nope"), "{err}");
    let broken = dir.join("broken.safetensors");
    std::fs::write(&broken, b"not a checkpoint").unwrap();
    let (good, _, err) = tks(&["eval", "--run", &bs, "--checkpoint", &s(&broken)]);
    assert!(
        !good && err.contains("broken.safetensors") && !err.contains("panicked"),
        "{err}"
    );
    let (good, _, err) = tks(&["sweep", "--run", &bs, "--train-equal", "1,x"]);
    assert!(!good && err.contains("--train-equal"), "{err}");
    let (good, _, err) = tks(&["anytime", "--run", &bs, "--thresholds", "2"]);
    assert!(!good && err.contains("--thresholds"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn every_recipe_in_configs_parses() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let mut c = tks::config::RunConfig::load(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(c.neuron_mut().threshold, 0.5, "{}", path.display());
            n += 1;
        }
    }
    assert!(n >= 12, "only {n} recipes");
}
