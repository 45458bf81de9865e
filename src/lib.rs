//! `tks`: spiking neural networks trained with surrogate-gradient BPTT, built around
//! Temporal Knowledge Sharing (Dong, Zhao & Zeng, arXiv 2304.06540).
//!
//! Tensors, autodiff, modules and optimizers come from burn 0.22 (pure-Rust Flex CPU backend by
//! default, CUDA behind the `cuda` feature; the backend is chosen by `Device` at run time).
//! Layout is time-major: `[T, B, ...]` everywhere.
//!
//! * [`surrogate`] — surrogate derivatives of the spike function.
//! * [`neuron`] — LIF / IF / PLIF, multi-step.
//! * [`layer`] — time-flattened conv/BN, pooling, shared-mask dropout, encoders.
//! * [`model`] — spiking networks returning per-timestep logits `[T, B, classes]`.
//! * [`objective`] — training losses behind one trait.
//! * [`data`] — datasets, the embedded default (UCI 8×8 digits).
//! * [`train`], [`eval`] — the loop and the metrics.
//! * [`config`] — the TOML run configuration.

pub mod bench;
pub mod cli;
pub mod config;
pub mod data;
pub mod device;
pub mod error;
pub mod eval;
pub mod layer;
pub mod model;
pub mod neuron;
pub mod objective;
pub mod params;
pub mod report;
pub mod surrogate;
pub mod train;
