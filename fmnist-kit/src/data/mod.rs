//! Fashion-MNIST: reading, caching, splitting and building `data.tar.gz`.
//!
//! Sources the kit reads:
//! - `data.tar.gz` with the original project's members `fashion_mnist_train.csv` (60,000 rows)
//!   and `fashion_mnist_test.csv` (10,000 rows), header `label,pixel1,...,pixel784`; Kaggle's
//!   member names `fashion-mnist_train.csv` / `fashion-mnist_test.csv` are accepted too;
//! - a folder with the four official idx files (`train-images-idx3-ubyte.gz`, ...), as Debian's
//!   `dataset-fashion-mnist` installs them under `/usr/share/datasets/fashion-mnist`.
//!
//! The tarball is streamed gzip → tar → CSV in memory (nothing is extracted to disk); one thread
//! decompresses while the caller's thread parses. A parsed copy is cached under the user's cache
//! folder, keyed by a hash of the file's bytes, so an edited file is never served stale.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;
use tch::{Kind, Tensor};

use crate::error::{Error, Result};

mod cache;
mod csv;
mod idx;
mod split;
mod tarball;

use cache::{read_cache, write_cache};
use csv::parse_tarball;
use idx::idx_pair;
pub use idx::{read_idx_folder, read_idx_images, read_idx_labels};
pub use split::{train_validation_split, SplitConfig, TrainValidationSplit};
pub use tarball::{prepare_data, tarball_bytes, PrepareReport};

/// Side of an image in pixels.
pub const IMAGE_SIDE: usize = 28;
/// Pixels per image (28 × 28).
pub const PIXELS: usize = IMAGE_SIDE * IMAGE_SIDE;
/// Number of classes.
pub const NUM_CLASSES: usize = 10;
/// Class names, index = label, as the original project named them.
pub const CLASS_NAMES: [&str; NUM_CLASSES] = [
    "t_shirt",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle_boots",
];
/// Rows in the official training set.
pub const TRAIN_ROWS: usize = 60_000;
/// Rows in the official test set.
pub const TEST_ROWS: usize = 10_000;

/// Member names of the tarball (the original project's), then Kaggle's alternatives.
pub const TRAIN_MEMBER: &str = "fashion_mnist_train.csv";
pub const TEST_MEMBER: &str = "fashion_mnist_test.csv";
pub(crate) const KAGGLE_TRAIN_MEMBER: &str = "fashion-mnist_train.csv";
pub(crate) const KAGGLE_TEST_MEMBER: &str = "fashion-mnist_test.csv";

/// The four official idx files.
pub const IDX_FILES: [&str; 4] = [
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
];

/// Where Debian's `dataset-fashion-mnist` puts the idx files.
pub const DEBIAN_SOURCE: &str = "/usr/share/datasets/fashion-mnist";

/// Name of a class, or `"?"` for a label outside 0..=9.
pub fn class_name(label: usize) -> &'static str {
    CLASS_NAMES.get(label).copied().unwrap_or("?")
}

/// Owned images and labels.
///
/// `images` is row-major u8 of shape `[len, 28, 28]`; `labels` holds values in `0..10`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ImageSet {
    pub images: Vec<u8>,
    pub labels: Vec<u8>,
}

impl ImageSet {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when the set holds no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Pixels of image `i` (784 bytes, row-major), or `None` past the end.
    pub fn image(&self, i: usize) -> Option<&[u8]> {
        self.images.get(i * PIXELS..(i + 1) * PIXELS)
    }

    /// The images at `indices`, in that order. Errors on an index past the end.
    pub fn select(&self, indices: &[usize]) -> Result<ImageSet> {
        let mut out = ImageSet {
            images: Vec::with_capacity(indices.len() * PIXELS),
            labels: Vec::with_capacity(indices.len()),
        };
        for &i in indices {
            let img = self.image(i).ok_or_else(|| {
                Error::param(
                    "indices",
                    format!("index {i} is past the end ({} images)", self.len()),
                )
            })?;
            out.images.extend_from_slice(img);
            out.labels.push(self.labels[i]);
        }
        Ok(out)
    }

    /// The first `n` images (all of them when `n >= len`).
    pub fn first(&self, n: usize) -> ImageSet {
        let n = n.min(self.len());
        ImageSet {
            images: self.images[..n * PIXELS].to_vec(),
            labels: self.labels[..n].to_vec(),
        }
    }

    /// Images per class, index = label.
    pub fn class_counts(&self) -> [usize; NUM_CLASSES] {
        let mut counts = [0usize; NUM_CLASSES];
        for &l in &self.labels {
            if let Some(c) = counts.get_mut(l as usize) {
                *c += 1;
            }
        }
        counts
    }

    /// Indices of the first `n` images of class `label`, in order.
    pub fn indices_of_class(&self, label: u8, n: usize) -> Vec<usize> {
        self.labels
            .iter()
            .enumerate()
            .filter(|(_, &l)| l == label)
            .map(|(i, _)| i)
            .take(n)
            .collect()
    }

    /// The first `per_class` images of each class, class by class (labels 0, 0, …, 1, 1, …).
    pub fn examples_per_class(&self, per_class: usize) -> Result<ImageSet> {
        let mut idx = Vec::with_capacity(per_class * NUM_CLASSES);
        for class in 0..NUM_CLASSES as u8 {
            let found = self.indices_of_class(class, per_class);
            if found.len() < per_class {
                return Err(Error::param(
                    "per_class",
                    format!(
                        "class {} has {} images, {per_class} asked",
                        class_name(class as usize),
                        found.len()
                    ),
                ));
            }
            idx.extend(found);
        }
        self.select(&idx)
    }

    /// Mean and standard deviation of all pixels, on the 0..1 scale.
    pub fn pixel_mean_std(&self) -> (f64, f64) {
        if self.images.is_empty() {
            return (0.0, 0.0);
        }
        let mut hist = [0u64; 256];
        for &p in &self.images {
            hist[p as usize] += 1;
        }
        let n = self.images.len() as f64;
        let mean = hist
            .iter()
            .enumerate()
            .map(|(v, &c)| v as f64 * c as f64)
            .sum::<f64>()
            / n;
        let var = hist
            .iter()
            .enumerate()
            .map(|(v, &c)| (v as f64 - mean).powi(2) * c as f64)
            .sum::<f64>()
            / n;
        (mean / 255.0, var.sqrt() / 255.0)
    }

    /// Mean image of each class as f32 in 0..1: `[10][784]` (all zeros for an absent class).
    pub fn class_mean_images(&self) -> Vec<Vec<f32>> {
        let mut sums = vec![vec![0u64; PIXELS]; NUM_CLASSES];
        let mut counts = [0u64; NUM_CLASSES];
        for (i, &l) in self.labels.iter().enumerate() {
            let l = l as usize;
            if l >= NUM_CLASSES {
                continue;
            }
            counts[l] += 1;
            for (s, &p) in sums[l]
                .iter_mut()
                .zip(&self.images[i * PIXELS..(i + 1) * PIXELS])
            {
                *s += p as u64;
            }
        }
        sums.into_iter()
            .zip(counts)
            .map(|(s, c)| {
                s.into_iter()
                    .map(|v| {
                        if c == 0 {
                            0.0
                        } else {
                            v as f32 / c as f32 / 255.0
                        }
                    })
                    .collect()
            })
            .collect()
    }

    /// Images as a float tensor `[N, 1, 28, 28]` with values in 0..1, on the CPU.
    pub fn images_tensor(&self) -> Tensor {
        let n = self.len() as i64;
        Tensor::from_slice(&self.images)
            .view([n, 1, IMAGE_SIDE as i64, IMAGE_SIDE as i64])
            .to_kind(Kind::Float)
            / 255.0
    }

    /// Labels as an int64 tensor `[N]`, on the CPU.
    pub fn labels_tensor(&self) -> Tensor {
        Tensor::from_slice(&self.labels).to_kind(Kind::Int64)
    }
}

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
        IDX_FILES
            .iter()
            .map(|name| {
                let p = path.join(name);
                if !p.is_file() {
                    return Err(Error::MissingMember {
                        path: path.to_path_buf(),
                        expected: name.to_string(),
                        found: list_dir(path),
                    });
                }
                let bytes = std::fs::read(&p).map_err(|e| Error::io(&p, e))?;
                Ok((p, bytes))
            })
            .collect::<Result<_>>()?
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

fn list_dir(dir: &Path) -> String {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    if names.is_empty() {
        "nothing".into()
    } else {
        names.join(", ")
    }
}
