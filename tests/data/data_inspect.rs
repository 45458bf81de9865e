//! `tks data inspect` and `tks data frames` on every recording under `../shared/data/events` and
//! `../shared/data/nmnist` (skipped with `SKIP:` when absent): each is described, its frames
//! count every event exactly once, and the `.npy` / PNG the binary writes have the documented
//! layout.

use std::path::{Path, PathBuf};

use crate::common::{run_tks, scratch, shared_data};
use tks::cli::data::{inspect, recording_frames};
use tks::data::events::{Resize, SplitBy};
use tks::data::formats::recording::sniff;

/// Every file under `dir` (recursively) that names a recording format.
fn recordings(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else {
                let head: Vec<u8> = std::fs::read(&p).unwrap().into_iter().take(32).collect();
                if sniff(&head, &p).is_some() {
                    out.push(p);
                }
            }
        }
    }
    out.sort();
    out
}

#[test]
fn inspect_and_frames_work_on_every_shared_sample() {
    let mut files = Vec::new();
    for rel in ["events", "nmnist"] {
        if let Some(d) = shared_data(rel) {
            files.extend(recordings(&d));
        }
    }
    if files.is_empty() {
        return;
    }
    let mut nonempty = 0;
    for f in &files {
        let report =
            inspect(f.to_str().unwrap()).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        assert!(
            report.contains("format:") && report.contains("sensor:") && report.contains("events:"),
            "{report}"
        );
        for split_by in [SplitBy::Number, SplitBy::Time] {
            let fr = recording_frames(f, None, 4, split_by, Resize::None)
                .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            let [t, c, h, w] = fr.shape;
            assert_eq!((t, c), (4, 2));
            assert_eq!(fr.values.len(), t * c * h * w);
            let total: f64 = fr.values.iter().map(|&v| v as f64).sum();
            assert_eq!(
                total,
                fr.events as f64,
                "{}: every event counted once",
                f.display()
            );
        }
        let fr = recording_frames(
            f,
            None,
            3,
            SplitBy::Number,
            Resize::Area {
                height: 16,
                width: 16,
            },
        )
        .unwrap();
        assert_eq!(fr.shape, [3, 2, 16, 16]);
        nonempty += usize::from(fr.events > 0);
    }
    eprintln!("{} recordings, {nonempty} with events", files.len());
    // the known samples: N-MNIST ids with their list labels, the tonic samples by format
    let by_name = |n: &str| files.iter().find(|p| p.ends_with(n));
    if let Some(p) = by_name("NMNISTsmall/60001.bs2") {
        let r = inspect(p.to_str().unwrap()).unwrap();
        assert!(
            r.contains("7 (from test100.txt)") && r.contains("`nmnist`"),
            "{r}"
        );
    }
    if let Some(p) = by_name("tonic/sample.aedat4") {
        let r = inspect(p.to_str().unwrap()).unwrap();
        assert!(
            r.contains("AEDAT 4.0") && r.contains("320×240") && r.contains("111,954"),
            "{r}"
        );
    }
    if let Some(p) = by_name("tonic/sample_aedat_header.aedat") {
        let r = inspect(p.to_str().unwrap()).unwrap();
        assert!(r.contains("empty recording"), "{r}");
    }
    if let Some(p) = by_name("tonic/sample_ncars.dat") {
        let r = inspect(p.to_str().unwrap()).unwrap();
        assert!(
            r.contains("Prophesee DAT") && r.contains("2,009") && r.contains("`ncars`"),
            "{r}"
        );
    }
}

/// The shape, dtype and values of a C-order `.npy` written by `tks data frames`.
fn read_npy(bytes: &[u8]) -> (String, Vec<u8>) {
    assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
    let hlen = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    assert_eq!((10 + hlen) % 64, 0, "header padded to 64 bytes");
    let header = String::from_utf8(bytes[10..10 + hlen].to_vec()).unwrap();
    (header, bytes[10 + hlen..].to_vec())
}

#[test]
fn frames_command_writes_npy_and_png() {
    let Some(f) = shared_data("nmnist/NMNISTsmall/1.bs2") else {
        return;
    };
    let work = scratch("data-frames");
    let (npy, png) = (work.join("f.npy"), work.join("f.png"));
    let (ok, out, err) = run_tks(&[
        "data",
        "frames",
        f.to_str().unwrap(),
        "-T",
        "4",
        "--out",
        npy.to_str().unwrap(),
        "--png",
        png.to_str().unwrap(),
    ]);
    assert!(ok, "{out}{err}");
    let (header, data) = read_npy(&std::fs::read(&npy).unwrap());
    assert!(
        header.contains("'descr': '<i4'") && header.contains("'shape': (4, 2, 34, 34)"),
        "{header}"
    );
    assert_eq!(data.len(), 4 * 2 * 34 * 34 * 4);
    let counts: Vec<i32> = data
        .chunks_exact(4)
        .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let events = tks::data::formats::nmnist::nmnist_from_path(&f)
        .unwrap()
        .len();
    assert_eq!(counts.iter().map(|&c| c as usize).sum::<usize>(), events);
    assert!(out.contains(&format!("{events} events")), "{out}");
    // the strip: 4 frames of 34 × 34 upscaled ×2, 2-pixel gaps
    let img = image::open(&png).unwrap();
    assert_eq!((img.width(), img.height()), (4 * 68 + 3 * 2, 68));
    // an area resize makes float32 averages, said in the output
    let (ok, out, err) = run_tks(&[
        "data",
        "frames",
        f.to_str().unwrap(),
        "-T",
        "2",
        "--resize",
        "16",
        "--split-by",
        "time",
        "--out",
        npy.to_str().unwrap(),
    ]);
    assert!(ok && out.contains("float32"), "{out}{err}");
    let (header, data) = read_npy(&std::fs::read(&npy).unwrap());
    assert!(
        header.contains("'<f4'") && header.contains("(2, 2, 16, 16)"),
        "{header}"
    );
    assert_eq!(data.len(), 2 * 2 * 16 * 16 * 4);
    // bad arguments and files are named
    let (ok, _, err) = run_tks(&[
        "data",
        "frames",
        "/no/such.bin",
        "-T",
        "2",
        "--out",
        "x.npy",
    ]);
    assert!(!ok && err.contains("/no/such.bin"), "{err}");
    let junk = work.join("junk.dat");
    std::fs::write(&junk, b"% header\n\x00\x07").unwrap();
    let (ok, _, err) = run_tks(&["data", "inspect", junk.to_str().unwrap()]);
    assert!(
        !ok && err.contains("junk.dat") && err.contains("event size 7"),
        "{err}"
    );
}

#[test]
fn inspect_describes_a_dataset_folder() {
    let Some(dir) = shared_data("nmnist/NMNISTsmall") else {
        return;
    };
    let (ok, out, err) = run_tks(&["data", "inspect", dir.to_str().unwrap()]);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("nmnist (guessed")
            && out.contains("[2, 34, 34]")
            && out.contains("1000 samples (per class 0: 97, 1: 116")
            && out.contains("100 samples (per class 0: 8, 1: 14")
            && out.contains("→ 899 train / 101 validation"),
        "{out}"
    );
}
