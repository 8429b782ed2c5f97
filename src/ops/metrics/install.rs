//! Installing the Prometheus exporter, and every family's description (its `# HELP`).

use metrics::{describe_counter, describe_gauge, describe_histogram};

use super::*;

/// Install the Prometheus recorder; `ops::scrape` serves what the handle renders.
pub fn install() -> Result<metrics_exporter_prometheus::PrometheusHandle, String> {
    let handle = builder(GAUGE_IDLE)?
        .install_recorder()
        .map_err(|e| e.to_string())?;
    build_info();
    describe_gauge!(BUILD_INFO, "Always 1; the version is a label");
    describe_counter!(
        CALLS_OFFERED,
        "Calls received from a peer (inbound) and INVITE attempts sent to one (outbound)"
    );
    describe_counter!(CALLS_ANSWERED, "Calls answered, by peer and direction");
    describe_histogram!(
        SETUP,
        metrics::Unit::Seconds,
        "Time from the caller's INVITE to the callee's first 180-183 (stage ringing) or 2xx (stage answer), by callee peer"
    );
    describe_counter!(CAUSES, "Ended calls by peer (both legs) and Q.850 cause");
    describe_counter!(
        MESSAGES,
        "SIP messages received (in) and sent (out), by method (requests) or status class (responses); retransmissions included"
    );
    describe_gauge!(PEER_ACTIVE, "Calls in progress per peer (either leg)");
    describe_gauge!(TRANSACTIONS, "SIP transactions alive, client and server");
    describe_gauge!(
        TRANSACTION_BYTES,
        "Bytes the server transactions hold: entries, keys, responses kept for retransmission"
    );
    describe_gauge!(DIALOGS, "Dialogs alive");
    describe_gauge!(RTP_STREAMS, "Media streams being relayed");
    describe_gauge!(RECORDINGS, "Calls being recorded");
    describe_gauge!(
        HEAP_BYTES,
        "Heap bytes in use (only in a build with the heap-stats feature)"
    );
    describe_counter!(
        RELOADS,
        "Configuration reloads by result (applied, invalid, restart_required, failed)"
    );
    describe_counter!(
        PRACK_FAILURES,
        "PRACKs a peer refused or let time out, by peer and status (timeout, a code that speaks of 100rel such as 405/481/501, else 4xx/5xx/6xx/other)"
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
        "RTP/RTCP packets the relay dropped, by reason (malformed, foreign_source, inactive, outside_networks, over_rate, oversize)"
    );
    describe_counter!(
        RELAY_FAILURES,
        "The relay's own failures, by kind: read (a socket read failed), stream (a stream stopped on a packet, its call ended), thread (a relay thread stopped, its calls ended, a new one took its place), bind (a stream's ports could not be bound, its call ended)"
    );
    describe_gauge!(
        MEDIA_PAIRS_FREE,
        "RTP port pairs of [media] ports not in use (ready or resting); pairs another socket holds are left out while they do"
    );
    describe_counter!(
        LIMIT_REFUSALS,
        "Calls (or attempts toward a peer) refused by [limits], by peer and reason"
    );
    describe_counter!(
        LATE_ANSWERS,
        "2xx answers no call wanted any more (a fork's, a failed-over callee's), ACKed and hung up, by peer"
    );
    describe_counter!(
        REFUSED,
        "Messages dropped or answered statelessly before any transaction, and TCP connections closed unserved, by reason"
    );
    describe_counter!(
        FAULTS,
        "Panics caught (defects): call (that call was released), core (its event dropped), callback (the call-back datagram dropped) or cdr_writer (that step of the CDR writer)"
    );
    describe_counter!(
        SCRAPES_REFUSED,
        "/metrics connections closed unanswered: source (not in [metrics] allow) or busy (past max_connections)"
    );
    describe_counter!(
        RTP_PACKETS,
        "RTP packets relayed for anchored calls, by the leg they went to"
    );
    describe_counter!(
        cb::REQUESTS,
        "Call-back datagrams answered, by verb and result (ok or the error reason)"
    );
    describe_counter!(
        cb::DROPPED,
        "Call-back datagrams dropped unanswered, by reason"
    );
    describe_counter!(
        cb::RESULTS,
        "Call-backs ended, by result (connected, user1_failed, user2_failed, cancelled)"
    );
    describe_counter!(
        cb::RESPONSES,
        "Call-back RESPONSEs by outcome (acked, given_up, not_allowed, evicted, sent_once: to a source anyone may be, unsigned, not resent)"
    );
    describe_gauge!(cb::ACTIVE, "Call-backs in progress");
    describe_counter!(
        RETRANSMISSIONS,
        "SIP retransmissions: sent by the gateway (timers, repeated answers) and absorbed (peers' repeats answered without reaching a call)"
    );
    describe_counter!(
        RTP_BYTES,
        "RTP bytes relayed for anchored calls, by the leg they went to"
    );
    describe_counter!(RECORDING_BYTES, "Audio bytes written into call recordings");
    describe_counter!(
        RECORDING_FAILURES,
        "Recordings stopped or not started, by stage: open or write (the disk refused), size_limit (the WAV limit, 4 GiB), removed (the file was deleted under it), space (below [recording] min_free_mb), news_lost (the call was not told); the calls go on"
    );
    describe_counter!(
        REFUSALS_UNRECORDED,
        "INVITEs refused before they became calls, past the peer's [cdr] refused_rate: answered, but no CDR written"
    );
    describe_counter!(
        SEND_DROPPED,
        "SIP datagrams dropped unsent: the socket buffer was full and too many sends already waited for room"
    );
    describe_counter!(
        RECORDING_LOST,
        "Packets a recording could not place, counted when it ends: overflow (its buffer full: the WAV writer fell behind a slow disk) late (their place in the file written already) or stray (for a stream the recording does not have)"
    );
    describe_counter!(
        SEND_FAILED,
        "SIP datagrams the kernel refused to send (a firewall rule, no route to the address, too large); summed up in the log every 10 s"
    );
    describe_counter!(
        TCP_PACED,
        "Pauses in reading a peer's TCP connection because it sent over [protect] source_rate (nothing is dropped: TCP holds the peer back)"
    );
    describe_counter!(
        REWRITES,
        "Rewrites applied to messages toward peers, by kind (sdp_anchor, ptime, request_uri, 100rel)"
    );
    describe_gauge!(
        PEER_UP,
        "1 while the peer answers its OPTIONS pings ([sip] ping_s), 0 once ping_failures in a row went unanswered (no call is sent to it then)"
    );
    describe_gauge!(
        REGISTRATION_UP,
        "1 while the registration with the peer works (last REGISTER accepted, binding not expired), else 0"
    );
    Ok(handle)
}
