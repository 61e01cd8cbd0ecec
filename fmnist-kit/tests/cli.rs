//! End-to-end tests of the `fmnist` command-line tool.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::*;

fn fmnist(args: &[&str], cache: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fmnist"))
        .args(args)
        .env("FMNIST_CACHE_DIR", cache)
        .env_remove("FMNIST_DATA")
        .output()
        .expect("the fmnist binary runs")
}

#[test]
fn prepare_data_then_data_info() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("idx");
    write_idx_folder(&src, &synthetic_set(120, 1), &synthetic_set(30, 2));
    let out = dir.path().join("data.tar.gz");
    let (src_s, out_s) = (src.to_str().unwrap(), out.to_str().unwrap());
    let a = json_of(&fmnist(
        &["prepare-data", "--source", src_s, "--out", out_s, "--json"],
        dir.path(),
    ));
    let b = json_of(&fmnist(
        &["prepare-data", "--source", src_s, "--out", out_s, "--json"],
        dir.path(),
    ));
    assert_eq!(a["sha256"], b["sha256"]);
    assert_eq!(a["train_rows"], 120);

    let info = json_of(&fmnist(
        &["data-info", "--data", out_s, "--json"],
        dir.path(),
    ));
    assert_eq!(info["train"]["rows"], 120);
    assert_eq!(info["test"]["rows"], 30);
    assert_eq!(info["train"]["class_counts"]["t_shirt"], 12);
    assert_eq!(info["test"]["class_counts"]["ankle_boots"], 3);
    assert_eq!(info["cached"], false);
    assert!(info["load_seconds"].as_f64().unwrap() >= 0.0);
    assert_eq!(info["split"]["validation"], 24);
    let again = json_of(&fmnist(
        &["data-info", "--data", out_s, "--json"],
        dir.path(),
    ));
    assert_eq!(again["cached"], true);
}

#[test]
fn prepare_data_refuses_a_wrong_checksum() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("idx");
    write_idx_folder(&src, &synthetic_set(20, 1), &synthetic_set(10, 2));
    let out = dir.path().join("data.tar.gz");
    let o = fmnist(
        &[
            "prepare-data",
            "--source",
            src.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--expect-sha256",
            &"a".repeat(64),
        ],
        dir.path(),
    );
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("sha256"));
    assert!(!out.exists());
}

#[test]
fn bad_input_is_a_clear_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.tar.gz");
    write_tarball(&p, &[row(1, 1), row_with_field(5, "x")], &[row(1, 1)]);
    let o = fmnist(&["data-info", "--data", p.to_str().unwrap()], dir.path());
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("bad.tar.gz") && err.contains("line 3, field 5 (pixel4)"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn tsne_writes_embedding_csv_png_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("d.tar.gz");
    std::fs::write(
        &p,
        fmnist_kit::data::tarball_bytes(&synthetic_set(300, 3), &synthetic_set(20, 4)).unwrap(),
    )
    .unwrap();
    let csv = dir.path().join("emb.csv");
    let png = dir.path().join("emb.png");
    let v = json_of(&fmnist(
        &[
            "tsne",
            "--data",
            p.to_str().unwrap(),
            "--n",
            "200",
            "--epochs",
            "400",
            "--embedding-out",
            csv.to_str().unwrap(),
            "--png",
            png.to_str().unwrap(),
            "--json",
        ],
        dir.path(),
    ));
    assert_eq!(v["n"], 200);
    assert!(v["seconds"].as_f64().unwrap() > 0.0);
    let acc = v["knn10_accuracy"].as_f64().unwrap();
    assert!(
        acc > 0.9,
        "well-separated synthetic classes must embed apart: {acc}"
    );
    let text = std::fs::read_to_string(&csv).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "index,label,x,y");
    assert_eq!(lines.len(), 201);
    assert!(
        lines[1].starts_with("0,0,") && lines[200].starts_with("199,9,"),
        "{}",
        lines[200]
    );
    assert_eq!(&std::fs::read(&png).unwrap()[..8], b"\x89PNG\r\n\x1a\n");

    // Too few points for the perplexity: an error, not a panic.
    let o = fmnist(
        &["tsne", "--data", p.to_str().unwrap(), "--n", "50"],
        dir.path(),
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("perplexity"));
}

/// The real data, as `make test` installs it (Debian's dataset-fashion-mnist).
#[test]
fn official_idx_files_have_the_official_counts() {
    let src = Path::new(fmnist_kit::data::DEBIAN_SOURCE);
    assert!(
        src.join("train-images-idx3-ubyte.gz").is_file(),
        "{} is missing: run `make setup` (installs dataset-fashion-mnist)",
        src.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let info = json_of(&fmnist(
        &["data-info", "--data", src.to_str().unwrap(), "--json"],
        dir.path(),
    ));
    assert_eq!(info["train"]["rows"], 60_000);
    assert_eq!(info["test"]["rows"], 10_000);
    for name in fmnist_kit::data::CLASS_NAMES {
        assert_eq!(info["train"]["class_counts"][name], 6_000);
        assert_eq!(info["test"]["class_counts"][name], 1_000);
    }
    let mean = info["train"]["pixel_mean"].as_f64().unwrap();
    assert!((mean - 0.2860).abs() < 1e-3, "{mean}");
}

#[test]
fn train_then_evaluate_agree_with_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("d.tar.gz");
    std::fs::write(
        &p,
        fmnist_kit::data::tarball_bytes(&synthetic_set(400, 5), &synthetic_set(50, 6)).unwrap(),
    )
    .unwrap();
    let out = dir.path().join("run");
    let (data, out_s) = (p.to_str().unwrap(), out.to_str().unwrap());
    let output = fmnist(
        &[
            "train",
            "--model",
            "cnn4",
            "--profile",
            "smoke",
            "--data",
            data,
            "--out",
            out_s,
            "--json",
        ],
        dir.path(),
    );
    let trained = json_of(&output);
    // With --json the progress lines go to standard error, one per epoch.
    let progress = String::from_utf8_lossy(&output.stderr);
    let history: serde_json::Value = serde_json::from_slice(
        &std::fs::read(trained["history"].as_str().expect("a history path")).unwrap(),
    )
    .unwrap();
    let epochs = history["epochs"].as_array().map_or(0, Vec::len);
    assert!(epochs > 0, "{trained}");
    assert_eq!(
        progress.lines().filter(|l| l.starts_with("epoch ")).count(),
        epochs,
        "{progress}"
    );
    assert_eq!(trained["model"], "cnn4");
    assert_eq!(trained["test_images"], 50);
    let csv = dir.path().join("pred.csv");
    let ckpt = out.join("best.safetensors");
    let eval = json_of(&fmnist(
        &[
            "evaluate",
            "--checkpoint",
            ckpt.to_str().unwrap(),
            "--data",
            data,
            "--predictions",
            csv.to_str().unwrap(),
            "--json",
        ],
        dir.path(),
    ));
    // The model was read from result.json beside the checkpoint.
    assert_eq!(eval["model"], "cnn4");
    for key in fmnist_kit::data::CLASS_NAMES
        .iter()
        .copied()
        .chain(["macro avg", "weighted avg"])
    {
        for field in ["precision", "recall", "f1-score", "support"] {
            assert!(eval[key][field].is_number(), "{key}/{field}");
        }
    }
    let text = std::fs::read_to_string(&csv).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "index,label,predicted,p0,p1,p2,p3,p4,p5,p6,p7,p8,p9"
    );
    assert_eq!(lines.len(), 51);
    let right = lines[1..]
        .iter()
        .filter(|l| {
            let f: Vec<&str> = l.split(',').collect();
            f[1] == f[2]
        })
        .count();
    let acc = eval["accuracy"].as_f64().unwrap();
    assert!(
        (acc - right as f64 / 50.0).abs() < 1e-12,
        "JSON accuracy {acc} vs CSV {right}/50"
    );
    assert!(
        (acc - trained["test_accuracy"].as_f64().unwrap()).abs() < 1e-12,
        "evaluate agrees with train"
    );
    let cm = eval["confusion_matrix"].as_array().unwrap();
    let diag: u64 = (0..10).map(|i| cm[i][i].as_u64().unwrap()).sum();
    assert_eq!(diag as usize, right);

    let maps = dir.path().join("maps");
    let f = json_of(&fmnist(
        &[
            "features",
            "--checkpoint",
            ckpt.to_str().unwrap(),
            "--data",
            data,
            "--image",
            "3",
            "--class",
            "2",
            "--out",
            maps.to_str().unwrap(),
            "--json",
        ],
        dir.path(),
    ));
    assert_eq!(f["predicted"], 2, "the requested class is explained");
    let files = f["files"].as_array().unwrap();
    assert_eq!(files.len(), 17, "16 layers and the Grad-CAM overlay");
    for file in files {
        let bytes = std::fs::read(file.as_str().unwrap()).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    }
    let past = fmnist(
        &[
            "features",
            "--checkpoint",
            ckpt.to_str().unwrap(),
            "--data",
            data,
            "--image",
            "999999",
        ],
        dir.path(),
    );
    assert_eq!(past.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&past.stderr).contains("past the end"));

    let bad = fmnist(
        &[
            "evaluate",
            "--checkpoint",
            "/nonexistent/best.safetensors",
            "--data",
            data,
        ],
        dir.path(),
    );
    assert_eq!(bad.status.code(), Some(1));
    let said = String::from_utf8_lossy(&bad.stderr);
    assert!(
        said.contains("/nonexistent/best.safetensors: no such") && !said.contains("--model"),
        "the cause is the missing file: {said}"
    );
    // Weights that nothing beside them names need --model.
    let lone = dir.path().join("lone");
    std::fs::create_dir_all(&lone).unwrap();
    std::fs::copy(&ckpt, lone.join("w.safetensors")).unwrap();
    let unnamed = fmnist(
        &[
            "evaluate",
            "--checkpoint",
            lone.join("w.safetensors").to_str().unwrap(),
            "--data",
            data,
        ],
        dir.path(),
    );
    assert_eq!(unnamed.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unnamed.stderr).contains("--model"));
}

#[test]
fn options_with_fixed_values_list_them_from_the_kit() {
    let dir = tempfile::tempdir().unwrap();
    // The networks come from the model table, with their titles, in every command that takes one.
    for command in [
        &["train", "--help"][..],
        &["summary", "--help"],
        &["bench", "train", "--help"],
    ] {
        let help = String::from_utf8_lossy(&fmnist(command, dir.path()).stdout).into_owned();
        for spec in fmnist_kit::models::MODELS.iter() {
            assert!(
                help.contains(spec.name) && help.contains(spec.title),
                "{command:?} help lists {}: {help}",
                spec.name
            );
        }
    }
    let help =
        String::from_utf8_lossy(&fmnist(&["train", "--help"], dir.path()).stdout).into_owned();
    for value in [
        "smoke", "quick", "full", "tuned", "original", "fp32", "bf16", "auto", "cuda:N",
    ] {
        assert!(help.contains(value), "train --help names {value}: {help}");
    }
    // Unknown values are usage errors naming the option and what it takes.
    for (args, says) in [
        (&["summary", "--model", "vgg"][..], "cnn4"),
        (&["summary", "--model", "cnn4", "--device", "tpu"], "cuda:N"),
        (
            &["summary", "--model", "cnn4", "--precision", "fp16"],
            "bf16",
        ),
        (&["transfer", "--backbone", "vgg"], "efficientnet-lite0"),
    ] {
        let o = fmnist(args, dir.path());
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    // Aliases from the table are accepted, and the global options may follow the subcommand.
    let o = fmnist(
        &["summary", "--model", "lite0", "--device", "cpu", "--json"],
        dir.path(),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["model"], "efficientnet-lite0");
}

#[test]
fn lr_find_sweeps_rising_rates_and_draws_them() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("d.tar.gz");
    std::fs::write(
        &p,
        fmnist_kit::data::tarball_bytes(&synthetic_set(400, 5), &synthetic_set(50, 6)).unwrap(),
    )
    .unwrap();
    let png = dir.path().join("lr.png");
    let output = fmnist(
        &[
            "lr-find",
            "--model",
            "cnn4",
            "--profile",
            "smoke",
            "--steps",
            "40",
            "--data",
            p.to_str().unwrap(),
            "--png",
            png.to_str().unwrap(),
            "--json",
        ],
        dir.path(),
    );
    let v = json_of(&output);
    let rates: Vec<f64> = v["rates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_f64().unwrap())
        .collect();
    assert!(
        rates.len() >= 10 && rates.windows(2).all(|w| w[1] > w[0]),
        "{v}"
    );
    assert_eq!(v["losses"].as_array().unwrap().len(), rates.len());
    assert!((rates[0] - 1e-7).abs() < 1e-12);
    assert!(
        v["steepest"].as_f64().is_some_and(|s| s > 1e-7 && s < 10.0),
        "{v}"
    );
    assert_eq!(v["recipe_learning_rate"].as_f64(), Some(2e-3));
    assert_eq!(&std::fs::read(&png).unwrap()[..8], b"\x89PNG\r\n\x1a\n");
}
