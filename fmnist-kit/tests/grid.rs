//! `fmnist grid` end to end, on synthetic data in the smoke profile: a search killed with
//! SIGKILL and rerun equals an uninterrupted one and reruns only the missing fits; two shards
//! run concurrently (one shared folder, or two folders merged) equal one process; the refit is
//! usable by `fmnist evaluate` and read back by a rerun; a diverging fit is recorded and ranks
//! last; bad input is a clear error.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// The synthetic data (an idx folder) the searches read, made once per test.
fn data(dir: &Path) -> PathBuf {
    let src = dir.join("idx");
    write_idx_folder(&src, &synthetic_set(1500, 21), &synthetic_set(200, 22));
    src
}

fn grid_cmd(data: &Path, out: &Path, extra: &[&str], cache: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_fmnist"));
    c.args(["grid", "--profile", "smoke", "--json"])
        .arg("--data")
        .arg(data)
        .arg("--out")
        .arg(out)
        .args(extra)
        .env("FMNIST_CACHE_DIR", cache);
    c
}

fn json(out: Output) -> Value {
    json_of(&out)
}

fn records(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("fits")).map_or(0, |rd| {
        rd.filter_map(|e| e.ok())
            .filter(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                n.ends_with(".json") && !n.starts_with('.')
            })
            .count()
    })
}

/// The scores of a report, in rank order, times left out.
fn scores(v: &Value) -> Vec<(Value, Value, Value, Value)> {
    v["report"]["rows"]
        .as_array()
        .expect("a report")
        .iter()
        .map(|r| {
            (
                r["point"].clone(),
                r["fold_log_loss"].clone(),
                r["fold_accuracy"].clone(),
                r["mean_score"].clone(),
            )
        })
        .collect()
}

#[test]
fn killed_and_rerun_equals_uninterrupted_and_shards_equal_one_process() {
    let tmp = tempfile::tempdir().unwrap();
    let (d, cache) = (data(tmp.path()), tmp.path().join("cache"));
    let dir = |n: &str| tmp.path().join(n);

    // One uninterrupted process.
    let straight = json(
        grid_cmd(&d, &dir("straight"), &["--no-refit"], &cache)
            .output()
            .unwrap(),
    );
    let total = straight["fits_total"].as_u64().unwrap() as usize;
    assert_eq!(total, 32, "16 points × 2 folds in the smoke profile");
    assert_eq!(straight["fits_run"], 32);
    let expected = scores(&straight);

    // Killed with SIGKILL after a few fits, then rerun.
    let mut child = grid_cmd(&d, &dir("killed"), &["--no-refit"], &cache)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while records(&dir("killed")) < 4 && start.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let before = records(&dir("killed"));
    assert!(
        (4..total).contains(&before),
        "{before} fits recorded when killed"
    );
    let rerun = json(
        grid_cmd(&d, &dir("killed"), &["--no-refit"], &cache)
            .output()
            .unwrap(),
    );
    assert_eq!(rerun["fits_reused"].as_u64().unwrap() as usize, before);
    assert_eq!(
        rerun["fits_run"].as_u64().unwrap() as usize,
        total - before,
        "only the missing fits run again"
    );
    assert_eq!(scores(&rerun), expected, "scores compared exactly");

    // Two shards as two concurrent processes on one folder, then the report.
    let shards: Vec<_> = ["1/2", "2/2"]
        .iter()
        .map(|s| {
            grid_cmd(&d, &dir("shared"), &["--shard", s, "--no-refit"], &cache)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let halves: Vec<Value> = shards
        .into_iter()
        .map(|c| json(c.wait_with_output().unwrap()))
        .collect();
    assert_eq!(
        halves
            .iter()
            .map(|h| h["fits_run"].as_u64().unwrap())
            .sum::<u64>(),
        32
    );
    let shared = json(
        grid_cmd(&d, &dir("shared"), &["--no-refit"], &cache)
            .output()
            .unwrap(),
    );
    assert_eq!(shared["fits_run"], 0);
    assert_eq!(scores(&shared), expected);

    // Two shards in separate folders, merged.
    for (s, name) in [("1/2", "part1"), ("2/2", "part2")] {
        let half = json(
            grid_cmd(&d, &dir(name), &["--shard", s, "--no-refit"], &cache)
                .output()
                .unwrap(),
        );
        assert_eq!(
            half["fits_missing"], 16,
            "the other shard's fits are missing"
        );
        assert!(half["report"].is_null());
    }
    // The final job of a sharded search trains nothing: it names the shards whose fits are
    // missing, and on a complete folder it reports.
    let unfinished = grid_cmd(&d, &dir("part1"), &["--finish-shards", "2"], &cache)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&unfinished.stderr);
    assert!(!unfinished.status.success());
    assert!(
        said.contains("16 of 32 fits are not recorded") && said.contains("shard(s) 2/2 did not"),
        "{said}"
    );
    assert_eq!(records(&dir("part1")), 16, "the final job trained nothing");
    let finished = json(
        grid_cmd(
            &d,
            &dir("shared"),
            &["--finish-shards", "2", "--no-refit"],
            &cache,
        )
        .output()
        .unwrap(),
    );
    assert_eq!(finished["fits_run"], 0);
    assert_eq!(scores(&finished), expected);
    let merged = json(
        grid_cmd(&d, &dir("merged"), &["--no-refit", "--merge"], &cache)
            .arg(dir("part1"))
            .arg(dir("part2"))
            .output()
            .unwrap(),
    );
    assert_eq!(
        (merged["fits_run"].as_u64(), merged["fits_reused"].as_u64()),
        (Some(0), Some(32))
    );
    assert_eq!(scores(&merged), expected);

    // The refit on the complete folder: nothing trained again, the best point retrained on all
    // the images, loadable by `fmnist evaluate`.
    let refit = json(
        grid_cmd(&d, &dir("straight"), &[], &cache)
            .output()
            .unwrap(),
    );
    assert_eq!(refit["fits_run"], 0);
    assert_eq!(refit["best"]["point"], straight["best"]["point"]);
    let acc = refit["refit_test_accuracy"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&acc));
    let ckpt = refit["refit"]["checkpoint"].as_str().unwrap();
    let eval = Command::new(env!("CARGO_BIN_EXE_fmnist"))
        .args(["evaluate", "--json", "--checkpoint", ckpt])
        .arg("--data")
        .arg(&d)
        .env("FMNIST_CACHE_DIR", &cache)
        .output()
        .unwrap();
    let eval = json(eval);
    assert!(
        (eval["accuracy"].as_f64().unwrap() - acc).abs() < 1e-9,
        "evaluate {} vs refit {acc}",
        eval["accuracy"]
    );
    assert_eq!(refit["refit_read_back"], false);

    // A second run reads the refit back instead of training it again.
    let again = json(
        grid_cmd(&d, &dir("straight"), &[], &cache)
            .output()
            .unwrap(),
    );
    assert_eq!(again["refit_read_back"], true);
    assert_eq!(again["refit"], refit["refit"]);
}

#[test]
fn a_diverging_fit_is_recorded_and_ranks_last() {
    use fmnist_kit::grid::{GridSearch, GridSettings, GridSpec, Shard};
    use fmnist_kit::train::OptimizerKind;
    let tmp = tempfile::tempdir().unwrap();
    let spec = GridSpec {
        // 1e30 overflows the weights on the first update.
        learning_rates: vec![1e-3, 1e30],
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
        epochs: 1,
        batch_size: 32,
        verbose: false,
        ..Default::default()
    };
    let search = GridSearch::new(spec, settings, synthetic_set(200, 3)).unwrap();
    let first = search
        .run(Some(tmp.path()), Shard::ALL, tch::Device::Cpu)
        .unwrap();
    let report = first.report.expect("every fit ran");
    assert_eq!(report.rows.len(), 1);
    assert_eq!(report.rows[0].point.learning_rate, 1e-3);
    assert!(report.rows[0].mean_score.is_finite());
    assert_eq!(report.diverged.len(), 1);
    let d = &report.diverged[0];
    assert_eq!((d.point.learning_rate, d.folds.clone()), (1e30, vec![0, 1]));
    assert!(d.reason.contains("training loss became"), "{}", d.reason);
    assert!(report.to_html().0.contains("diverged on fold 1, 2"));
    let text = std::fs::read_to_string(tmp.path().join("report.json")).unwrap();
    assert!(
        text.contains("\"diverged\"") && !text.contains("null"),
        "{text}"
    );

    // The diverged fits are recorded: a rerun trains nothing and gives the same report.
    let again = search
        .run(Some(tmp.path()), Shard::ALL, tch::Device::Cpu)
        .unwrap();
    assert_eq!((again.fits_run, again.fits_reused), (0, 4));
    assert!(again.report.expect("complete").same_scores(&report));
}

#[test]
fn bad_input_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let (d, cache) = (data(tmp.path()), tmp.path().join("cache"));
    let out = tmp.path().join("grid");
    let fails_with = |code: i32, extra: &[&str], out: &Path| {
        let o = grid_cmd(&d, out, extra, &cache).output().unwrap();
        assert_eq!(o.status.code(), Some(code), "{extra:?} should fail");
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let fails = |extra: &[&str], out: &Path| fails_with(1, extra, out);
    // A malformed option is a usage error (exit status 2), named with the option.
    for s in ["3/2", "0/2", "1/0", "x"] {
        let err = fails_with(2, &["--shard", s], &out);
        assert!(
            err.contains(s) && err.contains("K/N") && err.contains("--shard"),
            "{err}"
        );
    }
    // A folder holding another search's records (other images).
    json(
        grid_cmd(
            &d,
            &out,
            &["--no-refit", "--shard", "1/16", "--images", "400"],
            &cache,
        )
        .output()
        .unwrap(),
    );
    let err = fails(&["--no-refit"], &out);
    assert!(
        err.contains("search.json") && err.contains("another search"),
        "{err}"
    );
    // The same images and sizes with bf16 training steps are another search too.
    let bf16 = [
        "--precision",
        "bf16",
        "--no-refit",
        "--shard",
        "1/16",
        "--images",
        "400",
    ];
    let err = fails(&bf16, &out);
    assert!(
        err.contains("another search") && err.contains("bf16 steps") && err.contains("fp32 steps"),
        "{err}"
    );
    // A truncated record.
    let record = std::fs::read_dir(out.join("fits"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "json"))
        .unwrap();
    let text = std::fs::read(&record).unwrap();
    std::fs::write(&record, &text[..text.len() / 2]).unwrap();
    let err = fails(&["--no-refit", "--images", "400"], &out);
    let name = record.file_name().unwrap().to_string_lossy().into_owned();
    assert!(err.contains(&name) && err.contains("delete it"), "{err}");
}
