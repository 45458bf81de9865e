//! The real client: Python `nir` 1.0.8 (numpy + h5py) from the venv that `.ci/run` makes
//! (`TKS_TEST_PYTHON` = its python). Without it these tests print `SKIP` and the reason.
//!
//! * `nir.read` (type-checked) reads tks's exports of the small CNN and VGG-SNN; node types
//!   and shapes are checked, and a numpy re-implementation of the NIR semantics (forward
//!   Euler with dt from the metadata, β = 1 − dt/τ, input scale R·dt/τ, reset to v_reset)
//!   run on the graph as Python read it reproduces tks's per-timestep logits.
//! * `nir.write` output (gzip-chunked datasets, variable-length strings) — tks's export
//!   rewritten by Python, and a graph Python builds from scratch — imports into tks, with
//!   logits identical to the original (rewrite) or equal to numpy's forward (scratch graph).
//! * A graph with a node tks has no layer for is refused, naming the node and its type.
//!
//! An opt-in test (`TKS_TEST_SNNTORCH_PYTHON` = a python with snntorch, nirtorch and nir) loads
//! the export with snnTorch's `import_from_nir` and compares per-timestep outputs.

use std::path::{Path, PathBuf};
use std::process::Command;

use burn::tensor::Device;
use tks::kernels::KernelPolicy;
use tks_deploy::nir::{export::export, hdf5, import::import};

use crate::common::{run_tks, scratch};
use crate::runs::{VGG_TOML, load, test_logits, train};

/// numpy forward of a NIR graph, and the checks, shared by the tests.
const HELPER: &str = r#"
import json, sys
import numpy as np
import nir

def chain(g):
    nxt = {a: b for a, b in g.edges}
    at = [k for k, n in g.nodes.items() if isinstance(n, nir.Input)][0]
    order = []
    while at in nxt:
        at = nxt[at]
        if not isinstance(g.nodes[at], nir.Output):
            order.append(at)
    return order

def conv(x, n):
    ph, pw = n.padding
    xp = np.pad(x, ((0, 0), (ph, ph), (pw, pw)))
    kh, kw = n.weight.shape[2:]
    win = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(1, 2))
    sh, sw = n.stride
    win = win[:, ::sh, ::sw]
    return np.einsum("chwij,ocij->ohw", win, n.weight.astype(np.float32)) + n.bias.astype(np.float32)[:, None, None]

def forward(g, frames):
    """frames [T, C, H, W] -> logits [T, classes], float32."""
    dt = float(g.metadata.get("dt", 1e-4))
    order = chain(g)
    state = {}
    out = []
    for x in frames.astype(np.float32):
        for k in order:
            n = g.nodes[k]
            if isinstance(n, nir.Conv2d):
                x = conv(x, n)
            elif isinstance(n, nir.LIF):
                beta = (1 - dt / n.tau).astype(np.float32)
                scale = (n.r * dt / n.tau).astype(np.float32)
                v = beta * state.get(k, np.zeros_like(x)) + scale * x
                s = v > n.v_threshold.astype(np.float32)
                state[k] = np.where(s, n.v_reset.astype(np.float32), v)
                x = s.astype(np.float32)
            elif isinstance(n, nir.IF):
                v = state.get(k, np.zeros_like(x)) + n.r.astype(np.float32) * x
                s = v > n.v_threshold.astype(np.float32)
                state[k] = np.where(s, n.v_reset.astype(np.float32), v)
                x = s.astype(np.float32)
            elif isinstance(n, nir.AvgPool2d):
                c, h, w = x.shape
                kh, kw = n.kernel_size
                x = x.reshape(c, h // kh, kh, w // kw, kw).mean(axis=(2, 4))
            elif isinstance(n, nir.Flatten):
                x = x.reshape(-1)
            elif isinstance(n, nir.Affine):
                x = n.weight.astype(np.float32) @ x + n.bias.astype(np.float32)
            elif isinstance(n, nir.Linear):
                x = n.weight.astype(np.float32) @ x
            else:
                raise ValueError(f"no numpy forward for {type(n).__name__}")
        out.append(x)
    return np.stack(out)

def compare(g, frames, want):
    """Samples whose per-timestep logits numpy reproduces (to 1e-3), of all."""
    close = 0
    worst = 0.0
    for f, w in zip(frames, want):
        got = forward(g, f)
        err = float(np.max(np.abs(got - w) / (1 + np.abs(w))))
        worst = max(worst, err) if err < 1e-3 else worst
        close += err < 1e-3
    return close, worst
"#;

/// The venv python with nir, or `None` (and the SKIP line) when the variable is unset.
fn python() -> Option<PathBuf> {
    match std::env::var_os("TKS_TEST_PYTHON").filter(|v| !v.is_empty()) {
        Some(p) => Some(PathBuf::from(p)),
        None => {
            eprintln!(
                "SKIP: TKS_TEST_PYTHON is unset, so the Python nir checks do not run (.ci/run \
                 sets it to a venv with `pip install nir==1.0.8`)"
            );
            None
        }
    }
}

/// Runs `script` (after the helper) with `python`; returns stdout, panics with stderr on failure.
fn run_py(python: &Path, dir: &Path, script: &str) -> String {
    let path = dir.join("check.py");
    std::fs::write(&path, format!("{HELPER}\n{script}")).unwrap();
    let out = Command::new(python)
        .arg(&path)
        .output()
        .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "python failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn npy_f32(path: &Path, shape: &[usize], values: &[f32]) {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    let header = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': ({},), }}",
        dims.join(", ")
    );
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(path, tks::data::formats::npy::write_npy(&header, &bytes)).unwrap();
}

/// The first `n` test samples' frames `[n, T, C, H, W]` and tks's logits `[n, T, classes]`.
fn samples(
    config: &tks::config::RunConfig,
    model: &tks::model::Model,
    n: usize,
) -> (Vec<usize>, Vec<f32>, Vec<f32>) {
    let t = config.train.timesteps;
    let data = tks::data::source::load(&config.data, t).unwrap();
    let idx: Vec<usize> = (0..n).collect();
    let batch = data
        .test
        .batch(&idx, t, config.train.encoder, &Device::flex())
        .unwrap();
    let [tt, b, c, h, w] = batch.frames.dims();
    let tbf = tks::eval::values(batch.frames);
    let per = c * h * w;
    let mut frames = vec![0f32; tbf.len()];
    for ti in 0..tt {
        for bi in 0..b {
            let src = (ti * b + bi) * per;
            let dst = (bi * tt + ti) * per;
            frames[dst..dst + per].copy_from_slice(&tbf[src..src + per]);
        }
    }
    let (logits, _) = test_logits(config, model);
    let classes = config.model.num_classes();
    (
        vec![b, tt, c, h, w],
        frames,
        logits[..n * t * classes].to_vec(),
    )
}

fn check_export(name: &str, config_toml: Option<&str>, types: &[(&str, &str)]) {
    let Some(py) = python() else { return };
    let run = train(name, config_toml);
    let (config, model) = load(&run.dir);
    let dir = &run.scratch;
    let file = dir.join("model.nir");
    let (ok, out, err) = run_tks(&[
        "export",
        "--run",
        run.dir.to_str().unwrap(),
        "--out",
        file.to_str().unwrap(),
    ]);
    assert!(ok, "{out}{err}");
    let n = 40;
    let (shape, frames, logits) = samples(&config, &model, n);
    npy_f32(&dir.join("frames.npy"), &shape, &frames);
    let classes = config.model.num_classes();
    npy_f32(&dir.join("logits.npy"), &[n, shape[1], classes], &logits);
    let want_types: Vec<String> = types.iter().map(|(k, t)| format!("{k:?}: {t:?}")).collect();
    let script = format!(
        r#"
g = nir.read({file:?})  # type-checked
types = {{{types}}}
for k, t in types.items():
    assert type(g.nodes[k]).__name__ == t, (k, type(g.nodes[k]).__name__, t)
assert g.nodes["input"].output_type["output"].tolist() == {input:?}, g.nodes["input"].output_type
assert g.nodes["output"].input_type["input"].tolist() == [{classes}]
lif = [n for n in g.nodes.values() if isinstance(n, nir.LIF)]
assert lif and all(np.allclose(n.tau, 2e-4) and np.allclose(n.r, 2.0) for n in lif)
assert all(n.tau.shape == tuple(n.input_type["input"]) for n in lif), [n.tau.shape for n in lif]
assert all(np.all(n.v_threshold == 0.5) and np.all(n.v_leak == 0) and np.all(n.v_reset == 0) for n in lif)
assert g.metadata["reset"] == "hard" and float(g.metadata["dt"]) == 1e-4
frames = np.load({frames:?}); want = np.load({logits:?})
close, worst = compare(g, frames, want)
print(f"close {{close}} of {{len(frames)}} worst {{worst:.2e}} nodes {{len(g.nodes)}}")
"#,
        file = file.to_str().unwrap(),
        types = want_types.join(", "),
        input = config.model.input_shape(),
        frames = dir.join("frames.npy").to_str().unwrap(),
        logits = dir.join("logits.npy").to_str().unwrap(),
    );
    let out = run_py(&py, dir, &script);
    eprintln!("{name}: {out}");
    let close: usize = out.split_whitespace().nth(1).unwrap().parse().unwrap();
    // numpy sums the convolutions in another order (f32), so a membrane within rounding of
    // the threshold may spike on one side only; nearly every sample must agree.
    assert!(
        close * 100 >= n * 95,
        "numpy's NIR forward matches tks on only {close} of {n}: {out}"
    );
}

#[test]
fn nir_reads_the_small_cnn_export_type_checked() {
    check_export(
        "py-small",
        None,
        &[
            ("block1_conv", "Conv2d"),
            ("block1_lif", "LIF"),
            ("pool1", "AvgPool2d"),
            ("block2_conv", "Conv2d"),
            ("block2_lif", "LIF"),
            ("pool2", "AvgPool2d"),
            ("flatten", "Flatten"),
            ("classifier", "Affine"),
        ],
    );
}

#[test]
fn nir_reads_the_vgg_snn_export_type_checked() {
    check_export(
        "py-vgg",
        Some(VGG_TOML),
        &[
            ("stages_0_conv_a_conv", "Conv2d"),
            ("stages_0_conv_a_lif", "LIF"),
            ("stages_3_pool", "AvgPool2d"),
            ("stages_3_conv_b_lif", "LIF"),
            ("flatten", "Flatten"),
            ("classifier", "Affine"),
        ],
    );
}

#[test]
fn tks_imports_what_nir_write_makes() {
    let Some(py) = python() else { return };
    let run = train("py-write", None);
    let (config, model) = load(&run.dir);
    let dir = &run.scratch;
    let exported = dir.join("tks.nir");
    hdf5::write(&exported, &export(&model, &config).unwrap()).unwrap();
    let rewritten = dir.join("rewritten.nir");
    let scratch_graph = dir.join("scratch.nir");
    let cuba = dir.join("cuba.nir");
    let script = format!(
        r#"
import h5py
g = nir.read({exported:?})
nir.write({rewritten:?}, g)
with h5py.File({rewritten:?}) as f:
    assert f["node/nodes/block1_conv/weight"].compression == "gzip"
    assert h5py.check_string_dtype(f["node/nodes/block1_conv/type"].dtype) is not None
rng = np.random.default_rng(3)
f32 = lambda *s: (rng.standard_normal(s) * 0.5).astype(np.float32)
lif = lambda s: nir.LIF(tau=np.full(s, 1e-4 / (1 - 0.75)), r=np.full(s, 4.0), v_leak=np.zeros(s), v_threshold=np.full(s, 0.4))
h = nir.NIRGraph.from_list(
    nir.Conv2d(input_shape=(8, 8), weight=f32(6, 1, 3, 3), stride=1, padding=1, dilation=1, groups=1, bias=f32(6)),
    lif((6, 8, 8)),
    nir.AvgPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
    nir.Conv2d(input_shape=(4, 4), weight=f32(5, 6, 3, 3), stride=1, padding=1, dilation=1, groups=1, bias=f32(5)),
    lif((5, 4, 4)),
    nir.AvgPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
    nir.Flatten(input_type={{"input": np.array([5, 2, 2])}}, start_dim=0, end_dim=-1),
    nir.Linear(weight=f32(3, 20)),
)
nir.write({scratch_graph:?}, h)
x = (rng.random((4, 1, 8, 8)) * 2).astype(np.float32)
np.save({x_path:?}, x)
np.save({want_path:?}, forward(h, x))
c = nir.NIRGraph.from_list(
    nir.Affine(weight=f32(4, 64), bias=f32(4)),
    nir.CubaLIF(tau_syn=np.full(4, 2e-4), tau_mem=np.full(4, 2e-4), r=np.full(4, 2.0), v_leak=np.zeros(4), v_threshold=np.ones(4)),
)
nir.write({cuba:?}, c)
print("written")
"#,
        exported = exported.to_str().unwrap(),
        rewritten = rewritten.to_str().unwrap(),
        scratch_graph = scratch_graph.to_str().unwrap(),
        cuba = cuba.to_str().unwrap(),
        x_path = dir.join("x.npy").to_str().unwrap(),
        want_path = dir.join("want.npy").to_str().unwrap(),
    );
    run_py(&py, dir, &script);

    // 1. tks's export, rewritten by Python: the same model, bit for bit.
    let graph = hdf5::read(&rewritten).unwrap();
    let neuron = *config.model.clone().neuron_mut();
    let device = Device::flex();
    let imported = import(
        &graph,
        "rewritten",
        neuron,
        &KernelPolicy::default(),
        &device,
    )
    .unwrap();
    assert_eq!(
        test_logits(&config, &imported.model).0,
        test_logits(&config, &model).0
    );

    // 2. A graph Python built: imported as a small CNN (6, 5 channels, β 0.75, θ 0.4, no bias),
    //    classifying a frame tensor as numpy's forward does.
    let out_run = dir.join("imported");
    let (ok, out, err) = run_tks(&[
        "import",
        scratch_graph.to_str().unwrap(),
        "--out",
        out_run.to_str().unwrap(),
        "-T",
        "1",
    ]);
    assert!(ok, "{out}{err}");
    let text = std::fs::read_to_string(out_run.join("config.toml")).unwrap();
    assert!(
        text.contains("channels = [6, 5]")
            && text.contains("decay = 0.75")
            && text.contains("threshold = 0.4"),
        "{text}"
    );
    let (ok, out, err) = run_tks(&[
        "predict",
        "--run",
        out_run.to_str().unwrap(),
        "--logits",
        dir.join("x.npy").to_str().unwrap(),
    ]);
    // x.npy is [4, 1, 8, 8]: four timesteps of one frame each, fed as they are.
    assert!(ok, "{out}{err}");
    let p: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    let got: Vec<f64> = p["logits"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()))
        .collect();
    let want = tks::data::formats::npy::parse_npy_array(
        &std::fs::read(dir.join("want.npy")).unwrap(),
        "want",
    )
    .unwrap()
    .1;
    assert_eq!(got.len(), 12);
    for (g, w) in got.iter().zip(&want) {
        assert!(
            (g - w).abs() <= 1e-4 * (1.0 + w.abs()),
            "tks {got:?} vs numpy {want:?}"
        );
    }

    // 3. A node type tks has no layer for: the error names the node and the type.
    let (ok, _, err) = run_tks(&[
        "import",
        cuba.to_str().unwrap(),
        "--out",
        dir.join("cuba").to_str().unwrap(),
    ]);
    assert!(
        !ok && err.starts_with("error:") && !err.contains("panicked"),
        "{err}"
    );
    assert!(err.contains("cubalif") && err.contains("CubaLIF"), "{err}");
}

#[test]
fn snntorch_import_from_nir_matches_opt_in() {
    let Some(py) = std::env::var_os("TKS_TEST_SNNTORCH_PYTHON").filter(|v| !v.is_empty()) else {
        eprintln!(
            "SKIP: TKS_TEST_SNNTORCH_PYTHON is unset (opt-in: a python with snntorch, nirtorch, nir \
             and torch; torch is too large for CI)"
        );
        return;
    };
    let run = train("py-snntorch", None);
    let (config, model) = load(&run.dir);
    let dir = scratch("snntorch");
    let file = dir.join("model.nir");
    hdf5::write(&file, &export(&model, &config).unwrap()).unwrap();
    let n = 40;
    let (shape, frames, logits) = samples(&config, &model, n);
    npy_f32(&dir.join("frames.npy"), &shape, &frames);
    npy_f32(&dir.join("logits.npy"), &[n, shape[1], 10], &logits);
    let script = format!(
        r#"
import torch, snntorch as snn
from snntorch.import_nir import import_from_nir
net = import_from_nir(nir.read({file:?}))
frames = np.load({frames:?}); want = np.load({logits:?})
close = 0
for f, w in zip(frames, want):
    for m in net.modules():
        if isinstance(m, snn.SpikingNeuron): m.reset_mem()
    got = []
    with torch.no_grad():
        for x in f:  # unbatched [C, H, W]: NIR's own shapes
            y = net(torch.from_numpy(x))
            got.append((y[0] if isinstance(y, tuple) else y).numpy().reshape(-1))
    close += np.max(np.abs(np.stack(got) - w)) < 1e-3
print("close", close)
"#,
        file = file.to_str().unwrap(),
        frames = dir.join("frames.npy").to_str().unwrap(),
        logits = dir.join("logits.npy").to_str().unwrap(),
    );
    let out = run_py(Path::new(&py), &dir, &script);
    let close: usize = out.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(
        close * 100 >= n * 95,
        "snnTorch matches tks on {close} of {n}"
    );
}
