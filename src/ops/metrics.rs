//! Prometheus metrics. The names live here, in one place, and follow Prometheus conventions
//! (`_total` counters, labels for peer and outcome). Only the shell records them, from the
//! core's typed outputs (CDRs, events); the core itself touches no global. Recording is a
//! counter increment in memory (the `metrics` facade); without an installed exporter it does
//! nothing.

use crate::callback::metrics as cb;
use metrics::{counter, gauge, histogram};

pub const PRACK_FAILURES: &str = "trunkgate_prack_failures_total";
pub const LATE_ANSWERS: &str = "trunkgate_late_answers_total";
pub const CALLS: &str = "trunkgate_calls_total";
pub const ACTIVE_CALLS: &str = "trunkgate_active_calls";
pub const RTP_PACKETS: &str = "trunkgate_rtp_packets_total";
pub const RTP_DROPPED: &str = "trunkgate_rtp_dropped_total";
pub const RELAY_FAILURES: &str = "trunkgate_relay_failures_total";
pub const MEDIA_PAIRS_FREE: &str = "trunkgate_media_pairs_free";
pub const LIMIT_REFUSALS: &str = "trunkgate_limit_refusals_total";
pub const REFUSED: &str = "trunkgate_refused_messages_total";
pub const FAULTS: &str = "trunkgate_faults_total";
/// `/metrics` connections closed unanswered: apart from the SIP messages refused, which
/// dashboards sum.
pub const SCRAPES_REFUSED: &str = "trunkgate_scrapes_refused_total";
pub const OVERLOAD_SHARE: &str = "trunkgate_overload_refused_share";
pub const QUEUE_DELAY: &str = "trunkgate_queue_delay_seconds";
pub const CALLS_OFFERED: &str = "trunkgate_calls_offered_total";
pub const CALLS_ANSWERED: &str = "trunkgate_calls_answered_total";
pub const SETUP: &str = "trunkgate_setup_seconds";
pub const CAUSES: &str = "trunkgate_call_causes_total";
pub const MESSAGES: &str = "trunkgate_sip_messages_total";
pub const PEER_ACTIVE: &str = "trunkgate_peer_active_calls";
pub const TRANSACTIONS: &str = "trunkgate_transactions";
pub const TRANSACTION_BYTES: &str = "trunkgate_transaction_bytes";
pub const DIALOGS: &str = "trunkgate_dialogs";
pub const RTP_STREAMS: &str = "trunkgate_rtp_streams";
pub const RECORDINGS: &str = "trunkgate_recordings_active";
/// Only in a build with the `heap-stats` feature (src/ops/heap.rs).
pub const HEAP_BYTES: &str = "trunkgate_heap_bytes";
pub const RELOADS: &str = "trunkgate_config_reloads_total";
pub const BUILD_INFO: &str = "trunkgate_build_info";
pub const REGISTRATION_UP: &str = "trunkgate_registration_up";
pub const PEER_UP: &str = "trunkgate_peer_up";
pub const RETRANSMISSIONS: &str = "trunkgate_retransmissions_total";
pub const REWRITES: &str = "trunkgate_rewrites_total";
pub const RTP_BYTES: &str = "trunkgate_rtp_bytes_total";
pub const RECORDING_BYTES: &str = "trunkgate_recording_bytes_total";
pub const RECORDING_FAILURES: &str = "trunkgate_recording_failures_total";
pub const RECORDING_LOST: &str = "trunkgate_recording_packets_lost_total";
pub const SEND_DROPPED: &str = "trunkgate_sip_send_dropped_total";
pub const SEND_FAILED: &str = "trunkgate_sip_send_failed_total";
pub const REFUSALS_UNRECORDED: &str = "trunkgate_refusals_unrecorded_total";
pub const TCP_PACED: &str = "trunkgate_tcp_paced_total";

/// Upper bounds of the setup-time histogram buckets, in seconds: from a fast trunk's
/// 180 to a long ring, past the default `ring_timeout_s` (120) and a failover's second
/// ring (before, every answer after a minute fell in `+Inf`, and a quantile read 60 s).
const SETUP_BUCKETS: &[f64] = &[
    0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 90.0, 120.0, 180.0, 300.0,
];

/// Methods counted by name in `trunkgate_sip_messages_total`; anything else is `other`.
const METHODS: &[&str] = &[
    "INVITE",
    "ACK",
    "BYE",
    "CANCEL",
    "OPTIONS",
    "PRACK",
    "UPDATE",
    "INFO",
    "REFER",
    "NOTIFY",
    "SUBSCRIBE",
    "MESSAGE",
    "REGISTER",
    "PUBLISH",
];
/// Response classes.
const CLASSES: &[&str] = &["1xx", "2xx", "3xx", "4xx", "5xx", "6xx"];

/// Counters of SIP messages received and sent, by method (requests) or status class
/// (responses). The handles are made once: counting a message is an index and an atomic add.
pub struct SipCounters {
    received: Vec<metrics::Counter>,
    sent: Vec<metrics::Counter>,
}

impl Default for SipCounters {
    fn default() -> Self {
        let make = |direction: &'static str| -> Vec<metrics::Counter> {
            METHODS
                .iter()
                .chain(std::iter::once(&"other"))
                .map(|m| counter!(MESSAGES, "direction" => direction, "method" => *m, "class" => "request"))
                .chain(
                    CLASSES
                        .iter()
                        .map(|c| counter!(MESSAGES, "direction" => direction, "method" => "response", "class" => *c)),
                )
                .collect()
        };
        SipCounters {
            received: make("in"),
            sent: make("out"),
        }
    }
}

impl SipCounters {
    /// The slot of a request method token or a response status (first digit).
    fn slot(first_line: &[u8]) -> usize {
        if let Some(rest) = first_line.strip_prefix(b"SIP/2.0 ") {
            let class = rest.first().map_or(0, |d| d.wrapping_sub(b'1') as usize);
            return METHODS.len() + 1 + class.min(CLASSES.len() - 1);
        }
        let method = first_line.split(|b| *b == b' ').next().unwrap_or(&[]);
        METHODS
            .iter()
            .position(|m| m.as_bytes() == method)
            .unwrap_or(METHODS.len())
    }

    /// A message received.
    pub fn received(&self, msg: &crate::sip::Message) {
        let slot = match msg {
            crate::sip::Message::Request(r) => Self::slot(r.method().as_str().as_bytes()),
            crate::sip::Message::Response(r) => {
                let class = usize::from((r.status() / 100).clamp(1, 6)) - 1;
                METHODS.len() + 1 + class
            }
        };
        self.received[slot].increment(1);
    }

    /// A message sent, as wire bytes.
    pub fn sent(&self, wire: &[u8]) {
        let end = wire.iter().position(|b| *b == b'\r').unwrap_or(wire.len());
        self.sent[Self::slot(&wire[..end])].increment(1);
    }
}

/// A call reached a stage of its setup (see `CoreEvent::Progress`).
pub fn progress(
    peer: &str,
    direction: &'static str,
    stage: &'static str,
    after: std::time::Duration,
) {
    match stage {
        "offered" => counter!(CALLS_OFFERED, "peer" => peer.to_string(), "direction" => direction)
            .increment(1),
        "answered" => {
            counter!(CALLS_ANSWERED, "peer" => peer.to_string(), "direction" => direction)
                .increment(1);
            if direction == "outbound" {
                histogram!(SETUP, "peer" => peer.to_string(), "stage" => "answer")
                    .record(after.as_secs_f64());
            }
        }
        _ => histogram!(SETUP, "peer" => peer.to_string(), "stage" => "ringing")
            .record(after.as_secs_f64()),
    }
}

/// The Q.850 cause a call ended with, per peer (bounded: 0–127, anything else `other`);
/// counted by [`call_ended`].
fn cause(peer: &str, cause: u16) {
    let label = if cause <= 127 {
        cause.to_string()
    } else {
        "other".to_string()
    };
    counter!(CAUSES, "peer" => peer.to_string(), "cause" => label).increment(1);
}

/// Levels read once a second.
pub struct Levels<'a> {
    pub peers: Vec<(&'a str, u32)>,
    pub client_txns: usize,
    pub server_txns: usize,
    pub server_txn_bytes: usize,
    pub dialogs: usize,
    pub rtp_streams: usize,
    pub recordings: usize,
}

/// How long a gauge nobody sets is kept. Every gauge is set each second while it means
/// something; one that stops (a peer a reload removed: its `registration_up` 0, its active
/// calls) leaves the scrape after this, not at the next restart.
const GAUGE_IDLE: std::time::Duration = std::time::Duration::from_secs(120);

/// The exporter as the gateway runs it, gauges left alone for `gauge_idle` removed.
fn builder(
    gauge_idle: std::time::Duration,
) -> Result<metrics_exporter_prometheus::PrometheusBuilder, String> {
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Full(SETUP.into()),
            SETUP_BUCKETS,
        )
        .map(|b| b.idle_timeout(metrics_util::MetricKindMask::GAUGE, Some(gauge_idle)))
        .map_err(|e| e.to_string())
}

/// `trunkgate_build_info`: set with the other levels, so that it is never idle.
fn build_info() {
    gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
}

pub fn levels(l: &Levels<'_>) {
    build_info();
    for (peer, n) in &l.peers {
        gauge!(PEER_ACTIVE, "peer" => peer.to_string()).set(f64::from(*n));
    }
    gauge!(TRANSACTIONS, "kind" => "client").set(l.client_txns as f64);
    gauge!(TRANSACTIONS, "kind" => "server").set(l.server_txns as f64);
    gauge!(TRANSACTION_BYTES, "kind" => "server").set(l.server_txn_bytes as f64);
    gauge!(DIALOGS).set(l.dialogs as f64);
    gauge!(RTP_STREAMS).set(l.rtp_streams as f64);
    gauge!(RECORDINGS).set(l.recordings as f64);
    if let Some(live) = super::heap::live_bytes() {
        gauge!(HEAP_BYTES).set(live as f64);
    }
}

/// A configuration reload: `applied`, `invalid`, `restart_required` or `failed`.
pub fn reload(result: &'static str) {
    counter!(RELOADS, "result" => result).increment(1);
}

/// A counter of RTP packets relayed toward one leg (`"caller"` or `"callee"`); the relay
/// keeps the handle so counting a packet is one atomic add.
/// RTP bytes (UDP payloads as received) relayed toward `caller` or `callee`.
pub fn rtp_bytes(toward: &'static str) -> metrics::Counter {
    counter!(RTP_BYTES, "toward" => toward)
}

/// Recordings the disk refused, at `open` or mid-call (`write`).
pub fn recording_failures(stage: &'static str) -> metrics::Counter {
    counter!(RECORDING_FAILURES, "stage" => stage)
}

/// Packets a recording could not place: its buffer full (`overflow`: the WAV writer fell
/// behind) or their place written already (`late`).
pub fn recording_lost(reason: &'static str) -> metrics::Counter {
    counter!(RECORDING_LOST, "reason" => reason)
}

/// A SIP datagram dropped because its socket's buffer was full and too many sends (or too
/// many bytes of them) already waited for room.
pub fn udp_send_dropped() -> metrics::Counter {
    counter!(SEND_DROPPED, "transport" => "udp")
}

/// A SIP datagram the kernel refused to send (a firewall rule, no route, too large).
pub fn udp_send_failed() -> metrics::Counter {
    counter!(SEND_FAILED, "transport" => "udp")
}

/// A peer's TCP connection not read for a moment: it sent over `[protect] source_rate`.
pub fn tcp_paced() {
    counter!(TCP_PACED).increment(1);
}

/// An INVITE refused before it became a call, past the peer's `[cdr] refused_rate`: it got
/// its response but no CDR.
pub fn refusal_unrecorded(peer: &str) {
    counter!(REFUSALS_UNRECORDED, "peer" => peer.to_string()).increment(1);
}

/// Audio bytes written into recordings (the WAV data, headers aside).
pub fn recording_bytes() -> metrics::Counter {
    counter!(RECORDING_BYTES)
}

pub fn rtp_packets(toward: &'static str) -> metrics::Counter {
    counter!(RTP_PACKETS, "toward" => toward)
}

/// A counter of RTP/RTCP packets the relay dropped: `malformed` (failed the header checks),
/// `foreign_source` (not from the leg's latched peer), `inactive` (on a stream that is off,
/// or whose call ended), `outside_networks` (from outside its
/// peer's `[media] networks`), `over_rate` or `oversize` (too long for a repacketiser to cut).
pub fn rtp_dropped(reason: &'static str) -> metrics::Counter {
    counter!(RTP_DROPPED, "reason" => reason)
}

/// A counter of the relay's own failures: `read` (a relay socket's read failed, other than
/// finding nothing), `stream` (a stream stopped on a packet: its call ends), `thread` (a
/// relay thread stopped: its calls end, and a new thread takes its place).
pub fn relay_failures(kind: &'static str) -> metrics::Counter {
    counter!(RELAY_FAILURES, "kind" => kind)
}

/// A peer refused (or ignored) our PRACK. `status` is the SIP status or `"timeout"`.
pub fn prack_failure(peer: &str, status: &str) {
    counter!(PRACK_FAILURES, "peer" => peer.to_string(), "status" => prack_status(status))
        .increment(1);
}

/// A PRACK failure's `status` label, from a fixed set (a peer chooses the status): the
/// answers that say something about its 100rel, else the class.
fn prack_status(status: &str) -> &'static str {
    const KNOWN: [&str; 13] = [
        "timeout", "400", "403", "404", "405", "408", "420", "481", "488", "491", "500", "501",
        "503",
    ];
    if let Some(k) = KNOWN.iter().find(|k| **k == status) {
        return k;
    }
    match status.as_bytes() {
        [b'4', _, _] => "4xx",
        [b'5', _, _] => "5xx",
        [b'6', _, _] => "6xx",
        _ => "other",
    }
}

/// A 2xx no call wanted any more (a fork's, a failed-over callee's, one crossing our
/// CANCEL) that the gateway ACKed and hung up, from `peer`.
pub fn late_answer(peer: &str) {
    counter!(LATE_ANSWERS, "peer" => peer.to_string()).increment(1);
}

/// A call ended (or an INVITE was refused before it became one): counted, with its
/// `call_tag` as the result and its Q.850 cause, once for the peer it came from
/// (`inbound`) and once for the peer it went to (`outbound`). `ingress` is, for a call-back,
/// the peer its user1 was called through (`callback`: then both legs are outbound).
pub fn call_ended(ingress: &str, egress: Option<&str>, result: &str, callback: bool, q850: u16) {
    let direction = if callback { "outbound" } else { "inbound" };
    counter!(CALLS, "peer" => ingress.to_string(), "direction" => direction, "result" => result.to_string())
        .increment(1);
    cause(ingress, q850);
    if let Some(e) = egress {
        counter!(CALLS, "peer" => e.to_string(), "direction" => "outbound", "result" => result.to_string())
            .increment(1);
        cause(e, q850);
    }
}

/// A message was dropped or answered statelessly before any transaction. `why` comes from
/// a fixed set of reasons in the code, never from the wire.
pub fn refused(why: &'static str) {
    counter!(REFUSED, "reason" => why).increment(1);
}

/// A panic caught in the core (a defect): `call` (that call was released) or `core` (the
/// event that set it off was dropped).
pub fn fault(place: &'static str) {
    counter!(FAULTS, "place" => place).increment(1);
}

/// A `/metrics` connection closed unanswered: `source` (not in `[metrics] allow`), `busy`
/// (past `[metrics] max_connections`), `source_busy` (past its source's share) or
/// `panicked` (a defect deciding on it).
pub fn scrape_refused(why: &'static str) {
    counter!(SCRAPES_REFUSED, "reason" => why).increment(1);
}

/// A call or an attempt toward `peer` refused by `[limits]`; `reason` is `cps` or `max_calls`.
pub fn limit_refused(peer: &str, reason: &'static str) {
    counter!(LIMIT_REFUSALS, "peer" => peer.to_string(), "reason" => reason).increment(1);
}

/// Retransmissions since start: `sent` by us, peers' `absorbed` without reaching a call.
pub fn retransmissions(r: crate::txn::Retransmissions) {
    counter!(RETRANSMISSIONS, "direction" => "sent").absolute(r.sent);
    counter!(RETRANSMISSIONS, "direction" => "absorbed").absolute(r.absorbed);
}

/// Rewrites applied since start, by kind (`sdp_anchor`, `ptime`, `request_uri`, `100rel`).
pub fn rewrites(counts: &[(&'static str, u64)]) {
    for (kind, n) in counts {
        counter!(REWRITES, "kind" => *kind).absolute(*n);
    }
}

/// Whether `peer`'s registrar holds our binding (1) or not (0).
pub fn registration_up(peer: &str, up: bool) {
    gauge!(REGISTRATION_UP, "peer" => peer.to_string()).set(if up { 1.0 } else { 0.0 });
}

/// Whether pinged `peer` takes calls (1) or answers none of its pings (0).
pub fn peer_up(peer: &str, up: bool) {
    gauge!(PEER_UP, "peer" => peer.to_string()).set(if up { 1.0 } else { 0.0 });
}

/// Calls in progress.
pub fn active_calls(n: usize) {
    gauge!(ACTIVE_CALLS).set(n as f64);
}

/// RTP port pairs of `[media] ports` not in use (ready or resting).
pub fn media_pairs_free(n: usize) {
    gauge!(MEDIA_PAIRS_FREE).set(n as f64);
}

/// The share of new requests overload control is refusing now (0 when not overloaded), and
/// the standing delay of new requests it follows.
pub fn overload(share: f64, standing_delay: std::time::Duration) {
    gauge!(OVERLOAD_SHARE).set(share);
    gauge!(QUEUE_DELAY).set(standing_delay.as_secs_f64());
}

mod install;
pub use install::install;

#[cfg(test)]
mod tests;
