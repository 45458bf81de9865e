//! The embedded sets: the UCI 8×8 digits and their simulated DVS version.

use std::path::Path;

use super::{DataConfig, config_as_data};
use crate::Split;
use crate::error::DataError;

/// `digits`: the embedded UCI digits (no path).
pub(super) fn load_digits(_: &Path, _: &DataConfig, _: usize) -> Result<Split, DataError> {
    crate::digits::load()
}

/// `dvsdigits`: the digits moving on a simulated DVS, integrated into `t` frames.
pub(super) fn load_dvs_digits(_: &Path, c: &DataConfig, t: usize) -> Result<Split, DataError> {
    crate::dvs_digits::load(t, c.split_by().map_err(config_as_data)?)
}
