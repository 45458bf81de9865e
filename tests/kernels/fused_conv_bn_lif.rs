//! `[kernels] recompute_conv` (`tks::layer::fused_conv_bn_lif`): a conv → BN → LIF block that
//! keeps no conv output and convolves its input again in the backward computes exactly what the
//! two-op path (fused conv, then fused BN-LIF) computes — spikes, the gradients of the input,
//! the conv's weight and bias and BN's γ and β, and the running statistics compared with `==` —
//! for the dense and the spike-aware conv, with spikes kept packed or as f32, on binary and
//! non-binary (average-pooled) inputs, and with gradient checkpointing.

use burn::module::{Param, RunningState};
use burn::tensor::{Device, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use tks::kernels::{ConvMode, KernelPolicy, SetKernels};
use tks::layer::{ConvBnSpike, Norm};
use tks::neuron::NeuronConfig;

fn vals<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap()
}

/// Spikes, then the gradients of the input, weight, bias, γ, β, then the running mean and
/// variance.
type Run = Vec<Vec<f32>>;

/// A fresh `c_in → c_out` 3×3 block (its weights from the device's generator: each run clones
/// one block, so tests running at the same time cannot change what is compared).
fn block(device: &Device, c: [usize; 2]) -> ConvBnSpike {
    let neuron = NeuronConfig {
        threshold: 0.5,
        ..NeuronConfig::default()
    };
    ConvBnSpike::new(c[0], c[1], 3, 1, Norm::Bn, &neuron, device).unwrap()
}

/// One training forward + backward of `block` (`c_in → c_out`) on `[T, B, c_in, 8, 8]` input
/// (spikes at `density`, or multiples of ¼ when `pooled`) under `policy`, `L = Σ spikes ⊙ G`.
fn run(block: &ConvBnSpike, policy: KernelPolicy, c: [usize; 2], pooled: bool, seed: u64) -> Run {
    let [t, b, h] = [3, 2, 8];
    let device = &block.conv_bn.conv.weight.device();
    let mut block = block.clone();
    block.set_kernels(&policy);
    // Clones share BatchNorm's running statistics: give this one its own.
    let bn = block.conv_bn.bn.as_mut().unwrap();
    bn.running_mean = RunningState::new(bn.running_mean.value_sync());
    bn.running_var = RunningState::new(bn.running_var.value_sync());
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let n = t * b * c[0] * h * h;
    let x: Vec<f32> = (0..n)
        .map(|_| {
            if pooled {
                f32::from(rng.random_range(0u8..5)) / 4.0 * f32::from(rng.random_bool(0.5))
            } else {
                f32::from(rng.random_bool(0.2))
            }
        })
        .collect();
    let x = Tensor::<5>::from_data(TensorData::new(x, [t, b, c[0], h, h]), device).require_grad();
    let g: Vec<f32> = (0..t * b * c[1] * h * h)
        .map(|_| rng.random_range(-1.0..1.0))
        .collect();
    let g = Tensor::<5>::from_data(TensorData::new(g, [t, b, c[1], h, h]), device);
    let s = block.forward(x.clone());
    let grads = (s.clone() * g).sum().backward();
    let grad = |p: &Param<Tensor<1>>| vals(p.grad(&grads).unwrap());
    let bn = block.conv_bn.bn.as_ref().unwrap();
    vec![
        vals(s),
        vals(x.grad(&grads).unwrap()),
        vals(block.conv_bn.conv.weight.grad(&grads).unwrap()),
        grad(block.conv_bn.conv.bias.as_ref().unwrap()),
        grad(&bn.gamma),
        grad(&bn.beta),
        vals(bn.running_mean.value_sync()),
        vals(bn.running_var.value_sync()),
    ]
}

const WHAT: [&str; 8] = [
    "spikes",
    "dL/dx",
    "dL/dW",
    "dL/db",
    "dL/dgamma",
    "dL/dbeta",
    "running mean",
    "running variance",
];

fn compare(device: &Device, base: KernelPolicy, c: [usize; 2], pooled: bool, seed: u64) {
    let block = block(device, c);
    let two_ops = run(&block, base, c, pooled, seed);
    let recompute = KernelPolicy {
        recompute_conv: true,
        ..base
    };
    let one_op = run(&block, recompute, c, pooled, seed);
    assert!(
        two_ops[0].contains(&1.0) && two_ops[0].contains(&0.0),
        "the test input must make some spikes and some silences"
    );
    for (i, what) in WHAT.iter().enumerate() {
        let differ = (one_op[i].iter().zip(&two_ops[i]))
            .filter(|(a, b)| a != b)
            .count();
        assert!(
            one_op[i].len() == two_ops[i].len() && differ == 0,
            "{what} ({c:?}, pooled {pooled}, {}): {differ} of {} values differ",
            base.summary(),
            two_ops[i].len()
        );
    }
}

#[test]
fn recomputing_the_conv_output_changes_no_value() {
    let device = Device::flex().autodiff();
    let mut seed = 0;
    for mode in [ConvMode::Dense, ConvMode::Sparse, ConvMode::Auto] {
        for pack_spikes in [false, true] {
            for (c, pooled) in [([4, 8], false), ([4, 8], true), ([64, 16], false)] {
                let base = KernelPolicy {
                    pack_spikes,
                    ..KernelPolicy::default().with_conv_mode(mode)
                };
                seed += 1;
                compare(&device, base, c, pooled, seed);
            }
        }
    }
}

#[test]
fn recomputing_works_with_gradient_checkpointing() {
    let device = Device::flex().autodiff().gradient_checkpointing();
    compare(&device, KernelPolicy::default(), [4, 8], false, 77);
}
