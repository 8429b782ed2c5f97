//! Call detail records: the record type (built by the call layer) and the durable writer.

mod record;
mod writer;

pub use record::{CallTag, CauseSource, CdrRecord};
pub use writer::CdrWriter;
