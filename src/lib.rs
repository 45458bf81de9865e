//! `tks`: spiking neural networks trained with surrogate-gradient BPTT, built around
//! Temporal Knowledge Sharing (Dong, Zhao & Zeng, arXiv 2304.06540).
//!
//! This crate is the `tks` binary (command line, benchmarks, reports) and a facade over the
//! workspace's library crates, so `use tks::neuron::…` works as before:
//!
//! * [`tks_core`] — [`surrogate`], [`neuron`], [`layer`] (with the fused kernels), [`model`],
//!   [`kernels`] (the kernel policy), [`monitor`] (spike / synaptic-operation counting).
//! * [`tks_data`] — [`data`]: formats, events, augmentation, sources, cache, streaming.
//! * [`tks_train`] — [`objective`], [`train`], [`eval`], [`config`], [`fit`], [`study`].
//! * [`tks_deploy`] — [`deploy`]: NIR export/import, single-file prediction.
//!
//! Layout is time-major: `[T, B, ...]` everywhere.

pub use tks_core::{collective, kernels, layer, model, monitor, neuron, params, surrogate};
pub use tks_data as data;
pub use tks_deploy as deploy;
pub use tks_train::{config, eval, fit, objective, study, train};

/// Error types of every crate.
pub mod error {
    pub use tks_core::error::*;
    pub use tks_data::error::*;
    pub use tks_train::error::*;
}

pub mod bench;
pub mod cli;
pub mod device;
pub mod distributed;
pub mod report;
