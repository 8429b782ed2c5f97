//! Counts of what the edge dropped.

use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counts of what the edge dropped, for the metrics and one log summary per interval
/// (never a log line per packet: the packets are the attacker's to send).
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub source_blocked: AtomicU64,
    pub sources_tripped: AtomicU64,
    pub queue_full: AtomicU64,
    pub oversize: AtomicU64,
    pub unparseable: AtomicU64,
    pub shed_refused: AtomicU64,
    pub shed_dropped: AtomicU64,
    /// SIP datagrams the kernel refused to send: anyone can cause them (a 403 toward a
    /// spoofed source no route leads to), so they are summed up, never said one by one.
    send_failed: AtomicU64,
    /// Messages from sources no profile matches, dropped, and one of their sources: a
    /// carrier that moved to an address its profile's `match` lacks shows here, not only
    /// in a metric.
    strangers: AtomicU64,
    stranger: Mutex<Option<IpAddr>>,
}

impl Tally {
    pub(super) fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_refused(&self) {
        Tally::bump(&self.shed_refused);
    }

    pub(crate) fn count_dropped(&self) {
        Tally::bump(&self.shed_dropped);
    }

    /// A send the kernel refused (counted in the metrics too).
    pub(crate) fn count_send_failed(&self) {
        crate::ops::metrics::udp_send_failed().increment(1);
        Tally::bump(&self.send_failed);
    }

    /// A message from `ip`, which no profile matches, dropped (and counted in the metrics,
    /// `unknown_source`). The source is sampled (the
    /// latest, when the lock is free): no more than one store per packet, and no table a
    /// spoofed flood could fill.
    pub(crate) fn count_stranger(&self, ip: IpAddr) {
        crate::ops::metrics::refused("unknown_source");
        Tally::bump(&self.strangers);
        if let Ok(mut s) = self.stranger.try_lock() {
            *s = Some(ip);
        }
    }

    /// The stranger count since the last call, and one of their sources.
    pub(crate) fn take_strangers(&self) -> Option<(u64, Option<IpAddr>)> {
        let n = self.strangers.swap(0, Ordering::Relaxed);
        let ip = self.stranger.lock().ok().and_then(|mut s| s.take());
        (n > 0).then_some((n, ip))
    }

    /// Take the counts since the last call, as (what, how many) for those not zero.
    pub(crate) fn take(&self) -> Vec<(&'static str, u64)> {
        [
            (
                "messages from sources over [protect] source_rate dropped",
                &self.source_blocked,
            ),
            (
                "sources went over [protect] source_rate",
                &self.sources_tripped,
            ),
            (
                "messages dropped: the core queue was full",
                &self.queue_full,
            ),
            (
                "datagrams over [protect] max_message_bytes dropped",
                &self.oversize,
            ),
            ("datagrams that are not SIP", &self.unparseable),
            (
                "new requests refused with 503: overloaded",
                &self.shed_refused,
            ),
            ("new requests dropped: overloaded", &self.shed_dropped),
            (
                "SIP datagrams the kernel refused to send (a firewall rule, no route to the address, too large)",
                &self.send_failed,
            ),
        ]
        .into_iter()
        .filter_map(|(what, c)| match c.swap(0, Ordering::Relaxed) {
            0 => None,
            n => Some((what, n)),
        })
        .collect()
    }
}
