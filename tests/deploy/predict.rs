//! `tks predict`: one JSON line per input (images, frame tensors, folders), the same logits as
//! the model's own forward pass, early exit, and bad inputs as one error line each.

use burn::tensor::{Device, Tensor, TensorData};

use crate::common::run_tks;
use crate::runs::{load, train};

fn write_npy(path: &std::path::Path, shape: &[usize], values: &[f32]) {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    let header = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': ({},), }}",
        dims.join(", ")
    );
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(path, tks::data::formats::npy::write_npy(&header, &bytes)).unwrap();
}

#[test]
fn predict_answers_every_good_input_and_names_every_bad_one() {
    let run = train("predict", None);
    let (config, model) = load(&run.dir);
    let dir = run.scratch.join("inputs");
    std::fs::create_dir_all(dir.join("folder")).unwrap();
    let data = tks::data::source::load(&config.data, 4).unwrap();
    // Test image 0 as a frame tensor [4, 1, 8, 8] (direct encoding: the image at every step).
    let image: Vec<f32> = data.test.values[..64].to_vec();
    let frames: Vec<f32> = image.iter().cycle().take(4 * 64).copied().collect();
    write_npy(&dir.join("frames.npy"), &[4, 1, 8, 8], &frames);
    // The same image as an 8-bit PNG (grey), twice in a folder.
    let png = image::GrayImage::from_fn(8, 8, |x, y| {
        image::Luma([(image[(y * 8 + x) as usize] * 255.0).round() as u8])
    });
    png.save(dir.join("folder/a.png")).unwrap();
    png.save(dir.join("folder/b.png")).unwrap();
    std::fs::write(
        dir.join("folder/broken.png"),
        b"\x89PNG\r\n\x1a\nnot really",
    )
    .unwrap();
    write_npy(&dir.join("wrong.npy"), &[4, 1, 9, 9], &vec![0.0; 4 * 81]);
    let run_dir = run.dir.to_str().unwrap();
    let (ok, out, err) = run_tks(&[
        "predict",
        "--run",
        run_dir,
        "--logits",
        dir.join("frames.npy").to_str().unwrap(),
        dir.join("folder").to_str().unwrap(),
        dir.join("missing.png").to_str().unwrap(),
        dir.join("wrong.npy").to_str().unwrap(),
    ]);
    assert!(!ok, "failures give a nonzero exit code");
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "frames.npy, a.png, b.png: {out}");
    // Errors: one line each, naming the file; no panic.
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 4, "{err}");
    for name in [
        "broken.png",
        "missing.png",
        "wrong.npy",
        "3 of 6 inputs failed",
    ] {
        assert!(errors.iter().any(|l| l.contains(name)), "`{name}` in {err}");
    }
    assert!(
        !err.contains("panicked") && err.contains("p50") && err.contains("p99"),
        "{err}"
    );

    // The frame tensor's logits are the model's own on those frames, bit for bit.
    let x = Tensor::<5>::from_data(TensorData::new(frames, [4, 1, 1, 8, 8]), &Device::flex());
    let want = tks::eval::values(burn::module::Module::valid(&model).forward(x));
    let p = &lines[0];
    let got: Vec<f32> = p["logits"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
        })
        .collect();
    assert_eq!(got, want);
    assert_eq!(p["kind"], "frames");
    assert_eq!(p["timesteps"], 4);
    assert_eq!(p["top5"].as_array().unwrap().len(), 5);
    let probs: Vec<f64> = p["top5"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["probability"].as_f64().unwrap())
        .collect();
    assert!(
        probs.windows(2).all(|w| w[0] >= w[1])
            && (probs[0] - p["probability"].as_f64().unwrap()).abs() < 1e-12
    );
    assert_eq!(p["class"], p["top5"][0]["class"]);
    // The PNG is the same digit (8-bit rounding aside): same class.
    assert_eq!(lines[1]["kind"], "image");
    assert_eq!(lines[1]["class"], p["class"], "{out}");
    assert_eq!(
        lines[1]["input"].as_str().unwrap(),
        dir.join("folder/a.png").to_str().unwrap()
    );

    // Early exit at threshold 0 stops at t = 1; at 1 it never stops early; -T changes T.
    let one = dir.join("folder/a.png");
    let (ok, out, err) = run_tks(&[
        "predict",
        "--run",
        run_dir,
        "--anytime",
        "0",
        "-T",
        "6",
        one.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let p: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        (p["exit_timestep"].as_u64(), p["timesteps"].as_u64()),
        (Some(1), Some(6))
    );
    assert!(p.get("logits").is_none());
    let (ok, out, _) = run_tks(&[
        "predict",
        "--run",
        run_dir,
        "--anytime",
        "0.9",
        "--logits",
        one.to_str().unwrap(),
    ]);
    assert!(ok);
    let p: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let logits: Vec<f32> = p["logits"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
        })
        .collect();
    let (exit, class) = tks::eval::anytime::exit_of(&logits, 10, 0.9);
    assert_eq!(
        (p["exit_timestep"].as_u64(), p["class"].as_u64()),
        (Some(exit as u64), Some(class as u64))
    );
}
