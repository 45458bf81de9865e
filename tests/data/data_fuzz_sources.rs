//! Robustness of what issue 15 added, fuzzed like the parsers in `data_fuzz`: the recording
//! sniffer under every extension, `tks data inspect` / `frames` on broken files, and the
//! `ncars:`, `stmnist:` and `events:` sources with a broken recording among good ones. Each
//! input must give `Ok` or an error naming the file — never a panic — and a header declaring
//! a huge sensor is refused before anything is allocated by it.

use std::path::Path;

use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::common::scratch;
use crate::data_event_sources::{bin40, dat, stmnist_mat};
use crate::data_fuzz::{mutate, run, shared};
use tks::cli::data::{inspect, recording_frames};
use tks::data::events::{Resize, SplitBy, to_frames};
use tks::data::formats::aedat3::write_aedat3;
use tks::data::formats::npy::{write_npy, write_zip};
use tks::data::formats::recording::{MAX_SENSOR_SIDE, parse_recording};
use tks::data::source::{DataConfig, load};

const NAMES: [&str; 9] = [
    "r.bin", "r.bs2", "r.dat", "r.aedat", "r.aedat4", "r.npy", "r.npz", "r.mat", "r.raw",
];

/// Valid recordings of every format (synthetic, plus the shared samples when present).
fn seeds() -> Vec<Vec<u8>> {
    let ev: Vec<_> = (0..30u32)
        .map(|i| ((i % 20) as u8, (i % 7) as u8, (i % 2) as u8, i))
        .collect();
    let d: Vec<_> = (0..30u32)
        .map(|i| (i as u16, (i / 2) as u16, (i % 2) as u8, i * 3))
        .collect();
    let g: Vec<_> = (0..30u32)
        .map(|i| (i as u16, i as u16, (i % 2) as u8, i * 5))
        .collect();
    let cols = |v: &[i32]| -> Vec<u8> { v.iter().flat_map(|x| x.to_le_bytes()).collect() };
    let col = |v: &[i32]| {
        write_npy(
            "{'descr': '<i4', 'fortran_order': False, 'shape': (3,), }",
            &cols(v),
        )
    };
    let (x, y, t, p) = (
        col(&[1, 2, 3]),
        col(&[4, 5, 6]),
        col(&[0, 10, 20]),
        col(&[0, 1, 1]),
    );
    let mut s = vec![
        bin40(&ev),
        dat(Some((40, 30)), &d),
        dat(None, &d),
        write_aedat3(&[(0, g)]),
        write_npy(
            "{'descr': [('t', '<i8'), ('x', '<i2'), ('y', '<i2'), ('p', '|b1'), ('', '|V3')], 'fortran_order': False, 'shape': (2,), }",
            &[1; 32],
        ),
        write_zip(&[
            ("x.npy", &x, true),
            ("y.npy", &y, false),
            ("t.npy", &t, true),
            ("p.npy", &p, false),
        ]),
        stmnist_mat(&[(3, 1.0), (17, -1.0), (99, 1.0)], true),
        stmnist_mat(&[(0, -1.0)], false),
    ];
    for rel in [
        "events/tonic/sample_ncars.dat",
        "events/tonic/sample_stmnist.mat",
        "events/tonic/sample_aedat_header.aedat",
        "nmnist/sample_nmnist.bin",
    ] {
        s.extend(shared(rel));
    }
    s
}

#[test]
fn recording_sniffer_never_panics_under_any_name() {
    let seeds = seeds();
    for (i, name) in NAMES.iter().enumerate() {
        run(&seeds, 0, 800, 40 + i as u64, |b| {
            match parse_recording(b, name) {
                Ok(r) => {
                    let e = &r.events;
                    assert!(e.width <= MAX_SENSOR_SIDE && e.height <= MAX_SENSOR_SIDE);
                    if (e.width as usize) * (e.height as usize) <= 1 << 16 {
                        let _ = to_frames(e, SplitBy::Time, 2, Resize::None);
                    }
                }
                Err(e) => assert!(e.to_string().contains(name), "{e}"),
            }
        });
    }
    // the AEDAT 4 sample, mutated, under its own name
    if let Some(a4) = shared("events/tonic/sample.aedat4") {
        run(&[a4], 14, 300, 49, |b| {
            if let Err(e) = parse_recording(b, "s.aedat4") {
                assert!(e.to_string().contains("s.aedat4"), "{e}");
            }
        });
    }
}

#[test]
fn huge_declared_sensors_are_refused() {
    let e = parse_recording(&dat(Some((65535, 65535)), &[(1, 1, 1, 1)]), "big.dat")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("big.dat") && e.contains("larger than 2048"),
        "{e}"
    );
    let rows: Vec<u8> = [60000i32, 1, 0, 1]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let npy = write_npy(
        "{'descr': '<i4', 'fortran_order': False, 'shape': (1, 4), }",
        &rows,
    );
    let e = parse_recording(&npy, "wide.npy").unwrap_err().to_string();
    assert!(e.contains("wide.npy") && e.contains("60001"), "{e}");
    // in an `events:` folder the load stops at that file
    let dir = scratch("fuzz-huge");
    std::fs::create_dir_all(dir.join("a")).unwrap();
    std::fs::create_dir_all(dir.join("b")).unwrap();
    std::fs::write(dir.join("a/ok.bin"), bin40(&[(1, 1, 1, 1), (2, 2, 0, 2)])).unwrap();
    std::fs::write(dir.join("b/wide.npy"), &npy).unwrap();
    let c = DataConfig {
        source: format!("events:{}", dir.display()),
        cache: false,
        ..DataConfig::default()
    };
    let e = load(&c, 2).unwrap_err().to_string();
    assert!(e.contains("wide.npy") && e.contains("larger than"), "{e}");
}

#[test]
fn data_commands_on_broken_files_name_them() {
    let dir = scratch("fuzz-data-cmd");
    let seeds = seeds();
    let mut rng = StdRng::seed_from_u64(77);
    for round in 0..240 {
        let name = NAMES[round % NAMES.len()];
        let bytes = mutate(&mut rng, &seeds[round % seeds.len()], 0);
        let path = dir.join(format!("{round}_{name}"));
        std::fs::write(&path, &bytes).unwrap();
        let shown = path.display().to_string();
        if let Err(e) = inspect(&shown) {
            assert!(format!("{e:#}").contains(&shown), "{e:#}");
        }
        if let Err(e) = recording_frames(&path, None, 3, SplitBy::Number, Resize::None) {
            assert!(format!("{e:#}").contains(&shown), "{e:#}");
        }
    }
    // a folder of garbage: inspect names a file, never panics
    let folder = scratch("fuzz-data-folder");
    std::fs::create_dir_all(folder.join("c")).unwrap();
    std::fs::write(folder.join("c/x.bin"), [1, 2, 3, 4]).unwrap();
    let e = inspect(folder.to_str().unwrap()).unwrap_err();
    assert!(format!("{e:#}").contains("x.bin"), "{e:#}");
}

/// Loads `spec` with one recording replaced by a mutation of itself: `Ok`, or an error naming
/// that file.
fn fuzz_source(spec: &str, victim: &Path, rounds: usize, seed: u64) {
    let good = std::fs::read(victim).unwrap();
    let mut rng = StdRng::seed_from_u64(seed);
    let c = DataConfig {
        source: spec.into(),
        cache: false,
        ..DataConfig::default()
    };
    for _ in 0..rounds {
        std::fs::write(victim, mutate(&mut rng, &good, 0)).unwrap();
        if let Err(e) = load(&c, 2) {
            let name = victim.file_name().unwrap().to_string_lossy().into_owned();
            assert!(e.to_string().contains(&name), "{spec}: {e}");
        }
    }
    std::fs::write(victim, good).unwrap();
}

#[test]
fn new_sources_with_a_broken_recording_never_panic() {
    let ev: Vec<_> = (0..20u32)
        .map(|i| (i as u16, (i % 5) as u16, (i % 2) as u8, i))
        .collect();
    let nc = scratch("fuzz-ncars");
    for s in ["train", "test"] {
        for c in ["background", "cars"] {
            std::fs::create_dir_all(nc.join(s).join(c)).unwrap();
            std::fs::write(nc.join(s).join(c).join("o_td.dat"), dat(None, &ev)).unwrap();
        }
    }
    fuzz_source(
        &format!("ncars:{}", nc.display()),
        &nc.join("train/cars/o_td.dat"),
        150,
        1,
    );

    let st = scratch("fuzz-stmnist");
    for d in 0..2 {
        for k in 0..3 {
            let p = st.join(format!("{d}/s{k}.mat"));
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, stmnist_mat(&[(k, 1.0), (d + 10, -1.0)], k % 2 == 0)).unwrap();
        }
    }
    fuzz_source(
        &format!("stmnist:{}", st.display()),
        &st.join("1/s0.mat"),
        150,
        2,
    );

    let any = scratch("fuzz-events");
    std::fs::create_dir_all(any.join("a")).unwrap();
    std::fs::create_dir_all(any.join("b")).unwrap();
    std::fs::write(any.join("a/r.bin"), bin40(&[(1, 2, 1, 3), (4, 5, 0, 6)])).unwrap();
    std::fs::write(any.join("b/r.dat"), dat(Some((32, 16)), &ev)).unwrap();
    std::fs::write(
        any.join("b/r.aedat"),
        write_aedat3(&[(0, vec![(1, 1, 1, 1), (2, 3, 0, 4)])]),
    )
    .unwrap();
    for (victim, seed) in ["b/r.dat", "b/r.aedat", "a/r.bin"].iter().zip(3..) {
        fuzz_source(
            &format!("events:{}", any.display()),
            &any.join(victim),
            100,
            seed,
        );
    }
}
