//! Monitors: firing rates and synaptic-operation counts, recorded while the caller holds a
//! [`Recording`] (SpikingJelly's `monitor`: the model stays free of bookkeeping state).
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
/// Whether a recording is under way on this thread (the recording ops then look at their
/// inputs and outputs).
pub fn recording() -> bool {
    RECORDER.with(|r| r.borrow().is_some())
}

/// Records one conv layer's input and dense MACs when a recording is under way.
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

/// The f32 values of `t` in row-major order.
pub fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("f32 tensor data")
}
