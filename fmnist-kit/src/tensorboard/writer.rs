//! [`EventWriter`]: one TensorBoard event file, appended record by record (scalars, PNG images,
//! Markdown text, the restart marker and the HParams plugin's summaries).
//!
//! An event file is a log, not a document: it is appended to and never rewritten, and each
//! record reaches the file before the call returns, so TensorBoard shows a run while it trains.
//! A writer killed in the middle of a record leaves a partial last record, which TensorBoard's
//! reader ignores.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use prost::Message;

use super::proto::*;
use super::record::frame;
use crate::error::{Error, Result};
use crate::util::write_atomic;

/// A hyperparameter's value, for TensorBoard's HParams view.
#[derive(Clone, Debug, PartialEq)]
pub enum HParam {
    Number(f64),
    Text(String),
    Bool(bool),
}

impl HParam {
    fn to_proto(&self) -> ProtoValue {
        ProtoValue {
            kind: Some(match self {
                HParam::Number(x) => ProtoKind::NumberValue(*x),
                HParam::Text(s) => ProtoKind::StringValue(s.clone()),
                HParam::Bool(b) => ProtoKind::BoolValue(*b),
            }),
        }
    }

    /// The HParams plugin's `DataType`: string 1, bool 2, float64 3.
    fn data_type(&self) -> i32 {
        match self {
            HParam::Text(_) => 1,
            HParam::Bool(_) => 2,
            HParam::Number(_) => 3,
        }
    }
}

/// The file name TensorBoard looks for (`tfevents` in it), unique per process and call.
fn event_file_name(seconds: u64) -> String {
    static FILES: AtomicUsize = AtomicUsize::new(0);
    let mut host = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates or truncates.
    let ok = unsafe { libc::gethostname(host.as_mut_ptr().cast(), host.len()) } == 0;
    let host = if ok {
        let end = host.iter().position(|&b| b == 0).unwrap_or(host.len());
        String::from_utf8_lossy(&host[..end]).into_owned()
    } else {
        "localhost".to_string()
    };
    format!(
        "events.out.tfevents.{seconds:010}.{host}.{}.{}",
        std::process::id(),
        FILES.fetch_add(1, Ordering::Relaxed)
    )
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Where a writer's records go: its event file, or memory for a file written whole.
#[derive(Debug)]
enum Output {
    File(File),
    Memory(Vec<u8>),
}

/// One event file in a run's folder; a folder may hold several (a resumed run adds one), which
/// TensorBoard reads in the order of their names.
#[derive(Debug)]
pub struct EventWriter {
    path: PathBuf,
    out: Output,
}

impl EventWriter {
    /// Creates `dir` (the run's folder) and a new event file in it, starting with the
    /// `brain.Event:2` version record.
    pub fn create(dir: &Path) -> Result<EventWriter> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let path = dir.join(event_file_name(now() as u64));
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        EventWriter::start(path, Output::File(file))
    }

    fn start(path: PathBuf, out: Output) -> Result<EventWriter> {
        let mut w = EventWriter { path, out };
        w.write(0, EventWhat::FileVersion("brain.Event:2".into()))?;
        Ok(w)
    }

    /// A whole event file written at once, replacing `dir/<name>` (its name gets the
    /// `events.out.tfevents.` prefix TensorBoard looks for): `write` fills a writer in memory,
    /// which is then written atomically, so a rerun replaces the file instead of adding a second
    /// one, and a reader never sees half of it.
    pub fn replace(
        dir: &Path,
        name: &str,
        write: impl FnOnce(&mut EventWriter) -> Result<()>,
    ) -> Result<PathBuf> {
        let path = dir.join(format!("events.out.tfevents.{name}"));
        let mut w = EventWriter::start(path.clone(), Output::Memory(Vec::new()))?;
        write(&mut w)?;
        if let Output::Memory(bytes) = &w.out {
            write_atomic(&path, bytes)?;
        }
        Ok(path)
    }

    /// The event file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn write(&mut self, step: i64, what: EventWhat) -> Result<()> {
        let event = Event {
            wall_time: now(),
            step,
            what: Some(what),
        };
        let bytes = frame(&event.encode_to_vec());
        match &mut self.out {
            Output::File(file) => file
                .write_all(&bytes)
                .and_then(|()| file.flush())
                .map_err(|e| Error::io(&self.path, e)),
            Output::Memory(buffer) => {
                buffer.extend_from_slice(&bytes);
                Ok(())
            }
        }
    }

    fn summary(&mut self, step: i64, values: Vec<SummaryValue>) -> Result<()> {
        self.write(step, EventWhat::Summary(Summary { value: values }))
    }

    /// Scalars at `step`, in one record; values that are not finite (a validation loss not
    /// computed that epoch) are left out.
    pub fn scalars(&mut self, step: i64, values: &[(&str, f64)]) -> Result<()> {
        let values: Vec<SummaryValue> = values
            .iter()
            .filter(|(_, v)| v.is_finite())
            .map(|(tag, v)| SummaryValue {
                tag: tag.to_string(),
                metadata: None,
                value: Some(ValueKind::SimpleValue(*v as f32)),
            })
            .collect();
        if values.is_empty() {
            return Ok(());
        }
        self.summary(step, values)
    }

    /// A PNG image (`width` × `height`, `channels` 1, 3 or 4) at `step`.
    pub fn image(
        &mut self,
        tag: &str,
        step: i64,
        png: Vec<u8>,
        (width, height, channels): (u32, u32, u32),
    ) -> Result<()> {
        let value = SummaryValue {
            tag: tag.to_string(),
            metadata: None,
            value: Some(ValueKind::Image(Image {
                height: height as i32,
                width: width as i32,
                colorspace: channels as i32,
                encoded_image_string: png,
            })),
        };
        self.summary(step, vec![value])
    }

    /// Markdown text at `step` (TensorBoard's Text tab; tables render as tables).
    pub fn text(&mut self, tag: &str, step: i64, markdown: &str) -> Result<()> {
        let value = SummaryValue {
            tag: tag.to_string(),
            metadata: Some(plugin("text", Vec::new())),
            value: Some(ValueKind::Tensor(TensorProto {
                dtype: DT_STRING,
                tensor_shape: Some(TensorShape {
                    dim: vec![TensorDim { size: 1 }],
                }),
                string_val: vec![markdown.as_bytes().to_vec()],
            })),
        };
        self.summary(step, vec![value])
    }

    /// The restart marker (`SessionLog` START) at `step`: TensorBoard drops what the run's
    /// earlier files logged at `step` or later, so that a run resumed from its checkpoint shows
    /// each step once.
    pub fn restart_at(&mut self, step: i64) -> Result<()> {
        let log = SessionLog {
            status: SESSION_START,
            msg: format!("resumed: the steps from {step} on are logged again"),
        };
        self.write(step, EventWhat::SessionLog(log))
    }

    fn hparams(&mut self, tag: &str, data: HParamsData) -> Result<()> {
        let content = HParamsPluginData {
            version: 0,
            data: Some(data),
        }
        .encode_to_vec();
        let value = SummaryValue {
            tag: tag.to_string(),
            metadata: Some(plugin("hparams", content)),
            value: Some(ValueKind::Tensor(TensorProto {
                dtype: DT_STRING,
                tensor_shape: None,
                string_val: Vec::new(),
            })),
        };
        self.summary(0, vec![value])
    }

    /// Makes this run one row (a session) of the HParams view, with these settings. Its
    /// metrics are the scalars the run logs.
    pub fn hparams_session(&mut self, hparams: &[(String, HParam)]) -> Result<()> {
        let info = SessionStartInfo {
            hparams: hparams
                .iter()
                .map(|(k, v)| (k.clone(), v.to_proto()))
                .collect(),
            group_name: String::new(),
            start_time_secs: now(),
        };
        self.hparams(
            "_hparams_/session_start_info",
            HParamsData::SessionStartInfo(info),
        )
    }

    /// Marks this run's session as finished successfully.
    pub fn hparams_session_end(&mut self) -> Result<()> {
        let info = SessionEndInfo {
            status: 1,
            end_time_secs: now(),
        };
        self.hparams(
            "_hparams_/session_end_info",
            HParamsData::SessionEndInfo(info),
        )
    }

    /// The HParams view's columns, for the folder above the sessions: the settings (named and
    /// typed as in `example`) and the scalar tags shown as metrics.
    pub fn hparams_experiment(
        &mut self,
        name: &str,
        example: &[(String, HParam)],
        metrics: &[&str],
    ) -> Result<()> {
        let experiment = Experiment {
            description: String::new(),
            hparam_infos: example
                .iter()
                .map(|(k, v)| HParamInfo {
                    name: k.clone(),
                    r#type: v.data_type(),
                })
                .collect(),
            metric_infos: metrics
                .iter()
                .map(|tag| MetricInfo {
                    name: Some(MetricName {
                        group: String::new(),
                        tag: tag.to_string(),
                    }),
                    display_name: tag.to_string(),
                })
                .collect(),
            name: name.to_string(),
        };
        self.hparams("_hparams_/experiment", HParamsData::Experiment(experiment))
    }
}

/// Empties a run's log folder `dir` (a run trained again from its start replaces its log);
/// a folder that is not there is fine.
pub fn clear_run(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        std::fs::remove_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    Ok(())
}

fn plugin(name: &str, content: Vec<u8>) -> SummaryMetadata {
    SummaryMetadata {
        plugin_data: Some(PluginData {
            plugin_name: name.to_string(),
            content,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::super::record::read_records;
    use super::*;

    #[test]
    fn an_event_file_starts_with_its_version_and_holds_what_was_written() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = EventWriter::create(dir.path()).unwrap();
        assert!(w
            .path()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .contains("tfevents"));
        w.scalars(3, &[("loss", 0.5), ("skipped", f64::NAN)])
            .unwrap();
        w.restart_at(2).unwrap();
        let bytes = std::fs::read(w.path()).unwrap();
        let events: Vec<Event> = read_records(&bytes)
            .unwrap()
            .iter()
            .map(|r| Event::decode(*r).unwrap())
            .collect();
        assert_eq!(events.len(), 3);
        assert_eq!(
            events[0].what,
            Some(EventWhat::FileVersion("brain.Event:2".into()))
        );
        let Some(EventWhat::Summary(s)) = &events[1].what else {
            panic!("not a summary: {:?}", events[1]);
        };
        assert_eq!(events[1].step, 3);
        assert_eq!(s.value.len(), 1, "the NaN is left out");
        assert_eq!(s.value[0].value, Some(ValueKind::SimpleValue(0.5)));
        assert!(matches!(
            &events[2].what,
            Some(EventWhat::SessionLog(SessionLog {
                status: SESSION_START,
                ..
            }))
        ));
        // Two writers in one folder get two files.
        let other = EventWriter::create(dir.path()).unwrap();
        assert_ne!(other.path(), w.path());
    }
}
