//! The objectives against the PyTorch reference's golden loss vectors (`losses.json` of
//! `make_golden.py`, see `../shared/reference/README.md`): every `*.json` of the golden directory
//! (`$TKS_GOLDEN_DIR`, default `../shared/reference/golden`) that holds loss cases is checked —
//! the `alpha_schedule` table, and per case the baseline / TET / TKS losses, the TKS terms, mask,
//! teacher, and the gradients w.r.t. the per-timestep logits (TKS with the teacher attached and
//! detached). Inputs and parameters come from the files only. Tolerance `|a−b| ≤ 1e-5 + 1e-4·|b|`.

use burn::tensor::{Device, Int, Tensor, TensorData};
use serde_json::Value;
use tks::model::SnnOutput;
use tks::objective::{Baseline, Objective, Progress, Tet, Tks};

use crate::common::{GoldenKind, array, assert_close, field, golden_files_of_kind, number};

/// Output keys of a loss case this test knows how to check.
const KNOWN_OUTPUTS: [&str; 12] = [
    "baseline_loss",
    "baseline_grad",
    "tet_loss",
    "tet_grad",
    "tks_loss",
    "tks_loss1_ce_of_mean",
    "tks_loss2_soft",
    "tks_mask_TB",
    "tks_correct_count_per_sample",
    "tks_teacher",
    "tks_grad_detach_false",
    "tks_grad_detach_true",
];

fn vals<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("f32 data")
}

/// One golden case's inputs on the autodiff device.
struct Case<'a> {
    name: String,
    json: &'a Value,
    shape: [usize; 3],
    out: Vec<f32>,
    targets: Vec<i64>,
    device: Device,
}

impl Case<'_> {
    fn param(&self, key: &str) -> f64 {
        let params = field(self.json, "params", &self.name);
        number(
            field(params, key, &format!("{} params", self.name)),
            &format!("{} params.{key}", self.name),
        )
    }

    fn progress(&self) -> Progress {
        Progress {
            epoch: self.param("epoch") as usize,
            epochs: self.param("epochs") as usize,
            step: 0,
            steps_per_epoch: 1,
        }
    }

    fn tks(&self, detach_teacher: bool) -> Tks {
        Tks {
            temperature: self.param("tks_temperature"),
            alpha: self.param("alpha"),
            detach_teacher,
            student_temperature: false,
            per_step: false,
        }
    }

    fn logits(&self) -> Tensor<3> {
        Tensor::from_data(TensorData::new(self.out.clone(), self.shape), &self.device)
            .require_grad()
    }

    fn targets(&self) -> Tensor<1, Int> {
        Tensor::from_data(
            TensorData::new(self.targets.clone(), [self.targets.len()]),
            &self.device,
        )
    }

    /// Loss value and gradient w.r.t. the per-timestep logits.
    fn loss_and_grad(&self, objective: &dyn Objective) -> (f32, Vec<f32>) {
        let logits = self.logits();
        let output = SnnOutput {
            logits: logits.clone(),
            stage: None,
        };
        let loss = objective.loss(&output, self.targets(), self.progress());
        let value = vals(loss.clone())[0];
        let grads = loss.backward();
        let grad = logits.grad(&grads).expect("gradient w.r.t. the logits");
        (value, vals(grad))
    }

    /// The golden output `key`: (shape, values).
    fn expected(&self, key: &str) -> (Vec<usize>, Vec<f64>) {
        let v = field(field(self.json, "outputs", &self.name), key, &self.name);
        match v {
            Value::Number(_) => (vec![], vec![number(v, key)]),
            _ => array(v, &format!("{} {key}", self.name)),
        }
    }
}

/// Checks `got` against the golden output `key` (shape and values); returns 1.
fn check(case: &Case, key: &str, got_shape: &[usize], got: &[f32]) -> usize {
    let (shape, want) = case.expected(key);
    assert_eq!(shape, got_shape, "{} {key}: shape", case.name);
    assert_close(got, &want, &format!("{} {key}", case.name));
    1
}

fn check_alpha_schedule(file: &str, rows: &[Value]) -> usize {
    for (i, row) in rows.iter().enumerate() {
        let what = format!("{file} alpha_schedule[{i}]");
        let get = |k: &str| number(field(row, k, &what), &format!("{what}.{k}"));
        let progress = Progress {
            epoch: get("epoch") as usize,
            epochs: get("epochs") as usize,
            step: 0,
            steps_per_epoch: 1,
        };
        let tks = Tks {
            alpha: get("alpha"),
            ..Tks::default()
        };
        let a = tks.ce_weight(progress);
        assert_close(&[a], &[get("a")], &what);
    }
    rows.len()
}

/// Checks every output of one case; returns the number of checks.
fn check_case(file: &str, json: &Value) -> usize {
    let name = format!(
        "{file} {}",
        crate::common::case_name(json).unwrap_or("<unnamed case>")
    );
    let inputs = field(json, "inputs", &name);
    let (out_shape, out) = array(field(inputs, "out", &name), &format!("{name} inputs.out"));
    let (t_shape, targets) = array(
        field(inputs, "targets", &name),
        &format!("{name} inputs.targets"),
    );
    let shape: [usize; 3] = out_shape
        .clone()
        .try_into()
        .unwrap_or_else(|_| panic!("{name}: out must be [T, B, C]"));
    let [t, b, c] = shape;
    assert_eq!(t_shape, [b], "{name}: targets must be [B]");
    let case = Case {
        name: name.clone(),
        json,
        shape,
        out: out.iter().map(|&v| v as f32).collect(),
        targets: targets.iter().map(|&v| v as i64).collect(),
        device: Device::flex().autodiff(),
    };
    let outputs = field(json, "outputs", &name)
        .as_object()
        .unwrap_or_else(|| panic!("{name}: outputs is not an object"));
    let unknown: Vec<&String> = outputs
        .keys()
        .filter(|k| !KNOWN_OUTPUTS.contains(&k.as_str()))
        .collect();
    assert!(
        unknown.is_empty(),
        "{name}: outputs this test does not check: {unknown:?}"
    );
    let has = |k: &str| outputs.contains_key(k);
    let mut checks = 0;

    if params_has(json, "a") {
        let a = case.tks(false).ce_weight(case.progress());
        assert_close(&[a], &[case.param("a")], &format!("{name} params.a"));
        checks += 1;
    }
    if has("baseline_loss") || has("baseline_grad") {
        let (loss, grad) = case.loss_and_grad(&Baseline {});
        if has("baseline_loss") {
            checks += check(&case, "baseline_loss", &[], &[loss]);
        }
        if has("baseline_grad") {
            checks += check(&case, "baseline_grad", &out_shape, &grad);
        }
    }
    if has("tet_loss") || has("tet_grad") {
        let tet = Tet {
            lambda: case.param("tet_lambda"),
            phi: case.param("tet_means"),
        };
        let (loss, grad) = case.loss_and_grad(&tet);
        if has("tet_loss") {
            checks += check(&case, "tet_loss", &[], &[loss]);
        }
        if has("tet_grad") {
            checks += check(&case, "tet_grad", &out_shape, &grad);
        }
    }
    for detach in [false, true] {
        let (loss, grad) = case.loss_and_grad(&case.tks(detach));
        // The loss value does not depend on detaching.
        if has("tks_loss") {
            checks += check(&case, "tks_loss", &[], &[loss]);
        }
        let key = if detach {
            "tks_grad_detach_true"
        } else {
            "tks_grad_detach_false"
        };
        if has(key) {
            checks += check(&case, key, &out_shape, &grad);
        }
    }
    let parts = case.tks(false).parts(case.logits(), case.targets());
    if has("tks_loss1_ce_of_mean") {
        checks += check(&case, "tks_loss1_ce_of_mean", &[], &vals(parts.loss1));
    }
    if has("tks_loss2_soft") {
        checks += check(&case, "tks_loss2_soft", &[], &vals(parts.loss2));
    }
    if has("tks_mask_TB") {
        let (shape, want) = case.expected("tks_mask_TB");
        assert_eq!(shape, [t, b], "{name} tks_mask_TB: shape");
        let got = vals(parts.mask.clone());
        assert_eq!(
            got,
            want.iter().map(|&v| v as f32).collect::<Vec<_>>(),
            "{name} tks_mask_TB must match exactly"
        );
        checks += 1;
    }
    if has("tks_correct_count_per_sample") {
        let (shape, want) = case.expected("tks_correct_count_per_sample");
        assert_eq!(shape, [b], "{name} tks_correct_count_per_sample: shape");
        let got = vals(parts.mask.sum_dim(0));
        assert_eq!(
            got,
            want.iter().map(|&v| v as f32).collect::<Vec<_>>(),
            "{name} tks_correct_count_per_sample"
        );
        checks += 1;
    }
    if has("tks_teacher") {
        checks += check(&case, "tks_teacher", &[b, c], &vals(parts.teacher));
    }
    assert!(checks > 0, "{name}: no output checked");
    checks
}

fn params_has(json: &Value, key: &str) -> bool {
    json.get("params").and_then(|p| p.get(key)).is_some()
}

#[test]
fn losses_match_reference_golden_vectors() {
    let Some(files) = golden_files_of_kind(GoldenKind::Losses) else {
        return;
    };
    let (mut cases, mut schedule_rows, mut checks) = (0, 0, 0);
    for file in &files {
        let fname = file.path.display().to_string();
        if let Some(rows) = file.json.get("alpha_schedule") {
            let rows = rows
                .as_array()
                .unwrap_or_else(|| panic!("{fname}: alpha_schedule is not an array"));
            schedule_rows += check_alpha_schedule(&fname, rows);
        }
        let file_cases = file
            .json
            .get("cases")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        for case in file_cases {
            checks += check_case(&fname, case);
            cases += 1;
        }
    }
    println!(
        "golden losses: {} file(s), {cases} case(s) ({checks} checks), {schedule_rows} alpha_schedule row(s)",
        files.len()
    );
    assert!(cases > 0, "no loss case checked in {} file(s)", files.len());
}
