//! Transfer with few labels: the same network trained from scratch, its frozen ImageNet trunk
//! with a trained head, and the ImageNet trunk fine-tuned, each on `k` labelled images per
//! class, over several seeds. This is where pretrained features should matter most.

use std::time::Instant;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::extract::{FeatureExtractor, WeightsRecord};
use super::prepare::{copy_by_name, freeze_early_layers};
use super::stages::train_head;
use crate::data::{ImageSet, NUM_CLASSES};
use crate::display::Html;
use crate::error::{Error, Result};
use crate::models::{Backbone, NetworkConfig, TransferConfig};
pub use crate::profile::FewLabelSettings;
use crate::tensorboard::clear_run;
use crate::train::{fit_interruptibly, InterruptGuard, Recipe, TrainConfig, Trainer};
use crate::util::progress_line;

/// How the network was trained.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum FewLabelMethod {
    /// The same network, random initialisation, everything trained.
    Scratch,
    /// The ImageNet trunk frozen, a head trained on its features.
    Frozen,
    /// The frozen run's head, then the trunk fine-tuned (its first part still frozen).
    FineTuned,
}

impl FewLabelMethod {
    /// All three, in the order of the tables.
    pub const ALL: [FewLabelMethod; 3] = [
        FewLabelMethod::Scratch,
        FewLabelMethod::Frozen,
        FewLabelMethod::FineTuned,
    ];

    /// A label for tables and charts.
    pub fn label(self) -> &'static str {
        match self {
            FewLabelMethod::Scratch => "from scratch",
            FewLabelMethod::Frozen => "frozen ImageNet features + head",
            FewLabelMethod::FineTuned => "fine-tuned",
        }
    }

    /// A name for folders: `scratch`, `frozen`, `fine-tuned`.
    pub fn slug(self) -> &'static str {
        match self {
            FewLabelMethod::Scratch => "scratch",
            FewLabelMethod::Frozen => "frozen",
            FewLabelMethod::FineTuned => "fine-tuned",
        }
    }
}

/// One run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FewLabelRow {
    pub per_class: usize,
    pub seed: u64,
    pub method: FewLabelMethod,
    pub test_accuracy: f64,
    pub seconds: f64,
}

/// Every run of the study.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FewLabelStudy {
    pub backbone: Backbone,
    pub image_size: usize,
    pub settings: FewLabelSettings,
    pub rows: Vec<FewLabelRow>,
    pub seconds: f64,
    /// An interrupt (SIGINT) stopped the study: `rows` holds the sizes and seeds it finished.
    pub interrupted: bool,
}

impl FewLabelStudy {
    /// `(images per class, method, mean test accuracy, standard deviation, runs)`.
    pub fn means(&self) -> Vec<(usize, FewLabelMethod, f64, f64, usize)> {
        let mut out = Vec::new();
        for &k in &self.settings.per_class {
            for m in FewLabelMethod::ALL {
                let acc: Vec<f64> = self
                    .rows
                    .iter()
                    .filter(|r| r.per_class == k && r.method == m)
                    .map(|r| r.test_accuracy)
                    .collect();
                if acc.is_empty() {
                    continue;
                }
                let mean = acc.iter().sum::<f64>() / acc.len() as f64;
                let var = acc.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / acc.len() as f64;
                out.push((k, m, mean, var.sqrt(), acc.len()));
            }
        }
        out
    }

    /// The mean test accuracy of `method` with `per_class` labels.
    pub fn mean(&self, per_class: usize, method: FewLabelMethod) -> Option<f64> {
        self.means()
            .into_iter()
            .find(|m| m.0 == per_class && m.1 == method)
            .map(|m| m.2)
    }

    /// The means as an HTML table, one row per size, one column per method.
    pub fn to_html(&self) -> Html {
        let mut h = String::from("<table><thead><tr><th>labels per class</th>");
        for m in FewLabelMethod::ALL {
            h.push_str(&format!("<th>{}</th>", m.label()));
        }
        h.push_str("</tr></thead><tbody>");
        let means = self.means();
        for &k in &self.settings.per_class {
            h.push_str(&format!("<tr><td>{k}</td>"));
            for m in FewLabelMethod::ALL {
                match means.iter().find(|r| r.0 == k && r.1 == m) {
                    Some(&(_, _, mean, std, n)) => h.push_str(&format!(
                        "<td>{mean:.4} ± {std:.4} ({n} seed{})</td>",
                        if n == 1 { "" } else { "s" }
                    )),
                    None => h.push_str("<td>—</td>"),
                }
            }
            h.push_str("</tr>");
        }
        h.push_str("</tbody></table>");
        if self.interrupted {
            h.push_str(&format!(
                "<p>Interrupted: {} of {} runs finished.</p>",
                self.rows.len(),
                3 * self.settings.per_class.len() * self.settings.seeds.len()
            ));
        }
        Html(h)
    }
}

/// `k` images of every class of `pool`, picked by a seeded shuffle.
pub fn labelled_subset(pool: &ImageSet, per_class: usize, seed: u64) -> Result<ImageSet> {
    let mut order: Vec<usize> = (0..pool.len()).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    let mut taken = [0usize; NUM_CLASSES];
    let mut picked = Vec::with_capacity(per_class * NUM_CLASSES);
    for i in order {
        let c = pool.labels[i] as usize;
        if taken[c] < per_class {
            taken[c] += 1;
            picked.push(i);
        }
    }
    if taken.iter().any(|&t| t < per_class) {
        return Err(Error::param(
            "per_class",
            format!("{per_class} images per class: the pool has fewer for some class"),
        ));
    }
    pool.select(&picked)
}

/// Runs the study: for every size and seed, the three methods on the same labelled images,
/// scored on the same test images. `pool` is where labelled images are drawn from (the 80/20
/// training split), `validation` and `test` the profile's. An interrupt (SIGINT) stops it during
/// the run it is in; the study returned then holds the sizes and seeds finished before it
/// (`interrupted` set), and calling it again runs them all.
pub fn few_label_study(
    extractor: &FeatureExtractor,
    pool: &ImageSet,
    validation: &ImageSet,
    test: &ImageSet,
    settings: &FewLabelSettings,
    verbose: bool,
) -> Result<FewLabelStudy> {
    if !matches!(extractor.weights, WeightsRecord::ImageNet { .. }) {
        return Err(Error::param(
            "weights",
            "the few-label study compares ImageNet weights with random ones: give it an ImageNet trunk",
        ));
    }
    let started = Instant::now();
    let validation = validation.first(settings.validation_images.min(validation.len()));
    let test = test.first(settings.test_images.min(test.len()));
    let interrupt = InterruptGuard::install_own()?;
    let mut rows = Vec::new();
    let ran = study_rows(
        extractor,
        pool,
        (&validation, &test),
        settings,
        verbose,
        &interrupt,
        &mut rows,
    );
    match ran {
        Ok(()) => {}
        Err(Error::Interrupted { .. }) => interrupt.request(),
        Err(e) => return Err(e),
    }
    let interrupted = interrupt.is_requested();
    if verbose && interrupted {
        progress_line(&format!(
            "few-label study interrupted: {} of {} runs finished; running it again runs them all",
            rows.len(),
            3 * settings.per_class.len() * settings.seeds.len()
        ));
    }
    Ok(FewLabelStudy {
        backbone: extractor.backbone,
        image_size: extractor.image_size,
        settings: settings.clone(),
        rows,
        seconds: started.elapsed().as_secs_f64(),
        interrupted,
    })
}

/// The study's runs, each size and seed's three pushed onto `rows` once all three are done;
/// [`Error::Interrupted`] when `interrupt` was asked or a fit inside stopped at it.
fn study_rows(
    extractor: &FeatureExtractor,
    pool: &ImageSet,
    (validation, test): (&ImageSet, &ImageSet),
    settings: &FewLabelSettings,
    verbose: bool,
    interrupt: &InterruptGuard,
    rows: &mut Vec<FewLabelRow>,
) -> Result<()> {
    let stopped = || Error::Interrupted {
        what: "the few-label study",
        message: "stopped during a run".into(),
    };
    let val_features = extractor.extract_cached(validation)?.features;
    let test_features = extractor.extract_cached(test)?.features;
    let (val_labels, test_labels) = (validation.labels_tensor(), test.labels_tensor());
    let backbone = extractor.backbone;
    let frozen_config = TransferConfig {
        input_size: extractor.image_size,
        trunk_train_mode: false,
        ..Default::default()
    };
    for &k in &settings.per_class {
        for &seed in &settings.seeds {
            if interrupt.is_requested() {
                return Err(stopped());
            }
            let labelled = labelled_subset(pool, k, seed)?;
            // Small sets are repeated into epochs of at least 1,000 images (each repetition
            // augmented anew), so that validation runs every ~30 steps rather than every 4.
            let repeated = repeat_to(&labelled, 1_000)?;
            let batches = repeated.len().div_ceil(settings.batch_size).max(1);
            let epochs = settings.steps.div_ceil(batches).max(1);
            let note = |m: FewLabelMethod, acc: f64, s: f64| {
                if verbose {
                    progress_line(&format!(
                        "{k:>4} per class, seed {seed}: {:<32} test accuracy {acc:.4} ({s:.0} s)",
                        m.label()
                    ));
                }
            };
            let log = |m: FewLabelMethod| -> Result<Option<std::path::PathBuf>> {
                let Some(root) = &settings.tensorboard_dir else {
                    return Ok(None);
                };
                let dir = root
                    .join(format!("{k}-per-class"))
                    .join(format!("seed-{seed}"))
                    .join(m.slug());
                clear_run(&dir)?;
                Ok(Some(dir))
            };
            // Frozen trunk + head.
            let start = Instant::now();
            let features = extractor.extract(&labelled)?;
            let (head, _, _) = train_head(
                backbone,
                &frozen_config,
                TrainConfig {
                    tensorboard_dir: log(FewLabelMethod::Frozen)?,
                    ..Recipe::Tuned.head_config(settings.head_epochs, seed)
                },
                (&features, &labelled.labels_tensor()),
                (&val_features, &val_labels),
                false,
            )?;
            let frozen = head
                .evaluate_tensors(&test_features, &test_labels)?
                .accuracy;
            let frozen_seconds = start.elapsed().as_secs_f64();
            note(FewLabelMethod::Frozen, frozen, frozen_seconds);
            // Fine-tuned from that head.
            let start = Instant::now();
            let mut t = Trainer::new_with(
                NetworkConfig::Transfer(backbone, frozen_config.clone()),
                TrainConfig {
                    verbose: false,
                    tensorboard_dir: log(FewLabelMethod::FineTuned)?,
                    ..Recipe::Tuned.fine_tune_config(backbone, epochs, settings.batch_size, seed)
                },
                extractor.device,
                |vs| {
                    copy_by_name(vs, extractor.var_store())?;
                    copy_by_name(vs, head.var_store())?;
                    freeze_early_layers(vs, backbone);
                    Ok(())
                },
            )?;
            if fit_interruptibly(&mut t, |t| t.fit(&repeated, validation).map(|_| ()))?.is_some() {
                return Err(stopped());
            }
            let scored = t.evaluate(test)?;
            t.record_evaluation("test", &scored)?;
            let fine = scored.accuracy;
            let fine_seconds = start.elapsed().as_secs_f64();
            note(FewLabelMethod::FineTuned, fine, fine_seconds);
            // From scratch: the same network, random weights, everything trained.
            let start = Instant::now();
            let mut t = Trainer::new(
                NetworkConfig::Transfer(
                    backbone,
                    TransferConfig {
                        trunk_train_mode: true,
                        ..frozen_config.clone()
                    },
                ),
                TrainConfig {
                    tensorboard_dir: log(FewLabelMethod::Scratch)?,
                    ..Recipe::Tuned.scratch_config(backbone, epochs, settings.batch_size, seed)
                },
                extractor.device,
            )?;
            if fit_interruptibly(&mut t, |t| t.fit(&repeated, validation).map(|_| ()))?.is_some() {
                return Err(stopped());
            }
            let scored = t.evaluate(test)?;
            t.record_evaluation("test", &scored)?;
            let scratch = scored.accuracy;
            let scratch_seconds = start.elapsed().as_secs_f64();
            note(FewLabelMethod::Scratch, scratch, scratch_seconds);
            rows.push(FewLabelRow {
                per_class: k,
                seed,
                method: FewLabelMethod::Scratch,
                test_accuracy: scratch,
                seconds: scratch_seconds,
            });
            rows.push(FewLabelRow {
                per_class: k,
                seed,
                method: FewLabelMethod::Frozen,
                test_accuracy: frozen,
                seconds: frozen_seconds,
            });
            rows.push(FewLabelRow {
                per_class: k,
                seed,
                method: FewLabelMethod::FineTuned,
                test_accuracy: fine,
                seconds: fine_seconds,
            });
        }
    }
    Ok(())
}

/// `set` repeated (whole copies) until it holds at least `n` images.
fn repeat_to(set: &ImageSet, n: usize) -> Result<ImageSet> {
    let copies = n.div_ceil(set.len().max(1)).max(1);
    let indices: Vec<usize> = (0..copies).flat_map(|_| 0..set.len()).collect();
    set.select(&indices)
}
