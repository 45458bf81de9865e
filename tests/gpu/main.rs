//! Training on a GPU through burn's wgpu backend (WGSL shaders; build with `--features wgpu`).
//! In CI the adapter is Mesa's lavapipe, a software Vulkan driver (`.ci/run` installs it):
//! `--device wgpu:cpu`. Each test SKIPs, saying why, when no wgpu adapter comes up — unless
//! `TKS_REQUIRE_GPU` is set (CI), where that is a failure.
//!
//! * Every objective trains the small CNN on wgpu, and from the same weights (an epoch-0
//!   checkpoint: wgpu's generator draws other initial values than Flex's for the same seed) the
//!   same seed gives the same loss curve as Flex for a few steps (float tolerance: different
//!   summation orders). TSSD's and BKD's auxiliary modules are initialised on the device, so
//!   for those two the curve is only checked to be finite.
//! * `tks train --device wgpu:cpu` trains the small CNN and says the reference kernels run.

#[path = "../common/mod.rs"]
mod common;

use burn::tensor::{Device, DeviceKind, Tensor};
use tks::config::RunConfig;
use tks::data::{Split, digits};
use tks::objective::ObjectiveConfig;
use tks::train::checkpoint::{Checkpoint, CheckpointMeta};
use tks::train::{RunHooks, TrainHooks, train_resumable};

/// The software adapter, if wgpu can bring one up (a panic inside wgpu when it cannot is
/// caught here and turned into a skip).
fn software_gpu(test: &str) -> Option<Device> {
    let probe = std::panic::catch_unwind(|| {
        let device = Device::wgpu(DeviceKind::Cpu);
        let sum = Tensor::<1>::ones([4], &device).sum().into_scalar::<f32>();
        (device, sum)
    });
    match probe {
        Ok((device, 4.0)) => Some(device),
        outcome => {
            let why = match outcome {
                Ok((_, sum)) => format!("the adapter computed 1+1+1+1 = {sum}"),
                Err(_) => "no wgpu adapter (install mesa-vulkan-drivers libvulkan1)".to_string(),
            };
            assert!(
                std::env::var_os("TKS_REQUIRE_GPU").is_none(),
                "{test}: TKS_REQUIRE_GPU is set but {why}"
            );
            eprintln!("SKIP {test}: {why}");
            None
        }
    }
}

/// The first `n` training samples.
fn subset(data: &Split, n: usize) -> Split {
    let mut small = data.clone();
    let len = small.train.sample_len();
    small.train.values.truncate(n * len);
    small.train.labels.truncate(n);
    let tlen = small.test.sample_len();
    small.test.values.truncate(n * tlen);
    small.test.labels.truncate(n);
    small.val = None;
    small
}

fn config(objective: ObjectiveConfig) -> RunConfig {
    let mut c = RunConfig {
        objective,
        ..RunConfig::default()
    };
    c.train.epochs = 1;
    c.train.batch_size = 16;
    c.train.timesteps = 2;
    c.train.seed = 3;
    c.train.eval_batch_size = 64;
    if let tks::model::ModelConfig::SmallCnn(m) = &mut c.model {
        m.channels = [8, 16];
    }
    // The embedded digits: 1×8×8 frames, 10 classes (what `tks train` resolves from the data).
    c.model.resolve([1, 8, 8], 10, "digits").unwrap();
    c
}

fn losses(config: &RunConfig, data: &Split, device: &Device, start: &Checkpoint) -> Vec<f64> {
    let objective = config.objective().unwrap();
    let _turn = common::serial();
    let outcome = train_resumable(
        &config.model,
        &config.train,
        objective.as_ref(),
        data,
        device,
        TrainHooks {
            kernels: config.kernels,
            ..Default::default()
        },
        RunHooks {
            resume: Some(start),
            ..Default::default()
        },
    )
    .unwrap_or_else(|e| panic!("{}: {e}", config.objective.name()));
    outcome.history[0].step_losses.clone()
}

#[test]
fn every_objective_trains_on_wgpu_with_flexs_loss_curve() {
    let Some(gpu) = software_gpu("every_objective_trains_on_wgpu_with_flexs_loss_curve") else {
        return;
    };
    let data = subset(&digits::load().unwrap(), 64);
    let scratch = common::scratch("gpu-bkd");
    // BKD's ANN teacher: an untrained ANN of the same architecture is enough to exercise it.
    let teacher = scratch.0.join("teacher.safetensors");
    let mut ann = config(ObjectiveConfig::default());
    ann.set_ann();
    let model = ann.model.init(&Device::flex()).unwrap();
    tks::objective::aux::save_model(&model, &teacher, &CheckpointMeta::default()).unwrap();
    // The start weights of both devices.
    let start_file = scratch.0.join("start.safetensors");
    let start_model = config(ObjectiveConfig::default())
        .model
        .init(&Device::flex())
        .unwrap();
    let meta = CheckpointMeta {
        seed: 3,
        ..Default::default()
    };
    tks::objective::aux::save_model(&start_model, &start_file, &meta).unwrap();
    let start = Checkpoint::load(&start_file).unwrap();
    for name in ["baseline", "ls", "tet", "tks", "tssd", "bkd"] {
        let mut objective = ObjectiveConfig::from_name(name).unwrap();
        if let ObjectiveConfig::Bkd(b) = &mut objective {
            b.teacher = teacher.display().to_string();
        }
        let c = config(objective);
        let flex = losses(&c, &data, &Device::flex(), &start);
        let wgpu = losses(&c, &data, &gpu, &start);
        let compared = !matches!(name, "tssd" | "bkd");
        eprintln!("{name}: flex {flex:?}\n{name}: wgpu {wgpu:?}");
        assert_eq!(flex.len(), 4, "{name}: 64 samples / batch 16");
        assert_eq!(flex.len(), wgpu.len(), "{name}");
        for (step, (f, g)) in flex.iter().zip(&wgpu).enumerate() {
            assert!(g.is_finite(), "{name}: step {step}: loss {g} on wgpu");
            assert!(
                !compared || (f - g).abs() <= 1e-3 * (1.0 + f.abs()),
                "{name}: step {step}: flex {f} vs wgpu {g}"
            );
        }
    }
}

#[test]
fn tks_train_device_wgpu_trains_the_small_cnn() {
    if software_gpu("tks_train_device_wgpu_trains_the_small_cnn").is_none() {
        return;
    }
    let scratch = common::scratch("gpu-cli");
    let out = scratch.0.join("run");
    let (ok, stdout, stderr) = common::run_tks(&[
        "train",
        "--data",
        "digits",
        "--epochs",
        "1",
        "-T",
        "2",
        "--device",
        "wgpu:cpu",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{stdout}\n{stderr}");
    assert!(
        stderr.contains("device `wgpu:cpu`") && stderr.contains("reference"),
        "the start-up note on the kernels: {stderr}"
    );
    let result: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("result.json")).unwrap()).unwrap();
    let accuracy = result["test_last"]["accuracy"].as_f64().unwrap();
    assert!(
        accuracy > 0.3,
        "one epoch on wgpu: test accuracy {accuracy}\n{stdout}"
    );
}
