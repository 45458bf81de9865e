//! `tks-train`: objectives (baseline, LS, TET, TKS, TSSD, BKD), the training loop, checkpoints
//! and run directories, evaluation and analyses, the TOML run configuration, and fitting the
//! model's `auto` dimensions to the data ([`fit`]).

pub mod config;
pub mod error;
pub mod eval;
pub mod fit;
pub mod objective;
pub mod study;
pub mod train;
