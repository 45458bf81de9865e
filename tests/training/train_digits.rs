//! End-to-end training on the embedded digits: the main job's accuracy and determinism.

use burn::tensor::Device;
use tks::config::RunConfig;
use tks::data::digits;
use tks::train::{TrainHooks, train};

fn run(config: &RunConfig) -> tks::train::TrainOutcome {
    let _turn = crate::common::serial();
    let data = digits::load().expect("embedded digits");
    let objective = config.objective().expect("objective");
    train(
        &config.model,
        &config.train,
        objective.as_ref(),
        &data,
        &Device::flex(),
        TrainHooks::default(),
    )
    .expect("training runs")
}

#[test]
fn main_job_reaches_90_percent_and_reports_every_timestep() {
    let config = RunConfig::default();
    let outcome = run(&config);
    let report = outcome.final_test();
    assert_eq!(report.per_timestep.len(), config.train.timesteps);
    assert_eq!(report.samples, 355);
    assert!(
        report.accuracy >= 0.90,
        "test accuracy {:.4} < 0.90",
        report.accuracy
    );
    let first = outcome.history.first().unwrap().loss;
    let last = outcome.history.last().unwrap().loss;
    assert!(last < 0.5 * first, "loss did not fall: {first} → {last}");
}

#[test]
fn same_seed_same_loss_curve_other_seed_other_curve() {
    let mut config = RunConfig::default();
    config.train.epochs = 2;
    let a = run(&config);
    let b = run(&config);
    let losses = |o: &tks::train::TrainOutcome| {
        o.history
            .iter()
            .flat_map(|r| r.step_losses.clone())
            .collect::<Vec<f64>>()
    };
    assert_eq!(
        losses(&a),
        losses(&b),
        "same seed must give the same loss curve"
    );
    assert_eq!(a.final_test(), b.final_test());
    config.train.seed += 1;
    let c = run(&config);
    assert_ne!(
        losses(&a),
        losses(&c),
        "another seed should give another curve"
    );
}
