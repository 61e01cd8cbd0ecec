//! `fmnist transfer` and `fmnist embed` end to end on synthetic data in the smoke profile, with
//! the real EfficientNet-Lite0 ImageNet weights (installed by `make setup`): the JSON a run
//! writes, `--resume` reading stage 1 back and continuing stage 2 (and neither, for another
//! image size), a corrupted feature cache rebuilt, `fmnist evaluate` on the
//! transfer checkpoint without `--model`, `--weights random` labelled so, and clear errors for
//! missing InceptionV3 weights and a too-small image size.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;
use fmnist_kit::models::Backbone;
use serde_json::Value;

/// The synthetic data (an idx folder).
fn data(dir: &Path) -> PathBuf {
    let src = dir.join("idx");
    write_idx_folder(&src, &synthetic_set(600, 31), &synthetic_set(100, 32));
    src
}

fn lite0_weights() -> PathBuf {
    Backbone::EfficientNetLite0.default_weights().expect(
        "EfficientNet-Lite0 ImageNet weights in $FMNIST_CACHE_DIR/weights: run `make setup`",
    )
}

/// `fmnist ARGS --data DATA`, with its own cache folder (the feature cache lands there).
fn fmnist(args: &[&str], data: &Path, cache: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fmnist"))
        .args(args)
        .arg("--data")
        .arg(data)
        .env("FMNIST_CACHE_DIR", cache)
        .env_remove("FMNIST_INCEPTION_WEIGHTS")
        .output()
        .expect("the fmnist binary runs")
}

fn failure(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "expected a failure, got:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!err.contains("panicked"), "a panic, not an error: {err}");
    err
}

fn accuracy(v: &Value, key: &str) -> f64 {
    let a = v[key].as_f64().unwrap_or_else(|| panic!("no {key} in {v}"));
    assert!((0.0..=1.0).contains(&a), "{key} = {a}");
    a
}

#[test]
fn transfer_writes_its_json_resumes_and_is_evaluated_without_model() {
    let dir = tempfile::tempdir().unwrap();
    let idx = data(dir.path());
    let cache = dir.path().join("cache");
    let out = dir.path().join("run");
    let weights = lite0_weights();
    let (w, o) = (weights.to_str().unwrap(), out.to_str().unwrap());
    let base = [
        "transfer",
        "--backbone",
        "efficientnet-lite0",
        "--weights",
        w,
        "--profile",
        "smoke",
        "--out",
        o,
        "--json",
    ];

    let first = json_of(&fmnist(&base, &idx, &cache));
    assert_eq!(first["backbone"], "efficientnet-lite0", "{first}");
    assert_eq!(first["image_size"], 32);
    assert_eq!(first["weights"]["path"], w);
    assert_eq!(
        first["weights"]["sha256"].as_str().map(str::len),
        Some(64),
        "{first}"
    );
    let frozen = accuracy(&first, "frozen_test_accuracy");
    accuracy(&first, "test_accuracy");
    for key in ["feature_seconds", "stage1_seconds", "train_seconds"] {
        assert!(
            first[key].as_f64().is_some_and(|s| s > 0.0),
            "{key}: {first}"
        );
    }
    assert_eq!(first["epochs_run"], 1);
    assert_eq!(first["features_from_cache"], false);
    assert!(
        first["stage1_epochs"].as_u64().is_some_and(|e| e >= 1),
        "{first}"
    );
    for file in ["result.json", "transfer.json"] {
        assert!(
            out.join(file).is_file(),
            "{file} missing in {}",
            out.display()
        );
    }
    let checkpoint = first["checkpoint"].as_str().expect("a checkpoint path");
    assert!(Path::new(checkpoint).is_file(), "{checkpoint}");

    // Resume: stage 1 is read back (the same frozen accuracy, bit for bit), stage 2 continues
    // from epoch 1 to epoch 2.
    let mut resumed_args = base.to_vec();
    resumed_args.extend(["--resume", "--epochs", "2"]);
    let resumed = fmnist(&resumed_args, &idx, &cache);
    let second = json_of(&resumed);
    assert_eq!(second["frozen_test_accuracy"].as_f64(), Some(frozen));
    assert_eq!(second["epochs_run"], 2, "{second}");
    let history: Value = serde_json::from_slice(
        &std::fs::read(out.join("history.json")).expect("history.json beside the checkpoint"),
    )
    .expect("history.json is JSON");
    assert_eq!(
        history["epochs"].as_array().map(Vec::len),
        Some(2),
        "{history}"
    );

    // A second run without --resume reads the features from the cache.
    let cached_out = dir.path().join("again");
    let mut again = base.to_vec();
    again[8] = cached_out.to_str().unwrap();
    let third = json_of(&fmnist(&again, &idx, &cache));
    assert_eq!(third["features_from_cache"], true, "{third}");
    assert_eq!(third["frozen_test_accuracy"].as_f64(), Some(frozen));

    // One flipped bit in a cached features file fails its content check: the features are
    // extracted again, a line says so, and the results are those of the good features.
    let cached: Vec<PathBuf> = std::fs::read_dir(cache.join("features"))
        .expect("the feature cache folder")
        .map(|e| e.expect("an entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    assert_eq!(
        cached.len(),
        3,
        "training, validation and test features: {cached:?}"
    );
    for file in &cached {
        let mut bytes = std::fs::read(file).expect("a cached features file");
        let last = bytes.len() - 3;
        bytes[last] ^= 0x10;
        std::fs::write(file, bytes).expect("the corrupted file written");
    }
    let flipped_out = dir.path().join("flipped");
    let mut flipped = base.to_vec();
    flipped[8] = flipped_out.to_str().unwrap();
    let rebuilt = fmnist(&flipped, &idx, &cache);
    let fourth = json_of(&rebuilt);
    assert_eq!(fourth["features_from_cache"], false, "{fourth}");
    assert_eq!(fourth["frozen_test_accuracy"].as_f64(), Some(frozen));
    let said = String::from_utf8_lossy(&rebuilt.stderr);
    assert!(
        said.contains("the content check failed") && said.contains("extracted again"),
        "no line says the cache was rebuilt: {said}"
    );

    // `fmnist evaluate` finds the network from result.json beside the checkpoint.
    let checkpoint = second["checkpoint"].as_str().expect("a checkpoint path");
    let eval = json_of(&fmnist(
        &["evaluate", "--json", "--checkpoint", checkpoint],
        &idx,
        &cache,
    ));
    assert_eq!(eval["model"], "efficientnet-lite0", "{eval}");
    assert_eq!(eval["images"], 100);
    let (ours, theirs) = (
        accuracy(&eval, "accuracy"),
        accuracy(&second, "test_accuracy"),
    );
    // The same weights on the same images; a tie broken otherwise may move one image.
    assert!(
        (ours - theirs).abs() <= 0.0101,
        "evaluate {ours} vs transfer {theirs}"
    );

    // `--resume` with another image size: stage 1 runs again, and stage 2 starts afresh
    // instead of continuing the checkpoint of the other run.
    let mut other_args = base.to_vec();
    other_args.extend(["--resume", "--size", "40"]);
    let other = json_of(&fmnist(&other_args, &idx, &cache));
    assert_eq!(other["image_size"], 40);
    assert_eq!(other["features_from_cache"], false, "{other}");
    // The 32-px checkpoint had 2 epochs; continuing it would report 2.
    assert_eq!(other["epochs_run"], 1, "{other}");
}

#[test]
fn embed_writes_features_and_labels_random_weights() {
    let dir = tempfile::tempdir().unwrap();
    let idx = data(dir.path());
    let cache = dir.path().join("cache");
    let weights = lite0_weights();
    let csv_of = |name: &str, w: &str| {
        let path = dir.path().join(name);
        let v = json_of(&fmnist(
            &[
                "embed",
                "--backbone",
                "efficientnet-lite0",
                "--weights",
                w,
                "--size",
                "32",
                "--first",
                "8",
                "--out",
                path.to_str().unwrap(),
                "--json",
            ],
            &idx,
            &cache,
        ));
        assert_eq!(v["images"], 8);
        assert_eq!(v["features"], 1280);
        assert_eq!(v["split"], "test");
        (v, std::fs::read_to_string(&path).expect("the CSV"))
    };
    let (imagenet, a) = csv_of("imagenet.csv", weights.to_str().unwrap());
    let (random, b) = csv_of("random.csv", "random");
    assert_eq!(imagenet["weights"]["path"], weights.to_str().unwrap());
    let label = random["weights"]
        .as_str()
        .expect("random weights as a string");
    assert!(label.starts_with("random"), "{label}");

    for csv in [&a, &b] {
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 9, "a header and 8 rows");
        let header: Vec<&str> = lines[0].split(',').collect();
        assert_eq!(header.len(), 1281);
        assert_eq!(
            (header[0], header[1], header[1280]),
            ("index", "f0", "f1279")
        );
        for (i, line) in lines[1..].iter().enumerate() {
            let fields: Vec<&str> = line.split(',').collect();
            assert_eq!(fields[0], i.to_string());
            assert!(fields[1..]
                .iter()
                .all(|f| f.parse::<f32>().is_ok_and(f32::is_finite)));
        }
    }
    assert_ne!(a, b, "ImageNet and random trunks give the same features");
}

#[test]
fn inception_weights_and_sizes_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let idx = data(dir.path());
    let cache = dir.path().join("cache");
    let out = dir.path().join("x.csv");
    let o = out.to_str().unwrap();
    let missing = dir.path().join("inception-nope.safetensors");

    let err = failure(&fmnist(
        &[
            "embed",
            "--backbone",
            "inception-v3",
            "--weights",
            missing.to_str().unwrap(),
            "--first",
            "2",
            "--out",
            o,
        ],
        &idx,
        &cache,
    ));
    assert!(err.contains("inception-nope.safetensors"), "{err}");
    assert!(err.contains("InceptionV3"), "{err}");

    // No weights given, none in the environment: it says how to make them, never a random trunk.
    let err = failure(&fmnist(
        &[
            "embed",
            "--backbone",
            "inception-v3",
            "--first",
            "2",
            "--out",
            o,
        ],
        &idx,
        &cache,
    ));
    assert!(err.contains("FMNIST_INCEPTION_WEIGHTS"), "{err}");

    // Below the trunk's minimum input size.
    let err = failure(&fmnist(
        &[
            "embed",
            "--backbone",
            "inception-v3",
            "--weights",
            "random",
            "--size",
            "40",
            "--first",
            "2",
            "--out",
            o,
        ],
        &idx,
        &cache,
    ));
    assert!(err.contains("75"), "{err}");
    assert!(!out.exists(), "nothing written after an error");
}
