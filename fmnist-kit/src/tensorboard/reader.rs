//! Reading a run folder's scalars back, as TensorBoard shows them: the event files in the
//! order of their names, and a restart marker at step S dropping what came before it at step S
//! or later.

use std::path::Path;

use prost::Message;

use super::proto::{Event, EventWhat, ValueKind, SESSION_START};
use super::record::read_records;
use crate::error::{Error, Result};

/// One scalar of a run: its tag, step and value.
#[derive(Clone, Debug, PartialEq)]
pub struct ScalarPoint {
    pub tag: String,
    pub step: i64,
    pub value: f32,
}

/// The scalars of the event files in `dir` (not its subfolders), in the order they were
/// written, without those a later restart marker drops.
pub fn read_scalars(dir: &Path) -> Result<Vec<ScalarPoint>> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.to_string_lossy().contains("tfevents"))
        .collect();
    files.sort();
    let mut points: Vec<ScalarPoint> = Vec::new();
    for file in files {
        let bytes = std::fs::read(&file).map_err(|e| Error::io(&file, e))?;
        // A writer killed mid-record leaves a partial last record: read up to it.
        let records = match read_records(&bytes) {
            Ok(r) => r,
            Err((at, _)) => read_records(&bytes[..at]).unwrap_or_default(),
        };
        for (i, r) in records.into_iter().enumerate() {
            let event = Event::decode(r)
                .map_err(|e| Error::data(&file, format!("record {}", i + 1), e.to_string()))?;
            match event.what {
                Some(EventWhat::SessionLog(log)) if log.status == SESSION_START => {
                    points.retain(|p| p.step < event.step);
                }
                Some(EventWhat::Summary(s)) => {
                    for v in s.value {
                        if let Some(ValueKind::SimpleValue(x)) = v.value {
                            points.push(ScalarPoint {
                                tag: v.tag,
                                step: event.step,
                                value: x,
                            });
                        }
                    }
                }
                _ => {}
            }
        }
    }
    Ok(points)
}
