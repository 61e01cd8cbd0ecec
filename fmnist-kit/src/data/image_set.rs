//! The images themselves: the constants of Fashion-MNIST (sizes, class names, file names) and
//! an owned set of images with their labels ([`ImageSet`]).

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
