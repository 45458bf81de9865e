//! Training: objectives, the loop, checkpoints and resume, NaN handling, golden losses and the
//! command line end to end. Tests that train take [`common::serial`]: burn's device generator is
//! process-wide, so two seeded trainings at once would interleave their draws.

#[path = "../common/mod.rs"]
mod common;

mod cli;
mod cli_analysis;
mod distributed_sampler;
mod golden_losses;
mod nan_loss;
mod objectives_aux;
mod objectives_train;
mod resume;
mod study;
mod train_digits;
