//! The event sources that reach every parsed format — `ncars:` (Prophesee DAT), `stmnist:`
//! (ST-MNIST MAT-files) and the generic `events:` (any format, sniffed per file) — on recordings
//! built from the published layouts, with the real samples of `../shared/data/events` mixed in
//! where present; and empty recordings, which are errors naming the file.

use std::path::{Path, PathBuf};

use crate::common::mat5;
use crate::common::{scratch, shared_data};
use tks::data::Split;
use tks::data::formats::aedat3::write_aedat3;
use tks::data::formats::npy::write_npy;
use tks::data::formats::recording::recording_from_path;
use tks::data::source::{DataConfig, load};

fn config(source: String) -> DataConfig {
    DataConfig {
        source,
        cache: false,
        val_ratio: 0.0, // the loader's own split
        ..DataConfig::default()
    }
}

fn write(path: &Path, bytes: &[u8]) -> PathBuf {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
    path.to_path_buf()
}

/// A Prophesee DAT file (`% ` header lines, type 0, size 8, then u32 t + u32 x|y<<14|p<<28).
pub fn dat(size: Option<(u16, u16)>, events: &[(u16, u16, u8, u32)]) -> Vec<u8> {
    let mut b = b"% Data file containing N9Chronocam7Event2dE events.\n% Version 2\n".to_vec();
    if let Some((w, h)) = size {
        b.extend_from_slice(format!("% Width {w}\n% Height {h}\n").as_bytes());
    }
    b.extend_from_slice(&[0, 8]);
    for &(x, y, p, t) in events {
        b.extend_from_slice(&t.to_le_bytes());
        let v = x as u32 | (y as u32) << 14 | (p as u32) << 28;
        b.extend_from_slice(&v.to_le_bytes());
    }
    b
}

/// 40-bit N-MNIST records.
pub fn bin40(events: &[(u8, u8, u8, u32)]) -> Vec<u8> {
    events
        .iter()
        .flat_map(|&(x, y, p, t)| {
            [
                x,
                y,
                (p << 7) | (t >> 16) as u8 & 0x7f,
                (t >> 8) as u8,
                t as u8,
            ]
        })
        .collect()
}

/// An ST-MNIST MAT-file: `spiketrain`, 101 × n doubles, column j with taxel `taxels[j]` set to
/// ±1 and its time in seconds in row 100.
pub fn stmnist_mat(taxels: &[(usize, f64)], compress: bool) -> Vec<u8> {
    let mut v = vec![0.0; 101 * taxels.len()];
    for (j, &(a, sign)) in taxels.iter().enumerate() {
        v[j * 101 + a] = sign;
        v[j * 101 + 100] = 0.01 * (j + 1) as f64;
    }
    mat5::file(
        &[mat5::double("spiketrain", &[101, taxels.len() as u32], &v)],
        compress,
    )
}

/// The number of events each sample's frames count (no resize: every event is one count).
fn sums(s: &tks::data::Dataset) -> Vec<f32> {
    let per = s.sample_len();
    s.values.chunks(per).map(|c| c.iter().sum()).collect()
}

fn loaded(spec: String) -> Split {
    load(&config(spec), 4).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn ncars_reads_train_and_test_class_folders() {
    let dir = scratch("ncars");
    let ev = |n: u32| -> Vec<_> {
        (0..n)
            .map(|i| {
                (
                    (i * 7 % 120) as u16,
                    (i * 3 % 100) as u16,
                    (i % 2) as u8,
                    i * 10,
                )
            })
            .collect()
    };
    for (split, class, k, n) in [
        ("train", "background", 0, 30),
        ("train", "background", 1, 31),
        ("train", "cars", 0, 40),
        ("train", "cars", 1, 41),
        ("train", "cars", 2, 42),
        ("test", "background", 0, 50),
        ("test", "cars", 0, 60),
    ] {
        write(
            &dir.join(split)
                .join(class)
                .join(format!("obj_{k:04}_td.dat")),
            &dat(None, &ev(n)),
        );
    }
    // the real N-CARS sample, where present, as one more test car
    let real = shared_data("events/tonic/sample_ncars.dat");
    if let Some(p) = &real {
        std::fs::copy(p, dir.join("test/cars/obj_9999_td.dat")).unwrap();
    }
    let s = loaded(format!("ncars:{}", dir.display()));
    assert_eq!(s.train.frame_shape, [2, 100, 120]);
    assert_eq!(s.train.num_classes, 2);
    assert_eq!(s.train.labels, [0, 0, 1, 1, 1]);
    assert_eq!(sums(&s.train), [30.0, 31.0, 40.0, 41.0, 42.0]);
    let mut want = vec![50.0, 60.0];
    if real.is_some() {
        want.push(2009.0); // the sample's events, all within 120 × 100
    }
    assert_eq!(sums(&s.test), want);
    // a missing class folder and a broken recording are named
    std::fs::remove_dir_all(dir.join("test/background")).unwrap();
    let e = load(&config(format!("ncars:{}", dir.display())), 4)
        .unwrap_err()
        .to_string();
    assert!(e.contains("background"), "{e}");
    std::fs::create_dir_all(dir.join("test/background")).unwrap();
    write(
        &dir.join("test/background/bad_td.dat"),
        b"% header\n\x05\x08",
    );
    let e = load(&config(format!("ncars:{}", dir.display())), 4)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("bad_td.dat") && e.contains("event type 5"),
        "{e}"
    );
}

#[test]
fn stmnist_reads_digit_folders_and_splits_by_seed() {
    let dir = scratch("stmnist");
    for d in 0..3usize {
        for k in 0..10usize {
            let taxels: Vec<(usize, f64)> = (0..=(d * 10 + k))
                .map(|j| ((j * 13 + d) % 100, if j % 3 == 0 { -1.0 } else { 1.0 }))
                .collect();
            write(
                &dir.join(format!("data_submission/{d}/sample_{k}.mat")),
                &stmnist_mat(&taxels, k % 2 == 0),
            );
        }
    }
    let s = loaded(format!("stmnist:{}", dir.display()));
    assert_eq!(s.train.frame_shape, [2, 10, 10]);
    assert_eq!((s.train.len(), s.test.len()), (27, 3));
    assert_eq!(s.test.labels, [0, 1, 2]);
    let mut all: Vec<f32> = sums(&s.train).into_iter().chain(sums(&s.test)).collect();
    all.sort_by(f32::total_cmp);
    let want: Vec<f32> = (1..=30).map(|n| n as f32).collect();
    assert_eq!(all, want, "one event per column");
    // the real sample reads as ST-MNIST: 2,346 events on the 10 × 10 grid
    if let Some(p) = shared_data("events/tonic/sample_stmnist.mat") {
        let r = recording_from_path(&p).unwrap();
        assert_eq!(r.events.len(), 2346);
        assert_eq!((r.events.width, r.events.height), (10, 10));
    }
    // a MAT-file without `spiketrain` is named
    write(
        &dir.join("data_submission/1/other.mat"),
        &mat5::file(&[mat5::double("labels", &[1, 1], &[1.0])], false),
    );
    let e = load(&config(format!("stmnist:{}", dir.display())), 4)
        .unwrap_err()
        .to_string();
    assert!(e.contains("other.mat") && e.contains("spiketrain"), "{e}");
}

/// A generic `events:` folder with one recording of each synthetic format: `(path, events)`.
fn mixed_folder(root: &Path) -> Vec<(PathBuf, usize)> {
    let mut out = Vec::new();
    let b: Vec<_> = (0..25u32)
        .map(|i| ((i % 20) as u8, (i % 9) as u8, (i % 2) as u8, i * 100))
        .collect();
    out.push((write(&root.join("alpha/a1.bin"), &bin40(&b)), 25));
    let d: Vec<_> = (0..12u32)
        .map(|i| ((i * 5) as u16, (i * 3) as u16, 1, i))
        .collect();
    out.push((
        write(&root.join("alpha/a2.dat"), &dat(Some((64, 48)), &d)),
        12,
    ));
    let g: Vec<_> = (0..17u32)
        .map(|i| (i as u16, (i * 2) as u16, 0, i * 9))
        .collect();
    out.push((
        write(&root.join("beta/b1.aedat"), &write_aedat3(&[(0, g)])),
        17,
    ));
    let rows: Vec<u8> = (0..9i32)
        .flat_map(|i| [i, 2 * i, 10 * i, i % 2])
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let npy = write_npy(
        "{'descr': '<i4', 'fortran_order': False, 'shape': (9, 4), }",
        &rows,
    );
    out.push((write(&root.join("beta/b2.npy"), &npy), 9));
    // not a recording: ignored
    write(&root.join("beta/README.txt"), b"notes");
    out
}

#[test]
fn events_folder_sniffs_every_format_and_takes_the_largest_sensor() {
    let dir = scratch("events-any");
    let files = mixed_folder(&dir);
    let mut c = config(format!("events:{}", dir.display()));
    c.split_ratio = 0.5;
    let s = load(&c, 4).unwrap_or_else(|e| panic!("{e}"));
    // the DAT header's 64 × 48 is the largest sensor
    assert_eq!(s.train.frame_shape, [2, 48, 64]);
    assert_eq!(s.train.num_classes, 2);
    assert_eq!((s.train.len(), s.test.len()), (2, 2));
    let mut got: Vec<f32> = sums(&s.train).into_iter().chain(sums(&s.test)).collect();
    got.sort_by(f32::total_cmp);
    let mut want: Vec<f32> = files.iter().map(|f| f.1 as f32).collect();
    want.sort_by(f32::total_cmp);
    assert_eq!(got, want);
    assert_eq!(tks::data::source::folder_sensor(&dir).unwrap(), (64, 48));

    // train/ + test/ layout: labels by class name over both
    let split = scratch("events-split");
    for (sub, class) in [("train", "alpha"), ("train", "beta"), ("test", "beta")] {
        let from = if class == "alpha" {
            &files[0].0
        } else {
            &files[2].0
        };
        let to = split.join(sub).join(class).join(from.file_name().unwrap());
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(from, to).unwrap();
    }
    let s = loaded(format!("events:{}", split.display()));
    assert_eq!(
        (s.train.labels.clone(), s.test.labels.clone()),
        (vec![0, 1], vec![1])
    );
    // with the real samples: AEDAT 4 (320 × 240 from its header) sets the sensor
    if let Some(a4) = shared_data("events/tonic/sample.aedat4") {
        let real = scratch("events-real");
        std::fs::create_dir_all(real.join("x")).unwrap();
        std::fs::create_dir_all(real.join("y")).unwrap();
        std::fs::copy(&a4, real.join("x/sample.aedat4")).unwrap();
        std::fs::copy(&files[0].0, real.join("x/a.bin")).unwrap();
        std::fs::copy(&files[1].0, real.join("y/a.dat")).unwrap();
        std::fs::copy(&files[3].0, real.join("y/b.npy")).unwrap();
        let mut c = config(format!("events:{}", real.display()));
        c.split_ratio = 0.5;
        c.resize = 32;
        let s = load(&c, 2).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.train.frame_shape, [2, 32, 32]);
        assert_eq!(tks::data::source::folder_sensor(&real).unwrap(), (320, 240));
    }
    // a broken recording is named
    write(&dir.join("alpha/broken.bin"), &[1, 2, 3]);
    let e = load(&c, 4).unwrap_err().to_string();
    assert!(
        e.contains("broken.bin") && e.contains("multiple of 5"),
        "{e}"
    );
}

#[test]
fn empty_recordings_are_errors_naming_the_file() {
    // N-MNIST archive layout with one 0-byte recording
    let dir = scratch("nmnist-empty");
    let ev: Vec<_> = (0..10u32).map(|i| (i as u8, i as u8, 1, i)).collect();
    for split in ["Train", "Test"] {
        for d in ["0", "1"] {
            write(&dir.join(split).join(d).join("00001.bin"), &bin40(&ev));
        }
    }
    write(&dir.join("Train/1/00002.bin"), &[]);
    let e = load(&config(format!("nmnist:{}", dir.display())), 4)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("00002.bin") && e.contains("empty recording"),
        "{e}"
    );
    // the same in an `events:` folder, and a DAT with a header and no events
    let any = scratch("events-empty");
    write(&any.join("a/ok.bin"), &bin40(&ev));
    write(&any.join("b/ok.bin"), &bin40(&ev));
    write(&any.join("b/none.dat"), &dat(Some((8, 8)), &[]));
    let e = load(&config(format!("events:{}", any.display())), 4)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("none.dat") && e.contains("empty recording"),
        "{e}"
    );
    // with the real SLAYER NMNISTsmall: a 0-byte `<id>.bs2` among the listed ones
    if let Some(small) = shared_data("nmnist/NMNISTsmall") {
        let copy = scratch("nmnist-small-empty");
        std::fs::write(copy.join("train1K.txt"), "#sample #class\n1\t5\n2\t0\n").unwrap();
        std::fs::write(copy.join("test100.txt"), "#sample #class\n60001\t7\n").unwrap();
        for id in ["1", "60001"] {
            std::fs::copy(
                small.join(format!("{id}.bs2")),
                copy.join(format!("{id}.bs2")),
            )
            .unwrap();
        }
        std::fs::write(copy.join("2.bs2"), []).unwrap();
        let e = load(&config(format!("nmnist:{}", copy.display())), 4)
            .unwrap_err()
            .to_string();
        assert!(e.contains("2.bs2") && e.contains("empty recording"), "{e}");
    }
}
