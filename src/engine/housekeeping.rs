//! What the shell does once a second: media timeouts and failures to the core, the gauges
//! and counters to the metrics, freed memory back to the system, and the edge's drop counts
//! summed up in the log.

use std::time::Instant;

use tracing::{debug, error, warn};

use super::{SUMMARY_EVERY, Shell};
use crate::call::Input;
use crate::config::PeerName;
use crate::ops::metrics;

/// The active calls of every configured peer, and of each peer shown before that a reload
/// removed (its calls go on until they end: it is shown until its count is 0, that once
/// too); and the peers shown now, for the next time.
fn peer_levels(
    configured: &[&PeerName],
    shown: &[PeerName],
    calls: impl Fn(&PeerName) -> u32,
) -> (Vec<(PeerName, u32)>, Vec<PeerName>) {
    // A set: this runs every second on the signalling thread, with thousands of profiles.
    let is_configured: std::collections::HashSet<&PeerName> = configured.iter().copied().collect();
    let levels: Vec<(PeerName, u32)> = configured
        .iter()
        .copied()
        .chain(shown.iter().filter(|p| !is_configured.contains(p)))
        .map(|p| (p.clone(), calls(p)))
        .collect();
    let next = levels
        .iter()
        .filter(|(p, n)| *n > 0 || is_configured.contains(p))
        .map(|(p, _)| p.clone())
        .collect();
    (levels, next)
}

impl Shell {
    /// The CDR writer's queue from here too: a writer stuck in the disk no longer sets the
    /// gauge itself, and says nothing. Said once each time it gets stuck.
    fn watch_cdr_writer(&mut self) {
        let st = self.cdr.stats();
        ::metrics::gauge!(crate::cdr::CDR_QUEUE_DEPTH).set(st.queue_depth as f64);
        let stalled = self.cdr.stalled();
        if stalled && !self.cdr_stalled {
            error!(
                waiting = st.queue_depth,
                "the CDR writer has made no progress for 2 s (the disk does not answer): the \
                 CDRs waiting are in memory only"
            );
        }
        self.cdr_stalled = stalled;
    }

    /// New calls only while their CDRs can be written (`[cdr] fail_closed`, a full queue):
    /// the core told of a change before anything that may start a call (a SIP message, a
    /// call-back request) and every second, so a quiet gateway does not go on refusing
    /// call-backs after the disk is back, nor place them while it is not.
    pub(super) fn note_cdr_gate(&mut self, now: Instant) {
        let cdr_ok = self.cdr.admits_new_calls();
        if cdr_ok != self.cdr_ok {
            self.cdr_ok = cdr_ok;
            if !cdr_ok {
                warn!("CDRs cannot be written: refusing new calls with 503 until they can");
            }
            self.core.handle_input(now, Input::CdrWritable(cdr_ok));
        }
    }

    pub(super) fn every_second(&mut self, now: Instant) {
        self.note_cdr_gate(now);
        for call in self.media.silent_calls(now) {
            self.core.handle_input(now, Input::MediaTimeout(call));
        }
        self.media.replace_stopped_threads();
        let (held, free) = self.media.held_ports(std::time::Instant::now());
        for port in held {
            self.core.handle_input(now, Input::MediaPortHeld(port));
        }
        for port in free {
            self.core.handle_input(now, Input::MediaPortFree(port));
        }
        for call in self.media.failed_calls() {
            self.core.handle_input(now, Input::MediaFailed(call));
        }
        // After what those inputs made is performed: a call they ended has its CDR held
        // before its recording's news is routed (else that news went to the core, too late
        // for the CDR).
        self.perform(now);
        self.take_recording_news(now);
        metrics::active_calls(self.core.active_calls());
        metrics::media_pairs_free(self.core.free_media_ports());
        metrics::retransmissions(self.core.retransmissions());
        metrics::rewrites(&self.core.rewrites());
        let (registrations, pings) = (self.core.registrations(), self.core.peer_health());
        self.peer_states.export(registrations, pings);
        if let Some(cb) = self.callback.as_mut() {
            cb.every_second(now);
            ::metrics::gauge!(crate::callback::metrics::ACTIVE).set(cb.active() as f64);
        }
        self.watch_cdr_writer();
        let ov = &self.inbox.overload;
        // Quiet time brings the refused share down; new work waiting in its queue is no
        // quiet, however long since the last decision (a stall of the core).
        if !self.inbox.holds_new_work() {
            ov.decay_idle(now);
        }
        metrics::overload(ov.share(), ov.standing_delay());
        ov.release_if_idle(now);
        if self.inbox.keep_departed(self.core.moved_since()) {
            self.close_unknown_connections();
        }
        let cfg = self.core.config().clone();
        self.core.release_idle();
        let st = self.core.stats();
        // Freed pages go back to the system also when nothing allocates any more.
        self.heap.tick(st.calls + st.client_txns + st.server_txns);
        let configured: Vec<&PeerName> = cfg.profiles.keys().collect();
        let (peers, shown) =
            peer_levels(&configured, &self.peers_shown, |p| self.core.peer_calls(p));
        self.peers_shown = shown;
        metrics::levels(&metrics::Levels {
            peers: peers.iter().map(|(p, n)| (p.as_str(), *n)).collect(),
            client_txns: st.client_txns,
            server_txns: st.server_txns,
            server_txn_bytes: st.server_txn_bytes,
            dialogs: st.dialogs,
            rtp_streams: self.media.streams(),
            recordings: self.media.recordings(),
        });
        self.tcp.forget_ended(|id| self.core.has_transaction(id));
        if now >= self.summary_at {
            self.summary_at = now + SUMMARY_EVERY;
            self.tcp.keep_in_use(self.core.tcp_targets());
            for (what, n) in self.inbox.tally.take() {
                warn!(count = n, period_s = SUMMARY_EVERY.as_secs(), "{what}");
            }
            if let Some((n, ip)) = self.inbox.tally.take_strangers() {
                let from = ip.map(|ip| ip.to_string()).unwrap_or_default();
                warn!(
                    count = n,
                    period_s = SUMMARY_EVERY.as_secs(),
                    from,
                    "messages from sources no profile matches dropped (a peer on a new address needs it in its profile's `match`)"
                );
            }
            let cb_dropped = self.callback.as_ref().map_or(0, |c| c.take_dropped());
            if cb_dropped > 0 {
                warn!(
                    count = cb_dropped,
                    period_s = SUMMARY_EVERY.as_secs(),
                    "call-back datagrams dropped: they arrived faster than they were handled"
                );
            }
        }
        // (Only when it is logged: counting the timers walks every transaction.)
        if tracing::enabled!(tracing::Level::DEBUG) {
            debug!(
                calls = st.calls,
                dialogs = st.dialogs,
                client_txns = st.client_txns,
                server_txns = st.server_txns,
                timers = self.core.timers_armed(),
                rtp_streams = self.media.streams(),
                "core state"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A peer a reload removed while it had calls is shown with its count until that is 0
    /// (that once more), then no longer. Before, its gauge kept its last count for ever.
    #[test]
    fn a_removed_peer_is_shown_until_its_calls_end() {
        let kept = PeerName("kept".into());
        let gone = PeerName("gone".into());
        let count = std::cell::Cell::new(3);
        let calls = |p: &PeerName| if *p == gone { count.get() } else { 1 };
        let (levels, shown) = peer_levels(&[&kept, &gone], &[], calls);
        assert_eq!(levels, vec![(kept.clone(), 1), (gone.clone(), 3)]);
        // Reloaded without it: its calls are still counted.
        let (levels, shown) = peer_levels(&[&kept], &shown, calls);
        assert_eq!(levels, vec![(kept.clone(), 1), (gone.clone(), 3)]);
        count.set(0);
        let (levels, shown) = peer_levels(&[&kept], &shown, calls);
        assert_eq!(levels, vec![(kept.clone(), 1), (gone.clone(), 0)]);
        assert_eq!(shown, vec![kept.clone()]);
        let (levels, _) = peer_levels(&[&kept], &shown, calls);
        assert_eq!(levels, vec![(kept, 1)]);
    }
}

/// The peers whose registration and ping states were last exported. One that is gone is
/// exported once more: a registration a reload removed as down (no binding is kept), a
/// peer no longer pinged as up (calls go to it again; a 0 left behind would say, for the
/// two minutes the gauge lingers, that none does). Both then leave the scrape.
#[derive(Debug, Default)]
pub(super) struct PeerStates {
    registering: Vec<PeerName>,
    pinged: Vec<PeerName>,
}

impl PeerStates {
    fn export(&mut self, registrations: Vec<(PeerName, bool)>, pings: Vec<(PeerName, bool)>) {
        // (A set: thousands of pinged peers, every second, on the signalling thread.)
        let gone = |before: &[PeerName], now: &[(PeerName, bool)]| -> Vec<PeerName> {
            let now: std::collections::HashSet<&PeerName> = now.iter().map(|(p, _)| p).collect();
            (before.iter())
                .filter(|p| !now.contains(p))
                .cloned()
                .collect()
        };
        for peer in gone(&self.registering, &registrations) {
            metrics::registration_up(&peer.0, false);
        }
        for peer in gone(&self.pinged, &pings) {
            metrics::peer_up(&peer.0, true);
        }
        self.registering = registrations.iter().map(|(p, _)| p.clone()).collect();
        self.pinged = pings.iter().map(|(p, _)| p.clone()).collect();
        for (peer, up) in registrations {
            metrics::registration_up(&peer.0, up);
        }
        for (peer, up) in pings {
            metrics::peer_up(&peer.0, up);
        }
    }
}
