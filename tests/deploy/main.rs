//! Deployment: NIR export/import (round trip, the real Python `nir` package, bad files) and
//! `tks predict`. Tests that train take [`common::serial`].

#[path = "../common/mod.rs"]
mod common;

mod nir_errors;
mod nir_python;
mod nir_roundtrip;
mod predict;
mod runs;
