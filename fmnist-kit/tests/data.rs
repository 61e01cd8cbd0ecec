//! Reading, caching, splitting and building data files; every kind of bad input.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use fmnist_kit::data::{self, CachePolicy, SplitConfig, PIXELS};
use fmnist_kit::Error;

fn load_err(path: &Path) -> (Error, String) {
    let err = data::load_with(path, &CachePolicy::Off).expect_err("bad input must be an error");
    let msg = err.to_string();
    assert!(
        msg.contains(&path.display().to_string()),
        "the message must name the file {}: {msg}",
        path.display()
    );
    (err, msg)
}

fn bad_tarball(dir: &Path, name: &str, train_rows: &[String]) -> PathBuf {
    let p = dir.join(name);
    write_tarball(&p, train_rows, &[row(1, 0)]);
    p
}

#[test]
fn round_trip_through_tarball_bytes() {
    let train = synthetic_set(30, 1);
    let test = synthetic_set(10, 2);
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("d.tar.gz");
    std::fs::write(&p, data::tarball_bytes(&train, &test).unwrap()).unwrap();
    let d = data::load_with(&p, &CachePolicy::Off).unwrap();
    assert_eq!(d.train, train);
    assert_eq!(d.test, test);
    assert!(!d.info.cached);
}

#[test]
fn tarball_bytes_are_reproducible() {
    let train = synthetic_set(20, 1);
    let test = synthetic_set(10, 2);
    assert_eq!(
        data::tarball_bytes(&train, &test).unwrap(),
        data::tarball_bytes(&train, &test).unwrap()
    );
}

#[test]
fn kaggle_member_names_nested_folder_and_crlf_are_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let train = String::from_utf8(csv(&[row(4, 9), row(2, 255)]))
        .unwrap()
        .replace('\n', "\r\n");
    let test = csv(&[row(0, 1)]);
    let p = dir.path().join("kaggle.tar.gz");
    std::fs::write(
        &p,
        gzip(&tar(&[
            ("fashion/fashion-mnist_train.csv", train.as_bytes()),
            ("README.txt", b"ignored member"),
            ("fashion-mnist_test.csv", &test),
        ])),
    )
    .unwrap();
    let d = data::load_with(&p, &CachePolicy::Off).unwrap();
    assert_eq!(d.train.labels, vec![4, 2]);
    assert_eq!(d.train.image(1).unwrap(), &[255u8; PIXELS][..]);
    assert_eq!(d.test.labels, vec![0]);
}

#[test]
fn idx_folder_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let (train, test) = (synthetic_set(25, 3), synthetic_set(5, 4));
    write_idx_folder(dir.path(), &train, &test);
    let d = data::load_with(dir.path(), &CachePolicy::Off).unwrap();
    assert_eq!((d.train, d.test), (train, test));
}

#[test]
fn prepare_data_builds_a_loadable_reproducible_tarball_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("idx");
    let (train, test) = (synthetic_set(40, 5), synthetic_set(10, 6));
    write_idx_folder(&src, &train, &test);
    let out = dir.path().join("out").join("data.tar.gz");
    let a = data::prepare_data(&src, &out, None).unwrap();
    let b = data::prepare_data(&src, &out, Some(&a.sha256)).unwrap();
    assert_eq!(a.sha256, b.sha256);
    assert_eq!((a.train_rows, a.test_rows), (40, 10));
    let d = data::load_with(&out, &CachePolicy::Off).unwrap();
    assert_eq!((d.train, d.test), (train, test));
    // A wrong expected checksum is refused and leaves the existing file as it was.
    let before = std::fs::read(&out).unwrap();
    let err = data::prepare_data(&src, &out, Some(&"0".repeat(64))).unwrap_err();
    assert!(err.to_string().contains("sha256"), "{err}");
    assert_eq!(std::fs::read(&out).unwrap(), before);
    // No temporary file is left behind.
    let names: Vec<_> = std::fs::read_dir(out.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
}

#[test]
fn cache_is_used_the_second_time_and_never_stale() {
    let dir = tempfile::tempdir().unwrap();
    let cache = CachePolicy::Dir(dir.path().join("cache"));
    let p = dir.path().join("d.tar.gz");
    write_tarball(&p, &[row(1, 10), row(2, 20)], &[row(3, 30)]);
    let first = data::load_with(&p, &cache).unwrap();
    assert!(!first.info.cached);
    assert!(first.info.cache_warning.is_none());
    let second = data::load_with(&p, &cache).unwrap();
    assert!(second.info.cached);
    assert_eq!(first.train, second.train);
    assert_eq!(first.test, second.test);
    // Same size, different content: a new key, parsed afresh.
    write_tarball(&p, &[row(1, 10), row(5, 20)], &[row(3, 30)]);
    let third = data::load_with(&p, &cache).unwrap();
    assert!(!third.info.cached);
    assert_eq!(third.train.labels, vec![1, 5]);
    // A corrupted cache file is ignored, not trusted.
    let cache_file = dir
        .path()
        .join("cache")
        .join(format!("{}.fmnist", third.info.content_hash));
    let mut bytes = std::fs::read(&cache_file).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&cache_file, bytes).unwrap();
    let fourth = data::load_with(&p, &cache).unwrap();
    assert!(!fourth.info.cached);
    assert_eq!(fourth.test, third.test);
}

#[test]
fn split_is_deterministic_disjoint_and_stratified_on_request() {
    let set = synthetic_set(1000, 7);
    let a = data::train_validation_split(&set, &SplitConfig::default()).unwrap();
    let b = data::train_validation_split(&set, &SplitConfig::default()).unwrap();
    assert_eq!(a.validation_indices, b.validation_indices);
    assert_eq!((a.train.len(), a.validation.len()), (800, 200));
    let mut all: Vec<usize> = a
        .train_indices
        .iter()
        .chain(&a.validation_indices)
        .copied()
        .collect();
    all.sort();
    assert_eq!(all, (0..1000).collect::<Vec<_>>());
    let c = data::train_validation_split(
        &set,
        &SplitConfig {
            seed: 14,
            ..Default::default()
        },
    )
    .unwrap();
    assert_ne!(a.validation_indices, c.validation_indices);
    let s = data::train_validation_split(
        &set,
        &SplitConfig {
            stratified: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(s.validation.class_counts().iter().all(|&n| n == 20));
    assert!(data::train_validation_split(
        &set,
        &SplitConfig {
            validation_fraction: 1.0,
            ..Default::default()
        }
    )
    .is_err());
}

#[test]
fn tensors_have_the_documented_shapes_and_range() {
    let set = synthetic_set(12, 8);
    let x = set.images_tensor();
    assert_eq!(x.size(), vec![12, 1, 28, 28]);
    assert!(x.max().double_value(&[]) <= 1.0 && x.min().double_value(&[]) >= 0.0);
    assert_eq!(set.labels_tensor().size(), vec![12]);
    assert!(set.select(&[0, 99]).is_err());
}

// ---- bad input: one test each ---------------------------------------------------------------

#[test]
fn not_gzip() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("plain.tar.gz");
    std::fs::write(&p, b"label,pixel1\n1,2\n").unwrap();
    let (err, msg) = load_err(&p);
    assert!(matches!(err, Error::Gzip { .. }), "{msg}");
    assert!(msg.contains("gzip"), "{msg}");
}

#[test]
fn truncated_gzip() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("cut.tar.gz");
    write_tarball(&p, &vec![row(1, 1); 50], &[row(1, 1)]);
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    let (err, msg) = load_err(&p);
    assert!(matches!(err, Error::Gzip { .. }), "{msg}");
    assert!(msg.contains("truncated"), "{msg}");
}

#[test]
fn not_a_tar() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("notar.tar.gz");
    std::fs::write(&p, gzip(&[b'x'; 2000])).unwrap();
    let (err, msg) = load_err(&p);
    assert!(
        matches!(err, Error::Tar { .. } | Error::MissingMember { .. }),
        "{msg}"
    );
}

#[test]
fn member_missing() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("onlytrain.tar.gz");
    std::fs::write(
        &p,
        gzip(&tar(&[("fashion_mnist_train.csv", &csv(&[row(1, 1)]))])),
    )
    .unwrap();
    let (err, msg) = load_err(&p);
    assert!(matches!(err, Error::MissingMember { .. }), "{msg}");
    assert!(msg.contains("fashion_mnist_test.csv"), "{msg}");
}

#[test]
fn wrong_header() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("header.tar.gz");
    let bad = String::from_utf8(csv(&[row(1, 1)]))
        .unwrap()
        .replacen("pixel2", "pixelX", 1);
    std::fs::write(
        &p,
        gzip(&tar(&[
            ("fashion_mnist_train.csv", bad.as_bytes()),
            ("fashion_mnist_test.csv", &csv(&[row(1, 1)])),
        ])),
    )
    .unwrap();
    let (_, msg) = load_err(&p);
    assert!(
        msg.contains("fashion_mnist_train.csv")
            && msg.contains("line 1")
            && msg.contains("field 3"),
        "{msg}"
    );
    assert!(msg.contains("pixelX"), "{msg}");
}

#[test]
fn row_with_wrong_field_count() {
    let dir = tempfile::tempdir().unwrap();
    let short: String = row(1, 1).rsplit_once(',').unwrap().0.to_string();
    let p = bad_tarball(dir.path(), "short.tar.gz", &[row(1, 1), short]);
    let (_, msg) = load_err(&p);
    assert!(
        msg.contains("line 3") && msg.contains("784 fields, expected 785"),
        "{msg}"
    );
    let long = format!("{},0", row(1, 1));
    let p = bad_tarball(dir.path(), "long.tar.gz", &[long]);
    let (_, msg) = load_err(&p);
    assert!(
        msg.contains("line 2") && msg.contains("786 fields"),
        "{msg}"
    );
}

#[test]
fn non_integer_field() {
    let dir = tempfile::tempdir().unwrap();
    let p = bad_tarball(
        dir.path(),
        "float.tar.gz",
        &[row(1, 1), row(2, 2), row_with_field(3, "1.5")],
    );
    let (err, msg) = load_err(&p);
    assert!(matches!(err, Error::Data { .. }), "{msg}");
    assert!(
        msg.contains("line 4, field 3 (pixel2)") && msg.contains("\"1.5\" is not an integer"),
        "{msg}"
    );
    let p = bad_tarball(dir.path(), "empty-field.tar.gz", &[row_with_field(10, "")]);
    let (_, msg) = load_err(&p);
    assert!(
        msg.contains("field 10 (pixel9)") && msg.contains("not an integer"),
        "{msg}"
    );
}

#[test]
fn pixel_out_of_range() {
    let dir = tempfile::tempdir().unwrap();
    let p = bad_tarball(dir.path(), "pixel.tar.gz", &[row_with_field(785, "256")]);
    let (_, msg) = load_err(&p);
    assert!(
        msg.contains("line 2, field 785 (pixel784)") && msg.contains("256 is outside 0..=255"),
        "{msg}"
    );
    let p = bad_tarball(dir.path(), "negative.tar.gz", &[row_with_field(2, "-1")]);
    let (_, msg) = load_err(&p);
    assert!(
        msg.contains("field 2 (pixel1)") && msg.contains("-1 is outside 0..=255"),
        "{msg}"
    );
}

#[test]
fn label_out_of_range() {
    let dir = tempfile::tempdir().unwrap();
    let p = bad_tarball(dir.path(), "label.tar.gz", &[row(1, 1), row(10, 1)]);
    let (_, msg) = load_err(&p);
    assert!(
        msg.contains("line 3, field 1 (label)") && msg.contains("10 is outside 0..=9"),
        "{msg}"
    );
}

#[test]
fn empty_member() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("empty.tar.gz");
    std::fs::write(
        &p,
        gzip(&tar(&[
            ("fashion_mnist_train.csv", b""),
            ("fashion_mnist_test.csv", &csv(&[row(1, 1)])),
        ])),
    )
    .unwrap();
    let (_, msg) = load_err(&p);
    assert!(
        msg.contains("fashion_mnist_train.csv") && msg.contains("empty"),
        "{msg}"
    );
    let p = dir.path().join("header-only.tar.gz");
    std::fs::write(
        &p,
        gzip(&tar(&[
            ("fashion_mnist_train.csv", &csv(&[row(1, 1)])),
            ("fashion_mnist_test.csv", &csv(&[])),
        ])),
    )
    .unwrap();
    let (_, msg) = load_err(&p);
    assert!(
        msg.contains("fashion_mnist_test.csv") && msg.contains("no data rows"),
        "{msg}"
    );
}

#[test]
fn unsafe_member_names() {
    let dir = tempfile::tempdir().unwrap();
    for (file, name) in [
        ("dotdot.tar.gz", "../fashion_mnist_train.csv"),
        ("abs.tar.gz", "/tmp/fashion_mnist_train.csv"),
    ] {
        let p = dir.path().join(file);
        let body = csv(&[row(1, 1)]);
        std::fs::write(
            &p,
            gzip(&tar(&[(name, &body), ("fashion_mnist_test.csv", &body)])),
        )
        .unwrap();
        let (err, msg) = load_err(&p);
        assert!(matches!(err, Error::UnsafeMember { .. }), "{msg}");
        assert!(msg.contains(name), "{msg}");
    }
    // Nothing was written outside (or inside) the folder.
    assert!(!dir
        .path()
        .parent()
        .unwrap()
        .join("fashion_mnist_train.csv")
        .exists());
    assert!(!Path::new("/tmp/fashion_mnist_train.csv").exists());
}

#[test]
fn bad_idx_files() {
    let dir = tempfile::tempdir().unwrap();
    let (train, test) = (synthetic_set(10, 1), synthetic_set(5, 2));
    write_idx_folder(dir.path(), &train, &test);
    let labels = dir.path().join("t10k-labels-idx1-ubyte.gz");
    std::fs::write(&labels, gzip(&[0, 0, 8, 1, 0, 0, 0, 2, 3, 11])).unwrap();
    let err = data::load_with(dir.path(), &CachePolicy::Off)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("t10k-labels-idx1-ubyte.gz") && err.contains("label 11 is outside 0..=9"),
        "{err}"
    );
    std::fs::remove_file(&labels).unwrap();
    let err = data::load_with(dir.path(), &CachePolicy::Off)
        .unwrap_err()
        .to_string();
    assert!(err.contains("t10k-labels-idx1-ubyte.gz"), "{err}");
}

#[test]
fn missing_file_is_an_io_error_naming_it() {
    let p = Path::new("/nonexistent/dir/data.tar.gz");
    let (err, _) = load_err(p);
    assert!(matches!(err, Error::Io { .. }));
}
