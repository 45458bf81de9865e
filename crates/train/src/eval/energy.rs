//! An energy estimate from the synaptic-operation counts of [`tks_core::monitor`]: dense MACs
//! of each conv/linear layer times its input rate become accumulates (ACs) for spike-driven
//! layers. Energy = ACs · E_AC + MACs · E_MAC, by default 0.9 pJ per AC and 4.6 pJ per MAC
//! (32-bit float, 45 nm CMOS; Horowitz, ISSCC 2014).

use serde::{Deserialize, Serialize};

pub use tks_core::monitor::{
    LayerOps, Recording, SpikeCount, linear, next_pass, record_conv, record_dims, record_linear,
    record_spikes, spike,
};

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
    use burn::tensor::{Device, Tensor, TensorData};
    use tks_core::monitor::values;

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
        let mut head = tks_core::model::MlpHead::new(
            4,
            3,
            2,
            &tks_core::neuron::NeuronConfig::default(),
            &device,
        )
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
