//! Bad NIR input never panics: truncated or garbage files, a missing path, wrong node types,
//! wrong shapes and unsupported structure are errors naming the file, node or field.

use burn::tensor::Device;
use tks::kernels::KernelPolicy;
use tks::neuron::NeuronConfig;
use tks_deploy::nir::{Array, Graph, Node, export::export, hdf5, import::import};

use crate::common::{run_tks, scratch};
use crate::runs::{load, train};

fn import_err(g: &Graph) -> String {
    match import(
        g,
        "test.nir",
        NeuronConfig::default(),
        &KernelPolicy::default(),
        &Device::flex(),
    ) {
        Ok(_) => panic!("imported a bad graph"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bad_files_and_graphs_are_clear_errors() {
    let run = train("nir-bad", None);
    let (config, model) = load(&run.dir);
    let graph = export(&model, &config).unwrap();
    let bytes = hdf5::to_bytes(&graph).unwrap();
    let dir = scratch("nir-bad-files");

    // Truncated and garbage files, via the library and the command line.
    for (name, data) in [
        ("truncated.nir", &bytes[..bytes.len() / 2]),
        ("garbage.nir", &b"not an hdf5 file at all"[..]),
        ("empty.nir", &[][..]),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, data).unwrap();
        let e = hdf5::read(&path).unwrap_err().to_string();
        assert!(e.contains(name), "{e}");
        let (ok, _, err) = run_tks(&[
            "import",
            path.to_str().unwrap(),
            "--out",
            dir.join("x").to_str().unwrap(),
        ]);
        assert!(
            !ok && err.starts_with("error:") && err.contains(name) && !err.contains("panicked"),
            "{err}"
        );
    }
    // Every truncation point is an error, never a panic.
    for cut in (0..bytes.len()).step_by(bytes.len() / 97 + 1) {
        let _ = hdf5::from_bytes(&bytes[..cut], "cut");
    }
    let (ok, _, err) = run_tks(&[
        "import",
        "/nonexistent/model.nir",
        "--out",
        dir.join("y").to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("/nonexistent/model.nir"), "{err}");
    let (ok, _, err) = run_tks(&[
        "export",
        "--run",
        "/nonexistent/run",
        "--out",
        dir.join("z.nir").to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("/nonexistent/run"), "{err}");

    // Wrong shapes: a LIF whose parameters do not fit its input.
    let mut g = graph.clone();
    if let Some(Node::Lif { tau, .. }) = g.nodes.get_mut("block2_lif") {
        *tau = Array::full(&[64, 3, 3], 2e-4);
    }
    let e = import_err(&g);
    assert!(
        e.contains("block2_lif") && e.contains("LIF") && e.contains("tau"),
        "{e}"
    );
    // A conv whose weight does not take its input.
    let mut g = graph.clone();
    if let Some(Node::Conv2d { weight, .. }) = g.nodes.get_mut("block2_conv") {
        *weight = Array::full(&[64, 31, 3, 3], 0.0);
    }
    let e = import_err(&g);
    assert!(e.contains("block2_conv") && e.contains("Conv2d"), "{e}");
    // A stride tks's architectures do not have.
    let mut g = graph.clone();
    if let Some(Node::Conv2d { stride, .. }) = g.nodes.get_mut("block1_conv") {
        *stride = [2, 2];
    }
    let e = import_err(&g);
    assert!(e.contains("block1_conv") && e.contains("stride"), "{e}");
    // A type tks has no layer for.
    let mut g = graph.clone();
    g.nodes.insert(
        "pool1".into(),
        Node::Other {
            kind: "SumPool2d".into(),
        },
    );
    let e = import_err(&g);
    assert!(e.contains("pool1") && e.contains("SumPool2d"), "{e}");
    // A residual connection (two edges into one node).
    let mut g = graph.clone();
    g.edges.push(("pool1".into(), "pool2".into()));
    let e = import_err(&g);
    assert!(e.contains("pool") && e.contains("edges"), "{e}");
    // An edge to a node that does not exist.
    let mut g = graph.clone();
    g.edges.push(("flatten".into(), "ghost".into()));
    assert!(import_err(&g).contains("ghost"));
    // Neurons that differ between layers.
    let mut g = graph.clone();
    if let Some(Node::Lif { v_threshold, .. }) = g.nodes.get_mut("block2_lif") {
        *v_threshold = Array::full(&[64, 4, 4], 0.7);
    }
    let e = import_err(&g);
    assert!(
        e.contains("block2_lif") && e.contains("one neuron configuration"),
        "{e}"
    );
    // A graph that fits no architecture.
    let mut g = graph.clone();
    g.edges.retain(|(a, b)| !(a == "pool2" && b == "flatten"));
    g.edges
        .retain(|(a, b)| !(a == "block2_lif" && b == "pool2"));
    g.edges.push(("block2_lif".into(), "flatten".into()));
    g.nodes.remove("pool2");
    if let Some(Node::Affine { weight, .. }) = g.nodes.get_mut("classifier") {
        *weight = Array::full(&[10, 1024], 0.0);
    }
    let e = import_err(&g);
    assert!(
        e.contains("matches no tks architecture") && e.contains("small_cnn"),
        "{e}"
    );
}

#[test]
fn what_nir_cannot_express_names_the_layer() {
    let dir = scratch("nir-unsupported");
    let cases = [
        (
            "[model]\narch = \"small_cnn\"\nin_channels = 1\ninput_size = 8\nnum_classes = 10\n[model.neuron]\nthreshold = 0.5\nreset = \"soft\"\n",
            "block1.lif",
            "soft reset",
        ),
        (
            "[model]\narch = \"vgg_snn\"\nwidth = 0.125\nin_channels = 2\ninput_size = 16\nnum_classes = 10\npool = \"max\"\n[data]\nsource = \"dvsdigits\"\n",
            "stages.0.pool",
            "max pooling",
        ),
        (
            "[model]\narch = \"sew_resnet\"\ndepth = 18\nwidth = 0.0625\ninput_size = 8\nin_channels = 1\nnum_classes = 10\ncifar_stem = true\n",
            "sew_resnet",
            "SEW",
        ),
    ];
    for (i, (toml, layer, why)) in cases.iter().enumerate() {
        let cfg = dir.join(format!("c{i}.toml"));
        std::fs::write(&cfg, toml).unwrap();
        let text = std::fs::read_to_string(&cfg).unwrap();
        let config = tks::config::RunConfig::from_toml(&text, "c.toml").unwrap();
        let model = config.model.init(&Device::flex()).unwrap();
        let e = export(&model, &config).unwrap_err().to_string();
        assert!(e.contains(layer) && e.contains(why), "{e}");
    }
}
