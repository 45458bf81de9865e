//! Classification of single files with a trained model: images (PNG/JPEG), event recordings
//! (N-MNIST / N-Caltech101 `.bin`/`.bs2`, AEDAT 2.0 / 3.1 `.aedat`, AEDAT 4 `.aedat4`,
//! Prophesee `.dat`, `.npy` event arrays) and `.npy` frame tensors `[T, C, H, W]`.
//!
//! Preprocessing is the run's: images are resized (shorter side) and centre-cropped to the
//! model's input, averaged to one channel when the model takes one, normalised when the run's
//! `[data] normalize` is on, then encoded into T frames by the run's encoder (direct or
//! Poisson); recordings are integrated into T frames with the run's `split_by` and `resize`;
//! frame tensors are fed as they are, one frame per timestep, with their own T.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use serde::Serialize;

use tks_core::layer::Encoder;
use tks_core::model::Model;
use tks_data::events::{Resize, SplitBy, to_frames};
use tks_data::formats::{aedat2, aedat3, aedat4, nmnist, npy, prophesee_dat, read_file};
use tks_data::source::{DataConfig, EventFormat, Integration, Source, decode_image, normalization};
use tks_train::eval::analysis::softmax;
use tks_train::eval::anytime::exit_of;
use tks_train::eval::{argmax, values};

/// File extensions [`expand`] picks up inside folders.
pub const EXTENSIONS: [&str; 9] = [
    "png", "jpg", "jpeg", "bin", "bs2", "aedat", "aedat4", "dat", "npy",
];

/// How inputs become frames for one run.
#[derive(Debug, Clone)]
pub struct Preprocess {
    /// The model's frame `[C, H, W]`.
    pub frame: [usize; 3],
    /// Timesteps for images and recordings.
    pub timesteps: usize,
    /// Encoder of static images.
    pub encoder: Encoder,
    /// Per-channel mean and std for images, when the run normalises.
    pub normalization: Option<(Vec<f32>, Vec<f32>)>,
    /// Event integration.
    pub split_by: SplitBy,
    /// Event resize.
    pub resize: Resize,
    /// The run's event format, if its source is an event set (decides `.bin` and `.aedat`).
    pub event_format: Option<EventFormat>,
}

impl Preprocess {
    /// The preprocessing of a run with data `data`, encoder `encoder`, model frame `frame`.
    pub fn new(
        data: &DataConfig,
        encoder: Encoder,
        frame: [usize; 3],
        timesteps: usize,
    ) -> Result<Self, String> {
        let integration = Integration::from_config(data, timesteps).map_err(|e| e.to_string())?;
        let source = Source::parse(&data.source).ok();
        let normalization = match (&source, data.normalize) {
            (Some(s), true) => normalization(s),
            _ => None,
        };
        let event_format = source.as_ref().and_then(|s| match s.name() {
            "nmnist" => Some(EventFormat::Nmnist),
            "ncaltech101" => Some(EventFormat::NCaltech101),
            "cifar10dvs" => Some(EventFormat::Cifar10Dvs),
            "dvsgesture" => Some(EventFormat::DvsGesture),
            _ => None,
        });
        Ok(Self {
            frame,
            timesteps,
            encoder,
            normalization,
            split_by: integration.split_by,
            resize: integration.resize,
            event_format,
        })
    }

    /// Frames `[T, 1, C, H, W]` for one file, and what kind of input it was.
    pub fn load(&self, path: &Path, device: &Device) -> Result<(Tensor<5>, &'static str), String> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .unwrap_or_default();
        let [c, h, w] = self.frame;
        match ext.as_str() {
            "png" | "jpg" | "jpeg" => Ok((self.image(path, device)?, "image")),
            "npy" => {
                let bytes = read_file(path).map_err(|e| e.to_string())?;
                let name = path.display().to_string();
                match npy::parse_npy_array(&bytes, &name) {
                    Ok((shape, v)) if shape.len() == 4 => {
                        if shape[1..] != self.frame {
                            return Err(format!(
                                "{name}: frames {:?} do not fit the model's [C, H, W] = {:?}",
                                &shape[1..],
                                self.frame
                            ));
                        }
                        if shape[0] == 0 {
                            return Err(format!("{name}: no frames (T = 0)"));
                        }
                        let v: Vec<f32> = v.into_iter().map(|x| x as f32).collect();
                        let t =
                            Tensor::from_data(TensorData::new(v, [shape[0], 1, c, h, w]), device);
                        Ok((t, "frames"))
                    }
                    Ok((shape, _)) if !(shape.len() == 2 && shape[1] == 4) => Err(format!(
                        "{name}: a .npy input is a frame tensor [T, C, H, W] or an event array; found shape {shape:?}"
                    )),
                    // (N, 4) plain or structured: an event array.
                    _ => {
                        let ev = npy::parse_npy_events(&bytes, &name).map_err(|e| e.to_string())?;
                        Ok((self.events(path, &ev, device)?, "events"))
                    }
                }
            }
            "bin" | "bs2" | "aedat" | "aedat4" | "dat" => {
                let ev = self.read_events(path, &ext)?;
                Ok((self.events(path, &ev, device)?, "events"))
            }
            _ => Err(format!(
                "{}: unknown input type (extensions: {})",
                path.display(),
                EXTENSIONS.join(", ")
            )),
        }
    }

    fn image(&self, path: &Path, device: &Device) -> Result<Tensor<5>, String> {
        let [c, h, w] = self.frame;
        if h != w {
            return Err(format!(
                "{}: the model's frames are {h}×{w}; images are cropped square",
                path.display()
            ));
        }
        let rgb = decode_image(path, h).map_err(|e| e.to_string())?;
        let plane = h * w;
        let mut v = match c {
            3 => rgb,
            1 => (0..plane)
                .map(|i| (rgb[i] + rgb[plane + i] + rgb[2 * plane + i]) / 3.0)
                .collect(),
            _ => {
                return Err(format!(
                    "{}: the model takes {c} channels; images give 3 (or 1, averaged)",
                    path.display()
                ));
            }
        };
        if let Some((mean, std)) = &self.normalization
            && mean.len() == c
        {
            for (i, x) in v.iter_mut().enumerate() {
                let ch = i / plane;
                *x = (*x - mean[ch]) / std[ch];
            }
        }
        let x = Tensor::<4>::from_data(TensorData::new(v, [1, c, h, w]), device);
        Ok(self.encoder.encode::<4, 5>(x, self.timesteps))
    }

    fn read_events(&self, path: &Path, ext: &str) -> Result<tks_data::events::Events, String> {
        let s = |e: tks_data::error::DataError| e.to_string();
        let name = path.display().to_string();
        match ext {
            "bin" | "bs2" => match self.event_format {
                Some(f @ EventFormat::NCaltech101) => f.read(path).map_err(s),
                _ => nmnist::nmnist_from_path(path).map_err(s),
            },
            "aedat" => {
                let bytes = read_file(path).map_err(s)?;
                if bytes.starts_with(b"#!AER-DAT3") {
                    let (w, h) = EventFormat::DvsGesture.sensor();
                    Ok(aedat3::parse_aedat3(&bytes, &name, w, h).map_err(s)?.events)
                } else {
                    let layout = aedat2::Layout::Cifar10Dvs;
                    Ok(aedat2::parse_aedat2(&bytes, &name)
                        .map_err(s)?
                        .events(layout))
                }
            }
            "aedat4" => Ok(aedat4::aedat4_from_path(path).map_err(s)?.events),
            _ => Ok(prophesee_dat::dat_from_path(path).map_err(s)?.events),
        }
    }

    fn events(
        &self,
        path: &Path,
        ev: &tks_data::events::Events,
        device: &Device,
    ) -> Result<Tensor<5>, String> {
        let t = self.timesteps;
        let frames = to_frames(ev, self.split_by, t, self.resize);
        let (fh, fw) = match self.resize {
            Resize::None => (ev.height as usize, ev.width as usize),
            Resize::Area { height, width } | Resize::Nearest { height, width } => (height, width),
        };
        if [2, fh, fw] != self.frame {
            return Err(format!(
                "{}: events integrate to frames [2, {fh}, {fw}], the model takes {:?} (set [data] resize in the run)",
                path.display(),
                self.frame
            ));
        }
        Ok(Tensor::from_data(
            TensorData::new(frames, [t, 1, 2, fh, fw]),
            device,
        ))
    }
}

/// The files behind `inputs`: files as given, folders expanded (recursively, sorted) to the
/// files with one of [`EXTENSIONS`]. A missing path is kept, so it gets its own error.
pub fn expand(inputs: &[PathBuf]) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            out.push(dir.to_path_buf());
            return;
        };
        let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(&p, out);
            } else if p
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
            {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    for p in inputs {
        if p.is_dir() {
            walk(p, &mut out);
        } else {
            out.push(p.clone());
        }
    }
    out
}

/// One class and its probability.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Ranked {
    /// Class index.
    pub class: usize,
    /// Softmax probability of the (running-mean) logits.
    pub probability: f64,
}

/// What `tks predict` prints for one input (one JSON line).
#[derive(Debug, Clone, Serialize)]
pub struct Prediction {
    /// The file.
    pub input: String,
    /// `image`, `events` or `frames`.
    pub kind: &'static str,
    /// Predicted class: argmax of the mean logits over the timesteps used.
    pub class: usize,
    /// Its softmax probability.
    pub probability: f64,
    /// The five most probable classes.
    pub top5: Vec<Ranked>,
    /// Timesteps the network ran.
    pub timesteps: usize,
    /// With an anytime threshold: the timestep (1-based) at which the running mean first
    /// reached it (or T).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_timestep: Option<usize>,
    /// Per-timestep logits `[T][classes]`, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logits: Option<Vec<Vec<f32>>>,
}

/// A model in inference mode.
pub struct Predictor {
    model: Model,
}

impl Predictor {
    /// Wraps `model` (switched to inference mode).
    pub fn new(model: &Model) -> Self {
        Self {
            model: model.valid(),
        }
    }

    /// Per-timestep logits `[T, classes]` (flat) of frames `[T, 1, C, H, W]`.
    pub fn logits(&self, frames: Tensor<5>) -> (Vec<f32>, usize) {
        let out = self.model.forward(frames);
        let [_, _, classes] = out.dims();
        (values(out), classes)
    }

    /// The prediction for `frames`, with an optional anytime threshold.
    pub fn predict(
        &self,
        input: &Path,
        kind: &'static str,
        frames: Tensor<5>,
        anytime: Option<f64>,
        with_logits: bool,
    ) -> Prediction {
        let (logits, classes) = self.logits(frames);
        summarize(input, kind, &logits, classes, anytime, with_logits)
    }
}

/// A [`Prediction`] from flat logits `[T, classes]`.
pub fn summarize(
    input: &Path,
    kind: &'static str,
    logits: &[f32],
    classes: usize,
    anytime: Option<f64>,
    with_logits: bool,
) -> Prediction {
    let steps = logits.len() / classes.max(1);
    let used = match anytime {
        Some(th) => exit_of(logits, classes, th).0,
        None => steps,
    };
    let mut mean = vec![0f32; classes];
    for row in logits.chunks_exact(classes).take(used) {
        mean.iter_mut().zip(row).for_each(|(m, v)| *m += v);
    }
    mean.iter_mut().for_each(|m| *m /= used.max(1) as f32);
    let p = softmax(&mean);
    let class = argmax(&mean);
    let mut ranked: Vec<Ranked> = p
        .iter()
        .enumerate()
        .map(|(class, &q)| Ranked {
            class,
            probability: q as f64,
        })
        .collect();
    ranked.sort_by(|a, b| {
        b.probability
            .total_cmp(&a.probability)
            .then(a.class.cmp(&b.class))
    });
    ranked.truncate(5);
    Prediction {
        input: input.display().to_string(),
        kind,
        class,
        probability: p[class] as f64,
        top5: ranked,
        timesteps: steps,
        exit_timestep: anytime.map(|_| used),
        logits: with_logits.then(|| logits.chunks_exact(classes).map(<[f32]>::to_vec).collect()),
    }
}

/// Latency percentiles (nearest rank) of per-sample times in seconds: `(p50, p99)`.
pub fn percentiles(times: &[f64]) -> (f64, f64) {
    if times.is_empty() {
        return (0.0, 0.0);
    }
    let mut t = times.to_vec();
    t.sort_by(f64::total_cmp);
    let rank = |q: f64| t[((q * t.len() as f64).ceil() as usize).clamp(1, t.len()) - 1];
    (rank(0.5), rank(0.99))
}
