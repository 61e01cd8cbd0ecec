//! Unit tests of the augmentations.
use super::*;

fn ramp(n: i64) -> Tensor {
    // Image i has pixel (y, x) = (y * 28 + x + i) / 1000: every pixel distinct.
    let base = Tensor::arange(784, (Kind::Float, Device::Cpu)).view([1, 1, 28, 28]);
    let offs = Tensor::arange(n, (Kind::Float, Device::Cpu)).view([n, 1, 1, 1]);
    (base + offs) / 1000.0
}

#[test]
fn flip_is_an_exact_mirror_and_transform_agrees() {
    let x = ramp(2);
    let f = flip_horizontal(&x);
    for y in [0, 13, 27] {
        for c in [0, 5, 27] {
            assert_eq!(
                f.double_value(&[1, 0, y, c]),
                x.double_value(&[1, 0, y, 27 - c])
            );
        }
    }
    let ones = Tensor::ones([2], (Kind::Float, Device::Cpu));
    let zeros = Tensor::zeros([2], (Kind::Float, Device::Cpu));
    let t = transform(&x, &ones, &zeros, &zeros, &ones, &ones).unwrap();
    assert!(t.equal(&f));
    assert!(flip_horizontal(&f).equal(&x));
}

#[test]
fn shift_moves_content_and_fills_with_the_edge() {
    let x = ramp(1);
    let s = shift(&x, 3, -2).unwrap();
    // Content moves 3 right, 2 up.
    assert_eq!(
        s.double_value(&[0, 0, 10, 13]),
        x.double_value(&[0, 0, 12, 10])
    );
    // Left columns repeat the old column 0; bottom rows repeat the old last row.
    for c in 0..3 {
        assert_eq!(s.double_value(&[0, 0, 5, c]), x.double_value(&[0, 0, 7, 0]));
    }
    assert_eq!(
        s.double_value(&[0, 0, 27, 20]),
        x.double_value(&[0, 0, 27, 17])
    );
    assert_eq!(
        s.double_value(&[0, 0, 26, 20]),
        x.double_value(&[0, 0, 27, 17])
    );
    assert!(shift(&x, 0, 0).unwrap().equal(&x));
}

#[test]
fn brightness_stays_in_range() {
    let cfg = AugmentConfig {
        brightness: Some((0.5, 1.5)),
        ..Default::default()
    };
    let mut a = Augmenter::new(cfg, 1).unwrap();
    let x = Tensor::rand([64, 1, 28, 28], (Kind::Float, Device::Cpu));
    let y = a.apply(&x).unwrap();
    assert!(y.min().double_value(&[]) >= 0.0 && y.max().double_value(&[]) <= 1.0);
    let ratio = (&y / (&x + 1e-6)).view([64, -1]).narrow(1, 0, 1);
    assert!(ratio.min().double_value(&[]) >= 0.49 && ratio.max().double_value(&[]) <= 1.51);
}

#[test]
fn random_erasing_statistics_and_boxes() {
    let e = RandomErasing::original();
    let mut a = Augmenter::new(
        AugmentConfig {
            erasing: Some(e.clone()),
            ..Default::default()
        },
        7,
    )
    .unwrap();
    let x = Tensor::zeros([4000, 1, 28, 28], (Kind::Float, Device::Cpu));
    let (y, b) = a.apply_recorded(&x).unwrap();
    let hits = b.applied.iter().filter(|&&v| v).count() as f64;
    // Binomial(4000, 0.5 × P(fit)): P(fit in 10 attempts) is ≈ 1 for these sizes.
    let sd = (4000.0f64 * 0.25).sqrt();
    assert!((hits - 2000.0).abs() < 4.0 * sd, "{hits} erased of 4000");
    let changed = y.view([4000, -1]).ne(0.0).any_dim(1, false);
    let changed: Vec<bool> = Vec::try_from(&changed).unwrap();
    for i in 0..4000 {
        if b.applied[i] {
            let (t, l, h, w) = (b.top[i], b.left[i], b.height[i], b.width[i]);
            assert!(
                t >= 0 && l >= 0 && t + h <= 28 && l + w <= 28 && h >= 1 && w >= 1,
                "box {i} outside"
            );
            let (s, r) = (b.area_fraction[i], b.aspect[i]);
            assert!((e.area.0..=e.area.1).contains(&s) && (e.aspect.0..=e.aspect.1).contains(&r));
            assert_eq!(h, (s * r * 784.0).sqrt().round() as i64);
            assert_eq!(w, (s / r * 784.0).sqrt().round() as i64);
            // Uniform fill: only the box changed, and it holds random values.
            let region = y.get(i as i64).get(0).narrow(0, t, h).narrow(1, l, w);
            assert_eq!(
                y.get(i as i64).ne(0.0).sum(Kind::Int64).int64_value(&[]),
                region.ne(0.0).sum(Kind::Int64).int64_value(&[])
            );
            assert!(changed[i] || h * w <= 2);
        } else {
            assert!(!changed[i]);
        }
    }
}

#[test]
fn paper_erasing_uses_the_mean() {
    let mut a = Augmenter::new(
        AugmentConfig {
            erasing: Some(RandomErasing {
                p: 1.0,
                ..RandomErasing::paper()
            }),
            ..Default::default()
        },
        3,
    )
    .unwrap();
    let x = Tensor::zeros([50, 1, 28, 28], (Kind::Float, Device::Cpu));
    let (y, b) = a.apply_recorded(&x).unwrap();
    assert!(b.applied.iter().filter(|&&v| v).count() >= 45);
    let vals = y.view([-1]).unique_dim(0, true, false, false).0;
    let vals: Vec<f32> = Vec::try_from(&vals).unwrap();
    assert_eq!(vals.len(), 2);
    assert!((vals[1] - 0.2860).abs() < 1e-6);
}

#[test]
fn same_seed_same_batch_and_bad_configs_are_errors() {
    let x = Tensor::rand([32, 1, 28, 28], (Kind::Float, Device::Cpu));
    let run = |seed| {
        Augmenter::new(AugmentConfig::original_cnn(), seed)
            .unwrap()
            .apply(&x)
            .unwrap()
    };
    assert!(run(5).equal(&run(5)));
    assert!(!run(5).equal(&run(6)));
    let z = Augmenter::new(AugmentConfig::original_resnet(), 1)
        .unwrap()
        .apply(&x)
        .unwrap();
    assert_eq!(z.size(), x.size());
    assert!(Augmenter::new(
        AugmentConfig {
            width_shift: 1.5,
            ..Default::default()
        },
        0
    )
    .is_err());
    let bad = RandomErasing {
        area: (0.5, 0.1),
        ..RandomErasing::original()
    };
    assert!(Augmenter::new(
        AugmentConfig {
            erasing: Some(bad),
            ..Default::default()
        },
        0
    )
    .is_err());
    let mut a = Augmenter::new(AugmentConfig::original_cnn(), 0).unwrap();
    assert!(a
        .apply(&Tensor::zeros([3, 28, 28], (Kind::Float, Device::Cpu)))
        .is_err());
}
