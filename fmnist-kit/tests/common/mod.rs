//! Helpers shared by the integration tests: small, generated data files.
#![allow(dead_code)]

use std::io::Write;
use std::path::Path;
use std::process::Output;

use fmnist_kit::data::{ImageSet, PIXELS};

/// `n` synthetic images: class `i % 10`, each class a distinct bright band plus noise,
/// so that classes are easy to tell apart.
pub fn synthetic_set(n: usize, seed: u64) -> ImageSet {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as u32
    };
    let mut set = ImageSet::default();
    for i in 0..n {
        let class = (i % 10) as u8;
        set.labels.push(class);
        for p in 0..PIXELS {
            let row = p / 28;
            let band = (row / 3) as u8 == class;
            let noise = (next() % 40) as u8;
            set.images.push(if band { 200 + noise / 2 } else { noise });
        }
    }
    set
}

/// A gzip stream of `bytes` with a fixed header.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// A tar archive of `(name, content)` members. Names are written raw into the header, so
/// unsafe names (`../x`, `/etc/x`) can be produced for the tests.
pub fn tar(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, content) in members {
        let mut header = tar::Header::new_gnu();
        {
            let old = header.as_old_mut();
            old.name[..name.len()].copy_from_slice(name.as_bytes());
        }
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_cksum();
        builder.append(&header, *content).unwrap();
    }
    builder.into_inner().unwrap()
}

/// CSV text with the standard header and the given rows (each row already joined by commas).
pub fn csv(rows: &[String]) -> Vec<u8> {
    let mut out = String::from("label");
    for i in 1..=PIXELS {
        out.push_str(&format!(",pixel{i}"));
    }
    out.push('\n');
    for r in rows {
        out.push_str(r);
        out.push('\n');
    }
    out.into_bytes()
}

/// A valid row: label then 784 pixels of `value`.
pub fn row(label: u8, value: u8) -> String {
    let mut s = label.to_string();
    for _ in 0..PIXELS {
        s.push(',');
        s.push_str(&value.to_string());
    }
    s
}

/// A valid row with field `field` (1-based, 1 = label) replaced by `text`.
pub fn row_with_field(field: usize, text: &str) -> String {
    let mut fields: Vec<String> = row(3, 7).split(',').map(str::to_string).collect();
    fields[field - 1] = text.to_string();
    fields.join(",")
}

/// Writes a tarball with train and test members holding `train_rows` / `test_rows`.
pub fn write_tarball(path: &Path, train_rows: &[String], test_rows: &[String]) {
    let train = csv(train_rows);
    let test = csv(test_rows);
    std::fs::write(
        path,
        gzip(&tar(&[
            ("fashion_mnist_train.csv", &train),
            ("fashion_mnist_test.csv", &test),
        ])),
    )
    .unwrap();
}

fn idx_images(set: &ImageSet) -> Vec<u8> {
    let mut out = Vec::new();
    for v in [0x0803u32, set.len() as u32, 28, 28] {
        out.extend_from_slice(&v.to_be_bytes());
    }
    out.extend_from_slice(&set.images);
    gzip(&out)
}

fn idx_labels(set: &ImageSet) -> Vec<u8> {
    let mut out = Vec::new();
    for v in [0x0801u32, set.len() as u32] {
        out.extend_from_slice(&v.to_be_bytes());
    }
    out.extend_from_slice(&set.labels);
    gzip(&out)
}

/// Writes the four official idx files for `train` and `test` into `dir`.
pub fn write_idx_folder(dir: &Path, train: &ImageSet, test: &ImageSet) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("train-images-idx3-ubyte.gz"), idx_images(train)).unwrap();
    std::fs::write(dir.join("train-labels-idx1-ubyte.gz"), idx_labels(train)).unwrap();
    std::fs::write(dir.join("t10k-images-idx3-ubyte.gz"), idx_images(test)).unwrap();
    std::fs::write(dir.join("t10k-labels-idx1-ubyte.gz"), idx_labels(test)).unwrap();
}

/// The JSON an `fmnist ... --json` run printed; fails the test with its stdout and stderr when
/// the command failed.
pub fn json_of(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "fmnist failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}
