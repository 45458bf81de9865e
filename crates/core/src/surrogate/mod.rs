//! Surrogate gradients: the derivative that stands in for the Heaviside step's during backward.
//!
//! A spiking neuron fires `s = H(v)` with `v = h - threshold` and `H(v) = 1 if v > 0 else 0`
//! (strict `>`, as TET's ZIF). `H` has zero gradient almost everywhere, so backward uses a smooth
//! stand-in `g(v)` instead (Neftci, Mostafa & Zenke, "Surrogate Gradient Learning in Spiking
//! Neural Networks", IEEE SPM 2019). Each surrogate here is a named, parameterised choice that
//! serialises into configs (`{ kind = "atan", alpha = 2.0 }`):
//!
//! | kind | `g(v)` | default |
//! |---|---|---|
//! | `triangle` (TET's ZIF) | `(1/γ²)·max(0, γ − abs(v))` | γ = 1 |
//! | `sigmoid` | `α·σ(αv)·(1 − σ(αv))` | α = 4 |
//! | `atan` (SpikingJelly `ATan`) | `α/2 / (1 + (π/2·α·v)²)` | α = 2 |
//! | `rectangle` | `1/a` where `abs(v) < a/2`, else 0 | a = 1 |
//! | `bireal` (Bi-Real Net's ApproxSign, Liu et al. ECCV 2018) | `2 − 2·abs(v)` where `abs(v) < 1`, else 0 | — |
//!
//! On tensors, [`Surrogate::spike`] returns the exact step in the forward pass and carries
//! `g(v)` in the backward pass. It does this with the straight-through construction
//! `H(v) + (P(v) − stopgrad(P(v)))`, where `P` is an antiderivative of `g` built from
//! differentiable tensor operations, so autodiff yields exactly `g(v)`.
//!
//! The scalar `g(v)` exists once, in [`scalar`]: the fused kernels evaluate it in f32
//! ([`Surrogate::with_grad`], [`Surrogate::grad_f32`]) and [`Surrogate::derivative`] in f64; the
//! tests check it against the autodiff gradient of `P`.

use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};
use std::f64::consts::PI;

use crate::error::{ConfigError, check_positive};

pub mod scalar;

/// A surrogate derivative for the spike function, with its parameter.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Surrogate {
    /// Triangle / zero-inflated (TET's ZIF): `(1/γ²)·max(0, γ − |v|)`.
    Triangle {
        /// Half-width γ of the triangle.
        #[serde(default = "one")]
        gamma: f64,
    },
    /// Derivative of a sigmoid with slope α: `α·σ(αv)·(1 − σ(αv))`.
    Sigmoid {
        /// Slope α.
        #[serde(default = "four")]
        alpha: f64,
    },
    /// SpikingJelly's ATan: `α/2 / (1 + (π/2·α·v)²)`.
    Atan {
        /// Sharpness α.
        #[serde(default = "two")]
        alpha: f64,
    },
    /// Rectangle (box) of width `a` and height `1/a`.
    Rectangle {
        /// Width `a` of the window around the threshold.
        #[serde(default = "one")]
        width: f64,
    },
    /// Bi-Real Net's piecewise polynomial: `2 − 2|v|` for `|v| < 1`, else 0.
    Bireal,
}

fn one() -> f64 {
    1.0
}
fn two() -> f64 {
    2.0
}
fn four() -> f64 {
    4.0
}

impl Default for Surrogate {
    fn default() -> Self {
        Surrogate::Triangle { gamma: 1.0 }
    }
}

impl Surrogate {
    /// Every kind with its default parameter, in a fixed order.
    pub fn all_defaults() -> [Surrogate; 5] {
        [
            Surrogate::Triangle { gamma: 1.0 },
            Surrogate::Sigmoid { alpha: 4.0 },
            Surrogate::Atan { alpha: 2.0 },
            Surrogate::Rectangle { width: 1.0 },
            Surrogate::Bireal,
        ]
    }

    /// The surrogate named `name` (`triangle`, `sigmoid`, `atan`, `rectangle`, `bireal`) with its
    /// default parameter.
    pub fn from_name(name: &str) -> Result<Self, ConfigError> {
        Self::all_defaults()
            .into_iter()
            .find(|s| s.name() == name)
            .ok_or_else(|| {
                ConfigError::invalid(
                    "surrogate",
                    name,
                    "expected one of triangle, sigmoid, atan, rectangle, bireal",
                )
            })
    }

    /// The kind's name as used in configs and golden files.
    pub fn name(&self) -> &'static str {
        match self {
            Surrogate::Triangle { .. } => "triangle",
            Surrogate::Sigmoid { .. } => "sigmoid",
            Surrogate::Atan { .. } => "atan",
            Surrogate::Rectangle { .. } => "rectangle",
            Surrogate::Bireal => "bireal",
        }
    }

    /// Checks that the parameter is finite and positive.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match *self {
            Surrogate::Triangle { gamma } => check_positive("surrogate.gamma", gamma),
            Surrogate::Sigmoid { alpha } | Surrogate::Atan { alpha } => {
                check_positive("surrogate.alpha", alpha)
            }
            Surrogate::Rectangle { width } => check_positive("surrogate.width", width),
            Surrogate::Bireal => Ok(()),
        }
    }

    /// `P(v)`: an antiderivative of `g` made of differentiable tensor operations.
    fn primitive<const D: usize>(&self, v: Tensor<D>) -> Tensor<D> {
        match *self {
            Surrogate::Triangle { gamma } => {
                // P(v) = (γc − c|c|/2)/γ², c = clamp(v, −γ, γ)  ⇒  P' = (γ − |v|)/γ² inside.
                let c = v.clamp(-gamma, gamma);
                let c_abs = c.clone().abs();
                (c.clone().mul_scalar(gamma) - c * c_abs.mul_scalar(0.5)).div_scalar(gamma * gamma)
            }
            Surrogate::Sigmoid { alpha } => burn::tensor::activation::sigmoid(v.mul_scalar(alpha)),
            Surrogate::Atan { alpha } => v.mul_scalar(PI / 2.0 * alpha).atan().div_scalar(PI),
            Surrogate::Rectangle { width } => v.clamp(-width / 2.0, width / 2.0).div_scalar(width),
            Surrogate::Bireal => {
                // ApproxSign: 2c − c|c|, c = clamp(v, −1, 1).
                let c = v.clamp(-1.0, 1.0);
                let c_abs = c.clone().abs();
                c.clone().mul_scalar(2.0) - c * c_abs
            }
        }
    }

    /// Spikes `H(v)` (exact 0/1, strict `v > 0`) whose gradient is `g(v)`.
    pub fn spike<const D: usize>(&self, v: Tensor<D>) -> Tensor<D> {
        let step = v.clone().greater_elem(0.0).float().detach();
        if !v.is_tracked() {
            return step;
        }
        let p = self.primitive(v);
        step + (p.clone() - p.detach())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    #[test]
    fn tensor_gradient_equals_scalar_derivative() {
        let device = Device::flex().autodiff();
        let points: Vec<f32> = (-30..=30).map(|i| i as f32 * 0.07 + 0.013).collect();
        for s in Surrogate::all_defaults() {
            let v =
                Tensor::<1>::from_data(TensorData::from(points.as_slice()), &device).require_grad();
            let spikes = s.spike(v.clone());
            let forward: Vec<f32> = spikes.to_data().try_to_vec::<f32>().unwrap();
            for (x, y) in points.iter().zip(&forward) {
                assert_eq!(
                    *y,
                    if *x > 0.0 { 1.0 } else { 0.0 },
                    "{} forward at {x}",
                    s.name()
                );
            }
            let grads = spikes.sum().backward();
            let g: Vec<f32> = v
                .grad(&grads)
                .unwrap()
                .to_data()
                .try_to_vec::<f32>()
                .unwrap();
            for (x, gx) in points.iter().zip(&g) {
                let want = s.derivative(*x as f64);
                assert!(
                    (*gx as f64 - want).abs() <= 1e-5 + 1e-4 * want.abs(),
                    "{} at {x}: {gx} vs {want}",
                    s.name()
                );
            }
        }
    }

    #[test]
    fn names_round_trip_and_bad_names_are_errors() {
        for s in Surrogate::all_defaults() {
            assert_eq!(Surrogate::from_name(s.name()).unwrap(), s);
        }
        let err = Surrogate::from_name("relu").unwrap_err().to_string();
        assert!(err.contains("surrogate") && err.contains("relu"), "{err}");
        assert!(Surrogate::Atan { alpha: -1.0 }.validate().is_err());
        assert!(Surrogate::Triangle { gamma: f64::NAN }.validate().is_err());
    }

    #[test]
    fn toml_form() {
        #[derive(Deserialize)]
        struct W {
            s: Surrogate,
        }
        let w: W = toml::from_str("s = { kind = \"atan\", alpha = 3.0 }").unwrap();
        assert_eq!(w.s, Surrogate::Atan { alpha: 3.0 });
        let w: W = toml::from_str("s = { kind = \"sigmoid\" }").unwrap();
        assert_eq!(w.s, Surrogate::Sigmoid { alpha: 4.0 });
    }
}
