//! The search: every (point, fold) fit of a grid, run by one process or shared between many,
//! each recorded as soon as it ends, so that a killed search loses at most the fits in flight
//! and a rerun runs only what is missing.

use std::path::{Path, PathBuf};
use std::time::Instant;

use tch::Device;

use super::fit::fit_point;
use super::folds::stratified_folds;
use super::records::{read_records, FitRecord, SearchIdentity, Shard};
use super::report::{FitScore, GridReport};
use super::sessions::TENSORBOARD_DIR;
use super::spec::{GridSettings, GridSpec};
use crate::data::{FashionMnist, ImageSet};
use crate::error::{Error, Result};
use crate::profile::Profile;
use crate::train::InterruptGuard;
use crate::util::{content_hash, progress_line};

/// A grid search over a set of images: the grid, its settings and what identifies it.
#[derive(Clone, Debug)]
pub struct GridSearch {
    pub spec: GridSpec,
    pub settings: GridSettings,
    pub images: ImageSet,
    pub identity: SearchIdentity,
}

/// What one run of a search did.
#[derive(Clone, Debug, PartialEq)]
pub struct SearchOutcome {
    /// The report, when every fit of the search is recorded (by this run or earlier ones).
    pub report: Option<GridReport>,
    /// Fits in the whole search.
    pub fits_total: usize,
    /// Fits this run trained.
    pub fits_run: usize,
    /// Fits found recorded and not trained again.
    pub fits_reused: usize,
    /// Fits neither recorded nor in this run's shard (other shards' work still to come).
    pub fits_missing: usize,
    /// Record files of another search found in the folder: reported, never used.
    pub ignored: Vec<PathBuf>,
    pub seconds: f64,
    /// An interrupt (SIGINT) stopped the run: the fits it finished are recorded (`fits_run`),
    /// the one in flight is not, and running the search again continues with the rest.
    pub interrupted: bool,
}

impl SearchOutcome {
    /// Fits of the search recorded so far, by this run or earlier ones.
    pub fn fits_recorded(&self) -> usize {
        self.fits_total - self.fits_missing
    }

    /// The report, or why there is none yet: interrupted, or fits of other shards missing.
    pub fn report(&self) -> Result<GridReport> {
        if let Some(report) = &self.report {
            return Ok(report.clone());
        }
        let message = if self.interrupted {
            format!(
                "interrupted with {} of {} fits recorded; running the search again continues with the rest",
                self.fits_recorded(),
                self.fits_total
            )
        } else {
            format!(
                "{} of {} fits are not recorded yet (other shards' work)",
                self.fits_missing, self.fits_total
            )
        };
        Err(Error::NotReady {
            what: "grid search",
            message,
        })
    }
}

fn duration(seconds: f64) -> String {
    let s = seconds.round() as u64;
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

impl GridSearch {
    /// A search of `spec` with `settings` over `images`.
    pub fn new(spec: GridSpec, settings: GridSettings, images: ImageSet) -> Result<GridSearch> {
        if spec.points().is_empty() {
            return Err(Error::param("spec", "the grid has no point"));
        }
        if settings.epochs == 0 || settings.batch_size == 0 {
            return Err(Error::param(
                "settings",
                "a fit needs at least one epoch and a batch size of at least 1",
            ));
        }
        if settings.folds < 2 {
            return Err(Error::param(
                "folds",
                format!("{} must be at least 2", settings.folds),
            ));
        }
        let identity = SearchIdentity {
            spec: spec.clone(),
            settings: GridSettings {
                verbose: false,
                tensorboard: false,
                ..settings.clone()
            },
            images: images.len(),
            data_hash: content_hash([images.images.as_slice(), images.labels.as_slice()]),
        };
        Ok(GridSearch {
            spec,
            settings,
            images,
            identity,
        })
    }

    /// The original's grid on the profile's images, folds, epochs and batch size.
    pub fn for_profile(profile: &Profile, data: &FashionMnist) -> Result<GridSearch> {
        GridSearch::new(
            GridSpec::default(),
            GridSettings::from_profile(profile),
            profile.grid_images(data)?,
        )
    }

    /// Fits in the whole search (points × folds).
    pub fn fits(&self) -> usize {
        self.spec.points().len() * self.settings.folds
    }

    /// Copies the records of `other` (a folder of the same search, e.g. another machine's
    /// shard) into `dir`. A folder of another search is an error; records `dir` already has are
    /// kept. Returns how many were copied.
    pub fn merge(&self, dir: &Path, other: &Path) -> Result<usize> {
        self.identity.claim(dir)?;
        let theirs: SearchIdentity =
            crate::util::read_json(&other.join(super::records::SEARCH_FILE))?;
        if theirs != self.identity {
            return Err(Error::data(
                other,
                "search",
                format!(
                    "holds another search ({}), not this one ({})",
                    theirs.describe(),
                    self.identity.describe()
                ),
            ));
        }
        let have: Vec<String> = read_records(dir)?.into_iter().map(|(_, r)| r.key).collect();
        let mut copied = 0;
        for (_, record) in read_records(other)? {
            // Only records of this search's fits travel (their key is recomputed, so a file name
            // is never taken from a foreign record); the others would be ignored anyway.
            if self.owns_record(&record)? && !have.contains(&record.key) {
                record.save(dir)?;
                copied += 1;
            }
        }
        Ok(copied)
    }

    /// True when `record` is a fit of this search: its point at its index of the grid, a fold
    /// of the search, and the key those give.
    fn owns_record(&self, record: &FitRecord) -> Result<bool> {
        let points = self.spec.points();
        Ok(record.point_index < points.len()
            && record.fold < self.settings.folds
            && points[record.point_index].0 == record.point
            && self.identity.fit_key(&record.point, record.fold)? == record.key)
    }

    /// The fits of this search in `dir` (claimed for it) per (point, fold), with the record
    /// files of other searches found there.
    fn recorded(&self, dir: &Path) -> Result<(Vec<Vec<Option<FitScore>>>, Vec<PathBuf>)> {
        self.identity.claim(dir)?;
        let mut scores = vec![vec![None; self.settings.folds]; self.spec.points().len()];
        let mut ignored = Vec::new();
        for (path, record) in read_records(dir)? {
            if self.owns_record(&record)? {
                scores[record.point_index][record.fold] = Some(record.score());
            } else {
                ignored.push(path);
            }
        }
        Ok((scores, ignored))
    }

    /// The fits not recorded in `dir` yet, as (point index, fold), both 0-based, in the order
    /// [`Shard::owns`] numbers them. Trains nothing; `dir` is claimed for this search.
    pub fn missing_fits(&self, dir: &Path) -> Result<Vec<(usize, usize)>> {
        let (scores, _) = self.recorded(dir)?;
        let mut missing = Vec::new();
        for (pi, folds) in scores.iter().enumerate() {
            for (f, s) in folds.iter().enumerate() {
                if s.is_none() {
                    missing.push((pi, f));
                }
            }
        }
        Ok(missing)
    }

    /// Runs the fits of `shard` that are not recorded yet, recording each in `dir/fits/` as
    /// soon as it ends (with `dir`; in memory without). When every fit of the search is then
    /// recorded, builds the report (and writes `dir/report.json`). An interrupt (SIGINT) stops
    /// it during the fit in flight, which is not recorded; it returns `Ok` with `interrupted`
    /// set, and running it again continues.
    pub fn run(&self, dir: Option<&Path>, shard: Shard, device: Device) -> Result<SearchOutcome> {
        let started = Instant::now();
        let points = self.spec.points();
        let folds = self.settings.folds;
        // Known fit outcomes per (point, fold).
        let (mut scores, ignored) = match dir {
            Some(dir) => self.recorded(dir)?,
            None => (vec![vec![None; folds]; points.len()], Vec::new()),
        };
        let reused = scores.iter().flatten().filter(|s| s.is_some()).count();
        if let Some(dir) = dir {
            if self.settings.verbose && !ignored.is_empty() {
                progress_line(&format!(
                    "ignored {} record(s) of another search in {} (e.g. {})",
                    ignored.len(),
                    dir.display(),
                    ignored[0].display()
                ));
            }
        }
        let mut todo = Vec::new();
        for (pi, _) in points.iter().enumerate() {
            for f in 0..folds {
                if scores[pi][f].is_none() && shard.owns(pi * folds + f) {
                    todo.push((pi, f));
                }
            }
        }
        if self.settings.verbose {
            progress_line(&format!(
                "grid search: {}; shard {shard}: {} fits to run, {reused} already recorded",
                self.identity.describe(),
                todo.len()
            ));
        }
        let fold_sets = if todo.is_empty() {
            Vec::new()
        } else {
            stratified_folds(&self.images.labels, folds)?
                .iter()
                .map(|(train, held)| Ok((self.images.select(train)?, self.images.select(held)?)))
                .collect::<Result<Vec<_>>>()?
        };
        let mut run_seconds = 0.0;
        let mut fits_run = 0;
        let interrupt = InterruptGuard::install_own()?;
        for (done, &(pi, f)) in todo.iter().enumerate() {
            if interrupt.is_requested() {
                break;
            }
            let (point, optimizer) = &points[pi];
            let start = Instant::now();
            let (train, held) = &fold_sets[f];
            // A fit whose loss became NaN or infinite is recorded as diverged (its point then
            // ranks last) rather than ending the search: a rerun would only meet it again.
            let log = dir.filter(|_| self.settings.tensorboard).map(|d| {
                d.join(TENSORBOARD_DIR)
                    .join(point.slug())
                    .join(format!("fold-{}", f + 1))
            });
            let outcome = fit_point(
                point,
                *optimizer,
                &self.settings,
                train,
                held,
                device,
                log.as_deref(),
            );
            let seconds = start.elapsed().as_secs_f64();
            let score = match outcome {
                Ok(None) => {
                    interrupt.request();
                    break;
                }
                Ok(Some((log_loss, accuracy))) if log_loss.is_finite() => FitScore::Scored {
                    log_loss,
                    accuracy,
                    seconds,
                },
                Ok(Some((log_loss, _))) => FitScore::Diverged {
                    reason: format!("the held-out log loss was {log_loss} after the last epoch"),
                    seconds,
                },
                Err(Error::Diverged(reason)) => FitScore::Diverged { reason, seconds },
                Err(e) => return Err(e),
            };
            if let Some(dir) = dir {
                let key = self.identity.fit_key(point, f)?;
                FitRecord::new(key, pi, point.clone(), f, &score, shard).save(dir)?;
            }
            let result = match &score {
                FitScore::Scored {
                    log_loss, accuracy, ..
                } => format!("log loss {log_loss:.4}, accuracy {accuracy:.4}"),
                FitScore::Diverged { reason, .. } => format!("diverged ({reason})"),
            };
            scores[pi][f] = Some(score);
            fits_run += 1;
            run_seconds += seconds;
            if self.settings.verbose {
                let left = run_seconds / (done + 1) as f64 * (todo.len() - done - 1) as f64;
                progress_line(&format!(
                    "fit {}/{} (shard {shard}): point {} ({point}), fold {}/{folds}: {result}, {seconds:.1} s; elapsed {}, about {} left",
                    done + 1,
                    todo.len(),
                    pi + 1,
                    f + 1,
                    duration(started.elapsed().as_secs_f64()),
                    duration(left)
                ));
            }
        }
        let interrupted = interrupt.is_requested();
        drop(interrupt);
        let missing = scores.iter().flatten().filter(|s| s.is_none()).count();
        if interrupted && self.settings.verbose {
            progress_line(&format!(
                "grid search interrupted: {fits_run} fit(s) trained and recorded now, {missing} of {} left; running it again continues",
                self.fits()
            ));
        }
        let report = if missing == 0 {
            let rows = points
                .iter()
                .zip(&scores)
                .map(|((point, _), folds)| {
                    (point.clone(), folds.iter().flatten().cloned().collect())
                })
                .collect();
            let report = GridReport::from_scores(rows, &self.settings, self.images.len());
            if let Some(dir) = dir {
                report.save(dir)?;
                if self.settings.tensorboard {
                    report.log_sessions(&dir.join(TENSORBOARD_DIR))?;
                }
            }
            Some(report)
        } else {
            None
        };
        Ok(SearchOutcome {
            report,
            fits_total: self.fits(),
            fits_run,
            fits_reused: reused,
            fits_missing: missing,
            ignored,
            seconds: started.elapsed().as_secs_f64(),
            interrupted,
        })
    }
}

/// Trains a fresh `Cnn4` for every point of `spec` on every fold of `set` and ranks the points
/// by mean negative log loss on the held-out folds, in memory (nothing written, nothing resumed:
/// [`GridSearch`] does that).
pub fn grid_search(
    spec: &GridSpec,
    settings: &GridSettings,
    set: &ImageSet,
    device: Device,
) -> Result<GridReport> {
    let search = GridSearch::new(spec.clone(), settings.clone(), set.clone())?;
    search.run(None, Shard::ALL, device)?.report()
}
