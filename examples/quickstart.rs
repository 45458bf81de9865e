//! A tour of the library: build a spiking CNN, look at its neurons, train it on the embedded
//! digits with a chosen objective and surrogate, and read per-timestep accuracy.
//!
//! Run: `cargo run --release --example quickstart`

use burn::tensor::{Device, Tensor};
use tks::config::RunConfig;
use tks::data::digits;
use tks::neuron::{NeuronConfig, NeuronKind};
use tks::surrogate::Surrogate;
use tks::train::{TrainHooks, train};

fn main() -> anyhow::Result<()> {
    let device = Device::flex();

    // 1. A LIF neuron layer, multi-step over [T, B, N]: a constant input of 0.6 with threshold
    //    1.0 and decay 0.5 charges 0.6, 0.9, 1.05 → fires at the third step.
    let lif = NeuronConfig {
        kind: NeuronKind::Lif,
        threshold: 1.0,
        decay: 0.5,
        ..Default::default()
    }
    .init(&device)?;
    let trace = lif.forward_trace(Tensor::<3>::full([4, 1, 1], 0.6, &device));
    println!(
        "membrane before reset: {:?}",
        tks::eval::values(trace.h_pre_reset)
    );
    println!(
        "spikes:                {:?}",
        tks::eval::values(trace.spikes)
    );

    // 2. A run configuration: the default small CNN on 8×8 digits, with the atan surrogate.
    let mut config = RunConfig::default();
    config.train.epochs = 4;
    config.neuron_mut().surrogate = Surrogate::Atan { alpha: 2.0 };
    println!("\n{}", toml::to_string(&config)?);

    // 3. Train (selecting the epoch on a 10 % validation split), then test.
    let data = digits::load()?.with_validation(0.1, 0);
    let objective = config.objective()?;
    let mut on_epoch = |r: &tks::train::EpochRecord| {
        println!(
            "epoch {}: loss {:.4}, validation {:.2}%",
            r.epoch,
            r.loss,
            100.0 * r.val.as_ref().map_or(0.0, |v| v.accuracy)
        )
    };
    let outcome = train(
        &config.model,
        &config.train,
        objective.as_ref(),
        &data,
        &device,
        TrainHooks {
            kernels: config.kernels,
            on_epoch: Some(&mut on_epoch),
            ..Default::default()
        },
    )?;
    for (t, acc) in outcome.selected_test().per_timestep.iter().enumerate() {
        println!("timestep {}: {:.2}%", t + 1, 100.0 * acc);
    }
    Ok(())
}
