//! An interrupt (SIGINT) during `TrainingRun::fit`: the call returns `Ok` with a result marked
//! "interrupted after epoch 1" (also in `result.json`), SIGINT's previous action is back, and
//! fitting again finishes the run bit for bit as an uninterrupted run. Then a new `prepare` on
//! the same folder reads the finished run back, and one for another run starts afresh. The same
//! for a transfer run's fine-tuning, which continues in the trainer it stopped in. The other long
//! calls stop too: a grid search keeps the fits it finished and continues, the learning-rate
//! finder returns the steps it took, a feature extraction stops with an error that says so, and
//! the few-label study returns the sizes and seeds it finished.
//! The tests raise SIGINT in the process and use torch's global generator, so they hold one lock.

mod common;

use std::path::Path;
use std::sync::Mutex;

use common::{synthetic_set, write_idx_folder};
use fmnist_kit::data::{self, FashionMnist};
use fmnist_kit::models::{Backbone, ModelKind, Weights};
use fmnist_kit::run::{RunOptions, TrainingRun};
use fmnist_kit::train::{Callback, RunResult, StepContext};
use fmnist_kit::transfer::TransferRun;
use fmnist_kit::{Profile, ProfileName};
use tch::Device;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Raises SIGINT once, after batch `at.1` of epoch `at.0`, as Ctrl-C or Jupyter's stop would.
struct RaiseSigint {
    at: (usize, usize),
    fired: bool,
}

impl Callback for RaiseSigint {
    fn name(&self) -> &'static str {
        "raise SIGINT"
    }
    fn after_step(&mut self, ctx: &mut StepContext<'_>) -> fmnist_kit::Result<()> {
        if !self.fired && (ctx.epoch, ctx.batch) == self.at {
            self.fired = true;
            // SAFETY: raising a signal; the guard installed by `fit` handles it.
            unsafe { libc::raise(libc::SIGINT) };
        }
        Ok(())
    }
}

fn sigint_action() -> libc::sighandler_t {
    // SAFETY: reads the current action only.
    unsafe {
        let mut now: libc::sigaction = std::mem::zeroed();
        libc::sigaction(libc::SIGINT, std::ptr::null(), &mut now);
        now.sa_sigaction
    }
}

/// 400 training and 80 test images (seeds `seed` and `seed + 1`), written as idx files under
/// `dir` and loaded as the kit loads data.
fn synthetic_data(dir: &Path, seed: u64) -> FashionMnist {
    write_idx_folder(
        &dir.join("idx"),
        &synthetic_set(400, seed),
        &synthetic_set(80, seed + 1),
    );
    data::load(dir.join("idx")).expect("synthetic data")
}

fn prepare(data: &FashionMnist, out: &Path, seed: u64, train_again: bool) -> TrainingRun {
    TrainingRun::prepare(
        ModelKind::Cnn4,
        &Profile::named(ProfileName::Smoke),
        data,
        RunOptions {
            epochs: Some(3),
            seed,
            out: Some(out.to_path_buf()),
            train_again,
            verbose: false,
            device: Some(Device::Cpu),
            ..RunOptions::default()
        },
    )
    .expect("prepare")
}

#[test]
fn an_interrupted_fit_returns_ok_continues_exactly_and_a_finished_run_is_read_back() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let data = synthetic_data(dir.path(), 41);
    let before = sigint_action();

    let stopped_dir = dir.path().join("stopped");
    let mut stopped = prepare(&data, &stopped_dir, 13, true);
    assert!(
        stopped.start.contains("training from the first epoch"),
        "{}",
        stopped.start
    );
    stopped.trainer.add_callback(Box::new(RaiseSigint {
        at: (2, 2),
        fired: false,
    }));
    let first = stopped.fit().expect("an interrupted fit returns Ok");
    assert_eq!(first.interrupted_after, Some(1), "{first:?}");
    assert_eq!(first.stop_reason, "interrupted");
    assert_eq!(stopped.trainer.history.epochs.len(), 1);
    assert_eq!(sigint_action(), before, "SIGINT's previous action is back");
    let saved = RunResult::load(&stopped_dir).expect("result.json");
    assert_eq!(
        saved.interrupted_after,
        Some(1),
        "result.json says it stopped early"
    );

    let finished = stopped.fit().expect("fitting again");
    assert_eq!(finished.interrupted_after, None);
    assert_eq!(finished.epochs_run, 3);
    assert_eq!(
        RunResult::load(&stopped_dir).unwrap().interrupted_after,
        None
    );

    let mut straight = prepare(&data, &dir.path().join("straight"), 13, true);
    let reference = straight.fit().expect("an uninterrupted run");
    let losses = |r: &TrainingRun| -> Vec<(f64, f64, f64)> {
        r.trainer
            .history
            .epochs
            .iter()
            .map(|e| (e.train_loss, e.val_loss, e.val_accuracy))
            .collect()
    };
    assert_eq!(
        losses(&stopped),
        losses(&straight),
        "the same epochs, bit for bit"
    );
    let a = stopped.trainer.var_store().variables();
    for (name, w) in straight.trainer.var_store().variables() {
        assert!(a[&name].equal(&w), "{name} equal bit for bit");
    }
    assert_eq!(finished.test_accuracy, reference.test_accuracy);
    assert_eq!(finished.test_loss, reference.test_loss);

    // After a restart: the same run in the same folder is read back, not trained again.
    let mut again = prepare(&data, &stopped_dir, 13, false);
    assert!(again.start.contains("read back"), "{}", again.start);
    assert_eq!(again.resumed_after, Some(3));
    let read_back = again.fit().expect("a read-back run");
    assert_eq!(read_back.epochs_run, 3);
    assert_eq!(read_back.test_accuracy, reference.test_accuracy);
    assert_eq!(losses(&again), losses(&straight));

    // Another seed is another run: it starts afresh and says why.
    let other = prepare(&data, &stopped_dir, 14, false);
    assert!(other.start.contains("holds another run"), "{}", other.start);
    assert_eq!(other.resumed_after, None);
}

/// `FMNIST_CACHE_DIR` set to a folder while it lives, the previous value back when dropped.
struct CacheDir(Option<std::ffi::OsString>);

impl CacheDir {
    fn set(dir: &Path) -> CacheDir {
        let previous = std::env::var_os("FMNIST_CACHE_DIR");
        std::env::set_var("FMNIST_CACHE_DIR", dir);
        CacheDir(previous)
    }
}

impl Drop for CacheDir {
    fn drop(&mut self) {
        match &self.0 {
            Some(v) => std::env::set_var("FMNIST_CACHE_DIR", v),
            None => std::env::remove_var("FMNIST_CACHE_DIR"),
        }
    }
}

fn transfer_run(data: &FashionMnist, out: &Path, weights: &Weights) -> TransferRun {
    TransferRun::prepare(
        ModelKind::for_backbone(Backbone::EfficientNetLite0),
        &Profile::named(ProfileName::Smoke),
        data,
        RunOptions {
            epochs: Some(2),
            out: Some(out.to_path_buf()),
            train_again: true,
            verbose: false,
            device: Some(Device::Cpu),
            weights: Some(weights.clone()),
            ..RunOptions::default()
        },
    )
    .expect("prepare a transfer run")
}

#[test]
fn an_interrupted_fine_tuning_continues_in_the_same_run_as_an_uninterrupted_one() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let data = synthetic_data(dir.path(), 43);
    // The real weights, found before the cache folder moves to a temporary one (where the
    // features of these synthetic images are cached, and removed with it).
    let weights = Weights::ImageNet(Backbone::EfficientNetLite0.default_weights().expect(
        "EfficientNet-Lite0 ImageNet weights in $FMNIST_CACHE_DIR/weights: run `make setup`",
    ));
    let _cache = CacheDir::set(&dir.path().join("cache"));

    let mut stopped = transfer_run(&data, &dir.path().join("stopped"), &weights);
    stopped.stage_one().expect("stage 1");
    stopped.add_stage_two_callback(Box::new(RaiseSigint {
        at: (2, 2),
        fired: false,
    }));
    let first = stopped
        .stage_two()
        .expect("an interrupted stage 2 returns Ok")
        .clone();
    assert_eq!(first.run.interrupted_after, Some(1), "{:?}", first.run);
    let finished = stopped.stage_two().expect("stage 2 again").clone();
    assert_eq!(finished.run.interrupted_after, None);
    assert_eq!(finished.run.epochs_run, 2);

    let mut straight = transfer_run(&data, &dir.path().join("straight"), &weights);
    let reference = straight.fit().expect("an uninterrupted transfer run");
    assert_eq!(finished.run.test_accuracy, reference.run.test_accuracy);
    assert_eq!(finished.run.test_loss, reference.run.test_loss);
    let (a, b) = (stopped.trainer.as_ref(), straight.trainer.as_ref());
    let (a, b) = (a.expect("a trainer"), b.expect("a trainer"));
    let losses = |t: &fmnist_kit::train::Trainer| -> Vec<(f64, f64)> {
        t.history
            .epochs
            .iter()
            .map(|e| (e.train_loss, e.val_loss))
            .collect()
    };
    assert_eq!(losses(a), losses(b), "the same epochs, bit for bit");
}

/// SIGINT while an inner guard lives reaches the guard around it too, once the inner one ends,
/// so that a loop whose inner call had passed its last check still stops; a guard that saw no
/// interrupt leaves the outer one alone.
#[test]
fn an_interrupt_inside_an_inner_guard_reaches_the_outer_one() {
    use fmnist_kit::train::{InterruptGuard, StopRequest};
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let before = sigint_action();
    {
        let outer = InterruptGuard::install_own().expect("outer guard");
        {
            let _quiet = InterruptGuard::install_own().expect("inner guard");
        }
        assert!(!outer.is_requested(), "no interrupt, no request");
        let inner_request = StopRequest::default();
        {
            let _inner = InterruptGuard::install(&inner_request).expect("inner guard");
            // SAFETY: raising a signal; the inner guard's handler only sets a flag.
            unsafe { libc::raise(libc::SIGINT) };
            assert!(inner_request.is_requested(), "the innermost guard got it");
            assert!(
                !outer.is_requested(),
                "the outer one only once the inner one ends"
            );
        }
        assert!(outer.is_requested(), "the outer guard got it too");
    }
    assert_eq!(sigint_action(), before, "SIGINT's previous action is back");
}

/// Sends SIGINT to this process once `ready()` holds and a guard's handler has replaced
/// `before` (so that the signal never meets SIGINT's default action, which ends the process).
fn raise_when(
    before: libc::sighandler_t,
    ready: impl Fn() -> bool + Send + 'static,
) -> std::thread::JoinHandle<bool> {
    std::thread::spawn(move || {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
        while std::time::Instant::now() < deadline {
            if ready() && sigint_action() != before {
                // SAFETY: a signal to this process, whose handler only sets a flag.
                unsafe { libc::kill(libc::getpid(), libc::SIGINT) };
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        false
    })
}

fn records(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("fits")).map_or(0, |d| d.count())
}

#[test]
fn an_interrupted_grid_search_keeps_its_finished_fits_and_continues_to_the_same_report() {
    use fmnist_kit::grid::{GridSearch, GridSettings, GridSpec, Shard};
    use fmnist_kit::train::OptimizerKind;
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let spec = GridSpec {
        learning_rates: vec![1e-3, 3e-3, 1e-2],
        optimizers: vec![(
            "sgd".into(),
            OptimizerKind::Sgd {
                momentum: 0.9,
                nesterov: false,
            },
        )],
        dropouts: vec![0.25],
        dense_sizes: vec![64],
    };
    let settings = GridSettings {
        folds: 2,
        epochs: 2,
        batch_size: 32,
        verbose: false,
        ..Default::default()
    };
    let search = GridSearch::new(spec, settings, synthetic_set(300, 5)).unwrap();
    let before = sigint_action();
    let stopped_dir = dir.path().join("stopped");
    let watched = stopped_dir.clone();
    let raiser = raise_when(before, move || records(&watched) >= 1);
    let first = search
        .run(Some(&stopped_dir), Shard::ALL, Device::Cpu)
        .expect("an interrupted search returns Ok");
    assert!(raiser.join().unwrap(), "SIGINT was sent");
    assert!(first.interrupted, "{first:?}");
    assert!(first.report.is_none());
    assert!(
        (1..6).contains(&first.fits_run),
        "{} fits ran",
        first.fits_run
    );
    assert_eq!(
        records(&stopped_dir),
        first.fits_run,
        "each finished fit is recorded"
    );
    assert_eq!(sigint_action(), before, "SIGINT's previous action is back");
    let why = first.report().unwrap_err().to_string();
    assert!(why.contains("interrupted"), "{why}");

    let again = search
        .run(Some(&stopped_dir), Shard::ALL, Device::Cpu)
        .expect("the search continues");
    assert_eq!(again.fits_reused, first.fits_run);
    assert_eq!(again.fits_run, 6 - first.fits_run);
    let straight = search
        .run(Some(&dir.path().join("straight")), Shard::ALL, Device::Cpu)
        .expect("an uninterrupted search");
    assert!(again
        .report()
        .unwrap()
        .same_scores(&straight.report().unwrap()));
}

#[test]
fn an_interrupt_ends_the_learning_rate_sweep_and_stops_a_feature_extraction() {
    use fmnist_kit::train::{lr_find, LrFindConfig, TrainConfig};
    use fmnist_kit::transfer::FeatureExtractor;
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let before = sigint_action();
    let raiser = raise_when(before, || true);
    let config = TrainConfig {
        batch_size: 32,
        ..TrainConfig::default()
    };
    let find = LrFindConfig::default();
    let sweep = lr_find(
        ModelKind::Cnn4.into(),
        &config,
        &synthetic_set(400, 7),
        &find,
        Device::Cpu,
    )
    .expect("an interrupted sweep returns Ok");
    assert!(raiser.join().unwrap(), "SIGINT was sent");
    assert!(
        sweep.stop_reason.starts_with("interrupted after"),
        "{}",
        sweep.stop_reason
    );
    assert!(sweep.rates.len() < find.steps);
    assert_eq!(sweep.rates.len(), sweep.smoothed.len());
    assert_eq!(sigint_action(), before, "SIGINT's previous action is back");

    let mut extractor = FeatureExtractor::new(
        Backbone::EfficientNetLite0,
        &Weights::Random { seed: 3 },
        64,
        Device::Cpu,
    )
    .expect("a random trunk");
    extractor.batch_size = 4;
    let set = synthetic_set(200, 9);
    let raiser = raise_when(before, || true);
    let err = extractor
        .extract(&set)
        .expect_err("an interrupted extraction");
    assert!(raiser.join().unwrap(), "SIGINT was sent");
    assert!(
        matches!(err, fmnist_kit::Error::Interrupted { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("nothing was cached"), "{err}");
    assert_eq!(sigint_action(), before, "SIGINT's previous action is back");
    let features = extractor.extract(&set).expect("extracting again");
    assert_eq!(features.size()[0], 200);
}

#[test]
fn an_interrupted_few_label_study_returns_the_runs_it_finished() {
    use fmnist_kit::transfer::{few_label_study, FeatureExtractor, FewLabelSettings};
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let weights = Weights::ImageNet(Backbone::EfficientNetLite0.default_weights().expect(
        "EfficientNet-Lite0 ImageNet weights in $FMNIST_CACHE_DIR/weights: run `make setup`",
    ));
    let cache = dir.path().join("cache");
    let _cache = CacheDir::set(&cache);
    let extractor =
        FeatureExtractor::new(Backbone::EfficientNetLite0, &weights, 64, Device::Cpu).unwrap();
    let log = tempfile::tempdir().unwrap();
    let settings = FewLabelSettings {
        per_class: vec![3],
        seeds: vec![1, 2],
        steps: 8,
        batch_size: 16,
        head_epochs: 2,
        validation_images: 40,
        test_images: 40,
        tensorboard_dir: Some(log.path().to_path_buf()),
    };
    let (pool, validation, test) = (
        synthetic_set(300, 11),
        synthetic_set(40, 12),
        synthetic_set(40, 13),
    );
    let before = sigint_action();
    // Once the validation and test features are cached, the study is in its first run.
    let features = cache.join("features");
    let raiser = raise_when(before, move || {
        std::fs::read_dir(&features).map_or(0, |d| d.count()) >= 4
    });
    let stopped = few_label_study(&extractor, &pool, &validation, &test, &settings, false)
        .expect("an interrupted study returns Ok");
    assert!(raiser.join().unwrap(), "SIGINT was sent");
    assert!(stopped.interrupted);
    assert!(
        stopped.rows.len() < 6 && stopped.rows.len() % 3 == 0,
        "{} rows",
        stopped.rows.len()
    );
    assert!(stopped.to_html().0.contains("Interrupted"));
    assert_eq!(sigint_action(), before, "SIGINT's previous action is back");
    let whole = few_label_study(&extractor, &pool, &validation, &test, &settings, false).unwrap();
    assert!(!whole.interrupted);
    assert_eq!(whole.rows.len(), 6);
    // Every run of the study logged its epochs for TensorBoard.
    for seed in [1, 2] {
        for method in fmnist_kit::transfer::FewLabelMethod::ALL {
            let dir = log
                .path()
                .join("3-per-class")
                .join(format!("seed-{seed}"))
                .join(method.slug());
            let points = fmnist_kit::tensorboard::read_scalars(&dir).unwrap();
            assert!(
                points.iter().any(|p| p.tag == "loss/train"),
                "{} holds the training curve",
                dir.display()
            );
        }
    }
}
