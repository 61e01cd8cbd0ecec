//! The kit's single error type. Every fallible library function returns [`Result`].
//!
//! Messages name the file and, for data, the member, line and field at fault, so a user can
//! open the file and see the problem.

use std::path::PathBuf;

/// Convenience alias used throughout the kit.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the kit.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O operation on `path` failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A file or folder the caller named does not exist.
    #[error("{path}: no such {what}")]
    NotFound { path: PathBuf, what: &'static str },

    /// Weights whose network nothing beside them names (no `network.json`, `result.json` or
    /// `state.json`): the caller has to say which network they belong to.
    #[error("{path}: no network.json, result.json or state.json beside the weights names their network ({names})")]
    UnnamedNetwork { path: PathBuf, names: String },

    /// A call made before what it needs has happened (e.g. a result asked for before `fit`).
    #[error("{what}: {message}")]
    NotReady { what: &'static str, message: String },

    /// The file is not a usable gzip stream (not gzip at all, or cut short).
    #[error("{path}: not a valid gzip stream ({detail})")]
    Gzip { path: PathBuf, detail: String },

    /// The decompressed stream is not a readable tar archive.
    #[error("{path}: not a valid tar archive ({detail})")]
    Tar { path: PathBuf, detail: String },

    /// A tar member's name is unsafe (absolute, or containing `..`). Nothing from the archive
    /// is ever written to disk, but such an archive is rejected outright.
    #[error("{path}: member {member:?} has an unsafe name (absolute or containing '..')")]
    UnsafeMember { path: PathBuf, member: String },

    /// A required member (or idx file) is absent.
    #[error("{path}: no member named {expected} (found: {found})")]
    MissingMember {
        path: PathBuf,
        expected: String,
        found: String,
    },

    /// Malformed content inside a data file: `location` names member, line and field.
    #[error("{path}: {location}: {message}")]
    Data {
        path: PathBuf,
        location: String,
        message: String,
    },

    /// A parameter given to a kit function is out of range or inconsistent.
    #[error("invalid parameter `{name}`: {message}")]
    InvalidParameter { name: &'static str, message: String },

    /// An environment variable holds a value the kit does not understand.
    #[error("environment variable {name}={value:?}: {message}")]
    Env {
        name: &'static str,
        value: String,
        message: String,
    },

    /// Training diverged: the loss became NaN or infinite. A grid search records such a fit as
    /// diverged instead of stopping.
    #[error("training diverged: {0}")]
    Diverged(String),

    /// An interrupt (SIGINT) stopped a call whose partial work is not kept (feature extraction,
    /// a refit, stage 1 of a transfer run). What earlier calls made is untouched: running the
    /// call again starts it over.
    #[error("{what} interrupted: {message}")]
    Interrupted { what: &'static str, message: String },

    /// A libtorch operation failed (shape mismatch, device error, ...).
    #[error("torch: {0}")]
    Torch(#[from] tch::TchError),

    /// Drawing a figure failed.
    #[error("plot: {0}")]
    Plot(String),

    /// Reading or writing JSON failed.
    #[error("{path}: JSON: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

impl Error {
    /// Wraps an [`std::io::Error`] with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// A data error at `location` (e.g. `fashion_mnist_train.csv line 7, field 3 (pixel2)`).
    pub fn data(
        path: impl Into<PathBuf>,
        location: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Error::Data {
            path: path.into(),
            location: location.into(),
            message: message.into(),
        }
    }

    /// An invalid parameter.
    pub fn param(name: &'static str, message: impl Into<String>) -> Self {
        Error::InvalidParameter {
            name,
            message: message.into(),
        }
    }
}
