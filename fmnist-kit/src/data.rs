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

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Instant;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use tch::{Kind, Tensor};

use crate::error::{Error, Result};

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
const KAGGLE_TRAIN_MEMBER: &str = "fashion-mnist_train.csv";
const KAGGLE_TEST_MEMBER: &str = "fashion-mnist_test.csv";

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
    if let Some(d) = std::env::var_os("FMNIST_CACHE_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d).join("data");
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("fmnist-kit").join("data")
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

    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    for (_, bytes) in &sources {
        hasher.update(&(bytes.len() as u64).to_le_bytes());
        hasher.update(bytes);
    }
    let content_hash = format!("{:032x}", hasher.digest128());

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

// ---------------------------------------------------------------------------------------------
// Tarball → CSV parsing
// ---------------------------------------------------------------------------------------------

/// Which split a member holds.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Split2 {
    Train,
    Test,
}

enum Chunk {
    Begin(Split2, String),
    Bytes(Vec<u8>),
    End,
}

const CHUNK: usize = 4 << 20;

/// Records whether an error came from the gzip layer, to tell gzip errors from tar errors.
struct GzProbe<R> {
    inner: R,
    failed: std::sync::Arc<std::sync::Mutex<Option<String>>>,
}

impl<R: Read> Read for GzProbe<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.inner.read(buf).inspect_err(|e| {
            if let Ok(mut f) = self.failed.lock() {
                f.get_or_insert_with(|| e.to_string());
            }
        })
    }
}

/// A gzip error; a stream that ends early is called truncated.
fn gzip_error(path: &Path, detail: String) -> Error {
    let lower = detail.to_ascii_lowercase();
    let truncated = ["unexpected end", "eof", "incomplete"]
        .iter()
        .any(|w| lower.contains(w));
    Error::Gzip {
        path: path.into(),
        detail: if truncated {
            format!("truncated: {detail}")
        } else {
            detail
        },
    }
}

fn member_split(name: &str) -> Option<Split2> {
    let base = name.rsplit('/').next().unwrap_or(name);
    match base {
        TRAIN_MEMBER | KAGGLE_TRAIN_MEMBER => Some(Split2::Train),
        TEST_MEMBER | KAGGLE_TEST_MEMBER => Some(Split2::Test),
        _ => None,
    }
}

fn is_unsafe_name(name: &str) -> bool {
    name.starts_with('/')
        || name.starts_with('\\')
        || name.split(['/', '\\']).any(|c| c == "..")
        || name.contains(':')
}

/// Reads the archive in a helper thread, sending member bytes in chunks that end at a line break.
fn produce(path: &Path, bytes: &[u8], tx: mpsc::SyncSender<Chunk>) -> Result<Vec<String>> {
    if bytes.len() < 2 || bytes[0] != 0x1f || bytes[1] != 0x8b {
        return Err(Error::Gzip {
            path: path.into(),
            detail: "the file does not start with the gzip magic bytes 1f 8b".into(),
        });
    }
    let failed = std::sync::Arc::new(std::sync::Mutex::new(None));
    let gz = GzProbe {
        inner: flate2::read::GzDecoder::new(bytes),
        failed: failed.clone(),
    };
    let classify = |e: std::io::Error| -> Error {
        let gz_err = failed.lock().ok().and_then(|f| f.clone());
        match gz_err {
            Some(detail) => gzip_error(path, detail),
            None => Error::Tar {
                path: path.into(),
                detail: e.to_string(),
            },
        }
    };
    let mut archive = tar::Archive::new(gz);
    let mut seen = Vec::new();
    for entry in archive.entries().map_err(classify)? {
        let mut entry = entry.map_err(classify)?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        if is_unsafe_name(&name) {
            return Err(Error::UnsafeMember {
                path: path.into(),
                member: name,
            });
        }
        seen.push(name.clone());
        let Some(split) = member_split(&name) else {
            continue;
        };
        if tx.send(Chunk::Begin(split, name)).is_err() {
            return Ok(seen);
        }
        let mut carry: Vec<u8> = Vec::new();
        loop {
            let mut buf = Vec::with_capacity(CHUNK + carry.len());
            buf.append(&mut carry);
            let filled_from = buf.len();
            buf.resize(filled_from + CHUNK, 0);
            let mut filled = filled_from;
            while filled < buf.len() {
                let n = entry.read(&mut buf[filled..]).map_err(classify)?;
                if n == 0 {
                    break;
                }
                filled += n;
            }
            buf.truncate(filled);
            let eof = filled < filled_from + CHUNK;
            if !eof {
                if let Some(nl) = buf.iter().rposition(|&b| b == b'\n') {
                    carry.extend_from_slice(&buf[nl + 1..]);
                    buf.truncate(nl + 1);
                }
            }
            if !buf.is_empty() && tx.send(Chunk::Bytes(buf)).is_err() {
                return Ok(seen);
            }
            if eof {
                break;
            }
        }
        if tx.send(Chunk::End).is_err() {
            return Ok(seen);
        }
    }
    // Drain the gzip stream to its end so that its trailer (CRC, length) is verified.
    let mut rest = archive.into_inner();
    std::io::copy(&mut rest, &mut std::io::sink()).map_err(classify)?;
    Ok(seen)
}

fn parse_tarball(path: &Path, bytes: &[u8]) -> Result<(ImageSet, ImageSet)> {
    let (tx, rx) = mpsc::sync_channel::<Chunk>(6);
    let mut train: Option<ImageSet> = None;
    let mut test: Option<ImageSet> = None;
    let (produced, parsed) = std::thread::scope(|s| {
        let producer = s.spawn(move || produce(path, bytes, tx));
        let parsed = (|| -> Result<()> {
            let mut current: Option<(Split2, String, CsvParser)> = None;
            for msg in rx.iter() {
                match msg {
                    Chunk::Begin(split, name) => {
                        let rows = if split == Split2::Train {
                            TRAIN_ROWS
                        } else {
                            TEST_ROWS
                        };
                        current = Some((split, name, CsvParser::new(rows)));
                    }
                    Chunk::Bytes(b) => {
                        if let Some((_, name, parser)) = current.as_mut() {
                            parser.feed(&b).map_err(|(loc, msg)| {
                                Error::data(path, format!("{name}: {loc}"), msg)
                            })?;
                        }
                    }
                    Chunk::End => {
                        if let Some((split, name, parser)) = current.take() {
                            let set = parser.finish().map_err(|(loc, msg)| {
                                Error::data(path, format!("{name}: {loc}"), msg)
                            })?;
                            match split {
                                Split2::Train if train.is_none() => train = Some(set),
                                Split2::Test if test.is_none() => test = Some(set),
                                _ => {
                                    return Err(Error::data(
                                        path,
                                        name,
                                        "a second member for the same split",
                                    ));
                                }
                            }
                        }
                    }
                }
            }
            Ok(())
        })();
        drop(rx);
        let produced = producer.join().unwrap_or_else(|_| {
            Err(Error::Tar {
                path: path.into(),
                detail: "the reader thread panicked".into(),
            })
        });
        (produced, parsed)
    });
    // A parse error is the root cause when both fail (the producer then only saw a closed channel).
    parsed?;
    let seen = produced?;
    let found = if seen.is_empty() {
        "no members".to_string()
    } else {
        seen.join(", ")
    };
    let train = train.ok_or_else(|| Error::MissingMember {
        path: path.into(),
        expected: format!("{TRAIN_MEMBER} (or {KAGGLE_TRAIN_MEMBER})"),
        found: found.clone(),
    })?;
    let test = test.ok_or_else(|| Error::MissingMember {
        path: path.into(),
        expected: format!("{TEST_MEMBER} (or {KAGGLE_TEST_MEMBER})"),
        found,
    })?;
    Ok((train, test))
}

/// Streaming parser of `label,pixel1,...,pixel784` rows. Errors are `(location, message)`.
struct CsvParser {
    set: ImageSet,
    /// 1-based line number of the next line.
    line: usize,
    header_seen: bool,
}

type ParseError = (String, String);

fn field_name(field: usize) -> String {
    if field == 0 {
        "label".to_string()
    } else {
        format!("pixel{field}")
    }
}

impl CsvParser {
    fn new(expected_rows: usize) -> Self {
        CsvParser {
            set: ImageSet {
                images: Vec::with_capacity(expected_rows * PIXELS),
                labels: Vec::with_capacity(expected_rows),
            },
            line: 1,
            header_seen: false,
        }
    }

    /// Parses complete lines (the chunk ends at a line break, except the member's last chunk).
    fn feed(&mut self, chunk: &[u8]) -> std::result::Result<(), ParseError> {
        for raw in chunk.split_inclusive(|&b| b == b'\n') {
            let mut line = raw.strip_suffix(b"\n").unwrap_or(raw);
            line = line.strip_suffix(b"\r").unwrap_or(line);
            let number = self.line;
            self.line += 1;
            if !self.header_seen {
                self.check_header(line, number)?;
                self.header_seen = true;
            } else if !line.is_empty() {
                self.parse_row(line, number)?;
            }
        }
        Ok(())
    }

    fn check_header(&self, line: &[u8], number: usize) -> std::result::Result<(), ParseError> {
        let text = String::from_utf8_lossy(line);
        let text = text.trim_start_matches('\u{feff}');
        let fields: Vec<&str> = text.split(',').collect();
        for (i, f) in fields.iter().enumerate() {
            let expected = field_name(i);
            if i > PIXELS || f.trim().trim_matches('"') != expected {
                return Err((
                    format!("line {number} (header), field {}", i + 1),
                    format!(
                        "expected {:?}, found {f:?} (the header must be label,pixel1,...,pixel784)",
                        if i > PIXELS {
                            "end of line".to_string()
                        } else {
                            expected
                        }
                    ),
                ));
            }
        }
        if fields.len() != PIXELS + 1 {
            return Err((
                format!("line {number} (header)"),
                format!(
                    "{} fields, expected {} (label,pixel1,...,pixel784)",
                    fields.len(),
                    PIXELS + 1
                ),
            ));
        }
        Ok(())
    }

    fn parse_row(&mut self, line: &[u8], number: usize) -> std::result::Result<(), ParseError> {
        let mut values = [0u8; PIXELS + 1];
        let mut field = 0usize;
        let mut value: u32 = 0;
        let mut digits = 0u32;
        let mut ok = true;
        for &b in line {
            if b.is_ascii_digit() {
                value = value.wrapping_mul(10).wrapping_add((b - b'0') as u32);
                digits += 1;
            } else if b == b',' {
                if !ok || digits == 0 || digits > 3 || value > 255 || field > PIXELS {
                    return Err(self.row_error(line, number, field));
                }
                values[field] = value as u8;
                field += 1;
                value = 0;
                digits = 0;
            } else {
                ok = false;
            }
        }
        if !ok || digits == 0 || digits > 3 || value > 255 || field > PIXELS {
            return Err(self.row_error(line, number, field));
        }
        values[field] = value as u8;
        if field != PIXELS {
            return Err((
                format!("line {number}"),
                format!(
                    "{} fields, expected {} (label and 784 pixels)",
                    field + 1,
                    PIXELS + 1
                ),
            ));
        }
        if values[0] as usize >= NUM_CLASSES {
            return Err((
                format!("line {number}, field 1 (label)"),
                format!("label {} is outside 0..=9", values[0]),
            ));
        }
        self.set.labels.push(values[0]);
        self.set.images.extend_from_slice(&values[1..]);
        Ok(())
    }

    /// Slow path: explains what is wrong with field `field` (0-based) of `line`.
    fn row_error(&self, line: &[u8], number: usize, field: usize) -> ParseError {
        let fields: Vec<&[u8]> = line.split(|&b| b == b',').collect();
        if fields.len() != PIXELS + 1 && field >= PIXELS {
            return (
                format!("line {number}"),
                format!(
                    "{} fields, expected {} (label and 784 pixels)",
                    fields.len(),
                    PIXELS + 1
                ),
            );
        }
        let text = String::from_utf8_lossy(fields.get(field).copied().unwrap_or(b"")).into_owned();
        let location = format!("line {number}, field {} ({})", field + 1, field_name(field));
        let (lo, hi) = if field == 0 { (0, 9) } else { (0, 255) };
        let message = match text.trim().parse::<i64>() {
            Ok(v) if text.trim() == text => format!("{v} is outside {lo}..={hi}"),
            _ => format!("{text:?} is not an integer"),
        };
        (location, message)
    }

    fn finish(self) -> std::result::Result<ImageSet, ParseError> {
        if !self.header_seen {
            return Err((
                "line 1".into(),
                "the member is empty (no header, no rows)".into(),
            ));
        }
        if self.set.is_empty() {
            return Err((
                "line 2".into(),
                "the member has a header but no data rows".into(),
            ));
        }
        Ok(self.set)
    }
}

// ---------------------------------------------------------------------------------------------
// idx files
// ---------------------------------------------------------------------------------------------

fn gunzip(path: &Path, bytes: &[u8]) -> Result<Vec<u8>> {
    if bytes.len() < 2 || bytes[0] != 0x1f || bytes[1] != 0x8b {
        return Err(Error::Gzip {
            path: path.into(),
            detail: "the file does not start with the gzip magic bytes 1f 8b".into(),
        });
    }
    let mut out = Vec::with_capacity(bytes.len() * 3);
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .map_err(|e| gzip_error(path, e.to_string()))?;
    Ok(out)
}

fn be_u32(path: &Path, raw: &[u8], at: usize, what: &str) -> Result<u32> {
    raw.get(at..at + 4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or_else(|| {
            Error::data(
                path,
                format!("byte {at} ({what})"),
                "the file ends inside its header",
            )
        })
}

/// Reads an idx3 image file (`.gz`): returns `[n, 28, 28]` u8 pixels.
pub fn read_idx_images(path: &Path, gz_bytes: &[u8]) -> Result<Vec<u8>> {
    let raw = gunzip(path, gz_bytes)?;
    let magic = be_u32(path, &raw, 0, "magic")?;
    if magic != 0x0803 {
        return Err(Error::data(
            path,
            "byte 0 (magic)",
            format!("{magic:#010x}, expected 0x00000803 (idx3 unsigned bytes)"),
        ));
    }
    let n = be_u32(path, &raw, 4, "count")? as usize;
    let rows = be_u32(path, &raw, 8, "rows")? as usize;
    let cols = be_u32(path, &raw, 12, "columns")? as usize;
    if rows != IMAGE_SIDE || cols != IMAGE_SIDE {
        return Err(Error::data(
            path,
            "bytes 8..16 (rows, columns)",
            format!("{rows}×{cols}, expected 28×28"),
        ));
    }
    let body = &raw[16..];
    if body.len() != n * PIXELS {
        return Err(Error::data(
            path,
            "body",
            format!(
                "{} bytes, expected {} for {n} images",
                body.len(),
                n * PIXELS
            ),
        ));
    }
    Ok(body.to_vec())
}

/// Reads an idx1 label file (`.gz`): returns `n` labels in 0..=9.
pub fn read_idx_labels(path: &Path, gz_bytes: &[u8]) -> Result<Vec<u8>> {
    let raw = gunzip(path, gz_bytes)?;
    let magic = be_u32(path, &raw, 0, "magic")?;
    if magic != 0x0801 {
        return Err(Error::data(
            path,
            "byte 0 (magic)",
            format!("{magic:#010x}, expected 0x00000801 (idx1 unsigned bytes)"),
        ));
    }
    let n = be_u32(path, &raw, 4, "count")? as usize;
    let body = &raw[8..];
    if body.len() != n {
        return Err(Error::data(
            path,
            "body",
            format!("{} bytes, expected {n} labels", body.len()),
        ));
    }
    if let Some(i) = body.iter().position(|&l| l as usize >= NUM_CLASSES) {
        return Err(Error::data(
            path,
            format!("label {i} (byte {})", 8 + i),
            format!("label {} is outside 0..=9", body[i]),
        ));
    }
    Ok(body.to_vec())
}

fn idx_pair(images: (&PathBuf, &[u8]), labels: (&PathBuf, &[u8])) -> Result<ImageSet> {
    let imgs = read_idx_images(images.0, images.1)?;
    let labs = read_idx_labels(labels.0, labels.1)?;
    if imgs.len() / PIXELS != labs.len() {
        return Err(Error::data(
            labels.0,
            "count",
            format!(
                "{} labels but {} has {} images",
                labs.len(),
                images.0.display(),
                imgs.len() / PIXELS
            ),
        ));
    }
    Ok(ImageSet {
        images: imgs,
        labels: labs,
    })
}

/// Reads the four idx files of `dir`.
pub fn read_idx_folder(dir: &Path) -> Result<(ImageSet, ImageSet)> {
    let data = load_with(dir, &CachePolicy::Off)?;
    Ok((data.train, data.test))
}

// ---------------------------------------------------------------------------------------------
// Cache
// ---------------------------------------------------------------------------------------------

const CACHE_MAGIC: &[u8; 8] = b"FMNIST01";

fn read_cache(path: &Path) -> Option<(ImageSet, ImageSet)> {
    let mut f = File::open(path).ok()?;
    let file_len = f.metadata().ok()?.len() as usize;
    let mut header = [0u8; 32];
    f.read_exact(&mut header).ok()?;
    if &header[..8] != CACHE_MAGIC {
        return None;
    }
    let n_train = u64::from_le_bytes(header[8..16].try_into().ok()?) as usize;
    let n_test = u64::from_le_bytes(header[16..24].try_into().ok()?) as usize;
    let checksum = u64::from_le_bytes(header[24..32].try_into().ok()?);
    if file_len != 32 + (n_train + n_test) * (PIXELS + 1) {
        return None;
    }
    // Read straight into the final buffers (no intermediate copy), hashing as we go.
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    let mut read = |len: usize| -> Option<Vec<u8>> {
        let mut v = vec![0u8; len];
        f.read_exact(&mut v).ok()?;
        hasher.update(&v);
        Some(v)
    };
    let train = ImageSet {
        images: read(n_train * PIXELS)?,
        labels: read(n_train)?,
    };
    let test = ImageSet {
        images: read(n_test * PIXELS)?,
        labels: read(n_test)?,
    };
    if hasher.digest() != checksum {
        return None;
    }
    Some((train, test))
}

fn write_cache(path: &Path, train: &ImageSet, test: &ImageSet) -> Result<()> {
    let mut payload = Vec::with_capacity((train.len() + test.len()) * (PIXELS + 1));
    for set in [train, test] {
        payload.extend_from_slice(&set.images);
        payload.extend_from_slice(&set.labels);
    }
    let mut out = Vec::with_capacity(payload.len() + 32);
    out.extend_from_slice(CACHE_MAGIC);
    out.extend_from_slice(&(train.len() as u64).to_le_bytes());
    out.extend_from_slice(&(test.len() as u64).to_le_bytes());
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    hasher.update(&payload);
    out.extend_from_slice(&hasher.digest().to_le_bytes());
    out.extend_from_slice(&payload);
    write_atomic(path, &out)
}

/// Writes `value` as pretty JSON to `path` through [`write_atomic`].
pub fn write_json_atomic<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_vec_pretty(value).map_err(|e| Error::Json {
        path: path.into(),
        source: e,
    })?;
    write_atomic(path, &text)
}

/// Writes `bytes` to a temporary file beside `path`, then renames it into place, so a reader
/// never sees a half-written file and an interrupted write loses nothing.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        f.write_all(bytes).map_err(|e| Error::io(&tmp, e))?;
        f.sync_all().map_err(|e| Error::io(&tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

// ---------------------------------------------------------------------------------------------
// Building data.tar.gz
// ---------------------------------------------------------------------------------------------

/// What `prepare_data` built.
#[derive(Clone, Debug, Serialize)]
pub struct PrepareReport {
    pub out: PathBuf,
    pub sha256: String,
    pub bytes: u64,
    pub train_rows: usize,
    pub test_rows: usize,
}

fn csv_bytes(set: &ImageSet) -> Vec<u8> {
    let mut out = Vec::with_capacity(set.len() * PIXELS * 3);
    out.extend_from_slice(b"label");
    for i in 1..=PIXELS {
        out.extend_from_slice(format!(",pixel{i}").as_bytes());
    }
    out.push(b'\n');
    let num = |out: &mut Vec<u8>, v: u8| {
        if v >= 100 {
            out.push(b'0' + v / 100);
        }
        if v >= 10 {
            out.push(b'0' + (v / 10) % 10);
        }
        out.push(b'0' + v % 10);
    };
    for (i, &l) in set.labels.iter().enumerate() {
        num(&mut out, l);
        for &p in &set.images[i * PIXELS..(i + 1) * PIXELS] {
            out.push(b',');
            num(&mut out, p);
        }
        out.push(b'\n');
    }
    out
}

/// The bytes of `data.tar.gz` for the given sets: fixed tar metadata (mtime 0, uid/gid 0,
/// mode 0644, ustar) and fixed gzip header (mtime 0, no name), so the output is reproducible.
pub fn tarball_bytes(train: &ImageSet, test: &ImageSet) -> Result<Vec<u8>> {
    let io = |e: std::io::Error| Error::io("data.tar.gz (in memory)", e);
    let gz = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::new(6));
    let mut builder = tar::Builder::new(gz);
    builder.mode(tar::HeaderMode::Deterministic);
    for (name, set) in [(TRAIN_MEMBER, train), (TEST_MEMBER, test)] {
        let body = csv_bytes(set);
        let mut header = tar::Header::new_ustar();
        header.set_size(body.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        header.set_entry_type(tar::EntryType::Regular);
        builder
            .append_data(&mut header, name, body.as_slice())
            .map_err(io)?;
    }
    let gz = builder.into_inner().map_err(io)?;
    gz.finish().map_err(io)
}

/// Builds `out` (e.g. `data/data.tar.gz`) from the idx files in `source`, atomically.
/// With `expect_sha256`, a different result is an error and `out` is left untouched.
pub fn prepare_data(
    source: &Path,
    out: &Path,
    expect_sha256: Option<&str>,
) -> Result<PrepareReport> {
    use sha2::Digest;
    let (train, test) = read_idx_folder(source)?;
    let bytes = tarball_bytes(&train, &test)?;
    let sha256 = format!("{:x}", sha2::Sha256::digest(&bytes));
    if let Some(expected) = expect_sha256 {
        if !expected.eq_ignore_ascii_case(&sha256) {
            return Err(Error::data(
                out,
                "sha256",
                format!("built {sha256}, expected {expected}: the source files differ from the official ones"),
            ));
        }
    }
    write_atomic(out, &bytes)?;
    Ok(PrepareReport {
        out: out.to_path_buf(),
        sha256,
        bytes: bytes.len() as u64,
        train_rows: train.len(),
        test_rows: test.len(),
    })
}

// ---------------------------------------------------------------------------------------------
// Train / validation split
// ---------------------------------------------------------------------------------------------

/// How to split the training set.
#[derive(Clone, Debug, Serialize)]
pub struct SplitConfig {
    /// Fraction held out for validation (default 0.2, the original's 48,000 / 12,000).
    pub validation_fraction: f64,
    /// Shuffle seed (default 13, the original's).
    pub seed: u64,
    /// Keep each class's share equal in both parts.
    pub stratified: bool,
}

impl Default for SplitConfig {
    fn default() -> Self {
        SplitConfig {
            validation_fraction: 0.2,
            seed: 13,
            stratified: false,
        }
    }
}

/// The two parts of a split and the positions they came from.
#[derive(Clone, Debug)]
pub struct TrainValidationSplit {
    pub train: ImageSet,
    pub validation: ImageSet,
    pub train_indices: Vec<usize>,
    pub validation_indices: Vec<usize>,
}

/// Splits `set` into train and validation parts, deterministically for a given seed.
pub fn train_validation_split(
    set: &ImageSet,
    config: &SplitConfig,
) -> Result<TrainValidationSplit> {
    let f = config.validation_fraction;
    if !(f > 0.0 && f < 1.0) {
        return Err(Error::param(
            "validation_fraction",
            format!("{f} is not strictly between 0 and 1"),
        ));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let (mut train_idx, mut val_idx) = (Vec::new(), Vec::new());
    if config.stratified {
        for class in 0..NUM_CLASSES as u8 {
            let mut idx: Vec<usize> = (0..set.len()).filter(|&i| set.labels[i] == class).collect();
            idx.shuffle(&mut rng);
            let n_val = (idx.len() as f64 * f).round() as usize;
            val_idx.extend_from_slice(&idx[..n_val]);
            train_idx.extend_from_slice(&idx[n_val..]);
        }
        train_idx.shuffle(&mut rng);
        val_idx.shuffle(&mut rng);
    } else {
        let mut idx: Vec<usize> = (0..set.len()).collect();
        idx.shuffle(&mut rng);
        let n_val = (set.len() as f64 * f).round() as usize;
        val_idx = idx[..n_val].to_vec();
        train_idx = idx[n_val..].to_vec();
    }
    if train_idx.is_empty() || val_idx.is_empty() {
        return Err(Error::param(
            "validation_fraction",
            format!("{f} of {} images leaves one part empty", set.len()),
        ));
    }
    Ok(TrainValidationSplit {
        train: set.select(&train_idx)?,
        validation: set.select(&val_idx)?,
        train_indices: train_idx,
        validation_indices: val_idx,
    })
}
