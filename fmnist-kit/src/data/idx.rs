//! The official idx files (big-endian headers, then raw bytes), gzip-compressed.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::image_set::{ImageSet, IDX_FILES, IMAGE_SIDE, NUM_CLASSES, PIXELS};
use crate::error::{Error, Result};

pub(super) fn gunzip(path: &Path, bytes: &[u8]) -> Result<Vec<u8>> {
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

pub(super) fn be_u32(path: &Path, raw: &[u8], at: usize, what: &str) -> Result<u32> {
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

pub(super) fn idx_pair(images: (&PathBuf, &[u8]), labels: (&PathBuf, &[u8])) -> Result<ImageSet> {
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

/// The bytes of the four idx files of `dir`, in [`IDX_FILES`]' order; a missing one is an error
/// listing what the folder holds.
pub(super) fn read_idx_files(dir: &Path) -> Result<Vec<(PathBuf, Vec<u8>)>> {
    IDX_FILES
        .iter()
        .map(|name| {
            let p = dir.join(name);
            if !p.is_file() {
                return Err(Error::MissingMember {
                    path: dir.to_path_buf(),
                    expected: name.to_string(),
                    found: list_dir(dir),
                });
            }
            let bytes = std::fs::read(&p).map_err(|e| Error::io(&p, e))?;
            Ok((p, bytes))
        })
        .collect()
}

/// Reads the four idx files of `dir`: the training and the test set.
pub fn read_idx_folder(dir: &Path) -> Result<(ImageSet, ImageSet)> {
    let files = read_idx_files(dir)?;
    let get = |i: usize| (&files[i].0, files[i].1.as_slice());
    Ok((idx_pair(get(0), get(1))?, idx_pair(get(2), get(3))?))
}

/// A gzip stream that does not decompress, as an error naming the file (and saying when it
/// was cut short).
pub(super) fn gzip_error(path: &Path, detail: String) -> Error {
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
