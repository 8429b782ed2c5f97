//! The call-back service: an application server (AS) sends one UDP datagram naming two
//! numbers; the gateway calls the first, then the second, and connects them (RFC 3725
//! third-party call control, done by the call layer).
//!
//! This module is sans-IO like the rest of the core: [`protocol`] reads and writes the
//! datagrams, [`service::Service`] holds the call-backs, the allow-list, the rate and
//! concurrency limits and the RESPONSE retransmissions, driven by `now` from the shell. The
//! socket lives in `engine/callback.rs`; the calls themselves in `call`.

pub mod protocol;
pub mod repeats;
pub mod service;
pub mod signature;

pub use protocol::{CallbackId, Number, Outcome, State};
pub use service::{Command, End, Originate, Output, Service, Stats};

/// Metric names (Prometheus conventions, like `ops::metrics`).
pub mod metrics {
    /// Datagrams answered, by `verb` (`request`, `cancel`, `status`, `unknown`) and `result`
    /// (`ok` or the error `reason`).
    pub const REQUESTS: &str = "trunkgate_callback_requests_total";
    /// Datagrams dropped without an answer, by `reason`.
    pub const DROPPED: &str = "trunkgate_callback_dropped_total";
    /// Call-backs ended, by `result` (`connected`, `user1_failed`, `user2_failed`, `cancelled`).
    pub const RESULTS: &str = "trunkgate_callback_results_total";
    /// Final RESPONSEs, by `outcome`: `acked` by the AS, `given_up` after 7 tries,
    /// `evicted` (forgotten to keep the table bounded), `not_allowed` (a reload took the
    /// AS off `allow`: sent once, not resent), or `sent_once` (anyone may send and no
    /// secret is set: a RESPONSE goes once, never resent toward an address anyone names).
    pub const RESPONSES: &str = "trunkgate_callback_responses_total";
    /// Call-backs in progress (a gauge, set every second by the shell).
    pub const ACTIVE: &str = "trunkgate_callback_active";
}
