//! Robustness: every parser gets thousands of random and mutated inputs (truncated, bytes
//! flipped, header fields overwritten, bytes inserted/removed) from a seeded PRNG and must
//! return `Ok` or `Err`, never panic (a panic fails the test). Real sample files from
//! `../shared/data` seed the mutations when present; synthetic valid files are always used.

use std::path::Path;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tks::data::events::{Resize, SplitBy, to_frames};
use tks::data::formats::{aedat2, aedat3, aedat4, cifar, idx, mat, nmnist, npy, prophesee_dat};

const ROUNDS: usize = 3000;

pub(crate) fn shared(rel: &str) -> Option<Vec<u8>> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data")
        .join(rel);
    match std::fs::read(&p) {
        Ok(b) => Some(b),
        Err(_) => {
            eprintln!(
                "SKIP: {} not found (mutating synthetic seeds only)",
                p.display()
            );
            None
        }
    }
}

const INTERESTING: [u32; 8] = [
    0,
    1,
    0x7f,
    0xff,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_fffe,
    0xffff_ffff,
];

/// One random mutation of `seed` (or pure random bytes with a kept prefix).
pub(crate) fn mutate(rng: &mut StdRng, seed: &[u8], keep_prefix: usize) -> Vec<u8> {
    let mut b = seed.to_vec();
    let rounds = rng.random_range(1..=4);
    for _ in 0..rounds {
        match rng.random_range(0..7) {
            0 if !b.is_empty() => {
                let n = rng.random_range(0..b.len());
                b.truncate(n);
            }
            1 => {
                for _ in 0..rng.random_range(1..=8) {
                    if b.is_empty() {
                        break;
                    }
                    let i = rng.random_range(0..b.len());
                    b[i] ^= 1 << rng.random_range(0..8);
                }
            }
            2 if b.len() >= 4 => {
                // overwrite a u32 near the start (header fields), either byte order
                let hi = b.len().min(128) - 3;
                let i = rng.random_range(0..hi);
                let v = if rng.random_bool(0.5) {
                    INTERESTING[rng.random_range(0..INTERESTING.len())]
                } else {
                    rng.random()
                };
                let bytes = if rng.random_bool(0.5) {
                    v.to_le_bytes()
                } else {
                    v.to_be_bytes()
                };
                b[i..i + 4].copy_from_slice(&bytes);
            }
            3 => {
                let i = rng.random_range(0..=b.len());
                let extra: Vec<u8> = (0..rng.random_range(1..16)).map(|_| rng.random()).collect();
                b.splice(i..i, extra);
            }
            4 if !b.is_empty() => {
                let i = rng.random_range(0..b.len());
                let j = (i + rng.random_range(1..32)).min(b.len());
                b.drain(i..j);
            }
            5 => {
                let n = rng.random_range(0..512);
                b = seed[..keep_prefix.min(seed.len())].to_vec();
                b.extend((0..n).map(|_| rng.random::<u8>()));
            }
            _ => {
                if !b.is_empty() {
                    let i = rng.random_range(0..b.len());
                    b[i] = rng.random();
                }
            }
        }
    }
    b
}

pub(crate) fn run<F: Fn(&[u8])>(
    seeds: &[Vec<u8>],
    keep_prefix: usize,
    rounds: usize,
    seed: u64,
    parse: F,
) {
    let mut rng = StdRng::seed_from_u64(seed);
    for s in seeds {
        parse(s);
    }
    parse(&[]);
    for r in 0..rounds {
        let s = &seeds[r % seeds.len()];
        parse(&mutate(&mut rng, s, keep_prefix));
    }
}

/// Frames only for sensors of at most 2^20 pixels: a fuzzed header can claim 65535 × 65535,
/// and `to_frames` allocates by the sensor size the caller accepted.
fn frames(e: &tks::data::events::Events, split: SplitBy, t: usize, resize: Resize) {
    if (e.width as usize) * (e.height as usize) <= 1 << 20 {
        let _ = to_frames(e, split, t, resize);
    }
}

fn idx_bytes(magic: u32, dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut v = magic.to_be_bytes().to_vec();
    dims.iter()
        .for_each(|d| v.extend_from_slice(&d.to_be_bytes()));
    v.extend_from_slice(data);
    v
}

#[test]
fn idx_never_panics() {
    let mut seeds = vec![
        idx_bytes(2051, &[2, 3, 3], &[7; 18]),
        idx_bytes(2049, &[4], &[1, 2, 3, 4]),
    ];
    if let Some(b) = shared("mnist/t10k-labels-idx1-ubyte.gz") {
        seeds.push(idx::maybe_gunzip(&b, "x").unwrap()[..500].to_vec());
        seeds.push(b);
    }
    run(&seeds, 4, ROUNDS, 1, |b| {
        let _ = idx::parse_idx(b, "fuzz", None);
        let _ = idx::parse_idx(b, "fuzz", Some(2051));
    });
}

#[test]
fn nmnist_never_panics() {
    let mut seeds = vec![vec![
        3, 4, 0x81, 2, 3, 0, 240, 0, 0, 0, 33, 33, 0x7f, 0xff, 0xff,
    ]];
    if let Some(b) = shared("nmnist/NMNISTsmall/1.bs2") {
        seeds.push(b);
    }
    run(&seeds, 0, ROUNDS, 2, |b| {
        if let Ok(e) = nmnist::parse_nmnist(b, "fuzz") {
            frames(
                &e,
                SplitBy::Time,
                5,
                Resize::Area {
                    height: 7,
                    width: 5,
                },
            );
            frames(
                &e,
                SplitBy::Number,
                3,
                Resize::Nearest {
                    height: 48,
                    width: 48,
                },
            );
        }
        let _ = nmnist::parse_label_list(&String::from_utf8_lossy(b), "fuzz");
    });
}

#[test]
fn aedat2_never_panics() {
    let mut syn = b"#!AER-DAT2.0\r\n# Creation time: System.currentTimeMillis() 5\r\n".to_vec();
    for i in 0u32..20 {
        syn.extend_from_slice(&(i * 0x1234_5679).to_be_bytes());
        syn.extend_from_slice(&(i * 1000).to_be_bytes());
    }
    let mut seeds = vec![syn];
    if let Some(b) = shared("events/tonic/sample_aedat_header.aedat") {
        seeds.push(b);
    }
    run(&seeds, 12, ROUNDS, 3, |b| {
        if let Ok(a) = aedat2::parse_aedat2(b, "fuzz") {
            for l in [aedat2::Layout::Dvs128, aedat2::Layout::Cifar10Dvs] {
                frames(
                    &a.events(l),
                    SplitBy::Time,
                    4,
                    Resize::Area {
                        height: 48,
                        width: 48,
                    },
                );
            }
        }
    });
}

#[test]
fn prophesee_dat_never_panics() {
    let mut syn = b"% Width 10\n% Height 10\n\x00\x08".to_vec();
    for i in 0u32..20 {
        syn.extend_from_slice(&(i * 50).to_le_bytes());
        syn.extend_from_slice(&((i % 10) | ((i % 7) << 14) | ((i % 2) << 28)).to_le_bytes());
    }
    let mut seeds = vec![syn];
    if let Some(b) = shared("events/tonic/sample_ncars.dat") {
        seeds.push(b);
    }
    run(&seeds, 1, ROUNDS, 4, |b| {
        if let Ok(f) = prophesee_dat::parse_dat(b, "fuzz") {
            frames(&f.events, SplitBy::Number, 4, Resize::None);
        }
    });
}

#[test]
fn npy_never_panics() {
    let plain: Vec<u8> = [1i32, 2, 3, 1, 4, 5, 6, 0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let seeds = vec![
        npy::write_npy(
            "{'descr': '<i4', 'fortran_order': False, 'shape': (2, 4), }",
            &plain,
        ),
        npy::write_npy(
            "{'descr': '<i4', 'fortran_order': True, 'shape': (2, 4), }",
            &plain,
        ),
        npy::write_npy(
            "{'descr': [('t', '<i8'), ('x', '<i2'), ('y', '<i2'), ('p', '|b1'), ('', '|V3')], 'fortran_order': False, 'shape': (2,), }",
            &[0; 32],
        ),
        npy::write_npy(
            "{'descr': '>f8', 'fortran_order': False, 'shape': (1, 4), }",
            &[0; 32],
        ),
    ];
    run(&seeds, 10, ROUNDS * 2, 5, |b| {
        if let Ok(e) = npy::parse_npy_events(b, "fuzz") {
            frames(&e, SplitBy::Time, 2, Resize::None);
        }
    });
}

#[test]
fn aedat4_never_panics() {
    // No synthetic AEDAT 4 writer: with the sample absent only random inputs are tried.
    let mut seeds = vec![
        b"#!AER-DAT4.0\r\n\x10\x00\x00\x00\x0c\x00\x00\x00IOHE\x00\x00\x00\x00\x04\x00\x04\x00"
            .to_vec(),
    ];
    if let Some(b) = shared("events/tonic/sample.aedat4") {
        // Header plus the first three packets, with dataTablePosition (byte 54) set to -1 so
        // packets run to the end: small enough to parse thousands of times.
        let hend = 18 + i32::from_le_bytes([b[14], b[15], b[16], b[17]]) as usize;
        let mut end = hend;
        for _ in 0..3 {
            end +=
                8 + i32::from_le_bytes([b[end + 4], b[end + 5], b[end + 6], b[end + 7]]) as usize;
        }
        let mut small = b[..end].to_vec();
        small[54..62].copy_from_slice(&(-1i64).to_le_bytes());
        let parsed = aedat4::parse_aedat4(&small, "small").unwrap();
        assert!(!parsed.events.is_empty());
        seeds.push(small);
        // the same packets re-encoded as Zstd (compression 3)
        let z = aedat4_zstd(&b, 3);
        assert_eq!(
            aedat4::parse_aedat4(&z, "zstd").unwrap().events,
            parsed.events
        );
        seeds.push(z);
    }
    run(&seeds, 14, ROUNDS, 6, |b| {
        if let Ok(a) = aedat4::parse_aedat4(b, "fuzz") {
            frames(
                &a.events,
                SplitBy::Time,
                3,
                Resize::Area {
                    height: 8,
                    width: 8,
                },
            );
        }
    });
}

#[test]
fn cifar_never_panics() {
    // CIFAR batches built from the published record layout (no real file is shipped).
    let rec = |labels: &[u8]| {
        let mut r = labels.to_vec();
        r.extend((0..3072).map(|i| (i % 251) as u8));
        r
    };
    let seeds = vec![
        [rec(&[3]), rec(&[9])].concat(),
        [rec(&[19, 99]), rec(&[0, 5])].concat(),
    ];
    run(&seeds, 0, ROUNDS / 3, 7, |b| {
        for kind in [cifar::CifarKind::Cifar10, cifar::CifarKind::Cifar100] {
            let _ = cifar::parse_cifar(b, "fuzz", kind);
        }
    });
}

#[test]
fn aedat3_never_panics() {
    // AEDAT 3.1 built from the published layout (no real DVS128 Gesture file is shipped).
    let ev: Vec<(u16, u16, u8, u32)> = (0..24)
        .map(|i| (i * 5 % 128, i * 3 % 128, (i % 2) as u8, i as u32 * 100))
        .collect();
    let mut seeds = vec![aedat3::write_aedat3(&[
        (0, ev.clone()),
        (1, ev[..5].to_vec()),
    ])];
    // a non-polarity packet (type 2, size 12) before a polarity packet
    let mut other = aedat3::write_aedat3(&[]);
    for v in [2u16, 1] {
        other.extend_from_slice(&v.to_le_bytes());
    }
    for v in [12u32, 4, 0, 2, 2, 2] {
        other.extend_from_slice(&v.to_le_bytes());
    }
    other.extend_from_slice(&[0xab; 24]);
    other.extend_from_slice(&seeds[0][seeds[0].len() - (28 + 8 * 5)..]);
    seeds.push(other);
    run(&seeds, 14, ROUNDS, 8, |b| {
        if let Ok(a) = aedat3::parse_aedat3(b, "fuzz", 128, 128) {
            frames(
                &a.events,
                SplitBy::Time,
                4,
                Resize::Area {
                    height: 48,
                    width: 48,
                },
            );
            let seg = aedat3::Segment {
                label: 0,
                start: 100,
                end: 1000,
            };
            frames(
                &aedat3::segment(&a.events, &seg),
                SplitBy::Number,
                2,
                Resize::None,
            );
        }
        let text = String::from_utf8_lossy(b);
        let _ = aedat3::parse_gesture_labels(&text, "fuzz", 11);
        let _ = aedat3::parse_gesture_labels("class,s,e\n1,5,9\n11,9,20\n", "ok", 11).unwrap();
    });
}

#[test]
fn frame_cache_decode_never_panics() {
    let seeds = vec![tks::data::cache::encode(&[1.0, 2.0, 3.0])];
    run(&seeds, 8, ROUNDS, 9, |b| {
        let _ = tks::data::cache::decode(b, 3);
        let _ = tks::data::cache::decode(b, usize::MAX / 2);
    });
}

/// A MAT element with an 8-byte tag, padded to 8 bytes (little-endian).
fn mat_elem(ty: u32, data: &[u8]) -> Vec<u8> {
    let mut v = ty.to_le_bytes().to_vec();
    v.extend_from_slice(&(data.len() as u32).to_le_bytes());
    v.extend_from_slice(data);
    v.resize(v.len() + (8 - data.len() % 8) % 8, 0);
    v
}

#[test]
fn mat_never_panics() {
    use std::io::Write;
    // A level-5 file built per the MathWorks spec: 101 × 3 double `spiketrain`, stored plainly
    // and inside a zlib miCOMPRESSED element.
    let mut vals = vec![0f64; 303];
    for j in 0..3 {
        vals[j * 101 + j * 7] = if j == 1 { -1.0 } else { 1.0 };
        vals[j * 101 + 100] = 0.2 + j as f64 * 0.1;
    }
    let mut m = mat_elem(6, &[6, 0, 0, 0, 0, 0, 0, 0]);
    m.extend(mat_elem(5, &[101, 0, 0, 0, 3, 0, 0, 0]));
    m.extend(mat_elem(1, b"spiketrain"));
    let real: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
    m.extend(mat_elem(9, &real));
    let matrix = mat_elem(14, &m);
    let mut header = vec![b' '; 116];
    header.extend_from_slice(&[0; 8]);
    header.extend_from_slice(&[0, 1, b'I', b'M']);
    let mut plain = header.clone();
    plain.extend_from_slice(&matrix);
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(&matrix).unwrap();
    let z = z.finish().unwrap();
    let mut compressed = header;
    compressed.extend_from_slice(&15u32.to_le_bytes());
    compressed.extend_from_slice(&(z.len() as u32).to_le_bytes());
    compressed.extend_from_slice(&z);
    for f in [&plain, &compressed] {
        let a = mat::parse_mat(f, "seed").unwrap();
        assert_eq!(mat::stmnist_events(&a[0]).unwrap().len(), 3);
    }
    let mut seeds = vec![plain, compressed];
    if let Some(b) = shared("events/tonic/sample_stmnist.mat") {
        seeds.push(b);
    }
    run(&seeds, 128, ROUNDS, 9, |b| {
        if let Ok(arrays) = mat::parse_mat(b, "fuzz") {
            for a in &arrays {
                if let Ok(e) = mat::stmnist_events(a) {
                    frames(&e, SplitBy::Number, 2, Resize::None);
                }
            }
        }
    });
}

/// Cell, struct and char arrays (the Stanford Dogs and Cars split lists, built from the
/// MathWorks Level 5 spec by `crate::common::mat5`): whole files mutated, and the `miMATRIX` bytes
/// mutated *before* compression so the mutations reach the decompressed parser past zlib's
/// checksum.
#[test]
fn mat_cells_structs_chars_never_panic() {
    use crate::common::mat5::*;
    let vars = vec![
        cell(
            "file_list",
            &[2, 1],
            &[
                chars("", "n02085620-Chihuahua/a.jpg"),
                chars("", "n02085782-x/b.jpg"),
            ],
        ),
        double_as_u8("labels", &[2, 1], &[1, 2]),
        structure(
            "annotations",
            &[1, 2],
            &["bbox_x1", "class", "fname", "test"],
            &[
                uint_scalar("", MX_UINT8, 3),
                uint_scalar("", MX_UINT8, 2),
                chars("", "00001.jpg"),
                uint_scalar("", MX_UINT8, 0),
                uint_scalar("", MX_UINT16, 300),
                uint_scalar("", MX_UINT8, 1),
                chars_utf8("", "00002.jpg"),
                uint_scalar("", MX_UINT8, 1),
            ],
        ),
        cell(
            "class_names",
            &[1, 3],
            &[
                chars("", "AM General"),
                chars("", "ab"),
                cell("", &[1, 1], &[chars("", "")]),
            ],
        ),
    ];
    let check = |b: &[u8]| {
        if let Ok(v) = mat::parse_mat_variables(b, "fuzz") {
            let _ = mat::stanford_dogs_list(&v, "fuzz");
            let _ = mat::stanford_cars_annotations(&v, "fuzz");
            let _ = mat::stanford_cars_class_names(&v, "fuzz");
            for x in &v {
                let _ = (x.value.text(), x.value.scalar(), x.value.field(1, "class"));
            }
        }
    };
    let plain = file(&vars, false);
    let packed = file(&vars, true);
    for f in [&plain, &packed] {
        let v = mat::parse_mat_variables(f, "seed").unwrap();
        assert_eq!(mat::stanford_dogs_list(&v, "seed").unwrap().len(), 2);
        assert_eq!(mat::stanford_cars_annotations(&v, "seed").unwrap().len(), 2);
    }
    run(&[plain, packed], 128, ROUNDS, 11, check);
    // the same variables mutated, then stored plainly and compressed
    run(&vars, 0, ROUNDS, 12, |m| {
        let mut f = header();
        f.extend_from_slice(m);
        check(&f);
        check(&file(&[m.to_vec()], true));
    });
}

#[test]
fn npz_never_panics() {
    let col = |descr: &str, data: &[u8]| {
        npy::write_npy(
            &format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': (2,), }}"),
            data,
        )
    };
    let x = col("<i4", &[1, 0, 0, 0, 2, 0, 0, 0]);
    let p = col("|u1", &[1, 0]);
    let structured = npy::write_npy(
        "{'descr': [('t', '<i8'), ('x', '<i2'), ('y', '<i2'), ('p', '|b1')], 'fortran_order': False, 'shape': (2,), }",
        &[0; 26],
    );
    let seeds = vec![
        npy::write_zip(&[
            ("x.npy", &x, false),
            ("y.npy", &x, false),
            ("t.npy", &x, false),
            ("p.npy", &p, false),
        ]),
        npy::write_zip(&[
            ("x.npy", &x, true),
            ("y.npy", &x, true),
            ("t.npy", &x, true),
            ("p.npy", &p, true),
        ]),
        npy::write_zip(&[("arr_0.npy", &structured, true)]),
        npy::write_zip(&[("arr_0.npy", &structured, false)]),
    ];
    for s in &seeds {
        assert_eq!(npy::parse_npz_events(s, "seed").unwrap().len(), 2);
    }
    run(&seeds, 4, ROUNDS * 2, 10, |b| {
        if let Ok(e) = npy::parse_npz_events(b, "fuzz") {
            frames(&e, SplitBy::Time, 2, Resize::None);
        }
    });
}

/// The first `packets` packets of the (LZ4) AEDAT 4 sample re-encoded as Zstd with `ruzstd`,
/// compression set to 3 and `dataTablePosition` to -1.
fn aedat4_zstd(b: &[u8], packets: usize) -> Vec<u8> {
    let rd32 = |o: usize| i32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
    let hend = 18 + rd32(14) as usize;
    let table = 18 + rd32(18) as usize;
    let vt = (table as i64 - rd32(table) as i64) as usize;
    let field =
        |k: usize| table + u16::from_le_bytes([b[vt + 4 + 2 * k], b[vt + 5 + 2 * k]]) as usize;
    let mut out = b[..hend].to_vec();
    out[field(1)..field(1) + 8].copy_from_slice(&(-1i64).to_le_bytes());
    out[field(0)..field(0) + 4].copy_from_slice(&3i32.to_le_bytes());
    let mut pos = hend;
    for _ in 0..packets {
        let size = rd32(pos + 4) as usize;
        let mut plain = Vec::new();
        std::io::Read::read_to_end(
            &mut lz4_flex::frame::FrameDecoder::new(&b[pos + 8..pos + 8 + size]),
            &mut plain,
        )
        .unwrap();
        let packed = ruzstd::encoding::compress_to_vec(
            &plain[..],
            ruzstd::encoding::CompressionLevel::Fastest,
        );
        out.extend_from_slice(&b[pos..pos + 4]);
        out.extend_from_slice(&(packed.len() as i32).to_le_bytes());
        out.extend_from_slice(&packed);
        pos += 8 + size;
    }
    out
}
