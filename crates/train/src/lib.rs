//! `tks-train`: objectives (baseline, LS, TET, TKS, TSSD, BKD), the training loop, checkpoints
//! and run directories, evaluation and analyses, and the TOML run configuration.

pub mod config;
pub mod error;
pub mod eval;
pub mod objective;
pub mod study;
pub mod train;
