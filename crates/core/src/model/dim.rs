//! Dimensions of a model that the data can decide: `in_channels`, `input_size`, `num_classes`.
//!
//! In a `[model]` table each is a number or `"auto"` (the default when the field is left out):
//! an `auto` dimension is taken from the data at start-up ([`ModelConfig::resolve`]), and the
//! run's `config.toml` records the number, so `eval` and `--resume` build the same model. A
//! model cannot be built while a dimension is still `auto`.
//!
//! [`ModelConfig::resolve`]: super::ModelConfig::resolve

use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::ConfigError;

/// A model dimension: a fixed number, or `auto` (from the data).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Dim {
    /// Taken from the data when the run starts.
    #[default]
    Auto,
    /// This number.
    Fixed(usize),
}

impl Dim {
    /// The number, `None` while `auto`.
    pub fn value(self) -> Option<usize> {
        match self {
            Dim::Auto => None,
            Dim::Fixed(n) => Some(n),
        }
    }

    /// Whether it is still `auto`.
    pub fn is_auto(self) -> bool {
        self == Dim::Auto
    }

    /// The number, or an error naming `field` while it is `auto` (a model is built only from
    /// resolved dimensions).
    pub fn get(self, field: &str) -> Result<usize, ConfigError> {
        self.value().ok_or_else(|| {
            ConfigError::invalid(
                field,
                "\"auto\"",
                "not resolved: set a number, or resolve it from the data first \
                 (`ModelConfig::resolve`, done by `tks train`)",
            )
        })
    }

    /// The number, or 0 while `auto` (0 is never a valid dimension, so a comparison with the
    /// data's shape fails).
    pub fn or_zero(self) -> usize {
        self.value().unwrap_or(0)
    }
}

impl From<usize> for Dim {
    fn from(n: usize) -> Self {
        Dim::Fixed(n)
    }
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dim::Auto => f.write_str("auto"),
            Dim::Fixed(n) => write!(f, "{n}"),
        }
    }
}

impl Serialize for Dim {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Dim::Auto => s.serialize_str("auto"),
            Dim::Fixed(n) => s.serialize_u64(*n as u64),
        }
    }
}

struct DimVisitor;

impl Visitor<'_> for DimVisitor {
    type Value = Dim;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"auto\" or a non-negative integer")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Dim, E> {
        if v.trim().eq_ignore_ascii_case("auto") {
            Ok(Dim::Auto)
        } else {
            Err(E::invalid_value(de::Unexpected::Str(v), &self))
        }
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Dim, E> {
        usize::try_from(v)
            .map(Dim::Fixed)
            .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Dim, E> {
        usize::try_from(v)
            .map(Dim::Fixed)
            .map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
    }
}

impl<'de> Deserialize<'de> for Dim {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Dim, D::Error> {
        d.deserialize_any(DimVisitor)
    }
}

/// The three data-dependent dimensions of a model.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Dims {
    /// Channels of one input frame.
    pub in_channels: Dim,
    /// Height = width of one input frame.
    pub input_size: Dim,
    /// Output classes.
    pub num_classes: Dim,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct T {
        #[serde(default)]
        d: Dim,
    }

    #[test]
    fn auto_or_number_round_trips() {
        let p = |s: &str| toml::from_str::<T>(s);
        assert_eq!(p("d = 28").unwrap().d, Dim::Fixed(28));
        assert_eq!(p("d = \"auto\"").unwrap().d, Dim::Auto);
        assert_eq!(p("").unwrap().d, Dim::Auto);
        for bad in ["d = -1", "d = \"big\"", "d = 2.5"] {
            let e = p(bad).unwrap_err().to_string();
            assert!(
                e.contains("\"auto\" or a non-negative integer"),
                "{bad}: {e}"
            );
        }
        for d in [Dim::Auto, Dim::Fixed(7)] {
            let text = toml::to_string(&T { d }).unwrap();
            assert_eq!(p(&text).unwrap().d, d, "{text}");
        }
        assert!(
            toml::to_string(&T { d: Dim::Auto })
                .unwrap()
                .contains("\"auto\"")
        );
        let e = Dim::Auto.get("model.input_size").unwrap_err().to_string();
        assert!(e.contains("model.input_size") && e.contains("auto"), "{e}");
    }
}
