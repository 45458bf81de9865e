//! Small trained runs shared by the deployment tests: the default small CNN on the embedded
//! digits and a narrow VGG-SNN on the embedded DVS digits, each trained for a few steps.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use tks::config::RunConfig;
use tks::eval::analysis::collect_logits;
use tks::model::Model;
use tks::train::checkpoint::{Checkpoint, RunDir};

use crate::common::{Scratch, run_tks, scratch, serial};

/// The VGG-SNN recipe: width 0.125 on the 16×16 two-polarity DVS digits.
pub const VGG_TOML: &str = "[model]\narch = \"vgg_snn\"\nwidth = 0.125\nin_channels = 2\n\
    input_size = 16\n[model.neuron]\nthreshold = 0.5\n[train]\nepochs = 1\n[data]\n\
    source = \"dvsdigits\"\n";

/// A trained run directory (kept alive by the returned scratch).
pub struct TrainedRun {
    pub scratch: Scratch,
    pub dir: PathBuf,
}

/// Trains `tks train --out` with `config_toml` (or the defaults with 2 epochs).
pub fn train(name: &str, config_toml: Option<&str>) -> TrainedRun {
    let _lock = serial();
    let scratch = scratch(name);
    let dir = scratch.join("run");
    let mut args = vec![
        "train".to_string(),
        "--out".into(),
        dir.display().to_string(),
    ];
    match config_toml {
        Some(text) => {
            let path = scratch.join("run.toml");
            std::fs::write(&path, text).unwrap();
            args.extend(["--config".into(), path.display().to_string()]);
        }
        None => args.extend(["--epochs".into(), "2".into()]),
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (ok, out, err) = run_tks(&args);
    assert!(ok, "training failed:\n{out}\n{err}");
    TrainedRun { scratch, dir }
}

/// A run's configuration and best model.
pub fn load(dir: &Path) -> (RunConfig, Model) {
    let run = RunDir::open(dir).unwrap();
    let config = run.config().unwrap();
    let device = Device::flex();
    let ck = Checkpoint::load(&run.checkpoint_path("best")).unwrap();
    let model = ck
        .apply_to(config.model.init_with(&device, &config.kernels).unwrap())
        .unwrap();
    (config, model)
}

/// Per-timestep logits of `model` on the whole test set of `config`'s data (sample-major
/// `[N, T, C]`), and the labels.
pub fn test_logits(config: &RunConfig, model: &Model) -> (Vec<f32>, Vec<u32>) {
    let t = config.train.timesteps;
    let data = tks::data::source::load(&config.data, t).unwrap();
    let l = collect_logits(
        model,
        &data.test,
        t,
        64,
        config.train.encoder,
        &Device::flex(),
        0,
    )
    .unwrap();
    (l.logits, l.labels)
}
