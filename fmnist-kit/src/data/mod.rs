//! Fashion-MNIST: reading, caching, splitting and building `data.tar.gz`, in rooms: the images
//! and the dataset's constants (`image_set.rs`), the idx files (`idx.rs`), the tarball read and
//! written (`tarball.rs`), the parsed-data cache (`cache.rs`), loading (`load.rs`) and the split
//! (`split.rs`).
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

mod cache;
mod idx;
mod image_set;
mod load;
mod split;
mod tarball;

pub use idx::{read_idx_folder, read_idx_images, read_idx_labels};
pub use image_set::{
    class_name, ImageSet, CLASS_NAMES, DEBIAN_SOURCE, IDX_FILES, IMAGE_SIDE, NUM_CLASSES, PIXELS,
    TEST_MEMBER, TEST_ROWS, TRAIN_MEMBER, TRAIN_ROWS,
};
pub use load::{
    default_cache_dir, default_data_path, load, load_with, CachePolicy, FashionMnist, LoadInfo,
};
pub use split::{train_validation_split, SplitConfig, TrainValidationSplit};
pub use tarball::{prepare_data, tarball_bytes, PrepareReport};
