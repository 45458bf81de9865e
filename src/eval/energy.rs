//! Firing rates, synaptic operations and an energy estimate.
//!
//! Every time-flattened convolution ([`crate::layer::ConvBn`]) and every fully connected layer
//! of the models (classifiers and ResNet-19's hidden FC, through [`linear`]) reports its input
//! and output to a thread-local recorder while a [`Recording`] is active (a single flag check
//! otherwise). For each such layer: dense MACs = output elements × `C_in/groups · k_h · k_w`
//! (`in_features` for a linear layer). Every layer after the first is spike-driven (its input
//! is spikes, possibly average-pooled or summed by a SEW residual, which a linear layer can
//! absorb) and costs `MACs × input non-zero rate` accumulates (ACs); the first layer costs MACs
//! unless its input is binary (event frames). The input rate of each later layer is the firing
//! rate of the spiking layer before it (after pooling). Energy = ACs · E_AC + MACs · E_MAC, by
//! default 0.9 pJ per AC and 4.6 pJ per MAC (32-bit float, 45 nm CMOS; Horowitz, ISSCC 2014).
//!
//! Spiking layers report their spikes the same way: conv-BN-spike blocks
//! ([`crate::layer::ConvBnSpike`]) and the standalone neurons of the models (ResNet-19's stem,
//! block and head neurons, through [`spike`]), giving the firing rate of every spiking layer.

use std::cell::RefCell;

use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use super::values;

/// Energy per operation, in picojoules.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OpEnergy {
    /// One accumulate (spike-driven synaptic operation).
    pub ac_pj: f64,
    /// One multiply–accumulate.
    pub mac_pj: f64,
}

impl Default for OpEnergy {
    fn default() -> Self {
        Self {
            ac_pj: 0.9,
            mac_pj: 4.6,
        }
    }
}

/// Totals of one synaptic (conv or linear) layer over a recording.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LayerOps {
    /// Layer index in call order, with its shape (`conv3 64→128 k3 s1`).
    pub name: String,
    /// Input elements seen.
    pub input_elements: f64,
    /// Non-zero input elements seen.
    pub input_nonzero: f64,
    /// Whether every input value was 0 or 1.
    pub binary_input: bool,
    /// Dense multiply–accumulates.
    pub dense_macs: f64,
}

impl LayerOps {
    /// Fraction of non-zero inputs (the firing rate of the spiking layer feeding it).
    pub fn input_rate(&self) -> f64 {
        self.input_nonzero / self.input_elements.max(1.0)
    }
}

/// Spike totals of one spiking layer over a recording.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SpikeCount {
    /// Layer index in call order, with its shape (`spikes2 [64, 4, 4]`).
    pub name: String,
    /// Spikes emitted.
    pub spikes: f64,
    /// Neuron-timesteps (neurons × T × samples).
    pub neuron_steps: f64,
}

impl SpikeCount {
    /// Spikes per neuron per timestep.
    pub fn rate(&self) -> f64 {
        self.spikes / self.neuron_steps.max(1.0)
    }
}

#[derive(Default)]
struct Recorder {
    layers: Vec<LayerOps>,
    cursor: usize,
    neurons: Vec<SpikeCount>,
    neuron_cursor: usize,
}

thread_local! {
    static RECORDER: RefCell<Option<Recorder>> = const { RefCell::new(None) };
}

/// `layer` applied to `x` `[T, B, in]`, recorded as a synaptic layer (see the module docs).
pub fn linear(layer: &burn::nn::Linear, x: Tensor<3>) -> Tensor<3> {
    let y = layer.forward(x.clone());
    record_linear(&x, &y, layer);
    y
}

/// Spikes of `neuron` for the input current `x` `[T, B, ...]`, recorded as a spiking layer.
pub fn spike<const D: usize>(neuron: &crate::neuron::Neuron, x: Tensor<D>) -> Tensor<D> {
    let s = neuron.forward(x);
    record_spikes(&s);
    s
}

/// Records one fully connected layer's input `x` `[.., in]` and output `y` `[.., out]`.
/// Does nothing (one flag check) unless a recording is active.
pub fn record_linear<const D: usize>(x: &Tensor<D>, y: &Tensor<D>, layer: &burn::nn::Linear) {
    let active = RECORDER.with(|r| r.borrow().is_some());
    if !active {
        return;
    }
    let [fan_in, fan_out] = layer.weight.val().dims();
    let out: usize = y.dims().iter().product();
    record(values(x.clone()), out as f64 * fan_in as f64, |i| {
        format!("fc{} {fan_in}→{fan_out}", i + 1)
    });
}

/// Called by the conv layers: records one convolution's input `x` `[N, C, H, W]` and output `y`.
/// Does nothing (one flag check) unless a recording is active.
pub fn record_conv(x: &Tensor<4>, y: &Tensor<4>, conv: &burn::nn::conv::Conv2d) {
    let active = RECORDER.with(|r| r.borrow().is_some());
    if !active {
        return;
    }
    record_dims(x, y, conv.weight.val().dims(), conv.stride[0]);
}

/// [`record_conv`] with the weight shape `[C_out, C_in/groups, k_h, k_w]` and stride given.
pub fn record_dims(x: &Tensor<4>, y: &Tensor<4>, weight_dims: [usize; 4], stride: usize) {
    let active = RECORDER.with(|r| r.borrow().is_some());
    if !active {
        return;
    }
    let out: usize = y.dims().iter().product();
    let [co, ci, kh, kw] = weight_dims;
    let macs = out as f64 * (ci * kh * kw) as f64;
    record(values(x.clone()), macs, |i| {
        format!("conv{} {}→{} k{} s{}", i + 1, ci, co, kh, stride)
    });
}

/// Adds one synaptic layer's input values `xv` and dense MACs to the layer at the cursor
/// (named by `name(index)` when first seen).
fn record(xv: Vec<f32>, macs: f64, name: impl FnOnce(usize) -> String) {
    let nonzero = xv.iter().filter(|v| **v != 0.0).count() as f64;
    let binary = xv.iter().all(|v| *v == 0.0 || *v == 1.0);
    RECORDER.with(|r| {
        if let Some(rec) = r.borrow_mut().as_mut() {
            let i = rec.cursor;
            rec.cursor += 1;
            if rec.layers.len() <= i {
                rec.layers.push(LayerOps {
                    name: name(i),
                    binary_input: true,
                    ..Default::default()
                });
            }
            let l = &mut rec.layers[i];
            l.input_elements += xv.len() as f64;
            l.input_nonzero += nonzero;
            l.binary_input &= binary;
            l.dense_macs += macs;
        }
    });
}

/// Called by conv-BN-spike blocks ([`crate::layer::ConvBnSpike`]) and [`spike`]: records the
/// spikes `[T, B, ...]` of one spiking layer. Does nothing unless a recording is active.
pub fn record_spikes<const D: usize>(spikes: &Tensor<D>) {
    let active = RECORDER.with(|r| r.borrow().is_some());
    if !active {
        return;
    }
    let shape = format!("{:?}", &spikes.dims()[2.min(D)..]);
    let v = values(spikes.clone());
    let total: f64 = v.iter().map(|x| *x as f64).sum();
    RECORDER.with(|r| {
        if let Some(rec) = r.borrow_mut().as_mut() {
            let i = rec.neuron_cursor;
            rec.neuron_cursor += 1;
            if rec.neurons.len() <= i {
                rec.neurons.push(SpikeCount {
                    name: format!("spikes{} {shape}", i + 1),
                    ..Default::default()
                });
            }
            rec.neurons[i].spikes += total;
            rec.neurons[i].neuron_steps += v.len() as f64;
        }
    });
}

/// Marks the start of a new forward pass (layers are matched by call order within a pass).
pub fn next_pass() {
    RECORDER.with(|r| {
        if let Some(rec) = r.borrow_mut().as_mut() {
            rec.cursor = 0;
            rec.neuron_cursor = 0;
        }
    });
}

/// An active recording on this thread; [`Recording::finish`] returns the layer totals.
pub struct Recording(());

impl Recording {
    /// Starts recording (replacing any active recording on this thread).
    pub fn start() -> Self {
        RECORDER.with(|r| *r.borrow_mut() = Some(Recorder::default()));
        Recording(())
    }

    /// Stops and returns what was recorded: synaptic layers and spiking layers.
    pub fn finish(self) -> (Vec<LayerOps>, Vec<SpikeCount>) {
        RECORDER.with(|r| {
            r.borrow_mut()
                .take()
                .map(|r| (r.layers, r.neurons))
                .unwrap_or_default()
        })
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        RECORDER.with(|r| r.borrow_mut().take());
    }
}

/// One row of the energy table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerEnergy {
    /// Layer name.
    pub name: String,
    /// Input firing rate (non-zero share of the input per timestep), `None` for the analog
    /// first layer.
    pub input_firing_rate: Option<f64>,
    /// Accumulates per sample.
    pub acs_per_sample: f64,
    /// Multiply–accumulates per sample.
    pub macs_per_sample: f64,
}

/// Operations and energy per sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnergyReport {
    /// Per-op energies used.
    pub op_energy: OpEnergy,
    /// One row per synaptic (conv or linear) layer, in call order.
    pub layers: Vec<LayerEnergy>,
    /// Firing rate (spikes per neuron per timestep) of each spiking layer, in call order.
    #[serde(default)]
    pub firing_rates: Vec<(String, f64)>,
    /// Synaptic operations (ACs) per sample.
    pub sops_per_sample: f64,
    /// MACs per sample.
    pub macs_per_sample: f64,
    /// Estimated energy per sample, in microjoules.
    pub energy_uj_per_sample: f64,
    /// What an ANN of the same shape would cost (every op a MAC, one timestep), µJ.
    pub ann_energy_uj_per_sample: f64,
}

impl EnergyReport {
    /// Builds the report from recorded layers for `samples` samples.
    pub fn new(
        (layers, neurons): (Vec<LayerOps>, Vec<SpikeCount>),
        op_energy: OpEnergy,
        samples: usize,
        timesteps: usize,
    ) -> Self {
        let n = samples.max(1) as f64;
        let mut rows = Vec::new();
        let (mut acs, mut macs, mut ann) = (0.0, 0.0, 0.0);
        let t_steps = timesteps.max(1) as f64;
        for (i, l) in layers.into_iter().enumerate() {
            let spike_driven = i > 0 || l.binary_input;
            let (a, m) = if spike_driven {
                (l.dense_macs * l.input_rate() / n, 0.0)
            } else {
                (0.0, l.dense_macs / n)
            };
            ann += l.dense_macs / n / t_steps;
            acs += a;
            macs += m;
            rows.push(LayerEnergy {
                input_firing_rate: spike_driven.then(|| l.input_rate()),
                name: l.name,
                acs_per_sample: a,
                macs_per_sample: m,
            });
        }
        Self {
            op_energy,
            layers: rows,
            firing_rates: neurons.iter().map(|n| (n.name.clone(), n.rate())).collect(),
            sops_per_sample: acs,
            macs_per_sample: macs,
            energy_uj_per_sample: (acs * op_energy.ac_pj + macs * op_energy.mac_pj) * 1e-6,
            ann_energy_uj_per_sample: ann * op_energy.mac_pj * 1e-6,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    #[test]
    fn counts_by_hand() {
        let device = Device::flex();
        let rec = Recording::start();
        // Analog input: 4 values, output 2×1×1×1, weight [2,1,2,2] → 2·4 = 8 MACs.
        let x = Tensor::<4>::from_data(
            TensorData::new(vec![0.5f32, 1., 0., 2.], [1, 1, 2, 2]),
            &device,
        );
        let y = Tensor::<4>::zeros([1, 2, 1, 1], &device);
        record_dims(&x, &y, [2, 1, 2, 2], 1);
        // Spikes: 1 of 4 non-zero; 3·4·... output 1×3×1×1 from weight [3,1,2,2] → 12 MACs·¼ = 3 ACs.
        let s = Tensor::<4>::from_data(
            TensorData::new(vec![0f32, 1., 0., 0.], [1, 1, 2, 2]),
            &device,
        );
        let y2 = Tensor::<4>::zeros([1, 3, 1, 1], &device);
        record_dims(&s, &y2, [3, 1, 2, 2], 1);
        record_spikes(&s.clone().reshape([1, 1, 1, 2, 2]));
        next_pass();
        record_spikes(&Tensor::<5>::ones([1, 1, 1, 2, 2], &device));
        let (layers, neurons) = rec.finish();
        assert_eq!(layers.len(), 2);
        assert_eq!(neurons.len(), 1);
        assert_eq!(neurons[0].rate(), 5.0 / 8.0);
        let r = EnergyReport::new((layers, neurons), OpEnergy::default(), 1, 1);
        assert_eq!(r.firing_rates[0].1, 0.625);
        assert_eq!(r.macs_per_sample, 8.0);
        assert_eq!(r.sops_per_sample, 3.0);
        assert_eq!(r.layers[1].input_firing_rate, Some(0.25));
        assert!((r.energy_uj_per_sample - (8.0 * 4.6 + 3.0 * 0.9) * 1e-6).abs() < 1e-15);
        // Inactive: nothing recorded.
        record_dims(&s, &y2, [3, 1, 2, 2], 1);
        assert!(Recording::start().finish().0.is_empty());
    }

    #[test]
    fn linear_layers_and_standalone_neurons_by_hand() {
        use burn::module::Param;
        let device = Device::flex();
        // FC(4 → 3), LIF (threshold 1, decay 0.5, hard reset), FC(3 → 2), as ResNet-19's head.
        let mut head =
            crate::model::MlpHead::new(4, 3, 2, &crate::neuron::NeuronConfig::default(), &device)
                .unwrap();
        head.fc1.weight = Param::from_tensor(Tensor::<2>::full([4, 3], 10.0, &device));
        head.fc1.bias = Some(Param::from_tensor(Tensor::<1>::zeros([3], &device)));
        // T = 2, B = 1: two input spikes at t = 1, none at t = 2.
        let x = Tensor::<3>::from_data(
            TensorData::new(vec![1f32, 0., 1., 0., 0., 0., 0., 0.], [2, 1, 4]),
            &device,
        );
        let rec = Recording::start();
        let (_, hidden) = head.forward_features(x);
        let recorded = rec.finish();
        // Current 20 > 1 at t = 1: all 3 hidden neurons fire, reset to 0; at t = 2 the current
        // is 0: silent.
        assert_eq!(values(hidden), vec![1., 1., 1., 0., 0., 0.]);
        let (layers, neurons) = &recorded;
        assert_eq!(
            layers.iter().map(|l| l.name.as_str()).collect::<Vec<_>>(),
            ["fc1 4→3", "fc2 3→2"]
        );
        // fc1: 2 spikes × 3 outputs = 6 ACs (of 2·3·4 = 24 dense MACs, input rate 2/8).
        assert_eq!(layers[0].dense_macs, 24.0);
        assert_eq!(layers[0].input_rate(), 0.25);
        // fc2: 3 spikes × 2 outputs = 6 ACs (of 2·2·3 = 12, input rate 3/6).
        assert_eq!(layers[1].dense_macs, 12.0);
        assert_eq!(neurons.len(), 1);
        assert_eq!(neurons[0].name, "spikes1 [3]");
        assert_eq!(neurons[0].rate(), 0.5);
        let r = EnergyReport::new(recorded, OpEnergy::default(), 1, 2);
        assert_eq!(r.sops_per_sample, 12.0);
        assert_eq!(r.macs_per_sample, 0.0);
        assert_eq!(
            r.layers
                .iter()
                .map(|l| l.acs_per_sample)
                .collect::<Vec<_>>(),
            [6.0, 6.0]
        );
        assert_eq!(r.firing_rates, vec![("spikes1 [3]".to_string(), 0.5)]);
        assert!((r.energy_uj_per_sample - 12.0 * 0.9e-6).abs() < 1e-15);
        // The ANN of the same shape: (24 + 12) / T = 18 MACs.
        assert!((r.ann_energy_uj_per_sample - 18.0 * 4.6e-6).abs() < 1e-15);
    }
}
