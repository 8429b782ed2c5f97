//! Operations: metrics names and their exporter, and the `trunkgate reload` handshake with
//! the running process.

pub mod control;
pub mod heap;
pub mod metrics;
