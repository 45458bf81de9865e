//! Unit tests of [`super`]: operations against PIL's results, the policies' draws.

use super::*;
use rand::SeedableRng;

fn img(c: usize, h: usize, w: usize, data: Vec<u8>) -> Image8 {
    assert_eq!(data.len(), c * h * w);
    Image8 { c, h, w, data }
}

fn dot(h: usize, w: usize, y: usize, x: usize) -> Image8 {
    let mut d = vec![0u8; h * w];
    d[y * w + x] = 200;
    img(1, h, w, d)
}

fn where_is(i: &Image8, v: u8) -> Vec<(usize, usize)> {
    (0..i.h * i.w)
        .filter(|&k| i.data[k] == v)
        .map(|k| (k / i.w, k % i.w))
        .collect()
}

#[test]
fn invert_twice_is_identity_and_solarize_posterize_by_hand() {
    let data: Vec<u8> = (0..=255).collect();
    let mut a = img(1, 16, 16, data.clone());
    a.invert();
    assert_eq!(a.data[0], 255);
    assert_eq!(a.data[200], 55);
    a.invert();
    assert_eq!(a.data, data);
    let mut s = img(1, 1, 4, vec![0, 127, 128, 255]);
    s.solarize(128.0);
    assert_eq!(s.data, [0, 127, 127, 0]);
    let mut s = img(1, 1, 2, vec![0, 255]);
    s.solarize(256.0); // level 0: nothing at or above 256
    assert_eq!(s.data, [0, 255]);
    let mut p = img(1, 1, 4, vec![0b1111_1111, 0b1010_1010, 0b0001_0111, 7]);
    p.posterize(4);
    assert_eq!(p.data, [0b1111_0000, 0b1010_0000, 0b0001_0000, 0]);
    p.posterize(8);
    assert_eq!(p.data, [0b1111_0000, 0b1010_0000, 0b0001_0000, 0]);
    p.posterize(1);
    assert_eq!(p.data, [128, 128, 0, 0]);
    // the reference magnitude tables
    assert_eq!(
        (0..10)
            .map(|i| linspace(8.0, 4.0, i).round() as u32)
            .collect::<Vec<_>>(),
        [8, 8, 7, 7, 6, 6, 5, 5, 4, 4]
    );
    assert_eq!(linspace(256.0, 0.0, 9), 0.0);
}

#[test]
fn shear_translate_and_rotate_move_a_single_pixel() {
    // shear x by 0.5: row y takes input x + ½ + 0.5 (y + ½); (y=2, x=2) → x = 1
    let mut s = dot(5, 5, 2, 2);
    s.affine([1.0, 0.5, 0.0, 0.0, 1.0, 0.0], 0);
    assert_eq!(where_is(&s, 200), [(2, 1)]);
    // shear y by -0.5 on (y=1, x=4): column x takes input y + ½ − 0.5 (x + ½) → y = 3
    let mut s = dot(5, 5, 1, 4);
    s.affine([1.0, 0.0, 0.0, -0.5, 1.0, 0.0], 0);
    assert_eq!(where_is(&s, 200), [(3, 4)]);
    // translate x by +2 moves content left by 2, with grey fill entering on the right
    let mut t = dot(3, 5, 1, 3);
    t.affine([1.0, 0.0, 2.0, 0.0, 1.0, 0.0], FILL);
    assert_eq!(where_is(&t, 200), [(1, 1)]);
    assert_eq!(where_is(&t, FILL).len(), 6);
    // rotate 90° counter-clockwise: right middle → top middle; 0° is identity
    let mut r = dot(3, 3, 1, 2);
    r.rotate(90.0, 0);
    assert_eq!(where_is(&r, 200), [(0, 1)]);
    let mut r = dot(3, 3, 0, 0);
    r.rotate(90.0, 7);
    assert_eq!(where_is(&r, 200), [(2, 0)]);
    let d = dot(4, 6, 3, 1);
    let mut r = d.clone();
    r.rotate(0.0, 9);
    assert_eq!(r, d);
    // four quarter turns of a square image come back
    let data: Vec<u8> = (0..16).collect();
    let mut q = img(1, 4, 4, data.clone());
    for _ in 0..4 {
        q.rotate(90.0, 0);
    }
    assert_eq!(q.data, data);
}

#[test]
fn enhance_ops_by_hand() {
    // brightness: factor 0 = black, 1 = identity, 2 doubles (clamped)
    let mut b = img(1, 1, 3, vec![10, 100, 200]);
    b.brightness(2.0);
    assert_eq!(b.data, [20, 200, 255]);
    b.brightness(0.0);
    assert_eq!(b.data, [0, 0, 0]);
    // colour 0 = grey (luma), 1 = identity; a grey image does not change
    let mut c = img(3, 1, 1, vec![255, 0, 0]);
    let orig = c.clone();
    c.color(1.0);
    assert_eq!(c, orig);
    c.color(0.0);
    assert_eq!(c.data, [76, 76, 76]);
    // contrast 0 = uniform mean grey
    let mut k = img(1, 1, 4, vec![0, 0, 100, 100]);
    k.contrast(0.0);
    assert_eq!(k.data, [50, 50, 50, 50]);
    let mut k = img(1, 1, 4, vec![0, 0, 100, 100]);
    k.contrast(2.0);
    assert_eq!(k.data, [0, 0, 150, 150]);
    // sharpness 0 = SMOOTH (border kept): centre of a 3×3 dot = 5·200/13
    let mut s = dot(3, 3, 1, 1);
    s.sharpness(0.0);
    assert_eq!(s.data[4], 77);
    assert_eq!(s.data[0], 0);
    let mut s = dot(3, 3, 1, 1);
    s.sharpness(1.0);
    assert_eq!(s, dot(3, 3, 1, 1));
    // autocontrast stretches to 0..255 per channel; flat channels stay
    let mut a = img(2, 1, 3, vec![50, 100, 150, 7, 7, 7]);
    a.autocontrast();
    assert_eq!(a.data, [0, 127, 255, 7, 7, 7]);
    // equalize: two equally common values spread to the ends (PIL's lut); too few
    // pixels for a step (PIL: `(total - last) // 255 == 0`) leave the image as it is
    let mut e = img(1, 2, 255, [[10u8; 255], [20u8; 255]].concat());
    e.equalize();
    assert_eq!(e.data, [[0u8; 255], [255u8; 255]].concat());
    let mut e = img(1, 2, 2, vec![10, 10, 20, 20]);
    e.equalize();
    assert_eq!(e.data, [10, 10, 20, 20]);
    let mut flat = img(1, 1, 3, vec![9, 9, 9]);
    flat.equalize();
    assert_eq!(flat.data, [9, 9, 9]);
}

#[test]
fn randaugment_parses_timm_strings_and_levels_by_hand() {
    let r = RandAugment::parse("rand-m9-mstd0.5-inc1").unwrap();
    assert_eq!(
        r,
        RandAugment {
            magnitude: 9.0,
            magnitude_std: 0.5,
            layers: 2,
            increasing: true,
            prob: 0.5
        }
    );
    assert_eq!(RandAugment::parse("rand-n3-m5").unwrap().layers, 3);
    assert!(!RandAugment::parse("rand").unwrap().increasing);
    for bad in ["", "randx", "rand-m11", "rand-q1", "rand-inc2", "auto-m9"] {
        assert!(RandAugment::parse(bad).is_none(), "{bad}");
    }
    let mut rng = StdRng::seed_from_u64(0);
    let inc = RandAugment::parse("rand-inc1").unwrap();
    let flat = RandAugment::parse("rand-inc0").unwrap();
    // posterize: increasing keeps 4 − ⌊4·l⌋ bits, the other ⌊4·l⌋
    let mut p = img(1, 1, 1, vec![0b1011_0111]);
    inc.apply_op(&mut p, RandOp::Posterize, 5.0, &mut rng);
    assert_eq!(p.data, [0b1000_0000]);
    let mut p = img(1, 1, 1, vec![0b1011_0111]);
    flat.apply_op(&mut p, RandOp::Posterize, 10.0, &mut rng);
    assert_eq!(p.data, [0b1011_0000]);
    // solarize at level 5: threshold 128 either way; solarize_add +55 below 128
    let mut s = img(1, 1, 3, vec![100, 128, 250]);
    inc.apply_op(&mut s, RandOp::Solarize, 5.0, &mut rng);
    assert_eq!(s.data, [100, 127, 5]);
    let mut s = img(1, 1, 3, vec![100, 127, 200]);
    inc.apply_op(&mut s, RandOp::SolarizeAdd, 5.0, &mut rng);
    assert_eq!(s.data, [155, 182, 200]);
    // non-increasing enhance at level 5: factor 1.0 = identity
    let mut b = img(1, 1, 2, vec![10, 200]);
    flat.apply_op(&mut b, RandOp::Brightness, 5.0, &mut rng);
    assert_eq!(b.data, [10, 200]);
    // level 0 geometric ops are the identity
    let d = dot(5, 5, 1, 3);
    for op in [
        RandOp::Rotate,
        RandOp::ShearX,
        RandOp::ShearY,
        RandOp::TranslateX,
    ] {
        let mut g = d.clone();
        inc.apply_op(&mut g, op, 0.0, &mut rng);
        assert_eq!(g, d, "{op:?}");
    }
    // the whole policy: seeded, in range, on the 8-bit grid
    let base: Vec<f32> = (0..3 * 36).map(|i| (i * 5 % 256) as f32 / 255.0).collect();
    let run = |seed: u64| {
        let mut v = base.clone();
        r.apply(&mut v, [3, 6, 6], &mut StdRng::seed_from_u64(seed));
        v
    };
    assert_eq!(run(11), run(11));
    let outs: Vec<_> = (0..30).map(run).collect();
    assert!(outs.iter().any(|o| *o != base));
    assert!(outs.iter().flatten().all(|v| (0.0..=1.0).contains(v)));
}

#[test]
fn policy_is_seeded_and_keeps_the_range() {
    let shape = [3, 8, 8];
    let base: Vec<f32> = (0..192).map(|i| (i % 256) as f32 / 255.0).collect();
    let run = |seed: u64| {
        let mut v = base.clone();
        cifar10_policy(&mut v, shape, &mut StdRng::seed_from_u64(seed));
        v
    };
    assert_eq!(run(4), run(4));
    let outs: Vec<Vec<f32>> = (0..40).map(run).collect();
    assert!(outs.iter().any(|o| *o != base));
    assert!(outs.contains(&base)); // some draws apply nothing
    for o in &outs {
        assert!(o.iter().all(|v| (0.0..=1.0).contains(v)));
        // values stay on the 8-bit grid
        assert!(
            o.iter()
                .all(|v| ((v * 255.0).round() - v * 255.0).abs() < 1e-3)
        );
    }
    // every operation runs at every level without panicking, on odd sizes too
    let mut rng = StdRng::seed_from_u64(1);
    for &(_, a, _, _, b, _) in &CIFAR10_POLICY {
        for level in 0..10 {
            for (c, h, w) in [(3, 5, 7), (1, 1, 1), (1, 2, 9)] {
                let mut i = img(c, h, w, (0..c * h * w).map(|k| (k * 37) as u8).collect());
                i.apply(a, level, &mut rng);
                i.apply(b, level, &mut rng);
            }
        }
    }
}
