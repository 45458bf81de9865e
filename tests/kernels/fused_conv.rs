//! The fused convolution (`tks::layer::fused_conv`) against burn's `Conv2d`: outputs and the
//! gradients of input, weight and bias, to 1e-5 relative, on every geometry the models use
//! (3×3 stride 1 and 2, 1×1 stride 1 and 2, 7×7 stride 2, no padding), with dense inputs and
//! binary spike inputs at several firing rates, on the dense (im2col + gemm) and the
//! spike-aware (sparse) path; the inference forward (no autodiff) on both paths; and the
//! automatic choice by measured density.

use burn::module::Module;
use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::tensor::{Device, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use tks::kernels::{ConvMode, KernelPolicy, SparsePass};
use tks::layer::fused_conv;

fn vals<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap()
}

/// `|a − b| ≤ 1e-5·|b| + 1e-5·scale`, `scale` = the largest magnitude of `want` (at least 1):
/// the two paths sum the same products in different orders.
fn assert_close(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(0.0f32, |a, b| a.max(b.abs())).max(1.0);
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert!(
            a.is_finite() && (a - b).abs() <= 1e-5 * b.abs() + 1e-5 * scale,
            "{what}[{i}]: fused {a} vs burn {b}"
        );
    }
}

fn tensor<const D: usize>(values: &[f32], shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::from_data(TensorData::new(values.to_vec(), shape), device)
}

/// Input values: uniform in [-1, 2) when `rate` is `None`, else binary spikes with
/// probability `rate`.
fn input(len: usize, rate: Option<f64>, rng: &mut impl Rng) -> Vec<f32> {
    (0..len)
        .map(|_| match rate {
            None => rng.random_range(-1.0..2.0),
            Some(r) => f32::from(u8::from(rng.random_bool(r))),
        })
        .collect()
}

struct Case {
    shape: [usize; 4],
    cout: usize,
    k: usize,
    stride: usize,
    pad: usize,
    bias: bool,
}

fn conv_for(case: &Case, device: &Device) -> Conv2d {
    let cin = case.shape[1];
    Conv2dConfig::new([cin, case.cout], [case.k, case.k])
        .with_stride([case.stride, case.stride])
        .with_padding(PaddingConfig2d::Explicit(
            case.pad, case.pad, case.pad, case.pad,
        ))
        .with_bias(case.bias)
        .init(device)
}

/// Output, dL/dx, dL/dW, dL/db of `L = Σ out ⊙ G` with burn's conv or the fused op.
fn run(
    conv: &Conv2d,
    x: &[f32],
    shape: [usize; 4],
    g: &[f32],
    fused: Option<&KernelPolicy>,
) -> (Vec<f32>, Vec<f32>, Vec<f32>, Option<Vec<f32>>) {
    let device = conv.weight.val().device();
    let xt = tensor(x, shape, &device).require_grad();
    let y = match fused {
        Some(policy) => {
            assert!(fused_conv::supports(conv, &xt));
            fused_conv::forward(conv, xt.clone(), policy)
        }
        None => conv.forward(xt.clone()),
    };
    let weights = tensor(g, y.dims(), &device);
    let grads = (y.clone() * weights).sum().backward();
    (
        vals(y),
        vals(xt.grad(&grads).unwrap()),
        vals(conv.weight.val().grad(&grads).unwrap()),
        conv.bias
            .as_ref()
            .map(|b| vals(b.val().grad(&grads).unwrap())),
    )
}

/// [`compare_with`] under the default policy with convolution mode `mode`.
fn compare(case: &Case, rate: Option<f64>, mode: ConvMode, seed: u64) {
    compare_with(
        case,
        rate,
        &KernelPolicy::default().with_conv_mode(mode),
        seed,
    );
}

/// The fused op under `policy` against burn's conv, training and inference.
fn compare_with(case: &Case, rate: Option<f64>, policy: &KernelPolicy, seed: u64) {
    let mode = policy.conv_mode;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let device = Device::flex().autodiff();
    let conv = conv_for(case, &device);
    let x = input(case.shape.iter().product(), rate, &mut rng);
    let what = format!(
        "{:?} → {} k{} s{} p{} bias {} rate {rate:?} {}",
        case.shape,
        case.cout,
        case.k,
        case.stride,
        case.pad,
        case.bias,
        mode.name()
    );
    let reference = conv.forward(tensor(&x, case.shape, &device));
    let g: Vec<f32> = (0..reference.dims().iter().product::<usize>())
        .map(|_| rng.random_range(-1.0..1.0))
        .collect();
    let r = run(&conv, &x, case.shape, &g, None);
    let f = run(&conv, &x, case.shape, &g, Some(policy));
    assert_close(&f.0, &r.0, &format!("{what}: output"));
    assert_close(&f.1, &r.1, &format!("{what}: dL/dx"));
    assert_close(&f.2, &r.2, &format!("{what}: dL/dW"));
    assert_eq!(f.3.is_some(), r.3.is_some(), "{what}: bias gradient");
    if let (Some(fb), Some(rb)) = (&f.3, &r.3) {
        assert_close(fb, rb, &format!("{what}: dL/db"));
    }
    // The inference forward (no autodiff) gives the same output.
    let plain = Device::flex();
    let conv_plain = conv.clone().to_device(&plain);
    let y = fused_conv::forward(&conv_plain, tensor(&x, case.shape, &plain), policy);
    assert_close(&vals(y), &r.0, &format!("{what}: inference output"));
}

fn cases() -> Vec<Case> {
    let c = |shape, cout, k, stride, pad, bias| Case {
        shape,
        cout,
        k,
        stride,
        pad,
        bias,
    };
    vec![
        c([3, 2, 9, 11], 5, 3, 1, 1, true),
        c([2, 4, 10, 10], 6, 3, 2, 1, false),
        c([2, 3, 7, 5], 4, 1, 1, 0, true),
        c([2, 6, 8, 8], 3, 1, 2, 0, false),
        c([2, 3, 15, 13], 4, 7, 2, 3, true),
        c([2, 2, 6, 7], 3, 3, 1, 0, true),
        c([1, 17, 5, 5], 19, 3, 1, 1, true),
        // Wide enough that the spike-aware path splits the output into several row tiles
        // (the last one partial), with stride 1 and 2.
        c([1, 3, 20, 40], 64, 3, 1, 1, true),
        c([2, 4, 21, 33], 48, 3, 2, 1, false),
        // The channel counts the spike-aware kernel specialises (16, 32, 128) and one that
        // needs two channel blocks (160 = 128 + 32).
        c([2, 3, 6, 6], 16, 3, 1, 1, true),
        c([2, 3, 6, 5], 32, 3, 1, 1, true),
        c([1, 5, 4, 4], 128, 3, 1, 1, true),
        c([1, 5, 5, 4], 160, 3, 2, 1, true),
        // ≥ 64 input channels with binary input: the output-stationary gather forward (one,
        // two and three 64-bit channel-mask words; the register widths 16, 32, 64, 128 and
        // two 128-channel blocks; 1×1, 3×3 and 5×5, stride 1 and 2).
        c([2, 64, 6, 6], 64, 3, 1, 1, true),
        c([1, 70, 5, 7], 128, 3, 2, 1, false),
        c([1, 130, 4, 4], 32, 1, 1, 0, true),
        c([1, 96, 7, 6], 16, 5, 1, 2, true),
        c([1, 64, 3, 3], 256, 3, 1, 1, false),
    ]
}

#[test]
fn dense_path_equals_burn_conv() {
    for (i, case) in cases().iter().enumerate() {
        compare(case, None, ConvMode::Dense, 100 + i as u64);
        for pack_spikes in [false, true] {
            let policy = KernelPolicy {
                conv_mode: ConvMode::Dense,
                pack_spikes,
                ..KernelPolicy::default()
            };
            compare_with(case, Some(0.15), &policy, 200 + i as u64);
        }
    }
}

#[test]
fn spike_aware_path_equals_burn_conv() {
    for (i, case) in cases().iter().enumerate() {
        for (j, rate) in [0.0, 0.05, 0.2, 0.6, 1.0].into_iter().enumerate() {
            // Spikes kept for backward as f32 and packed to bytes: the same gradients.
            for pack_spikes in [false, true] {
                let policy = KernelPolicy {
                    conv_mode: ConvMode::Sparse,
                    pack_spikes,
                    ..KernelPolicy::default()
                };
                let seed = 300 + 10 * i as u64 + j as u64;
                compare_with(case, Some(rate), &policy, seed);
            }
        }
        // Exact for any values, not only spikes.
        compare(case, None, ConvMode::Sparse, 400 + i as u64);
    }
}

#[test]
fn auto_mode_follows_the_measured_density() {
    let forward = SparsePass::Forward;
    let auto = KernelPolicy::default().with_max_density(forward, 0.25);
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let sparse = input(4000, Some(0.1), &mut rng);
    let dense = input(4000, Some(0.5), &mut rng);
    let d = fused_conv::kernel::density(&sparse);
    assert!((0.07..0.13).contains(&d), "density {d}");
    assert!(fused_conv::kernel::choose_sparse(&sparse, forward, &auto));
    assert!(!fused_conv::kernel::choose_sparse(&dense, forward, &auto));
    // The weight gradient has its own threshold.
    let dw = SparsePass::WeightGradient;
    let wide = auto.with_max_density(dw, 0.6);
    assert!(fused_conv::kernel::choose_sparse(&dense, dw, &wide));
    let narrow = auto.with_max_density(dw, 0.05);
    assert!(!fused_conv::kernel::choose_sparse(&sparse, dw, &narrow));
    // Auto mode on a whole layer still equals burn's conv at both densities.
    let case = &cases()[0];
    compare_with(case, Some(0.1), &auto, 7);
    compare_with(case, Some(0.5), &auto, 8);
}

#[test]
fn support_rules() {
    let device = Device::flex();
    let x = Tensor::<4>::zeros([1, 2, 6, 6], &device);
    let base =
        Conv2dConfig::new([2, 3], [3, 3]).with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1));
    assert!(fused_conv::supports(&base.clone().init(&device), &x));
    let grouped = Conv2dConfig::new([2, 4], [3, 3]).with_groups(2);
    assert!(!fused_conv::supports(&grouped.init(&device), &x));
    let dilated = base.clone().with_dilation([2, 2]);
    assert!(!fused_conv::supports(&dilated.init(&device), &x));
    let lopsided = base
        .clone()
        .with_padding(PaddingConfig2d::Explicit(1, 0, 1, 0));
    assert!(!fused_conv::supports(&lopsided.init(&device), &x));
    let uneven = base.clone().with_stride([1, 2]);
    assert!(!fused_conv::supports(&uneven.init(&device), &x));
    let wrong_channels = Tensor::<4>::zeros([1, 3, 6, 6], &device);
    assert!(!fused_conv::supports(&base.init(&device), &wrong_channels));
}

#[test]
fn weight_gradient_when_the_input_is_not_tracked() {
    // The first layer's input needs no gradient: the op skips dL/dx and still gives burn's
    // weight and bias gradients.
    let device = Device::flex().autodiff();
    let mut rng = rand::rngs::StdRng::seed_from_u64(21);
    let case = &cases()[1];
    let conv = conv_for(case, &device);
    let x = input(case.shape.iter().product(), Some(0.2), &mut rng);
    for mode in [ConvMode::Dense, ConvMode::Sparse] {
        let policy = KernelPolicy::default().with_conv_mode(mode);
        let grads_of = |fused: bool| {
            let xt = tensor(&x, case.shape, &device);
            let y = if fused {
                fused_conv::forward(&conv, xt, &policy)
            } else {
                conv.forward(xt)
            };
            let grads = (y.clone() * y).sum().backward();
            vals(conv.weight.val().grad(&grads).unwrap())
        };
        assert_close(&grads_of(true), &grads_of(false), mode.name());
    }
}

#[test]
fn inference_conv_bn_with_folded_batch_norm_equals_burn() {
    // Conv + BatchNorm on running statistics (inference) runs as one convolution with the
    // normalisation folded into weight and bias; it must equal burn's conv followed by burn's
    // BatchNorm, with running statistics that are not the initial (0, 1).
    use tks::kernels::SetKernels;
    use tks::layer::{ConvBn, Norm};
    let train = Device::flex().autodiff();
    let mut rng = rand::rngs::StdRng::seed_from_u64(31);
    let shape = [2, 3, 4, 9, 9]; // [T, B, C, H, W]
    let block = ConvBn::new(4, 6, 3, 1, true, Norm::Bn, 1.0, &train);
    for _ in 0..3 {
        let x = input(shape.iter().product(), None, &mut rng);
        let _ = block.forward(tensor(&x, shape, &train));
    }
    let plain = Device::flex();
    let block = block.valid().to_device(&plain);
    let reference_block = block.clone().with_kernels(&KernelPolicy::reference());
    let mean = vals(block.bn.as_ref().unwrap().running_mean.value_sync());
    assert!(
        mean.iter().any(|m| m.abs() > 1e-3),
        "running mean moved: {mean:?}"
    );
    for rate in [None, Some(0.15)] {
        let x = input(shape.iter().product(), rate, &mut rng);
        let reference = vals(reference_block.forward(tensor(&x, shape, &plain)));
        let folded = vals(block.forward(tensor(&x, shape, &plain)));
        assert_close(
            &folded,
            &reference,
            &format!("folded conv-BN, rate {rate:?}"),
        );
    }
}
