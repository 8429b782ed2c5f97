//! Operations: metrics names, their exporter and the `/metrics` endpoint, the
//! `trunkgate reload` handshake with the running process, and what the shipped SIP front
//! is told of the profiles (`trunkgate front-sources`).

pub mod control;
pub mod front;
pub mod heap;
pub mod metrics;
pub mod panics;
pub mod scrape;
