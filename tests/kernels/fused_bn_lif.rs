//! The fused training-mode BatchNorm → LIF/IF op (`tks::layer::fused_bn_lif`) against the two
//! ops it replaces (fused BatchNorm, then the fused neuron; both tested equal to burn's and the
//! reference path elsewhere) and against burn's BatchNorm + the reference neuron: spikes
//! bit-identical to the two-op path, the gradients of the input, γ and β for `L = Σ spikes ⊙ G`
//! to 1e-5 relative, and the running statistics — on shapes that cross the neuron kernel's
//! column blocks, for every reset mode, IF and every surrogate; with gradient checkpointing; and
//! when the `ConvBnSpike` block uses it (training on the fused paths only).

use burn::nn::BatchNormConfig;
use burn::tensor::{Device, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use tks::kernels::{KernelPolicy, LayerPath, LifPath};
use tks::layer::{ConvBnSpike, Norm, fused_bn, fused_bn_lif};
use tks::neuron::{NeuronConfig, NeuronKind, ResetMode};
use tks::surrogate::Surrogate;

fn vals<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap()
}

/// `|a − b| ≤ tol·|b| + tol/10·scale`, `scale` = the largest magnitude of `want` (at least 1).
fn assert_close(got: &[f32], want: &[f32], tol: f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(0.0f32, |a, b| a.max(b.abs())).max(1.0);
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert!(
            (a - b).abs() <= tol * b.abs() + 0.1 * tol * scale,
            "{what}[{i}]: fused {a} vs two ops {b}"
        );
    }
}

fn random(len: usize, lo: f32, hi: f32, rng: &mut impl Rng) -> Vec<f32> {
    (0..len).map(|_| rng.random_range(lo..hi)).collect()
}

fn tensor<const D: usize>(values: &[f32], shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::from_data(TensorData::new(values.to_vec(), shape), device)
}

/// `(spikes, dL/dx, dL/dγ, dL/dβ, running mean, running variance)`.
type Run = (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>);

#[derive(Clone, Copy, PartialEq)]
enum Path {
    /// `fused_bn_lif::forward_train`.
    OneOp,
    /// `fused_bn::forward_train`, then the fused neuron.
    TwoOps,
    /// burn's `BatchNorm::forward`, then the reference neuron.
    Burn,
}

/// BN → neuron on `[T·B, C, H, W]` = `shape` with `steps` timesteps, one way.
fn run(neuron: &NeuronConfig, shape: [usize; 4], steps: usize, seed: u64, path: Path) -> Run {
    run_on(&Device::flex().autodiff(), neuron, shape, steps, seed, path)
}

/// [`run`] on `device` (an autodiff Flex device, with or without gradient checkpointing).
fn run_on(
    device: &Device,
    neuron: &NeuronConfig,
    shape: [usize; 4],
    steps: usize,
    seed: u64,
    path: Path,
) -> Run {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let device = device.clone();
    let len: usize = shape.iter().product();
    let c = shape[1];
    let x = random(len, -1.0, 2.5, &mut rng);
    let g = random(len, -1.0, 1.0, &mut rng);
    let mut bn = BatchNormConfig::new(c).init(&device);
    bn.gamma =
        burn::module::Param::from_tensor(tensor(&random(c, 0.5, 1.5, &mut rng), [c], &device));
    bn.beta =
        burn::module::Param::from_tensor(tensor(&random(c, -0.3, 0.6, &mut rng), [c], &device));
    let layer = neuron.init(&device).unwrap();
    let xi = tensor(&x, shape, &device).require_grad();
    let s = match path {
        Path::OneOp => fused_bn_lif::forward_train(&bn, neuron, xi.clone(), steps),
        Path::TwoOps | Path::Burn => {
            let y = if path == Path::TwoOps {
                fused_bn::forward_train(&bn, xi.clone())
            } else {
                bn.forward(xi.clone())
            };
            let [n, c, h, w] = shape;
            let y5: Tensor<5> = y.reshape([steps, n / steps, c, h, w]);
            let s = if path == Path::TwoOps {
                layer.forward_fused(y5)
            } else {
                layer.forward_reference(y5)
            };
            s.reshape(shape)
        }
    };
    let grads = (s.clone() * tensor(&g, shape, &device)).sum().backward();
    (
        vals(s),
        vals(xi.grad(&grads).unwrap()),
        vals(bn.gamma.val().grad(&grads).unwrap()),
        vals(bn.beta.val().grad(&grads).unwrap()),
        vals(bn.running_mean.value()),
        vals(bn.running_var.value()),
    )
}

fn compare(neuron: &NeuronConfig, shape: [usize; 4], steps: usize, seed: u64, what: &str) {
    let one = run(neuron, shape, steps, seed, Path::OneOp);
    let two = run(neuron, shape, steps, seed, Path::TwoOps);
    assert_eq!(one.0, two.0, "{what}: spikes");
    assert!(
        one.0.contains(&1.0) && one.0.contains(&0.0),
        "{what}: some spikes"
    );
    assert_close(&one.1, &two.1, 1e-5, &format!("{what}: dL/dx"));
    // γ and β gradients are per-channel sums of M = T·B·H·W terms that largely cancel; the two
    // ops sum them in different orders, so they are held to 1e-5 relative plus f32 summation
    // noise (≈ 5e-9 per term).
    let m = (shape[0] * shape[2] * shape[3]) as f32;
    let sums_close = |got: &[f32], want: &[f32], what: &str| {
        for (i, (a, b)) in got.iter().zip(want).enumerate() {
            assert!(
                (a - b).abs() <= 1e-5 * b.abs() + 5e-9 * m,
                "{what}[{i}]: fused {a} vs two ops {b}"
            );
        }
    };
    sums_close(&one.2, &two.2, &format!("{what}: dL/dgamma"));
    sums_close(&one.3, &two.3, &format!("{what}: dL/dbeta"));
    assert_eq!(one.4, two.4, "{what}: running mean");
    assert_eq!(one.5, two.5, "{what}: running variance");
}

fn lif(reset: ResetMode, detach_reset: bool, surrogate: Surrogate) -> NeuronConfig {
    NeuronConfig {
        reset,
        detach_reset,
        surrogate,
        ..NeuronConfig::default()
    }
}

#[test]
fn one_op_equals_batch_norm_then_neuron() {
    // Neuron blocks are 1024 columns: inner sizes below, above and not dividing it, one channel
    // segment spanning blocks, large enough for the parallel path, and T = 1.
    let shapes = [
        ([6, 3, 5, 7], 3),
        ([8, 5, 7, 7], 4),
        ([4, 2, 40, 40], 2),
        ([16, 16, 12, 12], 4),
        ([3, 4, 3, 3], 1),
    ];
    for (i, (shape, steps)) in shapes.into_iter().enumerate() {
        for (reset, detach) in [
            (ResetMode::Hard, false),
            (ResetMode::Hard, true),
            (ResetMode::Soft, false),
            (ResetMode::Soft, true),
        ] {
            let what = format!("{shape:?} T={steps} {reset:?} detach={detach}");
            compare(
                &lif(reset, detach, Surrogate::default()),
                shape,
                steps,
                i as u64,
                &what,
            );
        }
    }
    for s in Surrogate::all_defaults() {
        let what = format!("surrogate {}", s.name());
        compare(&lif(ResetMode::Hard, false, s), [8, 6, 9, 9], 4, 20, &what);
    }
    let if_neuron = NeuronConfig {
        kind: NeuronKind::If,
        ..NeuronConfig::default()
    };
    compare(&if_neuron, [8, 6, 9, 9], 4, 21, "IF");
}

#[test]
fn one_op_matches_burn_batch_norm_and_the_reference_neuron() {
    let neuron = NeuronConfig::default();
    let shape = [8, 4, 10, 10];
    let one = run(&neuron, shape, 4, 30, Path::OneOp);
    let burn = run(&neuron, shape, 4, 30, Path::Burn);
    // burn's normalisation rounds differently: a spike may flip only where the membrane is
    // within rounding of the threshold; none does on this input.
    assert_eq!(one.0, burn.0, "spikes");
    assert_close(&one.1, &burn.1, 1e-4, "dL/dx");
    assert_close(&one.2, &burn.2, 1e-4, "dL/dgamma");
    assert_close(&one.3, &burn.3, 1e-4, "dL/dbeta");
    assert_close(&one.4, &burn.4, 1e-5, "running mean");
    assert_close(&one.5, &burn.5, 1e-5, "running variance");
}

#[test]
fn one_op_works_with_gradient_checkpointing() {
    let device = Device::flex().autodiff().gradient_checkpointing();
    let neuron = NeuronConfig::default();
    let one = run_on(&device, &neuron, [8, 3, 6, 6], 4, 40, Path::OneOp);
    let two = run_on(&device, &neuron, [8, 3, 6, 6], 4, 40, Path::TwoOps);
    assert_eq!(one.0, two.0, "checkpointing: spikes");
    assert_close(&one.1, &two.1, 1e-5, "checkpointing: dL/dx");
    assert_close(&one.2, &two.2, 1e-4, "checkpointing: dL/dgamma");
}

#[test]
fn conv_bn_spike_block_uses_it_in_training_only() {
    let device = Device::flex().autodiff();
    let neuron = NeuronConfig::default();
    let block = ConvBnSpike::new(2, 4, 3, 1, Norm::Bn, &neuron, &device).unwrap();
    let x = Tensor::<5>::ones([2, 3, 2, 6, 6], &device);
    let bn = block.conv_bn.bn.as_ref().unwrap();
    let fused = KernelPolicy::default();
    assert!(fused_bn_lif::supports(bn, &block.neuron, &fused, &x));
    let plif = NeuronConfig {
        kind: NeuronKind::Plif,
        ..NeuronConfig::default()
    }
    .init(&device)
    .unwrap();
    assert!(
        !fused_bn_lif::supports(bn, &plif, &fused, &x),
        "PLIF is not fused"
    );
    let plain = Tensor::<5>::ones([2, 3, 2, 6, 6], &Device::flex());
    assert!(
        !fused_bn_lif::supports(bn, &block.neuron, &fused, &plain),
        "inference"
    );
    let reference_layers = KernelPolicy {
        layers: LayerPath::Reference,
        ..fused
    };
    assert!(
        !fused_bn_lif::supports(bn, &block.neuron, &reference_layers, &x),
        "reference layer path"
    );
    let mut reference_neuron = block.neuron.clone();
    reference_neuron.kernels.neurons = LifPath::Reference;
    assert!(
        !fused_bn_lif::supports(bn, &reference_neuron, &fused, &x),
        "reference neuron path"
    );
}
