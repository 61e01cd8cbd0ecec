//! TensorBoard's event files, written without TensorFlow: the TFRecord framing
//! (`record.rs`), the protobuf messages derived by hand (`proto.rs`), the writer
//! ([`EventWriter`]: scalars, PNG images, text, the restart marker, HParams sessions), the
//! PNGs it logs (`image.rs`), and the scalars read back as TensorBoard shows them
//! (`reader.rs`, [`read_scalars`]). The training loop's sink that uses it is
//! `train::TensorBoardSink`; what it writes, and its limits, are in docs/tensorboard.md.

mod image;
mod proto;
mod reader;
mod record;
mod writer;

pub use image::{gray_grid_png, heat_map_png};
pub use reader::{read_scalars, ScalarPoint};
pub use record::{frame, masked_crc32c, read_records};
pub use writer::{clear_run, EventWriter, HParam};
