//! Format readers against the real files of `../shared/data` (counts and checksums from its
//! README) and against small files built here from the format specifications.
//! A test whose file is absent prints `SKIP: <file> not found (...)` and returns.

use std::path::{Path, PathBuf};

use tks::data::SampleKind;
use tks::data::events::{Events, Resize, SplitBy, to_frames};
use tks::data::formats::{aedat2, aedat4, idx, mat, nmnist, npy, prophesee_dat};

fn histogram(labels: &[u32]) -> Vec<usize> {
    let mut h = vec![0; 10];
    labels.iter().for_each(|&l| h[l as usize] += 1);
    h
}

fn mean(values: &[f32]) -> f64 {
    values.iter().map(|&v| v as f64).sum::<f64>() / values.len() as f64
}

#[allow(clippy::too_many_arguments)]
fn check_idx(
    dir: &str,
    train_first: [u32; 5],
    test_first: [u32; 5],
    train_hist: [usize; 10],
    test_hist: [usize; 10],
    train_mean: f64,
) {
    let (Some(tri), Some(trl), Some(tei), Some(tel)) = (
        crate::common::shared_data(&format!("{dir}/train-images-idx3-ubyte.gz")),
        crate::common::shared_data(&format!("{dir}/train-labels-idx1-ubyte.gz")),
        crate::common::shared_data(&format!("{dir}/t10k-images-idx3-ubyte.gz")),
        crate::common::shared_data(&format!("{dir}/t10k-labels-idx1-ubyte.gz")),
    ) else {
        return;
    };
    let train = idx::load_idx_pair(&tri, &trl, 10).unwrap();
    let test = idx::load_idx_pair(&tei, &tel, 10).unwrap();
    assert_eq!((train.len(), test.len()), (60_000, 10_000));
    assert_eq!(train.frame_shape, [1, 28, 28]);
    assert_eq!(train.kind, SampleKind::Static);
    assert_eq!(train.labels[..5], train_first);
    assert_eq!(test.labels[..5], test_first);
    assert_eq!(histogram(&train.labels), train_hist);
    assert_eq!(histogram(&test.labels), test_hist);
    let m = mean(&train.values);
    assert!(
        (m - train_mean).abs() < 1e-5,
        "{dir} train pixel mean {m}, README {train_mean}"
    );
    // mismatched counts name both files
    let e = idx::load_idx_pair(&tri, &tel, 10).unwrap_err().to_string();
    assert!(
        e.contains("train-images")
            && e.contains("t10k-labels")
            && e.contains("60000")
            && e.contains("10000"),
        "{e}"
    );
}

#[test]
fn mnist_idx_matches_readme() {
    check_idx(
        "mnist",
        [5, 0, 4, 1, 9],
        [7, 2, 1, 0, 4],
        [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949],
        [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009],
        0.130660,
    );
}

#[test]
fn fashion_mnist_idx_matches_readme() {
    check_idx(
        "fashion-mnist",
        [9, 0, 0, 3, 0],
        [9, 2, 1, 1, 6],
        [6000; 10],
        [1000; 10],
        0.286041,
    );
}

#[test]
fn idx_raw_labels_decompressed_equal_gzipped() {
    let Some(p) = crate::common::shared_data("mnist/t10k-labels-idx1-ubyte.gz") else {
        return;
    };
    let gz = std::fs::read(&p).unwrap();
    let raw = idx::maybe_gunzip(&gz, "x").unwrap();
    assert_eq!(raw.len(), 10_008);
    assert_eq!(
        idx::parse_idx(&raw, "raw", Some(2049)).unwrap(),
        idx::parse_idx(&gz, "gz", Some(2049)).unwrap()
    );
}

fn nmnist_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "bs2"))
        .collect();
    v.sort();
    v
}

#[test]
fn nmnist_small_totals_match_readme() {
    let Some(dir) = crate::common::shared_data("nmnist/NMNISTsmall") else {
        return;
    };
    let files = nmnist_files(&dir);
    assert_eq!(files.len(), 1100);
    let (mut total, mut min_n, mut max_n, mut max_x, mut max_y, mut max_t, mut off, mut on) =
        (0usize, usize::MAX, 0usize, 0u16, 0u16, 0u64, 0usize, 0usize);
    for f in &files {
        let e = nmnist::nmnist_from_path(f).unwrap();
        assert!(
            e.t.windows(2).all(|w| w[0] <= w[1]),
            "{} timestamps decrease",
            f.display()
        );
        total += e.len();
        min_n = min_n.min(e.len());
        max_n = max_n.max(e.len());
        max_x = max_x.max(*e.x.iter().max().unwrap());
        max_y = max_y.max(*e.y.iter().max().unwrap());
        max_t = max_t.max(*e.t.iter().max().unwrap());
        let (a, b) = e.polarity_counts();
        off += a;
        on += b;
    }
    assert_eq!(total, 4_518_827);
    assert_eq!((min_n, max_n), (1069, 7152));
    assert_eq!((max_x, max_y, max_t), (33, 33, 336_040));
    assert_eq!((off, on), (2_268_749, 2_250_078));
}

#[test]
fn nmnist_sample_matches_readme() {
    let Some(p) = crate::common::shared_data("nmnist/sample_nmnist.bin") else {
        return;
    };
    let e = nmnist::nmnist_from_path(&p).unwrap();
    assert_eq!(e.len(), 4325);
    assert_eq!(
        (*e.t.first().unwrap(), *e.t.last().unwrap()),
        (654, 311_175)
    );
    assert_eq!((e.width, e.height), (34, 34));
}

#[test]
fn nmnist_small_loader_builds_frames() {
    let Some(dir) = crate::common::shared_data("nmnist/NMNISTsmall") else {
        return;
    };
    let split = nmnist::load_nmnist_small(&dir, 4, SplitBy::Number).unwrap();
    assert_eq!((split.train.len(), split.test.len()), (1000, 100));
    assert_eq!(split.train.frame_shape, [2, 34, 34]);
    assert_eq!(split.train.kind, SampleKind::Frames { timesteps: 4 });
    assert_eq!(
        histogram(&split.train.labels),
        [97, 116, 99, 93, 105, 92, 94, 117, 87, 100]
    );
    assert_eq!(
        histogram(&split.test.labels),
        [8, 14, 8, 11, 14, 7, 10, 15, 2, 11]
    );
    // every event lands in exactly one frame: the sums equal the event counts
    let n = split.train.sample_len();
    let first = nmnist::nmnist_from_path(&dir.join("1.bs2")).unwrap();
    let sum: f32 = split.train.values[..n].iter().sum();
    assert_eq!(sum as usize, first.len());
    assert_eq!(split.train.labels[0], 5); // id 1 = MNIST train image 0, label 5
    let all_sum: f64 = split
        .train
        .values
        .iter()
        .chain(&split.test.values)
        .map(|&v| v as f64)
        .sum();
    assert_eq!(all_sum as usize, 4_518_827);
    // time split keeps every event too
    let f = to_frames(&first, SplitBy::Time, 10, Resize::None);
    assert_eq!(f.iter().sum::<f32>() as usize, first.len());
}

#[test]
fn aedat2_header_sample() {
    let Some(p) = crate::common::shared_data("events/tonic/sample_aedat_header.aedat") else {
        return;
    };
    let a = aedat2::aedat2_from_path(&p).unwrap();
    assert_eq!(a.header.len(), 12);
    assert_eq!(a.header[0], "#!AER-DAT2.0");
    assert_eq!(a.data_offset, 599);
    assert!(a.addresses.is_empty());
    assert_eq!(a.creation_time_ms, Some(1_695_355_587_880));
}

/// Synthetic AEDAT 2.0 file built here from the format description (header lines, then
/// big-endian u32 address + u32 timestamp); not a recording.
#[test]
fn aedat2_synthetic_records() {
    let mut b = b"#!AER-DAT2.0\r\n# This is a raw AE data file\r\n# Creation time: System.currentTimeMillis() 42\r\n".to_vec();
    let hdr = b.len();
    // (xr, yr, pr, t)
    let ev = [
        (0u32, 0u32, 0u32, 10u32),
        (5, 9, 1, 20),
        (127, 127, 1, 4_000_000_000),
    ];
    for &(x, y, p, t) in &ev {
        b.extend_from_slice(&((y << 8) | (x << 1) | p).to_be_bytes());
        b.extend_from_slice(&t.to_be_bytes());
    }
    let a = aedat2::parse_aedat2(&b, "synthetic.aedat").unwrap();
    assert_eq!(
        (a.header.len(), a.data_offset, a.creation_time_ms),
        (3, hdr, Some(42))
    );
    let d = a.events(aedat2::Layout::Dvs128);
    assert_eq!(d.x, vec![127, 122, 0]);
    assert_eq!(d.y, vec![0, 9, 127]);
    assert_eq!(d.p, vec![0, 1, 1]);
    assert_eq!(d.t, vec![10, 20, 4_000_000_000]);
    let c = a.events(aedat2::Layout::Cifar10Dvs);
    assert_eq!(c.x, vec![127, 118, 0]);
    assert_eq!(c.y, vec![127, 122, 0]);
    assert_eq!(c.p, vec![1, 0, 0]);
    b.truncate(b.len() - 3);
    let e = aedat2::parse_aedat2(&b, "synthetic.aedat")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("synthetic.aedat") && e.contains("record 2"),
        "{e}"
    );
}

#[test]
fn ncars_dat_sample() {
    let Some(p) = crate::common::shared_data("events/tonic/sample_ncars.dat") else {
        return;
    };
    let f = prophesee_dat::dat_from_path(&p).unwrap();
    let e = &f.events;
    assert_eq!(f.header.len(), 3);
    assert_eq!(f.event_type, 0);
    assert_eq!(e.len(), 2009);
    assert_eq!(
        (*e.x.iter().min().unwrap(), *e.x.iter().max().unwrap()),
        (0, 77)
    );
    assert_eq!(
        (*e.y.iter().min().unwrap(), *e.y.iter().max().unwrap()),
        (0, 41)
    );
    assert_eq!((*e.t.first().unwrap(), *e.t.last().unwrap()), (0, 99_952));
    assert!(e.t.windows(2).all(|w| w[0] <= w[1]));
    assert!(e.p.iter().all(|&p| p <= 1));
    assert_eq!((e.width, e.height), (78, 42));
}

/// `.npy` files built here per the NumPy format spec (v1.0 and v2.0 headers).
#[test]
fn npy_structured_and_plain() {
    // tonic-style structured: [('x','<i2'),('y','<i2'),('t','<i8'),('p','|b1')] plus padding
    let rows = [
        (3i16, 4i16, 100i64, true),
        (0, 9, 250, false),
        (7, 0, 251, true),
    ];
    let mut d = Vec::new();
    for &(x, y, t, p) in &rows {
        d.extend_from_slice(&x.to_le_bytes());
        d.extend_from_slice(&y.to_le_bytes());
        d.extend_from_slice(&t.to_le_bytes());
        d.push(p as u8);
        d.extend_from_slice(&[0, 0, 0]);
    }
    let f = npy::write_npy(
        "{'descr': [('x', '<i2'), ('y', '<i2'), ('t', '<i8'), ('p', '|b1'), ('', '|V3')], 'fortran_order': False, 'shape': (3,), }",
        &d,
    );
    let e = npy::parse_npy_events(&f, "s.npy").unwrap();
    let want = Events {
        x: vec![3, 0, 7],
        y: vec![4, 9, 0],
        t: vec![100, 250, 251],
        p: vec![1, 0, 1],
        width: 8,
        height: 10,
    };
    assert_eq!(e, want);
    // plain (N, 4) big-endian f8, version 2.0 header
    let vals = [
        3.0f64, 4.0, 100.0, 1.0, 0.0, 9.0, 250.0, -1.0, 7.0, 0.0, 251.0, 1.0,
    ];
    let body: Vec<u8> = vals.iter().flat_map(|v| v.to_be_bytes()).collect();
    let mut f = npy::write_npy(
        "{'descr': '>f8', 'fortran_order': False, 'shape': (3, 4), }",
        &body,
    );
    let hlen = u16::from_le_bytes([f[8], f[9]]) as u32;
    f[6] = 2;
    f.splice(8..10, hlen.to_le_bytes());
    assert_eq!(npy::parse_npy_events(&f, "p.npy").unwrap(), want);
    // a missing field is named
    let f = npy::write_npy(
        "{'descr': [('x', '<u2'), ('y', '<u2')], 'fortran_order': False, 'shape': (0,), }",
        &[],
    );
    assert!(
        npy::parse_npy_events(&f, "m.npy")
            .unwrap_err()
            .to_string()
            .contains("no `t` field")
    );
}

#[test]
fn aedat4_sample() {
    let Some(p) = crate::common::shared_data("events/tonic/sample.aedat4") else {
        return;
    };
    let a = aedat4::aedat4_from_path(&p).unwrap();
    assert_eq!(a.compression, 1);
    assert_eq!(a.data_table_position, 945_243);
    assert_eq!(a.packets, 118);
    let e = &a.events;
    assert_eq!(e.len(), 111_954);
    assert_eq!(e.polarity_counts(), (56_931, 55_023));
    assert_eq!((e.width, e.height), (320, 240));
    assert_eq!(
        (*e.x.iter().max().unwrap(), *e.y.iter().max().unwrap()),
        (319, 239)
    );
    assert!(e.t.windows(2).all(|w| w[0] <= w[1]));
    assert_eq!(e.t.last().unwrap() - e.t.first().unwrap(), 589_917);
}

/// ST-MNIST sample (README section 5): one compressed `spiketrain`, 101 × 2346 doubles.
#[test]
fn stmnist_mat_sample() {
    let Some(p) = crate::common::shared_data("events/tonic/sample_stmnist.mat") else {
        return;
    };
    let arrays = mat::mat_from_path(&p).unwrap();
    assert_eq!(arrays.len(), 1);
    let a = &arrays[0];
    assert_eq!(a.name, "spiketrain");
    assert_eq!(a.dims, vec![101, 2346]);
    for (j, col) in a.values.chunks_exact(101).enumerate() {
        let nz = col[..100].iter().filter(|&&v| v != 0.0).count();
        assert_eq!(nz, 1, "column {j} has {nz} non-zero taxels");
    }
    let e = mat::stmnist_events(a).unwrap();
    assert_eq!(e.len(), 2346);
    assert_eq!((e.width, e.height), (10, 10));
    assert!(e.x.iter().chain(&e.y).all(|&c| c <= 9));
    let (first, last) = (e.t[0], *e.t.last().unwrap());
    // README gives 0.19663 s and 0.89574 s (5 digits, so ±5 µs); the file holds 196,626 µs
    assert!(first.abs_diff(196_630) <= 5, "first t {first}");
    assert!(last.abs_diff(895_740) <= 5, "last t {last}");
    assert!(e.t.windows(2).all(|w| w[0] <= w[1]), "times rise");
    // a truncated copy is an error naming the file
    let b = std::fs::read(&p).unwrap();
    let err = mat::parse_mat(&b[..b.len() / 2], "half.mat")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("half.mat") && err.contains("byte 128"),
        "{err}"
    );
}

/// Cell, struct and char arrays from the MathWorks Level 5 specification (no real `.mat` split
/// list is on this machine: `crate::common::mat5` writes the bytes), plain and `miCOMPRESSED`.
#[test]
fn mat_cells_structs_and_chars_from_the_spec() {
    use crate::common::mat5::*;
    use mat::MatValue;
    let vars = vec![
        // Stanford Dogs layout: N × 1 cell of 1 × L char, N × 1 double labels stored as miUINT8
        cell(
            "file_list",
            &[2, 1],
            &[
                chars("", "n02085620-Chihuahua/n02085620_5927.jpg"),
                chars("", "n02085782-Japanese_spaniel/n02085782_2.jpg"),
            ],
        ),
        double_as_u8("labels", &[2, 1], &[1, 2]),
        // Stanford Cars layout: 1 × 2 struct, uint8/uint16 scalars and a char name per element
        structure(
            "annotations",
            &[1, 2],
            &["bbox_x1", "bbox_y2", "class", "fname"],
            &[
                uint_scalar("", MX_UINT8, 39),
                uint_scalar("", MX_UINT16, 375),
                uint_scalar("", MX_UINT8, 14),
                chars("", "00001.jpg"),
                uint_scalar("", MX_UINT8, 36),
                uint_scalar("", MX_UINT16, 868),
                uint_scalar("", MX_UINT8, 3),
                chars("", "00002.jpg"),
            ],
        ),
        // small-format char data (2 UTF-16 units = 4 bytes), UTF-8 data, a non-ASCII char,
        // an empty char, a nested cell, an empty miMATRIX, a sparse array (kept as `Other`)
        cell(
            "mixed",
            &[1, 6],
            &[
                chars("", "ab"),
                chars_utf8("", "utf8 text"),
                chars("", "Škoda"),
                chars("", ""),
                cell("", &[1, 1], &[double("", &[1, 2], &[0.5, -2.0])]),
                element_long(MI_MATRIX, &[]),
            ],
        ),
        matrix(MX_SPARSE, &[3, 3], "sp", &[]),
        double("spiketrain", &[1, 1], &[7.0]),
    ];
    for compress in [false, true] {
        let f = file(&vars, compress);
        let v = mat::parse_mat_variables(&f, "spec.mat").unwrap();
        let names: Vec<&str> = v.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "file_list",
                "labels",
                "annotations",
                "mixed",
                "sp",
                "spiketrain"
            ]
        );
        assert_eq!(v[0].offset, 128);
        assert!(v[1].offset > v[0].offset);
        let MatValue::Cell { dims, items } = &v[0].value else {
            panic!("{:?}", v[0].value)
        };
        assert_eq!(dims, &[2, 1]);
        assert_eq!(
            items[1].text().as_deref(),
            Some("n02085782-Japanese_spaniel/n02085782_2.jpg")
        );
        assert_eq!(
            v[1].value,
            MatValue::Numeric {
                dims: vec![2, 1],
                values: vec![1.0, 2.0]
            }
        );
        let a = &v[2].value;
        assert_eq!(a.len(), 2);
        assert_eq!(a.dims(), &[1, 2]);
        assert_eq!(
            a.field(1, "fname").and_then(MatValue::text).as_deref(),
            Some("00002.jpg")
        );
        assert_eq!(
            a.field(1, "bbox_y2").and_then(MatValue::scalar),
            Some(868.0)
        );
        assert_eq!(a.field(0, "class").and_then(MatValue::scalar), Some(14.0));
        assert_eq!(a.field(2, "class"), None);
        assert_eq!(a.field(0, "test"), None);
        let MatValue::Cell { items, .. } = &v[3].value else {
            panic!("{:?}", v[3].value)
        };
        let texts: Vec<Option<String>> = items[..4].iter().map(MatValue::text).collect();
        assert_eq!(
            texts,
            [Some("ab"), Some("utf8 text"), Some("Škoda"), Some("")].map(|t| t.map(String::from))
        );
        let MatValue::Cell { items: inner, .. } = &items[4] else {
            panic!("{:?}", items[4])
        };
        assert_eq!(
            inner[0],
            MatValue::Numeric {
                dims: vec![1, 2],
                values: vec![0.5, -2.0]
            }
        );
        assert!(items[5].is_empty() && items[5].dims() == [0, 0]);
        assert_eq!(v[4].value, MatValue::Other { class: MX_SPARSE });
        // the numeric view keeps the top-level numeric arrays only
        let numeric = mat::parse_mat(&f, "spec.mat").unwrap();
        let names: Vec<&str> = numeric.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["labels", "spiketrain"]);
        // the split-list readers
        assert_eq!(
            mat::stanford_dogs_list(&v, "spec.mat").unwrap(),
            vec![
                ("n02085620-Chihuahua/n02085620_5927.jpg".to_string(), 0),
                ("n02085782-Japanese_spaniel/n02085782_2.jpg".to_string(), 1)
            ]
        );
        let cars = mat::stanford_cars_annotations(&v, "spec.mat").unwrap();
        assert_eq!(
            cars.iter()
                .map(|a| (a.fname.as_str(), a.class))
                .collect::<Vec<_>>(),
            [("00001.jpg", 13), ("00002.jpg", 2)]
        );
        // only two of the four box fields: no box
        assert!(cars.iter().all(|a| a.bbox.is_none() && a.test.is_none()));
        let e = mat::stanford_cars_class_names(&v, "spec.mat")
            .unwrap_err()
            .to_string();
        assert!(e.contains("spec.mat") && e.contains("class_names"), "{e}");
        // every truncation is an error naming the file and a byte offset, never a panic
        for cut in [130, 200, f.len() / 2, f.len() - 1] {
            let e = mat::parse_mat_variables(&f[..cut], "cut.mat")
                .unwrap_err()
                .to_string();
            assert!(e.contains("cut.mat") && e.contains("byte "), "{cut}: {e}");
        }
    }
    // a cell claiming 2^30 elements in a few bytes: refused before allocating
    let huge = file(&[cell("c", &[1 << 15, 1 << 15], &[chars("", "x")])], false);
    let e = mat::parse_mat_variables(&huge, "huge.mat")
        .unwrap_err()
        .to_string();
    assert!(e.contains("huge.mat") && e.contains("cannot fit"), "{e}");
    // a char array whose data does not match its dimensions
    let mut bad = chars("s", "abc");
    bad[8 + 16 + 8 + 4] = 4; // dims 1 × 3 → 1 × 4: matrix tag, array flags, dims tag, 1st dim
    let e = mat::parse_mat_variables(&file(&[bad], true), "char.mat")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("char.mat") && e.contains("decompressed byte 0") && e.contains("4 characters"),
        "{e}"
    );
    // nesting is bounded
    let mut deep = double("", &[1, 1], &[1.0]);
    for _ in 0..40 {
        deep = cell("", &[1, 1], &[deep]);
    }
    let e = mat::parse_mat_variables(&file(&[deep], false), "deep.mat")
        .unwrap_err()
        .to_string();
    assert!(e.contains("deep.mat") && e.contains("nested deeper"), "{e}");
    // MATLAB 7.3 (HDF5) files are named as such
    let mut h5 = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, HDF5 schema 1.00 .".to_vec();
    h5.resize(512, 0);
    let e = mat::parse_mat_variables(&h5, "v73.mat")
        .unwrap_err()
        .to_string();
    assert!(e.contains("v73.mat") && e.contains("7.3"), "{e}");
}

/// `.npz` archives built here (zip written by `npy::write_zip` per the PKWARE APPNOTE, members
/// per the NumPy format spec), as `np.savez` (stored) and `np.savez_compressed` (deflated) lay
/// them out: separate `x`, `y`, `t`, `p` arrays and one structured array.
#[test]
fn npz_separate_and_structured() {
    let col = |descr: &str, data: Vec<u8>, n: usize| {
        npy::write_npy(
            &format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': ({n},), }}"),
            &data,
        )
    };
    let x = col(
        "<i8",
        [3i64, 0, 7].iter().flat_map(|v| v.to_le_bytes()).collect(),
        3,
    );
    let y = col(
        "<u2",
        [4u16, 9, 0].iter().flat_map(|v| v.to_le_bytes()).collect(),
        3,
    );
    let t = col(
        "<f8",
        [100f64, 250.0, 251.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
        3,
    );
    let p = col("|i1", vec![1, 0xff, 1], 3);
    let want = Events {
        x: vec![3, 0, 7],
        y: vec![4, 9, 0],
        t: vec![100, 250, 251],
        p: vec![1, 0, 1],
        width: 8,
        height: 10,
    };
    for deflate in [false, true] {
        let z = npy::write_zip(&[
            ("x.npy", &x, deflate),
            ("y.npy", &y, deflate),
            ("t.npy", &t, deflate),
            ("p.npy", &p, deflate),
        ]);
        assert_eq!(npy::parse_npz_events(&z, "s.npz").unwrap(), want);
    }
    // one structured member
    let mut d = Vec::new();
    for i in 0..3 {
        d.extend_from_slice(&(want.t[i] as i64).to_le_bytes());
        d.extend_from_slice(&(want.x[i] as i16).to_le_bytes());
        d.extend_from_slice(&(want.y[i] as i16).to_le_bytes());
        d.push(want.p[i]);
    }
    let s = npy::write_npy(
        "{'descr': [('t', '<i8'), ('x', '<i2'), ('y', '<i2'), ('p', '|b1')], 'fortran_order': False, 'shape': (3,), }",
        &d,
    );
    let z = npy::write_zip(&[("arr_0.npy", &s, true)]);
    assert_eq!(npy::parse_npz_events(&z, "a.npz").unwrap(), want);
    // unequal lengths, corrupted data and a missing archive are named
    let short = col("<i8", 5i64.to_le_bytes().to_vec(), 1);
    let z = npy::write_zip(&[
        ("x.npy", &short, false),
        ("y.npy", &y, false),
        ("t.npy", &t, false),
        ("p.npy", &p, false),
    ]);
    let e = npy::parse_npz_events(&z, "u.npz").unwrap_err().to_string();
    assert!(e.contains("u.npz") && e.contains("lengths differ"), "{e}");
    let mut z = npy::write_zip(&[("arr_0.npy", &s, false)]);
    z[40] ^= 1;
    let e = npy::parse_npz_events(&z, "c.npz").unwrap_err().to_string();
    assert!(e.contains("c.npz") && e.contains("CRC-32"), "{e}");
    let e = npy::parse_npz_events(&s, "n.npz").unwrap_err().to_string();
    assert!(
        e.contains("n.npz") && e.contains("not a readable zip archive"),
        "{e}"
    );
}

/// The first `packets` packets of an AEDAT 4 file (LZ4-compressed), with `dataTablePosition`
/// set to -1 and every packet re-encoded: Zstd (compression 3, by `ruzstd`) when `zstd`, else
/// kept as LZ4.
fn aedat4_repack(b: &[u8], packets: usize, zstd: bool) -> Vec<u8> {
    let rd32 = |o: usize| i32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
    let hend = 18 + rd32(14) as usize;
    // IOHeader FlatBuffer: root table, its vtable, fields 0 (compression) and 1 (table position)
    let table = 18 + rd32(18) as usize;
    let vt = (table as i64 - rd32(table) as i64) as usize;
    let field =
        |k: usize| table + u16::from_le_bytes([b[vt + 4 + 2 * k], b[vt + 5 + 2 * k]]) as usize;
    let mut out = b[..hend].to_vec();
    out[field(1)..field(1) + 8].copy_from_slice(&(-1i64).to_le_bytes());
    if zstd {
        out[field(0)..field(0) + 4].copy_from_slice(&3i32.to_le_bytes());
    }
    let mut pos = hend;
    for _ in 0..packets {
        let size = rd32(pos + 4) as usize;
        let data = &b[pos + 8..pos + 8 + size];
        let packed = if zstd {
            let mut plain = Vec::new();
            std::io::Read::read_to_end(&mut lz4_flex::frame::FrameDecoder::new(data), &mut plain)
                .unwrap();
            ruzstd::encoding::compress_to_vec(
                &plain[..],
                ruzstd::encoding::CompressionLevel::Fastest,
            )
        } else {
            data.to_vec()
        };
        out.extend_from_slice(&b[pos..pos + 4]);
        out.extend_from_slice(&(packed.len() as i32).to_le_bytes());
        out.extend_from_slice(&packed);
        pos += 8 + size;
    }
    out
}

/// AEDAT 4 with Zstd packets: the real sample's header and first 5 packets, decompressed and
/// re-encoded with `ruzstd` (compression set to 3), must give the same events as the LZ4 original.
#[test]
fn aedat4_zstd_packets() {
    let Some(p) = crate::common::shared_data("events/tonic/sample.aedat4") else {
        return;
    };
    let b = std::fs::read(&p).unwrap();
    let lz4 = aedat4::parse_aedat4(&aedat4_repack(&b, 5, false), "lz4").unwrap();
    let z = aedat4_repack(&b, 5, true);
    let zs = aedat4::parse_aedat4(&z, "zstd.aedat4").unwrap();
    assert_eq!((lz4.compression, zs.compression), (1, 3));
    assert_eq!(zs.packets, 5);
    assert!(!zs.events.is_empty());
    assert_eq!(zs.events, lz4.events);
    // a damaged Zstd frame is an error naming the file and packet
    let hend = 18 + i32::from_le_bytes([z[14], z[15], z[16], z[17]]) as usize;
    let mut bad = z.clone();
    bad[hend + 8..hend + 12].copy_from_slice(&[0, 0, 0, 0]);
    let e = aedat4::parse_aedat4(&bad, "zstd.aedat4")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("zstd.aedat4") && e.contains("packet 0") && e.contains("Zstd"),
        "{e}"
    );
}
