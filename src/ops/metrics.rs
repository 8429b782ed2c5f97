//! Prometheus metrics. The names live here, in one place, and follow Prometheus conventions
//! (`_total` counters, labels for peer and outcome). Only the shell records them, from the
//! core's typed outputs (CDRs, events); the core itself touches no global. Recording is a
//! counter increment in memory (the `metrics` facade); without an installed exporter it does
//! nothing.

use std::net::SocketAddr;

use metrics::{counter, describe_counter, describe_gauge, gauge};

pub const PRACK_FAILURES: &str = "trunkgate_prack_failures_total";
pub const CALLS: &str = "trunkgate_calls_total";
pub const ACTIVE_CALLS: &str = "trunkgate_active_calls";
pub const RTP_PACKETS: &str = "trunkgate_rtp_packets_total";
pub const RTP_DROPPED: &str = "trunkgate_rtp_dropped_total";
pub const LIMIT_REFUSALS: &str = "trunkgate_limit_refusals_total";
pub const REFUSED: &str = "trunkgate_refused_messages_total";
pub const OVERLOAD_SHARE: &str = "trunkgate_overload_refused_share";
pub const QUEUE_DELAY: &str = "trunkgate_queue_delay_seconds";

/// A counter of RTP packets relayed toward one leg (`"caller"` or `"callee"`); the relay
/// keeps the handle so counting a packet is one atomic add.
pub fn rtp_packets(toward: &'static str) -> metrics::Counter {
    counter!(RTP_PACKETS, "toward" => toward)
}

/// A counter of RTP/RTCP packets the relay dropped: `malformed` (failed the header checks)
/// or `foreign_source` (not from the leg's latched peer).
pub fn rtp_dropped(reason: &'static str) -> metrics::Counter {
    counter!(RTP_DROPPED, "reason" => reason)
}

/// A peer refused (or ignored) our PRACK. `status` is the SIP status or `"timeout"`.
pub fn prack_failure(peer: &str, status: &str) {
    counter!(PRACK_FAILURES, "peer" => peer.to_string(), "status" => status.to_string())
        .increment(1);
}

/// A call was released: counted once for the peer it came from (`inbound`) and once for the
/// peer it went to (`outbound`), with its `call_tag` as the result.
pub fn call_ended(ingress: &str, egress: Option<&str>, result: &str) {
    counter!(CALLS, "peer" => ingress.to_string(), "direction" => "inbound", "result" => result.to_string())
        .increment(1);
    if let Some(e) = egress {
        counter!(CALLS, "peer" => e.to_string(), "direction" => "outbound", "result" => result.to_string())
            .increment(1);
    }
}

/// A message was dropped or answered statelessly before any transaction. `why` comes from
/// a fixed set of reasons in the code, never from the wire.
pub fn refused(why: &'static str) {
    counter!(REFUSED, "reason" => why).increment(1);
}

/// A call or an attempt toward `peer` refused by `[limits]`; `reason` is `cps` or `max_calls`.
pub fn limit_refused(peer: &str, reason: &'static str) {
    counter!(LIMIT_REFUSALS, "peer" => peer.to_string(), "reason" => reason).increment(1);
}

/// Calls in progress.
pub fn active_calls(n: usize) {
    gauge!(ACTIVE_CALLS).set(n as f64);
}

/// The share of new requests overload control is refusing now (0 when not overloaded), and
/// the standing delay of new requests it follows.
pub fn overload(share: f64, standing_delay: std::time::Duration) {
    gauge!(OVERLOAD_SHARE).set(share);
    gauge!(QUEUE_DELAY).set(standing_delay.as_secs_f64());
}

/// Serve `/metrics` on `listen`. Must run inside the tokio runtime.
pub fn install(listen: SocketAddr) -> Result<(), String> {
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .with_http_listener(listen)
        .install()
        .map_err(|e| e.to_string())?;
    describe_counter!(
        PRACK_FAILURES,
        "PRACKs a peer refused (405/501/481) or let time out"
    );
    describe_counter!(CALLS, "Released calls by peer, direction and call_tag");
    describe_gauge!(ACTIVE_CALLS, "Calls in progress");
    describe_gauge!(
        OVERLOAD_SHARE,
        "Share of new requests refused with 503 by overload control (0..1)"
    );
    describe_gauge!(
        QUEUE_DELAY,
        "Shortest wait of new requests (from the kernel's receive time) in the last 100 ms window: the standing queue"
    );
    describe_counter!(
        RTP_DROPPED,
        "RTP/RTCP packets the relay dropped, by reason (malformed, foreign_source)"
    );
    describe_counter!(
        LIMIT_REFUSALS,
        "Calls (or attempts toward a peer) refused by [limits], by peer and reason"
    );
    describe_counter!(
        REFUSED,
        "Messages dropped or answered statelessly before any transaction, by reason"
    );
    describe_counter!(
        RTP_PACKETS,
        "RTP packets relayed for anchored calls, by the leg they went to"
    );
    Ok(())
}
