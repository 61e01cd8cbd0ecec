//! What the subcommands share: the global options as values, the profile and data file a
//! command uses, and JSON output.

use std::path::PathBuf;

use anyhow::Result;

use fmnist_kit::data;
use fmnist_kit::train::Precision;
use fmnist_kit::{Profile, ProfileName};

/// What every subcommand computes with: the options given before or after it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Globals {
    pub device: tch::Device,
    /// `--precision` when given (training commands default to their profile's, the others
    /// to fp32).
    pub precision: Option<Precision>,
    /// Write TensorBoard logs (`--no-tensorboard` turns them off).
    pub tensorboard: bool,
}

/// The profile named on the command line, else `$FMNIST_PROFILE`'s, else quick.
pub(crate) fn profile_arg(p: Option<ProfileName>) -> Result<Profile> {
    Ok(match p {
        Some(p) => Profile::named(p),
        None => Profile::from_env()?,
    })
}

/// The data file given, else the default one (`$FMNIST_DATA`, else `data/data.tar.gz` here or above).
pub(crate) fn data_path(data: Option<PathBuf>) -> PathBuf {
    data.unwrap_or_else(data::default_data_path)
}

/// Prints `value` as pretty JSON on standard output.
pub(crate) fn print_json(value: &serde_json::Value) -> Result<()> {
    use std::io::Write;
    // writeln!, unlike println!, reports a closed pipe as an error instead of panicking.
    writeln!(
        std::io::stdout().lock(),
        "{}",
        serde_json::to_string_pretty(value)?
    )?;
    Ok(())
}

/// `met` or `MISSED`, for a target a benchmark checks.
pub(crate) fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "MISSED"
    }
}
