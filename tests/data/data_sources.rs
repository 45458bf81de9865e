//! Data sources end to end: `[data] source = "NAME:PATH"` on the real files of `../shared/data`
//! (MNIST, Fashion-MNIST, NMNISTsmall; skipped with `SKIP:` when absent) and on small folders
//! built here from the published format specifications for the sources with no real sample in
//! this repository (CIFAR-10/100 binary batches, image folders, CIFAR10-DVS AEDAT 2.0 class
//! folders, N-Caltech101 `.bin` class folders, DVS128 Gesture AEDAT 3.1 + `_labels.csv`).

use std::path::Path;

use crate::common::scratch;
use burn::tensor::Device;
use tks::config::RunConfig;
use tks::data::SampleKind;
use tks::data::augment::AugmentConfig;
use tks::data::formats::aedat3::write_aedat3;
use tks::data::source::{DataConfig, check_fits, load};
use tks::layer::Encoder;
use tks::model::{ModelConfig, SmallCnnConfig};
use tks::train::{TrainHooks, train};

fn config(source: String, cache: &Path) -> DataConfig {
    DataConfig {
        val_ratio: 0.0, // the loader's own split
        source,
        cache_dir: Some(cache.to_path_buf()),
        ..DataConfig::default()
    }
}

/// Loading `c` fails with an error that names every one of `needles`.
fn assert_load_error(c: &DataConfig, needles: &[&str]) {
    let e = load(c, 1).unwrap_err().to_string();
    for n in needles {
        assert!(e.contains(n), "`{n}` missing from: {e}");
    }
}

fn histogram(labels: &[u32], n: usize) -> Vec<usize> {
    let mut h = vec![0; n];
    labels.iter().for_each(|&l| h[l as usize] += 1);
    h
}

#[test]
fn mnist_and_fashion_sources_load_the_official_split() {
    for (name, dir, first) in [
        ("mnist", "mnist", [5, 0, 4, 1, 9]),
        ("fashion", "fashion-mnist", [9, 0, 0, 3, 0]),
    ] {
        let Some(path) = crate::common::shared_data(dir) else {
            return;
        };
        let split = load(
            &config(format!("{name}:{}", path.display()), &scratch("idx")),
            4,
        )
        .unwrap();
        assert_eq!((split.train.len(), split.test.len()), (60_000, 10_000));
        assert_eq!(split.train.frame_shape, [1, 28, 28]);
        assert_eq!(split.train.labels[..5], first);
        // normalisation uses the published mean/std
        let mut c = config(format!("{name}:{}", path.display()), &scratch("idx"));
        c.normalize = true;
        c.limit = 1000;
        let n = load(&c, 4).unwrap();
        assert_eq!((n.train.len(), n.test.len()), (1000, 1000));
        assert!(n.train.values.iter().any(|&v| v < 0.0));
    }
}

#[test]
fn nmnist_small_loads_caches_and_rebuilds_corrupt_cache() {
    let Some(dir) = crate::common::shared_data("nmnist/NMNISTsmall") else {
        return;
    };
    let cache = scratch("nmnist-cache");
    let c = config(format!("nmnist:{}", dir.display()), &cache);
    let t0 = std::time::Instant::now();
    let a = load(&c, 5).unwrap();
    let cold = t0.elapsed();
    assert_eq!((a.train.len(), a.test.len()), (1000, 100));
    assert_eq!(a.train.kind, SampleKind::Frames { timesteps: 5 });
    assert_eq!(a.train.frame_shape, [2, 34, 34]);
    assert_eq!(
        histogram(&a.train.labels, 10),
        [97, 116, 99, 93, 105, 92, 94, 117, 87, 100]
    );
    assert_eq!(
        histogram(&a.test.labels, 10),
        [8, 14, 8, 11, 14, 7, 10, 15, 2, 11]
    );
    // every event lands in some frame: 4,518,827 events in the 1,100 files (README)
    let total: f64 = a
        .train
        .values
        .iter()
        .chain(&a.test.values)
        .map(|&v| v as f64)
        .sum();
    assert_eq!(total, 4_518_827.0);
    let files: Vec<_> = std::fs::read_dir(&cache).unwrap().collect();
    assert_eq!(files.len(), 1100, "one cache file per sample");
    let t1 = std::time::Instant::now();
    let b = load(&c, 5).unwrap();
    eprintln!("cold {cold:?}, cached {:?}", t1.elapsed());
    assert_eq!(a.train.values, b.train.values);
    // corrupt every cache file in a different way: all are detected and rebuilt
    for (i, f) in std::fs::read_dir(&cache).unwrap().enumerate() {
        let p = f.unwrap().path();
        let mut bytes = std::fs::read(&p).unwrap();
        match i % 3 {
            0 => bytes.truncate(bytes.len() / 2),
            1 => {
                let k = bytes.len() / 2;
                bytes[k] ^= 0x40;
            }
            _ => bytes[0] = b'X',
        }
        std::fs::write(&p, bytes).unwrap();
    }
    let c2 = load(&c, 5).unwrap();
    assert_eq!(a.train.values, c2.train.values);
    assert_eq!(a.test.values, c2.test.values);
    // different parameters are different cache entries
    let mut r = c.clone();
    r.resize = 32;
    r.split_by = "time".into();
    let d = load(&r, 3).unwrap();
    assert_eq!(d.train.frame_shape, [2, 32, 32]);
    assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 2200);
    // thread count does not change the result
    let mut one = c.clone();
    one.threads = 1;
    one.cache = false;
    assert_eq!(load(&one, 5).unwrap().train.values, a.train.values);
    let _ = std::fs::remove_dir_all(&cache);
}

#[test]
fn nmnist_end_to_end_training_and_shape_errors() {
    let _turn = crate::common::serial();
    let Some(dir) = crate::common::shared_data("nmnist/NMNISTsmall") else {
        return;
    };
    let cache = scratch("nmnist-train");
    let mut run = RunConfig::from_toml(
        &format!(
            "[model]\narch = \"small_cnn\"\nin_channels = 2\ninput_size = 32\nchannels = [8, 16]\n\
             num_classes = 10\n\
             [train]\nepochs = 1\ntimesteps = 4\nbatch_size = 50\n\
             [data]\nsource = \"nmnist:{}\"\nresize = 32\ncache_dir = \"{}\"\n\
             [data.augment]\nhflip = true\ncrop_padding = 2\n",
            dir.display(),
            cache.display()
        ),
        "nmnist.toml",
    )
    .unwrap();
    let data = load(&run.data, run.train.timesteps).unwrap();
    check_fits(
        &data,
        run.model.input_shape(),
        run.model.num_classes(),
        &run.data.source,
    )
    .unwrap();
    assert!(data.train.augment.is_some() && data.test.augment.is_none());
    let objective = run.objective().unwrap();
    let t = std::time::Instant::now();
    let outcome = train(
        &run.model,
        &run.train,
        objective.as_ref(),
        &data,
        &Device::flex(),
        TrainHooks::default(),
    )
    .unwrap();
    eprintln!("1 epoch on NMNISTsmall: {:?}", t.elapsed());
    let r = outcome.final_test();
    assert_eq!(r.samples, 100);
    assert!(r.accuracy > 0.2, "accuracy {} after one epoch", r.accuracy);
    // the sensor size does not fit the model: the error names both shapes
    run.data.resize = 0;
    let data = load(&run.data, run.train.timesteps).unwrap();
    let e = check_fits(
        &data,
        run.model.input_shape(),
        run.model.num_classes(),
        &run.data.source,
    )
    .unwrap_err();
    assert!(
        e.contains("[2, 34, 34]") && e.contains("[2, 32, 32]"),
        "{e}"
    );
    let e = tks::data::source::check_shape(&run.data, run.model.input_shape()).unwrap_err();
    assert!(
        e.contains("[2, 34, 34]") && e.contains("[2, 32, 32]"),
        "{e}"
    );
    for (src, shape) in [
        ("digits", [1, 8, 8]),
        ("dvsdigits", [2, 16, 16]),
        ("mnist:/x", [1, 28, 28]),
        ("cifar100:/x", [3, 32, 32]),
        ("folder:/x", [3, 224, 224]),
        ("ncaltech101:/x", [2, 180, 240]),
        ("dvsgesture:/x", [2, 128, 128]),
    ] {
        let c = DataConfig {
            val_ratio: 0.0, // the loader's own split
            source: src.into(),
            ..DataConfig::default()
        };
        assert_eq!(c.frame_shape(), Some(shape), "{src}");
    }
    let _ = std::fs::remove_dir_all(&cache);
}

#[test]
fn augmentation_is_seeded_and_training_only() {
    let c = DataConfig {
        val_ratio: 0.0, // the loader's own split
        augment: AugmentConfig {
            hflip: true,
            crop_padding: 2,
            cutout: 3,
            ..Default::default()
        },
        ..DataConfig::default()
    };
    let split = load(&c, 2).unwrap();
    let d = &split.train;
    let dev = Device::flex();
    let idx: Vec<usize> = (0..16).collect();
    let vals = |b: tks::data::Batch| b.frames.into_data().try_to_vec::<f32>().unwrap();
    let plain = vals(d.batch(&idx, 2, Encoder::Direct, &dev).unwrap());
    let a = vals(d.train_batch(&idx, 2, Encoder::Direct, &dev, 7, 0).unwrap());
    let b = vals(d.train_batch(&idx, 2, Encoder::Direct, &dev, 7, 0).unwrap());
    let e1 = vals(d.train_batch(&idx, 2, Encoder::Direct, &dev, 7, 1).unwrap());
    assert_eq!(a, b);
    assert_ne!(a, plain);
    assert_ne!(a, e1);
    // a sample's augmentation does not depend on the batch it is in
    let rev: Vec<usize> = idx.iter().rev().copied().collect();
    let r = vals(d.train_batch(&rev, 2, Encoder::Direct, &dev, 7, 0).unwrap());
    let n = 64;
    // frames [T, B, 1, 8, 8]: sample 0 at batch position 0 in `a`, 15 in `r`
    assert_eq!(a[..n], r[15 * n..16 * n]);
    assert!(split.test.augment.is_none());
}

// ---------------------------------------------------------------------------------------------
// synthetic folders built from the format specifications

fn cifar_record(labels: &[u8], v: u8) -> Vec<u8> {
    let mut r = labels.to_vec();
    r.extend(std::iter::repeat_n(v, 3072));
    r
}

#[test]
fn cifar_sources_from_spec_built_batches() {
    // No real CIFAR batch is shipped: files follow the published binary layout.
    let dir = scratch("cifar10");
    let sub = dir.join("cifar-10-batches-bin");
    std::fs::create_dir_all(&sub).unwrap();
    for k in 1..=5 {
        let mut b = Vec::new();
        for i in 0..3u8 {
            b.extend(cifar_record(&[(k as u8 + i) % 10], 10 * k as u8 + i));
        }
        std::fs::write(sub.join(format!("data_batch_{k}.bin")), b).unwrap();
    }
    std::fs::write(sub.join("test_batch.bin"), cifar_record(&[7], 255)).unwrap();
    let s = load(&config(format!("cifar10:{}", dir.display()), &dir), 1).unwrap();
    assert_eq!((s.train.len(), s.test.len()), (15, 1));
    assert_eq!(s.train.frame_shape, [3, 32, 32]);
    assert_eq!(s.train.labels[..4], [1, 2, 3, 2]);
    assert_eq!(s.train.values[3072 * 3], 20.0 / 255.0);
    assert_eq!((s.test.labels[0], s.test.values[0]), (7, 1.0));
    // a wrong record size names the file and record
    std::fs::write(sub.join("data_batch_3.bin"), vec![0u8; 3073 + 10]).unwrap();
    let e = load(&config(format!("cifar10:{}", sub.display()), &dir), 1)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("data_batch_3.bin") && e.contains("record 1"),
        "{e}"
    );
    std::fs::remove_file(sub.join("test_batch.bin")).unwrap();
    let e = load(&config(format!("cifar10:{}", sub.display()), &dir), 1)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("test_batch.bin") || e.contains("data_batch_3"),
        "{e}"
    );

    let dir = scratch("cifar100");
    let mut b = cifar_record(&[3, 42], 1);
    b.extend(cifar_record(&[19, 99], 2));
    std::fs::write(dir.join("train.bin"), &b).unwrap();
    std::fs::write(dir.join("test.bin"), cifar_record(&[0, 5], 3)).unwrap();
    let s = load(&config(format!("cifar100:{}", dir.display()), &dir), 1).unwrap();
    assert_eq!(
        (s.train.labels.clone(), s.train.num_classes),
        (vec![42, 99], 100)
    );
    std::fs::write(dir.join("test.bin"), cifar_record(&[0, 100], 3)).unwrap();
    let e = load(&config(format!("cifar100:{}", dir.display()), &dir), 1)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("test.bin") && e.contains("fine label 100"),
        "{e}"
    );
}

fn write_image(path: &Path, w: u32, h: u32, rgb: [u8; 3]) {
    let img = image::RgbImage::from_pixel(w, h, image::Rgb(rgb));
    img.save(path).unwrap();
}

#[test]
fn image_folder_layouts_and_bad_images() {
    let dir = scratch("folder");
    for (split, n) in [("train", 3), ("val", 1)] {
        for (c, rgb) in [("cat", [255, 0, 0]), ("dog", [0, 0, 255])] {
            let d = dir.join(split).join(c);
            std::fs::create_dir_all(&d).unwrap();
            for i in 0..n {
                let ext = if i % 2 == 0 { "png" } else { "jpg" };
                write_image(&d.join(format!("{i}.{ext}")), 40 + 8 * i, 20, rgb);
            }
        }
    }
    let mut c = config(format!("folder:{}", dir.display()), &dir);
    c.image_size = 16;
    let s = load(&c, 1).unwrap();
    assert_eq!((s.train.len(), s.test.len()), (6, 2));
    assert_eq!(s.train.frame_shape, [3, 16, 16]);
    assert_eq!(s.train.labels, [0, 0, 0, 1, 1, 1]);
    // red image: channel 0 is 1, channel 2 is 0 (png exact; jpeg close)
    assert_eq!((s.train.values[0], s.train.values[2 * 256]), (1.0, 0.0));
    // a class in val/ with no train folder
    std::fs::create_dir_all(dir.join("val/bird")).unwrap();
    assert_load_error(&c, &["bird"]);
    std::fs::remove_dir_all(dir.join("val/bird")).unwrap();
    // an unreadable image names the file
    std::fs::write(dir.join("train/dog/broken.png"), b"\x89PNG not really").unwrap();
    assert_load_error(&c, &["broken.png"]);

    // single root, seeded 9:1 split
    let root = scratch("folder-single");
    for c in ["a", "b"] {
        std::fs::create_dir_all(root.join(c)).unwrap();
        for i in 0..10 {
            write_image(&root.join(c).join(format!("{i}.png")), 8, 8, [i * 20, 0, 0]);
        }
    }
    let mut c = config(format!("folder:{}", root.display()), &root);
    c.image_size = 8;
    let s = load(&c, 1).unwrap();
    assert_eq!((s.train.len(), s.test.len()), (18, 2));
    assert_eq!(histogram(&s.test.labels, 2), [1, 1]);
    assert_eq!(load(&c, 1).unwrap().test.values, s.test.values);
    // CUB-200-2011 split lists (layout of the official archive, 1-based classes)
    let cub = scratch("folder-cub");
    std::fs::create_dir_all(cub.join("images/001.Black_footed_Albatross")).unwrap();
    std::fs::create_dir_all(cub.join("images/002.Laysan_Albatross")).unwrap();
    let mut images = String::new();
    let mut split = String::new();
    let mut classes = String::new();
    for id in 1..=6u8 {
        let class = if id <= 3 { 1 } else { 2 };
        let rel = if class == 1 {
            format!("001.Black_footed_Albatross/b_{id}.jpg")
        } else {
            format!("002.Laysan_Albatross/l_{id}.jpg")
        };
        write_image(&cub.join("images").join(&rel), 12, 10, [id * 40, 0, 0]);
        images.push_str(&format!("{id} {rel}\n"));
        split.push_str(&format!("{id} {}\n", u8::from(id % 3 != 0)));
        classes.push_str(&format!("{id} {class}\n"));
    }
    std::fs::write(cub.join("images.txt"), images).unwrap();
    std::fs::write(cub.join("train_test_split.txt"), split).unwrap();
    std::fs::write(cub.join("image_class_labels.txt"), classes).unwrap();
    let mut c = config(format!("folder:{}", cub.display()), &cub);
    c.image_size = 8;
    let s = load(&c, 1).unwrap();
    assert_eq!(
        (s.train.len(), s.test.len(), s.train.num_classes),
        (4, 2, 2)
    );
    assert_eq!(
        (s.train.labels.clone(), s.test.labels.clone()),
        (vec![0, 0, 1, 1], vec![0, 1])
    );
    std::fs::write(cub.join("image_class_labels.txt"), "1 0\n").unwrap();
    assert_load_error(&c, &["image_class_labels.txt", "image id 1"]);
    // Stanford Dogs text lists, images under Images/
    let dogs = scratch("folder-dogs");
    let (mut tr, mut te) = (String::new(), String::new());
    for (k, class) in ["n02085620-Chihuahua", "n02085782-Japanese_spaniel"]
        .iter()
        .enumerate()
    {
        std::fs::create_dir_all(dogs.join("Images").join(class)).unwrap();
        for i in 0..3u8 {
            let rel = format!("{class}/{}_{i}.png", &class[..9]);
            write_image(&dogs.join("Images").join(&rel), 4, 4, [i * 60, k as u8, 0]);
            let list = if i < 2 { &mut tr } else { &mut te };
            list.push_str(&format!("{rel}\n"));
        }
    }
    std::fs::write(dogs.join("train_list.txt"), tr).unwrap();
    std::fs::write(dogs.join("test_list.txt"), te).unwrap();
    let mut c = config(format!("folder:{}", dogs.display()), &dogs);
    c.image_size = 4;
    let s = load(&c, 1).unwrap();
    assert_eq!(
        (s.train.len(), s.test.len(), s.train.num_classes),
        (4, 2, 2)
    );
    assert_eq!(
        (s.train.labels.clone(), s.test.labels.clone()),
        (vec![0, 0, 1, 1], vec![0, 1])
    );
    std::fs::write(dogs.join("test_list.txt"), "no_slash.png\n").unwrap();
    assert_load_error(&c, &["test_list.txt", "line 1"]);
    // only a broken MAT list: the MAT reader names it
    std::fs::remove_file(dogs.join("test_list.txt")).unwrap();
    std::fs::write(dogs.join("train_list.mat"), b"MATLAB").unwrap();
    assert_load_error(&c, &["train_list.mat", "byte 0"]);

    // Stanford Cars CSV exports (header optional, 1-based classes)
    let cars = scratch("folder-cars");
    for d in ["cars_train", "cars_test"] {
        std::fs::create_dir_all(cars.join(d)).unwrap();
    }
    let mut tr = String::from("filename,x1,y1,x2,y2,class\n");
    let mut te = String::new();
    for i in 0..5u8 {
        let (d, list) = if i < 3 {
            ("cars_train", &mut tr)
        } else {
            ("cars_test", &mut te)
        };
        let f = format!("{:05}.png", i + 1);
        write_image(&cars.join(d).join(&f), 4, 4, [0, i * 50, 0]);
        list.push_str(&format!("{f},0,0,3,3,{}\n", 1 + i % 2));
    }
    std::fs::write(cars.join("anno_train.csv"), tr).unwrap();
    std::fs::write(cars.join("anno_test.csv"), te).unwrap();
    let mut c = config(format!("folder:{}", cars.display()), &cars);
    c.image_size = 4;
    let s = load(&c, 1).unwrap();
    assert_eq!(
        (s.train.len(), s.test.len(), s.train.num_classes),
        (3, 2, 2)
    );
    assert_eq!(
        (s.train.labels.clone(), s.test.labels.clone()),
        (vec![0, 1, 0], vec![1, 0])
    );
    std::fs::write(cars.join("anno_test.csv"), "00004.png,0,0,3,3,0\n").unwrap();
    assert_load_error(&c, &["anno_test.csv", "line 1"]);

    // empty directory
    let empty = scratch("folder-empty");
    let e = load(&config(format!("folder:{}", empty.display()), &empty), 1)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&empty.display().to_string()) && e.contains("no "),
        "{e}"
    );
}

/// AEDAT 2.0 from the spec: `#!AER-DAT2.0` header, then big-endian (address, timestamp).
fn aedat2_file(events: &[(u32, u32, u32, u32)]) -> Vec<u8> {
    let mut b = b"#!AER-DAT2.0\r\n# This is a raw AE data file\r\n".to_vec();
    for &(xr, yr, pr, t) in events {
        let addr = (yr << 8) | (xr << 1) | pr;
        b.extend_from_slice(&addr.to_be_bytes());
        b.extend_from_slice(&t.to_be_bytes());
    }
    b
}

/// Stanford Dogs' `train_list.mat`/`test_list.mat` and Stanford Cars' devkit MAT files
/// (`cars_train_annos.mat`, `cars_test_annos_withlabels.mat`, `cars_meta.mat`) and
/// `cars_annos.mat`, written byte by byte from the MathWorks Level 5 MAT-file specification by
/// `crate::common::mat5` (no real split file is on this machine), plain and `miCOMPRESSED`.
#[test]
fn stanford_dogs_and_cars_mat_split_lists() {
    use crate::common::mat5::*;
    // Dogs: three classes (official labels follow the sorted folders), images under Images/
    let dogs = scratch("folder-dogs-mat");
    let classes = [
        "n02085620-Chihuahua",
        "n02085782-Japanese_spaniel",
        "n02085936-Maltese_dog",
    ];
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for (k, class) in classes.iter().enumerate() {
        std::fs::create_dir_all(dogs.join("Images").join(class)).unwrap();
        for i in 0..3u8 {
            let rel = format!("{class}/{}_{i}.jpg", &class[..9]);
            write_image(
                &dogs.join("Images").join(&rel),
                4,
                4,
                [i * 60, k as u8 * 70, 0],
            );
            let list = if i < 2 { &mut train } else { &mut test };
            list.push((rel, k as u8 + 1));
        }
    }
    let list_file = |items: &[(String, u8)], compress: bool| {
        let n = items.len() as u32;
        let files: Vec<Vec<u8>> = items.iter().map(|(r, _)| chars("", r)).collect();
        let annos: Vec<Vec<u8>> = items
            .iter()
            .map(|(r, _)| chars("", r.trim_end_matches(".jpg")))
            .collect();
        let labels: Vec<f64> = items.iter().map(|(_, l)| *l as f64).collect();
        file(
            &[
                cell("file_list", &[n, 1], &files),
                cell("annotation_list", &[n, 1], &annos),
                double("labels", &[n, 1], &labels),
            ],
            compress,
        )
    };
    let mut c = config(format!("folder:{}", dogs.display()), &dogs);
    c.image_size = 4;
    for compress in [false, true] {
        std::fs::write(dogs.join("train_list.mat"), list_file(&train, compress)).unwrap();
        std::fs::write(dogs.join("test_list.mat"), list_file(&test, !compress)).unwrap();
        let s = load(&c, 1).unwrap();
        assert_eq!(
            (s.train.len(), s.test.len(), s.train.num_classes),
            (6, 3, 3)
        );
        assert_eq!(
            (s.train.labels.clone(), s.test.labels.clone()),
            (vec![0, 0, 1, 1, 2, 2], vec![0, 1, 2])
        );
        // the pixels are those of the listed files: green = 70 · class / 255 (JPEG: ±3/255)
        let per = s.test.sample_len();
        for (k, v) in s.test.values.chunks(per).enumerate() {
            let green = v[16..32].iter().sum::<f32>() / 16.0;
            assert!(
                (green - k as f32 * 70.0 / 255.0).abs() < 3.0 / 255.0,
                "{k}: {green}"
            );
        }
    }
    // a label of 0, and one folder with two labels: errors naming the file and the entry
    let mut bad = test.clone();
    bad[1].1 = 0;
    std::fs::write(dogs.join("test_list.mat"), list_file(&bad, false)).unwrap();
    assert_load_error(&c, &["test_list.mat", "entry 2", "byte "]);
    let mut bad = train.clone();
    bad[1].1 = 3;
    std::fs::write(dogs.join("train_list.mat"), list_file(&bad, true)).unwrap();
    assert_load_error(&c, &["train_list.mat", "Chihuahua", "labels 1 and 3"]);
    std::fs::remove_file(dogs.join("test_list.mat")).unwrap();
    std::fs::write(dogs.join("train_list.mat"), list_file(&train, true)).unwrap();
    assert_load_error(&c, &["test_list.mat"]);

    // Cars devkit: uint8/uint16 box and class fields, as the devkit stores them
    let cars = scratch("folder-cars-mat");
    for d in ["cars_train", "cars_test", "devkit"] {
        std::fs::create_dir_all(cars.join(d)).unwrap();
    }
    let anno = |fname: &str, class: u8, extra: &[(&str, u8)]| {
        let mut v = vec![
            uint_scalar("", MX_UINT8, 39),
            uint_scalar("", MX_UINT8, 116),
            uint_scalar("", MX_UINT16, 569),
            uint_scalar("", MX_UINT16, 375),
            uint_scalar("", MX_UINT8, class as u16),
            chars("", fname),
        ];
        v.extend(
            extra
                .iter()
                .map(|(_, x)| uint_scalar("", MX_UINT8, *x as u16)),
        );
        v
    };
    let annotations = |items: &[(String, u8, Option<u8>)], path_field: &str| {
        let mut fields = vec![
            "bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", path_field,
        ];
        let mut values = Vec::new();
        for (f, class, test) in items {
            let extra: Vec<(&str, u8)> = test.iter().map(|t| ("test", *t)).collect();
            values.extend(anno(f, *class, &extra));
        }
        if items.iter().any(|i| i.2.is_some()) {
            fields.push("test");
        }
        structure("annotations", &[1, items.len() as u32], &fields, &values)
    };
    let names = |n: usize| {
        let items: Vec<Vec<u8>> = (0..n)
            .map(|k| chars("", &format!("Make Model {k}")))
            .collect();
        cell("class_names", &[1, n as u32], &items)
    };
    let (mut tr, mut te) = (Vec::new(), Vec::new());
    for i in 0..5u8 {
        let (d, list) = if i < 3 {
            ("cars_train", &mut tr)
        } else {
            ("cars_test", &mut te)
        };
        let f = format!("{:05}.jpg", i + 1);
        write_image(&cars.join(d).join(&f), 4, 4, [0, i * 50, 0]);
        list.push((f, 1 + i % 3, None));
    }
    std::fs::write(
        cars.join("devkit/cars_train_annos.mat"),
        file(&[annotations(&tr, "fname")], true),
    )
    .unwrap();
    std::fs::write(cars.join("devkit/cars_meta.mat"), file(&[names(4)], false)).unwrap();
    let mut c = config(format!("folder:{}", cars.display()), &cars);
    c.image_size = 4;
    // without the labelled test annotations: named
    std::fs::write(
        cars.join("devkit/cars_test_annos.mat"),
        file(&[annotations(&te, "fname")], true),
    )
    .unwrap();
    assert_load_error(&c, &["cars_test_annos_withlabels.mat"]);
    for dir in ["", "devkit"] {
        let p = cars.join(dir).join("cars_test_annos_withlabels.mat");
        std::fs::write(&p, file(&[annotations(&te, "fname")], dir.is_empty())).unwrap();
        let s = load(&c, 1).unwrap();
        assert_eq!(
            (s.train.len(), s.test.len(), s.train.num_classes),
            (3, 2, 4),
            "class count from cars_meta.mat"
        );
        assert_eq!(
            (s.train.labels.clone(), s.test.labels.clone()),
            (vec![0, 1, 2], vec![0, 1])
        );
        std::fs::remove_file(&p).unwrap();
    }
    // a class beyond `class_names`
    std::fs::write(cars.join("devkit/cars_meta.mat"), file(&[names(2)], true)).unwrap();
    std::fs::write(
        cars.join("cars_test_annos_withlabels.mat"),
        file(&[annotations(&te, "fname")], false),
    )
    .unwrap();
    assert_load_error(&c, &["cars_train_annos.mat", "entry 3", "names 2"]);

    // cars_annos.mat: relative_im_path and `test` in one struct, class_names beside it
    let all = scratch("folder-cars-annos");
    std::fs::create_dir_all(all.join("car_ims")).unwrap();
    let mut items = Vec::new();
    for i in 0..6u8 {
        let f = format!("car_ims/{:06}.jpg", i + 1);
        write_image(&all.join(&f), 4, 4, [i * 40, 0, 0]);
        items.push((f, 1 + i % 2, Some(u8::from(i >= 4))));
    }
    let write = |items: &[(String, u8, Option<u8>)], compress: bool| {
        let f = file(
            &[annotations(items, "relative_im_path"), names(2)],
            compress,
        );
        std::fs::write(all.join("cars_annos.mat"), f).unwrap();
    };
    let mut c = config(format!("folder:{}", all.display()), &all);
    c.image_size = 4;
    for compress in [false, true] {
        write(&items, compress);
        let s = load(&c, 1).unwrap();
        assert_eq!(
            (s.train.len(), s.test.len(), s.train.num_classes),
            (4, 2, 2)
        );
        assert_eq!(
            (s.train.labels.clone(), s.test.labels.clone()),
            (vec![0, 1, 0, 1], vec![0, 1])
        );
    }
    items[2].2 = Some(2);
    write(&items, true);
    assert_load_error(&c, &["cars_annos.mat", "entry 3", "`test`"]);
}

#[test]
fn cifar10dvs_and_ncaltech101_class_folders_split_9_to_1() {
    // No real CIFAR10-DVS / N-Caltech101 recording is shipped: files follow the specs.
    let dir = scratch("c10dvs");
    let classes = ["airplane", "automobile", "bird"];
    for (k, c) in classes.iter().enumerate() {
        std::fs::create_dir_all(dir.join(c)).unwrap();
        for i in 0..10u32 {
            let ev: Vec<_> = (0..20)
                .map(|j| (j % 128, (k as u32 * 7 + i) % 128, j % 2, j * 10))
                .collect();
            std::fs::write(
                dir.join(c).join(format!("cifar10_{c}_{i}.aedat")),
                aedat2_file(&ev),
            )
            .unwrap();
        }
    }
    let mut c = config(format!("cifar10dvs:{}", dir.display()), &dir.join(".cache"));
    c.resize = 48;
    let s = load(&c, 4).unwrap();
    assert_eq!((s.train.len(), s.test.len()), (27, 3));
    assert_eq!(histogram(&s.test.labels, 10)[..3], [1, 1, 1]);
    assert_eq!(s.train.frame_shape, [2, 48, 48]);
    let per = s.train.sample_len();
    // area resize scales totals by 48²/128²
    let sum: f32 = s.train.values[..per].iter().sum();
    assert!(
        (sum - 20.0 * 48.0 * 48.0 / (128.0 * 128.0)).abs() < 1e-3,
        "{sum}"
    );
    // another seed, another split; the same seed, the same split
    let mut c2 = c.clone();
    c2.split_seed = 5;
    assert_ne!(load(&c2, 4).unwrap().test.values, s.test.values);
    assert_eq!(load(&c, 4).unwrap().test.values, s.test.values);
    // a truncated recording names the file
    std::fs::write(
        dir.join("bird/cifar10_bird_3.aedat"),
        b"#!AER-DAT2.0\r\n\x00\x01\x02",
    )
    .unwrap();
    let e = load(&c, 4).unwrap_err().to_string();
    assert!(e.contains("cifar10_bird_3.aedat"), "{e}");

    let dir = scratch("ncal");
    for c in ["BACKGROUND_Google", "Faces_easy", "accordion"] {
        std::fs::create_dir_all(dir.join(c)).unwrap();
        for i in 0..10u8 {
            let mut b = Vec::new();
            for j in 0..10u8 {
                // x, y, polarity|t23, t, t (40-bit records, N-MNIST layout)
                b.extend_from_slice(&[200 + j, 170 + (i % 5), 0x80, 0, j]);
            }
            std::fs::write(dir.join(c).join(format!("image_{i:04}.bin")), b).unwrap();
        }
    }
    let s = load(
        &config(
            format!("ncaltech101:{}", dir.display()),
            &dir.join(".cache"),
        ),
        2,
    )
    .unwrap();
    assert_eq!((s.train.len(), s.test.len()), (27, 3));
    assert_eq!(s.train.frame_shape, [2, 180, 240]);
    assert_eq!(s.train.num_classes, 101);
}

#[test]
fn dvsgesture_segments_become_samples() {
    // No real DVS128 Gesture recording is shipped: AEDAT 3.1 files built from the spec.
    let dir = scratch("gesture");
    let mut train_list = String::new();
    for user in [1, 2, 24] {
        let name = format!("user{user:02}_fluorescent");
        let ev: Vec<_> = (0..300u32)
            .map(|i| {
                (
                    (i % 128) as u16,
                    (i / 3 % 128) as u16,
                    (i % 2) as u8,
                    i * 100,
                )
            })
            .collect();
        std::fs::write(dir.join(format!("{name}.aedat")), write_aedat3(&[(0, ev)])).unwrap();
        std::fs::write(
            dir.join(format!("{name}_labels.csv")),
            "class,startTime_usec,endTime_usec\r\n1,0,10000\r\n11,10000,30000\r\n",
        )
        .unwrap();
        if user <= 23 {
            train_list.push_str(&format!("{name}.aedat\n"));
        }
    }
    let c = config(format!("dvsgesture:{}", dir.display()), &dir.join(".cache"));
    // without lists: users 1..=23 train
    let s = load(&c, 4).unwrap();
    assert_eq!((s.train.len(), s.test.len()), (4, 2));
    assert_eq!(s.train.labels, [0, 10, 0, 10]);
    assert_eq!(s.train.frame_shape, [2, 128, 128]);
    let per = s.train.sample_len();
    let sums: Vec<f32> = s.train.values.chunks(per).map(|c| c.iter().sum()).collect();
    assert_eq!(sums, [100.0, 200.0, 100.0, 200.0]);
    // with the official lists
    std::fs::write(dir.join("trials_to_train.txt"), &train_list).unwrap();
    std::fs::write(dir.join("trials_to_test.txt"), "user24_fluorescent.aedat\n").unwrap();
    let s2 = load(&c, 4).unwrap();
    assert_eq!(s2.train.values, s.train.values);
    // a bad label file names itself and the line
    std::fs::write(
        dir.join("user02_fluorescent_labels.csv"),
        "class,s,e\n12,0,5\n",
    )
    .unwrap();
    let e = load(&c, 4).unwrap_err().to_string();
    assert!(
        e.contains("user02_fluorescent_labels.csv") && e.contains("line 2"),
        "{e}"
    );
}

#[test]
fn bad_sources_and_paths_are_named() {
    let e = load(&config("nmnist:/no/such/dir".into(), Path::new("/tmp")), 4)
        .unwrap_err()
        .to_string();
    assert!(e.contains("/no/such/dir"), "{e}");
    let e = load(&config("mnist:/no/where".into(), Path::new("/tmp")), 4)
        .unwrap_err()
        .to_string();
    assert!(e.contains("/no/where"), "{e}");
    let e = RunConfig::from_toml("[data]\nsource = \"imagenet:/x\"\n", "r.toml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("data.source") && e.contains("imagenet"), "{e}");
    let e = RunConfig::from_toml("[data]\nsplit_by = \"frames\"\n", "r.toml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("data.split_by"), "{e}");
    let e = RunConfig::from_toml("[data.augment]\nflip = true\n", "r.toml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("flip"), "{e}");
    // the procedural DVS digits: event frames from the embedded data
    let dd = load(&config("dvsdigits".into(), Path::new("/tmp")), 3).unwrap();
    assert_eq!((dd.train.len(), dd.train.frame_shape), (1442, [2, 16, 16]));
    // digits default and small_cnn fit (its `auto` dimensions resolved from the data)
    let mut run = RunConfig::default();
    let d = load(&run.data, 4).unwrap();
    tks::fit::resolve(&mut run.model, &run.data, &d).unwrap();
    assert_eq!(run.model.input_shape(), [1, 8, 8]);
    check_fits(
        &d,
        run.model.input_shape(),
        run.model.num_classes(),
        "digits",
    )
    .unwrap();
    let m = ModelConfig::SmallCnn(SmallCnnConfig {
        num_classes: 5.into(),
        input_size: 8.into(),
        ..Default::default()
    });
    let e = check_fits(&d, m.input_shape(), m.num_classes(), "digits").unwrap_err();
    assert!(e.contains("10 classes") && e.contains("5"), "{e}");
}

#[test]
fn nmnist_train_test_folders_as_distributed() {
    // The official N-MNIST archive layout: Train/<digit>/*.bin, Test/<digit>/*.bin.
    let dir = scratch("nmnist-official");
    for (split, digit, n) in [("Train", "0", 2), ("Train", "7", 3), ("Test", "0", 1)] {
        let d = dir.join(split).join(digit);
        std::fs::create_dir_all(&d).unwrap();
        for i in 0..n {
            std::fs::write(
                d.join(format!("{i:05}.bin")),
                [1, 2, 0x80, 0, 5, 33, 33, 0, 0, 9],
            )
            .unwrap();
        }
    }
    let mut c = config(format!("nmnist:{}", dir.display()), &dir.join(".cache"));
    c.cache = false;
    let s = load(&c, 2).unwrap();
    assert_eq!((s.train.len(), s.test.len()), (5, 1));
    assert_eq!(s.train.labels, [0, 0, 7, 7, 7]);
    let empty = scratch("nmnist-empty");
    let e = load(&config(format!("nmnist:{}", empty.display()), &empty), 2)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("train1K.txt") && e.contains(&empty.display().to_string()),
        "{e}"
    );
}
