//! `ablate`: trains one network under several variants of its profile's recipe, each on several
//! seeds, scores every run on the validation and test images with and without test-time flip,
//! and prints mean ± std per variant with its validation gain over the first variant.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use fmnist_kit::data;
use fmnist_kit::models::{ModelKind, NetworkConfig};
use fmnist_kit::train::{Precision, TrainConfig, Trainer};
use fmnist_kit::util::{progress_line, write_json_atomic};
use fmnist_kit::ProfileName;

use crate::common::{data_path, profile_arg, Globals};

#[derive(clap::Args)]
pub(crate) struct AblateArgs {
    /// The network.
    #[arg(long, value_enum)]
    model: ModelKind,
    /// Sizes and the recipe every variant starts from [default: $FMNIST_PROFILE or quick]
    #[arg(long, value_enum)]
    profile: Option<ProfileName>,
    /// A variant: `base` (the profile's recipe) or tricks joined by `+`: `ls0.1` (label
    /// smoothing 0.1), `batch256` (batch size), `lr3e-3` (peak rate), `epochs8`, `noerase`
    /// (no random erasing), `noaug` (no augmentation), `bf16` or `fp32` (training steps'
    /// precision), `warmup0.3` (warm-up epochs),
    /// `train48000` (the first N images of the 80/20 training split), `dropout0.25` (the CNN's),
    /// `width0.5` (the ResNet's filters scaled, stem and every stage), `blocks1` (the ResNet's
    /// basic blocks per stage).
    /// The first variant is the one the others are compared with.
    #[arg(long = "variant", required = true)]
    variants: Vec<String>,
    /// Seeds, each variant runs once per seed (the same seeds for all).
    #[arg(long, value_delimiter = ',', default_value = "13,1,2")]
    seeds: Vec<u64>,
    /// Override the profile's epochs for every variant (an `epochsN` trick overrides this).
    #[arg(long)]
    epochs: Option<usize>,
    /// Runs are recorded here as they finish; runs already in it are not run again.
    #[arg(long)]
    out: PathBuf,
    #[arg(long)]
    data: Option<PathBuf>,
}

/// One run of one variant on one seed.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct AblationRun {
    variant: String,
    seed: u64,
    epochs: usize,
    batch_size: usize,
    #[serde(default)]
    train_images: usize,
    train_seconds: f64,
    val_accuracy: f64,
    val_accuracy_flip: f64,
    test_accuracy: f64,
    test_accuracy_flip: f64,
    settings: String,
}

/// `config` and `network` changed by the tricks of `variant`, and the training images it asks
/// for (`None`: the profile's).
fn apply_variant(
    variant: &str,
    mut config: TrainConfig,
    mut network: NetworkConfig,
) -> Result<(TrainConfig, NetworkConfig, Option<usize>)> {
    let mut train_images = None;
    if variant == "base" {
        return Ok((config, network, train_images));
    }
    for trick in variant.split('+') {
        let number = |prefix: &str| -> Result<f64> {
            trick[prefix.len()..]
                .parse::<f64>()
                .with_context(|| format!("variant {variant:?}: trick {trick:?} needs a number"))
        };
        match trick {
            "noerase" => config.augment.erasing = None,
            "noaug" => config.augment = Default::default(),
            "bf16" => config.precision = Precision::Bf16,
            "fp32" => config.precision = Precision::Fp32,
            t if t.starts_with("ls") => config.label_smoothing = number("ls")?,
            t if t.starts_with("batch") => config.batch_size = number("batch")? as usize,
            t if t.starts_with("lr") => config.learning_rate = number("lr")?,
            t if t.starts_with("epochs") => config.epochs = number("epochs")? as usize,
            t if t.starts_with("train") => train_images = Some(number("train")? as usize),
            t if t.starts_with("dropout") => match &mut network {
                NetworkConfig::Cnn4(c) => c.dropout = number("dropout")?,
                _ => bail!("variant {variant:?}: only the CNN has a dropout to change"),
            },
            t if t.starts_with("width") => match &mut network {
                NetworkConfig::ResNet(c) => {
                    *c = c
                        .clone()
                        .with_width(number("width")?)
                        .with_context(|| format!("variant {variant:?}: trick {trick:?}"))?;
                }
                _ => bail!("variant {variant:?}: only the ResNet has a width to change"),
            },
            t if t.starts_with("blocks") => match &mut network {
                NetworkConfig::ResNet(c) => c.blocks_per_stage = number("blocks")? as usize,
                _ => bail!("variant {variant:?}: only the ResNet has blocks to change"),
            },
            t if t.starts_with("warmup") => {
                if let fmnist_kit::train::LrSchedule::WarmupCosine { warmup_epochs, .. } =
                    &mut config.schedule
                {
                    *warmup_epochs = number("warmup")?;
                } else {
                    bail!("variant {variant:?}: the recipe has no warm-up to change");
                }
            }
            other => {
                bail!("variant {variant:?}: unknown trick {other:?} (see fmnist ablate --help)")
            }
        }
    }
    config.validate()?;
    Ok((config, network, train_images))
}

fn mean_std(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = if xs.len() > 1 {
        xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (mean, var.sqrt())
}

pub(crate) fn run_ablate(a: AblateArgs, g: Globals) -> Result<()> {
    let profile = profile_arg(a.profile)?;
    let path = data_path(a.data);
    let d = data::load(&path).with_context(|| format!("loading {}", path.display()))?;
    let sets = profile.sets(a.model, &d)?;
    let split = d.split()?;
    let mut runs: Vec<AblationRun> = if a.out.is_file() {
        let text = std::fs::read_to_string(&a.out)
            .with_context(|| format!("reading {}", a.out.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", a.out.display()))?
    } else {
        Vec::new()
    };
    let mut base = profile.train_config(a.model);
    if let Some(e) = a.epochs {
        base.epochs = e;
    }
    if let Some(p) = g.precision {
        base.precision = p;
    }
    base.verbose = false;
    base.progress_seconds = 0.0;
    let network = profile.network(a.model)?;
    for seed in &a.seeds {
        for variant in &a.variants {
            if runs
                .iter()
                .any(|r| &r.variant == variant && r.seed == *seed)
            {
                continue;
            }
            let (config, variant_network, train_images) =
                apply_variant(variant, base.clone(), network.clone())?;
            let config = TrainConfig {
                seed: *seed,
                ..config
            };
            let train = match train_images {
                Some(n) => split.train.first(n),
                None => sets.train.clone(),
            };
            let mut trainer = Trainer::new(variant_network, config.clone(), g.device)?;
            trainer.fit(&train, &sets.validation)?;
            let train_seconds = trainer.history.seconds();
            let mut net = trainer.into_network();
            let mut score = |flip: bool| -> Result<(f64, f64)> {
                net.test_time_flip = flip;
                Ok((
                    net.evaluate(&sets.validation)?.accuracy,
                    net.evaluate(&sets.test)?.accuracy,
                ))
            };
            let (val, test) = score(false)?;
            let (val_flip, test_flip) = score(true)?;
            let run = AblationRun {
                variant: variant.clone(),
                seed: *seed,
                epochs: config.epochs,
                batch_size: config.batch_size,
                train_images: train.len(),
                train_seconds,
                val_accuracy: val,
                val_accuracy_flip: val_flip,
                test_accuracy: test,
                test_accuracy_flip: test_flip,
                settings: config.to_string(),
            };
            progress_line(&format!(
                "{} {variant} seed {seed}: {train_seconds:.0} s, val {val:.4} (flip {val_flip:.4}), test {test:.4} (flip {test_flip:.4})",
                a.model
            ));
            runs.push(run);
            write_json_atomic(&a.out, &runs)?;
        }
    }
    print_table(&a.variants, &runs);
    Ok(())
}

/// Mean ± std over the seeds of each variant, plain and with test-time flip, and the mean paired
/// validation gain over the first variant (± the std of the per-seed gains).
fn print_table(variants: &[String], runs: &[AblationRun]) {
    let of = |v: &str| -> Vec<&AblationRun> { runs.iter().filter(|r| r.variant == v).collect() };
    let pm = |xs: Vec<f64>| {
        let (m, s) = mean_std(&xs);
        format!("{m:.4} ± {s:.4}")
    };
    let secs = |xs: Vec<f64>| {
        let (m, s) = mean_std(&xs);
        format!("{m:.0} ± {s:.0}")
    };
    println!("| variant | scoring | epochs | batch | images | seeds | train s | val accuracy | test accuracy | val gain over {} |", variants[0]);
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let first = of(&variants[0]);
    for v in variants {
        let rs = of(v);
        if rs.is_empty() {
            continue;
        }
        for flip in [false, true] {
            let val = |r: &AblationRun| {
                if flip {
                    r.val_accuracy_flip
                } else {
                    r.val_accuracy
                }
            };
            let test = |r: &AblationRun| {
                if flip {
                    r.test_accuracy_flip
                } else {
                    r.test_accuracy
                }
            };
            // Gains against the first variant scored plainly, seed by seed.
            let gains: Vec<f64> = rs
                .iter()
                .filter_map(|r| {
                    first
                        .iter()
                        .find(|b| b.seed == r.seed)
                        .map(|b| val(r) - b.val_accuracy)
                })
                .collect();
            let gain = if gains.is_empty() {
                "–".to_string()
            } else {
                let (m, s) = mean_std(&gains);
                format!(
                    "{:+.4} ± {s:.4}{}",
                    m,
                    if m > 2.0 * s && gains.len() > 1 {
                        " (> 2 std)"
                    } else {
                        ""
                    }
                )
            };
            println!(
                "| {v} | {} | {} | {} | {} | {} | {} | {} | {} | {gain} |",
                if flip { "flip" } else { "plain" },
                rs[0].epochs,
                rs[0].batch_size,
                rs[0].train_images,
                rs.len(),
                secs(rs.iter().map(|r| r.train_seconds).collect()),
                pm(rs.iter().map(|r| val(r)).collect()),
                pm(rs.iter().map(|r| test(r)).collect()),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fmnist_kit::models::ResNetConfig;

    fn resnet() -> NetworkConfig {
        NetworkConfig::default_for(ModelKind::ResNet)
    }

    #[test]
    fn width_scales_every_resnet_stage_and_blocks_set_the_depth() {
        let (_, network, _) =
            apply_variant("width0.5+blocks1", TrainConfig::default(), resnet()).unwrap();
        assert_eq!(
            network,
            NetworkConfig::ResNet(ResNetConfig {
                stem_filters: 32,
                stage_filters: [32, 64, 128, 256],
                blocks_per_stage: 1,
                ..ResNetConfig::default()
            })
        );
    }

    #[test]
    fn width_and_blocks_are_refused_where_they_mean_nothing() {
        let cnn = NetworkConfig::default_for(ModelKind::Cnn4);
        let err = apply_variant("width0.5", TrainConfig::default(), cnn)
            .unwrap_err()
            .to_string();
        assert!(err.contains("only the ResNet has a width"), "{err}");
        let err = format!(
            "{:#}",
            apply_variant("width0", TrainConfig::default(), resnet()).unwrap_err()
        );
        assert!(err.contains("trick \"width0\""), "{err}");
        assert!(err.contains("must lie in (0, 4], got 0"), "{err}");
        let err = apply_variant("widthx", TrainConfig::default(), resnet())
            .unwrap_err()
            .to_string();
        assert!(err.contains("needs a number"), "{err}");
    }
}
