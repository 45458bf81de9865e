//! The kernel policy is data carried by each model: two models with different policies run side
//! by side in one process — at the same time, on two threads — and each runs its own kernels
//! (seen in the fused convolution's per-thread statistics) while computing the same function.

use burn::tensor::{Device, Distribution, Tensor};
use tks::kernels::{ConvMode, KernelPolicy, LayerPath, LifPath, SetKernels};
use tks::layer::fused_conv;
use tks::model::{ModelConfig, SmallCnnConfig};
use tks::neuron::NeuronConfig;

fn vals<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap()
}

fn small_cnn() -> ModelConfig {
    ModelConfig::SmallCnn(SmallCnnConfig {
        input_size: 8.into(),
        channels: [16, 16],
        neuron: NeuronConfig {
            threshold: 0.5,
            ..Default::default()
        },
        ..Default::default()
    })
}

#[test]
fn two_policies_run_side_by_side_in_one_process() {
    let device = Device::flex();
    device.seed(17);
    let base = small_cnn().init(&device).unwrap();
    let dense = base
        .clone()
        .with_kernels(&KernelPolicy::default().with_conv_mode(ConvMode::Dense));
    let sparse = base
        .clone()
        .with_kernels(&KernelPolicy::default().with_conv_mode(ConvMode::Sparse));
    let reference = base.with_kernels(&KernelPolicy::reference());
    let x = Tensor::<5>::random([4, 8, 1, 8, 8], Distribution::Uniform(0.0, 1.0), &device);
    let (rd, rs, rr) = std::thread::scope(|s| {
        let run = |model: &tks::model::Model| {
            let x = x.clone();
            let model = model.clone();
            move || {
                // Each thread runs many passes so the two overlap in time.
                fused_conv::take_stats();
                let mut logits = Vec::new();
                for _ in 0..5 {
                    logits = vals(model.forward(x.clone()));
                }
                (logits, fused_conv::take_stats())
            }
        };
        let a = s.spawn(run(&dense));
        let b = s.spawn(run(&sparse));
        let c = s.spawn(run(&reference));
        (a.join().unwrap(), b.join().unwrap(), c.join().unwrap())
    });
    // Each model ran its own kernels: two fused convs per pass, 5 passes.
    assert_eq!((rd.1.calls, rd.1.sparse_calls), (10, 0), "dense model");
    assert_eq!((rs.1.calls, rs.1.sparse_calls), (10, 10), "sparse model");
    assert_eq!(rr.1.calls, 0, "the reference model runs burn's conv");
    // ... and computed the same logits up to summation order.
    for (name, got) in [("sparse", &rs.0), ("reference", &rr.0)] {
        let worst = got
            .iter()
            .zip(&rd.0)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(worst < 1e-3, "{name} vs dense: {worst}");
    }
}

#[test]
fn a_policy_reaches_every_layer_and_neuron_of_every_architecture() {
    let device = Device::flex();
    let policy = KernelPolicy {
        layers: LayerPath::Reference,
        neurons: LifPath::Reference,
        conv_mode: ConvMode::Dense,
        pack_spikes: true,
        ..KernelPolicy::default()
    };
    let configs: Vec<ModelConfig> = [
        "arch = \"small_cnn\"\ninput_size = 8\nchannels = [4, 4]\n",
        "arch = \"vgg_snn\"\nwidth = 0.125\ninput_size = 16\n",
        "arch = \"resnet19\"\nwidth = 0.125\ninput_size = 8\n",
        "arch = \"sew_resnet\"\ndepth = 18\nwidth = 0.125\ninput_size = 8\ncifar_stem = true\n",
    ]
    .iter()
    .map(|t| format!("{t}in_channels = 2\nnum_classes = 10\n"))
    .map(|t| toml::from_str(&t).unwrap())
    .collect();
    for cfg in configs {
        let model = cfg.init_with(&device, &policy).unwrap();
        // The module tree printed by Debug shows every layer's and neuron's policy.
        let text = format!("{model:?}");
        let defaults = text.matches("kernels: KernelPolicy").count();
        let ours = text.matches("pack_spikes: true").count();
        assert!(defaults > 0, "{cfg:?}: no policy in the tree");
        assert_eq!(
            defaults, ours,
            "{cfg:?}: some layer kept the default policy"
        );
    }
}
