//! Training runs that compare two histories bit for bit. libtorch's CPU generator is global to the
//! process (weight init, dropout), so these tests hold one lock and live in their own test binary,
//! away from tests that draw random tensors concurrently.

mod common;

use std::sync::Mutex;

use common::synthetic_set;
use fmnist_kit::augment::AugmentConfig;
use fmnist_kit::data::ImageSet;
use fmnist_kit::models::{Backbone, ModelKind};
use fmnist_kit::train::{LrSchedule, Recipe, TrainConfig, Trainer};
use tch::{Device, Kind};

static TORCH_RNG: Mutex<()> = Mutex::new(());

fn config(epochs: usize, augment: AugmentConfig) -> TrainConfig {
    TrainConfig {
        epochs,
        batch_size: 32,
        verbose: false,
        augment,
        ..Default::default()
    }
}

fn losses(t: &Trainer) -> Vec<(usize, f64, f64, f64)> {
    t.history
        .epochs
        .iter()
        .map(|e| (e.epoch, e.train_loss, e.val_loss, e.val_accuracy))
        .collect()
}

#[test]
fn learns_and_a_seed_gives_the_same_history() {
    let _lock = TORCH_RNG.lock().unwrap_or_else(|e| e.into_inner());
    let (train, val): (ImageSet, ImageSet) = (synthetic_set(320, 1), synthetic_set(100, 2));
    let mut plain = Trainer::new(
        ModelKind::Cnn4,
        config(3, AugmentConfig::default()),
        Device::Cpu,
    )
    .unwrap();
    plain.fit(&train, &val).unwrap();
    let e = &plain.history.epochs;
    assert!(e[2].train_loss < e[0].train_loss, "the loss falls: {e:?}");
    assert!(
        e[2].train_accuracy > 0.5,
        "distinct bands are learnt: {e:?}"
    );
    let p = plain.network().predict_proba(&val).unwrap();
    assert_eq!(p.size(), vec![100, 10]);
    assert!((p.sum(Kind::Double).double_value(&[]) - 100.0).abs() < 1e-3);

    let run = || {
        let mut t = Trainer::new(
            ModelKind::Cnn4,
            config(2, AugmentConfig::original_cnn()),
            Device::Cpu,
        )
        .unwrap();
        t.fit(&train, &val).unwrap();
        losses(&t)
    };
    assert_eq!(
        run(),
        run(),
        "same seed, same history (augmentation and dropout included)"
    );
}

#[test]
fn resume_continues_exactly_where_it_stopped() {
    let _lock = TORCH_RNG.lock().unwrap_or_else(|e| e.into_inner());
    let (train, val) = (synthetic_set(200, 3), synthetic_set(60, 4));
    let with_dir = |epochs, dir: &std::path::Path| TrainConfig {
        checkpoint_dir: Some(dir.to_path_buf()),
        restore_best: false,
        ..config(epochs, AugmentConfig::original_cnn())
    };
    let dir = tempfile::tempdir().unwrap();
    let mut first = Trainer::new(ModelKind::Cnn4, with_dir(2, dir.path()), Device::Cpu).unwrap();
    first.fit(&train, &val).unwrap();
    for f in [
        "last.safetensors",
        "best.safetensors",
        "optimizer.safetensors",
        "state.json",
        "history.json",
    ] {
        assert!(dir.path().join(f).is_file(), "{f} written");
    }
    drop(first);
    let mut resumed = Trainer::resume(
        ModelKind::Cnn4,
        with_dir(3, dir.path()),
        Device::Cpu,
        dir.path(),
    )
    .unwrap();
    assert_eq!(resumed.epochs_done(), 2);
    resumed.fit(&train, &val).unwrap();

    let straight_dir = tempfile::tempdir().unwrap();
    let mut straight = Trainer::new(
        ModelKind::Cnn4,
        with_dir(3, straight_dir.path()),
        Device::Cpu,
    )
    .unwrap();
    straight.fit(&train, &val).unwrap();
    assert_eq!(
        losses(&resumed),
        losses(&straight),
        "an interrupted run ends like an uninterrupted one"
    );
    assert!(
        Trainer::resume(
            ModelKind::ResNet,
            with_dir(3, dir.path()),
            Device::Cpu,
            dir.path()
        )
        .is_err(),
        "a checkpoint of another network is refused"
    );
}

#[test]
fn the_tuned_recipe_in_channels_last_resumes_exactly_and_matches_the_default_layout() {
    let _lock = TORCH_RNG.lock().unwrap_or_else(|e| e.into_inner());
    let (train, val) = (synthetic_set(200, 5), synthetic_set(60, 6));
    let tuned = |channels_last, dir: &std::path::Path| TrainConfig {
        checkpoint_dir: Some(dir.to_path_buf()),
        batch_size: 32,
        verbose: false,
        channels_last,
        ..Recipe::Tuned.config(ModelKind::Cnn4, 3, 32)
    };
    // Stopped after two of three epochs (as by a kill after a checkpoint), then resumed.
    let dir = tempfile::tempdir().unwrap();
    let mut first = Trainer::new(ModelKind::Cnn4, tuned(true, dir.path()), Device::Cpu).unwrap();
    first.fit_for(&train, &val, 2).unwrap();
    assert_eq!(first.epochs_done(), 2);
    for (name, v) in first.var_store().variables() {
        assert!(v.is_contiguous(), "{name} is back in the default layout");
    }
    drop(first);
    let mut resumed = Trainer::resume(
        ModelKind::Cnn4,
        tuned(true, dir.path()),
        Device::Cpu,
        dir.path(),
    )
    .unwrap();
    resumed.fit(&train, &val).unwrap();
    let straight_dir = tempfile::tempdir().unwrap();
    let mut straight = Trainer::new(
        ModelKind::Cnn4,
        tuned(true, straight_dir.path()),
        Device::Cpu,
    )
    .unwrap();
    straight.fit(&train, &val).unwrap();
    assert_eq!(losses(&resumed), losses(&straight));
    let lrs: Vec<f64> = straight
        .history
        .epochs
        .iter()
        .map(|e| e.learning_rate)
        .collect();
    assert!(
        lrs[0] > lrs[1] && lrs[1] > lrs[2] && lrs[2] < 1e-9,
        "cosine decay to 0 after the warm-up epoch: {lrs:?}"
    );

    // The same run in the default layout: other convolution kernels, so close, not identical.
    // Their rounding differences grow with every step at the peak rate, so the first epoch is
    // the one compared.
    let plain_dir = tempfile::tempdir().unwrap();
    let mut plain =
        Trainer::new(ModelKind::Cnn4, tuned(false, plain_dir.path()), Device::Cpu).unwrap();
    plain.fit(&train, &val).unwrap();
    let (a, b) = (losses(&plain)[0], losses(&straight)[0]);
    assert!((a.1 - b.1).abs() < 1e-2, "train loss {a:?} vs {b:?}");
}

#[test]
fn the_grid_search_really_varies_every_hyperparameter() {
    use fmnist_kit::grid::{grid_search, GridSettings, GridSpec};
    let _lock = TORCH_RNG.lock().unwrap_or_else(|e| e.into_inner());
    let set = synthetic_set(120, 7);
    let spec = GridSpec {
        learning_rates: vec![1e-3, 1e-2],
        optimizers: GridSpec::default().optimizers[..1].to_vec(),
        dropouts: vec![0.0, 0.5],
        dense_sizes: vec![16, 64],
    };
    let settings = GridSettings {
        folds: 2,
        epochs: 1,
        batch_size: 20,
        verbose: false,
        ..Default::default()
    };
    let report = grid_search(&spec, &settings, &set, Device::Cpu).unwrap();
    assert_eq!(report.rows.len(), 8);
    assert!(report
        .rows
        .windows(2)
        .all(|w| w[0].mean_score >= w[1].mean_score));
    for r in &report.rows {
        assert_eq!(r.fold_log_loss.len(), 2);
        assert!(r.mean_score.is_finite() && r.mean_score < 0.0);
    }
    // The original's wrapper ignored three of the four: here each one changes the scores.
    let distinct = |a: &fmnist_kit::grid::GridPoint, b: &fmnist_kit::grid::GridPoint| {
        let ra = report.rows.iter().find(|r| &r.point == a).unwrap();
        let rb = report.rows.iter().find(|r| &r.point == b).unwrap();
        ra.fold_log_loss != rb.fold_log_loss
    };
    let base = report.rows[0].point.clone();
    let mut other = base.clone();
    other.learning_rate = if base.learning_rate == 1e-3 {
        1e-2
    } else {
        1e-3
    };
    assert!(distinct(&base, &other), "learning rate");
    let mut other = base.clone();
    other.dropout = if base.dropout == 0.0 { 0.5 } else { 0.0 };
    assert!(distinct(&base, &other), "dropout");
    let mut other = base.clone();
    other.dense = if base.dense == 16 { 64 } else { 16 };
    assert!(distinct(&base, &other), "dense size");
    let marginal = report.marginal("dense").unwrap();
    assert_eq!(marginal.len(), 2);
    assert!(report.marginal("colour").is_err());
    // Each pair of a learning rate and a dense size is the mean of the points that share it,
    // and the marginal of the learning rate is the mean of its pairs (each pair has as many
    // points here).
    let pairs = report.interaction("learning_rate", "dense").unwrap();
    assert_eq!(pairs.len(), 4);
    for (lr, dense, mean) in &pairs {
        let scores: Vec<f64> = report
            .rows
            .iter()
            .filter(|r| {
                format!("{:e}", r.point.learning_rate) == *lr && r.point.dense.to_string() == *dense
            })
            .map(|r| r.mean_score)
            .collect();
        assert!(!scores.is_empty());
        assert!((mean - scores.iter().sum::<f64>() / scores.len() as f64).abs() < 1e-12);
    }
    for (lr, m) in report.marginal("learning_rate").unwrap() {
        let of_pairs: Vec<f64> = pairs.iter().filter(|p| p.0 == lr).map(|p| p.2).collect();
        assert!((m - of_pairs.iter().sum::<f64>() / of_pairs.len() as f64).abs() < 1e-12);
    }
    assert!(report.interaction("dense", "dense").is_err());
    assert!(report.interaction("dense", "colour").is_err());
    assert!(report.to_html().0.contains("<td>1</td>"));
    let chart = report.effects_chart().unwrap();
    assert!(chart.width > 0 && chart.height > 0);
    let chart = report
        .interaction_chart("learning_rate", "optimizer")
        .unwrap();
    assert!(chart.width > 0 && chart.height > 0);
}

#[test]
fn validating_after_the_last_epoch_only_trains_and_scores_the_same() {
    let _lock = TORCH_RNG.lock().unwrap_or_else(|e| e.into_inner());
    let (train, val) = (synthetic_set(256, 7), synthetic_set(60, 8));
    let every = TrainConfig {
        early_stopping_patience: None,
        schedule: LrSchedule::Constant,
        restore_best: false,
        ..config(3, AugmentConfig::original_cnn())
    };
    let last_only = TrainConfig {
        validate_every_epoch: false,
        ..every.clone()
    };
    let fit = |cfg: TrainConfig| {
        tch::manual_seed(5);
        let mut t = Trainer::new(ModelKind::Cnn4, cfg, Device::Cpu).unwrap();
        t.fit(&train, &val).unwrap();
        t.history.epochs.clone()
    };
    let (a, b) = (fit(every), fit(last_only.clone()));
    assert_eq!(a.len(), 3);
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(
            x.train_loss.to_bits(),
            y.train_loss.to_bits(),
            "epoch {}",
            x.epoch
        );
    }
    assert!(b[..2].iter().all(|e| e.val_loss.is_nan()));
    assert_eq!(a[2].val_loss.to_bits(), b[2].val_loss.to_bits());
    assert_eq!(a[2].val_accuracy.to_bits(), b[2].val_accuracy.to_bits());

    // Whatever reads every epoch's validation loss refuses the setting.
    for bad in [
        TrainConfig {
            validate_every_epoch: false,
            ..config(3, AugmentConfig::default())
        },
        TrainConfig {
            restore_best: true,
            ..last_only.clone()
        },
        TrainConfig {
            checkpoint_dir: Some("/tmp/x".into()),
            ..last_only.clone()
        },
    ] {
        let err = Trainer::new(ModelKind::Cnn4, bad, Device::Cpu)
            .err()
            .expect("an error");
        assert!(err.to_string().contains("validate_every_epoch"), "{err}");
    }
}

#[test]
fn evaluation_uses_the_configured_batch_and_each_network_has_its_own() {
    // A transfer network resizes its 28×28 inputs (to 150 px in the full profile), so it
    // evaluates in small batches; the 28×28 networks in large ones.
    for kind in ModelKind::all() {
        for recipe in [Recipe::Tuned, Recipe::Original] {
            assert_eq!(
                recipe.config(kind, 1, 32).eval_batch_size,
                kind.spec().eval_batch_size,
                "{kind}"
            );
        }
    }
    assert!(ModelKind::EfficientNetLite0.spec().eval_batch_size <= 64);
    assert!(ModelKind::InceptionV3.spec().eval_batch_size <= 64);
    // Fine-tuning (stage 2) and the few-label study evaluate in the network's own batches too.
    for backbone in [Backbone::InceptionV3, Backbone::EfficientNetLite0] {
        for recipe in [Recipe::Tuned, Recipe::Original] {
            assert_eq!(
                recipe.fine_tune_config(backbone, 1, 32, 0).eval_batch_size,
                ModelKind::for_backbone(backbone).spec().eval_batch_size,
                "{recipe:?} {backbone:?}"
            );
        }
    }
    let _lock = TORCH_RNG.lock().unwrap_or_else(|e| e.into_inner());
    let config = TrainConfig {
        eval_batch_size: 7,
        channels_last: false,
        ..Recipe::Tuned.config(ModelKind::Cnn4, 1, 32)
    };
    let trainer = Trainer::new(ModelKind::Cnn4, config, Device::Cpu).unwrap();
    assert_eq!(trainer.network().batch_size, 7);
    // Its layout too: the 4-layer CNN's row says channels-last, this config does not.
    assert!(ModelKind::Cnn4.spec().channels_last);
    assert!(!trainer.network().channels_last);
}

/// Asks the loop to stop once, before batch `batch` of epoch `epoch`.
struct StopOnce {
    request: fmnist_kit::train::StopRequest,
    at: (usize, usize),
    fired: bool,
}

impl fmnist_kit::train::Callback for StopOnce {
    fn name(&self) -> &'static str {
        "stop once"
    }
    fn after_step(
        &mut self,
        ctx: &mut fmnist_kit::train::StepContext<'_>,
    ) -> fmnist_kit::Result<()> {
        if !self.fired && (ctx.epoch, ctx.batch + 1) == self.at {
            self.fired = true;
            self.request.request();
        }
        Ok(())
    }
}

/// Every figure a sink receives.
#[derive(Default)]
struct Collect(std::rc::Rc<std::cell::RefCell<(Vec<fmnist_kit::train::EpochRecord>, Vec<i64>)>>);

impl fmnist_kit::train::MetricsSink for Collect {
    fn record_epoch(
        &mut self,
        _model: &str,
        _step: i64,
        r: &fmnist_kit::train::EpochRecord,
    ) -> fmnist_kit::Result<()> {
        self.0.borrow_mut().0.push(r.clone());
        Ok(())
    }
    fn loss_every_steps(&self) -> Option<usize> {
        Some(4)
    }
    fn record_loss(&mut self, step: i64, loss: f64) -> fmnist_kit::Result<()> {
        assert!(loss.is_finite());
        self.0.borrow_mut().1.push(step);
        Ok(())
    }
}

#[test]
fn a_stop_request_rolls_back_to_the_last_epoch_and_fitting_again_continues_exactly() {
    let _lock = TORCH_RNG.lock().unwrap_or_else(|e| e.into_inner());
    let (train, val) = (synthetic_set(200, 7), synthetic_set(60, 8));
    // The tuned recipe sets the rate every step, in channels-last: the rollback has to restore
    // the step count, the rate, the moments and the layout.
    let tuned = TrainConfig {
        channels_last: true,
        verbose: false,
        ..Recipe::Tuned.config(ModelKind::Cnn4, 3, 32)
    };
    let log = tempfile::tempdir().unwrap();
    let logged = TrainConfig {
        tensorboard_dir: Some(log.path().to_path_buf()),
        ..tuned.clone()
    };
    let mut stopped = Trainer::new(ModelKind::Cnn4, logged, Device::Cpu).unwrap();
    let request = stopped.stop_request();
    stopped.add_callback(Box::new(StopOnce {
        request,
        at: (2, 4),
        fired: false,
    }));
    let seen = Collect::default();
    let figures = seen.0.clone();
    stopped.add_sink(Box::new(seen));
    stopped.fit(&train, &val).unwrap();
    assert_eq!(stopped.interrupted_after(), Some(1), "stopped in epoch 2");
    assert_eq!(stopped.epochs_done(), 1);
    assert_eq!(stopped.history.epochs.len(), 1);
    assert!(
        stopped.history.stop_reason.is_empty(),
        "the run has not ended"
    );
    stopped.fit(&train, &val).unwrap();
    assert_eq!(stopped.interrupted_after(), None);

    let mut straight = Trainer::new(ModelKind::Cnn4, tuned, Device::Cpu).unwrap();
    straight.fit(&train, &val).unwrap();
    assert_eq!(losses(&stopped), losses(&straight));
    assert_eq!(stopped.learning_rate(), straight.learning_rate());
    let a = stopped.var_store().variables();
    for (name, w) in straight.var_store().variables() {
        assert!(a[&name].equal(&w), "{name} equal bit for bit");
    }
    // The sink saw every finished epoch once, as the history did, and every 4th step's loss.
    let (epochs, steps) = figures.borrow().clone();
    assert_eq!(epochs, stopped.history.epochs);
    let per_epoch = 200usize.div_ceil(32) as i64;
    assert!(steps.iter().all(|s| s % 4 == 0) && steps.last() == Some(&(3 * per_epoch / 4 * 4)));
    // The TensorBoard log, read as TensorBoard reads it (the restart marker drops what the
    // rolled-back epoch logged), holds each epoch once, with the history's figures, and each
    // step's loss once.
    let points = fmnist_kit::tensorboard::read_scalars(log.path()).unwrap();
    let of = |tag: &str| -> Vec<(i64, f32)> {
        points
            .iter()
            .filter(|p| p.tag == tag)
            .map(|p| (p.step, p.value))
            .collect()
    };
    let history = &stopped.history.epochs;
    let expected = |f: fn(&fmnist_kit::train::EpochRecord) -> f64| -> Vec<(i64, f32)> {
        history
            .iter()
            .map(|r| (r.epoch as i64 * per_epoch, f(r) as f32))
            .collect()
    };
    assert_eq!(of("epoch"), expected(|r| r.epoch as f64));
    assert_eq!(of("loss/train"), expected(|r| r.train_loss));
    assert_eq!(of("loss/validation"), expected(|r| r.val_loss));
    assert_eq!(of("accuracy/validation"), expected(|r| r.val_accuracy));
    let step_losses: Vec<i64> = of("loss/train_step").iter().map(|p| p.0).collect();
    let expected_steps: Vec<i64> = (1..=3 * per_epoch).filter(|s| s % 4 == 0).collect();
    assert_eq!(step_losses, expected_steps, "every 4th step once, in order");
}
