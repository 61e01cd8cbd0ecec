//! Loading Fashion-MNIST from a tarball or an idx folder, through the parsed-data cache.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use super::cache::{read_cache, write_cache};
use super::idx::{idx_pair, read_idx_files};
use super::image_set::ImageSet;
use super::split::{train_validation_split, SplitConfig, TrainValidationSplit};
use super::tarball::parse_tarball;
use crate::error::{Error, Result};

/// How a load went.
#[derive(Clone, Debug, Serialize)]
pub struct LoadInfo {
    /// The file or folder read.
    pub source: PathBuf,
    /// Wall-clock seconds of the whole load (hashing, cache or parsing).
    pub load_seconds: f64,
    /// True when the parsed copy came from the cache.
    pub cached: bool,
    /// Hex xxh3-128 of the source bytes: the cache key.
    pub content_hash: String,
    /// Set when the cache could not be written (the load itself succeeded).
    pub cache_warning: Option<String>,
}

/// The official training (60,000) and test (10,000) sets.
#[derive(Clone, Debug)]
pub struct FashionMnist {
    pub train: ImageSet,
    pub test: ImageSet,
    pub info: LoadInfo,
}

impl FashionMnist {
    /// The original's 80/20 split of the training set (seed 13): 48,000 images to train on and
    /// 12,000 to validate on. Every notebook, the CLI, the trainer's profiles and the grid
    /// search take their training images from here.
    pub fn split(&self) -> Result<TrainValidationSplit> {
        train_validation_split(&self.train, &SplitConfig::default())
    }
}

/// Where the parsed-data cache lives.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum CachePolicy {
    /// `$FMNIST_CACHE_DIR/data`, else `$XDG_CACHE_HOME/fmnist-kit/data`, else `~/.cache/fmnist-kit/data`.
    #[default]
    Default,
    /// A folder of the caller's choice.
    Dir(PathBuf),
    /// Never read or write a cache.
    Off,
}

/// The folder of the default cache policy (not created).
pub fn default_cache_dir() -> PathBuf {
    crate::util::cache_root().join("data")
}

/// The data file a notebook or the CLI uses when given none: `$FMNIST_DATA`, else the first
/// `data/data.tar.gz` found in the current folder or one of its parents.
pub fn default_data_path() -> PathBuf {
    if let Some(p) = std::env::var_os("FMNIST_DATA").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let rel = Path::new("data").join("data.tar.gz");
    if let Ok(cwd) = std::env::current_dir() {
        for dir in cwd.ancestors() {
            let candidate = dir.join(&rel);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    rel
}

/// Loads Fashion-MNIST from a tarball or an idx folder with the default cache.
pub fn load(path: impl AsRef<Path>) -> Result<FashionMnist> {
    load_with(path, &CachePolicy::Default)
}

/// Loads Fashion-MNIST from `path` (a `.tar.gz` of CSVs or a folder of idx `.gz` files).
pub fn load_with(path: impl AsRef<Path>, cache: &CachePolicy) -> Result<FashionMnist> {
    let path = path.as_ref();
    let start = Instant::now();
    let sources: Vec<(PathBuf, Vec<u8>)> = if path.is_dir() {
        read_idx_files(path)?
    } else {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        vec![(path.to_path_buf(), bytes)]
    };

    let content_hash = crate::util::content_hash(sources.iter().map(|(_, b)| b.as_slice()));

    let cache_file = match cache {
        CachePolicy::Default => Some(default_cache_dir()),
        CachePolicy::Dir(d) => Some(d.clone()),
        CachePolicy::Off => None,
    }
    .map(|d| d.join(format!("{content_hash}.fmnist")));

    if let Some(cf) = &cache_file {
        if let Some((train, test)) = read_cache(cf) {
            return Ok(FashionMnist {
                train,
                test,
                info: LoadInfo {
                    source: path.to_path_buf(),
                    load_seconds: start.elapsed().as_secs_f64(),
                    cached: true,
                    content_hash,
                    cache_warning: None,
                },
            });
        }
    }

    let (train, test) = if path.is_dir() {
        let get = |i: usize| (&sources[i].0, sources[i].1.as_slice());
        let (train_images, train_labels, test_images, test_labels) =
            (get(0), get(1), get(2), get(3));
        let train = idx_pair(train_images, train_labels)?;
        let test = idx_pair(test_images, test_labels)?;
        (train, test)
    } else {
        parse_tarball(path, &sources[0].1)?
    };

    let cache_warning = cache_file
        .as_ref()
        .and_then(|cf| write_cache(cf, &train, &test).err().map(|e| e.to_string()));
    Ok(FashionMnist {
        train,
        test,
        info: LoadInfo {
            source: path.to_path_buf(),
            load_seconds: start.elapsed().as_secs_f64(),
            cached: false,
            content_hash,
            cache_warning,
        },
    })
}
