//! Small utilities shared by every room: atomic writes (a temporary name, then a rename, so a
//! reader never sees half a file and an interrupted write loses nothing), JSON files, hashes.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{Error, Result};

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

static PROGRESS_TO_STDERR: AtomicBool = AtomicBool::new(false);

/// Sends the progress lines of verbose training, transfer learning and grid search to standard
/// error (`true`) or standard output (`false`, the default: what a notebook cell shows). The CLI
/// turns it on with `--json`, so that standard output holds the JSON alone while a long run
/// still says how far it is.
pub fn progress_to_stderr(on: bool) {
    PROGRESS_TO_STDERR.store(on, Ordering::Relaxed);
}

/// Prints one progress line where [`progress_to_stderr`] says.
pub fn progress_line(line: &str) {
    if PROGRESS_TO_STDERR.load(Ordering::Relaxed) {
        eprintln!("{line}");
    } else {
        println!("{line}");
    }
}

/// The kit's cache folder: `$FMNIST_CACHE_DIR`, else `$XDG_CACHE_HOME/fmnist-kit`, else
/// `~/.cache/fmnist-kit` (parsed data, converted weights, extracted features).
pub fn cache_root() -> std::path::PathBuf {
    use std::path::PathBuf;
    if let Some(d) = std::env::var_os("FMNIST_CACHE_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("fmnist-kit")
}

/// The CPU features that decide how fast training runs (x86 flags of `/proc/cpuinfo`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct CpuFeatures {
    pub avx2: bool,
    pub avx512f: bool,
    /// Native bf16 dot products (AVX-512-bf16).
    pub avx512_bf16: bool,
    /// Intel AMX tiles with bf16.
    pub amx_bf16: bool,
}

/// This machine's [`CpuFeatures`] (all false where `/proc/cpuinfo` is not there).
pub fn cpu_features() -> CpuFeatures {
    let text = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let flags: std::collections::HashSet<&str> = text
        .lines()
        .find(|l| l.starts_with("flags"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, f)| f.split_whitespace().collect())
        .unwrap_or_default();
    CpuFeatures {
        avx2: flags.contains("avx2"),
        avx512f: flags.contains("avx512f"),
        avx512_bf16: flags.contains("avx512_bf16"),
        amx_bf16: flags.contains("amx_bf16"),
    }
}

/// The CPU's model name (`/proc/cpuinfo`), or `unknown`.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// Reads a JSON file into `T`; a missing file is an I/O error and a malformed one a JSON error,
/// both naming the file.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Json {
        path: path.into(),
        source: e,
    })
}

/// Lower-case hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("{:x}", sha2::Sha256::digest(bytes))
}

/// Lower-case hex sha256 of a file's content, read in blocks.
pub fn sha256_file(path: &Path) -> Result<String> {
    use sha2::Digest;
    use std::io::Read;
    let mut f = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(format!("{:x}", hasher.finalize()))
}

/// A short key (16 hex digits of [`content_hash`]) of `what`'s JSON, for files that must belong to
/// one run; `for_file` names the file in the error if `what` cannot be written as JSON.
pub fn json_key(what: &impl serde::Serialize, for_file: &Path) -> Result<String> {
    let text = serde_json::to_vec(what).map_err(|e| Error::Json {
        path: for_file.into(),
        source: e,
    })?;
    Ok(content_hash([text.as_slice()])[..16].to_string())
}

/// Hex xxh3-128 of several byte strings, each prefixed by its length (a content key for caches).
pub fn content_hash<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> String {
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    for bytes in parts {
        hasher.update(&(bytes.len() as u64).to_le_bytes());
        hasher.update(bytes);
    }
    format!("{:032x}", hasher.digest128())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_writes_leave_no_temporary_and_json_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/x.json");
        write_json_atomic(&p, &vec![1, 2, 3]).unwrap();
        assert_eq!(read_json::<Vec<i32>>(&p).unwrap(), vec![1, 2, 3]);
        let names: Vec<_> = std::fs::read_dir(p.parent().unwrap()).unwrap().collect();
        assert_eq!(names.len(), 1, "no temporary file left behind");
        std::fs::write(&p, b"[1, 2").unwrap();
        let err = read_json::<Vec<i32>>(&p).unwrap_err().to_string();
        assert!(err.contains("x.json"), "{err}");
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        std::fs::write(&p, b"abc").unwrap();
        assert_eq!(sha256_file(&p).unwrap(), sha256_hex(b"abc"));
        assert_ne!(
            content_hash([&b"ab"[..], b"c"]),
            content_hash([&b"a"[..], b"bc"])
        );
    }
}
