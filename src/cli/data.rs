//! `tks data`: what a recording or a dataset folder holds (`inspect`), and the frames training
//! makes of a recording (`frames`: `.npy` counts and a PNG strip).

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::data::events::{Events, Resize, SplitBy, to_frames};
use crate::data::formats::nmnist::parse_label_list;
use crate::data::formats::recording::{Recording, RecordingKind, recording_from_path};
use crate::data::formats::{npy, read_file};
use crate::data::source::{self, DataConfig, EventFormat, Source};

/// `tks data …`.
#[derive(Args, Debug)]
pub struct DataArgs {
    #[command(subcommand)]
    command: DataCommand,
}

#[derive(Subcommand, Debug)]
enum DataCommand {
    /// What recordings or a dataset folder hold: for a recording its format, sensor, events,
    /// polarity counts, time range and label when known; for a folder (`DIR` or `NAME:DIR`)
    /// its source, frame shape, classes and per-class counts of each split.
    Inspect(InspectArgs),
    /// The frames training makes of one recording, as int32 counts before normalisation
    /// (`.npy`, shape `[T, 2, H, W]`; float32 when an area resize makes fractions), and
    /// optionally a PNG strip of the T frames (ON red, OFF blue).
    Frames(FramesArgs),
}

#[derive(Args, Debug)]
struct InspectArgs {
    /// Recording files, or dataset folders (`DIR`, or `NAME:DIR` to name the source).
    #[arg(required = true)]
    paths: Vec<String>,
}

#[derive(Args, Debug)]
struct FramesArgs {
    /// The recording.
    path: PathBuf,
    /// Number of frames T.
    #[arg(short = 'T', long = "timesteps", value_parser = super::positive)]
    timesteps: usize,
    /// How events are cut into frames: `number` (equal counts) or `time` (equal windows).
    #[arg(long, default_value = "number")]
    split_by: String,
    /// Resize frames to H × H (`[data] resize`).
    #[arg(long)]
    resize: Option<usize>,
    /// Resize method: `area` or `nearest` (`[data] resize_mode`).
    #[arg(long, default_value = "area")]
    resize_mode: String,
    /// Read the recording as this source does (nmnist, ncaltech101, cifar10dvs, dvsgesture,
    /// ncars, stmnist, events); by default chosen from the format (see `tks data inspect`).
    #[arg(long)]
    source: Option<String>,
    /// The `.npy` file to write.
    #[arg(long)]
    out: PathBuf,
    /// Also write the frames side by side as a PNG.
    #[arg(long)]
    png: Option<PathBuf>,
}

/// Runs `tks data`.
pub fn run(args: DataArgs) -> anyhow::Result<()> {
    match args.command {
        DataCommand::Inspect(a) => {
            for p in &a.paths {
                print!("{}", inspect(p)?);
            }
            Ok(())
        }
        DataCommand::Frames(a) => frames_cmd(&a),
    }
}

/// The report of `tks data inspect` for one path (a recording, or a dataset folder).
pub fn inspect(spec: &str) -> anyhow::Result<String> {
    let (named, path) = match spec.split_once(':') {
        Some((n, p)) if source::registry::find(n.trim()).is_some() => (Some(n.trim()), p),
        _ => (None, spec),
    };
    let path = Path::new(path);
    if path.is_dir() {
        return inspect_folder(named, path);
    }
    let r = recording_from_path(path)?;
    let (as_source, format) = read_as(named, &r)?;
    let e = &r.events;
    let (off, on) = e.polarity_counts();
    let (t0, t1) = (
        e.t.iter().min().copied().unwrap_or(0),
        e.t.iter().max().copied().unwrap_or(0),
    );
    let (w, h) = format.sensor();
    let sensor_note = if r.sensor_from_header {
        "from the header"
    } else {
        match r.kind {
            RecordingKind::Aedat2 => "the DVS128 address layout",
            RecordingKind::StMnistMat => "ST-MNIST's taxel grid",
            _ => "largest coordinate + 1; no size in the file",
        }
    };
    let mut out = format!("{}\n", path.display());
    let mut line = |k: &str, v: String| out.push_str(&format!("  {k:<13}{v}\n"));
    line("format:", r.kind.name().to_string());
    line(
        "sensor:",
        format!("{}×{} (W×H; {sensor_note})", e.width, e.height),
    );
    line(
        "read as:",
        format!("`{as_source}` ({w}×{h} frames; `tks data frames --source` to change)"),
    );
    if e.is_empty() {
        line(
            "events:",
            "0 — an empty recording (training refuses it)".into(),
        );
    } else {
        line(
            "events:",
            format!(
                "{} (OFF {}, ON {})",
                group(e.len() as u64),
                group(off as u64),
                group(on as u64)
            ),
        );
        line(
            "time range:",
            format!(
                "{} … {} µs (duration {} µs)",
                group(t0),
                group(t1),
                group(t1 - t0)
            ),
        );
        let (x, y) = (e.x.iter().max(), e.y.iter().max());
        line(
            "coordinates:",
            format!(
                "x 0..={}, y 0..={}",
                x.copied().unwrap_or(0),
                y.copied().unwrap_or(0)
            ),
        );
    }
    line("label:", label_of(path));
    Ok(out)
}

/// `1234567` as `1,234,567`.
fn group(v: u64) -> String {
    let s = v.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The source a recording is read as (`named`, else chosen from its format and extent), and
/// that source's reader.
fn read_as(named: Option<&str>, r: &Recording) -> anyhow::Result<(&'static str, EventFormat)> {
    let e = &r.events;
    let fits = |w: u16, h: u16| e.width <= w && e.height <= h;
    let name = match named {
        Some(n) => source::registry::find(n)
            .map(|s| s.name)
            .with_context(|| format!("unknown source `{n}`"))?,
        None => match r.kind {
            RecordingKind::Bin40 if fits(34, 34) => "nmnist",
            RecordingKind::Bin40 => "ncaltech101",
            RecordingKind::Aedat2 => "cifar10dvs",
            RecordingKind::Aedat3 if fits(128, 128) => "dvsgesture",
            RecordingKind::PropheseeDat if fits(120, 100) => "ncars",
            RecordingKind::StMnistMat => "stmnist",
            _ => "events",
        },
    };
    let format = match name {
        "nmnist" => EventFormat::Nmnist,
        "ncaltech101" => EventFormat::NCaltech101,
        "cifar10dvs" => EventFormat::Cifar10Dvs,
        "dvsgesture" => EventFormat::DvsGesture,
        "ncars" => EventFormat::NCars,
        "stmnist" => EventFormat::StMnist,
        "events" => EventFormat::Any {
            width: e.width,
            height: e.height,
            classes: 0,
        },
        other => anyhow::bail!(
            "`{other}` is not an event source; expected nmnist, ncaltech101, cifar10dvs, \
             dvsgesture, ncars, stmnist or events"
        ),
    };
    Ok((name, format))
}

/// The label of a recording when a list next to it gives one (SLAYER's NMNISTsmall lists),
/// else what its folder says.
fn label_of(path: &Path) -> String {
    let dir = path.parent().unwrap_or(Path::new("."));
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    for list in ["train1K.txt", "test100.txt"] {
        let p = dir.join(list);
        let Ok(bytes) = read_file(&p) else { continue };
        let text = String::from_utf8_lossy(&bytes);
        if let Ok(entries) = parse_label_list(&text, &p.display().to_string())
            && let Some((_, l)) = entries.iter().find(|(id, _)| id.to_string() == stem)
        {
            return format!("{l} (from {list})");
        }
    }
    match dir.file_name().and_then(|n| n.to_str()) {
        Some(folder) => format!(
            "not in the file; its folder is `{folder}` (the class in a class-folder layout)"
        ),
        None => "not in the file".into(),
    }
}

/// The source a dataset folder most likely is, from its layout.
fn guess_source(dir: &Path) -> &'static str {
    let has = |n: &str| dir.join(n).exists();
    let any_file = |suffix: &str| {
        std::fs::read_dir(dir).is_ok_and(|rd| {
            rd.flatten()
                .any(|e| e.file_name().to_string_lossy().ends_with(suffix))
        })
    };
    if has("train1K.txt") || has("test100.txt") || has("Train") && has("Test") {
        "nmnist"
    } else if any_file("_labels.csv") {
        "dvsgesture"
    } else if has("train/cars") || has("n-cars_train") {
        "ncars"
    } else if has("data_submission") {
        "stmnist"
    } else {
        "events"
    }
}

/// `tks data inspect` of a dataset folder: loads it as `tks train --data` would (every
/// recording read, frames integrated into one 1 × 1 frame to keep memory small, no cache).
fn inspect_folder(named: Option<&str>, dir: &Path) -> anyhow::Result<String> {
    let name = named.unwrap_or_else(|| guess_source(dir));
    let spec = format!("{name}:{}", dir.display());
    let entry = Source::parse(&spec)?.entry();
    let mut c = DataConfig {
        source: spec.clone(),
        cache: false,
        stream: Some(false),
        // the source's own split; training then holds out its validation share (below)
        val_ratio: 0.0,
        ..DataConfig::default()
    };
    let val_ratio = DataConfig::default().val_ratio;
    let frames = match c.frame_shape() {
        Some(s) => format!("{s:?} per timestep"),
        None if name == "events" => {
            let (w, h) = source::folder_sensor(dir)?;
            format!("[2, {h}, {w}] per timestep (the largest sensor of the recordings)")
        }
        None => "unknown before loading".into(),
    };
    if entry.events {
        c.resize = 1;
    }
    let split = source::load(&c, 1)?;
    let mut out = format!("{spec}\n");
    let mut line = |k: &str, v: String| out.push_str(&format!("  {k:<10}{v}\n"));
    line(
        "source:",
        format!(
            "{name}{}: {}",
            if named.is_none() {
                " (guessed from the layout; name it as NAME:DIR)"
            } else {
                ""
            },
            entry.description
        ),
    );
    line("frames:", frames);
    line("classes:", split.train.num_classes.to_string());
    for (w, d) in [("train:", &split.train), ("test:", &split.test)] {
        let mut counts = vec![0usize; d.num_classes];
        for &l in &d.labels {
            if let Some(c) = counts.get_mut(l as usize) {
                *c += 1;
            }
        }
        let per: Vec<String> = counts
            .iter()
            .enumerate()
            .map(|(k, n)| format!("{k}: {n}"))
            .collect();
        line(
            w,
            format!("{} samples (per class {})", d.len(), per.join(", ")),
        );
    }
    line(
        "split:",
        format!(
            "the source's own (official lists or train/test folders where it has them, else \
             seeded per class: [data] split_ratio = {}, split_seed = {})",
            c.split_ratio, c.split_seed
        ),
    );
    let (keep, held) =
        crate::data::holdout::stratified_holdout(&split.train.labels, val_ratio, c.split_seed);
    line(
        "validation:",
        format!(
            "training runs hold out {} of the train samples (class-stratified, [data] val_ratio = {val_ratio}) → {} train / {} validation",
            held.len(),
            keep.len(),
            held.len()
        ),
    );
    Ok(out)
}

/// Frames of one recording as training makes them.
#[derive(Debug, Clone)]
pub struct RecordingFrames {
    /// `[T, 2, H, W]` values, row-major.
    pub values: Vec<f32>,
    /// `[T, 2, H, W]`.
    pub shape: [usize; 4],
    /// The source whose reader was used.
    pub source: &'static str,
    /// Events in the recording.
    pub events: usize,
}

/// The frames the source `source` (else the one chosen from the format) makes of the
/// recording at `path`: its reader, [`to_frames`] with `split_by`, `timesteps` and `resize`.
pub fn recording_frames(
    path: &Path,
    source: Option<&str>,
    timesteps: usize,
    split_by: SplitBy,
    resize: Resize,
) -> anyhow::Result<RecordingFrames> {
    let r = recording_from_path(path)?;
    let (name, format) = read_as(source, &r)?;
    let events: Events = match format {
        EventFormat::Any { .. } => r.events,
        f => f.read(path)?,
    };
    let [_, h, w] = format.frame_shape(resize);
    let values = to_frames(&events, split_by, timesteps, resize);
    Ok(RecordingFrames {
        values,
        shape: [timesteps.max(1), 2, h, w],
        source: name,
        events: events.len(),
    })
}

fn frames_cmd(a: &FramesArgs) -> anyhow::Result<()> {
    let split_by: SplitBy = a.split_by.parse().map_err(anyhow::Error::msg)?;
    let resize = match (a.resize, a.resize_mode.as_str()) {
        (None | Some(0), _) => Resize::None,
        (Some(s), "area") => Resize::Area {
            height: s,
            width: s,
        },
        (Some(s), "nearest") => Resize::Nearest {
            height: s,
            width: s,
        },
        (_, m) => anyhow::bail!("--resize-mode `{m}`: expected `area` or `nearest`"),
    };
    let f = recording_frames(&a.path, a.source.as_deref(), a.timesteps, split_by, resize)?;
    let integral = f.values.iter().all(|v| v.fract() == 0.0);
    let bytes = npy_bytes(&f.values, f.shape, integral);
    std::fs::write(&a.out, bytes).with_context(|| format!("cannot write {}", a.out.display()))?;
    let [t, c, h, w] = f.shape;
    println!(
        "{}: {} events read as `{}` → frames [{t}, {c}, {h}, {w}] ({}) → {}",
        a.path.display(),
        f.events,
        f.source,
        if integral {
            "int32 event counts"
        } else {
            "float32: the area resize averages counts"
        },
        a.out.display()
    );
    if f.events == 0 {
        eprintln!(
            "warning: {} holds no events: every frame is zero (training refuses this recording)",
            a.path.display()
        );
    }
    if let Some(png) = &a.png {
        strip_png(&f.values, f.shape)
            .save(png)
            .with_context(|| format!("cannot write {}", png.display()))?;
        println!("PNG strip of the {t} frames → {}", png.display());
    }
    Ok(())
}

/// A standard `.npy` (version 1.0, C order) of `values` with `shape`: int32 when `integral`,
/// else float32.
pub fn npy_bytes(values: &[f32], shape: [usize; 4], integral: bool) -> Vec<u8> {
    let [t, c, h, w] = shape;
    let descr = if integral { "<i4" } else { "<f4" };
    let dict =
        format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': ({t}, {c}, {h}, {w}), }}");
    let data: Vec<u8> = if integral {
        values
            .iter()
            .flat_map(|&v| (v as i32).to_le_bytes())
            .collect()
    } else {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    };
    npy::write_npy(&dict, &data)
}

/// The T frames side by side on black, ON counts in red and OFF in blue (full colour at the
/// 99th percentile of the non-zero counts), upscaled so the strip is at least ~96 pixels high, 2-pixel grey gaps.
pub fn strip_png(values: &[f32], shape: [usize; 4]) -> image::RgbImage {
    let [t, _, h, w] = shape;
    let scale = (96 / h.max(w).max(1)).max(1) as u32;
    let gap = 2u32;
    let (fw, fh) = (w as u32 * scale, h as u32 * scale);
    let width = (t as u32 * (fw + gap)).saturating_sub(gap).max(1);
    let mut img = image::RgbImage::from_pixel(width, fh.max(1), image::Rgb([96, 96, 96]));
    // a few hot pixels should not darken everything: saturate at the 99th percentile of the
    // non-zero counts
    let mut nonzero: Vec<f32> = values.iter().copied().filter(|&v| v > 0.0).collect();
    nonzero.sort_by(f32::total_cmp);
    let max = nonzero
        .get(nonzero.len().saturating_sub(1) * 99 / 100)
        .copied()
        .unwrap_or(1.0)
        .max(1e-9);
    let plane = h * w;
    for f in 0..t {
        for y in 0..h {
            for x in 0..w {
                let off = (values[(f * 2) * plane + y * w + x] / max).min(1.0);
                let on = (values[(f * 2 + 1) * plane + y * w + x] / max).min(1.0);
                let px = image::Rgb([(on * 255.0) as u8, 0, (off * 255.0) as u8]);
                for dy in 0..scale {
                    for dx in 0..scale {
                        let (ix, iy) = (
                            f as u32 * (fw + gap) + x as u32 * scale + dx,
                            y as u32 * scale + dy,
                        );
                        img.put_pixel(ix, iy, px);
                    }
                }
            }
        }
    }
    img
}
