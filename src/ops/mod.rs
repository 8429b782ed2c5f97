//! Operations: metrics names, their exporter and the `/metrics` endpoint, and the
//! `trunkgate reload` handshake with the running process.

pub mod control;
pub mod heap;
pub mod metrics;
pub mod panics;
pub mod scrape;
