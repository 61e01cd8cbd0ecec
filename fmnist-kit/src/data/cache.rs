//! The parsed-data cache: images and labels of both splits, checked by a hash of the payload.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use super::image_set::{ImageSet, PIXELS};
use crate::error::Result;
use crate::util::write_atomic;

pub(super) const CACHE_MAGIC: &[u8; 8] = b"FMNIST01";

pub(super) fn read_cache(path: &Path) -> Option<(ImageSet, ImageSet)> {
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

pub(super) fn write_cache(path: &Path, train: &ImageSet, test: &ImageSet) -> Result<()> {
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
