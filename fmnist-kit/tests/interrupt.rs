//! An interrupt (SIGINT) during `TrainingRun::fit`: the call returns `Ok` with a result marked
//! "interrupted after epoch 1" (also in `result.json`), SIGINT's previous action is back, and
//! fitting again finishes the run bit for bit as an uninterrupted run. Then a new `prepare` on
//! the same folder reads the finished run back, and one for another run starts afresh. The same
//! for a transfer run's fine-tuning, which continues in the trainer it stopped in. The tests raise
//! SIGINT in the process and use torch's global generator, so they hold one lock.

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
    std::env::set_var("FMNIST_CACHE_DIR", dir.path().join("cache"));

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
