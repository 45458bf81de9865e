//! The fused LIF/IF against the reference path: spikes exactly, membrane and input gradient to
//! 1e-5, over every surrogate, reset and shape class (the f32 surrogate forms themselves are
//! tested in [`crate::surrogate::scalar`]).

use super::*;
use burn::tensor::{Device, TensorData};

fn vals<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap()
}

/// `|a − b| ≤ 1e-5·|b| + 1e-6·scale`, `scale` = the largest magnitude of `want`.
fn assert_rel(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(0.0f32, |a, b| a.max(b.abs())).max(1.0);
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert!(
            (a - b).abs() <= 1e-5 * b.abs() + 1e-6 * scale,
            "{what}[{i}]: fused {a} vs reference {b}"
        );
    }
}

fn random(len: usize, lo: f32, hi: f32, rng: &mut impl rand::Rng) -> Vec<f32> {
    (0..len).map(|_| rng.random_range(lo..hi)).collect()
}

/// Fused vs reference on one shape and config: spikes exactly, membrane and `dL/dx` for
/// `L = Σ spikes ⊙ G` to 1e-5 relative.
fn compare<const D: usize>(config: NeuronConfig, shape: [usize; D], seed: u64, what: &str) {
    use rand::SeedableRng;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let len: usize = shape.iter().product();
    let th = config.threshold as f32;
    let x = random(len, -0.5 * th, 1.6 * th, &mut rng);
    let g = random(len, -1.0, 1.0, &mut rng);
    let device = Device::flex().autodiff();
    let neuron = config.init(&device).unwrap();
    let input = || Tensor::<D>::from_data(TensorData::new(x.clone(), shape), &device);
    let weights = Tensor::<D>::from_data(TensorData::new(g.clone(), shape), &device);

    let reference = neuron.forward_trace(input());
    let fused = neuron.forward_trace_fused(input());
    assert_eq!(
        vals(fused.spikes.clone()),
        vals(reference.spikes.clone()),
        "{what}: spikes"
    );
    assert_eq!(fused.mem_final.dims(), reference.mem_final.dims());
    assert_rel(
        &vals(fused.h_pre_reset),
        &vals(reference.h_pre_reset),
        &format!("{what}: h"),
    );
    assert_rel(
        &vals(fused.mem_final),
        &vals(reference.mem_final),
        &format!("{what}: mem_final"),
    );

    let xr = input().require_grad();
    let gr = (neuron.forward_reference(xr.clone()) * weights.clone())
        .sum()
        .backward();
    let xf = input().require_grad();
    let sf = neuron.forward_fused(xf.clone());
    let gf = (sf.clone() * weights).sum().backward();
    assert_rel(
        &vals(xf.grad(&gf).unwrap()),
        &vals(xr.grad(&gr).unwrap()),
        &format!("{what}: dL/dx"),
    );
    // Without autodiff: same spikes.
    let plain = config.init(&Device::flex()).unwrap();
    let xp = Tensor::<D>::from_data(TensorData::new(x.clone(), shape), &Device::flex());
    assert_eq!(
        vals(plain.forward_fused(xp)),
        vals(sf),
        "{what}: plain device"
    );
}

fn all_configs() -> Vec<NeuronConfig> {
    let mut out = Vec::new();
    let surrogates = Surrogate::all_defaults().into_iter().chain([
        Surrogate::Atan { alpha: 3.0 },
        Surrogate::Triangle { gamma: 0.5 },
    ]);
    for surrogate in surrogates {
        for kind in [NeuronKind::Lif, NeuronKind::If] {
            for reset in [ResetMode::Hard, ResetMode::Soft] {
                for detach_reset in [false, true] {
                    for (threshold, decay) in [(1.0, 0.5), (0.5, 0.25)] {
                        out.push(NeuronConfig {
                            kind,
                            threshold,
                            decay,
                            reset,
                            detach_reset,
                            surrogate,
                            ..Default::default()
                        });
                    }
                }
            }
        }
    }
    out
}

#[test]
fn fused_equals_reference_on_random_inputs() {
    for (i, c) in all_configs().into_iter().enumerate() {
        let what = format!("{c:?}");
        let seed = i as u64;
        compare(c, [1, 3], seed, &what);
        compare(c, [4, 2, 5], seed, &what);
        compare(c, [8, 3, 37], seed, &what);
        compare(c, [4, 2, 3, 5, 5], seed, &what);
    }
}

#[test]
fn fused_equals_reference_on_large_parallel_inputs() {
    // Several blocks, a ragged last block, and the rayon path (T·N ≥ PARALLEL_MIN).
    for (i, c) in all_configs().into_iter().enumerate().step_by(7) {
        compare(c, [4, 2, 4, BLOCK + 77], 100 + i as u64, &format!("{c:?}"));
    }
    compare(NeuronConfig::default(), [8, 16, 32, 12, 12], 7, "vgg-like");
}

#[test]
fn non_contiguous_input_and_gradient() {
    // A transposed input (strided) and the broadcast gradient of `sum()`.
    let device = Device::flex().autodiff();
    let neuron = NeuronConfig::default().init(&device).unwrap();
    let data: Vec<f32> = (0..60).map(|i| ((i * 37) % 23) as f32 * 0.13).collect();
    let x = Tensor::<3>::from_data(TensorData::new(data, [5, 3, 4]), &device).swap_dims(0, 2);
    let xr = x.clone().require_grad();
    let gr = neuron.forward_reference(xr.clone()).sum().backward();
    let xf = x.require_grad();
    let sf = neuron.forward_fused(xf.clone());
    assert_eq!(vals(sf.clone()), vals(neuron.forward_reference(xf.clone())));
    let gf = sf.sum().backward();
    assert_rel(
        &vals(xf.grad(&gf).unwrap()),
        &vals(xr.grad(&gr).unwrap()),
        "strided",
    );
}

#[test]
fn works_with_gradient_checkpointing() {
    let device = Device::flex().autodiff().gradient_checkpointing();
    let neuron = NeuronConfig::default().init(&device).unwrap();
    let data: Vec<f32> = (0..48).map(|i| ((i * 29) % 17) as f32 * 0.11).collect();
    let x = || Tensor::<3>::from_data(TensorData::new(data.clone(), [4, 3, 4]), &device);
    // A memory-bound op after the spikes, so the checkpointer has something to recompute.
    let loss = |s: Tensor<3>| s.exp().sum();
    let xr = x().require_grad();
    let gr = loss(neuron.forward_reference(xr.clone() * 1.5)).backward();
    let xf = x().require_grad();
    let gf = loss(neuron.forward_fused(xf.clone() * 1.5)).backward();
    assert_rel(
        &vals(xf.grad(&gf).unwrap()),
        &vals(xr.grad(&gr).unwrap()),
        "checkpointing",
    );
}

#[test]
fn default_forward_uses_fused_unless_switched() {
    let device = Device::flex();
    let n = NeuronConfig::default().init(&device).unwrap();
    let x = Tensor::<2>::from_floats([[0.6, 1.5], [0.6, 0.2], [0.6, 0.2]], &device);
    assert_eq!(vals(n.forward(x.clone())), vals(n.forward_reference(x)));
}

#[test]
fn plif_and_non_flex_are_not_supported() {
    let device = Device::flex();
    let x = Tensor::<2>::zeros([2, 3], &device);
    let plif = NeuronConfig {
        kind: NeuronKind::Plif,
        ..Default::default()
    };
    assert!(!supports(&plif, &x));
    assert!(supports(&NeuronConfig::default(), &x));
    assert!(supports(
        &NeuronConfig::default(),
        &Tensor::<2>::zeros([2, 3], &device.autodiff())
    ));
}

#[test]
fn in_place_backward_is_bit_identical_to_the_two_buffer_one() {
    use rand::SeedableRng;
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    for c in all_configs() {
        let spec = LifSpec::from_config(&c).unwrap();
        // One row, a ragged last block, and the parallel path.
        for (t, n) in [(1, 3), (4, 2 * BLOCK + 77), (8, 40_000)] {
            let x = random(t * n, -1.0, 2.5, &mut rng);
            let g = random(t * n, -1.0, 1.0, &mut rng);
            let mut two = vec![0.0; t * n];
            kernel::backward(&x, &g, &mut two, t, n, &spec);
            let mut one = g.clone();
            kernel::backward_from_in_place(&kernel::Direct, &x, &mut one, t, n, &spec);
            assert!(
                n < 100 || two.iter().any(|&v| v != 0.0),
                "{c:?} T={t} N={n}: the test needs non-zero gradients"
            );
            assert!(
                two.iter()
                    .zip(&one)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "{c:?} T={t} N={n}: in place differs"
            );
        }
    }
}
