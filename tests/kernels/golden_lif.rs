//! The LIF neuron against the PyTorch reference's golden vectors (`lif.json`, TET's `LIFSpike`),
//! on both paths: the plain-ops reference and the fused kernel (`tks::neuron::fused`).
//!
//! Every case of every LIF golden file in [`crate::common::golden_dir`] is replayed with the shapes,
//! surrogate, threshold, decay and reset taken from the file: forward spikes (exactly), the
//! membrane before reset and after the last step, and the BPTT input gradients
//! `d Σ spikes / dx` and `d Σ spikes ⊙ G / dx`, with and without `detach_reset`.

use burn::tensor::{Device, Tensor, TensorData};
use serde_json::Value;
use tks::neuron::{NeuronConfig, NeuronKind, ResetMode};
use tks::surrogate::Surrogate;

use crate::common::{GoldenKind, array, assert_close, field, number};

/// Parameter keys of a LIF case that this test understands.
const KNOWN_PARAMS: [&str; 7] = [
    "surrogate",
    "surrogate_param",
    "thresh",
    "tau",
    "reset",
    "heaviside",
    "detach_reset",
];

/// The `Surrogate` variant for the golden file's `surrogate` name and `surrogate_param`.
fn surrogate_from(name: &str, param: Option<f64>, what: &str) -> Surrogate {
    let need = |p: Option<f64>| {
        p.unwrap_or_else(|| panic!("{what}: surrogate `{name}` needs `surrogate_param`"))
    };
    match name {
        "triangle" => Surrogate::Triangle { gamma: need(param) },
        "sigmoid" => Surrogate::Sigmoid { alpha: need(param) },
        "atan" => Surrogate::Atan { alpha: need(param) },
        "rectangle" => Surrogate::Rectangle { width: need(param) },
        "bireal" => Surrogate::Bireal,
        other => panic!(
            "{what}: unknown surrogate `{other}` (this crate has triangle, sigmoid, atan, rectangle, bireal)"
        ),
    }
}

/// The reset mode named in the golden file.
fn reset_from(name: &str, what: &str) -> ResetMode {
    match name {
        "hard_to_zero" | "hard" => ResetMode::Hard,
        "soft" | "subtract" | "soft_subtract" => ResetMode::Soft,
        other => panic!("{what}: unknown reset mode `{other}`"),
    }
}

/// The neuron configuration of one case (with `detach_reset` as in the file).
fn config_from(params: &Value, what: &str) -> NeuronConfig {
    let map = params
        .as_object()
        .unwrap_or_else(|| panic!("{what}: `params` is not an object"));
    for key in map.keys() {
        assert!(
            KNOWN_PARAMS.contains(&key.as_str()),
            "{what}: unknown parameter `{key}` — the test cannot reproduce this case faithfully"
        );
    }
    let text = |key: &str| {
        field(params, key, what)
            .as_str()
            .unwrap_or_else(|| panic!("{what}: `{key}` is not a string"))
    };
    let surrogate_param = params
        .get("surrogate_param")
        .filter(|v| !v.is_null())
        .map(|v| number(v, what));
    let surrogate = surrogate_from(text("surrogate"), surrogate_param, what);
    if let Some(h) = params.get("heaviside") {
        let h = h
            .as_str()
            .unwrap_or_else(|| panic!("{what}: `heaviside` is not a string"));
        assert_eq!(
            h, "strict_greater",
            "{what}: only the strict `h - thresh > 0` step is implemented"
        );
    }
    let detach_reset = match params.get("detach_reset") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64() != Some(0.0),
        Some(other) => panic!("{what}: `detach_reset` is not a boolean: {other}"),
    };
    NeuronConfig {
        kind: NeuronKind::Lif,
        threshold: number(field(params, "thresh", what), what),
        decay: number(field(params, "tau", what), what),
        reset: reset_from(text("reset"), what),
        detach_reset,
        surrogate,
        ..NeuronConfig::default()
    }
}

fn to_f32(values: &[f64]) -> Vec<f32> {
    values.iter().map(|&v| v as f32).collect()
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    tks::eval::values(t)
}

/// Which implementation of the neuron to check.
#[derive(Clone, Copy, Debug)]
enum LifPath {
    /// Plain burn ops (`forward_trace`, `forward_reference`).
    Reference,
    /// The fused kernel (`forward_trace_fused`, `forward_fused`).
    Fused,
}

/// What one run of the neuron produced.
struct Run {
    spikes: Vec<f32>,
    h_pre_reset: Vec<f32>,
    mem_final: Vec<f32>,
    mem_final_dims: Vec<usize>,
    grad_x_ones: Vec<f32>,
    grad_x_rand: Vec<f32>,
}

/// Runs `config` on `x` (shape `shape`, rank `D`) on an autodiff device: forward trace plus
/// the input gradients of `Σ spikes` and `Σ spikes ⊙ G`.
fn run<const D: usize>(
    path: LifPath,
    config: &NeuronConfig,
    shape: &[usize],
    x: &[f64],
    g: &[f64],
    what: &str,
) -> Run {
    let device = Device::flex().autodiff();
    let neuron = config
        .init(&device)
        .unwrap_or_else(|e| panic!("{what}: bad neuron config: {e}"));
    let input = || {
        Tensor::<D>::from_data(TensorData::new(to_f32(x), shape.to_vec()), &device).require_grad()
    };

    let x_ones = input();
    let trace = match path {
        LifPath::Reference => neuron.forward_trace(x_ones.clone()),
        LifPath::Fused => {
            assert!(
                tks::neuron::fused::supports(config, &x_ones),
                "{what}: the fused kernel must support this case"
            );
            neuron.forward_trace_fused(x_ones.clone())
        }
    };
    let spikes = values(trace.spikes.clone());
    let h_pre_reset = values(trace.h_pre_reset.clone());
    let mem_final_dims = trace.mem_final.dims().to_vec();
    let mem_final = values(trace.mem_final.clone());
    let grads = trace.spikes.sum().backward();
    let grad_x_ones = values(
        x_ones
            .grad(&grads)
            .unwrap_or_else(|| panic!("{what}: no gradient for x")),
    );

    let x_rand = input();
    let weights = Tensor::<D>::from_data(TensorData::new(to_f32(g), shape.to_vec()), &device);
    let spikes_rand = match path {
        LifPath::Reference => neuron.forward_reference(x_rand.clone()),
        LifPath::Fused => neuron.forward_fused(x_rand.clone()),
    };
    let grads = (spikes_rand * weights).sum().backward();
    let grad_x_rand = values(
        x_rand
            .grad(&grads)
            .unwrap_or_else(|| panic!("{what}: no gradient for x")),
    );

    Run {
        spikes,
        h_pre_reset,
        mem_final,
        mem_final_dims,
        grad_x_ones,
        grad_x_rand,
    }
}

fn run_any_rank(
    path: LifPath,
    config: &NeuronConfig,
    shape: &[usize],
    x: &[f64],
    g: &[f64],
    what: &str,
) -> Run {
    match shape.len() {
        2 => run::<2>(path, config, shape, x, g, what),
        3 => run::<3>(path, config, shape, x, g, what),
        4 => run::<4>(path, config, shape, x, g, what),
        5 => run::<5>(path, config, shape, x, g, what),
        6 => run::<6>(path, config, shape, x, g, what),
        r => panic!("{what}: input rank {r} not supported (expected [T, B, ...] of rank 2..=6)"),
    }
}

/// Forward outputs of `run` against the case's `outputs`.
fn check_forward(run: &Run, outputs: &Value, x_shape: &[usize], what: &str) {
    let (spike_shape, want_spikes) =
        array(field(outputs, "spikes", what), &format!("{what}.spikes"));
    assert_eq!(spike_shape, x_shape, "{what}: spikes shape");
    let got_spikes: Vec<f64> = run.spikes.iter().map(|&s| f64::from(s)).collect();
    assert_eq!(got_spikes, want_spikes, "{what}: spikes differ");

    let (h_shape, want_h) = array(
        field(outputs, "h_pre_reset", what),
        &format!("{what}.h_pre_reset"),
    );
    assert_eq!(h_shape, x_shape, "{what}: h_pre_reset shape");
    assert_close(&run.h_pre_reset, &want_h, &format!("{what}.h_pre_reset"));

    // The reference stores the final membrane as [B, ...]; the crate keeps the time axis, [1, B, ...].
    let (m_shape, want_m) = array(
        field(outputs, "mem_final", what),
        &format!("{what}.mem_final"),
    );
    let got_dims = &run.mem_final_dims;
    assert!(
        got_dims[0] == 1 && got_dims[1..] == m_shape[..],
        "{what}: mem_final dims {got_dims:?} vs golden {m_shape:?} (expected [1] + golden)"
    );
    assert_close(&run.mem_final, &want_m, &format!("{what}.mem_final"));
}

/// Checks one LIF case; returns the number of compared arrays.
fn check_case(path: LifPath, case: &Value, file: &str) -> usize {
    let name = crate::common::case_name(case).unwrap_or("<unnamed>");
    let what = format!("{file}:{name}");
    let params = field(case, "params", &what);
    let config = config_from(params, &what);
    let inputs = field(case, "inputs", &what);
    let outputs = field(case, "outputs", &what);
    let (x_shape, x) = array(field(inputs, "x", &what), &format!("{what}.inputs.x"));
    let (g_shape, g) = array(
        field(inputs, "grad_spikes_rand", &what),
        &format!("{what}.inputs.grad_spikes_rand"),
    );
    assert_eq!(g_shape, x_shape, "{what}: grad_spikes_rand shape");

    let mut compared = 0;
    let gradient_sets = [
        (config.detach_reset, "grad_x_ones", "grad_x_rand"),
        (true, "grad_x_ones_detach_reset", "grad_x_rand_detach_reset"),
    ];
    for (detach_reset, ones_key, rand_key) in gradient_sets {
        let config = NeuronConfig {
            detach_reset,
            ..config
        };
        let label = format!("{what} ({path:?} path, detach_reset={detach_reset})");
        let run = run_any_rank(path, &config, &x_shape, &x, &g, &label);
        // Detaching the reset changes only the backward pass: forward must match either way.
        check_forward(&run, outputs, &x_shape, &label);
        compared += 3;
        for (key, got) in [(ones_key, &run.grad_x_ones), (rand_key, &run.grad_x_rand)] {
            let (shape, want) = array(field(outputs, key, &what), &format!("{what}.{key}"));
            assert_eq!(shape, x_shape, "{what}: {key} shape");
            assert_close(got, &want, &format!("{what}.{key}"));
            compared += 1;
        }
    }
    compared
}

/// Checks every LIF case of every golden file on `path`.
fn check_all(path: LifPath) {
    let Some(files) = crate::common::golden_files_of_kind(GoldenKind::Lif) else {
        return;
    };
    let mut cases = 0;
    let mut arrays = 0;
    for file in &files {
        let label = file.path.display().to_string();
        let file_cases = file.cases();
        assert!(
            !file_cases.is_empty(),
            "{label}: LIF golden file without cases"
        );
        for case in file_cases {
            arrays += check_case(path, case, &label);
            cases += 1;
        }
    }
    eprintln!(
        "{path:?} path: checked {cases} LIF golden cases ({arrays} arrays) from {} file(s)",
        files.len()
    );
    assert!(cases > 0, "no LIF golden case was checked");
}

#[test]
fn reference_lif_matches_every_golden_case() {
    check_all(LifPath::Reference);
}

#[test]
fn fused_lif_matches_every_golden_case() {
    check_all(LifPath::Fused);
}

#[test]
fn unknown_surrogate_is_a_clear_failure() {
    let params = serde_json::json!({
        "surrogate": "relu", "surrogate_param": 1.0, "thresh": 1.0, "tau": 0.5,
        "reset": "hard_to_zero", "heaviside": "strict_greater", "detach_reset": false
    });
    let err = std::panic::catch_unwind(|| config_from(&params, "case")).expect_err("must fail");
    let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("unknown surrogate `relu`"), "{msg}");
}

#[test]
fn golden_parameters_map_onto_the_config() {
    let params = serde_json::json!({
        "surrogate": "sigmoid", "surrogate_param": 3.5, "thresh": 0.5, "tau": 0.25,
        "reset": "hard_to_zero", "heaviside": "strict_greater", "detach_reset": true
    });
    let c = config_from(&params, "case");
    assert_eq!(c.surrogate, Surrogate::Sigmoid { alpha: 3.5 });
    assert_eq!(
        (c.threshold, c.decay, c.reset, c.detach_reset),
        (0.5, 0.25, ResetMode::Hard, true)
    );
    assert_eq!(c.kind, NeuronKind::Lif);
}
