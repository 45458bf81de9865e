//! The training loop: surrogate-gradient BPTT with AdamW and a cosine learning-rate schedule,
//! seeded and deterministic on CPU (same seed ⇒ same loss curve).

pub mod checkpoint;
pub mod distributed;

use std::time::Instant;

use burn::module::Module;
use burn::optim::lr_scheduler::cosine::CosineAnnealingLrSchedulerConfig;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::error::{
    ConfigError, TrainError, check_nonzero, check_positive, check_range, check_range_above,
};
use crate::eval::{AccuracyCounter, EvalReport, evaluate, values};
use crate::objective::aux::stage_shape;
use crate::objective::{AuxModule, AuxShape, LossExtras, Objective, Progress, Teacher};
use tks_core::kernels::KernelPolicy;
use tks_core::layer::Encoder;
use tks_core::model::{Model, ModelConfig};
use tks_data::{Dataset, Split};

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
    /// Compute device (`flex`, `wgpu[:N|:cpu]`, `vulkan[:N|:cpu]`, `cuda[:N]`); `--device`
    /// overrides it. Absent: Flex. Not part of what the run computes (every device computes
    /// the same function), so a resumed run may change it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
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
            device: None,
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
        check_range_above("train.lr", self.lr, 0.0, 1.0)?;
        check_range("train.min_lr", self.min_lr, 0.0, self.lr)?;
        check_range("train.weight_decay", self.weight_decay, 0.0, 1.0)?;
        if let Some(d) = &self.device {
            tks_core::device::DeviceSpec::parse("train.device", d)?;
        }
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
    /// Evaluation on the validation set after the epoch (what `best` is chosen on); `None`
    /// when the run has no validation set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val: Option<EvalReport>,
    /// Evaluation on the test set after the epoch, only in runs without a validation set
    /// (`[data] val_ratio = 0`), for the learning curve; nothing is selected on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<EvalReport>,
    /// Wall-clock seconds of the epoch (training and evaluation).
    pub seconds: f64,
    /// Training samples per second.
    pub samples_per_second: f64,
}

impl EpochRecord {
    /// The evaluation after this epoch: validation when the run has a validation set, else
    /// test.
    pub fn held_out(&self) -> Option<&EvalReport> {
        self.val.as_ref().or(self.test.as_ref())
    }
}

/// The epoch (1-based) with the best validation accuracy in `history`, the latest of equals (a
/// small validation set often ties; the later epoch has trained longer at a lower rate);
/// `None` when the run has no validation set.
pub fn best_epoch(history: &[EpochRecord]) -> Option<usize> {
    let mut best: Option<(usize, f64)> = None;
    for r in history {
        if let Some(v) = &r.val
            && best.is_none_or(|(_, a)| v.accuracy >= a)
        {
            best = Some((r.epoch, v.accuracy));
        }
    }
    best.map(|(e, _)| e)
}

/// The model chosen on the validation set, and how it does on the test set.
#[derive(Debug)]
pub struct BestModel {
    /// Its epoch (1-based).
    pub epoch: usize,
    /// Its validation accuracy.
    pub val_accuracy: f64,
    /// The model (inference mode).
    pub model: Model,
    /// Its test-set evaluation.
    pub test: EvalReport,
}

/// The outcome of a run.
#[derive(Debug)]
pub struct TrainOutcome {
    /// The trained model after the last epoch.
    pub model: Model,
    /// One record per epoch.
    pub history: Vec<EpochRecord>,
    /// Test-set evaluation of the last epoch's model.
    pub test_last: EvalReport,
    /// The epoch with the best validation accuracy (`None` without a validation set).
    pub best: Option<BestModel>,
}

impl TrainOutcome {
    /// Test-set evaluation of the last epoch's model.
    pub fn final_test(&self) -> &EvalReport {
        &self.test_last
    }

    /// Test-set evaluation of the model selected on the validation set, else of the last one.
    pub fn selected_test(&self) -> &EvalReport {
        self.best.as_ref().map_or(&self.test_last, |b| &b.test)
    }
}

/// Options of the loop that do not change the result.
#[derive(Default)]
pub struct TrainHooks<'a> {
    /// The kernels the model runs ([`KernelPolicy`]: fused or reference layers and neurons, the
    /// convolution's path); every choice computes the same function, tested equal.
    pub kernels: KernelPolicy,
    /// Called after every optimizer step (the binary draws its progress bar from these).
    pub on_step: Option<&'a mut dyn FnMut(&StepEvent)>,
    /// Called after every epoch.
    pub on_epoch: Option<&'a mut dyn FnMut(&EpochRecord)>,
    /// Data-parallel training over several ranks ([`distributed`]); `None`: this process alone.
    pub distributed: Option<distributed::Distributed>,
}

/// What [`TrainHooks::on_step`] is told after each optimizer step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepEvent {
    /// Epoch (0-based) and the number of epochs.
    pub epoch: usize,
    /// Epochs of the run.
    pub epochs: usize,
    /// Steps done in this epoch (1-based) and steps per epoch.
    pub step: usize,
    /// Steps per epoch.
    pub steps_per_epoch: usize,
    /// This step's loss.
    pub loss: f64,
    /// Training accuracy so far in this epoch.
    pub accuracy: f64,
    /// Training samples per second so far in this epoch.
    pub samples_per_second: f64,
}

/// Checkpointing and resuming for [`train_resumable`] (see [`checkpoint`]).
#[derive(Default)]
pub struct RunHooks<'a> {
    /// Continue from this checkpoint (built for the same configuration) instead of epoch 0.
    pub resume: Option<&'a checkpoint::Checkpoint>,
    /// With `resume`: the run's best-on-validation checkpoint so far, if it has one.
    pub resume_best: Option<&'a checkpoint::Checkpoint>,
    /// Called after every epoch with the model, the optimizer state and the progress so far;
    /// an error stops training.
    #[allow(clippy::type_complexity)]
    pub on_checkpoint: Option<
        &'a mut dyn FnMut(
            &Model,
            burn::optim::OptimizerRecord,
            &checkpoint::CheckpointMeta,
        ) -> Result<(), checkpoint::CheckpointError>,
    >,
}

/// Seed of burn's device generator at the start of `epoch` (0-based): a function of the run's
/// seed and the epoch alone, so a resumed run draws what an uninterrupted one would.
pub fn epoch_seed(seed: u64, epoch: usize) -> u64 {
    seed ^ ((epoch as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03))
}

/// [`train_resumable`] from scratch, without checkpoints.
pub fn train(
    model_config: &ModelConfig,
    config: &TrainConfig,
    objective: &dyn Objective,
    data: &Split,
    device: &Device,
    hooks: TrainHooks<'_>,
) -> Result<TrainOutcome, TrainError> {
    train_resumable(
        model_config,
        config,
        objective,
        data,
        device,
        hooks,
        RunHooks::default(),
    )
}

/// Trains a freshly initialised `model` on `data.train`, evaluating on `data.val` after each
/// epoch (on `data.test` when there is no validation set), keeping the model of the epoch with the
/// best validation accuracy; the test set is evaluated at the end, for that model and the last
/// one. `device` is the plain (non-autodiff) device; training runs on its autodiff form.
///
/// Deterministic for a given seed: initialisation and stochastic layers draw from burn's device
/// generator, seeded here, and shuffling from a generator seeded by `(seed, epoch)`. burn's
/// generator is shared by the whole process, so two runs training at the same time in one
/// process interleave their draws; run them one after the other to reproduce a curve.
///
/// `run.resume` continues from a checkpoint (same result as an uninterrupted run: the device
/// generator is reseeded by [`epoch_seed`] at every epoch start); `run.on_checkpoint` is called
/// after every epoch.
pub fn train_resumable(
    model_config: &ModelConfig,
    config: &TrainConfig,
    objective: &dyn Objective,
    data: &Split,
    device: &Device,
    mut hooks: TrainHooks<'_>,
    mut run: RunHooks<'_>,
) -> Result<TrainOutcome, TrainError> {
    config.validate()?;
    let model_config = &*crate::fit::resolved_for(model_config, &data.train)?;
    check_data(model_config, &data.train)?;
    check_data(model_config, &data.test)?;
    if let Some(v) = &data.val {
        check_data(model_config, v)?;
    }
    if data.train.is_empty() {
        return Err(TrainError::EmptyData {
            name: data.train.name.clone(),
        });
    }
    let dist = hooks.distributed;
    let (rank, ranks) = dist.map_or((0, 1), |d| (d.rank(), d.size()));
    // The fused kernels are Flex's: elsewhere the reference path runs (the binary says so).
    let (mut kernels, _) = hooks.kernels.for_device(device);
    if let Some(d) = dist {
        d.check_split(data.train.len(), config.batch_size)?;
        let sync = d
            .sync_bn
            .then(|| tks_core::collective::BnSync::new(d.collective));
        kernels = kernels.with_bn_sync(sync);
    }
    device.seed(config.seed);
    let train_device = device.clone().autodiff();
    let mut model = model_config.init_with(&train_device, &kernels)?;
    let mut extras = objective_extras(objective, model_config, config, data, &model, device)?;
    let mut aux = extras.aux.take();
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
    let mut first_epoch = 0;
    if let Some(ck) = run.resume {
        if ck.meta.epoch > config.epochs || ck.meta.seed != config.seed {
            return Err(TrainError::ResumeMismatch {
                path: ck.path.clone(),
                checkpoint_epoch: ck.meta.epoch,
                checkpoint_seed: ck.meta.seed,
                epochs: config.epochs,
                seed: config.seed,
            });
        }
        model = ck.apply_to(model)?;
        if let Some(r) = ck.optimizer_record()? {
            optimizer = optimizer.load_record(r);
        }
        for _ in 0..ck.meta.global_step {
            scheduler.step();
        }
        global_step = ck.meta.global_step;
        first_epoch = ck.meta.epoch;
        history = ck.meta.history.clone();
    }
    // The best-on-validation model so far: (epoch, validation accuracy, model).
    let mut best: Option<(usize, f64, Model)> = None;
    if let Some(epoch) = best_epoch(&history) {
        let acc = history[epoch - 1].val.as_ref().map_or(0.0, |v| v.accuracy);
        // The resumed weights are the last epoch's; an earlier best comes from its own file.
        let model = match run.resume_best {
            _ if epoch == first_epoch => model.valid(),
            Some(ck) if ck.meta.epoch == epoch => ck.apply_to(model.valid())?,
            _ => {
                return Err(TrainError::ResumeBest {
                    epoch,
                    found: run.resume_best.map(|c| (c.path.clone(), c.meta.epoch)),
                });
            }
        };
        best = Some((epoch, acc, model));
    }
    // The ranks' parameters are compared after the first step (not before: burn initialises
    // parameters lazily, drawing from the generator on first use, and reading them here would
    // change the order of the draws, so the run would differ from a single-process one).
    let first_step = global_step + 1;
    for epoch in first_epoch..config.epochs {
        device.seed(epoch_seed(config.seed, epoch));
        let started = Instant::now();
        let order = data.train.order(true, config.seed, epoch);
        let mut step_losses = Vec::with_capacity(steps_per_epoch);
        let mut counter = AccuracyCounter::default();
        let mut lr = config.lr;
        // Decoded (and for a streamed set prefetched on a background thread) in epoch order;
        // augmented per sample from (seed, epoch, index).
        let augment_seed = Some((config.seed, epoch));
        // A rank's shares of the global batches are not chunks of one order: no prefetching.
        let prefetch_order = if dist.is_some() { &[][..] } else { &order[..] };
        let mut batches = data
            .train
            .batches(prefetch_order, config.batch_size, augment_seed);
        for (step, global_chunk) in order.chunks(config.batch_size).enumerate() {
            global_step += 1;
            let chunk = distributed::shard(global_chunk, rank, ranks);
            let host = match batches.next() {
                Some(h) => h,
                None => data.train.host_batch(chunk, augment_seed),
            }?;
            let batch = host.to_batch(extras.student_timesteps, config.encoder, &train_device);
            let output = model.forward_output(batch.frames, objective.needs_stage());
            // TSSD on event data: the longer window is a second pass over the same recordings.
            let long_output = match data.train_long.as_ref().filter(|_| extras.long_pass) {
                Some(long) => {
                    let frames = long
                        .host_batch(chunk, augment_seed)?
                        .to_batch(extras.train_timesteps, config.encoder, &train_device)
                        .frames;
                    Some(model.forward_output(frames, false))
                }
                None => None,
            };
            let teacher_output = extras.teacher.as_ref().map(|teacher| {
                let frames = host
                    .to_batch(extras.teacher_timesteps, config.encoder, device)
                    .frames;
                teacher.forward_to(frames, &train_device)
            });
            let progress = Progress {
                epoch,
                epochs: config.epochs,
                step,
                steps_per_epoch,
            };
            let loss_extras = LossExtras {
                aux: aux.as_ref(),
                teacher: teacher_output.as_ref(),
                long: long_output.as_ref(),
            };
            let loss = objective.loss_with(&output, batch.targets, progress, &loss_extras);
            let mut loss_value = values(loss.clone())[0] as f64;
            // Distributed: checked on the global loss below, so that every rank stops together.
            if dist.is_none() && !loss_value.is_finite() {
                return Err(TrainError::NonFiniteLoss {
                    epoch: epoch + 1,
                    step: step + 1,
                    global_step,
                    value: loss_value,
                });
            }
            let logits = output.logits.detach();
            // Training accuracy over the evaluation window (TSSD trains over a longer one).
            let eval_steps = config.timesteps.min(logits.dims()[0]);
            let logits = logits.narrow(0, 0, eval_steps);
            let dims = logits.dims();
            let labels: Vec<u32> = chunk.iter().map(|&i| data.train.labels[i]).collect();
            counter.add(&values(logits), dims, &labels);
            // The optimizer updates the model and the objective's auxiliary module together.
            let trainee = Trainee { model, aux };
            let mut grads = GradientsParams::from_grads(loss.backward(), &trainee);
            if let Some(d) = dist {
                (grads, loss_value) = d.average(grads, &trainee, chunk.len(), loss_value, device);
                if !loss_value.is_finite() {
                    return Err(TrainError::NonFiniteLoss {
                        epoch: epoch + 1,
                        step: step + 1,
                        global_step,
                        value: loss_value,
                    });
                }
            }
            let lr_now = scheduler.step();
            lr = lr_now.base();
            let trainee = optimizer.step(lr_now, trainee, grads);
            (model, aux) = (trainee.model, trainee.aux);
            if let Some(d) = dist
                && d.check_every > 0
                && (global_step.is_multiple_of(d.check_every) || global_step == first_step)
            {
                d.check_parameters(&model, global_step)?;
            }
            step_losses.push(loss_value);
            let seen = counter.report();
            if let Some(f) = hooks.on_step.as_mut() {
                f(&StepEvent {
                    epoch,
                    epochs: config.epochs,
                    step: step + 1,
                    steps_per_epoch,
                    loss: loss_value,
                    accuracy: seen.accuracy,
                    samples_per_second: seen.samples as f64
                        / started.elapsed().as_secs_f64().max(1e-9),
                });
            }
        }
        if let Some(d) = dist {
            counter.all_reduce(d.collective);
        }
        let train_seconds = started.elapsed().as_secs_f64();
        let held_out = data.val.as_ref().unwrap_or(&data.test);
        let report = evaluate(
            &model,
            held_out,
            config.timesteps,
            config.eval_batch_size,
            config.encoder,
            device,
        )?;
        let (val, test) = match &data.val {
            Some(_) => (Some(report), None),
            None => (None, Some(report)),
        };
        if let Some(v) = &val
            && best.as_ref().is_none_or(|(_, a, _)| v.accuracy >= *a)
        {
            best = Some((epoch + 1, v.accuracy, model.valid()));
        }
        let record = EpochRecord {
            epoch: epoch + 1,
            loss: step_losses.iter().sum::<f64>() / step_losses.len().max(1) as f64,
            step_losses,
            train_accuracy: counter.report().accuracy,
            lr,
            val,
            test,
            seconds: started.elapsed().as_secs_f64(),
            samples_per_second: data.train.len() as f64 / train_seconds.max(1e-9),
        };
        if let Some(f) = hooks.on_epoch.as_mut() {
            f(&record);
        }
        history.push(record);
        if let Some(f) = run.on_checkpoint.as_mut() {
            let meta = checkpoint::CheckpointMeta {
                epoch: epoch + 1,
                global_step,
                seed: config.seed,
                config: None,
                history: history.clone(),
            };
            f(&model, optimizer.to_record(), &meta)?;
        }
    }
    let model = model.valid();
    let test_of = |m: &Model| {
        evaluate(
            m,
            &data.test,
            config.timesteps,
            config.eval_batch_size,
            config.encoder,
            device,
        )
    };
    let test_last = match history.last().and_then(|r| r.test.clone()) {
        Some(t) => t,
        None => test_of(&model)?,
    };
    let best = match best {
        Some((epoch, val_accuracy, m)) => {
            let test = if epoch == history.len() {
                test_last.clone()
            } else {
                test_of(&m)?
            };
            Some(BestModel {
                epoch,
                val_accuracy,
                model: m,
                test,
            })
        }
        None => None,
    };
    Ok(TrainOutcome {
        model,
        history,
        test_last,
        best,
    })
}

/// What the optimizer updates: the model and the objective's trainable auxiliary module (TSSD's
/// head, BKD's generator). The auxiliary module is dropped when training ends, so the trained
/// model is exactly the architecture of the configuration. Checkpoints hold the model only: a
/// resumed TSSD/BKD run starts a fresh auxiliary module.
#[derive(Module, Debug)]
pub struct Trainee {
    /// The network.
    pub model: Model,
    /// The objective's auxiliary module, if it has one.
    pub aux: Option<AuxModule>,
}

/// Per-run needs of the objective, resolved once before the first step.
struct ObjectiveExtras {
    /// Frozen teacher (BKD), on the plain device.
    teacher: Option<Teacher>,
    /// Frames the teacher gets per sample.
    teacher_timesteps: usize,
    /// Trainable auxiliary module, on the autodiff device.
    aux: Option<AuxModule>,
    /// Frames of a training forward pass (`objective.train_timesteps(T)`).
    train_timesteps: usize,
    /// Frames of the student's pass: `train_timesteps`, or `T` with a second, longer pass.
    student_timesteps: usize,
    /// Whether a second pass runs over `Split::train_long` (TSSD on event data).
    long_pass: bool,
}

/// Loads the objective's teacher, builds its auxiliary module from the probed stage shapes and
/// resolves the training timesteps. Event data carry a fixed number of frames, which the
/// training and teacher passes must then use.
fn objective_extras(
    objective: &dyn Objective,
    model_config: &ModelConfig,
    config: &TrainConfig,
    data: &Split,
    model: &Model,
    device: &Device,
) -> Result<ObjectiveExtras, TrainError> {
    let fixed_frames = data.train.kind.frames();
    let train_timesteps = objective.train_timesteps(config.timesteps);
    check_nonzero("train.timesteps", train_timesteps)?;
    let long_pass = train_timesteps != config.timesteps
        && objective.rebins_long_window()
        && fixed_frames.is_some()
        && data.train_long.is_some();
    let student_timesteps = if long_pass {
        config.timesteps
    } else {
        train_timesteps
    };
    let long_set = data.train_long.as_ref().filter(|_| long_pass);
    for (set, want) in std::iter::once((&data.train, student_timesteps))
        .chain(long_set.map(|l| (l, train_timesteps)))
    {
        if let Some(t) = set.kind.frames()
            && t != want
        {
            return Err(TrainError::FramesMismatch {
                data: set.name.clone(),
                frames: t,
                objective: objective.name(),
                timesteps: want,
            });
        }
    }
    let teacher = objective.load_teacher(model_config, device)?;
    let teacher_timesteps = match (&teacher, fixed_frames) {
        (_, Some(t)) => t,
        (Some(teacher), None) => teacher.timesteps,
        (None, None) => config.timesteps,
    };
    let input = model_config.input_shape();
    let probed = objective
        .needs_stage()
        .then(|| stage_shape(model, input, device))
        .flatten();
    let aux = match probed {
        Some(stage) => {
            let shape = AuxShape {
                stage,
                classes: model_config.num_classes(),
                teacher_stage: teacher.as_ref().and_then(|t| t.stage_shape(input, device)),
            };
            objective.init_aux(&shape, &device.clone().autodiff())
        }
        _ => None,
    };
    Ok(ObjectiveExtras {
        teacher,
        teacher_timesteps,
        aux,
        train_timesteps,
        student_timesteps,
        long_pass,
    })
}

fn check_data(model: &ModelConfig, data: &Dataset) -> Result<(), TrainError> {
    if data.frame_shape != model.input_shape() {
        return Err(TrainError::FrameShape {
            data: data.name.clone(),
            frames: data.frame_shape,
            model: model.input_shape(),
        });
    }
    if data.num_classes > model.num_classes() {
        return Err(TrainError::Classes {
            data: data.name.clone(),
            classes: data.num_classes,
            model: model.num_classes(),
        });
    }
    Ok(())
}
