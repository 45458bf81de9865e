//! Spiking neurons, multi-step over inputs shaped `[T, B, ...]`.
//!
//! Every neuron is *charge → fire → reset* (SpikingJelly's split); only the charge differs:
//!
//! | kind | charge `h_t` | paper |
//! |---|---|---|
//! | `lif` | `decay · mem_{t−1} + x_t` | TET's `LIFSpike` (Deng et al., ICLR 2022); decay 0.5 |
//! | `if` | `mem_{t−1} + x_t` | integrate-and-fire |
//! | `plif` | `mem_{t−1} + k · (x_t − mem_{t−1})`, `k = σ(w)` learnable | Fang et al., "Incorporating Learnable Membrane Time Constant to Enhance Learning of Spiking Neural Networks", ICCV 2021 (arXiv 2007.05785) |
//!
//! `relu` is not a spiking neuron: the ANN mode (`tks train --ann`, BKD's teacher) replaces
//! every neuron by `relu(x_t)` per timestep, with no state, threshold or reset.
//!
//! Fire: `s_t = H(h_t − threshold)` with the strict `>` of TET, and the configured
//! [`Surrogate`] derivative in backward. Reset: hard `mem_t = h_t · (1 − s_t)` or soft
//! `mem_t = h_t − threshold · s_t`; the spike in the reset is *not* detached by default
//! (`detach_reset = true` cuts that path, as SpikingJelly's option). `mem_{−1} = 0`.
//! TKS uses threshold 0.5, TET 1.0.

use burn::module::{Module, Param};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{ConfigError, check_positive, check_range};
use crate::surrogate::Surrogate;

pub mod fused;
pub use crate::kernels::LifPath;
use crate::kernels::{KernelPolicy, SetKernels};

/// Which membrane update (charge) the neuron uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NeuronKind {
    /// Leaky integrate-and-fire with a fixed decay factor.
    #[default]
    Lif,
    /// Integrate-and-fire (no leak).
    If,
    /// Parametric LIF with a learnable time constant.
    Plif,
    /// Not spiking: `relu(x_t)` per timestep, stateless (ANN mode).
    Relu,
}

/// How the membrane is reset after a spike.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResetMode {
    /// `mem = h · (1 − s)`: back to zero.
    #[default]
    Hard,
    /// `mem = h − threshold · s`: subtract the threshold.
    Soft,
}

/// Configuration of a spiking neuron layer (serialises into the `[neuron]` table of a recipe).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NeuronConfig {
    /// Membrane update.
    pub kind: NeuronKind,
    /// Firing threshold (TKS 0.5, TET 1.0).
    pub threshold: f64,
    /// LIF decay factor in `[0, 1]` (TET's `tau = 0.5`; this is a factor, not a time constant).
    pub decay: f64,
    /// Reset mode.
    pub reset: ResetMode,
    /// Stop the gradient through the spike in the reset.
    pub detach_reset: bool,
    /// Surrogate derivative of the step.
    pub surrogate: Surrogate,
    /// PLIF: initial time constant τ₀ > 1 (`k = 1/τ₀` at start).
    pub plif_init_tau: f64,
}

impl Default for NeuronConfig {
    fn default() -> Self {
        Self {
            kind: NeuronKind::Lif,
            threshold: 1.0,
            decay: 0.5,
            reset: ResetMode::Hard,
            detach_reset: false,
            surrogate: Surrogate::default(),
            plif_init_tau: 2.0,
        }
    }
}

impl NeuronConfig {
    /// Checks every field, naming the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_positive("neuron.threshold", self.threshold)?;
        check_range("neuron.decay", self.decay, 0.0, 1.0)?;
        self.surrogate.validate()?;
        if !(self.plif_init_tau.is_finite() && self.plif_init_tau > 1.0) {
            return Err(ConfigError::invalid(
                "neuron.plif_init_tau",
                self.plif_init_tau,
                "must be finite and > 1",
            ));
        }
        Ok(())
    }

    /// A neuron layer with this configuration (validated first).
    pub fn init(&self, device: &Device) -> Result<Neuron, ConfigError> {
        self.validate()?;
        let plif_w = match self.kind {
            NeuronKind::Plif => {
                // σ(w) = 1/τ₀  ⇔  w = −ln(τ₀ − 1).
                let w = -(self.plif_init_tau - 1.0).ln();
                Some(Param::from_tensor(Tensor::<1>::from_floats(
                    [w as f32],
                    device,
                )))
            }
            _ => None,
        };
        Ok(Neuron {
            plif_w,
            config: *self,
            kernels: KernelPolicy::default(),
        })
    }
}

/// State of a multi-step run, for tests and analysis.
#[derive(Debug, Clone)]
pub struct NeuronTrace<const D: usize> {
    /// Spikes `[T, B, ...]` (0/1).
    pub spikes: Tensor<D>,
    /// Membrane after charging, before reset, per step `[T, B, ...]`.
    pub h_pre_reset: Tensor<D>,
    /// Membrane after the last reset `[1, B, ...]`.
    pub mem_final: Tensor<D>,
}

/// A layer of spiking neurons; stateless between calls (each call starts from `mem = 0`).
#[derive(Module, Debug)]
pub struct Neuron {
    /// PLIF's learnable `w` (`k = σ(w)`), `[1]`; `None` for LIF/IF.
    pub plif_w: Option<Param<Tensor<1>>>,
    /// The configuration.
    #[module(skip)]
    pub config: NeuronConfig,
    /// Fused or reference kernel ([`KernelPolicy::neurons`]).
    #[module(skip)]
    pub kernels: KernelPolicy,
}

impl SetKernels for Neuron {
    fn set_kernels(&mut self, policy: &KernelPolicy) {
        self.kernels = *policy;
    }
}

impl Neuron {
    /// Spikes for an input current `[T, B, ...]`: the fused kernel ([`fused`]) when
    /// its policy says `Fused` and it supports the input (LIF/IF, f32, Flex), else the reference.
    pub fn forward<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        if self.kernels.neurons == LifPath::Fused && fused::supports(&self.config, &input) {
            return fused::spikes(&self.config, input);
        }
        self.run(input, false).spikes
    }

    /// Spikes from the reference path (plain burn ops), whatever the policy says.
    pub fn forward_reference<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        self.run(input, false).spikes
    }

    /// Spikes from the fused kernel. Panics where [`fused::supports`] is false (PLIF, non-Flex).
    pub fn forward_fused<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        fused::spikes(&self.config, input)
    }

    /// [`Self::forward_trace`] from the fused kernel: only the spikes carry a gradient.
    pub fn forward_trace_fused<const D: usize>(&self, input: Tensor<D>) -> NeuronTrace<D> {
        fused::trace(&self.config, input)
    }

    /// Spikes plus the membrane trace (always the reference path: every output differentiable).
    pub fn forward_trace<const D: usize>(&self, input: Tensor<D>) -> NeuronTrace<D> {
        self.run(input, true)
    }

    fn charge<const D: usize>(&self, mem: Option<Tensor<D>>, x: Tensor<D>) -> Tensor<D> {
        let Some(mem) = mem else {
            return match self.config.kind {
                NeuronKind::Plif => x * self.rate::<D>(),
                _ => x,
            };
        };
        match self.config.kind {
            NeuronKind::Lif => mem.mul_scalar(self.config.decay) + x,
            NeuronKind::If | NeuronKind::Relu => mem + x,
            NeuronKind::Plif => {
                let k = self.rate::<D>();
                mem.clone() + (x - mem) * k
            }
        }
    }

    /// PLIF's `k = σ(w)`, broadcastable to rank `D`.
    fn rate<const D: usize>(&self) -> Tensor<D> {
        let w = self
            .plif_w
            .as_ref()
            .expect("PLIF neuron has its parameter")
            .val();
        burn::tensor::activation::sigmoid(w).reshape([1; D])
    }

    fn run<const D: usize>(&self, input: Tensor<D>, keep_h: bool) -> NeuronTrace<D> {
        if self.config.kind == NeuronKind::Relu {
            let mut dims = input.dims();
            dims[0] = 1;
            let mem_final = Tensor::zeros(dims, &input.device());
            let h_pre_reset = if keep_h {
                input.clone()
            } else {
                input.zeros_like()
            };
            return NeuronTrace {
                spikes: burn::tensor::activation::relu(input),
                h_pre_reset,
                mem_final,
            };
        }
        let steps = input.dims()[0];
        let threshold = self.config.threshold;
        let mut mem: Option<Tensor<D>> = None;
        let mut spikes = Vec::with_capacity(steps);
        let mut hs = Vec::with_capacity(if keep_h { steps } else { 0 });
        for x_t in input.chunk(steps, 0) {
            let h = self.charge(mem.take(), x_t);
            let s = self.config.surrogate.spike(h.clone().sub_scalar(threshold));
            let s_reset = if self.config.detach_reset {
                s.clone().detach()
            } else {
                s.clone()
            };
            if keep_h {
                hs.push(h.clone());
            }
            mem = Some(match self.config.reset {
                ResetMode::Hard => h.clone() - h * s_reset,
                ResetMode::Soft => h - s_reset.mul_scalar(threshold),
            });
            spikes.push(s);
        }
        let spikes = Tensor::cat(spikes, 0);
        let mem_final = mem.unwrap_or_else(|| spikes.zeros_like());
        let h_pre_reset = if keep_h {
            Tensor::cat(hs, 0)
        } else {
            spikes.zeros_like()
        };
        NeuronTrace {
            spikes,
            h_pre_reset,
            mem_final,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    fn input(device: &Device) -> Tensor<3> {
        // [T=3, B=1, N=2]
        Tensor::from_data(
            TensorData::new(vec![0.6f32, 1.5, 0.6, 0.2, 0.6, 0.2], [3, 1, 2]),
            device,
        )
    }

    fn vec_of(t: Tensor<3>) -> Vec<f32> {
        t.to_data().try_to_vec::<f32>().unwrap()
    }

    #[test]
    fn lif_hard_reset_by_hand() {
        let device = Device::flex();
        let n = NeuronConfig::default().init(&device).unwrap();
        let tr = n.forward_trace(input(&device));
        // neuron 0: h = 0.6, 0.9, 1.05 → spike at t=2; neuron 1: 1.5 (spike, reset), 0.2, 0.3
        let h = vec_of(tr.h_pre_reset);
        let want_h = [0.6, 1.5, 0.9, 0.2, 1.05, 0.3];
        for (a, b) in h.iter().zip(want_h) {
            assert!((a - b).abs() < 1e-6, "{h:?}");
        }
        assert_eq!(vec_of(tr.spikes), vec![0.0, 1.0, 0.0, 0.0, 1.0, 0.0]);
        let m = vec_of(tr.mem_final);
        assert!(m[0].abs() < 1e-6 && (m[1] - 0.3).abs() < 1e-6, "{m:?}");
    }

    #[test]
    fn soft_reset_and_if() {
        let device = Device::flex();
        let cfg = NeuronConfig {
            kind: NeuronKind::If,
            reset: ResetMode::Soft,
            ..Default::default()
        };
        let tr = cfg.init(&device).unwrap().forward_trace(input(&device));
        // neuron 1: 1.5 → spike, mem 0.5; 0.7; 0.9
        let h = vec_of(tr.h_pre_reset);
        assert!(
            (h[3] - 0.7).abs() < 1e-6 && (h[5] - 0.9).abs() < 1e-6,
            "{h:?}"
        );
        // neuron 0 (IF): 0.6, 1.2 → spike, mem 0.2; 0.8
        assert_eq!(vec_of(tr.spikes), vec![0.0, 1.0, 1.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn plif_starts_at_one_over_tau_and_learns() {
        let device = Device::flex().autodiff();
        let n = NeuronConfig {
            kind: NeuronKind::Plif,
            plif_init_tau: 2.0,
            ..Default::default()
        }
        .init(&device)
        .unwrap();
        let tr = n.forward_trace(input(&device));
        let h = vec_of(tr.h_pre_reset.clone());
        // k = 0.5: neuron 0: 0.3, 0.45, 0.525
        assert!(
            (h[0] - 0.3).abs() < 1e-6 && (h[4] - 0.525).abs() < 1e-6,
            "{h:?}"
        );
        let grads = tr.h_pre_reset.sum().backward();
        let gw = n.plif_w.as_ref().unwrap().val().grad(&grads);
        assert!(gw.is_some(), "PLIF time constant receives a gradient");
    }

    #[test]
    fn relu_mode_is_stateless_relu() {
        let device = Device::flex();
        let n = NeuronConfig {
            kind: NeuronKind::Relu,
            ..Default::default()
        }
        .init(&device)
        .unwrap();
        let x = Tensor::<3>::from_data(
            TensorData::new(vec![0.6f32, -1.5, 2.0, 0.2, -0.1, 0.0], [3, 1, 2]),
            &device,
        );
        assert_eq!(vec_of(n.forward(x)), vec![0.6, 0.0, 2.0, 0.2, 0.0, 0.0]);
        assert!(n.plif_w.is_none());
        let kind: NeuronKind = serde_json::from_str("\"relu\"").unwrap();
        assert_eq!(kind, NeuronKind::Relu);
    }

    #[test]
    fn bad_config_names_field() {
        let err = NeuronConfig {
            threshold: -1.0,
            ..Default::default()
        }
        .init(&Device::flex())
        .unwrap_err();
        assert_eq!(err.field, "neuron.threshold");
        let err = NeuronConfig {
            decay: 1.5,
            ..Default::default()
        }
        .validate()
        .unwrap_err();
        assert_eq!(err.field, "neuron.decay");
    }
}
