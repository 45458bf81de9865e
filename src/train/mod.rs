//! The training loop: surrogate-gradient BPTT with AdamW and a cosine learning-rate schedule,
//! seeded and deterministic on CPU (same seed ⇒ same loss curve).

use std::time::Instant;

use burn::module::Module;
use burn::optim::lr_scheduler::cosine::CosineAnnealingLrSchedulerConfig;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::Device;
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

use crate::data::{Dataset, Split};
use crate::error::{ConfigError, TrainError, check_nonzero, check_positive, check_range};
use crate::eval::{AccuracyCounter, EvalReport, evaluate, values};
use crate::layer::Encoder;
use crate::model::{Model, ModelConfig};
use crate::objective::{Objective, Progress};

/// Optimisation settings (the `[train]` table of a recipe).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Passes over the training set.
    pub epochs: usize,
    /// Samples per step.
    pub batch_size: usize,
    /// Peak learning rate (start of the cosine schedule).
    pub lr: f64,
    /// Learning rate at the end of the cosine schedule.
    pub min_lr: f64,
    /// AdamW decoupled weight decay.
    pub weight_decay: f64,
    /// Timesteps T the network runs per sample.
    pub timesteps: usize,
    /// Seed for initialisation, shuffling and stochastic layers.
    pub seed: u64,
    /// How static images become T frames.
    pub encoder: Encoder,
    /// Batch size for evaluation.
    pub eval_batch_size: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 12,
            batch_size: 32,
            lr: 5e-3,
            min_lr: 0.0,
            weight_decay: 0.01,
            timesteps: 4,
            seed: 2023,
            encoder: Encoder::Direct,
            eval_batch_size: 256,
        }
    }
}

impl TrainConfig {
    /// Checks every field, naming the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_nonzero("train.epochs", self.epochs)?;
        check_nonzero("train.batch_size", self.batch_size)?;
        check_nonzero("train.timesteps", self.timesteps)?;
        check_nonzero("train.eval_batch_size", self.eval_batch_size)?;
        check_range("train.lr", self.lr, f64::MIN_POSITIVE, 1.0)?;
        check_range("train.min_lr", self.min_lr, 0.0, self.lr)?;
        check_range("train.weight_decay", self.weight_decay, 0.0, 1.0)?;
        Ok(())
    }
}

/// One epoch's numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// Epoch, 1-based.
    pub epoch: usize,
    /// Mean training loss.
    pub loss: f64,
    /// Losses of every step in the epoch.
    pub step_losses: Vec<f64>,
    /// Training accuracy of the time-averaged output (measured during the epoch).
    pub train_accuracy: f64,
    /// Learning rate of the last step.
    pub lr: f64,
    /// Test-set evaluation after the epoch.
    pub test: EvalReport,
    /// Wall-clock seconds of the epoch (training and evaluation).
    pub seconds: f64,
    /// Training samples per second.
    pub samples_per_second: f64,
}

/// The outcome of a run.
#[derive(Debug)]
pub struct TrainOutcome {
    /// The trained model.
    pub model: Model,
    /// One record per epoch.
    pub history: Vec<EpochRecord>,
}

impl TrainOutcome {
    /// Evaluation after the last epoch.
    pub fn final_test(&self) -> &EvalReport {
        &self.history.last().expect("at least one epoch").test
    }
}

/// Options of the loop that do not change the result.
#[derive(Default)]
pub struct TrainHooks<'a> {
    /// Draw an indicatif progress bar per epoch.
    pub progress_bar: bool,
    /// Called after every epoch.
    pub on_epoch: Option<&'a mut dyn FnMut(&EpochRecord)>,
}

/// Trains a freshly initialised `model` on `data.train`, evaluating on `data.test` after each
/// epoch. `device` is the plain (non-autodiff) device; training runs on its autodiff form.
///
/// Deterministic for a given seed: initialisation and stochastic layers draw from burn's device
/// generator, seeded here, and shuffling from a generator seeded by `(seed, epoch)`. burn's
/// generator is shared by the whole process, so two runs training at the same time in one
/// process interleave their draws; run them one after the other to reproduce a curve.
pub fn train(
    model_config: &ModelConfig,
    config: &TrainConfig,
    objective: &dyn Objective,
    data: &Split,
    device: &Device,
    mut hooks: TrainHooks<'_>,
) -> Result<TrainOutcome, TrainError> {
    config.validate()?;
    check_data(model_config, &data.train)?;
    check_data(model_config, &data.test)?;
    if data.train.is_empty() {
        return Err(TrainError::Shape(format!("{} is empty", data.train.name)));
    }
    device.seed(config.seed);
    let train_device = device.clone().autodiff();
    let mut model = model_config.init(&train_device)?;
    let steps_per_epoch = data.train.len().div_ceil(config.batch_size);
    let mut optimizer = AdamWConfig::new()
        .with_weight_decay(config.weight_decay as f32)
        .with_epsilon(1e-8)
        .init();
    let mut scheduler =
        CosineAnnealingLrSchedulerConfig::new(config.lr, config.epochs * steps_per_epoch)
            .with_min_lr(config.min_lr)
            .init()
            .map_err(|reason| ConfigError::invalid("train.lr", config.lr, &reason))?;
    check_positive("train.lr", config.lr)?;

    let mut history = Vec::with_capacity(config.epochs);
    let mut global_step = 0;
    for epoch in 0..config.epochs {
        let started = Instant::now();
        let bar = if hooks.progress_bar {
            let bar = ProgressBar::new(steps_per_epoch as u64);
            bar.set_style(
                ProgressStyle::with_template(
                    "epoch {prefix} [{bar:30}] {pos}/{len} {msg} {per_sec} ETA {eta}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            bar.set_prefix(format!("{}/{}", epoch + 1, config.epochs));
            bar
        } else {
            ProgressBar::hidden()
        };
        let order = data.train.order(true, config.seed, epoch);
        let mut step_losses = Vec::with_capacity(steps_per_epoch);
        let mut counter = AccuracyCounter::default();
        let mut lr = config.lr;
        for (step, chunk) in order.chunks(config.batch_size).enumerate() {
            global_step += 1;
            let batch = data
                .train
                .batch(chunk, config.timesteps, config.encoder, &train_device);
            let output = model.forward_output(batch.frames, objective.needs_stage());
            let progress = Progress {
                epoch,
                epochs: config.epochs,
                step,
                steps_per_epoch,
            };
            let loss = objective.loss(&output, batch.targets, progress);
            let loss_value = values(loss.clone())[0] as f64;
            if !loss_value.is_finite() {
                bar.abandon();
                return Err(TrainError::NonFiniteLoss {
                    epoch: epoch + 1,
                    step: step + 1,
                    global_step,
                    value: loss_value,
                });
            }
            let logits = output.logits.detach();
            let dims = logits.dims();
            let labels: Vec<u32> = chunk.iter().map(|&i| data.train.labels[i]).collect();
            counter.add(&values(logits), dims, &labels);
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            let lr_now = scheduler.step();
            lr = lr_now.base();
            model = optimizer.step(lr_now, model, grads);
            step_losses.push(loss_value);
            bar.set_message(format!("loss {loss_value:.4}"));
            bar.inc(1);
        }
        bar.finish_and_clear();
        let train_seconds = started.elapsed().as_secs_f64();
        let test = evaluate(
            &model,
            &data.test,
            config.timesteps,
            config.eval_batch_size,
            config.encoder,
            device,
        );
        let record = EpochRecord {
            epoch: epoch + 1,
            loss: step_losses.iter().sum::<f64>() / step_losses.len().max(1) as f64,
            step_losses,
            train_accuracy: counter.report().accuracy,
            lr,
            test,
            seconds: started.elapsed().as_secs_f64(),
            samples_per_second: data.train.len() as f64 / train_seconds.max(1e-9),
        };
        if let Some(f) = hooks.on_epoch.as_mut() {
            f(&record);
        }
        history.push(record);
    }
    Ok(TrainOutcome {
        model: model.valid(),
        history,
    })
}

fn check_data(model: &ModelConfig, data: &Dataset) -> Result<(), TrainError> {
    if data.frame_shape != model.input_shape() {
        return Err(TrainError::Shape(format!(
            "{} has frames {:?} but the model expects {:?}",
            data.name,
            data.frame_shape,
            model.input_shape()
        )));
    }
    if data.num_classes > model.num_classes() {
        return Err(TrainError::Shape(format!(
            "{} has {} classes but the model outputs {}",
            data.name,
            data.num_classes,
            model.num_classes()
        )));
    }
    Ok(())
}
