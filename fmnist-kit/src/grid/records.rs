//! What a grid folder holds, so that a search survives being killed and spreads over machines:
//! `search.json` names the search (its [`SearchIdentity`]), and `fits/` holds one
//! [`FitRecord`] per finished (point, fold) fit, written atomically as soon as the fit ends and
//! keyed by everything that determines it. [`Shard`] says which fits a process runs.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::report::FitScore;
use super::spec::{GridPoint, GridSettings, GridSpec};
use crate::error::{Error, Result};
use crate::util::{json_key, read_json, write_json_atomic};

/// File naming the search a folder belongs to.
pub const SEARCH_FILE: &str = "search.json";
/// Folder of the fit records.
pub const FITS_DIR: &str = "fits";

/// Everything that determines a search's scores: the grid, the settings (folds, epochs, batch
/// size, seed), and the images (a hash of their pixels and labels, and how many).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SearchIdentity {
    pub spec: GridSpec,
    pub settings: GridSettings,
    pub images: usize,
    /// xxh3-128 of the images' pixels and labels.
    pub data_hash: String,
}

impl SearchIdentity {
    /// The key of fit (`point`, `fold`) of this search: a hash of the identity, the point and
    /// the fold, so that a record can never be taken for another search's fit.
    pub fn fit_key(&self, point: &GridPoint, fold: usize) -> Result<String> {
        self.key_of(&(self, point, fold))
    }

    /// The key of the refit of `point` on all the search's images.
    pub fn refit_key(&self, point: &GridPoint) -> Result<String> {
        self.key_of(&(self, point, "refit on all images"))
    }

    fn key_of(&self, what: &impl Serialize) -> Result<String> {
        json_key(what, Path::new(SEARCH_FILE))
    }

    /// One line for messages: images, folds, epochs, seed, data hash.
    pub fn describe(&self) -> String {
        format!(
            "{} points × {} folds on {} images (data {}), {} epochs per fit, batch {}, {} steps, seed {}",
            self.spec.points().len(),
            self.settings.folds,
            self.images,
            self.data_hash.chars().take(12).collect::<String>(),
            self.settings.epochs,
            self.settings.batch_size,
            self.settings.precision,
            self.settings.seed
        )
    }

    /// Writes `search.json` into `dir`, or checks that the one there is this search. A folder
    /// of another search is an error naming it and both searches.
    pub fn claim(&self, dir: &Path) -> Result<()> {
        let path = dir.join(SEARCH_FILE);
        if path.is_file() {
            let theirs: SearchIdentity = read_json(&path)?;
            if &theirs != self {
                return Err(Error::data(
                    &path,
                    "search",
                    format!(
                        "this folder holds another search's records ({}), not this one ({}): \
                         choose another folder or remove it",
                        theirs.describe(),
                        self.describe()
                    ),
                ));
            }
            return Ok(());
        }
        write_json_atomic(&path, self)
    }
}

/// One finished fit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FitRecord {
    /// [`SearchIdentity::fit_key`] of this fit.
    pub key: String,
    /// Position of the point in the grid's order.
    pub point_index: usize,
    pub point: GridPoint,
    pub fold: usize,
    /// Held-out log loss and accuracy after the last epoch; none when the fit diverged.
    pub log_loss: Option<f64>,
    pub accuracy: Option<f64>,
    pub seconds: f64,
    /// Which shard ran it (`K/N`), for the record.
    pub shard: String,
    /// Why the fit diverged (its loss became NaN or infinite), when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diverged: Option<String>,
}

impl FitRecord {
    /// The record's file name in `fits/`: point and fold, then the key.
    pub fn file_name(point_index: usize, fold: usize, key: &str) -> String {
        format!("p{point_index:03}-f{fold}-{key}.json")
    }

    /// The record of a fit that ended with `score`.
    pub fn new(
        key: String,
        point_index: usize,
        point: GridPoint,
        fold: usize,
        score: &FitScore,
        shard: Shard,
    ) -> FitRecord {
        let (log_loss, accuracy, diverged) = match score {
            FitScore::Scored {
                log_loss, accuracy, ..
            } => (Some(*log_loss), Some(*accuracy), None),
            FitScore::Diverged { reason, .. } => (None, None, Some(reason.clone())),
        };
        FitRecord {
            key,
            point_index,
            point,
            fold,
            log_loss,
            accuracy,
            seconds: score.seconds(),
            shard: shard.to_string(),
            diverged,
        }
    }

    /// The fit's outcome. A record without a finite score (or marked diverged) is a fit that
    /// diverged.
    pub fn score(&self) -> FitScore {
        match (self.log_loss, self.accuracy, &self.diverged) {
            (Some(log_loss), Some(accuracy), None) if log_loss.is_finite() => FitScore::Scored {
                log_loss,
                accuracy,
                seconds: self.seconds,
            },
            (_, _, reason) => FitScore::Diverged {
                reason: reason
                    .clone()
                    .unwrap_or_else(|| "no finite held-out log loss".into()),
                seconds: self.seconds,
            },
        }
    }

    /// Writes the record into `dir/fits/` (atomically).
    pub fn save(&self, dir: &Path) -> Result<PathBuf> {
        let path =
            dir.join(FITS_DIR)
                .join(FitRecord::file_name(self.point_index, self.fold, &self.key));
        write_json_atomic(&path, self)?;
        Ok(path)
    }
}

/// The records of `dir/fits/`, each with its file. A file that is not a readable record (cut
/// short, edited) is an error naming it.
pub fn read_records(dir: &Path) -> Result<Vec<(PathBuf, FitRecord)>> {
    let fits = dir.join(FITS_DIR);
    if !fits.is_dir() {
        return Ok(Vec::new());
    }
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&fits)
        .map_err(|e| Error::io(&fits, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|x| x == "json")
                && !p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let record: FitRecord = read_json(&p).map_err(|e| {
                Error::data(
                    &p,
                    "fit record",
                    format!("unreadable ({e}); delete it and rerun to redo that fit"),
                )
            })?;
            Ok((p, record))
        })
        .collect()
}

/// A deterministic share of a search's fits: shard `index` of `count` (1-based) runs the fits
/// whose position in (point, fold) order leaves remainder `index − 1` when divided by `count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Shard {
    /// Every fit: shard 1 of 1.
    pub const ALL: Shard = Shard { index: 1, count: 1 };

    /// True when fit number `position` (0-based, point-major) belongs to this shard.
    /// A shard built by hand with `index` 0 or above `count` owns nothing (`FromStr` refuses
    /// such shards).
    pub fn owns(self, position: usize) -> bool {
        self.count > 0 && position % self.count + 1 == self.index
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl std::str::FromStr for Shard {
    type Err = Error;
    /// `K/N` with 1 ≤ K ≤ N (a Slurm array `--array=1-N` gives `$SLURM_ARRAY_TASK_ID/N`).
    fn from_str(s: &str) -> Result<Shard> {
        let bad = |why: &str| {
            Error::param(
                "shard",
                format!("{s:?}: {why} (expected K/N with 1 <= K <= N, e.g. 2/4)"),
            )
        };
        let (k, n) = s.split_once('/').ok_or_else(|| bad("no '/'"))?;
        let k: usize = k.trim().parse().map_err(|_| bad("K is not a number"))?;
        let n: usize = n.trim().parse().map_err(|_| bad("N is not a number"))?;
        if n == 0 {
            return Err(bad("N must be at least 1"));
        }
        if k == 0 {
            return Err(bad("shards count from 1"));
        }
        if k > n {
            return Err(bad("K is larger than N"));
        }
        Ok(Shard { index: k, count: n })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_parse_and_split_the_fits_exactly() {
        assert_eq!(
            "2/4".parse::<Shard>().unwrap(),
            Shard { index: 2, count: 4 }
        );
        for bad in ["3/2", "0/2", "1/0", "a/2", "2", "1/-1"] {
            let err = bad.parse::<Shard>().unwrap_err().to_string();
            assert!(err.contains(bad) && err.contains("K/N"), "{err}");
        }
        let shards: Vec<Shard> = (1..=3).map(|k| Shard { index: k, count: 3 }).collect();
        for position in 0..32 {
            assert_eq!(shards.iter().filter(|s| s.owns(position)).count(), 1);
        }
        assert!((0..32).all(|p| Shard::ALL.owns(p)));
    }
}
