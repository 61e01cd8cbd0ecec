//! The ImageNet backbones against their Python references (PyTorch's own implementations, run
//! by `tests/reference/backbones.py` from the venv `make setup` installs), as the metrics are
//! checked against scikit-learn: EfficientNet-Lite0 with its real ImageNet weights, InceptionV3
//! with a seeded random torchvision state dict. Then every way a weights file can be wrong.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use fmnist_kit::data::ImageSet;
use fmnist_kit::models::{load_trunk_weights, Backbone, ModelKind, NetworkConfig};
use fmnist_kit::train::TrainedNetwork;
use fmnist_kit::transfer::{FeatureExtractor, Weights, WeightsRecord};
use tch::{nn, Device, Kind, Tensor};

/// Six varied 28×28 images: the synthetic bands with noise, and two ramps.
fn images() -> ImageSet {
    let mut set = common::synthetic_set(4, 11);
    for (label, f) in [(3u8, 0usize), (8, 1)] {
        set.labels.push(label);
        for p in 0..784 {
            let (r, c) = (p / 28, p % 28);
            set.images.push(if f == 0 {
                (r * 9) as u8
            } else {
                ((r * c) % 256) as u8
            });
        }
    }
    set
}

/// Runs the Python reference; returns the folder with its outputs.
fn reference(backbone: Backbone, set: &ImageSet, size: usize, dir: &Path) -> Tensor {
    let images = Tensor::from_slice(&set.images).view([set.len() as i64, 28, 28]);
    let path = dir.join("images.safetensors");
    Tensor::write_safetensors(&[("images", images)], &path).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference/backbones.py");
    let out = Command::new("python")
        .arg(&script)
        .args(["--backbone", backbone.name(), "--size", &size.to_string()])
        .arg("--images")
        .arg(&path)
        .arg("--out")
        .arg(dir)
        .output()
        .expect("python (the venv of `make setup`, on PATH through scripts/env.sh)");
    assert!(
        out.status.success(),
        "{} failed:\n{}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    Tensor::read_safetensors(dir.join("features.safetensors"))
        .unwrap()
        .into_iter()
        .find(|(n, _)| n == "features")
        .unwrap()
        .1
}

fn compare(backbone: Backbone, ours: &Tensor, theirs: &Tensor) {
    assert_eq!(ours.size(), theirs.size());
    let scale = theirs.abs().max().double_value(&[]);
    let diff = (ours - theirs).abs().max().double_value(&[]);
    eprintln!("{backbone}: largest difference {diff:.2e} (largest value {scale:.3})");
    assert!(scale > 1e-3, "reference features are all zero");
    assert!(
        diff <= 1e-4 * scale.max(1.0),
        "{backbone}: features differ by {diff} (largest value {scale})"
    );
}

fn lite0_weights() -> PathBuf {
    Backbone::EfficientNetLite0.default_weights().expect(
        "EfficientNet-Lite0 ImageNet weights in $FMNIST_CACHE_DIR/weights: run `make setup`",
    )
}

#[test]
fn efficientnet_lite0_matches_its_reference_with_the_real_imagenet_weights() {
    let dir = tempfile::tempdir().unwrap();
    let set = images();
    for size in [64, 75] {
        let theirs = reference(Backbone::EfficientNetLite0, &set, size, dir.path());
        let ex = FeatureExtractor::new(
            Backbone::EfficientNetLite0,
            &Weights::ImageNet(lite0_weights()),
            size,
            Device::Cpu,
        )
        .unwrap();
        assert!(matches!(ex.weights, WeightsRecord::ImageNet { .. }));
        compare(
            Backbone::EfficientNetLite0,
            &ex.extract(&set).unwrap(),
            &theirs,
        );
    }
}

#[test]
fn inception_v3_matches_torchvision_with_a_seeded_random_state_dict() {
    let dir = tempfile::tempdir().unwrap();
    let set = images();
    for size in [75, 107] {
        let theirs = reference(Backbone::InceptionV3, &set, size, dir.path());
        let weights = dir.path().join("inception-v3-random.safetensors");
        let ex = FeatureExtractor::new(
            Backbone::InceptionV3,
            &Weights::ImageNet(weights),
            size,
            Device::Cpu,
        )
        .unwrap();
        compare(Backbone::InceptionV3, &ex.extract(&set).unwrap(), &theirs);
    }
}

/// Writes the tensors of the real Lite0 file, changed by `edit`, to `path`.
fn edited_lite0(path: &Path, edit: impl FnOnce(&mut Vec<(String, Tensor)>)) {
    let mut tensors = Tensor::read_safetensors(lite0_weights()).unwrap();
    edit(&mut tensors);
    Tensor::write_safetensors(&tensors, path).unwrap();
}

fn load_err(backbone: Backbone, path: &Path) -> String {
    let vs = nn::VarStore::new(Device::Cpu);
    let _trunk = backbone.build_trunk(&(vs.root() / "trunk"));
    let snapshot = |vs: &nn::VarStore| {
        let mut v: Vec<(String, Tensor)> = vs
            .variables()
            .into_iter()
            .map(|(n, t)| (n, t.copy()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
    let before = snapshot(&vs);
    let err = load_trunk_weights(&vs, "trunk.", backbone, path)
        .unwrap_err()
        .to_string();
    let after = snapshot(&vs);
    assert!(
        before
            .iter()
            .zip(&after)
            .all(|(a, b)| a.0 == b.0 && a.1.equal(&b.1)),
        "nothing is copied unless everything fits"
    );
    err
}

#[test]
fn a_wrong_weights_file_is_an_error_naming_the_file_and_the_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name);

    let err = load_err(Backbone::EfficientNetLite0, &p("absent.safetensors"));
    assert!(
        err.contains("absent.safetensors") && err.contains("EfficientNet-Lite0"),
        "{err}"
    );

    std::fs::write(p("junk.safetensors"), b"not a safetensors file").unwrap();
    let err = load_err(Backbone::EfficientNetLite0, &p("junk.safetensors"));
    assert!(
        err.contains("junk.safetensors") && err.contains("safetensors"),
        "{err}"
    );

    // EfficientNet-Lite0's weights given to InceptionV3: another network.
    let err = load_err(Backbone::InceptionV3, &lite0_weights());
    assert!(
        err.contains("another network") && err.contains("InceptionV3"),
        "{err}"
    );

    edited_lite0(&p("missing.safetensors"), |t| {
        t.retain(|(n, _)| n != "_blocks.3._bn1.running_var")
    });
    let err = load_err(Backbone::EfficientNetLite0, &p("missing.safetensors"));
    assert!(
        err.contains("missing.safetensors")
            && err.contains("tensor _blocks.3._bn1.running_var")
            && err.contains("missing"),
        "{err}"
    );

    edited_lite0(&p("shape.safetensors"), |t| {
        for (n, v) in t.iter_mut() {
            if n == "_conv_head.weight" {
                *v = Tensor::zeros([1280, 320], (Kind::Float, Device::Cpu));
            }
        }
    });
    let err = load_err(Backbone::EfficientNetLite0, &p("shape.safetensors"));
    assert!(
        err.contains("tensor _conv_head.weight")
            && err.contains("[1280, 320]")
            && err.contains("[1280, 320, 1, 1]"),
        "{err}"
    );

    edited_lite0(&p("extra.safetensors"), |t| {
        t.push((
            "resnet.stem.weight".into(),
            Tensor::zeros([3], (Kind::Float, Device::Cpu)),
        ))
    });
    let err = load_err(Backbone::EfficientNetLite0, &p("extra.safetensors"));
    assert!(
        err.contains("tensor resnet.stem.weight") && err.contains("not part of"),
        "{err}"
    );

    // Random initialisation only when asked for, and labelled so.
    let ex = FeatureExtractor::new(
        Backbone::EfficientNetLite0,
        &Weights::Random { seed: 3 },
        32,
        Device::Cpu,
    )
    .unwrap();
    assert!(
        ex.weights.label().contains("random"),
        "{}",
        ex.weights.label()
    );
    let err = FeatureExtractor::new(
        Backbone::InceptionV3,
        &Weights::Random { seed: 3 },
        74,
        Device::Cpu,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("74") && err.contains("75"), "{err}");
}

#[test]
fn a_transfer_network_predicts_the_same_in_its_cpu_layout_and_gives_the_layout_back() {
    // `TrainedNetwork` runs the transfer networks with channels-last kernels on the CPU (their
    // row's layout) and restores the default order afterwards.
    let set = images();
    tch::manual_seed(5);
    let network =
        NetworkConfig::default_for(ModelKind::EfficientNetLite0).with_input_size(Some(48));
    let mut net = TrainedNetwork::untrained(network, Device::Cpu).expect("lite0 network");
    net.batch_size = 4;
    assert!(
        net.channels_last,
        "the lite0 row asks for channels-last kernels"
    );
    let strides: Vec<(String, Vec<i64>)> = net
        .var_store()
        .variables()
        .into_iter()
        .map(|(n, v)| (n, v.stride()))
        .collect();
    let x = set.images_tensor();
    let direct = tch::no_grad(|| net.model().forward_t(&x, false).softmax(-1, Kind::Float));
    let proba = net.predict_proba(&set).expect("predict");
    let diff = (&proba - &direct).abs().max().double_value(&[]);
    assert!(diff < 1e-5, "channels-last inference differs by {diff}");
    let eval = net.evaluate(&set).expect("evaluate");
    assert_eq!(eval.images, set.len());
    let vars = net.var_store().variables();
    for (name, stride) in strides {
        assert_eq!(
            vars[&name].stride(),
            stride,
            "{name} was left in another layout"
        );
    }
}
