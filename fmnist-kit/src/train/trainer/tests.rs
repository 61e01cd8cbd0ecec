//! Unit tests of the training loop (private state: counters, optimiser moments).

use super::*;
use crate::augment::AugmentConfig;
use crate::models::ModelKind;
use crate::train::config::OptimizerKind;
use crate::train::schedule::{LrSchedule, ReduceLrOnPlateau};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::path::Path;

/// The pieces' bookkeeping after an epoch whose validation loss was `val_loss`, as the loop
/// runs it.
fn end_epoch(t: &mut Trainer, val_loss: f64) {
    let record = EpochRecord {
        epoch: t.state.epochs_done + 1,
        train_loss: 0.0,
        train_accuracy: 0.0,
        val_loss,
        val_accuracy: 0.0,
        learning_rate: t.state.learning_rate,
        seconds: 0.0,
        images_per_s: 0.0,
    };
    let mut pieces = std::mem::take(&mut t.pieces);
    t.end_epoch(&mut pieces, &record).unwrap();
    t.pieces = pieces;
}

/// `n` images of 10 classes, each class a bright horizontal band at its own height.
pub(crate) fn bands(n: usize, seed: u64) -> ImageSet {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut set = ImageSet::default();
    for i in 0..n {
        let class = (i % 10) as u8;
        set.labels.push(class);
        for p in 0..784 {
            let on = (p / 28) / 3 == class as usize;
            let noise: u8 = rand::Rng::random_range(&mut rng, 0..60);
            set.images.push(if on { 180 + noise } else { noise });
        }
    }
    set
}

fn quick_config(epochs: usize) -> TrainConfig {
    TrainConfig {
        epochs,
        batch_size: 64,
        verbose: false,
        augment: AugmentConfig::original_cnn(),
        channels_last: true,
        ..Default::default()
    }
}

#[test]
fn a_diverging_loss_stops_with_a_clear_error() {
    let (train, val) = (bands(128, 5), bands(20, 6));
    let cfg = TrainConfig {
        optimizer: OptimizerKind::Sgd {
            momentum: 0.9,
            nesterov: false,
        },
        learning_rate: 1e12,
        model_l2: true,
        ..quick_config(3)
    };
    let mut t = Trainer::new(ModelKind::Cnn4, cfg, Device::Cpu).unwrap();
    let err = t.fit(&train, &val).unwrap_err().to_string();
    assert!(
        err.contains("training loss became") && err.contains("epoch"),
        "{err}"
    );
}

#[test]
fn early_stopping_and_reduce_lr_follow_the_validation_loss() {
    let cfg = TrainConfig {
        early_stopping_patience: Some(3),
        schedule: LrSchedule::ReduceOnPlateau(ReduceLrOnPlateau {
            factor: 0.5,
            patience: 1,
            min_lr: 2e-4,
        }),
        ..quick_config(10)
    };
    let mut t = Trainer::new(ModelKind::Cnn4, cfg, Device::Cpu).unwrap();
    let mut lrs = Vec::new();
    for loss in [1.0, 0.9, 0.95, 0.96, 0.97] {
        end_epoch(&mut t, loss);
        lrs.push(t.learning_rate());
    }
    assert_eq!(lrs, vec![1e-3, 1e-3, 5e-4, 2.5e-4, 2e-4]);
    assert!(
        t.state.stopped,
        "three epochs without improvement after epoch 2"
    );
    assert!(
        t.history.stop_reason.contains("after epoch 5"),
        "{}",
        t.history.stop_reason
    );
}

#[test]
fn the_l2_penalty_reaches_the_update_as_its_gradient() {
    // One SGD step without momentum on a zero loss gradient moves each regularised kernel
    // by exactly -lr · 2c · w, and leaves the other variables alone.
    let cfg = TrainConfig {
        optimizer: OptimizerKind::Sgd {
            momentum: 0.0,
            nesterov: false,
        },
        learning_rate: 0.1,
        model_l2: true,
        ..quick_config(1)
    };
    let mut t = Trainer::new(ModelKind::Cnn4, cfg, Device::Cpu).unwrap();
    let before: Vec<(String, Tensor)> = t
        .var_store()
        .variables()
        .into_iter()
        .map(|(n, v)| (n, v.copy()))
        .collect();
    let x = Tensor::zeros([2, 1, 28, 28], (Kind::Float, Device::Cpu));
    let loss = t.net.model().forward_t(&x, false).sum(Kind::Float) * 0.0;
    t.optimizer.zero_grad().unwrap();
    loss.backward();
    t.state.optimizer_steps += 1;
    let settings = StepSettings::new(&t.config, t.state.learning_rate, t.state.optimizer_steps);
    t.optimizer.step(t.net.var_store(), settings).unwrap();
    let coefficients: Vec<f64> = t.optimizer.l2_coefficients.clone();
    assert_eq!(
        coefficients.iter().filter(|&&c| c > 0.0).count(),
        2,
        "the two hidden dense kernels carry Keras's l2(0.01)"
    );
    let vars = t.var_store().variables();
    for ((name, _, _), c) in t.optimizer.moments.iter().zip(coefficients) {
        let old = &before.iter().find(|(n, _)| n == name).unwrap().1;
        let expected = old * (1.0 - 0.1 * 2.0 * c);
        let diff = (&vars[name] - expected).abs().max().double_value(&[]);
        assert!(diff < 1e-7, "{name}: {diff}");
    }
}

#[test]
fn bad_settings_are_errors() {
    let bad = TrainConfig {
        learning_rate: 0.0,
        ..Default::default()
    };
    assert!(Trainer::new(ModelKind::Cnn4, bad, Device::Cpu).is_err());
    let mut t = Trainer::new(ModelKind::Cnn4, quick_config(1), Device::Cpu).unwrap();
    assert!(t.fit(&ImageSet::default(), &bands(10, 1)).is_err());
    assert!(t
        .load_weights(Path::new("/nonexistent/best.safetensors"))
        .is_err());
}

#[test]
fn label_smoothing_is_the_mixture_of_the_true_class_and_the_uniform_targets() {
    for bad in [1.0, -0.1] {
        let cfg = TrainConfig {
            label_smoothing: bad,
            ..quick_config(1)
        };
        assert!(Trainer::new(ModelKind::Cnn4, cfg, Device::Cpu).is_err());
    }
    let eps = 0.1;
    let cfg = TrainConfig {
        label_smoothing: eps,
        augment: AugmentConfig::default(),
        channels_last: false,
        ..quick_config(1)
    };
    assert!(cfg.to_string().contains("label smoothing 0.1"));
    // Without dropout the training-mode forward pass is the same here and inside the step
    // (torch's global generator is shared with the tests running beside this one).
    let network = crate::models::NetworkConfig::Cnn4(crate::models::Cnn4Config {
        dropout: 0.0,
        ..Default::default()
    });
    let mut t = Trainer::new(network, cfg, Device::Cpu).unwrap();
    let set = bands(16, 3);
    let (x, y) = (set.images_tensor(), set.labels_tensor());
    let log_p = t
        .network()
        .model()
        .forward_t(&x, true)
        .log_softmax(-1, Kind::Float)
        .detach();
    let true_class = -log_p.gather(1, &y.unsqueeze(1), false).mean(Kind::Float);
    let uniform = -log_p.mean(Kind::Float);
    let expected = (true_class * (1.0 - eps) + uniform * eps).double_value(&[]);
    let loss = t.train_batch(&x, &y).unwrap().double_value(&[]);
    assert!((loss - expected).abs() < 1e-5, "{loss} against {expected}");
}

#[test]
fn test_time_flip_scores_the_mean_of_the_image_and_its_mirror_image() {
    let set = bands(20, 4);
    let mut mirror = set.clone();
    for (image, original) in mirror.images.chunks_mut(784).zip(set.images.chunks(784)) {
        for row in 0..28 {
            for col in 0..28 {
                image[row * 28 + col] = original[row * 28 + 27 - col];
            }
        }
    }
    let cfg = TrainConfig {
        test_time_flip: true,
        ..quick_config(1)
    };
    assert!(cfg.to_string().contains("test-time flip"));
    let t = Trainer::new(ModelKind::Cnn4, cfg, Device::Cpu).unwrap();
    let mut net = t.into_network();
    assert!(
        net.test_time_flip,
        "the trainer's network scores as its config says"
    );
    net.test_time_flip = false;
    let (plain, mirrored) = (
        net.predict_proba(&set).unwrap(),
        net.predict_proba(&mirror).unwrap(),
    );
    net.test_time_flip = true;
    let flipped = net.predict_proba(&set).unwrap();
    let mean = (&plain + &mirrored) * 0.5;
    assert!((&flipped - &mean).abs().max().double_value(&[]) < 1e-6);
    let loss = -mean
        .log()
        .gather(1, &set.labels_tensor().unsqueeze(1), false)
        .mean(Kind::Float)
        .double_value(&[]);
    let e = net.evaluate(&set).unwrap();
    assert!((e.loss - loss).abs() < 1e-5, "{} against {loss}", e.loss);
    // network.json records it, and a loaded network scores the same way.
    let dir = tempfile::tempdir().unwrap();
    net.network_file().save(dir.path()).unwrap();
    let weights = dir.path().join("best.safetensors");
    net.save_weights(&weights).unwrap();
    let loaded = TrainedNetwork::load(dir.path(), Device::Cpu).unwrap();
    assert!(loaded.test_time_flip);
    assert_eq!(loaded.evaluate(&set).unwrap(), e);
    net.test_time_flip = false;
    net.network_file().save(dir.path()).unwrap();
    let text = std::fs::read_to_string(dir.path().join("network.json")).unwrap();
    assert!(!text.contains("test_time_flip"), "{text}");
}
