//! Data: every file format and data source, fuzzed inputs, the streaming loader and `tks data`-style
//! CLI checks on real data where `../shared/data/` has it.

#[path = "../common/mod.rs"]
mod common;

mod data_cli;
mod data_event_sources;
mod data_formats;
mod data_fuzz;
mod data_fuzz_sources;
mod data_inspect;
mod data_policy;
mod data_sources;
mod data_stream;
mod data_zero_config;
mod protocol;
mod sweep_modes;
