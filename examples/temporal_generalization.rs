//! The TKS paper's temporal-generalization claim on the embedded digits: train at a long T,
//! deploy at every shorter T, for the baseline objective and for TKS.
//!
//! Run: `cargo run --release --example temporal_generalization -- [T_TRAIN] [EPOCHS]`

use burn::tensor::Device;
use tks::config::RunConfig;
use tks::data::digits;
use tks::eval::evaluate;
use tks::objective::ObjectiveConfig;
use tks::train::{TrainHooks, train};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let t_train: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(10);
    let epochs: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(12);
    let device = Device::flex();
    let data = digits::load()?;
    let mut rows = Vec::new();
    for name in ["baseline", "tks"] {
        let mut config = RunConfig {
            objective: ObjectiveConfig::from_name(name)?,
            ..RunConfig::default()
        };
        config.train.timesteps = t_train;
        config.train.epochs = epochs;
        let objective = config.objective()?;
        let outcome = train(
            &config.model,
            &config.train,
            objective.as_ref(),
            &data,
            &device,
            TrainHooks::default(),
        )?;
        let accs = (1..=t_train)
            .map(|t| {
                let report = evaluate(
                    &outcome.model,
                    &data.test,
                    t,
                    256,
                    config.train.encoder,
                    &device,
                )?;
                Ok(report.accuracy)
            })
            .collect::<anyhow::Result<Vec<f64>>>()?;
        rows.push((name, accs));
    }
    println!("test accuracy (%) of models trained at T={t_train}, evaluated at T=1..{t_train}");
    print!("{:<10}", "objective");
    (1..=t_train).for_each(|t| print!(" T={t:<5}"));
    println!();
    for (name, accs) in rows {
        print!("{name:<10}");
        accs.iter().for_each(|a| print!(" {:6.2} ", 100.0 * a));
        println!();
    }
    Ok(())
}
