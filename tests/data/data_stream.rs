//! Streamed (lazily decoded) datasets: the same batches as the in-memory set, whatever the
//! thread count or prefetch depth; bad files reported at load; training and evaluation run on
//! them. Plus N-Caltech101's out-of-sensor events and the I/O error message. Files are built
//! here from the published format specifications (no real sample is needed).

use std::path::Path;

use crate::common::scratch;
use burn::tensor::Device;
use tks::config::RunConfig;
use tks::data::augment::AugmentConfig;
use tks::data::source::{DataConfig, load};
use tks::data::{Dataset, Split};
use tks::layer::Encoder;
use tks::train::{TrainHooks, train};

fn image_root(root: &Path) {
    for (k, c) in ["a", "b", "c"].iter().enumerate() {
        std::fs::create_dir_all(root.join(c)).unwrap();
        for i in 0..7u32 {
            let img = image::RgbImage::from_fn(10 + i, 9, |x, y| {
                image::Rgb([(x * 20) as u8, (y * 25) as u8, (k as u32 * 90 + i) as u8])
            });
            img.save(root.join(c).join(format!("{i}.png"))).unwrap();
        }
    }
}

/// Every batch of an epoch (through `Dataset::batches`), as host values and labels.
fn epoch(d: &Dataset, seed: u64, e: usize, bs: usize) -> Vec<(Vec<f32>, Vec<u32>)> {
    let order = d.order(true, seed, e);
    d.batches(&order, bs, Some((seed, e)))
        .map(|b| {
            let b = b.unwrap();
            (b.values, b.labels)
        })
        .collect()
}

fn config(root: &Path) -> DataConfig {
    DataConfig {
        val_ratio: 0.0, // the loader's own split
        source: format!("folder:{}", root.display()),
        image_size: 8,
        cache_dir: Some(root.join(".cache")),
        normalize: true,
        augment: AugmentConfig {
            hflip: true,
            crop_padding: 2,
            cutout: 3,
            ..Default::default()
        },
        ..DataConfig::default()
    }
}

#[test]
fn streamed_images_match_in_memory_for_any_threads_and_prefetch() {
    let root = scratch("images");
    image_root(&root.0);
    let mut c = config(&root.0);
    c.stream = Some(false);
    let mem = load(&c, 2).unwrap();
    assert!(!mem.train.is_lazy());
    let reference = epoch(&mem.train, 3, 1, 4);
    let dev = Device::flex();
    let vals = |b: tks::data::Batch| b.frames.into_data().try_to_vec::<f32>().unwrap();
    for (threads, prefetch) in [(1, 0), (1, 1), (4, 3), (0, 2)] {
        c.stream = Some(true);
        c.threads = threads;
        c.prefetch = prefetch;
        let s = load(&c, 2).unwrap();
        assert!(s.train.is_lazy() && s.test.is_lazy());
        assert!(s.train.values.is_empty());
        assert_eq!(
            (s.train.len(), s.train.labels.clone()),
            (mem.train.len(), mem.train.labels.clone())
        );
        assert_eq!(
            s.train.batches(&[0, 1, 2], 2, None).is_prefetching(),
            prefetch > 0
        );
        assert_eq!(epoch(&s.train, 3, 1, 4), reference, "{threads} {prefetch}");
        // the plain batch methods give the same tensors too
        let idx = [5, 0, 17];
        assert_eq!(
            vals(s.test.batch(&[0, 1], 3, Encoder::Direct, &dev).unwrap()),
            vals(mem.test.batch(&[0, 1], 3, Encoder::Direct, &dev).unwrap())
        );
        assert_eq!(
            vals(
                s.train
                    .train_batch(&idx, 2, Encoder::Direct, &dev, 9, 4)
                    .unwrap()
            ),
            vals(
                mem.train
                    .train_batch(&idx, 2, Encoder::Direct, &dev, 9, 4)
                    .unwrap()
            )
        );
    }
    // the automatic choice: above `stream_above_mb` only
    c.stream = None;
    c.stream_above_mb = 0;
    assert!(load(&c, 1).unwrap().train.is_lazy());
    c.stream_above_mb = 1;
    assert!(!load(&c, 1).unwrap().train.is_lazy());
    // a broken image is reported at load time, naming the file
    c.stream = Some(true);
    std::fs::write(root.0.join("b/broken.png"), b"\x89PNG not really").unwrap();
    let e = load(&c, 1).unwrap_err().to_string();
    assert!(e.contains("broken.png"), "{e}");
    std::fs::remove_file(root.0.join("b/broken.png")).unwrap();
    // a file removed after loading: the batch iterator reports it, it does not panic
    let s = load(&c, 1).unwrap();
    for f in std::fs::read_dir(root.0.join("a")).unwrap() {
        std::fs::remove_file(f.unwrap().path()).unwrap();
    }
    let all: Vec<usize> = (0..s.train.len()).collect();
    let results: Vec<_> = s.train.batches(&all, 4, None).collect();
    let e = results
        .iter()
        .find_map(|r| r.as_ref().err())
        .expect("a missing file fails")
        .to_string();
    assert!(
        e.contains("No such file") || e.contains("cannot find"),
        "{e}"
    );
    // the producer stops at the first error
    assert!(results.last().unwrap().is_err());
    // and a single batch of the vanished files is an error too, not a panic
    let Err(e) = s.train.batch(&all, 1, Encoder::Direct, &dev) else {
        panic!("a batch of missing files must fail");
    };
    let e = e.to_string();
    assert!(
        e.contains("No such file") || e.contains("cannot find"),
        "{e}"
    );
    // dropping an iterator early does not hang
    let it = s.test.batches(&[0, 1, 2, 3], 1, None);
    drop(it);
}

fn aedat2_file(events: &[(u32, u32, u32, u32)]) -> Vec<u8> {
    // jAER AEDAT 2.0: header lines, then big-endian (address, timestamp); CIFAR10-DVS layout
    let mut b = b"#!AER-DAT2.0\r\n# built from the spec\r\n".to_vec();
    for &(xr, yr, pr, t) in events {
        let addr = (yr << 8) | (xr << 1) | pr;
        b.extend_from_slice(&addr.to_be_bytes());
        b.extend_from_slice(&t.to_be_bytes());
    }
    b
}

fn cifar10dvs_root(root: &Path) {
    for (k, c) in ["airplane", "automobile"].iter().enumerate() {
        std::fs::create_dir_all(root.join(c)).unwrap();
        for i in 0..10u32 {
            let ev: Vec<_> = (0..40)
                .map(|j| {
                    (
                        (j * 3 + i) % 128,
                        (k as u32 * 11 + i + j) % 128,
                        j % 2,
                        j * 10,
                    )
                })
                .collect();
            std::fs::write(
                root.join(c).join(format!("cifar10_{c}_{i}.aedat")),
                aedat2_file(&ev),
            )
            .unwrap();
        }
    }
}

#[test]
fn streamed_events_match_in_memory_and_train() {
    let _turn = crate::common::serial();
    let root = scratch("events");
    cifar10dvs_root(&root.0);
    let toml = |stream: bool| {
        format!(
            "[model]\narch = \"small_cnn\"\nin_channels = 2\ninput_size = 16\nchannels = [4, 8]\n\
             [train]\nepochs = 2\ntimesteps = 3\nbatch_size = 4\n\
             [data]\nsource = \"cifar10dvs:{}\"\nresize = 16\ncache_dir = \"{}\"\n\
             stream = {stream}\nprefetch = 1\n\
             [data.augment]\nhflip = true\ncrop_padding = 2\n",
            root.0.display(),
            root.0.join(".cache").display()
        )
    };
    let mut results = Vec::new();
    for stream in [false, true] {
        let run = RunConfig::from_toml(&toml(stream), "s.toml").unwrap();
        let data: Split = load(&run.data, run.train.timesteps).unwrap();
        assert_eq!(data.train.is_lazy(), stream);
        // 18 training recordings: 2 (one per class) become the validation set, which a
        // streamed set keeps on disk too.
        let val = data.val.as_ref().unwrap();
        assert_eq!((data.train.len(), val.len(), data.test.len()), (16, 2, 2));
        assert_eq!(val.is_lazy(), stream);
        let batches = epoch(&data.train, 5, 0, 4);
        let objective = run.objective().unwrap();
        let outcome = train(
            &run.model,
            &run.train,
            objective.as_ref(),
            &data,
            &Device::flex(),
            TrainHooks::default(),
        )
        .unwrap();
        results.push((
            batches,
            outcome.final_test().accuracy,
            outcome.best.as_ref().map(|b| (b.epoch, b.val_accuracy)),
        ));
    }
    assert_eq!(results[0].0, results[1].0);
    // the same data in the same order: the same training run
    assert_eq!(results[0].1, results[1].1);
    // the cache holds the frames: a streamed load with the cache off re-parses and agrees
    let mut c = RunConfig::from_toml(&toml(true), "s.toml").unwrap().data;
    c.cache = false;
    let d = load(&c, 3).unwrap();
    assert_eq!(epoch(&d.train, 5, 0, 4), results[0].0);
}

#[test]
fn ncaltech101_events_outside_the_sensor_are_skipped() {
    // N-Caltech101 .bin (40-bit ATIS records): a recording whose events start at x = 20,
    // y = 10 and one event at x = 255, y = 239 that stays outside 240 × 180 after the shift.
    let root = scratch("ncal");
    for c in ["Faces_easy", "accordion"] {
        std::fs::create_dir_all(root.0.join(c)).unwrap();
        for i in 0..10u8 {
            let mut b = Vec::new();
            for j in 0..10u8 {
                b.extend_from_slice(&[20 + j, 10 + i, 0x80, 0, j]);
            }
            b.extend_from_slice(&[255, 239, 0x80, 0, 11]);
            std::fs::write(root.0.join(c).join(format!("image_{i:04}.bin")), b).unwrap();
        }
    }
    let c = DataConfig {
        val_ratio: 0.0, // the loader's own split
        source: format!("ncaltech101:{}", root.0.display()),
        cache: false,
        ..DataConfig::default()
    };
    let s = load(&c, 1).unwrap();
    assert_eq!((s.train.len(), s.test.len()), (18, 2));
    assert_eq!(s.train.frame_shape, [2, 180, 240]);
    let per = s.train.sample_len();
    for k in 0..s.train.len() {
        let v = &s.train.values[k * per..(k + 1) * per];
        // ten ON events kept, the outlier skipped; the first at the origin
        assert_eq!(v.iter().sum::<f32>(), 10.0);
        assert_eq!(v[180 * 240], 1.0, "ON channel (1), y = 0, x = 0");
    }
}

#[test]
fn a_missing_path_names_the_os_error_once() {
    let missing = std::env::temp_dir().join("tks-no-such-dir-for-this-test/mnist");
    let c = DataConfig {
        val_ratio: 0.0, // the loader's own split
        source: format!("mnist:{}", missing.display()),
        ..DataConfig::default()
    };
    let e = load(&c, 1).unwrap_err();
    // the whole chain, as the binary prints it (`{:#}` of anyhow)
    let mut chain = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        chain.push_str(&format!(": {s}"));
        source = s.source();
    }
    let os = std::io::Error::from(std::io::ErrorKind::NotFound).to_string();
    assert!(chain.contains(&missing.display().to_string()), "{chain}");
    let reason = "No such file or directory";
    assert_eq!(chain.matches(reason).count(), 1, "{chain} ({os})");
    assert_eq!(
        chain,
        format!("{}: {reason} (os error 2)", missing.display())
    );
}

/// `train/<class>/` and `val/<class>/` PNG folders, streamed; a run trained on it by the binary.
fn streamed_image_run(root: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    for split in ["train", "val"] {
        for (k, c) in ["a", "b"].iter().enumerate() {
            std::fs::create_dir_all(root.join(split).join(c)).unwrap();
            for i in 0..4u32 {
                let img = image::RgbImage::from_fn(8, 8, |x, y| {
                    image::Rgb([(x * 30) as u8, (y * 30) as u8, (k as u32 * 200 + i) as u8])
                });
                img.save(root.join(split).join(c).join(format!("{i}.png")))
                    .unwrap();
            }
        }
    }
    let config = root.join("run.toml");
    std::fs::write(
        &config,
        format!(
            "[model]\narch = \"small_cnn\"\nin_channels = 3\ninput_size = 8\nchannels = [4, 8]\n\
             [train]\nepochs = 1\ntimesteps = 2\nbatch_size = 4\n\
             [data]\nsource = \"folder:{}\"\nimage_size = 8\nstream = true\n",
            root.display()
        ),
    )
    .unwrap();
    (config, root.join("run"))
}

/// Cuts the PNG `path` two bytes into its first IDAT chunk's data: the header check made at
/// load time (which reads up to the first IDAT) passes, decoding the pixels fails.
fn truncate_after_png_header(path: &Path) {
    let b = std::fs::read(path).unwrap();
    let idat = b.windows(4).position(|w| w == b"IDAT").unwrap();
    std::fs::write(path, &b[..idat + 6]).unwrap();
}

#[test]
fn a_streamed_file_broken_after_loading_is_an_error_not_a_panic() {
    let _turn = crate::common::serial();
    let root = scratch("broken-after-load");
    let (config, run) = streamed_image_run(&root.0);
    // library: the test pass at the end of an epoch returns the error (it used to panic)
    let rc = RunConfig::from_toml(&std::fs::read_to_string(&config).unwrap(), "run.toml").unwrap();
    let data = load(&rc.data, rc.train.timesteps).unwrap();
    assert!(data.test.is_lazy());
    let victim = root.0.join("val/b/2.png");
    let original = std::fs::read(&victim).unwrap();
    truncate_after_png_header(&victim);
    let objective = rc.objective().unwrap();
    let Err(e) = train(
        &rc.model,
        &rc.train,
        objective.as_ref(),
        &data,
        &Device::flex(),
        TrainHooks::default(),
    ) else {
        panic!("a broken test file fails training");
    };
    assert!(
        matches!(e, tks::error::TrainError::Data(_)) && e.to_string().contains("val/b/2.png"),
        "{e}"
    );
    let mut fitted = rc.model.clone();
    tks::fit::resolve(&mut fitted, &rc.data, &data).unwrap();
    let model = fitted.init(&Device::flex()).unwrap();
    let e = tks::eval::evaluate(&model, &data.test, 2, 4, Encoder::Direct, &Device::flex())
        .expect_err("a broken test file fails evaluation");
    assert!(e.to_string().contains("val/b/2.png"), "{e}");
    // binary: train on the intact files, then break one so that `eval`, `sweep`, `anytime`
    // and `report --tsne-points` load the set (the header check passes) and fail decoding it
    std::fs::write(&victim, &original).unwrap();
    let (c, r) = (config.display().to_string(), run.display().to_string());
    let (ok, out, err) = crate::common::run_tks(&["train", "--config", &c, "--out", &r]);
    assert!(ok, "{out}\n{err}");
    truncate_after_png_header(&victim);
    let out_dir = root.0.join("report").display().to_string();
    for args in [
        vec!["eval", "--run", &r],
        vec!["sweep", "--run", &r, "--max-t", "2"],
        vec!["anytime", "--run", &r],
        vec!["report", &r, "--out", &out_dir, "--tsne-points", "4"],
    ] {
        let (ok, out, err) = crate::common::run_tks(&args);
        assert!(!ok, "{args:?} succeeded on a broken file:\n{out}");
        assert!(
            err.contains("evaluating on")
                && err.contains("val/b/2.png")
                && !err.contains("panicked"),
            "{args:?}: {err}"
        );
    }
}
