//! `data.tar.gz`, both ways. Reading: its CSV members streamed gzip → tar → rows, decompressed
//! on one thread while the caller parses, every row checked with its member, line and field named
//! on error. Writing: built from the official idx files, byte for byte the same on every run.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use serde::Serialize;

use super::idx::{gzip_error, read_idx_folder};
use super::image_set::{
    ImageSet, KAGGLE_TEST_MEMBER, KAGGLE_TRAIN_MEMBER, NUM_CLASSES, PIXELS, TEST_MEMBER, TEST_ROWS,
    TRAIN_MEMBER, TRAIN_ROWS,
};
use crate::error::{Error, Result};
use crate::util::write_atomic;

/// Which split a member holds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Split2 {
    Train,
    Test,
}

pub(super) enum Chunk {
    Begin(Split2, String),
    Bytes(Vec<u8>),
    End,
}

pub(super) const CHUNK: usize = 4 << 20;

/// Records whether an error came from the gzip layer, to tell gzip errors from tar errors.
pub(super) struct GzProbe<R> {
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

pub(super) fn member_split(name: &str) -> Option<Split2> {
    let base = name.rsplit('/').next().unwrap_or(name);
    match base {
        TRAIN_MEMBER | KAGGLE_TRAIN_MEMBER => Some(Split2::Train),
        TEST_MEMBER | KAGGLE_TEST_MEMBER => Some(Split2::Test),
        _ => None,
    }
}

pub(super) fn is_unsafe_name(name: &str) -> bool {
    name.starts_with('/')
        || name.starts_with('\\')
        || name.split(['/', '\\']).any(|c| c == "..")
        || name.contains(':')
}

/// Reads the archive in a helper thread, sending member bytes in chunks that end at a line break.
pub(super) fn produce(
    path: &Path,
    bytes: &[u8],
    tx: mpsc::SyncSender<Chunk>,
) -> Result<Vec<String>> {
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

pub(super) fn parse_tarball(path: &Path, bytes: &[u8]) -> Result<(ImageSet, ImageSet)> {
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
pub(super) struct CsvParser {
    set: ImageSet,
    /// 1-based line number of the next line.
    line: usize,
    header_seen: bool,
}

type ParseError = (String, String);

pub(super) fn field_name(field: usize) -> String {
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
