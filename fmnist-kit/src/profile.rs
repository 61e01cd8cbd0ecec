//! Run profiles: every size the walkthrough uses, and the one place that answers "what does
//! profile P use for network M" ([`Profile::train_config`], [`Profile::sets`],
//! [`Profile::checkpoint_dir`], [`Profile::grid_images`]).
//!
//! `FMNIST_PROFILE` selects one: `smoke` (CI: tiny subsets, seconds per notebook), `quick`
//! (the default: meaningful results on a CPU in bounded time) or `full` (the original
//! project's sizes and epochs, all the data; a GPU is recommended for the ResNet). Each
//! notebook prints the profile it ran with. The sizes of each network live in its row of
//! [`crate::models::MODELS`]; the sizes shared by all notebooks live here.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

use crate::data::{FashionMnist, ImageSet};
use crate::error::{Error, Result};
use crate::models::{ModelKind, NetworkConfig, RunSizes, MODELS};
use crate::train::{CheckpointDir, Precision, Recipe, TrainConfig};

/// Which profile.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum ProfileName {
    /// CI's: tiny subsets, seconds per notebook after the kit is compiled.
    Smoke,
    /// `make run`'s default on a CPU: meaningful results in a bounded time.
    Quick,
    /// The original project's epochs on all the data (a GPU recommended).
    Full,
}

impl std::str::FromStr for ProfileName {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "smoke" => Ok(ProfileName::Smoke),
            "quick" | "" => Ok(ProfileName::Quick),
            "full" => Ok(ProfileName::Full),
            other => Err(Error::param(
                "profile",
                format!("{other:?} is not one of smoke, quick, full"),
            )),
        }
    }
}

impl fmt::Display for ProfileName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProfileName::Smoke => "smoke",
            ProfileName::Quick => "quick",
            ProfileName::Full => "full",
        })
    }
}

/// The images a profile trains, validates and tests a network on.
#[derive(Clone, Debug)]
pub struct ProfileSets {
    pub train: ImageSet,
    pub validation: ImageSet,
    pub test: ImageSet,
}

/// The sizes of notebook 04's few-label comparison ([`crate::transfer::few_label_study`]).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FewLabelSettings {
    /// Labelled images per class, e.g. `[10, 100]`.
    pub per_class: Vec<usize>,
    /// One run per seed for each size and method (the seed picks the images and initialises).
    pub seeds: Vec<u64>,
    /// Optimiser steps of each run that trains on images (from scratch, fine-tuning), the same
    /// for both so that they get the same compute (epochs of at least 1,000 images: a small
    /// labelled set is repeated, each copy augmented anew).
    pub steps: usize,
    pub batch_size: usize,
    /// Epochs of the head on frozen features (seconds: the features are computed once).
    pub head_epochs: usize,
    /// Validation images every run selects its best epoch on (the same for all).
    pub validation_images: usize,
    /// Test images every run is scored on (the first N of the profile's test set).
    pub test_images: usize,
    /// Log every run for TensorBoard under this folder, in `<k>-per-class/seed-<s>/<method>`
    /// [default: `artifacts/<profile>/few-labels/tensorboard`; `None` logs nothing].
    pub tensorboard_dir: Option<PathBuf>,
}

/// Every size the notebooks and the CLI share. `None` for a subset means "all of it". The
/// sizes of each network (epochs, batch, training images) come from its row of
/// [`crate::models::MODELS`] through [`Profile::sizes`].
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Profile {
    pub name: ProfileName,
    /// Examples per class in the sample grid of notebook 01.
    pub samples_per_class: usize,
    /// Training images embedded by t-SNE in notebook 01 (the first N).
    pub tsne_points: usize,
    /// t-SNE optimisation epochs.
    pub tsne_epochs: usize,
    /// Validation images used per epoch; `None` = all 12,000.
    pub validation_subset: Option<usize>,
    /// Test images evaluated; `None` = all 10,000.
    pub test_subset: Option<usize>,
    /// The training settings of notebooks 02 and 03 and `fmnist train`.
    pub recipe: Recipe,
    /// Precision of the training steps of notebooks 02 and 03 and `fmnist train` (scores are
    /// computed in fp32 whatever it is).
    pub precision: Precision,
    /// Folds of the grid search (the original: 3).
    pub grid_folds: usize,
    /// Epochs per grid-search fit.
    pub grid_epochs: usize,
    /// Training images the grid search uses; `None` = all.
    pub grid_subset: Option<usize>,
    /// Epochs of the transfer head on frozen features (stage 1; seconds each).
    pub transfer_head_epochs: usize,
    /// Steps of the learning-rate finder in notebook 02.
    pub lr_find_steps: usize,
    /// Validation images of a transfer run (every fine-tuning epoch runs the trunk on them).
    pub transfer_validation_subset: Option<usize>,
    /// The few-label comparison of notebook 04.
    pub few_labels: FewLabelSettings,
}

impl Profile {
    /// The profile of a given name.
    pub fn named(name: ProfileName) -> Profile {
        let mut profile = Profile::sizes_of(name);
        profile.few_labels.tensorboard_dir = Some(
            profile
                .artifacts_dir()
                .join("few-labels")
                .join("tensorboard"),
        );
        profile
    }

    fn sizes_of(name: ProfileName) -> Profile {
        match name {
            ProfileName::Smoke => Profile {
                name,
                recipe: Recipe::Tuned,
                precision: Precision::Fp32,
                samples_per_class: 10,
                tsne_points: 600,
                tsne_epochs: 300,
                validation_subset: Some(500),
                test_subset: Some(1_000),
                grid_folds: 2,
                grid_epochs: 1,
                grid_subset: Some(1_000),
                transfer_head_epochs: 3,
                lr_find_steps: 30,
                transfer_validation_subset: Some(200),
                few_labels: FewLabelSettings {
                    per_class: vec![10],
                    seeds: vec![1],
                    steps: 4,
                    batch_size: 32,
                    head_epochs: 3,
                    validation_images: 100,
                    test_images: 200,
                    tensorboard_dir: None,
                },
            },
            ProfileName::Quick => Profile {
                name,
                recipe: Recipe::Tuned,
                // bf16 where this CPU measured it faster: the walkthrough is sized by time.
                precision: Precision::Auto,
                samples_per_class: 10,
                tsne_points: 5_000,
                tsne_epochs: 1_000,
                validation_subset: None,
                test_subset: None,
                grid_folds: 3,
                grid_epochs: 2,
                // Half the images of the search that used to run here, in bf16 where it pays: 2.75×
                // faster, the same four best points (docs/performance.md, "The grid, cut").
                grid_subset: Some(6_000),
                transfer_head_epochs: 30,
                lr_find_steps: 200,
                transfer_validation_subset: Some(2_000),
                few_labels: FewLabelSettings {
                    per_class: vec![10, 100],
                    seeds: vec![1, 2],
                    steps: 150,
                    batch_size: 32,
                    head_epochs: 100,
                    validation_images: 500,
                    test_images: 2_000,
                    tensorboard_dir: None,
                },
            },
            ProfileName::Full => Profile {
                name,
                recipe: Recipe::Tuned,
                precision: Precision::Fp32,
                samples_per_class: 10,
                tsne_points: 5_000,
                tsne_epochs: 1_000,
                validation_subset: None,
                test_subset: None,
                grid_folds: 3,
                grid_epochs: 10,
                grid_subset: None,
                transfer_head_epochs: 30,
                lr_find_steps: 300,
                transfer_validation_subset: None,
                few_labels: FewLabelSettings {
                    per_class: vec![10, 100, 1000],
                    seeds: vec![1, 2, 3],
                    steps: 600,
                    batch_size: 32,
                    head_epochs: 100,
                    validation_images: 1_000,
                    test_images: 10_000,
                    tensorboard_dir: None,
                },
            },
        }
    }

    /// The profile named by `FMNIST_PROFILE` (default `quick`); an unknown name is an error.
    pub fn from_env() -> Result<Profile> {
        match std::env::var("FMNIST_PROFILE") {
            Ok(v) => v
                .parse::<ProfileName>()
                .map(Profile::named)
                .map_err(|_| Error::Env {
                    name: "FMNIST_PROFILE",
                    value: v,
                    message: "expected smoke, quick or full".into(),
                }),
            Err(_) => Ok(Profile::named(ProfileName::Quick)),
        }
    }

    /// Epochs, batch size and training images of `kind` in this profile.
    pub fn sizes(&self, kind: ModelKind) -> RunSizes {
        let sizes = kind.spec().sizes;
        match self.name {
            ProfileName::Smoke => sizes.smoke,
            ProfileName::Quick => sizes.quick,
            ProfileName::Full => sizes.full,
        }
    }

    /// The network this profile trains for `kind`: its defaults at the profile's input size and
    /// width ([`RunSizes`]).
    pub fn network(&self, kind: ModelKind) -> Result<NetworkConfig> {
        let s = self.sizes(kind);
        NetworkConfig::default_for(kind)
            .with_input_size(s.input_size)
            .with_width_percent(s.width_percent)
    }

    /// The training settings this profile gives `kind`: its recipe, epochs and batch size.
    pub fn train_config(&self, kind: ModelKind) -> TrainConfig {
        let s = self.sizes(kind);
        let mut config = self.recipe.config(kind, s.epochs, s.batch_size);
        config.precision = self.precision;
        config
    }

    /// The images `kind` trains, validates and tests on: the 80/20 split cut to the network's
    /// training subset and the profile's validation subset (its transfer validation subset for a
    /// network with an ImageNet backbone), and the profile's test subset.
    pub fn sets(&self, kind: ModelKind, data: &FashionMnist) -> Result<ProfileSets> {
        let split = data.split()?;
        let mut validation = cut(split.validation, self.validation_subset);
        // A transfer network runs its trunk over the validation images every epoch: fewer of
        // them, the same for the two-stage run and for the same network from scratch.
        if kind.spec().backbone.is_some() {
            validation = cut(validation, self.transfer_validation_subset);
        }
        Ok(ProfileSets {
            train: cut(split.train, self.sizes(kind).train_subset),
            validation,
            test: self.test_set(data),
        })
    }

    /// The profile's test images: the first `test_subset` of the official test set, or all of it.
    pub fn test_set(&self, data: &FashionMnist) -> ImageSet {
        self.test_subset
            .map_or(data.test.clone(), |n| data.test.first(n))
    }

    /// The images the grid search uses: the first `grid_subset` of the 80/20 training split.
    pub fn grid_images(&self, data: &FashionMnist) -> Result<ImageSet> {
        Ok(cut(data.split()?.train, self.grid_subset))
    }

    /// Where notebooks and the CLI keep this profile's checkpoints and results:
    /// `$FMNIST_ARTIFACTS/<profile>`, else `artifacts/<profile>` in the project folder (the
    /// nearest folder, from the current one up, that holds `data/`), else in the current folder.
    pub fn artifacts_dir(&self) -> PathBuf {
        let base = std::env::var_os("FMNIST_ARTIFACTS")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| {
                let cwd = std::env::current_dir().ok()?;
                cwd.ancestors()
                    .find(|d| d.join("data").is_dir())
                    .map(|d| d.join("artifacts"))
            })
            .unwrap_or_else(|| PathBuf::from("artifacts"));
        base.join(self.name.to_string())
    }

    /// The checkpoint folder of `kind` in this profile: `artifacts/<profile>/<model>`.
    pub fn checkpoint_dir(&self, kind: ModelKind) -> CheckpointDir {
        CheckpointDir(self.artifacts_dir().join(kind.to_string()))
    }

    /// The grid search's folder in this profile: `artifacts/<profile>/grid`.
    pub fn grid_dir(&self) -> PathBuf {
        self.artifacts_dir().join("grid")
    }
}

fn cut(set: ImageSet, n: Option<usize>) -> ImageSet {
    match n {
        Some(n) => set.first(n),
        None => set,
    }
}

impl fmt::Display for Profile {
    /// One line per setting, for the first cell of every notebook.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let all = |o: Option<usize>| o.map_or("all".to_string(), |n| n.to_string());
        writeln!(f, "profile {} (FMNIST_PROFILE)", self.name)?;
        writeln!(
            f,
            "  sample grid        {} per class",
            self.samples_per_class
        )?;
        writeln!(
            f,
            "  t-SNE              {} points, {} epochs",
            self.tsne_points, self.tsne_epochs
        )?;
        writeln!(
            f,
            "  val / test         {} / {} images",
            all(self.validation_subset),
            all(self.test_subset)
        )?;
        writeln!(f, "  training recipe    {}", self.recipe)?;
        writeln!(f, "  training precision {}", self.precision)?;
        for spec in &MODELS {
            let s = self.sizes(spec.kind);
            write!(
                f,
                "  {:<18} {} epochs, batch {}, {} training images",
                spec.title,
                s.epochs,
                s.batch_size,
                all(s.train_subset)
            )?;
            match s.width_percent {
                Some(p) => writeln!(f, ", {p} % of the original's filters")?,
                None => writeln!(f)?,
            }
        }
        write!(
            f,
            "  grid search        {} folds, {} epochs per fit, {} images",
            self.grid_folds,
            self.grid_epochs,
            all(self.grid_subset)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_profiles_scale() {
        assert_eq!("SMOKE".parse::<ProfileName>().unwrap(), ProfileName::Smoke);
        assert_eq!("full".parse::<ProfileName>().unwrap(), ProfileName::Full);
        assert!("fast".parse::<ProfileName>().is_err());
        let (s, q, f) = (
            Profile::named(ProfileName::Smoke),
            Profile::named(ProfileName::Quick),
            Profile::named(ProfileName::Full),
        );
        let cnn = |p: &Profile| p.sizes(ModelKind::Cnn4);
        assert!(
            s.tsne_points < q.tsne_points
                && cnn(&s).epochs < cnn(&q).epochs
                && cnn(&q).epochs < cnn(&f).epochs
        );
        assert_eq!(
            (
                cnn(&f).epochs,
                cnn(&f).batch_size,
                f.sizes(ModelKind::ResNet).epochs,
                f.sizes(ModelKind::ResNet).batch_size
            ),
            (50, 128, 10, 32),
            "the original's epochs and ResNet batch; the CNN batch the tuned recipe prefers"
        );
        for p in [&s, &q, &f] {
            assert!(
                p.tsne_epochs > 250,
                "t-SNE needs more epochs than its exaggeration phase"
            );
            let text = p.to_string();
            assert!(text.starts_with(&format!("profile {}", p.name)));
            for spec in &MODELS {
                assert!(text.contains(spec.title), "{text}");
            }
        }
        let config = q.train_config(ModelKind::Cnn4);
        assert_eq!((config.epochs, config.batch_size), (6, 128));
        assert!(config.channels_last && !q.train_config(ModelKind::ResNet).channels_last);
        assert!(q
            .checkpoint_dir(ModelKind::ResNet)
            .best()
            .ends_with("quick/resnet/best.safetensors"));
    }

    #[test]
    fn the_quick_profile_trains_a_narrower_resnet_in_the_precision_this_machine_runs_fastest() {
        let (s, q, f) = (
            Profile::named(ProfileName::Smoke),
            Profile::named(ProfileName::Quick),
            Profile::named(ProfileName::Full),
        );
        assert_eq!(q.train_config(ModelKind::Cnn4).precision, Precision::Auto);
        assert_eq!(s.train_config(ModelKind::ResNet).precision, Precision::Fp32);
        assert_eq!(f.train_config(ModelKind::ResNet).precision, Precision::Fp32);
        let filters = |p: &Profile| match p.network(ModelKind::ResNet).unwrap() {
            NetworkConfig::ResNet(c) => (c.stem_filters, c.stage_filters),
            other => panic!("not a ResNet: {other:?}"),
        };
        assert_eq!(filters(&q), (32, [32, 64, 128, 256]));
        assert_eq!(filters(&s), filters(&q));
        assert_eq!(filters(&f), (64, [64, 128, 256, 512]), "the original's");
        assert_eq!(
            q.network(ModelKind::InceptionV3).unwrap().input_size(),
            Some(75)
        );
        let text = q.to_string();
        assert!(text.contains("training precision auto"), "{text}");
        assert!(
            text.contains(
                "6 epochs, batch 64, all training images, 50 % of the original's filters"
            ),
            "{text}"
        );
    }
}
