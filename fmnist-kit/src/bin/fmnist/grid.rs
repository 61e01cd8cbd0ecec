//! `grid`: the original's grid search, resumable, shardable, with the refit of the best point.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde_json::json;

use fmnist_kit::data;
use fmnist_kit::grid::{refit_best, saved_refit, GridSearch, Shard, REFIT_FILE};
use fmnist_kit::util::{progress_line, progress_to_stderr};
use fmnist_kit::ProfileName;

use crate::common::{data_path, print_json, profile_arg, Globals};

#[derive(clap::Args)]
pub(crate) struct GridArgs {
    /// Sizes [default: $FMNIST_PROFILE or quick]
    #[arg(long, value_enum)]
    profile: Option<ProfileName>,
    /// The search's folder: records, report, refit [default: artifacts/<profile>/grid]
    #[arg(long)]
    out: Option<PathBuf>,
    /// Run only shard K of N (1 <= K <= N): a deterministic 1/N of the fits, e.g.
    /// `--shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT`.
    #[arg(long)]
    shard: Option<Shard>,
    /// Copy the records of these folders (other machines' shards) into --out first.
    #[arg(long, num_args = 1..)]
    merge: Vec<PathBuf>,
    /// The final job of an N-shard search: train nothing; when fits are missing, fail naming the
    /// shards K/N that own them (resubmit those), else write the report and refit.
    #[arg(long, value_name = "N", conflicts_with = "shard")]
    finish_shards: Option<usize>,
    /// Do not retrain the best point on all the images when the search is complete.
    #[arg(long)]
    no_refit: bool,
    /// Use the first N images of the profile's grid images instead.
    #[arg(long)]
    images: Option<usize>,
    #[arg(long)]
    data: Option<PathBuf>,
    #[arg(long)]
    json: bool,
}

pub(crate) fn run_grid(a: GridArgs, g: Globals) -> Result<()> {
    let profile = profile_arg(a.profile)?;
    let shard = a.shard.unwrap_or(Shard::ALL);
    let path = data_path(a.data);
    let d = data::load(&path).with_context(|| format!("loading {}", path.display()))?;
    let mut search = GridSearch::for_profile(&profile, &d)?;
    if let Some(n) = a.images {
        if n == 0 || n > search.images.len() {
            bail!("--images {n} is outside 1..={}", search.images.len());
        }
        search = GridSearch::new(search.spec, search.settings, search.images.first(n))?;
    }
    if let Some(precision) = g.precision {
        let settings = search.settings.clone().with_precision(precision, g.device);
        search = GridSearch::new(search.spec, settings, search.images)?;
    }
    // Progress goes to standard error with --json, which keeps standard output for the JSON.
    progress_to_stderr(a.json);
    search.settings.verbose = true;
    let dir = a.out.unwrap_or_else(|| profile.grid_dir());
    for other in &a.merge {
        let n = search
            .merge(&dir, other)
            .with_context(|| format!("merging {} into {}", other.display(), dir.display()))?;
        progress_line(&format!("merged {n} record(s) from {}", other.display()));
    }
    if let Some(n) = a.finish_shards {
        check_shards_finished(&search, &dir, n)?;
    }
    let device = g.device;
    let outcome = search
        .run(Some(&dir), shard, device)
        .with_context(|| format!("grid search in {}", dir.display()))?;
    let mut v = json!({
        "folder": dir, "shard": shard.to_string(), "profile": profile.name,
        "fits_total": outcome.fits_total, "fits_run": outcome.fits_run,
        "fits_reused": outcome.fits_reused, "fits_missing": outcome.fits_missing,
        "ignored_records": outcome.ignored, "seconds": outcome.seconds,
        "interrupted": outcome.interrupted,
    });
    let Some(report) = outcome.report else {
        if a.json {
            return print_json(&v);
        }
        if outcome.interrupted {
            println!(
                "interrupted: {} of {} fits recorded; run the same command again to continue",
                outcome.fits_recorded(),
                outcome.fits_total
            );
        } else {
            println!(
                "{} of {} fits still missing (other shards'); rerun without --shard, or with --merge, once they are done",
                outcome.fits_missing, outcome.fits_total
            );
        }
        return Ok(());
    };
    let best = report
        .best()
        .cloned()
        .context("every point of the grid diverged: there is no best point to refit")?;
    v["report"] = serde_json::to_value(&report)?;
    v["best"] = serde_json::to_value(&best)?;
    let mut effects = serde_json::Map::new();
    for h in ["learning_rate", "optimizer", "dropout", "dense"] {
        effects.insert(h.into(), json!(report.marginal(h)?));
    }
    v["effects"] = json!(effects);
    if !a.json {
        println!(
            "ranking (mean held-out negative log loss over {} folds):",
            search.settings.folds
        );
        for (i, r) in report.rows.iter().enumerate() {
            println!(
                "{:>3}. {:<42} {:.4} ± {:.4}, accuracy {:.4}",
                i + 1,
                r.point.to_string(),
                r.mean_score,
                r.std_score,
                r.mean_accuracy
            );
        }
        for d in &report.diverged {
            let folds: Vec<String> = d.folds.iter().map(|f| (f + 1).to_string()).collect();
            println!(
                "  -. {:<42} diverged on fold {}: {}",
                d.point.to_string(),
                folds.join(", "),
                d.reason
            );
        }
        println!("report in {}", dir.join("report.json").display());
    }
    let refit_here = !a.no_refit && shard == Shard::ALL;
    if refit_here {
        // A refit already made for this search and point is read back, not trained again.
        let (r, read_back) = match saved_refit(&search, &report, &dir) {
            Some(saved) => (saved, true),
            None => {
                let sets = profile.sets(fmnist_kit::models::ModelKind::Cnn4, &d)?;
                if !a.json {
                    println!(
                        "refit: {} on all {} images",
                        best.point,
                        search.images.len()
                    );
                }
                let r = refit_best(&search, &report, &sets.validation, &sets.test, &dir, device)?;
                (r, false)
            }
        };
        if !a.json && read_back {
            println!(
                "refit of {} read back from {}",
                best.point,
                dir.join("refit").join(REFIT_FILE).display()
            );
        }
        if !a.json {
            println!(
                "refit test accuracy {:.4} on {} images ({:.0} s); checkpoint {} (fmnist evaluate --checkpoint it)",
                r.test_accuracy,
                r.test_images,
                r.seconds,
                r.checkpoint.display()
            );
        }
        v["refit_test_accuracy"] = json!(r.test_accuracy);
        v["refit_read_back"] = json!(read_back);
        v["refit"] = serde_json::to_value(&r)?;
    } else if !a.json && !a.no_refit {
        println!("no refit in a shard: run `fmnist grid` without --shard on the folder once all shards are done");
    }
    if a.json {
        print_json(&v)
    } else {
        println!(
            "best: {} (neg. log loss {:.4} ± {:.4}); {} fits run, {} reused, in {:.0} s",
            best.point,
            best.mean_score,
            best.std_score,
            outcome.fits_run,
            outcome.fits_reused,
            outcome.seconds
        );
        Ok(())
    }
}

/// Fails, naming the shards of `count` whose fits `dir` lacks and the fits themselves, unless
/// every fit of `search` is recorded there.
fn check_shards_finished(search: &GridSearch, dir: &Path, count: usize) -> Result<()> {
    if count == 0 {
        bail!("--finish-shards 0: a search has at least one shard");
    }
    let missing = search
        .missing_fits(dir)
        .with_context(|| format!("reading the records in {}", dir.display()))?;
    if missing.is_empty() {
        progress_line(&format!(
            "all {} fits are recorded in {}",
            search.fits(),
            dir.display()
        ));
        return Ok(());
    }
    let folds = search.settings.folds;
    let points = search.spec.points();
    // The shards that own a missing fit, by the rule the shards ran by.
    let shards: Vec<usize> = (1..=count)
        .filter(|&index| {
            let shard = Shard { index, count };
            missing.iter().any(|&(pi, f)| shard.owns(pi * folds + f))
        })
        .collect();
    let fits: Vec<String> = missing
        .iter()
        .take(8)
        .map(|&(pi, f)| format!("point {} ({}) fold {}", pi + 1, points[pi].0, f + 1))
        .collect();
    let more = if missing.len() > fits.len() {
        format!(" and {} more", missing.len() - fits.len())
    } else {
        String::new()
    };
    let list: Vec<String> = shards.iter().map(|k| format!("{k}/{count}")).collect();
    let array: Vec<String> = shards.iter().map(|k| k.to_string()).collect();
    bail!(
        "{} of {} fits are not recorded in {}: shard(s) {} did not finish ({}{more}); resubmit them (e.g. sbatch --array={}) with a new final job",
        missing.len(),
        search.fits(),
        dir.display(),
        list.join(", "),
        fits.join("; "),
        array.join(",")
    )
}
