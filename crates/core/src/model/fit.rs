//! Fitting a model configuration to its data: `auto` dimensions resolved from the frames and
//! classes, the input sizes an architecture takes, and architectures by `--arch` name.

use serde::Deserialize;
use serde::de::value::{Error as ValueError, MapDeserializer};

use super::{Dim, Dims, ModelConfig};
use crate::error::ConfigError;

/// `--arch` names beyond the registry's tags: SEW-ResNet by depth.
const SEW_DEPTHS: [(&str, usize); 4] = [
    ("sew_resnet18", 18),
    ("sew_resnet19", 19),
    ("sew_resnet34", 34),
    ("sew_resnet50", 50),
];

impl ModelConfig {
    /// Every name [`Self::from_arch`] accepts.
    pub fn arch_names() -> Vec<&'static str> {
        let mut names = Self::ARCHS.to_vec();
        names.extend(SEW_DEPTHS.iter().map(|(n, _)| *n));
        names
    }

    /// The architecture `name` (a registry tag such as `vgg_snn`, or `sew_resnet18|19|34|50`)
    /// with its defaults and every data-dependent dimension `auto` — what a `[model]` table
    /// holding only `arch = "name"` gives.
    pub fn from_arch(name: &str) -> Result<ModelConfig, ConfigError> {
        let name = name.trim();
        let (tag, depth) = match SEW_DEPTHS.iter().find(|(n, _)| *n == name) {
            Some((_, d)) => ("sew_resnet", Some(*d)),
            None => (name, None),
        };
        if !Self::ARCHS.contains(&tag) {
            return Err(ConfigError::invalid(
                "model.arch",
                name,
                &format!("expected one of {}", Self::arch_names().join(", ")),
            ));
        }
        let map = MapDeserializer::<_, ValueError>::new(std::iter::once(("arch", tag)));
        let mut config = ModelConfig::deserialize(map)
            .map_err(|e| ConfigError::invalid("model.arch", name, &e.to_string()))?;
        if let (ModelConfig::SewResNet(c), Some(d)) = (&mut config, depth) {
            c.depth = d;
        }
        Ok(config)
    }

    /// The data-dependent dimensions, each a number or `auto`.
    pub fn dims(&self) -> Dims {
        self.info().dims()
    }

    /// Sets the data-dependent dimensions.
    pub fn set_dims(&mut self, dims: Dims) {
        self.info_mut().set_dims(dims);
    }

    /// Scales the channels by `width` (VGG-SNN and the ResNets: their `width`; the small CNN:
    /// both blocks' `channels`).
    pub fn set_width(&mut self, width: f64) {
        self.info_mut().set_width(width);
    }

    /// Whether no dimension is `auto` any more (the model can be built).
    pub fn is_resolved(&self) -> bool {
        let d = self.dims();
        !(d.in_channels.is_auto() || d.input_size.is_auto() || d.num_classes.is_auto())
    }

    /// Why this architecture cannot take `size × size` frames (its `model.input_size` error),
    /// or `None` when it can.
    pub fn input_size_error(&self, size: usize) -> Option<ConfigError> {
        let mut c = self.clone();
        let mut d = c.dims();
        d.input_size = Dim::Fixed(size);
        c.set_dims(d);
        c.validate().err().filter(|e| e.field == "model.input_size")
    }

    /// The input size nearest to `size` that this architecture takes (the smaller one on a
    /// tie), or `None` when none within `[1, 2·size + 32]` does.
    pub fn nearest_input_size(&self, size: usize) -> Option<usize> {
        (0..=size + 32)
            .flat_map(|d| [size.checked_sub(d), size.checked_add(d)])
            .flatten()
            .filter(|&s| s > 0)
            .find(|&s| self.input_size_error(s).is_none())
    }

    /// Sets every `auto` dimension from the data `data` (a name for messages) — square frames
    /// `[C, S, S]` and `classes` classes — and checks the ones already set: a different channel
    /// count or size, or fewer outputs than classes, is an error naming both values. The result
    /// is validated (an input size the architecture cannot take is the `model.input_size`
    /// error). On an error `self` is unchanged.
    pub fn resolve(
        &mut self,
        frame_shape: [usize; 3],
        classes: usize,
        data: &str,
    ) -> Result<(), ConfigError> {
        let [c, h, w] = frame_shape;
        if h != w {
            return Err(ConfigError::invalid(
                "model.input_size",
                self.dims().input_size,
                &format!(
                    "data `{data}` gives {h}×{w} (H×W) frames, but the models take square \
                     frames: resize the data to a square size"
                ),
            ));
        }
        let mut d = self.dims();
        let mismatch = |field: &str, set: usize, got: usize, what: &str| {
            ConfigError::invalid(
                field,
                set,
                &format!("data `{data}` gives {what} {got}: leave it \"auto\" or set {got}"),
            )
        };
        match d.in_channels {
            Dim::Auto => d.in_channels = Dim::Fixed(c),
            Dim::Fixed(n) if n != c => {
                return Err(mismatch(
                    "model.in_channels",
                    n,
                    c,
                    "frames with a channel count of",
                ));
            }
            Dim::Fixed(_) => {}
        }
        match d.input_size {
            Dim::Auto => d.input_size = Dim::Fixed(h),
            Dim::Fixed(n) if n != h => {
                return Err(mismatch("model.input_size", n, h, "frames of size"));
            }
            Dim::Fixed(_) => {}
        }
        match d.num_classes {
            Dim::Auto => d.num_classes = Dim::Fixed(classes),
            Dim::Fixed(n) if n < classes => {
                return Err(ConfigError::invalid(
                    "model.num_classes",
                    n,
                    &format!(
                        "data `{data}` has {classes} classes: leave it \"auto\" or set at \
                         least {classes}"
                    ),
                ));
            }
            Dim::Fixed(_) => {}
        }
        let mut next = self.clone();
        next.set_dims(d);
        next.validate()?;
        *self = next;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arch_names_build_auto_configs() {
        for name in ModelConfig::arch_names() {
            let c = ModelConfig::from_arch(name).unwrap();
            assert!(!c.is_resolved(), "{name}");
            assert_eq!(c.dims(), Dims::default(), "{name}");
            c.validate().unwrap();
        }
        let sew = ModelConfig::from_arch("sew_resnet34").unwrap();
        assert!(matches!(sew, ModelConfig::SewResNet(c) if c.depth == 34));
        let e = ModelConfig::from_arch("lenet").unwrap_err().to_string();
        assert!(
            e.contains("model.arch") && e.contains("sew_resnet50"),
            "{e}"
        );
    }

    #[test]
    fn resolve_fills_auto_and_names_both_values_on_a_mismatch() {
        let mut c = ModelConfig::from_arch("small_cnn").unwrap();
        let device = burn::tensor::Device::flex();
        assert!(c.init(&device).is_err(), "auto dims cannot be built");
        c.resolve([1, 28, 28], 10, "d").unwrap();
        assert_eq!(c.input_shape(), [1, 28, 28]);
        assert_eq!(c.num_classes(), 10);
        assert!(c.is_resolved());
        // a set value that disagrees names the field, its value and the data's
        let e = c.resolve([3, 28, 28], 10, "d").unwrap_err().to_string();
        assert!(
            e.contains("model.in_channels") && e.contains("= 1") && e.contains("3"),
            "{e}"
        );
        let e = c.resolve([1, 32, 32], 10, "d").unwrap_err().to_string();
        assert!(
            e.contains("model.input_size") && e.contains("28") && e.contains("32"),
            "{e}"
        );
        let e = c.resolve([1, 28, 28], 11, "d").unwrap_err().to_string();
        assert!(e.contains("model.num_classes") && e.contains("11"), "{e}");
        // more outputs than classes is allowed
        c.resolve([1, 28, 28], 5, "d").unwrap();
        // a size the architecture cannot take
        let mut c = ModelConfig::from_arch("small_cnn").unwrap();
        let e = c.resolve([2, 34, 34], 10, "d").unwrap_err();
        assert_eq!(
            (e.field.as_str(), e.value.as_str()),
            ("model.input_size", "34")
        );
        let e = ModelConfig::from_arch("vgg_snn")
            .unwrap()
            .resolve([2, 120, 100], 2, "d")
            .unwrap_err()
            .to_string();
        assert!(e.contains("120×100"), "{e}");
    }

    #[test]
    fn nearest_input_sizes() {
        let arch = |n| ModelConfig::from_arch(n).unwrap();
        assert_eq!(arch("small_cnn").nearest_input_size(34), Some(32));
        assert_eq!(arch("small_cnn").nearest_input_size(35), Some(36));
        assert_eq!(arch("small_cnn").nearest_input_size(28), Some(28));
        assert_eq!(arch("vgg_snn").nearest_input_size(34), Some(32));
        assert_eq!(arch("vgg_snn").nearest_input_size(128), Some(128));
        assert_eq!(arch("vgg_snn").nearest_input_size(10), Some(16));
        assert_eq!(arch("resnet19").nearest_input_size(2), Some(4));
        assert_eq!(arch("sew_resnet18").nearest_input_size(28), Some(32));
        assert!(arch("small_cnn").input_size_error(34).is_some());
        assert!(arch("small_cnn").input_size_error(36).is_none());
    }

    #[test]
    fn width_scales_channels() {
        let mut c = ModelConfig::from_arch("small_cnn").unwrap();
        c.set_width(0.125);
        assert!(matches!(&c, ModelConfig::SmallCnn(s) if s.channels == [4, 8]));
        let mut v = ModelConfig::from_arch("vgg_snn").unwrap();
        v.set_width(0.25);
        assert!(matches!(&v, ModelConfig::VggSnn(s) if s.width == 0.25));
    }
}
