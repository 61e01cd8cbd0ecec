//! Building `data.tar.gz` from the official idx files, byte for byte the same on every run.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{read_idx_folder, ImageSet, PIXELS, TEST_MEMBER, TRAIN_MEMBER};
use crate::error::{Error, Result};
use crate::util::write_atomic;

/// What `prepare_data` built.
#[derive(Clone, Debug, Serialize)]
pub struct PrepareReport {
    pub out: PathBuf,
    pub sha256: String,
    pub bytes: u64,
    pub train_rows: usize,
    pub test_rows: usize,
}

pub(super) fn csv_bytes(set: &ImageSet) -> Vec<u8> {
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
    let (train, test) = read_idx_folder(source)?;
    let bytes = tarball_bytes(&train, &test)?;
    let sha256 = crate::util::sha256_hex(&bytes);
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
