//! Call detail records: the record type (built by the call layer) and the durable writer.

pub mod fs;
mod record;
mod sink;
mod spill;
mod syncer;
mod writer;

pub use record::{CallTag, CauseSource, CdrRecord};
pub use writer::{
    CDR_DROPPED, CDR_QUEUE_DEPTH, CDR_UNLOGGED, CDR_WRITE_ERRORS, CdrGate, CdrHealth, CdrOptions,
    CdrStats, CdrWriter, describe_metrics,
};

#[cfg(test)]
pub(crate) mod tests;
