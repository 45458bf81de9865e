//! Autodiff gradients against central finite differences, where the function is smooth:
//!
//! * a tiny spike-free Conv+BN → Linear chain with cross-entropy (parameters and input);
//! * the [`Baseline`] objective w.r.t. the per-timestep logits (also against its closed form
//!   `(softmax(mean_t o_t) − onehot(y)) / (T·B)`);
//! * the PLIF neuron's membrane `h_pre_reset` w.r.t. the input current and the learnable `w`,
//!   with inputs kept below threshold so that no spike (and no reset) occurs.
//!
//! Everything runs in f32, so differences use a step of 1e-2 and a tolerance of
//! `|autodiff − fd| ≤ 2e-4 + 1e-2·|fd|`. Every check also requires the gradient to be clearly
//! non-zero, so a disconnected graph cannot pass.

use burn::module::Param;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::softmax;
use burn::tensor::{Device, Int, Tensor, TensorData};
use tks::layer::{ConvBn, Norm};
use tks::model::SnnOutput;
use tks::neuron::{NeuronConfig, NeuronKind};
use tks::objective::{Baseline, Objective, Progress, cross_entropy, mean_over_time};

use crate::common::assert_close_tol;

/// Finite-difference step.
const EPS: f32 = 1e-2;
/// Absolute part of the autodiff-vs-finite-difference tolerance.
const FD_ABS: f64 = 2e-4;
/// Relative part of the autodiff-vs-finite-difference tolerance.
const FD_REL: f64 = 1e-2;

/// Deterministic values in `[lo, hi)` (SplitMix64), so the checks do not depend on burn's RNG.
fn uniform(n: usize, lo: f32, hi: f32, seed: u64) -> Vec<f32> {
    let mut state = seed;
    (0..n)
        .map(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            let u = (z >> 40) as f32 / (1u64 << 24) as f32;
            lo + (hi - lo) * u
        })
        .collect()
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    tks::eval::values(t)
}

fn scalar(t: Tensor<1>) -> f64 {
    f64::from(values(t)[0])
}

fn tensor<const D: usize>(data: &[f32], dims: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::from_data(TensorData::new(data.to_vec(), dims), device)
}

fn param<const D: usize>(data: &[f32], dims: [usize; D], device: &Device) -> Param<Tensor<D>> {
    Param::from_tensor(tensor(data, dims, device))
}

/// Central differences `(f(v + ε e_i) − f(v − ε e_i)) / (2ε)` for every coordinate `i`, with the
/// step actually representable in f32.
fn central_differences(point: &[f32], f: impl Fn(&[f32]) -> f64) -> Vec<f64> {
    (0..point.len())
        .map(|i| {
            let mut plus = point.to_vec();
            let mut minus = point.to_vec();
            plus[i] += EPS;
            minus[i] -= EPS;
            let step = f64::from(plus[i]) - f64::from(minus[i]);
            (f(&plus) - f(&minus)) / step
        })
        .collect()
}

/// Compares an autodiff gradient with finite differences and requires it to be non-trivial.
fn assert_gradient(autodiff: &[f32], finite: &[f64], what: &str) {
    let largest = finite.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    assert!(
        largest > 1e-2,
        "{what}: finite-difference gradient is ~0 ({largest:e}); the check would be vacuous"
    );
    let worst = autodiff
        .iter()
        .zip(finite)
        .fold(0.0f64, |m, (&a, &f)| m.max((f64::from(a) - f).abs()));
    eprintln!("{what}: max |autodiff - fd| = {worst:.2e}, max |fd| = {largest:.2e}");
    assert_close_tol(autodiff, finite, FD_ABS, FD_REL, what);
}

/// `[T, B, C_in, H, W]` → Conv3×3+BN → per-timestep Linear → logits `[T, B, classes]`.
#[derive(Clone, Debug)]
struct TinyNet {
    conv_bn: ConvBn,
    head: Linear,
}

const T: usize = 2;
const B: usize = 3;
const C_IN: usize = 2;
const C_OUT: usize = 3;
const SIDE: usize = 4;
const CLASSES: usize = 4;
const FEATURES: usize = C_OUT * SIDE * SIDE;

/// Which tensor a finite difference perturbs.
#[derive(Clone, Copy, Debug)]
enum Slot {
    ConvWeight,
    ConvBias,
    BnGamma,
    BnBeta,
    HeadWeight,
    HeadBias,
    Input,
}

impl TinyNet {
    /// Conv+BN (batch statistics over T·B·H·W, as in training) and a linear head, with every
    /// parameter overwritten by deterministic values.
    fn new(device: &Device) -> Self {
        let mut conv_bn = ConvBn::new(C_IN, C_OUT, 3, 1, true, Norm::Bn, 1.0, device);
        conv_bn.conv.weight = param(
            &uniform(C_OUT * C_IN * 9, -0.5, 0.5, 1),
            [C_OUT, C_IN, 3, 3],
            device,
        );
        conv_bn.conv.bias = Some(param(&uniform(C_OUT, -0.2, 0.2, 2), [C_OUT], device));
        let bn = conv_bn.bn.as_mut().expect("Norm::Bn builds a BatchNorm");
        bn.gamma = param(&uniform(C_OUT, 0.5, 1.5, 3), [C_OUT], device);
        bn.beta = param(&uniform(C_OUT, -0.3, 0.3, 4), [C_OUT], device);
        let mut head = LinearConfig::new(FEATURES, CLASSES).init(device);
        head.weight = param(
            &uniform(FEATURES * CLASSES, -0.4, 0.4, 5),
            [FEATURES, CLASSES],
            device,
        );
        head.bias = Some(param(&uniform(CLASSES, -0.2, 0.2, 6), [CLASSES], device));
        Self { conv_bn, head }
    }

    fn logits(&self, x: Tensor<5>) -> Tensor<3> {
        let features = self.conv_bn.forward(x).reshape([T * B, FEATURES]);
        self.head.forward(features).reshape([T, B, CLASSES])
    }

    fn loss(&self, x: Tensor<5>, targets: Tensor<1, Int>) -> Tensor<1> {
        cross_entropy(mean_over_time(self.logits(x)), targets)
    }

    /// Current values and dims of the perturbed tensor.
    fn slot_values(&self, slot: Slot, input: &[f32]) -> Vec<f32> {
        let bn = self.conv_bn.bn.as_ref().unwrap();
        match slot {
            Slot::ConvWeight => values(self.conv_bn.conv.weight.val()),
            Slot::ConvBias => values(self.conv_bn.conv.bias.as_ref().unwrap().val()),
            Slot::BnGamma => values(bn.gamma.val()),
            Slot::BnBeta => values(bn.beta.val()),
            Slot::HeadWeight => values(self.head.weight.val()),
            Slot::HeadBias => values(self.head.bias.as_ref().unwrap().val()),
            Slot::Input => input.to_vec(),
        }
    }

    /// The loss with `slot` replaced by `replacement`.
    fn loss_with(
        &self,
        slot: Slot,
        replacement: &[f32],
        input: &[f32],
        targets: &[i64],
        device: &Device,
    ) -> f64 {
        let mut net = self.clone();
        let mut x = input;
        let r = replacement;
        match slot {
            Slot::ConvWeight => net.conv_bn.conv.weight = param(r, [C_OUT, C_IN, 3, 3], device),
            Slot::ConvBias => net.conv_bn.conv.bias = Some(param(r, [C_OUT], device)),
            Slot::BnGamma => net.conv_bn.bn.as_mut().unwrap().gamma = param(r, [C_OUT], device),
            Slot::BnBeta => net.conv_bn.bn.as_mut().unwrap().beta = param(r, [C_OUT], device),
            Slot::HeadWeight => net.head.weight = param(r, [FEATURES, CLASSES], device),
            Slot::HeadBias => net.head.bias = Some(param(r, [CLASSES], device)),
            Slot::Input => x = r,
        }
        let targets = Tensor::<1, Int>::from_data(TensorData::new(targets.to_vec(), [B]), device);
        scalar(net.loss(tensor(x, [T, B, C_IN, SIDE, SIDE], device), targets))
    }
}

#[test]
fn conv_bn_linear_cross_entropy_gradients_match_finite_differences() {
    let device = Device::flex().autodiff();
    let net = TinyNet::new(&device);
    let input = uniform(T * B * C_IN * SIDE * SIDE, -1.0, 1.0, 7);
    let labels = vec![2i64, 0, 3];

    let x = tensor(&input, [T, B, C_IN, SIDE, SIDE], &device).require_grad();
    let targets = Tensor::<1, Int>::from_data(TensorData::new(labels.clone(), [B]), &device);
    let grads = net.loss(x.clone(), targets).backward();
    let bn = net.conv_bn.bn.as_ref().unwrap();
    let grad = |t: Option<Tensor<1>>, what: &str| {
        values(t.unwrap_or_else(|| panic!("no gradient for {what}")))
    };
    let autodiff = [
        (
            Slot::ConvWeight,
            values(
                net.conv_bn
                    .conv
                    .weight
                    .val()
                    .grad(&grads)
                    .expect("conv weight gradient"),
            ),
        ),
        (Slot::BnGamma, grad(bn.gamma.val().grad(&grads), "bn gamma")),
        (Slot::BnBeta, grad(bn.beta.val().grad(&grads), "bn beta")),
        (
            Slot::HeadWeight,
            values(
                net.head
                    .weight
                    .val()
                    .grad(&grads)
                    .expect("head weight gradient"),
            ),
        ),
        (
            Slot::HeadBias,
            grad(
                net.head.bias.as_ref().unwrap().val().grad(&grads),
                "head bias",
            ),
        ),
        (Slot::Input, values(x.grad(&grads).expect("input gradient"))),
    ];
    for (slot, got) in &autodiff {
        let point = net.slot_values(*slot, &input);
        let finite = central_differences(&point, |v| {
            net.loss_with(*slot, v, &input, &labels, &device)
        });
        assert_gradient(got, &finite, &format!("{slot:?}"));
    }

    // BatchNorm removes any per-channel shift, so the conv bias has (numerically) no effect.
    let bias_grad = grad(
        net.conv_bn.conv.bias.as_ref().unwrap().val().grad(&grads),
        "conv bias",
    );
    let point = net.slot_values(Slot::ConvBias, &input);
    let finite = central_differences(&point, |v| {
        net.loss_with(Slot::ConvBias, v, &input, &labels, &device)
    });
    assert_close_tol(
        &bias_grad,
        &finite,
        FD_ABS,
        FD_REL,
        "ConvBias (cancelled by BN)",
    );
}

fn progress() -> Progress {
    Progress {
        epoch: 0,
        epochs: 1,
        step: 0,
        steps_per_epoch: 1,
    }
}

#[test]
fn baseline_gradient_matches_finite_differences_and_closed_form() {
    const STEPS: usize = 3;
    const BATCH: usize = 4;
    const C: usize = 5;
    let device = Device::flex().autodiff();
    let logits_values = uniform(STEPS * BATCH * C, -2.0, 2.0, 11);
    let labels = vec![1i64, 4, 0, 2];
    let targets = || Tensor::<1, Int>::from_data(TensorData::new(labels.clone(), [BATCH]), &device);
    let loss_of = |logits: Tensor<3>| {
        let output = SnnOutput {
            logits,
            stage: None,
        };
        Baseline {}.loss(&output, targets(), progress())
    };

    let logits = tensor(&logits_values, [STEPS, BATCH, C], &device).require_grad();
    let grads = loss_of(logits.clone()).backward();
    let autodiff = values(logits.grad(&grads).expect("logits gradient"));

    let finite = central_differences(&logits_values, |v| {
        scalar(loss_of(tensor(v, [STEPS, BATCH, C], &device)))
    });
    assert_gradient(&autodiff, &finite, "baseline d loss / d logits");

    // Closed form (reference README): (softmax(m_b) − onehot(y_b)) / (T·B), m = mean_t o_t,
    // identical for every timestep.
    let mean = mean_over_time(tensor(&logits_values, [STEPS, BATCH, C], &Device::flex()));
    let probs = values(softmax(mean, 1));
    let closed: Vec<f64> = (0..STEPS * BATCH * C)
        .map(|i| {
            let (b, c) = ((i / C) % BATCH, i % C);
            let onehot = if labels[b] as usize == c { 1.0 } else { 0.0 };
            (f64::from(probs[b * C + c]) - onehot) / (STEPS * BATCH) as f64
        })
        .collect();
    crate::common::assert_close(&autodiff, &closed, "baseline gradient vs closed form");
}

#[test]
fn plif_membrane_gradients_match_finite_differences_below_threshold() {
    const STEPS: usize = 5;
    const BATCH: usize = 2;
    const N: usize = 3;
    let threshold = 1.0;
    let device = Device::flex().autodiff();
    // detach_reset: below threshold `mem = h − h·s` with s = 0 equals `h`, but a non-detached
    // surrogate still adds `−h·g(h − θ)` to d mem/dh (the surrogate is not the true derivative of
    // the step), so only the detached reset has the exact gradient of the smooth function.
    let config = NeuronConfig {
        kind: NeuronKind::Plif,
        threshold,
        plif_init_tau: 2.0,
        detach_reset: true,
        ..NeuronConfig::default()
    };
    let neuron = config.init(&device).expect("PLIF config");
    let w0 = values(neuron.plif_w.as_ref().expect("PLIF has w").val());
    // h is a convex combination of past inputs and 0, so inputs in [0.05, 0.8] keep h ≤ 0.8 + ε.
    let input = uniform(STEPS * BATCH * N, 0.05, 0.8, 21);
    let weights = tensor(
        &uniform(STEPS * BATCH * N, -1.0, 1.0, 22),
        [STEPS, BATCH, N],
        &device,
    );

    let objective = |w: &[f32], x: &[f32]| {
        let mut n = config.init(&device).unwrap();
        n.plif_w = Some(param(w, [1], &device));
        let trace = n.forward_trace(tensor(x, [STEPS, BATCH, N], &device));
        let h = values(trace.h_pre_reset.clone());
        assert!(
            h.iter().all(|&v| v < threshold as f32 - 0.1),
            "membrane reached the threshold: {h:?}"
        );
        assert!(
            values(trace.spikes).iter().all(|&s| s == 0.0),
            "a spike occurred"
        );
        scalar((trace.h_pre_reset * weights.clone()).sum())
    };

    let x = tensor(&input, [STEPS, BATCH, N], &device).require_grad();
    let trace = neuron.forward_trace(x.clone());
    assert!(
        values(trace.spikes.clone()).iter().all(|&s| s == 0.0),
        "inputs must stay below threshold"
    );
    let grads = (trace.h_pre_reset * weights.clone()).sum().backward();
    let grad_x = values(x.grad(&grads).expect("input gradient"));
    let grad_w = values(
        neuron
            .plif_w
            .as_ref()
            .unwrap()
            .val()
            .grad(&grads)
            .expect("PLIF w gradient"),
    );

    let finite_x = central_differences(&input, |v| objective(&w0, v));
    assert_gradient(&grad_x, &finite_x, "PLIF d Σ h·G / dx");
    let finite_w = central_differences(&w0, |v| objective(v, &input));
    assert_gradient(&grad_w, &finite_w, "PLIF d Σ h·G / dw");
}
