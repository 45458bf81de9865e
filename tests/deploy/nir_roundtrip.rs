//! tks → NIR → tks gives bit-identical per-timestep logits on the whole test set.
//!
//! What "identical" means: the export writes the convolution weights with BatchNorm folded in
//! by `fold_bn` — the same function, hence the same f32 values, that the inference path of the
//! original model convolves with — and the imported model (`norm = none`) convolves with
//! exactly those values through the same kernels; the neuron's β = 1 − dt/τ and θ come back
//! as the same f32 and the classifier is copied. So the logits are compared with `==`, every
//! value of every timestep of all 355 (digits) / 355 (DVS digits) test samples.

use burn::tensor::Device;
use tks::kernels::KernelPolicy;
use tks::model::ModelConfig;
use tks_deploy::nir::{Graph, Node, export::export, hdf5, import::import};

use crate::runs::{VGG_TOML, load, test_logits, train};

fn round_trip(config_toml: Option<&str>, name: &str, want_arch: &str, want_nodes: usize) {
    let run = train(name, config_toml);
    let (config, model) = load(&run.dir);
    let graph = export(&model, &config).unwrap();
    assert_eq!(graph.nodes.len(), want_nodes, "{:?}", graph.nodes.keys());
    let bytes = hdf5::to_bytes(&graph).unwrap();
    let back = hdf5::from_bytes(&bytes, "round-trip").unwrap();
    assert_eq!(back, graph, "the HDF5 file reads back as the graph written");
    let imported = import(
        &back,
        "round-trip",
        *config.model.clone().neuron_mut(),
        &KernelPolicy::default(),
        &Device::flex(),
    )
    .unwrap();
    assert_eq!(imported.config.arch(), want_arch);
    let mut want_config = config.model.clone();
    match (&mut want_config, &imported.config) {
        (ModelConfig::SmallCnn(a), ModelConfig::SmallCnn(_)) => a.norm = tks::layer::Norm::None,
        (ModelConfig::VggSnn(a), ModelConfig::VggSnn(_)) => a.norm = tks::layer::Norm::None,
        _ => panic!("mapped onto another architecture: {:?}", imported.config),
    }
    assert_eq!(
        imported.config, want_config,
        "same architecture, neuron and sizes"
    );
    let (want, labels) = test_logits(&config, &model);
    let (got, _) = test_logits(&config, &imported.model);
    assert_eq!(labels.len(), 355);
    assert_eq!(got.len(), want.len());
    let differing = got.iter().zip(&want).filter(|(a, b)| a != b).count();
    assert_eq!(differing, 0, "{differing} of {} logits differ", want.len());
    // Not a trivial network: the logits vary between samples.
    let classes = config.model.num_classes();
    let per_sample = config.train.timesteps * classes;
    assert!(want.chunks(per_sample).any(|s| s != &want[..per_sample]));
}

#[test]
fn small_cnn_round_trip_is_bit_identical() {
    round_trip(None, "rt-small", "small_cnn", 10);
}

#[test]
fn vgg_snn_round_trip_is_bit_identical() {
    round_trip(Some(VGG_TOML), "rt-vgg", "vgg_snn", 24);
}

#[test]
fn lif_mapping_recovers_beta_and_names_layers() {
    // β → τ = dt/(1 − β) → β' = 1 − dt/τ gives back the same f32 for the usual decays.
    for beta in [0.0f64, 0.1, 0.25, 0.5, 0.75, 0.8, 0.9, 0.95, 0.99, 0.999] {
        let tau = tks_deploy::nir::DT / (1.0 - beta);
        let back = 1.0 - tks_deploy::nir::DT / tau;
        assert_eq!(back as f32, beta as f32, "β = {beta}");
    }
    let run = train("rt-names", None);
    let (config, model) = load(&run.dir);
    let g: Graph = export(&model, &config).unwrap();
    let Some(Node::Lif {
        tau,
        r,
        v_threshold,
        v_leak,
        v_reset,
    }) = g.nodes.get("block1_lif")
    else {
        panic!("no LIF block1_lif: {:?}", g.nodes.keys());
    };
    assert_eq!(tau.shape, vec![32, 8, 8], "full-shape parameters");
    assert!(tau.values.iter().all(|&t| (t - 2e-4).abs() < 1e-18));
    assert!(r.values.iter().all(|&v| v == 2.0));
    assert!(v_threshold.values.iter().all(|&v| v == 0.5));
    assert!(
        v_leak
            .values
            .iter()
            .chain(&v_reset.values)
            .all(|&v| v == 0.0)
    );
    assert_eq!(g.meta_text("reset"), Some("hard"));
    assert_eq!(g.meta_number("dt"), Some(1e-4));
}
