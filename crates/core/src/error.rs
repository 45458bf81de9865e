//! Configuration errors shared by every crate: a field, its value and what was expected.

use thiserror::Error;

/// A configuration value that cannot be used, naming the field and the value.
#[derive(Debug, Error, Clone, PartialEq)]
#[error("invalid configuration: `{field}` = {value}: {reason}")]
pub struct ConfigError {
    /// Dotted name of the field, e.g. `neuron.threshold`.
    pub field: String,
    /// The offending value, as text.
    pub value: String,
    /// What was expected.
    pub reason: String,
}

impl ConfigError {
    /// A new error for `field` holding `value`.
    pub fn invalid(field: &str, value: impl std::fmt::Display, reason: &str) -> Self {
        Self {
            field: field.to_string(),
            value: value.to_string(),
            reason: reason.to_string(),
        }
    }
}

/// Checks that `value` is finite and strictly positive.
pub fn check_positive(field: &str, value: f64) -> Result<(), ConfigError> {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err(ConfigError::invalid(field, value, "must be finite and > 0"))
    }
}

/// Checks that `value` is finite and within `[lo, hi]`.
pub fn check_range(field: &str, value: f64, lo: f64, hi: f64) -> Result<(), ConfigError> {
    if value.is_finite() && (lo..=hi).contains(&value) {
        Ok(())
    } else {
        Err(ConfigError::invalid(
            field,
            value,
            &format!("must be finite and within [{lo}, {hi}]"),
        ))
    }
}

/// Checks that `value` is finite and within `(lo, hi]` (above `lo`, at most `hi`).
pub fn check_range_above(field: &str, value: f64, lo: f64, hi: f64) -> Result<(), ConfigError> {
    if value.is_finite() && value > lo && value <= hi {
        Ok(())
    } else {
        Err(ConfigError::invalid(
            field,
            value,
            &format!("must be finite and within ({lo}, {hi}]"),
        ))
    }
}

/// Checks that a count is at least 1.
pub fn check_nonzero(field: &str, value: usize) -> Result<(), ConfigError> {
    if value > 0 {
        Ok(())
    } else {
        Err(ConfigError::invalid(field, value, "must be at least 1"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_print_readably() {
        let e = check_range_above("train.lr", f64::NAN, 0.0, 1.0).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid configuration: `train.lr` = NaN: must be finite and within (0, 1]"
        );
        assert!(check_range_above("train.lr", 0.0, 0.0, 1.0).is_err());
        assert!(check_range_above("train.lr", 1e-300, 0.0, 1.0).is_ok());
        assert!(check_range_above("train.lr", 1.0, 0.0, 1.0).is_ok());
        let e = check_range("x", 2.0, 0.0, 1.0).unwrap_err().to_string();
        assert!(e.ends_with("within [0, 1]"), "{e}");
    }
}
